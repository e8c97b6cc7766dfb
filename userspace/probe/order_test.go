package probe

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

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
