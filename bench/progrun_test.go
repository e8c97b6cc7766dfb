package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// The XDP program alone, per packet, under BPF_PROG_TEST_RUN (see README.md,
// "XDP program cost"). Every run is one syscall with Repeat=1, because with a
// repeat count the kernel feeds the rewritten packet back into the program;
// the kernel's own timing of that one run is used (no syscall cost), and the
// same figure for a program that only returns XDP_PASS (the harness floor) is
// subtracted. SIPEDGE_BENCH_OBJECT names another build of bpf/xdp_sip.c to
// measure instead of the embedded one (A/B runs of a change).

var (
	listener = netip.MustParseAddrPort("192.0.2.10:5060")
	client   = netip.MustParseAddrPort("198.51.100.7:5060")
	backend  = netip.MustParseAddrPort("10.0.0.11:5060")
)

const sdp = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0 8 97 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"

// message is one benchmarked datagram.
type message struct {
	name     string
	src      netip.AddrPort
	sip      string
	wantVerd uint32
}

func messages() []message {
	dialog := "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n" +
		"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
	invite := "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnashds8;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: Bob <sip:bob@biloxi.example.com>\r\n" +
		"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
		"CSeq: 314159 INVITE\r\n" +
		"Contact: <sip:alice@198.51.100.7:5060>\r\n" +
		"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, SUBSCRIBE, INFO, UPDATE\r\n" +
		"Supported: replaces, timer, 100rel\r\n" +
		"Session-Expires: 1800;refresher=uac\r\n" +
		"Min-SE: 90\r\n" +
		"P-Asserted-Identity: \"Alice\" <sip:alice@atlanta.example.com>\r\n" +
		"User-Agent: sipedge-bench/1.0 (load generator)\r\n" +
		"Content-Type: application/sdp\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(sdp)) + sdp
	ok := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK0a65dd4757965f688\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnashds8;rport=5060;received=198.51.100.7\r\n" +
		dialog + "CSeq: 314159 INVITE\r\n" +
		"Record-Route: <sip:192.0.2.10:5060;lr>\r\n" +
		"Contact: <sip:bob@10.0.0.11:5060>\r\n" +
		"Content-Type: application/sdp\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(sdp)) + sdp
	inDialog := func(method, cseq string) string {
		return method + " sip:bob@10.0.0.11:5060 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n" +
			"Max-Forwards: 70\r\n" + dialog + "CSeq: " + cseq + "\r\n" +
			"User-Agent: sipedge-bench/1.0 (load generator)\r\n" +
			"Content-Length: 0\r\n\r\n"
	}
	options := "OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKopt1\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: <sip:bob@biloxi.example.com>\r\n" +
		"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
		"Call-ID: opt-84b4c76e66710@pc33.atlanta.example.com\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Accept: application/sdp\r\n" +
		"Content-Length: 0\r\n\r\n"
	return []message{
		{"INVITE", client, invite, dptest.XDPRedirect},
		{"200_OK", backend, ok, dptest.XDPRedirect},
		{"ACK", client, inDialog("ACK", "314159 ACK"), dptest.XDPRedirect},
		{"BYE", client, inDialog("BYE", "314160 BYE"), dptest.XDPRedirect},
		{"OPTIONS", client, options, dptest.XDPRedirect},
	}
}

func setup(tb testing.TB) *dptest.Env {
	tb.Helper()
	opts := dataplane.Options{ObjectPath: os.Getenv("SIPEDGE_BENCH_OBJECT")}
	env := dptest.NewEnvWith(tb, opts, netip.MustParsePrefix("10.0.0.0/8"))
	setupEnv(tb, env)
	return env
}

func setupEnv(tb testing.TB, env *dptest.Env) {
	tb.Helper()
	setupDP(tb, env.DP)
}

// setupDP writes the benchmark's set and listener into dp's maps.
func setupDP(tb testing.TB, dp *dataplane.Dataplane) {
	tb.Helper()
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.11:5060"},
		{SetID: 1, URI: "sip:10.0.0.12:5060"},
		{SetID: 1, URI: "sip:10.0.0.13:5060"},
	}, dispatch.Options{Resolver: func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("no DNS")
	}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := dp.SyncSets(snap); err != nil {
		tb.Fatal(err)
	}
	if err := dp.SyncListeners([]dataplane.Listener{{Addr: listener, Rule: dataplane.Rule{SetID: 1}}}); err != nil {
		tb.Fatal(err)
	}
}

