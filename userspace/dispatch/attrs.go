package dispatch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Attrs are a destination's attributes (the fifth dispatcher.list field),
// parsed the way Kamailio's ds_set_attrs does.
type Attrs struct {
	// Body is the attribute string as given; unknown names live only here.
	Body string

	DUID       string // call-load id (alg 10)
	MaxLoad    int    // call-load limit, 0 = none
	Weight     int    // alg 9 share, 1..100 (0 = not set)
	RWeight    int    // alg 11 relative weight, 1..100 (0 = not set)
	Socket     string // sending socket, e.g. "udp:10.0.0.1:5060"
	SockName   string // sending socket by name
	PingSocket string // socket for OPTIONS probes
	PingFrom   string // From URI of OPTIONS probes
	OBProxy    string // outbound proxy for OPTIONS probes
	Latency    int    // initial latency estimate in ms (alg 13)
	CC         int    // congestion control: on when not 0 (alg 13 ranks by EST−AVG)
	// PingStrict (ping_strict=1, kamailio PR #4863): only a 2xx reply to a
	// probe is a success for this destination; ds_ping_reply_codes is
	// ignored for it.
	PingStrict bool
	OCMin      int // overload control minimum rate
	OCMax      int // overload control maximum rate, default 100
	OCRate     int // overload control rate
}

// defaultOCMax is the ocmax a destination gets when its attributes do not
// set one (Kamailio prints OCMAX 100 for such destinations).
const defaultOCMax = 100

// ParseAttrs parses "name=value;..." attributes. One trailing ';' is dropped,
// names are case-insensitive, values may be double-quoted (to hold a ';').
// Unlike Kamailio, which logs and zeroes a weight or rweight outside 1..100,
// ParseAttrs returns an error naming the value; a number that does not parse
// is an error too. Every problem found is reported, joined.
func ParseAttrs(s string) (Attrs, error) {
	a, errs := parseAttrs(s)
	if len(errs) > 0 {
		return Attrs{}, errors.Join(errs...)
	}
	return a, nil
}

// parseAttrs is ParseAttrs returning its errors one by one, so that Build
// can prefix each with the entry's source.
func parseAttrs(s string) (Attrs, []error) {
	a := Attrs{Body: s, OCMax: defaultOCMax}
	var errs []error
	body := strings.TrimSuffix(s, ";")
	for _, p := range splitAttrs(body) {
		name, value, _ := strings.Cut(p, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		value = unquote(strings.TrimSpace(value))
		if name == "" {
			if strings.TrimSpace(p) != "" {
				errs = append(errs, fmt.Errorf("attribute %q has no name", p))
			}
			continue
		}
		if err := a.set(name, value); err != nil {
			errs = append(errs, err)
		}
	}
	return a, errs
}

// set stores one known attribute; unknown names are ignored (they stay in
// Body).
func (a *Attrs) set(name, value string) error {
	var err error
	switch name {
	case "duid":
		a.DUID = value
	case "socket":
		a.Socket = value
	case "sockname":
		a.SockName = value
	case "ping_socket":
		a.PingSocket = value
	case "ping_from":
		a.PingFrom = value
	case "obproxy":
		a.OBProxy = value
	case "maxload":
		a.MaxLoad, err = attrUint(name, value)
	case "weight":
		a.Weight, err = attrWeight(name, value)
	case "rweight":
		a.RWeight, err = attrWeight(name, value)
	case "latency":
		a.Latency, err = attrInt(name, value)
	case "cc":
		a.CC, err = attrUint(name, value)
	case "ping_strict":
		a.PingStrict, err = attrBool(name, value)
	case "ocmin":
		a.OCMin, err = attrUint(name, value)
	case "ocmax":
		a.OCMax, err = attrUint(name, value)
	case "ocrate":
		a.OCRate, err = attrUint(name, value)
	}
	return err
}

func attrInt(name, value string) (int, error) {
	n, err := strconv.Atoi(value)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", name, value)
	}
	return n, nil
}

func attrUint(name, value string) (int, error) {
	n, err := attrInt(name, value)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%s %q is negative", name, value)
	}
	return n, nil
}

// attrBool reads 0 or 1; anything else is an error (Kamailio would take
// any number, and "yes" as 0).
func attrBool(name, value string) (bool, error) {
	switch value {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s %q: want 0 or 1", name, value)
}

func attrWeight(name, value string) (int, error) {
	n, err := attrInt(name, value)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > 100 {
		return 0, fmt.Errorf("%s %q outside 1..100", name, value)
	}
	return n, nil
}

// splitAttrs splits on ';' outside double quotes, dropping empty parts.
func splitAttrs(s string) []string {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				parts = appendNonEmpty(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return appendNonEmpty(parts, s[start:])
}

func appendNonEmpty(parts []string, p string) []string {
	if strings.TrimSpace(p) == "" {
		return parts
	}
	return append(parts, p)
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}
