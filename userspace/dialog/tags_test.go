package dialog

import (
	"slices"
	"testing"
	"time"
	"unsafe"
)

// TestTags checks that tags are a set per record, counted for live dialogs
// only, and that every way a dialog stops being live uncounts them.
func TestTags(t *testing.T) {
	reinvite := func(call, branch string, add, remove []string) Message {
		m := invite(call, branch)
		m.AddTags, m.RemoveTags = add, remove
		return m
	}
	tests := []struct {
		name   string
		cfg    Config
		msgs   []Message
		expire time.Duration // when > 0, Expire at t0+expire after the messages
		counts map[string]int
		tags   []string // of the newest record of "c"
	}{
		{name: "INVITE tags its dialog", msgs: []Message{invite("c", "b1", "10.0.0.1", "gw")},
			counts: map[string]int{"10.0.0.1": 1, "gw": 1}, tags: []string{"10.0.0.1", "gw"}},
		{name: "a tag added twice counts once", msgs: []Message{invite("c", "b1", "gw", "gw")},
			counts: map[string]int{"gw": 1}, tags: []string{"gw"}},
		{name: "an empty tag is not added", msgs: []Message{invite("c", "b1", "")},
			counts: map[string]int{"": 0}},
		{name: "retransmitted INVITE tags once (kamailio quirk fixed)",
			msgs:   []Message{invite("c", "b1", "gw"), invite("c", "b1", "gw")},
			counts: map[string]int{"gw": 1}, tags: []string{"gw"}},
		{name: "two dialogs with a tag count two",
			msgs:   []Message{invite("c", "b1", "gw"), invite("d", "b1", "gw")},
			counts: map[string]int{"gw": 2}, tags: []string{"gw"}},
		{name: "removals apply after additions",
			msgs:   []Message{reinvite("c", "b1", []string{"a", "b"}, []string{"a"})},
			counts: map[string]int{"a": 0, "b": 1}, tags: []string{"b"}},
		{name: "re-INVITE adds and removes tags of the live record",
			msgs: []Message{invite("c", "b1", "a", "b"), reply("c", 200), request("c", Ack),
				reinvite("c", "b2", []string{"c", "a"}, []string{"b"})},
			counts: map[string]int{"a": 1, "b": 0, "c": 1}, tags: []string{"a", "c"}},
		{name: "retransmitted re-INVITE changes nothing more",
			msgs: []Message{invite("c", "b1", "a", "b"), reinvite("c", "b2", []string{"c"}, []string{"a"}),
				reinvite("c", "b2", []string{"c"}, []string{"a"})},
			counts: map[string]int{"a": 0, "b": 1, "c": 1}, tags: []string{"b", "c"}},
		{name: "TERMINATED uncounts", msgs: []Message{invite("c", "b1", "gw"), reply("c", 200), request("c", Bye)},
			counts: map[string]int{"gw": 0}, tags: []string{"gw"}},
		{name: "NOTANSWERED uncounts", msgs: []Message{invite("c", "b1", "gw"), request("c", Cancel)},
			counts: map[string]int{"gw": 0}, tags: []string{"gw"}},
		{name: "serial fork counts the new record only",
			msgs:   []Message{invite("c", "b1", "gw"), reply("c", 503), invite("c", "b2", "gw")},
			counts: map[string]int{"gw": 1}, tags: []string{"gw"}},
		{name: "expiry of a live record uncounts", cfg: Config{InitLifetime: time.Second},
			msgs: []Message{invite("c", "b1", "gw"), invite("d", "b1", "gw")}, expire: 2 * time.Second,
			counts: map[string]int{"gw": 0}},
		{name: "shedding uncounts", cfg: Config{MaxRecords: 1},
			msgs:   []Message{invite("c", "b1", "old"), invite("d", "b1", "new")},
			counts: map[string]int{"old": 0, "new": 1}},
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
			for tag, want := range tc.counts {
				if got := tr.TagsCount(tag); got != want {
					t.Errorf("TagsCount(%q) = %d, want %d", tag, got, want)
				}
			}
			if tc.tags != nil {
				if got := newest(t, tr, "c").Tags; !slices.Equal(got, tc.tags) {
					t.Errorf("tags %q, want %q", got, tc.tags)
				}
			}
		})
	}
}

