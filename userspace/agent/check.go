package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/sipedge/sipedge/userspace/config"
)

// Check loads the config, builds the destination sets and reads the HTTP
// token exactly as Run does, and starts nothing. Every error names its file and line.
func Check(ctx context.Context, configPath string, out io.Writer) error {
	cfg, err := loadConfig(ctx, configPath)
	if err != nil {
		return err
	}
	snap, err := buildSets(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Control.HTTP != "" && cfg.Control.HTTPAuth == config.HTTPAuthToken {
		if _, err := cfg.ReadHTTPToken(ctx); err != nil {
			return err
		}
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
