package dispatch

import (
	"slices"
	"time"
)

// Congestion control (attribute cc, kamailio-behaviour §2.7,
// dispatch.c ds_update_latency): after each measured probe result of a
// destination with cc set and a weight, its relative weight (alg 11)
// follows its congestion, the amount by which its latency estimate
// exceeds its mean:
//
//	congestion = max(0, EST − AVG)   (whole ms, truncated)
//	rweight    = max(0, weight − congestion)
//
// A destination whose rweight falls to 0 is congested. When every
// destination of the set has cc, more than one is congested and none is
// normal, each destination's rweight becomes
//
//	rweight = (Σ congestion × 16) / own congestion
//
// (the less congested, the larger its share; 16 keeps precision). Like
// Kamailio, only the probed destination's own rweight is set in the first
// step (the others are only counted), and the all-congested step sets
// every destination's. Unlike Kamailio, an rweight never goes below 0 (a
// destination without weight and with a falling latency would get a
// negative one there).
//
// Kamailio changes the rweights in place and, when every destination of
// the set has cc, rebuilds the alg 11 table on each result that changed
// one; otherwise the new rweights wait for the next rebuild, an up/down
// change (ds_reinit_rweight_on_state_change), since nothing else reads
// them. Here a table change is a snapshot swap that both paths (slow path
// and the fast path's copy of the table) must take, so it is neither done
// per result nor scanned per result:
//
//   - The rweights live beside the snapshots, in a ccSet per set (as the
//     latency statistics do), with running sums of the congestion counts,
//     so a result costs O(1) (O(duplicates of its URI)). The all-congested
//     step is recorded, not applied: a destination's rweight is the one it
//     would have got then, until its own statistics next change.
//   - A set whose every destination has cc is marked dirty; at most
//     CongestionPublishDelay later the Dispatcher builds the table the
//     current rweights give and swaps in a snapshot only if that table's
//     slot counts differ from the current table's (one swap for every dirty
//     set). Kamailio reshuffles on every change; a reshuffle with the same
//     counts changes no share, so it is skipped.
//   - A state change (up/down, set_state, a probe result that flips a
//     destination) swaps at once, as before, and builds the table from the
//     current rweights, as Kamailio's rebuild on a state change does.
//   - Add, remove and reload start from the rweights of the new snapshot
//     (the list's on a reload, as Kamailio's).

// CongestionPublishDelay bounds how long a congestion-control change of
// the alg 11 table waits before it is swapped in, and so how often it can
// be: at most one swap per delay for all sets together, instead of one per
// probe result. 100 ms is well under a usual probe interval (Kamailio's
// ds_ping_interval is whole seconds), so the shares still follow each
// destination's every result (with a shorter interval, the latest ones, at
// most 100 ms late), while a subscriber that rewrites every set (the fast
// path's sync) runs at most 10 times a second for it.
const CongestionPublishDelay = 100 * time.Millisecond

// ccState is ds_update_latency's congestion_control_state, kept as
// running sums over the set's destinations with cc and a weight.
type ccState struct {
	congested, normal int
	total             int // Σ congestion, ms
}

// congestionMs is EST − AVG as Kamailio's int conversion truncates it.
func congestionMs(s LatencyStats) int { return int(s.Est - s.Avg) }

// counted is what a destination of weight w (> 0) with raw congestion raw
// adds to the sums, and its active weight.
func counted(w, raw int) (cms, active int) {
	cms = max(raw, 0)
	return cms, max(w-cms, 0)
}

func (c *ccState) add(w, raw int, sign int) {
	cms, active := counted(w, raw)
	c.total += sign * cms
	if active == 0 {
		c.congested += sign
	} else {
		c.normal += sign
	}
}

// allCongested is the condition of the all-congested step (besides every
// destination having cc).
func (c *ccState) allCongested() bool { return c.congested > 1 && c.normal == 0 }

