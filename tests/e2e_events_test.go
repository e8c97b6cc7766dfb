package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/proc"
)

// hookDir is where the test hook writes one file per run: the SIPEDGE_
// variables it got, one per line.
type hookDir string

// withHook sets events.hook_command to a shell script writing each run's
// SIPEDGE_ environment into a new file of the returned directory.
func withHook(t *testing.T, cfg *agent.Config) hookDir {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	body := "#!/bin/sh\nf=$(mktemp \"" + dir + "/run.XXXXXX\")\nenv | grep '^SIPEDGE_' | sort > \"$f.tmp\" && mv \"$f.tmp\" \"$f.env\"\nrm -f \"$f\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.EventKeys = append(cfg.EventKeys, [2]string{"hook_command", "[" + script + "]"}, [2]string{"hook_timeout", "5s"})
	return hookDir(dir)
}

// runs returns the environments of the hook's runs so far.
func (d hookDir) runs(t *testing.T) []map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(string(d), "run.*.env"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
		out = append(out, env)
	}
	return out
}

// waitRuns waits until the hook ran n times and returns the runs; it
// fails the test after timeout.
func (d hookDir) waitRuns(t *testing.T, n int, timeout time.Duration) []map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs := d.runs(t)
		if len(runs) >= n || time.Now().After(deadline) {
			return runs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventStream is a running `sipedgectl events`.
type eventStream struct {
	*proc.Process
}

// watchEvents starts `sipedgectl -s SOCKET events PREFIX...` and returns
// once the agent counts its subscription (events.stats: subscribers
// beyond the hook's).
func watchEvents(t *testing.T, a *agent.Agent, prefixes ...string) eventStream {
	t.Helper()
	argv := append([]string{a.Bins.Sipedgectl, "-s", a.Socket, "events"}, prefixes...)
	p := proc.Start(t, "sipedgectl-events", argv, proc.Options{StopSignal: syscall.SIGINT, StopGrace: 5 * time.Second})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st struct {
			Subscribers []struct {
				Name string `json:"name"`
			} `json:"subscribers"`
		}
		if err := json.Unmarshal(a.MustCtl(t, "events.stats"), &st); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(st.Subscribers, func(s struct {
			Name string `json:"name"`
		}) bool {
			return strings.HasPrefix(s.Name, "rpc")
		}) {
			return eventStream{p}
		}
		if p.Exited() || time.Now().After(deadline) {
			p.LogOutput()
			t.Fatalf("sipedgectl events did not subscribe (exited: %v)", p.Exited())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// records are the JSON lines printed so far, decoded.
func (s eventStream) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.Output(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("sipedgectl events printed %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// stop interrupts it (SIGINT) and fails the test unless it exits 0.
func (s eventStream) stop(t *testing.T) {
	t.Helper()
	if code := s.Stop(); code != 0 {
		s.LogOutput()
		t.Errorf("sipedgectl events exited %d after SIGINT, want 0", code)
	}
}

// TestEventsAtStart: a destination loaded inactive fires one
// dispatcher:dst-down with at=start (kamailio#4906: our deviation), which
// the hook gets with the destination in its environment; the one loaded
// up fires nothing; dispatcher.set_state fires nothing (kamailio-behaviour
// §3.5: never from RPC); events.stats counts the one event.
func TestEventsAtStart(t *testing.T) {
	t.Parallel()
	edge := freeAddr(t)
	down, up := freeAddr(t), freeAddr(t)
	cfg := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:     []agent.Dest{{Set: 1, URI: sipURI(down), Flags: 1}, {Set: 1, URI: sipURI(up)}},
	}
	hooks := withHook(t, &cfg)
	a := agent.Start(t, bins, cfg, agent.Options{})
	runs := hooks.waitRuns(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a second run would show by now
	runs = hooks.runs(t)
	if len(runs) != 1 {
		t.Fatalf("the hook ran %d times at start, want once: %v", len(runs), runs)
	}
	want := map[string]string{"SIPEDGE_EVENT": "dispatcher:dst-down", "SIPEDGE_SET": "1", "SIPEDGE_URI": sipURI(down), "SIPEDGE_STATE": "inactive", "SIPEDGE_AT": "start"}
	for k, v := range want {
		if runs[0][k] != v {
			t.Errorf("hook environment %s=%q, want %q (all: %v)", k, runs[0][k], v, runs[0])
		}
	}
	if !strings.HasPrefix(runs[0]["SIPEDGE_IUID"], "dspt-") {
		t.Errorf("hook environment SIPEDGE_IUID=%q", runs[0]["SIPEDGE_IUID"])
	}
	// dispatcher.set_state fires nothing, as in Kamailio (never from RPC).
	stream := watchEvents(t, a)
	a.MustCtl(t, "dispatcher.set_state", "i", "1", sipURI(up))
	a.MustCtl(t, "dispatcher.set_state", "a", "1", sipURI(down))
	time.Sleep(300 * time.Millisecond)
	stream.stop(t)
	if recs := stream.records(t); len(recs) != 0 {
		t.Errorf("dispatcher.set_state fired events: %v", recs)
	}
	if n := len(hooks.runs(t)); n != 1 {
		t.Errorf("the hook ran %d times after set_state, want still once", n)
	}
	var st struct {
		Published uint64 `json:"published"`
		Hook      struct {
			Runs   uint64 `json:"runs"`
			Failed uint64 `json:"failed"`
		} `json:"hook"`
	}
	if err := json.Unmarshal(a.MustCtl(t, "events.stats"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Published != 1 || st.Hook.Runs != 1 || st.Hook.Failed != 0 {
		t.Errorf("events.stats %+v, want 1 published, 1 run", st)
	}
}

// assertTransitions checks that the stream and the hook both saw exactly
// one dst-down then one dst-up of uri, and nothing else.
func assertTransitions(t *testing.T, recs []map[string]any, runs []map[string]string, uri string) {
	t.Helper()
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%v %v %v %v", r["event"], r["uri"], r["state"], r["code"]))
	}
	want := []string{"dispatcher:dst-down " + uri + " inactive 408", "dispatcher:dst-up " + uri + " active 200"}
	if !slices.Equal(got, want) {
		t.Errorf("sipedgectl events printed\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	got = got[:0]
	for _, r := range runs {
		got = append(got, r["SIPEDGE_EVENT"]+" "+r["SIPEDGE_URI"]+" "+r["SIPEDGE_STATE"]+" "+r["SIPEDGE_CODE"])
	}
	slices.Sort(got) // runs may overlap; "down" sorts before "up"
	if !slices.Equal(got, want) {
		t.Errorf("the hook ran for\n  %s\nwant exactly\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
