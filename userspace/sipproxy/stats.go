package sipproxy

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// Stats counts what the slow path did with each message. The counters are
// read by RPC and metrics; labels are the Forwarder's short reasons.
type Stats struct {
	Forwarded atomic.Uint64

	mu       sync.Mutex
	drops    map[string]*atomic.Uint64
	handoffs map[string]*atomic.Uint64
	replies  map[string]*atomic.Uint64
}

func newStats() *Stats {
	return &Stats{
		drops:    make(map[string]*atomic.Uint64),
		handoffs: make(map[string]*atomic.Uint64),
		replies:  make(map[string]*atomic.Uint64),
	}
}

func (s *Stats) forwarded()            { s.Forwarded.Add(1) }
func (s *Stats) drop(reason string)    { s.counter(s.drops, reason).Add(1) }
func (s *Stats) handoff(reason string) { s.counter(s.handoffs, reason).Add(1) }
func (s *Stats) replied(code int)      { s.counter(s.replies, strconv.Itoa(code)).Add(1) }

func (s *Stats) counter(m map[string]*atomic.Uint64, label string) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := m[label]
	if !ok {
		c = new(atomic.Uint64)
		m[label] = c
	}
	return c
}

// Counter is one labelled count.
type Counter struct {
	Label string `json:"label"`
	Count uint64 `json:"count"`
}

// StatsSnapshot is a copy of the counters, labels sorted.
type StatsSnapshot struct {
	Forwarded uint64    `json:"forwarded"`
	Replies   []Counter `json:"replies"`
	Drops     []Counter `json:"drops"`
	Handoffs  []Counter `json:"handoffs"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StatsSnapshot{
		Forwarded: s.Forwarded.Load(),
		Replies:   sorted(s.replies),
		Drops:     sorted(s.drops),
		Handoffs:  sorted(s.handoffs),
	}
}

func sorted(m map[string]*atomic.Uint64) []Counter {
	out := make([]Counter, 0, len(m))
	for k, v := range m {
		out = append(out, Counter{Label: k, Count: v.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}