// ccSet is the congestion-control state of one set, for the destinations
// (indices) of one Build: ctr identifies it.
type ccSet struct {
	ctr *setCounters
	all bool // every destination has cc: rweight changes rebuild the table

	rw    []int    // rweight set by the destination's own result (or the snapshot's)
	setAt []uint64 // seq of that rweight
	raw   []int    // congestionMs of the destination's statistics, as counted
	dup   []int32  // next index with the same URI (shared statistics), cyclic
	sums  ccState

	seq     uint64 // orders own results and all-congested steps
	acSeq   uint64 // seq of the last all-congested step; 0: none
	acTotal int    // Σ congestion at that step

	dirty bool // the alg 11 table may have changed since the last publish
}

// newCCSet reads the set's rweights and statistics once (O(n)): after
// that, each result updates it in O(1).
func newCCSet(set *Set, stat func(d *Destination) LatencyStats) *ccSet {
	n := len(set.Dests)
	c := &ccSet{
		ctr:   set.ctr,
		all:   true,
		rw:    make([]int, n),
		setAt: make([]uint64, n),
		raw:   make([]int, n),
		dup:   make([]int32, n),
	}
	last := make(map[latencyKey]int32, n)
	for i := range set.Dests {
		d := &set.Dests[i]
		c.rw[i] = d.Attrs.RWeight
		c.raw[i] = congestionMs(stat(d))
		if d.Attrs.CC == 0 {
			c.all = false
		} else if d.Attrs.Weight > 0 {
			c.sums.add(d.Attrs.Weight, c.raw[i], 1)
		}
		// Link the duplicates of a URI in a cycle: they share one record.
		k := keyOf(set.ID, d.URI)
		c.dup[i] = int32(i)
		if j, ok := last[k]; ok {
			c.dup[i], c.dup[j] = c.dup[j], int32(i)
		}
		last[k] = int32(i)
	}
	return c
}

// rweight is destination i's current rweight: the all-congested step's
// when that came after its own last result.
func (c *ccSet) rweight(i int) int {
	if c.setAt[i] < c.acSeq {
		cms := c.raw[i]
		if cms == 0 {
			cms = 1 // Kamailio's _VOR1
		}
		return max((c.acTotal<<4)/cms, 0)
	}
	return c.rw[i]
}

// beforeStats is called before the statistics of destination i (and so of
// its duplicates) change: their rweights are fixed and they leave the sums.
func (c *ccSet) beforeStats(set *Set, i int) {
	for j := i; ; {
		c.rw[j], c.setAt[j] = c.rweight(j), c.seq
		if d := &set.Dests[j]; d.Attrs.CC != 0 && d.Attrs.Weight > 0 {
			c.sums.add(d.Attrs.Weight, c.raw[j], -1)
		}
		if j = int(c.dup[j]); j == i {
			return
		}
	}
}

// afterStats counts destination i (and its duplicates) again with raw
// congestion raw, then applies ds_update_latency's two steps for the
// probed destination i.
func (c *ccSet) afterStats(set *Set, i int, raw int) {
	for j := i; ; {
		c.raw[j] = raw
		if d := &set.Dests[j]; d.Attrs.CC != 0 && d.Attrs.Weight > 0 {
			c.sums.add(d.Attrs.Weight, raw, 1)
		}
		if j = int(c.dup[j]); j == i {
			break
		}
	}
	d := &set.Dests[i]
	if d.Attrs.CC != 0 && d.Attrs.Weight > 0 {
		c.seq++
		_, active := counted(d.Attrs.Weight, raw)
		if active != c.rw[i] {
			c.dirty = c.dirty || c.all
		}
		c.rw[i], c.setAt[i] = active, c.seq
	}
	if c.all && c.sums.allCongested() {
		c.seq++
		c.acSeq, c.acTotal = c.seq, c.sums.total
		c.dirty = true // whether a share moved is decided at publish
	}
}

// rweights returns the current rweight of every destination.
func (c *ccSet) rweights() []int {
	out := make([]int, len(c.rw))
	for i := range out {
		out[i] = c.rweight(i)
	}
	return out
}

