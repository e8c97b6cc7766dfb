package tests

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// TestFreshHostBPFFSError: where the agent cannot mount a BPF filesystem at
// the pin root, and the config requires the fast path (mode native), it
// exits 1 with one line that names the path and the command that fixes it.
// Each case runs the agent in a mount namespace of its own (netns.Mounts),
// so the host is never touched: another filesystem mounted at /sys/fs/bpf
// (the agent must not hide it), no /sys/fs/bpf on a read-only /sys/fs, and
// an agent without CAP_SYS_ADMIN (as in a container), which cannot mount.
// (TestNetnsXDPCalls is the case where mounting works: the fast path comes
// up on a fresh /sys/fs/bpf and forwards.)
func TestFreshHostBPFFSError(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommand(t, "setpriv", exec.LookPath)
	cases := []struct {
		name  string
		setup string   // netns.Mounts setup script
		exec  []string // prefix for the agent, after nsenter
		want  string   // the agent's last line
	}{
		{
			name:  "tmpfs at the pin root",
			setup: netns.FreshBPFRoot + "\nmount -t tmpfs tmpfs /sys/fs/bpf",
			want:  "sipedge: fast path: host: /sys/fs/bpf is a tmpfs mount, not a BPF filesystem; fix: umount /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf",
		},
		{
			name:  "no pin root, read-only parent",
			setup: netns.FreshBPFRoot + "\nmount -t tmpfs -o ro tmpfs /sys/fs",
			want:  "sipedge: fast path: host: /sys/fs/bpf does not exist and cannot be created (read-only file system); fix: mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf",
		},
		{
			name:  "no CAP_SYS_ADMIN",
			setup: netns.FreshBPFRoot,
			exec:  []string{"setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"},
			want:  "sipedge: fast path: host: /sys/fs/bpf is not a BPF filesystem and mounting one failed (operation not permitted); fix: as root: mount -t bpf bpf /sys/fs/bpf",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mnt := netns.NewMounts(t, tc.setup)
			before := mnt.MountedAt(t, netns.BPFRoot)
			listen := netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo))
			cfg := agent.Config{
				Listeners: []agent.Listener{{Name: "edge", Address: listen}},
				Rules:     []agent.Rule{{Listener: "edge", Set: 1}},
				Dests:     []agent.Dest{{Set: 1, URI: "sip:127.0.0.1:5080"}},
				XDP:       &agent.XDP{Interfaces: []string{"lo"}, Mode: "native"},
			}
			dir := t.TempDir()
			sockDir, err := os.MkdirTemp("", "sipedge-ctl-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(sockDir) })
			path, err := cfg.Write(dir, filepath.Join(sockDir, "sipedge.sock"))
			if err != nil {
				t.Fatal(err)
			}
			p := proc.Start(t, "sipedge", append(tc.exec, bins.Sipedge, "-c", path),
				proc.Options{Exec: mnt.Exec(nil), Dir: dir})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code, err := p.Wait(ctx)
			if err != nil {
				p.LogOutput()
				t.Fatal(err)
			}
			out := strings.TrimRight(p.Output(), "\n")
			last := out[strings.LastIndexByte(out, '\n')+1:]
			if code != 1 || last != tc.want {
				p.LogOutput()
				t.Errorf("exit %d, last line\n%s\nwant exit 1 and\n%s", code, last, tc.want)
			}
			if n := strings.Count(out, "\nsipedge: "); n != 1 {
				t.Errorf("%d lines of the agent start with \"sipedge: \", want the one", n)
			}
			if got := mnt.MountedAt(t, netns.BPFRoot); strings.Join(got, ",") != strings.Join(before, ",") {
				t.Errorf("mounts at %s: %v before the agent, %v after: it must not mount when it cannot do it right", netns.BPFRoot, before, got)
			}
		})
	}
}
