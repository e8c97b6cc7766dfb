package dispatch

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
)

// lat13 is a destination's statistics as alg 13 reads them.
type lat13 struct{ est, avg float32 }

// latencySet builds a dispatcher over entries of set 1 (host i gets URI
// sip:10.0.0.i) and stores the given statistics, keyed by URI.
func latencySet(t *testing.T, opt Options, entries []Entry, stats map[string]lat13) *Dispatcher {
	t.Helper()
	opt.LatencyStats = true
	d := New(mustBuild(t, opt, entries))
	d.lat.mu.Lock()
	defer d.lat.mu.Unlock()
	d.lat.stats = map[latencyKey]*LatencyStats{}
	for uri, s := range stats {
		d.lat.stats[keyOf(1, uri)] = &LatencyStats{Est: s.est, Avg: s.avg, Count: 20}
	}
	return d
}

// dest is a set 1 entry with a priority, flags and attributes.
func dest(host, prio int, flags Flags, attrs string) Entry {
	return Entry{SetID: 1, URI: fmt.Sprintf("sip:10.0.0.%d", host), Priority: prio, Flags: flags, Attrs: attrs,
		Source: fmt.Sprintf("dispatcher.list:%d", host)}
}

// picks runs n alg 13 selects and returns the hosts picked (last octet).
func picks(t *testing.T, d *Dispatcher, n int) (got []string, lists [][]string) {
	t.Helper()
	for range n {
		sel, err := d.Select(1, AlgLatency, Key{}, 0)
		if err != nil {
			t.Fatalf("select: %v", err)
		}
		got = append(got, sel.Dests[0].URI)
		lists = append(lists, selURIs(sel))
	}
	return got, lists
}

func u(hosts ...int) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = fmt.Sprintf("sip:10.0.0.%d", h)
	}
	return out
}

