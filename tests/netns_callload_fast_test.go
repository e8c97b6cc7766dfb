package tests

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/sipp"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// TestNetnsXDPCallLoad: call load (algorithm 10) in the XDP fast path, on
// the topology of TestNetnsXDPCalls without Record-Route: the client sends
// every request of a call (INVITE, ACK, BYE) to the edge, which must send
// the ACK and the BYE where the INVITE went. 12 concurrent calls held 4 s
// over three backends, one with maxload=2: the program's least-loaded pick
// gives the two unlimited backends 5 calls each and the limited one 2;
// dispatcher.list's DLGLOAD (the agent's Call-ID table, fed by the INVITE
// events) shows those loads while the calls last, and 0 after the BYEs;
// each call's ACK and BYE reach its INVITE's backend; and the fast path
// forwarded every request (fastpath.stats), the slow path none.
func TestNetnsXDPCallLoad(t *testing.T) {
	testutil.NeedRoot(t)
	sipp.NeedSIPp(t)
	mnt := netns.NewMounts(t, netns.FreshBPFRoot)
	const calls = 12
	topo := netns.NewTopology(t, 3)
	ifaces := topo.ForXDP(t)

	attrs := []string{"duid=a", "duid=b", "duid=c;maxload=2"}
	var uas []*sipp.SIPp
	var dests []agent.Dest
	for i, b := range topo.Backends {
		addr := netip.AddrPortFrom(b.Addr, 5060)
		uas = append(uas, sipp.Start(t, sipp.Options{Name: fmt.Sprintf("uas%d", i+1), Scenario: sipp.UAS, Local: addr, Exec: b.NS.Exec()}))
		dests = append(dests, agent.Dest{Set: 1, URI: sipURI(addr), Attrs: attrs[i]})
	}
	edge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5060)
	a := agent.Start(t, bins, agent.Config{
		Listeners:      []agent.Listener{{Name: "edge", Address: edge}},
		Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 10}},
		Dests:          dests,
		DispatcherKeys: [][2]string{{"ds_hash_size", "8"}},
		XDP:            &agent.XDP{Interfaces: ifaces, Mode: "native"},
	}, agent.Options{Exec: mnt.Exec(topo.Edge)})
	base := waitAttached(t, a, 10*time.Second)
	baseSlow := slowStats(t, a)

	uac := sipp.Start(t, sipp.Options{Name: "uac", Scenario: sipp.UAC, Remote: edge.String(),
		Local: netip.AddrPortFrom(topo.Client.Addr, 5060), Exec: topo.Client.NS.Exec(),
		Calls: calls, Rate: 40, Limit: calls, Timeout: 30 * time.Second, Args: []string{"-d", "4000"}})
	// All calls are set up within 0.3 s and last 4 s.
	waitLoads(t, a, map[string]int{"a": 5, "b": 5, "c": 2}, 3*time.Second)
	if res := uac.Wait(t); res.ExitCode != 0 || res.Stats.Successful != calls {
		t.Errorf("uac: exit %d, %d of %d calls successful", res.ExitCode, res.Stats.Successful, calls)
		uac.LogOutput()
	}
	waitLoads(t, a, map[string]int{"a": 0, "b": 0, "c": 0}, 3*time.Second)

	st := fastPathStats(t, a).minus(base)
	slow := slowStats(t, a).minus(baseSlow)
	if l := st.listener(); l.FwdRequests != 3*calls || l.Passed != 0 {
		t.Errorf("fast path: %d requests forwarded, %d passed (%v), want %d forwarded (INVITE, ACK, BYE of %d calls), none passed",
			l.FwdRequests, l.Passed, st.reasons(), 3*calls, calls)
	}
	if slow.Forwarded != 0 {
		t.Errorf("slow path forwarded %d messages, want 0", slow.Forwarded)
	}

	stopAll(uas)
	s, _ := receivedRequests(t, uas)
	assertOneBackendPerCall(t, s, sentCallIDs(t, uac), []string{"INVITE", "ACK", "BYE"})
	if per := s.invitesPerBackend(len(uas)); !slices.Equal(per, []int{5, 5, 2}) {
		t.Errorf("calls per backend %v, want [5 5 2] (the third has maxload=2)", per)
	}
}
