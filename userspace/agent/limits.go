package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dialogattr"
	"github.com/sipedge/sipedge/userspace/rpc"
	"github.com/sipedge/sipedge/userspace/sipproxy"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// limits enforces dialogs.limits (docs/dialogs.md#limits) over the
// dialog tracker's live counts, which are O(1) per source address, set and
// tag. The slow path asks admit about each dialog-creating INVITE before
// forwarding it and answers the refusal; the fast path learns the verdicts
// from limit_block, which limits keeps: a source or set is added when an
// INVITE either path reports takes its count to the limit (observed),
// everything (LimitAll) when a tag's does, since tags come from headers
// the program does not read; and an entry goes when the recheck finds its
// count below the limit again.
type limits struct {
	log     *slog.Logger
	t       *dialog.Tracker
	attrs   *atomic.Pointer[dialogattr.Attrs] // the dialogs' tag rules
	results sync.Pool                         // *dialogattr.Result, for admit's tag rules
	rules   atomic.Pointer[limitRules]
	// failoverTTL is how long a failover INVITE's admission may stay
	// pending: dialogs.init_lifetime.
	failoverTTL atomic.Int64
	// fast is the fast path's limit_block; nil without a fast path. Set
	// before the agent starts.
	fast limitBlocker

	// pend are the INVITEs admitted that the tracker does not hold yet.
	// admit and observe take pend.mu around their reads and writes of
	// the tracker, so that an admission sees each dialog exactly once:
	// in the tracker or pending.
	pend pendingAdmissions

	mu      sync.Mutex
	blocked map[dataplane.LimitBlock]int // the verdicts given to fast: entry → rule index
	// queue are the changes of blocked not written to fast yet, in
	// order. admit and observe run under the failover table's lock, so
	// they only queue; flush makes the map syscalls, from Run (woken by
	// queued, and every limitRecheck) and after a rebuild.
	queue  []limitVerdict
	queued chan struct{} // wakes Run to flush at once: the fast path's race window stays microseconds

	flushMu   sync.Mutex // one flush at a time, so writes keep their order
	warnedErr bool       // a failed map write was logged; under flushMu
}

// limitVerdict is one change of the fast path's limit_block.
type limitVerdict struct {
	b       dataplane.LimitBlock
	rule    int
	blocked bool
}

// pendingAdmissions counts the INVITEs admitted and not yet observed, by
// the keys of the limits: a stateless INVITE is observed right after it
// is sent, on the same goroutine; a failover INVITE only once a
// destination answers it (sipproxy.Observed), up to failover.timeout per
// destination later. Without them, INVITEs admitted in that time would
// not count, and two reader goroutines could each admit the last one.
type pendingAdmissions struct {
	mu      sync.Mutex
	byCall  map[pendingKey]pendingCall
	sources map[netip.Addr]int
	sets    map[int]int
	tags    map[string]int
	// refused are the INVITEs refused lately, so that their
	// retransmissions are answered alike but counted once per call.
	refused map[pendingKey]time.Time
	swept   time.Time
}

// pendingKey is an admitted INVITE: its Call-ID hash and top Via branch.
// A retransmission repeats both; a new branch of the same Call-ID is
// another attempt, admitted (or refused) on its own.
type pendingKey struct {
	hash   uint64
	branch string
}

type pendingCall struct {
	src      netip.Addr
	set      int
	tags     []string
	deadline time.Time
}

// How long an admission may stay pending before it is dropped: an INVITE
// whose send failed, or a failover transaction that ended unobserved
// (never expected), must not count for ever. A stateless INVITE is
// observed microseconds after its admission; a failover one within the
// dialogs' init_lifetime, which bounds an unanswered dialog anyway.
const (
	pendingStateless = 2 * time.Second
	pendingSweep     = time.Second
	// refusedMemory is how long a refused INVITE's retransmissions are
	// known as such: 64*T1, a UDP INVITE's retransmission span (RFC 3261
	// 17.1.1.2). refusedMax bounds the memory; past it a refusal counts
	// each time again.
	refusedMemory = 32 * time.Second
	refusedMax    = 4096
)

func (p *pendingAdmissions) init() {
	p.byCall = make(map[pendingKey]pendingCall)
	p.sources = make(map[netip.Addr]int)
	p.sets = make(map[int]int)
	p.tags = make(map[string]int)
	p.refused = make(map[pendingKey]time.Time)
}

