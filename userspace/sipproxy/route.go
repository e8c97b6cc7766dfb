package sipproxy

import (
	"bytes"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// routeNamesUs reports whether a Route value's URI names the listener
// (contract § Which rule applies): host byte for byte and port (5060 when
// absent) equal to ADV's, or to the listener's IP and port. A Route value
// is a name-addr (RFC 3261 §20.34): without < > it names nobody.
func routeNamesUs(l *listener, in []byte, na *sipmsg.NameAddr) bool {
	if na.Err != nil || !na.Angle || !na.URI.SIP {
		return false
	}
	return uriNamesUs(l, in, &na.URI)
}

func uriNamesUs(l *listener, in []byte, u *sipmsg.URI) bool {
	host := u.Host.Bytes(in)
	port := u.PortNum
	if port == 0 {
		port = 5060
	}
	return bytes.Equal(host, l.advHost) && port == l.advPort ||
		bytes.Equal(host, l.ipText) && port == l.port
}

// looseRoute applies contract § Loose routing: the top Route names us.
func (rc *reqCtx) looseRoute(out []byte) Result {
	m, in, l := rc.m, rc.in, rc.l
	routes := m.Routes[:m.NumRoutes]
	// Our value, and a second one naming us too (double Record-Route).
	ours := 1
	var na sipmsg.NameAddr
	if len(routes) > 1 {
		if sipmsg.ParseNameAddr(in, routes[1].Span, &na) == nil && routeNamesUs(l, in, &na) {
			ours = 2
		}
	}
	var next sipmsg.URI // the next hop's URI
	switch {
	case len(routes) > ours:
		if err := sipmsg.ParseNameAddr(in, routes[ours].Span, &na); err != nil || !na.Angle || !na.URI.SIP {
			return replyBadRoute.result(l, rc.ack)
		}
		next = na.URI
		if !next.LR {
			// Strict router (RFC 3261 §16.6 step 6): the Request-URI becomes
			// the last Route value, the strict router's URI the Request-URI.
			if !removeFirst(&rc.ed, m, routes, ours+1) {
				return drop(DropInternal)
			}
			last := m.Headers[routes[len(routes)-1].Header].Line.End
			if !rc.ed.add(edit{off: int(m.RURI.Start), end: int(m.RURI.End), kind: insCopy, from: next.Whole}) ||
				!rc.ed.add(edit{off: int(last), end: int(last), kind: insRoute, from: m.RURI}) {
				return drop(DropInternal)
			}
			return rc.toURI(out, &next)
		}
	default:
		if err := sipmsg.ParseURI(in, m.RURI, &next); err != nil {
			return replyBadRURI.result(l, rc.ack)
		}
		if !next.SIP {
			return replyUnsupportedScheme.result(l, rc.ack)
		}
	}
	if !removeFirst(&rc.ed, m, routes, ours) {
		return drop(DropInternal)
	}
	if len(routes) == ours && uriNamesUs(l, in, &next) {
		// Nothing left to route on and the Request-URI is us: the request
		// is addressed to the edge itself, so it is dispatched.
		return rc.dispatch(out)
	}
	return rc.toURI(out, &next)
}

// toURI forwards to a URI's maddr, else host, and port (5060 when absent).
// A name needs DNS and a transport other than UDP needs another socket:
// both are handed off with the bytes ready.
func (rc *reqCtx) toURI(out []byte, u *sipmsg.URI) Result {
	in := rc.in
	res, ok := rc.finish(out)
	if !ok {
		return res
	}
	host := u.Host.Bytes(in)
	if u.HasMaddr {
		host = u.Maddr.Bytes(in)
	}
	port := u.PortNum
	if port == 0 {
		port = 5060
	}
	if u.Secure || u.HasTransport && !sipmsg.EqualFold(u.Transport.Bytes(in), "udp") {
		res.Action, res.Reason = ActionHandoff, HandoffNextHopTransport
		res.DstHost, res.DstPort = string(host), port
		return res
	}
	addr, ok := ipLiteral(host)
	if !ok {
		res.Action, res.Reason = ActionHandoff, HandoffNextHopName
		res.DstHost, res.DstPort = string(host), port
		return res
	}
	res.Dst = netipAddrPort(addr, port)
	// A next hop that reflects to this host is a loop (RFC 3261 §16.3
	// step 4: 482). Multicast and broadcast Request-URIs are not refused:
	// RFC 3261 §18.1.1 allows multicast requests.
	if rc.f.nextHop(rc.l, res.Dst) == nextHopLoop || addr.IsUnspecified() {
		return replyLoopDetected.result(rc.l, rc.ack)
	}
	return res
}