// The expectations are computed by hand from ds_manage_route_algo13
// (kamailio-behaviour §2.7): rprio = prio − lat/prio when lat > prio > 0,
// at least 1; down = −1; visit from the counter, stable sort descending,
// pick the first, counter = pick+1. Entries of equal priority sit in
// reverse file order: with hosts 1, 2, 3 of priority 30, index 0 is host 3.
func TestAlgLatency(t *testing.T) {
	three := []Entry{dest(1, 30, 0, ""), dest(2, 30, 0, ""), dest(3, 30, 0, "")} // index 0,1,2 = host 3,2,1
	tests := []struct {
		name    string
		entries []Entry
		stats   map[string]lat13
		want    []string   // picks of successive selects
		lists   [][]string // failover lists of the first selects (optional)
	}{
		{
			// No statistics yet: EST 0, no handicap, every rank 30: the
			// stable sort keeps the visit order, so the counter rotates.
			name: "no stats is round robin", entries: three,
			want:  u(3, 2, 1, 3),
			lists: [][]string{u(3, 2, 1), u(2, 1, 3), u(1, 3, 2)},
		},
		{
			// host 3 EST 250: 250/30 = 8, rank 22; host 2 EST 10 ≤ 30:
			// rank 30; host 1 EST 59: 59/30 = 1, rank 29. Visit 3,2,1 →
			// 22,30,29 → sorted 2,1,3: pick host 2, counter 2; visit
			// 1,3,2 → 29,22,30 → 2,1,3 again.
			name: "the fastest wins", entries: three,
			stats: map[string]lat13{"sip:10.0.0.3": {est: 250}, "sip:10.0.0.2": {est: 10}, "sip:10.0.0.1": {est: 59}},
			want:  u(2, 2, 2),
			lists: [][]string{u(2, 1, 3), u(2, 1, 3)},
		},
		{
			// Kamailio PR #2493's example: two fast gateways rank 30, the
			// slow one 30 − 250/30 = 22: round robin over the fast two,
			// the slow one kept for failover. Visit 3,2,1 → 30,22,30 →
			// 3,1,2 (pick 3, counter 1); visit 2,1,3 → 22,30,30 → 1,3,2
			// (pick 1, counter 0); then 3 again.
			name: "round robin over the fast ones", entries: three,
			stats: map[string]lat13{"sip:10.0.0.3": {est: 10}, "sip:10.0.0.2": {est: 250}, "sip:10.0.0.1": {est: 0}},
			want:  u(3, 1, 3),
			lists: [][]string{u(3, 1, 2), u(1, 3, 2)},
		},
		{
			// EST is truncated toward zero as Kamailio's int conversion:
			// 89.9 → 89, 89/30 = 2, rank 28 (rounding would give 90/30 =
			// 3, rank 27, below host 2's 88/30 = 2, rank 28, and the
			// stable sort would then keep host 2 first). Host 3 EST 200
			// ranks 24.
			name: "latency truncated", entries: three,
			stats: map[string]lat13{"sip:10.0.0.3": {est: 200}, "sip:10.0.0.2": {est: 88}, "sip:10.0.0.1": {est: 89.9}},
			want:  u(2, 1, 2),
			lists: [][]string{u(2, 1, 3), u(1, 2, 3)},
		},
		{
			// The rank never drops below 1: priority 2 with EST 100 is
			// 2 − 50 → 1, equal to host 1's priority 1 (no stats): the
			// two take turns. Index 0 is host 2 (higher priority).
			name: "rank at least 1", entries: []Entry{dest(1, 1, 0, ""), dest(2, 2, 0, "")},
			stats: map[string]lat13{"sip:10.0.0.2": {est: 100}},
			want:  u(2, 1, 2),
		},
		{
			// Priority 0 takes no handicap whatever the latency.
			name: "priority 0 ignores latency", entries: []Entry{dest(1, 0, 0, ""), dest(2, 0, 0, "")},
			stats: map[string]lat13{"sip:10.0.0.2": {est: 5000}},
			want:  u(2, 1, 2),
		},
		{
			// cc=1 ranks by congestion EST − AVG: host 2 has EST 250 but
			// AVG 240, congestion 10 ≤ 30, rank 30; host 1 (no cc) EST 40
			// ranks 30 − 1 = 29. Host 2 wins although it is slower.
			name: "cc ranks by congestion", entries: []Entry{dest(1, 30, 0, ""), dest(2, 30, 0, "cc=1")},
			stats: map[string]lat13{"sip:10.0.0.2": {est: 250, avg: 240}, "sip:10.0.0.1": {est: 40, avg: 40}},
			want:  u(2, 2, 2),
		},
		{
			// The same without cc: host 2 ranks 30 − 250/30 = 22.
			name: "without cc the estimate counts", entries: []Entry{dest(1, 30, 0, ""), dest(2, 30, 0, "")},
			stats: map[string]lat13{"sip:10.0.0.2": {est: 250, avg: 240}, "sip:10.0.0.1": {est: 40, avg: 40}},
			want:  u(1, 1, 1),
		},
		{
			// A congestion below zero (EST under AVG: the latency is
			// falling) takes no handicap; host 2's 310−250 = 60 does:
			// 60/30 = 2, rank 28.
			name: "cc congestion below zero", entries: []Entry{dest(1, 30, 0, "cc=1"), dest(2, 30, 0, "cc=1")},
			stats: map[string]lat13{"sip:10.0.0.1": {est: 100, avg: 150}, "sip:10.0.0.2": {est: 310, avg: 250}},
			want:  u(1, 1, 1),
		},
		{
			// Kamailio PR #2964: host 1 has the top priority but is
			// inactive. It ranks −1 and is never picked nor listed,
			// whatever the counter; the other two take turns.
			name:    "inactive top priority never picked",
			entries: []Entry{dest(1, 50, FlagInactive|FlagProbing, ""), dest(2, 10, 0, ""), dest(3, 10, 0, "")},
			want:    u(3, 2, 3, 2),
			lists:   [][]string{u(3, 2), u(2, 3), u(3, 2)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := latencySet(t, Options{}, tc.entries, tc.stats)
			got, lists := picks(t, d, len(tc.want))
			if !slices.Equal(got, tc.want) {
				t.Errorf("picks %v, want %v", got, tc.want)
			}
			for i, l := range tc.lists {
				if !slices.Equal(lists[i], l) {
					t.Errorf("select %d: list %v, want %v", i, lists[i], l)
				}
			}
		})
	}
}

