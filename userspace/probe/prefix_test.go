package probe

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestBranchPrefixTwoEngines: two engines behind one slow path, the
// default prefix and "z9hG4bKka" (keepalive). Each reply is taken by the
// engine that sent the probe; the other returns false and counts nothing,
// so the LocalReply hook can offer a reply to both in turn.
func TestBranchPrefixTwoEngines(t *testing.T) {
	ds, _, _, dsResults, dsProbe := startOne(t, Config{})
	ka, _, _, kaResults, kaProbe := startOne(t, Config{BranchPrefix: "z9hG4bKka"})
	if !bytes.Contains(dsProbe, []byte(";branch="+BranchPrefix)) || !bytes.Contains(kaProbe, []byte(";branch=z9hG4bKka")) {
		t.Fatalf("probes do not carry their engine's prefix:\n%s\n%s", dsProbe, kaProbe)
	}

	if ds.HandleResponse(answer(kaProbe, 200, "OK"), testDst) {
		t.Error("the default engine took a keepalive reply")
	}
	if !ka.HandleResponse(answer(kaProbe, 200, "OK"), testDst) {
		t.Error("the keepalive engine refused its own reply")
	}
	if ka.HandleResponse(answer(dsProbe, 503, "Busy"), testDst) {
		t.Error("the keepalive engine took a dispatcher reply")
	}
	if !ds.HandleResponse(answer(dsProbe, 503, "Busy"), testDst) {
		t.Error("the default engine refused its own reply")
	}
	if r := kaResults.get(); len(r) != 1 || r[0].Code != 200 {
		t.Errorf("keepalive results %+v, want one 200", r)
	}
	if r := dsResults.get(); len(r) != 1 || r[0].Code != 503 {
		t.Errorf("dispatcher results %+v, want one 503", r)
	}
	for name, s := range map[string]Stats{"default": ds.Stats(), "keepalive": ka.Stats()} {
		if s.Replies != 1 || s.UnknownBranch != 0 || s.Malformed != 0 || s.Late != 0 || s.WrongSource != 0 {
			t.Errorf("%s engine stats %+v: want 1 reply and nothing counted as ignored", name, s)
		}
	}
}

func TestBranchPrefixChecked(t *testing.T) {
	for _, p := range []string{"z9hG4bK", "z9hG4bKk", "z9hG4bKKA", "z9hG4bKk-", "x9hG4bKka", "z9hG4bKkaa"} {
		if _, err := New(Config{BranchPrefix: p}, &fakeSender{}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	if _, err := New(Config{BranchPrefix: "z9hG4bKk2"}, &fakeSender{}); err != nil {
		t.Errorf("prefix z9hG4bKk2: %v", err)
	}
}

// replyingSender answers each probe at once, from inside Send, as a
// backend on loopback whose reply a slow path goroutine reads before the
// engine's goroutine is done with its step.
type replyingSender struct {
	e    *Engine
	code int
}

func (s *replyingSender) Send(_, dst netip.AddrPort, msg []byte) error {
	if s.code != 0 {
		s.e.HandleResponse(answer(msg, s.code, "Answer"), dst)
	}
	return nil
}

// TestResultsInOrder: with the deadline equal to the interval, a probe's
// timeout and its successor's start fall in one step; the successor's
// reply (read on another goroutine at once) must not be reported before
// the timeout: results of one key arrive in Seq order.
func TestResultsInOrder(t *testing.T) {
	c, r := &fakeClock{t: time.Unix(1_700_000_000, 0)}, &results{}
	s := &replyingSender{}
	e, err := New(Config{Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, OnResult: r.add}, s)
	if err != nil {
		t.Fatal(err)
	}
	s.e = e
	e.now, e.epoch = c.Now, c.Now()
	e.rng = rand.NewChaCha8([32]byte{'s', 'i', 'p', 'e', 'd', 'g', 'e'})
	if err := e.Add("dst1", Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
		t.Fatal(err)
	}
	run(e, c, 150*time.Millisecond) // the first probe, unanswered
	s.code = 200
	run(e, c, 200*time.Millisecond)
	got := r.get()
	if len(got) < 2 {
		t.Fatalf("results %+v, want a timeout then replies", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("results out of order: %+v", got)
		}
	}
	turned := false
	for i := 1; i < len(got); i++ {
		turned = turned || got[i-1].Timeout && got[i].Code == 200
	}
	if !turned {
		t.Errorf("results %+v, want a timeout followed by a 200 (the case that used to come out of order)", got)
	}
}
