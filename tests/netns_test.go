package tests

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/sipp"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// TestNetnsCallsComplete: the namespace topology of tests/netns (client,
// edge, three backends on routed veths; README.md has the plan), sipedge
// in the edge namespace on the slow path, SIPp client and servers in
// theirs. Every call completes, and each call stays on one backend (alg 0,
// the client sends ACK and BYE without Route). The XDP tests attach their
// program in the edge namespace of this same topology.
func TestNetnsCallsComplete(t *testing.T) {
	testutil.NeedRoot(t)
	sipp.NeedSIPp(t)
	const calls = 30
	topo := netns.NewTopology(t, 3)

	var uas []*sipp.SIPp
	var dests []agent.Dest
	for i, b := range topo.Backends {
		addr := netip.AddrPortFrom(b.Addr, 5060)
		uas = append(uas, sipp.Start(t, sipp.Options{Name: fmt.Sprintf("uas%d", i+1), Scenario: sipp.UAS, Local: addr, Exec: b.NS.Exec()}))
		dests = append(dests, agent.Dest{Set: 1, URI: sipURI(addr)})
	}
	edge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5060)
	agent.Start(t, bins, agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 0}},
		Dests:     dests,
	}, agent.Options{Exec: topo.Edge.Exec()})

	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UAC, Remote: edge.String(),
		Local: netip.AddrPortFrom(topo.Client.Addr, 5060), Exec: topo.Client.NS.Exec(),
		Calls: calls, Rate: 30, Limit: 10})
	stopAll(uas)
	s, _ := receivedRequests(t, uas)
	assertOneBackendPerCall(t, s, sentCallIDs(t, uac), []string{"INVITE", "ACK", "BYE"})
	per := s.invitesPerBackend(len(uas))
	t.Logf("calls per backend: %v", per)
	// What the backends received came from the edge's listener address.
	for i, b := range uas {
		for _, m := range b.Messages(t).Requests(sipp.Received, "INVITE") {
			if v := m.TopVia(); sentBy(v) != edge.String() {
				t.Errorf("backend %d: INVITE top Via %q is not the edge's %s", i+1, v, edge)
				break
			}
		}
	}
}

// sentBy returns a Via value's sent-by ("SIP/2.0/UDP h:p;branch=x" → "h:p").
func sentBy(via string) string {
	f := strings.Fields(via)
	if len(f) < 2 {
		return ""
	}
	s, _, _ := strings.Cut(f[1], ";")
	return s
}
