package agent

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/probe"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// TestClassify: 2xx or a configured code is a success; a timeout is a
// local 408 and a send error a local 500, each a success only when
// ds_ping_reply_codes lists it (kamailio-behaviour §3.3); for a strict
// destination only a 2xx is.
func TestClassify(t *testing.T) {
	codes := func(s string) config.ReplyCodes {
		r, err := config.ParsePingReplyCodes(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		r        probe.Result
		codes    string
		strict   bool
		wantCode int
		wantOK   bool
	}{
		{"200", probe.Result{Code: 200}, "", false, 200, true},
		{"202", probe.Result{Code: 202}, "", false, 202, true},
		{"503", probe.Result{Code: 503}, "", false, 503, false},
		{"503 listed", probe.Result{Code: 503}, "code=503", false, 503, true},
		{"404 class 4", probe.Result{Code: 404}, "class=4", false, 404, true},
		{"302", probe.Result{Code: 302}, "code=503", false, 302, false},
		{"timeout", probe.Result{Timeout: true}, "", false, 408, false},
		{"timeout with 503 listed", probe.Result{Timeout: true}, "code=503", false, 408, false},
		{"timeout with 408 listed", probe.Result{Timeout: true}, "code=408", false, 408, true},
		{"timeout with class 4", probe.Result{Timeout: true}, "class=4", false, 408, true},
		{"send error", probe.Result{Err: errors.New("sendto")}, "", false, 500, false},
		{"send error with class 5", probe.Result{Err: errors.New("sendto")}, "class=5", false, 500, true},
		// ping_strict=1 (kamailio PR #4863): only a 2xx, whatever the list.
		{"strict 200", probe.Result{Code: 200}, "code=503", true, 200, true},
		{"strict 503 listed", probe.Result{Code: 503}, "code=503", true, 503, false},
		{"strict 404 class 4", probe.Result{Code: 404}, "class=4", true, 404, false},
		{"strict timeout with 408 listed", probe.Result{Timeout: true}, "code=408", true, 408, false},
	} {
		code, ok := classify(tc.r, codes(tc.codes), tc.strict)
		if code != tc.wantCode || ok != tc.wantOK {
			t.Errorf("%s: classify = %d, %t; want %d, %t", tc.name, code, ok, tc.wantCode, tc.wantOK)
		}
	}
}

// testSockets are two listeners, one IPv4 and one IPv6, whose sent-by is
// "adv-" + the address.
func testSockets() probeSockets {
	ls := []sipproxy.Listener{
		{Name: "pub", Addr: netip.MustParseAddrPort("192.0.2.1:5060")},
		{Name: "priv", Addr: netip.MustParseAddrPort("10.9.9.9:5070")},
		{Name: "v6", Addr: netip.MustParseAddrPort("[2001:db8::1]:5060")},
	}
	return probeSockets{listeners: ls, sentBy: func(local netip.AddrPort) (string, bool) {
		for _, l := range ls {
			if l.Addr == local {
				return "adv-" + local.String(), true
			}
		}
		return "", false
	}}
}

func buildSnap(t *testing.T, entries []dispatch.Entry) *dispatch.Snapshot {
	t.Helper()
	s, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// uris returns the URIs of the targets, sorted.
func uris(ts map[string]probeTarget) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.uri)
	}
	slices.Sort(out)
	return out
}

