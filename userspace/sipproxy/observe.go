package sipproxy

import (
	"net/netip"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Observed is one dialog-relevant message of the slow path, handed to
// Config.Observe: the messages the fast path reports as events
// (bpf/events.h events_wanted), so that the dialog tracker is fed the same
// way by both paths. It is passed by value; Data and Msg are valid only
// during the call.
//
// Which messages, once sent (one whose send failed is not reported; one
// whose next hop is a name is reported as it is queued for the resolver):
//   - every INVITE, ACK, BYE and CANCEL request forwarded statelessly
//     (dispatched or loose-routed), as it came in;
//   - every reply forwarded whose CSeq method is INVITE (100 included) or,
//     for finals, BYE or CANCEL;
//   - a failover-mode INVITE once (Failover below), and the replies its
//     transaction relays to the caller;
//   - the final replies the failover transaction makes itself (503 when
//     every destination failed, 487 after the caller's CANCEL, 500 when it
//     is stuck), with Local set: without them the dialog would stay INIT
//     until init_lifetime.
//
// The slow path's other local replies (400, 483, 503 no destination, 503
// table full ...) are not reported: they answer requests that were never
// forwarded, so never reported, and the tracker could only count them
// unmatched. ACKs and CANCELs the failover transaction absorbs are not
// forwarded either; its 487 stands for the CANCEL.
//
// Failover: a failover INVITE is reported once, when the destination that
// carries it is known: right before the first response relayed to the
// caller (a provisional above 100, or a final), with the DstURI of the
// destination that sent it; or, when the transaction answers the caller
// itself before that, right before its own final, with the destination
// tried last ("" when none was). Reporting each branch would record the
// INVITE under every destination tried (or be ignored as a retransmission:
// the caller's branch is the same), and reporting it at once would charge
// the call to a destination that may fail over; the destination that
// answers is the one whose calls dst counts and alg 10 loads. A 100 Trying
// is hop by hop and says nothing of the callee: it does not count. Until
// then (at most failover.timeout per silent destination) the tracker does
// not see the call; a destination that rings and then fails (5xx after
// 180, rare) keeps the record it rang for.
type Observed struct {
	// Data is the message: as received for forwarded ones (before the
	// contract's edits), as sent for Local replies. Msg is Data parsed.
	Data []byte
	Msg  *sipmsg.Msg
	// Src is where the message came from; the zero AddrPort for a Local
	// reply.
	Src netip.AddrPort
	// Listener is the name of the listener it arrived on (for a Local
	// reply, the INVITE's).
	Listener string
	// SetID is the destination set a request was dispatched to; -1 for
	// replies and for requests not dispatched (loose-routed).
	SetID int
	// DstURI is the URI of the destination a request was dispatched to;
	// "" for replies and loose-routed requests.
	DstURI string
	// Local marks a final reply the slow path made itself.
	Local bool
	// Failover marks, in a call of Config.Admit, an INVITE that starts a
	// failover transaction: if admitted, it is observed only once a
	// destination answers it (above), not right after it is sent.
	Failover bool
}

// dialogRelevant reports whether m is one of the messages Observe gets
// (the twin of bpf/events.h events_wanted).
func dialogRelevant(data []byte, m *sipmsg.Msg) bool {
	if m.IsRequest {
		switch string(m.Method.Bytes(data)) {
		case "INVITE", "ACK", "BYE", "CANCEL":
			return true
		}
		return false
	}
	if m.CSeq.Err != nil {
		return false
	}
	switch string(m.CSeq.Method.Bytes(data)) {
	case "INVITE":
		return true
	case "BYE", "CANCEL":
		return m.StatusCode >= 200
	}
	return false
}

// observeForwarded reports a message the contract forwards (res), when it
// is dialog-relevant and a hook is set.
func (p *Proxy) observeForwarded(data []byte, m *sipmsg.Msg, src, local netip.AddrPort, res *Result) {
	if p.cfg.Observe == nil || !dialogRelevant(data, m) {
		return
	}
	o := Observed{Data: data, Msg: m, Src: unmapped(src), SetID: -1}
	if l := p.fwd.listener(local); l != nil {
		o.Listener = l.Name
	}
	if m.IsRequest && len(res.Selection.Dests) > 0 {
		o.SetID, o.DstURI = res.Selection.SetID, res.Selection.Dests[0].URI
	}
	p.cfg.Observe(o)
}

// observeInvite reports a failover INVITE, once, with the destination of
// branch b (nil: none). The caller holds p.txs.mu.
func (p *Proxy) observeInvite(tx *invTx, b *branch) {
	if p.cfg.Observe == nil || tx.observed {
		return
	}
	tx.observed = true
	var m sipmsg.Msg
	if sipmsg.Parse(tx.in, &m) != nil {
		return
	}
	o := Observed{Data: tx.in, Msg: &m, Src: tx.src, Listener: tx.listener, SetID: tx.setID}
	if b != nil {
		o.DstURI = b.uri
	}
	p.cfg.Observe(o)
}

// observeRelayed reports a reply the failover transaction relays to the
// caller (data parsed as m, from src). The caller holds p.txs.mu.
func (p *Proxy) observeRelayed(tx *invTx, data []byte, m *sipmsg.Msg, src netip.AddrPort) {
	if p.cfg.Observe == nil || !dialogRelevant(data, m) {
		return
	}
	// A copy: handing the caller's m to a function value would move it to
	// the heap for every response of the failover path, observed or not.
	mc := *m
	p.cfg.Observe(Observed{Data: data, Msg: &mc, Src: unmapped(src), Listener: tx.listener, SetID: -1})
}

// observeLocalFinal reports the final reply out the failover transaction
// made itself, after its INVITE (reported now if it was not yet, with the
// destination tried last). The caller holds p.txs.mu.
func (p *Proxy) observeLocalFinal(tx *invTx, out []byte) {
	if p.cfg.Observe == nil {
		return
	}
	p.observeInvite(tx, tx.current())
	var m sipmsg.Msg
	if sipmsg.Parse(out, &m) != nil {
		return
	}
	p.cfg.Observe(Observed{Data: out, Msg: &m, Listener: tx.listener, SetID: -1, Local: true})
}

func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}