// TestCap checks the cap: the oldest INIT/PROGRESS record is shed first,
// ANSWERED and later records are never shed, and an INVITE with nothing to
// shed is refused; all counted.
func TestCap(t *testing.T) {
	tests := []struct {
		name  string
		msgs  []Message
		left  []string // calls held afterwards
		stats Stats
	}{
		{name: "the oldest INIT is shed first",
			msgs: []Message{invite("a", "b1"), invite("b", "b1"), invite("c", "b1")}, left: []string{"b", "c"},
			stats: Stats{Active: active(Init, Init), Final: active(Init), Shed: 1}},
		{name: "creation order, not the order of the last change",
			msgs: []Message{invite("a", "b1"), invite("b", "b1"), reply("a", 180), invite("c", "b1")}, left: []string{"b", "c"},
			stats: Stats{Active: active(Init, Init), Final: active(Progress), Shed: 1}},
		{name: "ANSWERED is not shed: the next INIT is",
			msgs: []Message{invite("a", "b1"), reply("a", 200), invite("b", "b1"), invite("c", "b1")}, left: []string{"a", "c"},
			stats: Stats{Active: active(Answered, Init), Final: active(Init), Shed: 1}},
		{name: "nothing sheddable: refused",
			msgs: []Message{invite("a", "b1"), reply("a", 200), invite("b", "b1"), reply("b", 486), invite("c", "b1")},
			left: []string{"a", "b"}, stats: Stats{Active: active(Answered, NotAnswered), Refused: 1}},
		{name: "a retransmission at the cap sheds nothing",
			msgs: []Message{invite("a", "b1"), invite("b", "b1"), invite("b", "b1")}, left: []string{"a", "b"},
			stats: Stats{Active: active(Init, Init), Ignored: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Config{MaxRecords: 2})
			observe(t, tr, tc.msgs...)
			if got := tr.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
			var left []string
			for _, r := range tr.List(0) {
				left = append(left, r.CallID)
			}
			slices.Sort(left)
			if !slices.Equal(left, tc.left) {
				t.Errorf("held %q, want %q", left, tc.left)
			}
		})
	}
}

// TestCapFlood floods fresh Call-IDs at a small cap: the records stay at
// the cap, the newest INIT records are the ones held, and every INVITE is
// accounted for.
func TestCapFlood(t *testing.T) {
	const capacity, flood = 100, 10_000
	tr := New(Config{MaxRecords: capacity})
	var msgs []Message
	for i := range flood {
		msgs = append(msgs, invite(callName(i), "b1"))
	}
	tr.Observe(msgs)
	if err := tr.checkConsistency(true); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if tr.Len() != capacity || st.Shed != flood-capacity || st.Final[Init] != flood-capacity {
		t.Errorf("%d records, %d shed, final %v", tr.Len(), st.Shed, st.Final)
	}
	for _, r := range tr.List(0) {
		if !slices.ContainsFunc(msgs[flood-capacity:], func(m Message) bool { return m.CallID == r.CallID }) {
			t.Errorf("held %q, not one of the newest", r.CallID)
		}
	}
}

// TestTagKeysCopied checks that the tag counts keep no arena alive: a
// learnt To tag replaces the arena, and a key inside the old one would keep
// it (measured: 489.5 instead of 340.3 B/dialog with a tag per dialog).
func TestTagKeysCopied(t *testing.T) {
	tr := New(Config{})
	observe(t, tr, invite("c", "b1", "gw"))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r := tr.tab.at(tr.tab.newest(callHash("c")))
	start := uintptr(unsafe.Pointer(unsafe.StringData(r.arena)))
	for key := range tr.tags {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(key))); p >= start && p < start+uintptr(len(r.arena)) {
			t.Errorf("tag key %q lies in the record's arena", key)
		}
	}
}
