package sipproxy

import "net/netip"

// A next hop taken from the message itself (a response's next Via or its
// received parameter, a request's Route or Request-URI IP literal) is
// checked before anything is sent there (contract § Next hops taken from
// the message): a sender must not be able to make the edge send to nowhere,
// to everyone, or back to itself.

// nextHopKind classifies such a next hop.
type nextHopKind uint8

const (
	nextHopOK nextHopKind = iota
	// nextHopUnroutable: the unspecified address (0.0.0.0, ::), the IPv4
	// limited broadcast 255.255.255.255, or a multicast address.
	nextHopUnroutable
	// nextHopLoop: one of the agent's own listeners (IP and port), or a
	// loopback address when the message did not arrive on a loopback
	// listener: sending there reflects the message to this host.
	nextHopLoop
)

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// nextHop classifies dst for a message that arrived on l.
func (f *Forwarder) nextHop(l *listener, dst netip.AddrPort) nextHopKind {
	a := dst.Addr().Unmap()
	switch {
	case a.IsUnspecified(), a == limitedBroadcast, a.IsMulticast():
		return nextHopUnroutable
	case a.IsLoopback() && !l.Addr.Addr().IsLoopback():
		return nextHopLoop
	}
	for i := range f.listeners {
		if f.listeners[i].Addr == netip.AddrPortFrom(a, dst.Port()) {
			return nextHopLoop
		}
	}
	return nextHopOK
}

// resolvedNextHop applies the same rule to a next hop that was a name, once
// resolved (the forwarded bytes are ready; only the address was missing):
// the drop label, or "" when it may be sent to. A request that would loop
// is dropped here, not answered: the original datagram is gone.
func (f *Forwarder) resolvedNextHop(local, dst netip.AddrPort, request bool) string {
	l := f.listener(local)
	if l == nil {
		return DropUnknownListener
	}
	switch k := f.nextHop(l, dst); {
	case k == nextHopLoop, request && dst.Addr().IsUnspecified():
		return DropNextHopLoop
	case k == nextHopUnroutable && !request:
		return DropNextHopUnroutable
	}
	return ""
}