// add records an admission. The caller holds p.mu.
func (p *pendingAdmissions) add(k pendingKey, c pendingCall) {
	p.byCall[k] = c
	if c.src.IsValid() {
		p.sources[c.src]++
	}
	if c.set >= 0 {
		p.sets[c.set]++
	}
	for _, tag := range c.tags {
		p.tags[tag]++
	}
}

// remove drops the admission of k, if any. The caller holds p.mu.
func (p *pendingAdmissions) remove(k pendingKey) {
	c, ok := p.byCall[k]
	if !ok {
		return
	}
	delete(p.byCall, k)
	dec := func(m map[netip.Addr]int, k netip.Addr) {
		if m[k]--; m[k] <= 0 {
			delete(m, k)
		}
	}
	if c.src.IsValid() {
		dec(p.sources, c.src)
	}
	if c.set >= 0 {
		if p.sets[c.set]--; p.sets[c.set] <= 0 {
			delete(p.sets, c.set)
		}
	}
	for _, tag := range c.tags {
		if p.tags[tag]--; p.tags[tag] <= 0 {
			delete(p.tags, tag)
		}
	}
}

// sweep drops the admissions past their deadline, at most once per
// pendingSweep. The caller holds p.mu.
func (p *pendingAdmissions) sweep(now time.Time) {
	if now.Sub(p.swept) < pendingSweep {
		return
	}
	p.swept = now
	for k, c := range p.byCall {
		if now.After(c.deadline) {
			p.remove(k)
		}
	}
	for k, until := range p.refused {
		if now.After(until) {
			delete(p.refused, k)
		}
	}
}

// limitBlocker is the fast path's limit_block (dataplane.FastPath).
type limitBlocker interface {
	SetLimitBlock(b dataplane.LimitBlock, rule int, blocked bool) error
}

// limitRecheck is how often the verdicts given to the fast path are
// checked against the counts, to lift those no longer reached: between a
// count going down and its source's INVITEs being forwarded by the fast
// path again, they take the slow path, which admits them.
const limitRecheck = 10 * time.Millisecond

type limitKind uint8

const (
	limitBySource limitKind = iota
	limitBySet
	limitByTag
)

var limitKindNames = [...]string{"source", "set", "tag"}

// limitRules is one compiled dialogs.limits.
type limitRules struct {
	rules []limitRule
	tags  bool // a rule counts a tag: admit evaluates the tag rules
}

type limitRule struct {
	kind      limitKind
	anySource bool
	prefix    netip.Prefix
	set       int
	tag       string
	max       int // > 0; rules with max 0 are left out
	index     int // in dialogs.limits
	match     string
	refusal   sipproxy.Refusal
	refused   *atomic.Uint64 // INVITEs it answered
}

// newLimits builds the limits of cfg over g's tracker; nil when tracking
// is off.
func newLimits(cfg *config.Config, g *dialogs, logger *slog.Logger) (*limits, error) {
	if g == nil {
		return nil, nil
	}
	l := &limits{
		log:     logger.With("component", "dialog limits"),
		t:       g.t,
		attrs:   &g.attrs,
		blocked: make(map[dataplane.LimitBlock]int),
		queued:  make(chan struct{}, 1),
	}
	l.pend.init()
	l.failoverTTL.Store(int64(cfg.Dialogs.InitLifetime))
	l.results.New = func() any { return new(dialogattr.Result) }
	rs, err := compileLimits(cfg.Dialogs.Limits)
	if err != nil {
		return nil, err
	}
	l.rules.Store(rs)
	g.limits = l
	return l, nil
}

