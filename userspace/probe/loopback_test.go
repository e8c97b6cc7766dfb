package probe

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// udpSender is the slow path's stand-in: one UDP socket that sends the
// probes and hands every datagram it reads to HandleResponse.
type udpSender struct {
	conn     *net.UDPConn
	local    netip.AddrPort
	notProbe atomic.Uint64 // datagrams HandleResponse did not take
}

func (s *udpSender) Send(local, dst netip.AddrPort, msg []byte) error {
	if local.IsValid() && local != s.local {
		return errors.New("udp sender: no socket on " + local.String())
	}
	_, err := s.conn.WriteToUDPAddrPort(msg, dst)
	return err
}

// serve reads until the socket closes.
func (s *udpSender) serve(e *Engine) {
	buf := make([]byte, 65535)
	for {
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !e.HandleResponse(buf[:n], src) {
			s.notProbe.Add(1)
		}
	}
}

func listenUDP(tb testing.TB) (*net.UDPConn, netip.AddrPort) {
	tb.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// responder answers each probe through reply (nil: silence) and records
// what it got.
type responder struct {
	conn *net.UDPConn
	addr netip.AddrPort
	mu   sync.Mutex
	got  [][]byte
}

func startResponder(tb testing.TB, reply func(r *responder, req []byte, src netip.AddrPort)) *responder {
	tb.Helper()
	c, a := listenUDP(tb)
	r := &responder{conn: c, addr: a}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := bytes.Clone(buf[:n])
			r.mu.Lock()
			r.got = append(r.got, req)
			r.mu.Unlock()
			if reply != nil {
				reply(r, req, src)
			}
		}
	}()
	return r
}

func (r *responder) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

func answerWith(code int, reason string) func(*responder, []byte, netip.AddrPort) {
	return func(r *responder, req []byte, src netip.AddrPort) {
		r.conn.WriteToUDPAddrPort(answer(req, code, reason), src)
	}
}

// timedResults records results with the time they came.
type timedResults struct {
	mu  sync.Mutex
	all []Result
	at  []time.Time
	ch  chan struct{}
	// answered's progress
	next int
	keys map[string]bool
}

func newTimedResults() *timedResults {
	return &timedResults{ch: make(chan struct{}, 1), keys: map[string]bool{}}
}

func (t *timedResults) add(r Result) {
	t.mu.Lock()
	t.all, t.at = append(t.all, r), append(t.at, time.Now())
	t.mu.Unlock()
	select {
	case t.ch <- struct{}{}:
	default:
	}
}

// answered counts the keys that had a result with code.
func (t *timedResults) answered(code int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.all[t.next:] {
		if r.Code == code {
			t.keys[r.Key] = true
		}
	}
	t.next = len(t.all)
	return len(t.keys)
}

// wait returns the results once cond holds on them, failing after 10 s.
func (t *timedResults) wait(tb testing.TB, cond func([]Result) bool) ([]Result, []time.Time) {
	tb.Helper()
	timeout := time.After(10 * time.Second)
	for {
		t.mu.Lock()
		all, at := append([]Result(nil), t.all...), append([]time.Time(nil), t.at...)
		t.mu.Unlock()
		if cond(all) {
			return all, at
		}
		select {
		case <-t.ch:
		case <-timeout:
			tb.Fatalf("%d results (first ones %+v): condition not met after 10 s", len(all), all[:min(len(all), 5)])
		}
	}
}

// startLoopbackEngine runs an engine over a real UDP socket on loopback
// until the test ends.
func startLoopbackEngine(tb testing.TB, cfg Config) (*Engine, *udpSender, *timedResults) {
	tb.Helper()
	c, a := listenUDP(tb)
	s := &udpSender{conn: c, local: a}
	tr := newTimedResults()
	cfg.OnResult = tr.add
	e, err := New(cfg, s)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { e.Run(ctx); done <- struct{}{} }()
	go func() { s.serve(e); done <- struct{}{} }()
	tb.Cleanup(func() {
		cancel()
		c.Close()
		<-done
		<-done
	})
	return e, s, tr
}

func uriOf(a netip.AddrPort) string { return "sip:" + a.String() }

// TestLoopbackReply: a 200 and a 503 over real sockets are matched to their
// probes, with their code and round-trip time.
func TestLoopbackReply(t *testing.T) {
	ok := startResponder(t, answerWith(200, "OK"))
	busy := startResponder(t, answerWith(503, "Service Unavailable"))
	e, s, tr := startLoopbackEngine(t, Config{Interval: time.Hour})
	for key, r := range map[string]*responder{"ok": ok, "busy": busy} {
		if err := e.Add(key, Target{URI: uriOf(r.addr), Addr: r.addr, Local: s.local}); err != nil {
			t.Fatal(err)
		}
		e.ProbeNow(key)
	}
	res, _ := tr.wait(t, func(r []Result) bool { return len(r) >= 2 })
	codes := map[string]int{}
	for _, r := range res {
		codes[r.Key] = r.Code
		if r.Timeout || r.Err != nil || r.Sent != 1 || r.RTT <= 0 || r.RTT > 5*time.Second {
			t.Errorf("result %+v: want a reply after one send with an RTT", r)
		}
	}
	if codes["ok"] != 200 || codes["busy"] != 503 || len(res) != 2 {
		t.Errorf("results %+v, want ok=200 and busy=503", res)
	}
	if st := e.Stats(); st.Replies != 2 || st.InFlight != 0 || st.Malformed+st.Late+st.UnknownBranch+st.WrongSource != 0 {
		t.Errorf("stats %+v", st)
	}
	// What the responder got is the probe: its own URI, our socket in Via.
	got := ok.received()
	if len(got) != 1 || !bytes.HasPrefix(got[0], []byte("OPTIONS "+uriOf(ok.addr)+" SIP/2.0\r\nVia: SIP/2.0/UDP "+s.local.String()+";rport;branch="+BranchPrefix)) {
		t.Errorf("responder got %q", got)
	}
}

