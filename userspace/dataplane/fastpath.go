package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// FastPathConfig is what the agent's fast path needs.
type FastPathConfig struct {
	// Interfaces are the ingress interfaces the program attaches to.
	Interfaces []string
	// Mode is auto (native, else generic), native or generic.
	Mode Mode
	// Required makes a failure to load or attach fatal. Without it (mode
	// auto) the agent logs the failure and runs on the slow path alone:
	// XDP is an accelerator, never a requirement.
	Required bool
	// PinDir is where maps are pinned; empty means DefaultPinDir.
	PinDir string
	// Listeners are the slow path's listeners, in order: a listener's ID in
	// the fast path's counters and events is its index here.
	Listeners  []Listener
	Names      []string // listener names, for stats
	Dispatcher *dispatch.Dispatcher
	Logger     *slog.Logger
	// Events is called with each batch of events drained from the
	// program's ring, after they are counted (fastpath.stats events), on
	// the one goroutine that drains: it must return quickly (a full ring
	// loses events) and must not keep the slice nor an event's Msg past
	// the call. Nil: events are only counted.
	Events func([]Event)
	// EventCopies loads the program with Options.EventCopies: the events
	// of INVITE requests and of 2xx replies to INVITE carry the message as
	// received (Event.Msg), and the ring is DefaultCopyRingBytes. For a
	// consumer that reads fields of its own from the messages (dialog
	// tracking); off, nothing changes for anyone else.
	EventCopies bool
	// CallLoads reads the algorithm 10 load of a set's duid from the
	// agent's Call-ID table (dispatch.CallLoad.Load): the loads the program
	// picks by, written after every sync and after every batch of events
	// (which the table has taken through Events by then) that changed
	// them. Nil: call load is off.
	CallLoads func(set int, duid string) int64
}

// FastPath runs the XDP program for the agent: it loads it, keeps its maps
// in step with the dispatcher's snapshots, attaches it, drains its events,
// and detaches and unpins on shutdown.
type FastPath struct {
	cfg FastPathConfig
	log *slog.Logger

	mu    sync.Mutex // guards dp, links, mode and syncs
	dp    *Dataplane
	links []link.Link
	mode  Mode
	// events counts events by kind and method until the dialog tracking
	// consumes them.
	events [numEventKinds][numMethods]atomic.Uint64

	// lmu guards the dialog limit verdicts (limits.go): apart from mu, so
	// that a verdict never waits for a set sync.
	lmu     sync.Mutex
	limits  map[LimitBlock]int  // the verdicts given: entry → rule
	waiting map[LimitBlock]bool // verdicts not written: limit_block was full
	ldp     *Dataplane          // the program they are written to; nil when not loaded
	lcap    int                 // limit_block's entries
}

// Bounds of the event counters (EventKind and Method values).
const (
	numEventKinds = 4
	numMethods    = eventMethodSlots
)

// NewFastPath builds a FastPath. It starts nothing.
func NewFastPath(cfg FastPathConfig) *FastPath {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &FastPath{cfg: cfg, log: cfg.Logger.With("component", "fastpath")}
}

// Run loads, feeds and attaches the program, then serves until ctx ends. It
// returns nil after a clean detach, and an error only when the fast path is
// Required and cannot start.
func (f *FastPath) Run(ctx context.Context) error {
	dp, err := f.start()
	if err != nil {
		if f.cfg.Required {
			return err
		}
		f.log.Warn("fast path not started; the slow path handles everything", "error", err)
		<-ctx.Done()
		return nil
	}
	defer f.stop(dp)

	cancel := f.cfg.Dispatcher.Subscribe(func(*dispatch.Snapshot) { f.syncSets() })
	defer cancel()
	// A change between load and Subscribe is caught here: syncSets always
	// writes the dispatcher's current snapshot.
	f.syncSets()

	mode, err := f.attach(dp)
	if err != nil {
		if f.cfg.Required {
			return err
		}
		f.log.Warn("fast path not attached; the slow path handles everything", "error", err)
		<-ctx.Done()
		return nil
	}
	defer f.detach()
	f.mu.Lock()
	f.mode = mode
	f.mu.Unlock()
	f.log.Info("fast path attached", "interfaces", f.cfg.Interfaces, "mode", string(mode), "pins", dp.PinDir())
	var v4, v6 bool
	for _, l := range f.cfg.Listeners {
		v4, v6 = v4 || l.Addr.Addr().Unmap().Is4(), v6 || !l.Addr.Addr().Unmap().Is4()
	}
	for _, err := range forwardingOff("/proc/sys", f.cfg.Interfaces, v4, v6) {
		f.log.Warn("fast path degraded", "error", err)
	}

	if f.cfg.CallLoads != nil {
		// Loads also change with no event: the table expires calls and
		// audits its loads (ds_hash_check_interval).
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.syncLoadsEvery(ctx, dp, loadFullEvery)
		}()
		defer wg.Wait() // before stop closes dp
	}

	// Events are counted, then handed to the consumer if there is one;
	// the ring is drained either way, so it never fills with nobody reading.
	err = dp.ReadEvents(ctx, f.consume)
	if err != nil && ctx.Err() == nil {
		f.log.Warn("fast path events stopped", "error", err)
		<-ctx.Done()
	}
	return nil
}

