package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand (atomic: benchmarks move it
// while picks read it).
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(1_000_000 * int64(time.Second))
	return c
}
func callHash(callID string) uint64 { return uint64(len(callID))<<58 ^ fnvString(callID) }
func inviteKey(callID string) Key {
	return Key{CallID: callID, CallIDHash: callHash(callID), Invite: true}
}
func requestKey(callID string) Key               { return Key{CallID: callID, CallIDHash: callHash(callID)} }
func (l *CallLoad) event(id string, e CallEvent) { l.Update(callHash(id), e) }

// fnvString is a 64-bit FNV-1a: any hash serves the table.
func fnvString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// loadEntries makes set 1 from "duid attrs" pairs in index order (the
// priorities fall, so the list order is the index order).
func loadEntries(attrs ...string) []Entry {
	out := make([]Entry, len(attrs))
	for i, a := range attrs {
		out[i] = Entry{SetID: 1, URI: fmt.Sprintf("sip:10.0.0.%d", i+1), Priority: len(attrs) - i, Attrs: a,
			Source: fmt.Sprintf("dispatcher.list:%d", i+1)}
	}
	return out
}

// newLoadDispatcher is a Dispatcher over entries with call load on.
func newLoadDispatcher(t testing.TB, opt Options, entries []Entry) (*Dispatcher, *CallLoad, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	d := New(mustBuild(t, opt, entries))
	l := d.EnableCallLoad(DefaultCallLoadConfig(), clk.now)
	return d, l, clk
}

// pickDUID selects for key and returns the pick's duid ("" on error).
func pickDUID(t testing.TB, d *Dispatcher, key Key) string {
	t.Helper()
	sel, err := d.Select(1, AlgCallLoad, key, 0)
	if err != nil {
		t.Fatalf("select %q: %v", key.CallID, err)
	}
	return sel.Dests[0].Attrs.DUID
}

func loadsOf(l *CallLoad, duids ...string) []int64 {
	out := make([]int64, len(duids))
	for i, u := range duids {
		out[i] = l.Load(1, u)
	}
	return out
}

func TestCallLoadLeastLoaded(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b", "duid=c"))
	// Ties go to the lowest index, so 6 calls go a, b, c, a, b, c.
	var got []string
	for i := range 6 {
		got = append(got, pickDUID(t, d, inviteKey(fmt.Sprint("call-", i))))
	}
	if fmt.Sprint(got) != "[a b c a b c]" {
		t.Errorf("picks %v, want [a b c a b c]", got)
	}
	// b's two calls end: b is the least loaded.
	l.event("call-1", CallBye)
	l.event("call-4", CallBye)
	if got := pickDUID(t, d, inviteKey("call-6")); got != "b" {
		t.Errorf("after b's calls ended the pick is %s, want b", got)
	}
	if got := loadsOf(l, "a", "b", "c"); fmt.Sprint(got) != "[2 1 2]" {
		t.Errorf("loads %v, want [2 1 2]", got)
	}
}

func TestCallLoadSkipsDownAndNoDUID(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "weight=5", "duid=c"))
	if err := d.SetState(1, "sip:10.0.0.1", "i"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := pickDUID(t, d, inviteKey(fmt.Sprint("c", i))); got != "c" {
			t.Errorf("pick %d: %s, want c (a is down, the second has no duid)", i, got)
		}
	}
	if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Select(1, AlgCallLoad, inviteKey("x"), 0); !errors.Is(err, ErrNoDestination) {
		t.Errorf("all with a duid down: %v, want ErrNoDestination", err)
	}
	if got := loadsOf(l, "a", "c"); fmt.Sprint(got) != "[0 3]" {
		t.Errorf("loads %v", got)
	}
}

