package sipproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// discardBackend reads and drops everything: a backend that never answers
// and keeps nothing (testBackend records every request, which would count
// in the heap measured here).
func discardBackend(tb testing.TB) netip.AddrPort {
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
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// BenchmarkFailoverSilent is failover mode with every backend silent: b.N
// INVITEs with fresh Call-IDs (a 700-byte INVITE with SDP), as fast as the
// slow path takes them, kept from the socket's limit by a window of 500
// unprocessed INVITEs. Nothing expires during the run (failover timeout
// 1 h), so every call is a pending transaction at the end. It reports
// calls/s (INVITEs taken into the table per second) and B/pending (heap
// growth per pending transaction after a GC: the caller's INVITE, the
// INVITE sent to the backend, the 100 Trying kept for retransmissions, the
// table entries).
//
//	go test ./userspace/sipproxy/ -run XXX -bench FailoverSilent -benchtime 50000x
func BenchmarkFailoverSilent(b *testing.B) {
	backends := []netip.AddrPort{discardBackend(b), discardBackend(b)}
	var entries []dispatch.Entry
	for i, a := range backends {
		entries = append(entries, dispatch.Entry{SetID: 1, URI: "sip:" + a.String(), Priority: 2 - i, Source: fmt.Sprint(i)})
	}
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
	if err != nil {
		b.Fatal(err)
	}
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	local := probe.LocalAddr().(*net.UDPAddr).AddrPort()
	probe.Close()
	p, err := New(Config{
		Listeners: []Listener{{Name: "edge", Addr: local, Rule: Rule{SetID: 1, Alg: dispatch.AlgPriority,
			Failover: true, NoDestinationCode: 503}}},
		Dispatcher:      dispatch.New(snap),
		FailoverTimeout: time.Hour,
		MaxTransactions: b.N + 1,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-p.Ready()

	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	me := client.LocalAddr().(*net.UDPAddr).AddrPort()
	const window = 500
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = floodInvite(me, i)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	start := time.Now()
	for i, m := range msgs {
		for i-p.txs.Len() >= window {
			time.Sleep(20 * time.Microsecond)
		}
		if _, err := client.WriteToUDPAddrPort(m, local); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.txs.Len() < b.N && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	pending := p.txs.Len()
	msgs = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	if pending < b.N {
		b.Fatalf("%d of %d INVITEs pending: the rest were lost", pending, b.N)
	}
	b.ReportMetric(float64(pending)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(pending), "B/pending")
}

// floodInvite is the i-th INVITE of a flood: a fresh Call-ID and branch,
// SDP body, about 700 bytes.
func floodInvite(me netip.AddrPort, i int) []byte {
	body := "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n" +
		"c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\n" +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n"
	return fmt.Appendf(nil, "INVITE sip:bob@example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bKflood%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: \"Alice\" <sip:alice@example.com>;tag=f%d\r\n"+
		"To: <sip:bob@example.com>\r\n"+
		"Call-ID: flood-%d@192.0.2.1\r\n"+
		"CSeq: 1 INVITE\r\n"+
		"Contact: <sip:alice@%s>\r\n"+
		"Content-Type: application/sdp\r\n"+
		"Content-Length: %d\r\n\r\n%s", me, i, i, i, me, len(body), body)
}
