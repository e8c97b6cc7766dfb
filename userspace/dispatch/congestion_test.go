package dispatch

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// ccDispatcher builds set 1 from two probed destinations (host 1, host 2)
// with the given attributes and stores their statistics.
func ccDispatcher(t *testing.T, attrs1, attrs2 string, s1, s2 lat13) *Dispatcher {
	t.Helper()
	d := latencySet(t, Options{LatencyAlpha: DefaultLatencyAlpha},
		[]Entry{dest(1, 0, FlagProbing, attrs1), dest(2, 0, FlagProbing, attrs2)},
		map[string]lat13{"sip:10.0.0.1": s1, "sip:10.0.0.2": s2})
	return d
}

// publishNow publishes the pending congestion-control changes at once, as
// the timer would CongestionPublishDelay after the first of them.
func publishNow(d *Dispatcher) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.publishCongestionLocked()
}

// rweights returns host 1's and host 2's current rweight and their alg 11
// slots in the current snapshot.
func rweights(d *Dispatcher) (rw1, rw2, slots1, slots2 int) {
	set := d.Snapshot().Set(1)
	idx := map[string]int{}
	for i, dst := range set.Dests {
		idx[dst.URI] = i
	}
	i1, i2 := idx["sip:10.0.0.1"], idx["sip:10.0.0.2"]
	for _, s := range set.RWeightTable {
		switch int(s) {
		case i1:
			slots1++
		case i2:
			slots2++
		}
	}
	rw := d.RWeights(set)
	return rw[i1], rw[i2], slots1, slots2
}

// A 408 result counts a timeout and leaves AVG and EST alone, so the
// congestion step runs on the statistics stored by the test. The
// expectations follow ds_update_latency by hand (congestion.go).
func TestCongestionControl(t *testing.T) {
	const both = "cc=1;weight=50;rweight=50"
	tests := []struct {
		name           string
		a1, a2         string
		s1, s2         lat13
		rw1, rw2       int
		slots1, slots2 int // -1: the table is the one built at load
	}{
		{
			// Host 1: congestion 70 − 50 = 20, rweight 50 − 20 = 30;
			// host 2 normal (counted, not changed: 50). Every
			// destination has cc: rebuilt, 30×100/80 = 37 slots and
			// 50×100/80 = 62, the remainder to the last written (host 2
			// or host 1 by index order; 37+62 = 99).
			name: "one congested", a1: both, a2: both,
			s1: lat13{est: 70, avg: 50}, s2: lat13{est: 10, avg: 10},
			rw1: 30, rw2: 50, slots1: 37, slots2: 62,
		},
		{
			// EST 70.9 − 50 truncates to 20, as Kamailio's int does.
			name: "truncated", a1: both, a2: both,
			s1: lat13{est: 70.9, avg: 50}, s2: lat13{est: 10, avg: 10},
			rw1: 30, rw2: 50, slots1: 37, slots2: 62,
		},
		{
			// Both congested (80 and 60 ≥ weight 50), none normal:
			// Σ = 140, rweights (140×16)/80 = 28 and 2240/60 = 37;
			// slots 28×100/65 = 43 and 37×100/65 = 56, +1 remainder.
			name: "all congested", a1: both, a2: both,
			s1: lat13{est: 130, avg: 50}, s2: lat13{est: 110, avg: 50},
			rw1: 28, rw2: 37, slots1: 43, slots2: 56,
		},
		{
			// Host 2 has no cc: host 1's rweight still follows its
			// congestion, but the table is not rebuilt (Kamailio waits
			// for the next up/down change).
			name: "not every destination has cc", a1: both, a2: "weight=50;rweight=50",
			s1: lat13{est: 70, avg: 50}, s2: lat13{est: 10, avg: 10},
			rw1: 30, rw2: 50, slots1: -1, slots2: -1,
		},
		{
			// A falling latency (EST under AVG) is no congestion.
			name: "negative congestion", a1: both, a2: both,
			s1: lat13{est: 40, avg: 50}, s2: lat13{est: 10, avg: 10},
			rw1: 50, rw2: 50, slots1: -1, slots2: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ccDispatcher(t, tc.a1, tc.a2, tc.s1, tc.s2)
			before := d.Snapshot().Set(1).RWeightTable
			d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
			publishNow(d)
			rw1, rw2, n1, n2 := rweights(d)
			if rw1 != tc.rw1 || rw2 != tc.rw2 {
				t.Errorf("rweights %d, %d; want %d, %d", rw1, rw2, tc.rw1, tc.rw2)
			}
			if tc.slots1 < 0 {
				if d.Snapshot().Set(1).RWeightTable != before {
					t.Errorf("alg 11 table rebuilt, want it kept")
				}
				return
			}
			// The remainder slot goes to the last index written.
			if !(n1 == tc.slots1 && n2 == tc.slots2+1) && !(n1 == tc.slots1+1 && n2 == tc.slots2) {
				t.Errorf("slots %d, %d; want %d, %d plus one remainder", n1, n2, tc.slots1, tc.slots2)
			}
		})
	}
}

