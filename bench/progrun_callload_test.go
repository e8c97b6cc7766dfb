package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// BenchmarkProgRunCallLoad compares the program's cost of a new call's
// INVITE dispatched with algorithm 10 (call_dst miss, the walk over the
// set's loads, the call_dst insert and the load's atomic add) with the
// same INVITE dispatched with algorithm 0 (Call-ID hash), side by side in
// one run: two programs loaded without events (so neither times a ring),
// their set of three destinations each with a duid, taking turns with the
// floor on the same frames in the same namespace. Every run has a Call-ID
// of its own, so every alg 10 run is a new call. Reported: in-kernel time
// minus the floor's, mean and median, for each, and the ratio of the
// medians (alg 10 / alg 0).
func BenchmarkProgRunCallLoad(b *testing.B) {
	env := setup(b)
	var progs []*ebpf.Program
	for _, alg := range []int{0, 10} {
		dp, err := dataplane.Load(dataplane.Options{NoPin: true, NoEvents: true, ObjectPath: os.Getenv("SIPEDGE_BENCH_OBJECT")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { dp.Close() })
		snap, err := dispatch.Build(context.Background(), []dispatch.Entry{
			{SetID: 1, URI: "sip:10.0.0.11:5060", Attrs: "duid=a"},
			{SetID: 1, URI: "sip:10.0.0.12:5060", Attrs: "duid=b"},
			{SetID: 1, URI: "sip:10.0.0.13:5060", Attrs: "duid=c"},
		}, dispatch.Options{Resolver: func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no DNS") }})
		if err != nil {
			b.Fatal(err)
		}
		if err := dp.SyncSets(snap); err != nil {
			b.Fatal(err)
		}
		if err := dp.SyncListeners([]dataplane.Listener{{Addr: listener, Rule: dataplane.Rule{SetID: 1, Alg: alg}}}); err != nil {
			b.Fatal(err)
		}
		progs = append(progs, dp.Program())
	}
	floor := floorProgram(b)
	invite := messages()[0]
	const callID = "Call-ID: a84b4c76e66710@pc33.atlanta.example.com"
	// frame i is the INVITE with a Call-ID of its own, as long as the
	// original (the payload's length stays).
	frame := func(i int) []byte {
		m := invite
		id := fmt.Sprintf("%014d@pc33.atlanta.example.com", i)
		m.sip = strings.Replace(m.sip, callID, "Call-ID: "+id, 1)
		return frameOf(env, m)
	}
	var row string
	b.Run("INVITE", func(b *testing.B) {
		n := max(b.N, 1000)
		for _, p := range progs {
			if _, _, err := env.Time(p, frame(-1), 100); err != nil { // warm up
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		runs := [2][]time.Duration{make([]time.Duration, 0, n), make([]time.Duration, 0, n)}
		base := make([]time.Duration, 0, n)
		var err error
		env.Do(func() {
			for i := 0; i < n && err == nil; i++ {
				f := frame(i)
				for k := range progs {
					p := progs[(i+k)%2] // alternate which goes first
					v, d, rerr := p.Benchmark(f, 1, nil)
					if rerr == nil && v != dptest.XDPRedirect {
						rerr = fmt.Errorf("run %d: verdict %d, want XDP_REDIRECT", i, v)
					}
					if rerr != nil {
						err = rerr
						return
					}
					runs[(i+k)%2] = append(runs[(i+k)%2], d)
				}
				_, d, ferr := floor.Benchmark(f, 1, nil)
				if ferr != nil {
					err = ferr
					return
				}
				base = append(base, d)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		fl, flMed := mean(base), median(base)
		alg0, alg10 := median(runs[0])-flMed, median(runs[1])-flMed
		b.ReportMetric(float64((mean(runs[0]) - fl).Nanoseconds()), "alg0-prog-ns/pkt")
		b.ReportMetric(float64((mean(runs[1]) - fl).Nanoseconds()), "alg10-prog-ns/pkt")
		b.ReportMetric(float64(alg0.Nanoseconds()), "alg0-p50-prog-ns/pkt")
		b.ReportMetric(float64(alg10.Nanoseconds()), "alg10-p50-prog-ns/pkt")
		ratio := float64(alg10) / float64(max(alg0, 1))
		b.ReportMetric(ratio, "p50-ratio")
		row = fmt.Sprintf("INVITE %d B, %d runs: alg 0 %d ns (p50 %d), alg 10 %d ns (p50 %d), p50 ratio %.2f (floor %d ns)",
			len(invite.sip), n, (mean(runs[0]) - fl).Nanoseconds(), alg0.Nanoseconds(),
			(mean(runs[1]) - fl).Nanoseconds(), alg10.Nanoseconds(), ratio, fl.Nanoseconds())
	})
	b.Logf("XDP program per new INVITE, algorithm 10 vs 0 (BPF_PROG_TEST_RUN, Repeat=1, in-kernel time minus the floor):\n%s", row)
}
