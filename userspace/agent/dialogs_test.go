package agent

import (
	"bytes"
	"log/slog"
	"net/netip"
	"reflect"
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

func newTestDialogs(t *testing.T, cfg *config.Config) *dialogs {
	t.Helper()
	g, err := newDialogs(cfg, dlgDispatcher(t), slog.New(slog.DiscardHandler))
	if err != nil || g == nil {
		t.Fatalf("newDialogs: %v, %v", g, err)
	}
	return g
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

// dlgCall is a whole call: INVITE, 100, 180, 200, ACK, BYE, 200.
func dlgCall(callID, tenant string) []dlgMessage {
	// A tag is a token: no '@'.
	local, _, _ := strings.Cut(callID, "@")
	req := func(method string, cseq int, toTag string) []byte {
		to := "To: <sip:bob@example.net>"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		body := "INVITE sip:bob@example.net SIP/2.0\n" +
			"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=" + dlgBranch + "\n" +
			"From: \"Alice\" <sip:alice@example.com>;tag=ft-" + local + "\n" +
			to + "\n" +
			"Call-ID: " + callID + "\n" +
			"CSeq: 1 INVITE\n" +
			"Max-Forwards: 70\n" +
			"X-Tenant: " + tenant + "\n" +
			"Content-Length: 0\n\n"
		if method != "INVITE" {
			body = strings.Replace(body, "INVITE sip:", method+" sip:", 1)
			body = strings.Replace(body, "CSeq: 1 INVITE", "CSeq: "+map[int]string{1: "1", 2: "2"}[cseq]+" "+method, 1)
			body = strings.Replace(body, dlgBranch, dlgBranch+"-"+strings.ToLower(method), 1)
		}
		return sipText(body)
	}
	resp := func(status int, reason, method string, cseq int, toTag string) []byte {
		to := "To: <sip:bob@example.net>"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		branch := dlgBranch
		if method != "INVITE" {
			branch += "-" + strings.ToLower(method)
		}
		return sipText("SIP/2.0 " + reason + "\n" + dlgProxyVia +
			"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=" + branch + "\n" +
			"From: \"Alice\" <sip:alice@example.com>;tag=ft-" + local + "\n" +
			to + "\n" +
			"Call-ID: " + callID + "\n" +
			"CSeq: " + map[int]string{1: "1", 2: "2"}[cseq] + " " + method + "\n" +
			"Content-Length: 0\n\n")
	}
	return []dlgMessage{
		{name: "INVITE", data: req("INVITE", 1, ""), src: dlgCaller, method: dataplane.MethodInvite, copied: true},
		{name: "100", data: resp(100, "100 Trying", "INVITE", 1, ""), src: dlgCallee, method: dataplane.MethodInvite, status: 100},
		{name: "180", data: resp(180, "180 Ringing", "INVITE", 1, "tt-"+local), src: dlgCallee, method: dataplane.MethodInvite, status: 180},
		{name: "200", data: resp(200, "200 OK", "INVITE", 1, "tt-"+local), src: dlgCallee, method: dataplane.MethodInvite, status: 200, copied: true},
		{name: "ACK", data: req("ACK", 1, "tt-"+local), src: dlgCaller, method: dataplane.MethodAck},
		{name: "BYE", data: req("BYE", 2, "tt-"+local), src: dlgCaller, method: dataplane.MethodBye},
		{name: "200 BYE", data: resp(200, "200 OK", "BYE", 2, "tt-"+local), src: dlgCallee, method: dataplane.MethodBye, status: 200},
	}
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
func fastEvent(t *testing.T, g *dialogs, m dlgMessage) dataplane.Event {
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
// and the same statistics after every message; at the end each call is
// TERMINATED with the fields its INVITE and 200 gave it.
func TestDialogsBothPathsAlike(t *testing.T) {
	cfg := dlgConfig(t)
	slow, fast := newTestDialogs(t, cfg), newTestDialogs(t, cfg)
	calls := [][]dlgMessage{dlgCall("call-1@example.com", "acme"), dlgCall("call-2@example.com", "globex")}
	// The first call message by message, comparing after each.
	for _, m := range calls[0] {
		slow.observeSlow(slowObserved(t, m))
		fast.observeFast([]dataplane.Event{fastEvent(t, fast, m)})
		got, want := comparable(fast.t.List(0)), comparable(slow.t.List(0))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: records differ\nfast %+v\nslow %+v", m.name, got, want)
		}
		if fast.t.Stats() != slow.t.Stats() {
			t.Fatalf("after %s: stats differ\nfast %+v\nslow %+v", m.name, fast.t.Stats(), slow.t.Stats())
		}
	}
	// The second as the drainer hands it over: one batch.
	var batch []dataplane.Event
	for _, m := range calls[1] {
		slow.observeSlow(slowObserved(t, m))
		batch = append(batch, fastEvent(t, fast, m))
	}
	fast.observeFast(batch)
	got, want := comparable(fast.t.List(0)), comparable(slow.t.List(0))
	if !reflect.DeepEqual(got, want) || fast.t.Stats() != slow.t.Stats() {
		t.Fatalf("after both calls:\nfast %+v %+v\nslow %+v %+v", got, fast.t.Stats(), want, slow.t.Stats())
	}
	wantRecs := []dialog.Record{
		{Src: "sip:alice@example.com", Dst: dlgDestURI, Data: "acme", CallID: "call-1@example.com", Branch: dlgBranch,
			FromTag: "ft-call-1", ToTag: "tt-call-1", State: dialog.Terminated, Tags: []string{"tenant-acme", "vip", "trunk"}},
		{Src: "sip:alice@example.com", Dst: dlgDestURI, Data: "globex", CallID: "call-2@example.com", Branch: dlgBranch,
			FromTag: "ft-call-2", ToTag: "tt-call-2", State: dialog.Terminated, Tags: []string{"tenant-globex", "trunk"}},
	}
	if !reflect.DeepEqual(got, wantRecs) {
		t.Errorf("records:\n got %+v\nwant %+v", got, wantRecs)
	}
	st := fast.t.Stats()
	if st.Active[dialog.Terminated] != 2 || st.Unmatched != 0 || st.Underflow != 0 {
		t.Errorf("stats %+v: want 2 active terminated, nothing unmatched", st)
	}
	for _, r := range fast.t.List(0) {
		if r.Init.IsZero() || r.Answer.IsZero() || r.Finish.IsZero() {
			t.Errorf("fast path record %s: times %v %v %v, want all set", r.CallID, r.Init, r.Answer, r.Finish)
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
		g.observeSlow(slowObserved(t, dlgCall(callID, tenant)[0]))
	}
	record := func(callID string) dialog.Record {
		t.Helper()
		for _, r := range g.t.List(0) {
			if r.CallID == callID {
				return r
			}
		}
		t.Fatalf("no record of %s", callID)
		return dialog.Record{}
	}
	invite("before@example.com", "acme")
	// 180 s init_lifetime: an INIT record outlives a minute.
	if n := g.t.Expire(time.Now().Add(time.Minute)); n != 0 {
		t.Fatalf("Expire a minute on removed %d records with init_lifetime 180 s", n)
	}

	next := *cfg
	next.Dialogs.InitLifetime = 10 * time.Second
	next.Dialogs.Data = "tenant=$hdr(X-Tenant)"
	next.Dialogs.Src = "$si"
	next.Dialogs.Tags = []config.TagRule{{Tag: "gold", Action: config.TagAdd, Set: -1, Header: "X-Tenant", Value: "^acme$"}}
	g.Apply(&Snapshot{Config: &next})
	invite("after@example.com", "acme")

	if r := record("before@example.com"); r.Data != "acme" || r.Src != "sip:alice@example.com" || !reflect.DeepEqual(r.Tags, []string{"tenant-acme", "vip", "trunk"}) {
		t.Errorf("record made before the reload changed: %+v", r)
	}
	if r := record("after@example.com"); r.Data != "tenant=acme" || r.Src != "192.0.2.10" || !reflect.DeepEqual(r.Tags, []string{"gold"}) {
		t.Errorf("record made after the reload: src %q data %q tags %q, want 192.0.2.10, tenant=acme, [gold]", r.Src, r.Data, r.Tags)
	}
	if n := g.t.TagsCount("vip"); n != 1 {
		t.Errorf("tags_count vip = %d, want 1 (the old record keeps it)", n)
	}
	// 10 s init_lifetime now: both INIT records are gone a minute on.
	if n := g.t.Expire(time.Now().Add(time.Minute)); n != 2 {
		t.Errorf("Expire a minute on removed %d records, want 2 (init_lifetime 10 s)", n)
	}

	bad := next
	bad.Dialogs.Data = "$hdr(X-Other)"
	bad.Dialogs.Tags = []config.TagRule{{Tag: "x", Action: config.TagAdd, Set: -1, Header: "X-Tenant", Value: "("}}
	g.Apply(&Snapshot{Config: &bad})
	invite("bad@example.com", "acme")
	if r := record("bad@example.com"); r.Data != "tenant=acme" || !reflect.DeepEqual(r.Tags, []string{"gold"}) {
		t.Errorf("after a reload whose rule does not compile: data %q tags %q, want the old templates and rules (tenant=acme, [gold])", r.Data, r.Tags)
	}
}
