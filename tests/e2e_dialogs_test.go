package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/sipp"
	"github.com/sipedge/sipedge/userspace/rpc"
)

// Dialog tracking (dialogs.enabled) on the slow path, end to end: SIPp
// calls that end each way a call can end, through the agent on loopback;
// dlgs.stats, dlgs.list, dlgs.count and dlgs.tags_count over the control
// socket must show exactly how they ended, and the timer must remove them
// after their lifetimes.

// dlgsStates is one half of dlgs.stats, by Kamailio's keys.
type dlgsStates struct {
	Init        int `json:"init"`
	Progress    int `json:"progress"`
	Answered    int `json:"answered"`
	Confirmed   int `json:"confirmed"`
	Terminated  int `json:"terminated"`
	Terminted   int `json:"terminted"`
	NotAnswered int `json:"notanswered"`
}

// dlgsStatsResult is dlgs.stats.
type dlgsStatsResult struct {
	Final     dlgsStates `json:"final"`
	Active    dlgsStates `json:"active"`
	Unmatched int        `json:"unmatched"`
	Ignored   int        `json:"ignored"`
	Shed      int        `json:"shed"`
	Refused   int        `json:"refused"`
	Underflow int        `json:"underflow"`
}

// dlgsRecord is one record of dlgs.list, dlgs.get and dlgs.getall: the
// RPC's own type, whose JSON keys userspace/rpc's tests pin byte for byte.
type dlgsRecord = rpc.DlgsItem

// Kamailio's state numbers (dlgs.list "state").
const (
	stateAnswered    = 2
	stateConfirmed   = 3
	stateTerminated  = 4
	stateNotAnswered = 5
)

// statesWith is a dlgsStates with n in state s (terminted mirrors
// terminated).
func statesWith(s, n int) dlgsStates {
	var st dlgsStates
	switch s {
	case stateAnswered:
		st.Answered = n
	case stateConfirmed:
		st.Confirmed = n
	case stateTerminated:
		st.Terminated, st.Terminted = n, n
	case stateNotAnswered:
		st.NotAnswered = n
	}
	return st
}

// dialogTagRules tag each dialog "tenant-" plus its X-Tenant header, add
// "vip" to acme's, "local" to those from 127.0.0.0/8, and take "local"
// off globex's again: header template, header value, source and removal.
const dialogTagRules = `[{tag: "tenant-$hdr(X-Tenant)"}, {tag: vip, header: X-Tenant, value: "^acme$"}, ` +
	`{tag: local, source: 127.0.0.0/8}, {tag: local, action: remove, header: x-tenant, value: "^globex$"}]`

// dialogKeys is the dialogs: section: tracking on, data the X-Tenant
// header, the tag rules above, the given lifetimes, expiry every 100 ms.
func dialogKeys(initLife, finishLife time.Duration) [][2]string {
	return [][2]string{
		{"enabled", "true"},
		{"init_lifetime", initLife.String()},
		{"finish_lifetime", finishLife.String()},
		{"timer_interval", "100ms"},
		{"data", `"$hdr(X-Tenant)"`},
		{"tags", dialogTagRules},
	}
}

// dialogAgent starts sipedge (slow path only: no xdp section) with one
// listener "edge", the rule r (alg 4, stateless when zero) over dests in
// set 1, and the dialogs: keys.
func dialogAgent(t *testing.T, r agent.Rule, dests []agent.Dest, keys [][2]string) (*agent.Agent, netip.AddrPort) {
	t.Helper()
	edge := freeAddr(t)
	if r == (agent.Rule{}) {
		r.Algorithm = 4
	}
	r.Listener, r.Set = "edge", 1
	return agent.Start(t, bins, agent.Config{
		Listeners:       []agent.Listener{{Name: "edge", Address: edge}},
		Rules:           []agent.Rule{r},
		Dests:           dests,
		DialogKeys:      keys,
		LogLevel:        "info",
		FailoverTimeout: 2 * time.Second,
	}, agent.Options{}), edge
}

// dlgsCtl calls the dlgs methods over one connection to the agent's
// control socket: dozens of calls per test, where a sipedgectl process
// each would cost a second apiece under -race (the race runtime sleeps
// 1 s at exit). The tests still read dlgs.stats once through sipedgectl.
type dlgsCtl struct {
	t *testing.T
	c *rpc.Client
}

