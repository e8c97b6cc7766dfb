package dataplane

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"syscall"

	"github.com/cilium/ebpf"
)

// LimitKind is what a LimitBlock blocks (enum limit_kind).
type LimitKind uint8

// The kinds of LimitBlock.
const (
	LimitSource LimitKind = LimitKind(xdpsipLimitKindLIMIT_SOURCE) // a source address at its dialog limit
	LimitSet    LimitKind = LimitKind(xdpsipLimitKindLIMIT_SET)    // a destination set at its dialog limit
	LimitAll    LimitKind = LimitKind(xdpsipLimitKindLIMIT_ALL)    // every dialog-creating INVITE
)

// LimitBlock is one entry of limit_block: the fast path passes the
// dialog-creating INVITEs (no To tag) it matches to the slow path, which
// answers them (PASS_LIMIT_SOURCE, PASS_LIMIT_SET, PASS_LIMIT_ALL).
type LimitBlock struct {
	Kind   LimitKind
	Source netip.Addr // LimitSource
	Set    int        // LimitSet
}

// ErrLimitBlocksFull is returned by BlockLimit when limit_block holds
// MAX_LIMIT_BLOCKS entries already.
var ErrLimitBlocksFull = errors.New("limit_block is full")

func limitKey(b LimitBlock) (xdpsipLimitKey, error) {
	k := xdpsipLimitKey{Kind: uint8(b.Kind)}
	switch b.Kind {
	case LimitSource:
		a := b.Source.Unmap()
		switch {
		case a.Is4():
			k.Family = familyV4
			v4 := a.As4()
			copy(k.Addr[:], v4[:])
		case a.Is6():
			k.Family = familyV6
			k.Addr = a.As16()
		default:
			return k, fmt.Errorf("limit block: source %v is not an IP address", b.Source)
		}
	case LimitSet:
		if b.Set < 0 || b.Set > math.MaxInt32 {
			return k, fmt.Errorf("limit block: set %d out of range", b.Set)
		}
		k.SetId = int32(b.Set)
	case LimitAll:
	default:
		return k, fmt.Errorf("limit block: kind %d unknown", b.Kind)
	}
	return k, nil
}

// BlockLimit adds b to limit_block, rule being the index of the dialogs
// limit rule at its limit (shown by bpftool). Adding an entry already
// there updates its rule. limit_active says from then on that an entry of
// b's kind is there.
func (d *Dataplane) BlockLimit(b LimitBlock, rule int) error {
	k, err := limitKey(b)
	if err != nil {
		return err
	}
	v := xdpsipLimitVerdict{Rule: uint32(rule)}
	d.lmu.Lock()
	defer d.lmu.Unlock()
	err = d.objs.LimitBlock.Update(k, v, ebpf.UpdateNoExist)
	if errors.Is(err, ebpf.ErrKeyExist) {
		err = d.objs.LimitBlock.Update(k, v, ebpf.UpdateExist)
		if err != nil {
			return fmt.Errorf("block %+v: %w", b, err)
		}
		return nil
	}
	if err != nil {
		if errors.Is(err, syscall.E2BIG) { // a full hash map
			return fmt.Errorf("block %+v: %w", b, ErrLimitBlocksFull)
		}
		return fmt.Errorf("block %+v: %w", b, err)
	}
	d.limitCount[b.Kind]++
	return d.writeLimitKinds()
}

// UnblockLimit removes b from limit_block; removing one not there is no
// error.
func (d *Dataplane) UnblockLimit(b LimitBlock) error {
	k, err := limitKey(b)
	if err != nil {
		return err
	}
	d.lmu.Lock()
	defer d.lmu.Unlock()
	if err := d.objs.LimitBlock.Delete(k); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return fmt.Errorf("unblock %+v: %w", b, err)
	}
	d.limitCount[b.Kind]--
	return d.writeLimitKinds()
}

// ClearLimitBlocks empties limit_block: the agent's fast path calls it
// when it loads the program (a pinned map keeps an earlier agent's
// verdicts).
func (d *Dataplane) ClearLimitBlocks() error {
	d.lmu.Lock()
	defer d.lmu.Unlock()
	var k xdpsipLimitKey
	var v xdpsipLimitVerdict
	var keys []xdpsipLimitKey
	it := d.objs.LimitBlock.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("clear limit_block: %w", err)
	}
	for _, k := range keys {
		if err := d.objs.LimitBlock.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear limit_block: %w", err)
		}
	}
	d.limitCount = [numLimitKinds]int{}
	d.limitKindsWritten = -1 // written whatever it was
	return d.writeLimitKinds()
}

