package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// Values of the C flags (bpf/consts.h).
const (
	flagLisRecordRoute = 0x01 // F_LIS_RECORD_ROUTE
	flagLisFailover    = 0x02 // F_LIS_FAILOVER
	flagDstUsable      = 0x01 // F_DST_USABLE
	flagDstName        = 0x02 // F_DST_NAME
	flagDstUp          = 0x04 // F_DST_UP
	flagDstDefault     = 0x08 // F_DST_DEFAULT
	flagSetExists      = 0x01 // F_SET_EXISTS
	flagSetEqualPrio   = 0x02 // F_SET_EQUAL_PRIO
	flagSetTooLarge    = 0x04 // F_SET_TOO_LARGE
	flagSetUserOnly    = 0x08 // F_SET_HASH_USER_ONLY
	flagSetSpread      = 0x10 // F_SET_SPREAD

	familyV4 = 2  // FAMILY_V4
	familyV6 = 10 // FAMILY_V6

	viaHead   = "Via: SIP/2.0/UDP "
	viaTail   = ";branch=z9hG4bK"
	rrHead    = "Record-Route: <sip:"
	rrTail    = ";lr>\r\n"
	tokenBase = 16 // hex digits of the branch token; +1 when len(ADV) is odd
)

// flipGrace is how long a half of dst_sets stays untouched after packets
// stopped reading it: far longer than one run of the program.
const flipGrace = 10 * time.Millisecond

// Listener is one UDP listener and its rule, as the fast path needs them.
type Listener struct {
	// Addr is the socket's address: datagrams to it are the fast path's,
	// and forwarded ones leave from it.
	Addr netip.AddrPort
	// ADV is the advertised "host:port" (IPv6 bracketed) written into our
	// Via and Record-Route; empty means Addr.
	ADV  string
	Rule Rule
}

// Rule says how requests arriving on a listener are dispatched.
type Rule struct {
	SetID       int
	Alg         int
	RecordRoute bool
	// Failover rules are stateful: their requests go to the slow path.
	Failover bool
}

type syncState struct {
	snap      *dispatch.Snapshot
	listeners []Listener
}

// SyncListeners replaces the listeners map with ls. A listener's ID (its
// listener_stats key and the listener_id of its events) is its index in ls.
// Call SyncSets before or after: a rule's set is found through a slot that
// SyncSets fills (until then its requests pass with PASS_NO_SET).
func (d *Dataplane) SyncListeners(ls []Listener) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if max := int(d.objs.Listeners.MaxEntries()); len(ls) > max {
		return fmt.Errorf("sync listeners: %d listeners, the fast path takes %d", len(ls), max)
	}
	keys := make(map[xdpsipListenerKey]bool, len(ls))
	vals := make([]xdpsipListener, len(ls))
	newSlot := false
	for i, l := range ls {
		k, err := listenerKey(l.Addr)
		if err != nil {
			return fmt.Errorf("sync listeners: %w", err)
		}
		if keys[k] {
			return fmt.Errorf("sync listeners: %s given twice", l.Addr)
		}
		keys[k] = true
		_, had := d.slots[l.Rule.SetID]
		slot, err := d.slot(l.Rule.SetID)
		if err != nil {
			return fmt.Errorf("sync listeners: %w", err)
		}
		newSlot = newSlot || !had
		v, err := listenerValue(uint32(i), l, slot)
		if err != nil {
			return fmt.Errorf("sync listeners: %s: %w", l.Addr, err)
		}
		vals[i] = v
	}
	// A new slot must hold its set before a listener points at it.
	if newSlot && d.last.snap != nil {
		if err := d.syncSets(d.last.snap); err != nil {
			return err
		}
	}
	var errs []error
	for idx, l := range ls {
		k, _ := listenerKey(l.Addr)
		if err := d.objs.Listeners.Put(k, vals[idx]); err != nil {
			errs = append(errs, fmt.Errorf("put listener %s: %w", l.Addr, err))
		}
	}
	// Remove listeners that are gone.
	var k xdpsipListenerKey
	var stale []xdpsipListenerKey
	it := d.objs.Listeners.Iterate()
	var v xdpsipListener
	for it.Next(&k, &v) {
		if !keys[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("iterate listeners: %w", err))
	}
	for _, k := range stale {
		if err := d.objs.Listeners.Delete(k); err != nil {
			errs = append(errs, fmt.Errorf("delete listener: %w", err))
		}
	}
	d.last.listeners = append([]Listener(nil), ls...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync listeners: %w", err)
	}
	return nil
}

