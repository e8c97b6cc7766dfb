package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/userspace/probe"
)

// BenchmarkProbing10k is issue 8's probing benchmark: the agent (the
// built binary) probes 10,000 destinations at a 1 s interval
// (ds_probing_mode 1: every destination), all on loopback and answered
// by one cheap responder process. Destination i is 127.1.(i/256).(i%256)
// on the responder's port: the responder has one wildcard socket and
// answers from the address each probe was sent to (IP_PKTINFO), as the
// engine accepts a reply only from the probed address.
//
// Rounds alternate, so that every figure of a round saw the same machine:
//   - floor: a bare Go process (a child of this test binary) sending the
//     same kind of OPTIONS to the same 10,000 addresses at the same rate,
//     one sendto each, 5 ms apart like the engine's steps, the replies
//     read and counted: what the sockets alone cost;
//   - for each agent build: the agent with the 10,000 destinations,
//     started fresh, measured over the window once every destination has
//     been answered; then the same agent with one destination, for the
//     RSS per destination.
//
// Reported (medians over the rounds): the agent's CPU (utime+stime from
// /proc/PID/stat) per datagram it sent (probes and retransmissions, as
// the responder counted them) and in % of one core; datagrams/s; replies
// matched, timeouts and replies ignored per second (probe.stats; ignored:
// malformed, wrong_source, unknown_branch, late); replies per probe
// started; RSS per destination; the responder's CPU per datagram; the
// floor's CPU per datagram and % of a core; agent/floor, the ratio of CPU
// per datagram within each round. Then a mass failure: the responder
// stops answering the first SIPEDGE_PROBE_FAIL destinations (default
// 1000, a tenth of them when fewer than 10,000; 0: none) and the time
// from then until the agent has published dispatcher:dst-down for every
// one of them (the time of its last such log line) is reported; with the
// 1 s interval and its 1 s timeout, about 2 s is the least it can be.
//
//	go test ./bench/ -run '^$' -bench Probing10k -benchtime 1x
//
// SIPEDGE_PROBE_DESTS (default 10000), SIPEDGE_PROBE_SETS (the
// destinations are spread over that many sets, default 1),
// SIPEDGE_BENCH_SECONDS (window, default 10), SIPEDGE_PROBE_ROUNDS
// (default 3). SIPEDGE_PROBE_BINS=DIR1,DIR2 runs those builds
// (DIR/sipedge, DIR/sipedgectl) instead of this tree, alternating within
// each round (A/B of a change). SIPEDGE_PROBE_PERF=FILE records the agent
// with perf over each window (the last one is kept).
// SIPEDGE_PROBE_FLOOR=mmsg,mmsg-tick measures those batched floors too in
// each round, after the sendto one (see runFloor): what the sockets cost
// with sendmmsg/recvmmsg.
func BenchmarkProbing10k(b *testing.B) {
	n := envInt("SIPEDGE_PROBE_DESTS", 10000)
	sets := envInt("SIPEDGE_PROBE_SETS", 1)
	window := time.Duration(envInt("SIPEDGE_BENCH_SECONDS", 10)) * time.Second
	rounds := envInt("SIPEDGE_PROBE_ROUNDS", 3)
	if n > 65536 {
		b.Fatalf("SIPEDGE_PROBE_DESTS %d: at most 65536 (127.1.0.0/16)", n)
	}
	builds := probeBins(b)
	resp := startChild(b, "responder", nil)
	port := uint16(resp.first)
	m := readMachine(moduleRoot(b), "true")
	m.Kamailio = "no Kamailio"
	b.Logf("machine: %s", m)
	b.Logf("%d destinations in %d sets, interval 1 s, window %v, %d rounds, responder port %d", n, sets, window, rounds, port)

	fail := min(1000, n/10) // a tenth of the destinations, at most 1000
	if v, ok := os.LookupEnv("SIPEDGE_PROBE_FAIL"); ok {
		var err error
		if fail, err = strconv.Atoi(v); err != nil || fail < 0 {
			b.Fatalf("SIPEDGE_PROBE_FAIL %q: want a count of destinations", v)
		}
	}
	if fail > n {
		b.Fatalf("SIPEDGE_PROBE_FAIL %d: more than the %d destinations", fail, n)
	}
	type figures struct {
		cpuPerProbe, core, rate, matched, timeouts, ignored, answered, respPerProbe, ratio, rssPerDest, settle, settleCPU, failDown []float64
	}
	per := make([]figures, len(builds))
	var floorCPU, floorCore, floorRate []float64
	variants := floorVariants(b)
	variantCPU, variantCore := map[string][]float64{}, map[string][]float64{}
	b.ResetTimer()
	for r := range rounds {
		// The floor.
		fl := measureFloor(b, "", n, port, window, resp)
		floorCPU = append(floorCPU, fl.cpuPerProbe)
		floorCore = append(floorCore, fl.core)
		floorRate = append(floorRate, fl.rate)
		b.Logf("round %d floor: %s", r+1, fl)
		for _, v := range variants {
			fl := measureFloor(b, v, n, port, window, resp)
			variantCPU[v] = append(variantCPU[v], fl.cpuPerProbe)
			variantCore[v] = append(variantCore[v], fl.core)
			b.Logf("round %d floor %s: %s", r+1, v, fl)
		}

		for i, bins := range builds {
			m := measureAgent(b, bins, n, sets, port, window, resp, fail)
			small := agentRSS(b, bins, sets, port)
			f := &per[i]
			cpu := m.cpu.Seconds() / float64(m.probes)
			f.cpuPerProbe = append(f.cpuPerProbe, cpu*1e6)
			f.core = append(f.core, 100*m.cpu.Seconds()/window.Seconds())
			f.rate = append(f.rate, float64(m.probes)/window.Seconds())
			f.matched = append(f.matched, float64(m.d.Replies)/window.Seconds())
			f.timeouts = append(f.timeouts, float64(m.d.Timeouts)/window.Seconds())
			f.ignored = append(f.ignored, float64(m.d.Malformed+m.d.WrongSource+m.d.UnknownBranch+m.d.Late)/window.Seconds())
			f.answered = append(f.answered, float64(m.d.Replies)/float64(max(m.d.Probes, 1)))
			f.respPerProbe = append(f.respPerProbe, m.respCPU.Seconds()/float64(m.probes)*1e6)
			f.ratio = append(f.ratio, cpu*1e6/floorCPU[len(floorCPU)-1])
			f.rssPerDest = append(f.rssPerDest, float64(m.rssKB-small)*1024/float64(n-1))
			f.settle = append(f.settle, m.settle.Seconds())
			f.settleCPU = append(f.settleCPU, m.settleCPU.Seconds())
			f.failDown = append(f.failDown, m.failDown.Seconds())
			b.Logf("round %d agent %s: %.0f datagrams/s (%d probes started, %d retransmissions), %.0f replies matched/s, %.0f timeouts/s, %.0f replies ignored/s, %d results lost; %.2f µs CPU per datagram (%.1f %% of a core, %.2f× the floor); RSS %d kB (%d kB with 1 destination: %.0f B per destination); responder %.2f µs per probe; start until all AP: %v, %v CPU, %d results lost meanwhile; %d silenced: all dst-down after %v (first after %v)",
				r+1, bins.Sipedge, f.rate[r], m.d.Probes, m.d.Retransmits, f.matched[r], f.timeouts[r], f.ignored[r], m.d.ResultsLost, f.cpuPerProbe[r], f.core[r], f.ratio[r], m.rssKB, small, f.rssPerDest[r], f.respPerProbe[r], m.settle.Round(100*time.Millisecond), m.settleCPU, m.settleLost, fail, m.failDown.Round(10*time.Millisecond), m.failFirst.Round(10*time.Millisecond))
		}
	}
	b.StopTimer()
	for i, bins := range builds {
		f := per[i]
		suffix := ""
		if len(builds) > 1 {
			suffix = "-" + string(rune('A'+i))
			b.Logf("%s is %s", suffix[1:], bins.Sipedge)
		}
		b.ReportMetric(medianOf(f.cpuPerProbe), "agent-µs/probe"+suffix)
		b.ReportMetric(medianOf(f.core), "agent-%core"+suffix)
		b.ReportMetric(medianOf(f.rate), "probes/s"+suffix)
		b.ReportMetric(medianOf(f.matched), "matched/s"+suffix)
		b.ReportMetric(medianOf(f.timeouts), "timeouts/s"+suffix)
		b.ReportMetric(medianOf(f.ignored), "ignored/s"+suffix)
		b.ReportMetric(medianOf(f.answered), "answered/probe"+suffix)
		b.ReportMetric(medianOf(f.ratio), "agent/floor"+suffix)
		b.ReportMetric(medianOf(f.rssPerDest), "RSS-B/dest"+suffix)
		b.ReportMetric(medianOf(f.respPerProbe), "responder-µs/probe"+suffix)
		b.ReportMetric(medianOf(f.settle), "s-to-all-AP"+suffix)
		b.ReportMetric(medianOf(f.settleCPU), "CPU-s-to-all-AP"+suffix)
		if fail > 0 {
			b.ReportMetric(medianOf(f.failDown), "s-to-all-down"+suffix)
		}
	}
	b.ReportMetric(medianOf(floorCPU), "floor-µs/probe")
	b.ReportMetric(medianOf(floorCore), "floor-%core")
	b.ReportMetric(medianOf(floorRate), "floor-probes/s")
	for _, v := range variants {
		b.ReportMetric(medianOf(variantCPU[v]), "floor-"+v+"-µs/probe")
		b.ReportMetric(medianOf(variantCore[v]), "floor-"+v+"-%core")
	}
}

