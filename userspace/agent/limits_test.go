package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/sipproxy"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// fakeBlocker is the fast path's limit_block as a map.
type fakeBlocker struct {
	mu sync.Mutex
	m  map[dataplane.LimitBlock]int
}

func (f *fakeBlocker) SetLimitBlock(b dataplane.LimitBlock, rule int, blocked bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if blocked {
		f.m[b] = rule
	} else {
		delete(f.m, b)
	}
	return nil
}

func (f *fakeBlocker) entries() map[dataplane.LimitBlock]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.m)
}

// limitsEnv is dialog tracking with limits, fed as the slow path feeds it.
type limitsEnv struct {
	t    testing.TB
	g    *dialogs
	f    *feed // the adapter both paths feed
	l    *limits
	fast *fakeBlocker
}

func newLimitsEnv(t testing.TB, rules ...config.LimitRule) *limitsEnv {
	t.Helper()
	return newLimitsEnvMax(t, 0, rules...)
}

// newLimitsEnvMax is newLimitsEnv with dialogs.max_records maxRecords (0:
// the default).
func newLimitsEnvMax(t testing.TB, maxRecords int, rules ...config.LimitRule) *limitsEnv {
	t.Helper()
	c := config.Defaults()
	cfg := &c
	if maxRecords > 0 {
		cfg.Dialogs.MaxRecords = maxRecords
	}
	cfg.Dialogs.Enabled = true
	cfg.Dialogs.Tags = []config.TagRule{{Tag: "gold", Set: -1, Header: "X-Gold"}}
	cfg.Dialogs.Limits = rules
	cfg.Listeners = []config.Listener{{Name: "edge", Addr: netip.MustParseAddrPort("127.0.0.1:5060")}}
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{{SetID: 1, URI: "sip:10.9.9.9:5060"}}, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := newDialogs(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	l, err := newLimits(cfg, g, logger)
	if err != nil {
		t.Fatal(err)
	}
	fast := &fakeBlocker{m: map[dataplane.LimitBlock]int{}}
	l.fast = fast
	return &limitsEnv{t: t, g: g, f: newFeed(cfg, dispatch.New(snap), g, nil), l: l, fast: fast}
}

// msg builds a request of call from src (a To tag when inDialog), parsed.
func (e *limitsEnv) msg(method, call, branch, src string, set int, extra string) sipproxy.Observed {
	e.t.Helper()
	text := fmt.Sprintf("%s sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\n"+
		"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n%sContent-Length: 0\r\n\r\n",
		method, src, branch, call, method, extra)
	data := []byte(text)
	m := new(sipmsg.Msg)
	if err := sipmsg.Parse(data, m); err != nil {
		e.t.Fatal(err)
	}
	return sipproxy.Observed{Data: data, Msg: m, Src: netip.MustParseAddrPort(src), Listener: "edge", SetID: set}
}

// invite offers an INVITE to admit and, when admitted, forwards it
// (observeSlow); it returns the refusal's code, 0 when admitted.
func (e *limitsEnv) invite(call, branch, src string, set int, extra string) int {
	e.t.Helper()
	o := e.msg("INVITE", call, branch, src, set, extra)
	r := e.l.admit(o)
	if r.Code == 0 {
		e.f.observeSlow(o)
	}
	return r.Code
}

func (e *limitsEnv) cancel(call, src string) {
	e.t.Helper()
	e.f.observeSlow(e.msg("CANCEL", call, "c", src, 1, ""))
}

func (e *limitsEnv) expectBlocked(what string, want map[dataplane.LimitBlock]int) {
	e.t.Helper()
	e.l.flush() // as Run does every limitRecheck
	if got := e.fast.entries(); !maps.Equal(got, want) {
		e.t.Errorf("%s: fast path verdicts %v, want %v", what, got, want)
	}
}

// TestLimitsSource: a source at its limit is refused with the rule's
// reply and counted; a retransmission of an admitted INVITE, and the
// INVITEs of other sources, are admitted; the fast path blocks the source
// once an INVITE takes it to the limit, and the recheck lifts it when a
// dialog ends; then the source is admitted again.
func TestLimitsSource(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "10.1.0.0/16", Set: -1, Max: 2, Code: 486, RetryAfter: 5 * time.Second})
	const a, b = "10.1.1.1:5060", "10.2.2.2:5060"
	srcA := dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: netip.MustParseAddr("10.1.1.1")}
	for i, want := range []int{0, 0, 486, 486} {
		if got := e.invite(fmt.Sprintf("a%d", i), "1", a, 1, ""); got != want {
			t.Errorf("INVITE %d from a: %d, want %d", i, got, want)
		}
	}
	if got := e.invite("a0", "1", a, 1, ""); got != 0 {
		t.Errorf("retransmission of an admitted INVITE: %d, want admitted", got)
	}
	for i := range 3 {
		if got := e.invite(fmt.Sprintf("b%d", i), "1", b, 1, ""); got != 0 {
			t.Errorf("INVITE %d from b (outside the prefix): %d, want admitted", i, got)
		}
	}
	e.expectBlocked("a at its limit", map[dataplane.LimitBlock]int{srcA: 0})
	r := e.l.admit(e.msg("INVITE", "a9", "1", a, 1, ""))
	if r != (sipproxy.Refusal{Code: 486, Reason: "Busy Here", RetryAfter: 5}) {
		t.Errorf("refusal %+v, want 486 Busy Here, Retry-After 5", r)
	}
	st := e.l.stats()
	if len(st.Rules) != 1 || st.Rules[0].Refused != 3 || st.Rules[0].Count != 1 || st.FastPathBlocked != 1 {
		t.Errorf("dlgs.limits %+v, want 3 refused, 1 source at the limit, 1 verdict", st)
	}

	e.cancel("a0", a)
	e.l.recheck()
	e.expectBlocked("a below its limit", map[dataplane.LimitBlock]int{})
	if got := e.invite("a5", "1", a, 1, ""); got != 0 {
		t.Errorf("after a dialog ended: %d, want admitted", got)
	}
	e.expectBlocked("a at its limit again", map[dataplane.LimitBlock]int{srcA: 0})
}

