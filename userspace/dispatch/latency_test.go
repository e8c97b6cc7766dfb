package dispatch

import (
	"math"
	"testing"
	"time"
)

// The expected values are computed by hand from Kamailio's
// latency_stats_update (dispatch.c; kamailio-behaviour §3.6): Welford's
// mean and variance, the training jump (count past 10 with a deviation
// under 0.5 jumps to 10000), and the estimate (the mean for the first 9
// samples, then est*alpha + sample*(1-alpha)).
func TestLatencyStatsAdd(t *testing.T) {
	rep := func(n int, ms ...int) []int {
		var out []int
		for range n {
			out = append(out, ms...)
		}
		return out
	}
	tests := []struct {
		name    string
		samples []int
		alpha   float32
		want    LatencyStats // m2 not compared
	}{
		{
			// 1: avg 10. 2: delta 10, avg 15, m2 10*5 = 50, std √50.
			// 3: delta 15, avg 20, m2 50 + 15*10 = 200, std √(200/2) = 10.
			name: "three samples", samples: []int{10, 20, 30}, alpha: 0.1,
			want: LatencyStats{Avg: 20, Std: 10, Est: 20, Max: 30, Min: 10, Count: 3},
		},
		{
			name: "one sample", samples: []int{7}, alpha: 0.1,
			want: LatencyStats{Avg: 7, Std: 0, Est: 7, Max: 7, Min: 7, Count: 1},
		},
		{
			// 10 samples 10,30,...: avg 20, m2 = 10*10² = 1000. Est at 9
			// samples (5×10, 4×30) = 170/9; at the 10th (30) the EWMA
			// starts: 170/9*0.1 + 30*0.9 = 28.8889. 11th (10): no jump
			// (std 10.54), avg 210/11 = 19.0909, m2 = 6*(100/11)² +
			// 5*(120/11)² = 12000/11, std √(1200/11) = 10.4447, est
			// 28.8889*0.1 + 10*0.9 = 11.8889.
			name: "EWMA after 10 samples", samples: append(rep(5, 10, 30), 10), alpha: 0.1,
			want: LatencyStats{Avg: 210.0 / 11, Std: float32(math.Sqrt(1200.0 / 11)), Est: 170.0/9*0.1*0.1 + 30*0.9*0.1 + 10*0.9, Max: 30, Min: 10, Count: 11},
		},
		{
			// 10 samples of 20: std 0. The 11th (120) finds count 11 > 10
			// and std < 0.5: count jumps to 10000, so avg moves by
			// 100/10000 only: 20.01; m2 = 100*99.99 = 9999, std
			// √(9999/9999) = 1; est 20*0.1 + 120*0.9 = 110.
			name: "training jump", samples: append(rep(10, 20), 120), alpha: 0.1,
			want: LatencyStats{Avg: 20.01, Std: 1, Est: 110, Max: 120, Min: 20, Count: latencyTrained},
		},
		{
			// The same with Kamailio 5.8's alpha 0.9: est 20*0.9 + 120*0.1 = 30.
			name: "training jump, alpha 0.9", samples: append(rep(10, 20), 120), alpha: 0.9,
			want: LatencyStats{Avg: 20.01, Std: 1, Est: 30, Max: 120, Min: 20, Count: latencyTrained},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s LatencyStats
			for _, ms := range tc.samples {
				s.add(ms, tc.alpha)
			}
			checkLatency(t, s, tc.want)
		})
	}
}

// At the count cap (2^21) the count stops and m2 shrinks by m2/count
// before the sample: with avg 20, std 2 (m2 = 4*(cap-1)) and a sample of
// 20 (delta 0), std becomes √(4*(1-1/cap)).
func TestLatencyStatsCountCap(t *testing.T) {
	s := LatencyStats{Avg: 20, Std: 2, Est: 20, Max: 30, Min: 10, Count: latencyCountCap, m2: 4 * (latencyCountCap - 1)}
	s.add(20, 0.1)
	want := LatencyStats{Avg: 20, Std: float32(math.Sqrt(4 * (1 - 1.0/latencyCountCap))), Est: 20, Max: 30, Min: 10, Count: latencyCountCap}
	checkLatency(t, s, want)
}

func checkLatency(t *testing.T, got, want LatencyStats) {
	t.Helper()
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-3 }
	if !near(got.Avg, want.Avg) || !near(got.Std, want.Std) || !near(got.Est, want.Est) ||
		got.Max != want.Max || got.Min != want.Min || got.Count != want.Count || got.Timeout != want.Timeout {
		t.Errorf("got AVG %v STD %v EST %v MAX %d MIN %d COUNT %d TIMEOUT %d\nwant AVG %v STD %v EST %v MAX %d MIN %d COUNT %d TIMEOUT %d",
			got.Avg, got.Std, got.Est, got.Max, got.Min, got.Count, got.Timeout,
			want.Avg, want.Std, want.Est, want.Max, want.Min, want.Count, want.Timeout)
	}
}

