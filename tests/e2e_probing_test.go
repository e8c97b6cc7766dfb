package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
)

// responder is a backend on loopback: it answers OPTIONS with the code it
// is set to (0: silent) and records the INVITEs it gets.
type responder struct {
	Addr  netip.AddrPort
	conn  *net.UDPConn
	code  atomic.Int32
	delay atomic.Int64 // time.Duration before an OPTIONS is answered

	mu       sync.Mutex
	options  []probeSeen // OPTIONS received, with the code answered (0: none)
	invites  []string    // Call-IDs of the INVITEs received
	fromAddr map[netip.AddrPort]bool
	done     chan struct{}
}

type probeSeen struct {
	at   time.Time
	code int
}

func newResponder(t testing.TB, code int) *responder {
	t.Helper()
	addr := freeAddr(t)
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("responder on %s: %v", addr, err)
	}
	return serveResponder(t, c, code)
}

// serveResponder runs a responder on c, closed at the test's end.
func serveResponder(t testing.TB, c *net.UDPConn, code int) *responder {
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	r := &responder{Addr: addr, conn: c, fromAddr: map[netip.AddrPort]bool{}, done: make(chan struct{})}
	r.code.Store(int32(code))
	go r.serve()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *responder) serve() {
	defer close(r.done)
	buf := make([]byte, 65536)
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg := strings.ReplaceAll(string(buf[:n]), "\r\n", "\n")
		start, _, _ := strings.Cut(msg, "\n")
		method, _, _ := strings.Cut(start, " ")
		r.mu.Lock()
		r.fromAddr[src] = true
		switch method {
		case "OPTIONS":
			code := int(r.code.Load())
			r.options = append(r.options, probeSeen{time.Now(), code})
			if code != 0 {
				reply := []byte(answer(msg, code))
				if d := time.Duration(r.delay.Load()); d > 0 {
					// A write after the test closed conn fails harmlessly.
					time.AfterFunc(d, func() { _, _ = r.conn.WriteToUDPAddrPort(reply, src) })
				} else {
					_, _ = r.conn.WriteToUDPAddrPort(reply, src)
				}
			}
		case "INVITE":
			r.invites = append(r.invites, header(msg, "Call-ID"))
		}
		r.mu.Unlock()
	}
}

// answer is a response with code to the request msg (LF line ends).
func answer(msg string, code int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d Probe Answer\r\n", code)
	for _, line := range strings.Split(msg, "\n") {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(line + "\r\n")
		case "to":
			b.WriteString(line + ";tag=resp1\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

func header(msg, name string) string {
	for _, line := range strings.Split(msg, "\n") {
		n, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(n), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// since counts the OPTIONS received after t that got no answer, and those
// answered with code.
func (r *responder) since(t time.Time) (unanswered, answered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.options {
		if o.at.Before(t) {
			continue
		}
		if o.code == 0 {
			unanswered++
		} else {
			answered++
		}
	}
	return unanswered, answered
}

func (r *responder) Invites() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.invites...)
}

// Sources are the addresses datagrams came from.
func (r *responder) Sources() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.AddrPort
	for a := range r.fromAddr {
		out = append(out, a)
	}
	return out
}

func (r *responder) Options() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.options)
}

// probingAgent runs sipedge with round robin over set 1 = backends and the
// dispatcher keys given; each tweak changes the config before the start.
func probingAgent(t *testing.T, backends []*responder, keys [][2]string, tweaks ...func(*agent.Config)) (*agent.Agent, netip.AddrPort) {
	t.Helper()
	edge := freeAddr(t)
	var dests []agent.Dest
	for _, b := range backends {
		dests = append(dests, agent.Dest{Set: 1, URI: sipURI(b.Addr)})
	}
	cfg := agent.Config{
		Listeners:      []agent.Listener{{Name: "edge", Address: edge}},
		Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:          dests,
		DispatcherKeys: keys,
	}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	return agent.Start(t, bins, cfg, agent.Options{}), edge
}

