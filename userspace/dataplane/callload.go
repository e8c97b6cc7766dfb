package dataplane

import (
	"fmt"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// Call load (algorithm 10) in the fast path (bpf/callload.h): the program
// reads a load per (set, duid) from dst_load, by a load slot each
// destination carries in its dst_sets value; the agent's Call-ID table
// (dispatch.CallLoad) holds the loads that count, and SyncLoads writes
// them. A (set, duid) keeps its slot while the Dataplane lives, so a call
// the program remembers (call_dst holds the slot, not an index) still
// finds its destination after a reload moved it to another index.

// loadFullEvery is how often SyncLoads writes every load, changed or not:
// the program adds its own picks and releases between the agent's writes,
// and one whose event was lost (a full ring) would otherwise stay in
// dst_load until the load next changes in the table.
const loadFullEvery = time.Second

// loadKey names a load as dispatch.CallLoad does.
type loadKey struct {
	set  int
	duid string
}

// loadSlots are the load slots in use; slot 0 means none.
type loadSlots struct {
	byKey    map[loadKey]uint16
	keys     []loadKey // by slot; keys[0] is unused
	written  []int64   // by slot: the value last written
	lastFull time.Time
}

// assign gives every (set, duid) of snap a slot. When dst_load is full,
// slots of loads no longer in snap are reused: a call the program still
// remembers on one then goes to the new owner's destination, so this
// takes some thousands of duids coming and going while calls last.
func (l *loadSlots) assign(snap *dispatch.Snapshot, max int) error {
	if l.byKey == nil {
		l.byKey = map[loadKey]uint16{}
		l.keys = make([]loadKey, 1, 16)
		l.written = make([]int64, 1, 16)
	}
	var missing []loadKey
	live := map[loadKey]bool{}
	for _, s := range snap.Sets() {
		for i := range s.Dests {
			duid := s.Dests[i].Attrs.DUID
			if duid == "" {
				continue
			}
			k := loadKey{s.ID, duid}
			live[k] = true
			if _, ok := l.byKey[k]; !ok {
				missing = append(missing, k)
			}
		}
	}
	for _, k := range missing {
		if _, ok := l.byKey[k]; ok {
			continue // a duid twice in a set
		}
		if len(l.keys) < max {
			l.byKey[k] = uint16(len(l.keys))
			l.keys = append(l.keys, k)
			l.written = append(l.written, -1) // never written: the next sync writes it
			continue
		}
		reused := false
		for slot := 1; slot < len(l.keys); slot++ {
			if old := l.keys[slot]; !live[old] {
				delete(l.byKey, old)
				l.byKey[k], l.keys[slot], l.written[slot] = uint16(slot), k, -1
				reused = true
				break
			}
		}
		if !reused {
			return fmt.Errorf("call load: %d set and duid pairs, the fast path holds %d", len(live), max-1)
		}
	}
	return nil
}

// slot returns the load slot of (set, duid), 0 for none.
func (l *loadSlots) slot(set int, duid string) uint16 {
	if duid == "" {
		return 0
	}
	return l.byKey[loadKey{set, duid}]
}

// SetCallLoads makes load the source of the alg 10 loads (the agent's
// Call-ID table, dispatch.CallLoad.Load) and writes them all; SyncSets
// writes them all again, SyncLoads those that changed.
func (d *Dataplane) SetCallLoads(load func(set int, duid string) int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loadsFrom = load
	_, err := d.syncLoads(load, true)
	return err
}

// SyncLoads writes into dst_load the loads of every (set, duid) that
// changed in the source since the last write, and all of them once every
// loadFullEvery. It returns how many it wrote (none without a source).
func (d *Dataplane) SyncLoads() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loadsFrom == nil {
		return 0, nil
	}
	return d.syncLoads(d.loadsFrom, false)
}

func (d *Dataplane) syncLoads(load func(set int, duid string) int64, all bool) (int, error) {
	l := &d.loads
	now := time.Now()
	if now.Sub(l.lastFull) >= loadFullEvery {
		all = true
	}
	n := 0
	for slot := 1; slot < len(l.keys); slot++ {
		k := l.keys[slot]
		v := load(k.set, k.duid)
		if !all && v == l.written[slot] {
			continue
		}
		if err := d.objs.DstLoad.Put(uint32(slot), v); err != nil {
			return n, fmt.Errorf("write load of set %d duid %q: %w", k.set, k.duid, err)
		}
		l.written[slot] = v
		n++
	}
	if all {
		l.lastFull = now
	}
	return n, nil
}

// CallLoad returns the load dst_load holds for (set, duid), and false when
// the (set, duid) has no load slot.
func (d *Dataplane) CallLoad(set int, duid string) (int64, bool, error) {
	d.mu.Lock()
	slot := d.loads.slot(set, duid)
	d.mu.Unlock()
	if slot == 0 {
		return 0, false, nil
	}
	var v int64
	if err := d.objs.DstLoad.Lookup(uint32(slot), &v); err != nil {
		return 0, true, fmt.Errorf("read load of set %d duid %q: %w", set, duid, err)
	}
	return v, true, nil
}

// callInit is enum call_state's CALL_INIT (bpf/consts.h).
const callInit = 1

// RecordCall tells the program that the call with Call-ID hash h went to
// the destination of set with duid, placed by the slow path (an INVITE
// the program passed up): the program then sends the call's later
// requests there itself, rather than passing them up as calls it does not
// hold, and does not place a retransmitted INVITE of it again. The call's
// load is the table's, which SyncLoads writes. A (set, duid) without a
// load slot changes nothing.
func (d *Dataplane) RecordCall(h uint64, set int, duid string) error {
	d.mu.Lock()
	slot := d.loads.slot(set, duid)
	d.mu.Unlock()
	if slot == 0 {
		return nil
	}
	if err := d.objs.CallDst.Put(h, &xdpsipCallDst{LoadSlot: uint32(slot), State: callInit}); err != nil {
		return fmt.Errorf("record call of set %d duid %q: %w", set, duid, err)
	}
	return nil
}
