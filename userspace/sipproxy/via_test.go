package sipproxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		name, in, host string
		port           int
	}{
		{"ipv4", "192.0.2.10:5060", "192.0.2.10", 5060},
		{"name", "edge.example.com:5080", "edge.example.com", 5080},
		{"no port", "edge.example.com", "edge.example.com", 0},
		{"ipv6", "[2001:db8::1]:5060", "[2001:db8::1]", 5060},
		{"ipv6 no port", "[2001:db8::1]", "[2001:db8::1]", 0},
		{"bare ipv6", "2001:db8::1", "2001:db8::1", 0},
		{"bad port", "h:99999", "h", 0},
		{"signed port", "h:+5", "h", 0},
		{"junk after bracket", "[::1]x", "[::1]x", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, p := splitHostPort(tc.in)
			if h != tc.host || p != tc.port {
				t.Errorf("splitHostPort(%q) = %q, %d; want %q, %d", tc.in, h, p, tc.host, tc.port)
			}
		})
	}
}

func TestAdvText(t *testing.T) {
	v4 := netip.MustParseAddrPort("192.0.2.10:5060")
	v6 := netip.MustParseAddrPort("[2001:db8::10]:5070")
	tests := []struct {
		name string
		l    Listener
		want string
	}{
		{"listener address", Listener{Addr: v4}, "192.0.2.10:5060"},
		{"ipv6 listener", Listener{Addr: v6}, "[2001:db8::10]:5070"},
		{"advertised host:port", Listener{Addr: v4, Advertise: "edge.example.com:5080"}, "edge.example.com:5080"},
		{"advertised host takes the listener port", Listener{Addr: v4, Advertise: "edge.example.com"}, "edge.example.com:5060"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := advText(tc.l); got != tc.want {
				t.Errorf("advText = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSameHost(t *testing.T) {
	tests := []struct {
		name, host, ip string
		want           bool
	}{
		{"ipv4 equal", "198.51.100.7", "198.51.100.7", true},
		{"ipv4 other", "198.51.100.70", "198.51.100.7", false},
		{"name", "client.example.com", "198.51.100.7", false},
		{"ipv6 canonical", "[2001:db8::7]", "2001:db8::7", true},
		{"ipv6 not canonical", "[2001:DB8::7]", "2001:db8::7", false},
		{"ipv6 unbracketed is no sent-by", "2001:db8::7", "2001:db8::7", false},
		{"brackets around ipv4", "[198.51.100.7]", "198.51.100.7", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameHost([]byte(tc.host), []byte(tc.ip)); got != tc.want {
				t.Errorf("sameHost(%q, %q) = %v", tc.host, tc.ip, got)
			}
		})
	}
}

func TestIPLiteral(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "" = not a literal
	}{
		{"ipv4", "10.0.0.1", "10.0.0.1"},
		{"bracketed ipv6", "[2001:db8::1]", "2001:db8::1"},
		{"bare ipv6 (received)", "2001:db8::1", "2001:db8::1"},
		{"v4-mapped is unmapped", "[::ffff:10.0.0.1]", "10.0.0.1"},
		{"name", "gw.example.net", ""},
		{"hex-looking name", "cafe", ""},
		{"zone", "[fe80::1%eth0]", ""},
		{"bracketed ipv4", "[10.0.0.1]", ""},
		{"empty", "", ""},
		{"open bracket", "[2001:db8::1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := ipLiteral([]byte(tc.in))
			got := ""
			if ok {
				got = a.String()
			}
			if got != tc.want {
				t.Errorf("ipLiteral(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestSenderVia checks the one-insertion edit of the sender's Via.
func TestSenderVia(t *testing.T) {
	tests := []struct {
		name, via, src, want string
	}{
		{"equal", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa", "198.51.100.7:5060", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKa"},
		{"name", "SIP/2.0/UDP c.example.com;branch=z9hG4bKa", "198.51.100.7:5060", "SIP/2.0/UDP c.example.com;received=198.51.100.7;branch=z9hG4bKa"},
		{"rport empty", "SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bKa", "198.51.100.7:1024", "SIP/2.0/UDP 198.51.100.7:5060;rport=1024;received=198.51.100.7;branch=z9hG4bKa"},
		{"rport last", "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKa;rport", "198.51.100.7:1024", "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKa;rport=1024;received=198.51.100.7"},
		{"rport with value", "SIP/2.0/UDP 10.1.1.1:5060;rport=7;branch=z9hG4bKa", "198.51.100.7:1024", "SIP/2.0/UDP 10.1.1.1:5060;received=198.51.100.7;rport=7;branch=z9hG4bKa"},
		{"old received replaced", "SIP/2.0/UDP 10.1.1.1;received=1.2.3.4;branch=z9hG4bKa", "198.51.100.7:1024", "SIP/2.0/UDP 10.1.1.1;received=198.51.100.7;branch=z9hG4bKa"},
		{"old received, sent-by equal", "SIP/2.0/UDP 198.51.100.7;received=1.2.3.4", "198.51.100.7:1024", "SIP/2.0/UDP 198.51.100.7"},
		{"old received and rport", "SIP/2.0/UDP h;rport;received=1.2.3.4;branch=z9hG4bKa", "198.51.100.7:9", "SIP/2.0/UDP h;rport=9;received=198.51.100.7;branch=z9hG4bKa"},
		{"blanks kept", "SIP/2.0/UDP  h : 5060 ; rport ; branch=z9hG4bKa", "198.51.100.7:9", "SIP/2.0/UDP  h : 5060 ; rport=9;received=198.51.100.7 ; branch=z9hG4bKa"},
		{"ipv6 received unbracketed", "SIP/2.0/UDP [2001:db8::8]:5060", "[2001:db8::7]:5060", "SIP/2.0/UDP [2001:db8::8]:5060;received=2001:db8::7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.via)
			var v sipmsg.Via
			if err := sipmsg.ParseVia(in, sipmsg.Span{End: int32(len(in))}, &v); err != nil {
				t.Fatal(err)
			}
			src := netip.MustParseAddrPort(tc.src)
			ed := editor{end: len(in)}
			ed.setSrc(src)
			if !senderVia(&ed, in, &v) {
				t.Fatal("senderVia failed")
			}
			out, ok := ed.write(in, nil)
			if !ok || string(out) != tc.want {
				t.Errorf("got %q (ok %v)\nwant %q", out, ok, tc.want)
			}
		})
	}
}

// TestParseIPAgainstNetip: the byte parsers agree with netip.ParseAddr.
func TestParseIPAgainstNetip(t *testing.T) {
	inputs := []string{
		"0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "1.2.3.4.",
		"::", "::1", "1::", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::",
		"::1:2:3:4:5:6:7", "1::2::3", ":1::", "1:::2", "12345::", "::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0", "2001:db8::", "2001:db8:", ":", "::g", "1:2:3:4:5:6:7:8::", "::1.2.3",
		"0:0:0:0:0:0:0:0", "abcd:ef01:2345:6789:abcd:ef01:2345:6789", "1:2:3:4:5:6::1.2.3.4", "::0.0.0.0",
	}
	for _, s := range inputs {
		t.Run(s, func(t *testing.T) {
			want, err := netip.ParseAddr(s)
			var got netip.Addr
			var ok bool
			if strings.Contains(s, ":") {
				got, ok = parseIPv6([]byte(s))
			} else {
				var b [4]byte
				if ok = parseIPv4([]byte(s), b[:]); ok {
					got = netip.AddrFrom4(b)
				}
			}
			if strings.Contains(s, "%") {
				if ok {
					t.Errorf("zone accepted")
				}
				return
			}
			if ok != (err == nil) || ok && got != want {
				t.Errorf("got %v ok=%v, netip %v err=%v", got, ok, want, err)
			}
		})
	}
}
