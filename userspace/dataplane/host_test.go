package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/userspace/testutil"
)

// privateMounts moves the calling test goroutine's thread into a mount
// namespace of its own (propagation private), so that what the test
// mounts never reaches the host. The thread stays locked: it ends with
// the test's goroutine, and the namespace with it. Mounts under dir are
// detached again in t.Cleanup, before t.TempDir removes dir.
func privateMounts(t *testing.T) (dir string) {
	t.Helper()
	testutil.NeedRoot(t)
	runtime.LockOSThread() // never unlocked, see above
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare mount namespace: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	dir = t.TempDir()
	t.Cleanup(func() {
		for _, m := range mountsUnder(t, dir) {
			_ = unix.Unmount(m.point, unix.MNT_DETACH)
		}
	})
	return dir
}

type mount struct{ point, fstype string }

// mountsUnder lists the mounts at or below dir in this thread's mount
// namespace, deepest last.
func mountsUnder(t *testing.T, dir string) []mount {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		if p := f[4]; p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, mount{p, f[sep+1]})
		}
	}
	return out
}

func mountsAt(t *testing.T, path string) []string {
	var types []string
	for _, m := range mountsUnder(t, path) {
		if m.point == path {
			types = append(types, m.fstype)
		}
	}
	return types
}

// TestEnsureBPFFS: with nothing mounted at the pin root (a plain folder,
// or none at all), a BPF filesystem is mounted there, once; an existing
// one is used as it is; another filesystem at the pin root, or a root
// that cannot be created, is a one-line HostError naming the path and
// the command that fixes it, and nothing is mounted.
func TestEnsureBPFFS(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) (root string)
		wantErr []string // substrings of the error; nil: success
		want    []string // mounts at root afterwards
	}{
		{
			name:  "plain folder",
			setup: func(t *testing.T, dir string) string { return mkdir(t, dir, "bpf") },
			want:  []string{"bpf"},
		},
		{
			name:  "no folder",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "sys", "fs", "bpf") },
			want:  []string{"bpf"},
		},
		{
			name: "bpffs already mounted",
			setup: func(t *testing.T, dir string) string {
				root := mkdir(t, dir, "bpf")
				mustMount(t, "bpf", root, "bpf", 0)
				return root
			},
			want: []string{"bpf"},
		},
		{
			name: "tmpfs mounted there",
			setup: func(t *testing.T, dir string) string {
				root := mkdir(t, dir, "bpf")
				mustMount(t, "tmpfs", root, "tmpfs", 0)
				return root
			},
			wantErr: []string{"is a tmpfs mount, not a BPF filesystem", "fix: umount ROOT && mount -t bpf bpf ROOT"},
			want:    []string{"tmpfs"},
		},
		{
			name: "folder with contents",
			setup: func(t *testing.T, dir string) string {
				root := mkdir(t, dir, "run")
				if err := os.WriteFile(filepath.Join(root, "sipedge.sock"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return root
			},
			wantErr: []string{"is not a BPF filesystem and is not an empty folder to mount one on", "mount -t bpf bpf ROOT"},
		},
		{
			name: "folder cannot be created",
			setup: func(t *testing.T, dir string) string {
				ro := mkdir(t, dir, "ro")
				mustMount(t, "tmpfs", ro, "tmpfs", unix.MS_RDONLY)
				return filepath.Join(ro, "bpf")
			},
			wantErr: []string{"does not exist and cannot be created (read-only file system)", "fix: mkdir -p ROOT && mount -t bpf bpf ROOT"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := privateMounts(t)
			root := tc.setup(t, dir)
			for range 2 { // a second call changes nothing
				err := ensureBPFFS(root)
				if tc.wantErr == nil {
					if err != nil {
						t.Fatalf("ensureBPFFS(%s): %v", root, err)
					}
					continue
				}
				var he *HostError
				if !errors.As(err, &he) {
					t.Fatalf("ensureBPFFS(%s) = %v, want a *HostError", root, err)
				}
				msg := err.Error()
				if strings.ContainsAny(msg, "\r\n") {
					t.Errorf("error is not one line: %q", msg)
				}
				for _, w := range append(tc.wantErr, "host: "+root+" ") {
					if w = strings.ReplaceAll(w, "ROOT", root); !strings.Contains(msg, w) {
						t.Errorf("error %q does not contain %q", msg, w)
					}
				}
			}
			if got := mountsAt(t, root); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("mounts at %s: %v, want %v", root, got, tc.want)
			}
			if tc.wantErr == nil {
				if ok, err := isBPFFS(root); !ok || err != nil {
					t.Errorf("isBPFFS(%s) = %v, %v after ensureBPFFS", root, ok, err)
				}
			}
		})
	}
}

