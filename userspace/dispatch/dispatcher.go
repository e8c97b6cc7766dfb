package dispatch

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Dispatcher is the live dispatcher: the current Snapshot, swapped
// atomically, plus the operations that change it. Select and Snapshot are
// lock-free; writers (state changes, add, remove, reload) are serialized.
// Every change builds a new Snapshot (copy-on-write), so a reader never sees
// a half-built table.
type Dispatcher struct {
	cur atomic.Pointer[Snapshot]

	rebuildMu sync.Mutex // serializes Replace, Add, Remove (held during DNS)
	mu        sync.Mutex // serializes swaps and subscriber calls

	subsMu  sync.Mutex
	subs    map[uint64]func(*Snapshot)
	nextSub uint64

	ping     atomic.Bool
	pingMu   sync.Mutex // serializes SetPingActive and its subscribers
	pingSubs map[uint64]func(on bool)

	lat   latencyTable             // probe latency statistics, kept across swaps
	loads atomic.Pointer[CallLoad] // alg 10 (callload.go), kept across swaps
	cc    ccTable                  // congestion-control rweights (congestion.go); under mu

	addCheck func(*Snapshot) error // SetAddCheck; under rebuildMu
}

// SetAddCheck sets a check Add applies to the snapshot it would serve
// before swapping it in: the caller's rules about its sets (the agent's:
// every destination of an algorithm 10 set has its own duid), which this
// package does not know. nil: none.
func (d *Dispatcher) SetAddCheck(check func(*Snapshot) error) {
	d.rebuildMu.Lock()
	defer d.rebuildMu.Unlock()
	d.addCheck = check
}

// New returns a Dispatcher serving snap (nil: no sets). Pinging starts
// active, as in Kamailio.
func New(snap *Snapshot) *Dispatcher {
	d := &Dispatcher{subs: map[uint64]func(*Snapshot){}}
	snap = orEmpty(snap)
	snap.lat = &d.lat
	d.cur.Store(snap)
	d.ping.Store(true)
	return d
}

func orEmpty(snap *Snapshot) *Snapshot {
	if snap == nil {
		return &Snapshot{shuf: newShuffler(nil)}
	}
	return snap
}

// Snapshot returns the current snapshot.
func (d *Dispatcher) Snapshot() *Snapshot { return d.cur.Load() }

// Replace swaps in a new snapshot (dispatcher.reload). Runtime state is
// whatever snap holds; the round-robin and weight counters restart at 0.
// Latency statistics are kept for every (set, URI) snap still has, and
// dropped for the others (kamailio PR #3534).
func (d *Dispatcher) Replace(snap *Snapshot) {
	d.rebuildMu.Lock()
	defer d.rebuildMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	snap = orEmpty(snap)
	snap.resetCounters()
	d.swapLocked(snap)
	d.lat.prune(snap)
	d.cc.reset()
}

// Select picks from the current snapshot; see Snapshot.Select.
func (d *Dispatcher) Select(setID int, alg Alg, key Key, limit int) (Selection, error) {
	return d.cur.Load().Select(setID, alg, key, limit)
}

// SetState is RPC dispatcher.set_state: state is 0/i, 1/a, 2/d or 3/t
// (inactive, active, disabled, trying), optionally followed by p (probing);
// addr is a destination URI (compared ignoring case, as Kamailio does), an
// IUID, or "all" for the whole set. The bits are written as given: no
// thresholds. Every destination with that URI changes (Kamailio stops at the
// first duplicate).
func (d *Dispatcher) SetState(setID int, addr string, state string) error {
	req, err := parseRPCState(state)
	if err != nil {
		return fmt.Errorf("set state of %q in set %d: %w", addr, setID, err)
	}
	_, err = d.change(setID, byAddr(addr, true), func(dst *Destination) {
		dst.Flags = dst.Flags&^stateBits | req
	})
	if err != nil {
		return fmt.Errorf("set state of %q in set %d: %w", addr, setID, err)
	}
	return nil
}

