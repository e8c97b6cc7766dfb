package bench

// Helpers of BenchmarkTraffic (traffic_test.go): the machine's identity,
// threaded NAPI and CPU pinning on the namespace topology, CPU accounting
// from /proc, and the three edge systems (sipedge with and without the
// fast path, Kamailio) started inside the edge namespace.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/kamailio"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/tests/proc"
)

// ---- the machine ----

// machine names what the benchmark ran on.
type machine struct {
	CPU      string // model name, family/model/stepping, MHz
	CPUs     int
	Kernel   string
	Commit   string // short hash, "+dirty" when the tree has changes
	XDPObj   string // sha256 prefix of the embedded XDP object the agent was built with
	Kamailio string
	Go       string
}

func (m machine) String() string {
	return fmt.Sprintf("%s, %d vCPUs; kernel %s; commit %s (XDP object %s); %s; %s",
		m.CPU, m.CPUs, m.Kernel, m.Commit, m.XDPObj, m.Kamailio, m.Go)
}

func readMachine(root, kamailioBin string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		f := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			k = strings.TrimSpace(k)
			if ok && f[k] == "" {
				f[k] = strings.TrimSpace(v)
			}
		}
		m.CPU = fmt.Sprintf("%s (family %s model %s stepping %s, %s MHz)", f["model name"], f["cpu family"], f["model"], f["stepping"], strings.TrimSuffix(f["cpu MHz"], ".000"))
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	git := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(out))
	}
	m.Commit = git("rev-parse", "--short", "HEAD")
	if st := git("status", "--porcelain", "--untracked-files=no"); st != "" && st != "?" {
		m.Commit += "+dirty"
	}
	m.XDPObj = "?"
	if b, err := os.ReadFile(filepath.Join(root, "userspace/dataplane/xdpsip_bpfel.o")); err == nil {
		sum := sha256.Sum256(b)
		m.XDPObj = "sha256:" + hex.EncodeToString(sum[:6])
	}
	m.Kamailio = "kamailio ?"
	if out, err := exec.Command(kamailioBin, "-v").Output(); err == nil {
		first, _, _ := strings.Cut(string(out), "\n")
		m.Kamailio = strings.TrimSpace(strings.TrimPrefix(first, "version:"))
	}
	return m
}

// ---- CPU placement ----

// pinProcess sets the affinity of every thread of this process (new
// threads inherit it from the thread that creates them) and restores the
// previous mask in cleanup.
func pinProcess(tb testing.TB, cpus []int) {
	tb.Helper()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		tb.Fatal(err)
	}
	set := cpuSet(cpus...)
	apply := func(s *unix.CPUSet) {
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				_ = unix.SchedSetaffinity(tid, s)
			}
		}
	}
	apply(&set)
	tb.Cleanup(func() { apply(&old) })
}

func cpuSet(cpus ...int) unix.CPUSet {
	var s unix.CPUSet
	for _, c := range cpus {
		s.Set(c)
	}
	return s
}

// pinThread moves one thread (a NAPI kthread) to cpus.
func pinThread(pid int, cpus ...int) error {
	s := cpuSet(cpus...)
	return unix.SchedSetaffinity(pid, &s)
}

// setFIFO gives a thread SCHED_FIFO priority prio (chrt: x/sys has no
// sched_setscheduler wrapper).
func setFIFO(pid, prio int) error {
	out, err := exec.Command("chrt", "-f", "-p", strconv.Itoa(prio), strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chrt -f -p %d %d: %v: %s", prio, pid, err, out)
	}
	return nil
}

// ---- NAPI threads ----

