// Package proc runs the external programs of sipedge's integration tests
// (the agent, SIPp, tools inside network namespaces) as child processes
// that cannot outlive the test: output goes to a file that is logged when
// the test fails, the child gets SIGKILL if the test binary dies
// (Pdeathsig), and a t.Cleanup stops it if the test did not.
//
// It also picks free UDP ports and waits until a process has bound a UDP
// socket, reading /proc/PID/net/udp, which shows the sockets of the
// process's own network namespace.
package proc

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options says how to run a program.
type Options struct {
	// Exec is a command prefix, e.g. {"nsenter", "--net=/run/netns/x", "--"};
	// nil runs the program directly.
	Exec []string
	// Dir is the working directory and where the output file goes;
	// empty: a new t.TempDir().
	Dir string
	// StopSignal ends the process on Stop and on cleanup; default SIGTERM.
	StopSignal syscall.Signal
	// StopGrace is how long Stop waits after StopSignal before SIGKILL;
	// default 5 s.
	StopGrace time.Duration
	// MaxLog caps how much of the output's tail a failing test logs;
	// default 64 KiB.
	MaxLog int
}

// Process is a running (or finished) child process.
type Process struct {
	Name    string
	Argv    []string // the full command line, prefix included
	OutPath string   // stdout and stderr, interleaved

	t       testing.TB
	opts    Options
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	mu      sync.Mutex
	stopped bool
	logged  bool
	early   bool // exited before Stop signalled it
}

// Start runs argv (after opts.Exec) with stdout and stderr in a file. A
// failed start fails the test. On cleanup, a process still running is
// stopped, and when the test failed the output's tail is logged.
func Start(t testing.TB, name string, argv []string, opts Options) *Process {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGTERM
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.MaxLog == 0 {
		opts.MaxLog = 64 << 10
	}
	full := append(append([]string(nil), opts.Exec...), argv...)
	outPath := filepath.Join(opts.Dir, sanitize(name)+".out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = opts.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s (%s): %v", name, strings.Join(full, " "), err)
	}
	p := &Process{Name: name, Argv: full, OutPath: outPath, t: t, opts: opts, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	t.Logf("started %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(full, " "))
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.LogOutput()
		}
	})
	return p
}

// Pid is the child's process id (the program's own when the prefix execs
// it, as nsenter does for a network namespace).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status once the process has exited: -1 while it
// runs, 128+N when signal N killed it.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	st := p.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Wait waits for the process to exit by itself or until ctx ends; on ctx's
// end it stops the process and returns ctx's error.
func (p *Process) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		return p.ExitCode(), nil
	case <-ctx.Done():
		p.Stop()
		return p.ExitCode(), fmt.Errorf("%s did not exit in time: %w", p.Name, ctx.Err())
	}
}

// Stop sends the stop signal, waits for the grace period, then kills the
// whole process group. It returns the exit code; calling it again is
// harmless.
func (p *Process) Stop() int {
	code, killed := p.StopWithin(p.opts.StopGrace)
	if killed {
		p.t.Logf("%s ignored %v for %v: killed it", p.Name, p.opts.StopSignal, p.opts.StopGrace)
	}
	return code
}

// Signal sends sig to the process (to the prefix, when Options.Exec
// execs a program in its place, as nsenter does, the program itself).
func (p *Process) Signal(sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// StopWithin is Stop with its own grace period: it sends the stop signal
// and waits at most grace before killing the process group. It returns
// the exit code and whether the process had to be killed.
func (p *Process) StopWithin(grace time.Duration) (code int, killed bool) {
	p.mu.Lock()
	first := !p.stopped
	p.stopped = true
	p.mu.Unlock()
	if first && p.Exited() {
		p.mu.Lock()
		p.early = true
		p.mu.Unlock()
	}
	if first && !p.Exited() {
		_ = p.cmd.Process.Signal(p.opts.StopSignal)
		select {
		case <-p.done:
		case <-time.After(grace):
			killed = true
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			_ = p.cmd.Process.Kill()
		}
	}
	<-p.done
	return p.ExitCode(), killed
}

// ExitedEarly reports whether the process had exited by itself before
// Stop was first called.
func (p *Process) ExitedEarly() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.early
}

// Output returns everything the process wrote so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.OutPath)
	return string(b)
}