// TestLoadFreshPinRoot: Load with a pin folder whose root is a plain
// folder (as /sys/fs/bpf is on a freshly booted host) mounts a BPF
// filesystem there and pins the maps in it. Before host.go, Load created
// the folder on the parent filesystem and pinning failed.
func TestLoadFreshPinRoot(t *testing.T) {
	dir := privateMounts(t)
	pins := filepath.Join(mkdir(t, dir, "bpf"), "sipedge")
	dp, err := Load(Options{PinDir: pins})
	if err != nil {
		t.Fatalf("Load with a fresh pin root: %v", err)
	}
	defer dp.Close()
	if got := mountsAt(t, filepath.Dir(pins)); len(got) != 1 || got[0] != "bpf" {
		t.Errorf("mounts at %s: %v, want one bpf", filepath.Dir(pins), got)
	}
	for _, name := range pinnedMaps {
		if _, err := os.Stat(filepath.Join(pins, name)); err != nil {
			t.Errorf("pin %s: %v", name, err)
		}
	}
}

// TestPrepareHostPinDirMounted: a BPF filesystem mounted at the pin folder
// itself is used as it is; nothing is mounted over its parent, which would
// hide it.
func TestPrepareHostPinDirMounted(t *testing.T) {
	dir := privateMounts(t)
	pins := mkdir(t, dir, "bpf/sipedge")
	mustMount(t, "bpf", pins, "bpf", 0)
	if err := prepareHost(pins); err != nil {
		t.Fatal(err)
	}
	if got := mountsAt(t, filepath.Dir(pins)); len(got) != 0 {
		t.Errorf("mounts at %s: %v, want none", filepath.Dir(pins), got)
	}
}

// TestForwardingOff: an interface whose forwarding sysctl is 0, for a
// family a listener uses, gets one line with the sysctl that fixes it.
func TestForwardingOff(t *testing.T) {
	sys := t.TempDir()
	set := func(fam, ifname, v string) {
		d := filepath.Join(sys, "net", fam, "conf", ifname)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "forwarding"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set("ipv4", "eth0", "1")
	set("ipv4", "eth1", "0")
	set("ipv4", "eth1.100", "0")
	set("ipv6", "eth0", "0")
	cases := []struct {
		name   string
		v4, v6 bool
		want   []string
	}{
		{"ipv4 listeners", true, false, []string{
			"host: " + sys + "/net/ipv4/conf/eth1/forwarding is 0: the fast path cannot forward from eth1 and passes every message (PASS_FIB); fix: sysctl -w net.ipv4.conf.eth1.forwarding=1",
			"host: " + sys + "/net/ipv4/conf/eth1.100/forwarding is 0: the fast path cannot forward from eth1.100 and passes every message (PASS_FIB); fix: sysctl -w net.ipv4.conf.eth1/100.forwarding=1",
		}},
		{"ipv6 listeners", false, true, []string{
			"host: " + sys + "/net/ipv6/conf/eth0/forwarding is 0: the fast path cannot forward from eth0 and passes every message (PASS_FIB); fix: sysctl -w net.ipv6.conf.eth0.forwarding=1",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, err := range forwardingOff(sys, []string{"eth0", "eth1", "eth1.100", "missing0"}, tc.v4, tc.v6) {
				got = append(got, err.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestKernelBefore(t *testing.T) {
	cases := []struct {
		release string
		want    bool
	}{
		{"6.18.44-fc-v1272", false},
		{"5.11.0", false},
		{"5.10.0-28-amd64", true},
		{"4.19.0-26-cloud-amd64", true},
		{"5.4", true},
		{"10.1.0", false},
		{"", true},
		{"garbage", true},
	}
	for _, tc := range cases {
		t.Run(tc.release, func(t *testing.T) {
			if got := kernelBefore(tc.release, 5, 11); got != tc.want {
				t.Errorf("kernelBefore(%q, 5, 11) = %v, want %v", tc.release, got, tc.want)
			}
		})
	}
}

func mkdir(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustMount(t *testing.T, src, target, fstype string, flags uintptr) {
	t.Helper()
	if err := unix.Mount(src, target, fstype, flags, ""); err != nil {
		t.Fatalf("mount -t %s %s: %v", fstype, target, err)
	}
}