// setThreadedNAPI turns on threaded NAPI for dev in ns: the device's
// receive processing then runs in a kernel thread "napi/DEV-ID" (which can
// be pinned and accounted) instead of softirq context. The device must
// already run NAPI (GRO on or an XDP program attached). Only sysfs has the
// switch for the whole device, and /sys shows the namespace of whoever
// mounted it: ip netns exec remounts it for the command.
func setThreadedNAPI(tb testing.TB, ns *netns.NS, dev string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, code, err := proc.Run(ctx, "ip", "netns", "exec", ns.Name, "sh", "-c", "echo 1 > /sys/class/net/"+dev+"/threaded")
	if err != nil || code != 0 {
		tb.Fatalf("threaded NAPI on %s %s: exit %d %v: %s", ns.Name, dev, code, err, out)
	}
}

// Generic netlink "netdev" family (include/uapi/linux/netdev.h).
const (
	netdevCmdNapiGet   = 11
	netdevANapiIfindex = 1
	netdevANapiID      = 2
	netdevANapiPID     = 4
)

// napiThreads returns the pids of the NAPI kernel threads of dev in ns,
// from the netdev netlink family (napi-get: ifindex, id, pid), and checks
// each against its name, napi/DEV-ID.
func napiThreads(ns *netns.NS, dev string) ([]int, error) {
	var pids []int
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		idx := uint32(l.Attrs().Index)
		fam, err := netlink.GenlFamilyGet("netdev")
		if err != nil {
			return fmt.Errorf("genl family netdev: %w", err)
		}
		msgs, err := genlDump(fam.ID, netdevCmdNapiGet)
		if err != nil {
			return fmt.Errorf("netdev napi-get: %w", err)
		}
		var seen []string
		for _, m := range msgs {
			attrs, err := nl.ParseRouteAttr(m[4:]) // after struct genlmsghdr
			if err != nil {
				return err
			}
			var ifi, id, pid uint32
			for _, a := range attrs {
				if len(a.Value) < 4 {
					continue
				}
				v := nl.NativeEndian().Uint32(a.Value[:4])
				switch a.Attr.Type {
				case netdevANapiIfindex:
					ifi = v
				case netdevANapiID:
					id = v
				case netdevANapiPID:
					pid = v
				}
			}
			seen = append(seen, fmt.Sprintf("ifindex %d napi %d pid %d", ifi, id, pid))
			if ifi != idx || pid == 0 {
				continue
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if want := fmt.Sprintf("napi/%s-%d", dev, id); strings.TrimSpace(string(comm)) != want {
				return fmt.Errorf("napi %d of %s: thread %d is %q, want %q", id, dev, pid, bytes.TrimSpace(comm), want)
			}
			pids = append(pids, int(pid))
		}
		if len(pids) == 0 {
			return fmt.Errorf("%s (ifindex %d) has no NAPI thread (threaded NAPI off, or no NAPI); napi-get: %v", dev, idx, seen)
		}
		return nil
	})
	return pids, err
}

// genlDump runs a generic netlink dump of cmd in family and returns each
// message's payload (genlmsghdr and attributes). vishvananda/netlink's
// request loop stops at the first message without NLM_F_MULTI, which the
// netdev family's dump replies do not carry, so this reads until
// NLMSG_DONE itself. The socket opens in the calling thread's namespace.
func genlDump(family uint16, cmd uint8) ([][]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	const seq = 1
	req := make([]byte, unix.NLMSG_HDRLEN+4)
	hdr := (*unix.NlMsghdr)(unsafe.Pointer(&req[0]))
	hdr.Len = uint32(len(req))
	hdr.Type = family
	hdr.Flags = unix.NLM_F_REQUEST | unix.NLM_F_DUMP
	hdr.Seq = seq
	req[unix.NLMSG_HDRLEN] = cmd // genlmsghdr: cmd, version 1, reserved
	req[unix.NLMSG_HDRLEN+1] = 1
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out [][]byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(nl.NativeEndian().Uint32(m.Data[:4])); e != 0 {
						return nil, syscall.Errno(-e)
					}
				}
				return out, nil
			}
			out = append(out, append([]byte(nil), m.Data...))
		}
	}
}

// ---- CPU accounting ----

