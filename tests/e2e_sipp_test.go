package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/tests/sipp"
)

// Loopback end-to-end tests: SIPp client → sipedge (slow path) → SIPp
// servers, all on 127.0.0.1 with free ports, so they need neither root
// nor namespaces and run in parallel.

// TestSippCallsComplete: alg 0, stateless, three backends; every call of
// SIPp's built-in client completes (INVITE/200/ACK/BYE/200 through the
// proxy), and the backends answered all of them.
func TestSippCallsComplete(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 30
	uas := startUAS(t, 3, sipp.UAS)
	_, edge := edgeAgent(t, agent.Rule{Algorithm: 0}, destsOf(uas), 0)

	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UAC, Remote: edge.String(), Calls: calls, Rate: 30, Limit: 10})
	stopAll(uas)
	s, _ := receivedRequests(t, uas)
	if got := len(sentCallIDs(t, uac)); got != calls {
		t.Errorf("client sent INVITEs of %d calls, want %d", got, calls)
	}
	answered := 0
	for _, n := range s.invitesPerBackend(len(uas)) {
		answered += n
	}
	if answered != calls {
		t.Errorf("backends got INVITEs of %d calls, want %d", answered, calls)
	}
}

// TestSippCallIDAffinity: with the Call-ID hash (alg 0) and a client that
// sends ACK and BYE to the proxy with no Route (so each is dispatched on
// its own), every request of a call reaches the same backend, and the
// calls spread over more than one backend.
func TestSippCallIDAffinity(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 45
	uas := startUAS(t, 3, sipp.UAS)
	_, edge := edgeAgent(t, agent.Rule{Algorithm: 0}, destsOf(uas), 0)

	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UAC, Remote: edge.String(), Calls: calls, Rate: 45, Limit: 15})
	stopAll(uas)
	s, _ := receivedRequests(t, uas)
	assertOneBackendPerCall(t, s, sentCallIDs(t, uac), []string{"INVITE", "ACK", "BYE"})
	per := s.invitesPerBackend(len(uas))
	used := 0
	for _, n := range per {
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("calls per backend %v: the Call-ID hash put every call on one backend", per)
	}
	t.Logf("calls per backend: %v", per)
}

// TestSippRoundRobin: alg 4 spreads INVITEs evenly (each of 3 backends
// gets calls/3 ± 1); the proxy Record-Routes, the servers echo it, the
// client honours it, so ACK and BYE carry Route: <sip:EDGE;lr> and follow
// the dialog to the INVITE's backend, with the proxy's Route removed.
func TestSippRoundRobin(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 30
	uas := startUAS(t, 3, sipp.UASRecordRoute)
	_, edge := edgeAgent(t, agent.Rule{Algorithm: 4, RecordRoute: true}, destsOf(uas), 0)

	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UACRecordRoute, Remote: edge.String(), Calls: calls, Rate: 30, Limit: 10})
	stopAll(uas)
	s, logs := receivedRequests(t, uas)
	assertOneBackendPerCall(t, s, sentCallIDs(t, uac), []string{"INVITE", "ACK", "BYE"})

	per := s.invitesPerBackend(len(uas))
	for i, n := range per {
		if n < calls/3-1 || n > calls/3+1 {
			t.Errorf("round robin: backend %d got %d INVITEs, want %d±1 (all: %v)", i, n, calls/3, per)
		}
	}

	rr := "<" + sipURI(edge) + ";lr>"
	var errs []string
	for i, msgs := range logs {
		contact := sipURI(uas[i].Opts.Local)
		for _, m := range msgs.Requests(sipp.Received, "") {
			switch m.Method {
			case "INVITE":
				if got := m.Values("Record-Route"); len(got) != 1 || got[0] != rr {
					errs = append(errs, fmt.Sprintf("backend %d: INVITE %s has Record-Route %q, want [%q]", i, m.CallID(), got, rr))
				}
			case "ACK", "BYE":
				for _, r := range m.Values("Route") {
					if strings.Contains(r, edge.String()) {
						errs = append(errs, fmt.Sprintf("backend %d: %s %s still carries the proxy's Route %q", i, m.Method, m.CallID(), r))
					}
				}
				if f := strings.Fields(m.StartLine); len(f) < 2 || !strings.HasPrefix(f[1], contact) {
					errs = append(errs, fmt.Sprintf("backend %d: %s has Request-URI %q, want the backend's Contact %s", i, m.Method, m.StartLine, contact))
				}
			}
		}
	}
	// The client really sent ACK and BYE with the route set.
	for _, m := range uac.Messages(t).Requests(sipp.Sent, "") {
		if m.Method != "INVITE" && strings.Join(m.Values("Route"), ",") != rr {
			errs = append(errs, fmt.Sprintf("client sent %s %s with Route %q, want %q (did the 200 carry Record-Route?)", m.Method, m.CallID(), m.Values("Route"), rr))
		}
	}
	reportErrs(t, errs)
}

