package dispatch

import "slices"

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
// (the less congested, the larger its share; 16 keeps precision). When
// every destination of the set has cc and an rweight changed, the alg 11
// table is rebuilt at once, so both paths follow; otherwise the new
// rweight waits for the next rebuild (an up/down change), as in Kamailio.
//
// Like Kamailio, only the probed destination's own rweight is set in the
// first step (the others are only counted), and the all-congested step
// sets every destination's. Unlike Kamailio, an rweight never goes below
// 0 (a destination without weight and with a falling latency would get a
// negative one there).

// ccState is ds_update_latency's congestion_control_state.
type ccState struct {
	congested, normal int
	total             int // Σ congestion, ms
	enabled           bool
	changed           bool
}

// congestionMs is EST − AVG as Kamailio's int conversion truncates it.
func congestionMs(s LatencyStats) int { return int(s.Est - s.Avg) }

// count adds a destination of weight w (> 0) and returns its active
// weight.
func (c *ccState) count(w int, s LatencyStats) int {
	cms := max(congestionMs(s), 0)
	c.total += cms
	active := max(w-cms, 0)
	if active == 0 {
		c.congested++
	} else {
		c.normal++
	}
	return active
}

// congestionWeights returns the rweights of set after a measured result
// of destination idx, and whether the alg 11 table must be rebuilt; nil
// when no rweight changes. stat returns a destination's statistics.
func congestionWeights(set *Set, idx int, stat func(d *Destination) LatencyStats) (rweights []int, rebuild bool) {
	c := ccState{enabled: true}
	rw := make([]int, len(set.Dests))
	stats := make([]LatencyStats, len(set.Dests))
	for i := range set.Dests {
		d := &set.Dests[i]
		rw[i] = d.Attrs.RWeight
		stats[i] = stat(d)
		if d.Attrs.CC != 0 && d.Attrs.Weight > 0 {
			active := c.count(d.Attrs.Weight, stats[i])
			if i == idx && active != rw[i] {
				rw[i] = active
				c.changed = true
			}
		}
		if d.Attrs.CC == 0 {
			c.enabled = false
		}
	}
	if c.enabled && c.congested > 1 && c.normal == 0 {
		for i := range set.Dests {
			cms := congestionMs(stats[i])
			if cms == 0 {
				cms = 1 // Kamailio's _VOR1
			}
			active := max((c.total<<4)/cms, 0)
			if active != rw[i] {
				rw[i] = active
				c.changed = true
			}
		}
	}
	if !c.changed {
		return nil, false
	}
	return rw, c.enabled
}

// withRWeights returns a snapshot whose set setID has the given rweights,
// its alg 11 table rebuilt when rebuild is set.
func (s *Snapshot) withRWeights(setID int, rw []int, rebuild bool) *Snapshot {
	set := s.Set(setID)
	dests := slices.Clone(set.Dests)
	for i := range dests {
		dests[i].Attrs.RWeight = rw[i]
	}
	n := *s
	n.sets = slices.Clone(s.sets)
	for i := range n.sets {
		if n.sets[i].ID != setID {
			continue
		}
		ns := set.withDests(dests, s.shuf)
		if rebuild {
			ns.RWeightTable = rweightTable(dests, set.RWeightTable, s.shuf)
		}
		n.sets[i] = ns
	}
	return &n
}
