package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/probe"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// probing is dispatcher probing (ds_ping_*, kamailio-behaviour §3): the
// probe engine sending over the slow path's sockets, its targets derived
// from the dispatcher's current snapshot, each result fed into the
// dispatcher's state machine (dispatch.Dispatcher.ProbeResults), whose
// atomic snapshot swap the fast path and the slow path follow.
//
// One goroutine owns the targets and applies the results, in order, in
// batches of whatever is queued (one snapshot swap per batch); the
// engine's callback, which runs on the slow path's reader goroutines,
// only queues a result.
type probing struct {
	log    *slog.Logger
	d      *dispatch.Dispatcher
	eng    *probe.Engine
	socks  probeSockets
	params dispatch.ProbeParams
	codes  config.ReplyCodes
	every  time.Duration
	events *events.Bus // dst-up and dst-down go there

	results resultQueue
	dirty   chan struct{} // the snapshot changed: derive the targets again
	// since is the Seq of the last probe issued before the last reload:
	// results of probes up to it are ignored (kamailio PR #2959).
	since atomic.Uint64
	// lostReport overrides how often lost results are reported (tests).
	lostReport time.Duration

	// Owned by the Run goroutine.
	targets map[string]probeTarget
	warned  map[string]string // key -> the problem last logged
	// applied is the Seq of the last result applied per target: the
	// engine reports a reply on the goroutine that read it, after its
	// lock, so that goroutine, delayed, can be overtaken by the reply to
	// the target's next probe.
	applied map[string]uint64
	// lastSync is when a swap last made sync run; syncArmed says a kick
	// is already on its way for a sync that had to wait (syncLimited).
	lastSync  time.Time
	syncArmed bool
	// batch, outs, applying and seqs are apply's buffers, kept between
	// batches.
	batch    []probe.Result
	outs     []dispatch.ProbeOutcome
	applying []probeTarget
	seqs     []uint64

	// notProbed is warned as of the last sync, for dispatcher.list
	// (NOT_PROBED) on other goroutines; never written in place.
	notProbed atomic.Pointer[map[string]string]
}

// maxBatch bounds the results applied with one snapshot swap. Each swap
// runs the subscribers, and the fast path's rewrites every set map (and
// may sleep between its halves): one swap per result made 10,000
// destinations changing state at once (the first replies, a rack going
// silent) take about 20 s to reach both paths (bench/README.md, probing).
// The bound keeps one batch's hold of the dispatcher's lock short.
const maxBatch = 4096

// probeTarget is one destination being probed.
type probeTarget struct {
	setID  int
	iuid   string
	uri    string
	strict bool // attribute ping_strict: only a 2xx is a success
	target probe.Target
}

// probeSockets are the slow path's listeners a probe can leave from.
type probeSockets struct {
	listeners []sipproxy.Listener
	// sentBy is the Via sent-by the slow path recognises as its own for
	// the listener at local (sipproxy.Proxy.SentBy).
	sentBy func(local netip.AddrPort) (string, bool)
}

// newProbing builds dispatcher probing for cfg, or returns nil when
// ds_ping_interval is 0 (no probing).
func newProbing(cfg *config.Config, d *dispatch.Dispatcher, px *sipproxy.Proxy, listeners []sipproxy.Listener, logger *slog.Logger) (*probing, error) {
	dc := cfg.Dispatcher
	if dc.PingInterval <= 0 {
		return nil, nil
	}
	codes, err := config.ParsePingReplyCodes(dc.PingReplyCodes)
	if err != nil {
		return nil, fmt.Errorf("dispatcher probing: ds_ping_reply_codes %w", err)
	}
	p := &probing{
		log:   logger.With("component", "probing"),
		d:     d,
		socks: probeSockets{listeners: listeners, sentBy: px.SentBy},
		params: dispatch.ProbeParams{
			Mode:              dispatch.ProbingMode(dc.ProbingMode),
			ProbingThreshold:  dc.ProbingThreshold,
			InactiveThreshold: dc.InactiveThreshold,
		},
		codes:   codes,
		every:   dc.PingInterval,
		dirty:   make(chan struct{}, 1),
		targets: map[string]probeTarget{},
		warned:  map[string]string{},
	}
	p.results.init()
	p.eng, err = probe.New(probe.Config{
		Method:   dc.PingMethod,
		From:     dc.PingFrom,
		Interval: dc.PingInterval,
		Timeout:  dc.PingTimeout, // 0: min(interval, 5 s)
		OnResult: p.results.put,
	}, proxySender{px})
	if err != nil {
		return nil, fmt.Errorf("dispatcher probing: %w", err)
	}
	return p, nil
}

// proxySender sends the probes from the slow path's listener sockets.
type proxySender struct{ px *sipproxy.Proxy }

