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
	// up destinations (Set.Live) by rendezvous hashing: each such call goes
	// to the up destination with the highest score for its hash. The pick
	// stays a pure function of the hash key and the set of up destinations;
	// calls whose own destination is up keep it, and so do re-placed calls
	// when another destination goes down (their top scorer is still up).
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

// SpreadMix is the hash FallbackSpread scores with: murmur3's 32-bit
// finalizer, a bijection whose every output bit depends on every input bit.
// The XDP program computes the same function (bpf/pick.h).
func SpreadMix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// spreadSeedStep is 2^32 divided by the golden ratio, rounded to odd: the
// seeds (j+1)·step of destination indices j are distinct (an odd multiplier
// is a bijection mod 2^32) and differ in their high bits, so no two
// destinations' scores are related by flipping a few low bits of the hash.
const spreadSeedStep = 0x9e3779b9

// SpreadScore is destination index j's rendezvous score for hash h:
// SpreadMix(h ^ (j+1)·0x9e3779b9). The seed is a fixed function of the
// index, which is stable as long as the list is: a set is rebuilt from the
// same list in the same order (reloads and state changes keep indices),
// and an edit of the list that renumbers destinations renumbers the start
// indices h mod m too. Distinct seeds and a bijective mix mean two indices
// never tie for one hash; WalkHash still breaks ties by the lower index.
func SpreadScore(h uint32, j int) uint32 {
	return SpreadMix(h ^ uint32(j+1)*spreadSeedStep)
}

// rendezvous returns the entry of live with the highest SpreadScore for h,
// the lowest index on a tie. live must not be empty.
func rendezvous(h uint32, live []int16) int {
	best, top := int(live[0]), SpreadScore(h, int(live[0]))
	for _, j := range live[1:] {
		if sc := SpreadScore(h, int(j)); sc > top {
			best, top = int(j), sc
		}
	}
	return best
}

// WalkHash is Walk for the hash algorithms: with FallbackSpread, a start
// index whose destination is down picks the up start index (Live) with the
// highest SpreadScore (rendezvous hashing) instead of the next up
// destination. What moves when the up set changes:
//   - a call whose start index is up stays there;
//   - a re-placed call stays on its pick while that pick is up: another
//     destination going down removes a score that was not the top one;
//   - when its pick goes down, it takes its next-highest score;
//   - a destination coming back up takes back the calls of its start index
//     and the re-placed calls whose top score it has (about 1/len(Live) of
//     them).
//
// With nothing up among the start indices it is Walk (the use_default
// default, or -1).
func (s *Set) WalkHash(h uint32) int {
	i := s.Walk(h)
	if s.Fallback != FallbackSpread || i < 0 || len(s.Live) == 0 {
		return i
	}
	if start := int(h % uint32(len(s.NextUp))); i == start {
		return i // the start index's own destination is up: it keeps the call
	}
	return rendezvous(h, s.Live)
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
