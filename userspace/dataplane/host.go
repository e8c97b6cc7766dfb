package dataplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file prepares the host for the fast path, the one place that does:
// Load calls prepareHost before it loads anything. A freshly booted edge
// host lacks what a developer's machine often has set up by hand:
//
//   - a BPF filesystem (bpffs) at the pin root, the folder the pin folder
//     lives in (/sys/fs/bpf for DefaultPinDir). When nothing is mounted
//     there, the agent mounts one, as Cilium's agent and systemd do; the
//     mount stays after the agent exits (pins do not: the agent removes
//     its own). It never mounts over another filesystem: someone put it
//     there on purpose.
//   - room for BPF maps under RLIMIT_MEMLOCK on kernels before 5.11 (later
//     kernels charge maps to the memory cgroup: nothing to do).
//
// It does not turn on IP forwarding, which makes the host a router for
// every packet, not only SIP: forwardingOff finds the interfaces where it
// is off (bpf_fib_lookup then fails and the fast path passes every message,
// PASS_FIB), and the fast path logs one warning each, with the sysctl that
// fixes it.
//
// What it cannot fix it reports as one line (HostError) naming the path
// and the command that fixes it. BPF run-time statistics need nothing here:
// bench/ turns them on with a BPF_ENABLE_STATS file descriptor (no sysctl,
// undone when the fd closes), and nothing reads tracefs.

// HostError is what the host lacks and the command that fixes it. Its text
// is one line.
type HostError struct {
	Path    string // the path at fault
	Problem string // what is wrong, e.g. "is not a BPF filesystem"
	Err     error  // why the agent could not fix it; may be nil
	Fix     string // the command that fixes it
}

func (e *HostError) Error() string {
	msg := fmt.Sprintf("host: %s %s", e.Path, e.Problem)
	if e.Err != nil {
		msg += fmt.Sprintf(" (%v)", e.Err)
	}
	return msg + "; fix: " + e.Fix
}

func (e *HostError) Unwrap() error { return e.Err }

// prepareHost makes the host ready to load the program and, when pinDir is
// not empty, to pin its maps under pinDir.
func prepareHost(pinDir string) error {
	if err := raiseMemlock(); err != nil {
		return &HostError{Path: "RLIMIT_MEMLOCK", Problem: "is too low for BPF maps and could not be raised", Err: err,
			Fix: "run the agent as root, or with `ulimit -l unlimited` (LimitMEMLOCK=infinity in a systemd unit)"}
	}
	if pinDir == "" {
		return nil
	}
	if ok, _ := isBPFFS(pinDir); ok {
		return nil // a BPF filesystem mounted at the pin folder itself
	}
	return ensureBPFFS(filepath.Dir(filepath.Clean(pinDir)))
}

// ensureBPFFS makes root a BPF filesystem, or the folder of one: when a
// bpffs already holds root it does nothing; when nothing is mounted at root
// it creates the folder if needed and mounts a bpffs there.
func ensureBPFFS(root string) error {
	fix := "mount -t bpf bpf " + root
	onBPFFS, err := isBPFFS(root)
	switch {
	case err == nil && onBPFFS:
		return nil
	case errors.Is(err, unix.ENOENT):
		if err := os.MkdirAll(root, 0o755); err != nil {
			return &HostError{Path: root, Problem: "does not exist and cannot be created", Err: unwrapPath(err),
				Fix: "mkdir -p " + root + " && " + fix}
		}
	case err != nil:
		return &HostError{Path: root, Problem: "cannot be checked for a BPF filesystem", Err: err, Fix: fix}
	default:
		if fstype, mounted := mountedFS(root); mounted {
			return &HostError{Path: root, Problem: "is a " + fstype + " mount, not a BPF filesystem", Fix: "umount " + root + " && " + fix}
		}
		// A mount over a folder that holds something would hide it (a
		// custom pin_dir under /run/sipedge would hide the control
		// socket): only an empty folder is taken.
		if empty, err := emptyDir(root); err != nil || !empty {
			return &HostError{Path: root, Problem: "is not a BPF filesystem and is not an empty folder to mount one on", Err: err,
				Fix: "choose an xdp pin folder whose parent is a BPF filesystem or an empty folder, or " + fix}
		}
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		return &HostError{Path: root, Problem: "is not a BPF filesystem and mounting one failed", Err: err, Fix: "as root: " + fix}
	}
	if ok, err := isBPFFS(root); err != nil || !ok {
		return &HostError{Path: root, Problem: "is still not a BPF filesystem after mounting one", Err: err, Fix: fix}
	}
	return nil
}

// emptyDir reports whether dir holds nothing.
func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0 && err == nil, err
}

// raiseMemlock lifts RLIMIT_MEMLOCK on kernels before 5.11, which charge
// BPF maps to it; later kernels charge the memory cgroup and it is left
// alone. (cilium/ebpf's rlimit.RemoveMemlock decides the same by creating
// a map with the limit at zero, in an init function: every binary that
// imports this package, and the agent with XDP off, would pay that bpf()
// call at start-up.)
func raiseMemlock() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	if !kernelBefore(unix.ByteSliceToString(u.Release[:]), 5, 11) {
		return nil
	}
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	return unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf)
}

// kernelBefore reports whether the kernel release ("5.10.0-28-amd64") is
// older than major.minor; a release it cannot read counts as older, which
// only raises the limit.
func kernelBefore(release string, major, minor int) bool {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(f[0])
	mi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma < major || (ma == major && mi < minor)
}

// forwardingOff returns a HostError for each interface on which the kernel
// does not forward the given families (net.ipv4.conf.IF.forwarding,
// net.ipv6.conf.IF.forwarding under procSys, normally /proc/sys, which
// shows the reader's network namespace).
func forwardingOff(procSys string, ifaces []string, v4, v6 bool) []error {
	var errs []error
	for _, ifname := range ifaces {
		for _, fam := range []struct {
			on   bool
			name string
		}{{v4, "ipv4"}, {v6, "ipv6"}} {
			if !fam.on {
				continue
			}
			p := filepath.Join(procSys, "net", fam.name, "conf", ifname, "forwarding")
			b, err := os.ReadFile(p)
			if err != nil || strings.TrimSpace(string(b)) != "0" {
				continue // no such interface, or forwarding on: nothing to say
			}
			// sysctl(8) writes a dot in an interface name as a slash.
			key := "net." + fam.name + ".conf." + strings.ReplaceAll(ifname, ".", "/") + ".forwarding"
			errs = append(errs, &HostError{Path: p, Problem: "is 0: the fast path cannot forward from " + ifname + " and passes every message (PASS_FIB)",
				Fix: "sysctl -w " + key + "=1"})
		}
	}
	return errs
}

// isBPFFS reports whether path lies on a BPF filesystem.
func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}

// mountedFS reports whether a filesystem is mounted at path (path and its
// parent are on different devices), and its type by magic number.
func mountedFS(path string) (fstype string, mounted bool) {
	var st, parent unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &parent) != nil {
		return "", false
	}
	if st.Dev == parent.Dev {
		return "", false
	}
	var sfs unix.Statfs_t
	if unix.Statfs(path, &sfs) != nil {
		return "filesystem", true
	}
	switch uint32(sfs.Type) {
	case unix.TMPFS_MAGIC:
		return "tmpfs", true
	case unix.SYSFS_MAGIC:
		return "sysfs", true
	case unix.PROC_SUPER_MAGIC:
		return "proc", true
	}
	return fmt.Sprintf("filesystem (magic %#x)", uint32(sfs.Type)), true
}

// unwrapPath drops the *PathError around err: HostError names the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
