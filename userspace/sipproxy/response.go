package sipproxy

import (
	"bytes"
	"net/netip"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// response applies contract § Responses.
func (f *Forwarder) response(l *listener, in []byte, m *sipmsg.Msg, out []byte) Result {
	switch {
	case m.StartErr != nil, !m.VersionOK,
		m.NumVias == 0, m.TopVia.Err != nil,
		m.Count[sipmsg.KindContentLength] > 1, m.ContentLengthErr != nil,
		m.ContentLength > len(in)-m.Body:
		return drop(DropMalformed)
	}
	top := &m.TopVia
	if !bytes.Equal(top.SentBy.Bytes(in), l.adv) || !hasCookie(in, top) {
		return drop(DropViaNotOurs)
	}
	if bytes.HasPrefix(top.Branch.Bytes(in), []byte(statefulBranchPrefix)) {
		return handoff(HandoffStatefulBranch)
	}
	if m.NumVias == 1 {
		return handoff(HandoffLocalReply)
	}
	var next sipmsg.Via
	if sipmsg.ParseVia(in, m.Vias[1].Span, &next) != nil {
		return drop(DropMalformed)
	}
	// The next hop (RFC 3261 §18.2.2, RFC 3581 §4): a non-UDP transport or
	// a maddr goes to the slow path; else received, else the sent-by host;
	// rport's value, else the sent-by port, else 5060.
	port := 5060
	switch {
	case next.HasRportValue:
		port = next.RportNum
	case next.HasPort:
		port = next.PortNum
	}
	var ed editor
	ed.begin, ed.end = int(m.Start.Start), len(in)
	if m.ContentLength >= 0 {
		ed.end = m.Body + m.ContentLength
	}
	if !removeFirst(&ed, m, m.Vias[:m.NumVias], 1) {
		return drop(DropInternal)
	}
	o, ok := ed.write(in, out)
	if !ok {
		return drop(DropInternal)
	}
	res := Result{Action: ActionForward, Out: o}
	switch {
	case !sipmsg.EqualFold(next.Transport.Bytes(in), "udp"):
		res.Action, res.Reason = ActionHandoff, HandoffNextHopTransport
		res.DstHost, res.DstPort = string(next.Host.Bytes(in)), port
	case next.HasMaddr:
		res.Action, res.Reason = ActionHandoff, HandoffNextHopName
		res.DstHost, res.DstPort = string(next.Maddr.Bytes(in)), port
	case next.HasReceived:
		a, ok := ipLiteral(next.Received.Bytes(in))
		if !ok {
			return drop(DropMalformed)
		}
		res.Dst = netipAddrPort(a, port)
	default:
		a, ok := ipLiteral(next.Host.Bytes(in))
		if !ok {
			res.Action, res.Reason = ActionHandoff, HandoffNextHopName
			res.DstHost, res.DstPort = string(next.Host.Bytes(in)), port
			break
		}
		res.Dst = netipAddrPort(a, port)
	}
	if res.Action == ActionForward {
		switch f.nextHop(l, res.Dst) {
		case nextHopUnroutable:
			return drop(DropNextHopUnroutable)
		case nextHopLoop:
			return drop(DropNextHopLoop)
		}
	}
	return res
}

func netipAddrPort(a netip.Addr, port int) netip.AddrPort {
	return netip.AddrPortFrom(a, uint16(port))
}
