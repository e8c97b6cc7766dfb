package dialog

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults of Config, Kamailio's where it has one.
const (
	DefaultInitLifetime   = 180 * time.Second
	DefaultActiveLifetime = 10800 * time.Second
	DefaultFinishLifetime = 10 * time.Second
	DefaultTimerInterval  = 30 * time.Second
	// DefaultMaxRecords bounds the memory a flood of fresh Call-IDs can
	// take: about 300 MB at the measured size of a record.
	DefaultMaxRecords = 1 << 20
)

// Config holds the tracker's knobs; every one is live (SetConfig). Zero or
// negative values mean the default.
type Config struct {
	InitLifetime   time.Duration // 0 → DefaultInitLifetime (180 s)
	ActiveLifetime time.Duration // 0 → DefaultActiveLifetime (10800 s)
	FinishLifetime time.Duration // 0 → DefaultFinishLifetime (10 s)
	TimerInterval  time.Duration // 0 → DefaultTimerInterval: how often Run expires records
	// MaxRecords caps the records held, finished ones included. At the cap
	// an INVITE sheds the oldest INIT/PROGRESS record, or is refused when
	// there is none. A lowered cap is reached as records go: no record is
	// shed by SetConfig itself.
	MaxRecords int // 0 → DefaultMaxRecords
}

func (c Config) withDefaults() Config {
	orDefault := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	orDefault(&c.InitLifetime, DefaultInitLifetime)
	orDefault(&c.ActiveLifetime, DefaultActiveLifetime)
	orDefault(&c.FinishLifetime, DefaultFinishLifetime)
	orDefault(&c.TimerInterval, DefaultTimerInterval)
	if c.MaxRecords <= 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	return c
}

// Stats are the tracker's gauges and counters.
type Stats struct {
	Active [NumStates]uint64 // records now held in each state: a gauge, goes DOWN on expiry (reference quirk fixed), never below 0
	Final  [NumStates]uint64 // records removed (expired or shed), by the state they were removed in
	// Counters of what was not applied, so bad input is never silent:
	Shed      uint64 // INIT/PROGRESS records dropped to make room under MaxRecords (oldest first)
	Refused   uint64 // INVITEs not tracked because the cap was reached and nothing was sheddable
	Unmatched uint64 // non-INVITE-creating messages (BYE, ACK, CANCEL, replies) for no known dialog
	Ignored   uint64 // messages that matched but changed nothing (retransmissions, out-of-order, parallel forks...), and INVITEs lacking a field
	Underflow uint64 // a gauge would have gone below zero (kamailio#1591): counted, not applied
}

// Tracker holds the dialog records. It is safe for concurrent use: one
// mutex, taken once per Observe batch and once per chunk of a scan.
type Tracker struct {
	reconf     chan struct{} // SetConfig wakes Run to re-arm its timer
	ruidPrefix string

	mu    sync.Mutex
	cfg   Config
	tab   table
	stats Stats
	seq   uint64         // creation number of the last record
	tags  map[string]int // live dialogs per tag; no zero entries
	// Live dialogs per INVITE source address and per set; no zero
	// entries, no invalid address, no set -1.
	sources map[sourceKey]int32
	sets    map[int32]int
}

// New returns an empty tracker. It starts nothing: Run expires records.
func New(cfg Config) *Tracker {
	cfg = cfg.withDefaults()
	return &Tracker{
		reconf:     make(chan struct{}, 1),
		ruidPrefix: fmt.Sprintf("dlgs-%x-", time.Now().Unix()),
		cfg:        cfg,
		tab:        newTable(cfg.MaxRecords),
		tags:       make(map[string]int),
		sources:    make(map[sourceKey]int32),
		sets:       make(map[int32]int),
	}
}

// SetConfig replaces the configuration; records already held follow the
// new lifetimes at the next expiry. A raised cap grows the Call-ID index
// here, once, rather than in Observe.
func (t *Tracker) SetConfig(cfg Config) {
	t.mu.Lock()
	t.cfg = cfg.withDefaults()
	t.tab.reserve(t.cfg.MaxRecords)
	t.mu.Unlock()
	select {
	case t.reconf <- struct{}{}:
	default:
	}
}

func (t *Tracker) timerInterval() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg.TimerInterval
}

// Run expires records every TimerInterval until ctx ends; it returns nil.
func (t *Tracker) Run(ctx context.Context) error {
	for {
		timer := time.NewTimer(t.timerInterval())
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-t.reconf:
			timer.Stop()
		case <-timer.C:
			t.Expire(time.Now())
		}
	}
}

// scanChunk is how many slots a scan visits per hold of the lock.
const scanChunk = 1 << 14

