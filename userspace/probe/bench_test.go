package probe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// responderEnv makes the test binary a cheap UDP responder (TestMain):
// the benchmark runs its destinations in a child process, so that the CPU
// it measures is the engine's side only.
const responderEnv = "SIPEDGE_PROBE_RESPONDER"

func TestMain(m *testing.M) {
	if n, _ := strconv.Atoi(os.Getenv(responderEnv)); n > 0 {
		os.Exit(runResponder(n))
	}
	os.Exit(m.Run())
}

// runResponder binds n UDP sockets on 127.0.0.1, prints their ports on one
// line, answers every datagram with "SIP/2.0 200 OK" and the datagram's
// own header lines, and exits when stdin closes.
func runResponder(n int) int {
	var ports []string
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.SetReadBuffer(4 << 20)
		ports = append(ports, strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
		go func() {
			in, out := make([]byte, 65535), make([]byte, 0, 65535)
			for {
				k, src, err := c.ReadFromUDPAddrPort(in)
				if err != nil {
					return
				}
				i := bytes.Index(in[:k], crlf)
				if i < 0 {
					continue
				}
				out = append(append(out[:0], "SIP/2.0 200 OK"...), in[i:k]...)
				c.WriteToUDPAddrPort(out, src)
			}
		}()
	}
	fmt.Println(strings.Join(ports, " "))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// spawnResponder starts the responder child with n sockets.
func spawnResponder(b *testing.B, n int) []netip.AddrPort {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), responderEnv+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("responder: %v", err)
	}
	var addrs []netip.AddrPort
	for _, p := range strings.Fields(line) {
		port, _ := strconv.Atoi(p)
		addrs = append(addrs, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	}
	return addrs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProbe10k probes 10,000 destinations at a 1 s interval on
// loopback, answered by a responder in a child process, and reports:
//   - cpu-ns/probe: CPU time of this process (engine goroutine, the reader
//     that stands in for the slow path, sends, receives, GC) per answered
//     probe;
//   - %core: that CPU over wall time, at the rate reached (probes/s);
//   - B/dest: heap per destination once added, and while running (with
//     the in-flight table and scratch buffers).
//
// ns/op is wall time per probe, bounded below by the 1 s interval; run it
// with -benchtime=30000x (three rounds).
func BenchmarkProbe10k(b *testing.B) {
	const n = 10000
	addrs := spawnResponder(b, 4)
	conn, local := listenUDP(b)
	conn.SetReadBuffer(4 << 20)
	s := &udpSender{conn: conn, local: local}
	var answered, other atomic.Int64
	keys, uris := make([]string, n), make([]string, n)
	for i := range n {
		keys[i] = strconv.Itoa(i)
		uris[i] = "sip:dst" + keys[i] + "@" + addrs[i%len(addrs)].String()
	}

	var m0, m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	e, err := New(Config{Interval: time.Second, OnResult: func(r Result) {
		if r.Code == 200 {
			answered.Add(1)
		} else {
			other.Add(1)
		}
	}}, s)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := e.Add(keys[i], Target{URI: uris[i], Addr: addrs[i%len(addrs)], Local: local}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { e.Run(ctx); done <- struct{}{} }()
	go func() { s.serve(e); done <- struct{}{} }()
	defer func() { cancel(); conn.Close(); <-done; <-done }()

	// One round first, so every destination is in its steady rhythm.
	for answered.Load() < n {
		time.Sleep(5 * time.Millisecond)
	}
	b.ResetTimer()
	base, cpu0, t0 := answered.Load(), cpuTime(), time.Now()
	for answered.Load()-base < int64(b.N) {
		time.Sleep(5 * time.Millisecond)
	}
	cpu, wall, probes := cpuTime()-cpu0, time.Since(t0), answered.Load()-base
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&m2)

	b.ReportMetric(float64(cpu.Nanoseconds())/float64(probes), "cpu-ns/probe")
	b.ReportMetric(float64(probes)/wall.Seconds(), "probes/s")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n, "B/dest")
	b.ReportMetric(float64(int64(m2.HeapAlloc)-int64(m0.HeapAlloc))/n, "B/dest-running")
	if o := other.Load(); o > 0 {
		b.ReportMetric(float64(o), "unanswered")
	}
}

// loopSender answers every probe at once, in memory: it turns the request
// into a 200 and hands it to the engine, as the slow path would.
type loopSender struct {
	e   *Engine
	out []byte
}

func (s *loopSender) Send(_, dst netip.AddrPort, msg []byte) error {
	i := bytes.Index(msg, crlf)
	s.out = append(append(s.out[:0], "SIP/2.0 200 OK"...), msg[i:]...)
	s.e.HandleResponse(s.out, dst)
	return nil
}

// BenchmarkEngineNoIO is the engine's own cost per probe, without
// sockets: 10,000 destinations at 1 s on a fake clock, each probe
// answered in memory. One op is one answered probe: scheduling, building
// the request, the in-memory reply (one copy), parsing and matching it.
func BenchmarkEngineNoIO(b *testing.B) {
	const n = 10000
	var answered int64
	s := &loopSender{}
	e, _, c, _ := newFakeEngine(b, Config{Interval: time.Second})
	e.cfg.OnResult = func(r Result) {
		if r.Code == 200 {
			answered++
		}
	}
	e.sender = s
	s.e = e
	for i := range n {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 5060)
		if err := e.Add(strconv.Itoa(i), Target{URI: "sip:" + addr.String(), Addr: addr, Local: testLocal}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for answered < int64(b.N) {
		c.Add(min(e.step(), tick))
	}
}

var crlf = []byte("\r\n")

// BenchmarkSocketFloor10k is the baseline of BenchmarkProbe10k without
// the engine: the same probe bytes sent with one sendto each, 100 every
// 10 ms (10,000/s), to the same child responder, the replies read and
// dropped. Its cpu-ns/probe is what the sockets alone cost on the
// machine; BenchmarkProbe10k minus this is the engine's share.
func BenchmarkSocketFloor10k(b *testing.B) {
	addrs := spawnResponder(b, 1)
	conn, _ := listenUDP(b)
	conn.SetReadBuffer(4 << 20)
	var got atomic.Int64
	go func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	msg := appendRequest(nil, &request{method: "OPTIONS", uri: "sip:dst1@" + addrs[0].String(), from: DefaultFrom, sentBy: "127.0.0.1:5060"}, 1, 2)
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	for i := 0; i < b.N; i += 100 {
		for range 100 {
			conn.WriteToUDPAddrPort(msg, addrs[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/probe")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
	b.ReportMetric(float64(got.Load())/float64(b.N), "replies/probe")
}
