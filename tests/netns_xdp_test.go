package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/sipp"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// xdpPinDir is where the agent pins its maps (dataplane.DefaultPinDir; the
// config has no key for it, so the agent under test always uses it). The
// agent runs in a mount namespace of the test's own (netns.Mounts), so the
// folder is the test's alone.
const xdpPinDir = netns.BPFRoot + "/sipedge"

// TestNetnsXDPCalls: the topology of TestNetnsCallsComplete with the XDP
// fast path attached natively to the edge's four interfaces (cl0 for the
// requests, be1..be3 for the replies), alg 0 with Record-Route, and the
// Record-Route-honouring SIPp scenarios, so ACK and BYE come back through
// the edge loose-routed. Every call completes, each on one backend; the
// fast path forwards every datagram of the calls (INVITE, 180, 200, ACK,
// BYE, 200) with the bytes the backends and the client received, and the
// slow path forwards nothing; the backends and the client see no UDP
// checksum error; bpftool reads the pinned maps with their BTF field
// names; a destination set inactive over RPC gets no new call through the
// fast path; after the agent stops, no XDP program is left on the
// interfaces and the pins are gone.
//
// It is also the fresh-host test (issue 7): the agent runs in a private
// mount namespace where nothing is mounted at /sys/fs/bpf, as on a freshly
// booted host (whatever the test machine mounted there is unmounted in that
// namespace only). The agent must mount its BPF filesystem there itself,
// and the host's mounts stay as they were.
func TestNetnsXDPCalls(t *testing.T) {
	testutil.NeedRoot(t)
	sipp.NeedSIPp(t)
	testutil.NeedCommand(t, "bpftool", exec.LookPath)
	testutil.NeedCommand(t, "nstat", exec.LookPath)
	hostMounts := netns.HostMountedAt(t, netns.BPFRoot)
	mnt := netns.NewMounts(t, netns.FreshBPFRoot)
	if got := mnt.MountedAt(t, netns.BPFRoot); len(got) != 0 {
		t.Fatalf("the fresh mount namespace still has %v mounted at %s", got, netns.BPFRoot)
	}
	const calls, calls2 = 60, 30
	topo := netns.NewTopology(t, 3)
	ifaces := topo.ForXDP(t)

	var uas []*sipp.SIPp
	var dests []agent.Dest
	for i, b := range topo.Backends {
		addr := netip.AddrPortFrom(b.Addr, 5060)
		uas = append(uas, sipp.Start(t, sipp.Options{Name: fmt.Sprintf("uas%d", i+1), Scenario: sipp.UASRecordRoute, Local: addr, Exec: b.NS.Exec()}))
		dests = append(dests, agent.Dest{Set: 1, URI: sipURI(addr)})
	}
	edge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5060)
	a := agent.Start(t, bins, agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 0, RecordRoute: true}},
		Dests:     dests,
		XDP:       &agent.XDP{Interfaces: ifaces, Mode: "native"},
	}, agent.Options{Exec: mnt.Exec(topo.Edge)})

	// The agent answers RPC before the fast path is attached: wait for it.
	base := waitAttached(t, a, 10*time.Second)
	if got := mnt.MountedAt(t, netns.BPFRoot); strings.Join(got, ",") != "bpf" {
		t.Errorf("mounts at %s after the agent started: %v, want the one BPF filesystem the agent mounted", netns.BPFRoot, got)
	}
	if base.Mode != "native" || strings.Join(base.Interfaces, ",") != strings.Join(ifaces, ",") {
		t.Fatalf("fastpath.stats: mode %q on %v, want native on %v", base.Mode, base.Interfaces, ifaces)
	}
	for _, dev := range ifaces {
		if out := topo.Edge.Run(t, "ip", "-d", "link", "show", dev); !strings.Contains(out, "prog/xdp") {
			t.Fatalf("fastpath.stats says attached, but ip -d link show %s shows no XDP program:\n%s", dev, out)
		}
	}
	// Counters are compared as differences from here.
	baseSlow := slowStats(t, a)
	client := netip.AddrPortFrom(topo.Client.Addr, 5060)

	// Phase 1: all three backends up.
	uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UACRecordRoute, Remote: edge.String(),
		Local: client, Exec: topo.Client.NS.Exec(), Calls: calls, Rate: 20, Limit: 10})
	// The client's last message is the 200 to its last BYE, which the
	// program counted before sending it on: nothing of these calls is
	// still on its way, and the counters are final.
	st1 := fastPathStats(t, a)
	slow1 := slowStats(t, a)
	phase1 := sentCallIDs(t, uac)
	checkFastPathShare(t, "phase 1", st1.minus(base), slow1.minus(baseSlow), sipTraffic(t, uac, uas, phase1))
	checkPinnedMaps(t, mnt, topo.Edge, st1)

	// Phase 2: backend 2 inactive over RPC. The agent writes the new
	// tables into the maps on the dispatcher's change: no new call may
	// reach backend 2 through the fast path, and every call completes on
	// the others (Kamailio's walk to the next destination up).
	down := dests[1].URI
	if d, ok := st1.dest(1, down); !ok || d.Packets == 0 {
		t.Errorf("backend 2 (%s) got no call through the fast path while it was up (%+v): phase 2 would prove nothing", down, d)
	}
	a.MustCtl(t, "dispatcher.set_state", "i", "1", down)
	flags, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
	if err != nil {
		t.Fatal(err)
	}
	if f := flags["1 "+down]; f != "IX" && f != "IP" {
		t.Errorf("dispatcher.list FLAGS of %s = %q after set_state i, want IX or IP", down, f)
	}
	uac2 := runUAC(t, sipp.Options{Name: "uac2", Scenario: sipp.UACRecordRoute, Remote: edge.String(),
		Local: client, Exec: topo.Client.NS.Exec(), Calls: calls2, Rate: 30, Limit: 10})
	st2 := fastPathStats(t, a)
	slow2 := slowStats(t, a)
	phase2 := sentCallIDs(t, uac2)
	d1, _ := st1.dest(1, down)
	if d2, _ := st2.dest(1, down); d2.Packets != d1.Packets {
		t.Errorf("inactive backend 2 (%s): the fast path dispatched %d packets to it after set_state i", down, d2.Packets-d1.Packets)
	}
	checkFastPathShare(t, "phase 2", st2.minus(st1), slow2.minus(slow1), sipTraffic(t, uac2, uas, phase2))

	checkChecksums(t, append([]netns.Host{topo.Client}, topo.Backends...))

	// Stop the backends so their message logs are complete.
	stopAll(uas)
	s, logs := receivedRequests(t, uas)
	assertOneBackendPerCall(t, s, append(slices.Clone(phase1), phase2...), []string{"INVITE", "ACK", "BYE"})
	per2 := invitesPer(s, phase2, len(uas))
	t.Logf("calls per backend: phase 1 %v, phase 2 %v", invitesPer(s, phase1, len(uas)), per2)
	if per2[1] != 0 {
		t.Errorf("phase 2: inactive backend 2 got %d calls", per2[1])
	}
	// Each call went where alg 0 sends it (set index = position in the
	// set, which is not the list's order: fastpath.stats names both).
	byIdx := map[int]int{} // set index → backend (0-based)
	for _, d := range st1.Destinations {
		byIdx[d.Idx] = slices.IndexFunc(dests, func(x agent.Dest) bool { return x.URI == d.URI })
	}
	checkPicks(t, s, phase1, byIdx, -1)
	checkPicks(t, s, phase2, byIdx, 1)
	checkRewrites(t, edge, client, uas, logs, uac, uac2)

	// A clean stop detaches the program and removes the pins.
	a.Stop()
	for _, dev := range ifaces {
		if out := topo.Edge.Run(t, "ip", "-d", "link", "show", dev); strings.Contains(out, "xdp") {
			t.Errorf("after the agent stopped, ip -d link show %s still shows XDP:\n%s", dev, out)
		}
	}
	if ents, err := os.ReadDir(mnt.File(xdpPinDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the agent stopped, %s still exists (%v, entries %v)", xdpPinDir, err, ents)
	}
	if got := netns.HostMountedAt(t, netns.BPFRoot); strings.Join(got, ",") != strings.Join(hostMounts, ",") {
		t.Errorf("the host's mounts at %s changed from %v to %v: the test's mount namespace leaked", netns.BPFRoot, hostMounts, got)
	}
}

