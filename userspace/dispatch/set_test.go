package dispatch

import (
	"slices"
	"testing"
)

// destsWith returns n destinations, those listed in down marked inactive.
func destsWith(n int, down ...int) []Destination {
	d := make([]Destination, n)
	for _, i := range down {
		d[i].Flags = FlagInactive
	}
	return d
}

func TestComputeNextUp(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		down       []int
		useDefault bool
		want       []int16
	}{
		{name: "all up", n: 4, want: []int16{0, 1, 2, 3}},
		{name: "one down walks forward", n: 4, down: []int{1}, want: []int16{0, 2, 2, 3}},
		{name: "wraps around", n: 4, down: []int{2, 3}, want: []int16{0, 1, 0, 0}},
		{name: "only last up", n: 3, down: []int{0, 1}, want: []int16{2, 2, 2}},
		{name: "all down", n: 3, down: []int{0, 1, 2}, want: []int16{-1, -1, -1}},
		{name: "single", n: 1, want: []int16{0}},
		{name: "single down", n: 1, down: []int{0}, want: []int16{-1}},
		{name: "default excluded from the walk", n: 4, useDefault: true, down: []int{2}, want: []int16{0, 1, 0}},
		{name: "default when others down", n: 3, useDefault: true, down: []int{0, 1}, want: []int16{2, 2}},
		{name: "default down too", n: 3, useDefault: true, down: []int{0, 1, 2}, want: []int16{-1, -1}},
		{name: "default single is plain", n: 1, useDefault: true, want: []int16{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dests := destsWith(tc.n, tc.down...)
			m := hashMod(tc.n, tc.useDefault)
			def := -1
			if tc.useDefault && tc.n > 1 {
				def = tc.n - 1
			}
			if got := computeNextUp(dests, m, def); !slices.Equal(got, tc.want) {
				t.Errorf("NextUp %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNextUpMatchesWalk compares the table with a literal step-by-step
// walk (§2.2) for every up/down pattern of up to 6 destinations.
func TestNextUpMatchesWalk(t *testing.T) {
	walk := func(dests []Destination, useDefault bool, start int) int {
		n := len(dests)
		m := hashMod(n, useDefault)
		i := start % m
		for !dests[i].Up() {
			i = (i + 1) % m
			if i == start%m {
				if useDefault && dests[n-1].Up() {
					return n - 1
				}
				return -1
			}
		}
		return i
	}
	for _, useDefault := range []bool{false, true} {
		for n := 1; n <= 6; n++ {
			for mask := 0; mask < 1<<n; mask++ {
				dests := make([]Destination, n)
				for i := range dests {
					if mask&(1<<i) != 0 {
						dests[i].Flags = FlagDisabled
					}
				}
				set := newSet(1, dests, Options{UseDefault: useDefault}, newShuffler(testRand()))
				for h := 0; h < 2*n; h++ {
					if got, want := set.Walk(uint32(h)), walk(dests, useDefault, h); got != want {
						t.Fatalf("default=%v n=%d mask=%b h=%d: table %d, walk %d", useDefault, n, mask, h, got, want)
					}
				}
			}
		}
	}
}

func TestSetWalkAndEqualPriority(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "walk on empty set is -1", ok: (&Set{}).Walk(5) == -1},
		{name: "equal positive priorities", ok: equalPriority([]Destination{{Priority: 2}, {Priority: 2}})},
		{name: "equal zero priorities", ok: !equalPriority([]Destination{{}, {}})},
		{name: "different priorities", ok: !equalPriority([]Destination{{Priority: 2}, {Priority: 1}})},
		{name: "no destinations", ok: !equalPriority(nil)},
		{name: "trying is up", ok: (&Destination{Flags: FlagTrying}).Up()},
		{name: "disabled is down", ok: !(&Destination{Flags: FlagDisabled}).Up()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fail()
			}
		})
	}
}
