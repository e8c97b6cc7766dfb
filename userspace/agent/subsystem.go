package agent

import (
	"context"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// Snapshot is what the agent runs with: the effective config and the
// destination sets built from its dispatcher list. A reload builds a new
// one and hands it to every Applier; a Snapshot is never changed.
type Snapshot struct {
	Config *config.Config
	Sets   *dispatch.Snapshot
}

// Subsystem is one part of the agent, started in order and stopped in
// reverse order.
type Subsystem interface {
	// Name names it in logs and errors.
	Name() string
	// Run serves until ctx ends, then releases what it holds and returns
	// nil; an error means it failed (and the agent stops).
	Run(ctx context.Context) error
}

// Readier is a Subsystem that the next one must wait for: Ready is closed
// once it serves (its sockets are bound).
type Readier interface {
	Ready() <-chan struct{}
}

// Applier is a Subsystem that takes each new Snapshot. Apply gets a
// snapshot that is already valid as a whole and must not fail.
type Applier interface {
	Apply(*Snapshot)
}

// ReloadWatcher is a Subsystem told just before a reload swaps in new
// destination sets (before any Applier), so that it can tell its work
// started before the reload from what follows: probing ignores the
// results of probes issued before (kamailio PR #2959).
type ReloadWatcher interface {
	BeforeReload()
}
