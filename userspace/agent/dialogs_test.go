package agent

import (
	"bytes"
	"log/slog"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/sipproxy"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// The call of the adapter tests: caller at 192.0.2.10:5062 on listener
// "edge", set 1's destination 0 (sip:10.0.0.2:5060) answers.
var (
	dlgCaller = netip.MustParseAddrPort("192.0.2.10:5062")
	dlgCallee = netip.MustParseAddrPort("10.0.0.2:5060")
)

const (
	dlgDestURI = "sip:10.0.0.2:5060"
	dlgBranch  = "z9hG4bK-caller-1"
	// The proxy's own Via, on top of the replies it gets back.
	dlgProxyVia = "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsf-proxy\n"
)

// dlgConfig is a config with tracking on: data the X-Tenant header, a tag
// per tenant, "vip" for acme, "trunk" for sources in 192.0.2.0/24.
func dlgConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Listeners = []config.Listener{{Name: "edge", Proto: "udp", Addr: netip.MustParseAddrPort("10.0.0.1:5060")}}
	cfg.Dialogs.Enabled = true
	cfg.Dialogs.Data = "$hdr(X-Tenant)"
	cfg.Dialogs.Tags = []config.TagRule{
		{Tag: "tenant-$hdr(X-Tenant)", Action: config.TagAdd, Set: -1},
		{Tag: "vip", Action: config.TagAdd, Set: -1, Header: "X-Tenant", Value: "^acme$"},
		{Tag: "trunk", Action: config.TagAdd, Set: 1, Source: "192.0.2.0/24", Listener: "edge"},
	}
	return &cfg
}

func dlgDispatcher(t *testing.T) *dispatch.Dispatcher {
	t.Helper()
	return dispatch.New(buildSnap(t, []dispatch.Entry{{SetID: 1, URI: dlgDestURI}, {SetID: 1, URI: "sip:10.0.0.3:5060"}}))
}

// newTestDialogs is the feed of a dialog tracker alone (no call load).
func newTestDialogs(t *testing.T, cfg *config.Config) *feed {
	t.Helper()
	g, err := newDialogs(cfg, slog.New(slog.DiscardHandler))
	if err != nil || g == nil {
		t.Fatalf("newDialogs: %v, %v", g, err)
	}
	return newFeed(cfg, dlgDispatcher(t), g, nil)
}