func TestCallLoadMaxLoad(t *testing.T) {
	// maxload 0 is no limit (kamailio#800, #2297); b takes 2 at most.
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a;maxload=0", "duid=b;maxload=2"))
	var got []string
	for i := range 6 {
		got = append(got, pickDUID(t, d, inviteKey(fmt.Sprint("m", i))))
	}
	if fmt.Sprint(got) != "[a b a b a a]" {
		t.Errorf("picks %v, want [a b a b a a]", got)
	}
	// Only b, full: no destination.
	d2, _, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=b;maxload=1"))
	pickDUID(t, d2, inviteKey("one"))
	if _, err := d2.Select(1, AlgCallLoad, inviteKey("two"), 0); !errors.Is(err, ErrNoDestination) {
		t.Errorf("b at maxload: %v, want ErrNoDestination", err)
	}
	// A call of b ends: b takes the next.
	l.event("m1", CallBye)
	if got := pickDUID(t, d, inviteKey("m9")); got != "b" {
		t.Errorf("after a call of b ended: %s, want b", got)
	}
}

func TestCallLoadSticks(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b"))
	pickDUID(t, d, inviteKey("other")) // on a: the call goes to b, not index 0
	first := pickDUID(t, d, inviteKey("call"))
	// A retransmission (or a re-INVITE) keeps the destination and is not
	// counted again; in-dialog requests go there too.
	for range 3 {
		if got := pickDUID(t, d, inviteKey("call")); got != first {
			t.Errorf("INVITE again: %s, want %s", got, first)
		}
	}
	if got := pickDUID(t, d, requestKey("call")); got != first {
		t.Errorf("in-dialog request: %s, want %s", got, first)
	}
	if got := loadsOf(l, "a", "b"); fmt.Sprint(got) != "[1 1]" {
		t.Errorf("loads %v, want [1 1]", got)
	}
	// A request of a call the table does not know: index 0, not counted.
	if got := pickDUID(t, d, requestKey("unknown")); got != "a" {
		t.Errorf("unknown call: %s, want a (index 0)", got)
	}
	// Released calls still stick (the ACK of a 487), for releasedLinger.
	l.event("call", CallCancel)
	if got := pickDUID(t, d, requestKey("call")); got != first {
		t.Errorf("ACK after the release: %s, want %s", got, first)
	}
	if got := loadsOf(l, "a", "b"); fmt.Sprint(got) != "[1 0]" {
		t.Errorf("loads after CANCEL %v, want [1 0]", got)
	}
}

func TestCallLoadEvents(t *testing.T) {
	tests := []struct {
		name   string
		events []CallEvent
		load   int64
	}{
		{name: "BYE releases", events: []CallEvent{CallAnswered, CallBye}, load: 0},
		{name: "BYE of an unanswered call releases", events: []CallEvent{CallBye}, load: 0},
		{name: "CANCEL releases an unanswered call", events: []CallEvent{CallCancel}, load: 0},
		{name: "CANCEL does not end an answered call", events: []CallEvent{CallAnswered, CallCancel}, load: 1},
		{name: "non-2xx final releases", events: []CallEvent{CallRejected}, load: 0},
		{name: "a refused re-INVITE does not end the call", events: []CallEvent{CallAnswered, CallRejected}, load: 1},
		{name: "2xx confirms", events: []CallEvent{CallAnswered, CallAnswered}, load: 1},
		{name: "twice released counts once", events: []CallEvent{CallBye, CallBye, CallCancel, CallRejected}, load: 0},
		{name: "2xx after CANCEL changes nothing", events: []CallEvent{CallCancel, CallAnswered}, load: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a"))
			pickDUID(t, d, inviteKey("call"))
			for _, e := range tc.events {
				l.event("call", e)
			}
			if got := l.Load(1, "a"); got != tc.load {
				t.Errorf("load %d, want %d", got, tc.load)
			}
			if st := l.Stats(); st.Underflows != 0 {
				t.Errorf("underflows %d", st.Underflows)
			}
		})
	}
}

func TestCallLoadReINVITEAfterChallenge(t *testing.T) {
	// 407, then the INVITE again with credentials and the same Call-ID:
	// counted again, on the destination that challenged.
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b"))
	pickDUID(t, d, inviteKey("other"))
	first := pickDUID(t, d, inviteKey("call"))
	l.event("call", CallRejected)
	l.event("other", CallBye)
	if got := pickDUID(t, d, inviteKey("call")); got != first {
		t.Errorf("INVITE after 407: %s, want %s", got, first)
	}
	if got := l.Load(1, first); got != 1 {
		t.Errorf("load of %s %d, want 1", first, got)
	}
}