// Mark is ds_mark_dst / ds_mark_addr: state letters a, i, t, d, p (any
// case; empty = i). It bypasses the thresholds: t makes the destination
// inactive at once, a active at once.
func (d *Dispatcher) Mark(setID int, addr string, state string) error {
	req, err := parseMarkState(state)
	if err != nil {
		return fmt.Errorf("mark %q in set %d: %w", addr, setID, err)
	}
	_, err = d.change(setID, byAddr(addr, false), func(dst *Destination) {
		dst.Flags, dst.ProbingCount = transition(dst.Flags, dst.ProbingCount, req, true, ProbeParams{})
	})
	if err != nil {
		return fmt.Errorf("mark %q in set %d: %w", addr, setID, err)
	}
	return nil
}

// ProbeResult feeds the result of one keepalive probe of addr (a URI, or
// better the destination's IUID, which names one destination even when a
// URI is listed twice) into the state machine of §3.4. success means a 2xx
// or a configured reply code. It reports whether any destination's flags
// changed. The result is ignored for a disabled destination, and in mode 3
// for one that lost PROBING meanwhile.
func (d *Dispatcher) ProbeResult(setID int, addr string, success bool, p ProbeParams) (changed bool, err error) {
	if p.Mode < 0 || p.Mode > maxProbingMode {
		return false, fmt.Errorf("probe result for %q in set %d: probing mode %d outside 0..%d", addr, setID, p.Mode, maxProbingMode)
	}
	changed, err = d.change(setID, byAddr(addr, false), func(dst *Destination) {
		probeStep(dst, success, p)
	})
	if err != nil {
		return false, fmt.Errorf("probe result for %q in set %d: %w", addr, setID, err)
	}
	return changed, nil
}

// change applies fn to the matching destinations of a set and swaps in the
// result. It reports whether any flags changed.
func (d *Dispatcher) change(setID int, match destMatch, fn func(*Destination)) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cur.Load()
	if !cur.Exists(setID) {
		return false, ErrNoSet
	}
	// The set's rweights as congestion control left them: a table rebuilt
	// for an up/down change uses them, as Kamailio's in-place ones.
	var rw func(i int) int
	if set := cur.Set(setID); set != nil {
		if c := d.cc.current(set); c != nil {
			rw = c.rweight
		}
	}
	next, found := cur.derive(setID, match, fn, rw)
	if !found {
		return false, ErrUnknownDestination
	}
	if next == nil {
		return false, nil
	}
	flagsChanged := !slices.EqualFunc(cur.Set(setID).Dests, next.Set(setID).Dests,
		func(a, b Destination) bool { return a.Flags == b.Flags })
	d.swapLocked(next)
	return flagsChanged, nil
}

