// Package agent builds the sipedge binaries and runs the agent as a child
// process for the integration tests: it writes a config and a dispatcher
// list into the test's temporary directory, starts `sipedge -c`, waits
// until the control socket answers core.version and every listener is
// bound, calls sipedgectl and decodes its JSON, and stops the agent with
// SIGTERM, failing the test unless it exits cleanly (status 0).
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
)

// Bins are the built binaries.
type Bins struct {
	Sipedge    string
	Sipedgectl string
}

// Build compiles ./cmd/sipedge and ./cmd/sipedgectl of the module that
// holds this package into dir. race builds them with the race detector
// (the tests do when they run under -race, so the agent is checked too).
func Build(ctx context.Context, dir string, race bool) (Bins, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return Bins{}, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if root == "." || root == "" {
		return Bins{}, fmt.Errorf("not inside the sipedge module (go env GOMOD = %q)", out)
	}
	args := []string{"build"}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "-o", dir+"/", "./cmd/sipedge", "./cmd/sipedgectl")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return Bins{}, fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, b)
	}
	return Bins{Sipedge: filepath.Join(dir, "sipedge"), Sipedgectl: filepath.Join(dir, "sipedgectl")}, nil
}

// Listener is one listeners: entry.
type Listener struct {
	Name    string
	Address netip.AddrPort // written as udp:ADDRESS
}

// Rule is one rules: entry.
type Rule struct {
	Listener    string
	Set         int
	Algorithm   int
	RecordRoute bool
	Mode        string // "stateless" (default) or "failover"
}

// Dest is one dispatcher.list line: set uri flags priority [attrs].
type Dest struct {
	Set      int
	URI      string
	Flags    int
	Priority int
	Attrs    string
}

// Config is a sipedge config and its dispatcher list.
type Config struct {
	Listeners []Listener
	Rules     []Rule
	Dests     []Dest
	// FailoverTimeout is failover.timeout; zero leaves the default.
	FailoverTimeout time.Duration
	// LogLevel is log.level; default "debug".
	LogLevel string
	// XDP is the xdp: section; nil writes none (the fast path stays off).
	XDP *XDP
	// DispatcherKeys are more dispatcher: keys, written in order as
	// "key: value", the value as YAML (e.g. {"ds_ping_interval", "200ms"}).
	DispatcherKeys [][2]string
	// EventKeys are events: keys, written like DispatcherKeys (e.g.
	// {"hook_command", "[/path/hook.sh]"}); none: no events: section.
	EventKeys [][2]string
	// KeepaliveKeys, when set, are the keepalive: section's keys, written
	// as DispatcherKeys are (e.g. {"destination", "[sip:127.0.0.1:5080]"}).
	KeepaliveKeys [][2]string
	// DialogKeys, when set, are the dialogs: section's keys, written as
	// DispatcherKeys are (e.g. {"enabled", "true"}).
	DialogKeys [][2]string
	// HTTP, HTTPAuth and HTTPTokenFile are control.http, http_auth and
	// http_token_file; empty ones are not written.
	HTTP, HTTPAuth, HTTPTokenFile string
}

// XDP is the xdp: section: the interfaces the fast path attaches to and
// the mode (auto, native, generic, off).
type XDP struct {
	Interfaces []string
	Mode       string
}

// YAML renders the config file, with the control socket at socket and the
// list file name listFile (relative to the config).
func (c Config) YAML(socket, listFile string) string {
	var b strings.Builder
	b.WriteString("# written by tests/agent\nlisteners:\n")
	for _, l := range c.Listeners {
		fmt.Fprintf(&b, "  - name: %s\n    address: udp:%s\n", l.Name, l.Address)
	}
	b.WriteString("rules:\n")
	for _, r := range c.Rules {
		mode := r.Mode
		if mode == "" {
			mode = "stateless"
		}
		fmt.Fprintf(&b, "  - listener: %s\n    set: %d\n    algorithm: %d\n    record_route: %t\n    mode: %s\n",
			r.Listener, r.Set, r.Algorithm, r.RecordRoute, mode)
	}
	fmt.Fprintf(&b, "dispatcher:\n  list_file: %s\n  use_default: 0\n", listFile)
	for _, kv := range c.DispatcherKeys {
		fmt.Fprintf(&b, "  %s: %s\n", kv[0], kv[1])
	}
	if c.FailoverTimeout > 0 {
		fmt.Fprintf(&b, "failover:\n  timeout: %s\n", c.FailoverTimeout)
	}
	fmt.Fprintf(&b, "control:\n  socket: %s\n", socket)
	for _, kv := range [][2]string{{"http", c.HTTP}, {"http_auth", c.HTTPAuth}, {"http_token_file", c.HTTPTokenFile}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "  %s: %s\n", kv[0], kv[1])
		}
	}
	level := c.LogLevel
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&b, "log:\n  level: %s\n", level)
	for _, sec := range []struct {
		name string
		keys [][2]string
	}{{"events", c.EventKeys}, {"keepalive", c.KeepaliveKeys}, {"dialogs", c.DialogKeys}} {
		if len(sec.keys) == 0 {
			continue
		}
		b.WriteString(sec.name + ":\n")
		for _, kv := range sec.keys {
			fmt.Fprintf(&b, "  %s: %s\n", kv[0], kv[1])
		}
	}
	if c.XDP != nil {
		b.WriteString("xdp:\n  interface:\n")
		for _, name := range c.XDP.Interfaces {
			fmt.Fprintf(&b, "    - %s\n", name)
		}
		fmt.Fprintf(&b, "  mode: %s\n", c.XDP.Mode)
	}
	return b.String()
}

