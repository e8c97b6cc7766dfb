package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/sipp"
)

// TestSippFailoverAckAbsorbed (issue 7 item 9): failover mode with one
// destination, which refuses every INVITE with 503. The proxy ACKs that
// 503 itself, finds no destination left and answers the client 503. The
// client's ACK of that 503 belongs to the proxy's transaction: it must not
// reach the backend, and the 503 must not be sent again once it came.
func TestSippFailoverAckAbsorbed(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 10
	bad := sipp.Start(t, sipp.Options{Name: "uas503", Scenario: sipp.UAS503, Local: freeAddr(t)})
	dests := []agent.Dest{{Set: 1, URI: sipURI(bad.Opts.Local), Priority: 10}}
	_, edge := edgeAgent(t, agent.Rule{Algorithm: 8, Mode: "failover"}, dests, 2*time.Second)

	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UAC503, Remote: edge.String(), Calls: calls, Rate: 10, Limit: 10})
	bad.Stop()
	callIDs := sentCallIDs(t, uac)
	if len(callIDs) != calls {
		t.Fatalf("client sent %d calls, want %d", len(callIDs), calls)
	}
	badLog, uacLog := bad.Messages(t), uac.Messages(t)
	branches := map[string]string{} // Call-ID → the backend's INVITE's top Via branch
	for _, m := range badLog.Requests(sipp.Received, "INVITE") {
		branches[m.CallID()] = m.Branch()
	}
	var errs []string
	acks := map[string][]string{}
	for _, m := range badLog.Requests(sipp.Received, "ACK") {
		acks[m.CallID()] = append(acks[m.CallID()], m.Branch())
	}
	got503 := uacLog.Responses(sipp.Received, 503).CallIDs()
	for _, cid := range callIDs {
		for _, b := range acks[cid] {
			if b != branches[cid] || !strings.HasPrefix(b, "z9hG4bKsf") {
				errs = append(errs, fmt.Sprintf("%s: the backend got an ACK with branch %q; only the proxy's own ACK of its 503 (branch %q) may reach it", cid, b, branches[cid]))
			}
		}
		if n := got503[cid]; n != 1 {
			errs = append(errs, fmt.Sprintf("%s: the client got the 503 %d times, want once (it ACKed the first)", cid, n))
		}
	}
	reportErrs(t, errs)
}
