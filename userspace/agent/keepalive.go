package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/keepalive"
	"github.com/sipedge/sipedge/userspace/probe"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// keepaliveBranchPrefix marks keepalive's probes, so that the slow path's
// LocalReply hook hands each reply to the engine that sent the probe
// (dispatcher probing keeps probe.BranchPrefix).
const keepaliveBranchPrefix = "z9hG4bKka"

// keepaliveSub is the keepalive module (userspace/keepalive) with a probe
// engine of its own, the package dispatcher probing uses, sending over the
// slow path's sockets. Two engines rather than one: they share nothing
// mutable (targets, sequence numbers, statistics), each reply reaches
// its engine by branch prefix, and probing.go stays as it is.
//
// It always runs, so keepalive.add works without a configured
// destination; with none it holds an idle engine.
type keepaliveSub struct {
	log   *slog.Logger
	mod   *keepalive.Module
	eng   *probe.Engine
	socks probeSockets

	results resultQueue
}

// keepaliveParams maps the config's keepalive section.
func keepaliveParams(c config.Keepalive) keepalive.Params {
	return keepalive.Params{
		Destinations:  c.Destinations,
		Interval:      c.PingInterval,
		DeleteCounter: c.DeleteCounter,
		From:          c.PingFrom,
	}
}

func newKeepalive(cfg *config.Config, px *sipproxy.Proxy, listeners []sipproxy.Listener, bus *events.Bus, logger *slog.Logger) (*keepaliveSub, error) {
	k := &keepaliveSub{
		log:   logger.With("component", "keepalive"),
		socks: probeSockets{listeners: listeners, sentBy: px.SentBy},
	}
	k.results.init()
	var err error
	k.eng, err = probe.New(probe.Config{
		From:         cfg.Keepalive.PingFrom,
		Interval:     cfg.Keepalive.PingInterval,
		BranchPrefix: keepaliveBranchPrefix,
		OnResult:     k.results.put,
	}, proxySender{px})
	if err != nil {
		return nil, fmt.Errorf("keepalive: %w", err)
	}
	k.mod, err = keepalive.New(keepalive.Options{Params: keepaliveParams(cfg.Keepalive), Prober: k, Log: logger, Publish: bus.Publish})
	if err != nil {
		return nil, fmt.Errorf("keepalive: %w", err)
	}
	return k, nil
}

// Set is keepalive.Prober: probe key from the first listener of the
// address's family.
func (k *keepaliveSub) Set(key string, p keepalive.Probe) error {
	local, err := k.socks.local(dispatch.Attrs{}, p.Addr)
	if err != nil {
		return err
	}
	sentBy, ok := k.socks.sentBy(local)
	if !ok {
		return fmt.Errorf("no listener at %s", local)
	}
	err = k.eng.Add(key, probe.Target{URI: p.URI, Addr: p.Addr, Local: local, SentBy: sentBy, From: p.From, Interval: p.Interval})
	if err == nil && p.First {
		k.eng.ProbeNow(key) // Kamailio's first ping goes 500 ms after the add
	}
	return err
}

// Remove is keepalive.Prober.
func (k *keepaliveSub) Remove(key string) { k.eng.Remove(key) }

// HandleReply is (part of) the slow path's LocalReply hook.
func (k *keepaliveSub) HandleReply(data []byte, src netip.AddrPort) bool {
	return k.eng.HandleResponse(data, src)
}

func (*keepaliveSub) Name() string { return "keepalive" }

// Run probes, resolves host names and applies results until ctx ends.
func (k *keepaliveSub) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return k.eng.Run(ctx) })
	g.Go(func() error { return k.mod.Run(ctx) })
	g.Go(func() error {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case r := <-k.results.ch:
				code, _ := classify(r, config.ReplyCodes{}, true) // 408 for no reply, 500 not sent
				reason := ""
				if r.Err != nil {
					reason = r.Err.Error()
				}
				k.mod.Result(r.Key, r.Seq, code, reason)
			case <-tick.C:
				k.results.reportLost(k.log, "keepalive probe results lost: the queue was full")
			}
		}
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("keepalive: %w", err)
	}
	return nil
}

// Apply takes the reloaded keepalive section (every key is live).
func (k *keepaliveSub) Apply(s *Snapshot) {
	if err := k.mod.Configure(keepaliveParams(s.Config.Keepalive)); err != nil {
		k.log.Error("keepalive reload not applied", "error", err)
	}
}
