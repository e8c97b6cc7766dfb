package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/bench/load"
	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/kamailio"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// BenchmarkTraffic: messages per second at saturation and CPU time per
// forwarded message on the edge, for sipedge with the XDP fast path,
// sipedge's slow path alone, and Kamailio (ds_select_dst + forward()), on
// one namespace topology, with one generator and one load, in one run
// (bench/README.md, "Traffic": method, placement, limits).
//
//	sudo go test -run '^$' -bench Traffic -benchtime 1x ./bench/
//
// SIPEDGE_BENCH_SECONDS sets the measured window per system (default 5);
// SIPEDGE_BENCH_SYSTEMS picks systems (default "fast,slow,kamailio");
// SIPEDGE_BENCH_QUANTUM the generator's burst spacing (default 200µs);
// SIPEDGE_BENCH_EDGE_NAPI=normal runs the edge's NAPI threads at normal
// priority instead of SCHED_FIFO 50.
func BenchmarkTraffic(b *testing.B) {
	testutil.NeedRoot(b)
	for _, c := range []string{"ip", "nsenter", "ethtool", "taskset", "chrt", "unshare", "mount"} {
		testutil.NeedCommand(b, c, exec.LookPath)
	}
	kamBin := kamailio.NeedKamailio(b)
	if runtime.NumCPU() < 2 {
		b.Skip("needs at least 2 CPUs: one for the edge, the rest for the generator and the backends")
	}
	window := 5 * time.Second
	if s := os.Getenv("SIPEDGE_BENCH_SECONDS"); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n <= 0 {
			b.Fatalf("SIPEDGE_BENCH_SECONDS=%q: want a positive number", s)
		}
		window = time.Duration(n * float64(time.Second))
	}
	systems := "fast,slow,kamailio"
	if s := os.Getenv("SIPEDGE_BENCH_SYSTEMS"); s != "" {
		systems = s
	}

	root, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	mach := readMachine(root, kamBin)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	bins, err := agent.Build(ctx, b.TempDir(), false)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	// The edge gets the last CPU to itself; the generator, the backends'
	// receive processing and this process share the others.
	edgeCPU := runtime.NumCPU() - 1
	var genCPUs []int
	for c := range edgeCPU {
		genCPUs = append(genCPUs, c)
	}
	pinProcess(b, genCPUs)
	sp := newSpawner(b)

	e := newTrafficEnv(b, bins, edgeCPU, genCPUs)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time statistics (what sysctl kernel.bpf_stats_enabled=1 does): %v", err)
	}
	defer stats.Close()

	var results []*result
	b.ResetTimer()
	for _, name := range strings.Split(systems, ",") {
		waitQuiet(b, 60*time.Second)
		var sys *edgeSystem
		switch strings.TrimSpace(name) {
		case "fast":
			sys = startSipedge(b, sp, bins, e.topo.Edge, edgeCPU, e.listen, e.backends, e.edgeDevs, true)
		case "slow":
			sys = startSipedge(b, sp, bins, e.topo.Edge, edgeCPU, e.listen, e.backends, e.edgeDevs, false)
		case "kamailio":
			sys = startKamailio(b, sp, kamBin, e.topo.Edge, edgeCPU, 4, e.listen, e.backends)
		default:
			b.Fatalf("SIPEDGE_BENCH_SYSTEMS: unknown system %q (fast, slow, kamailio)", name)
		}
		r := e.run(sys, window)
		sys.Stop()
		results = append(results, r)
	}
	b.StopTimer()

	var out bytes.Buffer
	writeReport(&out, mach, e, results, window)
	fmt.Print(out.String())
	for _, r := range results {
		b.ReportMetric(r.delivered, r.sys.Short+"-msg/s")
		b.ReportMetric(r.sat.delivered, r.sys.Short+"-sat-msg/s")
		b.ReportMetric(r.cpuPerMsg.Seconds()*1e9, r.sys.Short+"-edge-ns/msg")
		b.ReportMetric(r.sat.cpuPerMsg.Seconds()*1e9, r.sys.Short+"-sat-edge-ns/msg")
		if r.xdpRuns > 0 {
			b.ReportMetric(r.xdpNsPerRun, "xdp-ns/pkt")
		}
	}
}

