package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/sipp"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// Settings of TestNetnsXDPProbingSIPp: probes every I = 200 ms, deadline
// D = I (ds_ping_timeout unset), T = 3 failed probes to go inactive,
// IT = 2 good ones to come back. T = 3 keeps a destination trying (TP)
// for (T − 1) × I = 400 ms; the way through trying is read from the
// agent's debug trail of FLAGS changes, which a stalled poller cannot
// miss; IT = 2 shows that one good reply is not enough.
const (
	sippInterval    = 200 * time.Millisecond
	sippThreshold   = 3 // ds_probing_threshold
	sippInactiveThr = 2 // ds_inactive_threshold
	sippDeadline    = sippInterval
	// sippTolerance loosens the lower bounds: the event records' stamps
	// are the agent's, and a probe started late (a loaded host) still
	// has its successors at their due times (the engine schedules from
	// due times), so the failed probes may span up to that lateness less.
	// Far below the interval the bounds tell apart.
	sippTolerance = 100 * time.Millisecond
)

// TestNetnsXDPProbingSIPp: probing with the fast path on, a real SIPp
// backend and a backend that goes silent, then answers 503 (issue 8, the
// first "done when").
//
// Two backends in their namespaces: backend 1 a Go responder switched
// between 200, silence and 503; backend 2 SIPp (uas_options.xml), which
// answers the probes (OPTIONS at any time, each a call of its own) and the
// INVITEs with 200. The agent runs XDP native on every edge interface
// with two listeners on set 1: udp 5060 with algorithm 0, which the fast
// path forwards, and udp 5070 with algorithm 13 (all priorities 0: round
// robin), which the fast path passes up (PASS_ALG_UNSUPPORTED): the slow
// path forwards those calls. Probing is I = 200 ms, T = 3, IT = 2; in
// run 1, mode 1, `sipedgectl events dispatcher:` runs from the start, and
// a hook in runs 1, 3 and 4.
//
// Run 1, ds_ping_reply_codes unset (503 fails a probe):
//
//   - both up: each path sends calls to both backends;
//   - backend 1 silent: its FLAGS go AP → TP → IP (trying is seen, for
//     the (T − 1) × I it lasts), after at least T unanswered probes,
//     between (T − 1) × I + D and T × I + D (+ margin) after the silence
//     began (docs/probing.md, "Time to inactive"); then neither path
//     sends it a new call (fast path packet counter unchanged, slow path
//     calls all to SIPp);
//   - it answers 200 again: IP → AP after at least IT good replies,
//     between (IT − 1) × I and IT × I (+ margin); both paths use it again;
//   - it answers 503: AP → TP → IP again (each probe fails on its reply:
//     D is replaced by the round trip), no new call; then 200: AP.
//
// The event stream and the hook each saw exactly four events, in order:
// dst-down inactive 408, dst-up active 200, dst-down inactive 503, dst-up
// active 200, all of backend 1; SIPp's backend fired none.
//
// Runs 2 to 4, each a new agent, give only backend 1 the probing flag:
//
//   - run 2, mode 3 and ds_ping_reply_codes "code=503": backend 1 (AP)
//     answers every probe 503 and stays AP (never trying) over 3 × T × I,
//     gets calls from both paths, and no event fires;
//   - run 3, mode 2: backend 1 loaded IP is probed while silent and stays
//     IP; answering, it goes AX (probing ends there): dst-down at start,
//     then dst-up;
//   - run 4, mode 0: backend 1 loaded AP goes AX after its first probe.
//
// In runs 3 and 4 backend 1 gets no probe once AX, then calls from both
// paths; SIPp's destination, without the flag, gets no probe in runs 2-4
// (its message log) and stays AX. TestProbingModes covers the modes in
// full on loopback (six destinations of every flag combination).
func TestNetnsXDPProbingSIPp(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommand(t, "nsenter", exec.LookPath)
	sipp.NeedSIPp(t)
	mnt := netns.NewMounts(t, netns.FreshBPFRoot)
	topo := netns.NewTopology(t, 2)
	ifaces := topo.ForXDP(t)

	flakyAddr := netip.AddrPortFrom(topo.Backends[0].Addr, 5060)
	flaky := serveResponder(t, topo.Backends[0].NS.ListenUDP(t, flakyAddr), 200)
	uasAddr := netip.AddrPortFrom(topo.Backends[1].Addr, 5060)
	uas := sipp.Start(t, sipp.Options{Name: "uas", Scenario: sipp.UASOptions, Local: uasAddr, Exec: topo.Backends[1].NS.Exec()})
	flakyURI, uasURI := sipURI(flakyAddr), sipURI(uasAddr)

	fastEdge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5060)
	slowEdge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5070)
	clientAddr := netip.AddrPortFrom(topo.Client.Addr, 5060)
	cc := topo.Client.NS.ListenUDP(t, clientAddr)
	fastC := &rawClient{conn: cc, Addr: clientAddr, edge: fastEdge}
	slowC := &rawClient{conn: cc, Addr: clientAddr, edge: slowEdge}

	keys := func(mode int, more ...[2]string) [][2]string {
		return append([][2]string{
			{"ds_ping_interval", sippInterval.String()},
			{"ds_probing_mode", fmt.Sprint(mode)},
			{"ds_probing_threshold", fmt.Sprint(sippThreshold)},
			{"ds_inactive_threshold", fmt.Sprint(sippInactiveThr)},
		}, more...)
	}
	// start runs the agent with keys, backend 1 loaded with flakyFlags
	// (dispatcher.list flags: 1 inactive, 8 probing), SIPp with none.
	start := func(keys [][2]string, flakyFlags int, tweak func(*agent.Config)) *agent.Agent {
		t.Helper()
		dests := []agent.Dest{{Set: 1, URI: flakyURI, Flags: flakyFlags}, {Set: 1, URI: uasURI}}
		cfg := agent.Config{
			Listeners: []agent.Listener{{Name: "fast", Address: fastEdge}, {Name: "slow", Address: slowEdge}},
			Rules: []agent.Rule{
				{Listener: "fast", Set: 1, Algorithm: 0},
				{Listener: "slow", Set: 1, Algorithm: 13},
			},
			Dests:          dests,
			XDP:            &agent.XDP{Interfaces: ifaces, Mode: "native"},
			DispatcherKeys: keys,
		}
		if tweak != nil {
			tweak(&cfg)
		}
		a := agent.Start(t, bins, cfg, agent.Options{Exec: mnt.Exec(topo.Edge)})
		waitAttached(t, a, 10*time.Second)
		return a
	}

	// calls sends n INVITEs through each path (Call-IDs NAME.fast-i and
	// NAME.slow-i), waits until the backends got all 2n, and returns what
	// each got by path and the fast path's packets to each meanwhile. The
	// slow path's share is proved by the fast path's PASS_ALG_UNSUPPORTED
	// count and the slow path's forwarded count.
	const n = 30
	calls := func(a *agent.Agent, name string) pathCalls {
		t.Helper()
		var got [2][2]int
		var fp [2]uint64
		ctl := dialCtl(t, a) // no process per call: sipedgectl under -race takes a second
		defer ctl.close()
		before, slowBefore := ctl.fastPathStats(t), ctl.slowStats(t)
		for i := range n {
			sendInvite(t, fastC, fmt.Sprintf("%s.fast-%d", name, i))
			sendInvite(t, slowC, fmt.Sprintf("%s.slow-%d", name, i))
		}
		count := func(ms sipp.Messages) {
			for p, path := range []string{".fast", ".slow"} {
				got[0][p] = countPrefix(flaky.Invites(), name+path)
				got[1][p] = countPrefix(callIDs(ms.Requests(sipp.Received, "INVITE")), name+path)
			}
		}
		uas.WaitMessages(t, 10*time.Second, func(ms sipp.Messages) bool {
			count(ms)
			return got[0][0]+got[1][0] == n && got[0][1]+got[1][1] == n
		})
		after, slowAfter := ctl.fastPathStats(t), ctl.slowStats(t)
		for i, uri := range []string{flakyURI, uasURI} {
			b, _ := before.dest(1, uri)
			x, _ := after.dest(1, uri)
			fp[i] = x.Packets - b.Packets
		}
		passed := after.minus(before).reasons()["PASS_ALG_UNSUPPORTED"]
		forwarded := slowAfter.Forwarded - slowBefore.Forwarded
		t.Logf("%s: INVITEs [fast slow] backend 1 %v, SIPp %v; fast path packets %v; passed up for the algorithm %d, slow path forwarded %d",
			name, got[0], got[1], fp, passed, forwarded)
		if got[0][0]+got[1][0] != n || got[0][1]+got[1][1] != n {
			t.Fatalf("%s: the backends got %v INVITEs, want %d per path", name, got, n)
		}
		if passed < n || forwarded < n {
			t.Fatalf("%s: the fast path passed %d INVITEs up for their algorithm and the slow path forwarded %d, want at least %d each: the slow path does not carry the calls of listener slow", name, passed, forwarded, n)
		}
		if fp[0]+fp[1] < n {
			t.Fatalf("%s: the fast path dispatched %d packets, want at least %d: it does not carry the calls of listener fast", name, fp[0]+fp[1], n)
		}
		return pathCalls{name, got, fp}
	}

	// Run 1: 503 fails a probe.
	var hooks hookDir
	a := start(keys(1), 0, func(cfg *agent.Config) { hooks = withHook(t, cfg) })
	stream := watchEvents(t, a, "dispatcher:")
	w := watchFlags(t, a)
	w.wait(t, flakyURI, "AP", 5*time.Second)
	w.wait(t, uasURI, "AP", 5*time.Second)
	calls(a, "up").bothPaths(t)

	// goDown switches backend 1 to code (0: silence) and returns when it
	// is inactive, checking the way there (AP, TP, IP), the time the
	// event says it took against [least, most], and the probes it failed.
	events := 0
	goDown := func(code int32, least, most time.Duration) {
		t.Helper()
		mark := len(flagTrail(a, flakyURI))
		since := time.Now()
		flaky.code.Store(code)
		w.wait(t, flakyURI, "IP", 10*time.Second)
		// The agent's debug trail has every change, however short (the
		// poller may miss trying on a stalled host).
		if h := flagTrail(a, flakyURI)[mark:]; !slices.Equal(h, []string{"TP", "IP"}) {
			t.Errorf("answering %d: FLAGS went %v, want [TP IP] (trying first)", code, h)
		}
		events++
		took := stream.waitRecord(t, events, 5*time.Second).Sub(since)
		t.Logf("answering %d: inactive %v later", code, took.Round(time.Millisecond))
		if took < least-sippTolerance || took > most {
			t.Errorf("answering %d: inactive %v later, want between %v and %v", code, took, least, most)
		}
		failed, answered := flaky.since(since) // silence: unanswered probes
		if code != 0 {
			failed = answered // each answered 503
		}
		if failed < sippThreshold {
			t.Errorf("answering %d: inactive after %d failed probes, want at least ds_probing_threshold = %d", code, failed, sippThreshold)
		}
	}
	comeBack := func() {
		t.Helper()
		mark := w.mark(flakyURI)
		since := time.Now()
		flaky.code.Store(200)
		w.wait(t, flakyURI, "AP", 10*time.Second)
		if h, gap := w.since(flakyURI, mark); !slices.Equal(h, []string{"AP"}) {
			t.Errorf("answering 200 again: FLAGS went %v, want [AP] (inactive until the threshold; the poller's longest gap was %v)", h, gap)
		}
		events++
		took := stream.waitRecord(t, events, 5*time.Second).Sub(since)
		t.Logf("answering 200 again: active %v later", took.Round(time.Millisecond))
		least, most := (sippInactiveThr-1)*sippInterval, sippInactiveThr*sippInterval+probeMargin
		if took < least-sippTolerance || took > most {
			t.Errorf("answering 200 again: active %v later, want between %v and %v", took, least, most)
		}
		if _, answered := flaky.since(since); answered < sippInactiveThr {
			t.Errorf("active after %d good probes, want at least ds_inactive_threshold = %d", answered, sippInactiveThr)
		}
	}

	goDown(0, (sippThreshold-1)*sippInterval+sippDeadline, sippThreshold*sippInterval+sippDeadline+probeMargin)
	calls(a, "silent").noneToFlaky(t)
	comeBack()
	calls(a, "back").bothPaths(t)
	goDown(503, (sippThreshold-1)*sippInterval, sippThreshold*sippInterval+probeMargin)
	calls(a, "busy").noneToFlaky(t)
	comeBack()

	// AX until the first probe's reply, perhaps before the first poll.
	if h, _ := w.since(uasURI, 0); !slices.Equal(h, []string{"AP"}) && !slices.Equal(h, []string{"AX", "AP"}) {
		t.Errorf("SIPp's FLAGS went %v, want AP all along after its first probe", h)
	}
	h, gap := w.since(flakyURI, 0)
	t.Logf("backend 1's FLAGS went %v (dispatcher.list polled, longest gap %v)", h, gap.Round(time.Millisecond))
	hooks.waitRuns(t, events, 10*time.Second)
	time.Sleep(2 * sippInterval) // a duplicate would show by now
	w.stop()
	stream.stop(t)
	want := []string{
		"dispatcher:dst-down " + flakyURI + " inactive 408",
		"dispatcher:dst-up " + flakyURI + " active 200",
		"dispatcher:dst-down " + flakyURI + " inactive 503",
		"dispatcher:dst-up " + flakyURI + " active 200",
	}
	var got []string
	for _, r := range stream.records(t) {
		got = append(got, fmt.Sprintf("%v %v %v %v", r["event"], r["uri"], r["state"], r["code"]))
	}
	if !slices.Equal(got, want) {
		t.Errorf("sipedgectl events printed\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	got = got[:0]
	for _, r := range hooks.runs(t) {
		got = append(got, r["SIPEDGE_EVENT"]+" "+r["SIPEDGE_URI"]+" "+r["SIPEDGE_STATE"]+" "+r["SIPEDGE_CODE"])
	}
	// Runs may overlap: compare as sets with counts.
	slices.Sort(got)
	sorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, sorted) {
		t.Errorf("the hook ran for\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(sorted, "\n  "))
	}
	a.Stop()

	// From here on only backend 1 has the probing flag and the modes
	// other than 1 never probe SIPp's destination.
	unflaggedSince := time.Now()

	// Run 2: mode 3 (probe the flagged destinations, for good), code=503
	// accepted, backend 1 (flags 8: AP) answering 503 from the start.
	flaky.code.Store(503)
	since := time.Now()
	a = start(keys(3, [2]string{"ds_ping_reply_codes", "code=503"}), 8, nil)
	stream = watchEvents(t, a, "dispatcher:")
	w = watchFlags(t, a)
	w.wait(t, flakyURI, "AP", 5*time.Second)
	time.Sleep(3 * sippThreshold * sippInterval)
	if _, answered := flaky.since(since); answered < 2*sippThreshold {
		t.Errorf("only %d probes answered 503 while watched, want at least %d: the hold proves nothing", answered, 2*sippThreshold)
	}
	if h, gap := w.since(flakyURI, 0); !slices.Equal(h, []string{"AP"}) {
		t.Errorf("code=503 accepted: backend 1's FLAGS went %v, want [AP] all along (the poller's longest gap was %v)", h, gap)
	}
	if h, _ := w.since(uasURI, 0); !slices.Equal(h, []string{"AX"}) {
		t.Errorf("mode 3: SIPp's FLAGS went %v, want [AX] (not probed)", h)
	}
	calls(a, "accepted").bothPaths(t)
	time.Sleep(2 * sippInterval)
	w.stop()
	stream.stop(t)
	if recs := stream.records(t); len(recs) != 0 {
		t.Errorf("code=503 accepted: events fired: %v", recs)
	}
	a.Stop()

	// Runs 3 and 4: modes 2 and 0 probe a flagged destination only until
	// a result. Mode 2: an inactive one until it is active; loaded IP, it
	// fires dst-down at start, stays IP while silent (probed: a silent
	// destination that is not probed would stay IP as well, so the probes
	// are counted), and once answering goes AX after IT good probes,
	// firing dst-up. Mode 0: until its first result; loaded AP, it is AX
	// after one probe (perhaps before the poller's first look), no event.
	// Then the probes stop, and the destination, active, gets calls from
	// both paths.
	for _, tc := range []struct {
		mode, flags int
		silentFirst bool
		flagsWent   [][]string // acceptable histories
		events      []string   // the hook's runs, sorted
	}{
		{2, 1 | 8, true, [][]string{{"IP", "AX"}}, []string{
			"dispatcher:dst-down " + flakyURI + " inactive ",
			"dispatcher:dst-up " + flakyURI + " active 200",
		}},
		{0, 8, false, [][]string{{"AP", "AX"}, {"AX"}}, nil},
	} {
		name := fmt.Sprintf("mode %d", tc.mode)
		var hooks hookDir
		flaky.code.Store(200)
		if tc.silentFirst {
			flaky.code.Store(0)
		}
		since := time.Now()
		a := start(keys(tc.mode), tc.flags,
			func(cfg *agent.Config) { hooks = withHook(t, cfg) })
		w := watchFlags(t, a)
		if tc.silentFirst {
			w.wait(t, flakyURI, "IP", 5*time.Second)
			deadline := time.Now().Add(5 * time.Second)
			for unanswered, _ := flaky.since(since); unanswered < sippThreshold; unanswered, _ = flaky.since(since) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: backend 1, inactive and probing, got %d probes in 5 s, want %d", name, unanswered, sippThreshold)
				}
				time.Sleep(flagPoll)
			}
			flaky.code.Store(200)
		}
		w.wait(t, flakyURI, "AX", 5*time.Second)
		if flaky.Options() == 0 {
			t.Errorf("%s: backend 1 was never probed", name)
		}
		time.Sleep(sippInterval) // a probe on the wire as it changed
		n := flaky.Options()
		time.Sleep(3 * sippInterval)
		if more := flaky.Options() - n; more != 0 {
			t.Errorf("%s: backend 1 got %d probes over 3 intervals after it became active, want none", name, more)
		}
		if h, gap := w.since(flakyURI, 0); !slices.ContainsFunc(tc.flagsWent, func(want []string) bool { return slices.Equal(h, want) }) {
			t.Errorf("%s: backend 1's FLAGS went %v, want %v (the poller's longest gap was %v)", name, h, tc.flagsWent, gap)
		}
		if h, _ := w.since(uasURI, 0); !slices.Equal(h, []string{"AX"}) {
			t.Errorf("%s: SIPp's FLAGS went %v, want [AX] (not probed)", name, h)
		}
		calls(a, strings.ReplaceAll(name, " ", "")).bothPaths(t)
		hooks.waitRuns(t, len(tc.events), 10*time.Second)
		w.stop()
		var got []string
		for _, r := range hooks.runs(t) {
			got = append(got, r["SIPEDGE_EVENT"]+" "+r["SIPEDGE_URI"]+" "+r["SIPEDGE_STATE"]+" "+r["SIPEDGE_CODE"])
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.events) {
			t.Errorf("%s: the hook ran for\n  %s\nwant exactly\n  %s", name, strings.Join(got, "\n  "), strings.Join(tc.events, "\n  "))
		}
		a.Stop()
	}

	// SIPp took the probes between the calls: every OPTIONS and INVITE it
	// got was answered 200. Modes 3, 2 and 0 never probed it (no probing
	// flag): no OPTIONS after run 1.
	uas.Stop()
	ms := uas.Messages(t)
	opts, invs := ms.Requests(sipp.Received, "OPTIONS"), len(ms.Requests(sipp.Received, "INVITE"))
	oks := len(ms.Responses(sipp.Sent, 200))
	t.Logf("SIPp got %d OPTIONS and %d INVITEs, sent %d 200s", len(opts), invs, oks)
	if len(opts) < 2*sippInactiveThr || oks != len(opts)+invs {
		t.Errorf("SIPp got %d OPTIONS and %d INVITEs and sent %d 200s: not every request was answered", len(opts), invs, oks)
	}
	if late := opts.Filter(func(m sipp.Message) bool { return m.Time.After(unflaggedSince) }); len(late) != 0 {
		t.Errorf("modes 3, 2, 0: SIPp's destination, without the probing flag, got %d OPTIONS, want none", len(late))
	}
}