// TestProbeTargetsModes: which destinations each ds_probing_mode pings
// (kamailio-behaviour §3.1): 0 and 3 those with PROBING, 1 all, 2 PROBING
// and INACTIVE; never DISABLED or NOPING ones.
func TestProbeTargetsModes(t *testing.T) {
	snap := buildSnap(t, []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.1:5060"},                                                      // active
		{SetID: 1, URI: "sip:10.0.0.2:5060", Flags: dispatch.FlagProbing},                         // AP
		{SetID: 1, URI: "sip:10.0.0.3:5060", Flags: dispatch.FlagInactive},                        // IX
		{SetID: 1, URI: "sip:10.0.0.4:5060", Flags: dispatch.FlagInactive | dispatch.FlagProbing}, // IP
		{SetID: 1, URI: "sip:10.0.0.5:5060", Flags: dispatch.FlagDisabled | dispatch.FlagProbing},
		{SetID: 2, URI: "sip:10.0.0.6:5060", Flags: dispatch.FlagNoPing | dispatch.FlagProbing},
		{SetID: 2, URI: "sip:10.0.0.7:5060", Flags: dispatch.FlagTrying | dispatch.FlagProbing}, // TP
	})
	for _, tc := range []struct {
		mode dispatch.ProbingMode
		want []string
	}{
		{dispatch.ProbeFlagged, []string{"sip:10.0.0.2:5060", "sip:10.0.0.4:5060", "sip:10.0.0.7:5060"}},
		{dispatch.ProbeAll, []string{"sip:10.0.0.1:5060", "sip:10.0.0.2:5060", "sip:10.0.0.3:5060", "sip:10.0.0.4:5060", "sip:10.0.0.7:5060"}},
		{dispatch.ProbeInactive, []string{"sip:10.0.0.4:5060"}},
		{dispatch.ProbeOnlyFlagged, []string{"sip:10.0.0.2:5060", "sip:10.0.0.4:5060", "sip:10.0.0.7:5060"}},
	} {
		got, problems := probeTargets(snap, dispatch.ProbeParams{Mode: tc.mode, ProbingThreshold: 1, InactiveThreshold: 1}, testSockets())
		if !slices.Equal(uris(got), tc.want) || len(problems) != 0 {
			t.Errorf("mode %d: targets %v, problems %v; want %v", tc.mode, uris(got), problems, tc.want)
		}
		for key, pt := range got {
			if want := strings.Split(key, "/")[1]; pt.iuid != want || !strings.HasPrefix(want, "dspt-") {
				t.Errorf("mode %d: key %q for IUID %q", tc.mode, key, pt.iuid)
			}
		}
	}
}

// TestProbeTargetSockets: the send socket is ping_socket, then sockname,
// then socket, else the first listener of the destination's family; the
// Via sent-by is that listener's (the slow path's own); obproxy replaces
// the address; ping_from the From. What cannot be probed is a problem,
// not a target.
func TestProbeTargetSockets(t *testing.T) {
	snap := buildSnap(t, []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.1:5060"},
		{SetID: 1, URI: "sip:10.0.0.2", Attrs: "socket=udp:192.0.2.1:5060;sockname=priv;ping_from=sip:pinger@example.com"},
		{SetID: 1, URI: "sip:10.0.0.3:5080", Attrs: "ping_socket=udp:10.9.9.9:5070;socket=udp:192.0.2.1:5060;obproxy=sip:10.1.1.1:5062;lr"},
		{SetID: 1, URI: "sip:[2001:db8::5]:5060"},
		{SetID: 1, URI: "sip:10.0.0.4:5060", Attrs: "sockname=nosuch"},
		{SetID: 1, URI: "sip:10.0.0.5:5060", Attrs: "socket=udp:192.0.2.99:5060"},
		{SetID: 1, URI: "sip:10.0.0.6:5060", Attrs: "obproxy=sip:proxy.example.com"},
	})
	got, problems := probeTargets(snap, dispatch.ProbeParams{Mode: dispatch.ProbeAll}, testSockets())
	byURI := map[string]probe.Target{}
	for _, pt := range got {
		byURI[pt.uri] = pt.target
	}
	want := map[string]probe.Target{
		"sip:10.0.0.1:5060": {URI: "sip:10.0.0.1:5060", Addr: netip.MustParseAddrPort("10.0.0.1:5060"),
			Local: netip.MustParseAddrPort("192.0.2.1:5060"), SentBy: "adv-192.0.2.1:5060"},
		"sip:10.0.0.2": {URI: "sip:10.0.0.2", Addr: netip.MustParseAddrPort("10.0.0.2:5060"),
			Local: netip.MustParseAddrPort("10.9.9.9:5070"), SentBy: "adv-10.9.9.9:5070", From: "sip:pinger@example.com"},
		"sip:10.0.0.3:5080": {URI: "sip:10.0.0.3:5080", Addr: netip.MustParseAddrPort("10.1.1.1:5062"),
			Local: netip.MustParseAddrPort("10.9.9.9:5070"), SentBy: "adv-10.9.9.9:5070"},
		"sip:[2001:db8::5]:5060": {URI: "sip:[2001:db8::5]:5060", Addr: netip.MustParseAddrPort("[2001:db8::5]:5060"),
			Local: netip.MustParseAddrPort("[2001:db8::1]:5060"), SentBy: "adv-[2001:db8::1]:5060"},
	}
	if !maps.Equal(byURI, want) {
		t.Errorf("targets\n got %+v\nwant %+v", byURI, want)
	}
	var msgs []string
	for _, m := range problems {
		msgs = append(msgs, m)
	}
	slices.Sort(msgs)
	wantProblems := []string{
		`sip:10.0.0.4:5060: sockname "nosuch" names no listener`,
		`sip:10.0.0.5:5060: socket "udp:192.0.2.99:5060" names no listener`,
		`sip:10.0.0.6:5060: obproxy "sip:proxy.example.com": want sip:IP[:PORT] with an IP literal`,
	}
	if !slices.Equal(msgs, wantProblems) {
		t.Errorf("problems\n got %q\nwant %q", msgs, wantProblems)
	}
}