// compileLimits compiles dialogs.limits, which Validate accepted.
func compileLimits(cfg []config.LimitRule) (*limitRules, error) {
	rs := &limitRules{}
	rs.rules = make([]limitRule, 0, len(cfg))
	for i, c := range cfg {
		if c.Max <= 0 {
			continue // unlimited
		}
		r := limitRule{max: c.Max, index: i, set: -1, refused: new(atomic.Uint64), refusal: sipproxy.Refusal{
			Code: c.Code, Reason: c.Reason, RetryAfter: int(c.RetryAfter / time.Second)}}
		if r.refusal.Reason == "" {
			r.refusal.Reason = limitReason(c.Code)
		}
		switch {
		case c.Source == config.LimitSourceAny:
			r.kind, r.anySource, r.match = limitBySource, true, c.Source
		case c.Source != "":
			p, err := dialogattr.ParseSource(c.Source)
			if err != nil {
				return nil, fmt.Errorf("dialogs.limits[%d].source: %w", i, err)
			}
			r.kind, r.prefix, r.match = limitBySource, p, p.String()
		case c.Tag != "":
			r.kind, r.tag, r.match = limitByTag, c.Tag, c.Tag
			rs.tags = true
		default:
			r.kind, r.set, r.match = limitBySet, c.Set, strconv.Itoa(c.Set)
		}
		rs.rules = append(rs.rules, r)
	}
	return rs, nil
}

// limitReason is the reason phrase of a limit's reply code.
func limitReason(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Dialog Limit Reached"
}

func (*limits) Name() string { return "dialog limits" }

// Run lifts the fast path's verdicts whose counts went below their limit,
// every limitRecheck, until ctx ends.
func (l *limits) Run(ctx context.Context) error {
	if l.fast == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(limitRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.queued:
			l.flush()
		case <-tick.C:
			l.recheck()
			l.flush()
		}
	}
}

// Apply takes new limits: the slow path uses them from the next INVITE,
// the fast path's verdicts are rebuilt from the live counts now. The
// refusal counters restart.
func (l *limits) Apply(s *Snapshot) {
	rs, err := compileLimits(s.Config.Dialogs.Limits)
	if err != nil {
		l.log.Error("dialog limits reload: limits kept as they were", "error", err)
		return
	}
	l.rules.Store(rs)
	l.failoverTTL.Store(int64(s.Config.Dialogs.InitLifetime))
	l.rebuild()
}

// source reports whether r counts the INVITEs of a.
func (r *limitRule) source(a netip.Addr) bool {
	return r.kind == limitBySource && a.IsValid() && (r.anySource || r.prefix.Contains(a))
}

// untrackedRefusal answers a dialog-creating INVITE a limit applies to
// that the tracker cannot record: no From tag or no top Via branch.
var untrackedRefusal = sipproxy.Refusal{Code: 400, Reason: "Missing From tag or Via branch"}

// admit is sipproxy.Config.Admit: a dialog-creating INVITE that would take
// a count of a rule past its max is refused with the first such rule's
// reply, counted. A retransmission, or an INVITE within a live dialog (or
// one admitted and not observed yet), is admitted: it adds no dialog. An
// admitted INVITE counts as pending until the tracker holds it.
func (l *limits) admit(o sipproxy.Observed) sipproxy.Refusal {
	rs := l.rules.Load()
	if len(rs.rules) == 0 {
		return sipproxy.Refusal{}
	}
	m, b := o.Msg, o.Data
	branch, _, hasBranch := m.TopViaKey(b)
	untracked := !m.From.HasTag || !hasBranch || len(branch) == 0
	hash := wordhash.CallID(bytes.Trim(m.CallID.Bytes(b), " \t"))
	var tags []string
	if rs.tags {
		res := l.results.Get().(*dialogattr.Result)
		defer l.results.Put(res)
		in := dialogattr.Input{Buf: b, Msg: m, Src: o.Src, Listener: o.Listener, Set: o.SetID, DstURI: o.DstURI}
		_ = l.attrs.Load().Eval(&in, res) // an error leaves the tags that did expand; observe logs it
		tags = res.Add
	}
	src := o.Src.Addr().Unmap()
	now := time.Now()

	p := &l.pend
	p.mu.Lock()
	if _, ok := p.byCall[pendingKey{hash, view(branch)}]; ok || l.t.Retransmits(hash, view(branch)) {
		p.mu.Unlock()
		return sipproxy.Refusal{}
	}
	p.sweep(now)
	full := l.t.Full() // a record refused at the cap would never count
	for i := range rs.rules {
		r := &rs.rules[i]
		var over bool
		var entry dataplane.LimitBlock
		var applies bool
		switch r.kind {
		case limitBySource:
			applies = r.source(src)
			over = applies && (full || l.t.SourceCount(src)+p.sources[src] >= r.max)
			entry = dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: src}
		case limitBySet:
			applies = o.SetID == r.set
			over = applies && (full || l.t.SetCount(r.set)+p.sets[r.set] >= r.max)
			entry = dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: r.set}
		case limitByTag:
			applies = slices.Contains(tags, r.tag)
			over = applies && (full || l.t.TagsCount(r.tag)+p.tags[r.tag] >= r.max)
			entry = dataplane.LimitBlock{Kind: dataplane.LimitAll}
		}
		if applies && untracked {
			// The tracker records no dialog without a From tag and a
			// top Via branch (both RFC 3261 musts), so such an INVITE
			// would never count: refused while a limit applies to it.
			p.mu.Unlock()
			return untrackedRefusal
		}
		if over {
			k := pendingKey{hash, view(branch)}
			if _, again := p.refused[k]; !again {
				r.refused.Add(1)
				if len(p.refused) < refusedMax {
					p.refused[pendingKey{hash, string(branch)}] = now.Add(refusedMemory)
				}
			}
			p.mu.Unlock()
			l.block(entry, r.index) // in case the fast path was not told yet
			return r.refusal
		}
	}
	ttl := pendingStateless
	if o.Failover {
		ttl = time.Duration(l.failoverTTL.Load())
	}
	c := pendingCall{src: src, set: o.SetID, deadline: now.Add(ttl)}
	if len(tags) > 0 {
		c.tags = make([]string, len(tags))
		for i, tag := range tags {
			c.tags[i] = strings.Clone(tag) // tags alias the pooled Result
		}
	}
	p.add(pendingKey{hash, string(branch)}, c)
	p.mu.Unlock()
	return sipproxy.Refusal{}
}

