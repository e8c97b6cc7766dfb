package dispatch

import (
	"slices"
	"time"
)

// The per-result scan congestion control used before congestion.go kept
// its state beside the snapshots: ds_update_latency step by step over the
// whole set, and a snapshot swap for each changed rweight. Kept here as
// the reference the incremental state is checked against
// (TestCongestionMatchesScan), and as the "scan" side of
// BenchmarkProbeLatencyCC.

// refCongestion applies ds_update_latency's two steps for a measured
// result of destination idx to rw (the set's rweights, changed in place),
// reading every destination's statistics. It reports whether an rweight
// changed and whether every destination has cc.
func refCongestion(set *Set, rw []int, idx int, stat func(d *Destination) LatencyStats) (changed, all bool) {
	var c ccState
	all = true
	stats := make([]LatencyStats, len(set.Dests))
	for i := range set.Dests {
		d := &set.Dests[i]
		stats[i] = stat(d)
		if d.Attrs.CC != 0 && d.Attrs.Weight > 0 {
			raw := congestionMs(stats[i])
			c.add(d.Attrs.Weight, raw, 1)
			if i == idx {
				if _, active := counted(d.Attrs.Weight, raw); active != rw[i] {
					rw[i] = active
					changed = true
				}
			}
		}
		if d.Attrs.CC == 0 {
			all = false
		}
	}
	if all && c.allCongested() {
		for i := range set.Dests {
			cms := congestionMs(stats[i])
			if cms == 0 {
				cms = 1 // Kamailio's _VOR1
			}
			if active := max((c.total<<4)/cms, 0); active != rw[i] {
				rw[i] = active
				changed = true
			}
		}
	}
	return changed, all
}

// probeLatencyScan is ProbeLatency as it was: the statistics, then the
// scan, then a swap of the whole snapshot whenever an rweight changed
// (the table rebuilt when every destination has cc).
func (d *Dispatcher) probeLatencyScan(setID int, addr string, code int, rtt time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cur.Load()
	set := cur.Set(setID)
	if !cur.opt.LatencyStats || set == nil {
		return
	}
	i := set.scan(addr)
	if i < 0 || set.Dests[i].Flags&FlagProbing == 0 {
		return
	}
	dst := &set.Dests[i]
	d.lat.record(setID, dst.URI, code, rtt, float32(cur.opt.LatencyAlpha)/1000)
	if dst.Attrs.CC == 0 {
		return
	}
	rw := make([]int, len(set.Dests))
	for j := range rw {
		rw[j] = set.Dests[j].Attrs.RWeight
	}
	changed, all := refCongestion(set, rw, i, func(x *Destination) LatencyStats { return d.lat.get(setID, x.URI) })
	if !changed {
		return
	}
	dests := slices.Clone(set.Dests)
	for j := range dests {
		dests[j].Attrs.RWeight = rw[j]
	}
	ns := set.withDests(dests, cur.shuf)
	if all {
		ns.RWeightTable = rweightTable(dests, set.RWeightTable, cur.shuf)
	}
	n := *cur
	n.sets = slices.Clone(cur.sets)
	n.replaceSet(ns)
	d.swapLocked(&n)
}
