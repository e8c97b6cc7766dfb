package sipproxy

import (
	"net/netip"
	"testing"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func TestRouteNamesUs(t *testing.T) {
	l, err := prepareListener(Listener{Addr: netip.MustParseAddrPort("192.0.2.10:5060"), Advertise: "edge.example.com:5080"})
	if err != nil {
		t.Fatal(err)
	}
	l6, err := prepareListener(Listener{Addr: netip.MustParseAddrPort("[2001:db8::10]:5060")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		l     *listener
		route string
		want  bool
	}{
		{"listener ip and port", &l, "<sip:192.0.2.10:5060;lr>", true},
		{"listener ip, port absent", &l, "<sip:192.0.2.10;lr>", true},
		{"advertised name and port", &l, "<sip:edge.example.com:5080;lr>", true},
		{"advertised name, default port", &l, "<sip:edge.example.com;lr>", false},
		{"ip with the advertised port", &l, "<sip:192.0.2.10:5080;lr>", false},
		{"name with the listener port", &l, "<sip:edge.example.com:5060;lr>", false},
		{"case differs", &l, "<sip:EDGE.example.com:5080;lr>", false},
		{"user part ignored", &l, "<sip:x@192.0.2.10;lr>", true},
		{"sips scheme still us", &l, "<sips:192.0.2.10:5060;lr>", true},
		{"other host", &l, "<sip:10.0.0.1;lr>", false},
		{"tel", &l, "<tel:+1555>", false},
		{"no brackets", &l, "sip:192.0.2.10:5060;lr", false},
		{"ipv6", &l6, "<sip:[2001:db8::10];lr>", true},
		{"ipv6 other port", &l6, "<sip:[2001:db8::10]:5070;lr>", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.route)
			var na sipmsg.NameAddr
			na.Err = sipmsg.ParseNameAddr(in, sipmsg.Span{End: int32(len(in))}, &na)
			if got := routeNamesUs(tc.l, in, &na); got != tc.want {
				t.Errorf("routeNamesUs(%s) = %v, want %v (parse err %v)", tc.route, got, tc.want, na.Err)
			}
		})
	}
}

// TestLooseRoute covers the routing outcomes the fixtures do not.
func TestLooseRoute(t *testing.T) {
	tests := []struct {
		name   string
		ruri   string
		routes string
		action Action
		reason string
		dst    string
		code   int
	}{
		{"R-URI tel after our Route", "tel:+15551234", "Route: <sip:192.0.2.10;lr>\n", ActionReply, "Unsupported URI Scheme", "", 416},
		{"next Route tel", "sip:b@10.0.0.1", "Route: <sip:192.0.2.10;lr>, <tel:+1>\n", ActionReply, "Bad Route", "", 400},
		{"next Route bad", "sip:b@10.0.0.1", "Route: <sip:192.0.2.10;lr>\nRoute: <sip:>\n", ActionReply, "Bad Route", "", 400},
		{"next Route without brackets", "sip:b@10.0.0.1", "Route: <sip:192.0.2.10;lr>, sip:10.0.0.2;lr\n", ActionReply, "Bad Route", "", 400},
		{"next hop sips", "sip:b@10.0.0.1", "Route: <sip:192.0.2.10;lr>, <sips:10.0.0.2;lr>\n", ActionHandoff, HandoffNextHopTransport, "", 0},
		{"next hop tcp", "sip:b@10.0.0.1;transport=tcp", "Route: <sip:192.0.2.10;lr>\n", ActionHandoff, HandoffNextHopTransport, "", 0},
		{"next hop udp explicit", "sip:b@10.0.0.1:5070;transport=UDP", "Route: <sip:192.0.2.10;lr>\n", ActionForward, "", "10.0.0.1:5070", 0},
		{"R-URI ipv6", "sip:b@[2001:db8::1]", "Route: <sip:192.0.2.10;lr>\n", ActionForward, "", "[2001:db8::1]:5060", 0},
		{"R-URI maddr", "sip:b@example.com;maddr=10.9.9.9", "Route: <sip:192.0.2.10;lr>\n", ActionForward, "", "10.9.9.9:5060", 0},
	}
	f := testForwarder(t, Rule{SetID: 1}, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := crlf("BYE " + tc.ruri + " SIP/2.0\n" +
				"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKlr\n" + tc.routes +
				"To: <sip:b@x>;tag=2\nFrom: <sip:a@y>;tag=1\nCall-ID: lr\nCSeq: 2 BYE\nContent-Length: 0\n\n")
			res := f.Process(in, testSrc, testLocal, nil)
			if res.Action != tc.action || res.Code != tc.code || (tc.reason != "" && res.Reason != tc.reason) {
				t.Fatalf("got %s %d %q, want %s %d %q", res.Action, res.Code, res.Reason, tc.action, tc.code, tc.reason)
			}
			if tc.dst != "" && res.Dst != netip.MustParseAddrPort(tc.dst) {
				t.Errorf("dst %v, want %s", res.Dst, tc.dst)
			}
		})
	}
}