func newDlgsCtl(t *testing.T, a *agent.Agent) *dlgsCtl {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpc.Dial(ctx, a.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dlgsCtl{t: t, c: c}
}

// call runs method with params and decodes its result into v.
func (d *dlgsCtl) call(v any, method string, params ...string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := make([]any, len(params))
	for i, p := range params {
		args[i] = p
	}
	raw, err := d.c.Call(ctx, method, args...)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, strings.Join(params, " "), err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		d.t.Fatalf("%s %s: %v: %s", method, strings.Join(params, " "), err, raw)
	}
}

func (d *dlgsCtl) stats() dlgsStatsResult {
	d.t.Helper()
	var st dlgsStatsResult
	d.call(&st, "dlgs.stats")
	return st
}

// waitStats polls dlgs.stats until done accepts it or timeout passes, and
// returns the last one.
func (d *dlgsCtl) waitStats(timeout time.Duration, done func(dlgsStatsResult) bool) dlgsStatsResult {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := d.stats()
		if done(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *dlgsCtl) records(method string, params ...string) []dlgsRecord {
	d.t.Helper()
	var recs []dlgsRecord
	d.call(&recs, method, params...)
	return recs
}

// count runs a method that answers one integer (dlgs.count, tags_count).
func (d *dlgsCtl) count(method string, params ...string) int {
	d.t.Helper()
	var n int
	d.call(&n, method, params...)
	return n
}

// ctlStats is dlgs.stats through sipedgectl.
func ctlStats(t *testing.T, a *agent.Agent) dlgsStatsResult {
	t.Helper()
	var st dlgsStatsResult
	raw := a.MustCtl(t, "dlgs.stats")
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("sipedgectl dlgs.stats: %v: %s", err, raw)
	}
	return st
}

// headerParam is the value of ;name= in a header value.
func headerParam(v, name string) string {
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, name) {
			return val
		}
	}
	return ""
}

// sentCall is what the client's log says of one call: its INVITE's
// Call-ID, From tag and branch, and the To tag of the 2xx it got.
type sentCall struct {
	callID, fromTag, branch, toTag string
}

func sentCalls(t *testing.T, uac *sipp.SIPp) map[string]sentCall {
	t.Helper()
	msgs := uac.Messages(t)
	calls := map[string]sentCall{}
	for _, m := range msgs.Requests(sipp.Sent, "INVITE") {
		calls[m.CallID()] = sentCall{callID: m.CallID(), fromTag: headerParam(m.Get("From"), "tag"), branch: m.Branch()}
	}
	for _, m := range msgs.Responses(sipp.Received, 200) {
		if _, method := m.CSeq(); method != "INVITE" {
			continue
		}
		c := calls[m.CallID()]
		c.toTag = headerParam(m.Get("To"), "tag")
		calls[m.CallID()] = c
	}
	return calls
}

// client is one SIPp client run of the tests below and what each of its
// dialogs must look like.
type client struct {
	uac      *sipp.SIPp
	tenant   string
	state    int
	answered bool
	tags     []string
}