func frameOf(env *dptest.Env, m message) []byte {
	in := env.SideOf(m.src.Addr())
	return dptest.Frame{DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: m.src, Dst: listener, TTL: 64, Payload: []byte(m.sip)}.Build()
}

// floorProgram only returns XDP_PASS: the harness's own cost.
func floorProgram(tb testing.TB) *ebpf.Program {
	tb.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, dptest.XDPPass, asm.DWord), asm.Return()},
		License:      "MIT",
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// TestProgRunMessages checks that every benchmarked message takes the
// forwarding path (so the figures are the forwarding cost, not a pass).
func TestProgRunMessages(t *testing.T) {
	env := setup(t)
	for _, m := range messages() {
		_, v, err := env.Time(env.DP.Program(), frameOf(env, m), 1)
		if err != nil {
			t.Fatal(err)
		}
		if v != m.wantVerd {
			c, _ := env.DP.PassCounts()
			t.Errorf("%s (%d bytes): verdict %d, want %d; pass counts %v", m.name, len(m.sip), v, m.wantVerd, nonZero(c))
		}
	}
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// BenchmarkProgRun reports, per message, the in-kernel time of one run of the
// XDP program (ns/pkt), that time minus the harness floor (prog-ns/pkt), both
// as means, and the median run minus the median floor run (p50-prog-ns/pkt:
// the figure least moved by other work on the machine). Program and floor runs
// alternate, so both see the same conditions.
func BenchmarkProgRun(b *testing.B) {
	env := setup(b)
	floor := floorProgram(b)
	var rows []string
	for _, m := range messages() {
		frame := frameOf(env, m)
		b.Run(m.name, func(b *testing.B) {
			n := max(b.N, 1000)
			// warm up caches and the JIT image
			if _, _, err := env.Time(env.DP.Program(), frame, 100); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			progRuns, baseRuns := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
			var v uint32
			var err error
			env.Do(func() {
				for i := 0; i < n && err == nil; i++ {
					var d time.Duration
					if v, d, err = env.DP.Program().Benchmark(frame, 1, nil); err != nil {
						return
					}
					progRuns = append(progRuns, d)
					if _, d, err = floor.Benchmark(frame, 1, nil); err != nil {
						return
					}
					baseRuns = append(baseRuns, d)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			if v != m.wantVerd {
				b.Fatalf("%s: verdict %d, want %d", m.name, v, m.wantVerd)
			}
			prog, base := mean(progRuns), mean(baseRuns)
			p50 := median(progRuns) - median(baseRuns)
			b.ReportMetric(float64(prog.Nanoseconds()), "ns/pkt")
			b.ReportMetric(float64((prog - base).Nanoseconds()), "prog-ns/pkt")
			b.ReportMetric(float64(p50.Nanoseconds()), "p50-prog-ns/pkt")
			b.ReportMetric(float64(len(m.sip)), "bytes")
			rows = append(rows, fmt.Sprintf("%-8s %5d B %7d ns/pkt %7d prog-ns/pkt %7d p50-prog-ns/pkt (floor %d ns)",
				m.name, len(m.sip), prog.Nanoseconds(), (prog-base).Nanoseconds(), p50.Nanoseconds(), base.Nanoseconds()))
		})
	}
	b.Logf("XDP program per packet (BPF_PROG_TEST_RUN, Repeat=1, in-kernel time):\n%s", strings.Join(rows, "\n"))
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(len(ds), 1))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkProgRunEventCopies compares, per message, the program loaded as
// without dialog tracking (events compact) with the program loaded with
// EventCopies (an INVITE's and a 200-INVITE's event carry the message),
// side by side in one run: the two programs (in alternating order) and the
// floor take turns on the same frame in the same namespace. Both rings are drained every 256
// runs (outside the timed runs), so every event is written, none lost: a
// full ring would time the cheaper loss path. Reported: the in-kernel time
// minus the floor's, mean and median, for each, and the ratio of the
// medians (copies on / off). ACK carries no copy either way: its ratio is
// the noise.
func BenchmarkProgRunEventCopies(b *testing.B) {
	env := setup(b)
	on, err := dataplane.Load(dataplane.Options{NoPin: true, EventCopies: true, ObjectPath: os.Getenv("SIPEDGE_BENCH_OBJECT")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { on.Close() })
	setupDP(b, on)
	floor := floorProgram(b)
	var readers []*dataplane.EventReader
	for _, dp := range []*dataplane.Dataplane{env.DP, on} {
		r, err := dp.NewEventReader()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		readers = append(readers, r)
	}
	drain := func() error {
		for _, r := range readers {
			if _, err := r.Drain(0, func([]dataplane.Event) {}); err != nil {
				return err
			}
		}
		return nil
	}
	var names []string
	rows := map[string]string{} // by message: the last run of each (b.Run runs once with b.N 1 first)
	for _, m := range messages() {
		if m.name != "INVITE" && m.name != "200_OK" && m.name != "ACK" {
			continue
		}
		frame := frameOf(env, m)
		b.Run(m.name, func(b *testing.B) {
			n := max(b.N, 1000)
			for _, p := range []*ebpf.Program{env.DP.Program(), on.Program()} {
				if _, _, err := env.Time(p, frame, 100); err != nil { // warm up
					b.Fatal(err)
				}
			}
			if err := drain(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			offRuns, onRuns, baseRuns := make([]time.Duration, 0, n), make([]time.Duration, 0, n), make([]time.Duration, 0, n)
			var vOff, vOn uint32
			var err error
			env.Do(func() {
				for i := 0; i < n && err == nil; i++ {
					var d time.Duration
					// Which of the two runs first alternates: the second
					// finds the frame and the maps warm.
					if i%2 == 1 {
						if vOn, d, err = on.Program().Benchmark(frame, 1, nil); err != nil {
							return
						}
						onRuns = append(onRuns, d)
					}
					if vOff, d, err = env.DP.Program().Benchmark(frame, 1, nil); err != nil {
						return
					}
					offRuns = append(offRuns, d)
					if i%2 == 0 {
						if vOn, d, err = on.Program().Benchmark(frame, 1, nil); err != nil {
							return
						}
						onRuns = append(onRuns, d)
					}
					if _, d, err = floor.Benchmark(frame, 1, nil); err != nil {
						return
					}
					baseRuns = append(baseRuns, d)
					if i%256 == 255 {
						err = drain()
					}
				}
			})
			if err == nil {
				err = drain()
			}
			if err != nil {
				b.Fatal(err)
			}
			if vOff != m.wantVerd || vOn != m.wantVerd {
				b.Fatalf("%s: verdicts %d (copies off), %d (on), want %d", m.name, vOff, vOn, m.wantVerd)
			}
			for _, dp := range []*dataplane.Dataplane{env.DP, on} {
				if lost, err := dp.EventsLost(); err != nil || len(lost) != 0 {
					b.Fatalf("events lost %v, %v: the figures would time the loss path", lost, err)
				}
			}
			base := mean(baseRuns)
			offMean, onMean := mean(offRuns)-base, mean(onRuns)-base
			offP50, onP50 := median(offRuns)-median(baseRuns), median(onRuns)-median(baseRuns)
			ratio := float64(onP50) / float64(max(offP50, 1))
			b.ReportMetric(float64(offMean.Nanoseconds()), "off-prog-ns/pkt")
			b.ReportMetric(float64(onMean.Nanoseconds()), "on-prog-ns/pkt")
			b.ReportMetric(float64(offP50.Nanoseconds()), "off-p50-ns/pkt")
			b.ReportMetric(float64(onP50.Nanoseconds()), "on-p50-ns/pkt")
			b.ReportMetric(ratio, "on/off-p50")
			if _, ok := rows[m.name]; !ok {
				names = append(names, m.name)
			}
			rows[m.name] = (fmt.Sprintf("%-8s %5d B  copies off %5d ns (p50 %5d)  on %5d ns (p50 %5d)  on/off p50 %.2f",
				m.name, len(m.sip), offMean.Nanoseconds(), offP50.Nanoseconds(), onMean.Nanoseconds(), onP50.Nanoseconds(), ratio))
		})
	}
	var out []string
	for _, name := range names {
		out = append(out, rows[name])
	}
	b.Logf("XDP program per packet minus the floor, event copies off and on (BPF_PROG_TEST_RUN, Repeat=1, in-kernel time):\n%s", strings.Join(out, "\n"))
}