// slotCounts counts the alg 11 slots of each destination index.
func slotCounts(set *Set) map[int]int {
	n := map[int]int{}
	for _, s := range set.RWeightTable {
		n[int(s)]++
	}
	return n
}

// indexOf returns the index of the destination with that URI.
func indexOf(t *testing.T, set *Set, uri string) int {
	t.Helper()
	for i := range set.Dests {
		if set.Dests[i].URI == uri {
			return i
		}
	}
	t.Fatalf("no %s in set %d", uri, set.ID)
	return -1
}

// waitSwap waits for the next snapshot swap (the publish timer).
func waitSwap(t *testing.T, swapped <-chan *Snapshot) *Snapshot {
	t.Helper()
	select {
	case s := <-swapped:
		return s
	case <-time.After(20 * CongestionPublishDelay):
		t.Fatalf("no swap within %v", 20*CongestionPublishDelay)
		return nil
	}
}

// The alg 11 table follows the cc rweights once the publish timer fires,
// not before; a state change swaps at once and uses the current rweights.
// Slots by hand as in TestCongestionControl.
func TestCongestionTableAfterPublish(t *testing.T) {
	const both = "cc=1;weight=50;rweight=50"
	d := latencySet(t, Options{LatencyAlpha: DefaultLatencyAlpha},
		[]Entry{dest(1, 0, FlagProbing, both), dest(2, 0, FlagProbing, both), dest(3, 0, FlagProbing, both)},
		map[string]lat13{"sip:10.0.0.1": {est: 70, avg: 50}, "sip:10.0.0.2": {est: 10, avg: 10}, "sip:10.0.0.3": {est: 10, avg: 10}})
	swapped := make(chan *Snapshot, 10)
	defer d.Subscribe(func(s *Snapshot) { swapped <- s })()
	set := d.Snapshot().Set(1)
	i1, i2, i3 := indexOf(t, set, "sip:10.0.0.1"), indexOf(t, set, "sip:10.0.0.2"), indexOf(t, set, "sip:10.0.0.3")
	// Loaded: 50 each of 150, 33 slots each, the remainder to index 2.
	if got := slotCounts(set); !maps.Equal(got, map[int]int{0: 33, 1: 33, 2: 34}) {
		t.Fatalf("slots at load %v, want 33, 33, 34", got)
	}

	// Host 1: congestion 20, rweight 30. Nothing is swapped by the result
	// (unless this goroutine stalled past the publish delay, then the
	// timer may have run).
	start := time.Now()
	d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
	if len(swapped) != 0 || d.Snapshot().Set(1) != set {
		if time.Since(start) < CongestionPublishDelay {
			t.Fatalf("the result swapped a snapshot at once")
		}
		t.Skip("stalled past the publish delay: cannot tell")
	}
	if rw := d.RWeights(set); rw[i1] != 30 {
		t.Fatalf("host 1 rweight %d, want 30", rw[i1])
	}
	// Published: 30, 50, 50 of 130 → 23, 38, 38 slots (99), the remainder
	// to index 2 (the last written).
	snap := waitSwap(t, swapped)
	got := slotCounts(snap.Set(1))
	want := map[int]int{i1: 23, i2: 38, i3: 38}
	want[2]++
	if !maps.Equal(got, want) {
		t.Errorf("slots after publish %v, want %v", got, want)
	}
	if rw := snap.Set(1).Dests[i1].Attrs.RWeight; rw != 30 {
		t.Errorf("published rweight of host 1 %d, want 30", rw)
	}

	// Host 1 again, same statistics: the rweight does not change, so
	// nothing is published.
	d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
	time.Sleep(3 * CongestionPublishDelay)
	if len(swapped) != 0 {
		t.Fatalf("published although no rweight changed")
	}

	// Host 3 goes down: swapped at once, table from 30 and 50 of 80:
	// 37 and 62 slots, the remainder to the last written.
	if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil {
		t.Fatal(err)
	}
	snap = waitSwap(t, swapped)
	got = slotCounts(snap.Set(1))
	last := max(i1, i2)
	want = map[int]int{i1: 37, i2: 62}
	want[last]++
	if !maps.Equal(got, want) {
		t.Errorf("slots after host 3 went down %v, want %v", got, want)
	}
}

