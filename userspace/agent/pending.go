package agent

import "github.com/sipedge/sipedge/userspace/config"

// pendingFeatures names what cfg asks for that this build accepts but does
// not do yet, one line each, so that an operator who sets it hears so at
// start and from `sipedge check` instead of trusting it silently. An entry
// leaves this list when its feature lands.
func pendingFeatures(cfg *config.Config) []string {
	var out []string
	if cfg.Dispatcher.PingInterval > 0 {
		out = append(out, "dispatcher.ds_ping_interval is set, but OPTIONS probing is not implemented yet: "+
			"no probe is sent, and destinations change state only through dispatcher.set_state")
	}
	return out
}
