package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// TestTopology builds the edge topology with two backends and checks the
// plan README.md documents: addresses, MACs, static neighbours, routes,
// offloads, sysctls, and that UDP crosses each link (and, since the edge
// forwards, from the client to a backend) without ARP.
func TestTopology(t *testing.T) {
	testutil.NeedRoot(t)
	topo := NewTopology(t, 2)

	if got := topo.Edge.Run(t, "ip", "-br", "addr", "show", "dev", "be2"); !strings.Contains(got, "10.42.2.1/30") {
		t.Errorf("edge be2: %s", got)
	}
	if got := topo.Edge.Run(t, "ip", "-br", "link", "show", "dev", "cl0"); !strings.Contains(got, "02:5e:00:00:00:01") {
		t.Errorf("edge cl0: %s", got)
	}
	if got := topo.Edge.Run(t, "ip", "neigh", "show", "dev", "be1"); !strings.Contains(got, "10.42.1.2 lladdr 02:5e:00:00:01:02 PERMANENT") {
		t.Errorf("edge neighbours on be1: %s", got)
	}
	b1 := topo.Backends[0]
	if got := b1.NS.Run(t, "ip", "route", "show", "default"); !strings.Contains(got, "via 10.42.1.1 dev eth0") {
		t.Errorf("backend 1 default route: %s", got)
	}
	if got := b1.NS.Run(t, "ethtool", "-k", "eth0"); !strings.Contains(got, "tx-checksumming: off") {
		t.Errorf("backend 1 eth0 offloads: %s", got)
	}
	for _, n := range []*NS{topo.Edge, topo.Client.NS, b1.NS} {
		if got := strings.TrimSpace(n.Run(t, "sysctl", "-n", "net.ipv4.conf.all.rp_filter")); got != "0" {
			t.Errorf("%s rp_filter = %s", n.Name, got)
		}
	}

	// client → edge, edge → backend 1, client → backend 2 (forwarded).
	for _, tc := range []struct {
		name     string
		from, to *NS
		src, dst netip.Addr
	}{
		{"client to edge", topo.Client.NS, topo.Edge, topo.Client.Addr, topo.Client.EdgeAddr},
		{"edge to backend 1", topo.Edge, b1.NS, b1.EdgeAddr, b1.Addr},
		{"client to backend 2 via edge", topo.Client.NS, topo.Backends[1].NS, topo.Client.Addr, topo.Backends[1].Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := udpExchange(tc.from, tc.to, tc.src, tc.dst); err != nil {
				t.Error(err)
			}
		})
	}
}

// udpExchange sends one datagram from src in ns from to dst:9999 in ns to.
func udpExchange(from, to *NS, src, dst netip.Addr) error {
	var rc *net.UDPConn
	if err := to.Do(func() (err error) {
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9999)))
		return err
	}); err != nil {
		return err
	}
	defer rc.Close()
	var sc *net.UDPConn
	if err := from.Do(func() (err error) {
		sc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		return err
	}); err != nil {
		return err
	}
	defer sc.Close()
	if _, err := sc.WriteToUDPAddrPort([]byte("hello"), netip.AddrPortFrom(dst, 9999)); err != nil {
		return err
	}
	rc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, from4, err := rc.ReadFromUDPAddrPort(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "hello" || from4.Addr() != src {
		return errors.New("got " + string(buf[:n]) + " from " + from4.String())
	}
	return nil
}

// TestDoKeepsProcessesAlive: NS.Do leaves its OS thread usable, so a
// process started earlier (proc.Start sets Pdeathsig: SIGKILL when the
// thread that forked it ends) is not killed by a later Do.
func TestDoKeepsProcessesAlive(t *testing.T) {
	testutil.NeedRoot(t)
	n := New(t, "do")
	// Start a process, then enter the namespace, as a test does when it
	// starts the agent and then opens a socket in a namespace.
	var sleepers []*proc.Process
	for i := range 16 {
		sleepers = append(sleepers, proc.Start(t, fmt.Sprintf("sleep%d", i), []string{"sleep", "60"}, proc.Options{StopSignal: 9}))
		for range 4 {
			if err := n.Do(func() error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	for i, p := range sleepers {
		if p.Exited() {
			t.Errorf("sleeper %d died (exit %d) after NS.Do calls: its forking thread ended", i, p.ExitCode())
		}
	}
}
