package tests

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/proc"
)

// destCount is how many destinations dispatcher.list shows.
func destCount(t *testing.T, a *agent.Agent) int {
	t.Helper()
	flags, err := agent.DestFlags(a.MustCtl(t, "dispatcher.list"))
	if err != nil {
		t.Fatal(err)
	}
	return len(flags)
}

// waitDests polls dispatcher.list until it shows n destinations.
func waitDests(t *testing.T, a *agent.Agent, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for destCount(t, a) != n {
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher.list shows %d destinations, want %d", destCount(t, a), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, p, text string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func socketGone(t *testing.T, a *agent.Agent) {
	t.Helper()
	if _, err := os.Lstat(a.Socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("control socket %s still there after the agent exited (%v)", a.Socket, err)
	}
}

// TestSighupReload: SIGHUP re-reads the config and the dispatcher list and
// applies them all or nothing; the agent keeps running. A bad list, a list
// that is not a regular file and a bad config each keep the old state and
// log why with FILE:LINE; a restart-only key is named and keeps its value.
// SIGTERM then stops the agent cleanly and the socket file goes.
func TestSighupReload(t *testing.T) {
	t.Parallel()
	b0, b1 := freeAddr(t), freeAddr(t)
	a, _ := edgeAgent(t, agent.Rule{Algorithm: 0}, []agent.Dest{{Set: 1, URI: sipURI(b0)}}, 0)
	listPath := filepath.Join(a.Dir, "dispatcher.list")
	hup := func(t *testing.T) {
		t.Helper()
		if err := a.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("good list applied", func(t *testing.T) {
		cfg := a.Config
		cfg.Dests = append(cfg.Dests, agent.Dest{Set: 1, URI: sipURI(b1)})
		writeFile(t, listPath, cfg.List())
		hup(t)
		waitDests(t, a, 2)
	})
	t.Run("bad list keeps the old sets", func(t *testing.T) {
		writeFile(t, listPath, "# bad\n1 "+sipURI(b0)+" 0 0\n1 "+sipURI(b1)+" X 0\n")
		hup(t)
		a.WaitLog(regexp.MustCompile(`reload failed.*dispatcher\.list:3: flags must be a number`), 5*time.Second)
		if n := destCount(t, a); n != 2 {
			t.Errorf("dispatcher.list shows %d destinations after a bad reload, want the old 2", n)
		}
	})
	t.Run("list on /dev/zero", func(t *testing.T) {
		writeFile(t, a.ConfigPath, a.Config.YAML(a.Socket, "/dev/zero"))
		hup(t)
		a.WaitLog(regexp.MustCompile(`reload failed.*/dev/zero is a character device, not a regular file`), 5*time.Second)
		if n := destCount(t, a); n != 2 {
			t.Errorf("dispatcher.list shows %d destinations, want the old 2", n)
		}
	})
	t.Run("bad config keeps everything", func(t *testing.T) {
		writeFile(t, a.ConfigPath, a.Config.YAML(a.Socket, "dispatcher.list")+"log:\n  level: loud\n")
		hup(t)
		a.WaitLog(regexp.MustCompile(`reload failed.*sipedge\.yaml:\d+: log: repeated key`), 5*time.Second)
	})
	t.Run("restart-only key named", func(t *testing.T) {
		cfg := a.Config
		cfg.FailoverTimeout = 7 * time.Second
		writeFile(t, a.ConfigPath, cfg.YAML(a.Socket, "dispatcher.list"))
		writeFile(t, listPath, a.Config.List())
		hup(t)
		a.WaitLog(regexp.MustCompile(`only a restart applies it.*key=failover\.timeout`), 5*time.Second)
		waitDests(t, a, 1) // the rest of the reload applies
	})
	took := a.Terminate(5 * time.Second)
	t.Logf("stopped %v after SIGTERM", took)
	socketGone(t, a)
}

// TestReloadFIFOThenSIGTERM: a dispatcher.list replaced by a FIFO makes
// dispatcher.reload fail at once (it used to block forever, and SIGTERM
// then no longer stopped the agent); SIGTERM stops the agent in time and
// the socket file goes.
func TestReloadFIFOThenSIGTERM(t *testing.T) {
	t.Parallel()
	a, _ := edgeAgent(t, agent.Rule{Algorithm: 0}, []agent.Dest{{Set: 1, URI: sipURI(freeAddr(t))}}, 0)
	listPath := filepath.Join(a.Dir, "dispatcher.list")
	if err := os.Remove(listPath); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(listPath, 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := agent.Ctl(ctx, a.Bins, a.Socket, "-timeout", "30s", "dispatcher.reload")
		done <- result{err}
	}()
	select {
	case r := <-done:
		if r.err == nil || !strings.Contains(r.err.Error(), "is a named pipe, not a regular file") {
			t.Errorf("dispatcher.reload on a FIFO: %v, want a failure naming the named pipe", r.err)
		}
	case <-time.After(3 * time.Second):
		t.Error("dispatcher.reload on a FIFO still running after 3 s")
	}
	took := a.Terminate(8 * time.Second)
	t.Logf("stopped %v after SIGTERM", took)
	socketGone(t, a)
}

// TestCheckHostileFiles: `sipedge check` refuses a config or a list that
// is not a regular file, at once, naming it.
func TestCheckHostileFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	good := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: freeAddr(t)}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1}},
	}
	withList := func(name, list string) string {
		p := filepath.Join(dir, name+".yaml")
		writeFile(t, p, good.YAML(filepath.Join(dir, "x.sock"), list))
		return p
	}
	for _, tc := range []struct {
		name, config, want string
	}{
		{"config is a FIFO", fifo, fifo + " is a named pipe, not a regular file"},
		{"config is /dev/zero", "/dev/zero", "/dev/zero is a character device, not a regular file"},
		{"list is a FIFO", withList("fifo-list", fifo), fifo + " is a named pipe, not a regular file"},
		{"list is /dev/zero", withList("zero-list", "/dev/zero"), "/dev/zero is a character device, not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, code, err := proc.Run(ctx, bins.Sipedge, "check", "-c", tc.config)
			if err != nil {
				t.Fatalf("sipedge check: %v", err)
			}
			if code != 1 || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, output %q; want exit 1 and %q", code, out, tc.want)
			}
		})
	}
}