func TestCallLoadExpiry(t *testing.T) {
	d, l, clk := newLoadDispatcher(t, Options{}, loadEntries("duid=a"))
	l.SetConfig(CallLoadConfig{Expire: 100 * time.Second, InitExpire: 10 * time.Second, CheckInterval: time.Second})
	pickDUID(t, d, inviteKey("unanswered"))
	pickDUID(t, d, inviteKey("answered"))
	l.event("answered", CallAnswered)
	pickDUID(t, d, inviteKey("ended"))
	l.event("ended", CallBye)

	clk.advance(11 * time.Second)
	l.Check()
	if got := l.Load(1, "a"); got != 1 {
		t.Errorf("after initexpire: load %d, want 1 (the answered call)", got)
	}
	st := l.Stats()
	if st.Calls != 2 || st.Expired != 1 {
		t.Errorf("after initexpire: %+v, want 2 calls (answered, ended lingering) and 1 expired", st)
	}
	clk.advance(releasedLinger)
	l.Check()
	if st := l.Stats(); st.Calls != 1 {
		t.Errorf("after the linger: %d calls, want 1", st.Calls)
	}
	clk.advance(100 * time.Second)
	l.Check()
	st = l.Stats()
	if got := l.Load(1, "a"); got != 0 || st.Calls != 0 || st.Expired != 2 || st.Corrections != 0 {
		t.Errorf("after expire: load %d, %+v", got, st)
	}
}

func TestCallLoadFailoverMoves(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b;maxload=1", "duid=c"))
	sel, err := d.Select(1, AlgCallLoad, inviteKey("call"), 0)
	if err != nil {
		t.Fatal(err)
	}
	pickDUID(t, d, inviteKey("fills-b")) // b is at its maxload
	h := callHash("call")
	if d.MoveCallLoad(1, h, &sel.Dests[1]) {
		t.Error("moved to b at its maxload")
	}
	if !d.MoveCallLoad(1, h, &sel.Dests[2]) {
		t.Error("not moved to c")
	}
	if got := loadsOf(l, "a", "b", "c"); fmt.Sprint(got) != "[0 1 1]" {
		t.Errorf("loads %v, want [0 1 1]", got)
	}
	if got := pickDUID(t, d, requestKey("call")); got != "c" {
		t.Errorf("the call's BYE goes to %s, want c", got)
	}
	l.event("call", CallBye)
	if got := loadsOf(l, "a", "b", "c"); fmt.Sprint(got) != "[0 1 0]" {
		t.Errorf("loads after BYE %v", got)
	}
}

func TestCallLoadKeptAcrossReloadAddRemove(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b"))
	for i := range 4 {
		pickDUID(t, d, inviteKey(fmt.Sprint("c", i)))
	}
	// A reload that reorders the set and adds a destination.
	d.Replace(mustBuild(t, Options{}, loadEntries("duid=n", "duid=b", "duid=a")))
	if got := loadsOf(l, "a", "b", "n"); fmt.Sprint(got) != "[2 2 0]" {
		t.Errorf("after reload %v, want [2 2 0]", got)
	}
	if got := pickDUID(t, d, inviteKey("new")); got != "n" {
		t.Errorf("pick after reload %s, want n", got)
	}
	if got := pickDUID(t, d, requestKey("c0")); got != "a" {
		t.Errorf("c0's BYE after reload goes to %s, want a", got)
	}
	// Remove a: its calls still end; add it back: its load is there.
	if err := d.Remove(1, "sip:10.0.0.3"); err != nil {
		t.Fatal(err)
	}
	l.event("c0", CallBye)
	if err := d.Add(context.Background(), Entry{SetID: 1, URI: "sip:10.0.0.9", Attrs: "duid=a"}); err != nil {
		t.Fatal(err)
	}
	if got := loadsOf(l, "a", "b", "n"); fmt.Sprint(got) != "[1 2 1]" {
		t.Errorf("after remove and add %v, want [1 2 1]", got)
	}
	if fixed := l.Check(); fixed != 0 {
		t.Errorf("the audit corrected %d", fixed)
	}
}

