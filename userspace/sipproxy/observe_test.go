package sipproxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// seen is what a test keeps of one Observed (which is valid only during
// the call).
type seen struct {
	what     string // "INVITE" for a request, "180 INVITE" for a reply
	set      int
	dst      string
	listener string
	local    bool
	src      netip.AddrPort
}

func (s seen) String() string {
	return fmt.Sprintf("{%s set=%d dst=%q listener=%q local=%v src=%v}", s.what, s.set, s.dst, s.listener, s.local, s.src)
}

// observer collects what Config.Observe is given.
type observer struct {
	mu  sync.Mutex
	got []seen
}

func (o *observer) observe(ob Observed) {
	m, b := ob.Msg, ob.Data
	what := string(m.Method.Bytes(b))
	if !m.IsRequest {
		what = strconv.Itoa(m.StatusCode) + " " + string(m.CSeq.Method.Bytes(b))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, seen{what: what, set: ob.SetID, dst: ob.DstURI, listener: ob.Listener, local: ob.Local, src: ob.Src})
}

// wait returns what was observed once n messages were, or after a few
// seconds whatever was.
func (o *observer) wait(n int) []seen {
	deadline := time.Now().Add(3 * time.Second)
	for {
		o.mu.Lock()
		got := slices.Clone(o.got)
		o.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (o *observer) check(t *testing.T, want []seen) {
	t.Helper()
	got := o.wait(len(want))
	if !slices.Equal(got, want) {
		t.Errorf("observed:\n%v\nwant:\n%v", got, want)
	}
}

// scriptedBackend answers each request method with the status codes
// listed for it, in order.
func scriptedBackend(t *testing.T, script map[string][]int) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			in := buf[:n]
			var m sipmsg.Msg
			if sipmsg.Parse(in, &m) != nil || !m.IsRequest {
				continue
			}
			for _, code := range script[string(m.Method.Bytes(in))] {
				if out, ok := appendReply(nil, in, &m, src, code, "Scripted"); ok {
					_, _ = c.WriteToUDPAddrPort(out, src)
				}
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestObserveStateless: stateless forwarding reports INVITE, ACK, BYE and
// CANCEL requests with the set and destination picked, every reply to
// INVITE and the finals to BYE, and nothing else; a loose-routed request
// comes without a set or destination.
func TestObserveStateless(t *testing.T) {
	backend := scriptedBackend(t, map[string][]int{
		"INVITE": {100, 180, 200}, "BYE": {100, 200}, "OPTIONS": {200}, "CANCEL": {200},
	})
	var obs observer
	d := testDispatcherForAddrs(t, backend)
	edge := freeLoopbackPort(t)
	p, err := New(Config{
		Listeners:  []Listener{{Name: "edge", Addr: edge, Rule: Rule{SetID: 1, Alg: 8}}},
		Dispatcher: d,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observe:    obs.observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	runProxy(t, p)
	c := newClient(t, edge)
	me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	dst := "sip:" + backend.String()

	c.send(t, "INVITE", "obs-1", 1)
	c.waitFinal(t, "INVITE", 3*time.Second)
	c.send(t, "ACK", "obs-1", 1)
	c.send(t, "OPTIONS", "obs-1", 2) // its reply says the ACK went through
	c.waitFinal(t, "OPTIONS", 3*time.Second)
	c.send(t, "BYE", "obs-1", 3)
	c.waitFinal(t, "BYE", 3*time.Second)
	// A BYE routed by a Route naming the edge: loose-routed, not dispatched.
	bye := "BYE sip:" + backend.String() + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + me.String() + ";branch=z9hG4bKlr\n" +
		"Route: <sip:" + edge.String() + ";lr>\n" +
		"From: <sip:alice@example.com>;tag=a\nTo: <sip:bob@example.com>;tag=b\n" +
		"Call-ID: obs-2\nCSeq: 2 BYE\nContent-Length: 0\n\n"
	if _, err := c.conn.WriteToUDPAddrPort(crlf(bye), edge); err != nil {
		t.Fatal(err)
	}
	c.waitFinal(t, "BYE", 3*time.Second)

	req := func(method string) seen { return seen{what: method, set: 1, dst: dst, listener: "edge", src: me} }
	rep := func(what string) seen { return seen{what: what, set: -1, listener: "edge", src: backend} }
	obs.check(t, []seen{
		req("INVITE"), rep("100 INVITE"), rep("180 INVITE"), rep("200 INVITE"),
		req("ACK"),
		req("BYE"), rep("200 BYE"),
		{what: "BYE", set: -1, listener: "edge", src: me}, rep("200 BYE"),
	})
}

// TestObserveFailover: a failover INVITE is reported once, with the
// destination that answers, right before its first relayed response; the
// transaction's own finals are reported flagged Local, after the INVITE
// (with the destination tried last), so the dialog ends.
func TestObserveFailover(t *testing.T) {
	tests := []struct {
		name     string
		backends []backendBehaviour
		final    int
		// want is built from the backends' URIs.
		want func(uri []string) []seen
	}{
		{
			name: "the first fails over, the second answers", backends: []backendBehaviour{backend503, backend200}, final: 200,
			want: func(uri []string) []seen {
				return []seen{{what: "INVITE", set: 1, dst: uri[1], listener: "edge"}, {what: "200 INVITE", set: -1, listener: "edge"}}
			},
		},
		{
			name: "every destination fails: the local 503", backends: []backendBehaviour{backend503, backendSilent}, final: 503,
			want: func(uri []string) []seen {
				return []seen{{what: "INVITE", set: 1, dst: uri[1], listener: "edge"}, {what: "503 INVITE", set: -1, listener: "edge", local: true}}
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var backends []*testBackend
			var uris []string
			for _, how := range tc.backends {
				b := startBackend(t, how)
				backends = append(backends, b)
				uris = append(uris, "sip:"+b.addr().String())
			}
			var obs observer
			_, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) { c.Observe = obs.observe }, backends...)
			c := newClient(t, edge)
			c.send(t, "INVITE", fmt.Sprintf("obs-failover-%d", i), 1)
			if codes := c.waitFinal(t, "INVITE", 5*time.Second); codes[len(codes)-1] != tc.final {
				t.Fatalf("final %v, want %d", codes, tc.final)
			}
			want := tc.want(uris)
			me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
			want[0].src = me
			if !want[1].local {
				want[1].src = backends[len(backends)-1].addr()
			}
			obs.check(t, want)
		})
	}
}

// TestObserveFailoverCancel: a ringing failover INVITE cancelled by the
// caller: the INVITE (with the ringing destination) before its 180, then
// the transaction's own 487, flagged Local; not the CANCEL, which the
// transaction answers itself.
func TestObserveFailoverCancel(t *testing.T) {
	ringing := startBackend(t, backendRinging)
	var obs observer
	_, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) { c.Observe = obs.observe }, ringing)
	c := newClient(t, edge)
	c.send(t, "INVITE", "obs-cancel", 1)
	if got := obs.wait(2); len(got) < 2 || got[1].what != "180 INVITE" {
		t.Fatalf("observed %v, want the INVITE and its 180", got)
	}
	c.send(t, "CANCEL", "obs-cancel", 1)
	if codes := c.waitFinal(t, "INVITE", 3*time.Second); codes[len(codes)-1] != 487 {
		t.Fatalf("INVITE finished with %v, want 487", codes)
	}
	me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	obs.check(t, []seen{
		{what: "INVITE", set: 1, dst: "sip:" + ringing.addr().String(), listener: "edge", src: me},
		{what: "180 INVITE", set: -1, listener: "edge", src: ringing.addr()},
		{what: "487 INVITE", set: -1, listener: "edge", local: true},
	})
}

func TestDialogRelevant(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"INVITE sip:b@x SIP/2.0", true}, {"ACK sip:b@x SIP/2.0", true}, {"BYE sip:b@x SIP/2.0", true},
		{"CANCEL sip:b@x SIP/2.0", true}, {"OPTIONS sip:b@x SIP/2.0", false}, {"UPDATE sip:b@x SIP/2.0", false},
		{"SIP/2.0 100 Trying|1 INVITE", true}, {"SIP/2.0 487 Terminated|1 INVITE", true},
		{"SIP/2.0 100 Trying|2 BYE", false}, {"SIP/2.0 200 OK|2 BYE", true}, {"SIP/2.0 481 No|1 CANCEL", true},
		{"SIP/2.0 200 OK|2 OPTIONS", false}, {"SIP/2.0 200 OK|x INVITE", false},
	} {
		start, cseq, _ := strings.Cut(tc.msg, "|")
		if cseq == "" {
			cseq = "1 " + strings.Fields(start)[0]
		}
		b := crlf(start + "\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>\n" +
			"Call-ID: c\nCSeq: " + cseq + "\n\n")
		var m sipmsg.Msg
		if err := sipmsg.Parse(b, &m); err != nil {
			t.Fatal(err)
		}
		if got := dialogRelevant(b, &m); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.msg, got, tc.want)
		}
	}
}