// sipText is msg with CRLF line ends.
func sipText(msg string) []byte {
	return []byte(strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\n", "\r\n"))
}

// dlgMessage is one message of the call as the edge received it, and
// what the fast path's event says of it.
type dlgMessage struct {
	name   string
	data   []byte
	src    netip.AddrPort
	method dataplane.Method
	status int  // replies
	copied bool // the program copies it: INVITE, and 2xx to INVITE
}

// dlgCall is a whole call, ended as ending says: "bye" (100, 180, 200,
// ACK, BYE, 200), "cancel" (100, 180, CANCEL, 200, 487, ACK) or "busy"
// (100, 486, ACK).
func dlgCall(callID, tenant, ending string) []dlgMessage {
	// A tag is a token: no '@'.
	local, _, _ := strings.Cut(callID, "@")
	toTag := "tt-" + local
	// branch is the top Via branch of a request of method: CANCEL and
	// the ACK of a non-2xx share the INVITE's (RFC 3261 9.1, 17.1.1.3).
	branch := func(method string, sameTx bool) string {
		if method == "INVITE" || sameTx {
			return dlgBranch
		}
		return dlgBranch + "-" + strings.ToLower(method)
	}
	headers := func(br string, cseq int, method, toTag string) string {
		to := "To: <sip:bob@example.net>"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		return "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=" + br + "\n" +
			"From: \"Alice\" <sip:alice@example.com>;tag=ft-" + local + "\n" +
			to + "\n" +
			"Call-ID: " + callID + "\n" +
			"CSeq: " + strconv.Itoa(cseq) + " " + method + "\n"
	}
	req := func(method string, cseq int, toTag string, sameTx bool) dlgMessage {
		return dlgMessage{
			name: method,
			data: sipText(method + " sip:bob@example.net SIP/2.0\n" + headers(branch(method, sameTx), cseq, method, toTag) +
				"Max-Forwards: 70\nX-Tenant: " + tenant + "\nContent-Length: 0\n\n"),
			src:    dlgCaller,
			method: map[string]dataplane.Method{"INVITE": dataplane.MethodInvite, "ACK": dataplane.MethodAck, "BYE": dataplane.MethodBye, "CANCEL": dataplane.MethodCancel}[method],
			copied: method == "INVITE",
		}
	}
	resp := func(status int, reason, method string, cseq int, toTag string, sameTx bool) dlgMessage {
		return dlgMessage{
			name: strconv.Itoa(status) + " " + method,
			data: sipText("SIP/2.0 " + strconv.Itoa(status) + " " + reason + "\n" + dlgProxyVia +
				headers(branch(method, sameTx), cseq, method, toTag) + "Content-Length: 0\n\n"),
			src:    dlgCallee,
			method: map[string]dataplane.Method{"INVITE": dataplane.MethodInvite, "BYE": dataplane.MethodBye, "CANCEL": dataplane.MethodCancel}[method],
			status: status,
			copied: method == "INVITE" && status >= 200 && status < 300,
		}
	}
	call := []dlgMessage{req("INVITE", 1, "", false), resp(100, "Trying", "INVITE", 1, "", false)}
	switch ending {
	case "bye":
		return append(call,
			resp(180, "Ringing", "INVITE", 1, toTag, false),
			resp(200, "OK", "INVITE", 1, toTag, false),
			req("ACK", 1, toTag, false),
			req("BYE", 2, toTag, false),
			resp(200, "OK", "BYE", 2, toTag, false))
	case "cancel":
		return append(call,
			resp(180, "Ringing", "INVITE", 1, toTag, false),
			req("CANCEL", 1, "", true),
			resp(200, "OK", "CANCEL", 1, toTag, true),
			resp(487, "Request Terminated", "INVITE", 1, toTag, false),
			req("ACK", 1, toTag, true))
	case "busy":
		return append(call,
			resp(486, "Busy Here", "INVITE", 1, toTag, false),
			req("ACK", 1, toTag, true))
	}
	panic("dlgCall: unknown ending " + ending)
}

// slowObserved is what the slow path's Observe hook gets for m: parsed,
// requests with the set and destination they were dispatched to.
func slowObserved(t *testing.T, m dlgMessage) sipproxy.Observed {
	t.Helper()
	var pm sipmsg.Msg
	if err := sipmsg.Parse(m.data, &pm); err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	o := sipproxy.Observed{Data: m.data, Msg: &pm, Src: m.src, Listener: "edge", SetID: -1}
	if pm.IsRequest {
		o.SetID, o.DstURI = 1, dlgDestURI
	}
	return o
}

// fastEvent is the fast path's event for m, as the program emits it: the
// Call-ID hash, the set and destination index of a request (the
// destination's place in the set of g's dispatcher, as the program's maps
// hold it), a reply's status and CSeq method, and a copy of the message
// for an INVITE and a 2xx to INVITE only.
func fastEvent(t *testing.T, g *feed, m dlgMessage) dataplane.Event {
	t.Helper()
	var pm sipmsg.Msg
	if err := sipmsg.Parse(m.data, &pm); err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	e := dataplane.Event{
		CallIDHash: wordhash.CallID(bytes.TrimSpace(pm.CallID.Bytes(m.data))),
		ListenerID: 0, SetID: -1, DstIndex: -1, Method: m.method, Src: m.src,
	}
	if pm.IsRequest {
		e.Kind, e.SetID, e.DstIndex = dataplane.EventRequest, 1, -1
		for i, d := range g.d.Snapshot().Set(1).Dests {
			if d.URI == dlgDestURI {
				e.DstIndex = int16(i)
			}
		}
	} else {
		e.Kind, e.Status = dataplane.EventReply, uint16(m.status)
	}
	if m.copied {
		e.Msg = bytes.Clone(m.data)
	}
	return e
}

// comparable is what both paths must agree on: a record less its times
// and its ruid (which name when and in which tracker it was made).
func comparable(recs []dialog.Record) []dialog.Record {
	out := make([]dialog.Record, len(recs))
	for i, r := range recs {
		r.Init, r.Answer, r.Finish, r.RUID = time.Time{}, time.Time{}, time.Time{}, ""
		out[i] = r
	}
	return out
}

// TestDialogsBothPathsAlike: the same calls, fed once through the slow
// path's hook (parsed messages) and once through the fast path's events
// (INVITE and 2xx copies, hashes for the rest), leave the trackers with
// the same records (src, dst, data, Call-ID, tags, branch, state, tags)
// and the same statistics after every message: a call hung up, one
// cancelled after ringing, one rejected, and one more hung up that the
// drainer hands over as one batch. Each ends in the state it should, with
// the fields its INVITE and 2xx gave it.
func TestDialogsBothPathsAlike(t *testing.T) {
	cfg := dlgConfig(t)
	slow, fast := newTestDialogs(t, cfg), newTestDialogs(t, cfg)
	same := func(after string) {
		t.Helper()
		got, want := comparable(fast.dlg.t.List(0)), comparable(slow.dlg.t.List(0))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: records differ\nfast %+v\nslow %+v", after, got, want)
		}
		if fast.dlg.t.Stats() != slow.dlg.t.Stats() {
			t.Fatalf("after %s: stats differ\nfast %+v\nslow %+v", after, fast.dlg.t.Stats(), slow.dlg.t.Stats())
		}
	}
	// Message by message, comparing after each.
	for _, c := range []struct{ callID, tenant, ending string }{
		{"call-1@example.com", "acme", "bye"},
		{"call-2@example.com", "globex", "cancel"},
		{"call-3@example.com", "acme", "busy"},
	} {
		for _, m := range dlgCall(c.callID, c.tenant, c.ending) {
			slow.observeSlow(slowObserved(t, m))
			fast.observeFast([]dataplane.Event{fastEvent(t, fast, m)})
			same(c.callID + " " + m.name)
		}
	}
	// As the drainer hands events over: one batch.
	var batch []dataplane.Event
	for _, m := range dlgCall("call-4@example.com", "globex", "bye") {
		slow.observeSlow(slowObserved(t, m))
		batch = append(batch, fastEvent(t, fast, m))
	}
	fast.observeFast(batch)
	same("the batch of call-4@example.com")

	record := func(n int, data string, state dialog.State, answered bool, tags ...string) dialog.Record {
		id := "call-" + strconv.Itoa(n)
		r := dialog.Record{Src: "sip:alice@example.com", Dst: dlgDestURI, Data: data, CallID: id + "@example.com", Branch: dlgBranch,
			FromTag: "ft-" + id, State: state, Tags: tags}
		if answered {
			r.ToTag = "tt-" + id
		}
		return r
	}
	want := []dialog.Record{
		record(1, "acme", dialog.Terminated, true, "tenant-acme", "vip", "trunk"),
		record(2, "globex", dialog.NotAnswered, false, "tenant-globex", "trunk"),
		record(3, "acme", dialog.NotAnswered, false, "tenant-acme", "vip", "trunk"),
		record(4, "globex", dialog.Terminated, true, "tenant-globex", "trunk"),
	}
	if got := comparable(fast.dlg.t.List(0)); !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n got %+v\nwant %+v", got, want)
	}
	st := fast.dlg.t.Stats()
	if st.Active[dialog.Terminated] != 2 || st.Active[dialog.NotAnswered] != 2 || st.Unmatched != 0 || st.Underflow != 0 {
		t.Errorf("stats %+v: want 2 active terminated, 2 not answered, nothing unmatched", st)
	}
	for _, r := range fast.dlg.t.List(0) {
		if r.Init.IsZero() || r.Finish.IsZero() || r.Answer.IsZero() != (r.ToTag == "") {
			t.Errorf("fast path record %s: times %v %v %v, want init and finish set, answer when answered", r.CallID, r.Init, r.Answer, r.Finish)
		}
	}
}

