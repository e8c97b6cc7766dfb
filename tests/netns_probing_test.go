package tests

import (
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// TestNetnsXDPProbing: probing with the fast path on. Two backends in
// their namespaces answer OPTIONS (Go responders); the agent runs XDP
// native on every edge interface, alg 0, probing every 200 ms with
// thresholds 2 (mode 1). Probe replies cross the XDP program (a response
// whose only Via is ours: PASS_LOCAL_REPLY) to the slow path's socket.
// When backend 1 goes silent it goes inactive within threshold × interval
// + deadline (+ margin), and from then the fast path dispatches no
// INVITE to it (its packet counter in fastpath.stats stays, backend 2's
// grows by the calls sent) and it receives none; when it answers again it
// comes back and gets calls through the fast path again.
func TestNetnsXDPProbing(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommand(t, "nsenter", exec.LookPath)
	mnt := netns.NewMounts(t, netns.FreshBPFRoot)
	topo := netns.NewTopology(t, 2)
	ifaces := topo.ForXDP(t)
	var backends []*responder
	var dests []agent.Dest
	for _, b := range topo.Backends {
		addr := netip.AddrPortFrom(b.Addr, 5060)
		c := b.NS.ListenUDP(t, addr)
		backends = append(backends, serveResponder(t, c, 200))
		dests = append(dests, agent.Dest{Set: 1, URI: sipURI(addr)})
	}
	edge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5060)
	a := agent.Start(t, bins, agent.Config{
		Listeners:      []agent.Listener{{Name: "edge", Address: edge}},
		Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 0}},
		Dests:          dests,
		XDP:            &agent.XDP{Interfaces: ifaces, Mode: "native"},
		DispatcherKeys: probeKeys,
	}, agent.Options{Exec: mnt.Exec(topo.Edge)})
	waitAttached(t, a, 10*time.Second)

	clientAddr := netip.AddrPortFrom(topo.Client.Addr, 5060)
	cc := topo.Client.NS.ListenUDP(t, clientAddr)
	c := &rawClient{conn: cc, Addr: clientAddr, edge: edge}

	flaky := backends[0]
	uri := dests[0].URI
	waitFlags(t, a, uri, "AP", 5*time.Second)
	waitFlags(t, a, dests[1].URI, "AP", 5*time.Second)

	const n = 40
	// phase sends n INVITEs and returns the fast path's packets to each
	// backend and the INVITEs each received meanwhile.
	phase := func(name string) (fp [2]uint64, got [2]int) {
		t.Helper()
		before := fastPathStats(t, a)
		sendInvites(t, c, name, n)
		after := fastPathStats(t, a)
		for i, d := range dests {
			b, _ := before.dest(1, d.URI)
			x, _ := after.dest(1, d.URI)
			fp[i] = x.Packets - b.Packets
			got[i] = countPrefix(backends[i].Invites(), name)
		}
		t.Logf("%s: fast path packets %v, INVITEs received %v", name, fp, got)
		return fp, got
	}

	fp, got := phase("up")
	if fp[0] == 0 || fp[1] == 0 || got[0]+got[1] != n {
		t.Fatalf("both up: fast path packets %v, INVITEs %v of %d: the fast path does not carry the calls, the test proves nothing", fp, got, n)
	}

	died := time.Now()
	flaky.code.Store(0)
	waitFlags(t, a, uri, "IP", 10*time.Second)
	took := eventTime(t, a, "dispatcher:dst-down").Sub(died)
	if limit := probeThreshold*probeInterval + probeDeadline + probeMargin; took > limit {
		t.Errorf("inactive %v after the backend went silent, want at most %v", took, limit)
	}
	t.Logf("inactive %v after the backend went silent", took.Round(time.Millisecond))
	fp, got = phase("down")
	if fp[0] != 0 || got[0] != 0 {
		t.Errorf("inactive backend: the fast path sent it %d packets, it got %d INVITEs; want 0", fp[0], got[0])
	}
	if fp[1] < n || got[1] != n {
		t.Errorf("the other backend: %d fast path packets, %d INVITEs; want %d each", fp[1], got[1], n)
	}

	flaky.code.Store(200)
	waitFlags(t, a, uri, "AP", 10*time.Second)
	fp, got = phase("again")
	if fp[0] == 0 || got[0] == 0 {
		t.Errorf("back up: fast path packets %v, INVITEs %v: the backend gets no call", fp, got)
	}
}
