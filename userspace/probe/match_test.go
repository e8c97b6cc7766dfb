package probe

import (
	"bytes"
	"cmp"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// startOne adds one target and runs the fake clock until its first probe
// is sent; it returns the probe's bytes.
func startOne(t *testing.T, cfg Config) (*Engine, *fakeSender, *fakeClock, *results, []byte) {
	t.Helper()
	return startOneTarget(t, cfg, Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal})
}

// startOneTarget is startOne with the target given.
func startOneTarget(t *testing.T, cfg Config, tg Target) (*Engine, *fakeSender, *fakeClock, *results, []byte) {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	e, s, c, r := newFakeEngine(t, cfg)
	if err := e.Add("dst1", tg); err != nil {
		t.Fatal(err)
	}
	for {
		w := e.step()
		if len(s.all()) > 0 {
			break
		}
		c.Add(w)
	}
	return e, s, c, r, s.all()[0].msg
}

func TestHandleResponse(t *testing.T) {
	other := netip.MustParseAddrPort("192.0.2.99:5080")
	swap := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	}
	tests := []struct {
		name     string
		reply    func(req []byte) []byte
		src      netip.AddrPort
		handled  bool
		wantCode int // 0: no result
		counter  func(Stats) uint64
	}{
		{
			name:    "200 from the destination",
			reply:   func(q []byte) []byte { return answer(q, 200, "OK") },
			handled: true, wantCode: 200,
			counter: func(s Stats) uint64 { return s.Replies },
		},
		{
			name:    "503 is a reply too (classes are the dispatcher's)",
			reply:   func(q []byte) []byte { return answer(q, 503, "Service Unavailable") },
			handled: true, wantCode: 503,
			counter: func(s Stats) uint64 { return s.Replies },
		},
		{
			name:    "IPv4-mapped source is the same address",
			reply:   func(q []byte) []byte { return answer(q, 200, "OK") },
			src:     netip.AddrPortFrom(netip.AddrFrom16(testDst.Addr().As16()), testDst.Port()),
			handled: true, wantCode: 200,
			counter: func(s Stats) uint64 { return s.Replies },
		},
		{
			name:    "180 is provisional: no result",
			reply:   func(q []byte) []byte { return answer(q, 180, "Ringing") },
			handled: true,
			counter: func(s Stats) uint64 { return s.Provisional },
		},
		{
			name:    "wrong source address",
			reply:   func(q []byte) []byte { return answer(q, 200, "OK") },
			src:     other,
			handled: true,
			counter: func(s Stats) uint64 { return s.WrongSource },
		},
		{
			name:    "wrong source port",
			reply:   func(q []byte) []byte { return answer(q, 200, "OK") },
			src:     netip.AddrPortFrom(testDst.Addr(), 5081),
			handled: true,
			counter: func(s Stats) uint64 { return s.WrongSource },
		},
		{
			name: "unknown nonce",
			reply: func(q []byte) []byte {
				return flipNonce(answer(q, 200, "OK"))
			},
			handled: true,
			counter: func(s Stats) uint64 { return s.UnknownBranch },
		},
		{
			name: "sequence number never issued",
			reply: func(q []byte) []byte {
				return swap("branch=z9hG4bKpr0000000000000001", "branch=z9hG4bKpr0000000000000009")(answer(q, 200, "OK"))
			},
			handled: true,
			counter: func(s Stats) uint64 { return s.UnknownBranch },
		},
		{
			name:    "upper-case hex is not ours",
			reply:   func(q []byte) []byte { return bytes.ToUpper(answer(q, 200, "OK")) },
			handled: false,
		},
		{
			name:    "branch of the right prefix and wrong length",
			reply:   func(q []byte) []byte { return swap("branch=z9hG4bKpr", "branch=z9hG4bKprx")(answer(q, 200, "OK")) },
			handled: true,
			counter: func(s Stats) uint64 { return s.UnknownBranch },
		},
		{
			name:    "CSeq method is not the probe's",
			reply:   func(q []byte) []byte { return swap("CSeq: 10 OPTIONS", "CSeq: 10 INFO")(answer(q, 200, "OK")) },
			handled: true,
			counter: func(s Stats) uint64 { return s.Malformed },
		},
		{
			name: "a second Via: not our own request",
			reply: func(q []byte) []byte {
				return swap("\r\nTo:", "\r\nVia: SIP/2.0/UDP 192.0.2.50;branch=z9hG4bKx\r\nTo:")(answer(q, 200, "OK"))
			},
			handled: true,
			counter: func(s Stats) uint64 { return s.Malformed },
		},
		{
			name:    "status code out of range",
			reply:   func(q []byte) []byte { return answer(q, 999, "Odd") },
			handled: true,
			counter: func(s Stats) uint64 { return s.Malformed },
		},
		{
			name:    "a request, not a response",
			reply:   func(q []byte) []byte { return q },
			handled: false,
			counter: func(s Stats) uint64 { return s.Malformed },
		},
		{
			name:    "not SIP, with this engine's branch prefix",
			reply:   func([]byte) []byte { return []byte("\x00\x01garbage;branch=" + BranchPrefix + "0") },
			handled: false,
			counter: func(s Stats) uint64 { return s.Malformed },
		},
		{
			// Another engine's, or nobody's: the engine whose prefix it
			// carries counts it (the slow path offers it to each engine).
			name:    "not SIP, no branch prefix of this engine",
			reply:   func([]byte) []byte { return []byte("\x00\x01garbage;branch=z9hG4bKka0") },
			handled: false,
		},
		{
			name:    "no end of headers",
			reply:   func(q []byte) []byte { a := answer(q, 200, "OK"); return a[:len(a)-2] },
			handled: false,
			counter: func(s Stats) uint64 { return s.Malformed },
		},
		{
			name:    "someone else's branch",
			reply:   func(q []byte) []byte { return swap("branch=z9hG4bKpr", "branch=z9hG4bKsf")(answer(q, 200, "OK")) },
			handled: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _, r, req := startOne(t, Config{})
			before := e.Stats()
			src := tc.src
			if !src.IsValid() {
				src = testDst
			}
			msg := tc.reply(bytes.Clone(req))
			if got := e.HandleResponse(msg, src); got != tc.handled {
				t.Errorf("HandleResponse = %v, want %v\n%q", got, tc.handled, msg)
			}
			got := r.get()
			switch {
			case tc.wantCode == 0 && len(got) != 0:
				t.Errorf("results %+v, want none", got)
			case tc.wantCode != 0 && (len(got) != 1 || got[0].Code != tc.wantCode || got[0].Key != "dst1" || got[0].Timeout || got[0].Sent != 1):
				t.Errorf("results %+v, want one for dst1 with code %d, sent once", got, tc.wantCode)
			}
			after := e.Stats()
			if tc.counter != nil && tc.counter(after) != tc.counter(before)+1 {
				t.Errorf("counter %d -> %d, want +1 (stats %+v)", tc.counter(before), tc.counter(after), after)
			}
			// Every other reply counter stays put.
			sum := func(s Stats) uint64 {
				return s.Replies + s.Provisional + s.WrongSource + s.UnknownBranch + s.Late + s.Malformed
			}
			want := sum(before)
			if tc.counter != nil {
				want++
			}
			if sum(after) != want {
				t.Errorf("reply counters moved by %d, want %d (stats %+v)", sum(after)-sum(before), want-sum(before), after)
			}
			if tc.wantCode == 0 && after.InFlight != 1 {
				t.Errorf("%d in flight after an ignored reply, want the probe still waiting", after.InFlight)
			}
		})
	}
}

