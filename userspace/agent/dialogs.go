package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dialogattr"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/sipproxy"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// dialogs is dialog tracking (package dialog, Kamailio's dlgs), fed by
// both paths through one adapter (message): the slow path's Observe hook
// hands it the parsed messages it forwards, the fast path's events hand it
// the same messages, INVITEs and their 2xx as copies, the rest as Call-ID
// hashes. Its Run expires records; Apply takes the live keys.
type dialogs struct {
	log   *slog.Logger
	t     *dialog.Tracker
	d     *dispatch.Dispatcher
	attrs atomic.Pointer[dialogattr.Attrs]
	// names are the listener names by the fast path's listener id.
	names []string
	// results holds a *dialogattr.Result per slow-path reader goroutine in
	// use: Eval's strings alias it until the tracker has copied them.
	results sync.Pool

	// The fast path's drainer is one goroutine: its state is reused.
	fast fastFeed
	// evalErrors counts INVITEs whose templates met an unparsable header
	// (the record is kept with what did expand).
	evalErrors atomic.Uint64
	// limits are told each batch the tracker took (limits.go); nil
	// without dialogs.limits wiring.
	limits *limits
}

// fastFeed is the fast path's adapter state, used by the drainer only.
type fastFeed struct {
	msg     sipmsg.Msg
	batch   []dialog.Message
	results []*dialogattr.Result // one per INVITE of the batch
}

// newDialogs builds dialog tracking, or returns nil when dialogs.enabled is
// false.
func newDialogs(cfg *config.Config, d *dispatch.Dispatcher, logger *slog.Logger) (*dialogs, error) {
	if !cfg.Dialogs.Enabled {
		return nil, nil
	}
	attrs, err := dialogattr.New(cfg.Dialogs.DialogAttrs())
	if err != nil {
		return nil, fmt.Errorf("dialogs: %w", err)
	}
	g := &dialogs{
		log: logger.With("component", "dialogs"),
		t:   dialog.New(trackerConfig(cfg.Dialogs)),
		d:   d,
	}
	for _, l := range cfg.Listeners {
		g.names = append(g.names, l.Name)
	}
	g.attrs.Store(attrs)
	g.results.New = func() any { return new(dialogattr.Result) }
	return g, nil
}

func trackerConfig(c config.Dialogs) dialog.Config {
	return dialog.Config{
		InitLifetime:   c.InitLifetime,
		ActiveLifetime: c.ActiveLifetime,
		FinishLifetime: c.FinishLifetime,
		TimerInterval:  c.TimerInterval,
		MaxRecords:     c.MaxRecords,
	}
}

func (*dialogs) Name() string { return "dialogs" }

// Run expires records every timer_interval until ctx ends.
func (g *dialogs) Run(ctx context.Context) error { return g.t.Run(ctx) }

// Apply takes the live keys: lifetimes, interval, cap, templates and tag
// rules. The snapshot was validated as a whole, so the rules compile; the
// error branch keeps the old ones should that ever not hold.
func (g *dialogs) Apply(s *Snapshot) {
	g.t.SetConfig(trackerConfig(s.Config.Dialogs))
	attrs, err := dialogattr.New(s.Config.Dialogs.DialogAttrs())
	if err != nil {
		g.log.Error("dialogs reload: templates or tag rules kept as they were", "error", err)
		return
	}
	g.attrs.Store(attrs)
}

// observeSlow is sipproxy.Config.Observe. It runs on the slow path's
// reader goroutines, concurrently.
func (g *dialogs) observeSlow(o sipproxy.Observed) {
	res := g.results.Get().(*dialogattr.Result)
	defer g.results.Put(res)
	var ms [1]dialog.Message
	in := dialogattr.Input{Buf: o.Data, Msg: o.Msg, Src: o.Src, Listener: o.Listener, Set: o.SetID, DstURI: o.DstURI}
	if !g.message(&ms[0], &in, res) {
		return
	}
	g.limits.observe(g.t, ms[:])
}

