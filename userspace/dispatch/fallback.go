package dispatch

import (
	"fmt"
	"strings"
)

// HashFallback says where a hash algorithm sends a call whose start index
// names a down destination (config key dispatcher.ds_hash_fallback).
type HashFallback int

const (
	// FallbackNext is Kamailio's §2.2 walk: the next up destination takes
	// every call of the down one, so that neighbour gets twice its share
	// (kamailio#2361). The default, for compatibility.
	FallbackNext HashFallback = iota
	// FallbackSpread spreads the down destination's calls evenly over all
	// up destinations (Set.Live), by bits of the hash that the start index
	// did not use: the pick stays a pure function of the hash key and the
	// set of up destinations, and calls whose own destination is up keep it.
	FallbackSpread
)

// String returns the config spelling: "next" or "spread".
func (f HashFallback) String() string {
	switch f {
	case FallbackNext:
		return "next"
	case FallbackSpread:
		return "spread"
	}
	return fmt.Sprintf("HashFallback(%d)", int(f))
}

// ParseHashFallback reads "next" or "spread" (any case); "" is next.
func ParseHashFallback(s string) (HashFallback, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "next":
		return FallbackNext, nil
	case "spread":
		return FallbackSpread, nil
	}
	return 0, fmt.Errorf("hash fallback %q: want next or spread", s)
}

// hashed reports whether alg's start value is a hash of the message (or a
// random number), the algorithms ds_hash_fallback applies to: 0, 1, 2, 3,
// 5 (with a username; without one it is round robin), 6 and 7. The others
// keep Kamailio's walk: round robin (4, 14) already skips a down
// destination without doubling its neighbour (the cursor moves past the
// pick); priority (8) is meant to fall to the next one; alg 9's start is a
// destination index from a table, so spreading it by the start value would
// move a dead destination's whole weight to one other destination again,
// and alg 11's table is rebuilt over the up destinations on every change.
func (a Alg) hashed() bool {
	switch a {
	case AlgCallID, AlgFromURI, AlgToURI, AlgRURI, AlgAuthUser, AlgRandom, AlgPVar:
		return true
	}
	return false
}

// computeLive lists the up destinations among the start indices 0..m-1,
// ascending: the destinations FallbackSpread spreads over. The default of
// use_default (index m) is not one of them: it stays the last resort.
func computeLive(dests []Destination, m int) []int16 {
	var live []int16
	for i := 0; i < m && i < len(dests); i++ {
		if dests[i].Up() {
			live = append(live, int16(i))
		}
	}
	return live
}

// SpreadMix is the second hash FallbackSpread reduces: murmur3's 32-bit
// finalizer, a bijection whose every output bit depends on every input bit.
// The start index is h mod m; using h mod len(Live) instead would tie the
// choice to the start index (with m = 6 and 3 up, h mod 3 is fixed by
// h mod 6), so the down destination's calls would again land on one
// destination. The XDP program computes the same function (bpf/pick.h).
func SpreadMix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// spreadSlot maps h onto 0..n-1 by the high bits of SpreadMix(h)
// (multiply and shift: no modulo bias towards low slots beyond 1 in 2^32/n).
func spreadSlot(h uint32, n int) int {
	return int(uint64(SpreadMix(h)) * uint64(n) >> 32)
}

// WalkHash is Walk for the hash algorithms: with FallbackSpread, a start
// index whose destination is down picks Live[spreadSlot(h, len(Live))]
// instead of the next up destination. With nothing up among the start
// indices it is Walk (the use_default default, or -1).
func (s *Set) WalkHash(h uint32) int {
	i := s.Walk(h)
	if s.Fallback != FallbackSpread || i < 0 || len(s.Live) == 0 {
		return i
	}
	if start := int(h % uint32(len(s.NextUp))); i == start {
		return i // the start index's own destination is up: it keeps the call
	}
	return int(s.Live[spreadSlot(h, len(s.Live))])
}

// walkedFor is walked, through WalkHash for the hash algorithms.
func (s *Set) walkedFor(alg Alg, h uint32) (int, error) {
	if !alg.hashed() {
		return s.walked(h)
	}
	i := s.WalkHash(h)
	if i < 0 {
		return -1, ErrNoDestination
	}
	return i, nil
}
