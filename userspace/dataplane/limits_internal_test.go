package dataplane

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/sipedge/sipedge/userspace/testutil"
)

// limitEntries reads limit_block.
func limitEntries(t *testing.T, dp *Dataplane) map[xdpsipLimitKey]uint32 {
	t.Helper()
	got := map[xdpsipLimitKey]uint32{}
	var k xdpsipLimitKey
	var v xdpsipLimitVerdict
	it := dp.objs.LimitBlock.Iterate()
	for it.Next(&k, &v) {
		got[k] = v.Rule
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestFastPathLimitBlocks: the verdicts given before the program loads
// are written when it loads, over whatever a pinned limit_block held; when
// limit_block is full, the entries that do not fit wait behind a LimitAll
// entry in the slot kept for it, and take the room freed by an unblock;
// LimitAll goes once nothing waits (unless it was given itself).
func TestFastPathLimitBlocks(t *testing.T) {
	testutil.NeedRoot(t)
	dp, err := Load(Options{NoPin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	src := func(i int) LimitBlock {
		return LimitBlock{Kind: LimitSource, Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
	}
	key := func(b LimitBlock) xdpsipLimitKey {
		k, err := limitKey(b)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	all := LimitBlock{Kind: LimitAll}
	check := func(what string, want map[xdpsipLimitKey]uint32) {
		t.Helper()
		got := limitEntries(t, dp)
		if !maps.Equal(got, want) {
			t.Errorf("%s: limit_block %v, want %v", what, got, want)
		}
		// limit_active has the bit of each kind present, and no other.
		var kinds uint32
		for k := range got {
			kinds |= 1 << k.Kind
		}
		var a xdpsipLimitPresent
		if err := dp.objs.LimitActive.Lookup(uint32(0), &a); err != nil || a.Kinds != kinds {
			t.Errorf("%s: limit_active %#x (%v), want %#x", what, a.Kinds, err, kinds)
		}
	}

	stale := LimitBlock{Kind: LimitSet, Set: 9} // an earlier agent's
	if err := dp.BlockLimit(stale, 4); err != nil {
		t.Fatal(err)
	}
	f := NewFastPath(FastPathConfig{})
	if err := f.SetLimitBlock(src(1), 0, true); err != nil {
		t.Fatal(err)
	}
	if err := f.loadLimits(dp); err != nil {
		t.Fatal(err)
	}
	check("loaded", map[xdpsipLimitKey]uint32{key(src(1)): 0})

	f.lmu.Lock()
	f.lcap = 3 // two entries and LimitAll's slot
	f.lmu.Unlock()
	for i := 2; i <= 4; i++ {
		if err := f.SetLimitBlock(src(i), i, true); err != nil {
			t.Fatal(err)
		}
	}
	check("full", map[xdpsipLimitKey]uint32{key(src(1)): 0, key(src(2)): 2, key(all): 0})
	if err := f.SetLimitBlock(src(1), 0, false); err != nil {
		t.Fatal(err)
	}
	got := limitEntries(t, dp)
	if len(got) != 3 || got[key(src(2))] != 2 || got[key(all)] != 0 {
		t.Errorf("one waiting entry took the slot: limit_block %v, want source 2, one of 3 and 4, and LimitAll", got)
	}
	for i := 3; i <= 4; i++ {
		if err := f.SetLimitBlock(src(i), i, false); err != nil {
			t.Fatal(err)
		}
	}
	check("none waits", map[xdpsipLimitKey]uint32{key(src(2)): 2})
	if err := f.SetLimitBlock(all, 7, true); err != nil {
		t.Fatal(err)
	}
	if err := f.SetLimitBlock(src(2), 2, false); err != nil {
		t.Fatal(err)
	}
	check("LimitAll given", map[xdpsipLimitKey]uint32{key(all): 7})

	if err := dp.ClearLimitBlocks(); err != nil {
		t.Fatal(err)
	}
	check("cleared", map[xdpsipLimitKey]uint32{})
	f.unloadLimits()
	if err := f.SetLimitBlock(src(5), 5, true); err != nil {
		t.Fatal(err)
	}
	check("unloaded: not written", map[xdpsipLimitKey]uint32{})
}
