package dataplane_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// callLoadEnv is the program with one alg 10 listener on set 3: a
// (maxload 2), b and c, each with a duid, and d without one (alg 10 never
// picks it).
func callLoadEnv(t *testing.T, extra ...dispatch.Entry) (*dptest.Env, *dispatch.Snapshot, netip.AddrPort) {
	t.Helper()
	env := newEnv(t)
	// Build orders equal priorities in reverse input order: index 0 is a.
	entries := append(extra, []dispatch.Entry{
		{SetID: 3, URI: "sip:10.0.0.34:5060"},
		{SetID: 3, URI: "sip:10.0.0.33:5060", Attrs: "duid=c"},
		{SetID: 3, URI: "sip:10.0.0.32:5060", Attrs: "duid=b"},
		{SetID: 3, URI: "sip:10.0.0.31:5060", Attrs: "duid=a;maxload=2"},
	}...)
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{Resolver: noDNS})
	if err != nil {
		t.Fatal(err)
	}
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 3, Alg: 10}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	return env, snap, lis
}

// callRequest is a request of call id: an INVITE without a To tag, any
// other method with one.
func callRequest(method, id string, cseq int) []byte {
	toTag := ";tag=b0b"
	if method == "INVITE" {
		toTag = ""
	}
	return crlf(fmt.Sprintf(`
%s sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK%s%s%d
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>%s
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: %s
CSeq: %d %s
Content-Length: 0

`, method, method, id, cseq, toTag, id, cseq, method))
}

var callSrc = netip.MustParseAddrPort("198.51.100.7:5060")

// sendCall sends a request of call id and returns the backend it went to,
// or the pass reason.
func sendCall(t *testing.T, env *dptest.Env, lis netip.AddrPort, method, id string, cseq int) string {
	t.Helper()
	o := send(t, env, callSrc, lis, callRequest(method, id, cseq))
	switch o.verdict {
	case dptest.XDPTX, dptest.XDPRedirect:
		if o.err != nil {
			t.Fatalf("%s %s: output frame: %v", method, id, o.err)
		}
		return o.frame.Dst.Addr().String()
	case dptest.XDPPass:
		return o.reason
	}
	t.Fatalf("%s %s: verdict %s", method, id, verdictName(o.verdict))
	return ""
}

func loadsOf(t *testing.T, env *dptest.Env) string {
	t.Helper()
	s := ""
	for _, duid := range []string{"a", "b", "c"} {
		v, ok, err := env.DP.CallLoad(3, duid)
		if err != nil || !ok {
			t.Fatalf("load of %s: %v (slot %v)", duid, err, ok)
		}
		s += fmt.Sprintf("%s=%d ", duid, v)
	}
	return s[:len(s)-1]
}

