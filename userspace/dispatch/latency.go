package dispatch

import (
	"math"
	"strings"
	"sync"
	"time"
)

// LatencyStats are a destination's probe latency statistics, kept as
// Kamailio's dispatcher keeps them with ds_ping_latency_stats=1
// (kamailio-behaviour §3.6, dispatch.c latency_stats_update): whole
// milliseconds from a probe's first transmission to its final reply,
// a Welford running mean and standard deviation, and an estimate (EWMA).
// Avg, Std and Est are float32 as in Kamailio, so they round as its do.
type LatencyStats struct {
	Avg     float32 // running mean, ms
	Std     float32 // standard deviation, ms
	Est     float32 // Avg for the first 9 samples, then the EWMA
	Max     int     // largest sample, ms
	Min     int     // smallest sample, ms (Kamailio keeps it but does not print it)
	Timeout uint32  // probes that ended with a 408, local or received
	Count   int32   // samples counted (capped, and jumped; see add)

	m2 float64 // sum of squared deviations (Welford)
}

// Kamailio's constants of latency_stats_update.
const (
	// latencyCountCap: past 2^21 samples (24 days at 1 s) the count stops
	// and the mean becomes a weighted one.
	latencyCountCap = 1 << 21
	// latencyTrained: a count past 10 whose deviation is under 0.5 ms
	// jumps here, so the mean hardly moves any more.
	latencyTrained = 10000
	// latencyWarmup: samples before the estimate leaves the mean.
	latencyWarmup = 10
)

// DefaultLatencyAlpha is ds_latency_estimator_alpha's default in per
// mille (kamailio-behaviour §3.6: 100 since Kamailio 6.0; 5.8 used 900).
const DefaultLatencyAlpha = 100

// add counts one sample of ms milliseconds; alpha is the weight of the
// old estimate (ds_latency_estimator_alpha / 1000). The order of the steps
// is Kamailio's, quirks included: the training jump is tested on the
// deviation of the samples before this one, and after it the new sample
// moves the mean by 1/10000 only.
func (s *LatencyStats) add(ms int, alpha float32) {
	if s.Count < latencyCountCap {
		s.Count++
	} else {
		s.m2 -= s.m2 / float64(s.Count)
	}
	if s.Count == 1 {
		*s = LatencyStats{Avg: float32(ms), Est: float32(ms), Max: ms, Min: ms, Timeout: s.Timeout, Count: 1}
	}
	if s.Count > latencyWarmup && s.Count < latencyTrained && s.Std < 0.5 {
		s.Count = latencyTrained
	}
	s.Min = min(s.Min, ms)
	s.Max = max(s.Max, ms)
	if s.Count > 1 {
		delta := float32(ms) - s.Avg
		s.Avg += delta / float32(s.Count)
		delta2 := float32(ms) - s.Avg
		s.m2 += float64(delta) * float64(delta2)
		s.Std = float32(math.Sqrt(s.m2 / float64(s.Count-1)))
	}
	if s.Count < latencyWarmup {
		s.Est = s.Avg
	} else {
		s.Est = s.Est*alpha + float32(ms)*(1-alpha)
	}
}

// latencyTable holds the statistics of every destination, outside the
// snapshots: a probe result updates them without building a snapshot, and
// a snapshot swap (state change, add, reload) leaves them alone. They are
// keyed by set and URI (compared ignoring case, as Kamailio's
// latency_stats_find does), so destinations listing the same URI twice in
// a set share one record, and a reload keeps the record of every (set,
// URI) it keeps (kamailio PR #3534).
type latencyTable struct {
	mu    sync.Mutex
	stats map[latencyKey]*LatencyStats
}

type latencyKey struct {
	set int
	uri string // lower case
}

func keyOf(setID int, uri string) latencyKey {
	return latencyKey{set: setID, uri: strings.ToLower(uri)}
}

