package tests

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
)

// kaDest is one entry of keepalive.list.
type kaDest struct {
	URI      string `json:"uri"`
	Owner    string `json:"owner"`
	State    int    `json:"state"`
	Failures int    `json:"failures"`
	Address  string `json:"address"`
}

func keepaliveList(t *testing.T, a *agent.Agent) []kaDest {
	t.Helper()
	raw := a.MustCtl(t, "keepalive.list")
	var out []kaDest
	if err := json.Unmarshal(raw, &out); err != nil || out == nil {
		t.Fatalf("keepalive.list %s: want a JSON array (%v)", raw, err)
	}
	return out
}

// waitKeepalive polls keepalive.list until uri has state want (-1: until
// it is gone), failing the test after timeout.
func waitKeepalive(t *testing.T, a *agent.Agent, uri string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		state := -1
		for _, d := range keepaliveList(t, a) {
			if d.URI == uri {
				state = d.State
			}
		}
		if state == want {
			return
		}
		if time.Now().After(deadline) {
			a.LogOutput()
			t.Fatalf("keepalive state of %s = %d after %v, want %d", uri, state, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeepalive: the agent's keepalive module against real UDP responders
// on loopback, driven and read with sipedgectl. A static destination goes
// unknown -> up -> down (silent: the local 408) -> up, each change logged
// once; a destination added with keepalive.add that never answers is
// removed after delete_counter failed probes; keepalive.get and
// keepalive.del answer as Kamailio's; SIGHUP applies a new destination
// list, and brings the static ones back after keepalive.flush. Dispatcher probing runs beside it
// on its own engine: both get their replies (dispatcher.list shows AP).
// Without the keepalive subsystem keepalive.list is an unknown method and
// the test fails.
func TestKeepalive(t *testing.T) {
	t.Parallel()
	static, silent := newResponder(t, 200), newResponder(t, 0)
	edge := freeAddr(t)
	cfg := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:     []agent.Dest{{Set: 1, URI: sipURI(static.Addr)}},
		DispatcherKeys: [][2]string{
			{"ds_ping_interval", "200ms"},
			{"ds_probing_mode", "1"},
		},
		KeepaliveKeys: [][2]string{
			// Written without "sip:", as Kamailio's modparam allows.
			{"destination", fmt.Sprintf("[%q]", static.Addr.String())},
			{"ping_interval", "200ms"},
			{"delete_counter", "2"},
		},
	}
	a := agent.Start(t, bins, cfg, agent.Options{})
	stream := watchEvents(t, a, "keepalive:")
	uri := sipURI(static.Addr)

	waitKeepalive(t, a, uri, 1, 5*time.Second)
	waitFlags(t, a, uri, "AP", 5*time.Second) // dispatcher probing got its replies too
	a.WaitLog(regexp.MustCompile(`msg=keepalive:dst-up uri=`+regexp.QuoteMeta(uri)+` state=up prev=unknown code=200`), 5*time.Second)
	var got kaDest
	if raw := a.MustCtl(t, "keepalive.get", uri, "_params"); json.Unmarshal(raw, &got) != nil || got != (kaDest{URI: uri, Owner: "_params", State: 1}) {
		t.Errorf("keepalive.get: %s", raw)
	}

	static.code.Store(0)
	waitKeepalive(t, a, uri, 2, 5*time.Second)
	a.WaitLog(regexp.MustCompile(`msg=keepalive:dst-down uri=`+regexp.QuoteMeta(uri)+` state=down prev=up code=408`), 5*time.Second)
	static.code.Store(200)
	waitKeepalive(t, a, uri, 1, 5*time.Second)

	// A run-time destination that never answers: down, then removed after
	// delete_counter (2) failed probes in a row.
	added := sipURI(silent.Addr)
	if got := strings.TrimSpace(string(a.MustCtl(t, "keepalive.add", added, "test"))); got != `"Ok. Destination added."` {
		t.Errorf("keepalive.add: %s", got)
	}
	a.WaitLog(regexp.MustCompile(`msg=keepalive:dst-removed uri=`+regexp.QuoteMeta(added)+` .*owners=test`), 10*time.Second)
	waitKeepalive(t, a, added, -1, 5*time.Second)
	if n := silent.Options(); n < 2 {
		t.Errorf("removed after %d probes, want at least delete_counter = 2", n)
	}

	list := keepaliveList(t, a)
	if len(list) != 1 || list[0].URI != uri || list[0].Owner != "_params" || list[0].Address != static.Addr.String() {
		t.Errorf("keepalive.list %+v, want only the static destination", list)
	}
	out := a.Output()
	for _, ev := range []string{"msg=keepalive:dst-up uri=" + uri, "msg=keepalive:dst-down uri=" + uri} {
		want := 1
		if strings.Contains(ev, "dst-up") {
			want = 2
		}
		if n := strings.Count(out, ev); n != want {
			t.Errorf("%q logged %d times, want %d", ev, n, want)
		}
	}

	// The same changes reached the event stream, in order, once each (the
	// first dst-up may come before the stream subscribed).
	var names []string
	for _, rec := range stream.records(t) {
		if rec["uri"] == uri || rec["uri"] == added {
			names = append(names, fmt.Sprint(rec["event"], " ", rec["uri"] == added))
		}
	}
	want := []string{"keepalive:dst-up false", "keepalive:dst-down false", "keepalive:dst-up false",
		"keepalive:dst-down true", "keepalive:dst-removed true"}
	if !slices.Equal(names, want) && !slices.Equal(names, want[1:]) {
		t.Errorf("event stream (name, is the added one): %q, want %q", names, want)
	}

	// keepalive.del needs the owner; flush leaves an empty array.
	if _, err := a.Ctl(t.Context(), "keepalive.del", uri, "test"); err == nil || !strings.Contains(err.Error(), "couldn't delete data from list") {
		t.Errorf("keepalive.del by another owner: %v", err)
	}
	// SIGHUP applies a new destination list (every keepalive key is live).
	second := newResponder(t, 200)
	cfg.KeepaliveKeys[0][1] = fmt.Sprintf("[%q, %q]", static.Addr.String(), second.Addr.String())
	writeFile(t, a.ConfigPath, cfg.YAML(a.Socket, "dispatcher.list"))
	if err := a.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitKeepalive(t, a, sipURI(second.Addr), 1, 5*time.Second)

	// Flush empties the list, to [] and not null; the next reload brings
	// the static destinations back.
	a.MustCtl(t, "keepalive.flush")
	if got := strings.TrimSpace(string(a.MustCtl(t, "keepalive.list"))); got != "[]" {
		t.Errorf("keepalive.list after flush: %s, want []", got)
	}
	if err := a.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitKeepalive(t, a, uri, 1, 5*time.Second)
	waitKeepalive(t, a, sipURI(second.Addr), 1, 5*time.Second)
}
