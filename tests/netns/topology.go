package netns

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/sipedge/sipedge/userspace/testutil"
)

// Topology is an edge host between one client and N backends, each in its
// own namespace, joined to the edge by routed point-to-point veth links:
//
//	client ns                 edge ns                    backend ns k (1..N)
//	eth0 10.42.0.2/30 ─────── cl0  10.42.0.1/30
//	                          bek  10.42.k.1/30 ───────── eth0 10.42.k.2/30
//
// Link k (k = 0 for the client) uses 10.42.k.0/30; the edge end is .1 with
// MAC 02:5e:00:00:kk:01, the far end .2 with MAC 02:5e:00:00:kk:02 (kk in
// hex). The client and the backends route everything via their edge
// address (default route); the edge has only its connected routes and
// IPv4 forwarding on (bpf_fib_lookup needs it). Every link has permanent
// neighbour entries both ways, rp_filter is 0 everywhere (all, default and
// each interface), IPv6 is off in every namespace (no stray ND or MLD
// packets), and the far ends have TX checksum offload off
// (`ethtool -K eth0 tx off`): veth would otherwise hand the edge packets
// with partial checksums, which an XDP program would see as wrong.
//
// tests/README.md documents the same plan for the XDP tests.
type Topology struct {
	Edge     *NS
	Client   Host
	Backends []Host
}

// Host is the client or a backend: its namespace and its link to the edge.
type Host struct {
	NS       *NS
	Dev      string // "eth0"
	Addr     netip.Addr
	MAC      net.HardwareAddr
	EdgeDev  string // the edge's end: "cl0", "be1", "be2", ...
	EdgeAddr netip.Addr
	EdgeMAC  net.HardwareAddr
}

// LinkPlan returns the addresses and MACs of link k (0 = client).
func LinkPlan(k int) (edge, far netip.Prefix, edgeMAC, farMAC net.HardwareAddr) {
	edge = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 42, byte(k), 1}), 30)
	far = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 42, byte(k), 2}), 30)
	return edge, far, MAC(fmt.Sprintf("02:5e:00:00:%02x:01", k)), MAC(fmt.Sprintf("02:5e:00:00:%02x:02", k))
}

// NewTopology builds the topology with n backends (at most 250).
func NewTopology(t testing.TB, n int) *Topology {
	t.Helper()
	testutil.NeedRoot(t)
	testutil.NeedCommand(t, "ethtool", exec.LookPath)
	topo := &Topology{Edge: New(t, "edge")}
	prepare(t, topo.Edge)
	topo.Edge.Sysctl(t, "net.ipv4.ip_forward", "1")
	for k := 0; k <= n; k++ {
		short, edgeDev := fmt.Sprintf("be%d", k), fmt.Sprintf("be%d", k)
		if k == 0 {
			short, edgeDev = "client", "cl0"
		}
		h := Host{NS: New(t, short), Dev: "eth0", EdgeDev: edgeDev}
		prepare(t, h.NS)
		edge, far, edgeMAC, farMAC := LinkPlan(k)
		h.Addr, h.MAC, h.EdgeAddr, h.EdgeMAC = far.Addr(), farMAC, edge.Addr(), edgeMAC
		Veth(t, End{NS: topo.Edge, Dev: edgeDev, MAC: edgeMAC, Addr: edge}, End{NS: h.NS, Dev: h.Dev, MAC: farMAC, Addr: far})
		h.NS.Run(t, "ethtool", "-K", h.Dev, "tx", "off")
		h.NS.AddRoute(t, "default", h.EdgeAddr)
		if k == 0 {
			topo.Client = h
		} else {
			topo.Backends = append(topo.Backends, h)
		}
	}
	return topo
}

// prepare sets the namespace-wide knobs before any link exists, so new
// interfaces inherit them.
func prepare(t testing.TB, n *NS) {
	t.Helper()
	for _, kv := range [][2]string{
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	} {
		n.Sysctl(t, kv[0], kv[1])
	}
}

// ForXDP readies the far ends for frames the XDP program redirects into
// them: such a frame lands on the far end's rx ring, which exists only
// while the far end runs NAPI, so GRO is turned on there (xdp-notes.md §8;
// without it the redirect fails and the frame is lost). It returns the
// edge's interfaces, the ones to attach the program to.
func (tp *Topology) ForXDP(t testing.TB) []string {
	t.Helper()
	ifaces := []string{tp.Client.EdgeDev}
	tp.Client.NS.Run(t, "ethtool", "-K", tp.Client.Dev, "gro", "on")
	for _, b := range tp.Backends {
		b.NS.Run(t, "ethtool", "-K", b.Dev, "gro", "on")
		ifaces = append(ifaces, b.EdgeDev)
	}
	return ifaces
}

// ListenUDP opens a UDP socket on addr inside the namespace, closed when
// the test ends.
func (n *NS) ListenUDP(t testing.TB, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := n.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, n.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
