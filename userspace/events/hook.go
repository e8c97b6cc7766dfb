package events

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// HookConfig is what the hook runs (config keys events.hook_*).
type HookConfig struct {
	// Command is the argv of the hook; empty: no hook.
	Command []string
	// Timeout bounds one run; the hook's process group is killed then.
	// 0 means DefaultHookTimeout.
	Timeout time.Duration
	// Filter lists event name prefixes the hook runs for; none: all.
	Filter []string
}

// Hook limits (docs/events.md, "Hook").
const (
	DefaultHookTimeout = 5 * time.Second
	// HookWorkers is how many runs may be in progress at once.
	HookWorkers = 4
	// HookQueue is how many events may wait for a worker; more are
	// dropped, counted and logged.
	HookQueue = 256
	// HookOutputMax is how much of a run's output (stdout and stderr
	// together) goes into the log; the rest is counted.
	HookOutputMax = 4096
	// hookWaitDelay is how long a run's output pipe may stay open after
	// the hook exited or was killed (a background child of the hook
	// holding it) before it is closed.
	hookWaitDelay = time.Second
)

// Hook runs a command for each event it takes, with the event in the
// environment (Event.Env), at most HookWorkers at a time, each within its
// timeout. Its queue is a subscription of the bus: a burst beyond
// HookQueue drops events, never blocks the publisher.
type Hook struct {
	log *slog.Logger
	sub *Subscription
	cfg atomic.Pointer[HookConfig]

	runs, failed, timedOut, running atomic.Uint64
}

// NewHook subscribes the hook to bus at once, so events published before
// Run (the destinations down at start) wait for it; Run runs them.
func NewHook(bus *Bus, cfg HookConfig, logger *slog.Logger) *Hook {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Hook{log: logger}
	h.SetConfig(cfg)
	h.sub = bus.Subscribe(SubscribeOptions{Name: "hook", Queue: HookQueue, Match: h.match})
	return h
}

// SetConfig replaces the configuration; runs in progress keep theirs. A
// command not found is logged here, once.
func (h *Hook) SetConfig(cfg HookConfig) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHookTimeout
	}
	old := h.cfg.Swap(&cfg)
	if len(cfg.Command) > 0 && (old == nil || strings.Join(old.Command, "\x00") != strings.Join(cfg.Command, "\x00")) {
		if _, err := exec.LookPath(cfg.Command[0]); err != nil {
			h.log.Warn("event hook command not found; each run will fail", "command", cfg.Command, "error", err)
		}
	}
}

func (h *Hook) match(name string) bool {
	cfg := h.cfg.Load()
	if len(cfg.Command) == 0 {
		return false
	}
	if len(cfg.Filter) == 0 {
		return true
	}
	for _, p := range cfg.Filter {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Run runs the hook for queued events until ctx ends; runs in progress
// then are killed.
func (h *Hook) Run(ctx context.Context) error {
	defer h.sub.Close()
	var wg sync.WaitGroup
	for range HookWorkers {
		wg.Go(func() {
			for {
				e, err := h.sub.Next(ctx)
				if err != nil || ctx.Err() != nil {
					return // stopping: what is queued is not run
				}
				if e.Name == LostEvent {
					lost, _ := e.Get("lost")
					h.log.Warn("event hook: events dropped, too many waiting", "lost", lost, "queue", HookQueue, "workers", HookWorkers)
					continue
				}
				h.run(ctx, h.cfg.Load(), e)
			}
		})
	}
	wg.Wait()
	return nil
}

// run runs the hook once for e and logs the outcome in one line.
func (h *Hook) run(ctx context.Context, cfg *HookConfig, e Event) {
	if len(cfg.Command) == 0 { // turned off after e was queued
		return
	}
	h.runs.Add(1)
	h.running.Add(1)
	defer h.running.Add(^uint64(0))
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = append(environ(), e.Env()...)
	// Its own process group, so that the timeout kills what it started
	// too (a shell's children), not only the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = hookWaitDelay
	out := &cappedOutput{max: HookOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		h.failed.Add(1)
		h.log.Warn("event hook not started", "event", e.Name, "command", cfg.Command, "error", err)
		return
	}
	pgid := cmd.Process.Pid
	err = cmd.Wait()
	// What the hook left running in its group goes with it. The group
	// outlives its leader while a member lives, so the id is not reused
	// meanwhile; once empty, the kill finds nothing (ESRCH).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	args := []any{"event", e.Name, "command", cfg.Command[0], "took", time.Since(start).Round(time.Millisecond)}
	if out.Len() > 0 {
		args = append(args, "output", out.String())
	}
	if out.dropped > 0 {
		args = append(args, "output_truncated", out.dropped)
	}
	switch {
	case ctx.Err() != nil:
		h.failed.Add(1)
		h.log.Info("event hook killed: the agent is stopping", args...)
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		h.timedOut.Add(1)
		h.failed.Add(1)
		h.log.Warn("event hook killed at its timeout, with its process group", append(args, "timeout", cfg.Timeout)...)
	case err != nil:
		h.failed.Add(1)
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			args = append(args, "exit_code", exit.ExitCode())
		} else {
			args = append(args, "error", err)
		}
		h.log.Warn("event hook failed", args...)
	case out.Len() > 0:
		h.log.Info("event hook ran", args...)
	default:
		h.log.Debug("event hook ran", args...)
	}
}

// environ is the agent's environment without SIPEDGE_ variables: a hook
// sees only the event's own.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// HookStats count the hook's runs since start: Failed includes TimedOut
// and runs that could not start.
type HookStats struct {
	Command  []string      `json:"command"`
	Timeout  time.Duration `json:"timeout_ns"`
	Runs     uint64        `json:"runs"`
	Failed   uint64        `json:"failed"`
	TimedOut uint64        `json:"timed_out"`
	Running  uint64        `json:"running"`
}

// Stats returns the hook's counters now.
func (h *Hook) Stats() HookStats {
	cfg := h.cfg.Load()
	cmd := cfg.Command
	if cmd == nil {
		cmd = []string{}
	}
	return HookStats{Command: cmd, Timeout: cfg.Timeout, Runs: h.runs.Load(), Failed: h.failed.Load(), TimedOut: h.timedOut.Load(), Running: h.running.Load()}
}

// cappedOutput keeps the first max bytes written and counts the rest, so
// that a hook writing without end neither blocks on its pipe nor fills
// the agent's memory or log. exec.Cmd calls Write from one goroutine
// (Stdout and Stderr are the same writer).
type cappedOutput struct {
	max     int
	b       []byte
	dropped int64
}

func (c *cappedOutput) Write(p []byte) (int, error) {
	take := min(max(c.max-len(c.b), 0), len(p))
	c.b = append(c.b, p[:take]...)
	c.dropped += int64(len(p) - take)
	return len(p), nil
}

func (c *cappedOutput) Len() int { return len(c.b) }

func (c *cappedOutput) String() string { return strings.TrimRight(string(c.b), "\n") }
