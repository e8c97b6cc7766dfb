package load

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is a UDP socket driven with raw system calls (sendmmsg, recvmmsg),
// not through package net: a batch of 64 datagrams costs one system call.
//
// The socket lives in the network namespace of the thread that created it
// (tests/netns NS.Do): create sockets inside the namespace, then use them
// from any goroutine.
type Socket struct {
	fd     int
	local  netip.AddrPort
	remote netip.AddrPort // zero when not connected
}

// socket buffers: large, so that bursts of a batch never overflow them.
const sockBuf = 4 << 20

// Listen opens a UDP socket bound to local (port 0: the kernel picks one).
func Listen(local netip.AddrPort) (*Socket, error) {
	return open(local, netip.AddrPort{})
}

// Dial opens a UDP socket bound to local and connected to remote, so that
// sendmmsg needs no address per message and the kernel caches the route.
func Dial(local, remote netip.AddrPort) (*Socket, error) {
	if !remote.IsValid() {
		return nil, errors.New("load: Dial needs a remote address")
	}
	return open(local, remote)
}

func open(local, remote netip.AddrPort) (*Socket, error) {
	family := unix.AF_INET
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("load: socket: %w", err)
	}
	s := &Socket{fd: fd}
	fail := func(what string, err error) (*Socket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("load: %s %s: %w", what, local, err)
	}
	// As root the *FORCE variants pass net.core.[rw]mem_max; otherwise the
	// kernel caps the plain ones there.
	for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], sockBuf) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], sockBuf)
		}
	}
	// Blocking calls that wake up now and then, so loops can stop.
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	for _, o := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, o, &tv); err != nil {
			return fail("timeout on", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(local)); err != nil {
		return fail("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	s.local = addrPort(sa)
	if remote.IsValid() {
		if err := unix.Connect(fd, sockaddr(remote)); err != nil {
			return fail("connect to "+remote.String()+" from", err)
		}
		s.remote = remote
	}
	return s, nil
}

// SetRecvBuffer asks for a receive buffer of size bytes (SO_RCVBUFFORCE,
// which passes net.core.rmem_max, as root; else SO_RCVBUF, which the kernel
// caps there) and returns what the kernel granted: the number of bytes of
// queued datagrams, each charged its buffer's true size, over which it
// drops what arrives.
func (s *Socket) SetRecvBuffer(size int) (int, error) {
	if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			return 0, fmt.Errorf("load: SO_RCVBUF on %s: %w", s.local, err)
		}
	}
	return s.RecvBuffer()
}

// RecvBuffer returns the receive buffer the kernel granted (SO_RCVBUF).
func (s *Socket) RecvBuffer() (int, error) {
	n, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0, fmt.Errorf("load: SO_RCVBUF of %s: %w", s.local, err)
	}
	return n, nil
}

// Local is the bound address (with the port the kernel picked).
func (s *Socket) Local() netip.AddrPort { return s.local }

// Close closes the socket.
func (s *Socket) Close() error { return unix.Close(s.fd) }

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr(); a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// batch is a vector of datagrams for sendmmsg or recvmmsg: one header, one
// iovec, one buffer and one address slot per datagram, allocated once and
// reused (the kernel reads and writes them in place; the Go heap does not
// move them).
type batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	names []unix.RawSockaddrAny
}

// newBatch makes n slots of size bytes each; withNames gives each slot an
// address (recvmmsg fills it; sendmmsg on an unconnected socket reads it).
func newBatch(n, size int, withNames bool) *batch {
	b := &batch{
		hdrs: make([]unix.Mmsghdr, n),
		iovs: make([]unix.Iovec, n),
		bufs: make([][]byte, n),
	}
	if withNames {
		b.names = make([]unix.RawSockaddrAny, n)
	}
	mem := make([]byte, n*size)
	for i := range n {
		b.bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
		if withNames {
			b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
			b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny
		}
	}
	return b
}

// setLen sets the length of slot i's datagram (for sending).
func (b *batch) setLen(i, n int) { b.iovs[i].SetLen(n) }

// resetForRecv restores every slot's full size and address length.
func (b *batch) resetForRecv() {
	for i := range b.hdrs {
		b.iovs[i].SetLen(cap(b.bufs[i]))
		b.hdrs[i].Len = 0
		if b.names != nil {
			b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny
		}
	}
}

// sendmmsg sends hdrs[:n]; it returns how many the kernel took.
func sendmmsg(fd int, hdrs []unix.Mmsghdr) (int, error) {
	if len(hdrs) == 0 {
		return 0, nil
	}
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recvmmsg receives up to len(hdrs) datagrams: it blocks for the first
// (up to the socket's receive timeout), then takes what is queued.
func recvmmsg(fd int, hdrs []unix.Mmsghdr) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_WAITFORONE, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// temporary reports errors a loop should count and carry on after.
func temporary(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) ||
		errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH)
}