// observe hands the tracker a batch from either path (t.Observe) and,
// with limits, drops the pending admissions of its INVITEs under the same
// hold of pend.mu, then tells the fast path of the counts now at a limit
// (observed). On a nil *limits (tracking without limits wiring) it only
// feeds the tracker.
func (l *limits) observe(t *dialog.Tracker, ms []dialog.Message) {
	if l == nil || len(l.rules.Load().rules) == 0 {
		t.Observe(ms)
		return
	}
	p := &l.pend
	p.mu.Lock()
	t.Observe(ms)
	if len(p.byCall) > 0 {
		for k := range ms {
			if m := &ms[k]; m.Request && m.Method == dialog.Invite {
				p.remove(pendingKey{m.CallIDHash, m.Branch})
			}
		}
	}
	p.mu.Unlock()
	l.observed(ms)
}

// observed runs after the tracker took a batch from either path: each
// INVITE that took a count to its limit blocks its source, set, or
// everything (a tag), in the fast path. It is a no-op without limits or a
// fast path, and on a nil *limits (tracking without limits).
func (l *limits) observed(ms []dialog.Message) {
	if l == nil || l.fast == nil {
		return
	}
	rs := l.rules.Load()
	if len(rs.rules) == 0 {
		return
	}
	for k := range ms {
		m := &ms[k]
		if !m.Request || m.Method != dialog.Invite {
			continue
		}
		for i := range rs.rules {
			r := &rs.rules[i]
			switch {
			case r.source(m.Source) && l.t.SourceCount(m.Source) >= r.max:
				l.block(dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: m.Source.Unmap()}, r.index)
			case r.kind == limitBySet && m.Set == r.set && l.t.SetCount(r.set) >= r.max:
				l.block(dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: r.set}, r.index)
			case r.kind == limitByTag && slices.Contains(m.AddTags, r.tag) && l.t.TagsCount(r.tag) >= r.max:
				l.block(dataplane.LimitBlock{Kind: dataplane.LimitAll}, r.index)
			}
		}
	}
}

// block queues for the fast path a verdict it does not have yet (flush
// writes it).
func (l *limits) block(b dataplane.LimitBlock, rule int) {
	if l.fast == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.blocked[b]; ok {
		return
	}
	l.blocked[b] = rule
	l.write(b, rule, true)
}