// SyncSets writes every set of snap into the half of dst_sets that packets
// do not read, then flips active_half: a packet sees either the old tables
// or the new ones, never a mix.
func (d *Dataplane) SyncSets(snap *dispatch.Snapshot) error {
	if snap == nil {
		return errors.New("sync sets: nil snapshot")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncSets(snap)
}

func (d *Dataplane) syncSets(snap *dispatch.Snapshot) error {
	sets := snap.Sets()
	for _, s := range sets {
		if _, err := d.slot(s.ID); err != nil {
			return fmt.Errorf("sync sets: %w", err)
		}
	}
	var ah xdpsipActiveHalf
	if err := d.objs.ActiveHalf.Lookup(uint32(0), &ah); err != nil {
		return fmt.Errorf("sync sets: read active half: %w", err)
	}
	inactive := (ah.Half + 1) & 1
	if wait := flipGrace - time.Since(d.lastFlip); wait > 0 {
		time.Sleep(wait) // packets may still read the half flipped away last time
	}
	if err := d.loads.assign(snap, int(d.objs.DstLoad.MaxEntries())); err != nil {
		return fmt.Errorf("sync sets: %w", err)
	}
	perHalf := d.objs.DstSets.MaxEntries() / 2
	bySlot := make(map[uint32]*dispatch.Set, len(sets))
	for _, s := range sets {
		bySlot[d.slots[s.ID]] = s
	}
	for id, slot := range d.slots {
		v := setValue(id, bySlot[slot], snap.Options().HashUserOnly, d.loads.slot)
		if err := d.objs.DstSets.Put(inactive*perHalf+slot, &v); err != nil {
			return fmt.Errorf("sync sets: write set %d: %w", id, err)
		}
	}
	if err := d.objs.ActiveHalf.Put(uint32(0), xdpsipActiveHalf{Half: inactive}); err != nil {
		return fmt.Errorf("sync sets: flip: %w", err)
	}
	d.lastFlip = time.Now()
	d.last.snap = snap
	if d.loadsFrom != nil {
		// A new (set, duid) starts with its load in the table, not 0.
		if _, err := d.syncLoads(d.loadsFrom, true); err != nil {
			return fmt.Errorf("sync sets: %w", err)
		}
	}
	return nil
}

// slot returns the dst_sets slot of a set ID, assigning the next free one.
// Slots are stable for the Dataplane's lifetime.
func (d *Dataplane) slot(id int) (uint32, error) {
	if s, ok := d.slots[id]; ok {
		return s, nil
	}
	n := uint32(len(d.slots))
	if n >= d.objs.DstSets.MaxEntries()/2 {
		return 0, fmt.Errorf("set %d: the fast path holds %d sets", id, n)
	}
	d.slots[id] = n
	return n, nil
}

func listenerKey(ap netip.AddrPort) (xdpsipListenerKey, error) {
	var k xdpsipListenerKey
	a := ap.Addr().Unmap()
	switch {
	case a.Is4():
		k.Family = familyV4
		b := a.As4()
		copy(k.Addr[:], b[:])
	case a.Is6():
		k.Family = familyV6
		k.Addr = a.As16()
	default:
		return k, fmt.Errorf("listener %s: not an IP address", ap)
	}
	k.Port = ap.Port()
	return k, nil
}

// listenerValue builds the map value: addresses, ADV text, the precomputed
// Via prefix and Record-Route line, and the rule.
func listenerValue(id uint32, l Listener, slot uint32) (xdpsipListener, error) {
	var v xdpsipListener
	k, err := listenerKey(l.Addr)
	if err != nil {
		return v, err
	}
	adv, err := advText(l)
	if err != nil {
		return v, err
	}
	colon := strings.LastIndexByte(adv, ':')
	advPort, _ := strconv.ParseUint(adv[colon+1:], 10, 16)
	host := l.Addr.Addr().Unmap().String()
	if k.Family == familyV6 {
		host = "[" + host + "]"
	}
	via := viaHead + adv + viaTail
	rr := rrHead + adv + rrTail
	if len(via) > len(v.ViaPrefix) || len(rr) > len(v.RrLine) || len(host) > len(v.Host) {
		return v, fmt.Errorf("ADV %q: longer than the fast path's %d bytes", adv, len(v.ViaPrefix)-len(viaHead)-len(viaTail))
	}
	if l.Rule.Alg < 0 || l.Rule.Alg > 255 {
		return v, fmt.Errorf("algorithm %d out of range", l.Rule.Alg)
	}
	v.Id = id
	v.SetSlot = slot
	v.SetId = int32(l.Rule.SetID)
	v.Alg = uint8(l.Rule.Alg)
	if l.Rule.RecordRoute {
		v.Flags |= flagLisRecordRoute
	}
	if l.Rule.Failover {
		v.Flags |= flagLisFailover
	}
	v.Family = k.Family
	v.TokenDigits = tokenBase
	if len(adv)%2 == 1 {
		v.TokenDigits = tokenBase + 1 // parity padding: the Via line stays even
	}
	v.Port = l.Addr.Port()
	v.AdvPort = uint16(advPort)
	v.Addr = k.Addr
	v.ViaLen = uint8(len(via))
	v.AdvLen = uint8(len(adv))
	v.AdvHostLen = uint8(colon)
	v.HostLen = uint8(len(host))
	v.RrLen = uint8(len(rr))
	copy(v.ViaPrefix[:], via)
	copy(v.RrLine[:], rr)
	copy(v.Host[:], host)
	return v, nil
}

// advText returns the listener's ADV as "host:port": the advertised address,
// with the listener's port when it names none, else the listener's IP:PORT
// (contract, Terms).
func advText(l Listener) (string, error) {
	if l.ADV == "" {
		return l.Addr.String(), nil
	}
	adv := l.ADV
	host, port := adv, ""
	switch {
	case strings.HasPrefix(adv, "["):
		end := strings.IndexByte(adv, ']')
		if end < 0 {
			return "", fmt.Errorf("ADV %q: unterminated [", adv)
		}
		host, port = adv[:end+1], strings.TrimPrefix(adv[end+1:], ":")
		if adv[end+1:] != "" && !strings.HasPrefix(adv[end+1:], ":") {
			return "", fmt.Errorf("ADV %q: want [host]:port", adv)
		}
	case strings.Count(adv, ":") == 1:
		host, port, _ = strings.Cut(adv, ":")
	case strings.Contains(adv, ":"):
		return "", fmt.Errorf("ADV %q: an IPv6 host needs brackets", adv)
	}
	if host == "" {
		return "", fmt.Errorf("ADV %q: no host", adv)
	}
	if port == "" {
		return host + ":" + strconv.Itoa(int(l.Addr.Port())), nil
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("ADV %q: bad port", adv)
	}
	return host + ":" + port, nil
}

// setValue builds a dst_sets value from a dispatch set; nil (a slot whose
// set is gone) gives an empty value, which passes with PASS_NO_SET.
// loadSlot names each destination's alg 10 load by its set and duid.
func setValue(id int, s *dispatch.Set, userOnly bool, loadSlot func(set int, duid string) uint16) xdpsipDstSet {
	var v xdpsipDstSet
	v.SetId = int32(id)
	for i := range v.NextUp {
		v.NextUp[i] = -1
	}
	if s == nil {
		return v
	}
	v.Flags = flagSetExists
	if s.EqualPriority {
		v.Flags |= flagSetEqualPrio
	}
	if userOnly {
		v.Flags |= flagSetUserOnly
	}
	if len(s.Dests) > len(v.Dsts) || s.HashMod > len(v.NextUp) || len(s.NextUp) > len(v.NextUp) {
		v.Flags |= flagSetTooLarge
		return v
	}
	v.Count = uint16(len(s.Dests))
	v.HashMod = uint16(s.HashMod)
	for i, n := range s.NextUp {
		v.NextUp[i] = n
	}
	// Live holds start indices (< HashMod <= len(v.Live)), so it fits.
	if s.Fallback == dispatch.FallbackSpread {
		v.Flags |= flagSetSpread
	}
	v.LiveCount = uint16(len(s.Live))
	for i, n := range s.Live {
		v.Live[i] = uint8(n)
	}
	for i := range s.WeightTable {
		v.Weights[i] = uint8(s.WeightTable[i])
		v.Rweights[i] = uint8(s.RWeightTable[i])
	}
	for i := range s.Dests {
		o := &v.Dsts[i]
		d := &s.Dests[i]
		o.Family, o.Flags, o.Port, o.Addr = dstValue(d)
		if d.Up() {
			o.Flags |= flagDstUp
		}
		if i == s.DefaultIdx {
			o.Flags |= flagDstDefault
		}
		o.LoadSlot = loadSlot(id, d.Attrs.DUID)
		o.Maxload = uint32(max(d.Attrs.MaxLoad, 0))
	}
	return v
}

// dstValue is one destination; unusable (family 0) unless it is an IP
// address the fast path can send UDP to, and marked as a name when it is a
// host name left unresolved (the slow path resolves it).
func dstValue(d *dispatch.Destination) (family, flags uint8, port uint16, addr [16]uint8) {
	if d.Transport != "" && d.Transport != "udp" {
		return 0, 0, 0, addr
	}
	if !d.Addr.IsValid() {
		if d.Host != "" {
			return 0, flagDstName, 0, addr
		}
		return 0, 0, 0, addr
	}
	if d.Addr.Port() == 0 {
		return 0, 0, 0, addr
	}
	a := d.Addr.Addr().Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		copy(addr[:], b[:])
		family = familyV4
	case a.Is6() && a.Zone() == "":
		addr = a.As16()
		family = familyV6
	default:
		return 0, 0, 0, addr
	}
	return family, flagDstUsable, d.Addr.Port(), addr
}