// floorVariants are the floors SIPEDGE_PROBE_FLOOR asks for besides the
// sendto one (which every round measures, the agent/floor ratio's base).
func floorVariants(b *testing.B) []string {
	b.Helper()
	var out []string
	for v := range strings.SplitSeq(os.Getenv("SIPEDGE_PROBE_FLOOR"), ",") {
		switch v = strings.TrimSpace(v); v {
		case "", "sendto":
		case "mmsg", "mmsg-tick":
			out = append(out, v)
		default:
			b.Fatalf("SIPEDGE_PROBE_FLOOR %q: want mmsg or mmsg-tick (comma-separated)", v)
		}
	}
	return out
}

// floorRun is what one window of one floor measured.
type floorRun struct {
	cpuPerProbe, core, rate float64 // µs per datagram sent, % of a core, datagrams/s
	replies                 float64 // replies/s
	sysShare                float64 // the share of the CPU spent in the kernel, %
	perRead                 float64 // replies per read system call
	respPerProbe            float64 // the responder's µs per datagram
}

func (f floorRun) String() string {
	return fmt.Sprintf("%.0f sent/s, %.0f replies/s (%.1f per read), %.2f µs CPU per probe (%.1f %% of a core, %.0f %% of it in the kernel); responder %.2f µs per probe",
		f.rate, f.replies, f.perRead, f.cpuPerProbe, f.core, f.sysShare, f.respPerProbe)
}