// In a set where not every destination has cc, the new rweight is used
// at the next up/down change only (Kamailio's ds_update_latency rebuilds
// the table only when cc is on for the whole set;
// ds_reinit_rweight_on_state_change rebuilds it from the current
// rweights).
func TestCongestionNotEveryCC(t *testing.T) {
	const plain = "weight=50;rweight=50"
	d := latencySet(t, Options{LatencyAlpha: DefaultLatencyAlpha},
		[]Entry{dest(1, 0, FlagProbing, "cc=1;"+plain), dest(2, 0, FlagProbing, plain), dest(3, 0, FlagProbing, plain)},
		map[string]lat13{"sip:10.0.0.1": {est: 70, avg: 50}})
	swapped := make(chan *Snapshot, 10)
	defer d.Subscribe(func(s *Snapshot) { swapped <- s })()
	set := d.Snapshot().Set(1)
	i1, i2 := indexOf(t, set, "sip:10.0.0.1"), indexOf(t, set, "sip:10.0.0.2")
	d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
	time.Sleep(3 * CongestionPublishDelay)
	if len(swapped) != 0 {
		t.Fatalf("published a table although not every destination has cc")
	}
	if rw := d.RWeights(set); rw[i1] != 30 {
		t.Fatalf("host 1 rweight %d, want 30", rw[i1])
	}
	// Host 3 goes down: 30 and 50 of 80 → 37 and 62 slots, +1 remainder.
	if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil {
		t.Fatal(err)
	}
	snap := waitSwap(t, swapped)
	got := slotCounts(snap.Set(1))
	want := map[int]int{i1: 37, i2: 62}
	want[max(i1, i2)]++
	if !maps.Equal(got, want) {
		t.Errorf("slots after host 3 went down %v, want %v", got, want)
	}
}

// jitterSet is set 1 of n probed destinations with cc and the given
// weight (rweight 50).
func jitterSet(tb testing.TB, n int, weight int) *Dispatcher {
	tb.Helper()
	es := hosts(n)
	for i := range es {
		es[i].Flags = FlagProbing
		es[i].Attrs = fmt.Sprintf("cc=1;weight=%d;rweight=50", weight)
	}
	return New(mustBuild(tb, Options{LatencyStats: true, LatencyAlpha: DefaultLatencyAlpha}, es))
}

// Results with a jittery RTT change rweights on most results (the old
// per-result swap made about one swap per two results); the swaps are
// bounded by one per CongestionPublishDelay, and the table still follows.
func TestCongestionSwapsCoalesced(t *testing.T) {
	d := jitterSet(t, 3, 50)
	var swaps atomic.Int64
	defer d.Subscribe(func(*Snapshot) { swaps.Add(1) })()
	set := d.Snapshot().Set(1)
	r := rand.New(rand.NewPCG(3, 4))
	const results = 2000
	start := time.Now()
	for i := range results {
		rtt := time.Duration(5+r.IntN(41)) * time.Millisecond
		d.ProbeLatency(1, set.Dests[i%3].IUID, 200, rtt)
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // spread over several publish periods
		}
	}
	time.Sleep(2 * CongestionPublishDelay) // the last publish
	elapsed := time.Since(start)
	bound := int64(elapsed/CongestionPublishDelay) + 1
	got := swaps.Load()
	t.Logf("%d results in %v: %d swaps (bound %d)", results, elapsed, got, bound)
	if got > bound {
		t.Errorf("%d swaps for %d results in %v, want at most %d (one per %v)", got, results, elapsed, bound, CongestionPublishDelay)
	}
	if got == 0 {
		t.Errorf("no swap: the alg 11 table did not follow the rweights")
	}
	// After the last publish the table is the one the current rweights give.
	cur := d.Snapshot().Set(1)
	rw := d.RWeights(cur)
	want, _ := rweightSlots(cur.Dests, func(i int) int { return rw[i] })
	if sortedTable(cur.RWeightTable) != want {
		t.Errorf("table %v does not follow rweights %v", slotCounts(cur), rw)
	}
}

