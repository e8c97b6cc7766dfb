// Package netns builds network namespaces and veth links for sipedge's
// integration tests, and runs commands inside them. Everything it creates
// is removed in t.Cleanup, also when the test fails; namespaces a killed
// test binary left behind are removed by the next run.
//
// Every function needs root: each test that uses the package must start
// with testutil.NeedRoot(t) (skip locally, fail under CI=true); New calls
// it too.
//
// Commands run in a namespace through `nsenter --net=/run/netns/NAME --`,
// not `ip netns exec`: ip netns exec also makes a new mount namespace and
// remounts /sys, which hides /sys/fs/bpf pins from the command. nsenter
// execs the command itself, so its pid is the command's.
package netns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// NS is a named network namespace (/run/netns/NAME).
type NS struct {
	// Name is the full name, "se<pid>-<short>": unique per test binary.
	Name string
	// Path is /run/netns/NAME.
	Path string
}

var staleOnce sync.Once

// New creates the namespace se<pid>-<short>, brings its loopback up, and
// deletes it in t.Cleanup.
func New(t testing.TB, short string) *NS {
	t.Helper()
	testutil.NeedRoot(t)
	testutil.NeedCommand(t, "ip", exec.LookPath)
	testutil.NeedCommand(t, "nsenter", exec.LookPath)
	staleOnce.Do(func() { removeStale(t) })
	name := fmt.Sprintf("se%d-%s", os.Getpid(), short)
	n := &NS{Name: name, Path: filepath.Join("/run/netns", name)}
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, code, err := proc.Run(context.Background(), "ip", "netns", "del", name); err != nil || code != 0 {
			t.Errorf("ip netns del %s: exit %d %v: %s", name, code, err, out)
		}
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

var staleRE = regexp.MustCompile(`^se(\d+)-`)

// removeStale deletes the namespaces of test binaries that no longer run.
func removeStale(t testing.TB) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		m := staleRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		t.Logf("removing namespace %s left by dead test process %d", e.Name(), pid)
		_, _, _ = proc.Run(context.Background(), "ip", "netns", "del", e.Name())
	}
}

// Exec is the prefix that runs a command in the namespace.
func (n *NS) Exec() []string { return []string{"nsenter", "--net=" + n.Path, "--"} }

// Run runs argv in the namespace to completion (30 s at most) and fails
// the test unless it exits 0. It returns the output.
func (n *NS) Run(t testing.TB, argv ...string) string {
	t.Helper()
	return mustRun(t, append(n.Exec(), argv...)...)
}

// Sysctl sets key (dotted, "net.ipv4.ip_forward") to value in the
// namespace, writing /proc/sys from inside it.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	n.Run(t, "sysctl", "-q", "-w", key+"="+value)
}

// AddRoute adds a route to dst ("default" or a prefix) via gw.
func (n *NS) AddRoute(t testing.TB, dst string, gw netip.Addr) {
	t.Helper()
	n.Run(t, "ip", "route", "add", dst, "via", gw.String())
}

// AddNeigh adds a permanent neighbour entry: ip on dev is at mac.
func (n *NS) AddNeigh(t testing.TB, dev string, ip netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	n.Run(t, "ip", "neigh", "replace", ip.String(), "lladdr", mac.String(), "dev", dev, "nud", "permanent")
}

// Do runs fn on an OS thread that has entered the namespace, so sockets
// fn opens live there (they stay there after Do returns). The thread
// goes back to its own namespace afterwards. fn must change nothing else
// of the thread (no unshare, no other setns).
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread goes back to its namespace after fn and is
		// unlocked: ending it instead (leaving it locked) would SIGKILL
		// every process started from it earlier, whose Pdeathsig
		// (proc.Start) fires when the forking thread ends. Only when the
		// way back fails is the thread left locked, so the runtime ends
		// it and no other goroutine runs in the wrong namespace.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: own namespace: %w", n.Path, err)
			return
		}
		defer home.Close()
		f, err := os.Open(n.Path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Path, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// End is one end of a veth link.
type End struct {
	NS   *NS
	Dev  string           // interface name inside NS
	MAC  net.HardwareAddr // set on the interface
	Addr netip.Prefix     // address and prefix length
}

// Veth creates a veth pair between a and b (each end created directly in
// its namespace, so names never clash in the host), sets the MACs and
// addresses, adds a permanent neighbour entry for the peer on each side
// (no ARP needed, and XDP's FIB lookups find a neighbour at once), sets
// rp_filter to 0 on both ends, and brings both up. Deleting a namespace
// deletes the pair.
func Veth(t testing.TB, a, b End) {
	t.Helper()
	mustRun(t, "ip", "link", "add", a.Dev, "netns", a.NS.Name, "address", a.MAC.String(),
		"type", "veth", "peer", "name", b.Dev, "netns", b.NS.Name, "address", b.MAC.String())
	for _, e := range []struct{ me, peer End }{{a, b}, {b, a}} {
		e.me.NS.Sysctl(t, "net.ipv4.conf."+e.me.Dev+".rp_filter", "0")
		e.me.NS.Run(t, "ip", "addr", "add", e.me.Addr.String(), "dev", e.me.Dev)
		e.me.NS.Run(t, "ip", "link", "set", e.me.Dev, "up")
		e.me.NS.AddNeigh(t, e.me.Dev, e.peer.Addr.Addr(), e.peer.MAC)
	}
}

// MAC parses a MAC address, panicking on a bad one (for constants).
func MAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func mustRun(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, code, err := proc.Run(ctx, argv...)
	if err != nil || code != 0 {
		t.Fatalf("%s: exit %d %v: %s", strings.Join(argv, " "), code, err, out)
	}
	return string(out)
}
