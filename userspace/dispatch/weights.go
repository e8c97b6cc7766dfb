package dispatch

import (
	"math/rand/v2"
	"sync"
)

// shuffler shuffles pick tables with one random source, under a lock: the
// source is shared by a snapshot and everything derived from it.
type shuffler struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newShuffler(r *rand.Rand) *shuffler {
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &shuffler{r: r}
}

// shuffle permutes t in place (Fisher-Yates).
func (s *shuffler) shuffle(t *[WeightSlots]int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.Shuffle(len(t), func(i, j int) { t[i], t[j] = t[j], t[i] })
}

// weightTable builds the alg 9 table (dp_init_weights): destinations in
// array order each take `weight` slots until the table is full, slots left
// over go to the last index, then the table is shuffled. When the first
// destination has no weight the table stays all zeros.
func weightTable(dests []Destination, sh *shuffler) [WeightSlots]int16 {
	var t [WeightSlots]int16
	if len(dests) == 0 || dests[0].Attrs.Weight == 0 {
		return t
	}
	k := 0
	for i := range dests {
		for w := 0; w < dests[i].Attrs.Weight && k < WeightSlots; w++ {
			t[k] = int16(i)
			k++
		}
	}
	for ; k < WeightSlots; k++ {
		t[k] = int16(len(dests) - 1)
	}
	sh.shuffle(&t)
	return t
}

// rweightTable builds the alg 11 table (dp_init_relative_weights): only up
// destinations count; each gets trunc(rweight*100/sum) slots, the remainder
// goes to the last index written, then the table is shuffled. With fewer
// than two destinations, or no up rweight, prev is returned unchanged.
func rweightTable(dests []Destination, prev [WeightSlots]int16, sh *shuffler) [WeightSlots]int16 {
	t, ok := rweightSlots(dests, func(i int) int { return dests[i].Attrs.RWeight })
	if !ok {
		return prev
	}
	sh.shuffle(&t)
	return t
}

// rweightSlots is rweightTable before the shuffle, with destination i's
// rweight given by rw: its slots are in ascending order. ok is false when
// the table would be left unchanged.
func rweightSlots(dests []Destination, rw func(i int) int) (t [WeightSlots]int16, ok bool) {
	if len(dests) < 2 {
		return t, false
	}
	sum := 0
	for i := range dests {
		if dests[i].Up() {
			sum += rw(i)
		}
	}
	if sum == 0 {
		return t, false
	}
	k := 0
	for i := range dests {
		if !dests[i].Up() {
			continue
		}
		share := rw(i) * WeightSlots / sum
		for w := 0; w < share && k < WeightSlots; w++ {
			t[k] = int16(i)
			k++
		}
	}
	last := int16(len(dests) - 1)
	if k > 0 {
		last = t[k-1]
	}
	for ; k < WeightSlots; k++ {
		t[k] = last
	}
	return t, true
}