// The incremental state gives, after every result, the rweights the
// per-result scan (ds_update_latency as written) gives: random results,
// 408s, weights that make every destination congested (the second step),
// a destination without weight and URIs listed twice (shared statistics),
// once with and once without cc.
func TestCongestionMatchesScan(t *testing.T) {
	for _, allCC := range []bool{true, false} {
		t.Run(fmt.Sprintf("allCC=%v", allCC), func(t *testing.T) {
			var es []Entry
			for i, w := range []int{3, 5, 0, 8, 2} {
				attrs := fmt.Sprintf("cc=1;weight=%d;rweight=%d", w, 1+i)
				if w == 0 {
					attrs = "cc=1;rweight=7"
				}
				e := dest(i+1, 0, FlagProbing, attrs)
				if !allCC && i == 4 {
					// No cc, and host 1's URI again: its results move
					// host 1's (shared) statistics.
					e = dest(1, 0, FlagProbing, "weight=2;rweight=5")
					e.Source = "dispatcher.list:5"
				}
				es = append(es, e)
			}
			dup := dest(2, 0, FlagProbing, "cc=1;weight=4;rweight=9")
			dup.Source = "dispatcher.list:6"
			es = append(es, dup)
			d := New(mustBuild(t, Options{LatencyStats: true, LatencyAlpha: DefaultLatencyAlpha}, es))
			set := d.Snapshot().Set(1)
			ref := make([]int, len(set.Dests))
			for i := range ref {
				ref[i] = set.Dests[i].Attrs.RWeight
			}
			stat := func(x *Destination) LatencyStats { return d.Latency(1, x.URI) }
			r := rand.New(rand.NewPCG(5, 6))
			steps := 0
			for n := range 5000 {
				i := r.IntN(len(set.Dests))
				code, rtt := 200, time.Duration(1+r.IntN(30))*time.Millisecond
				switch r.IntN(10) {
				case 0:
					code = 408
				case 1, 2:
					rtt *= 10 // a spike: congestion
				}
				d.ProbeLatency(1, set.Dests[i].IUID, code, rtt)
				if set.Dests[i].Attrs.CC != 0 {
					refCongestion(set, ref, i, stat)
				}
				if got := d.RWeights(set); !slices.Equal(got, ref) {
					t.Fatalf("result %d (destination %d): rweights %v, scan gives %v", n, i, got, ref)
				}
				var c ccState
				for j := range set.Dests {
					if dj := &set.Dests[j]; dj.Attrs.CC != 0 && dj.Attrs.Weight > 0 {
						c.add(dj.Attrs.Weight, congestionMs(stat(dj)), 1)
					}
				}
				if c.allCongested() {
					steps++
				}
			}
			if allCC && steps == 0 {
				t.Errorf("the all-congested step never ran: the test does not cover it")
			}
		})
	}
}

// BenchmarkProbeLatencyCC is one measured probe result of a destination
// in a set of 10,000 destinations with cc (no subscriber): "scan" is the
// per-result scan and swap congestion control did before, "incremental"
// the side table. Run both in one go, alternating:
//
//	go test -run '^$' -bench ProbeLatencyCC -count 4 ./userspace/dispatch/
func BenchmarkProbeLatencyCC(b *testing.B) {
	for _, bc := range []struct {
		name  string
		probe func(d *Dispatcher, setID int, addr string, code int, rtt time.Duration)
	}{
		{"scan", (*Dispatcher).probeLatencyScan},
		{"incremental", (*Dispatcher).ProbeLatency},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := jitterSet(b, 10000, 50)
			set := d.Snapshot().Set(1)
			r := rand.New(rand.NewPCG(7, 8))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rtt := time.Duration(5+r.IntN(41)) * time.Millisecond
				bc.probe(d, 1, set.Dests[i%len(set.Dests)].IUID, 200, rtt)
				i++
			}
		})
	}
}

// A reload starts again from the list's rweights (as Kamailio's does);
// the statistics are kept, so the next result of host 1 sets its rweight
// from them again.
func TestCongestionReload(t *testing.T) {
	const both = "cc=1;weight=50;rweight=50"
	entries := []Entry{dest(1, 0, FlagProbing, both), dest(2, 0, FlagProbing, both)}
	d := ccDispatcher(t, both, both, lat13{est: 70, avg: 50}, lat13{est: 10, avg: 10})
	d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
	if rw1, _, _, _ := rweights(d); rw1 != 30 {
		t.Fatalf("host 1 rweight %d, want 30", rw1)
	}
	d.Replace(mustBuild(t, d.Snapshot().Options(), entries))
	if rw1, rw2, _, _ := rweights(d); rw1 != 50 || rw2 != 50 {
		t.Fatalf("after reload rweights %d, %d; want the list's 50, 50", rw1, rw2)
	}
	d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
	publishNow(d)
	if rw1, _, n1, n2 := rweights(d); rw1 != 30 || n1+n2 != WeightSlots || (n1 != 37 && n1 != 38) {
		t.Fatalf("after reload and a result: host 1 rweight %d, slots %d, %d; want 30, 37/38 of 100", rw1, n1, n2)
	}
}