func TestCallLoadAuditCorrects(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b"))
	for i := range 10 {
		pickDUID(t, d, inviteKey(fmt.Sprint("c", i)))
	}
	// Drift, as a bug would make it: a's share too high, b's too low.
	a, b := l.counter(1, "a"), l.counter(1, "b")
	sa, sb := shardOf(callHash("c0")), shardOf(callHash("c1"))
	a.share[sa] += 3
	a.total.Add(3)
	b.share[sb]--
	b.total.Add(-1)
	if fixed := l.Check(); fixed != 4 {
		t.Errorf("audit corrected %d, want 4", fixed)
	}
	if got := loadsOf(l, "a", "b"); fmt.Sprint(got) != "[5 5]" {
		t.Errorf("loads after the audit %v, want [5 5]", got)
	}
	if st := l.Stats(); st.Corrections != 4 {
		t.Errorf("stats %+v", st)
	}
}

func TestCallLoadErrors(t *testing.T) {
	d, _, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a"))
	if _, err := d.Select(1, AlgCallLoad, Key{CallID: " ", Invite: true}, 0); !errors.Is(err, ErrEmptyHashKey) {
		t.Errorf("empty Call-ID: %v", err)
	}
	if _, err := d.Select(2, AlgCallLoad, inviteKey("x"), 0); !errors.Is(err, ErrNoSet) {
		t.Errorf("no set: %v", err)
	}
}

func TestCallLoadUseDefault(t *testing.T) {
	d, _, _ := newLoadDispatcher(t, Options{UseDefault: true}, loadEntries("duid=a;maxload=1", "duid=def"))
	if got := pickDUID(t, d, inviteKey("1")); got != "a" {
		t.Errorf("first pick %s, want a", got)
	}
	if got := pickDUID(t, d, inviteKey("2")); got != "def" {
		t.Errorf("a full: %s, want the default", got)
	}
}

// TestCallLoadMillionDialogs runs 1,000,000 calls through the table, with
// answers, BYEs, CANCELs, rejections, lost endings left to expire,
// failovers, reloads, adds and removes in between, and checks that no load
// ever goes below zero, that each load equals its live calls at the end,
// and that the audit found nothing to correct (kamailio#2322).
func TestCallLoadMillionDialogs(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	duids := []string{"a", "b", "c", "d", "e"}
	list := func(drop int) []Entry {
		var e []Entry
		for i, u := range duids {
			if i != drop {
				e = append(e, Entry{SetID: 1, URI: "sip:10.0.1." + fmt.Sprint(i+1), Attrs: "duid=" + u + ";maxload=5000"})
			}
		}
		return e
	}
	d, l, clk := newLoadDispatcher(t, Options{}, list(-1))
	l.SetConfig(CallLoadConfig{Expire: 600 * time.Second, InitExpire: 30 * time.Second, CheckInterval: time.Second})
	rng := rand.New(rand.NewPCG(7, 9))
	var open []uint64 // calls that may still get events
	checkNonNegative := func(i int) {
		for _, u := range duids {
			if v := l.Load(1, u); v < 0 {
				t.Fatalf("after call %d: load of %s is %d", i, u, v)
			}
		}
	}
	for i := range n {
		h := rng.Uint64()
		key := Key{CallID: "x", CallIDHash: h, Invite: true}
		sel, err := d.Select(1, AlgCallLoad, key, 0)
		if err == nil {
			open = append(open, h)
			if rng.IntN(50) == 0 && len(sel.Dests) > 1 { // failover
				d.MoveCallLoad(1, h, &sel.Dests[1])
			}
		} else if !errors.Is(err, ErrNoDestination) {
			t.Fatal(err)
		}
		// End a random open call in some way; one in ten is left to expire.
		if len(open) > 2000 || rng.IntN(3) > 0 && len(open) > 0 {
			j := rng.IntN(len(open))
			c := open[j]
			open[j] = open[len(open)-1]
			open = open[:len(open)-1]
			switch r := rng.IntN(10); {
			case r < 4:
				l.Update(c, CallAnswered)
				l.Update(c, CallBye)
			case r < 6:
				l.Update(c, CallCancel)
			case r < 8:
				l.Update(c, CallRejected)
				l.Update(c, CallBye) // a stray BYE: counts nothing
			case r < 9:
				l.Update(c, CallAnswered) // its BYE is lost: expires
			}
		}
		switch {
		case i%100_000 == 50_000:
			d.Replace(mustBuild(t, Options{}, list(-1)))
		case i%100_000 == 70_000:
			if err := d.Remove(1, "sip:10.0.1.3"); err != nil {
				t.Fatal(err)
			}
		case i%100_000 == 90_000:
			if err := d.Add(context.Background(), list(-1)[2]); err != nil {
				t.Fatal(err)
			}
		}
		if i%1000 == 0 {
			clk.advance(time.Second)
			checkNonNegative(i)
		}
		if i%10_000 == 0 {
			l.Check()
		}
	}
	clk.advance(time.Minute)
	l.Check()
	checkNonNegative(n)
	live := map[*loadCounter]int64{}
	for si := range l.shards {
		for _, c := range l.shards[si].cells {
			if c.live() {
				live[c.ctr]++
			}
		}
	}
	var sum int64
	for _, u := range duids {
		ctr := l.counter(1, u)
		if got := ctr.total.Load(); got != live[ctr] {
			t.Errorf("load of %s is %d, live calls %d", u, got, live[ctr])
		}
		sum += live[ctr]
	}
	st := l.Stats()
	if st.Corrections != 0 || st.Underflows != 0 {
		t.Errorf("stats %+v: the loads drifted", st)
	}
	if sum == 0 || st.Expired == 0 {
		t.Errorf("%d live calls, %d expired: the run exercised too little", sum, st.Expired)
	}
	t.Logf("%d calls: %+v", n, st)
}

