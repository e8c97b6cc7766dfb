package sipproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Run returns, with an error naming the listener, when a listener's read
// loop fails for good: an agent without its SIP sockets must not go on.
func TestRunReturnsWhenReadLoopFails(t *testing.T) {
	b := startBackend(t, backend200)
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	local := probe.LocalAddr().(*net.UDPAddr).AddrPort()
	probe.Close()
	p, err := New(Config{
		Listeners:  []Listener{{Name: "edge", Addr: local, Rule: Rule{SetID: 1, Alg: 8, Failover: true}}},
		Dispatcher: testDispatcherFor(t, b),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	// A read deadline in the past: the read fails with a timeout, which is
	// no transient error.
	_ = p.conn(local).SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "edge") {
			t.Fatalf("Run returned %v, want an error naming listener edge", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after its read loop failed")
	}
}

// Next hops that are names are resolved by a fixed pool of workers from a
// bounded queue: a flood of them while DNS hangs costs no goroutine per
// message; what the queue cannot take is dropped and counted.
func TestNextHopNameQueueBounded(t *testing.T) {
	hang := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	var w capture
	p, edge := startTestProxy(t, Rule{SetID: 1}, func(c *Config) {
		c.Resolver = hang
		c.writeTo = w.write
	}, startBackend(t, backendSilent))
	before := runtime.NumGoroutine()
	const n = 2000
	for i := range n {
		msg := crlf(fmt.Sprintf("SIP/2.0 200 OK\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK0123456789abcdef0\n"+
			"Via: SIP/2.0/UDP host%d.example.invalid:5060;branch=z9hG4bKc\n"+
			"To: <sip:b@x>;tag=2\nFrom: <sip:a@y>;tag=1\nCall-ID: r%d\nCSeq: 1 INVITE\nContent-Length: 0\n\n", edge, i, i))
		p.handle(msg, netip.MustParseAddrPort("127.0.0.1:5999"), edge, nil, new(sipmsg.Msg))
	}
	s := p.Stats().Snapshot()
	if got := counterOf(s.Handoffs, HandoffNextHopName); got != n {
		t.Fatalf("%d next-hop-name hand-offs, want %d", got, n)
	}
	dropped := counterOf(s.Drops, DropNextHopQueueFull)
	if dropped < n-nameQueueSize-nameWorkers || dropped > n-nameQueueSize {
		t.Errorf("%s = %d for %d messages with DNS hanging, want about %d", DropNextHopQueueFull, dropped, n, n-nameQueueSize)
	}
	if more := runtime.NumGoroutine() - before; more > 2*nameWorkers+10 {
		t.Errorf("%d more goroutines for %d next hops to resolve", more, n)
	}
}
