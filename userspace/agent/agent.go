package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/examples"
	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/events"
)

// DefaultStopTimeout is how long the subsystems get, all together, to
// stop.
const DefaultStopTimeout = 5 * time.Second

// Options say how to run the agent.
type Options struct {
	// ConfigPath is the YAML file; empty runs the embedded default.
	ConfigPath string
	// Version is reported by core.version and the start log.
	Version string
	// Log receives the log.
	Log io.Writer
	// Reload delivers reload requests (SIGHUP): each one re-reads the
	// config and the dispatcher list.
	Reload <-chan os.Signal
	// StopTimeout bounds the stop; 0 means DefaultStopTimeout.
	StopTimeout time.Duration
}

// Agent is a loaded config with its subsystems.
type Agent struct {
	opts    Options
	log     *slog.Logger
	level   *slog.LevelVar
	started time.Time

	d    *dispatch.Dispatcher
	cur  atomic.Pointer[Snapshot]
	subs []Subsystem
	// reloading serializes reloads; a channel, so waiting for it can end
	// with the caller's context.
	reloading chan struct{}

	// events is the event stream (dispatcher:dst-down ...): the log, the
	// hook and events.subscribe get every event published on it.
	events *events.Bus
	hook   *events.Hook
}

// Run loads the config, starts the subsystems and runs them until ctx ends
// or one fails, then stops them. It returns nil after a clean stop by ctx.
func Run(ctx context.Context, opts Options) error {
	a, err := newAgent(ctx, opts)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// newAgent loads the config and the first snapshot and builds the
// subsystems; it starts nothing.
func newAgent(ctx context.Context, opts Options) (*Agent, error) {
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	a := &Agent{opts: opts, started: time.Now(), level: new(slog.LevelVar), reloading: make(chan struct{}, 1)}
	cfg, err := loadConfig(ctx, opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	a.level.Set(logLevel(cfg.Log.Level))
	a.log = newLogger(cfg, a.level, opts.Log)
	src := cfg.File
	if opts.ConfigPath == "" {
		src = "embedded default (examples/sipedge.yaml)"
	}
	a.log.Info("starting", "version", opts.Version, "config", src, "pid", os.Getpid())

	sets, err := buildSets(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.d = dispatch.New(sets)
	// dispatcher.add is held to the rules a reload is (an algorithm 10
	// set needs a distinct duid on every destination), against the
	// config running when it is called.
	a.d.SetAddCheck(a.checkAdded)
	// The hook subscribes before the start states are published, so they
	// wait in its queue until it runs.
	a.events = events.NewBus(a.log)
	a.hook = events.NewHook(a.events, hookConfig(cfg), a.log)
	publishStartStates(a.events, sets)
	a.cur.Store(&Snapshot{Config: cfg, Sets: sets})
	if a.subs, err = a.subsystems(ctx, cfg); err != nil {
		return nil, err
	}
	// First to start, last to stop: it runs the events of the others.
	a.subs = append([]Subsystem{eventHook{a.hook}}, a.subs...)
	return a, nil
}

// loadConfig reads the config at path, or the embedded default when path
// is empty.
func loadConfig(ctx context.Context, path string) (*config.Config, error) {
	if path == "" {
		return config.LoadFS(examples.FS, "sipedge.yaml")
	}
	return config.LoadContext(ctx, path)
}

// buildSets reads the dispatcher list and builds the destination sets, then
// checks that every rule's set exists.
func buildSets(ctx context.Context, cfg *config.Config) (*dispatch.Snapshot, error) {
	entries, err := cfg.ReadDispatcherListContext(ctx)
	if err != nil {
		return nil, err
	}
	fallback, err := dispatch.ParseHashFallback(cfg.Dispatcher.HashFallback)
	if err != nil {
		return nil, fmt.Errorf("dispatcher.ds_hash_fallback: %w", err) // config validated it
	}
	snap, err := dispatch.Build(ctx, entries, dispatch.Options{
		HashUserOnly: cfg.Dispatcher.Flags&config.DispatcherFlagHashUserOnly != 0,
		UseDefault:   cfg.Dispatcher.UseDefault,
		LatencyStats: cfg.Dispatcher.PingLatencyStats,
		LatencyAlpha: cfg.Dispatcher.LatencyEstimatorAlpha,
		HashFallback: fallback,
	})
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckSets(snap.Exists); err != nil {
		return nil, err
	}
	if err := cfg.CheckCallLoadSets(snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// checkAdded is dispatcher.add's check of the snapshot it would serve:
// the running config's rules for algorithm 10 sets (CheckCallLoadSets).
func (a *Agent) checkAdded(snap *dispatch.Snapshot) error {
	cur := a.cur.Load()
	if cur == nil {
		return nil
	}
	return cur.Config.CheckCallLoadSets(snap)
}

func logLevel(s string) slog.Level {
	var level slog.Level
	_ = level.UnmarshalText([]byte(s)) // validated by config
	return level
}

func newLogger(cfg *config.Config, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// running is one started subsystem.
type running struct {
	sub    Subsystem
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's result, once done
}

// run starts the subsystems in order, serves reloads, and stops them.
func (a *Agent) run(ctx context.Context) error {
	failed := make(chan *running, len(a.subs))
	var started []*running
	for _, s := range a.subs {
		r := a.start(s, failed)
		started = append(started, r)
		rd, ok := s.(Readier)
		if !ok {
			continue
		}
		select {
		case <-rd.Ready():
		case <-r.done:
			err := a.stop(started) // holds r.err
			if r.err == nil {
				err = errors.Join(fmt.Errorf("%s stopped before it was ready", s.Name()), err)
			}
			return err
		case <-ctx.Done():
			return a.stop(started)
		}
	}
	for {
		select {
		case <-ctx.Done():
			err := a.stop(started)
			a.log.Info("stopped", "error", err)
			return err
		case r := <-failed:
			a.log.Error("subsystem failed; stopping", "subsystem", r.sub.Name(), "error", r.err)
			err := a.stop(started) // holds r.err
			a.log.Info("stopped", "error", err)
			return err
		case <-a.opts.Reload:
			if err := a.Reload(ctx, true); err != nil {
				a.log.Error("reload failed; the running config and sets stay", "error", err)
			}
		}
	}
}

// start runs s in its own goroutine under its own context, so that the
// stop can cancel the subsystems one at a time. A failure is reported on
// failed.
func (a *Agent) start(s Subsystem, failed chan<- *running) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{sub: s, cancel: cancel, done: make(chan struct{})}
	a.log.Debug("starting subsystem", "subsystem", s.Name())
	go func() {
		defer close(r.done)
		r.err = s.Run(ctx)
		if ctx.Err() == nil {
			// Every subsystem serves until its context ends: one that
			// returns before, even without an error, is gone, and the
			// agent must not run on without it.
			if r.err == nil {
				r.err = errors.New("stopped by itself")
			}
			failed <- r
		}
	}()
	return r
}

// stop cancels the started subsystems in reverse order, waiting for each,
// all within StopTimeout. Once that has passed, the rest are cancelled at
// once and get a tenth of it more. It returns the errors they stopped with
// and names those that did not stop in time (they are left behind: the
// process is about to exit).
func (a *Agent) stop(started []*running) error {
	// Contexts, not timers: a Done channel stays closed for every later
	// select.
	budget, cancel := context.WithTimeout(context.Background(), a.opts.StopTimeout)
	defer cancel()
	var errs []error
	wait := func(r *running, until context.Context) bool {
		select {
		case <-r.done:
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.sub.Name(), r.err))
			}
			return true
		case <-until.Done():
			return false
		}
	}
	for i := len(started) - 1; i >= 0; i-- {
		started[i].cancel()
		if wait(started[i], budget) {
			continue
		}
		// Out of time: cancel the rest, give them a last moment.
		for _, r := range started[:i] {
			r.cancel()
		}
		last, cancelLast := context.WithTimeout(context.Background(), a.opts.StopTimeout/10)
		defer cancelLast()
		for j := i; j >= 0; j-- {
			if !wait(started[j], last) {
				errs = append(errs, fmt.Errorf("%s did not stop within %v", started[j].sub.Name(), a.opts.StopTimeout))
			}
		}
		break
	}
	return errors.Join(errs...)
}
