package keepalive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipedge/sipedge/userspace/events"
)

// State is a destination's state, numbered as Kamailio's ka_state.
type State int

// States.
const (
	// Unknown: no probe has ended yet (the state after Add).
	Unknown State = 0
	// Up: the last probe got a 2xx.
	Up State = 1
	// Down: the last probe got another code, no reply by its deadline, could
	// not be sent, or the host name did not resolve.
	Down State = 2
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Defaults, as Kamailio's modparams have them (ping_from excepted: Kamailio
// writes sip:keepalive@kamailio.org).
const (
	DefaultInterval      = 30 * time.Second
	DefaultDeleteCounter = 5
	DefaultFrom          = "sip:keepalive@localhost"
	// StaticOwner owns the destinations of the config's keepalive.destination
	// list, as "_params" owns Kamailio's modparam destinations.
	StaticOwner = "_params"
)

// MinInterval is the shortest ping_interval (the probe scheduler's tick is
// 5 ms).
const MinInterval = 10 * time.Millisecond

// Errors of the Go API (and RPC), to test with errors.Is.
var (
	ErrExists   = errors.New("destination already monitored for this owner")
	ErrNotFound = errors.New("no such destination for this owner")
)

// Params are the module's parameters (Kamailio's modparams); all of them
// can change at run time (Configure).
type Params struct {
	// Destinations are monitored for StaticOwner (modparam destination).
	Destinations []string
	// Interval between two probes of a destination (ping_interval).
	Interval time.Duration
	// DeleteCounter: a destination added at run time (Add, RPC
	// keepalive.add) that fails this many probes in a row is removed; 0
	// never removes (delete_counter). Static destinations are never
	// removed.
	DeleteCounter int
	// From is the From URI of the probes (ping_from).
	From string
}

// withDefaults fills the zero fields.
func (p Params) withDefaults() Params {
	p.Interval = cmp.Or(p.Interval, DefaultInterval)
	p.From = cmp.Or(p.From, DefaultFrom)
	return p
}

// check returns every problem of p.
func (p Params) check() error {
	var errs []error
	if p.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("ping_interval %v: want at least %v", p.Interval, MinInterval))
	}
	if p.DeleteCounter < 0 {
		errs = append(errs, fmt.Errorf("delete_counter %d: want 0 (never) or more", p.DeleteCounter))
	}
	if err := checkFrom(p.From); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for _, d := range p.Destinations {
		uri := Normalize(d)
		if _, err := parseTarget(uri); err != nil {
			errs = append(errs, fmt.Errorf("destination: %w", err))
		}
		if seen[uri] {
			errs = append(errs, fmt.Errorf("destination %q is listed twice", d))
		}
		seen[uri] = true
	}
	return errors.Join(errs...)
}

// Probe is one destination as the Prober probes it.
type Probe struct {
	URI      string         // Request-URI and To
	Addr     netip.AddrPort // where to send (the URI's host, resolved)
	Interval time.Duration
	From     string
	// First is set on a destination's first Set: probe it at once (as
	// Kamailio does, 500 ms after the add), not within one interval.
	First bool
}

// Prober sends the probes; the agent implements it over a probe.Engine.
// The module calls it with its lock held: it must not call back into the
// Module. Results come back through Module.Result under the same key.
type Prober interface {
	// Set starts probing key as p, or updates it. An error means it
	// cannot be probed (no socket of the address's family, say).
	Set(key string, p Probe) error
	// Remove stops probing key.
	Remove(key string)
}

// Resolver returns the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Change is one state change (or removal) told to an owner's callback and
// to the log.
type Change struct {
	URI   string
	Owner string
	State State // the new state
	Prev  State
	// Code is what decided: the reply's status code, 408 when no reply
	// came by the probe's deadline, 500 when the probe could not be sent,
	// 0 when there was no probe (the host did not resolve).
	Code int
	// Reason says why when there was no reply (send or resolve error).
	Reason string
	// Removed: the owner's registration is gone, after DeleteCounter
	// failed probes in a row or keepalive.flush; no call follows.
	Removed bool
}

