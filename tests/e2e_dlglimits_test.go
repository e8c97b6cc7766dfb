package tests

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/sipp"
)

// TestSippDialogLimitSource: a per-source dialog limit of N through the
// slow path (loopback, no root), stateless and in failover mode (where an
// INVITE is reported to the tracker only once its destination answers:
// the admissions in between count as pending; the backend rings 300 ms
// after each INVITE, so all of them arrive before any is tracked). A SIPp
// client opens N+k
// concurrent calls from one address and holds them: exactly k are refused
// 503 (and ACKed), the N others are answered; the backend never sees the
// refused INVITEs; dlgs.limits counts k refusals. Once the held calls have
// ended (BYE), a second run of N calls is admitted whole.
func TestSippDialogLimitSource(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	for _, mode := range []string{"stateless", "failover"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testDialogLimitSource(t, mode)
		})
	}
}

func testDialogLimitSource(t *testing.T, mode string) {
	const n, k = 4, 3
	// The backend rings 300 ms after each INVITE: in failover mode the
	// whole burst arrives before the tracker sees any of its calls.
	uas := startUAS(t, 1, sipp.UASSlow)
	edge := freeAddr(t)
	a := agent.Start(t, bins, agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Mode: mode}},
		Dests:     destsOf(uas),
		DialogKeys: [][2]string{
			{"enabled", "true"},
			{"limits", "[{source: any, max: " + strconv.Itoa(n) + "}]"},
		},
	}, agent.Options{})

	// N+k calls at once (rate and concurrency above N+k), each held 3 s:
	// every INVITE arrives while the first N calls are up.
	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UACLimit, Remote: edge.String(),
		Calls: n + k, Rate: 100, Limit: n + k, Args: []string{"-d", "3000"}})
	msgs := uac.Messages(t)
	if got := len(msgs.Responses(sipp.Received, 503).CallIDs()); got != k {
		t.Errorf("calls refused 503: %d, want %d", got, k)
	}
	if got := len(msgs.Responses(sipp.Received, 200).Filter(func(m sipp.Message) bool {
		_, method := m.CSeq()
		return method == "INVITE"
	}).CallIDs()); got != n {
		t.Errorf("calls answered: %d, want %d", got, n)
	}
	var lim struct {
		Rules []struct {
			Kind    string `json:"kind"`
			Max     int    `json:"max"`
			Code    int    `json:"code"`
			Refused uint64 `json:"refused"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(a.MustCtl(t, "dlgs.limits"), &lim); err != nil {
		t.Fatal(err)
	}
	if len(lim.Rules) != 1 || lim.Rules[0].Kind != "source" || lim.Rules[0].Max != n || lim.Rules[0].Code != 503 || lim.Rules[0].Refused != k {
		t.Errorf("dlgs.limits %+v, want one source rule, max %d, code 503, %d refused", lim, n, k)
	}

	// The calls ended: a second client from the same address gets all of
	// its N calls.
	uac2 := runUAC(t, sipp.Options{Name: "uac2", Scenario: sipp.UACLimit, Remote: edge.String(),
		Calls: n, Rate: 100, Limit: n, Args: []string{"-d", "500"}})
	if got := len(uac2.Messages(t).Responses(sipp.Received, 503).CallIDs()); got != 0 {
		t.Errorf("after the calls ended: %d of %d calls refused, want none", got, n)
	}
	if err := json.Unmarshal(a.MustCtl(t, "dlgs.limits"), &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Rules[0].Refused != k {
		t.Errorf("after the calls ended: %d refused, want still %d", lim.Rules[0].Refused, k)
	}
	stopAll(uas)
	s, _ := receivedRequests(t, uas)
	if got := len(s.invitesPerBackend(1)); got != 1 || s.invitesPerBackend(1)[0] != 2*n {
		t.Errorf("backend got INVITEs of %v calls, want %d (the refused ones never reach it)", s.invitesPerBackend(1), 2*n)
	}
}
