package agent

import (
	"context"
	"fmt"
	"io"
)

// Check loads the config and builds the destination sets exactly as Run
// does, and starts nothing. Every error names its file and line.
func Check(ctx context.Context, configPath string, out io.Writer) error {
	cfg, err := loadConfig(ctx, configPath)
	if err != nil {
		return err
	}
	snap, err := buildSets(ctx, cfg)
	if err != nil {
		return err
	}
	dests := 0
	for _, s := range snap.Sets() {
		dests += len(s.Dests)
	}
	name := cfg.File
	if configPath == "" {
		name = "embedded default config"
	}
	fmt.Fprintf(out, "%s: ok: %d listeners, %d sets, %d destinations\n", name, len(cfg.Listeners), len(snap.Sets()), dests)
	return nil
}
