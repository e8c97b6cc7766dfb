// Package kamailio runs a real Kamailio (Debian's kamailio 5.6.x) as a child
// process of a test, as the oracle sipedge's behaviour is compared with.
//
// Start writes kamailio.cfg and dispatcher.list into a temporary directory
// and runs `kamailio -DD -E -f CFG` in the foreground (no daemon, log to
// stderr, which package proc captures) with its runtime directory (-Y) in
// that directory, so it neither needs nor touches /run/kamailio of a
// system instance; it runs as root or as any user. The config enables
// jsonrpcs on a unix datagram socket in the same directory; Start waits
// until every UDP listener is bound and core.version answers there, and
// RPC calls any method over it.
package kamailio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// NeedKamailio returns the kamailio binary's path. It skips t when
// kamailio is not installed, and fails it under CI=true. Debian installs it
// in /usr/sbin, which is not on every user's PATH, so that is tried too.
func NeedKamailio(t testing.TB) string {
	t.Helper()
	return testutil.NeedCommand(t, "kamailio", func(name string) (string, error) {
		p, err := exec.LookPath(name)
		if err == nil {
			return p, nil
		}
		if p2, err2 := exec.LookPath("/usr/sbin/" + name); err2 == nil {
			return p2, nil
		}
		return "", err
	})
}

// Config is what Start writes.
type Config struct {
	// Listen are the UDP sockets (listen=udp:IP:PORT), at least one.
	Listen []netip.AddrPort
	// Modules are loaded (loadmodule "NAME.so") after jsonrpcs, in order.
	Modules []string
	// ModParams are modparam lines' arguments, e.g.
	// `"dispatcher", "use_default", 1`. When the dispatcher module is
	// loaded, its list_file is set to the written DispatcherList.
	ModParams []string
	// DispatcherList is the content of dispatcher.list.
	DispatcherList string
	// Routes are the routing blocks (request_route { ... } and others),
	// written verbatim.
	Routes string
	// Children is the number of UDP workers per listener; default 1.
	Children int
	// Debug is the log level (debug=): "-1" errors only, "0" warnings,
	// "2" info (the default), "3" debug.
	Debug string
}

// Kamailio is a running kamailio.
type Kamailio struct {
	Config Config
	// Dir holds kamailio.cfg, dispatcher.list, the RPC socket and the
	// runtime directory; it is removed on cleanup.
	Dir      string
	CfgPath  string
	ListPath string
	// RPCSocket is jsonrpcs' unix datagram socket.
	RPCSocket string
	*proc.Process

	id atomic.Int64
}

