package events

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bus fans events out to the log and to its subscriptions. It is safe for
// concurrent use; Publish never waits for a subscriber.
type Bus struct {
	log       *slog.Logger
	published atomic.Uint64
	lost      atomic.Uint64 // dropped for some subscription, all time

	mu   sync.Mutex // serialises Subscribe and Close
	subs atomic.Pointer[[]*Subscription]
}

// NewBus is a bus logging to logger (nil: no log).
func NewBus(logger *slog.Logger) *Bus {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{log: logger}
	b.subs.Store(&[]*Subscription{})
	return b
}

// Publish logs e and queues it for every subscription that takes it. A
// zero Time is set to now. It never blocks: a full queue drops e for that
// subscription and counts it. The subscribers share e.Fields: the caller
// must not change them afterwards.
func (b *Bus) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.published.Add(1)
	e.log(b.log)
	// Copy on write: the publisher reads the list without a lock.
	for _, s := range *b.subs.Load() {
		s.offer(e)
	}
}

// ErrClosed is returned by Next once the subscription is closed.
var ErrClosed = errors.New("events: subscription closed")

// SubscribeOptions say what a subscription gets.
type SubscribeOptions struct {
	// Name names the subscriber in logs and stats ("rpc @3", "hook").
	Name string
	// Queue is how many events may wait for Next; 0 means DefaultQueue.
	Queue int
	// Match takes the names of the events to queue; nil takes all. It
	// runs on the publisher's goroutine: keep it cheap.
	Match func(name string) bool
}

// DefaultQueue is a subscription's queue unless told otherwise.
const DefaultQueue = 1024

// Prefixes matches the names that start with one of prefixes; none
// matches every name.
func Prefixes(prefixes ...string) func(string) bool {
	if len(prefixes) == 0 {
		return nil
	}
	ps := slices.Clone(prefixes)
	return func(name string) bool {
		for _, p := range ps {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
}

// Subscribe starts queueing events for a new subscription; Close ends it.
func (b *Bus) Subscribe(opts SubscribeOptions) *Subscription {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	s := &Subscription{bus: b, name: opts.Name, match: opts.Match, ch: make(chan Event, opts.Queue), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	next := append(slices.Clone(*b.subs.Load()), s)
	b.subs.Store(&next)
	return s
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(*b.subs.Load()), func(x *Subscription) bool { return x == s })
	b.subs.Store(&next)
}

// Subscription is one subscriber's queue.
type Subscription struct {
	bus   *Bus
	name  string
	match func(string) bool
	ch    chan Event
	done  chan struct{}
	once  sync.Once

	delivered atomic.Uint64
	dropped   atomic.Uint64 // all time
	reported  atomic.Uint64 // dropped as of the last LostEvent
	// losing is set by the first drop after a LostEvent: the drop is
	// logged once, and the rest of the run only counted.
	losing atomic.Bool
}

func (s *Subscription) offer(e Event) {
	if s.match != nil && !s.match(e.Name) {
		return
	}
	select {
	case s.ch <- e:
		return
	default:
	}
	n := s.dropped.Add(1)
	s.bus.lost.Add(1)
	if s.losing.CompareAndSwap(false, true) {
		s.bus.log.Warn("events lost: a subscriber does not keep up; its queue is full", "subscriber", s.name, "queue", cap(s.ch), "event", e.Name, "lost_total", n)
	}
}

// Next returns the next event, waiting until there is one, ctx ends or
// the subscription is closed. After events were dropped for this
// subscription it returns, once the queue is empty, one event named
// LostEvent with the field lost (how many since the previous one) before
// waiting for more. Next may be called from several goroutines.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	// Events are dropped only while the queue is full, so the LostEvent
	// comes after the events queued before the first drop (and perhaps
	// some queued after it: the queue is one channel).
	select {
	case e := <-s.ch:
		s.delivered.Add(1)
		return e, nil
	default:
	}
	if lost, ok := s.takeLost(); ok {
		return New(LostEvent, F("subscriber", s.name), F("lost", lost)), nil
	}
	select {
	case e := <-s.ch:
		s.delivered.Add(1)
		return e, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	case <-s.done:
		return Event{}, ErrClosed
	}
}

// takeLost claims the drops not yet reported.
func (s *Subscription) takeLost() (uint64, bool) {
	for {
		r, n := s.reported.Load(), s.dropped.Load()
		if n == r {
			return 0, false
		}
		if s.reported.CompareAndSwap(r, n) {
			s.losing.Store(false)
			return n - r, true
		}
	}
}

// Close ends the subscription: it gets no more events and Next returns
// ErrClosed. Safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.remove(s)
		close(s.done)
	})
}

// SubscriberStats describe one subscription.
type SubscriberStats struct {
	Name      string `json:"name"`
	Queue     int    `json:"queue"`
	Queued    int    `json:"queued"`
	Delivered uint64 `json:"delivered"`
	Lost      uint64 `json:"lost"`
}

// Stats describe a bus: Published counts every event published, Lost
// every (event, subscription) pair dropped since start, including for
// subscriptions since closed.
type Stats struct {
	Published   uint64            `json:"published"`
	Lost        uint64            `json:"lost"`
	Subscribers []SubscriberStats `json:"subscribers"`
}

// Stats returns the bus's counters now.
func (b *Bus) Stats() Stats {
	st := Stats{Published: b.published.Load(), Lost: b.lost.Load(), Subscribers: []SubscriberStats{}}
	for _, s := range *b.subs.Load() {
		st.Subscribers = append(st.Subscribers, s.Stats())
	}
	return st
}

// Stats returns the subscription's counters now.
func (s *Subscription) Stats() SubscriberStats {
	return SubscriberStats{Name: s.name, Queue: cap(s.ch), Queued: len(s.ch), Delivered: s.delivered.Load(), Lost: s.dropped.Load()}
}
