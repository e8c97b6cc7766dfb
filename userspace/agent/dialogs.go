package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"unsafe"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dialogattr"
)

// dialogs is dialog tracking (package dialog, Kamailio's dlgs). The feed
// (feed.go) hands it the messages of both paths; its Run expires records;
// Apply takes the live keys.
type dialogs struct {
	log   *slog.Logger
	t     *dialog.Tracker
	attrs atomic.Pointer[dialogattr.Attrs]
	// evalErrors counts INVITEs whose templates met an unparsable header
	// (the record is kept with what did expand).
	evalErrors atomic.Uint64
	// limits are told each batch the tracker took (limits.go); nil
	// without dialogs.limits wiring.
	limits *limits
}

// newDialogs builds dialog tracking, or returns nil when dialogs.enabled is
// false.
func newDialogs(cfg *config.Config, logger *slog.Logger) (*dialogs, error) {
	if !cfg.Dialogs.Enabled {
		return nil, nil
	}
	attrs, err := dialogattr.New(cfg.Dialogs.DialogAttrs())
	if err != nil {
		return nil, fmt.Errorf("dialogs: %w", err)
	}
	g := &dialogs{
		log: logger.With("component", "dialogs"),
		t:   dialog.New(trackerConfig(cfg.Dialogs)),
	}
	g.attrs.Store(attrs)
	return g, nil
}

func trackerConfig(c config.Dialogs) dialog.Config {
	return dialog.Config{
		InitLifetime:   c.InitLifetime,
		ActiveLifetime: c.ActiveLifetime,
		FinishLifetime: c.FinishLifetime,
		TimerInterval:  c.TimerInterval,
		MaxRecords:     c.MaxRecords,
	}
}

func (*dialogs) Name() string { return "dialogs" }

// Run expires records every timer_interval until ctx ends.
func (g *dialogs) Run(ctx context.Context) error { return g.t.Run(ctx) }

// Apply takes the live keys: lifetimes, interval, cap, templates and tag
// rules. The snapshot was validated as a whole, so the rules compile; the
// error branch keeps the old ones should that ever not hold.
func (g *dialogs) Apply(s *Snapshot) {
	g.t.SetConfig(trackerConfig(s.Config.Dialogs))
	attrs, err := dialogattr.New(s.Config.Dialogs.DialogAttrs())
	if err != nil {
		g.log.Error("dialogs reload: templates or tag rules kept as they were", "error", err)
		return
	}
	g.attrs.Store(attrs)
}

// fields fills an INVITE's src, dst, data and tags from the templates and
// tag rules.
func (g *dialogs) fields(m *dialog.Message, in *dialogattr.Input, res *dialogattr.Result) {
	if err := g.attrs.Load().Eval(in, res); err != nil {
		if g.evalErrors.Add(1) == 1 {
			g.log.Warn("dialog fields: a template met an unparsable header; the dialog keeps what did expand (logged once)", "error", err)
		}
	}
	m.Src, m.Dst, m.Data = res.Src, res.Dst, res.Data
	m.AddTags, m.RemoveTags = res.Add, res.Remove
	m.Source, m.Set = in.Src.Addr().Unmap(), in.Set
}

// view is b as a string without a copy. Safe here because the tracker
// copies every string it keeps (dialog.Message) and b outlives the call.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func slowMethod(b []byte) dialog.Method {
	switch string(b) {
	case "INVITE":
		return dialog.Invite
	case "ACK":
		return dialog.Ack
	case "BYE":
		return dialog.Bye
	case "CANCEL":
		return dialog.Cancel
	}
	return dialog.OtherMethod
}

func fastMethod(m dataplane.Method) dialog.Method {
	switch m {
	case dataplane.MethodInvite:
		return dialog.Invite
	case dataplane.MethodAck:
		return dialog.Ack
	case dataplane.MethodBye:
		return dialog.Bye
	case dataplane.MethodCancel:
		return dialog.Cancel
	}
	return dialog.OtherMethod
}