// measureFloor runs the floor child in the given mode ("": sendto) for
// one window.
func measureFloor(b *testing.B, mode string, n int, port uint16, window time.Duration, resp *child) floorRun {
	b.Helper()
	fl := startChild(b, "floor", []string{"SIPEDGE_FLOOR_DESTS=" + strconv.Itoa(n), "SIPEDGE_FLOOR_PORT=" + strconv.Itoa(int(port)), "SIPEDGE_FLOOR_MODE=" + mode})
	defer fl.stop()
	time.Sleep(2 * time.Second)
	f0, r0 := fl.sample(b), resp.sample(b)
	time.Sleep(window)
	f1, r1 := fl.sample(b), resp.sample(b)
	sent, cpu := float64(f1.sent-f0.sent), ticksDur(f1.ticks-f0.ticks).Seconds()
	recv := float64(f1.recv - f0.recv)
	return floorRun{
		cpuPerProbe:  cpu / sent * 1e6,
		core:         100 * cpu / window.Seconds(),
		rate:         sent / window.Seconds(),
		replies:      recv / window.Seconds(),
		sysShare:     100 * float64(f1.sysTicks-f0.sysTicks) / float64(max(f1.ticks-f0.ticks, 1)),
		perRead:      recv / float64(max(f1.reads-f0.reads, 1)),
		respPerProbe: ticksDur(r1.ticks-r0.ticks).Seconds() / float64(r1.recv-r0.recv) * 1e6,
	}
}

// agentRun is what one window of one agent measured.
type agentRun struct {
	cpu, respCPU time.Duration
	probes       uint64      // datagrams the responder received (probes and retransmissions)
	d            engineStats // the window's counters (differences)
	rssKB        int
	settleLost   uint64 // results lost to the full queue until all were AP
	// settle is the time from the agent's start until every destination
	// was up and probed (AP), settleCPU the agent's CPU until then.
	settle, settleCPU time.Duration
	// failDown and failFirst are the times from the responder going
	// silent for some destinations until the agent logged the last and
	// the first of their dst-down events.
	failDown, failFirst time.Duration
}

