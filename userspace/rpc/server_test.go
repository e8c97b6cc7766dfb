package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer has methods that exercise every path of the dispatcher.
func testServer(t *testing.T) *Server {
	t.Helper()
	s := New(nil)
	s.Register("echo", func(_ context.Context, p Params) (any, error) {
		out := make([]json.RawMessage, p.Len())
		for i := range out {
			out[i] = p.Raw(i)
		}
		return out, nil
	})
	s.Register("sum", func(_ context.Context, p Params) (any, error) {
		total := 0
		for i := range p.Len() {
			n, err := p.Int(i)
			if err != nil {
				return nil, err
			}
			total += n
		}
		return total, nil
	})
	s.Register("nil", func(context.Context, Params) (any, error) { return nil, nil })
	s.Register("panic", func(context.Context, Params) (any, error) { panic("boom") })
	s.Register("fault", func(context.Context, Params) (any, error) {
		return nil, fmt.Errorf("wrapped: %w", Errorf(CodeFault, "No Destination Sets", "set %d", 3))
	})
	s.Register("plain", func(context.Context, Params) (any, error) { return nil, errors.New("disk on fire") })
	s.Register("unencodable", func(context.Context, Params) (any, error) { return func() {}, nil })
	s.Register("html", func(context.Context, Params) (any, error) { return "a=1&b=<2>", nil })
	return s
}

// serveUnix starts s on a socket under a fresh directory and returns its
// path; the server stops at the end of the test.
func serveUnix(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "sipedge", "sipedge.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeUnix(ctx, path) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUnix: %v", err)
		}
	})
	waitSocket(t, path, done)
	return path
}

func waitSocket(t *testing.T, path string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("ServeUnix returned early: %v", err)
		default:
		}
		if conn, err := net.Dial("unix", path); err == nil {
			conn.Close()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("socket %s never answered", path)
}

// followUp is sent after inputs that must get no answer, to prove that
// nothing was written before its own answer.
const (
	followUp       = `{"jsonrpc":"2.0","method":"sum","params":[1],"id":"after"}`
	followUpAnswer = `{"jsonrpc":"2.0","result":1,"id":"after"}`
)

