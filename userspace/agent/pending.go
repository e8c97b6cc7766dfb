package agent

import "github.com/sipedge/sipedge/userspace/config"

// pendingFeatures names what cfg asks for that this build accepts but does
// not do yet, one line each, so that an operator who sets it hears so at
// start and from `sipedge check` instead of trusting it silently. An entry
// leaves this list when its feature lands; none is pending today
// (dispatcher probing, ds_ping_interval, was the last).
func pendingFeatures(*config.Config) []string { return nil }