// TestLoopbackTimeout: a silent destination gives one timeout after the
// deadline, having received the probe and its Timer E retransmissions.
func TestLoopbackTimeout(t *testing.T) {
	const deadline = 300 * time.Millisecond
	silent := startResponder(t, nil)
	e, s, tr := startLoopbackEngine(t, Config{Interval: time.Hour, Timeout: deadline, T1: 20 * time.Millisecond, T2: 80 * time.Millisecond})
	if err := e.Add("silent", Target{URI: uriOf(silent.addr), Addr: silent.addr, Local: s.local}); err != nil {
		t.Fatal(err)
	}
	// Taken before the probe is sent, so that at[0]-asked is never below
	// the time from the send to the timeout: the responder's receive
	// time, read after its goroutine is scheduled, could be late by more
	// than any slack on a loaded machine.
	asked := time.Now()
	e.ProbeNow("silent")
	res, at := tr.wait(t, func(r []Result) bool { return len(r) >= 1 })
	r := res[0]
	got := silent.received()
	if !r.Timeout || r.Code != 0 || r.Err != nil || r.Key != "silent" {
		t.Fatalf("result %+v, want a timeout", r)
	}
	if len(got) != r.Sent || r.Sent < 3 {
		t.Errorf("responder got %d datagrams, result says %d sent: want equal, at least 3 (20, 60, 140 ms...)", len(got), r.Sent)
	}
	for _, g := range got[1:] {
		if !bytes.Equal(g, got[0]) {
			t.Errorf("retransmission differs:\n%s\nfirst:\n%s", g, got[0])
		}
	}
	if el := at[0].Sub(asked); el < deadline {
		t.Errorf("timeout reported %v after the probe was asked for, want at least the %v deadline", el, deadline)
	}
	if st := e.Stats(); st.Timeouts != 1 || st.Retransmits != uint64(r.Sent-1) || st.Probes != 1 {
		t.Errorf("stats %+v, want 1 probe, 1 timeout, %d retransmits", st, r.Sent-1)
	}
}

// TestLoopbackBadReplies: before the right 200, the destination sends
// garbage, a reply for a branch never issued, and the right reply from
// another socket; after it, the 200 again. Only the right one counts.
func TestLoopbackBadReplies(t *testing.T) {
	elsewhere, _ := listenUDP(t)
	dst := startResponder(t, func(r *responder, req []byte, src netip.AddrPort) {
		ok := answer(req, 200, "OK")
		r.conn.WriteToUDPAddrPort([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch="+BranchPrefix+"\r\n"), src) // no end of headers
		r.conn.WriteToUDPAddrPort(flipNonce(bytes.Clone(ok)), src)
		elsewhere.WriteToUDPAddrPort(ok, src)
		time.Sleep(20 * time.Millisecond) // the wrong-source reply comes first
		r.conn.WriteToUDPAddrPort(ok, src)
		r.conn.WriteToUDPAddrPort(ok, src)
	})
	e, s, tr := startLoopbackEngine(t, Config{Interval: time.Hour})
	if err := e.Add("dst", Target{URI: uriOf(dst.addr), Addr: dst.addr, Local: s.local}); err != nil {
		t.Fatal(err)
	}
	e.ProbeNow("dst")
	tr.wait(t, func(r []Result) bool { return len(r) >= 1 })
	deadline := time.Now().Add(5 * time.Second)
	want := Stats{Targets: 1, Probes: 1, Replies: 1, Malformed: 1, UnknownBranch: 1, WrongSource: 1, Late: 1}
	for e.Stats() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := e.Stats(); st != want {
		t.Errorf("stats %+v\nwant  %+v", st, want)
	}
	res, _ := tr.wait(t, func([]Result) bool { return true })
	if len(res) != 1 || res[0].Code != 200 || res[0].Sent != 1 {
		t.Errorf("results %+v, want one 200", res)
	}
	if n := s.notProbe.Load(); n != 1 {
		t.Errorf("%d datagrams not taken by HandleResponse, want 1 (the unframed one)", n)
	}
}

// TestLoopback10k probes 10,000 destinations over one socket, with the
// engine adding no goroutine per destination.
func TestLoopback10k(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 10000
	var rs []*responder
	for range 16 {
		rs = append(rs, startResponder(t, answerWith(200, "OK")))
	}
	// Let the responders' goroutines start before counting.
	time.Sleep(10 * time.Millisecond)
	base := runtime.NumGoroutine()
	e, s, tr := startLoopbackEngine(t, Config{Interval: time.Second})
	for i := range n {
		r := rs[i%len(rs)]
		uri := "sip:dst" + strconv.Itoa(i) + "@" + r.addr.String()
		if err := e.Add(strconv.Itoa(i), Target{URI: uri, Addr: r.addr, Local: s.local}); err != nil {
			t.Fatal(err)
		}
	}
	peak := 0
	deadline := time.Now().Add(20 * time.Second)
	for tr.answered(200) < n {
		peak = max(peak, runtime.NumGoroutine())
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d destinations answered after 20 s; stats %+v", tr.answered(200), n, e.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The engine's goroutine and the reader; the rest is the test's.
	if extra := peak - base; extra > 4 {
		t.Errorf("%d goroutines at peak, %d before the engine: %d extra for %d destinations", peak, base, extra, n)
	}
	if st := e.Stats(); st.Targets != n || st.Probes < n || st.InFlight > n {
		t.Errorf("stats %+v", st)
	}
}
