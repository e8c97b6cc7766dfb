package agent

import (
	"context"

	"github.com/sipedge/sipedge/userspace/probe"
	"github.com/sipedge/sipedge/userspace/rpc"
)

// ProbeStats is the answer of probe.stats: each probe engine's counters,
// so that replies counted and ignored (malformed, from the wrong source,
// for an unknown branch, late) and results lost to a full queue are
// visible, not only counted.
type ProbeStats struct {
	// Dispatcher is dispatcher probing's engine; nil when
	// ds_ping_interval is 0.
	Dispatcher *EngineStats `json:"dispatcher"`
	// Keepalive is the keepalive module's engine.
	Keepalive *EngineStats `json:"keepalive"`
}

// EngineStats are one engine's counters and the results it produced that
// the agent lost because its queue was full.
type EngineStats struct {
	probe.Stats
	ResultsLost uint64 `json:"results_lost"`
}

// registerProbeStats adds probe.stats.
func registerProbeStats(srv *rpc.Server, pr *probing, ka *keepaliveSub) {
	srv.Register("probe.stats", func(context.Context, rpc.Params) (any, error) {
		var st ProbeStats
		if pr != nil {
			st.Dispatcher = &EngineStats{Stats: pr.eng.Stats(), ResultsLost: pr.results.dropped.Load()}
		}
		if ka != nil {
			st.Keepalive = &EngineStats{Stats: ka.eng.Stats(), ResultsLost: ka.results.dropped.Load()}
		}
		return st, nil
	})
}
