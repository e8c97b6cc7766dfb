package agent

import (
	"context"
	"log/slog"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// callLoad runs the call-load table's timer: expiry and the audit of the
// loads, whose corrections it logs. Apply takes the live keys.
type callLoad struct {
	l   *dispatch.CallLoad
	log *slog.Logger
}

func (*callLoad) Name() string { return "call load" }

func (c *callLoad) Run(ctx context.Context) error {
	return c.l.Run(ctx, func(fixed uint64) {
		c.log.Warn("call load: the audit corrected loads that had drifted from the calls of the table", "calls", fixed)
	})
}

// Apply takes ds_hash_expire, ds_hash_initexpire, ds_hash_check_interval.
func (c *callLoad) Apply(s *Snapshot) { c.l.SetConfig(s.Config.Dispatcher.CallLoadConfig()) }
