package dialog

import (
	"fmt"
	"maps"
)

// checkConsistency scans the whole table and returns what disagrees with
// the tracker's running bookkeeping: the Active gauges against the records
// per state, the tag, source and set counts against the live records, the
// records against their bucket chains, the setup list and the free list,
// and the cap (when capped is set: the cap was never lowered).
func (t *Tracker) checkConsistency(capped bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := &t.tab
	var perState [NumStates]uint64
	tags := map[string]int{}
	sources := map[sourceKey]int32{}
	sets := map[int32]int{}
	used, free := 0, 0
	liveOf := map[uint64]uint64{} // hash → seq of its live record
	newestOf := map[uint64]uint64{}
	for i := uint32(1); i < tab.top; i++ {
		r := tab.at(i)
		if r.seq == 0 {
			free++
			continue
		}
		used++
		if int(r.state) >= NumStates {
			return fmt.Errorf("slot %d: state %d", i, r.state)
		}
		perState[r.state]++
		if r.seq > t.seq {
			return fmt.Errorf("slot %d: seq %d beyond the last %d", i, r.seq, t.seq)
		}
		seen := map[string]bool{}
		var dup string
		r.eachTag(func(tag string) {
			if seen[tag] {
				dup = tag
			}
			seen[tag] = true
			if r.state.live() {
				tags[tag]++
			}
		})
		if dup != "" {
			return fmt.Errorf("slot %d: tag %q twice", i, dup)
		}
		if r.state.live() {
			if k, ok := keyOf(r.source()); ok {
				sources[k]++
			}
			if set := r.setID(); set >= 0 {
				sets[set]++
			}
		}
		if k := r.text(textKeys); len(k) != 4 && len(k) != 8 && len(k) != 20 {
			return fmt.Errorf("slot %d: keys of %d bytes", i, len(k))
		}
		if r.state.live() {
			if s, ok := liveOf[r.hash]; ok {
				return fmt.Errorf("hash %x: two live records (seq %d and %d)", r.hash, s, r.seq)
			}
			liveOf[r.hash] = r.seq
		}
		newestOf[r.hash] = max(newestOf[r.hash], r.seq)
		if r.init == 0 || (r.state >= Answered && r.state != NotAnswered && r.answer == 0) ||
			(!r.state.live() && r.finish == 0) {
			return fmt.Errorf("slot %d: state %v with timestamps %d/%d/%d", i, r.state, r.init, r.answer, r.finish)
		}
		if r.text(textFromTag) == "" || r.text(textBranch) == "" {
			return fmt.Errorf("slot %d: record without From tag or branch", i)
		}
	}
	for h, s := range liveOf {
		if newestOf[h] != s {
			return fmt.Errorf("hash %x: live record seq %d is not the newest (%d)", h, s, newestOf[h])
		}
	}
	if perState != t.stats.Active {
		return fmt.Errorf("active gauges %v, records per state %v", t.stats.Active, perState)
	}
	if used != tab.used {
		return fmt.Errorf("used %d, records %d", tab.used, used)
	}
	if capped && used > t.cfg.MaxRecords {
		return fmt.Errorf("%d records over the cap %d", used, t.cfg.MaxRecords)
	}
	if !maps.Equal(tags, t.tags) {
		return fmt.Errorf("tag counts %v, live tags %v", t.tags, tags)
	}
	if !maps.Equal(sources, t.sources) {
		return fmt.Errorf("source counts %v, live sources %v", t.sources, sources)
	}
	if !maps.Equal(sets, t.sets) {
		return fmt.Errorf("set counts %v, live sets %v", t.sets, sets)
	}
	// Every record is in its bucket's chain once, and chains hold nothing else.
	chained := 0
	for b, head := range tab.buckets {
		for i := head; i != 0; i = tab.at(i).next {
			r := tab.at(i)
			if r.seq == 0 || tab.bucket(r.hash) != &tab.buckets[b] {
				return fmt.Errorf("bucket %d chains slot %d (seq %d, hash %x)", b, i, r.seq, r.hash)
			}
			if chained++; chained > used {
				return fmt.Errorf("bucket chains longer than the %d records (a loop?)", used)
			}
		}
	}
	if chained != used {
		return fmt.Errorf("%d records chained, %d held", chained, used)
	}
	// The setup list: exactly the INIT/PROGRESS records, oldest first.
	n, prev, prevSeq := uint64(0), uint32(0), uint64(0)
	for i := tab.setupHead; i != 0; i = tab.at(i).setupNext {
		r := tab.at(i)
		if !r.state.setup() || r.setupPrev != prev || r.seq <= prevSeq {
			return fmt.Errorf("setup list: slot %d (state %v, seq %d after %d, prev %d want %d)", i, r.state, r.seq, prevSeq, r.setupPrev, prev)
		}
		if n++; n > uint64(used) {
			return fmt.Errorf("setup list longer than the records (a loop?)")
		}
		prev, prevSeq = i, r.seq
	}
	if prev != tab.setupTail || n != perState[Init]+perState[Progress] {
		return fmt.Errorf("setup list of %d ending at %d (tail %d), %d INIT/PROGRESS records", n, prev, tab.setupTail, perState[Init]+perState[Progress])
	}
	freeListed := 0
	for i := tab.free; i != 0; i = tab.at(i).next {
		if tab.at(i).seq != 0 {
			return fmt.Errorf("free list holds slot %d in use", i)
		}
		if freeListed++; freeListed > free {
			return fmt.Errorf("free list longer than the free slots (a loop?)")
		}
	}
	if freeListed != free {
		return fmt.Errorf("%d slots free, %d on the free list", free, freeListed)
	}
	var final uint64
	for _, n := range t.stats.Final {
		final += n
	}
	if t.seq != uint64(used)+final {
		return fmt.Errorf("%d records created, %d held + %d final", t.seq, used, final)
	}
	if t.stats.Underflow != 0 {
		return fmt.Errorf("%d underflows", t.stats.Underflow)
	}
	return nil
}
