package netns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// BPFRoot is the pin root of the agent's default pin folder
// (dataplane.DefaultPinDir is BPFRoot/sipedge).
const BPFRoot = "/sys/fs/bpf"

// FreshBPFRoot is a Mounts setup script that leaves BPFRoot as a freshly
// booted host has it: nothing mounted there (whatever the host mounted is
// unmounted, in the private namespace only), so the agent must mount its
// BPF filesystem itself.
const FreshBPFRoot = `while mountpoint -q ` + BPFRoot + `; do umount -l ` + BPFRoot + ` || exit 1; done`

// Mounts is a mount namespace of the test's own: a private copy of the
// host's (propagation private: nothing mounted in it reaches the host, nor
// the other way round), held open by a sleeping process until t.Cleanup.
// Pins in a BPF filesystem mounted in it are seen only through it, so tests
// that pin under /sys/fs/bpf never meet each other or the host's pins.
type Mounts struct {
	// Path is the namespace file, /proc/PID/ns/mnt of the holding process.
	Path   string
	holder *proc.Process
}

// NewMounts creates the namespace and runs setup (sh -c, as root) in it
// before anything else may enter it; a failing setup fails the test.
func NewMounts(t testing.TB, setup string) *Mounts {
	t.Helper()
	testutil.NeedRoot(t)
	for _, c := range []string{"unshare", "nsenter", "mount", "mountpoint", "umount"} {
		testutil.NeedCommand(t, c, exec.LookPath)
	}
	script := setup + "\necho mounts-ready\nexec sleep 86400"
	p := proc.Start(t, "mountns", []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", script},
		proc.Options{StopSignal: 9})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), "mounts-ready") {
		if p.Exited() || time.Now().After(deadline) {
			p.Stop()
			p.LogOutput()
			t.Fatalf("mount namespace setup did not finish (exit %d): %s", p.ExitCode(), setup)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Mounts{Path: fmt.Sprintf("/proc/%d/ns/mnt", p.Pid()), holder: p}
}

// Exec is the prefix that runs a command in the mount namespace and, when
// net is not nil, in net's network namespace.
func (m *Mounts) Exec(net *NS) []string {
	argv := []string{"nsenter", "--mount=" + m.Path}
	if net != nil {
		argv = append(argv, "--net="+net.Path)
	}
	return append(argv, "--")
}

// Run runs argv in the namespaces (see Exec) to completion, 30 s at most,
// and fails the test unless it exits 0. It returns the output.
func (m *Mounts) Run(t testing.TB, net *NS, argv ...string) string {
	t.Helper()
	return mustRun(t, append(m.Exec(net), argv...)...)
}

// File returns path as seen from the test's own namespace: the file
// path names inside the mount namespace (through /proc/PID/root).
func (m *Mounts) File(path string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", m.holder.Pid()), path)
}

// MountedAt lists the filesystem types mounted at path in the namespace,
// bottom first ("bpf" when a BPF filesystem is mounted there).
func (m *Mounts) MountedAt(t testing.TB, path string) []string {
	t.Helper()
	return mountedAt(t, fmt.Sprintf("/proc/%d/mountinfo", m.holder.Pid()), path)
}

// HostMountedAt lists the filesystem types mounted at path in the test
// process's own mount namespace (the host's).
func HostMountedAt(t testing.TB, path string) []string {
	t.Helper()
	return mountedAt(t, "/proc/self/mountinfo", path)
}

func mountedAt(t testing.TB, mountinfo, path string) []string {
	t.Helper()
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatalf("read %s: %v", mountinfo, err)
	}
	var types []string
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || f[4] != path {
			continue
		}
		types = append(types, g[0])
	}
	return types
}