func (s proxySender) Send(local, dst netip.AddrPort, msg []byte) error {
	return s.px.SendFrom(local, dst, msg)
}

// HandleReply is the slow path's LocalReply hook: a reply to a probe.
func (p *probing) HandleReply(data []byte, src netip.AddrPort) bool {
	return p.eng.HandleResponse(data, src)
}

func (*probing) Name() string { return "probing" }

// Run probes until ctx ends.
func (p *probing) Run(ctx context.Context) error {
	cancel := p.d.Subscribe(func(*dispatch.Snapshot) { p.kick() })
	defer cancel()
	// dispatcher.ping_active is pushed: the loop reads it on the kick.
	cancelPing := p.d.SubscribePingActive(func(bool) { p.kick() })
	defer cancelPing()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.eng.Run(ctx) })
	g.Go(func() error { p.loop(ctx); return nil })
	if err := g.Wait(); err != nil {
		return fmt.Errorf("probing: %w", err)
	}
	return nil
}

func (p *probing) kick() {
	select {
	case p.dirty <- struct{}{}:
	default:
	}
}

func (p *probing) loop(ctx context.Context) {
	// The tick only reports results lost to a full queue; state changes
	// and ping_active changes arrive on dirty.
	tick := time.NewTicker(p.lostEvery())
	defer tick.Stop()
	active := p.d.PingActive()
	p.sync(active)
	p.log.Info("probing", "targets", len(p.targets), "interval", p.every, "mode", int(p.params.Mode),
		"probing_threshold", p.params.ProbingThreshold, "inactive_threshold", p.params.InactiveThreshold)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.dirty:
			if now := p.d.PingActive(); now != active {
				active = now
				p.log.Info("ping_active changed", "active", active)
				p.sync(active)
				continue
			}
			p.syncLimited(active)
		case <-tick.C:
			p.results.reportLost(p.log, "probe results lost: the queue was full")
		case r := <-p.results.ch:
			p.apply(p.drain(r)...)
		}
	}
}

// lostEvery is how often lost results are reported: once a second, or
// lostReport when set (tests).
func (p *probing) lostEvery() time.Duration {
	if p.lostReport > 0 {
		return p.lostReport
	}
	return time.Second
}

// BeforeReload is called before a reload swaps in new sets: results of the
// probes issued until now are ignored from here on.
func (p *probing) BeforeReload() { p.since.Store(p.eng.Issued()) }

// Apply takes a reloaded snapshot: the targets are derived again (the
// swap already asked for it), and results of probes issued before are
// ignored, including those started on the old targets during the swap.
func (p *probing) Apply(*Snapshot) {
	p.since.Store(p.eng.Issued())
	p.kick()
}

// syncEvery bounds how often snapshot swaps make the targets be derived
// again. Every state change swaps the snapshot and deriving is linear in
// the number of destinations: at start, when each destination's first
// reply changes its flags (mode 1 adds the probing flag), 10,000
// destinations in one set made 10,000 syncs of 10,000 destinations, and
// the results queue overflowed for a minute (bench/README.md, probing).
const syncEvery = 100 * time.Millisecond

// syncLimited is sync for a swap: at once if the last one was syncEvery
// ago, else once that much time has passed (a kick then comes back here).
func (p *probing) syncLimited(active bool) {
	now := time.Now()
	if wait := p.lastSync.Add(syncEvery).Sub(now); wait > 0 {
		if !p.syncArmed {
			p.syncArmed = true
			time.AfterFunc(wait, p.kick)
		}
		return
	}
	p.syncArmed = false
	p.lastSync = now
	p.sync(active)
}

// sync makes the engine's targets those the current snapshot asks for.
func (p *probing) sync(active bool) {
	want := map[string]probeTarget{}
	problems := map[string]string{}
	if active {
		want, problems = probeTargets(p.d.Snapshot(), p.params, p.socks)
	}
	for key := range p.targets {
		if _, ok := want[key]; !ok {
			p.eng.Remove(key)
			delete(p.targets, key)
			delete(p.applied, key)
		}
	}
	for key, t := range want {
		if old, ok := p.targets[key]; ok && old == t {
			continue
		}
		if err := p.eng.Add(key, t.target); err != nil {
			problems[key] = err.Error()
			p.eng.Remove(key)
			delete(p.targets, key)
			delete(p.applied, key)
			continue
		}
		p.targets[key] = t
	}
	// Each problem is logged once, until it changes or goes away: a
	// destination that cannot be probed is reported once per change of its
	// state, not once per probe or per sync.
	for key, msg := range problems {
		if p.warned[key] != msg {
			p.log.Warn("destination not probed", "destination", key, "reason", msg)
		}
	}
	p.warned = problems
	p.notProbed.Store(&problems)
}

