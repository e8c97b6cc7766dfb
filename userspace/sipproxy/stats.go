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
	txs      map[string]*atomic.Uint64
	sockets  []*socketStats
	// pending reports the failover transactions in the table and the
	// bytes of messages they hold.
	pending func() (int, int64)
}

// socketStats is one listener socket's setup and kernel drop counter.
type socketStats struct {
	name string
	info socketInfo
	ovf  overflowCounter
}

func newStats() *Stats {
	return &Stats{
		drops:    make(map[string]*atomic.Uint64),
		handoffs: make(map[string]*atomic.Uint64),
		replies:  make(map[string]*atomic.Uint64),
		txs:      make(map[string]*atomic.Uint64),
	}
}

func (s *Stats) stateful(what string) { s.counter(s.txs, what).Add(1) }

func (s *Stats) forwarded()            { s.Forwarded.Add(1) }
func (s *Stats) drop(reason string)    { s.counter(s.drops, reason).Add(1) }
func (s *Stats) handoff(reason string) { s.counter(s.handoffs, reason).Add(1) }
func (s *Stats) replied(code int)      { s.counter(s.replies, strconv.Itoa(code)).Add(1) }

// addSocket records a listener socket's setup and returns its drop
// counter.
func (s *Stats) addSocket(name string, info socketInfo) *overflowCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	so := &socketStats{name: name, info: info}
	s.sockets = append(s.sockets, so)
	return &so.ovf
}

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

// SocketStats is one listener socket as the kernel sees it.
type SocketStats struct {
	Listener string `json:"listener"`
	// ReceiveBuffer is the usable SO_RCVBUF (half of what getsockopt
	// reports); Forced says SO_RCVBUFFORCE set it past net.core.rmem_max.
	ReceiveBuffer int  `json:"receive_buffer"`
	Forced        bool `json:"receive_buffer_forced"`
	// RcvbufErrors is how many datagrams the kernel dropped on this socket
	// because its receive buffer was full (SO_RXQ_OVFL): the socket's own
	// share of /proc/net/snmp's Udp RcvbufErrors. It is learnt from the
	// next datagram read, so it lags by one.
	RcvbufErrors uint64 `json:"rcvbuf_errors"`
	// Counting is false when the kernel refused SO_RXQ_OVFL.
	Counting bool `json:"rcvbuf_errors_counted"`
}

// StatsSnapshot is a copy of the counters, labels sorted.
type StatsSnapshot struct {
	Forwarded uint64    `json:"forwarded"`
	Replies   []Counter `json:"replies"`
	Drops     []Counter `json:"drops"`
	Handoffs  []Counter `json:"handoffs"`
	// Stateful counts what failover-mode transactions did; Pending is how
	// many are in the table now, PendingBytes the bytes of messages they
	// hold (failover.max_transaction_bytes caps it).
	Stateful     []Counter     `json:"stateful"`
	Pending      int           `json:"pending_transactions"`
	PendingBytes int64         `json:"pending_bytes"`
	Sockets      []SocketStats `json:"sockets"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	pending, pendingBytes := 0, int64(0)
	if s.pending != nil {
		pending, pendingBytes = s.pending()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	socks := make([]SocketStats, 0, len(s.sockets))
	for _, so := range s.sockets {
		socks = append(socks, SocketStats{Listener: so.name, ReceiveBuffer: so.info.granted / 2,
			Forced: so.info.forced, RcvbufErrors: uint64(so.ovf.last.Load()), Counting: so.info.overflowCounting})
	}
	return StatsSnapshot{
		Forwarded:    s.Forwarded.Load(),
		Replies:      sorted(s.replies),
		Drops:        sorted(s.drops),
		Handoffs:     sorted(s.handoffs),
		Stateful:     sorted(s.txs),
		Pending:      pending,
		PendingBytes: pendingBytes,
		Sockets:      socks,
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