// Every destination down fails; the limit caps the list.
func TestAlgLatencyDownAndLimit(t *testing.T) {
	d := latencySet(t, Options{}, []Entry{dest(1, 1, FlagInactive, ""), dest(2, 1, FlagDisabled, "")}, nil)
	if _, err := d.Select(1, AlgLatency, Key{}, 0); !errors.Is(err, ErrNoDestination) {
		t.Fatalf("all down: err %v, want ErrNoDestination", err)
	}
	d = latencySet(t, Options{}, []Entry{dest(1, 1, 0, ""), dest(2, 1, 0, ""), dest(3, 1, 0, "")}, nil)
	sel, err := d.Select(1, AlgLatency, Key{}, 2)
	if err != nil || !slices.Equal(selURIs(sel), u(3, 2)) {
		t.Fatalf("limit 2: %v %v, want %v", selURIs(sel), err, u(3, 2))
	}
}

// With use_default the last entry (host 1: equal priorities, reverse file
// order) is not ranked: it comes last in the list while up, and is the
// pick when every other destination is down.
func TestAlgLatencyDefault(t *testing.T) {
	entries := []Entry{dest(1, 30, 0, ""), dest(2, 30, 0, ""), dest(3, 30, 0, "")}
	d := latencySet(t, Options{UseDefault: true}, entries, map[string]lat13{"sip:10.0.0.3": {est: 300}})
	got, lists := picks(t, d, 2)
	if !slices.Equal(got, u(2, 2)) || !slices.Equal(lists[0], u(2, 3, 1)) {
		t.Fatalf("picks %v lists %v, want host 2 then list %v", got, lists, u(2, 3, 1))
	}
	for _, h := range []string{"sip:10.0.0.2", "sip:10.0.0.3"} {
		if err := d.SetState(1, h, "i"); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = picks(t, d, 1)
	if !slices.Equal(got, u(1)) {
		t.Fatalf("others down: picked %v, want the default %v", got, u(1))
	}
}

// Latency measured by probes reaches the ranking: a destination whose
// probes get slow moves behind the others.
func TestAlgLatencyFromProbes(t *testing.T) {
	d := latencySet(t, Options{LatencyAlpha: DefaultLatencyAlpha},
		[]Entry{dest(1, 10, FlagProbing, ""), dest(2, 10, FlagProbing, "")}, nil)
	for range 3 {
		d.ProbeLatency(1, "sip:10.0.0.1", 200, 5e6)   // 5 ms
		d.ProbeLatency(1, "sip:10.0.0.2", 200, 200e6) // 200 ms: 200/10 = 20, rank 1
	}
	got, _ := picks(t, d, 3)
	if !slices.Equal(got, u(1, 1, 1)) {
		t.Fatalf("picks %v, want host 1 (fast) every time", got)
	}
	// Host 1 turns slow, host 2 fast: the rankings cached by the selects
	// above are stale. Host 2's EST falls to about 5 ms (the EWMA from the
	// 10th sample), rank 10; host 1's rises to about 300, rank 1.
	for range 10 {
		d.ProbeLatency(1, "sip:10.0.0.1", 200, 300e6)
		d.ProbeLatency(1, "sip:10.0.0.2", 200, 5e6)
	}
	got, _ = picks(t, d, 3)
	if !slices.Equal(got, u(2, 2, 2)) {
		t.Fatalf("after the swap: picks %v, want host 2 every time", got)
	}
}

// The rankings alg 13 caches stay bounded in a large set: a round of
// selects visits every rotation start, and caching a full list for each
// kept n² destinations (about 340 MB for 1,000 destinations after 1,000
// selects) until the next state change.
func TestAlgLatencyCacheBounded(t *testing.T) {
	const n = 1000
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{SetID: 1, URI: fmt.Sprintf("sip:10.0.%d.%d", i>>8, i&255), Source: "dispatcher.list"}
	}
	d := latencySet(t, Options{}, entries, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := d.Select(1, AlgLatency, Key{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	const bound = 32 << 20 // n lists of n would be ~n²×360 B
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > bound {
		t.Errorf("heap grew by %d MB after %d selects on a set of %d: the cached rankings are not bounded", grew>>20, n, n)
	}
	runtime.KeepAlive(d)
}