// TestLimitsSetAndTag: a set's limit counts the dialogs dispatched to it
// from any source and blocks the set; a tag's counts the dialogs its tag
// rule tags and blocks everything in the fast path (the program cannot
// tell which INVITEs the rule tags); the first rule that refuses answers.
func TestLimitsSetAndTag(t *testing.T) {
	e := newLimitsEnv(t,
		config.LimitRule{Set: 1, Max: 3, Code: 503},
		config.LimitRule{Tag: "gold", Set: -1, Max: 1, Code: 480},
	)
	set1 := dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: 1}
	all := dataplane.LimitBlock{Kind: dataplane.LimitAll}
	if got := e.invite("g1", "1", "10.0.0.1:5060", 1, "X-Gold: yes\r\n"); got != 0 {
		t.Fatalf("first gold call: %d", got)
	}
	e.expectBlocked("gold at its limit", map[dataplane.LimitBlock]int{all: 1})
	if got := e.invite("g2", "1", "10.0.0.2:5060", 1, "X-Gold: yes\r\n"); got != 480 {
		t.Errorf("second gold call: %d, want 480", got)
	}
	if got := e.invite("p1", "1", "10.0.0.3:5060", 1, ""); got != 0 {
		t.Errorf("a call without the tag: %d, want admitted", got)
	}
	if got := e.invite("p2", "1", "10.0.0.4:5060", 2, ""); got != 0 {
		t.Errorf("a call to set 2: %d, want admitted", got)
	}
	if got := e.invite("p3", "1", "10.0.0.5:5060", 1, ""); got != 0 {
		t.Errorf("third call to set 1: %d, want admitted", got)
	}
	e.expectBlocked("set 1 at its limit", map[dataplane.LimitBlock]int{all: 1, set1: 0})
	if got := e.invite("g3", "1", "10.0.0.6:5060", 1, "X-Gold: yes\r\n"); got != 503 {
		t.Errorf("a gold call to the full set: %d, want 503 (the first rule)", got)
	}
	e.cancel("g1", "10.0.0.1:5060")
	e.l.recheck()
	e.expectBlocked("gold and set 1 (g1 was in it) below their limits", map[dataplane.LimitBlock]int{})

	if got := e.invite("p4", "1", "10.0.0.5:5060", 1, ""); got != 0 {
		t.Errorf("a third call to set 1 again: %d, want admitted", got)
	}
	e.expectBlocked("set 1 at its limit again", map[dataplane.LimitBlock]int{set1: 0})

	// A reload raising the set's limit lifts its verdict at once; the
	// counters restart.
	c := config.Defaults()
	c.Dialogs.Limits = []config.LimitRule{{Set: 1, Max: 10, Code: 503}}
	e.l.Apply(&Snapshot{Config: &c})
	e.expectBlocked("reloaded", map[dataplane.LimitBlock]int{})
	if st := e.l.stats(); len(st.Rules) != 1 || st.Rules[0].Refused != 0 || st.Rules[0].Count != 3 {
		t.Errorf("dlgs.limits after the reload %+v, want one rule, 0 refused, 3 dialogs in set 1", st)
	}
	// Lowered below the live count: the set is blocked at once.
	c.Dialogs.Limits = []config.LimitRule{{Set: 1, Max: 3, Code: 503}}
	e.l.Apply(&Snapshot{Config: &c})
	e.expectBlocked("lowered", map[dataplane.LimitBlock]int{set1: 0})
}