// waitQuiet waits until no CPU has been more than 10 % busy for a second
// (other work on a shared machine skews throughput figures; the table's
// "other" column shows what remained), at most max.
func waitQuiet(b *testing.B, max time.Duration) {
	deadline := time.Now().Add(max)
	logged := false
	for {
		a := readCPUTimes()
		time.Sleep(time.Second)
		z := readCPUTimes()
		var busy []string
		quiet := true
		for c := range min(len(a), len(z)) {
			d := z[c].sub(a[c])
			share := float64(d.busy()) / float64(max64(d.total(), 1))
			busy = append(busy, fmt.Sprintf("%.0f%%", 100*share))
			quiet = quiet && share <= 0.10
		}
		if quiet {
			return
		}
		if time.Now().After(deadline) {
			b.Logf("the machine is still busy with other work (CPUs %v busy): measuring anyway", busy)
			return
		}
		if !logged {
			b.Logf("waiting for the machine to be idle (CPUs %v busy with other work)", busy)
			logged = true
		}
	}
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// quantum is the generator's burst spacing at a target rate
// (SIPEDGE_BENCH_QUANTUM, a Go duration; default 200µs, the interrupt
// moderation of a NIC under load). Every burst costs the edge a context
// switch pair with threaded NAPI, which softirq on a NIC host does not:
// shorter quanta raise the per-message cost of the slow path and of
// Kamailio (README.md, "Traffic").
func quantum() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SIPEDGE_BENCH_QUANTUM")); err == nil && d > 0 {
		return d
	}
	return 200 * time.Microsecond
}

// edgeNAPIPolicy is how the edge's NAPI threads are scheduled:
// SCHED_FIFO 50 by default, normal with SIPEDGE_BENCH_EDGE_NAPI=normal.
func edgeNAPIPolicy() string {
	if os.Getenv("SIPEDGE_BENCH_EDGE_NAPI") == "normal" {
		return "SCHED_OTHER"
	}
	return "SCHED_FIFO 50"
}

// trafficEnv is the topology with the sink attached and the generator's
// sockets open.
type trafficEnv struct {
	b        *testing.B
	topo     *netns.Topology
	bins     agent.Bins
	edgeCPU  int
	genCPUs  []int
	listen   netip.AddrPort   // the edge's SIP listener
	backends []netip.AddrPort // where the edge forwards
	edgeDevs []string         // cl0, be1, ...
	sink     *load.XDPSink
	streams  []load.Stream
	run16    uint16 // generator runs, so Call-IDs never repeat
}

const nBackends = 3

