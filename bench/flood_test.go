package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// BenchmarkFailoverFlood is issue 7's flood: the agent (the real binary)
// with one failover-mode listener over two backends that never answer, and
// INVITEs with fresh Call-IDs at a steady rate. The client ACKs every final
// response, as a UAC does. It reports the agent's peak RSS (VmHWM), the
// share of INVITEs that never got any response (lost at the agent's socket
// or in it), the kernel's drops on the agent's socket (/proc/net/udp's
// drops column, which any agent has), and, from sipproxy.stats when the
// agent has them, the peak of pending transactions and the
// share of INVITEs refused with 503 Retry-After because the table was full.
//
//	go test ./bench/ -run XXX -bench FailoverFlood -benchtime 1x
//
// SIPEDGE_FLOOD_RATE (calls/s, default 4000) and SIPEDGE_FLOOD_SECONDS
// (default 20) set the load; SIPEDGE_BENCH_BINS=DIR runs DIR/sipedge and
// DIR/sipedgectl instead of building this tree (to measure another
// commit's agent in the same run).
func BenchmarkFailoverFlood(b *testing.B) {
	rate := envInt("SIPEDGE_FLOOD_RATE", 4000)
	seconds := envInt("SIPEDGE_FLOOD_SECONDS", 20)
	bins := floodBins(b)

	backends := []*net.UDPConn{silentSocket(b), silentSocket(b)}
	listen := freeUDPPort(b)
	cfg := agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: listen}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 8, Mode: "failover"}},
		LogLevel:  "info",
	}
	for i, c := range backends {
		cfg.Dests = append(cfg.Dests, agent.Dest{Set: 1, URI: "sip:" + c.LocalAddr().String(), Priority: 2 - i})
	}
	a := agent.Start(b, bins, cfg, agent.Options{})

	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	_ = client.SetReadBuffer(32 << 20)
	me := client.LocalAddr().(*net.UDPAddr).AddrPort()

	var mu sync.Mutex
	answered := map[int]bool{}
	acked := map[int]bool{}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := client.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var m sipmsg.Msg
			in := buf[:n]
			if sipmsg.Parse(in, &m) != nil || m.IsRequest {
				continue
			}
			id, err := strconv.Atoi(strings.TrimPrefix(string(m.CallID.Bytes(in)), "flood-"))
			if err != nil {
				continue
			}
			mu.Lock()
			answered[id] = true
			ack := m.StatusCode >= 300 && !acked[id]
			acked[id] = acked[id] || ack
			mu.Unlock()
			if ack {
				_, _ = client.WriteToUDPAddrPort(floodAck(me, id, in, &m), listen)
			}
		}
	}()

	var peakPending int
	var rcvbufErrors, tableFull uint64
	sample := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := a.Ctl(ctx, "sipproxy.stats")
		if err != nil {
			return
		}
		var s struct {
			Pending *int `json:"pending_transactions"`
			Sockets []struct {
				RcvbufErrors uint64 `json:"rcvbuf_errors"`
			} `json:"sockets"`
			Stateful []struct {
				Label string `json:"label"`
				Count uint64 `json:"count"`
			} `json:"stateful"`
		}
		if json.Unmarshal(res, &s) == nil {
			if s.Pending != nil {
				peakPending = max(peakPending, *s.Pending)
			}
			for _, so := range s.Sockets {
				rcvbufErrors = max(rcvbufErrors, so.RcvbufErrors)
			}
			for _, c := range s.Stateful {
				if c.Label == "table_full" {
					tableFull = max(tableFull, c.Count)
				}
			}
		}
	}

	b.ResetTimer()
	total := rate * seconds
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	lastSample := start
	for sent < total {
		<-tick.C
		due := min(total, int(float64(rate)*time.Since(start).Seconds()))
		for ; sent < due; sent++ {
			if _, err := client.WriteToUDPAddrPort(floodRequest(me, sent), listen); err != nil {
				b.Fatal(err)
			}
		}
		if time.Since(lastSample) > time.Second {
			lastSample = time.Now()
			go sample()
		}
	}
	tick.Stop()
	sendTime := time.Since(start)
	// Every call ends within two failover timeouts (5 s each) and the 503's
	// ACK; wait for the last ones.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		sample()
	}
	b.StopTimer()
	hwm := vmHWM(a.Pid())
	kernelDrops := udpSocketDrops(listen)
	mu.Lock()
	lost := total - len(answered)
	mu.Unlock()
	b.ReportMetric(float64(total)/sendTime.Seconds(), "calls/s")
	b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
	b.ReportMetric(100*float64(lost)/float64(total), "unanswered-%")
	b.ReportMetric(100*float64(kernelDrops)/float64(total), "socket-drops-%")
	b.ReportMetric(float64(peakPending), "peak-pending")
	b.ReportMetric(100*float64(tableFull)/float64(total), "table-full-%")
	b.Logf("agent %s: %d INVITEs in %v, %d unanswered, peak RSS %d kB, socket drops %d (/proc/net/udp; the agent's rcvbuf_errors %d), peak pending %d, refused (table full) %d",
		bins.Sipedge, total, sendTime.Round(time.Millisecond), lost, hwm, kernelDrops, rcvbufErrors, peakPending, tableFull)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func floodBins(tb testing.TB) agent.Bins {
	tb.Helper()
	if dir := os.Getenv("SIPEDGE_BENCH_BINS"); dir != "" {
		return agent.Bins{Sipedge: filepath.Join(dir, "sipedge"), Sipedgectl: filepath.Join(dir, "sipedgectl")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := agent.Build(ctx, tb.TempDir(), false)
	if err != nil {
		tb.Fatal(err)
	}
	return bins
}

// silentSocket is a backend that reads and drops everything.
func silentSocket(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadBuffer(8 << 20)
	tb.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	return c
}

func freeUDPPort(tb testing.TB) netip.AddrPort {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// udpSocketDrops is the drops column of /proc/net/udp for the IPv4 socket
// bound to addr: datagrams the kernel dropped on it (receive buffer full).
func udpSocketDrops(addr netip.AddrPort) uint64 {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	ip := addr.Addr().As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], addr.Port())
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == want {
			n, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
			return n
		}
	}
	return 0
}

// vmHWM is the peak resident set of pid in kB.
func vmHWM(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

const floodSDP = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n" +
	"c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\n" +
	"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n"

// floodRequest is call i's INVITE: a fresh Call-ID and branch, with SDP.
func floodRequest(me netip.AddrPort, i int) []byte {
	return fmt.Appendf(nil, "INVITE sip:bob@example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKflood%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: \"Alice\" <sip:alice@example.com>;tag=f%d\r\n"+
		"To: <sip:bob@example.com>\r\n"+
		"Call-ID: flood-%d\r\n"+
		"CSeq: 1 INVITE\r\n"+
		"Contact: <sip:alice@%s>\r\n"+
		"Content-Type: application/sdp\r\n"+
		"Content-Length: %d\r\n\r\n%s", me, i, i, i, me, len(floodSDP), floodSDP)
}

// floodAck is the ACK of call i's non-2xx final res (RFC 3261 §17.1.1.3).
func floodAck(me netip.AddrPort, i int, res []byte, m *sipmsg.Msg) []byte {
	to, _ := m.First(sipmsg.KindTo)
	return fmt.Appendf(nil, "ACK sip:bob@example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKflood%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: \"Alice\" <sip:alice@example.com>;tag=f%d\r\n"+
		"%s"+
		"Call-ID: flood-%d\r\n"+
		"CSeq: 1 ACK\r\n"+
		"Content-Length: 0\r\n\r\n", me, i, i, to.Line.Bytes(res), i)
}