// consume takes one drained batch of events: it counts them by kind and
// method (one atomic add per kind and method seen, not per event), then
// hands them to the configured consumer.
func (f *FastPath) consume(evs []Event) {
	var counts [numEventKinds][numMethods]uint64
	for _, e := range evs {
		if int(e.Kind) < numEventKinds && int(e.Method) < numMethods {
			counts[e.Kind][e.Method]++
		}
	}
	for k := range counts {
		for m, n := range counts[k] {
			if n > 0 {
				f.events[k][m].Add(n)
			}
		}
	}
	if f.cfg.Events != nil {
		f.cfg.Events(evs)
	}
	if f.cfg.CallLoads != nil {
		f.mu.Lock()
		dp := f.dp
		f.mu.Unlock()
		if dp != nil {
			f.syncLoads(dp)
		}
	}
}

// RecordCall hands the program a call the slow path placed with
// algorithm 10 (Dataplane.RecordCall). Without a running program it does
// nothing. Safe for concurrent use.
func (f *FastPath) RecordCall(h uint64, set int, duid string) {
	f.mu.Lock()
	dp := f.dp
	f.mu.Unlock()
	if dp == nil {
		return
	}
	if err := dp.RecordCall(h, set, duid); err != nil {
		f.log.Warn("fast path: a call the slow path placed not recorded; its later requests go through the slow path", "error", err)
	}
}

// syncLoads writes the call loads that changed into the program's map.
func (f *FastPath) syncLoads(dp *Dataplane) {
	if _, err := dp.SyncLoads(); err != nil {
		f.log.Warn("fast path call loads not updated", "error", err)
	}
}

// syncLoadsEvery writes the call loads that changed every d until ctx
// ends.
func (f *FastPath) syncLoadsEvery(ctx context.Context, dp *Dataplane, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.syncLoads(dp)
		}
	}
}

// loadOptions are the program's load options for the configuration.
func (f *FastPath) loadOptions() Options {
	return Options{PinDir: f.cfg.PinDir, Logger: f.log, EventCopies: f.cfg.EventCopies}
}

func (f *FastPath) start() (*Dataplane, error) {
	dp, err := Load(f.loadOptions())
	if err != nil {
		return nil, err
	}
	if err := dp.SyncListeners(f.cfg.Listeners); err != nil {
		dp.Close()
		return nil, err
	}
	if f.cfg.CallLoads != nil {
		// Written again by every sync: a new (set, duid) gets its slot then.
		if err := dp.SetCallLoads(f.cfg.CallLoads); err != nil {
			dp.Close()
			return nil, err
		}
	}
	if err := f.loadLimits(dp); err != nil {
		// The slow path answers every INVITE over a limit still; the
		// fast path forwards those it was not told about.
		f.log.Warn("fast path: dialog limit verdicts not all written", "error", err)
	}
	f.mu.Lock()
	f.dp = dp
	f.mu.Unlock()
	return dp, nil
}

// stop closes the program and removes the pins: a stopped agent leaves no
// state behind that a later one could mistake for its own.
func (f *FastPath) stop(dp *Dataplane) {
	f.unloadLimits()
	f.mu.Lock()
	f.dp = nil
	f.mu.Unlock()
	pins := dp.PinDir()
	if err := dp.Close(); err != nil {
		f.log.Warn("close fast path", "error", err)
	}
	if pins != "" {
		for _, name := range pinnedMaps {
			if err := os.Remove(pins + "/" + name); err != nil && !errors.Is(err, os.ErrNotExist) {
				f.log.Warn("unpin", "map", name, "error", err)
			}
		}
		_ = os.Remove(pins) // only when empty
	}
	f.log.Info("fast path detached")
}

