package proc

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

func TestParseProcAddr(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     netip.AddrPort
	}{
		{"loopback", "0100007F:13C4", netip.MustParseAddrPort("127.0.0.1:5060")},
		{"wildcard", "00000000:22B8", netip.MustParseAddrPort("0.0.0.0:8888")},
		{"10.42.0.1", "01002A0A:13C4", netip.MustParseAddrPort("10.42.0.1:5060")},
		{"ipv6 loopback", "00000000000000000000000001000000:13C4", netip.MustParseAddrPort("[::1]:5060")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcAddr(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("parseProcAddr(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFreeUDPPortAndWaitUDP(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	seen := map[uint16]bool{}
	for range 20 {
		p := FreeUDPPort(t, lo)
		if seen[p] || p < 10000 || int(p) >= ephemeralLow() {
			t.Fatalf("FreeUDPPort gave %d (seen before: %t, ephemeral from %d)", p, seen[p], ephemeralLow())
		}
		seen[p] = true
	}
	addr := netip.AddrPortFrom(lo, FreeUDPPort(t, lo))
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The socket is ours, not sleep's; for this process it is bound.
	p := Start(t, "sleep", []string{"sleep", "30"}, Options{})
	if ok, err := UDPBound(p.Pid(), addr); err != nil || ok {
		t.Errorf("UDPBound(sleep, %v) = %t, %v; want false: sleep holds no socket", addr, ok, err)
	}
	if ok, err := UDPBound(os.Getpid(), addr); err != nil || !ok {
		t.Errorf("UDPBound(self, %v) = %t, %v; want true", addr, ok, err)
	}
	if code := p.Stop(); code != 128+15 {
		t.Errorf("sleep stopped with SIGTERM: exit code %d, want %d", code, 128+15)
	}
	// A process that exits makes WaitUDP fail at once.
	q := Start(t, "true", []string{"true"}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.WaitUDP(ctx, netip.AddrPortFrom(lo, 9)); err == nil {
		t.Error("WaitUDP succeeded for a process that exited")
	}
}
