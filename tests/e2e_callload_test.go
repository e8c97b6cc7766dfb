package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/sipp"
)

// Call load (algorithm 10) on loopback, slow path: SIPp client → sipedge →
// SIPp servers, each server with a duid, the loads read with
// dispatcher.list's RUNTIME.DLGLOAD.

// callLoadAgent starts sipedge with an alg 10 rule over set 1 = servers,
// the server i with attrs[i], in mode ("" is stateless).
func callLoadAgent(t *testing.T, mode string, servers []*sipp.SIPp, attrs []string) (*agent.Agent, string) {
	t.Helper()
	edge := freeAddr(t)
	dests := destsOf(servers)
	for i := range dests {
		dests[i].Attrs = attrs[i]
	}
	cfg := agent.Config{
		Listeners:      []agent.Listener{{Name: "edge", Address: edge}},
		Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 10, Mode: mode}},
		Dests:          dests,
		DispatcherKeys: [][2]string{{"ds_hash_size", "8"}},
	}
	return agent.Start(t, bins, cfg, agent.Options{}), edge.String()
}

// dlgLoads returns RUNTIME.DLGLOAD of set 1's destinations by duid.
func dlgLoads(t *testing.T, a *agent.Agent) map[string]int {
	t.Helper()
	var list struct {
		Records []struct {
			Set struct {
				Targets []struct {
					Dest struct {
						Attrs struct {
							DUID string `json:"DUID"`
						} `json:"ATTRS"`
						Runtime *struct {
							DLGLoad int `json:"DLGLOAD"`
						} `json:"RUNTIME"`
					} `json:"DEST"`
				} `json:"TARGETS"`
			} `json:"SET"`
		} `json:"RECORDS"`
	}
	if err := json.Unmarshal(a.MustCtl(t, "dispatcher.list"), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range list.Records {
		for _, d := range r.Set.Targets {
			if d.Dest.Runtime == nil {
				t.Fatalf("destination %s without RUNTIME", d.Dest.Attrs.DUID)
			}
			out[d.Dest.Attrs.DUID] = d.Dest.Runtime.DLGLoad
		}
	}
	return out
}

// waitLoads polls dispatcher.list until the loads are want, or fails after
// timeout with the last ones seen.
func waitLoads(t *testing.T, a *agent.Agent, want map[string]int, timeout time.Duration) {
	t.Helper()
	var got map[string]int
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got = dlgLoads(t, a); fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
	}
	t.Fatalf("DLGLOAD %v, want %v", got, want)
}

// TestSippCallLoadSpread: 12 concurrent calls, held open 4 s each, over
// three servers, one of them with maxload=2: the least loaded pick gives
// the two unlimited servers 5 calls each and the limited one 2, and
// dispatcher.list shows those loads while the calls last; every request
// of a call (INVITE, ACK, BYE, which the client sends to the proxy with no
// Route) reaches its call's server, and the BYEs bring every load to 0.
func TestSippCallLoadSpread(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 12
	uas := startUAS(t, 3, sipp.UAS)
	a, edge := callLoadAgent(t, "", uas, []string{"duid=a", "duid=b", "duid=c;maxload=2"})

	uac := sipp.Start(t, sipp.Options{Name: "uac", Scenario: sipp.UAC, Local: freeAddr(t), Remote: edge,
		Calls: calls, Rate: 40, Limit: calls, Timeout: 30 * time.Second, Args: []string{"-d", "4000"}})
	// All calls are set up within 0.3 s and last 4 s.
	waitLoads(t, a, map[string]int{"a": 5, "b": 5, "c": 2}, 3*time.Second)
	if res := uac.Wait(t); res.ExitCode != 0 || res.Stats.Successful != calls {
		t.Errorf("uac: exit %d, %d of %d calls successful", res.ExitCode, res.Stats.Successful, calls)
		uac.LogOutput()
	}
	waitLoads(t, a, map[string]int{"a": 0, "b": 0, "c": 0}, 3*time.Second)

	stopAll(uas)
	s, _ := receivedRequests(t, uas)
	assertOneBackendPerCall(t, s, sentCallIDs(t, uac), []string{"INVITE", "ACK", "BYE"})
	per := s.invitesPerBackend(len(uas))
	if !slices.Equal(per, []int{5, 5, 2}) {
		t.Errorf("calls per server %v, want [5 5 2] (c has maxload=2)", per)
	}
}