// TestSippInactiveBackend: after one backend is stopped and set inactive
// over RPC (dispatcher.set_state i), dispatcher.list shows it inactive,
// no datagram reaches its address any more, and every new call completes
// on the other backends.
func TestSippInactiveBackend(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 30
	uas := startUAS(t, 3, sipp.UAS)
	a, edge := edgeAgent(t, agent.Rule{Algorithm: 0}, destsOf(uas), 0)

	// Phase 1: all three up; backend 1 takes part (else nothing is proved).
	runUAC(t, sipp.Options{Name: "uac-before", Scenario: sipp.UAC, Remote: edge.String(), Calls: calls, Rate: 30, Limit: 10})
	uas[1].Stop()
	s1, _ := receivedRequests(t, uas[1:2])
	if len(s1) == 0 {
		t.Fatalf("backend 1 got no call while all were up; the test would prove nothing")
	}

	down := sipURI(uas[1].Opts.Local)
	a.MustCtl(t, "dispatcher.set_state", "i", "1", down)
	flags, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
	if err != nil {
		t.Fatal(err)
	}
	if f := flags["1 "+down]; f != "IX" && f != "IP" {
		t.Errorf("dispatcher.list FLAGS of %s = %q, want IX or IP (all: %v)", down, f, flags)
	}
	for i, u := range uas {
		if f := flags["1 "+sipURI(u.Opts.Local)]; i != 1 && f != "AX" && f != "AP" {
			t.Errorf("dispatcher.list FLAGS of live %s = %q, want AX or AP", sipURI(u.Opts.Local), f)
		}
	}
	hole := newSink(t, uas[1].Opts.Local)

	// Phase 2: every call completes without the inactive backend.
	uac := runUAC(t, sipp.Options{Name: "uac-after", Scenario: sipp.UAC, Remote: edge.String(), Calls: calls, Rate: 30, Limit: 10})
	live := []*sipp.SIPp{uas[0], uas[2]}
	stopAll(live)
	s, _ := receivedRequests(t, live)
	after := sentCallIDs(t, uac)
	for cid := range s {
		if !slices.Contains(after, cid) {
			delete(s, cid) // a phase 1 call
		}
	}
	assertOneBackendPerCall(t, s, after, []string{"INVITE", "ACK", "BYE"})
	if got := hole.Got(); len(got) > 0 {
		t.Errorf("inactive backend %s got %d datagrams, want none; first:\n%s", down, len(got), got[0])
	}
}

// TestSippFailover: failover mode, alg 8 (priority order). The first
// destination answers every INVITE with 503; the proxy ACKs that 503,
// tries the next destination, and every call completes there. The 503
// backend sees each INVITE exactly once.
func TestSippFailover(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 20
	bad := sipp.Start(t, sipp.Options{Name: "uas503", Scenario: sipp.UAS503, Local: freeAddr(t)})
	good := sipp.Start(t, sipp.Options{Name: "uasok", Scenario: sipp.UASRecordRoute, Local: freeAddr(t)})
	dests := []agent.Dest{
		{Set: 1, URI: sipURI(bad.Opts.Local), Priority: 10},
		{Set: 1, URI: sipURI(good.Opts.Local), Priority: 5},
	}
	_, edge := edgeAgent(t, agent.Rule{Algorithm: 8, RecordRoute: true, Mode: "failover"}, dests, 2*time.Second)

	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UACRecordRoute, Remote: edge.String(), Calls: calls, Rate: 20, Limit: 10})
	stopAll([]*sipp.SIPp{bad, good})
	callIDs := sentCallIDs(t, uac)
	badLog, goodLog := bad.Messages(t), good.Messages(t)

	var errs []string
	invites := badLog.Requests(sipp.Received, "INVITE").CallIDs()
	branches := map[string]string{} // Call-ID → the INVITE's top Via branch
	for _, m := range badLog.Requests(sipp.Received, "INVITE") {
		branches[m.CallID()] = m.Branch()
	}
	acks := map[string][]string{} // Call-ID → the ACKs' top Via branches
	for _, m := range badLog.Requests(sipp.Received, "ACK") {
		acks[m.CallID()] = append(acks[m.CallID()], m.Branch())
	}
	for _, cid := range callIDs {
		if n := invites[cid]; n != 1 {
			errs = append(errs, fmt.Sprintf("503 backend got the INVITE of %s %d times, want once", cid, n))
		}
		switch b := acks[cid]; {
		case len(b) == 0:
			errs = append(errs, fmt.Sprintf("503 backend got no ACK for its 503 in %s (RFC 3261 17.1.1.3: the proxy's client transaction ACKs a non-2xx)", cid))
		case b[0] != branches[cid]:
			errs = append(errs, fmt.Sprintf("503 backend: ACK of %s has branch %q, its INVITE %q (RFC 3261 17.1.1.3: same branch)", cid, b[0], branches[cid]))
		}
	}
	if n := len(badLog.Requests(sipp.Received, "BYE")); n > 0 {
		errs = append(errs, fmt.Sprintf("503 backend got %d BYEs, want none", n))
	}
	s := seen{}
	for _, m := range goodLog.Requests(sipp.Received, "") {
		if s[m.CallID()] == nil {
			s[m.CallID()] = map[int]map[string]int{0: {}}
		}
		s[m.CallID()][0][m.Method]++
	}
	reportErrs(t, errs)
	assertOneBackendPerCall(t, s, callIDs, []string{"INVITE", "ACK", "BYE"})
	if n := len(uac.Messages(t).Responses(sipp.Received, 503)); n > 0 {
		t.Errorf("client got %d 503s; the proxy should have failed over instead", n)
	}
}