// checkPicks checks that each call of callIDs reached the backend alg 0
// picks (dispatch.Hash, the slow path's own, checked against Kamailio by
// TestCtlDispatcherHash and the oracle test; the program has its own in
// C): set index uint32(hash(Call-ID)) mod 3, or, when that index is the
// inactive backend down (-1: none), the next index (Kamailio's walk).
func checkPicks(t *testing.T, s seen, callIDs []string, byIdx map[int]int, down int) {
	t.Helper()
	var errs []string
	for _, cid := range callIDs {
		slot := int(dispatch.Hash(cid, "") % uint32(len(byIdx)))
		idx := slot
		if byIdx[idx] == down {
			idx = (idx + 1) % len(byIdx)
		}
		if got := s.backendsOf(cid); len(got) != 1 || got[0] != byIdx[idx] {
			errs = append(errs, fmt.Sprintf("Call-ID %s (hash slot %d) reached backends %v, want backend %d (set index %d)", cid, slot, got, byIdx[idx]+1, idx))
		}
	}
	reportErrs(t, errs)
}

// checkRewrites checks the fast path's rewrites in what the far ends
// received: requests at the backends carry the edge's Via on top and a
// decremented Max-Forwards; INVITEs the edge's Record-Route; ACK and BYE
// no Route naming the edge and the backend's Contact as Request-URI; the
// replies at the client only the client's own Via.
func checkRewrites(t *testing.T, edge, client netip.AddrPort, uas []*sipp.SIPp, backends []sipp.Messages, uacs ...*sipp.SIPp) {
	t.Helper()
	rr := "<" + sipURI(edge) + ";lr>"
	var errs []string
	for i, msgs := range backends {
		for _, m := range msgs.Requests(sipp.Received, "") {
			if v := m.TopVia(); sentBy(v) != edge.String() {
				errs = append(errs, fmt.Sprintf("backend %d: %s %s top Via %q, want the edge's %s", i+1, m.Method, m.CallID(), v, edge))
			}
			if mf := m.Get("Max-Forwards"); mf != "69" {
				errs = append(errs, fmt.Sprintf("backend %d: %s %s Max-Forwards %q, want 69", i+1, m.Method, m.CallID(), mf))
			}
			switch m.Method {
			case "INVITE":
				if got := m.Values("Record-Route"); len(got) != 1 || got[0] != rr {
					errs = append(errs, fmt.Sprintf("backend %d: INVITE %s Record-Route %q, want [%q]", i+1, m.CallID(), got, rr))
				}
			case "ACK", "BYE":
				if r := m.Values("Route"); len(r) != 0 {
					errs = append(errs, fmt.Sprintf("backend %d: %s %s still has Route %q", i+1, m.Method, m.CallID(), r))
				}
				if f := strings.Fields(m.StartLine); len(f) < 2 || !strings.HasPrefix(f[1], sipURI(uas[i].Opts.Local)) {
					errs = append(errs, fmt.Sprintf("backend %d: %q, want the backend's Contact as Request-URI", i+1, m.StartLine))
				}
			}
		}
	}
	for _, u := range uacs {
		for _, m := range u.Messages(t).Responses(sipp.Received, 0) {
			if v := m.Values("Via"); len(v) != 1 || sentBy(v[0]) != client.String() || strings.Contains(v[0], ",") {
				errs = append(errs, fmt.Sprintf("client: %d %s Via %q, want only the client's own", m.Status, m.CallID(), v))
			}
		}
	}
	reportErrs(t, errs)
}

