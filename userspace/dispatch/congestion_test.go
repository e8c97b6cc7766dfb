package dispatch

import (
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

// rweights returns host 1's and host 2's rweight and their alg 11 slots.
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
	return set.Dests[i1].Attrs.RWeight, set.Dests[i2].Attrs.RWeight, slots1, slots2
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
