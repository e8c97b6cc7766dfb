package agent

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

func TestCallEvent(t *testing.T) {
	tests := []struct {
		name string
		m    dialog.Message
		want dispatch.CallEvent
		ok   bool
	}{
		{name: "BYE", m: dialog.Message{Request: true, Method: dialog.Bye}, want: dispatch.CallBye, ok: true},
		{name: "CANCEL", m: dialog.Message{Request: true, Method: dialog.Cancel}, want: dispatch.CallCancel, ok: true},
		{name: "INVITE", m: dialog.Message{Request: true, Method: dialog.Invite}},
		{name: "ACK", m: dialog.Message{Request: true, Method: dialog.Ack}},
		{name: "180", m: dialog.Message{Method: dialog.Invite, Status: 180}},
		{name: "200 INVITE", m: dialog.Message{Method: dialog.Invite, Status: 200}, want: dispatch.CallAnswered, ok: true},
		{name: "486 INVITE", m: dialog.Message{Method: dialog.Invite, Status: 486}, want: dispatch.CallRejected, ok: true},
		{name: "302 INVITE", m: dialog.Message{Method: dialog.Invite, Status: 302}, want: dispatch.CallRejected, ok: true},
		{name: "200 BYE", m: dialog.Message{Method: dialog.Bye, Status: 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := callEvent(&tc.m)
			if ok != tc.ok || ok && got != tc.want {
				t.Errorf("callEvent = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestFeedCallLoadWithoutDialogs: with dialog tracking off and call load
// on, the feed exists and both paths' messages move the loads: a slow-path
// BYE and a fast-path 486 (a compact event) each end a call.
func TestFeedCallLoadWithoutDialogs(t *testing.T) {
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "duid=a"}}, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	loads := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
	cfg := &config.Config{}
	if newFeed(cfg, d, nil, nil) != nil {
		t.Fatal("a feed without consumers")
	}
	f := newFeed(cfg, d, nil, loads)
	if f == nil || f.wantsCopies() {
		t.Fatalf("feed %v: want one, without copies", f)
	}
	for _, id := range []string{"call-1", "call-2"} {
		key := dispatch.Key{CallID: id, CallIDHash: dataplane.CallIDHash(id), Invite: true}
		if _, err := d.Select(1, dispatch.AlgCallLoad, key, 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := loads.Load(1, "a"); got != 2 {
		t.Fatalf("load %d, want 2", got)
	}

	bye := "BYE sip:b@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" +
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID:  call-1 \r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
	var m sipmsg.Msg
	if err := sipmsg.Parse([]byte(bye), &m); err != nil {
		t.Fatal(err)
	}
	f.observeSlow(sipproxy.Observed{Data: []byte(bye), Msg: &m, SetID: 1})
	if got := loads.Load(1, "a"); got != 1 {
		t.Errorf("after the slow path's BYE: load %d, want 1", got)
	}
	f.observeFast([]dataplane.Event{{CallIDHash: dataplane.CallIDHash("call-2"), Kind: dataplane.EventReply, Method: dataplane.MethodInvite, Status: 486, SetID: -1}})
	if got := loads.Load(1, "a"); got != 0 {
		t.Errorf("after the fast path's 486: load %d, want 0", got)
	}
}

// TestFeedBothConsumers: with dialog tracking and call load on, one
// slow-path INVITE reaches both: a record with the templates' fields
// (dst: the destination the dispatcher picked), and its 486 ends both.
func TestFeedBothConsumers(t *testing.T) {
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "duid=a"}}, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	loads := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
	cfg := config.Defaults()
	cfg.Dialogs.Enabled = true
	dlg, err := newDialogs(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := newFeed(&cfg, d, dlg, loads)
	if !f.wantsCopies() {
		t.Error("dialog tracking wants the fast path's copies")
	}
	if _, err := d.Select(1, dispatch.AlgCallLoad, dispatch.Key{CallID: "c1", CallIDHash: dataplane.CallIDHash("c1"), Invite: true}, 0); err != nil {
		t.Fatal(err)
	}
	send := func(msg string, setID int, dst string) {
		t.Helper()
		var m sipmsg.Msg
		if err := sipmsg.Parse([]byte(msg), &m); err != nil {
			t.Fatal(err)
		}
		f.observeSlow(sipproxy.Observed{Data: []byte(msg), Msg: &m, SetID: setID, DstURI: dst})
	}
	hdrs := "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:alice@x>;tag=1\r\nTo: <sip:bob@y>%s\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	send("INVITE sip:bob@y SIP/2.0\r\n"+fmt.Sprintf(hdrs, ""), 1, "sip:10.0.0.1")
	recs := dlg.t.List(10)
	if len(recs) != 1 || recs[0].Dst != "sip:10.0.0.1" {
		t.Fatalf("records %+v: want one, dst sip:10.0.0.1", recs)
	}
	send("SIP/2.0 486 Busy Here\r\n"+fmt.Sprintf(hdrs, ";tag=2"), -1, "")
	if got := loads.Load(1, "a"); got != 0 {
		t.Errorf("load %d after the 486, want 0", got)
	}
	if recs := dlg.t.List(10); len(recs) != 1 || recs[0].State != dialog.NotAnswered {
		t.Errorf("records after the 486 %+v: want one, NOTANSWERED", recs)
	}
}

// TestFeedRecordsFastPicks: an INVITE event of an algorithm 10 listener
// (set, dst_idx: the program's pick) lands in the Call-ID table, charged
// to that destination once for its retransmission, before the BYE of the
// same batch releases it; the slow path then sends the call's later
// messages there. An INVITE event of a listener with another algorithm
// charges nothing.
func TestFeedRecordsFastPicks(t *testing.T) {
	f, d, loads := callLoadFeed(t)
	invite := func(id string, lis uint32, idx int16) dataplane.Event {
		return dataplane.Event{CallIDHash: dataplane.CallIDHash(id), ListenerID: lis, Kind: dataplane.EventRequest,
			Method: dataplane.MethodInvite, SetID: 1, DstIndex: idx}
	}
	// Index 1 is a (Build orders equal priorities in reverse).
	f.observeFast([]dataplane.Event{invite("fast-1", 0, 1), invite("fast-1", 0, 1), invite("fast-2", 0, 1), invite("hashed", 1, 0)})
	if a, b := loads.Load(1, "a"), loads.Load(1, "b"); a != 2 || b != 0 {
		t.Fatalf("loads a %d b %d after the fast path's picks, want 2 and 0", a, b)
	}
	sel, err := d.Select(1, dispatch.AlgCallLoad, dispatch.Key{CallID: "fast-1", CallIDHash: dataplane.CallIDHash("fast-1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := sel.Dests[0].Attrs.DUID; got != "a" {
		t.Errorf("the slow path sent fast-1's ACK to %q, want a (the fast path's pick)", got)
	}
	bye := dataplane.Event{CallIDHash: dataplane.CallIDHash("fast-3"), ListenerID: 0, Kind: dataplane.EventRequest, Method: dataplane.MethodBye, SetID: 1, DstIndex: 0}
	f.observeFast([]dataplane.Event{invite("fast-3", 0, 0), bye})
	if got := loads.Load(1, "b"); got != 0 {
		t.Errorf("load of b %d after an INVITE and its BYE in one batch, want 0", got)
	}
	if st := loads.Stats(); st.Live != 2 || st.Underflows != 0 {
		t.Errorf("table %+v, want 2 live calls, no underflow", st)
	}
}

// TestFeedTellsFastPathSlowPicks: a dialog-creating INVITE the slow path
// dispatched on an algorithm 10 listener is handed to the fast path (its
// Call-ID hash, set and the destination's duid), so the program sends the
// call's later requests there; a re-INVITE (To tag), an INVITE of another
// algorithm's listener and a BYE are not.
func TestFeedTellsFastPathSlowPicks(t *testing.T) {
	f, _, _ := callLoadFeed(t)
	var got []string
	f.placedSlow = func(h uint64, set int, duid string) { got = append(got, fmt.Sprintf("%x %d %s", h, set, duid)) }
	send := func(method, toTag, listener string) {
		t.Helper()
		msg := method + " sip:bob@y SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:alice@x>;tag=1\r\n" +
			"To: <sip:bob@y>" + toTag + "\r\nCall-ID: c1\r\nCSeq: 1 " + method + "\r\nContent-Length: 0\r\n\r\n"
		var m sipmsg.Msg
		if err := sipmsg.Parse([]byte(msg), &m); err != nil {
			t.Fatal(err)
		}
		f.observeSlow(sipproxy.Observed{Data: []byte(msg), Msg: &m, Listener: listener, SetID: 1, DstURI: "sip:10.0.0.2"})
	}
	send("INVITE", "", "lb")
	send("INVITE", ";tag=2", "lb")
	send("INVITE", "", "hash")
	send("BYE", ";tag=2", "lb")
	want := fmt.Sprintf("%x 1 b", dataplane.CallIDHash("c1"))
	if len(got) != 1 || got[0] != want {
		t.Errorf("handed to the fast path %q, want [%q]", got, want)
	}
}

// callLoadFeed is a feed of call load alone: set 1 of duids a and b,
// listener "lb" dispatching it with algorithm 10 and "hash" with 0.
func callLoadFeed(t *testing.T) (*feed, *dispatch.Dispatcher, *dispatch.CallLoad) {
	t.Helper()
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Attrs: "duid=a"},
		{SetID: 1, URI: "sip:10.0.0.2", Attrs: "duid=b"},
	}, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	loads := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
	cfg := &config.Config{
		Listeners: []config.Listener{{Name: "lb"}, {Name: "hash"}},
		Rules:     []config.Rule{{Listener: "lb", Set: 1, Algorithm: 10}, {Listener: "hash", Set: 1, Algorithm: 0}},
	}
	return newFeed(cfg, d, nil, loads), d, loads
}