// TestCallLoadPick: alg 10 INVITEs go to the least-loaded destination with
// a duid, ties to the lowest index, skipping one at its maxload; each pick
// adds 1 to its load in dst_load; with every destination full, the INVITE
// goes to the slow path (PASS_NO_DST).
func TestCallLoadPick(t *testing.T) {
	env, _, lis := callLoadEnv(t)
	for i, want := range []struct{ dst, loads string }{
		{"10.0.0.31", "a=1 b=0 c=0"},
		{"10.0.0.32", "a=1 b=1 c=0"},
		{"10.0.0.33", "a=1 b=1 c=1"},
		{"10.0.0.31", "a=2 b=1 c=1"},
		{"10.0.0.32", "a=2 b=2 c=1"}, // a is at its maxload 2
		{"10.0.0.33", "a=2 b=2 c=2"},
		{"10.0.0.32", "a=2 b=3 c=2"},
	} {
		id := fmt.Sprintf("call-%d.pick", i)
		if got := sendCall(t, env, lis, "INVITE", id, 1); got != want.dst {
			t.Fatalf("INVITE %d went to %s, want %s", i, got, want.dst)
		}
		if got := loadsOf(t, env); got != want.loads {
			t.Fatalf("after INVITE %d loads %s, want %s", i, got, want.loads)
		}
	}

	// The agent's loads are what the program reads: c emptiest.
	load := map[string]int64{"a": 0, "b": 7, "c": 1}
	if err := env.DP.SetCallLoads(func(set int, duid string) int64 { return load[duid] }); err != nil {
		t.Fatal(err)
	}
	if got := sendCall(t, env, lis, "INVITE", "after-sync.pick", 1); got != "10.0.0.31" {
		t.Errorf("INVITE after the agent's write went to %s, want 10.0.0.31 (a: load 0)", got)
	}
	load = map[string]int64{"a": 2, "b": 5, "c": 5}
	if err := env.DP.SetCallLoads(func(set int, duid string) int64 { return load[duid] }); err != nil {
		t.Fatal(err)
	}
	if got := sendCall(t, env, lis, "INVITE", "tie.pick", 1); got != "10.0.0.32" {
		t.Errorf("INVITE with a at its maxload and b, c tied went to %s, want 10.0.0.32", got)
	}

	// e (index 4, maxload 1) is the emptiest, then full: b and c, with no
	// maxload, still take calls.
	one := dispatch.Entry{SetID: 3, URI: "sip:10.0.0.35:5060", Attrs: "duid=e;maxload=1"}
	env2, _, lis2 := callLoadEnv(t, one)
	for _, step := range []struct {
		loads map[string]int64
		want  string
	}{
		{map[string]int64{"a": 2, "b": 9, "c": 9}, "10.0.0.35"},
		{map[string]int64{"a": 2, "b": 9, "c": 9, "e": 1}, "10.0.0.32"},
	} {
		if err := env2.DP.SetCallLoads(func(set int, duid string) int64 { return step.loads[duid] }); err != nil {
			t.Fatal(err)
		}
		if got := sendCall(t, env2, lis2, "INVITE", step.want+".pick", 1); got != step.want {
			t.Errorf("INVITE with loads %v went to %s, want %s", step.loads, got, step.want)
		}
	}
}

// TestCallLoadMaxloadFull: with every destination with a duid at its
// maxload, an INVITE goes to the slow path (which answers 503).
func TestCallLoadMaxloadFull(t *testing.T) {
	env := newEnv(t)
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{
		{SetID: 3, URI: "sip:10.0.0.32:5060", Attrs: "duid=b;maxload=1"},
		{SetID: 3, URI: "sip:10.0.0.31:5060", Attrs: "duid=a;maxload=1"},
	}, dispatch.Options{Resolver: noDNS})
	if err != nil {
		t.Fatal(err)
	}
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 3, Alg: 10}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"10.0.0.31", "10.0.0.32", "PASS_NO_DST"} {
		if got := sendCall(t, env, lis, "INVITE", fmt.Sprintf("full-%d", i), 1); got != want {
			t.Errorf("INVITE %d: %s, want %s", i, got, want)
		}
	}
}

// TestCallLoadSticky: every later message of a call goes where its INVITE
// went, whatever the loads: a retransmitted INVITE (not charged again), the
// ACK, a re-INVITE, the BYE (which takes the call off the load), an ACK
// after it; a request of a call the program never saw goes to the slow
// path. A new INVITE of the released call is charged again where it went.
func TestCallLoadSticky(t *testing.T) {
	env, _, lis := callLoadEnv(t)
	if got := sendCall(t, env, lis, "INVITE", "sticky", 1); got != "10.0.0.31" {
		t.Fatalf("INVITE went to %s, want 10.0.0.31", got)
	}
	// Others now emptier: a and b stay the same, c would be the pick.
	if err := env.DP.SetCallLoads(func(set int, duid string) int64 { return map[string]int64{"a": 1, "b": 1}[duid] }); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		method string
		cseq   int
		loads  string
	}{
		{"INVITE", 1, "a=1 b=1 c=0"}, // retransmission: not charged again
		{"ACK", 1, "a=1 b=1 c=0"},
		{"INVITE", 2, "a=1 b=1 c=0"}, // re-INVITE
		{"ACK", 2, "a=1 b=1 c=0"},
		{"BYE", 3, "a=0 b=1 c=0"},
		{"BYE", 3, "a=0 b=1 c=0"},    // retransmission: released once
		{"INVITE", 4, "a=1 b=1 c=0"}, // a new INVITE of the released call (after a 401): charged again there
	} {
		if got := sendCall(t, env, lis, m.method, "sticky", m.cseq); got != "10.0.0.31" {
			t.Errorf("%s %d went to %s, want 10.0.0.31", m.method, m.cseq, got)
		}
		if got := loadsOf(t, env); got != m.loads {
			t.Errorf("after %s %d loads %s, want %s", m.method, m.cseq, got, m.loads)
		}
	}
	for _, method := range []string{"ACK", "BYE", "CANCEL"} {
		if got := sendCall(t, env, lis, method, "never-seen", 1); got != "PASS_CALL_UNKNOWN" {
			t.Errorf("%s of an unknown call: %s, want PASS_CALL_UNKNOWN", method, got)
		}
	}
}