// TestSippCallLoadReleased: calls that end without a BYE release their
// load too: refused with 503 (a non-2xx final), or cancelled while
// ringing (CANCEL, 487). The ACK of the final, which comes after the
// release, still reaches the call's server. A refused call lasts a few
// milliseconds, so each one finds every load at 0 and goes to the first
// server; cancelled calls ring 300 ms, overlap, and spread.
func TestSippCallLoadReleased(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	tests := []struct {
		name     string
		uas, uac sipp.Scenario
		methods  []string
		spread   bool
	}{
		{name: "503", uas: sipp.UAS503, uac: sipp.UAC503, methods: []string{"INVITE", "ACK"}},
		{name: "CANCEL", uas: sipp.UASCancel, uac: sipp.UACCancel, methods: []string{"INVITE", "CANCEL", "ACK"}, spread: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const calls = 6
			uas := startUAS(t, 2, tc.uas)
			a, edge := callLoadAgent(t, "", uas, []string{"duid=a", "duid=b"})
			// The CANCEL client's INVITE carries X-Tenant (the dialog tests').
			uac := runUAC(t, sipp.Options{Name: "uac", Scenario: tc.uac, Remote: edge, Calls: calls, Rate: 20, Limit: calls,
				Args: []string{"-key", "tenant", "none"}})
			waitLoads(t, a, map[string]int{"a": 0, "b": 0}, 3*time.Second)
			stopAll(uas)
			s, _ := receivedRequests(t, uas)
			assertOneBackendPerCall(t, s, sentCallIDs(t, uac), tc.methods)
			if per := s.invitesPerBackend(len(uas)); tc.spread && (per[0] == 0 || per[1] == 0) {
				t.Errorf("calls per server %v: both should have had calls", per)
			}
		})
	}
}

// TestSippCallLoadFailover: failover mode, server a refuses every INVITE
// with 503, server b answers. Each call is picked for a (the least
// loaded: its calls never stay), fails over to b, and its load moves with
// it (ds_next_dst): while 4 calls last, a carries 0 and b 4; after the
// BYEs, both 0.
func TestSippCallLoadFailover(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 4
	refuses := startUAS(t, 1, sipp.UAS503)
	answers := startUAS(t, 1, sipp.UAS)
	servers := append(refuses, answers...)
	// Listed in reverse: index 0 (picked first on a tie) is a.
	a, edge := callLoadAgent(t, "failover", []*sipp.SIPp{servers[1], servers[0]}, []string{"duid=b", "duid=a"})
	uac := sipp.Start(t, sipp.Options{Name: "uac", Scenario: sipp.UAC, Local: freeAddr(t), Remote: edge,
		Calls: calls, Rate: 20, Limit: calls, Timeout: 30 * time.Second, Args: []string{"-d", "3000"}})
	waitLoads(t, a, map[string]int{"a": 0, "b": calls}, 3*time.Second)
	if res := uac.Wait(t); res.ExitCode != 0 || res.Stats.Successful != calls {
		t.Errorf("uac: exit %d, %d of %d calls successful", res.ExitCode, res.Stats.Successful, calls)
		uac.LogOutput()
	}
	waitLoads(t, a, map[string]int{"a": 0, "b": 0}, 3*time.Second)
	stopAll(servers)
	s, _ := receivedRequests(t, servers)
	if per := s.invitesPerBackend(len(servers)); per[0] != calls || per[1] != calls {
		t.Errorf("INVITEs per server (a, b) %v, want every call tried on both", per)
	}
}
