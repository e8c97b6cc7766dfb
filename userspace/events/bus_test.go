package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestPublishNeverBlocks: a subscriber that reads nothing does not slow
// the publisher; what its queue cannot hold is counted, logged once, and
// reported to it as one LostEvent once it reads; a second subscriber with
// room gets everything; the log gets every event.
func TestPublishNeverBlocks(t *testing.T) {
	var logs syncBuffer
	b := NewBus(testLogger(&logs))
	stuck := b.Subscribe(SubscribeOptions{Name: "stuck", Queue: 4})
	roomy := b.Subscribe(SubscribeOptions{Name: "roomy", Queue: 100})
	defer stuck.Close()
	defer roomy.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			b.Publish(New(DstDown, F("set", 1), F("i", i)))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}

	st := b.Stats()
	if st.Published != 10 || st.Lost != 6 {
		t.Errorf("stats %+v, want 10 published, 6 lost", st)
	}
	if n := strings.Count(logs.String(), "msg=dispatcher:dst-down"); n != 10 {
		t.Errorf("%d events logged, want 10", n)
	}
	if n := strings.Count(logs.String(), "events lost"); n != 1 {
		t.Errorf("the loss logged %d times, want once:\n%s", n, logs.String())
	}

	ctx := context.Background()
	for i := range 4 {
		e, err := stuck.Next(ctx)
		if err != nil || e.Name != DstDown {
			t.Fatalf("event %d: %v %v", i, e, err)
		}
		if v, _ := e.Get("i"); v != i {
			t.Errorf("event %d has i=%v: the queue keeps the first ones", i, v)
		}
	}
	e, err := stuck.Next(ctx)
	if lost, _ := e.Get("lost"); err != nil || e.Name != LostEvent || lost != uint64(6) {
		t.Fatalf("after the queue: %+v %v, want a LostEvent with lost=6", e, err)
	}
	for i := range 10 {
		e, err := roomy.Next(ctx)
		if v, _ := e.Get("i"); err != nil || v != i {
			t.Fatalf("roomy event %d: %+v %v", i, e, err)
		}
	}

	// A new run of drops is logged again; its LostEvent counts only it.
	for range 6 {
		b.Publish(New(DstUp))
	}
	if n := strings.Count(logs.String(), "events lost"); n != 2 {
		t.Errorf("a second run of drops logged %d lines in all, want 2", n)
	}
	for range 4 {
		if _, err := stuck.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if e, _ := stuck.Next(ctx); e.Name != LostEvent {
		t.Errorf("second run: %+v, want a LostEvent", e)
	} else if lost, _ := e.Get("lost"); lost != uint64(2) {
		t.Errorf("second run: lost=%v, want 2", lost)
	}
}

// TestSubscribeFilterAndClose: Match keeps other names out of the queue;
// Next ends with ctx and with Close; a closed subscription gets nothing.
func TestSubscribeFilterAndClose(t *testing.T) {
	b := NewBus(nil)
	s := b.Subscribe(SubscribeOptions{Name: "f", Match: Prefixes("dispatcher:dst-up")})
	b.Publish(New(DstDown))
	b.Publish(New(DstUp, F("uri", "sip:a")))
	e, err := s.Next(context.Background())
	if err != nil || e.Name != DstUp {
		t.Fatalf("got %+v %v, want the dst-up only", e, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Next with nothing queued: %v, want the deadline", err)
	}
	got := make(chan error, 1)
	go func() { _, err := s.Next(context.Background()); got <- err }()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	if err := <-got; err != ErrClosed {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	b.Publish(New(DstUp))
	if n := len(b.Stats().Subscribers); n != 0 {
		t.Errorf("%d subscribers after Close", n)
	}
}

// TestEventJSONAndEnv: the record is one flat object with event and time
// first and the fields in order; the environment names each field.
func TestEventJSONAndEnv(t *testing.T) {
	at := time.Date(2026, 12, 7, 22, 0, 0, 5000, time.UTC)
	e := Event{Name: DstDown, Time: at, Fields: []Field{
		F("set", 1), F("uri", "sip:10.0.0.1:5060;a=<b>&c"), F("iuid", "dspt-1a2b3c4d"), F("state", "inactive"),
		F("code", 408), F("rtt", 1500*time.Microsecond), F("time", "shadowed"),
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the RPC server writes
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	b := bytes.TrimSpace(buf.Bytes())
	want := `{"event":"dispatcher:dst-down","time":"2026-12-07T22:00:00.000005Z","set":1,"uri":"sip:10.0.0.1:5060;a=<b>&c","iuid":"dspt-1a2b3c4d","state":"inactive","code":408,"rtt":"1.5ms"}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	env := strings.Join(e.Env(), "\n")
	wantEnv := "SIPEDGE_EVENT=dispatcher:dst-down\nSIPEDGE_TIME=2026-12-07T22:00:00.000005Z\nSIPEDGE_SET=1\nSIPEDGE_URI=sip:10.0.0.1:5060;a=<b>&c\nSIPEDGE_IUID=dspt-1a2b3c4d\nSIPEDGE_STATE=inactive\nSIPEDGE_CODE=408\nSIPEDGE_RTT=1.5ms"
	if env != wantEnv {
		t.Errorf("env\n%s\nwant\n%s", env, wantEnv)
	}
}

// TestEnvKeepsNameAndTime: a field whose variable would be SIPEDGE_EVENT
// or SIPEDGE_TIME ("Event", "TIME") is left out of the environment like
// one named event or time: the hook sees the event's own name and time
// (exec keeps the last of duplicate variables, so the field would win).
func TestEnvKeepsNameAndTime(t *testing.T) {
	at := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	e := Event{Name: DstDown, Time: at, Fields: []Field{F("Event", "forged"), F("TIME", "forged"), F("uri", "sip:a")}}
	want := "SIPEDGE_EVENT=dispatcher:dst-down\nSIPEDGE_TIME=2026-12-07T22:00:00Z\nSIPEDGE_URI=sip:a"
	if env := strings.Join(e.Env(), "\n"); env != want {
		t.Errorf("env\n%s\nwant\n%s", env, want)
	}
}
