package sipp

import (
	"fmt"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
)

// TestDlgFastScenarios runs each kind's client against DlgFastUAS without
// a proxy: every call succeeds, and the server receives and sends exactly
// the messages DlgFastKinds says, per call (no retransmission, no other
// branch taken).
func TestDlgFastScenarios(t *testing.T) {
	NeedSIPp(t)
	lo := netip.MustParseAddr("127.0.0.1")
	free := func() netip.AddrPort { return netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo)) }
	uas := Start(t, Options{Name: "uas", Scenario: DlgFastUAS, Local: free()})
	const calls = 3
	var ids []map[string]bool
	for _, k := range DlgFastKinds {
		uac := Start(t, Options{Name: "uac-" + k.Service, Scenario: k.Scenario, Local: free(),
			Remote: uas.Opts.Local.String(), Calls: calls, Rate: 50, Args: []string{"-s", k.Service}})
		res := uac.Wait(t)
		if res.ExitCode != 0 || res.Stats.Successful != calls || res.Stats.Failed != 0 {
			uac.LogOutput()
			t.Fatalf("%s: exit %d, stats %+v", k.Service, res.ExitCode, res.Stats)
		}
		got := map[string]bool{}
		for cid := range uac.Messages(t).Requests(Sent, "INVITE").CallIDs() {
			got[cid] = true
		}
		ids = append(ids, got)
	}
	// A client's last act may be an ACK still on its way.
	want := 0
	for _, k := range DlgFastKinds {
		for _, n := range k.Requests {
			want += n * calls
		}
	}
	uas.WaitMessages(t, 2*time.Second, func(ms Messages) bool { return len(ms.Requests(Received, "")) >= want })
	uas.Stop()
	msgs := uas.Messages(t)
	for i, k := range DlgFastKinds {
		reqs, resps := map[string]int{}, map[int]int{}
		for _, m := range msgs.Filter(func(m Message) bool { return ids[i][m.CallID()] }) {
			switch {
			case m.Dir == Received && m.IsRequest():
				reqs[m.Method]++
			case m.Dir == Sent && !m.IsRequest():
				resps[m.Status]++
			}
		}
		wantReqs, wantResps := map[string]int{}, map[int]int{}
		for m, n := range k.Requests {
			wantReqs[m] = n * calls
		}
		for s, n := range k.Responses {
			wantResps[s] = n * calls
		}
		if !maps.Equal(reqs, wantReqs) || !maps.Equal(resps, wantResps) {
			t.Errorf("%s: the server received %v and sent %v, want %v and %v", k.Service, reqs, resps, wantReqs, wantResps)
		}
	}
	if t.Failed() {
		fmt.Println(msgs)
	}
}
