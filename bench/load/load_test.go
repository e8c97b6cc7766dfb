package load

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sipedge/sipedge/userspace/testutil"
)

var lo = netip.MustParseAddr("127.0.0.1")

func TestTemplateStampsEveryPlace(t *testing.T) {
	from := netip.AddrPortFrom(lo, 5070)
	to := netip.AddrPortFrom(lo, 5060)
	for _, tmpl := range []*Template{Invite(from, to), Options(from, to)} {
		m := string(tmpl.Render(0x1234))
		id := "0000000000001234"
		for _, want := range []string{"branch=z9hG4bK-" + id + ";rport", ";tag=" + id + "\r\n", "Call-ID: " + id + "@"} {
			if !strings.Contains(m, want) {
				t.Errorf("%s: no %q in\n%s", tmpl.Name, want, m)
			}
		}
		if strings.Contains(m, "@@@@") {
			t.Errorf("%s: placeholder left in\n%s", tmpl.Name, m)
		}
		head, body, ok := strings.Cut(m, "\r\n\r\n")
		if !ok {
			t.Fatalf("%s: no end of headers", tmpl.Name)
		}
		cl := regexp.MustCompile(`Content-Length: (\d+)`).FindStringSubmatch(head)
		if n, _ := strconv.Atoi(cl[1]); n != len(body) {
			t.Errorf("%s: Content-Length %d, body %d bytes", tmpl.Name, n, len(body))
		}
	}
	if n := Invite(from, to).Len(); n < 750 || n > 950 {
		t.Errorf("INVITE is %d bytes, want about 800", n)
	}
}

func TestAnswer(t *testing.T) {
	req := Invite(netip.AddrPortFrom(lo, 5070), netip.AddrPortFrom(lo, 5060)).Render(7)
	// As a proxy forwards it: its Via on top.
	req = bytes.Replace(req, []byte("\r\nVia:"), []byte("\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy\r\nVia:"), 1)
	buf := make([]byte, 2048)
	n := Answer(buf, req)
	got := string(buf[:n])
	want := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-0000000000000007;rport\r\n" +
		"From: \"Alice\" <sip:alice@bench.sipedge.example>;tag=0000000000000007\r\n" +
		"To: <sip:bob@bench.sipedge.example>;tag=bench-sink\r\n" +
		"Call-ID: 0000000000000007@bench.sipedge.example\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"
	if got != want {
		t.Errorf("Answer:\n%s\nwant\n%s", got, want)
	}
	if n := Answer(buf, buf[:n]); n != 0 {
		t.Errorf("Answer to a response = %d bytes, want 0", n)
	}
	if n := Answer(buf[:100], req); n != 0 {
		t.Errorf("Answer into a short buffer = %d bytes, want 0", n)
	}
}

// TestLoopback: a paced generator with two streams sends to a sink that
// keeps and answers everything; every message arrives once with its own
// Call-ID, and every answer comes back.
//
// Loopback drops a datagram only when the receiving socket's buffer is
// full, so the test sends no more than the buffers the kernel granted
// (read back: as root they are forced large; otherwise net.core.rmem_max
// caps them and the run is shorter) can hold at once. Then no scheduling
// can lose a datagram, and any loss is a bug. The second case proves it:
// the sink starts reading only after the last message was sent, the worst
// a loaded machine can do (the parallel -race suite once starved the sink
// and lost 5 % of a run sized by time alone).
func TestLoopback(t *testing.T) {
	for _, late := range []bool{false, true} {
		name := "concurrent"
		if late {
			name = "sink starts after the last send"
		}
		t.Run(name, func(t *testing.T) { testLoopback(t, late) })
	}
}

// maxTruesize bounds what the kernel charges a receive buffer for one of
// the test's datagrams (under 1 KiB): 2,304 bytes on Linux 6.x; a page
// leaves room for other kernels.
const maxTruesize = 4096

