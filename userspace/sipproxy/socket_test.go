package sipproxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/userspace/testutil"
)

// counterOf returns the count of label in cs.
func counterOf(cs []Counter, label string) uint64 {
	for _, c := range cs {
		if c.Label == label {
			return c.Count
		}
	}
	return 0
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bigInvite is an INVITE from me whose body is bodyLen bytes of SDP-like
// lines; withCL says whether it has a Content-Length.
func bigInvite(me netip.AddrPort, callID string, bodyLen int, withCL bool) ([]byte, []byte) {
	var body bytes.Buffer
	for i := 0; body.Len() < bodyLen; i++ {
		fmt.Fprintf(&body, "a=x-line-%06d:%s\r\n", i, strings.Repeat("z", 40))
	}
	b := body.Bytes()[:bodyLen]
	head := "INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + me.String() + ";branch=z9hG4bK" + callID + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:alice@example.com>;tag=a\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Type: application/sdp\r\n"
	if withCL {
		head += fmt.Sprintf("Content-Length: %d\r\n", len(b))
	}
	return append([]byte(head+"\r\n"), b...), b
}

// Item 4: a datagram of any size UDP carries is read whole. A 40 kB INVITE
// used to be cut at sipgo's 32,768-byte read buffer: 400 Bad Content-Length
// with a Content-Length, forwarded truncated without one.
func TestLargeDatagramForwardedWhole(t *testing.T) {
	for _, withCL := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", withCL), func(t *testing.T) {
			b := startBackend(t, backend200)
			p, edge := startTestProxy(t, Rule{}, nil, b)
			c := newClient(t, edge)
			msg, body := bigInvite(c.conn.LocalAddr().(*net.UDPAddr).AddrPort(), "big-"+fmt.Sprint(withCL), 40000, withCL)
			if len(msg) <= 32768 {
				t.Fatalf("test message is %d bytes; it must be over 32,768", len(msg))
			}
			if _, err := c.conn.WriteToUDPAddrPort(msg, edge); err != nil {
				t.Fatal(err)
			}
			codes := c.waitFinal(t, "INVITE", 3*time.Second)
			if got := codes[len(codes)-1]; got != 200 {
				t.Fatalf("final %v, want 200 from the backend", codes)
			}
			b.mu.Lock()
			raw := b.raw
			b.mu.Unlock()
			if len(raw) != 1 {
				t.Fatalf("backend got %d requests, want 1", len(raw))
			}
			if !bytes.HasSuffix(raw[0], body) || len(raw[0]) <= len(msg) {
				t.Fatalf("backend got %d bytes, not the whole %d-byte INVITE plus our Via", len(raw[0]), len(msg))
			}
			if n := counterOf(p.Stats().Snapshot().Drops, DropTruncated); n != 0 {
				t.Errorf("truncated = %d, want 0", n)
			}
		})
	}
}