// waitFlags polls dispatcher.list until uri's FLAGS are want, returning
// when it saw them; it fails the test after timeout.
func waitFlags(t *testing.T, a *agent.Agent, uri, want string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		flags, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if last = flags["1 "+uri]; last == want {
			return now
		}
		if now.After(deadline) {
			a.LogOutput()
			t.Fatalf("FLAGS of %s = %q after %v, want %q", uri, last, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendInvites sends n INVITEs through c's edge (round robin) and
// returns once every backend has had the time to get them.
func sendInvites(t *testing.T, c *rawClient, prefix string, n int) {
	t.Helper()
	for i := range n {
		sendInvite(t, c, fmt.Sprintf("%s-%d", prefix, i))
	}
	time.Sleep(200 * time.Millisecond)
}

// eventTime is the time the agent logged event (the first such line).
func eventTime(t *testing.T, a *agent.Agent, event string) time.Time {
	t.Helper()
	line := a.WaitLog(regexp.MustCompile(`time=\S+ level=INFO msg=`+regexp.QuoteMeta(event)+` `), 5*time.Second)
	stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return at
}

func countPrefix(ids []string, prefix string) int {
	n := 0
	for _, id := range ids {
		if strings.HasPrefix(id, prefix+"-") {
			n++
		}
	}
	return n
}

// Probing settings of the tests: ds_ping_interval 200 ms, thresholds 2.
// The probe deadline is min(interval, 5 s) = 200 ms (ds_ping_timeout
// unset); later probes are exactly periodic. A destination that stops
// answering right after a good probe is inactive after at most
// threshold × interval + deadline (the formula of docs/probing.md,
// "Time to inactive"); margin covers the agent under -race on a loaded machine
// and the polling.
const (
	probeInterval  = 200 * time.Millisecond
	probeThreshold = 2
	probeDeadline  = probeInterval
	probeMargin    = 700 * time.Millisecond
)

var probeKeys = [][2]string{
	{"ds_ping_interval", probeInterval.String()},
	{"ds_probing_mode", "1"},
	{"ds_probing_threshold", fmt.Sprint(probeThreshold)},
	{"ds_inactive_threshold", fmt.Sprint(probeThreshold)},
}

// TestProbingDeadBackend: with OPTIONS probing (mode 1, thresholds 2), a
// backend that stops answering goes inactive (FLAGS IP) within
// threshold × interval + deadline (+ margin), after at least
// threshold unanswered probes, and new calls avoid it; once it answers
// again it comes back (AP) after at least threshold good probes, and gets
// calls again. Each up/down change is one event: logged once, printed
// once by `sipedgectl events` (subscribed from the start) and run once
// by the hook command, with the destination in its environment. With
// probing off the backend never goes down: the test fails.
func TestProbingDeadBackend(t *testing.T) {
	t.Parallel()
	flaky, good := newResponder(t, 200), newResponder(t, 200)
	var hooks hookDir
	a, edge := probingAgent(t, []*responder{flaky, good}, probeKeys, func(cfg *agent.Config) { hooks = withHook(t, cfg) })
	stream := watchEvents(t, a, "dispatcher:")
	c := newRawClient(t, edge)
	uri := sipURI(flaky.Addr)

	// Mode 1: the first good probe keeps PROBING: AX becomes AP.
	waitFlags(t, a, uri, "AP", 5*time.Second)
	waitFlags(t, a, sipURI(good.Addr), "AP", 5*time.Second)
	sendInvites(t, c, "before", 10)
	if n := countPrefix(flaky.Invites(), "before"); n == 0 {
		t.Fatalf("the backend got no call while up: round robin is broken, the test proves nothing")
	}
	for _, src := range flaky.Sources() {
		if src != edge {
			t.Errorf("a probe came from %v, not from the listener %v", src, edge)
		}
	}

	died := time.Now()
	flaky.code.Store(0)
	waitFlags(t, a, uri, "IP", 10*time.Second)
	// The time of the change is the agent's: the dst-down log line's
	// (dispatcher.list through sipedgectl under -race takes a second).
	took := eventTime(t, a, "dispatcher:dst-down").Sub(died)
	if limit := probeThreshold*probeInterval + probeDeadline + probeMargin; took > limit {
		t.Errorf("inactive %v after the backend went silent, want at most %v", took, limit)
	}
	t.Logf("inactive %v after the backend went silent", took.Round(time.Millisecond))
	if unanswered, _ := flaky.since(died); unanswered < probeThreshold {
		t.Errorf("inactive after %d unanswered probes, want at least ds_probing_threshold = %d", unanswered, probeThreshold)
	}
	sendInvites(t, c, "down", 10)
	if n := countPrefix(flaky.Invites(), "down"); n != 0 {
		t.Errorf("the inactive backend got %d of 10 new calls, want 0", n)
	}
	if n := countPrefix(good.Invites(), "down"); n != 10 {
		t.Errorf("the other backend got %d of 10 new calls, want 10", n)
	}

	revived := time.Now()
	flaky.code.Store(200)
	waitFlags(t, a, uri, "AP", 10*time.Second)
	took = eventTime(t, a, "dispatcher:dst-up").Sub(revived)
	if limit := probeThreshold*probeInterval + probeMargin; took > limit {
		t.Errorf("active %v after the backend answered again, want at most %v", took, limit)
	}
	t.Logf("active %v after the backend answered again", took.Round(time.Millisecond))
	if _, answered := flaky.since(revived); answered < probeThreshold {
		t.Errorf("active after %d good probes, want at least ds_inactive_threshold = %d", answered, probeThreshold)
	}
	sendInvites(t, c, "after", 10)
	if n := countPrefix(flaky.Invites(), "after"); n == 0 {
		t.Errorf("the backend got no new call once active again")
	}

	out := a.Output()
	for _, ev := range []string{"dispatcher:dst-down", "dispatcher:dst-up"} {
		if n := strings.Count(out, "msg="+ev+" "); n != 1 {
			t.Errorf("%s logged %d times, want once", ev, n)
		}
	}
	if !strings.Contains(out, "dispatcher:dst-down") || !strings.Contains(out, `code=408`) {
		t.Errorf("dst-down not logged with the local 408")
	}
	// The stream printed each event as it came; the hook may still run
	// for the last one.
	runs := hooks.waitRuns(t, 2, 10*time.Second)
	time.Sleep(2 * probeInterval) // a duplicate would show by now
	stream.stop(t)
	assertTransitions(t, stream.records(t), hooks.runs(t), uri)
	if len(runs) < 2 {
		t.Errorf("the hook ran %d times, want 2", len(runs))
	}
}

// TestProbingReplyCodes: a backend answering 503 stays up when
// ds_ping_reply_codes lists code=503, and goes inactive without, or when
// the destination has the attribute ping_strict=1 (kamailio PR #4863:
// only a 2xx counts for it).
func TestProbingReplyCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		codes string
		attrs string
		want  string
	}{
		{"code=503 accepted", "code=503", "", "AP"},
		{"class=5 accepted", "class=5", "", "AP"},
		{"not listed", "code=404", "", "IP"},
		{"listed but ping_strict", "code=503", "ping_strict=1", "IP"},
		{"listed and ping_strict=0", "code=503", "ping_strict=0", "AP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			busy := newResponder(t, 503)
			edge := freeAddr(t)
			a := agent.Start(t, bins, agent.Config{
				Listeners:      []agent.Listener{{Name: "edge", Address: edge}},
				Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
				Dests:          []agent.Dest{{Set: 1, URI: sipURI(busy.Addr), Attrs: tc.attrs}},
				DispatcherKeys: append(probeKeys[:len(probeKeys):len(probeKeys)], [2]string{"ds_ping_reply_codes", tc.codes}),
			}, agent.Options{})
			uri := sipURI(busy.Addr)
			if tc.want == "IP" {
				waitFlags(t, a, uri, "IP", 10*time.Second)
				return
			}
			waitFlags(t, a, uri, "AP", 5*time.Second)
			start := busy.Options()
			// Well past the threshold's worth of 503s: still up.
			deadline := time.Now().Add(4 * probeInterval * probeThreshold)
			for time.Now().Before(deadline) {
				flags, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
				if err != nil {
					t.Fatal(err)
				}
				if f := flags["1 "+uri]; f != "AP" {
					t.Fatalf("FLAGS %q with 503 accepted, want AP", f)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n := busy.Options() - start; n < 2*probeThreshold {
				t.Errorf("only %d probes answered 503 while watched, want at least %d", n, 2*probeThreshold)
			}
		})
	}
}

// TestProbingReloadAndPingActive: after dispatcher.reload with a second
// destination in the list, the new one is probed too (targets derived
// from the new sets: it goes AX → AP); dispatcher.ping_active 0 stops the
// probes at once and 1 starts them again within an interval.
func TestProbingReloadAndPingActive(t *testing.T) {
	t.Parallel()
	first, second := newResponder(t, 200), newResponder(t, 200)
	a, _ := probingAgent(t, []*responder{first}, probeKeys)
	waitFlags(t, a, sipURI(first.Addr), "AP", 5*time.Second)
	if n := second.Options(); n != 0 {
		t.Fatalf("a destination not in the list got %d probes", n)
	}

	a.Config.Dests = append(a.Config.Dests, agent.Dest{Set: 1, URI: sipURI(second.Addr)})
	if err := os.WriteFile(filepath.Join(a.Dir, "dispatcher.list"), []byte(a.Config.List()), 0o644); err != nil {
		t.Fatal(err)
	}
	a.MustCtl(t, "dispatcher.reload")
	// The reload resets the flags to the list's (AX), then probing runs.
	waitFlags(t, a, sipURI(second.Addr), "AP", 5*time.Second)
	waitFlags(t, a, sipURI(first.Addr), "AP", 5*time.Second)

	// ping_active is pushed to the prober: it takes effect at once. The
	// count starts when the RPC returns (a probe already on the wire
	// arrives within the loopback's microseconds: allow a few ms).
	a.MustCtl(t, "dispatcher.ping_active", "0")
	time.Sleep(20 * time.Millisecond)
	n1, n2 := first.Options(), second.Options()
	time.Sleep(5 * probeInterval)
	if d1, d2 := first.Options()-n1, second.Options()-n2; d1 != 0 || d2 != 0 {
		t.Errorf("ping_active 0: still %d and %d probes over 5 intervals", d1, d2)
	}
	// Back on: each target's first probe is drawn inside the first interval.
	a.MustCtl(t, "dispatcher.ping_active", "1")
	limit := probeInterval + probeMargin
	deadline := time.Now().Add(limit)
	for first.Options() == n1 || second.Options() == n2 {
		if time.Now().After(deadline) {
			t.Fatalf("ping_active 1: no probe within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProbingNotProbedReported (kamailio#4212): with mode 1 (probe all), a
// destination probing cannot reach (IPv6, the only listener IPv4) is
// reported once in the log and shown by dispatcher.list as NOT_PROBED
// with the reason, while the other one is probed and shows none.
func TestProbingNotProbedReported(t *testing.T) {
	t.Parallel()
	good := newResponder(t, 200)
	edge := freeAddr(t)
	const v6 = "sip:[::1]:5999"
	a := agent.Start(t, bins, agent.Config{
		Listeners:      []agent.Listener{{Name: "edge", Address: edge}},
		Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:          []agent.Dest{{Set: 1, URI: sipURI(good.Addr)}, {Set: 1, URI: v6}},
		DispatcherKeys: probeKeys,
	}, agent.Options{})
	waitFlags(t, a, sipURI(good.Addr), "AP", 5*time.Second)
	// Several probe results and snapshot swaps later, still one line.
	time.Sleep(3 * probeInterval)
	if n := strings.Count(a.Output(), `msg="destination not probed"`); n != 1 {
		t.Errorf("destination not probed logged %d times, want once:\n%s", n, a.Output())
	}
	var list struct {
		Records []struct {
			Set struct {
				Targets []struct {
					Dest struct {
						URI       string `json:"URI"`
						NotProbed string `json:"NOT_PROBED"`
					} `json:"DEST"`
				} `json:"TARGETS"`
			} `json:"SET"`
		} `json:"RECORDS"`
	}
	raw := a.MustCtl(t, "dispatcher.list")
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("dispatcher.list: %v: %s", err, raw)
	}
	got := map[string]string{}
	for _, r := range list.Records {
		for _, d := range r.Set.Targets {
			got[d.Dest.URI] = d.Dest.NotProbed
		}
	}
	if want := "sip:[::1]:5999: no listener of the address family of [::1]:5999"; got[v6] != want {
		t.Errorf("NOT_PROBED of %s = %q, want %q", v6, got[v6], want)
	}
	if r := got[sipURI(good.Addr)]; r != "" {
		t.Errorf("NOT_PROBED of the probed destination = %q", r)
	}
}

// TestProbingModes: which destinations each ds_probing_mode probes
// (kamailio-behaviour §3.1, §3.4), end to end, with every backend
// answering 200 and thresholds 1. Six destinations: A active, B active +
// probing, C inactive + probing, D inactive, E probing + no-ping, F
// probing + disabled.
//
//   - mode 0: B and C, each until its first result, which clears PROBING
//     (both end AX);
//   - mode 1: A, B, C, D, for good (all end AP);
//   - mode 2: C only (PROBING and INACTIVE), until it is active (AX);
//   - mode 3: B and C, for good: PROBING stays (AP).
//
// E (no-ping) and F (disabled) are never probed.
func TestProbingModes(t *testing.T) {
	t.Parallel()
	const (
		inactive = 1
		disabled = 4
		probing  = 8
		noPing   = 32
	)
	names := []string{"A", "B", "C", "D", "E", "F"}
	flags := []int{0, probing, inactive | probing, inactive, probing | noPing, probing | disabled}
	for _, tc := range []struct {
		mode       int
		probed     string // destinations probed at least once
		continuing string // those still probed at the end
		final      map[string]string
	}{
		{mode: 0, probed: "BC", continuing: "", final: map[string]string{"B": "AX", "C": "AX", "A": "AX", "D": "IX"}},
		{mode: 1, probed: "ABCD", continuing: "ABCD", final: map[string]string{"A": "AP", "B": "AP", "C": "AP", "D": "AP"}},
		{mode: 2, probed: "C", continuing: "", final: map[string]string{"C": "AX", "B": "AP", "D": "IX"}},
		{mode: 3, probed: "BC", continuing: "BC", final: map[string]string{"B": "AP", "C": "AP", "A": "AX", "D": "IX"}},
	} {
		t.Run(fmt.Sprintf("mode %d", tc.mode), func(t *testing.T) {
			t.Parallel()
			rs := make([]*responder, len(names))
			var dests []agent.Dest
			for i := range names {
				rs[i] = newResponder(t, 200)
				dests = append(dests, agent.Dest{Set: 1, URI: sipURI(rs[i].Addr), Flags: flags[i]})
			}
			a := agent.Start(t, bins, agent.Config{
				Listeners: []agent.Listener{{Name: "edge", Address: freeAddr(t)}},
				Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
				Dests:     dests,
				DispatcherKeys: [][2]string{
					{"ds_ping_interval", probeInterval.String()},
					{"ds_probing_mode", fmt.Sprint(tc.mode)},
					{"ds_probing_threshold", "1"},
					{"ds_inactive_threshold", "1"},
				},
			}, agent.Options{})
			// The first probe of each target is drawn inside the first
			// interval: wait for every expected one, then let mode 0 and
			// 2 settle (their targets leave after one result).
			deadline := time.Now().Add(5 * time.Second)
			for i, n := range names {
				for strings.Contains(tc.probed, n) && rs[i].Options() == 0 {
					if time.Now().After(deadline) {
						a.LogOutput()
						t.Fatalf("%s never probed", n)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			time.Sleep(3 * probeInterval)
			before := make([]int, len(names))
			for i := range names {
				before[i] = rs[i].Options()
			}
			time.Sleep(5 * probeInterval)
			for i, n := range names {
				got := rs[i].Options()
				if probed := got > 0; probed != strings.Contains(tc.probed, n) {
					t.Errorf("%s (flags %d): %d probes, want probed=%t", n, flags[i], got, !probed)
				}
				if cont := got > before[i]; cont != strings.Contains(tc.continuing, n) {
					t.Errorf("%s (flags %d): %d probes over the last 5 intervals, want still probed=%t", n, flags[i], got-before[i], !cont)
				}
			}
			fl, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range names {
				if want, ok := tc.final[n]; ok && fl["1 "+sipURI(rs[i].Addr)] != want {
					t.Errorf("%s: FLAGS %q, want %q", n, fl["1 "+sipURI(rs[i].Addr)], want)
				}
			}
		})
	}
}
