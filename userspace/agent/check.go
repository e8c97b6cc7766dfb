package agent

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
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
	for _, w := range latencyAlgWarnings(cfg) {
		fmt.Fprintf(out, "%s: warning: %s\n", name, w)
	}
	for _, w := range notProbedWarnings(cfg, snap) {
		fmt.Fprintln(out, w)
	}
	fmt.Fprintf(out, "%s: ok: %d listeners, %d sets, %d destinations\n", name, len(cfg.Listeners), len(snap.Sets()), dests)
	return nil
}

// latencyAlgWarnings names the rules using algorithm 13 without the
// latency statistics it ranks by: the config is valid (as in Kamailio),
// but the rule is then round robin by priority.
func latencyAlgWarnings(cfg *config.Config) []string {
	dc := cfg.Dispatcher
	mode := dispatch.ProbingMode(dc.ProbingMode)
	if dc.PingInterval > 0 && dc.PingLatencyStats && (mode == dispatch.ProbeAll || mode == dispatch.ProbeOnlyFlagged) {
		return nil
	}
	var out []string
	for i, r := range cfg.Rules {
		if dispatch.Alg(r.Algorithm) == dispatch.AlgLatency {
			out = append(out, fmt.Sprintf("rules[%d].algorithm: 13 ranks destinations by probe latency, which needs ds_ping_interval > 0, ds_ping_latency_stats: 1 and ds_probing_mode 1 or 3 (so destinations keep being measured); without them it is round robin by priority", i))
		}
	}
	return out
}

// notProbedWarnings lists, with their list file lines, the destinations
// probing would leave out although the probing mode and their flags ask
// for them (kamailio#4212), as the running agent reports them
// (msg="destination not probed", dispatcher.list NOT_PROBED). They are
// warnings: such a destination still gets calls, it is just never taken
// out when it dies. Nothing when ds_ping_interval is 0.
func notProbedWarnings(cfg *config.Config, snap *dispatch.Snapshot) []string {
	dc := cfg.Dispatcher
	if dc.PingInterval <= 0 {
		return nil
	}
	params := dispatch.ProbeParams{Mode: dispatch.ProbingMode(dc.ProbingMode),
		ProbingThreshold: dc.ProbingThreshold, InactiveThreshold: dc.InactiveThreshold}
	// The slow path's sent-by is only needed to send: any listener will do.
	socks := probeSockets{listeners: proxyListeners(cfg), sentBy: func(l netip.AddrPort) (string, bool) { return l.String(), true }}
	_, problems := probeTargets(snap, params, socks)
	if len(problems) == 0 {
		return nil
	}
	source := map[string]string{} // "SET URI" -> FILE:LINE
	for _, e := range snap.Entries() {
		for _, u := range []string{e.URI, "sip:" + e.URI} {
			k := fmt.Sprintf("%d %s", e.SetID, u)
			if _, ok := source[k]; !ok {
				source[k] = e.Source
			}
		}
	}
	var out []string
	for _, set := range snap.Sets() {
		for i := range set.Dests {
			dst := &set.Dests[i]
			msg, ok := problems[fmt.Sprintf("%d/%s", set.ID, dst.IUID)]
			if !ok {
				continue
			}
			src := source[fmt.Sprintf("%d %s", set.ID, dst.URI)]
			if src == "" {
				src = "dispatcher list"
			}
			out = append(out, fmt.Sprintf("%s: warning: set %d: not probed: %s", src, set.ID, msg))
		}
	}
	return out
}
