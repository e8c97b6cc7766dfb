package sipproxy

import (
	"net/netip"
	"strconv"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Refusal is Config.Admit's verdict on a dialog-creating INVITE: the zero
// Refusal admits it; one with a Code has the slow path answer the INVITE
// with Code and Reason (and Retry-After when RetryAfter > 0, in seconds)
// instead of forwarding it.
type Refusal struct {
	Code       int
	Reason     string
	RetryAfter int
}

// createsDialog reports whether a request is an INVITE without a To tag:
// one that may create a dialog, which Config.Admit is asked about.
func createsDialog(data []byte, m *sipmsg.Msg) bool {
	return m.IsRequest && !m.To.HasTag && string(m.Method.Bytes(data)) == "INVITE"
}

// refused asks Config.Admit about a dialog-creating INVITE about to be
// forwarded (the contract's Result res) and, when it is refused, answers
// it. It reports whether it did.
func (p *Proxy) refused(data []byte, m *sipmsg.Msg, src, local netip.AddrPort, res *Result) bool {
	if p.cfg.Admit == nil || !createsDialog(data, m) {
		return false
	}
	o := Observed{Data: data, Msg: m, Src: unmapped(src), SetID: -1}
	if l := p.fwd.listener(local); l != nil {
		o.Listener = l.Name
	}
	if len(res.Selection.Dests) > 0 {
		o.SetID, o.DstURI = res.Selection.SetID, res.Selection.Dests[0].URI
	}
	return p.answerRefusal(data, m, src, local, p.cfg.Admit(o))
}

// refusedFailover asks Config.Admit about a failover-mode INVITE that is
// about to start a transaction (not a retransmission of one), dispatched
// to setID. The caller holds p.txs.mu.
func (p *Proxy) refusedFailover(data []byte, m *sipmsg.Msg, src, local netip.AddrPort, setID int) bool {
	if p.cfg.Admit == nil || !createsDialog(data, m) {
		return false
	}
	o := Observed{Data: data, Msg: m, Src: unmapped(src), SetID: setID, Failover: true}
	if l := p.fwd.listener(local); l != nil {
		o.Listener = l.Name
	}
	return p.answerRefusal(data, m, src, local, p.cfg.Admit(o))
}

// answerRefusal answers a refused INVITE (counted in the replies by code;
// the agent counts it per limit) and reports whether r refused it.
func (p *Proxy) answerRefusal(data []byte, m *sipmsg.Msg, src, local netip.AddrPort, r Refusal) bool {
	if r.Code == 0 {
		return false
	}
	// The selection (alg 10) charged a load for this INVITE; nothing
	// reports the local refusal to Observe, so it is given back here or
	// it would stay until ds_hash_initexpire.
	p.refusedCallLoad(local, m.CallID.Bytes(data))
	retryAfter := ""
	if r.RetryAfter > 0 {
		retryAfter = strconv.Itoa(r.RetryAfter)
	}
	p.replyLocked(data, m, src, local, r.Code, r.Reason, retryAfter)
	return true
}
