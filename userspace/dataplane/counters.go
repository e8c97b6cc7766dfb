package dataplane

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// ListenerStats are one listener's counters, summed over CPUs.
type ListenerStats struct {
	RX          uint64 `json:"rx"` // SIP datagrams to the listener
	FwdRequests uint64 `json:"fwd_requests"`
	FwdReplies  uint64 `json:"fwd_replies"`
	FwdBytes    uint64 `json:"fwd_bytes"` // UDP payload bytes forwarded
	Passed      uint64 `json:"passed"`    // handed to the slow path
	Dropped     uint64 `json:"dropped"`
}

// DstStats are one destination's counters, summed over CPUs.
type DstStats struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"` // UDP payload bytes
}

// PassReasons returns the C names of every pass reason, by value (index 0,
// PASS_NONE, is never counted).
func (d *Dataplane) PassReasons() []string { return append([]string(nil), d.passNames...) }

// PassCounts returns the packets handed to the slow path per reason (C name,
// e.g. "PASS_VIA_NO_COOKIE"), summed over CPUs. Every reason is present.
func (d *Dataplane) PassCounts() (map[string]uint64, error) {
	return sumByName(d.objs.PassCount, d.passNames[1:], 1)
}

// DropCounts returns the packets dropped per reason (C name, e.g.
// "DROP_NOT_OURS"), summed over CPUs.
func (d *Dataplane) DropCounts() (map[string]uint64, error) {
	return sumByName(d.objs.DropCount, d.dropNames, 0)
}

func sumByName(m *ebpf.Map, names []string, first uint32) (map[string]uint64, error) {
	out := make(map[string]uint64, len(names))
	var per []uint64
	for i, name := range names {
		if name == "" {
			continue
		}
		key := first + uint32(i)
		if key >= m.MaxEntries() {
			break
		}
		if err := m.Lookup(key, &per); err != nil {
			return nil, fmt.Errorf("read %s[%s]: %w", m.String(), name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// ListenerStats returns the counters of the listener with that ID (its index
// in the last SyncListeners call).
func (d *Dataplane) ListenerStats(id uint32) (ListenerStats, error) {
	var per []xdpsipListenerStats
	if err := d.objs.ListenerStats.Lookup(id, &per); err != nil {
		return ListenerStats{}, fmt.Errorf("read listener_stats[%d]: %w", id, err)
	}
	var s ListenerStats
	for _, c := range per {
		s.RX += c.Rx
		s.FwdRequests += c.FwdRequests
		s.FwdReplies += c.FwdReplies
		s.FwdBytes += c.FwdBytes
		s.Passed += c.Passed
		s.Dropped += c.Dropped
	}
	return s, nil
}

// DstStats returns the counters of destination index idx of set setID.
func (d *Dataplane) DstStats(setID, idx int) (DstStats, error) {
	d.mu.Lock()
	slot, ok := d.slots[setID]
	d.mu.Unlock()
	perSet := uint32(len(xdpsipDstSet{}.Dsts))
	if !ok || idx < 0 || uint32(idx) >= perSet {
		return DstStats{}, fmt.Errorf("read dst_stats: set %d index %d: not in the fast path", setID, idx)
	}
	var per []xdpsipDstStats
	if err := d.objs.DstStats.Lookup(slot*perSet+uint32(idx), &per); err != nil {
		return DstStats{}, fmt.Errorf("read dst_stats: set %d index %d: %w", setID, idx, err)
	}
	var s DstStats
	for _, c := range per {
		s.Packets += c.Packets
		s.Bytes += c.Bytes
	}
	return s, nil
}
