package dispatch

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// batchEntries are two sets: set 1 lists one URI twice (a result by URI
// changes both, by IUID one) and has cc and weights (latency results move
// rweights); flags start from the random source.
func batchEntries(r *rand.Rand) []Entry {
	states := []Flags{0, FlagProbing, FlagInactive, FlagInactive | FlagProbing, FlagTrying | FlagProbing, FlagDisabled, FlagNoPing}
	es := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Attrs: "cc=1;weight=50"},
		{SetID: 1, URI: "sip:10.0.0.2", Attrs: "cc=1;weight=30"},
		{SetID: 1, URI: "sip:10.0.0.1", Attrs: "cc=1;weight=20"},
		{SetID: 1, URI: "sip:10.0.0.3", Attrs: "cc=1;weight=10"},
		{SetID: 2, URI: "sip:10.0.1.1"},
		{SetID: 2, URI: "sip:10.0.1.2"},
	}
	for i := range es {
		es[i].Flags = states[r.IntN(len(states))]
		es[i].Source = fmt.Sprintf("test:%d", i+1)
	}
	return es
}

// TestProbeResultsSameAsOneByOne is a property test: a batch of random
// results (the same destination repeated, by IUID and by URI, unknown ones
// among them) leaves every destination with the flags, probing count and
// latency statistics that ProbeLatency then ProbeResult, applied one result
// at a time to a copy, leave; it reports each flags change in the order
// and with the before/after flags the single applications show; and it
// swaps exactly one snapshot when the single applications swapped any
// (however many), none otherwise.
func TestProbeResultsSameAsOneByOne(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for run := range 500 {
		es := batchEntries(r)
		opt := Options{LatencyStats: true, LatencyAlpha: 900}
		batch, single := New(mustBuild(t, opt, es)), New(mustBuild(t, opt, es))
		p := ProbeParams{Mode: ProbingMode(r.IntN(4)), ProbingThreshold: 1 + r.IntN(3), InactiveThreshold: 1 + r.IntN(3)}

		snap := batch.Snapshot()
		var addrs []ProbeOutcome
		for _, set := range snap.Sets() {
			for _, dst := range set.Dests {
				addrs = append(addrs, ProbeOutcome{SetID: set.ID, Addr: dst.IUID}, ProbeOutcome{SetID: set.ID, Addr: dst.URI})
			}
		}
		addrs = append(addrs, ProbeOutcome{SetID: 3, Addr: "sip:10.0.0.1"}, ProbeOutcome{SetID: 1, Addr: "sip:10.9.9.9"})
		outs := make([]ProbeOutcome, 1+r.IntN(40))
		for i := range outs {
			o := addrs[r.IntN(len(addrs))]
			o.Success = r.IntN(2) == 0
			o.Code, o.RTT = 200, time.Duration(1+r.IntN(200))*time.Millisecond
			if !o.Success {
				o.Code = 408
			}
			if r.IntN(5) == 0 {
				o.Code = 0 // no latency record
			}
			outs[i] = o
		}

		// One by one, the way the agent applied results before batches.
		singleSwaps := 0
		cancelSingle := single.Subscribe(func(*Snapshot) { singleSwaps++ })
		var want []Change
		for k, o := range outs {
			before := batchFlags(single.Snapshot())
			if o.Code != 0 {
				single.ProbeLatency(o.SetID, o.Addr, o.Code, o.RTT)
			}
			if _, err := single.ProbeResult(o.SetID, o.Addr, o.Success, p); err != nil &&
				!errors.Is(err, ErrNoSet) && !errors.Is(err, ErrUnknownDestination) {
				t.Fatal(err)
			}
			after := batchFlags(single.Snapshot())
			for _, set := range single.Snapshot().Sets() {
				for _, dst := range set.Dests {
					key := fmt.Sprintf("%d/%s", set.ID, dst.IUID)
					if before[key] != after[key] {
						want = append(want, Change{Outcome: k, SetID: set.ID, IUID: dst.IUID, Before: before[key], After: after[key]})
					}
				}
			}
		}

		cancelSingle()
		swaps := 0
		cancel := batch.Subscribe(func(*Snapshot) { swaps++ })
		got, err := batch.ProbeResults(outs, p)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ctx := fmt.Sprintf("run %d, params %+v, results %+v", run, p, outs)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s:\nchanges %v\nwant    %v", ctx, got, want)
		}
		for i, set := range batch.Snapshot().Sets() {
			other := single.Snapshot().Sets()[i]
			for j, dst := range set.Dests {
				o := other.Dests[j]
				if dst.Flags != o.Flags || dst.ProbingCount != o.ProbingCount {
					t.Fatalf("%s: set %d dst %d: flags %s count %d, one by one %s count %d", ctx, set.ID, j, dst.Flags, dst.ProbingCount, o.Flags, o.ProbingCount)
				}
				if bl, sl := batch.Latency(set.ID, dst.URI), single.Latency(set.ID, dst.URI); bl != sl {
					t.Fatalf("%s: set %d %s: latency %+v, one by one %+v", ctx, set.ID, dst.URI, bl, sl)
				}
			}
		}
		if wantSwaps := min(singleSwaps, 1); swaps != wantSwaps {
			t.Fatalf("%s: %d swaps, want %d", ctx, swaps, wantSwaps)
		}
	}
}