// TestSyncLoadsChangedOnly: SyncLoads writes only the loads that changed
// in the table since its last write; SyncSets writes them all (a reload
// keeps a duid's load on its slot, whatever its index now).
func TestSyncLoadsChangedOnly(t *testing.T) {
	env, snap, _ := callLoadEnv(t)
	load := map[string]int64{"a": 1, "b": 2, "c": 3}
	if err := env.DP.SetCallLoads(func(set int, duid string) int64 { return load[duid] }); err != nil {
		t.Fatal(err)
	}
	if got := loadsOf(t, env); got != "a=1 b=2 c=3" {
		t.Fatalf("loads %s, want a=1 b=2 c=3", got)
	}
	load["b"] = 5
	n, err := env.DP.SyncLoads()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("SyncLoads wrote %d loads, want 1 (b changed)", n)
	}
	if got := loadsOf(t, env); got != "a=1 b=5 c=3" {
		t.Errorf("loads %s, want a=1 b=5 c=3", got)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	if got := loadsOf(t, env); got != "a=1 b=5 c=3" {
		t.Errorf("loads after a sync %s, want a=1 b=5 c=3", got)
	}
}

// TestCallLoadAgreesWithSlowPath: over random sets (1-8 destinations, some
// inactive, maxloads 0-3, loads 0-3 held by calls in the agent's table,
// use_default on or off), the program's pick for a new call's INVITE is
// the slow path's (dispatch.Select with algorithm 10 on the same table),
// "no destination" included.
func TestCallLoadAgreesWithSlowPath(t *testing.T) {
	env := newEnv(t)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 3, Alg: 10}}}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(10, 10))
	picked := map[string]int{}
	for trial := range 300 {
		n := 1 + rng.IntN(8)
		var entries []dispatch.Entry
		for i := range n {
			e := dispatch.Entry{SetID: 3, URI: fmt.Sprintf("sip:10.0.0.%d:5060", 40+i), Attrs: fmt.Sprintf("duid=d%d", i)}
			if m := rng.IntN(4); m > 0 {
				e.Attrs += fmt.Sprintf(";maxload=%d", m)
			}
			if rng.IntN(5) == 0 {
				e.Flags = dispatch.FlagInactive
			}
			entries = append(entries, e)
		}
		snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{Resolver: noDNS, UseDefault: rng.IntN(3) == 0})
		if err != nil {
			t.Fatal(err)
		}
		d := dispatch.New(snap)
		table := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
		set := d.Snapshot().Set(3)
		for i := range set.Dests {
			for k := range rng.IntN(4) {
				d.RecordCallLoad(3, uint64(trial)<<32|uint64(i)<<16|uint64(k), &set.Dests[i])
			}
		}
		if err := env.DP.SyncSets(d.Snapshot()); err != nil {
			t.Fatal(err)
		}
		if err := env.DP.SetCallLoads(table.Load); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("agree-%d", trial)
		got := sendCall(t, env, lis, "INVITE", id, 1)
		want := "PASS_NO_DST"
		sel, err := d.Select(3, dispatch.AlgCallLoad, dispatch.Key{CallID: id, CallIDHash: dataplane.CallIDHash(id), Invite: true}, 1)
		if err == nil {
			want = sel.Dests[0].Addr.Addr().String()
		}
		if got != want {
			var st []string
			for i := range set.Dests {
				x := &set.Dests[i]
				st = append(st, fmt.Sprintf("%s up=%v max=%d load=%d", x.Addr, x.Up(), x.Attrs.MaxLoad, table.Load(3, x.Attrs.DUID)))
			}
			t.Fatalf("trial %d: the program picked %s, the slow path %s (default idx %d): %v", trial, got, want, set.DefaultIdx, st)
		}
		picked[want]++
	}
	t.Logf("picks: %v", picked)
}

