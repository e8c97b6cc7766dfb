package probe

import (
	"cmp"
	"container/heap"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Sender sends one datagram from the local socket bound to local (the
// zero AddrPort: the sender's default socket) to dst. The slow path
// implements it over its UDP listeners; Send must not block for long and
// may be called from the engine's goroutine while HandleResponse runs on
// others.
type Sender interface {
	Send(local, dst netip.AddrPort, msg []byte) error
}

// Target is one destination to probe.
type Target struct {
	// URI is the Request-URI and the To URI (the destination's URI).
	URI string
	// Addr is where the probe is sent: the URI's resolved host and port,
	// or the outbound proxy. A reply must come from Addr.
	Addr netip.AddrPort
	// Local is the send socket handed to Sender (zero: its default).
	Local netip.AddrPort
	// SentBy is the Via sent-by (host[:port]), the address replies
	// return to; empty means Local, which must then be set.
	SentBy string
	// From is the From URI (per-destination ping_from); empty means
	// Config.From.
	From string
	// Interval between probe starts; zero means Config.Interval.
	Interval time.Duration
	// Timeout is this target's probe deadline; zero means Config.Timeout.
	Timeout time.Duration
}

// Result is the outcome of one probe.
type Result struct {
	Key string
	// Seq numbers the probe: the engine numbers probes from 1 in the
	// order it starts them. Results of one key normally arrive in Seq
	// order, but not always: a reply is reported on the goroutine that
	// read it, after the engine's lock, and that goroutine, delayed, can
	// be overtaken by the reply to the key's next probe. A consumer that
	// must act on the latest result only drops a Seq lower than the last
	// it applied; a consumer that must not act on a probe started before some
	// change (a reload, a state set over RPC) compares Seq with
	// Engine.Issued taken at that change.
	Seq uint64
	// Code is the final reply's status code, 0 when there was none.
	Code int
	// Timeout: no final reply before the deadline (Kamailio's local 408).
	Timeout bool
	// Err is set when the first transmission failed (Kamailio's local
	// 500); the probe ends at once.
	Err error
	// RTT runs from the first transmission to the final reply.
	RTT time.Duration
	// Sent counts transmissions: 1 plus the Timer E retransmissions.
	Sent int
}

// Config sets up an Engine. Zero fields take the defaults listed.
type Config struct {
	// Method of the probe request (ds_ping_method); default OPTIONS.
	Method string
	// From is the default From URI (ds_ping_from); default
	// sip:dispatcher@localhost, as Kamailio's dispatcher.
	From string
	// UserAgent, when set, adds a User-Agent header.
	UserAgent string
	// Interval between two probe starts of a target (ds_ping_interval);
	// default 30 s.
	Interval time.Duration
	// Timeout is the deadline of one probe, counted from its first
	// transmission; default min(target interval, 5 s).
	Timeout time.Duration
	// T1 and T2 are RFC 3261's timers for Timer E (defaults 500 ms, 4 s).
	T1, T2 time.Duration
	// MaxInFlight bounds the probes waiting for a reply (each costs a map
	// entry); a target due while the bound is reached waits for a free
	// slot (Stats.Deferred). A destination has one probe in flight at
	// most, so the default, 65536, binds only above that many.
	MaxInFlight int
	// BranchPrefix starts the Via branch of this engine's probes: RFC
	// 3261's magic cookie "z9hG4bK" and two lower-case letters or digits;
	// default BranchPrefix. Two engines behind one slow path (dispatcher
	// probing, keepalive) take different prefixes, so a reply goes to the
	// engine that sent the probe and the other one does not count it
	// (HandleResponse returns false, counting nothing, for a branch
	// without its prefix). "z9hG4bKsf" is the slow path's stateful one.
	BranchPrefix string
	// OnResult receives every probe's outcome. It runs on the engine's
	// goroutine (timeouts, send errors) or on the goroutine calling
	// HandleResponse (replies), possibly concurrently: it must be quick
	// and must not block.
	OnResult func(Result)
}

// Defaults.
const (
	DefaultMethod      = "OPTIONS"
	DefaultFrom        = "sip:dispatcher@localhost"
	DefaultInterval    = 30 * time.Second
	DefaultMaxTimeout  = 5 * time.Second
	DefaultT1          = 500 * time.Millisecond
	DefaultT2          = 4 * time.Second
	DefaultMaxInFlight = 65536
)

// Stats are the engine's counters since New.
type Stats struct {
	Targets  int `json:"targets"`   // targets now scheduled
	InFlight int `json:"in_flight"` // probes waiting for a reply now

	Probes      uint64 `json:"probes"`      // probes started
	Retransmits uint64 `json:"retransmits"` // Timer E retransmissions
	SendErrors  uint64 `json:"send_errors"` // Sender errors (first sends and retransmissions)
	Deferred    uint64 `json:"deferred"`    // starts delayed by MaxInFlight

	Replies     uint64 `json:"replies"`     // final replies matched to a probe
	Provisional uint64 `json:"provisional"` // 1xx replies matched to a probe
	Timeouts    uint64 `json:"timeouts"`    // probes that hit their deadline

	// Replies counted and ignored.
	Malformed     uint64 `json:"malformed"`      // cannot be parsed, or not a reply to a probe request
	WrongSource   uint64 `json:"wrong_source"`   // a probe's branch, from another address than the probe's
	UnknownBranch uint64 `json:"unknown_branch"` // a probe-shaped branch no probe issued
	Late          uint64 `json:"late"`           // for a probe already answered, timed out or removed
}

// Engine probes targets. Build it with New, add targets with Add, run it
// with Run; hand it replies with HandleResponse.
type Engine struct {
	cfg    Config
	prefix []byte // cfg.BranchPrefix, for HandleResponse
	sender Sender
	epoch  time.Time
	now    func() time.Time // time source, replaced in tests
	kick   chan struct{}    // wakes Run: a target was added or a slot freed

	mu       sync.Mutex
	rng      *rand.ChaCha8
	targets  map[string]*target
	due      timerHeap
	inflight map[uint64]*target // by probe sequence number
	waiting  []*target          // due while MaxInFlight was reached, FIFO
	seq      uint64             // last sequence number issued
	stats    Stats

	// Scratch of the engine goroutine, used outside mu.
	sends   []sendOp
	results []Result
	buf     []byte
}

// spec is what Add set for a target; immutable, replaced by the next Add.
type spec struct {
	req    request // method, URIs, sent-by (seq and nonce unused)
	addr   netip.AddrPort
	local  netip.AddrPort
	every  time.Duration
	expiry time.Duration
}

// target is one scheduled destination and its probe in flight, if any.
type target struct {
	key  string
	next *spec // for the probes to come
	cur  *spec // of the probe in flight (or the last one)
	// seq and nonce of the probe in flight (or the last one).
	seq, nonce uint64

	idx      int // position in the heap, -1 when not in it
	inFlight bool
	waiting  bool
	plan     int64 // when the next (or current) probe is due to start, ns since epoch
	start    int64 // first transmission, ns since epoch
	deadline int64
	rto      time.Duration // current Timer E interval
	sent     int
}

type sendOp struct {
	t          *target
	seq        uint64
	local, dst netip.AddrPort
	off, end   int
	first      bool
}

// New checks cfg and returns an Engine that sends through s. It starts
// nothing.
func New(cfg Config, s Sender) (*Engine, error) {
	if s == nil {
		return nil, errors.New("new probe engine: nil sender")
	}
	if cfg.Method == "" {
		cfg.Method = DefaultMethod
	}
	if cfg.From == "" {
		cfg.From = DefaultFrom
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.T1 == 0 {
		cfg.T1 = DefaultT1
	}
	if cfg.T2 == 0 {
		cfg.T2 = DefaultT2
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.BranchPrefix == "" {
		cfg.BranchPrefix = BranchPrefix
	}
	var errs []error
	if err := checkPrefix(cfg.BranchPrefix); err != nil {
		errs = append(errs, err)
	}
	if err := checkMethod(cfg.Method); err != nil {
		errs = append(errs, err)
	}
	if err := checkURI("from", cfg.From); err != nil {
		errs = append(errs, err)
	}
	for _, c := range cfg.UserAgent {
		if c < ' ' || c == 0x7f {
			errs = append(errs, fmt.Errorf("user agent %q: control character", cfg.UserAgent))
			break
		}
	}
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.T1 < 0 || cfg.T2 < cfg.T1 {
		errs = append(errs, fmt.Errorf("times: interval %v, timeout %v, T1 %v, T2 %v: want positive, T2 >= T1", cfg.Interval, cfg.Timeout, cfg.T1, cfg.T2))
	}
	if cfg.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("max in flight %d: want > 0", cfg.MaxInFlight))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new probe engine: %w", err)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("new probe engine: seed: %w", err)
	}
	return &Engine{
		cfg:      cfg,
		prefix:   []byte(cfg.BranchPrefix),
		sender:   s,
		epoch:    time.Now(),
		now:      time.Now,
		kick:     make(chan struct{}, 1),
		rng:      rand.NewChaCha8(seed),
		targets:  make(map[string]*target),
		inflight: make(map[uint64]*target),
	}, nil
}

// Add schedules t under key, or updates the target already under key (its
// schedule and any probe in flight are kept; the next probe uses the new
// fields). The first probe of a new target is due within its interval.
func (e *Engine) Add(key string, t Target) error {
	if err := checkURI("uri", t.URI); err != nil {
		return fmt.Errorf("add probe target %q: %w", key, err)
	}
	from := t.From
	if from == "" {
		from = e.cfg.From
	} else if err := checkURI("from", from); err != nil {
		return fmt.Errorf("add probe target %q: %w", key, err)
	}
	if !t.Addr.IsValid() || t.Addr.Port() == 0 {
		return fmt.Errorf("add probe target %q: address %v: want ip:port", key, t.Addr)
	}
	sentBy := t.SentBy
	if sentBy == "" {
		if !t.Local.IsValid() || t.Local.Addr().IsUnspecified() || t.Local.Port() == 0 {
			return fmt.Errorf("add probe target %q: no via sent-by and local %v is not an ip:port to advertise", key, t.Local)
		}
		sentBy = t.Local.String()
	}
	if err := checkSentBy(sentBy); err != nil {
		return fmt.Errorf("add probe target %q: %w", key, err)
	}
	every := t.Interval
	if every == 0 {
		every = e.cfg.Interval
	}
	if every < 0 {
		return fmt.Errorf("add probe target %q: interval %v: want > 0", key, every)
	}
	expiry := cmp.Or(t.Timeout, e.cfg.Timeout, min(every, DefaultMaxTimeout))
	if expiry < 0 {
		return fmt.Errorf("add probe target %q: timeout %v: want > 0", key, expiry)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	tg := e.targets[key]
	if tg == nil {
		tg = &target{key: key, idx: -1}
		e.targets[key] = tg
		tg.plan = e.mono(e.now()) + int64(e.rng.Uint64()%uint64(every))
		e.schedule(tg, tg.plan)
		e.wake()
	}
	// A probe in flight keeps its spec: its retransmissions stay
	// identical and its reply is checked against the address it went to.
	tg.next = &spec{
		req:   request{method: e.cfg.Method, uri: t.URI, from: from, sentBy: sentBy, userAgent: e.cfg.UserAgent, prefix: e.cfg.BranchPrefix},
		addr:  t.Addr,
		local: t.Local, every: every, expiry: expiry,
	}
	return nil
}

// Remove stops probing key. A probe in flight is dropped without a result;
// its reply counts as Late.
func (e *Engine) Remove(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tg := e.targets[key]
	if tg == nil {
		return
	}
	delete(e.targets, key)
	if tg.inFlight {
		delete(e.inflight, tg.seq)
		tg.inFlight = false
	}
	if tg.idx >= 0 {
		heap.Remove(&e.due, tg.idx)
	}
	if tg.waiting {
		for i, w := range e.waiting {
			if w == tg {
				e.waiting = append(e.waiting[:i], e.waiting[i+1:]...)
				break
			}
		}
		tg.waiting = false
	}
}

// ProbeNow makes key's next probe due at once, unless one is in flight or
// waiting for a slot. It reports whether key is a target. Later probes
// follow one interval after this one.
func (e *Engine) ProbeNow(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	tg := e.targets[key]
	if tg == nil {
		return false
	}
	if !tg.inFlight && !tg.waiting {
		tg.plan = e.mono(e.now())
		e.schedule(tg, tg.plan)
		e.wake()
	}
	return true
}

// Issued returns the Seq of the last probe started (0 before the first).
func (e *Engine) Issued() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seq
}

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Targets = len(e.targets)
	s.InFlight = len(e.inflight)
	return s
}

// Run schedules probes until ctx ends, then returns nil; probes in flight
// then get no result. Call it once.
func (e *Engine) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := e.step()
		if wait > 0 {
			// Sleep at least one tick: what falls due meanwhile is
			// done in one step, one wake-up for many probes.
			timer.Reset(max(wait, tick))
			select {
			case <-ctx.Done():
				return nil
			case <-e.kick:
			case <-timer.C:
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// maxBatch bounds the work of one step, so the lock is never held long.
const maxBatch = 256

// tick is the scheduler's resolution: Run sleeps at least this long
// between steps, so starts, retransmissions and deadlines fire up to one
// tick late (RTTs are measured when a reply arrives, not at the tick).
const tick = 5 * time.Millisecond

// step does the work due now: it starts, retransmits and expires probes
// under the lock, then sends and reports outside it. It returns how long
// to sleep (0: more work is due at once).
func (e *Engine) step() time.Duration {
	now := e.now()
	e.mu.Lock()
	wait := e.collect(e.mono(now))
	sends, results := e.sends, e.results
	e.mu.Unlock()

	// The results collected above go out before the sends: a probe that
	// ended in this step (a deadline) is reported before the next probe
	// of its target leaves, so that probe's reply, read on another
	// goroutine, cannot overtake it. (A reply's own result can still be
	// overtaken: see Result.Seq.)
	e.report(results)
	done := len(results)
	for i := range sends {
		op := &sends[i]
		err := e.sender.Send(op.local, op.dst, e.buf[op.off:op.end])
		if err == nil {
			continue
		}
		e.mu.Lock()
		e.stats.SendErrors++
		if op.first && op.t.inFlight && op.t.seq == op.seq && e.inflight[op.seq] == op.t {
			results = append(results, e.finish(op.t, e.mono(e.now()), Result{Err: err}))
		}
		e.mu.Unlock()
	}
	e.report(results[done:])
	clear(sends)
	clear(results)
	e.sends, e.results = sends[:0], results[:0]
	return wait
}

// report hands results to OnResult.
func (e *Engine) report(results []Result) {
	if e.cfg.OnResult != nil {
		for _, r := range results {
			e.cfg.OnResult(r)
		}
	}
}

// collect pops what is due at now (ns since epoch), at most maxBatch
// items, queuing sends in e.sends/e.buf and results in e.results. Called
// with mu held.
func (e *Engine) collect(now int64) time.Duration {
	e.buf = e.buf[:0]
	// Waiting targets first: they were due earlier.
	for len(e.waiting) > 0 && len(e.inflight) < e.cfg.MaxInFlight && len(e.sends) < maxBatch {
		tg := e.waiting[0]
		e.waiting[0] = nil
		e.waiting = e.waiting[1:]
		tg.waiting = false
		e.begin(tg, now)
	}
	for e.due.Len() > 0 && len(e.sends)+len(e.results) < maxBatch {
		if at := e.due[0].at; at > now {
			return time.Duration(at - now)
		}
		tg := e.due[0].t
		switch {
		case !tg.inFlight:
			if len(e.inflight) >= e.cfg.MaxInFlight {
				heap.Pop(&e.due)
				tg.waiting = true
				e.waiting = append(e.waiting, tg)
				e.stats.Deferred++
				continue
			}
			e.begin(tg, now)
		case now >= tg.deadline:
			e.stats.Timeouts++
			e.results = append(e.results, e.finish(tg, now, Result{Timeout: true}))
		default:
			e.stats.Retransmits++
			tg.sent++
			e.queue(tg, false)
			tg.rto = min(2*tg.rto, e.cfg.T2)
			e.schedule(tg, min(now+int64(tg.rto), tg.deadline))
		}
	}
	// Here the heap is empty or the batch is full.
	switch {
	case len(e.sends)+len(e.results) >= maxBatch:
		return 0
	case len(e.waiting) > 0 && len(e.inflight) < e.cfg.MaxInFlight:
		return 0
	}
	return time.Hour
}

// begin starts a probe of tg at now: a new sequence number and nonce, the
// first transmission queued, Timer E armed. Called with mu held.
func (e *Engine) begin(tg *target, now int64) {
	e.seq++
	tg.cur, tg.seq, tg.nonce = tg.next, e.seq, e.rng.Uint64()
	tg.inFlight, tg.start, tg.deadline, tg.sent = true, now, now+int64(tg.cur.expiry), 1
	tg.rto = min(e.cfg.T1, e.cfg.T2)
	e.inflight[tg.seq] = tg
	e.stats.Probes++
	e.queue(tg, true)
	e.schedule(tg, min(now+int64(tg.rto), tg.deadline))
}

// queue builds tg's current message into e.buf and queues its send.
func (e *Engine) queue(tg *target, first bool) {
	off := len(e.buf)
	e.buf = appendRequest(e.buf, &tg.cur.req, tg.seq, tg.nonce)
	e.sends = append(e.sends, sendOp{t: tg, seq: tg.seq, local: tg.cur.local, dst: tg.cur.addr, off: off, end: len(e.buf), first: first})
}

// finish ends tg's probe in flight at now with r and schedules its next
// start: exactly one interval after this probe was due, and not before
// now. Counting from the due time, not from the (up to a tick late)
// actual start, keeps late steps from adding up over rounds. There is no
// jitter after the first probe (drawn inside the first interval, which
// spreads targets added together): jitter would stretch the time to
// inactive, threshold intervals, by threshold × jitter (see doc.go). It
// frees an in-flight slot. Called with mu held.
func (e *Engine) finish(tg *target, now int64, r Result) Result {
	delete(e.inflight, tg.seq)
	tg.inFlight = false
	r.Key, r.Seq, r.Sent = tg.key, tg.seq, tg.sent
	if r.Code != 0 {
		r.RTT = time.Duration(now - tg.start)
	}
	tg.plan = max(tg.plan+int64(tg.next.every), now)
	if tg.idx >= 0 {
		e.schedule(tg, tg.plan)
	}
	if len(e.waiting) > 0 {
		e.wake()
	}
	return r
}

// wake makes Run look at the heap again without waiting for its timer.
func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Engine) mono(t time.Time) int64 { return int64(t.Sub(e.epoch)) }

// schedule sets tg's next event to at (ns since epoch): its next start,
// or its next retransmission or deadline while a probe is in flight.
func (e *Engine) schedule(tg *target, at int64) {
	if tg.idx < 0 {
		heap.Push(&e.due, slot{at: at, t: tg})
		return
	}
	e.due[tg.idx].at = at
	heap.Fix(&e.due, tg.idx)
}

// slot is one heap entry; the time sits in the heap array itself, so
// sifting does not chase target pointers.
type slot struct {
	at int64
	t  *target
}

// timerHeap orders targets by their next event (container/heap).
type timerHeap []slot

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].t.idx, h[j].t.idx = i, j
}
func (h *timerHeap) Push(x any) {
	s := x.(slot)
	s.t.idx = len(*h)
	*h = append(*h, s)
}
func (h *timerHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = slot{}
	s.t.idx = -1
	*h = old[:len(old)-1]
	return s
}
