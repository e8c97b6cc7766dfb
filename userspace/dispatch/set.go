package dispatch

import (
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxSetSize is the most destinations one set may hold: indices must fit
// the int16 pick tables the XDP fast path copies.
const MaxSetSize = math.MaxInt16

// WeightSlots is the size of the alg 9 and alg 11 tables.
const WeightSlots = 100

// Destination is one member of a set, at Index in the set's array.
type Destination struct {
	SetID    int
	URI      string // as stored: the entry's URI, or "sip:"+URI (no-scheme retry)
	Flags    Flags
	Priority int
	Attrs    Attrs

	Scheme    string // "sip"
	User      string
	Host      string // as written; IPv6 keeps its brackets
	Port      int    // 0 when the URI has none
	Transport string // "udp", or "" when the URI leaves it open (PROTO_NONE)
	// Addr is where messages go: the IP literal, or the first address the
	// resolver gave, with the port (5060 by default). Zero for a name with
	// FlagNoDNSARes.
	Addr netip.AddrPort

	Index        int    // position in Set.Dests
	IUID         string // "dspt-" + 8 hex digits, stable for (set, URI, n-th duplicate)
	ProbingCount int    // consecutive probe results counted toward a threshold (§3.4)
}

// Up reports whether selection may pick the destination.
func (d *Destination) Up() bool { return !d.Flags.Down() }

// Set is one destination set with its precomputed pick tables. A Set is
// immutable once built: state changes build a new Set. Treat every slice and
// array as read-only.
type Set struct {
	ID    int
	Dests []Destination

	// HashMod is m, the modulus of every start index: len(Dests), or
	// len(Dests)-1 when use_default is on and the set has more than one
	// destination (the last one is then the default).
	HashMod int
	// DefaultIdx is the default destination's index (len(Dests)-1), or -1
	// without use_default or with a single destination.
	DefaultIdx int
	// NextUp[i], for a start index i in 0..HashMod-1, is the destination the
	// §2.2 walk ends on: the first up index at or after i, cyclically over
	// 0..HashMod-1; if none, the default if it is up; else -1.
	NextUp []int16
	// Live lists the up destinations among the start indices
	// 0..HashMod-1, ascending: what FallbackSpread spreads a down
	// destination's calls over (fallback.go). Empty when none is up.
	Live []int16
	// Fallback is the snapshot's ds_hash_fallback (Options.HashFallback).
	Fallback HashFallback
	// WeightTable is the alg 9 table, built once at Build and shuffled; it
	// does not follow state changes. All zeros when Dests[0] has no weight.
	WeightTable [WeightSlots]int16
	// RWeightTable is the alg 11 table: rebuilt (and reshuffled) whenever a
	// destination with an rweight goes up or down.
	RWeightTable [WeightSlots]int16
	// EqualPriority: every destination has the same priority and it is >0,
	// so alg 14 is round robin (else alg 8).
	EqualPriority bool

	// failover[pick] caches Failover(pick, 0): the Set is immutable. Only
	// for sets of at most maxCachedSet destinations.
	failover []atomic.Pointer[[]Destination]
	// latency[start] caches alg 13's list for a rotation start, valid
	// while the set's latency statistics have not changed (ctr.latGen);
	// only for sets of at most maxCachedSet destinations.
	latency []atomic.Pointer[latencyList]

	ctr *setCounters // shared by every Set derived from the same Build
	// index finds a destination by IUID or URI; shared by every Set
	// derived from the same Build (same order, URIs and IUIDs). Nil for
	// a Set not made by newSet.
	index *destIndex
	// loadIdx holds the destinations' call loads (alg 10), shared like
	// index. Nil for a Set not made by newSet.
	loadIdx *loadIndex
}

// destIndex maps IUIDs and URIs to indices, built on first use, so a probe
// result finds its destination without scanning the set.
type destIndex struct {
	once sync.Once
	iuid map[string]int
	uri  map[string]int // lower case URI → first index
}

// find returns the first index that byAddr(addr, false) matches, -1 when
// none does.
func (s *Set) find(addr string) int {
	if s.index == nil {
		return s.scan(addr)
	}
	x := s.built()
	i, ok := x.uri[strings.ToLower(addr)]
	if j, ok2 := x.iuid[addr]; ok2 && (!ok || j < i) {
		i, ok = j, true
	}
	if !ok {
		// ToLower and EqualFold differ on a few runes: look again the
		// slow way before calling addr unknown (rare: results come for
		// known targets).
		return s.scan(addr)
	}
	return i
}

// built returns the index, built on first use. s.index is not nil.
func (s *Set) built() *destIndex {
	x := s.index
	x.once.Do(func() {
		x.iuid = make(map[string]int, len(s.Dests))
		x.uri = make(map[string]int, len(s.Dests))
		for i := len(s.Dests) - 1; i >= 0; i-- {
			x.iuid[s.Dests[i].IUID] = i
			x.uri[strings.ToLower(s.Dests[i].URI)] = i
		}
	})
	return x
}

// indexOfIUID returns the index of the destination with that IUID, -1
// when none has it.
func (s *Set) indexOfIUID(iuid string) int {
	if s.index == nil {
		for i := range s.Dests {
			if s.Dests[i].IUID == iuid {
				return i
			}
		}
		return -1
	}
	if i, ok := s.built().iuid[iuid]; ok {
		return i
	}
	return -1
}

// ByIUID returns the set's destination with that IUID, or nil.
func (s *Set) ByIUID(iuid string) *Destination {
	if i := s.indexOfIUID(iuid); i >= 0 {
		return &s.Dests[i]
	}
	return nil
}

func (s *Set) scan(addr string) int {
	match := byAddr(addr, false)
	for i := range s.Dests {
		if match.match(&s.Dests[i]) {
			return i
		}
	}
	return -1
}

// setCounters are the per-set rotating counters (Kamailio's last, wlast,
// rwlast). They survive state changes and reset on reload.
type setCounters struct {
	last   atomic.Uint32 // round robin (algs 4, 5, 14)
	wlast  atomic.Uint32 // alg 9 slot
	rwlast atomic.Uint32 // alg 11 slot
	latGen atomic.Uint64 // changes of the set's latency statistics (alg 13 cache)
}

func (c *setCounters) reset() {
	c.last.Store(0)
	c.wlast.Store(0)
	c.rwlast.Store(0)
}

// Walk maps a hash or start value to the picked index: NextUp[h % HashMod].
// It returns -1 when nothing can be picked.
func (s *Set) Walk(h uint32) int {
	if len(s.NextUp) == 0 {
		return -1
	}
	return int(s.NextUp[h%uint32(len(s.NextUp))])
}

// hashMod returns m for a set of n destinations.
func hashMod(n int, useDefault bool) int {
	if useDefault && n > 1 {
		return n - 1
	}
	return n
}

// computeNextUp builds the NextUp table for dests.
func computeNextUp(dests []Destination, m, defaultIdx int) []int16 {
	next := make([]int16, m)
	fallback := int16(-1)
	if defaultIdx >= 0 && dests[defaultIdx].Up() {
		fallback = int16(defaultIdx)
	}
	// Two passes from the end: the first finds the lowest up index (where
	// the cyclic walk wraps to), the second fills the table.
	up := int16(-1)
	for pass := 0; pass < 2; pass++ {
		for i := m - 1; i >= 0; i-- {
			if dests[i].Up() {
				up = int16(i)
			}
			if pass == 1 {
				next[i] = up
			}
		}
	}
	if up < 0 {
		for i := range next {
			next[i] = fallback
		}
	}
	return next
}

// equalPriority reports whether all destinations share one priority >0.
func equalPriority(dests []Destination) bool {
	if len(dests) == 0 || dests[0].Priority <= 0 {
		return false
	}
	for _, d := range dests[1:] {
		if d.Priority != dests[0].Priority {
			return false
		}
	}
	return true
}

// withDests returns a copy of s holding dests, with NextUp recomputed and
// the alg 11 table rebuilt when an rweight destination went up or down. The
// alg 9 table and the counters are shared (Kamailio does not rebuild wlist on
// state changes).
func (s *Set) withDests(dests []Destination, sh *shuffler) *Set {
	n := *s
	n.Dests = dests
	n.failover = make([]atomic.Pointer[[]Destination], len(dests))
	n.latency = make([]atomic.Pointer[latencyList], len(dests))
	n.NextUp = computeNextUp(dests, s.HashMod, s.DefaultIdx)
	n.Live = computeLive(dests, s.HashMod)
	for i := range dests {
		if dests[i].Attrs.RWeight > 0 && dests[i].Up() != s.Dests[i].Up() {
			n.RWeightTable = rweightTable(dests, s.RWeightTable, sh)
			break
		}
	}
	return &n
}