// TestCallLoadSlowPathPicks: a call the slow path placed (RecordCall: b)
// has its ACK and BYE sent there by the program instead of passed up, and
// a retransmission of its INVITE too, though c is emptier; the BYE
// releases it (the program takes 1 off b's load).
func TestCallLoadSlowPathPicks(t *testing.T) {
	env, _, lis := callLoadEnv(t)
	if err := env.DP.SetCallLoads(func(set int, duid string) int64 { return map[string]int64{"a": 1, "b": 1}[duid] }); err != nil {
		t.Fatal(err)
	}
	if got := sendCall(t, env, lis, "ACK", "slow", 1); got != "PASS_CALL_UNKNOWN" {
		t.Fatalf("ACK of a call the program was not told of: %s, want PASS_CALL_UNKNOWN", got)
	}
	if err := env.DP.RecordCall(dataplane.CallIDHash("slow"), 3, "b"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		method string
		loads  string
	}{
		{"INVITE", "a=1 b=1 c=0"},
		{"ACK", "a=1 b=1 c=0"},
		{"BYE", "a=1 b=0 c=0"},
	} {
		if got := sendCall(t, env, lis, m.method, "slow", 1); got != "10.0.0.32" {
			t.Errorf("%s went to %s, want 10.0.0.32 (b, where the slow path sent the INVITE)", m.method, got)
		}
		if got := loadsOf(t, env); got != m.loads {
			t.Errorf("after %s loads %s, want %s", m.method, got, m.loads)
		}
	}
	if err := env.DP.RecordCall(1, 3, "nosuch"); err != nil {
		t.Errorf("RecordCall for a duid without a slot: %v", err)
	}
}

// TestCallLoadReloadKeepsCalls: a reload that moves a destination to
// another index (a new destination listed first) keeps its calls on it and
// its load: call_dst and dst_load name it by its (set, duid).
func TestCallLoadReloadKeepsCalls(t *testing.T) {
	env, _, lis := callLoadEnv(t)
	if got := sendCall(t, env, lis, "INVITE", "reload", 1); got != "10.0.0.31" {
		t.Fatalf("INVITE went to %s, want 10.0.0.31 (a, index 0)", got)
	}
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{
		{SetID: 3, URI: "sip:10.0.0.33:5060", Attrs: "duid=c"},
		{SetID: 3, URI: "sip:10.0.0.31:5060", Attrs: "duid=a;maxload=2"},
		{SetID: 3, URI: "sip:10.0.0.32:5060", Attrs: "duid=b"},
		{SetID: 3, URI: "sip:10.0.0.36:5060", Attrs: "duid=f"},
	}, dispatch.Options{Resolver: noDNS})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	if i := snap.Set(3).Dests[0].URI; i != "sip:10.0.0.36:5060" {
		t.Fatalf("index 0 is %s after the reload, want sip:10.0.0.36:5060 (the test needs a to move)", i)
	}
	if got := loadsOf(t, env); got != "a=1 b=0 c=0" {
		t.Errorf("loads after the reload %s, want a=1 b=0 c=0", got)
	}
	for _, method := range []string{"ACK", "BYE"} {
		if got := sendCall(t, env, lis, method, "reload", 1); got != "10.0.0.31" {
			t.Errorf("%s after the reload went to %s, want 10.0.0.31 (a, now index 2)", method, got)
		}
	}
	if got := loadsOf(t, env); got != "a=0 b=0 c=0" {
		t.Errorf("loads after the BYE %s, want a=0 b=0 c=0", got)
	}
}
