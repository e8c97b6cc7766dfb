package config

import (
	"strings"
	"time"
)

// MinKeepaliveInterval is the shortest keepalive.ping_interval (the probe
// scheduler's tick is 5 ms).
const MinKeepaliveInterval = 10 * time.Millisecond

// keepalive checks the keepalive section. The module parses each URI
// again when it adds it (userspace/keepalive); what is checked here is
// what gets an error with its line: the shape, and what cannot be probed
// over UDP.
func (v *validator) keepalive() {
	k := v.c.Keepalive
	const p = "keepalive."
	seen := map[string]bool{}
	for _, d := range k.Destinations {
		uri := d
		if !strings.HasPrefix(strings.ToLower(uri), "sip:") && !strings.HasPrefix(strings.ToLower(uri), "sips:") {
			uri = "sip:" + uri
		}
		lower := strings.ToLower(uri)
		switch err := checkSIPURI(uri); {
		case err != nil:
			v.check(p+"destination", 0, "%v", err)
		case strings.HasPrefix(lower, "sips:"):
			v.check(p+"destination", 0, "%q: sips (TLS) cannot be probed: probes go over UDP", d)
		case strings.Contains(lower, ";transport=") && !strings.Contains(lower, ";transport=udp"):
			v.check(p+"destination", 0, "%q: only UDP destinations can be probed", d)
		case seen[lower]:
			v.check(p+"destination", 0, "%q is listed twice", d)
		}
		seen[lower] = true
	}
	if k.PingInterval < MinKeepaliveInterval {
		v.check(p+"ping_interval", 0, "%v is below %v", k.PingInterval, MinKeepaliveInterval)
	}
	if k.DeleteCounter < 0 {
		v.check(p+"delete_counter", 0, "want 0 (never) or more, got %d", k.DeleteCounter)
	}
	if err := checkSIPURI(k.PingFrom); err != nil {
		v.check(p+"ping_from", 0, "%v", err)
	}
}