// TestRawReplies: replies the proxy generates itself, checked with a
// hand-written UDP client: Max-Forwards 0 gets 483 and is not forwarded;
// with every destination set inactive over RPC an INVITE gets 503.
func TestRawReplies(t *testing.T) {
	t.Parallel()
	b0, b1 := freeAddr(t), freeAddr(t)
	sinks := []*sink{newSink(t, b0), newSink(t, b1)}
	dests := []agent.Dest{{Set: 1, URI: sipURI(b0)}, {Set: 1, URI: sipURI(b1)}}
	a, edge := edgeAgent(t, agent.Rule{Algorithm: 0}, dests, 0)
	c := newRawClient(t, edge)

	invite := func(callID string, maxForwards int) string {
		return fmt.Sprintf(`INVITE sip:service@%[1]s SIP/2.0
Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-%[3]s;rport
Max-Forwards: %[4]d
From: <sip:raw@%[2]s>;tag=raw1
To: <sip:service@%[1]s>
Call-ID: %[3]s
CSeq: 1 INVITE
Contact: <sip:raw@%[2]s>
Content-Length: 0

`, edge, c.Addr, callID, maxForwards)
	}
	// exchange sends an INVITE and expects a final response code, with
	// nothing forwarded to the backends meanwhile.
	exchange := func(t *testing.T, callID string, maxForwards, code int) {
		t.Helper()
		before := make([]int, len(sinks))
		for i, s := range sinks {
			before[i] = len(s.Got())
		}
		c.Send(t, invite(callID, maxForwards))
		m, raw, err := c.FinalResponse(3 * time.Second)
		if err != nil {
			t.Fatalf("INVITE %s: %v", callID, err)
		}
		if m.Status != code || m.CallID() != callID || m.Branch() != "z9hG4bK-"+callID {
			t.Errorf("INVITE %s: got %q (Call-ID %q, branch %q), want %d with the request's Call-ID and branch; full answer:\n%s",
				callID, m.StartLine, m.CallID(), m.Branch(), code, raw)
		}
		time.Sleep(100 * time.Millisecond) // a wrongly forwarded copy would be there by now
		for i, s := range sinks {
			if got := s.Got(); len(got) > before[i] {
				t.Errorf("INVITE %s was forwarded to backend %d:\n%s", callID, i, got[before[i]])
			}
		}
	}

	t.Run("Max-Forwards 0 gets 483", func(t *testing.T) {
		exchange(t, "mf0-1", 0, 483)
	})
	t.Run("no destination up gets 503", func(t *testing.T) {
		for _, d := range dests {
			a.MustCtl(t, "dispatcher.set_state", "i", "1", d.URI)
		}
		flags, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dests {
			if f := flags["1 "+d.URI]; f != "IX" && f != "IP" {
				t.Errorf("dispatcher.list FLAGS of %s = %q, want IX or IP", d.URI, f)
			}
		}
		exchange(t, "nodst-1", 70, 503)
	})
}