// Entry is one (destination, owner) pair, as keepalive.list shows it.
type Entry struct {
	URI   string
	Owner string
	State State
	// Addr is the address probed (invalid until the host resolved).
	Addr netip.AddrPort
	// Failures counts the failed probes since the last success (Kamailio's
	// counter, which delete_counter compares).
	Failures int
	// LastChecked is when the last probe ended; LastUp and LastDown when
	// the last one succeeded and failed. Zero: never.
	LastChecked, LastUp, LastDown time.Time
}

// Options build a Module.
type Options struct {
	Params
	// Prober sends the probes (required).
	Prober Prober
	// Resolver resolves host names; nil uses
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host).
	Resolver Resolver
	// Log receives the module's warnings; nil discards them.
	Log *slog.Logger
	// Publish receives the events (keepalive:dst-up, keepalive:dst-down,
	// keepalive:dst-removed): the agent's event stream, which logs them
	// too; nil logs them to Log.
	Publish func(events.Event)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Module is the keepalive module: destinations, their owners and states.
// Its methods are safe for concurrent use.
type Module struct {
	prober  Prober
	resolve Resolver
	log     *slog.Logger
	publish func(events.Event)
	now     func() time.Time
	kick    chan struct{} // wakes Run: a host name to resolve

	mu     sync.Mutex
	p      Params
	dests  map[string]*dest // by normalized URI
	byKey  map[string]*dest // by prober key
	nextID uint64
	// Changes waiting to be delivered, in order, and whether a goroutine
	// is delivering them (emit).
	pending    []delivery
	delivering bool
}

// dest is one monitored URI. Owners share its probe and its state: a URI
// is probed once however many owners watch it.
type dest struct {
	uri    string
	key    string // prober key: unique per dest, so a late result of a removed one is not taken for its successor
	target target
	addr   netip.AddrPort // where probes go; invalid while unresolved
	set    bool           // the prober has it
	owners []owner        // in the order they were added

	lastSeq                       uint64 // of the last probe result applied
	state                         State
	failures                      int
	lastChecked, lastUp, lastDown time.Time

	// Host names: resolving now, and when to resolve next.
	resolving   bool
	nextResolve time.Time
}

type owner struct {
	name     string
	onChange func(Change)
}

// New checks opts and returns a Module monitoring the static destinations.
// Host names are resolved once Run runs.
func New(opts Options) (*Module, error) {
	if opts.Prober == nil {
		return nil, errors.New("new keepalive module: nil prober")
	}
	p := opts.Params.withDefaults()
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("new keepalive module: %w", err)
	}
	m := &Module{
		prober:  opts.Prober,
		resolve: opts.Resolver,
		log:     opts.Log,
		publish: opts.Publish,
		now:     opts.Now,
		kick:    make(chan struct{}, 1),
		p:       p,
		dests:   map[string]*dest{},
		byKey:   map[string]*dest{},
	}
	if m.resolve == nil {
		m.resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range p.Destinations {
		if err := m.add(Normalize(d), StaticOwner, nil); err != nil {
			return nil, fmt.Errorf("new keepalive module: destination %q: %w", d, err)
		}
	}
	return m, nil
}

