package tests

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
)

// TestProbeStatsBadReplies: replies that look like answers to a probe but
// are not good ones are ignored, counted, and shown by probe.stats: the
// real reply sent from another address (wrong_source), the same with a
// changed nonce (unknown_branch), one without CSeq (malformed), and the
// real reply a second time after the first was taken (late). The
// destination does not answer on its own; the test answers its first
// probe by hand.
func TestProbeStatsBadReplies(t *testing.T) {
	t.Parallel()
	dst, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(freeAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	other, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(freeAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	edge := freeAddr(t)
	a := agent.Start(t, bins, agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:     []agent.Dest{{Set: 1, URI: sipURI(dst.LocalAddr().(*net.UDPAddr).AddrPort())}},
		// A 3 s deadline leaves time to answer by hand.
		DispatcherKeys: [][2]string{{"ds_ping_interval", "3s"}, {"ds_ping_timeout", "3s"}, {"ds_probing_mode", "1"}},
	}, agent.Options{})

	buf := make([]byte, 65536)
	_ = dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := dst.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no probe arrived: %v", err)
	}
	probe := strings.ReplaceAll(string(buf[:n]), "\r\n", "\n")
	if !strings.HasPrefix(probe, "OPTIONS ") {
		t.Fatalf("first message is not a probe: %q", probe)
	}
	good := answer(probe, 200)
	branch := header(probe, "Via")
	i := strings.Index(branch, "branch=")
	if i < 0 {
		t.Fatalf("probe Via without branch: %q", branch)
	}
	nonceChanged := strings.Replace(good, branch, branch[:len(branch)-1]+flipHex(branch[len(branch)-1]), 1)
	var noCSeq strings.Builder
	for _, line := range strings.SplitAfter(good, "\r\n") {
		if !strings.HasPrefix(strings.ToLower(line), "cseq:") {
			noCSeq.WriteString(line)
		}
	}
	send := func(c *net.UDPConn, msg string) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort([]byte(msg), edge); err != nil {
			t.Fatal(err)
		}
	}
	send(other, good)
	send(other, nonceChanged)
	send(other, noCSeq.String())
	send(dst, good) // the real one: taken
	waitStats(t, a, func(s engineCounters) bool { return s.Replies == 1 })
	send(dst, good) // again: late

	want := engineCounters{Replies: 1, WrongSource: 1, UnknownBranch: 1, Malformed: 1, Late: 1}
	got := waitStats(t, a, func(s engineCounters) bool { return s == want })
	t.Logf("probe.stats dispatcher: %+v", got)
}

// engineCounters are the probe.stats counters this test looks at.
type engineCounters struct {
	Replies       uint64 `json:"replies"`
	WrongSource   uint64 `json:"wrong_source"`
	UnknownBranch uint64 `json:"unknown_branch"`
	Malformed     uint64 `json:"malformed"`
	Late          uint64 `json:"late"`
}

// waitStats polls probe.stats until ok holds for the dispatcher engine's
// counters, and fails the test with the last ones after 5 s.
func waitStats(t *testing.T, a *agent.Agent, ok func(engineCounters) bool) engineCounters {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st struct {
			Dispatcher *engineCounters `json:"dispatcher"`
		}
		raw := a.MustCtl(t, "probe.stats")
		if err := json.Unmarshal(raw, &st); err != nil || st.Dispatcher == nil {
			t.Fatalf("probe.stats: %s (%v)", raw, err)
		}
		if ok(*st.Dispatcher) {
			return *st.Dispatcher
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe.stats dispatcher counters %+v", *st.Dispatcher)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flipHex is another lower-case hex digit than c.
func flipHex(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}