// checkRecords asserts that recs are exactly the calls of the clients,
// each with the fields the edge saw: src the From URI ($fu), dst the
// destination picked ($du), data the X-Tenant header, Call-ID, From tag and
// branch as sent, the To tag of the 200 when answered, ts_init within the
// test, ts_answer set when answered, the state and tags of its client, and
// a running count.
func checkRecords(t *testing.T, recs []dlgsRecord, dst string, start time.Time, clients ...client) {
	t.Helper()
	want := map[string]struct {
		client
		sentCall
	}{}
	for _, c := range clients {
		for id, s := range sentCalls(t, c.uac) {
			want[id] = struct {
				client
				sentCall
			}{c, s}
		}
	}
	var errs []string
	if len(recs) != len(want) {
		errs = append(errs, fmt.Sprintf("dlgs.list has %d records, want %d (one per call)", len(recs), len(want)))
	}
	now := time.Now().Unix()
	seen := map[string]bool{}
	for i, r := range recs {
		w, ok := want[r.CallID]
		if !ok || seen[r.CallID] {
			errs = append(errs, fmt.Sprintf("record %+v: not a call of the clients, or listed twice", r))
			continue
		}
		seen[r.CallID] = true
		src := "sip:sipp@" + w.uac.Opts.Local.String()
		bad := func(field string, got, want any) {
			errs = append(errs, fmt.Sprintf("record %d (Call-ID %s): %s = %v, want %v", i+1, r.CallID, field, got, want))
		}
		if r.Count != i+1 {
			bad("count", r.Count, i+1)
		}
		if r.Src != src {
			bad("src", r.Src, src)
		}
		if r.Dst != dst {
			bad("dst", r.Dst, dst)
		}
		if r.Data != w.tenant {
			bad("data", r.Data, w.tenant)
		}
		if r.FromTag != w.fromTag || w.fromTag == "" {
			bad("ftag", r.FromTag, w.fromTag)
		}
		if r.Branch != w.branch || w.branch == "" {
			bad("branch", r.Branch, w.branch)
		}
		wantTo := ""
		if w.answered {
			wantTo = w.toTag
		}
		if r.ToTag != wantTo || (w.answered && wantTo == "") {
			bad("ttag", r.ToTag, wantTo)
		}
		if r.State != w.state {
			bad("state", r.State, w.state)
		}
		if r.TsInit < start.Unix() || r.TsInit > now {
			bad("ts_init", r.TsInit, fmt.Sprintf("in [%d, %d]", start.Unix(), now))
		}
		if w.answered && (r.TsAnswer < r.TsInit || r.TsAnswer > now) || !w.answered && r.TsAnswer != 0 {
			bad("ts_answer", r.TsAnswer, fmt.Sprintf("answered %t", w.answered))
		}
		if !slices.Equal(r.Tags, w.tags) {
			bad("tags", r.Tags, w.tags)
		}
		if !strings.HasPrefix(r.RUID, "dlgs-") {
			bad("ruid", r.RUID, "dlgs-…")
		}
	}
	reportErrs(t, errs)
}

// reloadDialogs rewrites the config with keys as the dialogs: section and
// sends SIGHUP, waiting for the reload to be logged.
func reloadDialogs(t *testing.T, a *agent.Agent, keys [][2]string) {
	t.Helper()
	a.Config.DialogKeys = keys
	if _, err := a.Config.Write(a.Dir, a.Socket); err != nil {
		t.Fatal(err)
	}
	if err := a.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.WaitLog(regexp.MustCompile(`msg=reloaded config=true`), 5*time.Second)
}