// CfgText renders kamailio.cfg for a Kamailio whose files live in dir.
func (c Config) CfgText(dir string) string {
	var b strings.Builder
	children := c.Children
	if children <= 0 {
		children = 1
	}
	debug := c.Debug
	if debug == "" {
		debug = "2"
	}
	fmt.Fprintf(&b, "#!KAMAILIO\n# written by tests/kamailio\n")
	fmt.Fprintf(&b, "debug=%s\nlog_stderror=yes\nchildren=%d\n", debug, children)
	// UDP only, and nothing that looks up names: the tests run offline.
	b.WriteString("disable_tcp=yes\ndisable_sctp=yes\nauto_aliases=no\ndns=no\nrev_dns=no\n")
	for _, l := range c.Listen {
		fmt.Fprintf(&b, "listen=udp:%s\n", l)
	}
	b.WriteString("\nloadmodule \"jsonrpcs.so\"\n")
	loadsDispatcher := false
	for _, m := range c.Modules {
		fmt.Fprintf(&b, "loadmodule \"%s.so\"\n", m)
		loadsDispatcher = loadsDispatcher || m == "dispatcher"
	}
	b.WriteString("\n# jsonrpcs: datagram transport only (no FIFO in /run or /tmp)\n")
	b.WriteString("modparam(\"jsonrpcs\", \"transport\", 4)\n")
	fmt.Fprintf(&b, "modparam(\"jsonrpcs\", \"dgram_socket\", \"%s\")\n", filepath.Join(dir, "rpc.sock"))
	if loadsDispatcher {
		fmt.Fprintf(&b, "modparam(\"dispatcher\", \"list_file\", \"%s\")\n", filepath.Join(dir, "dispatcher.list"))
	}
	for _, p := range c.ModParams {
		fmt.Fprintf(&b, "modparam(%s)\n", p)
	}
	b.WriteString("\n")
	b.WriteString(c.Routes)
	if !strings.HasSuffix(c.Routes, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

// Start writes the config and the list into a new directory, checks the
// config with `kamailio -c`, runs kamailio, and waits (up to 15 s) until
// it has bound every listener and answers core.version over jsonrpcs. A
// failure fails the test with the config and Kamailio's output. Kamailio
// is stopped (SIGTERM, then SIGKILL of its process group) on cleanup, and
// its directory removed.
func Start(t testing.TB, cfg Config) *Kamailio {
	t.Helper()
	bin := NeedKamailio(t)
	if len(cfg.Listen) == 0 {
		t.Fatal("kamailio.Start: no listener")
	}
	// sun_path holds 107 bytes: keep the RPC sockets out of long test dirs.
	dir, err := os.MkdirTemp("", "sipedge-kamailio-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := &Kamailio{
		Config:    cfg,
		Dir:       dir,
		CfgPath:   filepath.Join(dir, "kamailio.cfg"),
		ListPath:  filepath.Join(dir, "dispatcher.list"),
		RPCSocket: filepath.Join(dir, "rpc.sock"),
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	text := cfg.CfgText(dir)
	if err := os.WriteFile(k.CfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.ListPath, []byte(cfg.DispatcherList), 0o644); err != nil {
		t.Fatal(err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("kamailio: "+format+"\n---- %s ----\n%s---- dispatcher.list ----\n%s", append(args, k.CfgPath, numbered(text), cfg.DispatcherList)...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, code, err := proc.Run(ctx, bin, "-c", "-f", k.CfgPath); err != nil || code != 0 {
		fail("config check failed (exit %d, %v):\n%s", code, err, out)
	}
	// -DD: do not daemonize (the main process stays our child and its
	// workers stay in its process group); -E: log to stderr; -Y: runtime
	// directory; -m/-M: small shared and private memory.
	argv := []string{bin, "-DD", "-E", "-Y", run, "-m", "32", "-M", "8", "-f", k.CfgPath}
	k.Process = proc.Start(t, "kamailio", argv, proc.Options{Dir: dir, MaxLog: 128 << 10})
	if err := k.waitReady(ctx); err != nil {
		k.Process.Stop()
		k.LogOutput()
		fail("not ready: %v", err)
	}
	return k
}

func (k *Kamailio) waitReady(ctx context.Context) error {
	for _, l := range k.Config.Listen {
		if err := k.WaitUDP(ctx, l); err != nil {
			return err
		}
	}
	var last error
	for {
		if k.Exited() {
			return fmt.Errorf("kamailio exited with status %d", k.ExitCode())
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, last = k.RPC(cctx, "core.version")
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jsonrpcs %s: %w (last error: %v)", k.RPCSocket, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RPCError is a JSON-RPC error answer.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("error %d: %s", e.Code, e.Message) }

// RPC calls method with params over jsonrpcs' datagram socket and returns
// the result. A JSON-RPC error is an *RPCError.
func (k *Kamailio) RPC(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	id := k.id.Add(1)
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": id}
	if len(params) > 0 {
		req["params"] = params
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// The answer goes back to the sender's address: bind one per call.
	local := filepath.Join(k.Dir, fmt.Sprintf("c%d.sock", id))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: local, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	defer os.Remove(local)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := conn.WriteToUnix(body, &net.UnixAddr{Name: k.RPCSocket, Net: "unixgram"}); err != nil {
		return nil, fmt.Errorf("%s: send %s: %w", k.RPCSocket, method, err)
	}
	buf := make([]byte, 1<<20)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: no answer: %w", k.RPCSocket, method, err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
		ID     int64           `json:"id"`
	}
	if err := json.Unmarshal(buf[:n], &resp); err != nil {
		return nil, fmt.Errorf("%s: answer is not JSON (%v): %q", method, err, buf[:n])
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	if resp.ID != id {
		return nil, fmt.Errorf("%s: answer has id %d, want %d", method, resp.ID, id)
	}
	if resp.Result == nil {
		return nil, errors.New(method + ": answer has neither result nor error")
	}
	return resp.Result, nil
}

// MustRPC is RPC with a 5 s deadline that fails the test on error.
func (k *Kamailio) MustRPC(t testing.TB, method string, params ...any) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := k.RPC(ctx, method, params...)
	if err != nil {
		t.Fatalf("kamailio RPC %s %v: %v", method, params, err)
	}
	return res
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}