func TestLateReplies(t *testing.T) {
	e, s, c, r, req := startOne(t, Config{})
	ok := answer(req, 200, "OK")
	e.HandleResponse(ok, testDst)
	e.HandleResponse(ok, testDst) // the 200 retransmitted
	if st := e.Stats(); st.Replies != 1 || st.Late != 1 || len(r.get()) != 1 {
		t.Errorf("after a 200 twice: stats %+v, results %d; want 1 reply, 1 late, 1 result", st, len(r.get()))
	}

	// A reply after the deadline is late as well.
	for e.Stats().Probes < 2 {
		c.Add(e.step())
	}
	second := s.all()[len(s.all())-1].msg
	run(e, c, 10*time.Second)
	if st := e.Stats(); st.Timeouts == 0 {
		t.Fatalf("no timeout: %+v", st)
	}
	e.HandleResponse(answer(second, 200, "OK"), testDst)

	// A reply for a removed target is late; nothing is reported.
	n := len(r.get())
	for e.Stats().InFlight == 0 {
		c.Add(e.step())
	}
	last := s.all()[len(s.all())-1].msg
	e.Remove("dst1")
	e.HandleResponse(answer(last, 200, "OK"), testDst)
	if st := e.Stats(); st.Late != 3 || st.Replies != 1 || len(r.get()) != n || st.Targets != 0 || st.InFlight != 0 {
		t.Errorf("stats %+v, %d results (had %d); want 3 late, 1 reply, no new result, nothing left", st, len(r.get()), n)
	}
}

