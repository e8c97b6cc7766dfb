package dispatch

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Default SIP ports (RFC 3261 §19.1.2).
const (
	portSIP  = 5060
	portSIPS = 5061
)

// Retry bounds for a URI written without a scheme: Kamailio prepends "sip:"
// when such a URI is 5 to 499 bytes long.
const (
	noSchemeMinLen = 5
	noSchemeMaxLen = 499
)

// destURI is a parsed destination URI.
type destURI struct {
	uri       string // as stored: the input, or "sip:"+input (no-scheme retry)
	scheme    string // "sip" or "sips", lower case
	user      string // without password
	host      string // as written; IPv6 keeps its brackets
	port      int    // 0 when absent
	transport string // "udp", "tcp", ..., or "" (Kamailio's PROTO_NONE)
	literal   netip.Addr
}

// parseDestURI parses a destination URI the way dispatcher's pack_dest sees
// it, then applies sipedge's UDP-only rule.
func parseDestURI(raw string) (destURI, error) {
	s := raw
	if !hasSIPScheme(s) {
		if len(s) < noSchemeMinLen || len(s) > noSchemeMaxLen {
			return destURI{}, fmt.Errorf("uri %q: not a sip: or sips: URI", raw)
		}
		s = "sip:" + s
	}
	u, err := parseSIPURI(s)
	if err != nil {
		return destURI{}, fmt.Errorf("uri %q: %w", raw, err)
	}
	if u.transport != "" && u.transport != "udp" {
		return destURI{}, fmt.Errorf("uri %q: transport %s not supported yet (UDP only)", raw, u.transport)
	}
	return u, nil
}

func hasSIPScheme(s string) bool {
	return hasPrefixFold(s, "sip:") || hasPrefixFold(s, "sips:")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// parseSIPURI parses sip:[user[:password]@]host[:port][;params][?headers].
func parseSIPURI(s string) (destURI, error) {
	u := destURI{uri: s}
	scheme, rest, _ := strings.Cut(s, ":")
	u.scheme = strings.ToLower(scheme)
	rest, _, _ = strings.Cut(rest, "?") // headers play no part here
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		u.user, _, _ = strings.Cut(userinfo, ":")
		if u.user == "" {
			return destURI{}, fmt.Errorf("empty user before '@'")
		}
	}
	hostport, params, _ := strings.Cut(rest, ";")
	if err := u.parseHostPort(hostport); err != nil {
		return destURI{}, err
	}
	explicit, err := transportParam(params)
	if err != nil {
		return destURI{}, err
	}
	u.transport = u.defaultTransport(explicit)
	return u, nil
}

// defaultTransport applies dispatcher.list's transport rule (§1.1): an
// explicit transport= wins; sips: means TLS; an IP literal gets UDP; a name
// with a port gets UDP; a name without a port gets none (PROTO_NONE).
func (u *destURI) defaultTransport(explicit string) string {
	switch {
	case explicit != "":
		return explicit
	case u.scheme == "sips":
		return "tls"
	case u.literal.IsValid(), u.port != 0:
		return "udp"
	default:
		return ""
	}
}

func (u *destURI) parseHostPort(hp string) error {
	var portStr string
	hasPort := false
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return fmt.Errorf("IPv6 reference %q has no ']'", hp)
		}
		a, err := netip.ParseAddr(hp[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("bad IPv6 reference %q", hp[:end+1])
		}
		u.host, u.literal = hp[:end+1], a
		after := hp[end+1:]
		if after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return fmt.Errorf("unexpected %q after IPv6 reference", after)
			}
			portStr, hasPort = p, true
		}
	} else {
		host, p, found := strings.Cut(hp, ":")
		portStr, hasPort = p, found
		if err := u.setHost(host); err != nil {
			return err
		}
	}
	if hasPort {
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 1 || port > 65535 || strings.ContainsAny(portStr, "+-") {
			return fmt.Errorf("bad port %q", portStr)
		}
		u.port = port
	}
	return nil
}

func (u *destURI) setHost(host string) error {
	if host == "" {
		return fmt.Errorf("empty host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return fmt.Errorf("IPv6 address %q must be in brackets", host)
		}
		u.host, u.literal = host, a
		return nil
	}
	if !validHostname(host) {
		return fmt.Errorf("bad host %q", host)
	}
	u.host = host
	return nil
}

// validHostname accepts dot-separated labels of letters, digits, '-' and
// '_', with an optional trailing dot.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// knownTransport reports whether t is a transport= value Kamailio knows.
func knownTransport(t string) bool {
	switch t {
	case "udp", "tcp", "tls", "sctp", "ws", "wss":
		return true
	}
	return false
}

// transportParam returns the lower-cased transport= parameter, "" if absent.
func transportParam(params string) (string, error) {
	if params == "" {
		return "", nil
	}
	var t string
	for _, p := range strings.Split(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "transport") {
			continue
		}
		t = strings.ToLower(strings.TrimSpace(value))
		if !knownTransport(t) {
			return "", fmt.Errorf("unknown transport %q", value)
		}
	}
	return t, nil
}

// normalizeURI returns the URI string Build stores for raw: raw itself, or
// "sip:"+raw when Kamailio's no-scheme retry applies.
func normalizeURI(raw string) string {
	if !hasSIPScheme(raw) && len(raw) >= noSchemeMinLen && len(raw) <= noSchemeMaxLen {
		return "sip:" + raw
	}
	return raw
}
