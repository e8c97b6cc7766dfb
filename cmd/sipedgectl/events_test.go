package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/rpc"
)

// lockedWriter collects output written from another goroutine.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// eventServer serves events.subscribe over bus, as the agent does.
func eventServer(bus *events.Bus) *rpc.Server {
	srv := rpc.New(nil)
	srv.RegisterStream("events.subscribe", func(_ context.Context, p rpc.Params) (any, rpc.StreamFunc, error) {
		var prefixes []string
		for i := range p.Len() {
			s, err := p.String(i)
			if err != nil {
				return nil, nil, err
			}
			prefixes = append(prefixes, s)
		}
		sub := bus.Subscribe(events.SubscribeOptions{Name: "test", Match: events.Prefixes(prefixes...)})
		return map[string]any{"subscribed": prefixes}, func(ctx context.Context, send func(any) error) error {
			defer sub.Close()
			for {
				e, err := sub.Next(ctx)
				if err != nil {
					return nil
				}
				if err := send(e); err != nil {
					return err
				}
			}
		}, nil
	})
	return srv
}

// waitSubscribers waits until bus has n subscriptions.
func waitSubscribers(t *testing.T, bus *events.Bus, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(bus.Stats().Subscribers) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers, want %d", len(bus.Stats().Subscribers), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventsCommand: "sipedgectl events PREFIX" prints the events whose
// name starts with PREFIX as JSON lines, outlives -timeout, and exits 0
// when interrupted; when the agent stops it exits 1 with a message.
func TestEventsCommand(t *testing.T) {
	bus := events.NewBus(nil)
	sock := startServer(t, eventServer(bus))
	ctx, interrupt := context.WithCancel(context.Background())
	var stdout, stderr lockedWriter
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-s", sock, "-timeout", "200ms", "events", "dispatcher:"}, &stdout, &stderr, func(string) string { return "" })
	}()
	waitSubscribers(t, bus, 1)
	time.Sleep(300 * time.Millisecond) // past -timeout
	bus.Publish(events.Event{Name: "tcp:closed", Time: time.Unix(0, 0)})
	bus.Publish(events.Event{Name: events.DstDown, Time: time.Unix(1, 0), Fields: []events.Field{events.F("set", 1), events.F("uri", "sip:10.0.0.1")}})
	bus.Publish(events.Event{Name: events.DstUp, Time: time.Unix(2, 0), Fields: []events.Field{events.F("set", 1), events.F("uri", "sip:10.0.0.1")}})
	want := `{"event":"dispatcher:dst-down","time":"1970-01-01T00:00:01Z","set":1,"uri":"sip:10.0.0.1"}` + "\n" +
		`{"event":"dispatcher:dst-up","time":"1970-01-01T00:00:02Z","set":1,"uri":"sip:10.0.0.1"}` + "\n"
	deadline := time.Now().Add(5 * time.Second)
	for stdout.String() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := stdout.String(); got != want {
		t.Errorf("printed\n%s\nwant\n%s\nstderr: %s", got, want, stderr.String())
	}
	interrupt()
	select {
	case c := <-code:
		if c != exitOK {
			t.Errorf("exit %d after the interrupt, want 0; stderr: %s", c, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sipedgectl events did not exit after the interrupt")
	}
	waitSubscribers(t, bus, 0)
}

// TestEventsCommandAgentStops: the agent's stop ends the command, exit 1.
func TestEventsCommandAgentStops(t *testing.T) {
	bus := events.NewBus(nil)
	srv := eventServer(bus)
	path := filepath.Join(t.TempDir(), "s.sock")
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeUnix(sctx, path) }()
	defer func() { stop(); <-served }()
	var stdout, stderr lockedWriter
	code := make(chan int, 1)
	go func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := run(context.Background(), []string{"-s", path, "events"}, &stdout, &stderr, func(string) string { return "" })
			if c != exitUsage || time.Now().After(deadline) { // exitUsage: not listening yet
				code <- c
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	waitSubscribers(t, bus, 1)
	stop()
	select {
	case c := <-code:
		if c != exitRPCError || !strings.Contains(stderr.String(), "the agent closed the event stream") {
			t.Errorf("exit %d, stderr %q; want 1 and the reason", c, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sipedgectl events did not exit when the agent stopped")
	}
}
