package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// backendPrefixes are routed through the backend link of the test topology;
// every other address through the client link.
var backendPrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8::20/124"),
}

func newEnv(t *testing.T) *dptest.Env {
	t.Helper()
	return dptest.NewEnv(t, backendPrefixes...)
}

// noDNS fails every lookup: destinations in tests are IP literals.
func noDNS(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("no DNS in tests")
}

// buildSnapshot builds a dispatch snapshot from dispatcher.list lines.
func buildSnapshot(t testing.TB, list string, opt dispatch.Options) *dispatch.Snapshot {
	t.Helper()
	var entries []dispatch.Entry
	for i, line := range strings.Split(strings.TrimSpace(list), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var id int
		fmt.Sscan(f[0], &id)
		e := dispatch.Entry{SetID: id, URI: f[1], Source: fmt.Sprintf("test:%d", i+1)}
		if len(f) > 2 {
			var fl int
			fmt.Sscan(f[2], &fl)
			e.Flags = dispatch.Flags(fl)
		}
		entries = append(entries, e)
	}
	if opt.Resolver == nil {
		opt.Resolver = noDNS
	}
	snap, err := dispatch.Build(context.Background(), entries, opt)
	if err != nil {
		t.Fatalf("build snapshot: %v", err)
	}
	return snap
}

// outcome is what one message did in the fast path.
type outcome struct {
	verdict uint32
	reason  string // pass or drop reason, when it passed or dropped
	frame   dptest.Frame
	raw     []byte
	err     error // the output frame did not parse (lengths, checksums)
}

// send runs one SIP payload from src to dst through the program, arriving
// on the link src is reached through.
func send(t testing.TB, env *dptest.Env, src, dst netip.AddrPort, sip []byte) outcome {
	t.Helper()
	in := env.SideOf(src.Addr())
	frame := dptest.Frame{
		DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: src, Dst: dst, TTL: 61, IPID: 0x4242,
		Payload: sip,
	}.Build()
	passBefore, err := env.DP.PassCounts()
	if err != nil {
		t.Fatal(err)
	}
	dropBefore, err := env.DP.DropCounts()
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.Run(frame, in)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	o := outcome{verdict: res.Verdict, raw: res.Out}
	switch res.Verdict {
	case dptest.XDPPass:
		o.reason = diff(t, passBefore, env.DP.PassCounts)
		if !bytes.Equal(res.Out, frame) {
			t.Errorf("XDP_PASS with a changed frame:\n in: %x\nout: %x", frame, res.Out)
		}
	case dptest.XDPDrop:
		o.reason = diff(t, dropBefore, env.DP.DropCounts)
	case dptest.XDPTX, dptest.XDPRedirect:
		o.frame, o.err = dptest.Parse(res.Out)
	}
	return o
}

func diff(t testing.TB, before map[string]uint64, read func() (map[string]uint64, error)) string {
	t.Helper()
	after, err := read()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k, v := range after {
		if v != before[k] {
			got = append(got, k)
		}
	}
	return strings.Join(got, ",")
}

func verdictName(v uint32) string {
	return [...]string{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "?"}[min(v, 5)]
}

// checkForward asserts a forward of want to dst: verdict, addresses, MACs,
// the IP header the slow path's socket would get, and the exact payload.
func checkForward(t *testing.T, env *dptest.Env, o outcome, src, lis, dst netip.AddrPort, want []byte) {
	t.Helper()
	in, out := env.SideOf(src.Addr()), env.SideOf(dst.Addr())
	wantVerdict := uint32(dptest.XDPRedirect)
	if in == out {
		wantVerdict = dptest.XDPTX
	}
	if o.verdict != wantVerdict {
		t.Fatalf("verdict %s (reason %q), want %s", verdictName(o.verdict), o.reason, verdictName(wantVerdict))
	}
	if o.err != nil {
		t.Fatalf("output frame: %v\n%x", o.err, o.raw)
	}
	f := o.frame
	if f.Src != lis || f.Dst != dst {
		t.Errorf("sent %s -> %s, want %s -> %s", f.Src, f.Dst, lis, dst)
	}
	if !bytes.Equal(f.SrcMAC, out.MAC) || !bytes.Equal(f.DstMAC, out.GWMAC) {
		t.Errorf("MACs %s -> %s, want %s -> %s", f.SrcMAC, f.DstMAC, out.MAC, out.GWMAC)
	}
	if f.TTL != 64 || f.TOS != 0 || (lis.Addr().Is4() && (f.IPID != 0 || !f.DF)) {
		t.Errorf("IP header: ttl %d tos %d id %d df %v, want 64 0 0 true", f.TTL, f.TOS, f.IPID, f.DF)
	}
	if !bytes.Equal(f.Payload, want) {
		t.Errorf("payload differs:\n got: %q\nwant: %q", f.Payload, want)
	}
}

