package sipproxy

import (
	"net/netip"
	"testing"
)

// TestNextHop: the next-hop rule over two listeners, one of them on
// loopback (contract § Next hops taken from the message).
func TestNextHop(t *testing.T) {
	f, err := NewForwarder(fixtureDispatcher(t), []Listener{
		{Name: "edge", Addr: netip.MustParseAddrPort("192.0.2.10:5060")},
		{Name: "other", Addr: netip.MustParseAddrPort("198.51.100.1:5080")},
		{Name: "lo", Addr: netip.MustParseAddrPort("127.0.0.1:5060")},
		{Name: "v6", Addr: netip.MustParseAddrPort("[2001:db8::10]:5060")},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		on   int // index of the listener the message arrived on
		dst  string
		want nextHopKind
	}{
		{"ordinary", 0, "198.51.100.7:5060", nextHopOK},
		{"our IP, another port", 0, "192.0.2.10:5070", nextHopOK},
		{"unspecified", 0, "0.0.0.0:5060", nextHopUnroutable},
		{"limited broadcast", 0, "255.255.255.255:5060", nextHopUnroutable},
		{"multicast", 0, "224.0.0.1:5060", nextHopUnroutable},
		{"multicast, top of the range", 0, "239.255.255.255:5060", nextHopUnroutable},
		{"just below multicast", 0, "223.255.255.255:5060", nextHopOK},
		{"this listener", 0, "192.0.2.10:5060", nextHopLoop},
		{"another listener of ours", 0, "198.51.100.1:5080", nextHopLoop},
		{"loopback from a non-loopback listener", 0, "127.0.0.1:5070", nextHopLoop},
		{"loopback net from a non-loopback listener", 0, "127.9.9.9:5070", nextHopLoop},
		{"loopback on a loopback listener", 2, "127.0.0.1:5070", nextHopOK},
		{"the loopback listener itself", 2, "127.0.0.1:5060", nextHopLoop},
		{"v4-mapped loopback", 0, "[::ffff:127.0.0.1]:5070", nextHopLoop},
		{"v6 unspecified", 3, "[::]:5060", nextHopUnroutable},
		{"v6 multicast", 3, "[ff02::1]:5060", nextHopUnroutable},
		{"v6 loopback", 3, "[::1]:5060", nextHopLoop},
		{"v6 this listener", 3, "[2001:db8::10]:5060", nextHopLoop},
		{"v6 ordinary", 3, "[2001:db8::7]:5060", nextHopOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.nextHop(&f.listeners[tc.on], netip.MustParseAddrPort(tc.dst)); got != tc.want {
				t.Errorf("nextHop(%s) = %d, want %d", tc.dst, got, tc.want)
			}
		})
	}
}