// batchFlags maps "SET/IUID" to the destination's flags.
func batchFlags(s *Snapshot) map[string]Flags {
	m := map[string]Flags{}
	for _, set := range s.Sets() {
		for _, dst := range set.Dests {
			m[fmt.Sprintf("%d/%s", set.ID, dst.IUID)] = dst.Flags
		}
	}
	return m
}

// TestProbeResultsOneSwap: the first reply of each of 10,000 destinations
// in mode 1 changes each one's flags (probing set) and costs one swap, not
// 10,000.
func TestProbeResultsOneSwap(t *testing.T) {
	es := hosts(10000)
	d := New(mustBuild(t, Options{}, es))
	outs := make([]ProbeOutcome, len(es))
	for i, dst := range d.Snapshot().Set(1).Dests {
		outs[i] = ProbeOutcome{SetID: 1, Addr: dst.IUID, Success: true, Code: 200}
	}
	swaps := 0
	cancel := d.Subscribe(func(*Snapshot) { swaps++ })
	defer cancel()
	changes, err := d.ProbeResults(outs, ProbeParams{Mode: ProbeAll, ProbingThreshold: 1, InactiveThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if swaps != 1 || len(changes) != len(es) {
		t.Fatalf("%d swaps and %d changes, want 1 and %d", swaps, len(changes), len(es))
	}
	for i, dst := range d.Snapshot().Set(1).Dests {
		if dst.Flags != FlagProbing || changes[i].Before != 0 || changes[i].After != FlagProbing {
			t.Fatalf("destination %d: flags %s, change %+v", i, dst.Flags, changes[i])
		}
	}
	if _, err := d.ProbeResults(outs[:1], ProbeParams{Mode: 4}); err == nil {
		t.Error("mode 4: no error")
	}
}

// TestProbeResultsUnless: results the stale function names are skipped,
// and it is asked under the lock Replace takes, so a reload cannot come
// between the question and the result's application.
func TestProbeResultsUnless(t *testing.T) {
	es := hosts(6)
	d := New(mustBuild(t, Options{}, es))
	var outs []ProbeOutcome
	for _, dst := range d.Snapshot().Set(1).Dests {
		outs = append(outs, ProbeOutcome{SetID: 1, Addr: dst.IUID, Success: true, Code: 200})
	}
	asked := 0
	changes, err := d.ProbeResultsUnless(outs, ProbeParams{Mode: ProbeAll, ProbingThreshold: 1, InactiveThreshold: 1}, func(k int) bool {
		asked++
		if d.mu.TryLock() {
			d.mu.Unlock()
			t.Errorf("result %d: stale asked without the dispatcher's lock", k)
		}
		return k%2 == 0
	})
	if err != nil {
		t.Fatal(err)
	}
	if asked != len(outs) || len(changes) != len(outs)/2 {
		t.Fatalf("asked %d times, %d changes; want %d and %d", asked, len(changes), len(outs), len(outs)/2)
	}
	for i, dst := range d.Snapshot().Set(1).Dests {
		if want := i%2 == 1; (dst.Flags == FlagProbing) != want {
			t.Errorf("destination %d: flags %s, applied %v", i, dst.Flags, want)
		}
	}
}