func crlf(s string) []byte {
	s = strings.TrimPrefix(s, "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// TestLoad: the program passes the verifier on this kernel, with and
// without event copies (the verifier drops the code a knob turns off, so
// each setting is a program of its own).
func TestLoad(t *testing.T) {
	for _, copies := range []bool{false, true} {
		t.Run(fmt.Sprintf("copies %v", copies), func(t *testing.T) {
			env := dptest.NewEnvWith(t, dataplane.Options{EventCopies: copies}, backendPrefixes...)
			info, err := env.DP.Program().Info()
			if err != nil {
				t.Fatal(err)
			}
			if n, ok := info.VerifiedInstructions(); ok {
				t.Logf("verifier: %d instructions processed", n)
			}
		})
	}
}

const inviteIn = `
INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnashds8
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@198.51.100.7:5060>
Content-Type: application/sdp
Content-Length: 5

v=0
`

// TestInviteAlg0: an INVITE dispatched by Call-ID hash gets our Via (token
// as the Go twin computes it), Max-Forwards 69, and goes to the picked
// destination from the listener's address.
func TestInviteAlg0(t *testing.T) {
	env := newEnv(t)
	snap := buildSnapshot(t, "2 sip:10.0.0.21:5060\n2 sip:10.0.0.22:5060\n2 sip:10.0.0.23:5060", dispatch.Options{})
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	in := crlf(inviteIn)
	o := send(t, env, src, lis, in)

	sel, err := snap.Select(2, dispatch.AlgCallID, dispatch.Key{CallID: "a84b4c76e66710@pc33.atlanta.example.com"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok := wordhash.BranchToken([]byte("z9hG4bKnashds8"), []byte("198.51.100.7:5060"), []byte("a84b4c76e66710@pc33.atlanta.example.com"))
	want := strings.Replace(string(in), "Max-Forwards: 70", "Max-Forwards: 69", 1)
	want = strings.Replace(want, "SIP/2.0\r\n", fmt.Sprintf("SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK0%016x\r\n", tok), 1)
	checkForward(t, env, o, src, lis, sel.Dests[0].Addr, []byte(want))
}

const okIn = `
SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK0c3e1f2a4b5d6e7f8
Via: SIP/2.0/UDP 10.10.10.7:5070;received=198.51.100.7;branch=z9hG4bKnashds8
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Content-Length: 0

`

// TestResponse200: a 200 OK loses our Via and goes to the next Via's
// received address with its sent-by port.
func TestResponse200(t *testing.T) {
	env := newEnv(t)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 1}}}); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("10.0.0.11:5060")
	in := crlf(okIn)
	o := send(t, env, src, lis, in)
	lines := strings.SplitAfter(string(in), "\r\n")
	want := lines[0] + strings.Join(lines[2:], "")
	checkForward(t, env, o, src, lis, netip.MustParseAddrPort("198.51.100.7:5070"), []byte(want))
}

