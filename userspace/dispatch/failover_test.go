package dispatch

import (
	"runtime"
	"slices"
	"testing"
)

func TestFailover(t *testing.T) {
	plain := mustBuild(t, Options{}, hosts(5))
	def := mustBuild(t, Options{UseDefault: true}, hosts(5))
	// hosts are reversed: index i holds sip:10.0.0.(5-i).
	tests := []struct {
		name  string
		snap  *Snapshot
		pick  int
		limit int
		want  []int
	}{
		{name: "pick, higher, then lower", snap: plain, pick: 2, want: []int{2, 3, 4, 0, 1}},
		{name: "pick 0", snap: plain, pick: 0, want: []int{0, 1, 2, 3, 4}},
		{name: "limit caps", snap: plain, pick: 3, limit: 3, want: []int{3, 4, 0}},
		{name: "limit 1", snap: plain, pick: 3, limit: 1, want: []int{3}},
		{name: "limit above n", snap: plain, pick: 1, limit: 9, want: []int{1, 2, 3, 4, 0}},
		{name: "down skipped", snap: downAt(t, plain, 0, 3), pick: 2, want: []int{2, 4, 1}},
		{name: "default last", snap: def, pick: 1, want: []int{1, 2, 3, 0, 4}},
		{name: "default counts toward the limit", snap: def, pick: 1, limit: 4, want: []int{1, 2, 3, 0}},
		{name: "default only with room", snap: def, pick: 3, limit: 2, want: []int{3, 0}},
		{name: "default picked is not repeated", snap: downAt(t, def, 0, 1, 2, 3), pick: 4, want: []int{4}},
		{name: "down default skipped", snap: downAt(t, def, 4), pick: 0, want: []int{0, 1, 2, 3}},
		{name: "bad pick", snap: plain, pick: 7, want: []int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := []int{}
			for _, d := range tc.snap.Set(1).Failover(tc.pick, tc.limit) {
				got = append(got, d.Index)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("order %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSelectFailoverList(t *testing.T) {
	s := downAt(t, mustBuild(t, Options{UseDefault: true}, hosts(4)), 1)
	sel, err := s.Select(1, AlgPriority, Key{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sip:10.0.0.4", "sip:10.0.0.2", "sip:10.0.0.1"}
	if sel.SetID != 1 || !slices.Equal(selURIs(sel), want) {
		t.Errorf("selection %d %v, want %v", sel.SetID, selURIs(sel), want)
	}
}

// The failover lists Select caches stay bounded in a large set: round
// robin (like a Call-ID hash over many calls) picks every index in turn,
// and caching a full list per pick kept n² destinations (about 340 MB for
// 1,000 destinations after 1,000 selects) for the life of the snapshot.
func TestFailoverCacheBounded(t *testing.T) {
	const n = 1000
	d := New(mustBuild(t, Options{}, hosts(n)))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		sel, err := d.Select(1, AlgRoundRobin, Key{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(sel.Dests) != n || sel.Dests[0].Index != i {
			t.Fatalf("select %d: %d destinations starting at %d, want %d starting at %d", i, len(sel.Dests), sel.Dests[0].Index, n, i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	const bound = 32 << 20 // n lists of n would be ~n²×360 B
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > bound {
		t.Errorf("heap grew by %d MB after %d selects on a set of %d: the cached failover lists are not bounded", grew>>20, n, n)
	}
	runtime.KeepAlive(d)
}