// List renders dispatcher.list.
func (c Config) List() string {
	var b strings.Builder
	b.WriteString("# written by tests/agent: setid uri flags priority attrs\n")
	for _, d := range c.Dests {
		fmt.Fprintf(&b, "%d %s %d %d", d.Set, d.URI, d.Flags, d.Priority)
		if d.Attrs != "" {
			b.WriteString(" " + d.Attrs)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Write writes sipedge.yaml and dispatcher.list into dir and returns the
// config's path.
func (c Config) Write(dir, socket string) (string, error) {
	if err := os.WriteFile(filepath.Join(dir, "dispatcher.list"), []byte(c.List()), 0o644); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "sipedge.yaml")
	return p, os.WriteFile(p, []byte(c.YAML(socket, "dispatcher.list")), 0o644)
}

// Options are how to run the agent.
type Options struct {
	// Exec is a command prefix (nsenter into a network namespace).
	Exec []string
	// ReadyTimeout bounds the wait for the control socket and the
	// listeners; default 15 s.
	ReadyTimeout time.Duration
}

// Agent is a running sipedge.
type Agent struct {
	Bins   Bins
	Config Config
	// ConfigPath is the YAML file; Dir holds it, the list and the logs.
	ConfigPath string
	Dir        string
	// Socket is the control socket.
	Socket string
	*proc.Process

	t       testing.TB
	stopped bool
}

// Start writes cfg into a new temporary directory and runs the agent on
// it, waiting until it answers core.version on its control socket and has
// bound every listener. On cleanup the agent is stopped with SIGTERM and
// the test fails unless it exits with status 0; when the test failed, the
// agent's output (its log) goes into the test log.
func Start(t testing.TB, bins Bins, cfg Config, opts Options) *Agent {
	t.Helper()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 15 * time.Second
	}
	dir := t.TempDir()
	// sun_path holds 107 bytes: keep the socket out of long test dirs.
	sockDir, err := os.MkdirTemp("", "sipedge-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	a := &Agent{Bins: bins, Config: cfg, Dir: dir, Socket: filepath.Join(sockDir, "sipedge.sock"), t: t}
	a.ConfigPath, err = cfg.Write(dir, a.Socket)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before proc.Start's cleanup, so it runs after it: by then
	// the process is stopped and its exit code is final.
	t.Cleanup(func() {
		if !a.stopped {
			a.checkExit()
		}
	})
	a.Process = proc.Start(t, "sipedge", []string{bins.Sipedge, "-c", a.ConfigPath},
		proc.Options{Exec: opts.Exec, Dir: dir, MaxLog: 256 << 10, StopGrace: 10 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), opts.ReadyTimeout)
	defer cancel()
	if err := a.waitReady(ctx); err != nil {
		a.Process.Stop()
		a.stopped = true
		a.LogOutput()
		t.Fatalf("sipedge did not become ready: %v\nconfig %s:\n%s\ndispatcher.list:\n%s", err, a.ConfigPath, cfg.YAML(a.Socket, "dispatcher.list"), cfg.List())
	}
	return a
}

func (a *Agent) waitReady(ctx context.Context) error {
	var last error
	for {
		if a.Exited() {
			return fmt.Errorf("sipedge exited with status %d", a.ExitCode())
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = a.Ctl(cctx, "core.version")
		cancel()
		if last == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("control socket %s: %w (last error: %v)", a.Socket, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, l := range a.Config.Listeners {
		if err := a.WaitUDP(ctx, l.Address); err != nil {
			return fmt.Errorf("listener %s: %w", l.Name, err)
		}
	}
	return nil
}

// Ctl runs sipedgectl -s SOCKET args... and returns the JSON result it
// prints (the "result" member when it prints a whole JSON-RPC response).
// A non-zero exit is an error carrying the output.
func (a *Agent) Ctl(ctx context.Context, args ...string) (json.RawMessage, error) {
	return Ctl(ctx, a.Bins, a.Socket, args...)
}

// MustCtl is Ctl with a 10 s deadline that fails the test on error.
func (a *Agent) MustCtl(t testing.TB, args ...string) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.Ctl(ctx, args...)
	if err != nil {
		t.Fatalf("sipedgectl %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// Ctl runs sipedgectl against socket; see Agent.Ctl.
func Ctl(ctx context.Context, bins Bins, socket string, args ...string) (json.RawMessage, error) {
	argv := append([]string{bins.Sipedgectl, "-s", socket}, args...)
	out, code, err := proc.Run(ctx, argv...)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("sipedgectl %s: exit %d: %s", strings.Join(args, " "), code, bytes.TrimSpace(out))
	}
	return DecodeResult(out)
}

// DecodeResult takes the JSON value sipedgectl printed; a full JSON-RPC
// response is reduced to its result (or turned into its error).
func DecodeResult(out []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("sipedgectl printed no JSON (%v): %q", err, out)
	}
	var env struct {
		JSONRPC string          `json:"jsonrpc"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(v, &env) == nil && env.JSONRPC != "" {
		if env.Error != nil {
			return nil, fmt.Errorf("rpc error: %s", env.Error)
		}
		return env.Result, nil
	}
	return v, nil
}

// Stop stops the agent with SIGTERM and fails the test unless it exits
// with status 0 within 10 s.
func (a *Agent) Stop() {
	a.t.Helper()
	a.Process.Stop()
	a.checkExit()
}

func (a *Agent) checkExit() {
	a.t.Helper()
	a.stopped = true
	switch code := a.ExitCode(); {
	case a.ExitedEarly():
		a.t.Errorf("sipedge exited by itself during the test, status %d", code)
		a.LogOutput()
	case code != 0:
		a.t.Errorf("sipedge did not exit cleanly after SIGTERM: exit status %d", code)
		a.LogOutput()
	}
}

// Terminate sends SIGTERM and gives the agent grace to exit, killing it
// after that. It fails the test unless the agent exits by itself with
// status 0 within grace, and returns how long it took.
func (a *Agent) Terminate(grace time.Duration) time.Duration {
	a.t.Helper()
	a.stopped = true
	start := time.Now()
	code, killed := a.StopWithin(grace)
	took := time.Since(start)
	switch {
	case a.ExitedEarly():
		a.t.Errorf("sipedge exited by itself during the test, status %d", code)
		a.LogOutput()
	case killed:
		a.t.Errorf("sipedge did not exit within %v of SIGTERM: killed", grace)
		a.LogOutput()
	case code != 0:
		a.t.Errorf("sipedge exited with status %d after SIGTERM, want 0", code)
		a.LogOutput()
	}
	return took
}

// WaitLog waits until the agent's output matches re, failing the test
// after timeout or when the agent exits first.
func (a *Agent) WaitLog(re *regexp.Regexp, timeout time.Duration) string {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := a.Output()
		if m := re.FindString(out); m != "" {
			return m
		}
		if a.Exited() {
			a.t.Fatalf("sipedge exited (status %d) before logging %s", a.ExitCode(), re)
		}
		if time.Now().After(deadline) {
			a.LogOutput()
			a.t.Fatalf("sipedge logged nothing matching %s within %v", re, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DestFlags returns the FLAGS of every destination in dispatcher.list's
// result ({"RECORDS":[{"SET":{"ID":1,"TARGETS":[{"DEST":{"URI":..,
// "FLAGS":"AP"}}]}}]}), keyed "SET URI".
func DestFlags(raw json.RawMessage) (map[string]string, error) {
	var res struct {
		Records []struct {
			Set struct {
				ID      int `json:"ID"`
				Targets []struct {
					Dest struct {
						URI   string `json:"URI"`
						Flags string `json:"FLAGS"`
					} `json:"DEST"`
				} `json:"TARGETS"`
			} `json:"SET"`
		} `json:"RECORDS"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("dispatcher.list result: %w: %s", err, raw)
	}
	out := map[string]string{}
	for _, r := range res.Records {
		for _, d := range r.Set.Targets {
			out[strconv.Itoa(r.Set.ID)+" "+d.Dest.URI] = d.Dest.Flags
		}
	}
	return out, nil
}