// upProbed counts the destinations whose flags are AP.
func upProbed(b *testing.B, a *agent.Agent) int {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.Ctl(ctx, "dispatcher.list")
	if err != nil {
		b.Fatalf("dispatcher.list: %v", err)
	}
	flags, err := agent.DestFlags(res)
	if err != nil {
		b.Fatal(err)
	}
	up := 0
	for _, f := range flags {
		if f == "AP" {
			up++
		}
	}
	return up
}

// measureAgent starts the agent with n destinations, waits until each has
// been answered once, and measures one window; then, when fail > 0, the
// mass failure of the first fail destinations.
func measureAgent(b *testing.B, bins agent.Bins, n, sets int, port uint16, window time.Duration, resp *child, fail int) agentRun {
	b.Helper()
	a := agent.Start(b, bins, probingConfig(b, n, sets, port), agent.Options{})
	defer a.Stop()
	// First probes are spread over the first interval; each first reply
	// turns the destination's flags from A to AP (mode 1). Wait until
	// every destination shows AP and the results queue has drained.
	start := time.Now()
	deadline := start.Add(3 * time.Minute)
	for {
		up := upProbed(b, a)
		if up == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("agent: %d of %d destinations active and probed after %v", up, n, time.Since(start))
		}
		time.Sleep(time.Second)
	}
	settle, settleTicks := time.Since(start), uint64(0)
	settleTicks, _ = taskTicks(a.Pid())
	time.Sleep(2 * time.Second)
	e0 := dispatcherProbeStats(b, a)
	t0, _ := taskTicks(a.Pid())
	r0 := resp.sample(b)
	var perf *exec.Cmd
	if out := os.Getenv("SIPEDGE_PROBE_PERF"); out != "" {
		// A profile of the agent over the window (perf report -i FILE).
		perf = exec.Command("perf", "record", "-e", "cpu-clock", "-g", "-o", out, "-p", strconv.Itoa(a.Pid()), "--", "sleep", strconv.Itoa(int(window.Seconds())))
		if err := perf.Start(); err != nil {
			b.Logf("perf: %v", err)
			perf = nil
		}
	}
	time.Sleep(window)
	if perf != nil {
		_ = perf.Wait()
	}
	t1, _ := taskTicks(a.Pid())
	r1 := resp.sample(b)
	e1 := dispatcherProbeStats(b, a)
	run := agentRun{
		cpu: ticksDur(t1 - t0), respCPU: ticksDur(r1.ticks - r0.ticks),
		probes:     r1.recv - r0.recv,
		d:          e1.sub(e0),
		rssKB:      vmRSS(a.Pid()),
		settleLost: e0.ResultsLost,
		settle:     settle, settleCPU: ticksDur(settleTicks),
	}
	if fail > 0 {
		run.failFirst, run.failDown = massFailure(b, a, resp, fail)
	}
	return run
}

