package dataplane_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
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

// drainMessage is one message the drain benchmarks have the program forward.
type drainMessage struct {
	frame []byte
	in    *dptest.Side
	copy  bool // its event carries the message (with EventCopies)
}

// ringRecord is the ring bytes of an event whose message copy is n bytes:
// the ring's 8-byte header, struct sip_event and the copy, 8-aligned.
func ringRecord(n int) int { return 8 + (56+n+7)&^7 }

// BenchmarkEventDrain measures the agent's drain loop on one core: the
// program fills the event ring (the agent's size) with the events of
// messages forwarded over and over, then one EventReader.Drain empties it,
// counting events by kind and method as the agent does. b.N is events.
// The figures are the drain's alone: events/s, ns/event and allocs/event
// (the drain's own mallocs). ns/op also counts the filling, one
// BPF_PROG_TEST_RUN per message (tens of µs: with a repeat count the kernel
// feeds each run the frame the last one rewrote, no longer for a listener,
// and live frames, where every run sees the frame as given, are refused
// with EPERM here); the timer is not stopped around it so that the default
// -benchtime stays short.
//
//   - invite: the fixture INVITE, compact events (the ring of 256 KiB).
//   - call-copies: a call's seven messages, loaded with EventCopies (the
//     ring of DefaultCopyRingBytes): INVITE (the fixture, 769 bytes) and its
//     200 (with SDP) carry copies; 100, 180, ACK, BYE and the BYE's 200 are
//     compact. The callback also reads every copied byte, as a consumer
//     that parses them must.
func BenchmarkEventDrain(b *testing.B) {
	b.Run("invite", func(b *testing.B) {
		env, lis, _, _ := eventsEnv(b, 0)
		c := fixtureCase(b, "invite-alg0-sdp.txt")
		in := env.SideOf(c.Src.Addr())
		frame := dptest.Frame{DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: c.Src, Dst: lis, TTL: 61, IPID: 0x4242, Payload: c.In}.Build()
		benchDrain(b, env, []drainMessage{{frame: frame, in: in}}, 256<<10)
	})
	b.Run("call-copies", func(b *testing.B) {
		env, lis, src, dst := eventsEnvWith(b, dataplane.Options{EventCopies: true})
		benchDrain(b, env, callMessages(b, env, lis, src, dst), dataplane.DefaultCopyRingBytes)
	})
}

// callMessages are the frames of one call through the fast path: INVITE
// (the fixture), 100, 180, 200 with SDP, ACK, BYE, the BYE's 200.
func callMessages(tb testing.TB, env *dptest.Env, lis, src, dst netip.AddrPort) []drainMessage {
	tb.Helper()
	invite := fixtureCase(tb, "invite-alg0-sdp.txt").In
	_, sdp, _ := bytes.Cut(invite, []byte("\r\n\r\n"))
	ok := strings.Replace(string(reply("200 OK")), "Content-Length: 0\r\n\r\n",
		fmt.Sprintf("Contact: <sip:bob@%s>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", dst, len(sdp), sdp), 1)
	inDialog := func(method, cseq string) []byte {
		return crlf("\n" + method + " sip:bob@" + dst.String() + " SIP/2.0\n" +
			"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\n" +
			"Max-Forwards: 70\n" +
			"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\n" +
			"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n" +
			"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n" +
			"CSeq: " + cseq + "\n" +
			"Content-Length: 0\n\n")
	}
	byeOK := strings.Replace(string(reply("200 OK")), "CSeq: 314159 INVITE", "CSeq: 314160 BYE", 1)
	var out []drainMessage
	for _, m := range []struct {
		from netip.AddrPort
		sip  []byte
		copy bool
	}{
		{src, invite, true},
		{dst, reply("100 Trying"), false},
		{dst, reply("180 Ringing"), false},
		{dst, []byte(ok), true},
		{src, inDialog("ACK", "314159 ACK"), false},
		{src, inDialog("BYE", "314160 BYE"), false},
		{dst, []byte(byeOK), false},
	} {
		in := env.SideOf(m.from.Addr())
		frame := dptest.Frame{DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: m.from, Dst: lis, TTL: 61, IPID: 0x4242, Payload: m.sip}.Build()
		out = append(out, drainMessage{frame: frame, in: in, copy: m.copy})
	}
	return out
}

// benchDrain fills the ring of ringBytes with the events of msgs, in turn,
// short of full (losses would be drained as nothing), and drains it, until
// b.N events are drained.
func benchDrain(b *testing.B, env *dptest.Env, msgs []drainMessage, ringBytes int) {
	round := 0 // ring bytes of one pass over msgs
	for _, m := range msgs {
		n := 0
		if m.copy {
			n = len(m.frame) - 42 // the UDP payload of an IPv4 frame
		}
		round += ringRecord(n)
	}
	fill := ringBytes * 9 / 10 / round * len(msgs)
	r, err := env.DP.NewEventReader()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var counts [4][16]uint64
	var withCopy, copyBytes, sum uint64
	count := func(evs []dataplane.Event) {
		for _, e := range evs {
			counts[e.Kind&3][e.Method&15]++
			if e.Msg != nil {
				withCopy++
				copyBytes += uint64(len(e.Msg))
				for _, c := range e.Msg {
					sum += uint64(c)
				}
			}
		}
	}
	drained, sent := 0, 0
	var busy time.Duration
	var ms0, ms1 runtime.MemStats
	var mallocs uint64
	b.ResetTimer()
	for drained < b.N {
		n := min(fill, b.N-drained)
		for i := 0; i < n; i++ {
			m := msgs[sent%len(msgs)]
			sent++
			if res, err := env.Run(m.frame, m.in); err != nil || res.Verdict != dptest.XDPRedirect {
				b.Fatalf("run: verdict %s, %v", verdictName(res.Verdict), err)
			}
		}
		runtime.ReadMemStats(&ms0)
		start := time.Now()
		got, err := r.Drain(0, count)
		busy += time.Since(start)
		runtime.ReadMemStats(&ms1)
		mallocs += ms1.Mallocs - ms0.Mallocs
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("drained %d events, the program wrote %d", got, n)
		}
		drained += got
	}
	b.StopTimer()
	var total uint64
	for k := range counts {
		for m := range counts[k] {
			total += counts[k][m]
		}
	}
	wantCopies := 0
	for i := 0; i < sent; i++ {
		if msgs[i%len(msgs)].copy {
			wantCopies++
		}
	}
	if total != uint64(drained) || withCopy != uint64(wantCopies) || (wantCopies > 0 && sum == 0) {
		b.Fatalf("counted %d events of %d, %d copies of %d", total, drained, withCopy, wantCopies)
	}
	lost, err := env.DP.EventsLost()
	if err != nil || len(lost) != 0 {
		b.Fatalf("events lost %v, %v", lost, err)
	}
	b.ReportMetric(float64(drained)/busy.Seconds(), "events/s")
	b.ReportMetric(float64(busy.Nanoseconds())/float64(drained), "ns/event")
	b.ReportMetric(float64(mallocs)/float64(drained), "allocs/event")
	if withCopy > 0 {
		b.ReportMetric(float64(copyBytes)/float64(withCopy), "B/copy")
	}
}