// scan calls fn, under the lock, for every record held, a chunk of slots
// at a time, until fn returns false. Between chunks others may change the
// table: a scan is not a snapshot. fn must not keep r.
func (t *Tracker) scan(fn func(i uint32, r *record) bool) {
	for start := uint64(1); ; start += scanChunk {
		t.mu.Lock()
		end := min(start+scanChunk, uint64(t.tab.top))
		for i := start; i < end; i++ {
			r := t.tab.at(uint32(i))
			if r.seq != 0 && !fn(uint32(i), r) {
				t.mu.Unlock()
				return
			}
		}
		more := end < uint64(t.tab.top)
		t.mu.Unlock()
		if !more {
			return
		}
	}
}

// Expire removes the records whose lifetime ended before now and returns
// how many. Each removal counts in Stats.Final.
func (t *Tracker) Expire(now time.Time) int {
	ns := now.UnixNano()
	n := 0
	t.scan(func(i uint32, r *record) bool {
		var since int64
		var life time.Duration
		switch r.state {
		case Init, Progress, Answered:
			since, life = r.init, t.cfg.InitLifetime
		case Confirmed:
			since, life = r.answer, t.cfg.ActiveLifetime
		default:
			since, life = r.finish, t.cfg.FinishLifetime
		}
		if ns-since > int64(life) { // since+life < now, without overflow for huge lifetimes
			t.remove(i, r)
			n++
		}
		return true
	})
	return n
}

// Len returns the number of records held.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tab.used
}

// Stats returns a copy of the gauges and counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// decrement lowers a gauge, or counts an underflow instead of wrapping.
func (t *Tracker) decrement(g *uint64) {
	if *g == 0 {
		t.stats.Underflow++
		return
	}
	*g--
}

// setState moves a record to state to, keeping the gauges, the setup list
// and the tag counts in step.
func (t *Tracker) setState(i uint32, r *record, to State) {
	from := r.state
	t.decrement(&t.stats.Active[from])
	t.stats.Active[to]++
	r.state = to
	if from.setup() && !to.setup() {
		t.tab.setupRemove(i)
	}
	if from.live() && !to.live() {
		t.uncountLive(r)
	}
}

// remove drops a record from the table, counting it in Final.
func (t *Tracker) remove(i uint32, r *record) {
	t.decrement(&t.stats.Active[r.state])
	t.stats.Final[r.state]++
	if r.state.setup() {
		t.tab.setupRemove(i)
	}
	if r.state.live() {
		t.uncountLive(r)
	}
	t.tab.release(i)
}

func (t *Tracker) tag(tag string) {
	if n, ok := t.tags[tag]; ok {
		t.tags[tag] = n + 1
		return
	}
	// A copy: the tag is a substring of the record's arena, which a learnt
	// To tag replaces; as a key it would keep the old arena alive.
	t.tags[strings.Clone(tag)] = 1
}

func (t *Tracker) untag(tag string) {
	n := t.tags[tag]
	switch {
	case n > 1:
		t.tags[tag] = n - 1
	case n == 1:
		delete(t.tags, tag)
	default:
		t.stats.Underflow++
	}
}

// countLive counts a record that became live under its tags, source and
// set; uncountLive undoes it when it stops being live. Every count is kept
// in the same O(1) way, at the same places (create, setState, remove).
func (t *Tracker) countLive(r *record) {
	r.eachTag(t.tag)
	if k, ok := keyOf(r.source()); ok {
		t.sources[k]++
	}
	if set := r.setID(); set >= 0 {
		t.sets[set]++
	}
}

func (t *Tracker) uncountLive(r *record) {
	r.eachTag(t.untag)
	if k, ok := keyOf(r.source()); ok {
		uncount(t, t.sources, k)
	}
	if set := r.setID(); set >= 0 {
		uncount(t, t.sets, set)
	}
}

// sourceKey is a source address as the per-source counts key it: its 16
// bytes, IPv4 as IPv4-mapped (sources are unmapped first, so no IPv6 key
// is one). No pointer, 8 bytes less than a netip.Addr: at a million
// distinct callers the map is tens of MB.
type sourceKey [16]byte

// keyOf is a's key; false for an invalid address.
func keyOf(a netip.Addr) (sourceKey, bool) {
	a = a.Unmap()
	if !a.IsValid() {
		return sourceKey{}, false
	}
	return a.As16(), true
}

// uncount lowers a count, deleting it at zero, or counts an underflow.
func uncount[K comparable, V int | int32](t *Tracker, counts map[K]V, k K) {
	n := counts[k]
	switch {
	case n > 1:
		counts[k] = n - 1
	case n == 1:
		delete(counts, k)
	default:
		t.stats.Underflow++
	}
}