// ccTable holds the ccSet of each set that had a cc result; guarded by
// the Dispatcher's mu.
type ccTable struct {
	sets  map[int]*ccSet
	armed bool // a publish is scheduled
}

// forSet returns the set's ccSet, made anew when the set was rebuilt.
func (t *ccTable) forSet(set *Set, stat func(d *Destination) LatencyStats) *ccSet {
	c := t.sets[set.ID]
	if c == nil || c.ctr != set.ctr || len(c.rw) != len(set.Dests) {
		c = newCCSet(set, stat)
		if t.sets == nil {
			t.sets = map[int]*ccSet{}
		}
		t.sets[set.ID] = c
	}
	return c
}

// current returns the set's ccSet when it belongs to set's Build.
func (t *ccTable) current(set *Set) *ccSet {
	c := t.sets[set.ID]
	if c == nil || c.ctr != set.ctr || len(c.rw) != len(set.Dests) {
		return nil
	}
	return c
}

// reset forgets every set (a reload, add or remove built new sets).
func (t *ccTable) reset() { clear(t.sets) }

// sortedTable is t with its slots in ascending order: the table before
// its shuffle, so two tables compare equal when they give every
// destination the same number of slots.
func sortedTable(t [WeightSlots]int16) [WeightSlots]int16 {
	slices.Sort(t[:])
	return t
}

// publishCongestionLocked swaps in one snapshot in which every dirty set whose
// alg 11 table changed has its new rweights and table. The caller holds mu.
func (d *Dispatcher) publishCongestionLocked() {
	cur := d.cur.Load()
	var next *Snapshot
	for id, c := range d.cc.sets {
		if !c.dirty {
			continue
		}
		c.dirty = false
		set := cur.Set(id)
		if set == nil || c.ctr != set.ctr {
			continue
		}
		rw := c.rweights()
		slots, ok := rweightSlots(set.Dests, func(i int) int { return rw[i] })
		if !ok || slots == sortedTable(set.RWeightTable) {
			continue
		}
		if next == nil {
			n := *cur
			n.sets = slices.Clone(cur.sets)
			next = &n
		}
		cur.shuf.shuffle(&slots)
		next.replaceSet(set.withRWeights(rw, slots, cur.shuf))
	}
	if next != nil {
		d.swapLocked(next)
	}
}

// scheduleCongestionLocked arms the publish timer if a set is dirty and none is
// armed. The caller holds mu. The timer's goroutine lives at most
// CongestionPublishDelay and holds no resource, so nothing needs stopping
// when the Dispatcher is dropped.
func (d *Dispatcher) scheduleCongestionLocked() {
	if d.cc.armed {
		return
	}
	d.cc.armed = true
	time.AfterFunc(CongestionPublishDelay, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.cc.armed = false
		d.publishCongestionLocked()
	})
}

// RWeights returns the current rweight of each destination of set (as
// dispatcher.list shows them): congestion control changes them before a
// snapshot carries them (congestion.go), and in a set where not every
// destination has cc, a snapshot carries them only from the next up/down
// change.
func (d *Dispatcher) RWeights(set *Set) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cc.current(set); c != nil {
		return c.rweights()
	}
	out := make([]int, len(set.Dests))
	for i := range set.Dests {
		out[i] = set.Dests[i].Attrs.RWeight
	}
	return out
}

// withRWeights returns a copy of s with the given rweights and alg 11
// table (shuffled).
func (s *Set) withRWeights(rw []int, table [WeightSlots]int16, sh *shuffler) *Set {
	dests := slices.Clone(s.Dests)
	for i := range dests {
		dests[i].Attrs.RWeight = rw[i]
	}
	n := s.withDests(dests, sh)
	n.RWeightTable = table
	return n
}

// replaceSet puts set in place of the set with its ID; s must be a copy
// whose sets slice is its own.
func (s *Snapshot) replaceSet(set *Set) {
	for i := range s.sets {
		if s.sets[i].ID == set.ID {
			s.sets[i] = set
			return
		}
	}
}
