package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/rpc"
)

// startServer serves srv on a unix socket for the length of the test.
func startServer(t *testing.T, srv *rpc.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sipedge.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUnix(ctx, path) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUnix: %v", err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; {
		conn, err := net.Dial("unix", path)
		if err == nil {
			conn.Close()
			return path
		}
		if time.Now().After(deadline) {
			t.Fatalf("server socket %s never answered: %v", path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func coreServer(t *testing.T) *rpc.Server {
	t.Helper()
	srv := rpc.New(nil)
	rpc.RegisterCore(srv, "0.1.0", time.Now())
	srv.Register("test.echo", func(_ context.Context, p rpc.Params) (any, error) {
		out := make([]any, p.Len())
		for i := range out {
			out[i] = p.Raw(i)
		}
		return out, nil
	})
	srv.Register("test.fault", func(context.Context, rpc.Params) (any, error) {
		return nil, rpc.Errorf(500, "No Destination Sets", "nothing loaded")
	})
	srv.Register("test.slow", func(ctx context.Context, _ rpc.Params) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	return srv
}

func TestRun(t *testing.T) {
	srv := coreServer(t)
	sock := startServer(t, srv)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	missing := filepath.Join(t.TempDir(), "missing.sock")
	// An HTTP server that wants a bearer token, as sipedge's with
	// control.http_auth: token.
	const token = "0123456789abcdef-test-token"
	hsAuth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	defer hsAuth.Close()
	tokenFile := filepath.Join(t.TempDir(), "rpc.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	version := `"sipedge 0.1.0 (` + runtime.GOOS + "/" + runtime.GOARCH + `)"` + "\n"

	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string // exact
		wantStderr string // substring; "" means stderr must be empty
	}{
		{
			name:       "version over the socket",
			args:       []string{"-s", sock, "core.version"},
			wantStdout: version,
		},
		{
			name:       "socket from SIPEDGE_SOCKET",
			args:       []string{"core.version"},
			env:        map[string]string{"SIPEDGE_SOCKET": sock},
			wantStdout: version,
		},
		{
			name:       "-s wins over SIPEDGE_SOCKET",
			args:       []string{"-s", sock, "core.version"},
			env:        map[string]string{"SIPEDGE_SOCKET": missing},
			wantStdout: version,
		},
		{
			name:       "over HTTP",
			args:       []string{"-H", hs.URL + "/RPC", "core.version"},
			wantStdout: version,
		},
		{
			name:       "over HTTP with a token file",
			args:       []string{"-H", hsAuth.URL + "/RPC", "-token-file", tokenFile, "core.version"},
			wantStdout: version,
		},
		{
			name:       "token file from SIPEDGE_TOKEN_FILE",
			args:       []string{"-H", hsAuth.URL + "/RPC", "core.version"},
			env:        map[string]string{"SIPEDGE_TOKEN_FILE": tokenFile},
			wantStdout: version,
		},
		{
			name:       "over HTTP without the token exits 2",
			args:       []string{"-H", hsAuth.URL + "/RPC", "core.version"},
			wantCode:   2,
			wantStderr: "401 Unauthorized",
		},
		{
			name:       "events.subscribe as a plain call is refused (it would never end)",
			args:       []string{"-H", hs.URL + "/RPC", "events.subscribe"},
			wantCode:   2,
			wantStderr: "use sipedgectl events",
		},
		{
			name:       "-token-file without -H",
			args:       []string{"-s", sock, "-token-file", tokenFile, "core.version"},
			wantCode:   2,
			wantStderr: "-token-file is for -H",
		},
		{
			name:       "missing token file",
			args:       []string{"-H", hsAuth.URL + "/RPC", "-token-file", missing, "core.version"},
			wantCode:   2,
			wantStderr: "read token file " + missing,
		},
		{
			name:       "params converted the kamctl way, result indented",
			args:       []string{"-s", sock, "test.echo", "ip", "2", "s:5080", "i:007", "sip:a@b"},
			wantStdout: "[\n  \"ip\",\n  2,\n  \"5080\",\n  7,\n  \"sip:a@b\"\n]\n",
		},
		{
			name:       "table",
			args:       []string{"-s", sock, "-t", "system.listMethods"},
			wantStdout: "VALUE\ncore.uptime\ncore.version\nsystem.listMethods\ntest.echo\ntest.fault\ntest.slow\n",
		},
		{
			name:       "rpc error exits 1 with code and text",
			args:       []string{"-s", sock, "test.fault"},
			wantCode:   1,
			wantStderr: "sipedgectl: test.fault: error 500: No Destination Sets (nothing loaded)\n",
		},
		{
			name:       "unknown method exits 1",
			args:       []string{"-s", sock, "dispatcher.nope"},
			wantCode:   1,
			wantStderr: "error -32601: Method not found (dispatcher.nope)",
		},
		{
			name:       "rpc error over HTTP exits 1",
			args:       []string{"-H", hs.URL + "/RPC", "test.fault"},
			wantCode:   1,
			wantStderr: "error 500: No Destination Sets",
		},
		{
			name:       "missing socket exits 2 naming it",
			args:       []string{"-s", missing, "core.version"},
			wantCode:   2,
			wantStderr: "connect to rpc socket " + missing,
		},
		{
			name:       "timeout exits 2",
			args:       []string{"-s", sock, "-timeout", "50ms", "test.slow"},
			wantCode:   2,
			wantStderr: "context deadline exceeded",
		},
		{
			name:       "no method",
			args:       []string{"-s", sock},
			wantCode:   2,
			wantStderr: "no METHOD given",
		},
		{
			name:       "-s and -H together",
			args:       []string{"-s", sock, "-H", hs.URL + "/RPC", "core.version"},
			wantCode:   2,
			wantStderr: "-s and -H exclude each other",
		},
		{
			name:       "bad -H",
			args:       []string{"-H", "127.0.0.1:5071", "core.version"},
			wantCode:   2,
			wantStderr: "want a URL like",
		},
		{
			name:       "bad i: param",
			args:       []string{"-s", sock, "test.echo", "i:x"},
			wantCode:   2,
			wantStderr: `param 1 "i:x": i: wants an integer`,
		},
		{
			name:       "unknown flag",
			args:       []string{"-x", "core.version"},
			wantCode:   2,
			wantStderr: "flag provided but not defined: -x",
		},
		{
			name:       "help",
			args:       []string{"-h"},
			wantStderr: "usage: sipedgectl",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(context.Background(), tc.args, &stdout, &stderr, getenv)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if stdout.String() != tc.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tc.wantStdout)
			}
			if tc.wantStderr == "" && stderr.Len() > 0 {
				t.Errorf("unexpected stderr: %s", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestRunDefaultSocket(t *testing.T) {
	// With neither -s nor SIPEDGE_SOCKET the default path is used, and named
	// in the error when nothing listens there (as in this test environment,
	// or the call succeeds if a sipedge really runs here).
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-timeout", "1s", "core.version"}, &stdout, &stderr, func(string) string { return "" })
	if code == 2 && !strings.Contains(stderr.String(), DefaultSocket) {
		t.Errorf("stderr %q does not name %s", stderr.String(), DefaultSocket)
	}
}