// write queues one verdict for the fast path. The caller holds l.mu.
func (l *limits) write(b dataplane.LimitBlock, rule int, blocked bool) {
	l.queue = append(l.queue, limitVerdict{b, rule, blocked})
	select {
	case l.queued <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// flush passes the queued verdicts to the fast path, in order.
func (l *limits) flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, v := range q {
		if err := l.fast.SetLimitBlock(v.b, v.rule, v.blocked); err != nil && !l.warnedErr {
			l.warnedErr = true
			l.log.Warn("fast path limit_block not updated: the fast path may forward INVITEs over a limit, or send some to the slow path, which admits them (logged once)", "error", err)
		}
	}
}

// reached reports whether some rule's count for entry b is at its limit,
// and which rule.
func (l *limits) reached(rs *limitRules, b dataplane.LimitBlock) (int, bool) {
	for i := range rs.rules {
		r := &rs.rules[i]
		switch {
		case b.Kind == dataplane.LimitSource && r.source(b.Source) && l.t.SourceCount(b.Source) >= r.max,
			b.Kind == dataplane.LimitSet && r.kind == limitBySet && r.set == b.Set && l.t.SetCount(r.set) >= r.max,
			b.Kind == dataplane.LimitAll && r.kind == limitByTag && l.t.TagsCount(r.tag) >= r.max:
			return r.index, true
		}
	}
	return 0, false
}

// recheck lifts the verdicts whose counts are below their limits again.
func (l *limits) recheck() {
	rs := l.rules.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for b, rule := range l.blocked {
		if _, ok := l.reached(rs, b); !ok {
			delete(l.blocked, b)
			l.write(b, rule, false)
		}
	}
}

// rebuild makes the fast path's verdicts those of the live counts under
// the current rules: at start and when the limits change.
func (l *limits) rebuild() {
	if l.fast == nil {
		return
	}
	l.rebuildVerdicts()
	l.flush()
}

// rebuildVerdicts queues the changes rebuild makes.
func (l *limits) rebuildVerdicts() {
	rs := l.rules.Load()
	// Under l.mu throughout: a block from observed between reading the
	// counts and applying want would otherwise be lifted as not wanted.
	l.mu.Lock()
	defer l.mu.Unlock()
	want := map[dataplane.LimitBlock]int{}
	hasSource := false
	for i := range rs.rules {
		r := &rs.rules[i]
		switch r.kind {
		case limitBySource:
			hasSource = true
		case limitBySet:
			if l.t.SetCount(r.set) >= r.max {
				want[dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: r.set}] = r.index
			}
		case limitByTag:
			if l.t.TagsCount(r.tag) >= r.max {
				want[dataplane.LimitBlock{Kind: dataplane.LimitAll}] = r.index
			}
		}
	}
	if hasSource {
		l.t.Sources(func(a netip.Addr, n int) {
			for i := range rs.rules {
				if r := &rs.rules[i]; r.source(a) && n >= r.max {
					want[dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: a}] = r.index
					return
				}
			}
		})
	}
	for b, rule := range l.blocked {
		if _, ok := want[b]; !ok {
			delete(l.blocked, b)
			l.write(b, rule, false)
		}
	}
	for b, rule := range want {
		if old, ok := l.blocked[b]; !ok || old != rule {
			l.blocked[b] = rule
			l.write(b, rule, true)
		}
	}
}

// stats is dlgs.limits.
func (l *limits) stats() rpc.DlgsLimits {
	rs := l.rules.Load()
	out := rpc.DlgsLimits{Rules: []rpc.DlgsLimit{}}
	l.mu.Lock()
	out.FastPathBlocked = len(l.blocked)
	l.mu.Unlock()
	atLimit := map[int]int{} // rule index → its sources at the limit
	l.t.Sources(func(a netip.Addr, n int) {
		for i := range rs.rules {
			if r := &rs.rules[i]; r.source(a) && n >= r.max {
				atLimit[r.index]++
			}
		}
	})
	for i := range rs.rules {
		r := &rs.rules[i]
		s := rpc.DlgsLimit{Index: r.index, Kind: limitKindNames[r.kind], Match: r.match, Max: r.max,
			Code: r.refusal.Code, Reason: r.refusal.Reason, Refused: r.refused.Load()}
		switch r.kind {
		case limitBySource:
			s.Count = atLimit[r.index]
		case limitBySet:
			s.Count = l.t.SetCount(r.set)
		case limitByTag:
			s.Count = l.t.TagsCount(r.tag)
		}
		out.Rules = append(out.Rules, s)
	}
	return out
}