// TestCtlDispatcherHash: sipedgectl dispatcher.hash against the reference
// vectors of Kamailio's ds_get_hash (checked against Kamailio 5.6.3):
// hashid is the int32 Kamailio prints, slot = uint32(hashid) % nslots.
func TestCtlDispatcherHash(t *testing.T) {
	t.Parallel()
	a, _ := edgeAgent(t, agent.Rule{Algorithm: 0}, []agent.Dest{{Set: 1, URI: "sip:127.0.0.1:9"}}, 0)
	for _, tc := range []struct {
		name   string
		values []string
		hashid int64
	}{
		{"abc", []string{"abc"}, 7167810},
		{"Call-ID of RFC 3261", []string{"a84b4c76e66710@pc33.atlanta.com"}, -2119949202},
		{"user and host", []string{"alice", "example.com"}, 1442294598},
	} {
		for _, nslots := range []uint32{100, 7} {
			t.Run(fmt.Sprintf("%s/%d slots", tc.name, nslots), func(t *testing.T) {
				args := append([]string{"dispatcher.hash", strconv.Itoa(int(nslots))}, tc.values...)
				raw := a.MustCtl(t, args...)
				var got struct {
					HashID *int64  `json:"hashid"`
					Slot   *uint32 `json:"slot"`
				}
				if err := json.Unmarshal(raw, &got); err != nil || got.HashID == nil || got.Slot == nil {
					t.Fatalf("sipedgectl %s printed %s, want {\"hashid\":N,\"slot\":M} (%v)", strings.Join(args, " "), raw, err)
				}
				wantSlot := uint32(int32(tc.hashid)) % nslots
				if *got.HashID != tc.hashid || *got.Slot != wantSlot {
					t.Errorf("sipedgectl %s = hashid %d slot %d, want hashid %d slot %d",
						strings.Join(args, " "), *got.HashID, *got.Slot, tc.hashid, wantSlot)
				}
			})
		}
	}
}

// TestCheckConfig: `sipedge check -c FILE` exits 0 on a good config, and on
// a bad one exits 1 printing FILE:LINE: for each problem, the config's and
// the dispatcher list's.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	good := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: freeAddr(t)}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:     []agent.Dest{{Set: 1, URI: "sip:127.0.0.1:5080", Priority: 10}, {Set: 1, URI: "sip:127.0.0.1:5082"}},
	}
	for _, tc := range []struct {
		name string
		edit func(yaml, list string) (string, string)
		// want are regexps for lines of the output; FILE and LIST stand
		// for the config's and the list's paths.
		want     []string
		wantCode int
	}{
		{
			name:     "good",
			edit:     func(y, l string) (string, string) { return y, l },
			want:     []string{`^FILE: ok`},
			wantCode: 0,
		},
		{
			name: "unknown key",
			edit: func(y, l string) (string, string) {
				return strings.Replace(y, "    record_route:", "    record_rout:", 1), l
			},
			want:     []string{`^FILE:9: .*record_rout`},
			wantCode: 1,
		},
		{
			name: "algorithm not a number",
			edit: func(y, l string) (string, string) {
				return strings.Replace(y, "    algorithm: 4", "    algorithm: four", 1), l
			},
			want:     []string{`^FILE:8: .*algorithm`},
			wantCode: 1,
		},
		{
			name: "bad dispatcher.list flags",
			edit: func(y, l string) (string, string) {
				return y, strings.Replace(l, "sip:127.0.0.1:5082 0 0", "sip:127.0.0.1:5082 X 0", 1)
			},
			want:     []string{`^LIST:3: .*flags`},
			wantCode: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			y, l := tc.edit(good.YAML(filepath.Join(dir, "x.sock"), "dispatcher.list"), good.List())
			cfgPath, listPath := filepath.Join(dir, "sipedge.yaml"), filepath.Join(dir, "dispatcher.list")
			if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(listPath, []byte(l), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code, err := proc.Run(t.Context(), bins.Sipedge, "check", "-c", cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "FILE", regexp.QuoteMeta(cfgPath))
				w = strings.ReplaceAll(w, "LIST", `(\S*/)?dispatcher\.list`)
				if !regexp.MustCompile("(?m)" + w).Match(out) {
					t.Errorf("output has no line matching %s", w)
				}
			}
			if t.Failed() {
				t.Logf("sipedge check -c %s printed:\n%s\nconfig:\n%s\nlist:\n%s", cfgPath, out, numbered(y), numbered(l))
			}
		})
	}
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}