func testLoopback(t *testing.T, sinkLate bool) {
	sinkSock, err := Listen(netip.AddrPortFrom(lo, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer sinkSock.Close()
	const rate, want, streamsN = 20000.0, 10000, 2
	room, err := sinkSock.SetRecvBuffer(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	count := min(want, room/maxTruesize)
	var streams []Stream
	for range streamsN {
		s, err := Dial(netip.AddrPortFrom(lo, 0), sinkSock.Local())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Each stream gets the answers to its share of the messages.
		sroom, err := s.SetRecvBuffer(64 << 20)
		if err != nil {
			t.Fatal(err)
		}
		count = min(count, streamsN*(sroom/maxTruesize))
		streams = append(streams, Stream{Socket: s, Template: Invite(s.Local(), sinkSock.Local())})
	}
	t.Logf("receive buffers hold %d messages at once (sink buffer %d bytes); sending %d", room/maxTruesize, room, count)
	if count < 20 {
		t.Fatalf("receive buffers of %d bytes hold only %d messages: too few for the test", room, count)
	}
	var sink *Sink
	if !sinkLate {
		sink = StartSink(sinkSock, SinkConfig{Answer: true, Keep: want})
	}
	g, err := Start(Config{Streams: streams, Rate: rate, Receive: true, Run: 3, Count: uint64(count)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().Sent < uint64(count) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	gs := g.StopSending()
	if sink == nil {
		sink = StartSink(sinkSock, SinkConfig{Answer: true, Keep: want})
	}
	deadline = time.Now().Add(10 * time.Second)
	for (sink.Stats().Answered < gs.Sent || g.Stats().Received < gs.Sent) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	gs = g.Stop()
	ss := sink.Stop()
	if gs.SendErrors != 0 || ss.Errors != 0 {
		t.Errorf("errors: generator %d (%s), sink %d", gs.SendErrors, gs.LastError, ss.Errors)
	}
	if gs.Sent != uint64(count) {
		t.Errorf("generator sent %d, Count is %d", gs.Sent, count)
	}
	if ss.Received != gs.Sent {
		t.Errorf("sink received %d of %d sent", ss.Received, gs.Sent)
	}
	ids := map[string]bool{}
	re := regexp.MustCompile(`\r\nCall-ID: ([0-9a-f]{16})@`)
	for _, m := range sink.Kept() {
		id := re.FindSubmatch(m)
		if id == nil {
			t.Fatalf("kept message without Call-ID:\n%s", m)
		}
		if ids[string(id[1])] {
			t.Errorf("Call-ID %s sent twice", id[1])
		}
		ids[string(id[1])] = true
		if !strings.HasPrefix(string(id[1]), "0003") {
			t.Errorf("Call-ID %s does not carry Run 3 in its top bits", id[1])
		}
	}
	if len(ids) != int(ss.Received) {
		t.Errorf("%d distinct Call-IDs in %d messages", len(ids), ss.Received)
	}
	t.Logf("generator %+v; sink %s", gs, ss)
	if ss.Answered != ss.Received || gs.Received != ss.Answered {
		t.Errorf("sink answered %d of %d; generator got %d answers back", ss.Answered, ss.Received, gs.Received)
	}
}

// TestPaced: the generator keeps a target rate. It never sends faster
// than the target; and between two moments it paced, every message that
// fell due was sent, or counted as skipped because the sender was not
// running (a loaded machine: the parallel -race suite starved it to 33k/s
// of 50k/s), so the test holds however busy the CPUs are, and still fails
// when the pacing itself is wrong.
func TestPaced(t *testing.T) {
	sinkSock, err := Listen(netip.AddrPortFrom(lo, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer sinkSock.Close()
	sink := StartSink(sinkSock, SinkConfig{})
	defer sink.Stop()
	s, err := Dial(netip.AddrPortFrom(lo, 0), sinkSock.Local())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const rate = 50000.0
	g, err := Start(Config{Streams: []Stream{{s, Options(s.Local(), sinkSock.Local())}}, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	time.Sleep(100 * time.Millisecond)
	a := g.Stats()
	for deadline := time.Now().Add(10 * time.Second); a.Paced.IsZero() && time.Now().Before(deadline); a = g.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond)
	b := g.Stats()
	d := b.Sub(a)
	sent := float64(d.Sent) / b.At.Sub(a.At).Seconds()
	window := b.Paced.Sub(a.Paced).Seconds()
	due := rate * window
	slack := 0.1*due + 2*max(64, rate/1000) // the bound Stats.Paced documents, at both ends
	t.Logf("target %.0f/s: sent %.0f/s; over %.3f s of pacing %d sent + %d skipped, %.0f due", rate, sent, window, d.Sent, d.Skipped, due)
	if sent > rate*1.1 {
		t.Errorf("sent %.0f/s, more than the target %.0f/s + 10%%", sent, rate)
	}
	if off := float64(d.Sent+d.Skipped) - due; off > slack || off < -slack {
		t.Errorf("%d sent + %d skipped in %.3f s of pacing, want %.0f ± %.0f", d.Sent, d.Skipped, window, due, slack)
	}
}

// TestXDPSink runs the counting sink with BPF_PROG_TEST_RUN: a UDP
// datagram to the port is counted and dropped (or passed after SetPass),
// one to another port is passed and not counted.
func TestXDPSink(t *testing.T) {
	testutil.NeedRoot(t) // loading an XDP program needs root
	s, err := NewXDPSink(5060)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	frame := func(port uint16) []byte {
		f := make([]byte, 14+20+8+10)
		f[12], f[13] = 0x08, 0x00
		f[14], f[23] = 0x45, 17
		binary.BigEndian.PutUint16(f[36:], port)
		return f
	}
	for i, c := range []struct {
		port  uint16
		pass  bool
		want  uint32
		count uint64
	}{{5060, false, xdpDrop, 1}, {5061, false, xdpPass, 1}, {5060, true, xdpPass, 2}} {
		if err := s.SetPass(c.pass); err != nil {
			t.Fatal(err)
		}
		got, err := s.Program().Run(&ebpf.RunOptions{Data: frame(c.port)})
		if err != nil {
			t.Fatal(err)
		}
		p, b, err := s.Count()
		if got != c.want || err != nil || p != c.count || b != c.count*52 {
			t.Errorf("case %d: verdict %d, count %d/%d bytes (%v); want %d, %d/%d", i, got, p, b, err, c.want, c.count, c.count*52)
		}
	}
}
