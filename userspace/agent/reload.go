package agent

import (
	"context"
	"fmt"
)

// Reload builds a new Snapshot and applies it, all or nothing. With
// rereadConfig (SIGHUP) it re-reads the config file too and takes its live
// keys (config.LiveKeys), logging each restart-only key that changed, which
// keeps its running value; without (RPC dispatcher.reload) it re-reads the
// dispatcher list only. The embedded default config is never re-read. On
// any error nothing changes and the error says why, FILE:LINE first.
// Reloads run one at a time; waiting for another ends with ctx.
func (a *Agent) Reload(ctx context.Context, rereadConfig bool) error {
	select {
	case a.reloading <- struct{}{}:
		defer func() { <-a.reloading }()
	case <-ctx.Done():
		return fmt.Errorf("reload: %w", ctx.Err())
	}
	cur := a.cur.Load()
	cfg := cur.Config
	if rereadConfig && a.opts.ConfigPath != "" {
		next, err := loadConfig(ctx, a.opts.ConfigPath)
		if err != nil {
			return err
		}
		var restart []string
		cfg, restart = cur.Config.Reloaded(next)
		for _, key := range restart {
			a.log.Warn("reload: this key changed but only a restart applies it; the running value stays", "key", key, "config", cfg.File)
		}
	}
	sets, err := buildSets(ctx, cfg)
	if err != nil {
		return err
	}
	a.apply(&Snapshot{Config: cfg, Sets: sets})
	a.log.Info("reloaded", "config", rereadConfig && a.opts.ConfigPath != "", "list", cfg.ListPath(), "sets", len(sets.Sets()))
	return nil
}

// apply swaps in s: the destination sets, the log level, then every
// Applier. Nothing here can fail: s was validated as a whole.
func (a *Agent) apply(s *Snapshot) {
	for _, sub := range a.subs {
		if w, ok := sub.(ReloadWatcher); ok {
			w.BeforeReload()
		}
	}
	a.d.Replace(s.Sets)
	a.level.Set(logLevel(s.Config.Log.Level))
	for _, sub := range a.subs {
		if ap, ok := sub.(Applier); ok {
			ap.Apply(s)
		}
	}
	a.cur.Store(s)
}
