package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// ticker is a streaming method fed by the test: each value sent on src is
// one record; ended gets run's end.
type ticker struct {
	src   chan any
	ended chan error
}

func addTicker(s *Server) *ticker {
	tk := &ticker{src: make(chan any), ended: make(chan error, 10)}
	s.RegisterStream("ticks", func(_ context.Context, p Params) (any, StreamFunc, error) {
		if err := p.Max(1); err != nil {
			return nil, nil, err
		}
		name, err := p.OptString(0, "all")
		if err != nil {
			return nil, nil, err
		}
		return map[string]string{"subscribed": name}, func(ctx context.Context, send func(any) error) error {
			for {
				select {
				case <-ctx.Done():
					tk.ended <- ctx.Err()
					return nil
				case v := <-tk.src:
					if err := send(v); err != nil {
						tk.ended <- err
						return err
					}
				}
			}
		}, nil
	})
	return tk
}

// push hands v to the stream's run, failing if it does not take it.
func (tk *ticker) push(t *testing.T, v any) {
	t.Helper()
	select {
	case tk.src <- v:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream took no record within 5 s")
	}
}

func (tk *ticker) waitEnd(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-tk.ended:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("the stream did not end within 5 s of %s", what)
		return nil
	}
}

// TestStreamUnix: after the answer, records arrive one JSON line each,
// however long the stream stays quiet (the idle timeout does not cut it);
// the client's close ends the server's side.
func TestStreamUnix(t *testing.T) {
	s := testServer(t)
	s.limits.idle = 100 * time.Millisecond
	tk := addTicker(s)
	path := serveUnix(t, s)
	cl, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 10)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- cl.Stream(ctx, "ticks", []any{"dispatcher:"}, func(r json.RawMessage) { ready <- string(r) },
			func(r json.RawMessage) error { got <- string(r); return nil })
	}()
	if r := <-ready; r != `{"subscribed":"dispatcher:"}` {
		t.Errorf("answer %s", r)
	}
	for i := range 3 {
		time.Sleep(250 * time.Millisecond) // longer than the idle timeout
		tk.push(t, map[string]any{"n": i, "uri": "sip:a&b"})
		select {
		case r := <-got:
			if want := `{"n":` + string(rune('0'+i)) + `,"uri":"sip:a&b"}`; r != want {
				t.Errorf("record %s, want %s", r, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("record %d not received", i)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel: %v", err)
	}
	cl.Close()
	if err := tk.waitEnd(t, "the client's close"); !errors.Is(err, context.Canceled) {
		t.Errorf("run ended with %v, want its context cancelled", err)
	}
}

// TestStreamServerStops: stopping the server ends the stream; the client
// sees ErrStreamClosed and the server stops within its grace.
func TestStreamServerStops(t *testing.T) {
	s := testServer(t)
	tk := addTicker(s)
	path := t.TempDir() + "/s.sock"
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.ServeUnix(sctx, path) }()
	waitSocket(t, path, served)
	cl, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- cl.Stream(context.Background(), "ticks", nil, func(json.RawMessage) { close(ready) }, func(json.RawMessage) error { return nil })
	}()
	<-ready
	start := time.Now()
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamClosed) {
			t.Errorf("Stream when the server stopped: %v, want ErrStreamClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client's stream did not end when the server stopped")
	}
	if err := <-served; err != nil {
		t.Errorf("ServeUnix: %v", err)
	}
	if took := time.Since(start); took > s.limits.shutdownGrace {
		t.Errorf("stopping with a stream open took %v", took)
	}
	tk.waitEnd(t, "the server's stop")
}

// TestStreamStuckReader: a client that never reads is cut off once a
// record cannot be written within the write timeout.
func TestStreamStuckReader(t *testing.T) {
	s := testServer(t)
	s.limits.write = 200 * time.Millisecond
	tk := addTicker(s)
	path := serveUnix(t, s)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, `{"jsonrpc":"2.0","method":"ticks","id":1}`)
	big := strings.Repeat("x", 64<<10)
	start := time.Now()
	for {
		select {
		case tk.src <- big:
			continue
		case err := <-tk.ended:
			if err == nil || errors.Is(err, context.Canceled) {
				t.Errorf("run ended with %v, want a write error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stream to a client that does not read never ended")
		}
		break
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cut off after %v", took)
	}
}

// TestStreamMisuse: bad params get an error and the connection serves on;
// a streaming method in a batch or as a notification is refused.
func TestStreamMisuse(t *testing.T) {
	s := testServer(t)
	addTicker(s)
	path := serveUnix(t, s)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if !slices.Contains(s.Methods(), "ticks") {
		t.Errorf("Methods() %v lacks the streaming method", s.Methods())
	}
	for _, tc := range []struct{ send, want string }{
		{`{"jsonrpc":"2.0","method":"ticks","params":[1,2],"id":1}`, `"code":-32602`},
		{`[{"jsonrpc":"2.0","method":"ticks","id":2}]`, `ticks streams records: send it alone`},
		{followUp, followUpAnswer},
	} {
		io.WriteString(conn, tc.send)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", tc.send, err)
		}
		if !strings.Contains(line, tc.want) {
			t.Errorf("%s: answer %s, want %s", tc.send, line, tc.want)
		}
	}
}

// TestStreamHTTP: over HTTP the answer and the records are JSON lines of
// one response, which outlives the server's read timeout; the client's
// cancel ends the server's side, and so does the server's stop.
func TestStreamHTTP(t *testing.T) {
	s := testServer(t)
	s.limits.httpRead = 100 * time.Millisecond
	s.limits.httpHeader = 100 * time.Millisecond
	tk := addTicker(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.serveHTTP(sctx, ln, HTTPAuth{None: true}) }()
	defer func() { stop(); <-served }()
	cl := NewHTTPClient("http://"+ln.Addr().String()+HTTPPath, nil)

	stream := func(ctx context.Context) (chan string, chan error) {
		got, done := make(chan string, 10), make(chan error, 1)
		ready := make(chan struct{})
		go func() {
			done <- cl.Stream(ctx, "ticks", nil, func(json.RawMessage) { close(ready) }, func(r json.RawMessage) error { got <- string(r); return nil })
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("HTTP stream: %v", err)
		}
		return got, done
	}
	ctx, cancel := context.WithCancel(context.Background())
	got, done := stream(ctx)
	for i := range 3 {
		time.Sleep(150 * time.Millisecond) // past the read timeout
		tk.push(t, i)
		if r := <-got; r != string(rune('0'+i)) {
			t.Errorf("record %s, want %d", r, i)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel: %v", err)
	}
	tk.waitEnd(t, "the HTTP client's cancel")

	if err := cl.Stream(context.Background(), "ticks", []any{1, 2}, nil, nil); err == nil || !strings.Contains(err.Error(), "Invalid params") {
		t.Errorf("bad params over HTTP: %v", err)
	}

	_, done = stream(context.Background())
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamClosed) {
			t.Errorf("HTTP stream when the server stopped: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the HTTP stream did not end when the server stopped")
	}
	tk.waitEnd(t, "the HTTP server's stop")
}