// LogOutput logs the tail of the output (at most Options.MaxLog bytes),
// once: later calls do nothing.
func (p *Process) LogOutput() {
	p.t.Helper()
	p.mu.Lock()
	done := p.logged
	p.logged = true
	p.mu.Unlock()
	if done {
		return
	}
	out := p.Output()
	if len(out) > p.opts.MaxLog {
		out = "[... " + strconv.Itoa(len(out)-p.opts.MaxLog) + " bytes cut ...]\n" + out[len(out)-p.opts.MaxLog:]
	}
	p.t.Logf("---- output of %s (%s), exit %d ----\n%s\n---- end of %s ----",
		p.Name, p.OutPath, p.ExitCode(), out, p.Name)
}

// WaitUDP waits until the process has a UDP socket bound to addr (or to
// the wildcard address on addr's port), or fails when the process exits or
// ctx ends first.
func (p *Process) WaitUDP(ctx context.Context, addr netip.AddrPort) error {
	for {
		ok, err := UDPBound(p.Pid(), addr)
		if err == nil && ok {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (code %d) before binding udp %s", p.Name, p.ExitCode(), addr)
		case <-ctx.Done():
			if err == nil {
				err = errors.New("not bound")
			}
			return fmt.Errorf("%s: udp %s: %w (%w)", p.Name, addr, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// UDPBound reports whether process pid holds a UDP socket bound to addr
// (or to the wildcard address on addr's port). It reads the socket table
// of the process's network namespace (/proc/PID/net/udp) and matches its
// inodes against the process's descriptors (/proc/PID/fd).
func UDPBound(pid int, addr netip.AddrPort) (bool, error) {
	file := "udp"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		file = "udp6"
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
	if err != nil {
		return false, err
	}
	var inodes []string
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		local, err := parseProcAddr(f[1])
		if err != nil {
			continue
		}
		if local.Port() == addr.Port() && (local.Addr() == addr.Addr() || local.Addr().IsUnspecified()) {
			inodes = append(inodes, f[9])
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, ino := range inodes {
			if target == "socket:["+ino+"]" {
				return true, nil
			}
		}
	}
	return false, nil
}

// parseProcAddr parses /proc/net/udp's "0100007F:13C4": the address as
// 32-bit words in host byte order, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, ps, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(ps, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

var (
	portsMu sync.Mutex
	given   = map[uint16]bool{}
	claims  []int // abstract unix sockets held until the process exits
)

// FreeUDPPort returns a UDP port that is free on ip now, below the
// kernel's ephemeral range (so no socket bound to port 0 can take it
// before the test binds it) and above SIPp's media and control ports
// (6000+, 8888+). A port is never returned twice, neither in this process
// nor to another test binary running at the same time (go test runs
// packages in parallel): each is claimed by binding the abstract unix
// socket "@sipedge-test-udp-PORT", which the kernel releases when the
// process exits, leaving no file behind.
func FreeUDPPort(t testing.TB, ip netip.Addr) uint16 {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 10000, ephemeralLow()-1
	for range 1000 {
		port := uint16(lo + rand.IntN(hi-lo+1))
		if given[port] {
			continue
		}
		if !claimPort(t, port) {
			continue // another test binary has it
		}
		given[port] = true // claimed, even if something else has it bound
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
		if err != nil {
			continue
		}
		c.Close()
		return port
	}
	t.Fatalf("no free udp port on %s in %d-%d", ip, lo, hi)
	return 0
}

func claimPort(t testing.TB, port uint16) bool {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("pick a free udp port: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: fmt.Sprintf("@sipedge-test-udp-%d", port)}); err != nil {
		syscall.Close(fd)
		return false
	}
	claims = append(claims, fd)
	return true
}

// ephemeralLow is the bottom of net.ipv4.ip_local_port_range (32768 when
// it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

// Run runs argv to completion under ctx and returns its combined output
// and exit code; err is set only when the program could not run or ctx
// ended.
func Run(ctx context.Context, argv ...string) (out []byte, code int, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return buf.Bytes(), ee.ExitCode(), nil
	}
	if err != nil {
		return buf.Bytes(), -1, fmt.Errorf("run %s: %w", strings.Join(argv, " "), err)
	}
	return buf.Bytes(), 0, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
