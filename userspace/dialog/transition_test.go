package dialog

import (
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestTransitions walks each rule of kamailio-behaviour §8 ("Creating a
// record", "Matching", "Transitions") and the bad input around it.
func TestTransitions(t *testing.T) {
	tests := []struct {
		name  string
		msgs  []Message
		state State // of the newest record of call "c"
		stats Stats
		len   int
	}{
		{name: "create: INVITE starts a record in INIT",
			msgs: []Message{invite("c", "b1")}, state: Init,
			stats: Stats{Active: active(Init)}, len: 1},
		{name: "create: INVITE without From tag is ignored",
			msgs:  []Message{func() Message { m := invite("c", "b1"); m.FromTag = ""; return m }()},
			stats: Stats{Ignored: 1}},
		{name: "create: INVITE without branch is ignored",
			msgs: []Message{invite("c", "")}, stats: Stats{Ignored: 1}},
		{name: "create: INVITE without Call-ID is ignored",
			msgs:  []Message{func() Message { m := invite("c", "b1"); m.CallID, m.CallIDHash = "", 0; return m }()},
			stats: Stats{Ignored: 1}},
		{name: "create: the hash is computed from the Call-ID when missing",
			msgs:  []Message{func() Message { m := invite("c", "b1"); m.CallIDHash = 0; return m }(), reply("c", 180)},
			state: Progress, stats: Stats{Active: active(Progress)}, len: 1},
		{name: "create: INVITE with fields over 64 KiB is ignored",
			msgs:  []Message{func() Message { m := invite("c", "b1"); m.Data = strings.Repeat("d", 1<<16); return m }()},
			stats: Stats{Ignored: 1}},
		{name: "create: same Call-ID and branch is a retransmission",
			msgs: []Message{invite("c", "b1"), invite("c", "b1")}, state: Init,
			stats: Stats{Active: active(Init), Ignored: 1}, len: 1},
		{name: "create: another branch while the record is live is ignored (parallel fork, spiral)",
			msgs: []Message{invite("c", "b1"), reply("c", 180), invite("c", "b2")}, state: Progress,
			stats: Stats{Active: active(Progress), Ignored: 1}, len: 1},
		{name: "create: another branch after NOTANSWERED is a serial fork",
			msgs: []Message{invite("c", "b1"), reply("c", 486), invite("c", "b2")}, state: Init,
			stats: Stats{Active: active(NotAnswered, Init)}, len: 2},
		{name: "create: another branch after TERMINATED starts a new record",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Bye), invite("c", "b2")}, state: Init,
			stats: Stats{Active: active(Terminated, Init)}, len: 2},
		{name: "create: a late retransmission of the first branch after a serial fork is ignored",
			msgs:  []Message{invite("c", "b1"), reply("c", 486), invite("c", "b2"), reply("c", 486), invite("c", "b1")},
			state: NotAnswered, stats: Stats{Active: active(NotAnswered, NotAnswered), Ignored: 1}, len: 2},
		{name: "match: the serial-fork record matches first",
			msgs: []Message{invite("c", "b1"), reply("c", 486), invite("c", "b2"), reply("c", 180)}, state: Progress,
			stats: Stats{Active: active(NotAnswered, Progress)}, len: 2},
		{name: "1xx: INIT → PROGRESS",
			msgs: []Message{invite("c", "b1"), reply("c", 100)}, state: Progress,
			stats: Stats{Active: active(Progress)}, len: 1},
		{name: "1xx: PROGRESS stays (a second 1xx changes nothing)",
			msgs: []Message{invite("c", "b1"), reply("c", 100), reply("c", 180)}, state: Progress,
			stats: Stats{Active: active(Progress), Ignored: 1}, len: 1},
		{name: "1xx: after 2xx is ignored (out of order)",
			msgs: []Message{invite("c", "b1"), reply("c", 200), reply("c", 180)}, state: Answered,
			stats: Stats{Active: active(Answered), Ignored: 1}, len: 1},
		{name: "2xx: INIT → ANSWERED",
			msgs: []Message{invite("c", "b1"), reply("c", 200)}, state: Answered,
			stats: Stats{Active: active(Answered)}, len: 1},
		{name: "2xx: PROGRESS → ANSWERED",
			msgs: []Message{invite("c", "b1"), reply("c", 180), reply("c", 202)}, state: Answered,
			stats: Stats{Active: active(Answered)}, len: 1},
		{name: "2xx: a retransmitted 2xx changes nothing",
			msgs: []Message{invite("c", "b1"), reply("c", 200), reply("c", 200)}, state: Answered,
			stats: Stats{Active: active(Answered), Ignored: 1}, len: 1},
		{name: "≥300: INIT → NOTANSWERED",
			msgs: []Message{invite("c", "b1"), reply("c", 404)}, state: NotAnswered,
			stats: Stats{Active: active(NotAnswered)}, len: 1},
		{name: "≥300: PROGRESS → NOTANSWERED",
			msgs: []Message{invite("c", "b1"), reply("c", 183), reply("c", 603)}, state: NotAnswered,
			stats: Stats{Active: active(NotAnswered)}, len: 1},
		{name: "≥300: after 2xx is ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 200), reply("c", 500)}, state: Answered,
			stats: Stats{Active: active(Answered), Ignored: 1}, len: 1},
		{name: "replies: a status below 100 is ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 99)}, state: Init,
			stats: Stats{Active: active(Init), Ignored: 1}, len: 1},
		{name: "replies: only CSeq INVITE counts",
			msgs: []Message{invite("c", "b1"), func() Message { m := reply("c", 200); m.Method = Bye; return m }()}, state: Init,
			stats: Stats{Active: active(Init), Ignored: 1}, len: 1},
		{name: "ACK: ANSWERED → CONFIRMED",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Ack)}, state: Confirmed,
			stats: Stats{Active: active(Confirmed)}, len: 1},
		{name: "ACK: before the 2xx is ignored (out of order)",
			msgs: []Message{invite("c", "b1"), request("c", Ack)}, state: Init,
			stats: Stats{Active: active(Init), Ignored: 1}, len: 1},
		{name: "ACK: a second ACK changes nothing",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Ack), request("c", Ack)}, state: Confirmed,
			stats: Stats{Active: active(Confirmed), Ignored: 1}, len: 1},
		{name: "ACK: of a ≥300 is ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 486), request("c", Ack)}, state: NotAnswered,
			stats: Stats{Active: active(NotAnswered), Ignored: 1}, len: 1},
		{name: "CANCEL: INIT → NOTANSWERED",
			msgs: []Message{invite("c", "b1"), request("c", Cancel)}, state: NotAnswered,
			stats: Stats{Active: active(NotAnswered)}, len: 1},
		{name: "CANCEL: PROGRESS → NOTANSWERED",
			msgs: []Message{invite("c", "b1"), reply("c", 180), request("c", Cancel)}, state: NotAnswered,
			stats: Stats{Active: active(NotAnswered)}, len: 1},
		{name: "CANCEL: after 2xx is ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Cancel)}, state: Answered,
			stats: Stats{Active: active(Answered), Ignored: 1}, len: 1},
		{name: "BYE: ANSWERED → TERMINATED (ACK lost)",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Bye)}, state: Terminated,
			stats: Stats{Active: active(Terminated)}, len: 1},
		{name: "BYE: CONFIRMED → TERMINATED",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Ack), request("c", Bye)}, state: Terminated,
			stats: Stats{Active: active(Terminated)}, len: 1},
		{name: "BYE: in PROGRESS is ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 180), request("c", Bye)}, state: Progress,
			stats: Stats{Active: active(Progress), Ignored: 1}, len: 1},
		{name: "BYE: a retransmitted BYE and its replies change nothing",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Bye), request("c", Bye),
				func() Message { m := reply("c", 200); m.Method = Bye; return m }()}, state: Terminated,
			stats: Stats{Active: active(Terminated), Ignored: 2}, len: 1},
		{name: "other requests are ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Ack), request("c", OtherMethod)}, state: Confirmed,
			stats: Stats{Active: active(Confirmed), Ignored: 1}, len: 1},
		{name: "unknown dialog: BYE, ACK, CANCEL, replies and other requests are unmatched",
			msgs: []Message{request("x", Bye), request("x", Ack), request("x", Cancel), reply("x", 180), reply("x", 200),
				reply("x", 486), request("x", OtherMethod), request("", Bye)},
			stats: Stats{Unmatched: 8}},
		{name: "re-INVITE: another branch in CONFIRMED without tag changes is ignored",
			msgs: []Message{invite("c", "b1"), reply("c", 200), request("c", Ack), invite("c", "b2"),
				reply("c", 200), request("c", Ack)}, state: Confirmed,
			stats: Stats{Active: active(Confirmed), Ignored: 3}, len: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Config{})
			observe(t, tr, tc.msgs...)
			if got := tr.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
			if got := tr.Len(); got != tc.len {
				t.Errorf("Len %d, want %d", got, tc.len)
			}
			if tc.len > 0 {
				if got := newest(t, tr, "c").State; got != tc.state {
					t.Errorf("state %v, want %v", got, tc.state)
				}
			}
		})
	}
}

