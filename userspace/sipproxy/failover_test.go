package sipproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// backendBehaviour is how a test backend answers an INVITE.
type backendBehaviour int

const (
	backendSilent  backendBehaviour = iota // never answers
	backend200                             // 200 OK
	backend503                             // 503 Service Unavailable
	backendRinging                         // 180 and then nothing; 487 on CANCEL
	backendLate503                         // 503 after 400 ms, past the tests' failover timeout
	backendLate200                         // 180 after 400 ms, past the tests' failover timeout, 200 after 600 ms whatever came
)

// testBackend is a UDP SIP endpoint that answers INVITEs as told and
// records every request it receives.
type testBackend struct {
	conn *net.UDPConn
	how  backendBehaviour

	mu       sync.Mutex
	requests []string // method of each request received
	raw      [][]byte // each request received, whole
}

func startBackend(t *testing.T, how backendBehaviour) *testBackend {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{conn: c, how: how}
	t.Cleanup(func() { c.Close() })
	go b.serve()
	return b
}

func (b *testBackend) addr() netip.AddrPort { return b.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (b *testBackend) methods() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

func (b *testBackend) serve() {
	buf := make([]byte, 65536)
	for {
		n, src, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		in := append([]byte(nil), buf[:n]...)
		var m sipmsg.Msg
		if sipmsg.Parse(in, &m) != nil || !m.IsRequest {
			continue
		}
		method := string(m.Method.Bytes(in))
		b.mu.Lock()
		b.requests = append(b.requests, method)
		b.raw = append(b.raw, in)
		b.mu.Unlock()
		answer := func(code int, reason string) {
			if out, ok := appendReply(nil, in, &m, src, code, reason); ok {
				_, _ = b.conn.WriteToUDPAddrPort(out, src)
			}
		}
		switch {
		case method == "CANCEL":
			answer(200, "OK")
		case method != "INVITE":
		case b.how == backend200:
			answer(200, "OK")
		case b.how == backend503:
			answer(503, "Service Unavailable")
		case b.how == backendRinging:
			answer(180, "Ringing")
		case b.how == backendLate503:
			time.AfterFunc(400*time.Millisecond, func() { answer(503, "Service Unavailable") })
		case b.how == backendLate200:
			time.AfterFunc(400*time.Millisecond, func() { answer(180, "Ringing") })
			time.AfterFunc(600*time.Millisecond, func() { answer(200, "OK") })
		}
	}
}

func count(methods []string, want string) int {
	n := 0
	for _, m := range methods {
		if m == want {
			n++
		}
	}
	return n
}

// startFailoverProxy runs a Proxy with one failover-mode listener whose set
// holds the backends in priority order (alg 8 picks them in that order).
func startFailoverProxy(t *testing.T, backends ...*testBackend) netip.AddrPort {
	t.Helper()
	_, local := startTestProxy(t, Rule{Failover: true}, nil, backends...)
	return local
}

// startTestProxy runs a Proxy with one listener on a free loopback port,
// rule (set 1, alg 8, 503 when no destination, filled in) and a set that
// holds the backends in priority order. mod, when set, edits the Config.
func startTestProxy(t *testing.T, rule Rule, mod func(*Config), backends ...*testBackend) (*Proxy, netip.AddrPort) {
	t.Helper()
	d := testDispatcherFor(t, backends...)
	local := freeLoopbackPort(t)

	rule.SetID, rule.Alg, rule.NoDestinationCode = 1, dispatch.AlgPriority, 503
	cfg := Config{
		Listeners:       []Listener{{Name: "edge", Addr: local, Rule: rule}},
		Dispatcher:      d,
		FailoverTimeout: 300 * time.Millisecond,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return runProxy(t, p), local
}

// freeLoopbackPort reserves a free UDP port on 127.0.0.1 for a listener.
func freeLoopbackPort(t *testing.T) netip.AddrPort {
	t.Helper()
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	local := probe.LocalAddr().(*net.UDPAddr).AddrPort()
	probe.Close()
	return local
}

// runProxy runs p until the test ends (failing the test if Run fails) and
// returns it once its sockets are bound.
func runProxy(t *testing.T, p *Proxy) *Proxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy Run: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("proxy did not start: %v", err)
	}
	return p
}

// testDispatcherFor is set 1 holding the backends in priority order.
func testDispatcherFor(t *testing.T, backends ...*testBackend) *dispatch.Dispatcher {
	t.Helper()
	addrs := make([]netip.AddrPort, len(backends))
	for i, b := range backends {
		addrs[i] = b.addr()
	}
	return testDispatcherForAddrs(t, addrs...)
}

// testDispatcherForAddrs is set 1 holding sip:ADDR for each address, in
// priority order.
func testDispatcherForAddrs(t testing.TB, addrs ...netip.AddrPort) *dispatch.Dispatcher {
	t.Helper()
	var entries []dispatch.Entry
	for i, a := range addrs {
		entries = append(entries, dispatch.Entry{SetID: 1, URI: "sip:" + a.String(),
			Priority: len(addrs) - i, Source: fmt.Sprintf("test:%d", i+1)})
	}
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dispatch.New(snap)
}

// testClient sends requests to the proxy and collects the status codes of
// the responses it gets back.
type testClient struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func newClient(t *testing.T, to netip.AddrPort) *testClient {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{conn: c, to: to}
}