// NotProbed is why the destination (set, IUID) is not probed although the
// probing mode and its flags ask for it (kamailio#4212), "" when it is
// probed or not meant to be. Safe on any goroutine.
func (p *probing) NotProbed(setID int, iuid string) string {
	m := p.notProbed.Load()
	if m == nil {
		return ""
	}
	return (*m)[fmt.Sprintf("%d/%s", setID, iuid)]
}

// drain returns first and the results queued behind it, at most
// maxBatch, without waiting for more.
func (p *probing) drain(first probe.Result) []probe.Result {
	p.batch = append(p.batch[:0], first)
	for len(p.batch) < maxBatch {
		select {
		case r := <-p.results.ch:
			p.batch = append(p.batch, r)
		default:
			return p.batch
		}
	}
	return p.batch
}

// apply feeds results, in order, into the dispatcher's latency statistics
// and state machine with one snapshot swap for all of them
// (dispatch.Dispatcher.ProbeResults), then logs each change of flags and
// publishes each up/down change (dispatcher:dst-up, dispatcher:dst-down)
// on the event stream, which logs it, in the order of the results, as
// applying them one at a time would; publishing never blocks.
func (p *probing) apply(rs ...probe.Result) {
	outs, applying, seqs := p.outs[:0], p.applying[:0], p.seqs[:0]
	for _, r := range rs {
		t, ok := p.targets[r.Key]
		if !ok {
			continue // no longer a target
		}
		if r.Seq <= p.applied[r.Key] {
			continue // older than a result already applied
		}
		if p.applied == nil {
			p.applied = map[string]uint64{}
		}
		p.applied[r.Key] = r.Seq
		code, success := classify(r, p.codes, t.strict)
		// Code and RTT go to the latency statistics first: they count only
		// while the destination has the probing flag, which the state
		// machine may clear (ds_update_latency runs before ds_update_state
		// in Kamailio).
		outs = append(outs, dispatch.ProbeOutcome{SetID: t.setID, Addr: t.iuid, Success: success, Code: code, RTT: r.RTT})
		applying = append(applying, t)
		seqs = append(seqs, r.Seq)
	}
	p.outs, p.applying, p.seqs = outs, applying, seqs
	if len(outs) == 0 {
		return
	}
	// Results for a destination or set gone meanwhile are skipped there,
	// and so are those of probes issued before the last reload (kamailio
	// PR #2959): since is read under the dispatcher's lock, which the
	// reload's swap takes after BeforeReload set since, so no reload can
	// come between the check and the result's application.
	changes, err := p.d.ProbeResultsUnless(outs, p.params, func(k int) bool { return seqs[k] <= p.since.Load() })
	if err != nil {
		p.log.Warn("probe results not applied", "results", len(outs), "error", err)
		return
	}
	for _, c := range changes {
		t, o := applying[c.Outcome], outs[c.Outcome]
		// Every change of FLAGS (trying included, which fires no event) at
		// debug level: the trail of the state machine, one line per change.
		p.log.Debug("probe changed flags", "set", t.setID, "uri", t.uri, "from", c.Before.String(), "to", c.After.String(), "code", o.Code)
		if c.Before.Down() == c.After.Down() {
			continue
		}
		name, state := events.DstUp, "active"
		if c.After.Down() {
			name, state = events.DstDown, "inactive"
		}
		p.events.Publish(events.New(name, events.F("set", t.setID), events.F("uri", t.uri), events.F("iuid", t.iuid),
			events.F("state", state), events.F("code", o.Code), events.F("rtt", o.RTT)))
	}
}

// Local reply codes (kamailio-behaviour §3.2, §3.3): tm answers a probe
// that got no final reply with a local 408, and one it could not send with
// a 500.
const (
	localTimeoutCode   = 408
	localSendErrorCode = 500
)

// classify returns a result's status code (a local 408 for a timeout, a
// local 500 for a send error) and whether it counts as success: a 2xx or
// a code ds_ping_reply_codes accepts. So a timeout is a success only when
// 408 (or class 4) is listed, as in Kamailio. For a strict destination
// (attribute ping_strict=1, kamailio PR #4863) only a 2xx is.
func classify(r probe.Result, codes config.ReplyCodes, strict bool) (code int, success bool) {
	switch {
	case r.Err != nil:
		code = localSendErrorCode
	case r.Timeout || r.Code == 0:
		code = localTimeoutCode
	default:
		code = r.Code
	}
	if strict {
		return code, code >= 200 && code <= 299
	}
	return code, codes.Accepts(code)
}

