package dispatch

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// Selection is the outcome of Select: Dests[0] is the pick, the rest the
// failover order (§4). Dests is shared between callers (it is cached per
// pick on the immutable Set, so Select does not allocate): read it, never
// write its elements; appending is safe, its capacity is clipped.
type Selection struct {
	SetID int
	Dests []Destination
}

// Select picks a destination of set setID with algorithm alg and returns it
// with its failover list, capped at limit entries (0 = no cap), as
// ds_select_dst does with failover on. Unknown algorithm numbers start at
// index 0, as in Kamailio.
func (s *Snapshot) Select(setID int, alg Alg, key Key, limit int) (Selection, error) {
	set := s.Set(setID)
	if set == nil {
		return Selection{}, fmt.Errorf("select from set %d: %w", setID, ErrNoSet)
	}
	if alg == AlgLatency {
		dests, err := s.selectLatency(set)
		if err != nil {
			return Selection{}, fmt.Errorf("select from set %d with alg %d (%s): %w", setID, int(alg), alg, err)
		}
		if limit > 0 && limit < len(dests) {
			dests = dests[:limit]
		}
		return Selection{SetID: setID, Dests: dests[:len(dests):len(dests)]}, nil
	}
	if alg == AlgCallLoad {
		sel, err := s.selectCallLoad(set, key, limit)
		if err != nil {
			return Selection{}, fmt.Errorf("select from set %d with alg %d (%s): %w", setID, int(alg), alg, err)
		}
		return sel, nil
	}
	pick, err := set.pick(alg, key, s.opt.HashUserOnly)
	if err != nil {
		return Selection{}, fmt.Errorf("select from set %d with alg %d (%s): %w", setID, int(alg), alg, err)
	}
	return Selection{SetID: setID, Dests: set.cachedFailover(pick, limit)}, nil
}

// pick runs the algorithm and the §2.2 walk and returns the picked index.
func (s *Set) pick(alg Alg, key Key, userOnly bool) (int, error) {
	if !alg.Supported() {
		return -1, ErrAlgNotSupported
	}
	var h uint32
	var err error
	switch alg {
	case AlgCallID:
		h, err = callIDHash(key.CallID)
	case AlgFromURI:
		h, err = uriHash("from", key.From, userOnly)
	case AlgToURI:
		h, err = uriHash("to", key.To, userOnly)
	case AlgRURI:
		h, err = uriHash("request", key.RURI, userOnly)
	case AlgRoundRobin:
		return s.roundRobin()
	case AlgAuthUser:
		var ok bool
		if h, ok = authUserHash(key.AuthUser); !ok {
			return s.roundRobin()
		}
	case AlgRandom:
		h = rand.Uint32()
	case AlgPVar:
		h, err = pvarHash(key.PVar)
	case AlgWeight:
		h = uint32(s.WeightTable[nextSlot(&s.ctr.wlast)])
	case AlgRWeight:
		h = uint32(s.RWeightTable[nextSlot(&s.ctr.rwlast)])
	case AlgRRPriority:
		if s.EqualPriority {
			return s.roundRobin()
		}
	default: // AlgPriority and unknown numbers start at index 0
	}
	if err != nil {
		return -1, err
	}
	return s.walkedFor(alg, h)
}

// walked applies the walk and turns "nothing up" into ErrNoDestination.
func (s *Set) walked(h uint32) (int, error) {
	i := s.Walk(h)
	if i < 0 {
		return -1, ErrNoDestination
	}
	return i, nil
}

// roundRobin starts at the set's counter, which it advances at once; after
// the walk the counter points past the pick, unless another select moved
// it meanwhile (Kamailio's vlast check).
func (s *Set) roundRobin() (int, error) {
	n := uint32(len(s.Dests))
	if n == 0 {
		return -1, ErrNoDestination
	}
	var start, advanced uint32
	for {
		start = s.ctr.last.Load()
		advanced = (start + 1) % n
		if s.ctr.last.CompareAndSwap(start, advanced) {
			break
		}
	}
	i, err := s.walked(start)
	if err != nil {
		return -1, err
	}
	s.ctr.last.CompareAndSwap(advanced, uint32(i+1)%n)
	return i, nil
}

// nextSlot returns the counter's slot and advances it modulo WeightSlots.
func nextSlot(c *atomic.Uint32) uint32 {
	for {
		v := c.Load()
		if c.CompareAndSwap(v, (v+1)%WeightSlots) {
			return v % WeightSlots
		}
	}
}

// maxCachedSet is the largest set whose selection lists (failover per
// pick, alg 13 per rotation start) are cached. The picks of round robin,
// or of a hash over many calls, visit every index, and the cache holds a
// list of up to n destinations for each: n² in all for the life of the
// Set (about 340 MB for 1,000 destinations). A larger set builds the list
// at each select, capped by the limit.
const maxCachedSet = 64

// cachedFailover is Failover(pick, limit) from a per-pick cache: the full
// list is built once per immutable Set and capped (a prefix, see Failover).
func (s *Set) cachedFailover(pick, limit int) []Destination {
	if pick < 0 || pick >= len(s.failover) || len(s.Dests) > maxCachedSet {
		return s.Failover(pick, limit)
	}
	p := s.failover[pick].Load()
	if p == nil {
		l := s.Failover(pick, 0)
		s.failover[pick].CompareAndSwap(nil, &l)
		p = s.failover[pick].Load()
	}
	l := *p
	if limit > 0 && limit < len(l) {
		l = l[:limit]
	}
	return l[:len(l):len(l)]
}
