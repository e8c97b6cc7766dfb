package sipproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// The slow path reads its UDP sockets itself (see the package doc): one
// reader goroutine per listener socket, recvmsg into a buffer larger than
// any UDP payload, MSG_TRUNC checked, and the socket's drop counter
// (SO_RXQ_OVFL) read from each datagram's control message.

const (
	// maxDatagram is the largest UDP payload: 65,535 minus the 8-byte UDP
	// header (65,527 over IPv6; 65,507 over IPv4 after its 20-byte header).
	maxDatagram = 65535 - 8
	// readBufferSize is one byte more than any datagram, so that a full
	// read can be told from a truncated one even without MSG_TRUNC.
	readBufferSize = maxDatagram + 1
	// DefaultReceiveBuffer is the SO_RCVBUF the agent asks for: about one
	// second of 4,000 calls/s of 1 kB INVITEs, twice over.
	DefaultReceiveBuffer = 8 << 20
)

// socketInfo is what the agent learnt setting a listener socket up.
type socketInfo struct {
	// granted is SO_RCVBUF as the kernel reports it (twice the usable size,
	// which the kernel keeps for its own bookkeeping).
	granted int
	// forced says SO_RCVBUFFORCE (CAP_NET_ADMIN) set it past rmem_max.
	forced bool
	// overflowCounting says SO_RXQ_OVFL is on.
	overflowCounting bool
}

// setupSocket sizes the receive buffer of c to want bytes and turns on the
// per-socket drop counter. As root (CAP_NET_ADMIN) SO_RCVBUFFORCE gets the
// size asked for whatever net.core.rmem_max says, as unbound's so-rcvbuf
// does: the configured size is the operator's decision, the sysctl a
// host-wide default. Without the capability SO_RCVBUF is clamped at
// rmem_max; the caller compares what was granted.
func setupSocket(c *net.UDPConn, want int) (socketInfo, error) {
	var info socketInfo
	rc, err := c.SyscallConn()
	if err != nil {
		return info, fmt.Errorf("socket options: %w", err)
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if want > 0 {
			if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want) == nil {
				info.forced = true
			} else if e := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, want); e != nil {
				opErr = fmt.Errorf("SO_RCVBUF %d: %w", want, e)
				return
			}
		}
		info.overflowCounting = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) == nil
		g, e := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if e != nil {
			opErr = fmt.Errorf("read back SO_RCVBUF: %w", e)
			return
		}
		info.granted = g
	})
	if err != nil {
		return info, fmt.Errorf("socket options: %w", err)
	}
	return info, opErr
}

// clamped reports whether the kernel granted less than want: the kernel
// doubles what it is given, so a full grant reads back as 2*want.
func (i socketInfo) clamped(want int) bool { return want > 0 && i.granted < 2*want }

// overflowCounter keeps the last SO_RXQ_OVFL value of one socket: the
// kernel's count of datagrams it dropped on that socket (receive buffer
// full) since the socket was made.
type overflowCounter struct{ last atomic.Uint32 }

// update takes the counter from a datagram's control messages.
func (o *overflowCounter) update(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4 {
			o.last.Store(binary.NativeEndian.Uint32(m.Data))
		}
	}
}

// datagramDrop classifies datagrams that are not SIP at all and are never
// worth a log line: "" for anything else. A CRLF keep-alive is SIP's own
// (RFC 5626) and the Forwarder counts it.
// Socket-level drop reasons.
const (
	DropTruncated = "truncated" // larger than the read buffer (MSG_TRUNC)
	DropReadError = "read_error"
)

// readLoop reads conn until it is closed, handing each datagram to handle.
// buf must be readBufferSize long (tests pass a shorter one to see
// truncation counted).
func (p *Proxy) readLoop(ctx context.Context, conn *net.UDPConn, local netip.AddrPort, ovf *overflowCounter, buf []byte) error {
	oob := make([]byte, unix.CmsgSpace(4))
	out := make([]byte, 0, readBufferSize+1024)
	m := new(sipmsg.Msg)
	for {
		n, oobn, flags, src, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			p.stats.drop(DropReadError)
			p.logs.warn(p.log, "socket read failed", "listener", local.String(), "error", err)
			if !isTransient(err) {
				return fmt.Errorf("read %s: %w", local, err)
			}
			continue
		}
		if oobn > 0 {
			ovf.update(oob[:oobn])
		}
		if flags&unix.MSG_TRUNC != 0 || n >= len(buf) {
			p.stats.drop(DropTruncated)
			p.logs.warn(p.log, "datagram larger than the read buffer dropped", "src", src.String(), "buffer", len(buf))
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		p.handle(buf[:n], src, local, out[:0], m)
	}
}

// isTransient reports read errors after which the socket still works: an
// ICMP error queued on the socket, or an interrupted call.
func isTransient(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EINTR) ||
		errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOBUFS)
}