// pathCalls is what one round of calls of TestNetnsXDPProbingSIPp did:
// INVITEs each backend got, [backend][0 fast path, 1 slow path], and the
// fast path's packets to each.
type pathCalls struct {
	name string
	got  [2][2]int
	fp   [2]uint64
}

// bothPaths checks that backend 1 got calls from both paths.
func (c pathCalls) bothPaths(t *testing.T) {
	t.Helper()
	if c.got[0][0] == 0 || c.got[0][1] == 0 || c.fp[0] == 0 {
		t.Errorf("%s: backend 1 up got %v INVITEs [fast slow] and %d fast path packets: a path does not use it", c.name, c.got[0], c.fp[0])
	}
}

// noneToFlaky checks that backend 1 got no call from either path.
func (c pathCalls) noneToFlaky(t *testing.T) {
	t.Helper()
	if c.got[0] != [2]int{} || c.fp[0] != 0 {
		t.Errorf("%s: inactive backend 1 got %v new INVITEs [fast slow] and %d fast path packets, want none", c.name, c.got[0], c.fp[0])
	}
}

// sendInvite sends one INVITE with Call-ID callID through c's edge.
func sendInvite(t *testing.T, c *rawClient, callID string) {
	t.Helper()
	c.Send(t, fmt.Sprintf(`INVITE sip:service@%[1]s SIP/2.0
Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-%[3]s;rport
Max-Forwards: 70
From: <sip:raw@%[2]s>;tag=raw1
To: <sip:service@%[1]s>
Call-ID: %[3]s
CSeq: 1 INVITE
Contact: <sip:raw@%[2]s>
Content-Length: 0

`, c.edge, c.Addr, callID))
}