func TestServeUnixWire(t *testing.T) {
	s := testServer(t)
	path := serveUnix(t, s)

	tests := []struct {
		name string
		in   string
		want []string // answer lines, in order
		// closes: the server ends the connection after answering.
		closes bool
	}{
		{
			name: "numeric id echoed",
			in:   `{"jsonrpc":"2.0","method":"sum","params":[1,2,3],"id":7}`,
			want: []string{`{"jsonrpc":"2.0","result":6,"id":7}`},
		},
		{
			name: "string id echoed verbatim",
			in:   `{"jsonrpc":"2.0","method":"sum","params":["4",5],"id":"req-<1>"}`,
			want: []string{`{"jsonrpc":"2.0","result":9,"id":"req-<1>"}`},
		},
		{
			name: "fractional id kept as sent",
			in:   `{"jsonrpc":"2.0","method":"nil","id":1.50}`,
			want: []string{`{"jsonrpc":"2.0","result":null,"id":1.50}`},
		},
		{
			name: "null id answered with null",
			in:   `{"jsonrpc":"2.0","method":"nil","id":null}`,
			want: []string{`{"jsonrpc":"2.0","result":null,"id":null}`},
		},
		{
			name: "params object taken in order, names ignored",
			in:   `{"jsonrpc":"2.0","method":"echo","params":{"z":"first","a":2},"id":1}`,
			want: []string{`{"jsonrpc":"2.0","result":["first",2],"id":1}`},
		},
		{
			name: "no params",
			in:   `{"jsonrpc":"2.0","method":"echo","id":1}`,
			want: []string{`{"jsonrpc":"2.0","result":[],"id":1}`},
		},
		{
			name: "no HTML escaping",
			in:   `{"jsonrpc":"2.0","method":"html","id":1}`,
			want: []string{`{"jsonrpc":"2.0","result":"a=1&b=<2>","id":1}`},
		},
		{
			name: "several requests on one connection, no separators",
			in:   `{"jsonrpc":"2.0","method":"sum","params":[1],"id":1}{"jsonrpc":"2.0","method":"sum","params":[2],"id":2}` + "\n\n" + `{"jsonrpc":"2.0","method":"sum","params":[3],"id":3}`,
			want: []string{
				`{"jsonrpc":"2.0","result":1,"id":1}`,
				`{"jsonrpc":"2.0","result":2,"id":2}`,
				`{"jsonrpc":"2.0","result":3,"id":3}`,
			},
		},
		{
			name: "missing jsonrpc member tolerated",
			in:   `{"method":"sum","params":[2],"id":1}`,
			want: []string{`{"jsonrpc":"2.0","result":2,"id":1}`},
		},
		{
			name: "notification gets no answer",
			in:   `{"jsonrpc":"2.0","method":"sum","params":[1]}` + followUp,
			want: []string{followUpAnswer},
		},
		{
			name: "notification of unknown method gets no answer",
			in:   `{"jsonrpc":"2.0","method":"nope"}` + followUp,
			want: []string{followUpAnswer},
		},
		{
			name: "batch answers in order, skipping notifications",
			in:   `[{"jsonrpc":"2.0","method":"sum","params":[1,1],"id":"a"},{"jsonrpc":"2.0","method":"sum","params":[5]},{"jsonrpc":"2.0","method":"nope","id":"b"},7]`,
			want: []string{`[{"jsonrpc":"2.0","result":2,"id":"a"},` +
				`{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":"nope"},"id":"b"},` +
				`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"request must be a JSON object"},"id":null}]`},
		},
		{
			name: "batch of notifications gets no answer",
			in:   `[{"jsonrpc":"2.0","method":"sum"},{"jsonrpc":"2.0","method":"nil"}]` + followUp,
			want: []string{followUpAnswer},
		},
		{
			name: "empty batch",
			in:   `[]`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"empty batch"},"id":null}`},
		},
		{
			name: "unknown method",
			in:   `{"jsonrpc":"2.0","method":"dispatcher.nope","id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":"dispatcher.nope"},"id":3}`},
		},
		{
			name: "method not a string",
			in:   `{"jsonrpc":"2.0","method":1,"id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"method must be a non-empty string"},"id":3}`},
		},
		{
			name: "wrong jsonrpc version",
			in:   `{"jsonrpc":"1.0","method":"sum","id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"jsonrpc must be \"2.0\""},"id":3}`},
		},
		{
			name: "id of a forbidden type",
			in:   `{"jsonrpc":"2.0","method":"sum","id":{"x":1}}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"id must be a string, a number or null"},"id":null}`},
		},
		{
			name: "params a scalar",
			in:   `{"jsonrpc":"2.0","method":"sum","params":3,"id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"params must be an array or an object, not a number"},"id":3}`},
		},
		{
			name: "bad param type",
			in:   `{"jsonrpc":"2.0","method":"sum","params":[1,"x"],"id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params","data":"param 2: want an integer, got \"x\""},"id":3}`},
		},
		{
			name: "handler *Error through wrapping",
			in:   `{"jsonrpc":"2.0","method":"fault","id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":500,"message":"No Destination Sets","data":"set 3"},"id":3}`},
		},
		{
			name: "handler plain error",
			in:   `{"jsonrpc":"2.0","method":"plain","id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":500,"message":"disk on fire"},"id":3}`},
		},
		{
			name: "panicking handler, server keeps serving",
			in:   `{"jsonrpc":"2.0","method":"panic","id":3}` + followUp,
			want: []string{
				`{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error","data":"panic panicked"},"id":3}`,
				followUpAnswer,
			},
		},
		{
			name: "result that cannot be encoded",
			in:   `{"jsonrpc":"2.0","method":"unencodable","id":3}`,
			want: []string{`{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error","data":"result not encodable"},"id":3}`},
		},
		{
			name:   "parse error closes the connection",
			in:     `{"jsonrpc":"2.0","method":"sum","params":[1],"id":1}{"jsonrpc":"2.0",,}` + followUp,
			want:   []string{`{"jsonrpc":"2.0","result":1,"id":1}`, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":"invalid character ',' looking for beginning of object key string"},"id":null}`},
			closes: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, tc.in); err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(conn)
			for i, want := range tc.want {
				line, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("answer %d: %v (got %q)", i+1, err, line)
				}
				if got := strings.TrimSuffix(line, "\n"); got != want {
					t.Errorf("answer %d:\n got %s\nwant %s", i+1, got, want)
				}
			}
			if tc.closes {
				if extra, err := rd.ReadString('\n'); err != io.EOF {
					t.Errorf("connection still open after parse error: read %q, %v", extra, err)
				}
			}
		})
	}
}