// TestTimerE follows RFC 3261 §17.1.2.2 on the fake clock: retransmit at
// T1, doubling up to T2, until the deadline; then a timeout result.
func TestTimerE(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name        string
		cfg         Config
		provisional time.Duration // a 100 arrives this long after the first send (0: none)
		tgTimeout   time.Duration // Target.Timeout
		want        []time.Duration
	}{
		{
			name: "defaults: deadline 5 s (interval 30 s)",
			cfg:  Config{},
			want: []time.Duration{0, 500 * ms, 1500 * ms, 3500 * ms},
		},
		{
			name: "deadline 10 s: T2 caps the interval at 4 s",
			cfg:  Config{Timeout: 10 * time.Second},
			want: []time.Duration{0, 500 * ms, 1500 * ms, 3500 * ms, 7500 * ms},
		},
		{
			name:      "the target's own deadline wins",
			cfg:       Config{Timeout: 10 * time.Second},
			tgTimeout: 2 * time.Second,
			want:      []time.Duration{0, 500 * ms, 1500 * ms},
		},
		{
			name: "short timers",
			cfg:  Config{Timeout: 300 * ms, T1: 20 * ms, T2: 80 * ms},
			want: []time.Duration{0, 20 * ms, 60 * ms, 140 * ms, 220 * ms},
		},
		{
			name:        "a provisional reply moves retransmissions to T2",
			cfg:         Config{Timeout: 10 * time.Second},
			provisional: 600 * ms,
			want:        []time.Duration{0, 500 * ms, 4600 * ms, 8600 * ms},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Interval = 30 * time.Second
			e, s, c, r, req := startOneTarget(t, tc.cfg, Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal, Timeout: tc.tgTimeout})
			t0 := s.all()[0].at
			deadline := cmp.Or(tc.tgTimeout, tc.cfg.Timeout, DefaultMaxTimeout)
			if tc.provisional > 0 {
				run(e, c, tc.provisional-c.Now().Sub(t0))
				e.HandleResponse(answer(req, 100, "Trying"), testDst)
			}
			run(e, c, deadline-c.Now().Sub(t0))
			var got []time.Duration
			for _, x := range s.all() {
				if !bytes.Equal(x.msg, req) {
					t.Fatalf("retransmission differs from the request:\n%s\nwant\n%s", x.msg, req)
				}
				got = append(got, x.at.Sub(t0))
			}
			if len(got) != len(tc.want) || !equalDurations(got, tc.want) {
				t.Errorf("sent at %v, want %v", got, tc.want)
			}
			res := r.get()
			if len(res) != 1 || !res[0].Timeout || res[0].Code != 0 || res[0].Sent != len(tc.want) {
				t.Errorf("results %+v, want one timeout after %d sends", res, len(tc.want))
			}
			if st := e.Stats(); st.Timeouts != 1 || st.Retransmits != uint64(len(tc.want)-1) || st.InFlight != 0 {
				t.Errorf("stats %+v, want 1 timeout, %d retransmits, none in flight", st, len(tc.want)-1)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestSendErrorEndsProbe(t *testing.T) {
	e, s, c, r := newFakeEngine(t, Config{Interval: time.Second})
	s.err = errTest
	if err := e.Add("dst1", Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
		t.Fatal(err)
	}
	run(e, c, 1500*time.Millisecond)
	res := r.get()
	if len(res) == 0 || res[0].Err == nil || res[0].Timeout || res[0].Sent != 1 {
		t.Fatalf("results %+v, want a send error result", res)
	}
	if st := e.Stats(); st.SendErrors != uint64(len(res)) || st.Retransmits != 0 || st.InFlight != 0 {
		t.Errorf("stats %+v: want one send error per probe, no retransmission", st)
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("test: send failed")

// TestSpread: 10,000 targets added at once with a 1 s interval fire
// spread over that second, in their first round and in the next ones.
func TestSpread(t *testing.T) {
	e, s, c, _ := newFakeEngine(t, Config{Interval: time.Second, Timeout: 100 * time.Millisecond, T1: time.Second})
	const n = 10000
	for i := range n {
		if err := e.Add(strings.Repeat("k", 1+i%7)+itoa(i), Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := c.Now()
	run(e, c, 3*time.Second)
	var buckets [30]int // 100 ms each
	for _, x := range s.all() {
		if b := int(x.at.Sub(t0) / (100 * time.Millisecond)); b < len(buckets) {
			buckets[b]++
		}
	}
	for i, v := range buckets {
		// Uniform is 1,000 a bucket; a burst would put most in one.
		if v < 700 || v > 1300 {
			t.Errorf("100 ms bucket %d holds %d probes, want about 1,000 (buckets %v)", i, v, buckets)
			break
		}
	}
}

// TestMaxInFlight: probes wait for a slot instead of exceeding the bound.
func TestMaxInFlight(t *testing.T) {
	e, _, c, _ := newFakeEngine(t, Config{Interval: time.Second, Timeout: 200 * time.Millisecond, MaxInFlight: 2})
	for i := range 5 {
		if err := e.Add(itoa(i), Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
			t.Fatal(err)
		}
	}
	end := c.Now().Add(3 * time.Second)
	for c.Now().Before(end) {
		w := e.step()
		if n := e.Stats().InFlight; n > 2 {
			t.Fatalf("%d probes in flight, bound 2", n)
		}
		c.Add(min(w, 10*time.Millisecond))
	}
	st := e.Stats()
	if st.Deferred == 0 || st.Probes < 10 || st.Timeouts < 8 {
		t.Errorf("stats %+v: want deferred starts and every target probed", st)
	}
}

// flipNonce changes the last hex digit of the branch in b (a reply with
// a probe branch of the right shape that no probe issued).
func flipNonce(b []byte) []byte {
	i := bytes.Index(b, []byte(";branch="+BranchPrefix)) + len(";branch=") + branchLen - 1
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return b
}

// TestUpdateInFlight: Add on a target with a probe in flight changes the
// next probes only; the one in flight retransmits the same bytes and is
// answered from the address it went to.
func TestUpdateInFlight(t *testing.T) {
	e, s, c, r, req := startOne(t, Config{})
	moved := netip.MustParseAddrPort("192.0.2.20:5060")
	if err := e.Add("dst1", Target{URI: "sip:192.0.2.20", Addr: moved, Local: testLocal, From: "sip:new@example.com"}); err != nil {
		t.Fatal(err)
	}
	run(e, c, 600*time.Millisecond) // past T1: one retransmission
	sent := s.all()
	if len(sent) != 2 || !bytes.Equal(sent[1].msg, req) || sent[1].dst != testDst {
		t.Fatalf("after the update: %d sends, last to %v; want the same request retransmitted to %v", len(sent), sent[len(sent)-1].dst, testDst)
	}
	if !e.HandleResponse(answer(req, 200, "OK"), testDst) || len(r.get()) != 1 {
		t.Fatalf("reply from the old address not matched: %+v", e.Stats())
	}
	run(e, c, 2*time.Second)
	sent = s.all()
	last := sent[len(sent)-1]
	if last.dst != moved || !bytes.HasPrefix(last.msg, []byte("OPTIONS sip:192.0.2.20 SIP/2.0\r\n")) || !bytes.Contains(last.msg, []byte("From: <sip:new@example.com>;tag=")) {
		t.Errorf("next probe to %v:\n%s\nwant the updated target", last.dst, last.msg)
	}
}

// TestResultSeq: results carry their probe's number; a probe started after
// Issued() has a higher one.
func TestResultSeq(t *testing.T) {
	e, _, c, r := newFakeEngine(t, Config{Interval: time.Second, Timeout: 100 * time.Millisecond})
	for _, k := range []string{"a", "b"} {
		if err := e.Add(k, Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
			t.Fatal(err)
		}
	}
	run(e, c, 2*time.Second)
	mark := e.Issued()
	run(e, c, 2*time.Second)
	last := map[string]uint64{}
	after := 0
	for _, x := range r.get() {
		if x.Seq <= last[x.Key] || x.Seq == 0 || x.Seq > e.Issued() {
			t.Errorf("result %+v after seq %d for its key (issued %d)", x, last[x.Key], e.Issued())
		}
		last[x.Key] = x.Seq
		if x.Seq > mark {
			after++
		}
	}
	if mark < 2 || after < 2 {
		t.Errorf("issued %d at the mark, %d results after it: want probes on both sides", mark, after)
	}
}

// TestExactPeriod: after the first probe, a target's probes start exactly
// one interval apart, counted from when each was due, even when the
// engine steps late (here every 7 ms, as a loaded host would): no jitter
// and no drift, so the time to inactive is threshold intervals plus a
// deadline (docs/probing.md "Time to inactive"), not more.
func TestExactPeriod(t *testing.T) {
	const every, late = 300 * time.Millisecond, 7 * time.Millisecond
	e, s, c, _ := newFakeEngine(t, Config{Interval: every, Timeout: 50 * time.Millisecond, T1: time.Second})
	if err := e.Add("a", Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
		t.Fatal(err)
	}
	for end := c.Now().Add(30 * every); c.Now().Before(end); c.Add(late) {
		for e.step() == 0 {
		}
	}
	sent := s.all()
	if len(sent) < 25 {
		t.Fatalf("%d probes in 30 intervals, want about 30", len(sent))
	}
	// The first start is up to one step late; each later one is due k
	// intervals after the first was due, and starts up to one step late.
	for k, m := range sent {
		off := m.at.Sub(sent[0].at) - time.Duration(k)*every
		if off <= -late || off >= late {
			t.Errorf("probe %d started %v after the first, want %v ± %v", k, m.at.Sub(sent[0].at), time.Duration(k)*every, late)
		}
	}
}
