package dispatch

import (
	"slices"
	"strings"
)

// Snapshot is one immutable view of every destination set: what a reload
// (Build) produced, or a copy of it with some destination states changed.
// Readers share it without locks. The only mutable parts are the per-set
// rotating counters of round robin and of the weight tables, which are
// atomics shared by all snapshots derived from one Build.
type Snapshot struct {
	sets    []*Set // ascending by ID
	entries []Entry
	opt     Options
	shuf    *shuffler
	// lat is the latency statistics of the Dispatcher serving the
	// snapshot (alg 13 reads them); nil outside a Dispatcher.
	lat *latencyTable
	// loads is the call-load table of the Dispatcher serving the
	// snapshot (alg 10); nil outside one or with call load off.
	loads *CallLoad
}

// Sets returns the sets in ascending ID order. (Kamailio walks its AVL tree
// in post-order, so sets 1,2,3 print as 1,3,2; sipedge prints ascending.)
func (s *Snapshot) Sets() []*Set { return slices.Clone(s.sets) }

// Set returns the set with that ID, or nil.
func (s *Snapshot) Set(id int) *Set {
	i, ok := slices.BinarySearchFunc(s.sets, id, func(x *Set, id int) int { return x.ID - id })
	if !ok {
		return nil
	}
	return s.sets[i]
}

// Exists reports whether the set exists (ds_list_exist).
func (s *Snapshot) Exists(id int) bool { return s.Set(id) != nil }

// Entries returns the entries the snapshot was built from, in input order,
// with their configured (not runtime) flags.
func (s *Snapshot) Entries() []Entry { return slices.Clone(s.entries) }

// Options returns the options the snapshot was built with.
func (s *Snapshot) Options() Options { return s.opt }

// IsActive reports whether the set has a destination up, or, with a
// non-empty uri, whether a destination with exactly that URI is up
// (ds_is_active).
func (s *Snapshot) IsActive(group int, uri string) bool {
	set := s.Set(group)
	if set == nil {
		return false
	}
	for i := range set.Dests {
		d := &set.Dests[i]
		if d.Up() && (uri == "" || d.URI == uri) {
			return true
		}
	}
	return false
}

// destMatch selects the destinations a state change applies to: "all"
// (when allowed), or those whose URI equals addr ignoring case (Kamailio
// compares with strncasecmp), or whose IUID is addr.
type destMatch struct {
	addr     string
	allowAll bool
}

func byAddr(addr string, allowAll bool) destMatch { return destMatch{addr: addr, allowAll: allowAll} }

func (m destMatch) match(d *Destination) bool {
	return (m.allowAll && m.addr == "all") || strings.EqualFold(d.URI, m.addr) || d.IUID == m.addr
}

// span is the part of set.Dests that can match: the one destination when
// addr is one of the set's IUIDs (a stored URI always has a scheme and an
// IUID never a colon, so no URI equals it), else the whole set. Probing
// names destinations by IUID: a result then costs the same in a set of
// 10,000 as in a set of 3 (bench/README.md, probing).
func (m destMatch) span(set *Set) (lo, hi int) {
	if i := set.indexOfIUID(m.addr); i >= 0 {
		return i, i + 1
	}
	return 0, len(set.Dests)
}

// derive returns a copy of s in which fn has changed the destinations of
// set id that match. fn gets a pointer to a copy of each matching
// destination. found reports whether any destination matched; a nil
// Snapshot with found true means nothing changed. When something changed
// and rw is not nil, destination i of the copy takes the rweight rw(i) (the
// current ones of congestion control) before the alg 11 table is rebuilt.
func (s *Snapshot) derive(id int, match destMatch, fn func(d *Destination), rw func(i int) int) (next *Snapshot, found bool) {
	set := s.Set(id)
	if set == nil {
		return nil, false
	}
	// The set is copied only once a destination changes: most probe
	// results change nothing, and a copy per result would cost the size
	// of the set each time.
	var dests []Destination
	lo, hi := match.span(set)
	for i := lo; i < hi; i++ {
		if !match.match(&set.Dests[i]) {
			continue
		}
		found = true
		d := set.Dests[i]
		fn(&d)
		if d.Flags == set.Dests[i].Flags && d.ProbingCount == set.Dests[i].ProbingCount {
			continue
		}
		if dests == nil {
			dests = slices.Clone(set.Dests)
		}
		dests[i] = d
	}
	if dests == nil {
		return nil, found
	}
	if rw != nil {
		for i := range dests {
			dests[i].Attrs.RWeight = rw(i)
		}
	}
	n := *s
	n.sets = slices.Clone(s.sets)
	for i := range n.sets {
		if n.sets[i].ID == id {
			n.sets[i] = set.withDests(dests, s.shuf)
		}
	}
	return &n, true
}

// resetCounters zeroes every set's rotating counters (a reload).
func (s *Snapshot) resetCounters() {
	for _, set := range s.sets {
		if set.ctr != nil {
			set.ctr.reset()
		}
	}
}
