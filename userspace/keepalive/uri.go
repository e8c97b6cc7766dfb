package keepalive

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Default SIP port (RFC 3261 §19.1.2); only sip: URIs are probed.
const defaultPort = 5060

// maxURILen bounds a destination URI.
const maxURILen = 1024

// target is where a destination URI is probed.
type target struct {
	host    string         // host as written (a name, or an IP literal)
	port    int            // explicit port, else 5060
	literal netip.AddrPort // valid when host is an IP literal
}

// Normalize returns uri as the module stores and compares it: "sip:" is
// prepended when uri has neither the sip: nor the sips: scheme (as
// Kamailio's ka_add_dest does), and the scheme is written in lower case.
// Everything else is compared byte for byte.
func Normalize(uri string) string {
	uri = strings.TrimSpace(uri)
	switch {
	case hasPrefixFold(uri, "sip:"):
		return "sip:" + uri[4:]
	case hasPrefixFold(uri, "sips:"):
		return "sips:" + uri[5:]
	}
	return "sip:" + uri
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// parseTarget checks a normalized URI and returns where to probe it.
// Probes go over the slow path's UDP sockets, so a sips: URI and a
// transport other than UDP are refused rather than monitored with probes
// that could never be answered (kamailio#4212: refuse what cannot be
// probed).
func parseTarget(uri string) (target, error) {
	if len(uri) > maxURILen {
		return target{}, fmt.Errorf("uri of %d bytes: at most %d", len(uri), maxURILen)
	}
	b := []byte(uri)
	var u sipmsg.URI
	if err := sipmsg.ParseURI(b, sipmsg.Span{Start: 0, End: int32(len(b))}, &u); err != nil || !u.SIP {
		return target{}, fmt.Errorf("uri %q: not a sip: URI", uri)
	}
	if u.Secure {
		return target{}, fmt.Errorf("uri %q: sips (TLS) cannot be probed: probes go over UDP", uri)
	}
	if u.HasTransport && !strings.EqualFold(u.Transport.String(b), "udp") {
		return target{}, fmt.Errorf("uri %q: transport %s cannot be probed: probes go over UDP", uri, u.Transport.String(b))
	}
	if u.HasMaddr {
		return target{}, fmt.Errorf("uri %q: maddr is not supported", uri)
	}
	host := u.Host.String(b)
	if host == "" {
		return target{}, errors.New("uri " + uri + ": no host")
	}
	t := target{host: host, port: defaultPort}
	if u.HasPort {
		if u.PortNum <= 0 || u.PortNum > 65535 {
			return target{}, fmt.Errorf("uri %q: port out of range", uri)
		}
		t.port = u.PortNum
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		if a.Zone() != "" {
			return target{}, fmt.Errorf("uri %q: IPv6 zones are not supported", uri)
		}
		t.literal = netip.AddrPortFrom(a.Unmap(), uint16(t.port))
	}
	return t, nil
}

// checkFrom checks a ping_from URI: a sip: or sips: URI.
func checkFrom(from string) error {
	b := []byte(from)
	var u sipmsg.URI
	if len(b) == 0 || len(b) > maxURILen || sipmsg.ParseURI(b, sipmsg.Span{Start: 0, End: int32(len(b))}, &u) != nil || !u.SIP {
		return fmt.Errorf("ping_from %q: want a sip: or sips: URI", from)
	}
	return nil
}