// TestHTTPControlToken: HTTP control wants the bearer token from
// control.http_token_file; sipedgectl -token-file sends it.
func TestHTTPControlToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokFile, wrongFile := filepath.Join(dir, "rpc.token"), filepath.Join(dir, "wrong.token")
	writeFile(t, tokFile, "7c1f0c9e2b4d4f0a9e3b5d6c8a1f2e4d\n")
	writeFile(t, wrongFile, "7c1f0c9e2b4d4f0a9e3b5d6c8a1f2e4e\n")
	httpAddr := freeAddr(t).String() // a port claimed for UDP; TCP is free too on loopback here
	edge := freeAddr(t)
	cfg := agent.Config{
		Listeners:     []agent.Listener{{Name: "edge", Address: edge}},
		Rules:         []agent.Rule{{Listener: "edge", Set: 1}},
		Dests:         []agent.Dest{{Set: 1, URI: sipURI(freeAddr(t))}},
		HTTP:          httpAddr,
		HTTPTokenFile: tokFile,
	}
	agent.Start(t, bins, cfg, agent.Options{})
	url := "http://" + httpAddr + "/RPC"
	ctl := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, code, err := proc.Run(ctx, append([]string{bins.Sipedgectl, "-H", url}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, code := ctl("-token-file", tokFile, "core.version")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the token: exit %d: %s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no token", nil},
		{"wrong token", []string{"-token-file", wrongFile}},
	} {
		if out, code := ctl(append(tc.args, "core.version")...); code != 2 || !strings.Contains(out, "401 Unauthorized") {
			t.Errorf("%s: exit %d, output %q; want exit 2 and 401 Unauthorized", tc.name, code, out)
		}
	}
}