// dstDownLine is the log line of a dispatcher:dst-down event (the text
// handler's time first).
var dstDownLine = regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg=dispatcher:dst-down .*? uri=sip:127\.1\.(\d+)\.(\d+):`)

// massFailure makes the responder stop answering the first fail
// destinations and returns the times from then until the agent logged the
// first and the last of their fail dst-down events. The responder answers
// every destination again when it returns.
func massFailure(b *testing.B, a *agent.Agent, resp *child, fail int) (first, last time.Duration) {
	b.Helper()
	start := time.Now()
	resp.command(b, "silence "+strconv.Itoa(fail))
	defer resp.command(b, "silence 0")
	deadline := start.Add(time.Minute)
	for {
		// The first dst-down of each silenced destination (127.1.0.0 + i,
		// i < fail) since the silence: a duplicate or another destination's
		// event does not count.
		seen := map[int]time.Time{}
		for _, m := range dstDownLine.FindAllStringSubmatch(a.Output(), -1) {
			t, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				b.Fatalf("dst-down line time %q: %v", m[1], err)
			}
			hi, _ := strconv.Atoi(m[2])
			lo, _ := strconv.Atoi(m[3])
			if i := hi<<8 | lo; i < fail && !t.Before(start) {
				if _, dup := seen[i]; !dup {
					seen[i] = t
				}
			}
		}
		times := slices.Collect(maps.Values(seen))
		if len(times) >= fail {
			return slices.MinFunc(times, time.Time.Compare).Sub(start), slices.MaxFunc(times, time.Time.Compare).Sub(start)
		}
		if time.Now().After(deadline) {
			b.Fatalf("agent: %d of %d silenced destinations down after %v", len(times), fail, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agentRSS is the RSS of the agent probing one destination, after a few
// seconds of it: the base the 10,000-destination RSS is compared with.
func agentRSS(b *testing.B, bins agent.Bins, sets int, port uint16) int {
	b.Helper()
	a := agent.Start(b, bins, probingConfig(b, 1, sets, port), agent.Options{})
	defer a.Stop()
	time.Sleep(5 * time.Second)
	return vmRSS(a.Pid())
}

func probingConfig(b *testing.B, n, sets int, port uint16) agent.Config {
	listen := freeUDPPort(b)
	cfg := agent.Config{
		Listeners:      []agent.Listener{{Name: "edge", Address: listen}},
		Rules:          []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 0}},
		LogLevel:       "info",
		DispatcherKeys: [][2]string{{"ds_ping_interval", "1s"}, {"ds_probing_mode", "1"}},
	}
	for i := range n {
		cfg.Dests = append(cfg.Dests, agent.Dest{Set: 1 + i%max(sets, 1), URI: fmt.Sprintf("sip:127.1.%d.%d:%d", i>>8, i&255, port)})
	}
	return cfg
}

// engineStats are the dispatcher probing engine's counters (probe.stats).
type engineStats struct {
	probe.Stats
	ResultsLost uint64 `json:"results_lost"`
}

func (e engineStats) sub(o engineStats) engineStats {
	e.Probes -= o.Probes
	e.Retransmits -= o.Retransmits
	e.Replies -= o.Replies
	e.Timeouts -= o.Timeouts
	e.Malformed -= o.Malformed
	e.WrongSource -= o.WrongSource
	e.UnknownBranch -= o.UnknownBranch
	e.Late -= o.Late
	e.ResultsLost -= o.ResultsLost
	return e
}

func dispatcherProbeStats(b *testing.B, a *agent.Agent) engineStats {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := a.Ctl(ctx, "probe.stats")
	if err != nil {
		b.Fatalf("probe.stats: %v", err)
	}
	var s struct {
		Dispatcher *engineStats `json:"dispatcher"`
	}
	if err := json.Unmarshal(res, &s); err != nil || s.Dispatcher == nil {
		b.Fatalf("probe.stats %s: %v", res, err)
	}
	return *s.Dispatcher
}

func ticksDur(t uint64) time.Duration { return time.Duration(t) * clockTick }

// vmRSS is the resident set of pid in kB.
func vmRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

func probeBins(b *testing.B) []agent.Bins {
	b.Helper()
	dirs := os.Getenv("SIPEDGE_PROBE_BINS")
	if dirs == "" {
		return []agent.Bins{floodBins(b)}
	}
	var out []agent.Bins
	for _, d := range strings.Split(dirs, ",") {
		out = append(out, agent.Bins{Sipedge: filepath.Join(d, "sipedge"), Sipedgectl: filepath.Join(d, "sipedgectl")})
	}
	return out
}

func moduleRoot(tb testing.TB) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// ---- the child processes: responder and floor ----

// childEnv makes the test binary one of the benchmark's helper processes
// (TestMain), so that their CPU is counted apart from the agent's.
const childEnv = "SIPEDGE_BENCH_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "responder":
		os.Exit(runResponder())
	case "floor":
		os.Exit(runFloor())
	}
	os.Exit(m.Run())
}

// child is a helper process. It prints one number on its first line (the
// responder: its port), then a line "sent received" for each line it
// reads on stdin, and exits when stdin closes.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	first int
}

type childSample struct {
	ticks      uint64
	sysTicks   uint64 // of ticks, those in the kernel (stime)
	sent, recv uint64
	reads      uint64 // the floor's read system calls (0 from the responder)
}

func startChild(b *testing.B, mode string, env []string) *child {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(out)}
	b.Cleanup(c.stop)
	line, err := c.out.ReadString('\n')
	if err != nil {
		b.Fatalf("%s: %v", mode, err)
	}
	c.first, _ = strconv.Atoi(strings.TrimSpace(line))
	return c
}

// command sends the responder a command line ("silence N": stop
// answering destinations 0..N-1; "silence 0" answers all again).
func (c *child) command(b *testing.B, cmd string) { c.line(b, cmd) }

func (c *child) sample(b *testing.B) childSample { return c.line(b, "?") }

// line sends one line and reads the counters the child answers with.
func (c *child) line(b *testing.B, line string) childSample {
	b.Helper()
	var s childSample
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		b.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		b.Fatalf("child said %q: want \"sent received [reads]\"", line)
	}
	var err1, err2, err3 error
	s.sent, err1 = strconv.ParseUint(f[0], 10, 64)
	s.recv, err2 = strconv.ParseUint(f[1], 10, 64)
	if len(f) > 2 {
		s.reads, err3 = strconv.ParseUint(f[2], 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		b.Fatalf("child said %q: %v", line, err)
	}
	s.ticks, _ = taskTicks(c.cmd.Process.Pid)
	s.sysTicks = sysTicks(c.cmd.Process.Pid)
	return s
}

// sysTicks is the CPU time pid spent in the kernel (stime, field 15 of
// /proc/PID/stat), 0 when unreadable.
func sysTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(b, ')') // the command name may hold blanks
	if err != nil || i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	st, _ := strconv.ParseUint(f[12], 10, 64) // f[0] is field 3
	return st
}

func (c *child) stop() {
	if c.in != nil {
		c.in.Close()
		c.cmd.Wait()
		c.in = nil
	}
}

// serveCounters prints first, then answers each stdin line with the
// counters (reads too when not nil), until stdin closes; a line
// "silence N" first stores N in silence (when not nil).
func serveCounters(first int, sent, recv, reads *atomic.Uint64, silence *atomic.Int64) {
	fmt.Println(first)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "silence "); ok && silence != nil {
			n, _ := strconv.Atoi(v)
			silence.Store(int64(n))
		}
		if reads != nil {
			fmt.Println(sent.Load(), recv.Load(), reads.Load())
		} else {
			fmt.Println(sent.Load(), recv.Load())
		}
	}
}

// runResponder answers every datagram on a wildcard UDP socket with
// "SIP/2.0 200 OK" and the request's header lines, sent from the address
// the request was sent to (IP_PKTINFO), except those to the first N
// destinations (127.1.0.0 + i, i < N) after a command "silence N".
func runResponder() int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	rc, _ := c.SyscallConn()
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) })
	if serr != nil {
		fmt.Fprintln(os.Stderr, "IP_PKTINFO:", serr)
		return 1
	}
	var sent, recv atomic.Uint64
	var silence atomic.Int64
	go func() {
		in, out := make([]byte, 65535), make([]byte, 0, 65535)
		oob := make([]byte, 128)
		var info unix.Inet4Pktinfo
		for {
			k, oobn, _, src, err := c.ReadMsgUDPAddrPort(in, oob)
			if err != nil {
				return
			}
			recv.Add(1)
			dst, ok := pktinfoDst(oob[:oobn])
			i := bytes.Index(in[:k], []byte("\r\n"))
			if !ok || i < 0 {
				continue
			}
			if dst[0] == 127 && dst[1] == 1 && int64(dst[2])<<8|int64(dst[3]) < silence.Load() {
				continue
			}
			out = append(append(out[:0], "SIP/2.0 200 OK"...), in[i:k]...)
			info.Spec_dst = dst
			if _, _, err := c.WriteMsgUDPAddrPort(out, unix.PktInfo4(&info), src); err == nil {
				sent.Add(1)
			}
		}
	}()
	serveCounters(c.LocalAddr().(*net.UDPAddr).Port, &sent, &recv, nil, &silence)
	return 0
}

// pktinfoDst is the destination address of a datagram from its
// IP_PKTINFO control message.
func pktinfoDst(oob []byte) ([4]byte, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return [4]byte{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			var a [4]byte
			copy(a[:], m.Data[8:12]) // struct in_pktinfo: ifindex, spec_dst, addr
			return a, true
		}
	}
	return [4]byte{}, false
}

// runFloor sends probe-like OPTIONS to SIPEDGE_FLOOR_DESTS addresses on
// SIPEDGE_FLOOR_PORT at 10,000/s, what fell due every 5 ms (the engine's
// tick), and reads the replies: the sockets' own cost. SIPEDGE_FLOOR_MODE
// says how:
//   - "" (the default): one sendto per datagram, the replies read by a
//     goroutine, one recvmsg each;
//   - "mmsg": each tick's datagrams with one sendmmsg, the replies read
//     by a goroutine with recvmmsg, as many as are queued when it wakes;
//   - "mmsg-tick": as mmsg, but no reader goroutine: each tick drains the
//     queued replies (recvmmsg, MSG_DONTWAIT) after sending, so that the
//     ticker is the process's only wake-up. The least a batched design
//     can cost; a reply waits up to a tick to be read.
func runFloor() int {
	n, _ := strconv.Atoi(os.Getenv("SIPEDGE_FLOOR_DESTS"))
	port, _ := strconv.Atoi(os.Getenv("SIPEDGE_FLOOR_PORT"))
	mode := os.Getenv("SIPEDGE_FLOOR_MODE")
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil || n <= 0 || port <= 0 || (mode != "" && mode != "mmsg" && mode != "mmsg-tick") {
		fmt.Fprintln(os.Stderr, "floor:", err, n, port, mode)
		return 1
	}
	_ = c.SetReadBuffer(8 << 20)
	me := c.LocalAddr().String()
	dsts := make([]netip.AddrPort, n)
	msgs := make([][]byte, n)
	for i := range n {
		dsts[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), uint16(port))
		uri := "sip:" + dsts[i].String()
		// The shape and size of the engine's probe (userspace/probe's appendRequest).
		msgs[i] = fmt.Appendf(nil, "OPTIONS %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bKpr%016x%016x\r\n"+
			"To: <%s>\r\nFrom: <sip:dispatcher@localhost>;tag=%016x\r\nCSeq: 10 OPTIONS\r\n"+
			"Call-ID: %016x-%d@%s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			uri, me, i, i*7919, uri, i, i*7919, i, me)
	}
	var sent, recv, reads atomic.Uint64
	var send func(from, k int) // sends msgs[from:from+k]
	var tick func()            // after each tick's sends
	if mode == "" {
		send = func(from, k int) {
			for i := from; i < from+k; i++ {
				if _, err := c.WriteToUDPAddrPort(msgs[i], dsts[i]); err == nil {
					sent.Add(1)
				}
			}
		}
		tick = func() {}
		go func() {
			buf := make([]byte, 65535)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				recv.Add(1)
			}
		}()
	} else {
		pc := ipv4.NewPacketConn(c)
		// The batches' messages, addresses made once: WriteBatch takes a
		// net.Addr per message.
		out := make([]ipv4.Message, n)
		for i := range n {
			out[i] = ipv4.Message{Buffers: [][]byte{msgs[i]}, Addr: net.UDPAddrFromAddrPort(dsts[i])}
		}
		send = func(from, k int) {
			for batch := out[from : from+k]; len(batch) > 0; {
				m, err := pc.WriteBatch(batch, 0)
				m = max(m, 0)
				sent.Add(uint64(m))
				if err != nil {
					m++ // skip the one that failed, as sendto's mode does
				}
				batch = batch[min(m, len(batch)):]
			}
		}
		in := make([]ipv4.Message, 64)
		for i := range in {
			in[i].Buffers = [][]byte{make([]byte, 2048)}
		}
		// read reads one batch; more says whether the queue may hold
		// more (the batch was full).
		read := func(flags int) (more bool, err error) {
			m, err := pc.ReadBatch(in, flags)
			reads.Add(1)
			recv.Add(uint64(max(m, 0)))
			return m == len(in), err
		}
		if mode == "mmsg" {
			tick = func() {}
			go func() {
				for {
					if _, err := read(0); err != nil {
						return
					}
				}
			}()
		} else {
			tick = func() {
				for more := true; more; {
					more, _ = read(unix.MSG_DONTWAIT)
				}
			}
		}
	}
	go func() {
		// Paced by the clock, not by counting ticks (a late tick sends
		// what fell due meanwhile), at most a second's worth behind.
		const rate = 10000
		t := time.NewTicker(5 * time.Millisecond)
		start, done, i := time.Now(), 0, 0
		for range t.C {
			due := int(time.Since(start).Seconds() * rate)
			done = max(done, due-rate)
			for done < due {
				k := min(due-done, n-i) // up to the end of the list, then from its start
				send(i, k)
				done += k
				i = (i + k) % n
			}
			tick()
		}
	}()
	if mode == "" {
		serveCounters(0, &sent, &recv, &recv, nil) // one read per reply
	} else {
		serveCounters(0, &sent, &recv, &reads, nil)
	}
	return 0
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
