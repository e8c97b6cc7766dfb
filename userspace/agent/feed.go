package agent

import (
	"bytes"
	"slices"
	"sync"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dialogattr"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/sipproxy"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// feed is the one adapter both paths feed with the dialog-relevant
// messages they forward: the slow path's Observe hook hands it parsed
// messages, the fast path's events the same messages, INVITEs and their
// 2xx as copies when dialog tracking wants them, the rest as Call-ID
// hashes. It turns each into a dialog.Message and hands every batch to its
// consumers: dialog tracking (dialogs.enabled) and call load (the
// dispatcher's Call-ID table, on when ds_hash_size > 0, which a rule with
// algorithm 10 needs). It exists when either does; neither needs the other.
type feed struct {
	dlg   *dialogs           // nil: dialog tracking off
	loads *dispatch.CallLoad // nil: call load off
	d     *dispatch.Dispatcher
	// names are the listener names by the fast path's listener id.
	names []string
	// callLoadLis says, by the fast path's listener id, which listeners'
	// rules dispatch with algorithm 10 statelessly: their INVITE events
	// are picks the program made and charged, which the Call-ID table
	// records, and their slow-path INVITEs calls the program learns.
	callLoadLis []bool
	// placedSlow, when the fast path runs, hands it each call the slow
	// path placed with algorithm 10 (FastPath.RecordCall), so the program
	// sends the call's later requests where the slow path sent its INVITE.
	// Set before the paths start.
	placedSlow func(h uint64, set int, duid string)
	// results holds a *dialogattr.Result per slow-path reader goroutine in
	// use: Eval's strings alias it until the tracker has copied them.
	results sync.Pool

	// hold, when the fast path runs, holds the slow path's messages of
	// calls no consumer knows yet until the fast path's INVITE (hold.go).
	hold *slowHold

	// The fast path's drainer is one goroutine: its state is reused.
	fast fastFeed
}

// fastFeed is the fast path's adapter state, used by the drainer only.
type fastFeed struct {
	msg     sipmsg.Msg
	batch   []dialog.Message
	picks   []fastPick           // by message of batch
	results []*dialogattr.Result // one per INVITE of the batch
}

// fastPick is the program's algorithm 10 pick an INVITE event reports:
// destination index idx of set (idx -1: none, or another algorithm).
type fastPick struct {
	set int32
	idx int16
}

// newFeed returns the adapter of dlg and loads, or nil when both are nil.
func newFeed(cfg *config.Config, d *dispatch.Dispatcher, dlg *dialogs, loads *dispatch.CallLoad) *feed {
	if dlg == nil && loads == nil {
		return nil
	}
	f := &feed{dlg: dlg, loads: loads, d: d}
	for _, l := range cfg.Listeners {
		f.names = append(f.names, l.Name)
		r, _ := cfg.RuleFor(l.Name)
		// A failover rule's requests never take the fast path.
		f.callLoadLis = append(f.callLoadLis, r.Algorithm == int(dispatch.AlgCallLoad) && r.Mode != config.ModeFailover)
	}
	f.results.New = func() any { return new(dialogattr.Result) }
	return f
}

// wantsCopies reports whether the fast path should copy INVITEs and their
// 2xx into its events: only dialog tracking reads them.
func (f *feed) wantsCopies() bool { return f.dlg != nil }

// deliver hands a batch to the consumers. picks, by message of ms, are
// the fast path's algorithm 10 picks (nil for the slow path's messages,
// which Select placed): each is recorded in the Call-ID table before the
// messages that follow it move the loads, in the order the program
// forwarded them.
func (f *feed) deliver(ms []dialog.Message, picks []fastPick) {
	if f.loads != nil {
		var snap *dispatch.Snapshot
		for i := range ms {
			if picks != nil && picks[i].idx >= 0 {
				if snap == nil {
					snap = f.d.Snapshot()
				}
				// The index is the destination's place in the set as the
				// program's maps were last synced, as destinationURI says.
				if set := snap.Set(int(picks[i].set)); set != nil && int(picks[i].idx) < len(set.Dests) {
					f.d.RecordCallLoad(set.ID, ms[i].CallIDHash, &set.Dests[picks[i].idx])
				}
			}
			if ev, ok := callEvent(&ms[i]); ok {
				f.loads.Update(ms[i].CallIDHash, ev)
			}
		}
	}
	if f.dlg != nil {
		f.dlg.limits.observe(f.dlg.t, ms) // the tracker, then the limits' verdicts
	}
}

// callEvent is what m does to its call's load: a BYE or CANCEL request
// releases it, a 2xx to INVITE confirms it, a 3xx-6xx final to INVITE
// releases it (Kamailio's ds_load_update takes only BYE and CANCEL; the
// script calls ds_load_unset for the others). Provisionals and ACK do
// nothing.
func callEvent(m *dialog.Message) (dispatch.CallEvent, bool) {
	switch {
	case m.Request && m.Method == dialog.Bye:
		return dispatch.CallBye, true
	case m.Request && m.Method == dialog.Cancel:
		return dispatch.CallCancel, true
	case m.Request || m.Method != dialog.Invite || m.Status < 200:
		return 0, false
	case m.Status < 300:
		return dispatch.CallAnswered, true
	}
	return dispatch.CallRejected, true
}

// observeSlow is sipproxy.Config.Observe. It runs on the slow path's
// reader goroutines, concurrently.
func (f *feed) observeSlow(o sipproxy.Observed) {
	res := f.results.Get().(*dialogattr.Result)
	defer f.results.Put(res)
	var ms [1]dialog.Message
	in := dialogattr.Input{Buf: o.Data, Msg: o.Msg, Src: o.Src, Listener: o.Listener, Set: o.SetID, DstURI: o.DstURI}
	if !f.message(&ms[0], &in, res) {
		return
	}
	// With dialog tracking off, only the calls of algorithm 10's
	// listeners are the call-load table's: the others are never known.
	if (f.dlg != nil || f.callLoadListener(o.Listener)) && f.held(&ms[0]) {
		return
	}
	f.deliver(ms[:], nil)
	if f.placedSlow != nil && ms[0].Request && ms[0].Method == dialog.Invite && !o.Msg.To.HasTag {
		f.tellFastPath(&o, ms[0].CallIDHash)
	}
}

// callLoadListener reports whether the listener's rule dispatches with
// algorithm 10 statelessly.
func (f *feed) callLoadListener(name string) bool {
	i := slices.Index(f.names, name)
	return i >= 0 && f.callLoadLis[i]
}

// tellFastPath hands the fast path a dialog-creating INVITE the slow path
// dispatched with algorithm 10: its Call-ID hash, set and duid.
func (f *feed) tellFastPath(o *sipproxy.Observed, h uint64) {
	i := slices.Index(f.names, o.Listener)
	if i < 0 || !f.callLoadLis[i] || o.SetID < 0 || o.DstURI == "" {
		return
	}
	set := f.d.Snapshot().Set(o.SetID)
	if set == nil {
		return
	}
	for j := range set.Dests {
		if set.Dests[j].URI == o.DstURI {
			f.placedSlow(h, o.SetID, set.Dests[j].Attrs.DUID)
			return
		}
	}
}

// observeFast is dataplane.FastPathConfig.Events: each drained batch, on
// the drainer's goroutine.
func (f *feed) observeFast(evs []dataplane.Event) {
	ff := &f.fast
	ff.batch = ff.batch[:0]
	ff.picks = ff.picks[:0]
	invites := 0
	var snap *dispatch.Snapshot
	for i := range evs {
		e := &evs[i]
		if e.Msg == nil {
			ff.batch = append(ff.batch, compactMessage(e))
			ff.picks = append(ff.picks, f.pick(e))
			continue
		}
		// A copy: an INVITE, or a 2xx to one. Parsed as the slow path
		// parses what it forwards, so both feed the tracker alike.
		if err := sipmsg.Parse(e.Msg, &ff.msg); err != nil {
			// The program forwarded it, so it parsed there; a copy the
			// agent cannot parse still moves the dialog by its hash.
			ff.batch = append(ff.batch, compactMessage(e))
			ff.picks = append(ff.picks, f.pick(e))
			continue
		}
		in := dialogattr.Input{Buf: e.Msg, Msg: &ff.msg, Src: e.Src, Set: int(e.SetID)}
		if int(e.ListenerID) < len(f.names) {
			in.Listener = f.names[e.ListenerID]
		}
		if e.Kind == dataplane.EventRequest && e.DstIndex >= 0 {
			if snap == nil {
				snap = f.d.Snapshot()
			}
			in.DstURI = destinationURI(snap, int(e.SetID), int(e.DstIndex))
		}
		if invites == len(ff.results) {
			ff.results = append(ff.results, new(dialogattr.Result))
		}
		var m dialog.Message
		if f.message(&m, &in, ff.results[invites]) {
			invites++
			ff.batch = append(ff.batch, m)
			ff.picks = append(ff.picks, f.pick(e))
		}
	}
	f.deliver(ff.batch, ff.picks)
	// The slow path's messages held for the INVITEs of this batch follow
	// them.
	f.release(false)
}

// pick is e's algorithm 10 pick: an INVITE dispatched from a set on a
// listener whose rule is algorithm 10.
func (f *feed) pick(e *dataplane.Event) fastPick {
	if f.loads == nil || e.Kind != dataplane.EventRequest || e.Method != dataplane.MethodInvite || e.DstIndex < 0 ||
		int(e.ListenerID) >= len(f.callLoadLis) || !f.callLoadLis[e.ListenerID] {
		return fastPick{idx: -1}
	}
	return fastPick{set: e.SetID, idx: e.DstIndex}
}

// compactMessage is a fast-path event without a copy: the tracker and the
// call-load table match it by its Call-ID hash.
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
// method or a reply's CSeq method and status, the Call-ID hash, and, when
// dialog tracking is on, for an INVITE request the text the record keeps
// (Call-ID, tags, branch) and what the templates and tag rules make of it.
// It reports false for a message no consumer has a use for (no CSeq on a
// reply). The strings alias in.Buf and res: the tracker copies what it
// keeps.
func (f *feed) message(m *dialog.Message, in *dialogattr.Input, res *dialogattr.Result) bool {
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
	if m.Method != dialog.Invite || f.dlg == nil {
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
	f.dlg.fields(m, in, res)
	return true
}