func callIDs(ms sipp.Messages) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.CallID())
	}
	return out
}

// waitRecord waits until the stream printed k records and returns the
// time of the k-th (1-based), the agent's clock at the event.
func (s eventStream) waitRecord(t *testing.T, k int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if recs := s.records(t); len(recs) >= k {
			stamp, _ := recs[k-1]["time"].(string)
			at, err := time.Parse(time.RFC3339Nano, stamp)
			if err != nil {
				t.Fatalf("event record %v: time: %v", recs[k-1], err)
			}
			return at
		}
		if time.Now().After(deadline) {
			s.LogOutput()
			t.Fatalf("sipedgectl events printed fewer than %d records within %v", k, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// flagWatch polls dispatcher.list over one connection to the control
// socket (no process per poll: a few milliseconds apart even on a loaded
// host) and keeps every change of each destination's FLAGS, so a state
// that lasts a few hundred milliseconds (trying) is seen.
type flagWatch struct {
	mu      sync.Mutex
	hist    map[string][]string // URI → FLAGS in the order seen
	maxGap  time.Duration       // longest time between two answers
	err     error
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

const flagPoll = 5 * time.Millisecond

func watchFlags(t *testing.T, a *agent.Agent) *flagWatch {
	t.Helper()
	w := &flagWatch{hist: map[string][]string{}, done: make(chan struct{}), stopped: make(chan struct{})}
	go w.run(dialCtl(t, a))
	t.Cleanup(w.stop)
	return w
}

func (w *flagWatch) run(ctl *ctlConn) {
	defer close(w.stopped)
	defer ctl.close()
	last := time.Time{}
	for {
		select {
		case <-w.done:
			return
		default:
		}
		err := func() error {
			res, err := ctl.call("dispatcher.list")
			if err != nil {
				return err
			}
			flags, err := agent.DestFlags(res)
			if err != nil {
				return err
			}
			now := time.Now()
			w.mu.Lock()
			defer w.mu.Unlock()
			if !last.IsZero() && now.Sub(last) > w.maxGap {
				w.maxGap = now.Sub(last)
			}
			last = now
			for key, f := range flags {
				uri := strings.TrimPrefix(key, "1 ")
				if h := w.hist[uri]; len(h) == 0 || h[len(h)-1] != f {
					w.hist[uri] = append(h, f)
				}
			}
			return nil
		}()
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		time.Sleep(flagPoll)
	}
}

// stop ends the polling (before the agent stops).
func (w *flagWatch) stop() {
	w.once.Do(func() { close(w.done) })
	<-w.stopped
}

// mark is the position in uri's history from which since reports.
func (w *flagWatch) mark(uri string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.hist[uri])
}

// since returns uri's FLAGS seen from mark on, and the poller's longest
// gap so far.
func (w *flagWatch) since(uri string, mark int) ([]string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.hist[uri][mark:]), w.maxGap
}

// wait waits until uri's FLAGS are want; it fails the test after timeout
// or when the polling failed.
func (w *flagWatch) wait(t *testing.T, uri, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		h, err := w.hist[uri], w.err
		w.mu.Unlock()
		if len(h) > 0 && h[len(h)-1] == want {
			return
		}
		if err != nil {
			t.Fatalf("polling dispatcher.list: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("FLAGS of %s went %v, not %q within %v", uri, h, want, timeout)
		}
		time.Sleep(flagPoll)
	}
}

// ctlConn is one connection to the agent's control socket, for calls made
// often: a sipedgectl process per call costs up to a second under -race.
type ctlConn struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

func dialCtl(t *testing.T, a *agent.Agent) *ctlConn {
	t.Helper()
	conn, err := net.Dial("unix", a.Socket)
	if err != nil {
		t.Fatalf("control socket %s: %v", a.Socket, err)
	}
	return &ctlConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
}

func (c *ctlConn) close() { c.conn.Close() }

// call sends one request without params and returns its result; the
// socket answers each request with one line (docs/rpc.md).
func (c *ctlConn) call(method string) (json.RawMessage, error) {
	c.id++
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, `{"jsonrpc":"2.0","method":%q,"id":%d}`+"\n", method, c.id); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	return agent.DecodeResult(line)
}

func (c *ctlConn) fastPathStats(t *testing.T) fpStats {
	t.Helper()
	var st fpStats
	c.decode(t, "fastpath.stats", &st)
	return st
}

func (c *ctlConn) slowStats(t *testing.T) slowStatsT {
	t.Helper()
	var st slowStatsT
	c.decode(t, "sipproxy.stats", &st)
	return st
}

func (c *ctlConn) decode(t *testing.T, method string, v any) {
	t.Helper()
	raw, err := c.call(method)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v: %s", method, err, raw)
	}
}

// flagTrail is uri's FLAGS after each change the agent logged (at debug
// level: msg="probe changed flags"), in order.
func flagTrail(a *agent.Agent, uri string) []string {
	var out []string
	for _, line := range strings.Split(a.Output(), "\n") {
		if !strings.Contains(line, `msg="probe changed flags"`) || !strings.Contains(line, " uri="+uri+" ") {
			continue
		}
		if _, rest, ok := strings.Cut(line, " to="); ok {
			to, _, _ := strings.Cut(rest, " ")
			out = append(out, to)
		}
	}
	return out
}