// Add monitors uri for owner; onChange (may be nil) is called on each
// change of its state, in order, never with the module's lock held: it
// must be quick (it delays the changes after it) and may call any method. A uri without a scheme gets "sip:". Adding a (uri, owner) pair
// again returns ErrExists and restarts the count of failed probes
// towards DeleteCounter (as Kamailio's ka_add_dest).
func (m *Module) Add(uri, name string, onChange func(Change)) error {
	if name == "" {
		return fmt.Errorf("add keepalive destination %q: empty owner", uri)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.add(Normalize(uri), name, onChange); err != nil {
		return fmt.Errorf("add keepalive destination %q for %s: %w", uri, name, err)
	}
	return nil
}

// add is Add with mu held and uri normalized.
func (m *Module) add(uri, name string, onChange func(Change)) error {
	d := m.dests[uri]
	if d != nil {
		d.failures = 0
		if slices.ContainsFunc(d.owners, func(o owner) bool { return o.name == name }) {
			return ErrExists
		}
		d.owners = append(d.owners, owner{name, onChange})
		return nil
	}
	t, err := parseTarget(uri)
	if err != nil {
		return err
	}
	m.nextID++
	d = &dest{uri: uri, key: strconv.FormatUint(m.nextID, 10) + " " + uri, target: t, owners: []owner{{name, onChange}}}
	if t.literal.IsValid() {
		d.addr = t.literal
		if err := m.prober.Set(d.key, m.probe(d, true)); err != nil {
			return fmt.Errorf("cannot be probed: %w", err)
		}
		d.set = true
	} else {
		d.nextResolve = m.now()
		m.wake()
	}
	m.dests[uri] = d
	m.byKey[d.key] = d
	return nil
}

func (m *Module) probe(d *dest, first bool) Probe {
	return Probe{URI: d.uri, Addr: d.addr, Interval: m.p.Interval, From: m.p.From, First: first}
}

// Remove stops monitoring uri for owner; the destination's probing stops
// when its last owner goes. It returns ErrNotFound when owner does not
// monitor uri.
func (m *Module) Remove(uri, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dests[Normalize(uri)]
	i := -1
	if d != nil {
		i = slices.IndexFunc(d.owners, func(o owner) bool { return o.name == name })
	}
	if i < 0 {
		return fmt.Errorf("remove keepalive destination %q for %s: %w", uri, name, ErrNotFound)
	}
	d.owners = slices.Delete(d.owners, i, i+1)
	if len(d.owners) == 0 {
		m.drop(d)
	}
	return nil
}

// drop forgets d and stops its probes. Called with mu held.
func (m *Module) drop(d *dest) {
	delete(m.dests, d.uri)
	delete(m.byKey, d.key)
	if d.set {
		m.prober.Remove(d.key)
	}
}

// Flush removes every destination of every owner, static ones included
// (keepalive.flush); owners with a callback get a last Change with
// Removed. The next Configure (a reload) adds the static ones back.
func (m *Module) Flush() {
	m.mu.Lock()
	var out []notice
	for _, d := range m.dests {
		for _, o := range d.owners {
			if o.onChange != nil {
				out = append(out, notice{Change{URI: d.uri, Owner: o.name, State: d.state, Prev: d.state, Removed: true}, o.onChange})
			}
		}
		m.drop(d)
	}
	m.emit(out, nil)
}

// Configure applies new parameters (a reload): static destinations no
// longer listed lose their static owner (and stop being probed unless
// another owner watches them), new ones are added, and the interval and
// From apply from each destination's next probe. Nothing changes when p
// is not valid.
func (m *Module) Configure(p Params) error {
	p = p.withDefaults()
	if err := p.check(); err != nil {
		return fmt.Errorf("configure keepalive: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.p
	m.p = p
	want := map[string]bool{}
	for _, d := range p.Destinations {
		want[Normalize(d)] = true
	}
	for uri, d := range m.dests {
		if want[uri] {
			continue
		}
		if i := slices.IndexFunc(d.owners, func(o owner) bool { return o.name == StaticOwner }); i >= 0 {
			d.owners = slices.Delete(d.owners, i, i+1)
			if len(d.owners) == 0 {
				m.drop(d)
			}
		}
	}
	var errs []error
	for _, raw := range p.Destinations {
		uri := Normalize(raw)
		if d := m.dests[uri]; d != nil && slices.ContainsFunc(d.owners, func(o owner) bool { return o.name == StaticOwner }) {
			continue
		}
		if err := m.add(uri, StaticOwner, nil); err != nil && !errors.Is(err, ErrExists) {
			errs = append(errs, fmt.Errorf("destination %q: %w", raw, err))
		}
	}
	if old.Interval != p.Interval || old.From != p.From {
		for _, d := range m.dests {
			if d.set {
				if err := m.prober.Set(d.key, m.probe(d, false)); err != nil {
					errs = append(errs, fmt.Errorf("destination %q: %w", d.uri, err))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("configure keepalive: %w", err)
	}
	return nil
}

// State returns uri's state; false when nobody monitors uri.
func (m *Module) State(uri string) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dests[Normalize(uri)]
	if d == nil {
		return Unknown, false
	}
	return d.state, true
}

// IsAlive is Kamailio's ka_is_alive with its quirks fixed: 1 when uri is
// up, 2 when it is down or not probed to the end yet (unknown), -1 when
// nobody monitors it. Kamailio returns 1 for unknown too, so a
// destination that was never answered counts as alive there; and it
// compares uri with the stored URI minus its first four bytes, which
// breaks sips: URIs. Here uri is normalized as in Add, so "10.0.0.1",
// "sip:10.0.0.1" and "SIP:10.0.0.1" name one destination.
func (m *Module) IsAlive(uri string) int {
	st, ok := m.State(uri)
	switch {
	case !ok:
		return -1
	case st == Up:
		return 1
	}
	return 2
}

// Get returns the (uri, owner) entry, or ErrNotFound.
func (m *Module) Get(uri, name string) (Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dests[Normalize(uri)]
	if d == nil || !slices.ContainsFunc(d.owners, func(o owner) bool { return o.name == name }) {
		return Entry{}, fmt.Errorf("get keepalive destination %q for %s: %w", uri, name, ErrNotFound)
	}
	return d.entry(name), nil
}

// List returns one Entry per (destination, owner), by URI then in the
// order the owners were added; an empty list is empty, not nil.
func (m *Module) List() []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Entry, 0, len(m.dests))
	for _, d := range m.dests {
		for _, o := range d.owners {
			out = append(out, d.entry(o.name))
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return cmp.Compare(a.URI, b.URI) })
	return out
}

func (d *dest) entry(owner string) Entry {
	return Entry{URI: d.uri, Owner: owner, State: d.state, Addr: d.addr, Failures: d.failures,
		LastChecked: d.lastChecked, LastUp: d.lastUp, LastDown: d.lastDown}
}

// Result applies the outcome of one probe of key: code is the final
// reply's status code, or 408 (no reply by the deadline) or 500 (not
// sent) as Kamailio's tm reports them locally; reason says why when there
// was no reply. A 2xx is up, anything else down (Kamailio's keepalive has
// no thresholds and no reply-code list). seq numbers the probes of key in
// the order they started (probe.Result.Seq): a result older than one
// already applied is ignored, since the outcomes of two probes can arrive
// out of order (a timeout reported by the engine's goroutine after the
// next probe's reply, read by a slow path goroutine). A key the module no
// longer has (removed meanwhile) is ignored.
func (m *Module) Result(key string, seq uint64, code int, reason string) {
	m.mu.Lock()
	d := m.byKey[key]
	if d == nil || seq <= d.lastSeq {
		m.mu.Unlock()
		return
	}
	d.lastSeq = seq
	m.applyLocked(d, code >= 200 && code <= 299, code, reason)
}

// applyLocked feeds one result into d's state, then delivers the changes
// and unlocks mu.
func (m *Module) applyLocked(d *dest, ok bool, code int, reason string) {
	now := m.now()
	prev := d.state
	d.lastChecked = now
	if ok {
		d.state, d.failures, d.lastUp = Up, 0, now
	} else {
		d.state, d.lastDown = Down, now
		d.failures++
	}
	var out []notice
	if d.state != prev {
		for _, o := range d.owners {
			if o.onChange != nil {
				out = append(out, notice{Change{URI: d.uri, Owner: o.name, State: d.state, Prev: prev, Code: code, Reason: reason}, o.onChange})
			}
		}
	}
	var removed []string
	if !ok && m.p.DeleteCounter > 0 && d.failures >= m.p.DeleteCounter {
		// Kamailio stops probing after delete_counter+1 failures and
		// leaves the entry behind, down, for every owner, static ones
		// included; here the dynamic owners are removed and told, and a
		// static destination goes on being probed.
		kept := d.owners[:0]
		for _, o := range d.owners {
			if o.name == StaticOwner {
				kept = append(kept, o)
				continue
			}
			removed = append(removed, o.name)
			if o.onChange != nil {
				out = append(out, notice{Change{URI: d.uri, Owner: o.name, State: d.state, Prev: d.state, Code: code, Reason: reason, Removed: true}, o.onChange})
			}
		}
		d.owners = kept
		if len(kept) == 0 {
			m.drop(d)
		}
	}
	var ev *event
	if d.state != prev || len(removed) > 0 {
		ev = &event{uri: d.uri, state: d.state, prev: prev, code: code, reason: reason, failures: d.failures, removed: removed}
	}
	m.emit(out, ev)
}

// notice is one Change for one owner's callback.
type notice struct {
	Change
	fn func(Change)
}

// event is what the log says about one result.
type event struct {
	uri         string
	state, prev State
	code        int
	reason      string
	failures    int
	removed     []string // owners removed by delete_counter
}

// emit queues changes for delivery and releases mu; the first goroutine
// to find the queue idle delivers, in order, until it is empty: one log
// line per state change (keepalive:dst-up, keepalive:dst-down) and per
// removal (keepalive:dst-removed), then the owners' callbacks. It is the
// one place a change leaves the module, so routing events elsewhere (an
// event bus, hooks) starts here (deliver). Nothing runs with mu held, so a
// callback may call any method of the Module.
func (m *Module) emit(out []notice, ev *event) {
	if len(out) > 0 || ev != nil {
		m.pending = append(m.pending, delivery{out, ev})
	}
	if m.delivering || len(m.pending) == 0 {
		m.mu.Unlock()
		return
	}
	m.delivering = true
	for len(m.pending) > 0 {
		d := m.pending[0]
		m.pending[0] = delivery{}
		m.pending = m.pending[1:]
		m.mu.Unlock()
		m.deliver(d)
		m.mu.Lock()
	}
	m.pending = nil
	m.delivering = false
	m.mu.Unlock()
}

// delivery is what one result (or flush) changed.
type delivery struct {
	out []notice
	ev  *event
}

func (m *Module) deliver(d delivery) {
	if ev := d.ev; ev != nil {
		fields := []events.Field{events.F("uri", ev.uri), events.F("state", ev.state.String()),
			events.F("prev", ev.prev.String()), events.F("code", ev.code)}
		if ev.reason != "" {
			fields = append(fields, events.F("reason", ev.reason))
		}
		if ev.state != ev.prev {
			name := EventDstDown
			if ev.state == Up {
				name = EventDstUp
			}
			m.publishEvent(events.New(name, fields...))
		}
		if len(ev.removed) > 0 {
			m.publishEvent(events.New(EventDstRemoved, append(fields, events.F("failures", ev.failures),
				events.F("owners", strings.Join(ev.removed, ",")))...))
		}
	}
	for _, n := range d.out {
		n.fn(n.Change)
	}
}

// Names of the events the module publishes (docs/keepalive.md).
const (
	EventDstUp      = "keepalive:dst-up"
	EventDstDown    = "keepalive:dst-down"
	EventDstRemoved = "keepalive:dst-removed"
)

// publishEvent hands an event to the agent's stream, or logs it without one.
func (m *Module) publishEvent(e events.Event) {
	if m.publish != nil {
		m.publish(e)
		return
	}
	args := make([]any, 0, 2*len(e.Fields))
	for _, f := range e.Fields {
		args = append(args, f.Key, f.Value)
	}
	m.log.Info(e.Name, args...)
}
