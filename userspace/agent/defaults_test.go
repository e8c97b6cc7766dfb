package agent

import (
	"testing"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// TestDefaultsAgree: the slow path's (and the event hook's) zero-value defaults (used when a
// Config leaves a field 0) and the config's documented defaults are the
// same numbers. They live in both packages because config must not import
// sipproxy (and sipgo with it); this is what keeps them from drifting.
func TestDefaultsAgree(t *testing.T) {
	for _, c := range []struct {
		name          string
		config, proxy int64
	}{
		{"failover.max_transactions", config.DefaultMaxTransactions, sipproxy.DefaultMaxTransactions},
		{"failover.max_transaction_bytes", config.DefaultMaxTransactionBytes, sipproxy.DefaultMaxTransactionBytes},
		{"udp.receive_buffer", config.DefaultReceiveBuffer, sipproxy.DefaultReceiveBuffer},
		{"events.hook_timeout", int64(config.DefaultHookTimeout), int64(events.DefaultHookTimeout)},
	} {
		if c.config != c.proxy {
			t.Errorf("%s: config default %d, sipproxy default %d", c.name, c.config, c.proxy)
		}
	}
}
