package sipproxy

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// branchCookie is RFC 3261's magic cookie, the start of every branch we
// write and the mark of an RFC 3261 client's branch.
const branchCookie = "z9hG4bK"

// advText is the listener's ADV: the advertised host:port (the listener's
// port when Advertise has none), else IP:PORT; IPv6 in brackets.
func advText(l Listener) string {
	if l.Advertise == "" {
		return l.Addr.String()
	}
	if _, port := splitHostPort(l.Advertise); port != 0 {
		return l.Advertise
	}
	return l.Advertise + ":" + strconv.Itoa(int(l.Addr.Port()))
}

// splitHostPort splits "host:port" or "[v6]:port" as written. The host
// keeps IPv6 brackets; port is 0 when absent or not a port.
func splitHostPort(s string) (string, int) {
	host, portText := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return s, 0
		}
		host = s[:end+1]
		if rest := s[end+1:]; strings.HasPrefix(rest, ":") {
			portText = rest[1:]
		} else if rest != "" {
			return s, 0
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if strings.IndexByte(s[:i], ':') >= 0 {
			return s, 0 // a bare IPv6 address, not host:port
		}
		host, portText = s[:i], s[i+1:]
	}
	if portText == "" {
		return host, 0
	}
	p, err := strconv.Atoi(portText)
	if err != nil || p < 1 || p > 65535 || portText[0] == '+' {
		return host, 0
	}
	return host, p
}

// validHost accepts a hostname, an IPv4 address or a bracketed IPv6
// address: what may follow "sip:" in our Record-Route.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if h[0] == '[' {
		a, err := netip.ParseAddr(strings.Trim(h, "[]"))
		return err == nil && a.Is6() && a.Zone() == "" && h[len(h)-1] == ']'
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// appendURIHost appends a as a URI host: IPv6 in brackets, RFC 5952 text.
func appendURIHost(out []byte, a netip.Addr) []byte {
	if a.Is6() {
		out = append(out, '[')
		out = a.AppendTo(out)
		return append(out, ']')
	}
	return a.AppendTo(out)
}

// senderVia records the edit of the sender's top Via (contract § The
// sender's top Via): an old received parameter is removed, then rport is
// filled and received added, or received alone, as one insertion.
func senderVia(ed *editor, in []byte, v *sipmsg.Via) bool {
	if v.HasReceived {
		if !ed.add(edit{off: int(v.ReceivedParam.Start), end: int(v.ReceivedParam.End)}) {
			return false
		}
	}
	switch {
	case v.HasRport && !v.HasRportValue:
		at := int(v.RportName.End)
		return ed.add(edit{off: at, end: at, kind: insRport})
	case !sameHost(v.Host.Bytes(in), ed.srcIP[:ed.srcIPLen]):
		at := int(v.SentBy.End)
		return ed.add(edit{off: at, end: at, kind: insReceived})
	}
	return true
}

// sameHost reports whether a sent-by host is byte for byte the text of the
// source IP (for IPv6, inside brackets).
func sameHost(host, ip []byte) bool {
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
		return bytes.IndexByte(ip, ':') >= 0 && bytes.Equal(host, ip)
	}
	return bytes.IndexByte(ip, ':') < 0 && bytes.Equal(host, ip)
}

// appendBlock appends the insertion block: our Via, then Record-Route and
// Max-Forwards: 70 when asked.
func appendBlock(out []byte, b blockSpec) []byte {
	out = append(out, b.l.viaPrefix...)
	out = appendHex64(out, b.token)
	out = append(out, "\r\n"...)
	if b.rr {
		out = append(out, b.l.rrLine...)
	}
	if b.mf {
		out = append(out, maxFwdDefault...)
	}
	return out
}

// appendHex64 appends v as 16 lower-case hex digits, most significant first.
func appendHex64(out []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	var d [16]byte
	for i := 15; i >= 0; i-- {
		d[i] = digits[v&0xf]
		v >>= 4
	}
	return append(out, d[:]...)
}

// ipLiteral parses a host (IPv6 in brackets) or a received value (IPv6
// bare) as an IP address without a zone. ok is false for a name. It parses
// the bytes itself: netip.ParseAddr would make the message escape to the
// heap (its errors keep the input).
func ipLiteral(h []byte) (netip.Addr, bool) {
	if len(h) == 0 {
		return netip.Addr{}, false
	}
	if h[0] == '[' {
		if len(h) < 3 || h[len(h)-1] != ']' {
			return netip.Addr{}, false
		}
		a, ok := parseIPv6(h[1 : len(h)-1])
		return a.Unmap(), ok
	}
	if bytes.IndexByte(h, ':') >= 0 {
		a, ok := parseIPv6(h)
		return a.Unmap(), ok
	}
	var b [4]byte
	if !parseIPv4(h, b[:]) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(b), true
}

// parseIPv4 parses a dotted quad (no leading zeros, as netip) into dst.
func parseIPv4(s []byte, dst []byte) bool {
	n, val, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || n == 4 {
				return false
			}
			dst[n] = byte(val)
			n, val, digits = n+1, 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || digits > 0 && val == 0 {
			return false
		}
		val = val*10 + int(c-'0')
		digits++
		if val > 255 {
			return false
		}
	}
	return n == 4
}

// parseIPv6 parses RFC 4291 text (hex groups, one "::", an optional
// trailing dotted quad); zones are not accepted.
func parseIPv6(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // byte index in ip where "::" stands
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		// A dotted quad may end the address.
		if j := bytes.IndexByte(s, ':'); j < 0 && bytes.IndexByte(s, '.') >= 0 {
			if i > 12 || !parseIPv4(s, ip[i:i+4]) {
				return netip.Addr{}, false
			}
			i += 4
			s = nil
			break
		}
		off, val := 0, 0
		for off < len(s) && off < 5 {
			c := s[off]
			var d int
			switch {
			case '0' <= c && c <= '9':
				d = int(c - '0')
			case 'a' <= c && c <= 'f':
				d = int(c-'a') + 10
			case 'A' <= c && c <= 'F':
				d = int(c-'A') + 10
			default:
				goto done
			}
			val = val<<4 | d
			off++
		}
	done:
		if off == 0 || off > 4 {
			return netip.Addr{}, false
		}
		ip[i], ip[i+1] = byte(val>>8), byte(val)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		for j := ellipsis + n - 1; j >= ellipsis; j-- {
			ip[j] = 0
		}
	} else if ellipsis >= 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}
