package dialog

import (
	"net/netip"
	"testing"
	"time"
)

// TestSourceSetCounts: the per-source and per-set counts follow the live
// dialogs, as the tag counts do: up on a new record, not on its
// retransmission or re-INVITE, down on every way a dialog stops being live.
func TestSourceSetCounts(t *testing.T) {
	a1, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::7")
	from := func(call, branch string, src netip.Addr, set int) Message {
		m := invite(call, branch)
		m.Source, m.Set = src, set
		return m
	}
	tests := []struct {
		name    string
		cfg     Config
		msgs    []Message
		expire  time.Duration // when > 0, Expire at t0+expire after the messages
		sources map[netip.Addr]int
		sets    map[int]int
	}{
		{name: "INVITE counts its source and set", msgs: []Message{from("c", "b1", a1, 1), from("d", "b1", a6, 2)},
			sources: map[netip.Addr]int{a1: 1, a6: 1}, sets: map[int]int{1: 1, 2: 1}},
		{name: "IPv4-mapped and zoned sources count as the plain address",
			msgs:    []Message{from("c", "b1", netip.AddrFrom16(a1.As16()), 1), from("d", "b1", a6.WithZone("eth0"), 1)},
			sources: map[netip.Addr]int{a1: 1, a6: 1}, sets: map[int]int{1: 2}},
		{name: "retransmission and re-INVITE count once",
			msgs: []Message{from("c", "b1", a1, 1), from("c", "b1", a1, 1), reply("c", 200), request("c", Ack),
				from("c", "b2", a1, 1)},
			sources: map[netip.Addr]int{a1: 1}, sets: map[int]int{1: 1}},
		{name: "no source, no set: not counted", msgs: []Message{from("c", "b1", netip.Addr{}, -1)},
			sources: map[netip.Addr]int{}, sets: map[int]int{-1: 0}},
		{name: "BYE, CANCEL and a final ≥300 uncount",
			msgs: []Message{from("c", "b1", a1, 1), reply("c", 200), request("c", Bye),
				from("d", "b1", a1, 1), request("d", Cancel), from("e", "b1", a1, 1), reply("e", 486)},
			sources: map[netip.Addr]int{a1: 0}, sets: map[int]int{1: 0}},
		{name: "serial fork counts the new record only",
			msgs:    []Message{from("c", "b1", a1, 1), reply("c", 503), from("c", "b2", a1, 2)},
			sources: map[netip.Addr]int{a1: 1}, sets: map[int]int{1: 0, 2: 1}},
		{name: "expiry uncounts", cfg: Config{InitLifetime: time.Second},
			msgs: []Message{from("c", "b1", a1, 1), from("d", "b1", a1, 1)}, expire: 2 * time.Second,
			sources: map[netip.Addr]int{a1: 0}, sets: map[int]int{1: 0}},
		{name: "shedding uncounts", cfg: Config{MaxRecords: 1},
			msgs:    []Message{from("c", "b1", a1, 1), from("d", "b1", a6, 2)},
			sources: map[netip.Addr]int{a1: 0, a6: 1}, sets: map[int]int{1: 0, 2: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(tc.cfg)
			observe(t, tr, tc.msgs...)
			if tc.expire > 0 {
				tr.Expire(t0.Add(tc.expire))
				if err := tr.checkConsistency(true); err != nil {
					t.Fatal(err)
				}
			}
			for a, want := range tc.sources {
				if got := tr.SourceCount(a); got != want {
					t.Errorf("SourceCount(%v) = %d, want %d", a, got, want)
				}
			}
			for set, want := range tc.sets {
				if got := tr.SetCount(set); got != want {
					t.Errorf("SetCount(%d) = %d, want %d", set, got, want)
				}
			}
			listed := map[netip.Addr]int{}
			tr.Sources(func(a netip.Addr, n int) { listed[a] = n })
			for a, want := range tc.sources {
				if listed[a] != want {
					t.Errorf("Sources lists %v with %d, want %d", a, listed[a], want)
				}
			}
		})
	}
}

// TestRetransmits: an INVITE retransmits, and so is admitted whatever the
// limits, only when it repeats a record's branch; a new call, or a new
// branch of a live or finished Call-ID (which may be a new dialog at the
// destination), does not.
func TestRetransmits(t *testing.T) {
	tr := New(Config{})
	observe(t, tr, invite("c", "b1"))
	for _, tc := range []struct {
		call, branch string
		want         bool
	}{{"c", "b1", true}, {"c", "b2", false}, {"d", "b1", false}} {
		if got := tr.Retransmits(callHash(tc.call), tc.branch); got != tc.want {
			t.Errorf("live: Retransmits(%s, %s) = %v, want %v", tc.call, tc.branch, got, tc.want)
		}
	}
	observe(t, tr, reply("c", 486))
	if !tr.Retransmits(callHash("c"), "b1") || tr.Retransmits(callHash("c"), "b2") {
		t.Errorf("finished: Retransmits(c, b1) = %v (want true: a late retransmission), Retransmits(c, b2) = %v (want false: a serial fork)",
			tr.Retransmits(callHash("c"), "b1"), tr.Retransmits(callHash("c"), "b2"))
	}
}
