package sipproxy

import (
	"net/netip"
	"strings"
	"testing"
)

const ourVia = "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK0123456789abcdef0\n"

func testResponse(vias string) []byte {
	return crlf("SIP/2.0 200 OK\n" + vias +
		"To: <sip:b@x>;tag=2\nFrom: <sip:a@y>;tag=1\nCall-ID: r1\nCSeq: 1 INVITE\nContent-Length: 0\n\n")
}

func TestResponse(t *testing.T) {
	next := "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKc\n"
	tests := []struct {
		name   string
		in     []byte
		action Action
		reason string
		dst    string
		host   string
	}{
		{"plain", testResponse(ourVia + next), ActionForward, "", "198.51.100.7:5062", ""},
		{"our Via in compact form", testResponse(strings.Replace(ourVia, "Via:", "v:", 1) + next), ActionForward, "", "198.51.100.7:5062", ""},
		{"next on the line after a fold", testResponse(strings.TrimSuffix(ourVia, "\n") + ",\n " + strings.TrimPrefix(next, "Via: ")), ActionForward, "", "198.51.100.7:5062", ""},
		{"sent-by differs", testResponse(strings.Replace(ourVia, "5060", "5070", 1) + next), ActionDrop, DropViaNotOurs, "", ""},
		{"no cookie", testResponse(strings.Replace(ourVia, "z9hG4bK", "x9hG4bK", 1) + next), ActionDrop, DropViaNotOurs, "", ""},
		{"no branch", testResponse("Via: SIP/2.0/UDP 192.0.2.10:5060\n" + next), ActionDrop, DropViaNotOurs, "", ""},
		{"stateful branch", testResponse("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsf01\n" + next), ActionHandoff, HandoffStatefulBranch, "", ""},
		{"only our Via", testResponse(ourVia), ActionHandoff, HandoffLocalReply, "", ""},
		{"next Via maddr", testResponse(ourVia + "Via: SIP/2.0/UDP 198.51.100.7;maddr=239.1.1.1;received=198.51.100.8\n"), ActionHandoff, HandoffNextHopName, "", "239.1.1.1"},
		{"received not an IP", testResponse(ourVia + "Via: SIP/2.0/UDP h;received=nothere\n"), ActionDrop, DropMalformed, "", ""},
		{"rport without value uses sent-by port", testResponse(ourVia + "Via: SIP/2.0/UDP 198.51.100.7:5070;rport\n"), ActionForward, "", "198.51.100.7:5070", ""},
		{"next Via ipv6 with received", testResponse(ourVia + "Via: SIP/2.0/UDP [2001:db8::1];received=2001:db8::2;rport=7\n"), ActionForward, "", "[2001:db8::2]:7", ""},
		{"next Via tls", testResponse(ourVia + "Via: SIP/2.0/TLS 198.51.100.7\n"), ActionHandoff, HandoffNextHopTransport, "", ""},
		{"bad status", []byte(strings.Replace(string(testResponse(ourVia+next)), "200 OK", "2000 OK", 1)), ActionDrop, DropMalformed, "", ""},
		{"bad version", []byte(strings.Replace(string(testResponse(ourVia+next)), "SIP/2.0 200", "SIP/2.1 200", 1)), ActionDrop, DropMalformed, "", ""},
		{"no Via", testResponse(""), ActionDrop, DropMalformed, "", ""},
		{"Content-Length too big", []byte(strings.Replace(string(testResponse(ourVia+next)), "Length: 0", "Length: 5", 1)), ActionDrop, DropMalformed, "", ""},
		{"two Content-Lengths", testResponse(ourVia + next + "l: 0\n"), ActionDrop, DropMalformed, "", ""},
	}
	f := testForwarder(t, Rule{SetID: 1}, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := f.Process(tc.in, netip.MustParseAddrPort("10.0.0.11:5060"), testLocal, nil)
			if res.Action != tc.action || (tc.reason != "" && res.Reason != tc.reason) {
				t.Fatalf("got %s %q, want %s %q", res.Action, res.Reason, tc.action, tc.reason)
			}
			if tc.dst != "" && res.Dst != netip.MustParseAddrPort(tc.dst) {
				t.Errorf("dst %v, want %s", res.Dst, tc.dst)
			}
			if tc.host != "" && res.DstHost != tc.host {
				t.Errorf("dst host %q, want %q", res.DstHost, tc.host)
			}
			if res.Action == ActionForward && strings.Contains(string(res.Out), "192.0.2.10:5060") {
				t.Errorf("our Via left in %q", res.Out)
			}
		})
	}
}
