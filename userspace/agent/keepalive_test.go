package agent

import (
	"testing"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/keepalive"
)

// TestKeepaliveDefaultsAgree: the keepalive section's defaults in config
// and the module's own (used when a field is zero) are the same; config
// must not import keepalive, so they live in both.
func TestKeepaliveDefaultsAgree(t *testing.T) {
	d := config.Defaults().Keepalive
	if d.PingInterval != keepalive.DefaultInterval || d.DeleteCounter != keepalive.DefaultDeleteCounter ||
		d.PingFrom != keepalive.DefaultFrom || config.MinKeepaliveInterval != keepalive.MinInterval {
		t.Errorf("config defaults %+v (min interval %v), keepalive's %v %d %q (min %v)", d, config.MinKeepaliveInterval,
			keepalive.DefaultInterval, keepalive.DefaultDeleteCounter, keepalive.DefaultFrom, keepalive.MinInterval)
	}
}