// TestDialogsCallOutcomes: for each way a call ends, N SIPp calls through
// the slow path leave N dialogs in the state the calls ended in, listed
// exactly, counted live or not as Kamailio counts them; then the timer
// removes them after their lifetime and counts them in final:
//   - answered and hung up (INVITE, 180, 200, ACK, BYE): TERMINATED;
//   - rejected (180, 486, ACK): NOTANSWERED;
//   - cancelled by the caller after the 180 (CANCEL, 200, 487, ACK):
//     NOTANSWERED;
//   - answered, never ACKed: ANSWERED until init_lifetime expires it,
//     and the active gauge goes down;
//   - answered and ACKed, BYE lost (the caller never sends it):
//     CONFIRMED, and still so after init_lifetime and finish_lifetime are
//     cut to 1 s by a reload (only active_lifetime, 3 h, ends it).
//
// The agent starts with init_lifetime and finish_lifetime of a minute, so
// that nothing expires before the assertions (a loaded machine under
// -race takes seconds for them); a reload (SIGHUP) then cuts both to 1 s,
// with the timer every 100 ms, live keys that apply to the records held.
func TestDialogsCallOutcomes(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 10
	for _, tc := range []struct {
		name     string
		uac, uas sipp.Scenario
		state    int
		answered bool
	}{
		{name: "answered and hung up", uac: sipp.UACTenant, uas: sipp.UAS, state: stateTerminated, answered: true},
		{name: "rejected 486", uac: sipp.UAC486, uas: sipp.UAS486, state: stateNotAnswered},
		{name: "cancelled after 180", uac: sipp.UACCancel, uas: sipp.UASCancel, state: stateNotAnswered},
		{name: "answered never ACKed", uac: sipp.UACNoAck, uas: sipp.UASNoAck, state: stateAnswered, answered: true},
		{name: "BYE lost", uac: sipp.UACNoBye, uas: sipp.UAS, state: stateConfirmed, answered: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			uas := startUAS(t, 1, tc.uas)
			a, edge := dialogAgent(t, agent.Rule{}, destsOf(uas), dialogKeys(time.Minute, time.Minute))
			ctl := newDlgsCtl(t, a)
			start := time.Now()
			uac := runUAC(t, sipp.Options{Name: "uac", Scenario: tc.uac, Remote: edge.String(), Calls: calls, Rate: 50, Limit: calls,
				Args: []string{"-key", "tenant", "acme"}})

			// The last message of a call may still be on its way.
			want := dlgsStatsResult{Active: statesWith(tc.state, calls)}
			st := ctl.waitStats(5*time.Second, func(st dlgsStatsResult) bool {
				return st.Active == want.Active && st.Final == want.Final
			})
			if st.Active != want.Active || st.Final != want.Final || st.Unmatched != 0 || st.Shed != 0 || st.Refused != 0 || st.Underflow != 0 {
				t.Fatalf("dlgs.stats after the calls:\n got %+v\nwant %+v (unmatched, shed, refused, underflow 0)", st, want)
			}
			if got := ctlStats(t, a); got != st {
				t.Errorf("sipedgectl dlgs.stats = %+v, want %+v as over the socket", got, st)
			}
			// A finished record still lists its tags; it is no longer
			// counted under them.
			recs := ctl.records("dlgs.list")
			checkRecords(t, recs, sipURI(uas[0].Opts.Local), start,
				client{uac: uac, tenant: "acme", state: tc.state, answered: tc.answered, tags: []string{"tenant-acme", "vip", "local"}})

			// Counts see live dialogs only, tag counts too.
			live := tc.state < stateTerminated
			nLive := 0
			if live {
				nLive = calls
			}
			for _, q := range [][]string{
				{"dlgs.count", "any", "eq", ""},
				{"dlgs.count", "src", "eq", "sip:sipp@" + uac.Opts.Local.String()},
				{"dlgs.count", "dst", "eq", sipURI(uas[0].Opts.Local)},
				{"dlgs.count", "data", "eq", "acme"},
				{"dlgs.tags_count", "tenant-acme"},
				{"dlgs.tags_count", "local"},
			} {
				if n := ctl.count(q[0], q[1:]...); n != nLive {
					t.Errorf("%s = %d, want %d", strings.Join(q, " "), n, nLive)
				}
			}
			// dlgs.getall, unlike count, lists finished dialogs too.
			if got := ctl.records("dlgs.getall", "data", "eq", "acme"); len(got) != calls {
				t.Errorf("dlgs.getall data eq acme: %d records, want %d", len(got), calls)
			}

			reloadDialogs(t, a, dialogKeys(time.Second, time.Second))
			if tc.state == stateConfirmed {
				// init_lifetime and finish_lifetime do not end a
				// confirmed dialog: 1.5 s later it is still there.
				time.Sleep(1500 * time.Millisecond)
				if st := ctl.stats(); st.Active != want.Active || st.Final != want.Final {
					t.Errorf("dlgs.stats 1.5 s after the reload: %+v, want %+v: a confirmed dialog ends only by BYE or active_lifetime", st, want)
				}
				if n := ctl.count("dlgs.count", "any", "eq", ""); n != calls {
					t.Errorf("dlgs.count any after the reload = %d, want %d", n, calls)
				}
				return
			}
			// The lifetime (1 s from the call, plus the 100 ms timer) ends
			// every record; each is counted in final by its state,
			// and the active gauges go back to 0.
			want = dlgsStatsResult{Final: statesWith(tc.state, calls)}
			st = ctl.waitStats(5*time.Second, func(st dlgsStatsResult) bool { return st.Final == want.Final })
			if st.Active != want.Active || st.Final != want.Final || st.Underflow != 0 {
				t.Errorf("dlgs.stats after the lifetime:\n got %+v\nwant %+v", st, want)
			}
			if recs := ctl.records("dlgs.list"); len(recs) != 0 {
				t.Errorf("dlgs.list after the lifetime: %d records, want none: %+v", len(recs), recs[0])
			}
			if n := ctl.count("dlgs.count", "any", "eq", ""); n != 0 {
				t.Errorf("dlgs.count any after the lifetime = %d, want 0", n)
			}
			if n := ctl.count("dlgs.tags_count", "tenant-acme"); n != 0 {
				t.Errorf("dlgs.tags_count tenant-acme after the lifetime = %d, want 0", n)
			}
		})
	}
}

