package dispatch

import (
	"fmt"
	"strconv"
	"strings"
)

// Alg is a dispatcher algorithm, numbered as Kamailio numbers them
// (ds_select_dst's second argument).
type Alg int

// The algorithms, by Kamailio number.
const (
	AlgCallID      Alg = 0  // hash of the Call-ID
	AlgFromURI     Alg = 1  // hash of the From URI
	AlgToURI       Alg = 2  // hash of the To URI
	AlgRURI        Alg = 3  // hash of the Request-URI
	AlgRoundRobin  Alg = 4  // round robin
	AlgAuthUser    Alg = 5  // hash of the auth username, else round robin
	AlgRandom      Alg = 6  // random
	AlgPVar        Alg = 7  // hash of the hash_pvar value
	AlgPriority    Alg = 8  // serial: highest priority first
	AlgWeight      Alg = 9  // weight table
	AlgCallLoad    Alg = 10 // call load: the least loaded (callload.go; slow path only)
	AlgRWeight     Alg = 11 // relative weight table
	AlgParallel    Alg = 12 // parallel forking (not supported)
	AlgLatency     Alg = 13 // latency-optimised round robin (slow path only)
	AlgRRPriority  Alg = 14 // round robin if all priorities equal and >0, else 8
	AlgSRVWeight   Alg = 15 // Kamailio master: priority + weight (not supported)
	AlgOverloadCtl Alg = 64 // round robin with overload control (not supported)
)

// algInfo is one row of the algorithm registry.
type algInfo struct {
	name      string
	supported bool
}

// algRegistry returns the registry row of a Kamailio algorithm number;
// ok is false for numbers Kamailio does not define.
func algRegistry(a Alg) (info algInfo, ok bool) {
	switch a {
	case AlgCallID:
		return algInfo{"callid", true}, true
	case AlgFromURI:
		return algInfo{"from-uri", true}, true
	case AlgToURI:
		return algInfo{"to-uri", true}, true
	case AlgRURI:
		return algInfo{"ruri", true}, true
	case AlgRoundRobin:
		return algInfo{"round-robin", true}, true
	case AlgAuthUser:
		return algInfo{"auth-user", true}, true
	case AlgRandom:
		return algInfo{"random", true}, true
	case AlgPVar:
		return algInfo{"pvar", true}, true
	case AlgPriority:
		return algInfo{"priority", true}, true
	case AlgWeight:
		return algInfo{"weight", true}, true
	case AlgCallLoad:
		return algInfo{"call-load", true}, true
	case AlgRWeight:
		return algInfo{"relative-weight", true}, true
	case AlgParallel:
		return algInfo{"parallel", false}, true
	case AlgLatency:
		return algInfo{"latency", true}, true
	case AlgRRPriority:
		return algInfo{"round-robin-priority", true}, true
	case AlgSRVWeight:
		return algInfo{"srv-weight", false}, true
	case AlgOverloadCtl:
		return algInfo{"overload-control", false}, true
	}
	return algInfo{}, false
}

// String returns the algorithm's name, or its number for numbers Kamailio
// does not define.
func (a Alg) String() string {
	if info, ok := algRegistry(a); ok {
		return info.name
	}
	return strconv.Itoa(int(a))
}

// Known reports whether Kamailio defines the algorithm number. Select treats
// unknown numbers as Kamailio does: it starts at index 0.
func (a Alg) Known() bool {
	_, ok := algRegistry(a)
	return ok
}

// Supported reports whether Select implements the algorithm. Unknown
// numbers are "supported": they pick index 0 as in Kamailio.
func (a Alg) Supported() bool {
	info, ok := algRegistry(a)
	return !ok || info.supported
}

// ParseAlg reads an algorithm given by Kamailio number ("4") or by name
// ("round-robin").
func ParseAlg(s string) (Alg, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		return Alg(n), nil
	}
	for _, a := range Algs() {
		if strings.EqualFold(a.String(), s) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown dispatcher algorithm %q", s)
}

// Algs lists every algorithm Kamailio defines, in number order.
func Algs() []Alg {
	return []Alg{AlgCallID, AlgFromURI, AlgToURI, AlgRURI, AlgRoundRobin,
		AlgAuthUser, AlgRandom, AlgPVar, AlgPriority, AlgWeight, AlgCallLoad,
		AlgRWeight, AlgParallel, AlgLatency, AlgRRPriority, AlgSRVWeight,
		AlgOverloadCtl}
}

// Key carries what the algorithms hash, taken from the message by the
// caller (this package parses no SIP).
type Key struct {
	CallID   string // Call-ID body (alg 0); trimmed here
	From     URIKey // From URI (alg 1)
	To       URIKey // To URI (alg 2)
	RURI     URIKey // Request-URI (alg 3)
	AuthUser string // digest username, Proxy-Authorization first (alg 5); "" = none
	PVar     string // the expanded hash_pvar format string (alg 7); trimmed here
	// CallIDHash is the Call-ID's key in the call-load table (alg 10):
	// the 64-bit hash the whole agent keys calls on, of the trimmed
	// Call-ID; CallID must be set too (empty is ErrEmptyHashKey).
	CallIDHash uint64
	// Invite says the request is an INVITE: alg 10 charges and picks for
	// INVITEs only; other requests go where their call went.
	Invite bool
}
