package dispatch

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestParseHashFallback(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want HashFallback
		err  bool
	}{
		{in: "", want: FallbackNext},
		{in: "next", want: FallbackNext},
		{in: " Spread ", want: FallbackSpread},
		{in: "even", err: true},
	} {
		got, err := ParseHashFallback(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseHashFallback(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		if !tc.err && got.String() != strings.ToLower(strings.TrimSpace(tc.in)) && tc.in != "" {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

// TestSpreadMixVectors pins SpreadMix (murmur3's fmix32; the vectors were
// computed apart from this code): bpf/pick.h computes the same function,
// and the differential test holds the two paths to the same picks.
func TestSpreadMixVectors(t *testing.T) {
	for _, tc := range []struct{ in, want uint32 }{
		{0, 0},
		{1, 0x514e28b7},
		{7167810, 0xfcc62e29},    // Hash("abc")
		{2175018094, 0x7adbe77c}, // Hash("a84b4c76e66710@pc33.atlanta.com")
	} {
		if got := SpreadMix(tc.in); got != tc.want {
			t.Errorf("SpreadMix(%d) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

// TestSpreadScoreVectors pins SpreadScore's seeds (computed apart from
// this code): bpf/pick.h scores with the same seeds, and a change of seed
// moves re-placed calls at the upgrade.
func TestSpreadScoreVectors(t *testing.T) {
	for _, tc := range []struct {
		h    uint32
		j    int
		want uint32
	}{
		{0, 0, 0x92ca2f0e},
		{0, 63, 0xf8262992},
		{2175018094, 1, 0x3490d4c6}, // Hash("a84b4c76e66710@pc33.atlanta.com")
		{2175018094, 5, 0xe3fd1f7e},
	} {
		if got := SpreadScore(tc.h, tc.j); got != tc.want {
			t.Errorf("SpreadScore(%d, %d) = %#x, want %#x", tc.h, tc.j, got, tc.want)
		}
	}
}

// spreadSnap builds set 1 of n destinations with the listed indices down
// (inactive), with fallback fb.
func spreadSnap(t testing.TB, n int, fb HashFallback, useDefault bool, down ...int) *Snapshot {
	t.Helper()
	e := hosts(n)
	for _, i := range down {
		// hosts(n) lists 10.0.0.1 first; the set reverses the input
		// order (equal priorities), so index i is entry n-1-i.
		e[n-1-i].Flags = FlagInactive
	}
	s := mustBuild(t, Options{HashFallback: fb, UseDefault: useDefault}, e)
	for _, i := range down {
		if s.Set(1).Dests[i].Up() {
			t.Fatalf("index %d should be down", i)
		}
	}
	return s
}

// TestWalkHashProperties checks, for every start value of random sets (up
// to 16 destinations, random down subsets, with and without use_default),
// what the option promises:
//   - next is exactly Walk (Kamailio's 2.2 walk);
//   - spread keeps every call whose start index is up on that index;
//   - spread sends the others to the up start index with the highest
//     SpreadScore (the lowest index on a tie), found here by scoring every
//     start index whose destination is up, not from Set.Live; never the
//     use_default default while a start index is up;
//   - the pick is a pure function of the hash and the set of up
//     destinations: the same set reached another way (built with the
//     destinations down, or built up and then marked down one by one in
//     another order, disabled instead of inactive) picks the same.
func TestWalkHashProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 300; iter++ {
		n := 1 + r.IntN(16)
		useDefault := r.IntN(2) == 0
		var down []int
		for i := 0; i < n; i++ {
			if r.IntN(3) == 0 {
				down = append(down, i)
			}
		}
		next := spreadSnap(t, n, FallbackNext, useDefault, down...).Set(1)
		spread := spreadSnap(t, n, FallbackSpread, useDefault, down...).Set(1)
		// The same up set, reached by state changes in reverse order with
		// "disabled" instead of "inactive".
		d := New(spreadSnap(t, n, FallbackSpread, useDefault))
		for k := len(down) - 1; k >= 0; k-- {
			if err := d.SetState(1, d.Snapshot().Set(1).Dests[down[k]].IUID, "d"); err != nil {
				t.Fatal(err)
			}
		}
		again := d.Snapshot().Set(1)
		name := fmt.Sprintf("n=%d use_default=%v down=%v", n, useDefault, down)
		for k := 0; k < 2000; k++ {
			h := r.Uint32()
			if k < 64 {
				h = uint32(k) // every start index of small sets
			}
			w := next.Walk(h)
			if got := next.WalkHash(h); got != w {
				t.Fatalf("%s: next mode WalkHash(%d) = %d, Walk = %d", name, h, got, w)
			}
			got := spread.WalkHash(h)
			if again := again.WalkHash(h); again != got {
				t.Fatalf("%s: h=%d picks %d, the same up set reached by state changes picks %d", name, h, got, again)
			}
			start := int(h % uint32(spread.HashMod))
			switch {
			case spread.Dests[start].Up():
				if got != start {
					t.Fatalf("%s: h=%d: start index %d is up, spread moved the call to %d", name, h, start, got)
				}
			case len(spread.Live) == 0:
				if got != w {
					t.Fatalf("%s: h=%d: nothing up among the start indices: got %d, want the walk's %d", name, h, got, w)
				}
			default:
				if !slices.Contains(spread.Live, int16(got)) || !spread.Dests[got].Up() {
					t.Fatalf("%s: h=%d: spread picked %d, not an up start index (live %v)", name, h, got, spread.Live)
				}
				want, top := -1, uint32(0)
				for j := 0; j < spread.HashMod; j++ {
					if sc := SpreadScore(h, j); spread.Dests[j].Up() && (want < 0 || sc > top) {
						want, top = j, sc
					}
				}
				if got != want {
					t.Fatalf("%s: h=%d: spread picked %d, the top score among the up start indices is %d's", name, h, got, want)
				}
			}
		}
	}
}

// TestSelectSpreadAlgorithms: the option changes the hash algorithms (and
// random) and leaves the others on Kamailio's walk.
func TestSelectSpreadAlgorithms(t *testing.T) {
	const n = 6
	spread := spreadSnap(t, n, FallbackSpread, false, 2)
	next := spreadSnap(t, n, FallbackNext, false, 2)
	// A Call-ID, a URI and a username whose start index is 2 (down) and
	// that spread sends elsewhere than the neighbour 3.
	find := func(what string, hash func(i int) uint32) int {
		for i := 0; i < 10000; i++ {
			if h := hash(i); h%n == 2 && spread.Set(1).WalkHash(h) != 3 {
				return i
			}
		}
		t.Fatalf("no %s that spread sends away from the neighbour in 10000 tries", what)
		return 0
	}
	cid := fmt.Sprintf("spread-%d@example.com", find("Call-ID", func(i int) uint32 {
		return Hash(fmt.Sprintf("spread-%d@example.com", i), "")
	}))
	u := URIKey{Host: "example.com"}
	u.User = fmt.Sprintf("u%d", find("URI", func(i int) uint32 {
		k1, k2 := URIHashKeys(URIKey{User: fmt.Sprintf("u%d", i), Host: "example.com"}, false)
		return Hash(k1, k2)
	}))
	user := fmt.Sprintf("v%d", find("username", func(i int) uint32 { return Hash(fmt.Sprintf("v%d", i), "") }))
	key := Key{CallID: cid, PVar: cid, From: u, To: u, RURI: u, AuthUser: user}
	for _, alg := range []Alg{AlgCallID, AlgFromURI, AlgToURI, AlgRURI, AlgAuthUser, AlgPVar} {
		got, err := pickIdx(spread, alg, key)
		if err != nil || got == 3 || got == 2 {
			t.Errorf("alg %d spread: picked %d (%v), want an up destination other than the neighbour 3", alg, got, err)
		}
		if got, err := pickIdx(next, alg, key); err != nil || got != 3 {
			t.Errorf("alg %d next: picked %d (%v), want the neighbour 3", alg, got, err)
		}
	}
	// Round robin from index 2 (down) walks to 3 in both modes.
	for _, s := range []*Snapshot{spread, next} {
		s.Set(1).ctr.last.Store(2)
		if got, _ := pickIdx(s, AlgRoundRobin, Key{}); got != 3 {
			t.Errorf("alg 4 (%v): picked %d, want 3 (round robin keeps the walk)", s.Set(1).Fallback, got)
		}
	}
	// Alg 8 with index 0 down takes index 1 in both modes.
	for _, fb := range []HashFallback{FallbackNext, FallbackSpread} {
		s := spreadSnap(t, n, fb, false, 0)
		if got, _ := pickIdx(s, AlgPriority, Key{}); got != 1 {
			t.Errorf("alg 8 (%v): picked %d, want 1", fb, got)
		}
	}
	// Random spreads too: over many picks with index 2 down, index 3 gets
	// about a fifth, not two sixths.
	counts := make([]int, n)
	for i := 0; i < 6000; i++ {
		got, err := pickIdx(spread, AlgRandom, Key{})
		if err != nil {
			t.Fatal(err)
		}
		counts[got]++
	}
	if counts[2] != 0 || counts[3] > 1500 {
		t.Errorf("alg 6 spread: counts %v, want index 2 empty and index 3 near 1200", counts)
	}
}

// Fixed synthetic Call-IDs for the share figures: two shapes UAs produce,
// from a seeded source so every run counts the same calls.
//   - "sipp": SIPp's default [call_number]-[pid]@[local_ip], the shape of
//     the traffic in kamailio#2361;
//   - "random": 16 random hex digits @ a host, as most phones send.
func shareCallIDs(shape string, count int) []string {
	r := rand.New(rand.NewPCG(2361, uint64(len(shape))))
	out := make([]string, count)
	pid := 4000 + r.IntN(60000)
	for i := range out {
		switch shape {
		case "sipp":
			out[i] = fmt.Sprintf("%d-%d@192.0.2.%d", i+1, pid, 1+i/1000)
		default:
			out[i] = fmt.Sprintf("%016x@pc%d.example.com", r.Uint64(), r.IntN(100))
		}
	}
	return out
}

// shareCalls is how many Call-IDs a share figure counts for a set of n:
// at least 6,000 (kamailio#2361), and 1,000 per destination, so that the
// spread of a fair coin (about 1/sqrt(calls per destination)) stays well
// under the 10 % the goal allows.
func shareCalls(n int) int { return max(6000, 1000*n) }

// shareFigure is max/mean of the calls per up destination of set 1 of
// snap, over callIDs picked with alg 0.
func shareFigure(t testing.TB, snap *Snapshot, callIDs []string) (ratio float64, counts []int) {
	t.Helper()
	set := snap.Set(1)
	counts = make([]int, len(set.Dests))
	for _, cid := range callIDs {
		got, err := pickIdx(snap, AlgCallID, Key{CallID: cid})
		if err != nil {
			t.Fatal(err)
		}
		counts[got]++
	}
	total, up, most := 0, 0, 0
	for i, c := range counts {
		if !set.Dests[i].Up() {
			if c != 0 {
				t.Fatalf("down index %d got %d calls", i, c)
			}
			continue
		}
		up++
		total += c
		most = max(most, c)
	}
	return float64(most) * float64(up) / float64(total), counts
}

// spreadGoal is issue 8's goal for the option: max/mean ≤ 1.10 with one
// destination down.
const spreadGoal = 1.10

// TestHashFallbackShare computes the share figures of docs/fastpath.md
// ("A down destination's share"): for every set size 2..16, with each
// destination down in turn (the worst one reported), max/mean of the calls
// per up destination over fixed synthetic Call-IDs (alg 0), for next and
// spread, and with nothing down. It fails
//   - when next is not Kamailio's walk: the neighbour must take exactly its
//     own calls and the down destination's;
//   - when spread moves a call whose start index is up;
//   - when spread's max/mean exceeds the goal (1.10), or, where Kamailio's
//     hash alone already misses it with nothing down (SIPp's sequential
//     Call-IDs modulo 7 and 14), when spread adds more than 0.02 to that.
//
// Deterministic: fixed Call-IDs, no timing.
//
//	go test -count=1 -run TestHashFallbackShare -v ./userspace/dispatch/
func TestHashFallbackShare(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-6s %3s %6s  %-12s %-14s %s", "shape", "N", "calls", "none down", "next (down)", "spread (down)")
	for _, shape := range []string{"sipp", "random"} {
		for n := 2; n <= 16; n++ {
			cids := shareCallIDs(shape, shareCalls(n))
			base, cb := shareFigure(t, spreadSnap(t, n, FallbackSpread, false), cids)
			worstNext, worstSpread := 0.0, 0.0
			nextAt, spreadAt := 0, 0
			for d := 0; d < n; d++ {
				rn, cn := shareFigure(t, spreadSnap(t, n, FallbackNext, false, d), cids)
				rs, cs := shareFigure(t, spreadSnap(t, n, FallbackSpread, false, d), cids)
				if rn > worstNext {
					worstNext, nextAt = rn, d
				}
				if rs > worstSpread {
					worstSpread, spreadAt = rs, d
				}
				if n == 6 && shape == "sipp" && d == 0 {
					t.Logf("N=6, index 0 down, %d SIPp Call-IDs, calls per index: none down %v, next %v, spread %v", len(cids), cb, cn, cs)
				}
				for i := 0; i < n; i++ {
					switch nb := (d + 1) % n; {
					case i == nb && n > 1 && cn[i] != cb[i]+cb[d]:
						t.Errorf("%s N=%d down %d: next gives the neighbour %d %d calls, want its %d and the down one's %d", shape, n, d, nb, cn[i], cb[i], cb[d])
					case i != nb && i != d && cn[i] != cb[i]:
						t.Errorf("%s N=%d down %d: next gives %d %d calls, want its own %d", shape, n, d, i, cn[i], cb[i])
					}
					if i != d && cs[i] < cb[i] {
						t.Errorf("%s N=%d down %d: spread gives %d %d calls, fewer than its own %d", shape, n, d, i, cs[i], cb[i])
					}
				}
			}
			if limit := max(spreadGoal, base+0.02); worstSpread > limit {
				t.Errorf("%s N=%d: spread max/mean %.3f (index %d down) over %d calls, want ≤ %.3f (none down: %.3f)", shape, n, worstSpread, spreadAt, len(cids), limit, base)
			}
			fmt.Fprintf(&b, "\n%-6s %3d %6d  %5.3f        %5.3f (%2d)    %5.3f (%2d)", shape, n, len(cids), base, worstNext, nextAt, worstSpread, spreadAt)
		}
	}
	t.Log(b.String())
}

// TestSpreadEvenWhenCorrelated: the scores must not follow from the start
// index h mod m. With 6 destinations and 3 up, h mod 3 is fixed by h mod 6,
// so a pick by h mod 3 would send each down destination's calls to one up
// destination; the calls of each down destination must spread evenly over
// the 3 up ones, for every choice of the 3 down (20 sets).
func TestSpreadEvenWhenCorrelated(t *testing.T) {
	const n = 6
	cids := shareCallIDs("random", 36000)
	worst := 0.0
	for mask := 0; mask < 1<<n; mask++ {
		var down []int
		for i := 0; i < n; i++ {
			if mask&(1<<i) != 0 {
				down = append(down, i)
			}
		}
		if len(down) != 3 {
			continue
		}
		snap := spreadSnap(t, n, FallbackSpread, false, down...)
		set := snap.Set(1)
		// per[d][u]: calls whose start index is down destination d that
		// went to up destination u.
		per := map[int]map[int]int{}
		for _, cid := range cids {
			h := Hash(cid, "")
			start := int(h % n)
			if set.Dests[start].Up() {
				continue
			}
			if per[start] == nil {
				per[start] = map[int]int{}
			}
			per[start][set.WalkHash(h)]++
		}
		for d, to := range per {
			if len(to) != 3 {
				t.Errorf("down %v: down index %d's calls went to %v, want all 3 up destinations", down, d, to)
				continue
			}
			total, most := 0, 0
			for _, c := range to {
				total += c
				most = max(most, c)
			}
			r := float64(most) * 3 / float64(total)
			if r > spreadGoal {
				t.Errorf("down %v: down index %d's %d calls went %v (max/mean %.3f > %.2f)", down, d, total, to, r, spreadGoal)
			}
			worst = max(worst, r)
		}
	}
	t.Logf("6 destinations, 3 down, all 20 choices, %d Call-IDs: a down destination's calls over the 3 up ones, worst max/mean %.3f", len(cids), worst)
}

// TestSpreadKeepsLivePicks is item 5's promise under spread: calls in
// progress keep their destination while it is up. The fast path keeps no
// state, so a CANCEL or ACK is picked again from the hash and the current
// up set; that pick must not change when another destination goes down.
// With destination a down, then b down too (b ≠ a), every call whose pick
// under the first state is still up must pick it again: the calls of a
// re-placed by the fallback included, not only those whose start index is
// up. Over several set sizes, every (a, b) and many hashes: 0 may move.
func TestSpreadKeepsLivePicks(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	hashes := make([]uint32, 4000)
	for i := range hashes {
		hashes[i] = r.Uint32()
	}
	for _, n := range []int{3, 4, 6, 7, 10, 16, 64} {
		checked, replaced, moved := 0, 0, 0
		for a := 0; a < n; a++ {
			first := spreadSnap(t, n, FallbackSpread, false, a).Set(1)
			for b := 0; b < n; b++ {
				if b == a {
					continue
				}
				second := spreadSnap(t, n, FallbackSpread, false, a, b).Set(1)
				for _, h := range hashes {
					was := first.WalkHash(h)
					if was == b {
						continue // its destination went down: it must move
					}
					checked++
					if was != int(h%uint32(n)) {
						replaced++ // its start index is down: the fallback placed it
					}
					if now := second.WalkHash(h); now != was {
						moved++
						if moved <= 3 {
							t.Errorf("N=%d a=%d down, then b=%d: h=%d moved from %d (still up) to %d", n, a, b, h, was, now)
						}
					}
				}
			}
		}
		if moved > 0 {
			t.Errorf("N=%d: %d of %d calls on a destination still up (%d of them re-placed by the fallback) moved when another went down", n, moved, checked, replaced)
		}
		t.Logf("N=%d: %d calls on a destination still up, %d of them re-placed by the fallback; %d moved", n, checked, replaced, moved)
	}
}
