package agent

import (
	"time"

	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"golang.org/x/sync/errgroup"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/rpc"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// subsystems builds the subsystems of cfg in start order: slow path, fast
// path (when xdp.mode is not off), dialog tracking and its limits (when
// dialogs.enabled), call load (when ds_hash_size > 0),
// dispatcher probing (when ds_ping_interval is set), keepalive, control. It starts nothing.
func (a *Agent) subsystems(ctx context.Context, cfg *config.Config) ([]Subsystem, error) {
	listeners := proxyListeners(cfg)
	// Probing sends from the slow path's sockets and gets the replies to
	// its probes from them: the two are built around each other.
	var pr *probing
	var ka *keepaliveSub
	dl, err := newDialogs(cfg, a.log)
	if err != nil {
		return nil, err
	}
	lm, err := newLimits(cfg, dl, a.log)
	if err != nil {
		return nil, err
	}
	var cl *callLoad
	if cfg.Dispatcher.HashSize > 0 {
		cl = &callLoad{l: a.d.EnableCallLoad(cfg.Dispatcher.CallLoadConfig(), nil), log: a.log.With("component", "call load")}
	}
	var loads *dispatch.CallLoad
	if cl != nil {
		loads = cl.l
	}
	fd := newFeed(cfg, a.d, dl, loads)
	var observe func(sipproxy.Observed)
	var admit func(sipproxy.Observed) sipproxy.Refusal
	if fd != nil {
		observe = fd.observeSlow
	}
	if lm != nil {
		admit = lm.admit
	}
	px, err := sipproxy.New(sipproxy.Config{
		Listeners:           listeners,
		Dispatcher:          a.d,
		FailoverTimeout:     cfg.Failover.Timeout,
		MaxTransactions:     cfg.Failover.MaxTransactions,
		ReceiveBuffer:       cfg.UDP.ReceiveBuffer,
		MaxTransactionBytes: int64(cfg.Failover.MaxTransactionBytes),
		Logger:              a.log,
		Observe:             observe,
		Admit:               admit,
		LocalReply: func(data []byte, src netip.AddrPort) bool {
			// Each engine takes only replies with its branch prefix.
			return pr != nil && pr.HandleReply(data, src) || ka != nil && ka.HandleReply(data, src)
		},
	})
	if err != nil {
		return nil, err
	}
	subs := []Subsystem{slowPath{px}}

	var fp *dataplane.FastPath
	if fc := fastPathConfig(cfg, a.d, a.log); fc != nil {
		if fd != nil {
			fc.Events, fc.EventCopies = fd.observeFast, fd.wantsCopies()
			fd.holdSlow(time.Now)
		}
		if loads != nil {
			fc.CallLoads = loads.Load
		}
		fp = dataplane.NewFastPath(*fc)
		if fd != nil && loads != nil {
			fd.placedSlow = fp.RecordCall
		}
		subs = append(subs, fastPath{fp})
		if lm != nil {
			lm.fast = fp
		}
	}
	var dlgs rpc.Dialogs // nil interface when tracking is off
	var dlgLimits func() rpc.DlgsLimits
	if dl != nil {
		subs = append(subs, dl, lm)
		dlgs, dlgLimits = dl.t, lm.stats
		lm.rebuild()
	}
	if cl != nil {
		subs = append(subs, cl)
	}

	// After the slow path (a Readier): probes go out once its sockets are
	// bound.
	if pr, err = newProbing(cfg, a.d, px, listeners, a.log); err != nil {
		return nil, err
	}
	if pr != nil {
		pr.events = a.events
		subs = append(subs, pr)
	}
	if ka, err = newKeepalive(cfg, px, listeners, a.events, a.log); err != nil {
		return nil, err
	}
	subs = append(subs, ka)

	ctl, err := a.newControl(ctx, cfg, px, fp)
	if err != nil {
		return nil, err
	}
	if pr != nil {
		ctl.dispatcher.SetNotProbed(pr.NotProbed)
	}
	rpc.RegisterKeepalive(ctl.srv, ka.mod)
	rpc.RegisterDialogs(ctl.srv, dlgs)
	rpc.RegisterDialogLimits(ctl.srv, dlgLimits)
	registerProbeStats(ctl.srv, pr, ka)
	return append(subs, ctl), nil
}

// proxyListeners turns the config's listeners and rules into the slow
// path's listeners.
func proxyListeners(cfg *config.Config) []sipproxy.Listener {
	out := make([]sipproxy.Listener, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		r, _ := cfg.RuleFor(l.Name)
		out = append(out, sipproxy.Listener{
			Name:      l.Name,
			Addr:      l.Addr,
			Advertise: l.Advertise,
			Rule: sipproxy.Rule{
				SetID:             r.Set,
				Alg:               dispatch.Alg(r.Algorithm),
				Limit:             r.Limit,
				RecordRoute:       r.RecordRoute,
				Failover:          r.Mode == config.ModeFailover,
				HashPVar:          cfg.Dispatcher.HashPVar,
				NoDestinationCode: cfg.Dispatcher.NoDestinationCode,
			},
		})
	}
	return out
}

// fastPathConfig is the XDP fast path for cfg, or nil when xdp.mode is off.
func fastPathConfig(cfg *config.Config, d *dispatch.Dispatcher, logger *slog.Logger) *dataplane.FastPathConfig {
	if cfg.XDP.Mode == "" || cfg.XDP.Mode == "off" {
		return nil
	}
	fc := &dataplane.FastPathConfig{
		Interfaces: cfg.XDP.Interfaces,
		Mode:       dataplane.Mode(cfg.XDP.Mode),
		Required:   cfg.XDP.Mode != "auto",
		Dispatcher: d,
		Logger:     logger,
	}
	for _, l := range cfg.Listeners {
		r, _ := cfg.RuleFor(l.Name)
		fc.Names = append(fc.Names, l.Name)
		fc.Listeners = append(fc.Listeners, dataplane.Listener{
			Addr: l.Addr,
			ADV:  l.Advertise,
			Rule: dataplane.Rule{
				SetID:       r.Set,
				Alg:         r.Algorithm,
				RecordRoute: r.RecordRoute,
				Failover:    r.Mode == config.ModeFailover,
			},
		})
	}
	return fc
}

// slowPath is the user-space forwarder (sipproxy).
type slowPath struct{ px *sipproxy.Proxy }

func (slowPath) Name() string                    { return "slow path" }
func (s slowPath) Run(ctx context.Context) error { return s.px.Run(ctx) }
func (s slowPath) Ready() <-chan struct{}        { return s.px.Ready() }

// fastPath is the XDP program (dataplane); it follows the dispatcher's
// snapshots by subscription.
type fastPath struct{ fp *dataplane.FastPath }

func (fastPath) Name() string                    { return "fast path" }
func (f fastPath) Run(ctx context.Context) error { return f.fp.Run(ctx) }

// control is the JSON-RPC server on the unix socket and, when configured,
// on loopback HTTP.
type control struct {
	srv        *rpc.Server
	dispatcher *rpc.DispatcherMethods
	socket     string
	http       string
	auth       rpc.HTTPAuth
}

func (a *Agent) newControl(ctx context.Context, cfg *config.Config, px *sipproxy.Proxy, fp *dataplane.FastPath) (*control, error) {
	c := &control{srv: rpc.New(a.log), socket: cfg.Control.Socket, http: cfg.Control.HTTP}
	if c.http != "" {
		if cfg.Control.HTTPAuth == config.HTTPAuthNone {
			c.auth.None = true
		} else {
			tok, err := cfg.ReadHTTPToken(ctx)
			if err != nil {
				return nil, err
			}
			c.auth.Token = tok
		}
	}
	rpc.RegisterCore(c.srv, a.opts.Version, a.started)
	a.registerEvents(c.srv)
	c.dispatcher = rpc.RegisterDispatcher(c.srv, a.d, func(ctx context.Context) error {
		// Like Kamailio's, an RPC reload re-reads the list only.
		err := a.Reload(ctx, false)
		if err != nil {
			a.log.Error("dispatcher reload failed; the old sets stay", "error", err)
		}
		return err
	}, cfg.Dispatcher.ReloadDelta)
	c.srv.Register("sipproxy.stats", func(context.Context, rpc.Params) (any, error) {
		return px.Stats().Snapshot(), nil
	})
	c.srv.Register("fastpath.stats", func(context.Context, rpc.Params) (any, error) {
		if fp == nil {
			return dataplane.FastPathStats{Mode: "off", Events: map[string]uint64{}, EventsLost: map[string]uint64{}}, nil
		}
		return fp.Stats()
	})
	a.log.Info("control socket", "path", c.socket, "http", c.http)
	return c, nil
}

func (*control) Name() string { return "control" }

func (c *control) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	// Serve until ctx ends even with no endpoint configured: a subsystem
	// that returns early is taken for one that failed.
	g.Go(func() error { <-ctx.Done(); return nil })
	if c.socket != "" {
		g.Go(func() error { return c.srv.ServeUnix(ctx, c.socket) })
	}
	if c.http != "" {
		g.Go(func() error { return c.srv.ListenHTTP(ctx, c.http, c.auth) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

// Apply takes the new reload_delta.
func (c *control) Apply(s *Snapshot) { c.dispatcher.SetReloadDelta(s.Config.Dispatcher.ReloadDelta) }