// TestLimitsReason: the reason phrase of a limit's code, when not given.
func TestLimitsReason(t *testing.T) {
	rs, err := compileLimits([]config.LimitRule{
		{Source: "any", Set: -1, Max: 1, Code: 503},
		{Source: "any", Set: -1, Max: 1, Code: 499},
		{Source: "any", Set: -1, Max: 1, Code: 503, Reason: "Too Many Calls"},
		{Source: "any", Set: -1, Max: 0, Code: 503},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs.rules {
		got = append(got, r.refusal.Reason)
	}
	if strings.Join(got, "|") != "Service Unavailable|Dialog Limit Reached|Too Many Calls" {
		t.Errorf("reasons %q (the max 0 rule left out)", got)
	}
}

// TestLimitsFastFeed: INVITEs the fast path forwarded (its events) count
// as the slow path's do: the one that takes the source to its limit blocks
// it in the fast path, and the slow path then refuses the next one.
func TestLimitsFastFeed(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Set: -1, Max: 2, Code: 503})
	src := netip.MustParseAddrPort("10.1.2.3:5060")
	for i := range 2 {
		o := e.msg("INVITE", fmt.Sprintf("f%d", i), "1", src.String(), 1, "")
		e.f.observeFast([]dataplane.Event{{Kind: dataplane.EventRequest, Method: dataplane.MethodInvite,
			Msg: o.Data, Src: src, SetID: 1, DstIndex: 0}})
	}
	e.expectBlocked("two calls forwarded by the fast path", map[dataplane.LimitBlock]int{
		{Kind: dataplane.LimitSource, Source: src.Addr()}: 0})
	if got := e.invite("f2", "1", src.String(), 1, ""); got != 503 {
		t.Errorf("the third, passed to the slow path: %d, want 503", got)
	}
}

// BenchmarkLimitsAdmit times the slow path's admission of one
// dialog-creating INVITE against a tracker holding 10,000 live dialogs
// from 1,000 sources: the Known look-up, one O(1) count per rule and the
// pending admission added and removed (as observing it does), with
// a source and a set rule, and with a tag rule too (which evaluates the
// tag rules over the INVITE).
//
//	go test -count=3 -run '^$' -bench BenchmarkLimitsAdmit -cpu 1 ./userspace/agent/
func BenchmarkLimitsAdmit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		rules []config.LimitRule
	}{
		{"source+set", []config.LimitRule{{Source: "any", Set: -1, Max: 100, Code: 503}, {Set: 1, Max: 1 << 20, Code: 503}}},
		{"source+set+tag", []config.LimitRule{{Source: "any", Set: -1, Max: 100, Code: 503}, {Set: 1, Max: 1 << 20, Code: 503},
			{Tag: "gold", Set: -1, Max: 1 << 20, Code: 503}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newLimitsEnv(b, tc.rules...)
			for i := range 10000 {
				src := fmt.Sprintf("10.0.%d.%d:5060", i%1000/250, i%250+1)
				e.f.observeSlow(e.msg("INVITE", "held-"+strconv.Itoa(i), "1", src, 1, "X-Gold: yes\r\n"))
			}
			o := e.msg("INVITE", "new-call", "1", "10.0.0.1:5060", 1, "X-Gold: yes\r\n")
			hash := wordhash.CallID([]byte("new-call"))
			branch, _, _ := o.Msg.TopViaKey(o.Data)
			key := pendingKey{hash, string(branch)}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if r := e.l.admit(o); r.Code != 0 {
					b.Fatalf("refused %+v", r)
				}
				// What observing it does to the pending admission.
				e.l.pend.mu.Lock()
				e.l.pend.remove(key)
				e.l.pend.mu.Unlock()
			}
		})
	}
}