// TestDialogsTagsAndCounts: two callers with confirmed calls (BYE lost, so
// they stay live): 6 from acme, 4 from globex, each from its own port.
// The tag rules tag them by header template, header value and source,
// and remove one tag again by header; dlgs.tags_count gives each tag's
// true count (0 for none), and dlgs.count by src, dst and data with eq,
// ne, sw, re (case-insensitive) and fm gives the true numbers; dlgs.get
// and getall return the matching records.
func TestDialogsTagsAndCounts(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	uas := startUAS(t, 1, sipp.UAS)
	a, edge := dialogAgent(t, agent.Rule{}, destsOf(uas), dialogKeys(time.Minute, time.Minute))
	ctl := newDlgsCtl(t, a)
	start := time.Now()
	acme := runUAC(t, sipp.Options{Name: "uac-acme", Scenario: sipp.UACNoBye, Remote: edge.String(), Calls: 6, Rate: 50, Limit: 6,
		Args: []string{"-key", "tenant", "acme"}})
	globex := runUAC(t, sipp.Options{Name: "uac-globex", Scenario: sipp.UACNoBye, Remote: edge.String(), Calls: 4, Rate: 50, Limit: 4,
		Args: []string{"-key", "tenant", "globex"}})
	st := ctl.waitStats(5*time.Second, func(st dlgsStatsResult) bool { return st.Active.Confirmed == 10 })
	if want := statesWith(stateConfirmed, 10); st.Active != want {
		t.Fatalf("dlgs.stats active %+v, want %+v", st.Active, want)
	}
	dst := sipURI(uas[0].Opts.Local)
	checkRecords(t, ctl.records("dlgs.list"), dst, start,
		client{uac: acme, tenant: "acme", state: stateConfirmed, answered: true, tags: []string{"tenant-acme", "vip", "local"}},
		client{uac: globex, tenant: "globex", state: stateConfirmed, answered: true, tags: []string{"tenant-globex"}})

	srcA, srcG := "sip:sipp@"+acme.Opts.Local.String(), "sip:sipp@"+globex.Opts.Local.String()
	for _, tc := range []struct {
		q    []string
		want int
	}{
		{[]string{"dlgs.tags_count", "tenant-acme"}, 6},
		{[]string{"dlgs.tags_count", "tenant-globex"}, 4},
		{[]string{"dlgs.tags_count", "vip"}, 6},
		{[]string{"dlgs.tags_count", "local"}, 6},
		{[]string{"dlgs.tags_count", "tenant-initech"}, 0},
		{[]string{"dlgs.count", "any", "eq", "*"}, 10},
		{[]string{"dlgs.count", "src", "eq", srcA}, 6},
		{[]string{"dlgs.count", "src", "eq", srcG}, 4},
		{[]string{"dlgs.count", "src", "ne", srcA}, 4},
		{[]string{"dlgs.count", "src", "sw", "sip:sipp@127.0.0.1:"}, 10},
		{[]string{"dlgs.count", "src", "sw", srcG}, 4},
		{[]string{"dlgs.count", "src", "re", "^SIP:SIPP@127\\.0\\.0\\.1:" + fmt.Sprint(acme.Opts.Local.Port()) + "$"}, 6},
		{[]string{"dlgs.count", "src", "fm", "sip:sipp@127.0.0.1:*"}, 10},
		{[]string{"dlgs.count", "src", "fm", srcG[:len(srcG)-1] + "?"}, 4},
		{[]string{"dlgs.count", "dst", "eq", dst}, 10},
		{[]string{"dlgs.count", "dst", "ne", dst}, 0},
		{[]string{"dlgs.count", "dst", "sw", "sip:127.0.0.1:"}, 10},
		{[]string{"dlgs.count", "dst", "re", "127\\.0\\.0\\.1"}, 10},
		{[]string{"dlgs.count", "dst", "fm", "sip:127.0.0.1:[0-9]*"}, 10},
		{[]string{"dlgs.count", "dst", "fm", "sip:10.*"}, 0},
		{[]string{"dlgs.count", "data", "eq", "acme"}, 6},
		{[]string{"dlgs.count", "data", "ne", "acme"}, 4},
		{[]string{"dlgs.count", "data", "re", "^(ACME|globex)$"}, 10},
	} {
		if n := ctl.count(tc.q[0], tc.q[1:]...); n != tc.want {
			t.Errorf("%s = %d, want %d", strings.Join(tc.q, " "), n, tc.want)
		}
	}
	if recs := ctl.records("dlgs.get", "src", "eq", srcG); len(recs) != 1 || recs[0].Src != srcG || recs[0].Count != 1 {
		t.Errorf("dlgs.get src eq %s: %+v, want one record of that src, count 1", srcG, recs)
	}
	recs := ctl.records("dlgs.getall", "data", "eq", "globex")
	if len(recs) != 4 {
		t.Errorf("dlgs.getall data eq globex: %d records, want 4", len(recs))
	}
	for i, r := range recs {
		if r.Data != "globex" || r.Count != i+1 {
			t.Errorf("dlgs.getall data eq globex: record %d is %+v", i+1, r)
		}
	}
}