func newTrafficEnv(b *testing.B, bins agent.Bins, edgeCPU int, genCPUs []int) *trafficEnv {
	e := &trafficEnv{b: b, bins: bins, edgeCPU: edgeCPU, genCPUs: genCPUs}
	e.topo = netns.NewTopology(b, nBackends)
	e.listen = netip.AddrPortFrom(e.topo.Client.EdgeAddr, 5060)
	e.edgeDevs = []string{e.topo.Client.EdgeDev}
	for _, h := range e.topo.Backends {
		e.backends = append(e.backends, netip.AddrPortFrom(h.Addr, 5060))
		e.edgeDevs = append(e.edgeDevs, h.EdgeDev)
	}

	// Edge: GRO on every veth so each runs NAPI with or without an XDP
	// program (the slow path and Kamailio receive through it too), and
	// threaded NAPI, so the edge's receive processing — the XDP program
	// included — runs in kernel threads pinned to the edge CPU, where it
	// is accounted to the edge (e.threads).
	for _, dev := range e.edgeDevs {
		e.topo.Edge.Run(b, "ethtool", "-K", dev, "gro", "on")
		setThreadedNAPI(b, e.topo.Edge, dev)
	}
	e.edgeThreads()

	// Backends: the counting XDP sink on eth0 (it also gives the veth the
	// NAPI that XDP redirects into it need), threaded NAPI on the
	// generator's CPUs at real-time priority, so the backend side always
	// keeps up and never drops what the edge delivered.
	sink, err := load.NewXDPSink(5060)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	e.sink = sink
	for _, h := range e.topo.Backends {
		if err := h.NS.Do(func() error {
			l, err := netlink.LinkByName(h.Dev)
			if err != nil {
				return err
			}
			return sink.Attach(l.Attrs().Index)
		}); err != nil {
			b.Fatal(err)
		}
	}
	// The client's eth0 gets GRO (NAPI), for anything coming back.
	e.topo.Client.NS.Run(b, "ethtool", "-K", e.topo.Client.Dev, "gro", "on")
	for _, h := range append([]netns.Host{e.topo.Client}, e.topo.Backends...) {
		setThreadedNAPI(b, h.NS, h.Dev)
		pids, err := napiThreads(h.NS, h.Dev)
		if err != nil {
			b.Fatal(err)
		}
		for _, pid := range pids {
			if err := pinThread(pid, genCPUs...); err != nil {
				b.Fatal(err)
			}
			if err := setFIFO(pid, 50); err != nil {
				b.Fatal(err)
			}
		}
	}

	// The generator: one connected socket per generator CPU in the client
	// namespace, each sending the INVITE template.
	for range genCPUs {
		var s *load.Socket
		if err := e.topo.Client.NS.Do(func() (err error) {
			s, err = load.Dial(netip.AddrPortFrom(e.topo.Client.Addr, 0), e.listen)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		e.streams = append(e.streams, load.Stream{Socket: s, Template: load.Invite(s.Local(), e.listen)})
	}
	return e
}

// edgeThreads finds the edge's NAPI threads, pins them to the edge CPU at
// SCHED_FIFO priority 50 (what threaded interrupt handlers get) and returns
// their pids. Receive processing in softirq preempts user tasks; at normal
// priority the thread would wait out the proxy's time slice while its
// 256-frame ring overflows, a loss no NIC host has. Attaching XDP may
// renew a device's NAPI, so this runs again once a system is up.
func (e *trafficEnv) edgeThreads() []int {
	e.b.Helper()
	var all []int
	for _, dev := range e.edgeDevs {
		pids, err := napiThreads(e.topo.Edge, dev)
		if err != nil {
			e.b.Fatalf("%v\n%s", err, e.topo.Edge.Run(e.b, "ip", "-d", "link", "show", dev))
		}
		for _, pid := range pids {
			if err := pinThread(pid, e.edgeCPU); err != nil {
				e.b.Fatal(err)
			}
			if edgeNAPIPolicy() != "SCHED_FIFO 50" {
				continue
			}
			if err := setFIFO(pid, 50); err != nil {
				e.b.Fatal(err)
			}
		}
		all = append(all, pids...)
	}
	return all
}

// snapshot is every counter the benchmark reads, at one moment.
type snapshot struct {
	at         time.Time
	gen        load.Stats
	sinkPkts   uint64
	procTicks  uint64 // the proxy's processes
	napiTicks  uint64 // the edge's NAPI threads
	cpus       []cpuTimes
	xdpNs      uint64
	xdpRuns    uint64
	fp         fastPathCounters
	slowFwd    uint64
	rcvbufErrs uint64 // UDP receive-buffer overflows in the edge namespace
}

// result is one system's measured window.
type result struct {
	sys          *edgeSystem
	offered      float64 // generator's rate, messages/s
	delivered    float64 // counted at the backends, messages/s
	loss         float64 // 1 - delivered/offered
	genBound     bool    // the edge kept up with everything the generator sent
	cpuPerMsg    time.Duration
	procShare    float64 // share of the edge CPU time spent in the proxy's processes
	edgeBusy     float64 // busy share of the edge CPU (/proc/stat)
	edgeSoftirq  float64 // softirq share of the edge CPU (/proc/stat)
	edgeOther    float64 // share of the edge CPU busy with anything but the edge's tasks
	genSoftirq   float64 // softirq share of the generator CPUs
	busyPerMsg   time.Duration
	xdpRuns      uint64
	xdpNsPerRun  float64
	xdpShare     float64 // XDP program run time / edge CPU time
	fastShare    float64 // fast path forwarded / (forwarded + passed)
	eventShare   float64 // INVITE events the agent drained / INVITEs the fast path forwarded
	rcvbufErrs   uint64
	steps        []string // the search for saturation
	lossless     float64  // highest rate found with ≤ 1 % loss (0: generator-bound)
	sat          *result  // the window offered 1.25 × lossless
	over         *result  // the flat-out probe
	checked      string   // the delivery check
	window       time.Duration
	deliveredPkt uint64
	edgeSeconds  float64
}

func (e *trafficEnv) snap(sys *edgeSystem, g *load.Generator, napi []int, prog *ebpf.Program) snapshot {
	s := snapshot{gen: g.Stats()}
	s.sinkPkts, _, _ = e.sink.Count()
	s.procTicks = sumTicks(sys.Pids)
	s.napiTicks = sumTicks(napi)
	s.cpus = readCPUTimes()
	s.at = time.Now()
	if prog != nil {
		if st, err := prog.Stats(); err == nil {
			s.xdpNs, s.xdpRuns = uint64(st.Runtime.Nanoseconds()), st.RunCount
		}
	}
	return s
}

// slowSnap adds the counters that cost a process start (RPC, nsenter):
// read outside the timed part of a window.
func (e *trafficEnv) slowSnap(sys *edgeSystem, s *snapshot) {
	if sys.Agent != nil {
		s.fp, _ = sys.Agent.fastPath()
		s.slowFwd, _ = sys.Agent.slowForwarded()
	}
	s.rcvbufErrs = snmpUDP(e.topo.Edge)["RcvbufErrors"]
}

// window measures one interval: settle at rate, then count for d.
func (e *trafficEnv) window(sys *edgeSystem, g *load.Generator, napi []int, prog *ebpf.Program, rate float64, settle, d time.Duration) *result {
	g.SetRate(rate)
	time.Sleep(settle)
	var a snapshot
	e.slowSnap(sys, &a)
	a2 := e.snap(sys, g, napi, prog)
	a2.fp, a2.slowFwd, a2.rcvbufErrs = a.fp, a.slowFwd, a.rcvbufErrs
	time.Sleep(d)
	z := e.snap(sys, g, napi, prog)
	e.slowSnap(sys, &z)
	return compute(sys, a2, z, e.edgeCPU, e.genCPUs)
}

func compute(sys *edgeSystem, a, z snapshot, edgeCPU int, genCPUs []int) *result {
	secs := z.at.Sub(a.at).Seconds()
	r := &result{sys: sys, window: z.at.Sub(a.at)}
	sent := z.gen.Sub(a.gen).Sent
	r.deliveredPkt = z.sinkPkts - a.sinkPkts
	r.offered = float64(sent) / secs
	r.delivered = float64(r.deliveredPkt) / secs
	if sent > 0 {
		r.loss = 1 - float64(r.deliveredPkt)/float64(sent)
	}
	ticks := (z.procTicks - a.procTicks) + (z.napiTicks - a.napiTicks)
	r.edgeSeconds = float64(ticks) * clockTick.Seconds()
	if ticks > 0 {
		r.procShare = float64(z.procTicks-a.procTicks) / float64(ticks)
	}
	if r.deliveredPkt > 0 {
		r.cpuPerMsg = time.Duration(float64(ticks) * float64(clockTick) / float64(r.deliveredPkt))
	}
	if edgeCPU < len(z.cpus) && edgeCPU < len(a.cpus) {
		d := z.cpus[edgeCPU].sub(a.cpus[edgeCPU])
		if d.total() > 0 {
			r.edgeBusy = float64(d.busy()) / float64(d.total())
			r.edgeSoftirq = float64(d.SoftIRQ) / float64(d.total())
			r.edgeOther = max(0, float64(d.busy())-float64(ticks)) / float64(d.total())
		}
		if r.deliveredPkt > 0 {
			r.busyPerMsg = time.Duration(float64(d.busy()) * float64(clockTick) / float64(r.deliveredPkt))
		}
	}
	var gs, gt uint64
	for _, c := range genCPUs {
		if c < len(z.cpus) && c < len(a.cpus) {
			d := z.cpus[c].sub(a.cpus[c])
			gs += d.SoftIRQ
			gt += d.total()
		}
	}
	if gt > 0 {
		r.genSoftirq = float64(gs) / float64(gt)
	}
	r.xdpRuns = z.xdpRuns - a.xdpRuns
	if r.xdpRuns > 0 {
		r.xdpNsPerRun = float64(z.xdpNs-a.xdpNs) / float64(r.xdpRuns)
		if ticks > 0 {
			r.xdpShare = float64(z.xdpNs-a.xdpNs) / (float64(ticks) * float64(clockTick))
		}
	}
	if fwd, pass := z.fp.Forwarded-a.fp.Forwarded, z.fp.Passed-a.fp.Passed; fwd+pass > 0 {
		r.fastShare = float64(fwd) / float64(fwd+pass)
		r.eventShare = float64(z.fp.Events["request INVITE"]-a.fp.Events["request INVITE"]) / float64(fwd)
	}
	r.rcvbufErrs = z.rcvbufErrs - a.rcvbufErrs
	return r
}

// run measures one system: a delivery check, a search for the rate that
// saturates it, and the measured window at that rate.
func (e *trafficEnv) run(sys *edgeSystem, window time.Duration) *result {
	b := e.b
	napi := e.edgeThreads()
	var prog *ebpf.Program
	if sys.Short == "fast" {
		var id uint32
		if err := e.topo.Edge.Do(func() error {
			l, err := netlink.LinkByName(e.topo.Client.EdgeDev)
			if err != nil {
				return err
			}
			if x := l.Attrs().Xdp; x != nil {
				id = x.ProgId
			}
			return nil
		}); err != nil || id == 0 {
			b.Fatalf("no XDP program on %s after the fast path attached (%v)", e.topo.Client.EdgeDev, err)
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			b.Fatalf("XDP program %d: %v", id, err)
		}
		defer p.Close()
		prog = p
	}
	checked := e.check(sys)

	e.run16++
	g, err := load.Start(load.Config{Streams: e.streams, CPUs: e.genCPUs, Run: e.run16, Quantum: quantum()})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Stop()

	// Flat out first: what the generator can offer, and what the edge
	// delivers when offered far more than it can take (receive livelock:
	// the edge's receive processing, at softirq-like priority, takes the
	// CPU from the proxy). Then the highest rate it forwards with at most
	// 1 % loss (RFC 2544's throughput, with a tolerance), by bisection in
	// log space between 2k/s and the generator's maximum, to within 8 %.
	// Measured at that rate: CPU per message (all offered work is
	// delivered). Measured at 1.25 × that rate: messages per second at
	// saturation.
	var steps []string
	step := func(rate float64, settle, d time.Duration) *result {
		r := e.window(sys, g, napi, prog, rate, settle, d)
		label := "max"
		if rate > 0 {
			label = fmt.Sprintf("%.0fk", rate/1000)
		}
		steps = append(steps, fmt.Sprintf("%s→%.0fk (%.1f%%)", label, r.delivered/1000, 100*r.loss))
		return r
	}
	const maxLoss = 0.01
	probe := step(0, 300*time.Millisecond, time.Second)
	genMax := probe.offered
	var final, sat *result
	lossless := 0.0
	if probe.loss <= maxLoss {
		// The edge keeps up with the generator: one window, flat out.
		final = e.window(sys, g, napi, prog, 0, 300*time.Millisecond, window)
		final.genBound = final.loss <= maxLoss
		sat = final
	} else {
		lo, hi := 2000.0, genMax
		for range 9 {
			if hi/lo < 1.08 {
				break
			}
			r := math.Sqrt(lo * hi)
			if step(r, 200*time.Millisecond, 700*time.Millisecond).loss <= maxLoss {
				lo = r
			} else {
				hi = r
			}
		}
		lossless = lo
		final = e.window(sys, g, napi, prog, lossless, 300*time.Millisecond, window)
		satRate := 1.25 * lossless
		if satRate >= genMax {
			satRate = 0
		}
		sat = e.window(sys, g, napi, prog, satRate, 300*time.Millisecond, window)
	}
	final.steps = steps
	final.checked = checked
	final.lossless = lossless
	final.sat = sat
	final.over = probe
	if gs := g.Stop(); gs.LastError != "" {
		b.Logf("%s: generator error: %s", sys.Name, gs.LastError)
	}
	b.Logf("%s: search %s; at %s: offered %.0f/s, delivered %.0f/s, loss %.2f%%, edge CPU %.2f s = %v/msg (proxy processes %.0f%%), edge CPU busy %.0f%%; saturated: offered %.0f/s, delivered %.0f/s",
		sys.Name, strings.Join(steps, ", "), rateName(lossless), final.offered, final.delivered, 100*final.loss,
		final.edgeSeconds, final.cpuPerMsg, 100*final.procShare, 100*final.edgeBusy, sat.offered, sat.delivered)
	return final
}

func rateName(r float64) string {
	if r == 0 {
		return "generator max"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// check sends a short paced burst with the sink passing datagrams up to
// sockets on the backends, and checks what arrives: every message, each
// with the edge's Via on top and Max-Forwards decremented, spread over
// the backends, no UDP checksum error. Saturation numbers for a proxy
// that forwards garbage would be worthless.
func (e *trafficEnv) check(sys *edgeSystem) string {
	b := e.b
	if err := e.sink.SetPass(true); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := e.sink.SetPass(false); err != nil {
			b.Fatal(err)
		}
	}()
	var sinks []*load.Sink
	var csum0 []uint64
	for _, h := range e.topo.Backends {
		var s *load.Socket
		if err := h.NS.Do(func() (err error) {
			s, err = load.Listen(netip.AddrPortFrom(h.Addr, 5060))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sinks = append(sinks, load.StartSink(s, load.SinkConfig{Keep: 5000}))
		csum0 = append(csum0, snmpUDP(h.NS)["InCsumErrors"])
	}
	e.run16++
	g, err := load.Start(load.Config{Streams: e.streams[:1], Rate: 5000, Run: e.run16})
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	sent := g.Stop().Sent
	deadline := time.Now().Add(2 * time.Second)
	var got uint64
	for {
		got = 0
		for _, s := range sinks {
			got += s.Stats().Received
		}
		if got >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	var per []string
	var bad []string
	viaPrefix := "Via: SIP/2.0/UDP " + e.listen.Addr().String()
	for i, s := range sinks {
		st := s.Stop()
		per = append(per, strconv.FormatUint(st.Received, 10))
		if st.Received == 0 {
			bad = append(bad, fmt.Sprintf("backend %d got nothing", i+1))
		}
		for _, m := range s.Kept() {
			lines := strings.SplitN(string(m), "\r\n", 3)
			switch {
			case len(lines) < 3 || !strings.HasPrefix(lines[0], "INVITE sip:bob@"):
				bad = append(bad, fmt.Sprintf("backend %d: not our INVITE:\n%.300s", i+1, m))
			case !strings.HasPrefix(lines[1], viaPrefix) || !strings.Contains(lines[1], "branch=z9hG4bK"):
				bad = append(bad, fmt.Sprintf("backend %d: top Via is not the edge's %q:\n%.400s", i+1, viaPrefix, m))
			case !bytes.Contains(m, []byte("\r\nMax-Forwards: 69\r\n")):
				bad = append(bad, fmt.Sprintf("backend %d: Max-Forwards not 69:\n%.600s", i+1, m))
			}
			if len(bad) > 3 {
				break
			}
		}
		if n := snmpUDP(e.topo.Backends[i].NS)["InCsumErrors"] - csum0[i]; n != 0 {
			bad = append(bad, fmt.Sprintf("backend %d: %d UDP checksum errors", i+1, n))
		}
	}
	// A paced 5k/s is far below what any of the systems forwards: a loss
	// here is a broken setup (or a machine busy with other work).
	if got < sent*90/100 {
		bad = append(bad, fmt.Sprintf("%d of %d messages arrived at 5k/s", got, sent))
	}
	if len(bad) > 0 {
		var diag strings.Builder
		pk, _, _ := e.sink.Count()
		fmt.Fprintf(&diag, "XDP sink counted %d datagrams in all; edge UDP %v\n", pk, snmpUDP(e.topo.Edge))
		if sys.Agent != nil {
			fp, err1 := sys.Agent.fastPath()
			fwd, err2 := sys.Agent.slowForwarded()
			fmt.Fprintf(&diag, "fastpath.stats %+v %v; sipproxy.stats forwarded %d %v\n", fp, err1, fwd, err2)
		}
		diag.WriteString(e.topo.Client.NS.Run(b, "ip", "-s", "-s", "link", "show", e.topo.Client.Dev))
		for _, dev := range e.edgeDevs {
			diag.WriteString(e.topo.Edge.Run(b, "ip", "-s", "-s", "link", "show", dev))
		}
		diag.WriteString(e.topo.Edge.Run(b, "ethtool", "-S", e.topo.Client.EdgeDev))
		b.Fatalf("%s: delivery check failed:\n%s\n%s", sys.Name, strings.Join(bad, "\n"), diag.String())
	}
	return fmt.Sprintf("%d/%d arrived at 5k/s (per backend %s), edge Via on top, Max-Forwards 69, no checksum error", got, sent, strings.Join(per, "/"))
}

// writeReport prints the machine, the placement, the table and the
// ratios.
func writeReport(w io.Writer, m machine, e *trafficEnv, rs []*result, window time.Duration) {
	fmt.Fprintf(w, "\n# BenchmarkTraffic, %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "machine: %s\n", m)
	fmt.Fprintf(w, "load: %d generator stream(s), sendmmsg ≤64, bursts every %v at a target rate, INVITE %d bytes with SDP, new Call-ID/branch/tag per message; generator on CPU %v, edge on CPU %d (NAPI threads %s), %d backends (XDP count+drop sink), measured window %v per system\n\n",
		len(e.streams), quantum(), e.streams[0].Template.Len(), e.genCPUs, e.edgeCPU, edgeNAPIPolicy(), len(e.backends), window)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "system\tmsg/s at ≤1% loss\tsaturated: offered → delivered msg/s\tflat out: offered → delivered\tedge CPU µs/msg ≤1% / sat.\tedge CPU busy (other) ≤1% / sat.\tsoftirq edge/gen\tXDP ns/pkt\t")
	for _, r := range rs {
		xdp := "-"
		if r.xdpRuns > 0 {
			xdp = fmt.Sprintf("%.0f", r.xdpNsPerRun)
		}
		lossless := fmt.Sprintf("%.0f", r.delivered)
		if r.genBound {
			lossless += " (gen-bound)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f → %.0f (%.1f%% loss)\t%.0f → %.0f\t%.2f / %.2f\t%.0f%% (%.0f%%) / %.0f%% (%.0f%%)\t%.0f%%/%.0f%%\t%s\t\n",
			r.sys.Name, lossless, r.sat.offered, r.sat.delivered, 100*r.sat.loss, r.over.offered, r.over.delivered,
			us(r.cpuPerMsg), us(r.sat.cpuPerMsg), 100*r.edgeBusy, 100*r.edgeOther, 100*r.sat.edgeBusy, 100*r.sat.edgeOther,
			100*r.sat.edgeSoftirq, 100*r.sat.genSoftirq, xdp)
	}
	tw.Flush()
	by := map[string]*result{}
	for _, r := range rs {
		by[r.sys.Short] = r
	}
	fmt.Fprintln(w)
	for _, p := range [][2]string{{"fast", "slow"}, {"fast", "kamailio"}, {"slow", "kamailio"}} {
		x, y := by[p[0]], by[p[1]]
		if x == nil || y == nil {
			continue
		}
		fmt.Fprintf(w, "%s/%s: msg/s saturated ×%.2f (at ≤1%% loss ×%.2f); edge CPU per message saturated ×%.3f = %.1f× less (at ≤1%% loss ×%.3f)\n",
			p[0], p[1], x.sat.delivered/y.sat.delivered, x.delivered/y.delivered,
			x.sat.cpuPerMsg.Seconds()/y.sat.cpuPerMsg.Seconds(), y.sat.cpuPerMsg.Seconds()/x.sat.cpuPerMsg.Seconds(),
			x.cpuPerMsg.Seconds()/y.cpuPerMsg.Seconds())
	}
	fmt.Fprintln(w)
	for _, r := range rs {
		fmt.Fprintf(w, "%s: %s; search %s; at ≤1%% loss: edge CPU %.2f s in %v (proxy processes %.0f%%, NAPI threads %.0f%%), %.2f µs/msg from the edge CPU's busy time",
			r.sys.Short, r.sys.Detail, strings.Join(r.steps, ", "), r.edgeSeconds, r.window.Round(time.Millisecond), 100*r.procShare, 100*(1-r.procShare), us(r.busyPerMsg))
		if r.xdpRuns > 0 {
			fmt.Fprintf(w, "; XDP program %.0f%% of the edge CPU time (saturated %.0f%%, %.0f ns/pkt), fast path forwarded %.2f%% (rest passed up), the agent drained %.0f%% of the INVITE events (saturated %.0f%%)",
				100*r.xdpShare, 100*r.sat.xdpShare, r.sat.xdpNsPerRun, 100*r.fastShare, 100*r.eventShare, 100*r.sat.eventShare)
		}
		if r.sat != r {
			fmt.Fprintf(w, "; saturated: edge CPU %.2f s (proxy processes %.0f%%)", r.sat.edgeSeconds, 100*r.sat.procShare)
		}
		if n := r.sat.rcvbufErrs; n > 0 {
			fmt.Fprintf(w, "; saturated: %d UDP receive-buffer overflows at the edge", n)
		}
		fmt.Fprintf(w, "; check: %s\n", r.checked)
	}
}

func us(d time.Duration) float64 { return d.Seconds() * 1e6 }