// Concurrent picks never put a destination over its maxload: 8
// goroutines start 2,400 calls that never end on three destinations of
// maxload 100; exactly 300 get one, each destination 100.
func TestCallLoadConcurrentMaxLoad(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a;maxload=100", "duid=b;maxload=100", "duid=c;maxload=100"))
	var wg sync.WaitGroup
	var placed atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				_, err := d.Select(1, AlgCallLoad, inviteKey(fmt.Sprint(g, "-", i)), 0)
				switch {
				case err == nil:
					placed.Add(1)
				case !errors.Is(err, ErrNoDestination):
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := loadsOf(l, "a", "b", "c"); placed.Load() != 300 || fmt.Sprint(got) != "[100 100 100]" {
		t.Errorf("%d calls placed, loads %v; want 300 and [100 100 100]", placed.Load(), got)
	}
}

// BenchmarkSelectCallLoad is alg 10's pick of a new call and its BYE,
// from all CPUs, in a set of 8 destinations (one down) as BenchmarkSelect
// uses, with n calls in the table; callid-limit1 is alg 0 for comparison.
func BenchmarkSelectCallLoad(b *testing.B) {
	e := hosts(8)
	for i := range e {
		e[i].Attrs = fmt.Sprintf("duid=d%d", i)
	}
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("calls-%d", n), func(b *testing.B) {
			d, l, clk := newLoadDispatcher(b, Options{}, e)
			l.SetConfig(CallLoadConfig{Expire: 24 * time.Hour, InitExpire: 24 * time.Hour, CheckInterval: time.Second})
			if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if _, err := d.Select(1, AlgCallLoad, Key{CallID: "x", CallIDHash: uint64(i) * 0x9e3779b97f4a7c15, Invite: true}, 1); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if i%(1<<16) == 0 {
						// The timer, as ds_hash_check_interval runs it:
						// the released calls' linger is over.
						clk.advance(time.Minute)
						l.Check()
					}
					h := (i + 1<<40) * 0xbf58476d1ce4e5b9
					if _, err := d.Select(1, AlgCallLoad, Key{CallID: "x", CallIDHash: h, Invite: true}, 1); err != nil {
						b.Fatal(err)
					}
					l.Update(h, CallBye)
				}
			})
		})
	}
	b.Run("callid-limit1", func(b *testing.B) {
		d := New(mustBuild(b, Options{}, e))
		key := Key{CallID: "a84b4c76e66710@pc33.atlanta.com"}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := d.Select(1, AlgCallID, key, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCallLoadMillionCalls holds 1,000,000 live calls in the table
// and reports the heap each one takes (B/call) and the time of one Check
// over them (the timer's walk and the audit).
func BenchmarkCallLoadMillionCalls(b *testing.B) {
	e := hosts(8)
	for i := range e {
		e[i].Attrs = fmt.Sprintf("duid=d%d", i)
	}
	const calls = 1_000_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d, l, _ := newLoadDispatcher(b, Options{}, e)
		for i := range calls {
			if _, err := d.Select(1, AlgCallLoad, Key{CallID: "x", CallIDHash: uint64(i+1) * 0x9e3779b97f4a7c15, Invite: true}, 1); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		start := time.Now()
		if fixed := l.Check(); fixed != 0 {
			b.Fatalf("the audit corrected %d", fixed)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/calls, "B/call")
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/check")
		runtime.KeepAlive(d)
	}
}

// Run checks every interval and reports each audit that corrected loads.
func TestCallLoadRun(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a"))
	l.SetConfig(CallLoadConfig{Expire: time.Hour, InitExpire: time.Hour, CheckInterval: 10 * time.Millisecond})
	pickDUID(t, d, inviteKey("c"))
	ctr := l.counter(1, "a")
	si := shardOf(callHash("c"))
	l.shards[si].mu.Lock()
	ctr.share[si] += 2
	ctr.total.Add(2)
	l.shards[si].mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	fixed := make(chan uint64, 1)
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, func(n uint64) { fixed <- n }) }()
	select {
	case n := <-fixed:
		if n != 2 {
			t.Errorf("corrected %d, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Error("no audit ran")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if got := l.Load(1, "a"); got != 1 {
		t.Errorf("load %d, want 1", got)
	}
}

// TestRecordCallLoad: a call the fast path placed is charged where it
// went, once for its retransmissions, and the slow path sends its later
// messages there (not to index 0, nor to the least loaded); a BYE releases
// it; a pick that moved a live call moves its charge.
func TestRecordCallLoad(t *testing.T) {
	d, l, _ := newLoadDispatcher(t, Options{}, loadEntries("duid=a", "duid=b", "duid=c"))
	set := d.Snapshot().Set(1)
	d.RecordCallLoad(1, callHash("fast"), &set.Dests[2])
	d.RecordCallLoad(1, callHash("fast"), &set.Dests[2]) // the INVITE's retransmission
	if got := loadsOf(l, "a", "b", "c"); got[0] != 0 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("loads %v after the fast path's pick of c, want [0 0 1]", got)
	}
	if got := pickDUID(t, d, requestKey("fast")); got != "c" {
		t.Errorf("the slow path sent the ACK to %q, want c (the fast path's pick)", got)
	}
	if got := pickDUID(t, d, inviteKey("fast")); got != "c" {
		t.Errorf("the slow path sent a retransmitted INVITE to %q, want c", got)
	}
	d.RecordCallLoad(1, callHash("fast"), &set.Dests[1]) // c went down: moved to b
	if got := loadsOf(l, "a", "b", "c"); got[0] != 0 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("loads %v after the call moved to b, want [0 1 0]", got)
	}
	l.event("fast", CallBye)
	if got := loadsOf(l, "a", "b", "c"); got[0]+got[1]+got[2] != 0 {
		t.Errorf("loads %v after the BYE, want all 0", got)
	}
	if got := pickDUID(t, d, requestKey("fast")); got != "b" {
		t.Errorf("the ACK after the BYE went to %q, want b (a released call lingers)", got)
	}
	d.RecordCallLoad(1, callHash("fast"), &set.Dests[1]) // a new INVITE after a 401
	if got := loadsOf(l, "a", "b", "c"); got[1] != 1 {
		t.Errorf("loads %v after a new INVITE of the released call, want b 1", got)
	}
	if st := l.Stats(); st.Live != 1 || st.Underflows != 0 {
		t.Errorf("stats %+v, want 1 live call, no underflow", st)
	}
}