// TestDialogsApply: a reload takes the new lifetimes at the next expiry,
// and the new templates and tag rules for INVITEs from then on; records
// already held keep their fields and tags. A rule that does not compile
// (validation bypassed) keeps the old templates and rules.
func TestDialogsApply(t *testing.T) {
	cfg := dlgConfig(t)
	g := newTestDialogs(t, cfg)
	invite := func(callID, tenant string) {
		g.observeSlow(slowObserved(t, dlgCall(callID, tenant, "bye")[0]))
	}
	record := func(callID string) dialog.Record {
		t.Helper()
		for _, r := range g.dlg.t.List(0) {
			if r.CallID == callID {
				return r
			}
		}
		t.Fatalf("no record of %s", callID)
		return dialog.Record{}
	}
	invite("before@example.com", "acme")
	// 180 s init_lifetime: an INIT record outlives a minute.
	if n := g.dlg.t.Expire(time.Now().Add(time.Minute)); n != 0 {
		t.Fatalf("Expire a minute on removed %d records with init_lifetime 180 s", n)
	}

	next := *cfg
	next.Dialogs.InitLifetime = 10 * time.Second
	next.Dialogs.Data = "tenant=$hdr(X-Tenant)"
	next.Dialogs.Src = "$si"
	next.Dialogs.Tags = []config.TagRule{{Tag: "gold", Action: config.TagAdd, Set: -1, Header: "X-Tenant", Value: "^acme$"}}
	g.dlg.Apply(&Snapshot{Config: &next})
	invite("after@example.com", "acme")

	if r := record("before@example.com"); r.Data != "acme" || r.Src != "sip:alice@example.com" || !reflect.DeepEqual(r.Tags, []string{"tenant-acme", "vip", "trunk"}) {
		t.Errorf("record made before the reload changed: %+v", r)
	}
	if r := record("after@example.com"); r.Data != "tenant=acme" || r.Src != "192.0.2.10" || !reflect.DeepEqual(r.Tags, []string{"gold"}) {
		t.Errorf("record made after the reload: src %q data %q tags %q, want 192.0.2.10, tenant=acme, [gold]", r.Src, r.Data, r.Tags)
	}
	if n := g.dlg.t.TagsCount("vip"); n != 1 {
		t.Errorf("tags_count vip = %d, want 1 (the old record keeps it)", n)
	}
	// 10 s init_lifetime now: both INIT records are gone a minute on.
	if n := g.dlg.t.Expire(time.Now().Add(time.Minute)); n != 2 {
		t.Errorf("Expire a minute on removed %d records, want 2 (init_lifetime 10 s)", n)
	}

	bad := next
	bad.Dialogs.Data = "$hdr(X-Other)"
	bad.Dialogs.Tags = []config.TagRule{{Tag: "x", Action: config.TagAdd, Set: -1, Header: "X-Tenant", Value: "("}}
	g.dlg.Apply(&Snapshot{Config: &bad})
	invite("bad@example.com", "acme")
	if r := record("bad@example.com"); r.Data != "tenant=acme" || !reflect.DeepEqual(r.Tags, []string{"gold"}) {
		t.Errorf("after a reload whose rule does not compile: data %q tags %q, want the old templates and rules (tenant=acme, [gold])", r.Data, r.Tags)
	}
}