// TestDialogsFailover: in failover mode the tracker sees each call once,
// under the destination that answered: with a first destination that
// refuses every INVITE with 503 and a second that answers, 10 calls
// leave 10 TERMINATED records whose dst is the second (the 503s the
// transaction absorbs are not seen); with the refusing one alone, the
// transaction's final answer to the caller leaves 10 NOTANSWERED records
// under it.
func TestDialogsFailover(t *testing.T) {
	t.Parallel()
	sipp.NeedSIPp(t)
	const calls = 10
	keys := [][2]string{{"enabled", "true"}}
	rule := agent.Rule{Algorithm: 8, RecordRoute: true, Mode: "failover"}
	t.Run("second destination answers", func(t *testing.T) {
		t.Parallel()
		bad := sipp.Start(t, sipp.Options{Name: "uas503", Scenario: sipp.UAS503, Local: freeAddr(t)})
		good := sipp.Start(t, sipp.Options{Name: "uasok", Scenario: sipp.UASRecordRoute, Local: freeAddr(t)})
		a, edge := dialogAgent(t, rule, []agent.Dest{
			{Set: 1, URI: sipURI(bad.Opts.Local), Priority: 10},
			{Set: 1, URI: sipURI(good.Opts.Local), Priority: 5},
		}, keys)
		ctl := newDlgsCtl(t, a)
		start := time.Now()
		uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UACRecordRoute, Remote: edge.String(), Calls: calls, Rate: 20, Limit: calls})
		want := statesWith(stateTerminated, calls)
		st := ctl.waitStats(5*time.Second, func(st dlgsStatsResult) bool { return st.Active == want })
		if st.Active != want || st.Final != (dlgsStates{}) || st.Unmatched != 0 {
			t.Fatalf("dlgs.stats: %+v, want active %+v, final 0, nothing unmatched", st, want)
		}
		checkRecords(t, ctl.records("dlgs.list"), sipURI(good.Opts.Local), start,
			client{uac: uac, state: stateTerminated, answered: true, tags: []string{}})
	})
	t.Run("every destination refuses", func(t *testing.T) {
		t.Parallel()
		bad := sipp.Start(t, sipp.Options{Name: "uas503", Scenario: sipp.UAS503, Local: freeAddr(t)})
		a, edge := dialogAgent(t, rule, []agent.Dest{{Set: 1, URI: sipURI(bad.Opts.Local)}}, keys)
		ctl := newDlgsCtl(t, a)
		start := time.Now()
		uac := runUAC(t, sipp.Options{Name: "uac", Scenario: sipp.UAC503, Remote: edge.String(), Calls: calls, Rate: 20, Limit: calls})
		want := statesWith(stateNotAnswered, calls)
		st := ctl.waitStats(5*time.Second, func(st dlgsStatsResult) bool { return st.Active == want })
		if st.Active != want || st.Final != (dlgsStates{}) || st.Unmatched != 0 {
			t.Fatalf("dlgs.stats: %+v, want active %+v, final 0, nothing unmatched", st, want)
		}
		checkRecords(t, ctl.records("dlgs.list"), sipURI(bad.Opts.Local), start,
			client{uac: uac, state: stateNotAnswered, tags: []string{}})
	})
}