// record applies one probe result: a 408 counts a timeout, any other code
// a sample of rtt, truncated to whole milliseconds. It returns the new
// statistics.
func (t *latencyTable) record(setID int, uri string, code int, rtt time.Duration, alpha float32) LatencyStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stats == nil {
		t.stats = map[latencyKey]*LatencyStats{}
	}
	k := keyOf(setID, uri)
	s := t.stats[k]
	if s == nil {
		s = &LatencyStats{}
		t.stats[k] = s
	}
	if code == 408 {
		if s.Timeout < math.MaxUint32 {
			s.Timeout++
		}
		return *s
	}
	s.add(int(max(rtt, 0).Milliseconds()), alpha)
	return *s
}

func (t *latencyTable) get(setID int, uri string) LatencyStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.stats[keyOf(setID, uri)]; s != nil {
		return *s
	}
	return LatencyStats{}
}

// prune drops the records of every (set, URI) snap no longer has.
func (t *latencyTable) prune(snap *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.stats {
		set := snap.Set(k.set)
		if set == nil || !hasURI(set, k.uri) {
			delete(t.stats, k)
		}
	}
}

func hasURI(set *Set, lowerURI string) bool {
	for i := range set.Dests {
		if strings.EqualFold(set.Dests[i].URI, lowerURI) {
			return true
		}
	}
	return false
}

// ProbeLatency feeds one probe result into the latency statistics of the
// destination addr (its IUID, or a URI) of the set when the snapshot's
// Options.LatencyStats is on: code is the final status (408 for a timeout,
// counted in Timeout, not measured), rtt the time from the first
// transmission to the reply. As in Kamailio, only a destination that has
// the probing flag when the result arrives is measured, so call it before
// ProbeResult, which may clear the flag. Unknown sets and destinations are
// ignored. For a destination with the attribute cc, the result may change
// rweights (congestion.go): a change of the set's alg 11 table is swapped
// in at most CongestionPublishDelay later, not by this call. The cost does
// not grow with the size of the set.
func (d *Dispatcher) ProbeLatency(setID int, addr string, code int, rtt time.Duration) {
	// Under mu, so a reload's prune cannot come between the lookup and the
	// record and leave a record of a destination it removed.
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cur.Load()
	set := cur.Set(setID)
	if set == nil {
		return
	}
	d.latencyLocked(cur, set, set.Dests, addr, code, rtt)
}

// latencyLocked is ProbeLatency for a set of cur whose destinations' flags
// are now those of dests (set.Dests, or a batch's copy of them: same
// destinations, same order). The caller holds mu.
func (d *Dispatcher) latencyLocked(cur *Snapshot, set *Set, dests []Destination, addr string, code int, rtt time.Duration) {
	if !cur.opt.LatencyStats {
		return
	}
	i := set.find(addr)
	if i < 0 {
		return
	}
	if dests[i].Flags&FlagProbing == 0 {
		return
	}
	dst := &set.Dests[i]
	setID := set.ID
	// A destination without cc leaves the ccSet alone, even when it shares
	// its URI (statistics) with one that has cc: that only leaves the sums
	// stale, and they matter only in a set where every destination has cc.
	var cc *ccSet
	if dst.Attrs.CC != 0 {
		cc = d.cc.forSet(set, func(x *Destination) LatencyStats { return d.lat.get(setID, x.URI) })
		cc.beforeStats(set, i)
	}
	s := d.lat.record(setID, dst.URI, code, rtt, float32(cur.opt.LatencyAlpha)/1000)
	if set.ctr != nil {
		set.ctr.latGen.Add(1) // alg 13's cached rankings of the set are stale
	}
	if cc != nil {
		cc.afterStats(set, i, congestionMs(s))
		if cc.dirty {
			d.scheduleCongestionLocked()
		}
	}
}

// Latency returns the latency statistics of the set's destination with
// that URI (ignoring case); zero when none were recorded.
func (d *Dispatcher) Latency(setID int, uri string) LatencyStats {
	return d.lat.get(setID, uri)
}