// numLimitKinds bounds LimitKind values.
const numLimitKinds = 4

// writeLimitKinds writes limit_active from the entry counts, when it
// changes. An entry is written before its kind's bit is set and removed
// before it is cleared, so the program never looks up a kind for nothing
// it should find. The caller holds d.lmu.
func (d *Dataplane) writeLimitKinds() error {
	var kinds uint32
	for kind, n := range d.limitCount {
		if n > 0 {
			kinds |= 1 << kind
		}
	}
	if int64(kinds) == d.limitKindsWritten {
		return nil
	}
	if err := d.objs.LimitActive.Put(uint32(0), xdpsipLimitPresent{Kinds: kinds}); err != nil {
		return fmt.Errorf("write limit_active: %w", err)
	}
	d.limitKindsWritten = int64(kinds)
	return nil
}

// SetLimitBlock adds b to the fast path's limit_block (blocked) or removes
// it. The FastPath keeps the verdicts it was given, so that a program
// loaded later (the fast path starts after the agent's first verdicts, or
// a pinned limit_block holds an earlier agent's) gets exactly them. A
// program not loaded is no error. Safe for concurrent use; it does not
// wait for a set sync.
//
// When limit_block is full, the entries that do not fit wait, and a
// LimitAll entry (its slot is kept free for it) sends every
// dialog-creating INVITE to the slow path, which is exact, until they fit
// again.
func (f *FastPath) SetLimitBlock(b LimitBlock, rule int, blocked bool) error {
	if _, err := limitKey(b); err != nil {
		return err
	}
	f.lmu.Lock()
	defer f.lmu.Unlock()
	if f.limits == nil {
		f.limits = make(map[LimitBlock]int)
		f.waiting = make(map[LimitBlock]bool)
	}
	_, had := f.limits[b]
	if blocked {
		f.limits[b] = rule
	} else {
		delete(f.limits, b)
	}
	if f.ldp == nil {
		return nil
	}
	all := LimitBlock{Kind: LimitAll}
	switch {
	case b == all:
		return f.writeAll()
	case blocked && had && !f.waiting[b]:
		return f.ldp.BlockLimit(b, rule) // a new rule index
	case blocked && had:
		return nil
	case blocked:
		if f.written() > f.lcap-1 { // b counted; the last slot is LimitAll's
			f.waiting[b] = true
			return f.writeAll()
		}
		return f.ldp.BlockLimit(b, rule)
	case f.waiting[b]:
		delete(f.waiting, b)
		return f.writeAll()
	case had:
		err := f.ldp.UnblockLimit(b)
		for w := range f.waiting { // one waiting entry takes the slot
			delete(f.waiting, w)
			err = errors.Join(err, f.ldp.BlockLimit(w, f.limits[w]))
			break
		}
		return errors.Join(err, f.writeAll())
	}
	return nil
}

// written is how many entries other than LimitAll limit_block holds.
func (f *FastPath) written() int {
	n := len(f.limits) - len(f.waiting)
	if _, ok := f.limits[LimitBlock{Kind: LimitAll}]; ok {
		n--
	}
	return n
}

// writeAll writes the LimitAll entry when the agent gave it or entries
// wait for room, and removes it otherwise.
func (f *FastPath) writeAll() error {
	all := LimitBlock{Kind: LimitAll}
	rule, ok := f.limits[all]
	if ok || len(f.waiting) > 0 {
		return f.ldp.BlockLimit(all, rule)
	}
	return f.ldp.UnblockLimit(all)
}

// loadLimits makes a freshly loaded program's limit_block hold exactly the
// verdicts given so far, and has later ones written to it.
func (f *FastPath) loadLimits(dp *Dataplane) error {
	f.lmu.Lock()
	defer f.lmu.Unlock()
	if err := dp.ClearLimitBlocks(); err != nil {
		return err
	}
	f.ldp, f.lcap = dp, int(dp.objs.LimitBlock.MaxEntries())
	clear(f.waiting)
	var errs []error
	n := 0
	for b, rule := range f.limits {
		if b.Kind == LimitAll {
			continue
		}
		if n >= f.lcap-1 {
			f.waiting[b] = true
			continue
		}
		errs = append(errs, dp.BlockLimit(b, rule))
		n++
	}
	if f.limits != nil {
		errs = append(errs, f.writeAll())
	}
	return errors.Join(errs...)
}

// unloadLimits stops writing verdicts to the program, which is about to
// close.
func (f *FastPath) unloadLimits() {
	f.lmu.Lock()
	f.ldp = nil
	f.lmu.Unlock()
}