// probeTargets derives the targets of snap: every destination the probing
// mode and its flags ask to ping (dispatch.ProbeParams.ShouldPing), keyed
// "SET/IUID". A destination that should be pinged but cannot be (not UDP,
// no resolved address, no socket to send from) is left out and named in
// problems with the reason (kamailio#4212: the agent flags and reports
// it rather than refusing the list, which Kamailio loads silently). So is
// one the mode would ping but whose flag 16 (no DNS resolution) leaves
// without an address: Kamailio skips it silently.
func probeTargets(snap *dispatch.Snapshot, params dispatch.ProbeParams, socks probeSockets) (targets map[string]probeTarget, problems map[string]string) {
	targets, problems = map[string]probeTarget{}, map[string]string{}
	for _, set := range snap.Sets() {
		for i := range set.Dests {
			dst := &set.Dests[i]
			key := fmt.Sprintf("%d/%s", set.ID, dst.IUID)
			if !params.ShouldPing(dst.Flags) {
				if dst.Flags&dispatch.FlagNoDNSARes != 0 && params.ShouldPing(dst.Flags&^dispatch.FlagNoDNSARes) && !dst.Addr.IsValid() {
					problems[key] = fmt.Sprintf("%s: flag 16 (no DNS resolution): no address to probe", dst.URI)
				}
				continue
			}
			t, err := socks.target(dst)
			if err != nil {
				problems[key] = fmt.Sprintf("%s: %v", dst.URI, err)
				continue
			}
			targets[key] = probeTarget{setID: set.ID, iuid: dst.IUID, uri: dst.URI, strict: dst.Attrs.PingStrict, target: t}
		}
	}
	return targets, problems
}

// target is the probe of dst: sent to its address, or to the attribute
// obproxy (an IP literal URI); from the socket the attributes ping_socket,
// sockname or socket name (first set wins), else the first listener of
// the address's family; From per the attribute ping_from.
func (s probeSockets) target(dst *dispatch.Destination) (probe.Target, error) {
	if dst.Transport != "" && !strings.EqualFold(dst.Transport, "udp") {
		return probe.Target{}, fmt.Errorf("transport %s: only UDP destinations are probed", dst.Transport)
	}
	addr := dst.Addr
	if ob := dst.Attrs.OBProxy; ob != "" {
		a, err := literalSIPAddr(ob)
		if err != nil {
			return probe.Target{}, fmt.Errorf("obproxy %q: %w", ob, err)
		}
		addr = a
	}
	if !addr.IsValid() {
		return probe.Target{}, errors.New("no resolved address")
	}
	local, err := s.local(dst.Attrs, addr)
	if err != nil {
		return probe.Target{}, err
	}
	sentBy, ok := s.sentBy(local)
	if !ok {
		return probe.Target{}, fmt.Errorf("no listener at %s", local)
	}
	return probe.Target{URI: dst.URI, Addr: addr, Local: local, SentBy: sentBy, From: dst.Attrs.PingFrom}, nil
}

// local picks the send socket.
func (s probeSockets) local(a dispatch.Attrs, dst netip.AddrPort) (netip.AddrPort, error) {
	switch {
	case a.PingSocket != "":
		return s.byAddress("ping_socket", a.PingSocket)
	case a.SockName != "":
		for _, l := range s.listeners {
			if l.Name == a.SockName {
				return l.Addr, nil
			}
		}
		return netip.AddrPort{}, fmt.Errorf("sockname %q names no listener", a.SockName)
	case a.Socket != "":
		return s.byAddress("socket", a.Socket)
	}
	for _, l := range s.listeners {
		if l.Addr.Addr().Is4() == dst.Addr().Unmap().Is4() {
			return l.Addr, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no listener of the address family of %s", dst)
}

// byAddress finds the listener an attribute "udp:IP:PORT" names.
func (s probeSockets) byAddress(attr, v string) (netip.AddrPort, error) {
	proto, rest, ok := strings.Cut(v, ":")
	if !ok || !strings.EqualFold(proto, "udp") {
		return netip.AddrPort{}, fmt.Errorf("%s %q: want udp:IP:PORT", attr, v)
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s %q: want udp:IP:PORT", attr, v)
	}
	for _, l := range s.listeners {
		if l.Addr == ap {
			return l.Addr, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%s %q names no listener", attr, v)
}

// literalSIPAddr reads sip:IP[:PORT][;params] (port 5060 by default).
func literalSIPAddr(uri string) (netip.AddrPort, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(uri), "sip:")
	if !ok {
		return netip.AddrPort{}, errors.New("want sip:IP[:PORT]")
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	if ap, err := netip.ParseAddrPort(rest); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(rest, "[]"))
	if err != nil {
		return netip.AddrPort{}, errors.New("want sip:IP[:PORT] with an IP literal")
	}
	return netip.AddrPortFrom(a, 5060), nil
}