// fpStats is RPC fastpath.stats.
type fpStats struct {
	Attached     bool              `json:"attached"`
	Interfaces   []string          `json:"interfaces"`
	Mode         string            `json:"mode"`
	Forwarded    uint64            `json:"forwarded"`
	Passed       uint64            `json:"passed"`
	Dropped      uint64            `json:"dropped"`
	PassReasons  []fpReason        `json:"pass_reasons"`
	DropReasons  []fpReason        `json:"drop_reasons"`
	Listeners    []fpListener      `json:"listeners"`
	Destinations []fpDest          `json:"destinations"`
	Events       map[string]uint64 `json:"events"`
	EventsLost   map[string]uint64 `json:"events_lost"`
}

type fpReason struct {
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

type fpListener struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	RX          uint64 `json:"rx"`
	FwdRequests uint64 `json:"fwd_requests"`
	FwdReplies  uint64 `json:"fwd_replies"`
	FwdBytes    uint64 `json:"fwd_bytes"`
	Passed      uint64 `json:"passed"`
	Dropped     uint64 `json:"dropped"`
}

type fpDest struct {
	Set     int    `json:"set"`
	Idx     int    `json:"idx"`
	URI     string `json:"uri"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func fastPathStats(t testing.TB, a *agent.Agent) fpStats {
	t.Helper()
	raw := a.MustCtl(t, "fastpath.stats")
	var st fpStats
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("fastpath.stats: %v: %s", err, raw)
	}
	return st
}

// waitAttached polls fastpath.stats until it says attached.
func waitAttached(t testing.TB, a *agent.Agent, timeout time.Duration) fpStats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := fastPathStats(t, a)
		if st.Attached {
			return st
		}
		if time.Now().After(deadline) {
			a.LogOutput()
			t.Fatalf("fastpath.stats still says not attached after %v: %+v", timeout, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s fpStats) listener() fpListener {
	if len(s.Listeners) == 0 {
		return fpListener{}
	}
	return s.Listeners[0]
}

func (s fpStats) dest(set int, uri string) (fpDest, bool) {
	for _, d := range s.Destinations {
		if d.Set == set && d.URI == uri {
			return d, true
		}
	}
	return fpDest{}, false
}

func (s fpStats) reasons() map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range s.PassReasons {
		out[r.Reason] = r.Count
	}
	return out
}

// minus returns the counters of s counted since b.
func (s fpStats) minus(b fpStats) fpStats {
	d := s
	d.Forwarded -= b.Forwarded
	d.Passed -= b.Passed
	d.Dropped -= b.Dropped
	br := b.reasons()
	d.PassReasons = nil
	for _, r := range s.PassReasons {
		if n := r.Count - br[r.Reason]; n > 0 {
			d.PassReasons = append(d.PassReasons, fpReason{r.Reason, n})
		}
	}
	l, bl := s.listener(), b.listener()
	l.RX -= bl.RX
	l.FwdRequests -= bl.FwdRequests
	l.FwdReplies -= bl.FwdReplies
	l.FwdBytes -= bl.FwdBytes
	l.Passed -= bl.Passed
	l.Dropped -= bl.Dropped
	d.Listeners = []fpListener{l}
	d.Events = map[string]uint64{}
	for k, v := range s.Events {
		if n := v - b.Events[k]; n > 0 {
			d.Events[k] = n
		}
	}
	d.EventsLost = nil // absent from the answer stays absent
	if s.EventsLost != nil {
		d.EventsLost = map[string]uint64{}
	}
	for k, v := range s.EventsLost {
		if n := v - b.EventsLost[k]; n > 0 {
			d.EventsLost[k] = n
		}
	}
	return d
}

// slowStatsT is RPC sipproxy.stats (the slow path).
type slowStatsT struct {
	Forwarded uint64        `json:"forwarded"`
	Replies   []slowCounter `json:"replies"`
	Drops     []slowCounter `json:"drops"`
	Handoffs  []slowCounter `json:"handoffs"`
}

type slowCounter struct {
	Label string `json:"label"`
	Count uint64 `json:"count"`
}

func slowStats(t testing.TB, a *agent.Agent) slowStatsT {
	t.Helper()
	raw := a.MustCtl(t, "sipproxy.stats")
	var st slowStatsT
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("sipproxy.stats: %v: %s", err, raw)
	}
	return st
}

func labelTotal(cs []slowCounter) uint64 {
	var n uint64
	for _, c := range cs {
		n += c.Count
	}
	return n
}

func (s slowStatsT) minus(b slowStatsT) slowStatsT {
	sub := func(x, y []slowCounter) []slowCounter {
		var out []slowCounter
		for _, c := range x {
			for _, o := range y {
				if o.Label == c.Label {
					c.Count -= o.Count
				}
			}
			if c.Count > 0 {
				out = append(out, c)
			}
		}
		return out
	}
	return slowStatsT{Forwarded: s.Forwarded - b.Forwarded, Replies: sub(s.Replies, b.Replies), Drops: sub(s.Drops, b.Drops), Handoffs: sub(s.Handoffs, b.Handoffs)}
}

// callTraffic is one client run as the SIPp message logs show it: what the
// client and the backends sent to the edge (every message of these calls
// goes through it), and what they received from it.
type callTraffic struct {
	calls    int
	requests map[string]int // client → edge, by method
	replies  map[string]int // backends → edge, "180 INVITE", "200 BYE", ...
	// received and receivedBytes: datagrams and their payload bytes the
	// backends and the client received, i.e. all the edge forwarded.
	received, receivedBytes int
}

func countAll(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// sipTraffic reads the client's log and the messages of callIDs in the
// backends' logs (which hold every run).
func sipTraffic(t testing.TB, uac *sipp.SIPp, backends []*sipp.SIPp, callIDs []string) callTraffic {
	t.Helper()
	tr := callTraffic{calls: len(callIDs), requests: map[string]int{}, replies: map[string]int{}}
	for _, m := range uac.Messages(t) {
		switch {
		case m.Dir == sipp.Sent && m.IsRequest():
			tr.requests[m.Method]++
		case m.Dir == sipp.Received:
			tr.received++
			tr.receivedBytes += len(m.Raw)
		}
	}
	mine := func(m sipp.Message) bool { return slices.Contains(callIDs, m.CallID()) }
	for _, b := range backends {
		// A backend logs its 200 to a BYE around sending it: wait until
		// every BYE it got has its 200 in the log.
		msgs := b.WaitMessages(t, 2*time.Second, func(ms sipp.Messages) bool {
			ms = ms.Filter(mine)
			return len(ms.Requests(sipp.Received, "BYE")) == len(ms.Responses(sipp.Sent, 200).Filter(func(m sipp.Message) bool {
				_, method := m.CSeq()
				return method == "BYE"
			}))
		})
		for _, m := range msgs {
			if !mine(m) {
				continue
			}
			switch {
			case m.Dir == sipp.Sent && !m.IsRequest():
				_, method := m.CSeq()
				tr.replies[fmt.Sprintf("%d %s", m.Status, method)]++
			case m.Dir == sipp.Received:
				tr.received++
				tr.receivedBytes += len(m.Raw)
			}
		}
	}
	return tr
}

// passHints name the usual cause of a pass reason in this topology, for
// the failure message. None is expected: see checkFastPathShare.
var passHints = map[string]string{
	"PASS_FIB":                "the FIB lookup failed: IP forwarding off on the edge interface, or no route",
	"PASS_FIB_NO_NEIGH":       "no neighbour entry for the next hop (the topology adds permanent ones)",
	"PASS_NO_CSUM":            "a datagram without UDP checksum (tx offload on at a far end?)",
	"PASS_NOT_LISTENER":       "UDP to the edge that is not for the listener",
	"PASS_STRICT_ROUTE":       "a Route without lr",
	"PASS_NEXT_HOP_TRANSPORT": "the Contact's transport=UDP not taken as UDP",
}

// checkFastPathShare compares the fast path's counters for one client run
// with what SIPp sent and received, and the slow path's.
//
// The share asserted is 100 %, not a lower threshold: each call is INVITE,
// 180, 200, ACK, BYE, 200 through the edge, and each of these is a message
// the fast path takes (docs/fastpath.md "What it forwards": a request
// dispatched by Call-ID, a loose-routed ACK/BYE whose top Route is ours
// and whose Request-URI is the backend's IP Contact, a response whose top
// Via is ours). The topology leaves no reason to pass one: permanent
// neighbours (no FIB warm-up), forwarding on, full checksums from the far
// ends, no other traffic to the listener (IPv6 off, no ARP). SIPp
// retransmissions, were there any, are the same messages again and take
// the fast path too; nothing here depends on timing. So any passed
// datagram is a regression, and a threshold below 100 % would only hide
// one (a whole message kind is 1/6 = 16.7 % of the traffic, one lost
// retransmission far less).
func checkFastPathShare(t *testing.T, phase string, fp fpStats, slow slowStatsT, tr callTraffic) {
	t.Helper()
	l := fp.listener()
	fwd := l.FwdRequests + l.FwdReplies
	sent := countAll(tr.requests) + countAll(tr.replies)
	share := float64(fwd) / float64(max(l.RX, 1))
	t.Logf("%s: %d calls; SIPp sent %d datagrams to the edge: requests %v, replies %v", phase, tr.calls, sent, tr.requests, tr.replies)
	t.Logf("%s: fast path: rx %d, forwarded %d (requests %d, replies %d; %d payload bytes), passed %d, dropped %d: fast-path share %.1f%% (%d/%d)",
		phase, l.RX, fwd, l.FwdRequests, l.FwdReplies, l.FwdBytes, l.Passed, l.Dropped, 100*share, fwd, l.RX)
	t.Logf("%s: fast path: pass reasons %v, drop reasons %v, events %v", phase, fp.PassReasons, fp.DropReasons, fp.Events)
	t.Logf("%s: slow path: forwarded %d, local replies %v, drops %v, handoffs %v", phase, slow.Forwarded, slow.Replies, slow.Drops, slow.Handoffs)

	if l.RX != uint64(sent) {
		t.Errorf("%s: the listener's fast-path rx is %d, but the client and the backends sent %d datagrams to the edge", phase, l.RX, sent)
	}
	if fwd != l.RX || l.FwdRequests != uint64(countAll(tr.requests)) || l.FwdReplies != uint64(countAll(tr.replies)) {
		t.Errorf("%s: fast path forwarded %d of %d datagrams (%.1f%%: requests %d of %d, replies %d of %d), want all",
			phase, fwd, l.RX, 100*share, l.FwdRequests, countAll(tr.requests), l.FwdReplies, countAll(tr.replies))
	}
	for _, r := range fp.PassReasons {
		t.Errorf("%s: %d datagram(s) passed with %s (%s)", phase, r.Count, r.Reason, passHints[r.Reason])
	}
	if fp.Dropped != 0 {
		t.Errorf("%s: fast path dropped %d datagrams: %v", phase, fp.Dropped, fp.DropReasons)
	}
	// The slow path forwarded what the fast path passed, nothing else.
	if slow.Forwarded != l.Passed || labelTotal(slow.Drops) != 0 || labelTotal(slow.Replies) != 0 {
		t.Errorf("%s: slow path forwarded %d (drops %v, local replies %v), want exactly the %d datagrams the fast path passed",
			phase, slow.Forwarded, slow.Drops, slow.Replies, l.Passed)
	}
	// The far ends received all the bytes the fast path sent, no more.
	if tr.received != sent || l.FwdBytes != uint64(tr.receivedBytes) {
		t.Errorf("%s: fast path forwarded %d payload bytes; the backends and the client received %d datagrams (of %d sent) with %d bytes",
			phase, l.FwdBytes, tr.received, sent, tr.receivedBytes)
	}
	// Per message kind, from the events: INVITE, ACK, BYE, every reply to
	// INVITE (provisional and final) and the final replies to BYE.
	want := map[string]int{
		"request INVITE": tr.requests["INVITE"],
		"request ACK":    tr.requests["ACK"],
		"request BYE":    tr.requests["BYE"],
	}
	for k, n := range tr.replies {
		var status int
		var method string
		if _, err := fmt.Sscan(k, &status, &method); err != nil {
			t.Fatalf("reply key %q: %v", k, err)
		}
		if method == "INVITE" || (method == "BYE" || method == "CANCEL") && status >= 200 {
			want["reply "+method] += n
		}
	}
	if fp.EventsLost == nil || len(fp.EventsLost) != 0 {
		t.Errorf("%s: fastpath.stats events_lost %v, want present and empty (the agent drained every event)", phase, fp.EventsLost)
	}
	for k, n := range want {
		if fp.Events[k] != uint64(n) || n < tr.calls {
			t.Errorf("%s: fast path events %q = %d, SIPp sent %d (%d calls)", phase, k, fp.Events[k], n, tr.calls)
		}
	}
}

// checkPinnedMaps dumps pinned maps with bpftool inside the agent's mount
// and network namespaces (nsenter, which keeps the agent's /sys/fs/bpf
// visible, unlike ip netns exec) and checks that their values carry BTF
// field names and agree with fastpath.stats.
func checkPinnedMaps(t *testing.T, mnt *netns.Mounts, edge *netns.NS, st fpStats) {
	t.Helper()
	dump := func(name string) []bpftoolEntry {
		t.Helper()
		out := mnt.Run(t, edge, "bpftool", "-j", "map", "dump", "pinned", filepath.Join(xdpPinDir, name))
		var raw []struct {
			Formatted *bpftoolEntry `json:"formatted"`
		}
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatalf("bpftool map dump %s: %v\n%.2000s", name, err, out)
		}
		var ents []bpftoolEntry
		for _, r := range raw {
			if r.Formatted == nil {
				t.Fatalf("bpftool map dump %s: no BTF-formatted values:\n%.2000s", name, out)
			}
			ents = append(ents, *r.Formatted)
		}
		return ents
	}
	// pass_count: per-CPU u64 by reason number; the sum is the passes.
	var passed uint64
	for _, e := range dump("pass_count") {
		for _, v := range e.perCPU(t) {
			var n uint64
			if err := json.Unmarshal(v, &n); err != nil {
				t.Fatalf("pass_count value %s: %v", v, err)
			}
			passed += n
		}
	}
	if passed != st.Passed {
		t.Errorf("bpftool pass_count sums to %d, fastpath.stats says %d passed", passed, st.Passed)
	}
	// event_lost: per-CPU u64 by kind × 16 + method; the sum is what
	// fastpath.stats reports as events_lost.
	var lost, wantLost uint64
	entries := dump("event_lost")
	for _, e := range entries {
		for _, v := range e.perCPU(t) {
			var n uint64
			if err := json.Unmarshal(v, &n); err != nil {
				t.Fatalf("event_lost value %s: %v", v, err)
			}
			lost += n
		}
	}
	for _, n := range st.EventsLost {
		wantLost += n
	}
	if len(entries) != 48 || lost != wantLost {
		t.Errorf("bpftool event_lost: %d entries summing to %d; fastpath.stats events_lost %v", len(entries), lost, st.EventsLost)
	}
	// listener_stats: struct listener_stats by name.
	var rx, fwdReq uint64
	for _, e := range dump("listener_stats") {
		for _, v := range e.perCPU(t) {
			var ls struct {
				RX          *uint64 `json:"rx"`
				FwdRequests *uint64 `json:"fwd_requests"`
			}
			if err := json.Unmarshal(v, &ls); err != nil || ls.RX == nil || ls.FwdRequests == nil {
				t.Fatalf("listener_stats value %s has no BTF fields rx, fwd_requests (%v)", v, err)
			}
			rx += *ls.RX
			fwdReq += *ls.FwdRequests
		}
	}
	if l := st.listener(); rx != l.RX || fwdReq != l.FwdRequests {
		t.Errorf("bpftool listener_stats: rx %d, fwd_requests %d; fastpath.stats: %d, %d", rx, fwdReq, l.RX, l.FwdRequests)
	}
	// dst_stats: struct dst_stats {packets, bytes}.
	var pkts uint64
	for _, e := range dump("dst_stats") {
		for _, v := range e.perCPU(t) {
			var ds struct {
				Packets *uint64 `json:"packets"`
				Bytes   *uint64 `json:"bytes"`
			}
			if err := json.Unmarshal(v, &ds); err != nil || ds.Packets == nil || ds.Bytes == nil {
				t.Fatalf("dst_stats value %s has no BTF fields packets, bytes (%v)", v, err)
			}
			pkts += *ds.Packets
		}
	}
	var want uint64
	for _, d := range st.Destinations {
		want += d.Packets
	}
	if pkts != want || pkts == 0 {
		t.Errorf("bpftool dst_stats: %d packets; fastpath.stats destinations: %d", pkts, want)
	}
	// listeners: struct listener_key → struct listener, by name.
	ls := dump("listeners")
	if len(ls) != 1 {
		t.Fatalf("bpftool listeners: %d entries, want 1", len(ls))
	}
	var key struct {
		Port *int `json:"port"`
	}
	var val struct {
		SetID *int `json:"set_id"`
		Alg   *int `json:"alg"`
	}
	if err := json.Unmarshal(ls[0].Key, &key); err != nil || key.Port == nil || *key.Port != 5060 {
		t.Errorf("bpftool listeners key %s: want BTF field port = 5060 (%v)", ls[0].Key, err)
	}
	if err := json.Unmarshal(ls[0].Value, &val); err != nil || val.SetID == nil || *val.SetID != 1 || val.Alg == nil || *val.Alg != 0 {
		t.Errorf("bpftool listeners value %.300s: want BTF fields set_id = 1, alg = 0 (%v)", ls[0].Value, err)
	}
}

// bpftoolEntry is the BTF-formatted part of one element of `bpftool -j
// map dump` ({"key": [bytes], ..., "formatted": {...}}): {"key": K,
// "value": V} or, per CPU, {"key": K, "values": [{"cpu": 0, "value": V},
// ...]}, with K and V printed from the map's BTF types (struct fields by
// name). Without BTF there is no "formatted" member.
type bpftoolEntry struct {
	Key    json.RawMessage `json:"key"`
	Value  json.RawMessage `json:"value"`
	Values []struct {
		CPU   int             `json:"cpu"`
		Value json.RawMessage `json:"value"`
	} `json:"values"`
}

func (e bpftoolEntry) perCPU(t testing.TB) []json.RawMessage {
	t.Helper()
	if len(e.Values) == 0 {
		t.Fatalf("bpftool entry %+v: no per-CPU values", e)
	}
	var out []json.RawMessage
	for _, v := range e.Values {
		out = append(out, v.Value)
	}
	return out
}

var nstatRE = regexp.MustCompile(`(?m)^((?:Udp|Ip)\w+)\s+(\d+)`)

// checkChecksums: no far end saw a UDP datagram with a bad checksum (a
// wrong incremental checksum update in the fast path shows up here) or an
// IPv4 header error (the program writes the header and its checksum), and
// none was dropped for another error.
func checkChecksums(t *testing.T, hosts []netns.Host) {
	t.Helper()
	for _, h := range hosts {
		out := h.NS.Run(t, "nstat", "-a", "-s", "-z", "UdpInCsumErrors", "UdpInErrors", "UdpInDatagrams", "IpInHdrErrors")
		got := map[string]int{}
		for _, m := range nstatRE.FindAllStringSubmatch(out, -1) {
			got[m[1]], _ = strconv.Atoi(m[2])
		}
		if got["UdpInCsumErrors"] != 0 || got["UdpInErrors"] != 0 || got["IpInHdrErrors"] != 0 || got["UdpInDatagrams"] == 0 {
			t.Errorf("%s %s: %v, want UdpInCsumErrors, UdpInErrors and IpInHdrErrors 0, some UdpInDatagrams", h.NS.Name, h.Dev, got)
		} else {
			t.Logf("%s: %v", h.NS.Name, got)
		}
	}
}

// invitesPer counts, per backend, the calls of callIDs whose INVITE it got.
func invitesPer(s seen, callIDs []string, n int) []int {
	out := make([]int, n)
	for _, cid := range callIDs {
		for b, methods := range s[cid] {
			if methods["INVITE"] > 0 {
				out[b]++
			}
		}
	}
	return out
}
