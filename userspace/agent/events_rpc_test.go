package agent

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/rpc"
)

// TestEventsRPC: events.subscribe streams the events its prefixes take,
// refuses an empty prefix, and its subscription shows in events.stats
// until the client goes away.
func TestEventsRPC(t *testing.T) {
	a := &Agent{events: events.NewBus(nil)}
	a.hook = events.NewHook(a.events, events.HookConfig{}, nil)
	srv := rpc.New(nil)
	a.registerEvents(srv)
	path := filepath.Join(t.TempDir(), "s.sock")
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeUnix(sctx, path) }()
	defer func() { stop(); <-served }()
	dial := func() *rpc.Client {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			cl, err := rpc.Dial(context.Background(), path)
			if err == nil {
				return cl
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	stats := func() EventsStats {
		t.Helper()
		cl := dial()
		defer cl.Close()
		raw, err := cl.Call(context.Background(), "events.stats")
		if err != nil {
			t.Fatal(err)
		}
		var st EventsStats
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	bad := dial()
	defer bad.Close()
	if err := bad.Stream(context.Background(), "events.subscribe", []any{""}, nil, nil); err == nil || !strings.Contains(err.Error(), "empty prefix") {
		t.Errorf("an empty prefix: %v", err)
	}

	cl := dial()
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready, got, done := make(chan string, 1), make(chan string, 10), make(chan error, 1)
	go func() {
		done <- cl.Stream(ctx, "events.subscribe", []any{"dispatcher:dst-d", "keepalive:"},
			func(r json.RawMessage) { ready <- string(r) },
			func(r json.RawMessage) error { got <- string(r); return nil })
	}()
	if r := <-ready; r != `{"subscribed":["dispatcher:dst-d","keepalive:"],"queue":1024}` {
		t.Errorf("answer %s", r)
	}
	if st := stats(); len(st.Subscribers) != 2 || st.Subscribers[1].Name != "rpc [dispatcher:dst-d keepalive:]" {
		t.Errorf("events.stats subscribers %+v, want the hook's and the stream's", st.Subscribers)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a.events.Publish(events.Event{Name: events.DstUp, Time: at, Fields: []events.Field{events.F("set", 1)}})
	a.events.Publish(events.Event{Name: events.DstDown, Time: at, Fields: []events.Field{events.F("set", 1), events.F("uri", "sip:x")}})
	a.events.Publish(events.Event{Name: "keepalive:dst-up", Time: at})
	for _, want := range []string{
		`{"event":"dispatcher:dst-down","time":"2026-01-02T03:04:05Z","set":1,"uri":"sip:x"}`,
		`{"event":"keepalive:dst-up","time":"2026-01-02T03:04:05Z"}`,
	} {
		select {
		case r := <-got:
			if r != want {
				t.Errorf("record %s, want %s", r, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no record; want %s", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel: %v", err)
	}
	cl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(stats().Subscribers) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the stream's subscription outlived its client: %+v", stats().Subscribers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := stats(); st.Published != 3 || st.Lost != 0 {
		t.Errorf("events.stats %+v, want 3 published, none lost", st.Stats)
	}
}