// discardSender drops every probe.
type discardSender struct{}

func (discardSender) Send(netip.AddrPort, netip.AddrPort, []byte) error { return nil }

// lockedBuffer is a log sink safe for the engine's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProbingApply: results go through the dispatcher's thresholds
// (probing 2, inactive 2), each up/down change is logged once, and after
// a reload the results of probes issued before it are ignored (kamailio
// PR #2959), while later ones count.
func TestProbingApply(t *testing.T) {
	d := dispatch.New(buildSnap(t, []dispatch.Entry{{SetID: 1, URI: "sip:127.0.0.1:5999"}}))
	var logs lockedBuffer
	p := &probing{
		log:     slog.New(slog.NewTextHandler(&logs, nil)),
		events:  events.NewBus(slog.New(slog.NewTextHandler(&logs, nil))),
		d:       d,
		socks:   testSockets(),
		params:  dispatch.ProbeParams{Mode: dispatch.ProbeAll, ProbingThreshold: 2, InactiveThreshold: 2},
		targets: map[string]probeTarget{},
		warned:  map[string]string{},
	}
	p.socks.listeners = []sipproxy.Listener{{Name: "lo", Addr: netip.MustParseAddrPort("127.0.0.1:5060")}}
	p.socks.sentBy = func(l netip.AddrPort) (string, bool) { return l.String(), true }
	eng, err := probe.New(probe.Config{Interval: 10 * time.Millisecond, Timeout: 5 * time.Millisecond}, discardSender{})
	if err != nil {
		t.Fatal(err)
	}
	p.eng = eng
	p.sync(true)
	if len(p.targets) != 1 {
		t.Fatalf("targets %v, want the one destination", p.targets)
	}
	var key string
	for k := range p.targets {
		key = k
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for eng.Issued() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	flags := func() dispatch.Flags { return d.Snapshot().Set(1).Dests[0].Flags }
	seq := eng.Issued() + 1000 // issued after any reload below
	result := func(r probe.Result) {
		seq++
		if r.Seq == 0 {
			r.Seq = seq
		}
		r.Key = key
		p.apply(r)
	}

	result(probe.Result{Code: 503})
	if f := flags(); f != dispatch.FlagTrying|dispatch.FlagProbing {
		t.Fatalf("after one 503: flags %v, want trying+probing", f)
	}
	result(probe.Result{Timeout: true})
	result(probe.Result{Timeout: true}) // inactive already: no second event
	if f := flags(); f != dispatch.FlagInactive|dispatch.FlagProbing {
		t.Fatalf("after the threshold: flags %v, want inactive+probing", f)
	}
	if n := strings.Count(logs.String(), "msg=dispatcher:dst-down"); n != 1 {
		t.Errorf("dst-down logged %d times, want once:\n%s", n, logs.String())
	}

	// A reload: results of probes issued before it do not count, even
	// those newer than every result applied so far (which the check
	// against older results alone would let through).
	p.BeforeReload()
	p.Apply(nil)
	reload := seq + 10
	p.since.Store(reload) // as if the probes up to it had been issued before the reload
	result(probe.Result{Seq: reload - 1, Code: 200})
	result(probe.Result{Seq: reload, Code: 200})
	if f := flags(); f != dispatch.FlagInactive|dispatch.FlagProbing || d.Snapshot().Set(1).Dests[0].ProbingCount != 0 {
		t.Fatalf("stale results counted: flags %v, count %d", f, d.Snapshot().Set(1).Dests[0].ProbingCount)
	}
	seq = reload // probes issued after the reload number above every earlier one
	result(probe.Result{Code: 200})
	if f := flags(); f != dispatch.FlagInactive|dispatch.FlagProbing {
		t.Fatalf("after one success: flags %v, want still inactive (threshold 2)", f)
	}
	result(probe.Result{Code: 200})
	if f := flags(); f != dispatch.FlagProbing {
		t.Fatalf("after two successes: flags %v, want active+probing", f)
	}
	result(probe.Result{Code: 200})
	// A result older than one applied (a reply whose reader goroutine was
	// delayed past the next probe's reply: the engine does not order
	// them) is ignored: this timeout would make the destination trying.
	result(probe.Result{Seq: seq - 1, Timeout: true})
	if f := flags(); f != dispatch.FlagProbing {
		t.Fatalf("an older result counted after a newer one: flags %v, want active+probing", f)
	}
	out := logs.String()
	if strings.Count(out, "msg=dispatcher:dst-up") != 1 || strings.Count(out, "msg=dispatcher:dst-down") != 1 {
		t.Errorf("want one dst-down and one dst-up:\n%s", out)
	}
	if !strings.Contains(out, "msg=dispatcher:dst-down set=1 uri=sip:127.0.0.1:5999") || !strings.Contains(out, "code=408") {
		t.Errorf("dst-down line lacks the destination or the local 408:\n%s", out)
	}
}

// TestProbingModeZeroTargets: in mode 0 a destination with PROBING is
// probed until its first result, which clears PROBING (§3.4): the result
// goes through the dispatcher's swap and the next sync drops the target.
func TestProbingModeZeroTargets(t *testing.T) {
	d := dispatch.New(buildSnap(t, []dispatch.Entry{
		{SetID: 1, URI: "sip:127.0.0.1:5999", Flags: dispatch.FlagProbing},
		{SetID: 1, URI: "sip:127.0.0.1:5998"},
	}))
	eng, err := probe.New(probe.Config{Interval: time.Hour}, discardSender{})
	if err != nil {
		t.Fatal(err)
	}
	p := testProbing(d, eng, dispatch.DefaultProbeParams(), nil)
	p.sync(true)
	if len(p.targets) != 1 || eng.Stats().Targets != 1 {
		t.Fatalf("mode 0: %d targets (engine %d), want the one with PROBING", len(p.targets), eng.Stats().Targets)
	}
	var key string
	for k := range p.targets {
		key = k
	}
	if p.targets[key].uri != "sip:127.0.0.1:5999" {
		t.Fatalf("mode 0 target %+v, want sip:127.0.0.1:5999", p.targets[key])
	}
	p.apply(probe.Result{Key: key, Seq: 1, Code: 200})
	for _, dst := range d.Snapshot().Set(1).Dests {
		if dst.Flags != 0 {
			t.Fatalf("after a success in mode 0: %s flags %v, want 0 (PROBING cleared)", dst.URI, dst.Flags)
		}
	}
	p.sync(true)
	if len(p.targets) != 0 || eng.Stats().Targets != 0 {
		t.Errorf("after its first result: %d targets (engine %d), want none", len(p.targets), eng.Stats().Targets)
	}
	// ping_active off: nothing is probed.
	if err := d.SetState(1, "all", "ap"); err != nil {
		t.Fatal(err)
	}
	p.sync(false)
	if eng.Stats().Targets != 0 {
		t.Errorf("ping_active off: engine has %d targets", eng.Stats().Targets)
	}
	p.sync(true)
	if eng.Stats().Targets != 2 {
		t.Errorf("ping_active on, both AP: engine has %d targets, want 2", eng.Stats().Targets)
	}
}

// TestProbingPingActivePushed: dispatcher.ping_active reaches the prober
// at once, pushed by the dispatcher: the engine loses its targets on 0
// and gets them back on 1. The prober's own tick is an hour here, so a
// prober that polled ping_active on its tick (as it did) never sees it.
func TestProbingPingActivePushed(t *testing.T) {
	d := dispatch.New(buildSnap(t, []dispatch.Entry{
		{SetID: 1, URI: "sip:127.0.0.1:5999"},
		{SetID: 1, URI: "sip:127.0.0.1:5998"},
	}))
	eng, err := probe.New(probe.Config{Interval: time.Hour}, discardSender{})
	if err != nil {
		t.Fatal(err)
	}
	p := testProbing(d, eng, dispatch.ProbeParams{Mode: dispatch.ProbeAll, ProbingThreshold: 1, InactiveThreshold: 1}, nil)
	p.lostReport = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitTargets := func(want int) {
		t.Helper()
		// Generous for a loaded machine; the old poll would never come.
		deadline := time.Now().Add(5 * time.Second)
		for eng.Stats().Targets != want {
			if time.Now().After(deadline) {
				t.Fatalf("engine has %d targets, want %d", eng.Stats().Targets, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitTargets(2)
	d.SetPingActive(false)
	waitTargets(0)
	d.SetPingActive(true)
	waitTargets(2)
}

// TestProbingNotProbedOncePerChange: a destination that should be probed
// but cannot be (here an IPv6 one with only an IPv4 listener, and a host
// left unresolved by flag 16) is logged once, not at each sync (every
// state change, every probe result that swaps a snapshot triggers one),
// and is shown by NotProbed; once it is no longer meant to be probed
// (disabled) it leaves NotProbed, and when probing wants it again it is
// logged again, once: one report per change of its state.
func TestProbingNotProbedOncePerChange(t *testing.T) {
	d := dispatch.New(buildSnap(t, []dispatch.Entry{
		{SetID: 1, URI: "sip:127.0.0.1:5999"},
		{SetID: 1, URI: "sip:[::1]:5999"},
		{SetID: 1, URI: "sip:gw.example.net:5070", Flags: dispatch.FlagNoDNSARes},
	}))
	eng, err := probe.New(probe.Config{Interval: time.Hour}, discardSender{})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	p := testProbing(d, eng, dispatch.ProbeParams{Mode: dispatch.ProbeAll, ProbingThreshold: 1, InactiveThreshold: 1}, slog.New(slog.NewTextHandler(&logs, nil)))
	iuid := func(uri string) string {
		for _, dst := range d.Snapshot().Set(1).Dests {
			if dst.URI == uri {
				return dst.IUID
			}
		}
		t.Fatalf("no %s", uri)
		return ""
	}
	v6, gw := iuid("sip:[::1]:5999"), iuid("sip:gw.example.net:5070")
	for range 5 {
		p.sync(true)
		// A probe result swapping a snapshot: the prober syncs again.
		if err := d.SetState(1, "sip:127.0.0.1:5999", "ap"); err != nil {
			t.Fatal(err)
		}
	}
	count := func(s string) int { return strings.Count(logs.String(), s) }
	if n := count(`msg="destination not probed"`); n != 2 {
		t.Fatalf("logged %d times over 5 syncs, want twice (once per destination):\n%s", n, logs.String())
	}
	if got := p.NotProbed(1, v6); got != "sip:[::1]:5999: no listener of the address family of [::1]:5999" {
		t.Errorf("NotProbed(v6) = %q", got)
	}
	if got := p.NotProbed(1, gw); !strings.Contains(got, "flag 16") {
		t.Errorf("NotProbed(gw) = %q, want the flag 16 reason", got)
	}
	if got := p.NotProbed(1, iuid("sip:127.0.0.1:5999")); got != "" {
		t.Errorf("NotProbed of a probed destination = %q", got)
	}

	// Disabled: no longer meant to be probed, no longer reported.
	if err := d.SetState(1, "sip:[::1]:5999", "d"); err != nil {
		t.Fatal(err)
	}
	p.sync(true)
	p.sync(true)
	if got := p.NotProbed(1, v6); got != "" {
		t.Errorf("disabled: NotProbed = %q, want none", got)
	}
	if err := d.SetState(1, "sip:[::1]:5999", "a"); err != nil {
		t.Fatal(err)
	}
	p.sync(true)
	p.sync(true)
	if n := count("destination=1/" + v6); n != 2 {
		t.Errorf("v6 logged %d times over two changes of state, want 2:\n%s", n, logs.String())
	}
}

// TestSyncLimited: a swap within syncEvery of the last sync does not
// derive the targets at once; a kick follows, and the sync it leads to
// picks the change up.
func TestSyncLimited(t *testing.T) {
	d := dispatch.New(buildSnap(t, []dispatch.Entry{
		{SetID: 1, URI: "sip:127.0.0.1:5999", Flags: dispatch.FlagProbing},
		{SetID: 1, URI: "sip:127.0.0.1:5998"},
	}))
	eng, err := probe.New(probe.Config{Interval: time.Hour}, discardSender{})
	if err != nil {
		t.Fatal(err)
	}
	p := testProbing(d, eng, dispatch.DefaultProbeParams(), nil)
	p.syncLimited(true)
	if eng.Stats().Targets != 1 {
		t.Fatalf("first sync: engine has %d targets, want 1", eng.Stats().Targets)
	}
	if err := d.SetState(1, "all", "ap"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.syncLimited(true)
	if eng.Stats().Targets != 1 {
		t.Fatalf("a swap right after a sync was derived at once (%d targets)", eng.Stats().Targets)
	}
	select {
	case <-p.dirty:
	case <-time.After(10 * syncEvery):
		t.Fatal("no kick after the deferred sync")
	}
	if waited := time.Since(start); waited < syncEvery/2 {
		t.Errorf("kick after %v, want about %v", waited, syncEvery)
	}
	p.syncLimited(true)
	if eng.Stats().Targets != 2 {
		t.Errorf("after the kick: engine has %d targets, want 2", eng.Stats().Targets)
	}
}

// TestProbingBatchSameTrail: results applied as one batch (what the
// probing goroutine drains from its queue) log the same "probe changed
// flags" lines and publish the same dst-up/dst-down events, in the same
// order and with the same fields, as the same results applied one at a
// time, and leave the same flags; stale results (an older Seq than one
// applied, or issued before a reload) and unknown targets are skipped in
// both. Random sequences over a few destinations, each repeated.
func TestProbingBatchSameTrail(t *testing.T) {
	entries := []dispatch.Entry{
		{SetID: 1, URI: "sip:127.0.0.1:5991"},
		{SetID: 1, URI: "sip:127.0.0.1:5992", Flags: dispatch.FlagInactive},
		{SetID: 1, URI: "sip:127.0.0.1:5993", Attrs: "ping_strict=1"},
		{SetID: 2, URI: "sip:127.0.0.1:5994", Flags: dispatch.FlagProbing},
	}
	// newProbing is a prober of its own dispatcher whose debug log and
	// events go to buf, without times.
	newProbing := func(buf *lockedBuffer, params dispatch.ProbeParams) *probing {
		opts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}
		eng, err := probe.New(probe.Config{Interval: time.Hour}, discardSender{})
		if err != nil {
			t.Fatal(err)
		}
		p := testProbing(dispatch.New(buildSnap(t, entries)), eng, params, slog.New(slog.NewTextHandler(buf, opts)))
		p.sync(true)
		return p
	}
	r := rand.New(rand.NewPCG(3, 5))
	var ups, downs, changes int
	for run := range 200 {
		params := dispatch.ProbeParams{Mode: dispatch.ProbeAll, ProbingThreshold: 1 + r.IntN(3), InactiveThreshold: 1 + r.IntN(3)}
		var oneLog, batchLog lockedBuffer
		one, batch := newProbing(&oneLog, params), newProbing(&batchLog, params)
		keys := slices.Sorted(maps.Keys(one.targets))
		if len(keys) != len(entries) {
			t.Fatalf("targets %v, want every destination", keys)
		}
		keys = append(keys, "9/unknown")
		one.since.Store(5) // results up to Seq 5 were issued before a reload
		batch.since.Store(5)
		rs := make([]probe.Result, 1+r.IntN(60))
		for i := range rs {
			res := probe.Result{Key: keys[r.IntN(len(keys))], Seq: uint64(1 + i + r.IntN(8)), RTT: time.Duration(1+r.IntN(50)) * time.Millisecond}
			switch r.IntN(4) {
			case 0:
				res.Timeout = true
			case 1:
				res.Code = 503
			case 2:
				res.Code = 200
			default:
				res.Code = 202
			}
			rs[i] = res
		}
		for _, res := range rs {
			one.apply(res)
		}
		batch.apply(rs...)
		if oneLog.String() != batchLog.String() {
			t.Fatalf("run %d, results %+v:\none at a time:\n%s\nbatch:\n%s", run, rs, oneLog.String(), batchLog.String())
		}
		out := oneLog.String()
		ups += strings.Count(out, "msg=dispatcher:dst-up")
		downs += strings.Count(out, "msg=dispatcher:dst-down")
		changes += strings.Count(out, `msg="probe changed flags"`)
		for i, set := range one.d.Snapshot().Sets() {
			for j, dst := range set.Dests {
				if got := batch.d.Snapshot().Sets()[i].Dests[j]; got.Flags != dst.Flags || got.ProbingCount != dst.ProbingCount {
					t.Fatalf("run %d: %s flags %s count %d, one at a time %s count %d", run, dst.URI, got.Flags, got.ProbingCount, dst.Flags, dst.ProbingCount)
				}
			}
		}
	}
	if ups < 100 || downs < 100 || changes < ups+downs+100 {
		t.Errorf("the runs logged %d dst-up, %d dst-down and %d flag changes: too few to compare", ups, downs, changes)
	}
}

// testProbing is dispatcher probing over d and eng as newProbing builds
// it, sending from one loopback listener, with log for its lines and
// events (nil: discarded).
func testProbing(d *dispatch.Dispatcher, eng *probe.Engine, params dispatch.ProbeParams, log *slog.Logger) *probing {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &probing{
		log:     log,
		events:  events.NewBus(log),
		d:       d,
		eng:     eng,
		params:  params,
		every:   time.Hour,
		dirty:   make(chan struct{}, 1),
		targets: map[string]probeTarget{},
		warned:  map[string]string{},
		socks: probeSockets{
			listeners: []sipproxy.Listener{{Name: "lo", Addr: netip.MustParseAddrPort("127.0.0.1:5060")}},
			sentBy:    func(l netip.AddrPort) (string, bool) { return l.String(), true },
		},
	}
	p.results.init()
	return p
}