func TestServeUnixSocketMode(t *testing.T) {
	path := serveUnix(t, testServer(t))
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("%s is %v, want a socket", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %#o, want 0600", perm)
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := dir.Mode().Perm(); perm != 0o755 {
		t.Errorf("created parent directory mode %#o, want 0755", perm)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket (temporary bind directory left behind?)", len(entries))
	}
}

func TestServeUnixShutdown(t *testing.T) {
	s := testServer(t)
	started := make(chan struct{})
	s.Register("block", func(ctx context.Context, _ Params) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	path := filepath.Join(t.TempDir(), "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeUnix(ctx, path) }()
	waitSocket(t, path, done)

	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, `{"jsonrpc":"2.0","method":"block","id":1}`)
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeUnix after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUnix did not return after cancel: handler context not cancelled?")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after shutdown: %v", err)
	}
}

func TestServeUnixExistingPath(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string // empty: serving must start
	}{
		{
			name: "stale socket replaced",
			prepare: func(t *testing.T, path string) {
				ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
				if err != nil {
					t.Fatal(err)
				}
				ln.SetUnlinkOnClose(false)
				ln.Close()
			},
		},
		{
			name: "live socket refused",
			prepare: func(t *testing.T, path string) {
				ln, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
			},
			wantErr: "in use by a running process",
		},
		{
			name: "regular file refused",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "exists and is not a socket",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.sock")
			tc.prepare(t, path)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			s := testServer(t)
			go func() { done <- s.ServeUnix(ctx, path) }()
			if tc.wantErr == "" {
				waitSocket(t, path, done)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				return
			}
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ServeUnix error %v, want one containing %q", err, tc.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("ServeUnix did not refuse")
			}
		})
	}
}

