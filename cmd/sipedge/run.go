package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sipedge/sipedge/examples"
	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/rpc"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// loadConfig reads the config at path, or the embedded default when path is
// empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.LoadFS(examples.FS, "sipedge.yaml")
	}
	return config.Load(path)
}

// buildSets reads the dispatcher list and builds the destination sets, then
// checks that every rule's set exists.
func buildSets(ctx context.Context, cfg *config.Config) (*dispatch.Snapshot, error) {
	entries, err := cfg.ReadDispatcherList()
	if err != nil {
		return nil, err
	}
	snap, err := dispatch.Build(ctx, entries, dispatchOptions(cfg))
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckSets(snap.Exists); err != nil {
		return nil, err
	}
	return snap, nil
}

func dispatchOptions(cfg *config.Config) dispatch.Options {
	return dispatch.Options{
		HashUserOnly: cfg.Dispatcher.Flags&1 != 0,
		UseDefault:   cfg.Dispatcher.UseDefault,
	}
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
				Failover:          r.Mode == "failover",
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

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// run builds the parts in dependency order (config, sets, slow path,
// control) and runs them until ctx ends or one fails; a failing part stops
// the others through the errgroup's context.
func run(ctx context.Context, configPath string, logw io.Writer) error {
	started := time.Now()
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, logw)
	src := cfg.File
	if configPath == "" {
		src = "embedded default (examples/sipedge.yaml)"
	}
	logger.Info("starting", "version", version, "config", src, "pid", os.Getpid())

	snap, err := buildSets(ctx, cfg)
	if err != nil {
		return err
	}
	d := dispatch.New(snap)

	px, err := sipproxy.New(sipproxy.Config{
		Listeners:       proxyListeners(cfg),
		Dispatcher:      d,
		FailoverTimeout: cfg.Failover.Timeout,
		MaxTransactions: cfg.Failover.MaxTransactions,
		ReceiveBuffer:   cfg.UDP.ReceiveBuffer,
		Logger:          logger,
	})
	if err != nil {
		return err
	}

	reload := func(ctx context.Context) error {
		// A reload re-reads only the dispatcher list, like Kamailio's.
		snap, err := buildSets(ctx, cfg)
		if err != nil {
			logger.Error("dispatcher reload failed; the old sets stay", "error", err)
			return err
		}
		d.Replace(snap)
		logger.Info("dispatcher reloaded", "sets", len(snap.Sets()))
		return nil
	}

	var fp *dataplane.FastPath
	if fc := fastPathConfig(cfg, d, logger); fc != nil {
		fp = dataplane.NewFastPath(*fc)
	}

	srv := rpc.New(logger)
	rpc.RegisterCore(srv, version, started)
	rpc.RegisterDispatcher(srv, d, reload, cfg.Dispatcher.ReloadDelta)
	srv.Register("sipproxy.stats", func(context.Context, rpc.Params) (any, error) {
		return px.Stats().Snapshot(), nil
	})

	srv.Register("fastpath.stats", func(context.Context, rpc.Params) (any, error) {
		if fp == nil {
			return dataplane.FastPathStats{Mode: "off", Events: map[string]uint64{}}, nil
		}
		return fp.Stats()
	})

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return px.Run(ctx) })
	if fp != nil {
		// The fast path starts once the listener sockets exist, so that what
		// it passes up always finds the slow path ready.
		g.Go(func() error {
			select {
			case <-px.Ready():
			case <-ctx.Done():
				return nil
			}
			return fp.Run(ctx)
		})
	}
	g.Go(func() error { return srv.ServeUnix(ctx, cfg.Control.Socket) })
	if cfg.Control.HTTP != "" {
		g.Go(func() error { return srv.ListenHTTP(ctx, cfg.Control.HTTP) })
	}
	logger.Info("control socket", "path", cfg.Control.Socket, "http", cfg.Control.HTTP)
	err = g.Wait()
	logger.Info("stopped", "error", err)
	return err
}
