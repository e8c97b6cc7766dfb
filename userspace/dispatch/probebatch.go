package dispatch

import (
	"fmt"
	"slices"
	"time"
)

// ProbeOutcome is one probe result for ProbeResults.
type ProbeOutcome struct {
	SetID int
	// Addr names the destination: its IUID, or a URI (every destination
	// of the set with it, as ProbeResult).
	Addr string
	// Success is a 2xx or a configured reply code.
	Success bool
	// Code and RTT go into the latency statistics first, as ProbeLatency
	// (code 408 for a timeout); Code 0 records nothing.
	Code int
	RTT  time.Duration
}

// Change is a destination whose flags a result of ProbeResults changed.
type Change struct {
	Outcome       int // index of the result in the batch
	SetID         int
	IUID          string
	Before, After Flags
}

// probeStep is the state machine of §3.4 for one probe result of dst:
// ignored for a disabled destination, and in mode 3 for one that lost
// PROBING meanwhile.
func probeStep(dst *Destination, success bool, p ProbeParams) {
	if dst.Flags&FlagDisabled != 0 || (p.Mode == ProbeOnlyFlagged && dst.Flags&FlagProbing == 0) {
		return
	}
	req := requestedByProbe(dst.Flags, success, p.Mode)
	dst.Flags, dst.ProbingCount = transition(dst.Flags, dst.ProbingCount, req, false, p)
}

// ProbeResults applies a batch of probe results in order, each as
// ProbeLatency (when its Code is set) then ProbeResult would, and swaps in
// at most one snapshot for the whole batch. Each swap runs the subscribers,
// and the fast path's rewrites every set map: with one swap per result,
// 10,000 destinations changing state at once (start, a rack going silent)
// took seconds to reach the fast path (bench/README.md, probing).
//
// It returns the destinations whose flags changed, in the order of the
// results, one entry per result that changed them (a destination changed
// by two results of the batch has two), with the flags before and after
// that result. Results for an unknown set or destination are skipped, as
// the agent ignores them from ProbeResult. The final flags and probing
// counts are those of the results applied one by one with ProbeLatency and
// ProbeResult; a set's alg 11 table is rebuilt from the rweights
// congestion control has after the whole batch.
func (d *Dispatcher) ProbeResults(outs []ProbeOutcome, p ProbeParams) ([]Change, error) {
	return d.ProbeResultsUnless(outs, p, nil)
}

// ProbeResultsUnless is ProbeResults skipping the results for which stale
// (when not nil) returns true, asked under the lock that Replace takes: a
// caller that marks results stale before a reload swaps in new sets (the
// agent ignores results of probes sent before a reload, kamailio PR #2959)
// then never has one applied to the new sets, whenever the reload comes.
func (d *Dispatcher) ProbeResultsUnless(outs []ProbeOutcome, p ProbeParams, stale func(k int) bool) ([]Change, error) {
	if p.Mode < 0 || p.Mode > maxProbingMode {
		return nil, fmt.Errorf("probe results: probing mode %d outside 0..%d", p.Mode, maxProbingMode)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cur.Load()
	// work holds the destinations of each set a result changed, copied
	// once per set and batch (a copy per result would cost the size of
	// the set each time).
	var work map[int][]Destination
	var changes []Change
	for k, o := range outs {
		if stale != nil && stale(k) {
			continue
		}
		set := cur.Set(o.SetID)
		if set == nil {
			continue
		}
		dests, copied := work[o.SetID]
		if !copied {
			dests = set.Dests
		}
		if o.Code != 0 {
			// Latency first, with the flags the batch left so far: it
			// counts only while the destination has the probing flag.
			d.latencyLocked(cur, set, dests, o.Addr, o.Code, o.RTT)
		}
		match := byAddr(o.Addr, false)
		lo, hi := match.span(set)
		for i := lo; i < hi; i++ {
			if !match.match(&dests[i]) {
				continue
			}
			next := dests[i]
			probeStep(&next, o.Success, p)
			if next.Flags == dests[i].Flags && next.ProbingCount == dests[i].ProbingCount {
				continue
			}
			if !copied {
				if work == nil {
					work = map[int][]Destination{}
				}
				dests, copied = slices.Clone(set.Dests), true
				work[o.SetID] = dests
			}
			if next.Flags != dests[i].Flags {
				changes = append(changes, Change{Outcome: k, SetID: o.SetID, IUID: next.IUID, Before: dests[i].Flags, After: next.Flags})
			}
			dests[i] = next
		}
	}
	if len(work) == 0 {
		return changes, nil
	}
	n := *cur
	n.sets = slices.Clone(cur.sets)
	for i, set := range n.sets {
		dests, ok := work[set.ID]
		if !ok {
			continue
		}
		// The set's rweights as congestion control left them, as change
		// does for one result.
		if c := d.cc.current(set); c != nil {
			for j := range dests {
				dests[j].Attrs.RWeight = c.rweight(j)
			}
		}
		n.sets[i] = set.withDests(dests, cur.shuf)
	}
	d.swapLocked(&n)
	return changes, nil
}
