package sipproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// Failover mode is Kamailio's t_relay + failure_route + ds_next_dst: the
// INVITE is relayed statefully to the picked destination; a timeout without
// any response, or a 5xx final response, moves it to the next destination of
// the failover list; when the list is spent the caller gets 503. A failed
// destination is skipped for this call only: without probing (a later
// issue), Kamailio's ds_mark_dst would take it out for good.

// statefulBranchPrefix marks branches of failover-mode client transactions,
// so that the contract (and the XDP program) hand their responses to the
// transaction layer instead of forwarding them statelessly.
const statefulBranchPrefix = "z9hG4bKsf"

type branchOutcome int

const (
	branchFinal     branchOutcome = iota // a final response was relayed upstream
	branchFailed                         // timeout, transport error or 5xx: try the next destination
	branchCancelled                      // the caller cancelled
)

func (p *Proxy) runFailover(ctx context.Context, call *statefulCall, req *sip.Request, stx *sip.ServerTx) {
	defer p.stateful.remove(req)
	listener, ok := p.listener(call.local)
	if !ok {
		p.respond(stx, req, 500, "Server Internal Error")
		return
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cancelled := make(chan struct{})
	stx.OnCancel(func(*sip.Request) { close(cancelled) })
	stx.OnTerminate(func(string, error) { cancel() })

	src, _ := netip.ParseAddrPort(req.Source())
	var last *sip.Response
	for i, dst := range call.selection.Dests {
		out, err := p.outgoingInvite(req, src, listener, dst)
		if err != nil {
			p.log.Warn("failover: cannot build INVITE", "dst", dst.URI, "error", err)
			continue
		}
		outcome, res := p.tryBranch(ctx, out, stx, req, src, cancelled)
		switch outcome {
		case branchFinal, branchCancelled:
			return
		}
		last = res
		p.log.Info("failover: destination failed", "call_id", callID(req), "dst", dst.URI,
			"attempt", i+1, "status", statusOf(res))
	}
	p.log.Warn("failover: every destination failed", "call_id", callID(req),
		"tried", len(call.selection.Dests), "last_status", statusOf(last))
	p.respond(stx, req, 503, "Service Unavailable")
}

// tryBranch relays out on a client transaction and relays its responses on
// stx until a final response, a failure or a cancel.
func (p *Proxy) tryBranch(ctx context.Context, out *sip.Request, stx *sip.ServerTx, req *sip.Request,
	src netip.AddrPort, cancelled <-chan struct{}) (branchOutcome, *sip.Response) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clientTx, err := p.txl.Request(ctx, out)
	if err != nil {
		return branchFailed, nil
	}
	defer clientTx.Terminate()
	// 2xx retransmissions arrive after the client transaction accepted the
	// first one (RFC 6026); pass them upstream statelessly.
	clientTx.OnRetransmission(func(res *sip.Response) {
		if res.IsSuccess() {
			p.relayStateless(res, req, src)
		}
	})

	timer := time.NewTimer(p.cfg.FailoverTimeout)
	defer timer.Stop()
	replied := false
	for {
		select {
		case res, ok := <-clientTx.Responses():
			if !ok {
				return branchFailed, nil
			}
			if !replied {
				replied = true
				timer.Stop()
			}
			switch {
			case res.StatusCode == 100:
				// Hop by hop: our server transaction sends its own 100.
			case res.IsProvisional():
				p.relay(stx, res, req, src)
			case res.StatusCode >= 500 && res.StatusCode < 600:
				return branchFailed, res
			default:
				p.relay(stx, res, req, src)
				return branchFinal, res
			}
		case <-timer.C:
			return branchFailed, nil
		case <-clientTx.Done():
			return branchFailed, nil
		case <-cancelled:
			if replied {
				p.cancelDownstream(ctx, out)
			}
			return branchCancelled, nil
		case <-ctx.Done():
			return branchCancelled, nil
		}
	}
}

// relay passes a downstream response up through the server transaction,
// minus our Via.
func (p *Proxy) relay(stx *sip.ServerTx, res *sip.Response, req *sip.Request, src netip.AddrPort) {
	up := res.Clone()
	up.RemoveHeader("Via")
	up.SetDestination(replyDestination(req, src).String())
	if err := stx.Respond(up); err != nil {
		p.log.Debug("relay response", "status", res.StatusCode, "error", err)
		return
	}
	p.stats.forwarded()
}

