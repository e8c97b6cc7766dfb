package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
)

// Resolver returns the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Options are the dispatcher module parameters Build needs.
type Options struct {
	// HashUserOnly is modparam flags bit 1: URI hashes use the user only.
	HashUserOnly bool
	// UseDefault is modparam use_default: the last destination of a set is
	// used only when every other one is down.
	UseDefault bool
	// Resolver resolves destination host names at Build; nil uses
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host). The first address
	// is used.
	Resolver Resolver
	// Rand shuffles the weight tables (algs 9 and 11); nil seeds a new
	// source. Pass a seeded source for deterministic tables in tests. The
	// snapshot and every snapshot derived from it use it under a lock, so do
	// not use it elsewhere meanwhile.
	Rand *rand.Rand
	// LatencyStats is modparam ds_ping_latency_stats: probe results update
	// each destination's LatencyStats (Dispatcher.ProbeLatency).
	LatencyStats bool
	// LatencyAlpha is modparam ds_latency_estimator_alpha, in per mille:
	// the weight of the old estimate in the EWMA (0-1000).
	LatencyAlpha int
	// HashFallback is ds_hash_fallback: where the hash algorithms send a
	// call whose start index names a down destination (fallback.go).
	HashFallback HashFallback
}

func (o Options) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if o.Resolver != nil {
		return o.Resolver(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Build turns entries into a Snapshot: it parses every URI and attribute
// string, resolves host names and builds each set's tables. Errors of all
// entries are joined, each starting with the entry's Source; any error
// means no snapshot, so a caller reloading keeps its old one.
func Build(ctx context.Context, entries []Entry, opt Options) (*Snapshot, error) {
	p, err := prepare(ctx, entries, opt, nil)
	if err != nil {
		return nil, err
	}
	return p.assemble(newShuffler(opt.Rand), nil)
}

// prepared holds parsed and resolved entries, ready to be assembled.
type prepared struct {
	entries []Entry
	dests   []Destination // one per entry, in input order
	opt     Options
}

// prepare parses and resolves entries. known holds addresses already
// resolved (host → address), used before asking the resolver.
func prepare(ctx context.Context, entries []Entry, opt Options, known map[string]netip.Addr) (*prepared, error) {
	p := &prepared{entries: slices.Clone(entries), opt: opt, dests: make([]Destination, len(entries))}
	resolved := make(map[string]netip.Addr, len(known))
	for h, a := range known {
		resolved[h] = a
	}
	failed := map[string]error{}
	var errs []error
	for i, e := range entries {
		src := entrySource(e, i)
		d, entryErrs := parseEntry(e)
		if len(entryErrs) == 0 && !d.Addr.IsValid() && d.Flags&FlagNoDNSARes == 0 {
			a, err := lookup(ctx, opt, d.Host, resolved, failed)
			if err != nil {
				entryErrs = append(entryErrs, err)
			} else {
				d.Addr = netip.AddrPortFrom(a, addrPort(d))
			}
		}
		for _, err := range entryErrs {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
		}
		p.dests[i] = d
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// entrySource names entry i (from 0) of a Build in errors.
func entrySource(e Entry, i int) string {
	if e.Source != "" {
		return e.Source
	}
	return "entry " + strconv.Itoa(i+1)
}

// tooLarge is the error for the entry that makes set id too large.
func tooLarge(src string, id int) error {
	return fmt.Errorf("%s: set %d has more than %d destinations", src, id, MaxSetSize)
}

// parseEntry checks one entry and fills what it says of its destination.
func parseEntry(e Entry) (Destination, []error) {
	d := Destination{SetID: e.SetID, URI: e.URI, Flags: e.Flags, Priority: e.Priority}
	if err := e.Check(); err != nil {
		return d, []error{err}
	}
	var errs []error
	u, err := parseDestURI(e.URI)
	if err != nil {
		errs = append(errs, err)
	} else {
		d.URI, d.Scheme, d.User, d.Host, d.Port, d.Transport = u.uri, u.scheme, u.user, u.host, u.port, u.transport
		if u.literal.IsValid() {
			d.Addr = netip.AddrPortFrom(u.literal.Unmap(), addrPort(d))
		}
	}
	a, attrErrs := parseAttrs(e.Attrs)
	d.Attrs = a
	return d, append(errs, attrErrs...)
}

// addrPort is the port messages go to: the URI's, else the scheme default.
func addrPort(d Destination) uint16 {
	switch {
	case d.Port != 0:
		return uint16(d.Port)
	case d.Scheme == "sips":
		return portSIPS
	}
	return portSIP
}

// lookup resolves host once per Build, remembering answers and failures.
func lookup(ctx context.Context, opt Options, host string, resolved map[string]netip.Addr, failed map[string]error) (netip.Addr, error) {
	if a, ok := resolved[host]; ok {
		return a, nil
	}
	if err, ok := failed[host]; ok {
		return netip.Addr{}, err
	}
	addrs, err := opt.resolve(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no address")
	}
	if err != nil {
		err = fmt.Errorf("resolve %s: %w", host, err)
		failed[host] = err
		return netip.Addr{}, err
	}
	a := addrs[0].Unmap()
	resolved[host] = a
	return a, nil
}

// assemble groups the destinations into sets, orders them as Kamailio does
// and builds the tables. state, if not nil, is the snapshot whose runtime
// state (flags, probing count) carries over to destinations with the same
// IUID (dispatcher.add / dispatcher.remove).
func (p *prepared) assemble(sh *shuffler, state *Snapshot) (*Snapshot, error) {
	bySet := map[int][]Destination{}
	over := map[int]string{} // set → source of its first entry over MaxSetSize
	var ids []int
	for i, d := range p.dests {
		if _, ok := bySet[d.SetID]; !ok {
			ids = append(ids, d.SetID)
		}
		bySet[d.SetID] = append(bySet[d.SetID], d)
		if len(bySet[d.SetID]) == MaxSetSize+1 {
			over[d.SetID] = entrySource(p.entries[i], i)
		}
	}
	slices.Sort(ids)
	snap := &Snapshot{entries: p.entries, opt: p.opt, shuf: sh}
	used := map[string]bool{}
	var errs []error
	for _, id := range ids {
		dests := bySet[id]
		if len(dests) > MaxSetSize {
			errs = append(errs, tooLarge(over[id], id))
			continue
		}
		assignIUIDs(dests, used)
		orderDests(dests)
		if state != nil {
			carryState(dests, state.Set(id))
		}
		snap.sets = append(snap.sets, newSet(id, dests, p.opt, sh))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return snap, nil
}

// orderDests sorts a set's destinations (given in input order) as
// Kamailio's add_dest2list + reindex_dests leave them: highest priority
// first, equal priorities in reverse input order. It sets Index.
func orderDests(dests []Destination) {
	slices.Reverse(dests)
	slices.SortStableFunc(dests, func(a, b Destination) int { return cmp.Compare(b.Priority, a.Priority) })
	for i := range dests {
		dests[i].Index = i
	}
}

// assignIUIDs gives each destination (in input order) its IUID: a hash of
// set, URI and how many earlier duplicates of the URI the set has, so the id
// stays the same across reloads. A collision is moved on with a salt.
func assignIUIDs(dests []Destination, used map[string]bool) {
	seen := map[string]int{}
	for i := range dests {
		d := &dests[i]
		dup := seen[d.URI]
		seen[d.URI]++
		for salt := 0; ; salt++ {
			h := fnv.New32a()
			fmt.Fprintf(h, "%d\x00%s\x00%d\x00%d", d.SetID, d.URI, dup, salt)
			id := fmt.Sprintf("dspt-%08x", h.Sum32())
			if !used[id] {
				used[id] = true
				d.IUID = id
				break
			}
		}
	}
}

// carryState copies runtime state from the previous version of the set.
func carryState(dests []Destination, prev *Set) {
	if prev == nil {
		return
	}
	old := make(map[string]*Destination, len(prev.Dests))
	for i := range prev.Dests {
		old[prev.Dests[i].IUID] = &prev.Dests[i]
	}
	for i := range dests {
		if o, ok := old[dests[i].IUID]; ok {
			dests[i].Flags = o.Flags
			dests[i].ProbingCount = o.ProbingCount
		}
	}
}

// newSet builds a set and its tables from ordered destinations.
func newSet(id int, dests []Destination, opt Options, sh *shuffler) *Set {
	n := len(dests)
	useDefault := opt.UseDefault
	s := &Set{
		ID:            id,
		Dests:         dests,
		HashMod:       hashMod(n, useDefault),
		Fallback:      opt.HashFallback,
		DefaultIdx:    -1,
		EqualPriority: equalPriority(dests),
		ctr:           &setCounters{},
		index:         &destIndex{},
		loadIdx:       &loadIndex{},
		failover:      make([]atomic.Pointer[[]Destination], n),
		latency:       make([]atomic.Pointer[latencyList], n),
	}
	if useDefault && n > 1 {
		s.DefaultIdx = n - 1
	}
	s.NextUp = computeNextUp(dests, s.HashMod, s.DefaultIdx)
	s.Live = computeLive(dests, s.HashMod)
	s.WeightTable = weightTable(dests, sh)
	s.RWeightTable = rweightTable(dests, s.RWeightTable, sh)
	return s
}

// resolvedHosts returns host → address for every resolved name in s, so a
// rebuild (add, remove) need not ask DNS again for hosts it already knows.
func (s *Snapshot) resolvedHosts() map[string]netip.Addr {
	m := map[string]netip.Addr{}
	for _, set := range s.sets {
		for i := range set.Dests {
			d := &set.Dests[i]
			if d.Addr.IsValid() && d.Host != "" && d.Host[0] != '[' {
				if _, err := netip.ParseAddr(d.Host); err != nil {
					m[d.Host] = d.Addr.Addr()
				}
			}
		}
	}
	return m
}