// attach attaches the program to every interface, all in one mode: the
// first interface settles what auto means for the others. On an error the
// interfaces already attached are detached again.
func (f *FastPath) attach(dp *Dataplane) (Mode, error) {
	if len(f.cfg.Interfaces) == 0 {
		return "", errors.New("attach xdp: no interface configured")
	}
	mode := f.cfg.Mode
	for _, ifname := range f.cfg.Interfaces {
		l, got, err := dp.Attach(ifname, mode)
		if err != nil {
			f.detach()
			return "", err
		}
		mode = got
		f.mu.Lock()
		f.links = append(f.links, l)
		f.mu.Unlock()
	}
	return mode, nil
}

func (f *FastPath) detach() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if err := l.Close(); err != nil {
			f.log.Warn("detach xdp", "error", err)
		}
	}
	f.links = nil
	f.mode = ""
}

// syncSets writes the dispatcher's current snapshot into the maps.
func (f *FastPath) syncSets() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dp == nil {
		return
	}
	if err := f.dp.SyncSets(f.cfg.Dispatcher.Snapshot()); err != nil {
		f.log.Error("fast path tables not updated; the fast path keeps the previous ones", "error", err)
	}
}

// FastPathStats is what RPC fastpath.stats returns.
type FastPathStats struct {
	Attached     bool                `json:"attached"`
	Interfaces   []string            `json:"interfaces"`
	Mode         string              `json:"mode"`
	Forwarded    uint64              `json:"forwarded"`
	Passed       uint64              `json:"passed"`
	Dropped      uint64              `json:"dropped"`
	PassReasons  []ReasonCount       `json:"pass_reasons"`
	DropReasons  []ReasonCount       `json:"drop_reasons"`
	Listeners    []ListenerCounters  `json:"listeners"`
	Destinations []DestinationCounts `json:"destinations"`
	// Events counts the ring-buffer events by kind and method, e.g.
	// "request INVITE", "reply INVITE" (replies to INVITE), "reply BYE".
	Events map[string]uint64 `json:"events"`
	// EventsLost counts, with the same names, the events the program
	// could not put in the full ring (map event_lost).
	EventsLost map[string]uint64 `json:"events_lost"`
}

// ReasonCount is one pass or drop reason and its count.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

// ListenerCounters are one listener's fast-path counters.
type ListenerCounters struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	ListenerStats
}

// DestinationCounts are one destination's fast-path counters.
type DestinationCounts struct {
	Set   int    `json:"set"`
	Index int    `json:"idx"`
	URI   string `json:"uri"`
	DstStats
}

// Stats reads the fast path's counters. When the program is not running it
// says so (Attached false) rather than failing.
func (f *FastPath) Stats() (FastPathStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FastPathStats{Interfaces: f.cfg.Interfaces, Mode: string(f.mode), Events: map[string]uint64{}, EventsLost: map[string]uint64{}}
	if f.dp == nil {
		return st, nil
	}
	st.Attached = f.mode != ""
	pass, err := f.dp.PassCounts()
	if err != nil {
		return st, err
	}
	drop, err := f.dp.DropCounts()
	if err != nil {
		return st, err
	}
	if st.EventsLost, err = f.dp.EventsLost(); err != nil {
		return st, err
	}
	st.PassReasons, st.Passed = reasons(pass)
	st.DropReasons, st.Dropped = reasons(drop)
	for i, l := range f.cfg.Listeners {
		ls, err := f.dp.ListenerStats(uint32(i))
		if err != nil {
			return st, err
		}
		name := ""
		if i < len(f.cfg.Names) {
			name = f.cfg.Names[i]
		}
		st.Listeners = append(st.Listeners, ListenerCounters{Name: name, Addr: l.Addr.String(), ListenerStats: ls})
		st.Forwarded += ls.FwdRequests + ls.FwdReplies
	}
	for _, set := range f.cfg.Dispatcher.Snapshot().Sets() {
		for _, d := range set.Dests {
			ds, err := f.dp.DstStats(set.ID, d.Index)
			if err != nil {
				continue // a set no listener uses is not in the fast path
			}
			st.Destinations = append(st.Destinations, DestinationCounts{Set: set.ID, Index: d.Index, URI: d.URI, DstStats: ds})
		}
	}
	for k := range f.events {
		for m := range f.events[k] {
			if n := f.events[k][m].Load(); n > 0 {
				st.Events[EventKind(k).String()+" "+Method(m).String()] = n
			}
		}
	}
	return st, nil
}

func reasons(m map[string]uint64) ([]ReasonCount, uint64) {
	out := make([]ReasonCount, 0, len(m))
	var total uint64
	for k, v := range m {
		if v == 0 {
			continue
		}
		out = append(out, ReasonCount{Reason: k, Count: v})
		total += v
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Reason < out[j].Reason })
	return out, total
}

// String names an event kind.
func (k EventKind) String() string {
	switch k {
	case EventRequest:
		return "request"
	case EventReply:
		return "reply"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
