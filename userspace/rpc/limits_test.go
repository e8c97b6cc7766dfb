package rpc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeUnixRequestLimit: a request that grows past MaxRequest gets an
// error and the connection is closed, instead of the server buffering it.
func TestServeUnixRequestLimit(t *testing.T) {
	path := serveUnix(t, testServer(t))
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		io.WriteString(conn, `{"jsonrpc":"2.0","method":"echo","params":["`)
		chunk := strings.Repeat("a", 64<<10)
		for range 64 { // 4 MiB, never closed
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to an oversized request: %v", err)
	}
	if want := "request over 1048576 bytes"; !strings.Contains(line, want) || !strings.Contains(line, `"code":-32600`) {
		t.Errorf("answer %s, want -32600 with %q", line, want)
	}
}

// TestServeUnixIdleTimeout: a connection that sends no complete request
// within the idle timeout is closed, so idle or slow clients cannot hold
// connections (and their goroutines) forever.
func TestServeUnixIdleTimeout(t *testing.T) {
	s := testServer(t)
	s.limits.idle = 200 * time.Millisecond
	path := serveUnix(t, s)
	for _, tc := range []struct{ name, send string }{
		{"silent", ""},
		{"half a request", `{"jsonrpc":"2.0","meth`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, tc.send)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(conn); err != nil {
				t.Errorf("connection not closed by the server: %v", err)
			}
		})
	}
	// A client that keeps sending complete requests is not cut off.
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for range 4 {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(conn, followUp)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != followUpAnswer {
			t.Fatalf("answer %q, %v", line, err)
		}
	}
}

// TestServeUnixHungHandler: on shutdown the socket file goes at once and
// ServeUnix returns within its grace period even when a handler ignores
// its context.
func TestServeUnixHungHandler(t *testing.T) {
	s := testServer(t)
	s.limits.shutdownGrace = 300 * time.Millisecond
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	s.Register("hang", func(context.Context, Params) (any, error) {
		close(started)
		<-release
		return nil, nil
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
	io.WriteString(conn, `{"jsonrpc":"2.0","method":"hang","id":1}`)
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "calls still running 300ms after shutdown: 1") {
			t.Errorf("ServeUnix = %v, want an error naming the running call", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUnix waits forever for a hung handler")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there: %v", err)
	}
}

// TestHTTPAuth: with a token, every request needs "Authorization: Bearer
// TOKEN"; the client sends it when given.
func TestHTTPAuth(t *testing.T) {
	const token = "0123456789abcdef-token"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- testServer(t).serveHTTP(ctx, ln, HTTPAuth{Token: token}) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String() + HTTPPath
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer 0123456789abcdef-tokeN", http.StatusUnauthorized},
		{"prefix of the token", "Bearer 0123456789abcdef", http.StatusUnauthorized},
		{"not bearer", "Basic " + token, http.StatusUnauthorized},
		{"right token", "Bearer " + token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(followUp))
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	cl := NewHTTPClient(url, nil)
	cl.SetToken(token)
	if res, err := cl.Call(ctx, "sum", 1, 2); err != nil || string(res) != "3" {
		t.Errorf("client with token: %s, %v", res, err)
	}
	if _, err := NewHTTPClient(url, nil).Call(ctx, "sum", 1); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("client without token: %v, want a 401 error", err)
	}
}

// TestListenHTTPNeedsAuthChoice: ListenHTTP refuses to start without a
// token unless no authentication is asked for explicitly.
func TestListenHTTPNeedsAuthChoice(t *testing.T) {
	err := testServer(t).ListenHTTP(context.Background(), "127.0.0.1:0", HTTPAuth{})
	if err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("ListenHTTP without a token = %v", err)
	}
}

// TestHTTPTimeouts: a client that sends its headers too slowly, or keeps
// an idle connection, is disconnected.
func TestHTTPTimeouts(t *testing.T) {
	s := testServer(t)
	s.limits.httpHeader = 200 * time.Millisecond
	s.limits.httpRead = 300 * time.Millisecond
	s.limits.idle = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serveHTTP(ctx, ln, HTTPAuth{None: true}) }()
	defer func() { cancel(); <-done }()
	for _, tc := range []struct{ name, send string }{
		{"slow headers", "POST /RPC HTTP/1.1\r\nHost: x\r\n"},
		{"idle keep-alive", "POST /RPC HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(followUp)) + "\r\n\r\n" + followUp},
		{"slow body", "POST /RPC HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, tc.send)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(conn); err != nil {
				t.Errorf("connection not closed by the server: %v", err)
			}
		})
	}
}