// Add adds a destination, like dispatcher.add. The entry is checked as a
// dispatcher.list line is (Entry.Check, then Build's URI and attribute
// parsing) and resolved outside the swap lock; then only its set is
// rebuilt: other sets, their tables and counters stay as they are, the
// set's destinations keep their runtime state and its counters restart.
// A host name already resolved is not looked up again. The cost is linear
// in the size of the snapshot, not in a rebuild of every set.
func (d *Dispatcher) Add(ctx context.Context, e Entry) error {
	d.rebuildMu.Lock()
	defer d.rebuildMu.Unlock()
	if e.Source == "" {
		e.Source = "dispatcher.add"
	}
	dest, err := prepareOne(ctx, e, d.cur.Load())
	if err != nil {
		return fmt.Errorf("add %q to set %d: %w", e.URI, e.SetID, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next, err := d.cur.Load().withAdded(e, dest)
	if err != nil {
		return fmt.Errorf("add %q to set %d: %w", e.URI, e.SetID, err)
	}
	if d.addCheck != nil {
		if err := d.addCheck(next); err != nil {
			return fmt.Errorf("add %q to set %d: %w", e.URI, e.SetID, err)
		}
	}
	d.swapLocked(next)
	d.cc.reset()
	return nil
}

// Remove removes every destination of the set with that URI (compared as
// stored, case-sensitively, as dispatcher.remove does; the no-scheme "sip:"
// retry applies to uri too) and rebuilds, like Add.
func (d *Dispatcher) Remove(setID int, uri string) error {
	d.rebuildMu.Lock()
	defer d.rebuildMu.Unlock()
	cur := d.cur.Load()
	if !cur.Exists(setID) {
		return fmt.Errorf("remove %q from set %d: %w", uri, setID, ErrNoSet)
	}
	want := normalizeURI(uri)
	var kept []Entry
	for _, e := range cur.entries {
		if e.SetID == setID && normalizeURI(e.URI) == want {
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) == len(cur.entries) {
		return fmt.Errorf("remove %q from set %d: %w", uri, setID, ErrUnknownDestination)
	}
	if err := d.rebuildLocked(context.Background(), cur, kept); err != nil {
		return fmt.Errorf("remove %q from set %d: %w", uri, setID, err)
	}
	return nil
}

// rebuildLocked builds a snapshot from entries (DNS outside the swap lock),
// carries runtime state over from the snapshot current at swap time, and
// swaps it in. The caller holds rebuildMu.
func (d *Dispatcher) rebuildLocked(ctx context.Context, cur *Snapshot, entries []Entry) error {
	p, err := prepare(ctx, entries, cur.opt, cur.resolvedHosts())
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next, err := p.assemble(cur.shuf, d.cur.Load())
	if err != nil {
		return err
	}
	d.swapLocked(next)
	d.lat.prune(next)
	d.cc.reset()
	return nil
}

// swapLocked stores snap and tells the subscribers, in swap order. The
// caller holds mu.
func (d *Dispatcher) swapLocked(snap *Snapshot) {
	snap.lat = &d.lat
	snap.loads = d.loads.Load()
	d.cur.Store(snap)
	d.subsMu.Lock()
	fns := make([]func(*Snapshot), 0, len(d.subs))
	ids := make([]uint64, 0, len(d.subs))
	for id := range d.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fns = append(fns, d.subs[id])
	}
	d.subsMu.Unlock()
	for _, fn := range fns {
		fn(snap)
	}
}

// Subscribe registers fn to be called with each new snapshot after it is
// swapped in, in swap order, in subscription order. fn runs while writers
// are held off, so it must be quick and must not call SetState, Mark,
// ProbeResult(s), Add, Remove or Replace, nor RWeights, which takes the
// same lock (reading the snapshot, and cancel, are fine).
// cancel stops further calls.
func (d *Dispatcher) Subscribe(fn func(*Snapshot)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	d.subsMu.Lock()
	defer d.subsMu.Unlock()
	id := d.nextSub
	d.nextSub++
	d.subs[id] = fn
	var once sync.Once
	return func() {
		once.Do(func() {
			d.subsMu.Lock()
			defer d.subsMu.Unlock()
			delete(d.subs, id)
		})
	}
}

// PingActive reports whether keepalive probing is on (dispatcher.ping_active).
func (d *Dispatcher) PingActive() bool { return d.ping.Load() }

// SetPingActive turns keepalive probing on or off and returns the old value.
// A change is pushed to the SubscribePingActive subscribers before it
// returns, so dispatcher.ping_active takes effect at once.
func (d *Dispatcher) SetPingActive(on bool) (old bool) {
	d.pingMu.Lock()
	defer d.pingMu.Unlock()
	old = d.ping.Swap(on)
	if old != on {
		ids := slices.Sorted(maps.Keys(d.pingSubs))
		for _, id := range ids {
			d.pingSubs[id](on)
		}
	}
	return old
}

// SubscribePingActive registers fn to be called with the new value each
// time SetPingActive changes it, in subscription order. fn runs while
// SetPingActive holds its lock: it must be quick and must not call
// SetPingActive. cancel stops further calls.
func (d *Dispatcher) SubscribePingActive(fn func(on bool)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	d.pingMu.Lock()
	defer d.pingMu.Unlock()
	if d.pingSubs == nil {
		d.pingSubs = map[uint64]func(bool){}
	}
	d.subsMu.Lock()
	id := d.nextSub
	d.nextSub++
	d.subsMu.Unlock()
	d.pingSubs[id] = fn
	var once sync.Once
	return func() {
		once.Do(func() {
			d.pingMu.Lock()
			defer d.pingMu.Unlock()
			delete(d.pingSubs, id)
		})
	}
}
