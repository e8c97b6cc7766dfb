package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
)

// prepareOne parses and resolves one entry, as prepare does for a Build,
// asking the resolver only for a host cur does not know yet.
func prepareOne(ctx context.Context, e Entry, cur *Snapshot) (Destination, error) {
	d, errs := parseEntry(e)
	if len(errs) == 0 && !d.Addr.IsValid() && d.Flags&FlagNoDNSARes == 0 {
		resolved := map[string]netip.Addr{}
		if a, ok := cur.knownAddr(d.Host); ok {
			resolved[d.Host] = a
		}
		a, err := lookup(ctx, cur.opt, d.Host, resolved, map[string]error{})
		if err != nil {
			errs = append(errs, err)
		} else {
			d.Addr = netip.AddrPortFrom(a, addrPort(d))
		}
	}
	for i, err := range errs {
		errs[i] = fmt.Errorf("%s: %w", e.Source, err)
	}
	return d, errors.Join(errs...)
}

// knownAddr returns the address a destination of s resolved host to.
func (s *Snapshot) knownAddr(host string) (netip.Addr, bool) {
	for _, set := range s.sets {
		for i := range set.Dests {
			if d := &set.Dests[i]; d.Host == host && d.Addr.IsValid() {
				return d.Addr.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

// withAdded returns s with d (parsed from e) added to its set: the same
// set a Build of s's entries plus e would give (order, IUIDs, tables),
// with the runtime state of the set's other destinations kept. Other sets
// are shared with s.
func (s *Snapshot) withAdded(e Entry, d Destination) (*Snapshot, error) {
	var old []Destination
	i, found := slices.BinarySearchFunc(s.sets, e.SetID, func(x *Set, id int) int { return cmp.Compare(x.ID, id) })
	if found {
		old = s.sets[i].Dests
	}
	if len(old) >= MaxSetSize {
		return nil, tooLarge(e.Source, e.SetID)
	}
	// The IUID a Build gives: the n-th duplicate of the URI in the set,
	// moved on with a salt past ids used anywhere in the snapshot.
	dup := 0
	for j := range old {
		if old[j].URI == d.URI {
			dup++
		}
	}
	for salt := 0; ; salt++ {
		h := fnv.New32a()
		fmt.Fprintf(h, "%d\x00%s\x00%d\x00%d", d.SetID, d.URI, dup, salt)
		if id := fmt.Sprintf("dspt-%08x", h.Sum32()); !s.usesIUID(id) {
			d.IUID = id
			break
		}
	}
	// orderDests puts the last entry first among equal priorities.
	at := 0
	for at < len(old) && old[at].Priority > d.Priority {
		at++
	}
	dests := make([]Destination, 0, len(old)+1)
	dests = append(append(append(dests, old[:at]...), d), old[at:]...)
	for j := range dests {
		dests[j].Index = j
	}
	set := newSet(e.SetID, dests, s.opt, s.shuf)

	next := &Snapshot{opt: s.opt, shuf: s.shuf}
	// Appending may share s's array: only the current snapshot is ever
	// added to (under the swap lock), and no snapshot sees elements past its
	// own length, so an element once written is never written again.
	next.entries = append(s.entries, e)
	if found {
		next.sets = slices.Clone(s.sets)
		next.sets[i] = set
	} else {
		next.sets = slices.Insert(slices.Clip(s.sets), i, set)
	}
	return next, nil
}

// usesIUID reports whether a destination of s has that IUID.
func (s *Snapshot) usesIUID(id string) bool {
	for _, set := range s.sets {
		for i := range set.Dests {
			if set.Dests[i].IUID == id {
				return true
			}
		}
	}
	return false
}
