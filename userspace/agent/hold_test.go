package agent

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// holdFeed is a feed of dialog tracking and call load (algorithm 10 on
// "edge"), with the fast path on (holding) and a clock the test moves.
func holdFeed(t *testing.T) (*feed, *dispatch.CallLoad, func(time.Duration)) {
	t.Helper()
	cfg := dlgConfig(t)
	cfg.Rules = []config.Rule{{Listener: "edge", Set: 1, Algorithm: int(dispatch.AlgCallLoad)}}
	g, err := newDialogs(cfg, slog.New(slog.DiscardHandler))
	if err != nil || g == nil {
		t.Fatalf("newDialogs: %v, %v", g, err)
	}
	d := dispatch.New(buildSnap(t, []dispatch.Entry{{SetID: 1, URI: dlgDestURI, Attrs: "duid=a"}, {SetID: 1, URI: "sip:10.0.0.3:5060", Attrs: "duid=b"}}))
	loads := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
	f := newFeed(cfg, d, g, loads)
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	f.holdSlow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	return f, loads, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// TestFeedHoldsSlowUntilFastInvite: the INVITE takes the fast path, the
// rest of the call the slow path, which delivers it before the drainer
// hands the INVITE's event over. The records, the statistics and the
// loads end as if in order: a call hung up ends terminated, a rejected
// one not answered, nothing unmatched, no load left.
func TestFeedHoldsSlowUntilFastInvite(t *testing.T) {
	f, loads, _ := holdFeed(t)
	for _, c := range []struct{ callID, ending string }{{"late-1@example.com", "bye"}, {"late-2@example.com", "busy"}} {
		call := dlgCall(c.callID, "acme", c.ending)
		for _, m := range call[1:] {
			f.observeSlow(slowObserved(t, m))
		}
		f.observeFast([]dataplane.Event{fastEvent(t, f, call[0])})
	}
	states := map[string]dialog.State{}
	for _, r := range f.dlg.t.List(0) {
		states[r.CallID] = r.State
	}
	if states["late-1@example.com"] != dialog.Terminated || states["late-2@example.com"] != dialog.NotAnswered {
		t.Errorf("states %v, want late-1 terminated, late-2 not answered", states)
	}
	if st := f.dlg.t.Stats(); st.Unmatched != 0 || st.Underflow != 0 {
		t.Errorf("stats %+v, want nothing unmatched", st)
	}
	if st := loads.Stats(); st.Calls != 2 {
		t.Errorf("call load %+v, want the 2 calls recorded", st)
	}
	if got := loads.Load(1, "a"); got != 0 {
		t.Errorf("load %d after both calls ended, want 0", got)
	}
	if st := loads.Stats(); st.Underflows != 0 {
		t.Errorf("call load %+v, want no underflow", st)
	}
	if n := f.hold.pending.Load(); n != 0 {
		t.Errorf("%d messages still held", n)
	}
}

// TestFeedHoldGraceAndCap: a message whose INVITE never comes is held
// for the grace period, then delivered (unmatched, as without holding);
// beyond holdMax held messages, one more is delivered at once and
// counted. The slow path's own calls are never held.
func TestFeedHoldGraceAndCap(t *testing.T) {
	f, _, advance := holdFeed(t)
	own := dlgCall("own@example.com", "acme", "bye")
	for _, m := range own {
		f.observeSlow(slowObserved(t, m))
		if n := f.hold.pending.Load(); n != 0 {
			t.Fatalf("after the slow path's own %s: %d held, want none", m.name, n)
		}
	}
	orphan := dlgCall("orphan@example.com", "acme", "busy")
	f.observeSlow(slowObserved(t, orphan[2])) // 486
	f.release(false)
	if st := f.dlg.t.Stats(); st.Unmatched != 0 || f.hold.pending.Load() != 1 {
		t.Fatalf("within the grace: %+v, %d held; want the 486 held", st, f.hold.pending.Load())
	}
	advance(holdGrace)
	f.release(false)
	if st := f.dlg.t.Stats(); st.Unmatched != 1 || f.hold.pending.Load() != 0 {
		t.Fatalf("after the grace: %+v, %d held; want the 486 delivered, unmatched", st, f.hold.pending.Load())
	}

	for i := range holdMax {
		f.held(&dialog.Message{CallIDHash: uint64(i) + 1<<40, Method: dialog.Invite, Status: 486})
	}
	if f.held(&dialog.Message{CallIDHash: 7, Method: dialog.Invite, Status: 486}) || f.hold.overflow.Load() != 1 {
		t.Errorf("beyond the cap: held, or not counted (overflow %d)", f.hold.overflow.Load())
	}
	// One behind its call's held message: it would overtake it, so the
	// held ones go first, then it.
	if f.held(&dialog.Message{CallIDHash: 1 << 40, Method: dialog.Invite, Status: 200}) || f.hold.pending.Load() != 0 {
		t.Errorf("beyond the cap, behind its call: %d still held", f.hold.pending.Load())
	}
}
