package dispatch

import "testing"

// BenchmarkProbeResultNoChange is one probe result that changes nothing (a
// success on an active destination in mode 1, the steady state of
// probing) in a set of 1,000 destinations.
func BenchmarkProbeResultNoChange(b *testing.B) {
	es := hosts(1000)
	for i := range es {
		es[i].Flags = FlagProbing
	}
	d := New(mustBuild(b, Options{}, es))
	uri := es[500].URI
	p := ProbeParams{Mode: ProbeAll, ProbingThreshold: 1, InactiveThreshold: 1}
	b.ReportAllocs()
	for b.Loop() {
		changed, err := d.ProbeResult(1, uri, true, p)
		if err != nil || changed {
			b.Fatal(changed, err)
		}
	}
}