// TestLimitsPending: an admitted INVITE counts before the tracker holds
// it, so that failover INVITEs (observed only once a destination answers)
// and INVITEs admitted on two reader goroutines at once cannot take a
// count past its limit; once observed it counts once; an admission never
// observed (its send failed) is dropped after its deadline.
func TestLimitsPending(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Set: -1, Max: 2, Code: 503})
	const a = "10.1.1.1:5060"
	admit := func(call, branch string) int {
		o := e.msg("INVITE", call, branch, a, 1, "")
		o.Failover = true
		return e.l.admit(o).Code
	}
	if admit("p1", "1") != 0 || admit("p2", "1") != 0 {
		t.Fatal("the first two failover INVITEs were refused")
	}
	if got := admit("p3", "1"); got != 503 {
		t.Errorf("a third while two are pending: %d, want 503", got)
	}
	if got := admit("p1", "1"); got != 0 {
		t.Errorf("a retransmission of a pending INVITE: %d, want admitted", got)
	}
	// p1's destination answers: the slow path reports its INVITE now.
	e.f.observeSlow(e.msg("INVITE", "p1", "1", a, 1, ""))
	if got := admit("p3", "1"); got != 503 {
		t.Errorf("p1 observed, p2 pending: %d, want 503 (p1 counted once, not twice nor zero times)", got)
	}
	e.l.pend.mu.Lock()
	pending := len(e.l.pend.byCall)
	e.l.pend.mu.Unlock()
	if pending != 1 {
		t.Errorf("%d pending admissions, want 1 (p2)", pending)
	}
	e.cancel("p1", a)
	if got := admit("p4", "1"); got != 0 {
		t.Errorf("p1 ended, p2 pending: %d, want admitted", got)
	}
	// p2 and p4 are never observed: past the deadline they are dropped.
	e.l.pend.mu.Lock()
	e.l.pend.swept = time.Time{}
	e.l.pend.sweep(time.Now().Add(config.DefaultInitLifetime + time.Second))
	pending = len(e.l.pend.byCall)
	left := len(e.l.pend.sources)
	e.l.pend.mu.Unlock()
	if pending != 0 || left != 0 {
		t.Errorf("after the deadline: %d pending admissions, %d sources counted, want none", pending, left)
	}
	if got := admit("p5", "1"); got != 0 {
		t.Errorf("nothing live or pending: %d, want admitted", got)
	}
}

// TestLimitsNewBranchOfLiveCallID: a caller at its limit gets no further
// dialog by reusing the Call-ID of a held one with a new branch and no To
// tag (a new dialog at the destination); a retransmission of the held
// INVITE is still admitted.
func TestLimitsNewBranchOfLiveCallID(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Max: 1, Code: 503})
	src := "192.0.2.7:5060"
	if c := e.invite("held", "b0", src, 1, ""); c != 0 {
		t.Fatalf("first INVITE answered %d, want admitted", c)
	}
	for _, br := range []string{"x1", "x2", "x3"} {
		if c := e.invite("held", br, src, 1, ""); c != 503 {
			t.Errorf("INVITE of the held Call-ID, new branch %s: %d, want 503", br, c)
		}
	}
	if c := e.invite("held", "b0", src, 1, ""); c != 0 {
		t.Errorf("retransmission of the held INVITE: %d, want admitted", c)
	}
}

// TestLimitsNewBranchOfPendingCallID: the same while the first INVITE is
// only pending (a failover transaction not answered yet).
func TestLimitsNewBranchOfPendingCallID(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Max: 1, Code: 503})
	src := "192.0.2.7:5060"
	first := e.msg("INVITE", "held", "b0", src, 1, "")
	first.Failover = true
	if r := e.l.admit(first); r.Code != 0 {
		t.Fatalf("first INVITE refused %+v", r)
	}
	if r := e.l.admit(first); r.Code != 0 {
		t.Errorf("retransmission of the pending INVITE refused %+v", r)
	}
	again := e.msg("INVITE", "held", "b1", src, 1, "")
	again.Failover = true
	if r := e.l.admit(again); r.Code != 503 {
		t.Errorf("new branch of the pending Call-ID: %+v, want 503", r)
	}
}