// allocsProxy is a Proxy whose sends go nowhere, with one stateless
// listener (testLocal, set 1 alg 0) and observe as its hook, and an INVITE
// it forwards.
func allocsProxy(t testing.TB, observe func(Observed)) (*Proxy, []byte) {
	t.Helper()
	return allocsProxyWriting(t, observe, func(netip.AddrPort, []byte, netip.AddrPort) error { return nil })
}

// allocsProxyWriting is allocsProxy whose sends go to writeTo.
func allocsProxyWriting(t testing.TB, observe func(Observed), writeTo func(netip.AddrPort, []byte, netip.AddrPort) error) (*Proxy, []byte) {
	t.Helper()
	p, err := New(Config{
		Listeners:  []Listener{{Name: "edge", Addr: testLocal, Rule: Rule{SetID: 1, Alg: 0}}},
		Dispatcher: testDispatcherForAddrs(t, netip.MustParseAddrPort("127.0.0.1:5080")),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observe:    observe,
		writeTo:    writeTo,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, crlf("INVITE sip:bob@example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKallocs\n" +
		"Max-Forwards: 70\nFrom: <sip:a@example.com>;tag=a\nTo: <sip:b@example.com>\n" +
		"Call-ID: allocs\nCSeq: 1 INVITE\nContent-Length: 0\n\n")
}

var allocsSrc = netip.MustParseAddrPort("192.0.2.99:5060")

// TestObserveAllocs: forwarding a dialog message allocates nothing, with
// the hook or without. The reader's Msg is reused: a Msg on handle's stack
// would move to the heap, a few KiB per datagram, since Observe (a
// function value) is given it.
func TestObserveAllocs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		observe func(Observed)
	}{
		{"no hook", nil},
		{"hook", func(Observed) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, inv := allocsProxy(t, tc.observe)
			out := make([]byte, 0, 4096)
			m := new(sipmsg.Msg)
			if n := testing.AllocsPerRun(100, func() { p.handle(inv, allocsSrc, testLocal, out, m) }); n != 0 {
				t.Errorf("%v allocations per forwarded INVITE, want 0", n)
			}
		})
	}
}

// BenchmarkObserve: what the hook adds to forwarding an INVITE on the
// slow path (the contract and a send that goes nowhere).
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name    string
		observe func(Observed)
	}{
		{"no_hook", nil},
		{"hook", func(Observed) {}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, inv := allocsProxy(b, bc.observe)
			out := make([]byte, 0, 4096)
			m := new(sipmsg.Msg)
			b.ReportAllocs()
			for b.Loop() {
				p.handle(inv, allocsSrc, testLocal, out, m)
			}
		})
	}
}

// TestObserveSendFailed: a message whose send failed was not forwarded:
// it is not reported.
func TestObserveSendFailed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sendErr error
		want    int
	}{
		{"sent", nil, 1},
		{"send failed", errors.New("no route"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			p, inv := allocsProxyWriting(t, func(Observed) { n++ },
				func(netip.AddrPort, []byte, netip.AddrPort) error { return tc.sendErr })
			p.handle(inv, allocsSrc, testLocal, nil, new(sipmsg.Msg))
			if n != tc.want {
				t.Errorf("reported %d times, want %d", n, tc.want)
			}
		})
	}
}