// loopProxy is a Proxy that is not Run: the test drives readLoop on conn
// itself.
func loopProxy(t *testing.T, conn *net.UDPConn, logw *syncBuffer) *Proxy {
	t.Helper()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	b := startBackend(t, backend200)
	p, err := New(Config{
		Listeners:  []Listener{{Name: "edge", Addr: local, Rule: Rule{SetID: 1, Alg: 8}}},
		Dispatcher: testDispatcherFor(t, b),
		Logger:     slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Item 4: what does not fit the read buffer is counted as truncated, never
// forwarded cut. The buffer is shortened here; in service it is larger than
// any UDP payload.
func TestTruncatedDatagramCounted(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var logw syncBuffer
	p := loopProxy(t, conn, &logw)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.readLoop(ctx, conn, netip.AddrPort{}, new(overflowCounter), make([]byte, 1000)) }()

	c := newClient(t, conn.LocalAddr().(*net.UDPAddr).AddrPort())
	msg, _ := bigInvite(c.conn.LocalAddr().(*net.UDPAddr).AddrPort(), "cut", 2000, false)
	if _, err := c.conn.WriteToUDPAddrPort(msg, c.to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "truncated count", func() bool {
		return counterOf(p.Stats().Snapshot().Drops, DropTruncated) == 1
	})
	if n := p.Stats().Snapshot().Forwarded; n != 0 {
		t.Errorf("forwarded %d, want 0", n)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Errorf("readLoop: %v", err)
	}
}

// Item 8: empty and all-NUL datagrams and CRLF keep-alives are dropped and
// counted by name, never logged, never counted as malformed SIP.
func TestKeepaliveDatagramsCounted(t *testing.T) {
	var logw syncBuffer
	b := startBackend(t, backend200)
	p, edge := startTestProxy(t, Rule{}, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, b)
	c := newClient(t, edge)
	sends := []struct {
		data  []byte
		label string
	}{
		{nil, DropEmpty},
		{make([]byte, 4), DropNUL},
		{make([]byte, 1400), DropNUL},
		{[]byte("\r\n\r\n"), DropKeepalive},
		{[]byte("\r\n"), DropKeepalive},
	}
	want := map[string]uint64{}
	for _, s := range sends {
		if _, err := c.conn.WriteToUDPAddrPort(s.data, edge); err != nil {
			t.Fatal(err)
		}
		want[s.label]++
	}
	waitFor(t, 2*time.Second, "every keep-alive counted", func() bool {
		d := p.Stats().Snapshot().Drops
		for label, n := range want {
			if counterOf(d, label) != n {
				return false
			}
		}
		return true
	})
	if n := counterOf(p.Stats().Snapshot().Drops, DropMalformed); n != 0 {
		t.Errorf("malformed = %d, want 0", n)
	}
	for _, line := range strings.Split(logw.String(), "\n") {
		if strings.Contains(line, "dropped") || strings.Contains(line, "keepalive") || strings.Contains(line, "nul") {
			t.Errorf("logged: %s", line)
		}
	}
}

// Item 10: the kernel's per-socket drop count (SO_RXQ_OVFL) reaches the
// stats: a socket with a small receive buffer that nobody reads drops most
// of a burst, and the next datagram read carries the count.
func TestReceiveBufferOverflowCounted(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info, err := setupSocket(conn, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !info.overflowCounting {
		t.Fatal("SO_RXQ_OVFL refused")
	}
	var logw syncBuffer
	p := loopProxy(t, conn, &logw)
	ovf := p.stats.addSocket("edge", info)
	c := newClient(t, conn.LocalAddr().(*net.UDPAddr).AddrPort())
	for i := 0; i < 200; i++ {
		if _, err := c.conn.WriteToUDPAddrPort(bytes.Repeat([]byte("x"), 1000), c.to); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.readLoop(ctx, conn, netip.AddrPort{}, ovf, make([]byte, readBufferSize)) }()
	// The count rides on datagrams queued after the drops: send more once
	// the reader has made room.
	waitFor(t, 2*time.Second, "rcvbuf_errors", func() bool {
		_, _ = c.conn.WriteToUDPAddrPort([]byte("x"), c.to)
		s := p.Stats().Snapshot().Sockets
		return len(s) == 1 && s[0].RcvbufErrors > 0
	})
	if s := p.Stats().Snapshot().Sockets[0]; s.RcvbufErrors >= 200 || s.RcvbufErrors == 0 {
		t.Errorf("rcvbuf_errors = %d of 200 sent: some must have fit", s.RcvbufErrors)
	}
}

// Item 10: the receive buffer asked for is read back; as root
// SO_RCVBUFFORCE grants it whatever net.core.rmem_max says.
func TestReceiveBufferGranted(t *testing.T) {
	testutil.NeedRoot(t)
	max, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("no rmem_max: %v", err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := 16 << 20
	info, err := setupSocket(conn, want)
	if err != nil {
		t.Fatal(err)
	}
	if !info.forced || info.clamped(want) {
		t.Errorf("as root: forced=%v granted=%d, want %d (rmem_max %s)", info.forced, info.granted, 2*want, strings.TrimSpace(string(max)))
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dropNetAdmin removes CAP_NET_ADMIN from the calling thread's effective
// set. Capabilities are per thread: the caller has locked its goroutine to
// the thread and never unlocks it, so the thread ends with the goroutine.
func dropNetAdmin() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[unix.CAP_NET_ADMIN/32].Effective &^= 1 << (unix.CAP_NET_ADMIN % 32)
	return unix.Capset(&hdr, &data[0])
}

// Item 10: without CAP_NET_ADMIN the kernel caps SO_RCVBUF at
// net.core.rmem_max; the agent reads back what it got and warns once,
// naming the sysctl, however many listeners were clamped.
func TestReceiveBufferClampWarned(t *testing.T) {
	testutil.NeedRoot(t)
	raw, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("no rmem_max: %v", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || rmemMax >= maxReceiveBufferForTest {
		t.Skipf("net.core.rmem_max %q: nothing to clamp", raw)
	}
	var logw syncBuffer
	d := testDispatcherFor(t, startBackend(t, backend200))
	var ls []Listener
	for i := range 2 {
		ls = append(ls, Listener{Name: fmt.Sprintf("l%d", i), Addr: freeLoopback(t), Rule: Rule{SetID: 1, Alg: 8}})
	}
	p, err := New(Config{Listeners: ls, Dispatcher: d, ReceiveBuffer: 2 * rmemMax,
		Logger: slog.New(slog.NewTextHandler(&logw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread without the capability ends here
		if err := dropNetAdmin(); err != nil {
			done <- err
			return
		}
		done <- p.Run(ctx)
	}()
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	warnings := 0
	for _, l := range strings.Split(logw.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "net.core.rmem_max") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings naming net.core.rmem_max for two clamped sockets, want 1:\n%s", warnings, logw.String())
	}
	for _, s := range p.Stats().Snapshot().Sockets {
		if s.Forced || s.ReceiveBuffer != rmemMax {
			t.Errorf("%s: receive buffer %d forced=%v, want %d (rmem_max) unforced", s.Listener, s.ReceiveBuffer, s.Forced, rmemMax)
		}
	}
}

// maxReceiveBufferForTest is above any rmem_max the clamp test can use.
const maxReceiveBufferForTest = 512 << 20

func freeLoopback(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}
