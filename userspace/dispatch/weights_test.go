package dispatch

import (
	"fmt"
	"slices"
	"testing"
)

// counts tallies table slots per index.
func counts(t [WeightSlots]int16, n int) []int {
	c := make([]int, n)
	for _, v := range t {
		c[v]++
	}
	return c
}

func weighted(ws ...int) []Destination {
	d := make([]Destination, len(ws))
	for i, w := range ws {
		d[i].Attrs.Weight = w
		d[i].Attrs.RWeight = w
	}
	return d
}

func TestWeightTable(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    []int
	}{
		{name: "counts match weights", weights: []int{50, 30, 20}, want: []int{50, 30, 20}},
		{name: "leftover to last", weights: []int{10, 20, 5}, want: []int{10, 20, 70}},
		{name: "overflow truncated", weights: []int{80, 80, 10}, want: []int{80, 20, 0}},
		{name: "first without weight leaves zeros", weights: []int{0, 50, 50}, want: []int{100, 0, 0}},
		{name: "later zero weight gets nothing", weights: []int{60, 0, 30}, want: []int{60, 0, 40}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := weightTable(weighted(tc.weights...), newShuffler(testRand()))
			if got := counts(tab, len(tc.weights)); !slices.Equal(got, tc.want) {
				t.Errorf("slots %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("shuffled", func(t *testing.T) {
		tab := weightTable(weighted(50, 50), newShuffler(testRand()))
		if counts(tab, 2)[0] != 50 || slices.Equal(tab[:50], make([]int16, 50)) {
			t.Errorf("table not shuffled: %v", tab)
		}
	})
}

func TestRWeightTable(t *testing.T) {
	prev := [WeightSlots]int16{}
	prev[0] = 1 // marks "unchanged"
	tests := []struct {
		name    string
		weights []int
		down    []int
		want    []int
		same    bool
	}{
		{name: "1/2/1 gives 25/50/25", weights: []int{1, 2, 1}, want: []int{25, 50, 25}},
		{name: "third down gives 33/67/0", weights: []int{1, 2, 1}, down: []int{2}, want: []int{33, 67, 0}},
		{name: "remainder to last written: 0/66/34", weights: []int{1, 2, 1}, down: []int{0}, want: []int{0, 66, 34}},
		{name: "no rweight counts nothing", weights: []int{0, 1, 0}, want: []int{0, 100, 0}},
		{name: "all down keeps previous", weights: []int{1, 1}, down: []int{0, 1}, same: true},
		{name: "sum zero keeps previous", weights: []int{0, 0}, same: true},
		{name: "single keeps previous", weights: []int{5}, same: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := weighted(tc.weights...)
			for _, i := range tc.down {
				d[i].Flags = FlagInactive
			}
			tab := rweightTable(d, prev, newShuffler(testRand()))
			if tc.same {
				if tab != prev {
					t.Errorf("table changed: %v", tab)
				}
				return
			}
			if got := counts(tab, len(d)); !slices.Equal(got, tc.want) {
				t.Errorf("slots %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRWeightFollowsState checks, through the Dispatcher, that the alg 11
// table is rebuilt when an rweight destination goes down and comes back,
// and that alg 9's table is not.
func TestRWeightFollowsState(t *testing.T) {
	entries := []Entry{
		{SetID: 1, URI: "sip:10.0.0.3", Attrs: "rweight=1;weight=25"},
		{SetID: 1, URI: "sip:10.0.0.2", Attrs: "rweight=2;weight=50"},
		{SetID: 1, URI: "sip:10.0.0.1", Attrs: "rweight=1;weight=25"},
	} // reverse order: index 0 = 10.0.0.1
	d := New(mustBuild(t, Options{}, entries))
	w9 := d.Snapshot().Set(1).WeightTable
	steps := []struct {
		name  string
		state string
		want  []int
	}{
		{name: "initial", want: []int{25, 50, 25}},
		{name: "third down", state: "i", want: []int{33, 67, 0}},
		{name: "third up again", state: "a", want: []int{25, 50, 25}},
		{name: "trying is still up", state: "t", want: []int{25, 50, 25}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.state != "" {
				if err := d.SetState(1, "sip:10.0.0.3", st.state); err != nil {
					t.Fatal(err)
				}
			}
			set := d.Snapshot().Set(1)
			if got := counts(set.RWeightTable, 3); !slices.Equal(got, st.want) {
				t.Errorf("rweight slots %v, want %v", got, st.want)
			}
			if set.WeightTable != w9 {
				t.Error("alg 9 table changed on a state change")
			}
		})
	}
}

func ExampleSet_Walk() {
	s := newSet(1, destsWith(4, 1), Options{}, newShuffler(testRand()))
	fmt.Println(s.NextUp, s.Walk(1), s.Walk(5))
	// Output: [0 2 2 3] 2 2
}