// clockTick is USER_HZ, the unit of /proc/PID/stat and /proc/stat times
// (100 on every Linux architecture the project builds for).
const clockTick = 10 * time.Millisecond

// taskTicks is utime+stime of a process (all its threads, live and
// exited) from /proc/PID/stat, in clock ticks.
func taskTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold blanks and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// Fields 14 and 15 of stat(5); f[0] is field 3.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return ut + st, nil
}

// sumTicks sums taskTicks over pids; a pid that is gone counts 0.
func sumTicks(pids []int) uint64 {
	var n uint64
	for _, p := range pids {
		t, _ := taskTicks(p)
		n += t
	}
	return n
}

// descendants returns pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuTimes is one CPU's line of /proc/stat, in clock ticks.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

func (c cpuTimes) busy() uint64  { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ }
func (c cpuTimes) total() uint64 { return c.busy() + c.Idle + c.IOWait + c.Steal }

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.User - o.User, c.Nice - o.Nice, c.System - o.System, c.Idle - o.Idle,
		c.IOWait - o.IOWait, c.IRQ - o.IRQ, c.SoftIRQ - o.SoftIRQ, c.Steal - o.Steal}
}

// readCPUTimes reads the per-CPU lines of /proc/stat, indexed by CPU.
func readCPUTimes() []cpuTimes {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []cpuTimes
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 9 || !strings.HasPrefix(fs[0], "cpu") || fs[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(fs[0][3:])
		if err != nil {
			continue
		}
		v := make([]uint64, 8)
		for i := range v {
			v[i], _ = strconv.ParseUint(fs[i+1], 10, 64)
		}
		for len(out) <= n {
			out = append(out, cpuTimes{})
		}
		out[n] = cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
	}
	return out
}

// snmpUDP reads the Udp: counters of ns (/proc/net/snmp shows the reading
// task's namespace; nsenter puts cat there).
func snmpUDP(ns *netns.NS) map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _, err := proc.Run(ctx, append(ns.Exec(), "cat", "/proc/net/snmp")...)
	m := map[string]uint64{}
	if err != nil {
		return m
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				m[names[i]], _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	return m
}

// ---- the systems under test ----

// spawner starts child processes from one OS thread that lives until the
// benchmark's cleanup has stopped them. proc.Start gives children a
// parent-death signal (SIGKILL), which Linux sends when the *thread* that
// forked them exits, and threads do exit here: tests/netns NS.Do throws
// away the thread it moved into a namespace. A proxy forked from a thread
// the runtime later hands to NS.Do would be killed mid-run.
type spawner struct{ reqs chan func() }

func newSpawner(tb testing.TB) *spawner {
	s := &spawner{reqs: make(chan func())}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends after the last child
		for f := range s.reqs {
			f()
		}
	}()
	// Registered before any child's cleanup, so it runs after them.
	tb.Cleanup(func() { close(s.reqs) })
	return s
}

// do runs f on the spawner's thread and waits for it (also when f ends
// the goroutine, as t.Fatal does).
func (s *spawner) do(f func()) {
	done := make(chan struct{})
	s.reqs <- func() {
		defer close(done)
		f()
	}
	<-done
}

// edgeSystem is one proxy running in the edge namespace.
type edgeSystem struct {
	Name  string
	Short string
	// Pids are the processes whose CPU time is the proxy's user-space cost.
	Pids []int
	// Agent is set for sipedge (RPC).
	Agent  *agentHandle
	Stop   func()
	Detail string
}

// agentHandle is a sipedge started by the benchmark.
type agentHandle struct {
	bins   agent.Bins
	socket string
	p      *proc.Process
}

func (a *agentHandle) ctl(ctx context.Context, args ...string) (json.RawMessage, error) {
	return agent.Ctl(ctx, a.bins, a.socket, args...)
}