// relayStateless sends a response upstream without the server transaction
// (2xx retransmissions after it ended).
func (p *Proxy) relayStateless(res *sip.Response, req *sip.Request, src netip.AddrPort) {
	up := res.Clone()
	up.RemoveHeader("Via")
	call, ok := p.stateful.lookup(req)
	local := netip.AddrPort{}
	if ok {
		local = call.local
	}
	if c := p.conn(local); c != nil {
		if _, err := c.WriteToUDPAddrPort([]byte(up.String()), replyDestination(req, src)); err == nil {
			p.stats.forwarded()
		}
	}
}

// outgoingInvite is the INVITE for one destination: received/rport on the
// caller's Via, Max-Forwards, our Via with a fresh stateful branch, and
// Record-Route when the rule asks.
func (p *Proxy) outgoingInvite(req *sip.Request, src netip.AddrPort, l Listener, dst dispatch.Destination) (*sip.Request, error) {
	if !dst.Addr.IsValid() {
		return nil, fmt.Errorf("destination %s has no address", dst.URI)
	}
	out := req.Clone()
	if via := out.Via(); via != nil && src.IsValid() {
		ip := src.Addr().String()
		if v, ok := via.Params.Get("rport"); ok && v == "" {
			via.Params.Add("rport", strconv.Itoa(int(src.Port())))
			via.Params.Add("received", ip)
		} else if via.Host != ip {
			via.Params.Add("received", ip)
		}
	}
	if mf := out.MaxForwards(); mf != nil {
		mf.Dec()
	} else {
		out.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	}

	host, port := advertised(l)
	token := make([]byte, 8)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("branch: %w", err)
	}
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       "UDP",
		Host:            host,
		Port:            port,
		Params:          sip.NewParams(),
	}
	via.Params.Add("branch", statefulBranchPrefix+hex.EncodeToString(token))
	if l.Rule.RecordRoute {
		out.PrependHeader(sip.NewHeader("Record-Route", "<sip:"+advText(l)+";lr>"))
	}
	out.PrependHeader(via)

	out.SetTransport("UDP")
	out.SetDestination(dst.Addr.String())
	out.Laddr = sip.Addr{IP: l.Addr.Addr().AsSlice(), Port: int(l.Addr.Port())}
	return out, nil
}

// cancelDownstream sends CANCEL for a relayed INVITE (RFC 3261 §9.1): same
// Request-URI, Call-ID, From, To, CSeq number and the same top Via.
func (p *Proxy) cancelDownstream(ctx context.Context, inv *sip.Request) {
	c := sip.NewRequest(sip.CANCEL, inv.Recipient)
	if via := inv.Via(); via != nil {
		c.AppendHeader(via.Clone())
	}
	for _, name := range []string{"From", "To", "Call-ID", "Route"} {
		for _, h := range inv.GetHeaders(name) {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	if cseq := inv.CSeq(); cseq != nil {
		c.AppendHeader(&sip.CSeqHeader{SeqNo: cseq.SeqNo, MethodName: sip.CANCEL})
	}
	c.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	c.Laddr = inv.Laddr
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	tx, err := p.txl.Request(ctx, c)
	if err != nil {
		p.log.Debug("cancel downstream", "error", err)
		return
	}
	defer tx.Terminate()
	select {
	case <-tx.Responses():
	case <-tx.Done():
	case <-ctx.Done():
	}
}

func (p *Proxy) listener(local netip.AddrPort) (Listener, bool) {
	for _, l := range p.cfg.Listeners {
		if l.Addr == local {
			return l, true
		}
	}
	return Listener{}, false
}

// advertised splits the listener's ADV into host and port.
func advertised(l Listener) (string, int) {
	ap, err := netip.ParseAddrPort(advText(l))
	if err == nil {
		return ap.Addr().String(), int(ap.Port())
	}
	host, port := splitHostPort(advText(l))
	return host, port
}

func statusOf(res *sip.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}
