package dataplane_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/fixtures"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
)

// fixtureCase returns the fixture case in file name.
func fixtureCase(tb testing.TB, name string) fixtures.Case {
	tb.Helper()
	cases, err := fixtures.Load(fixtures.Dir())
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range cases {
		if filepath.Base(c.File) == name {
			return c
		}
	}
	tb.Fatalf("no fixture %s", name)
	return fixtures.Case{}
}

// BenchmarkEventDrain measures the agent's drain loop on one core: the
// program fills the event ring (the agent's size) with the events of a
// fixture INVITE forwarded over and over, then one EventReader.Drain empties
// it, counting events by kind and method as the agent does. b.N is events.
// The figures are the drain's alone: events/s and ns/event. ns/op also
// counts the filling, one BPF_PROG_TEST_RUN per INVITE (tens of µs: with a
// repeat count the kernel feeds each run the frame the last one rewrote,
// no longer for a listener, and live frames, where every run sees the frame
// as given, are refused with EPERM here); the timer is not stopped around
// it so that the default -benchtime stays short.
func BenchmarkEventDrain(b *testing.B) {
	env, lis, _, _ := eventsEnv(b, 0)
	c := fixtureCase(b, "invite-alg0-sdp.txt")
	in := env.SideOf(c.Src.Addr())
	frame := dptest.Frame{DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: c.Src, Dst: lis, TTL: 61, IPID: 0x4242, Payload: c.In}.Build()
	r, err := env.DP.NewEventReader()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	// A ring of 256 KiB holds 5,461 records of 48 bytes; fill it short of
	// full so that no event is lost (losses would be drained as nothing).
	const fill = 5000
	var counts [4][16]uint64
	count := func(evs []dataplane.Event) {
		for _, e := range evs {
			counts[e.Kind&3][e.Method&15]++
		}
	}
	drained := 0
	var busy time.Duration
	b.ResetTimer()
	for drained < b.N {
		n := min(fill, b.N-drained)
		for i := 0; i < n; i++ {
			if res, err := env.Run(frame, in); err != nil || res.Verdict != dptest.XDPRedirect {
				b.Fatalf("run: verdict %s, %v", verdictName(res.Verdict), err)
			}
		}
		start := time.Now()
		got, err := r.Drain(0, count)
		busy += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("drained %d events, the program wrote %d", got, n)
		}
		drained += got
	}
	if counts[dataplane.EventRequest][dataplane.MethodInvite] != uint64(drained) {
		b.Fatalf("counted %d INVITE events of %d", counts[dataplane.EventRequest][dataplane.MethodInvite], drained)
	}
	lost, err := env.DP.EventsLost()
	if err != nil || len(lost) != 0 {
		b.Fatalf("events lost %v, %v", lost, err)
	}
	b.ReportMetric(float64(drained)/busy.Seconds(), "events/s")
	b.ReportMetric(float64(busy.Nanoseconds())/float64(drained), "ns/event")
}