// fastPathCounters are the parts of fastpath.stats the benchmark reads.
type fastPathCounters struct {
	Attached  bool   `json:"attached"`
	Mode      string `json:"mode"`
	Forwarded uint64 `json:"forwarded"`
	Passed    uint64 `json:"passed"`
	Dropped   uint64 `json:"dropped"`
	// Events counts the ring-buffer events the agent drained, by kind
	// ("request INVITE", ...).
	Events map[string]uint64 `json:"events"`
}

func (a *agentHandle) fastPath() (fastPathCounters, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var c fastPathCounters
	raw, err := a.ctl(ctx, "fastpath.stats")
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(raw, &c)
}

func (a *agentHandle) slowForwarded() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := a.ctl(ctx, "sipproxy.stats")
	if err != nil {
		return 0, err
	}
	var st struct {
		Forwarded uint64 `json:"forwarded"`
	}
	return st.Forwarded, json.Unmarshal(raw, &st)
}

// startSipedge runs the agent in the edge namespace on edgeCPU, with the
// fast path attached natively to ifaces (xdp) or off. The agent pins its
// maps under /sys/fs/bpf/sipedge, one folder per host: it runs in a mount
// namespace of its own with a fresh bpffs there, so a test or an operator
// using the host's folder at the same time is not disturbed (and the pins
// vanish with the namespace).
func startSipedge(tb testing.TB, sp *spawner, bins agent.Bins, edge *netns.NS, edgeCPU int, listen netip.AddrPort, backends []netip.AddrPort, ifaces []string, xdp bool) *edgeSystem {
	tb.Helper()
	cfg := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: listen}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 0}},
		LogLevel:  "warn",
	}
	for _, b := range backends {
		cfg.Dests = append(cfg.Dests, agent.Dest{Set: 1, URI: "sip:" + b.String()})
	}
	dir := tb.TempDir()
	sockDir, err := os.MkdirTemp("", "sipedge-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "ctl.sock")
	yaml := cfg.YAML(socket, "dispatcher.list")
	if strings.Contains(yaml, "\nxdp:") {
		tb.Fatalf("agent.Config.YAML wrote an xdp: section of its own:\n%s", yaml)
	}
	if xdp {
		yaml += "xdp:\n  interface: [" + strings.Join(ifaces, ", ") + "]\n  mode: native\n"
	} else {
		yaml += "xdp:\n  mode: off\n"
	}
	cfgPath := filepath.Join(dir, "sipedge.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dispatcher.list"), []byte(cfg.List()), 0o644); err != nil {
		tb.Fatal(err)
	}
	prefix := append(edge.Exec(),
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t bpf bpf /sys/fs/bpf && exec "$@"`, "sh",
		"taskset", "-c", strconv.Itoa(edgeCPU))
	name := "sipedge-slow"
	if xdp {
		name = "sipedge-fast"
	}
	var p *proc.Process
	sp.do(func() {
		p = proc.Start(tb, name, append(prefix, bins.Sipedge, "-c", cfgPath),
			proc.Options{Dir: dir, MaxLog: 256 << 10, StopGrace: 10 * time.Second})
	})
	if p == nil {
		tb.FailNow()
	}
	a := &agentHandle{bins: bins, socket: socket, p: p}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fail := func(format string, args ...any) {
		tb.Helper()
		p.Stop()
		p.LogOutput()
		tb.Fatalf("%s: "+format+"\n%s", append([]any{name}, append(args, yaml)...)...)
	}
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := a.ctl(cctx, "core.version")
		ccancel()
		if err == nil {
			break
		}
		if p.Exited() || ctx.Err() != nil {
			fail("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.WaitUDP(ctx, listen); err != nil {
		fail("%v", err)
	}
	if xdp {
		for {
			st, err := a.fastPath()
			if err == nil && st.Attached {
				if st.Mode != "native" {
					fail("fast path attached in mode %q, want native", st.Mode)
				}
				break
			}
			if p.Exited() || ctx.Err() != nil {
				fail("fast path not attached: %+v %v", st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	s := &edgeSystem{Name: "sipedge slow path only (xdp off)", Short: "slow", Pids: []int{p.Pid()}, Agent: a,
		Detail: fmt.Sprintf("agent on CPU %d (GOMAXPROCS 1 from its affinity)", edgeCPU)}
	if xdp {
		s.Name, s.Short = "sipedge fast path (XDP native)", "fast"
	}
	s.Stop = func() {
		if code := p.Stop(); code != 0 {
			tb.Errorf("%s exited with status %d", name, code)
			p.LogOutput()
		}
	}
	return s
}

// kamailioRoutes is the stateless dispatcher the comparison runs: the
// same Max-Forwards check and ds_select_dst(set 1, alg 0 = Call-ID hash)
// + forward() as the oracle test, one rule.
const kamailioRoutes = `request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (!ds_select_dst("1", "0")) {
		sl_send_reply("503", "Service Unavailable");
		exit;
	}
	forward();
	exit;
}
`

// startKamailio runs Kamailio (children UDP workers) in the edge
// namespace on edgeCPU. tests/kamailio renders the config; it starts
// Kamailio in the caller's namespace, so the start itself is done here
// with the namespace and taskset prefix, the way kamailio.Start does it.
func startKamailio(tb testing.TB, sp *spawner, bin string, edge *netns.NS, edgeCPU, children int, listen netip.AddrPort, backends []netip.AddrPort) *edgeSystem {
	tb.Helper()
	var list strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&list, "1 sip:%s 0 0\n", b)
	}
	cfg := kamailio.Config{
		Listen:         []netip.AddrPort{listen},
		Modules:        []string{"kex", "corex", "sl", "maxfwd", "pv", "dispatcher"},
		DispatcherList: list.String(),
		Routes:         kamailioRoutes,
		Children:       children,
		Debug:          "0",
	}
	dir := tb.TempDir()
	k := &kamailio.Kamailio{Config: cfg, Dir: dir, CfgPath: filepath.Join(dir, "kamailio.cfg"),
		ListPath: filepath.Join(dir, "dispatcher.list"), RPCSocket: filepath.Join(dir, "rpc.sock")}
	run := filepath.Join(dir, "run")
	text := cfg.CfgText(dir)
	for _, err := range []error{os.Mkdir(run, 0o755), os.WriteFile(k.CfgPath, []byte(text), 0o644), os.WriteFile(k.ListPath, []byte(cfg.DispatcherList), 0o644)} {
		if err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, code, err := proc.Run(ctx, bin, "-c", "-f", k.CfgPath); err != nil || code != 0 {
		tb.Fatalf("kamailio -c: exit %d %v:\n%s\n%s", code, err, out, text)
	}
	argv := append(edge.Exec(), "taskset", "-c", strconv.Itoa(edgeCPU),
		bin, "-DD", "-E", "-Y", run, "-m", "64", "-M", "8", "-f", k.CfgPath)
	sp.do(func() { k.Process = proc.Start(tb, "kamailio", argv, proc.Options{Dir: dir, MaxLog: 128 << 10}) })
	if k.Process == nil {
		tb.FailNow()
	}
	fail := func(format string, args ...any) {
		tb.Helper()
		k.Process.Stop()
		k.LogOutput()
		tb.Fatalf("kamailio: "+format+"\n%s", append(args, text)...)
	}
	if err := k.WaitUDP(ctx, listen); err != nil {
		fail("%v", err)
	}
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		_, err := k.RPC(cctx, "core.version")
		ccancel()
		if err == nil {
			break
		}
		if k.Exited() || ctx.Err() != nil {
			fail("jsonrpcs not answering: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The workers are forked before the listener is bound and RPC answers.
	pids := descendants(k.Pid())
	return &edgeSystem{
		Name:   fmt.Sprintf("Kamailio (%d UDP children)", children),
		Short:  "kamailio",
		Pids:   pids,
		Detail: fmt.Sprintf("%d processes on CPU %d", len(pids), edgeCPU),
		Stop: func() {
			k.Process.Stop()
		},
	}
}