// observeFast is dataplane.FastPathConfig.Events: each drained batch, on
// the drainer's goroutine.
func (g *dialogs) observeFast(evs []dataplane.Event) {
	f := &g.fast
	f.batch = f.batch[:0]
	invites := 0
	var snap *dispatch.Snapshot
	for i := range evs {
		e := &evs[i]
		if e.Msg == nil {
			f.batch = append(f.batch, compactMessage(e))
			continue
		}
		// A copy: an INVITE, or a 2xx to one. Parsed as the slow path
		// parses what it forwards, so both feed the tracker alike.
		if err := sipmsg.Parse(e.Msg, &f.msg); err != nil {
			// The program forwarded it, so it parsed there; a copy the
			// agent cannot parse still moves the dialog by its hash.
			f.batch = append(f.batch, compactMessage(e))
			continue
		}
		in := dialogattr.Input{Buf: e.Msg, Msg: &f.msg, Src: e.Src, Set: int(e.SetID)}
		if int(e.ListenerID) < len(g.names) {
			in.Listener = g.names[e.ListenerID]
		}
		if e.Kind == dataplane.EventRequest && e.DstIndex >= 0 {
			if snap == nil {
				snap = g.d.Snapshot()
			}
			in.DstURI = destinationURI(snap, int(e.SetID), int(e.DstIndex))
		}
		if invites == len(f.results) {
			f.results = append(f.results, new(dialogattr.Result))
		}
		var m dialog.Message
		if g.message(&m, &in, f.results[invites]) {
			invites++
			f.batch = append(f.batch, m)
		}
	}
	g.limits.observe(g.t, f.batch)
}

// compactMessage is a fast-path event without a copy: the tracker matches
// it by its Call-ID hash.
func compactMessage(e *dataplane.Event) dialog.Message {
	m := dialog.Message{CallIDHash: e.CallIDHash, Request: e.Kind == dataplane.EventRequest, Method: fastMethod(e.Method)}
	if !m.Request {
		m.Status = int(e.Status)
	}
	return m
}

// destinationURI is the URI of the fast path's destination index idx of
// set id: the index is the destination's place in the set as the program's
// maps were last synced from the dispatcher's snapshot. A reload between
// the pick and this look-up can name the destination now at that index.
func destinationURI(snap *dispatch.Snapshot, id, idx int) string {
	set := snap.Set(id)
	if set == nil || idx >= len(set.Dests) {
		return ""
	}
	return set.Dests[idx].URI
}

// message fills m from one parsed message (either path): a request's
// method or a reply's CSeq method and status, the Call-ID hash, and for an
// INVITE request the text the record keeps (Call-ID, tags, branch) and
// what the templates and tag rules make of it. It reports false for a
// message the tracker has no use for (no CSeq on a reply). The strings
// alias in.Buf and res: the tracker copies what it keeps.
func (g *dialogs) message(m *dialog.Message, in *dialogattr.Input, res *dialogattr.Result) bool {
	pm, b := in.Msg, in.Buf
	callID := bytes.Trim(pm.CallID.Bytes(b), " \t")
	*m = dialog.Message{CallIDHash: wordhash.CallID(callID), Request: pm.IsRequest}
	if pm.IsRequest {
		m.Method = slowMethod(pm.Method.Bytes(b))
	} else {
		if pm.CSeq.Err != nil {
			return false
		}
		m.Method = slowMethod(pm.CSeq.Method.Bytes(b))
		m.Status = pm.StatusCode
		if pm.To.HasTag && m.Method == dialog.Invite && m.Status >= 200 && m.Status < 300 {
			m.ToTag = view(pm.To.Tag.Bytes(b))
		}
		return true
	}
	if m.Method != dialog.Invite {
		return true
	}
	m.CallID = view(callID)
	if pm.From.HasTag {
		m.FromTag = view(pm.From.Tag.Bytes(b))
	}
	if pm.To.HasTag {
		m.ToTag = view(pm.To.Tag.Bytes(b))
	}
	if branch, _, ok := pm.TopViaKey(b); ok {
		m.Branch = view(branch)
	}
	if err := g.attrs.Load().Eval(in, res); err != nil {
		if g.evalErrors.Add(1) == 1 {
			g.log.Warn("dialog fields: a template met an unparsable header; the dialog keeps what did expand (logged once)", "error", err)
		}
	}
	m.Src, m.Dst, m.Data = res.Src, res.Dst, res.Data
	m.AddTags, m.RemoveTags = res.Add, res.Remove
	m.Source, m.Set = in.Src.Addr().Unmap(), in.Set
	return true
}

// view is b as a string without a copy. Safe here because the tracker
// copies every string it keeps (dialog.Message) and b outlives the call.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func slowMethod(b []byte) dialog.Method {
	switch string(b) {
	case "INVITE":
		return dialog.Invite
	case "ACK":
		return dialog.Ack
	case "BYE":
		return dialog.Bye
	case "CANCEL":
		return dialog.Cancel
	}
	return dialog.OtherMethod
}

func fastMethod(m dataplane.Method) dialog.Method {
	switch m {
	case dataplane.MethodInvite:
		return dialog.Invite
	case dataplane.MethodAck:
		return dialog.Ack
	case dataplane.MethodBye:
		return dialog.Bye
	case dataplane.MethodCancel:
		return dialog.Cancel
	}
	return dialog.OtherMethod
}
