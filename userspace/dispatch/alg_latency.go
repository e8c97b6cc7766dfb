package dispatch

import (
	"cmp"
	"slices"
)

// Algorithm 13, latency-optimised round robin with failover
// (kamailio-behaviour §2.7, dispatch.c ds_manage_route_algo13).
//
// Each up destination is ranked by its priority lowered by its latency:
// with lat the destination's latency estimate EST in whole milliseconds
// (or, with the attribute cc set (not 0), its congestion EST−AVG), a destination
// whose lat exceeds its priority loses lat/priority (integer division) but
// never drops below 1:
//
//	rprio = prio − lat/prio   when lat > prio > 0, at least 1
//	rprio = prio              otherwise (no statistics yet: EST = 0)
//
// Down destinations rank −1. The destinations are visited from the set's
// rotating counter and stably sorted by rprio, highest first, so equal
// ranks take turns (round robin) and a slow or congested destination falls
// behind the fast ones; the first is the pick, the rest in that order the
// failover list. Priority 0 takes no handicap: with every priority 0 the
// algorithm is plain round robin, as in Kamailio.
//
// Kamailio PR #2964: the pick is the first entry of the sorted list, never
// the rotation's start, so an inactive top-priority destination is never
// sent a call; with every ranked destination down the selection fails.
//
// Differences from Kamailio, both deliberate: with use_default the default
// entry is not ranked but, as with the other algorithms, picked when every
// other destination is down and appended last to the failover list when it
// is up (Kamailio fails instead, and its rotation modulo n−1 over n steps
// ranks one destination twice); the counter is advanced without a set lock,
// so two concurrent selects may start at the same place.

// rankedDest is one destination of an alg 13 ranking.
type rankedDest struct {
	idx   int
	rprio int
}

// latencyRank returns the relative priority of an up destination of
// priority prio whose latency (EST, or EST−AVG with cc) is lat ms.
func latencyRank(prio, lat int) int {
	if prio <= 0 || lat <= prio {
		return prio
	}
	return max(prio-lat/prio, 1)
}

// latencyList is alg 13's list for one rotation start, computed from the
// latency statistics of generation gen.
type latencyList struct {
	gen   uint64
	dests []Destination // nil: every destination down
}

// selectLatency runs alg 13 on set and returns the pick and its failover
// list. The list is shared (cached per rotation start until the latency
// statistics change): read it only.
func (s *Snapshot) selectLatency(set *Set) ([]Destination, error) {
	n := len(set.Dests)
	m := set.HashMod
	if n == 0 || m <= 0 {
		return nil, ErrNoDestination
	}
	start := 0
	if set.ctr != nil {
		start = int(set.ctr.last.Load() % uint32(m))
	}
	var out []Destination
	if set.ctr == nil || start >= len(set.latency) || n > maxCachedSet {
		out = s.rankLatency(set, start)
	} else {
		// The generation is read before the statistics: a change
		// meanwhile leaves a list tagged with the old one, recomputed
		// next time.
		gen := set.ctr.latGen.Load()
		if c := set.latency[start].Load(); c != nil && c.gen == gen {
			out = c.dests
		} else {
			out = s.rankLatency(set, start)
			set.latency[start].Store(&latencyList{gen: gen, dests: out})
		}
	}
	if len(out) == 0 {
		return nil, ErrNoDestination
	}
	if set.ctr != nil {
		set.ctr.last.Store(uint32((out[0].Index + 1) % n))
	}
	return out, nil
}

// rankLatency ranks set from the rotation start and returns the list:
// the pick first; empty when nothing is up.
func (s *Snapshot) rankLatency(set *Set, start int) []Destination {
	n, m := len(set.Dests), set.HashMod
	lat := s.lat.forSet(set)
	ranked := make([]rankedDest, 0, m)
	for y := range m {
		i := (start + y) % m
		d := &set.Dests[i]
		r := rankedDest{idx: i, rprio: -1}
		if d.Up() {
			l := lat[i].est
			if d.Attrs.CC != 0 {
				l = lat[i].congestion
			}
			r.rprio = latencyRank(d.Priority, l)
		}
		ranked = append(ranked, r)
	}
	slices.SortStableFunc(ranked, func(a, b rankedDest) int { return cmp.Compare(b.rprio, a.rprio) })
	out := make([]Destination, 0, n)
	for _, r := range ranked {
		if r.rprio < 0 {
			break // down, and everything after it
		}
		out = append(out, set.Dests[r.idx])
	}
	if def := set.DefaultIdx; def >= 0 && set.Dests[def].Up() {
		out = append(out, set.Dests[def])
	}
	return out[:len(out):len(out)]
}

// destLatency is what alg 13 reads of a destination's statistics, in
// whole milliseconds truncated toward zero as Kamailio's int conversion
// does.
type destLatency struct {
	est        int // EST
	congestion int // EST − AVG
}

// forSet returns the latency of each destination of set, by index; zeros
// (no statistics yet) for a nil table or an unmeasured destination.
func (t *latencyTable) forSet(set *Set) []destLatency {
	out := make([]destLatency, len(set.Dests))
	if t == nil {
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range set.Dests {
		if st := t.stats[keyOf(set.ID, set.Dests[i].URI)]; st != nil {
			out[i] = destLatency{est: int(st.Est), congestion: int(st.Est - st.Avg)}
		}
	}
	return out
}