// TestResponseToOtherListener: a response whose next hop is another
// listener of the agent (address and port) is passed up with
// PASS_NEXT_HOP_LOOP, as sipproxy drops it as next_hop_loop; the same
// address on a port that is no listener is forwarded.
func TestResponseToOtherListener(t *testing.T) {
	env := newEnv(t)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	other := netip.MustParseAddrPort("198.51.100.7:5070")
	if err := env.DP.SyncListeners([]dataplane.Listener{
		{Addr: lis, Rule: dataplane.Rule{SetID: 1}},
		{Addr: other, Rule: dataplane.Rule{SetID: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("10.0.0.11:5060")
	// okIn's next Via: received=198.51.100.7, sent-by port 5070: the other listener.
	if o := send(t, env, src, lis, crlf(okIn)); o.verdict != dptest.XDPPass || o.reason != "PASS_NEXT_HOP_LOOP" {
		t.Fatalf("verdict %d reason %q, want XDP_PASS PASS_NEXT_HOP_LOOP", o.verdict, o.reason)
	}
	if err := env.DP.SyncListeners([]dataplane.Listener{
		{Addr: lis, Rule: dataplane.Rule{SetID: 1}},
		{Addr: netip.MustParseAddrPort("198.51.100.7:5071"), Rule: dataplane.Rule{SetID: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	if o := send(t, env, src, lis, crlf(okIn)); o.verdict != dptest.XDPTX && o.verdict != dptest.XDPRedirect {
		t.Fatalf("verdict %d reason %q, want forwarded", o.verdict, o.reason)
	}
}

// TestLayer34PassReasons: frames that are no plain Ethernet + IPv4/IPv6 +
// UDP to a listener leave through their own pass reason, unchanged. The
// fixtures (SIP payloads) cannot reach these reasons; each frame here is a
// valid SIP OPTIONS frame with one thing changed.
func TestLayer34PassReasons(t *testing.T) {
	env := newEnv(t)
	lis4 := netip.MustParseAddrPort("192.0.2.10:5060")
	lis6 := netip.MustParseAddrPort("[2001:db8::10]:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{
		{Addr: lis4, Rule: dataplane.Rule{SetID: 1}},
		{Addr: lis6, Rule: dataplane.Rule{SetID: 6}},
	}); err != nil {
		t.Fatal(err)
	}
	src4 := netip.MustParseAddrPort("198.51.100.7:5060")
	src6 := netip.MustParseAddrPort("[2001:db8::7]:5060")
	payload := crlf(`
OPTIONS sip:bob@10.0.0.11:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:bob@biloxi.example.com>
From: <sip:alice@atlanta.example.com>;tag=1
Call-ID: l34@pc33.atlanta.example.com
CSeq: 1 OPTIONS
Content-Length: 0

`)
	build := func(src, dst netip.AddrPort) []byte {
		in := env.SideOf(src.Addr())
		return dptest.Frame{DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: src, Dst: dst, TTL: 61, Payload: payload}.Build()
	}
	const eth = 14
	tests := []struct {
		name string
		src  netip.AddrPort
		dst  netip.AddrPort
		edit func(b []byte) []byte
		want string
	}{
		{"ARP ethertype", src4, lis4, func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }, "PASS_NOT_IP"},
		{"802.1Q tag", src4, lis4, func(b []byte) []byte {
			return append(append(append([]byte{}, b[:12]...), 0x81, 0x00, 0x00, 0x07), b[12:]...)
		}, "PASS_VLAN"},
		{"IPv4 options", src4, lis4, func(b []byte) []byte {
			out := append(append(append([]byte{}, b[:eth+20]...), 1, 1, 1, 0), b[eth+20:]...) // NOP NOP NOP EOL
			out[eth] = 0x46
			tot := int(out[eth+2])<<8 | int(out[eth+3]) + 4
			out[eth+2], out[eth+3] = byte(tot>>8), byte(tot)
			return out
		}, "PASS_IP_OPTIONS"},
		{"IPv4 more fragments", src4, lis4, func(b []byte) []byte { b[eth+6] |= 0x20; return b }, "PASS_FRAGMENT"},
		{"IPv4 fragment offset", src4, lis4, func(b []byte) []byte { b[eth+7] = 0x10; return b }, "PASS_FRAGMENT"},
		{"IPv4 TCP", src4, lis4, func(b []byte) []byte { b[eth+9] = 6; return b }, "PASS_NOT_UDP"},
		{"IPv4 total length too long", src4, lis4, func(b []byte) []byte { b[eth+3] += 8; return b }, "PASS_BAD_LENGTH"},
		{"UDP length short", src4, lis4, func(b []byte) []byte { b[eth+20+5] -= 2; return b }, "PASS_BAD_LENGTH"},
		{"IPv4 UDP checksum absent", src4, lis4, func(b []byte) []byte { b[eth+20+6], b[eth+20+7] = 0, 0; return b }, "PASS_NO_CSUM"},
		{"no listener on the port", src4, netip.MustParseAddrPort("192.0.2.10:5070"), func(b []byte) []byte { return b }, "PASS_NOT_LISTENER"},
		{"IPv6 hop-by-hop header", src6, lis6, func(b []byte) []byte { b[eth+6] = 0; return b }, "PASS_IPV6_EXT"},
		{"IPv6 TCP", src6, lis6, func(b []byte) []byte { b[eth+6] = 6; return b }, "PASS_NOT_UDP"},
		{"IPv6 payload length too long", src6, lis6, func(b []byte) []byte { b[eth+5] += 8; return b }, "PASS_BAD_LENGTH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.edit(build(tc.src, tc.dst))
			before, err := env.DP.PassCounts()
			if err != nil {
				t.Fatal(err)
			}
			res, err := env.Run(frame, env.SideOf(tc.src.Addr()))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if res.Verdict != dptest.XDPPass {
				t.Fatalf("verdict %d, want XDP_PASS", res.Verdict)
			}
			if !bytes.Equal(res.Out, frame) {
				t.Errorf("XDP_PASS with a changed frame")
			}
			if got := diff(t, before, env.DP.PassCounts); got != tc.want {
				t.Errorf("passed with %s, want %s", got, tc.want)
			}
		})
	}
}

// TestV4MappedSource: an IPv6 packet from a v4-mapped source
// (::ffff:198.51.100.7) needs received=<dotted quad>, text the program does
// not write: it passes with PASS_IPV6_TEXT, unchanged.
func TestV4MappedSource(t *testing.T) {
	env := newEnv(t)
	if err := env.DP.SyncSets(buildSnapshot(t, "6 sip:[2001:db8::21]:5060", dispatch.Options{})); err != nil {
		t.Fatal(err)
	}
	lis6 := netip.MustParseAddrPort("[2001:db8::10]:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis6, Rule: dataplane.Rule{SetID: 6}}}); err != nil {
		t.Fatal(err)
	}
	src6 := netip.MustParseAddrPort("[2001:db8::7]:5060")
	in := env.SideOf(src6.Addr())
	frame := dptest.Frame{DstMAC: in.MAC, SrcMAC: in.GWMAC, Src: src6, Dst: lis6, TTL: 61, Payload: crlf(`
OPTIONS sip:bob@10.0.0.11:5060 SIP/2.0
Via: SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:bob@biloxi.example.com>
From: <sip:alice@atlanta.example.com>;tag=1
Call-ID: mapped@pc33.atlanta.example.com
CSeq: 1 OPTIONS
Content-Length: 0

`)}.Build()
	mapped := netip.MustParseAddr("::ffff:198.51.100.7").As16()
	copy(frame[14+8:], mapped[:]) // the IPv6 source; the UDP checksum is not verified on the way in
	before, err := env.DP.PassCounts()
	if err != nil {
		t.Fatal(err)
	}
	res, err := env.Run(frame, in)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Verdict != dptest.XDPPass || !bytes.Equal(res.Out, frame) {
		t.Fatalf("verdict %d, want XDP_PASS with the frame unchanged", res.Verdict)
	}
	if got := diff(t, before, env.DP.PassCounts); got != "PASS_IPV6_TEXT" {
		t.Errorf("passed with %s, want PASS_IPV6_TEXT", got)
	}
}