// withHeaderEdit returns o with old replaced by new in its text, reparsed.
func withHeaderEdit(t *testing.T, o sipproxy.Observed, old, new string) sipproxy.Observed {
	t.Helper()
	o.Data = []byte(strings.Replace(string(o.Data), old, new, 1))
	if err := sipmsg.Parse(o.Data, o.Msg); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestLimitsUntrackableInviteRefused: an INVITE without From tag, which
// the tracker cannot record and so would never count, is refused with 400
// while a limit applies to it, and admitted when none does.
func TestLimitsUntrackableInviteRefused(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "192.0.2.0/24", Max: 1, Code: 503})
	o := withHeaderEdit(t, e.msg("INVITE", "nf", "b", "192.0.2.8:5060", 1, ""), ";tag=a", "")
	if o.Msg.From.HasTag {
		t.Fatal("From tag still parsed")
	}
	if r := e.l.admit(o); r.Code != 400 {
		t.Errorf("no From tag, a limit applies: %+v, want 400", r)
	}
	o = withHeaderEdit(t, e.msg("INVITE", "nf", "b", "198.51.100.8:5060", 1, ""), ";tag=a", "")
	if r := e.l.admit(o); r.Code != 0 {
		t.Errorf("no From tag, no limit applies: %+v, want admitted", r)
	}
}

// TestLimitsForgedToTagNotCounted: an INVITE with a To tag is not judged
// by admission (nor by the fast path), so the tracker must not count it
// either when it is of no dialog held.
func TestLimitsForgedToTagNotCounted(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Max: 1, Code: 503})
	for _, call := range []string{"t1", "t2", "t3"} {
		o := withHeaderEdit(t, e.msg("INVITE", call, "b", "192.0.2.9:5060", 1, ""),
			"To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=forged")
		e.f.observeSlow(o)
	}
	if n := e.g.t.SourceCount(netip.MustParseAddr("192.0.2.9")); n != 0 {
		t.Errorf("source count %d after To-tagged INVITEs of no dialog, want 0", n)
	}
	if c := e.invite("real", "b", "192.0.2.9:5060", 1, ""); c != 0 {
		t.Errorf("a real INVITE after them: %d, want admitted", c)
	}
}

// TestLimitsRefusedCountsCalls: retransmissions of a refused INVITE are
// refused alike but counted once, so "refused" in dlgs.limits counts calls.
func TestLimitsRefusedCountsCalls(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Max: 1, Code: 503})
	src := "192.0.2.7:5060"
	if c := e.invite("held", "b0", src, 1, ""); c != 0 {
		t.Fatalf("first INVITE answered %d, want admitted", c)
	}
	for range 4 {
		if c := e.invite("over", "b1", src, 1, ""); c != 503 {
			t.Errorf("INVITE over the limit or its retransmission: %d, want 503", c)
		}
	}
	if c := e.invite("over2", "b1", src, 1, ""); c != 503 {
		t.Errorf("second call over the limit: %d, want 503", c)
	}
	if st := e.l.stats(); st.Rules[0].Refused != 2 {
		t.Errorf("refused %d after two calls (one sent four times), want 2", st.Rules[0].Refused)
	}
}

// TestLimitsVerdictsQueued: admit and observe, which run under the
// failover table's lock, make no map syscall: the verdict reaches the fast
// path when Run, woken, flushes.
func TestLimitsVerdictsQueued(t *testing.T) {
	e := newLimitsEnv(t, config.LimitRule{Source: "any", Max: 1, Code: 503})
	src := "192.0.2.7:5060"
	if c := e.invite("held", "b0", src, 1, ""); c != 0 {
		t.Fatalf("first INVITE answered %d, want admitted", c)
	}
	if c := e.invite("over", "b1", src, 1, ""); c != 503 {
		t.Fatalf("second INVITE answered %d, want 503", c)
	}
	if got := e.fast.entries(); len(got) != 0 {
		t.Errorf("fast path written inline by admit or observe: %v", got)
	}
	e.expectBlocked("after a flush", map[dataplane.LimitBlock]int{
		{Kind: dataplane.LimitSource, Source: netip.MustParseAddr("192.0.2.7")}: 0})
}

// TestLimitsTrackerFull: at max_records with nothing to shed, the tracker
// refuses new records, so an INVITE a rule applies to would never count:
// it is refused with the rule's reply.
func TestLimitsTrackerFull(t *testing.T) {
	e := newLimitsEnvMax(t, 1, config.LimitRule{Source: "any", Max: 10, Code: 503})
	if c := e.invite("held", "b0", "192.0.2.7:5060", 1, ""); c != 0 {
		t.Fatalf("first INVITE answered %d, want admitted", c)
	}
	e.cancel("held", "192.0.2.7:5060") // finished, held until it expires: nothing to shed
	if c := e.invite("second", "b1", "192.0.2.8:5060", 1, ""); c != 503 {
		t.Errorf("INVITE with the tracker full (%+v): %d, want 503", e.g.t.Stats(), c)
	}
}