func latencyDispatcher(t *testing.T, on bool, entries []Entry) *Dispatcher {
	t.Helper()
	return New(mustBuild(t, Options{LatencyStats: on, LatencyAlpha: DefaultLatencyAlpha}, entries))
}

// A 408 (a probe timeout, or a 408 received: Kamailio does not tell them
// apart) counts TIMEOUT and is not measured; any other code is measured,
// in whole milliseconds (truncated). Only a destination with the probing
// flag is measured, and nothing when ds_ping_latency_stats is off.
func TestProbeLatency(t *testing.T) {
	entries := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Flags: FlagProbing},
		{SetID: 1, URI: "sip:10.0.0.2"},
	}
	d := latencyDispatcher(t, true, entries)
	d.ProbeLatency(1, "SIP:10.0.0.1", 200, 20900*time.Microsecond)
	d.ProbeLatency(1, "sip:10.0.0.1", 408, 5*time.Second)
	d.ProbeLatency(1, "sip:10.0.0.1", 503, 30*time.Millisecond)
	d.ProbeLatency(1, "sip:10.0.0.2", 200, 20*time.Millisecond) // no probing flag
	d.ProbeLatency(2, "sip:10.0.0.1", 200, 20*time.Millisecond) // no such set
	checkLatency(t, d.Latency(1, "sip:10.0.0.1"), LatencyStats{Avg: 25, Std: float32(math.Sqrt(50)), Est: 25, Max: 30, Min: 20, Count: 2, Timeout: 1})
	checkLatency(t, d.Latency(1, "sip:10.0.0.2"), LatencyStats{})

	off := latencyDispatcher(t, false, entries)
	off.ProbeLatency(1, "sip:10.0.0.1", 200, 20*time.Millisecond)
	off.ProbeLatency(1, "sip:10.0.0.1", 408, 0)
	checkLatency(t, off.Latency(1, "sip:10.0.0.1"), LatencyStats{})
}

// The statistics live outside the snapshots: a state change (a new
// snapshot) keeps them, a reload keeps them for every (set, URI) it keeps
// (kamailio PR #3534) and drops those of removed destinations, so one
// added again starts from zero; dispatcher.remove drops them too.
func TestLatencyKeptAcrossReload(t *testing.T) {
	list := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Flags: FlagProbing},
		{SetID: 1, URI: "sip:10.0.0.2", Flags: FlagProbing},
		{SetID: 2, URI: "sip:10.0.0.3", Flags: FlagProbing},
	}
	d := latencyDispatcher(t, true, list)
	for _, u := range []string{"sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.3"} {
		set := 1
		if u == "sip:10.0.0.3" {
			set = 2
		}
		d.ProbeLatency(set, u, 200, 20*time.Millisecond)
		d.ProbeLatency(set, u, 408, 0)
	}
	one := LatencyStats{Avg: 20, Est: 20, Max: 20, Min: 20, Count: 1, Timeout: 1}

	if err := d.SetState(1, "sip:10.0.0.1", "ip"); err != nil {
		t.Fatal(err)
	}
	checkLatency(t, d.Latency(1, "sip:10.0.0.1"), one)

	// Reload: 10.0.0.2 leaves set 1, the URI case changes for 10.0.0.1,
	// set 2 is kept as is.
	reloaded := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Flags: FlagProbing, Priority: 5},
		{SetID: 2, URI: "SIP:10.0.0.3", Flags: FlagProbing},
	}
	d.Replace(mustBuild(t, Options{LatencyStats: true, LatencyAlpha: DefaultLatencyAlpha}, reloaded))
	checkLatency(t, d.Latency(1, "sip:10.0.0.1"), one)
	checkLatency(t, d.Latency(2, "sip:10.0.0.3"), one)
	checkLatency(t, d.Latency(1, "sip:10.0.0.2"), LatencyStats{})

	d.Replace(mustBuild(t, Options{LatencyStats: true, LatencyAlpha: DefaultLatencyAlpha}, list))
	checkLatency(t, d.Latency(1, "sip:10.0.0.2"), LatencyStats{})
	checkLatency(t, d.Latency(1, "sip:10.0.0.1"), one)

	d.ProbeLatency(1, "sip:10.0.0.2", 200, 20*time.Millisecond)
	d.ProbeLatency(1, "sip:10.0.0.2", 408, 0)
	checkLatency(t, d.Latency(1, "sip:10.0.0.2"), one)
	if err := d.Remove(1, "sip:10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	checkLatency(t, d.Latency(1, "sip:10.0.0.2"), LatencyStats{})
	checkLatency(t, d.Latency(1, "sip:10.0.0.1"), one)
}
