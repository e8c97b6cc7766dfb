package dptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Frame is an Ethernet + IPv4/IPv6 + UDP frame, as built or as parsed.
type Frame struct {
	DstMAC, SrcMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	TTL            uint8  // TTL or hop limit
	IPID           uint16 // IPv4 identification
	DF             bool   // IPv4 don't-fragment
	TOS            uint8  // IPv4 TOS / IPv6 traffic class
	Payload        []byte
}

// Build returns the frame's bytes with correct lengths and checksums.
func (f Frame) Build() []byte {
	v6 := f.Src.Addr().Is6() && !f.Src.Addr().Is4In6()
	udpLen := 8 + len(f.Payload)
	var b []byte
	b = append(b, f.DstMAC...)
	b = append(b, f.SrcMAC...)
	if v6 {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		b = binary.BigEndian.AppendUint32(b, 6<<28|uint32(f.TOS)<<20)
		b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
		b = append(b, 17, f.TTL)
		s, d := f.Src.Addr().As16(), f.Dst.Addr().As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		ip[1] = f.TOS
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		binary.BigEndian.PutUint16(ip[4:], f.IPID)
		if f.DF {
			ip[6] = 0x40
		}
		ip[8] = f.TTL
		ip[9] = 17
		s, d := f.Src.Addr().Unmap().As4(), f.Dst.Addr().Unmap().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip)))
		b = append(b, ip...)
	}
	u := make([]byte, 8, udpLen)
	binary.BigEndian.PutUint16(u[0:], f.Src.Port())
	binary.BigEndian.PutUint16(u[2:], f.Dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen))
	u = append(u, f.Payload...)
	c := ^fold(sum(pseudo(f.Src.Addr(), f.Dst.Addr(), udpLen), u))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return append(b, u...)
}

// Parse reads a frame and checks it: lengths, the IPv4 header checksum and
// the UDP checksum.
func Parse(b []byte) (Frame, error) {
	var f Frame
	if len(b) < 14 {
		return f, errors.New("frame shorter than Ethernet")
	}
	f.DstMAC = append(net.HardwareAddr(nil), b[0:6]...)
	f.SrcMAC = append(net.HardwareAddr(nil), b[6:12]...)
	var l4 []byte
	var src, dst netip.Addr
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		ip := b[14:]
		if len(ip) < 20 || ip[0] != 0x45 {
			return f, errors.New("not a plain IPv4 header")
		}
		if fold(sum(0, ip[:20])) != 0xffff {
			return f, fmt.Errorf("bad IPv4 header checksum %#04x", binary.BigEndian.Uint16(ip[10:]))
		}
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot != len(ip) {
			return f, fmt.Errorf("IPv4 total length %d, frame holds %d", tot, len(ip))
		}
		if ip[9] != 17 {
			return f, errors.New("not UDP")
		}
		f.TOS, f.TTL = ip[1], ip[8]
		f.IPID = binary.BigEndian.Uint16(ip[4:])
		f.DF = ip[6]&0x40 != 0
		src = netip.AddrFrom4([4]byte(ip[12:16]))
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		l4 = ip[20:]
	case 0x86dd:
		ip := b[14:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return f, errors.New("not IPv6")
		}
		if int(binary.BigEndian.Uint16(ip[4:])) != len(ip)-40 {
			return f, errors.New("IPv6 payload length disagrees with the frame")
		}
		if ip[6] != 17 {
			return f, errors.New("not UDP")
		}
		f.TOS = uint8(binary.BigEndian.Uint32(ip) >> 20)
		f.TTL = ip[7]
		src = netip.AddrFrom16([16]byte(ip[8:24]))
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
		l4 = ip[40:]
	default:
		return f, errors.New("not IP")
	}
	if len(l4) < 8 || int(binary.BigEndian.Uint16(l4[4:])) != len(l4) {
		return f, errors.New("UDP length disagrees with the IP length")
	}
	if binary.BigEndian.Uint16(l4[6:]) == 0 {
		return f, errors.New("UDP checksum absent")
	}
	if fold(sum(pseudo(src, dst, len(l4)), l4)) != 0xffff {
		return f, fmt.Errorf("bad UDP checksum %#04x", binary.BigEndian.Uint16(l4[6:]))
	}
	f.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:]))
	f.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:]))
	f.Payload = append([]byte(nil), l4[8:]...)
	return f, nil
}

func pseudo(src, dst netip.Addr, l4len int) uint32 {
	var s uint32
	s = sum(s, src.Unmap().AsSlice())
	s = sum(s, dst.Unmap().AsSlice())
	return s + 17 + uint32(l4len)
}

// sum adds b as big-endian 16-bit words to s.
func sum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