// TestTimestamps checks the record's fields and the times each rule sets.
func TestTimestamps(t *testing.T) {
	tr := New(Config{})
	observe(t, tr, invite("c", "b1"), at(time.Second, reply("c", 180)),
		at(2*time.Second, func() Message { m := reply("c", 200); m.ToTag = "tt-c"; return m }()),
		at(3*time.Second, request("c", Ack)), at(4*time.Second, request("c", Bye)))
	got := newest(t, tr, "c")
	want := Record{Src: "sip:alice@c", Dst: "sip:bob@example.net", Data: "data-c", RUID: got.RUID,
		CallID: "c", Branch: "b1", FromTag: "ft-c", ToTag: "tt-c",
		Init: t0, Answer: t0.Add(2 * time.Second), Finish: t0.Add(4 * time.Second), State: Terminated}
	if !got.Init.Equal(want.Init) || !got.Answer.Equal(want.Answer) || !got.Finish.Equal(want.Finish) {
		t.Errorf("times %v %v %v, want %v %v %v", got.Init, got.Answer, got.Finish, want.Init, want.Answer, want.Finish)
	}
	got.Init, got.Answer, got.Finish = want.Init, want.Answer, want.Finish
	if got.Tags != nil || !strings.HasPrefix(got.RUID, "dlgs-") {
		t.Errorf("tags %q, ruid %q", got.Tags, got.RUID)
	}
	got.Tags = nil
	if got.Src != want.Src || got.Dst != want.Dst || got.Data != want.Data || got.CallID != want.CallID ||
		got.Branch != want.Branch || got.FromTag != want.FromTag || got.ToTag != want.ToTag || got.State != want.State {
		t.Errorf("record %+v, want %+v", got, want)
	}
}

