package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// fake is a Subsystem that records its start and stop in a shared log.
type fake struct {
	name   string
	log    *trail
	hang   bool          // ignores its context (never stops)
	fail   error         // returned at once
	quit   bool          // returns nil at once, as if it had nothing to serve
	ready  chan struct{} // nil: no Ready
	cancel chan struct{} // closed at the end of the test, releasing a hang
}

type trail struct {
	mu  sync.Mutex
	all []string
}

func (e *trail) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, s)
}

func (e *trail) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func (f *fake) Name() string { return f.name }

func (f *fake) Run(ctx context.Context) error {
	f.log.add("start " + f.name)
	if f.fail != nil {
		return f.fail
	}
	if f.quit {
		return nil
	}
	if f.ready != nil {
		close(f.ready)
	}
	if f.hang {
		<-f.cancel
	} else {
		<-ctx.Done()
	}
	f.log.add("stop " + f.name)
	return nil
}

// readyFake is a fake with Ready.
type readyFake struct{ *fake }

func (r readyFake) Ready() <-chan struct{} { return r.ready }

func testAgent(t *testing.T, subs ...Subsystem) *Agent {
	return &Agent{
		opts: Options{StopTimeout: 300 * time.Millisecond},
		log:  slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		subs: subs,
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestStopReverseOrder: subsystems start in order (each after the one
// before is ready) and stop in reverse order.
func TestStopReverseOrder(t *testing.T) {
	ev := &trail{}
	a := testAgent(t,
		readyFake{&fake{name: "a", log: ev, ready: make(chan struct{})}},
		&fake{name: "b", log: ev},
		&fake{name: "c", log: ev})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	waitEvents(t, ev, 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
	got := ev.list()
	if want := []string{"start a", "stop c", "stop b", "stop a"}; !slices.Equal(append(got[:1:1], got[3:]...), want) {
		t.Errorf("events %v, want a started first and %v", got, want)
	}
}

// waitEvents waits until ev holds n events (every fake started).
func waitEvents(t *testing.T, ev *trail, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(ev.list()) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("events %v: want %d", ev.list(), n)
		}
	}
}

// TestSubsystemStopsByItself: a subsystem whose Run returns nil while the
// agent runs (its sockets gone, say) is a failure: the agent stops and
// names it, rather than running on without it.
func TestSubsystemStopsByItself(t *testing.T) {
	ev := &trail{}
	a := testAgent(t, &fake{name: "first", log: ev}, &fake{name: "quitter", log: ev, quit: true})
	done := make(chan error, 1)
	go func() { done <- a.run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "quitter") {
			t.Errorf("run = %v, want the subsystem that stopped named", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run goes on after a subsystem stopped by itself")
	}
	if !slices.Contains(ev.list(), "stop first") {
		t.Errorf("events %v: first was not stopped", ev.list())
	}
}

// TestStopBounded: a subsystem that ignores its context does not keep the
// agent from stopping: run returns within StopTimeout, naming it, and the
// others are still stopped.
func TestStopBounded(t *testing.T) {
	ev := &trail{}
	release := make(chan struct{})
	defer close(release)
	a := testAgent(t, &fake{name: "first", log: ev}, &fake{name: "stuck", log: ev, hang: true, cancel: release}, &fake{name: "last", log: ev})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stuck did not stop within 300ms") {
			t.Errorf("run = %v, want the stuck subsystem named", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("stop took %v", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return: the stop is not bounded")
	}
	if got := ev.list(); !slices.Contains(got, "stop first") || !slices.Contains(got, "stop last") {
		t.Errorf("events %v: the others were not stopped", got)
	}
}

// TestFailureStopsOthers: a subsystem failing before it is ready stops
// those already started, and run returns its error.
func TestFailureStopsOthers(t *testing.T) {
	ev := &trail{}
	boom := errors.New("bind: address in use")
	a := testAgent(t, &fake{name: "first", log: ev}, readyFake{&fake{name: "bad", log: ev, fail: boom, ready: make(chan struct{})}}, &fake{name: "never", log: ev})
	err := a.run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad: bind") {
		t.Errorf("run = %v, want bad's error", err)
	}
	if got := ev.list(); slices.Contains(got, "start never") || !slices.Contains(got, "stop first") {
		t.Errorf("events %v", got)
	}
}

const agentYAML = `listeners:
  - name: edge
    address: udp:127.0.0.1:5999
rules:
  - listener: edge
    set: 1
dispatcher:
  list_file: d.list
failover:
  timeout: 5s
control:
  socket: ""
log:
  level: info
`

// TestReloadAllOrNothing: Reload applies a good config and list together;
// a bad list, a list that is not a regular file or a bad config change
// nothing.
func TestReloadAllOrNothing(t *testing.T) {
	a, write := reloadableAgent(t, "1 sip:127.0.0.1:5080\n")
	dests := func() int { return len(a.d.Snapshot().Set(1).Dests) }

	write("d.list", "1 sip:127.0.0.1:5080\n1 sip:127.0.0.1:5082\n")
	write("sipedge.yaml", strings.Replace(agentYAML, "level: info", "level: debug", 1))
	if err := a.Reload(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if dests() != 2 || a.level.Level() != slog.LevelDebug {
		t.Fatalf("good reload: %d destinations, level %v", dests(), a.level.Level())
	}
	good := a.cur.Load()

	for _, tc := range []struct {
		name, yaml, list, want string
	}{
		{"bad list", "", "1 sip:127.0.0.1:5080\n2\n", "d.list:2: set 2 has no destination URI"},
		{"rule's set gone", "", "2 sip:127.0.0.1:5080\n", "rules[0].set: set 1 is not in d.list"},
		{"list is /dev/zero", strings.Replace(agentYAML, "list_file: d.list", "list_file: /dev/zero", 1), "", "/dev/zero is a character device"},
		{"bad config", strings.Replace(agentYAML, "level: info", "level: loud", 1), "1 sip:127.0.0.1:5080\n", `sipedge.yaml:14: log.level: want debug, info, warn or error, got "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.yaml != "" {
				write("sipedge.yaml", tc.yaml)
			}
			if tc.list != "" {
				write("d.list", tc.list)
			}
			err := a.Reload(context.Background(), true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Reload = %v, want %q", err, tc.want)
			}
			if a.cur.Load() != good || dests() != 2 || a.level.Level() != slog.LevelDebug {
				t.Error("a failed reload changed the running state")
			}
			write("sipedge.yaml", strings.Replace(agentYAML, "level: info", "level: debug", 1))
		})
	}
}

// TestReloadHashFallback: dispatcher.ds_hash_fallback reaches the sets at
// start and, being a live key, with a reload.
func TestReloadHashFallback(t *testing.T) {
	a, write := reloadableAgent(t, "1 sip:127.0.0.1:5080\n1 sip:127.0.0.1:5082 1\n")
	if fb := a.d.Snapshot().Set(1).Fallback; fb != dispatch.FallbackNext {
		t.Fatalf("default: set 1 has fallback %v, want next", fb)
	}
	write("sipedge.yaml", strings.Replace(agentYAML, "list_file: d.list", "list_file: d.list\n  ds_hash_fallback: spread", 1))
	if err := a.Reload(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if fb := a.d.Snapshot().Set(1).Fallback; fb != dispatch.FallbackSpread {
		t.Fatalf("after the reload: set 1 has fallback %v, want spread", fb)
	}
}

// TestCheck: check reads what the start reads, the token file included.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("d.list", "1 sip:127.0.0.1:5080\n")
	cfg := write("sipedge.yaml", strings.Replace(agentYAML, `socket: ""`, "socket: \"\"\n  http: 127.0.0.1:5998\n  http_token_file: rpc.token", 1))
	var out strings.Builder
	if err := Check(context.Background(), cfg, &out); err == nil || !strings.Contains(err.Error(), "rpc.token") {
		t.Errorf("Check without the token file = %v", err)
	}
	write("rpc.token", "0123456789abcdef0123\n")
	if err := Check(context.Background(), cfg, &out); err != nil || !strings.Contains(out.String(), "ok: 1 listeners, 1 sets, 1 destinations") {
		t.Errorf("Check = %v, output %q", err, out.String())
	}
}

// TestCheckProbing: a config that sets ds_ping_interval passes `sipedge
// check` (probing.go builds its subsystem from it).
func TestCheckProbing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "d.list"), []byte("1 sip:127.0.0.1:5080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sipedge.yaml")
	yaml := strings.Replace(agentYAML, "dispatcher:\n", "dispatcher:\n  ds_ping_interval: 10s\n", 1)
	if yaml == agentYAML {
		t.Fatal("agentYAML has no dispatcher section to add ds_ping_interval to")
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Check(context.Background(), cfg, &out); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if !strings.Contains(out.String(), "ok: 1 listeners, 1 sets, 1 destinations") {
		t.Errorf("Check output %q: want ok", out.String())
	}
}

// TestCheckNotProbed: with probing on, `sipedge check` names, with its
// list line, each destination the probing mode and its flags ask to
// probe but probing would leave out (kamailio#4212), and still passes:
// no listener of its family, a sockname naming no listener, flag 16
// (not resolved). A probed one, and one not meant to be probed, are not
// named. Without the report the test fails.
func TestCheckNotProbed(t *testing.T) {
	dir := t.TempDir()
	list := "1 sip:127.0.0.1:5080 8\n" + // probed
		"1 sip:[::1]:5080 8\n" + // no IPv6 listener
		"1 sip:127.0.0.1:5081 8 0 sockname=nosuch\n" +
		"1 sip:gw.example.net:5070 24\n" + // 16 + 8
		"1 sip:[::1]:5082 0\n" // not meant to be probed (mode 0, no flag 8)
	if err := os.WriteFile(filepath.Join(dir, "d.list"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sipedge.yaml")
	yaml := strings.Replace(agentYAML, "dispatcher:\n", "dispatcher:\n  ds_ping_interval: 10s\n", 1)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Check(context.Background(), cfg, &out); err != nil {
		t.Fatalf("Check = %v", err)
	}
	want := []string{
		"d.list:2: warning: set 1: not probed: sip:[::1]:5080: no listener of the address family of [::1]:5080",
		`d.list:3: warning: set 1: not probed: sip:127.0.0.1:5081: sockname "nosuch" names no listener`,
		"d.list:4: warning: set 1: not probed: sip:gw.example.net:5070: flag 16 (no DNS resolution): no address to probe",
		"ok: 1 listeners, 1 sets, 5 destinations",
	}
	got := out.String()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "warning"); n != 3 {
		t.Errorf("%d warnings, want 3:\n%s", n, got)
	}

	// Probing off: nothing is probed, nothing to warn about.
	if err := os.WriteFile(cfg, []byte(agentYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Check(context.Background(), cfg, &out); err != nil || strings.Contains(out.String(), "warning") {
		t.Errorf("probing off: Check = %v, output %q", err, out.String())
	}
}

// TestCheckLatencyAlg: a rule with algorithm 13 passes `sipedge check`
// with a warning unless probing measures latency for good (interval,
// ds_ping_latency_stats 1, mode 1 or 3).
func TestCheckLatencyAlg(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "d.list"), []byte("1 sip:127.0.0.1:5080 8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sipedge.yaml")
	alg13 := strings.Replace(agentYAML, "    set: 1\n", "    set: 1\n    algorithm: 13\n", 1)
	for _, tc := range []struct {
		name, dispatcher string
		warn             bool
	}{
		{"no probing", "", true},
		{"no latency stats", "  ds_ping_interval: 1s\n  ds_probing_mode: 1\n", true},
		{"mode 0", "  ds_ping_interval: 1s\n  ds_ping_latency_stats: 1\n", true},
		{"mode 3", "  ds_ping_interval: 1s\n  ds_ping_latency_stats: 1\n  ds_probing_mode: 3\n", false},
	} {
		yaml := strings.Replace(alg13, "dispatcher:\n", "dispatcher:\n"+tc.dispatcher, 1)
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := Check(context.Background(), cfg, &out); err != nil {
			t.Fatalf("%s: Check = %v", tc.name, err)
		}
		if got := strings.Contains(out.String(), "warning: rules[0].algorithm: 13 ranks"); got != tc.warn {
			t.Errorf("%s: warned %t, want %t:\n%s", tc.name, got, tc.warn, out.String())
		}
	}
}

// reloadableAgent is an agent (not running) on agentYAML and the list
// text, in a folder of its own; write replaces a file there (sipedge.yaml,
// d.list) for the next Reload.
func reloadableAgent(t *testing.T, list string) (a *Agent, write func(name, text string)) {
	t.Helper()
	dir := t.TempDir()
	write = func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sipedge.yaml", agentYAML)
	write("d.list", list)
	a, err := newAgent(context.Background(), Options{ConfigPath: filepath.Join(dir, "sipedge.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	return a, write
}