func (c *testClient) send(t *testing.T, method, callID string, cseq int) {
	t.Helper()
	me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	msg := fmt.Sprintf("%s sip:bob@example.com SIP/2.0\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK%x\n"+
		"Max-Forwards: 70\n"+
		"From: <sip:alice@example.com>;tag=a\n"+
		"To: <sip:bob@example.com>\n"+
		"Call-ID: %s\n"+
		"CSeq: %d %s\n"+
		"Content-Length: 0\n\n", method, me, callID, callID, cseq, method)
	if _, err := c.conn.WriteToUDPAddrPort(crlf(msg), c.to); err != nil {
		t.Fatal(err)
	}
}

// waitFinal reads responses until a final response for method arrives, and
// returns every status code seen for it, in order.
func (c *testClient) waitFinal(t *testing.T, method string, within time.Duration) []int {
	t.Helper()
	var codes []int
	buf := make([]byte, 65536)
	deadline := time.Now().Add(within)
	for {
		_ = c.conn.SetReadDeadline(deadline)
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no final response to %s within %v (got %v): %v", method, within, codes, err)
		}
		var m sipmsg.Msg
		in := buf[:n]
		if sipmsg.Parse(in, &m) != nil || m.IsRequest || string(m.CSeq.Method.Bytes(in)) != method {
			continue
		}
		codes = append(codes, m.StatusCode)
		if m.StatusCode >= 200 {
			return codes
		}
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name      string
		backends  []backendBehaviour
		wantFinal int
		// invites is how many INVITEs each backend must have seen (at least
		// one; a silent backend may see sipgo's retransmission too).
		wantTried []bool
	}{
		{name: "silent first destination times out, second answers",
			backends: []backendBehaviour{backendSilent, backend200}, wantFinal: 200, wantTried: []bool{true, true}},
		{name: "503 from the first moves to the second",
			backends: []backendBehaviour{backend503, backend200}, wantFinal: 200, wantTried: []bool{true, true}},
		{name: "first answers, second untouched",
			backends: []backendBehaviour{backend200, backend503}, wantFinal: 200, wantTried: []bool{true, false}},
		{name: "every destination fails: 503",
			backends: []backendBehaviour{backend503, backendSilent}, wantFinal: 503, wantTried: []bool{true, true}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var backends []*testBackend
			for _, how := range tc.backends {
				backends = append(backends, startBackend(t, how))
			}
			edge := startFailoverProxy(t, backends...)
			c := newClient(t, edge)
			c.send(t, "INVITE", fmt.Sprintf("failover-%d@test", i), 1)
			codes := c.waitFinal(t, "INVITE", 5*time.Second)
			if got := codes[len(codes)-1]; got != tc.wantFinal {
				t.Fatalf("final response %d, want %d (all: %v)", got, tc.wantFinal, codes)
			}
			for _, code := range codes[:len(codes)-1] {
				if code >= 200 {
					t.Errorf("the client saw a final %d before the last one: %v", code, codes)
				}
			}
			for i, b := range backends {
				got := count(b.methods(), "INVITE")
				if tc.wantTried[i] && got == 0 {
					t.Errorf("backend %d never got the INVITE", i)
				}
				if !tc.wantTried[i] && got != 0 {
					t.Errorf("backend %d got %d INVITEs, want none", i, got)
				}
			}
		})
	}
}

func TestFailoverCancel(t *testing.T) {
	ringing := startBackend(t, backendRinging)
	other := startBackend(t, backend200)
	edge := startFailoverProxy(t, ringing, other)
	c := newClient(t, edge)

	c.send(t, "INVITE", "cancel-me", 1)
	// Wait for the 180 to be relayed, then cancel.
	buf := make([]byte, 65536)
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no 180 relayed: %v", err)
		}
		if strings.HasPrefix(string(buf[:n]), "SIP/2.0 180") {
			break
		}
	}
	c.send(t, "CANCEL", "cancel-me", 1)
	if codes := c.waitFinal(t, "CANCEL", 3*time.Second); codes[len(codes)-1] != 200 {
		t.Fatalf("CANCEL answered %v, want 200", codes)
	}
	if codes := c.waitFinal(t, "INVITE", 3*time.Second); codes[len(codes)-1] != 487 {
		t.Fatalf("INVITE finished with %v, want 487", codes)
	}
	deadline := time.Now().Add(2 * time.Second)
	for count(ringing.methods(), "CANCEL") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if count(ringing.methods(), "CANCEL") == 0 {
		t.Error("the ringing backend never got the CANCEL")
	}
	if n := count(other.methods(), "INVITE"); n != 0 {
		t.Errorf("a cancelled call failed over: the second backend got %d INVITEs", n)
	}
}

// A hand-off that sipgo's stricter parser refuses must still be answered:
// here a Contact with an unclosed IPv6 reference, which the contract's
// scanner never reads.
func TestFailoverRefusedBySipgo(t *testing.T) {
	b := startBackend(t, backend200)
	edge := startFailoverProxy(t, b)
	c := newClient(t, edge)
	me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	msg := "INVITE sip:bob@example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + me.String() + ";branch=z9hG4bKrefused\n" +
		"Contact: <sip:[::1>\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:alice@example.com>;tag=a\n" +
		"To: <sip:bob@example.com>\n" +
		"Call-ID: refused@test\n" +
		"CSeq: 1 INVITE\n" +
		"Content-Length: 0\n\n"
	if _, err := c.conn.WriteToUDPAddrPort(crlf(msg), edge); err != nil {
		t.Fatal(err)
	}
	codes := c.waitFinal(t, "INVITE", 3*time.Second)
	if got := codes[len(codes)-1]; got != 400 {
		t.Fatalf("final %v, want 400", codes)
	}
	if n := count(b.methods(), "INVITE"); n != 0 {
		t.Errorf("the backend got %d INVITEs of a refused request", n)
	}
}
