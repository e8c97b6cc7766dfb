package tests

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
)

// slowResponder answers each OPTIONS with 200 after delay (0: never).
func slowResponder(t *testing.T, delay time.Duration) string {
	t.Helper()
	addr := freeAddr(t)
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("responder on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			msg := strings.ReplaceAll(string(buf[:n]), "\r\n", "\n")
			if !strings.HasPrefix(msg, "OPTIONS ") || delay == 0 {
				continue
			}
			reply := []byte(answer(msg, 200))
			wg.Add(1)
			time.AfterFunc(delay, func() {
				defer wg.Done()
				_, _ = c.WriteToUDPAddrPort(reply, src)
			})
		}
	}()
	t.Cleanup(func() { c.Close(); <-done; wg.Wait() })
	return sipURI(addr)
}

// latencyOf reads each destination's LATENCY from dispatcher.list ("SET URI" keys).
type latency struct {
	Avg, Std, Est float64
	Max           int
	Timeout       int
}

func latencyOf(t *testing.T, raw json.RawMessage) map[string]*latency {
	t.Helper()
	var res struct {
		Records []struct {
			Set struct {
				Targets []struct {
					Dest struct {
						URI     string `json:"URI"`
						Latency *struct {
							Avg     float64 `json:"AVG"`
							Std     float64 `json:"STD"`
							Est     float64 `json:"EST"`
							Max     int     `json:"MAX"`
							Timeout int     `json:"TIMEOUT"`
						} `json:"LATENCY"`
					} `json:"DEST"`
				} `json:"TARGETS"`
			} `json:"SET"`
		} `json:"RECORDS"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("dispatcher.list: %v: %s", err, raw)
	}
	out := map[string]*latency{}
	for _, r := range res.Records {
		for _, d := range r.Set.Targets {
			if l := d.Dest.Latency; l != nil {
				out[d.Dest.URI] = &latency{Avg: l.Avg, Std: l.Std, Est: l.Est, Max: l.Max, Timeout: l.Timeout}
			}
		}
	}
	return out
}

// TestProbingLatencyStats: with ds_ping_latency_stats 1, a backend that
// answers probes after 20 ms shows AVG and MAX of at least 20 ms (the
// delay: samples are truncated milliseconds of a longer round trip) and
// plausibly close to it, EST and STD within MAX, TIMEOUT 0; a silent one
// counts TIMEOUTs. A dispatcher.reload keeps both (kamailio PR #3534).
// Without the feature LATENCY is absent and the test fails.
func TestProbingLatencyStats(t *testing.T) {
	t.Parallel()
	const delay = 20 * time.Millisecond
	slow, silent := slowResponder(t, delay), slowResponder(t, 0)
	cfg := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: freeAddr(t)}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 4}},
		Dests:     []agent.Dest{{Set: 1, URI: slow}, {Set: 1, URI: silent}},
		DispatcherKeys: append(probeKeys[:len(probeKeys):len(probeKeys)],
			[2]string{"ds_ping_latency_stats", "1"}),
	}
	a := agent.Start(t, bins, cfg, agent.Options{})

	// Wait for 10+ samples' worth of probes (200 ms interval) and 3 timeouts.
	var got map[string]*latency
	deadline := time.Now().Add(15 * time.Second)
	for {
		got = latencyOf(t, a.MustCtl(t, "dispatcher.list"))
		if s, q := got[slow], got[silent]; s != nil && q != nil && s.Max > 0 && q.Timeout >= 3 {
			break
		}
		if time.Now().After(deadline) {
			a.LogOutput()
			t.Fatalf("no LATENCY with samples after 15 s: %+v %+v", got[slow], got[silent])
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(12 * probeInterval)
	got = latencyOf(t, a.MustCtl(t, "dispatcher.list"))
	s, q := got[slow], got[silent]
	t.Logf("slow: %+v; silent: %+v", *s, *q)
	const ceiling = 20 + 180 // ms: the agent under -race on a loaded VM
	if s.Avg < 20 || s.Avg > ceiling {
		t.Errorf("AVG %.2f ms for a backend answering after %v, want 20..%d", s.Avg, delay, ceiling)
	}
	if s.Max < 20 || float64(s.Max) < s.Avg {
		t.Errorf("MAX %d ms, want at least 20 and at least AVG %.2f", s.Max, s.Avg)
	}
	if s.Est < 20 || s.Est > float64(s.Max) || s.Std < 0 || s.Std > float64(s.Max) {
		t.Errorf("EST %.2f / STD %.2f not within 20..MAX %d", s.Est, s.Std, s.Max)
	}
	if s.Timeout != 0 {
		t.Errorf("TIMEOUT %d for a backend that answers every probe", s.Timeout)
	}
	if q.Max != 0 || q.Avg != 0 {
		t.Errorf("silent backend measured: %+v (a timeout is counted, not measured)", *q)
	}

	a.MustCtl(t, "dispatcher.reload")
	after := latencyOf(t, a.MustCtl(t, "dispatcher.list"))
	if l := after[slow]; l == nil || l.Max < s.Max || l.Avg < 20 {
		t.Errorf("after dispatcher.reload: %+v, want the statistics kept (MAX ≥ %d)", l, s.Max)
	}
	if l := after[silent]; l == nil || l.Timeout < q.Timeout {
		t.Errorf("after dispatcher.reload: %+v, want TIMEOUT ≥ %d kept", l, q.Timeout)
	}
}

// TestAlgLatencyPrefersFastBackend: with algorithm 13 over two backends
// of priority 10 and latency statistics on, calls go to the backend that
// answers probes fast (the slow one, EST ≈ 80 ms, ranks 10 − 80/10 = 2);
// when the two swap speeds, calls follow the new fast one once the
// estimates have moved. Without alg 13 the config is refused (the agent
// does not start) and with round robin half the calls go to the slow one.
func TestAlgLatencyPrefersFastBackend(t *testing.T) {
	t.Parallel()
	const slow = 80 * time.Millisecond
	a1, a2 := newResponder(t, 200), newResponder(t, 200)
	a2.delay.Store(int64(slow))
	edge := freeAddr(t)
	cfg := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 13}},
		Dests: []agent.Dest{
			{Set: 1, URI: sipURI(a1.Addr), Priority: 10},
			{Set: 1, URI: sipURI(a2.Addr), Priority: 10},
		},
		DispatcherKeys: append(probeKeys[:len(probeKeys):len(probeKeys)],
			[2]string{"ds_ping_latency_stats", "1"}),
	}
	a := agent.Start(t, bins, cfg, agent.Options{})
	c := newRawClient(t, edge)
	u1, u2 := sipURI(a1.Addr), sipURI(a2.Addr)

	// waitEst waits until fast's EST is under 10 ms and slow's over 40.
	waitEst := func(fast, slow string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := latencyOf(t, a.MustCtl(t, "dispatcher.list"))
			if f, s := got[fast], got[slow]; f != nil && s != nil && f.Est < 10 && s.Est > 40 {
				t.Logf("EST fast %.1f ms, slow %.1f ms", f.Est, s.Est)
				return
			}
			if time.Now().After(deadline) {
				a.LogOutput()
				t.Fatalf("estimates did not separate in 15 s: %+v %+v", got[fast], got[slow])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	waitEst(u1, u2)
	sendInvites(t, c, "first", 10)
	if n1, n2 := countPrefix(a1.Invites(), "first"), countPrefix(a2.Invites(), "first"); n1 != 10 || n2 != 0 {
		t.Errorf("fast backend got %d, slow %d of 10 calls; want 10 and 0", n1, n2)
	}

	// The fast one becomes slow and the slow one fast.
	a1.delay.Store(int64(slow))
	a2.delay.Store(0)
	waitEst(u2, u1)
	sendInvites(t, c, "swapped", 10)
	if n1, n2 := countPrefix(a1.Invites(), "swapped"), countPrefix(a2.Invites(), "swapped"); n1 != 0 || n2 != 10 {
		t.Errorf("after the swap the now slow backend got %d, the now fast %d of 10 calls; want 0 and 10", n1, n2)
	}
}