func TestServeUnixConcurrentClients(t *testing.T) {
	path := serveUnix(t, testServer(t))
	const clients, calls = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl, err := Dial(ctx, path)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for i := range calls {
				res, err := cl.Call(ctx, "sum", c, i)
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprint(c + i); string(res) != want {
					errs <- fmt.Errorf("client %d call %d: got %s, want %s", c, i, res, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClientErrors(t *testing.T) {
	path := serveUnix(t, testServer(t))
	ctx := context.Background()
	cl, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	_, err = cl.Call(ctx, "fault")
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Code != 500 || rerr.Message != "No Destination Sets" || rerr.Data != "set 3" {
		t.Errorf("fault: got %v, want *Error 500 No Destination Sets (set 3)", err)
	}
	// The connection is still usable after an RPC error.
	if res, err := cl.Call(ctx, "sum", 2, json.Number("3")); err != nil || string(res) != "5" {
		t.Errorf("sum after fault: %s, %v", res, err)
	}
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "missing.sock")); err == nil || !strings.Contains(err.Error(), "missing.sock") {
		t.Errorf("Dial of a missing socket: %v, want an error naming it", err)
	}
}

func TestServeHTTP(t *testing.T) {
	hs := httptest.NewServer(testServer(t))
	defer hs.Close()

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string // exact, without the trailing newline; "" skips
	}{
		{
			name: "call", method: "POST", path: "/RPC",
			body:       `{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":"x"}`,
			wantStatus: 200, wantBody: `{"jsonrpc":"2.0","result":3,"id":"x"}`,
		},
		{
			name: "application fault sets the status", method: "POST", path: "/RPC",
			body:       `{"jsonrpc":"2.0","method":"fault","id":1}`,
			wantStatus: 500, wantBody: `{"jsonrpc":"2.0","error":{"code":500,"message":"No Destination Sets","data":"set 3"},"id":1}`,
		},
		{
			name: "standard error code maps to 500", method: "POST", path: "/RPC",
			body:       `{"jsonrpc":"2.0","method":"nope","id":1}`,
			wantStatus: 500, wantBody: `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":"nope"},"id":1}`,
		},
		{
			name: "parse error", method: "POST", path: "/RPC",
			body:       `{"jsonrpc":`,
			wantStatus: 500, wantBody: `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":"request is not valid JSON"},"id":null}`,
		},
		{
			name: "batch", method: "POST", path: "/RPC",
			body:       `[{"jsonrpc":"2.0","method":"sum","params":[1],"id":1},{"jsonrpc":"2.0","method":"fault","id":2}]`,
			wantStatus: 200, wantBody: `[{"jsonrpc":"2.0","result":1,"id":1},{"jsonrpc":"2.0","error":{"code":500,"message":"No Destination Sets","data":"set 3"},"id":2}]`,
		},
		{
			name: "notification", method: "POST", path: "/RPC",
			body:       `{"jsonrpc":"2.0","method":"sum"}`,
			wantStatus: 204,
		},
		{name: "GET refused", method: "GET", path: "/RPC", wantStatus: 405},
		{name: "other path", method: "POST", path: "/rpc", body: `{}`, wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, hs.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" {
				if got := strings.TrimSuffix(string(body), "\n"); got != tc.wantBody {
					t.Errorf("body:\n got %s\nwant %s", got, tc.wantBody)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			}
		})
	}

	// The client reads the JSON-RPC body behind a fault status.
	cl := NewHTTPClient(hs.URL+HTTPPath, hs.Client())
	if res, err := cl.Call(context.Background(), "sum", 4, 4); err != nil || string(res) != "8" {
		t.Errorf("http client sum: %s, %v", res, err)
	}
	_, err := cl.Call(context.Background(), "fault")
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.Code != 500 {
		t.Errorf("http client fault: %v, want *Error 500", err)
	}
}

func TestListenHTTP(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr string
	}{
		{name: "all addresses", addr: ":0", wantErr: "not a loopback address"},
		{name: "unspecified v4", addr: "0.0.0.0:0", wantErr: "not a loopback address"},
		{name: "unspecified v6", addr: "[::]:0", wantErr: "not a loopback address"},
		{name: "public address", addr: "192.0.2.1:0", wantErr: "not a loopback address"},
		{name: "host name", addr: "example.com:80", wantErr: "not a loopback address"},
		{name: "no port", addr: "127.0.0.1", wantErr: "missing port"},
		{name: "loopback v4", addr: "127.0.0.1:0"},
		{name: "localhost", addr: "localhost:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- testServer(t).ListenHTTP(ctx, tc.addr, HTTPAuth{None: true}) }()
			if tc.wantErr != "" {
				err := <-done
				cancel()
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ListenHTTP(%q) = %v, want error containing %q", tc.addr, err, tc.wantErr)
				}
				return
			}
			select {
			case err := <-done:
				t.Fatalf("ListenHTTP(%q) returned before cancel: %v", tc.addr, err)
			case <-time.After(50 * time.Millisecond):
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("ListenHTTP(%q) after cancel: %v", tc.addr, err)
			}
		})
	}
}

func TestServeHTTPOnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- testServer(t).serveHTTP(ctx, ln, HTTPAuth{None: true}) }()
	cl := NewHTTPClient("http://"+ln.Addr().String()+HTTPPath, nil)
	if res, err := cl.Call(ctx, "sum", 1, 2); err != nil || string(res) != "3" {
		t.Errorf("sum over HTTP: %s, %v", res, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveHTTP after cancel: %v", err)
	}
}
