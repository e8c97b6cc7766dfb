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
// reach the backend, and the 503 must not be sent again once it came (how
// often it came before depends on how fast SIPp ACKs under load).
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
		if got503[cid] == 0 {
			errs = append(errs, fmt.Sprintf("%s: the client got no 503", cid))
		}
		// The ACK stops the retransmissions (Timer G, every T1 = 500 ms
		// at first). How many came before it depends on how fast SIPp
		// answered; none may come after it, beyond one already in flight.
		ack, ok := lastAt(uacLog.Requests(sipp.Sent, "ACK"), cid)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: the client never ACKed the 503", cid))
			continue
		}
		for _, m := range uacLog.Responses(sipp.Received, 503) {
			if m.CallID() == cid && m.Time.Sub(ack) > 250*time.Millisecond {
				errs = append(errs, fmt.Sprintf("%s: a 503 came %v after the client's ACK: retransmissions did not stop", cid, m.Time.Sub(ack)))
			}
		}
	}
	reportErrs(t, errs)
}

// lastAt is when the last of ms for callID was logged.
func lastAt(ms sipp.Messages, callID string) (time.Time, bool) {
	var at time.Time
	for _, m := range ms {
		if m.CallID() == callID && m.Time.After(at) {
			at = m.Time
		}
	}
	return at, !at.IsZero()
}