// TestToTag checks when a 2xx teaches the record its To tag (§8: if there
// is none and it is under 127 characters).
func TestToTag(t *testing.T) {
	withToTag := func(m Message, tag string) Message { m.ToTag = tag; return m }
	tests := []struct {
		name string
		msgs []Message
		want string
	}{
		{name: "2xx learns the To tag", msgs: []Message{invite("c", "b1"), withToTag(reply("c", 200), "tt")}, want: "tt"},
		{name: "126 characters are learnt", msgs: []Message{invite("c", "b1"), withToTag(reply("c", 200), strings.Repeat("t", 126))},
			want: strings.Repeat("t", 126)},
		{name: "127 characters are not learnt", msgs: []Message{invite("c", "b1"), withToTag(reply("c", 200), strings.Repeat("t", 127))}},
		{name: "1xx teaches nothing", msgs: []Message{invite("c", "b1"), withToTag(reply("c", 180), "tt")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(Config{})
			observe(t, tr, tc.msgs...)
			if got := newest(t, tr, "c").ToTag; got != tc.want {
				t.Errorf("To tag %q, want %q", got, tc.want)
			}
		})
	}
}

// TestToTaggedInviteIgnored: an INVITE with a To tag and no live record of
// its Call-ID (a forged or stale in-dialog INVITE, which a UAS answers 481)
// creates no record, so admission, which does not judge To-tagged INVITEs,
// and the counts agree; within a live dialog it is a re-INVITE.
func TestToTaggedInviteIgnored(t *testing.T) {
	withToTag := func(m Message) Message { m.ToTag = "forged"; return m }
	tr := New(Config{})
	observe(t, tr, withToTag(invite("c", "b1")))
	if n := tr.Stats().Active[Init]; n != 0 {
		t.Errorf("To-tagged INVITE of no dialog: %d records, want none", n)
	}
	observe(t, tr, invite("d", "b1"), withToTag(invite("d", "b2")))
	if n := tr.Stats().Active[Init]; n != 1 {
		t.Errorf("re-INVITE of a live dialog: %d records, want 1", n)
	}
}

// TestStringsCopied checks that the tracker keeps no string of the caller:
// the fast path's adapter reuses its buffers.
func TestStringsCopied(t *testing.T) {
	buf := []byte("sip:alice@host")
	m := invite("c", "b1")
	m.Src = unsafe.String(&buf[0], len(buf)) // aliases buf, as an adapter's may
	tr := New(Config{})
	observe(t, tr, m)
	copy(buf, "XXXXXXXXXXXXXX")
	if got := newest(t, tr, "c").Src; got != "sip:alice@host" {
		t.Errorf("Src %q after the caller's buffer changed", got)
	}
}
