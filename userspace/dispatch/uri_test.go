package dispatch

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseDestURI(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    destURI
		wantErr string
	}{
		{name: "ipv4", in: "sip:10.0.0.1",
			want: destURI{uri: "sip:10.0.0.1", scheme: "sip", host: "10.0.0.1", transport: "udp", literal: netip.MustParseAddr("10.0.0.1")}},
		{name: "ipv4 port user params", in: "sip:alice:pw@10.0.0.1:5080;transport=UDP;lr?X=1",
			want: destURI{uri: "sip:alice:pw@10.0.0.1:5080;transport=UDP;lr?X=1", scheme: "sip", user: "alice", host: "10.0.0.1", port: 5080, transport: "udp", literal: netip.MustParseAddr("10.0.0.1")}},
		{name: "ipv6 with port", in: "sip:[2001:db8::1]:5070",
			want: destURI{uri: "sip:[2001:db8::1]:5070", scheme: "sip", host: "[2001:db8::1]", port: 5070, transport: "udp", literal: netip.MustParseAddr("2001:db8::1")}},
		{name: "scheme case", in: "SIP:10.0.0.1",
			want: destURI{uri: "SIP:10.0.0.1", scheme: "sip", host: "10.0.0.1", transport: "udp", literal: netip.MustParseAddr("10.0.0.1")}},
		{name: "name with port is udp", in: "sip:gw.example.com:5060",
			want: destURI{uri: "sip:gw.example.com:5060", scheme: "sip", host: "gw.example.com", port: 5060, transport: "udp"}},
		{name: "name without port is none", in: "sip:gw.example.com",
			want: destURI{uri: "sip:gw.example.com", scheme: "sip", host: "gw.example.com"}},
		{name: "name with explicit udp", in: "sip:gw.example.com;transport=udp",
			want: destURI{uri: "sip:gw.example.com;transport=udp", scheme: "sip", host: "gw.example.com", transport: "udp"}},
		{name: "no scheme retried", in: "10.0.0.1:5080",
			want: destURI{uri: "sip:10.0.0.1:5080", scheme: "sip", host: "10.0.0.1", port: 5080, transport: "udp", literal: netip.MustParseAddr("10.0.0.1")}},
		{name: "no scheme too short", in: "h:50", wantErr: "not a sip: or sips: URI"},
		{name: "no scheme too long", in: strings.Repeat("a", 500), wantErr: "not a sip: or sips: URI"},
		{name: "tcp", in: "sip:10.0.0.1;transport=tcp", wantErr: "transport tcp not supported yet (UDP only)"},
		{name: "tls", in: "sip:10.0.0.1;transport=TLS", wantErr: "transport tls not supported yet (UDP only)"},
		{name: "ws", in: "sip:10.0.0.1;transport=ws", wantErr: "transport ws not supported yet (UDP only)"},
		{name: "sctp", in: "sip:10.0.0.1;transport=sctp", wantErr: "transport sctp not supported yet (UDP only)"},
		{name: "sips", in: "sips:10.0.0.1", wantErr: "transport tls not supported yet (UDP only)"},
		{name: "unknown transport", in: "sip:10.0.0.1;transport=foo", wantErr: `unknown transport "foo"`},
		{name: "bad port", in: "sip:10.0.0.1:99999", wantErr: "bad port"},
		{name: "empty port", in: "sip:10.0.0.1:", wantErr: "bad port"},
		{name: "port zero", in: "sip:10.0.0.1:0", wantErr: "bad port"},
		{name: "bare ipv6", in: "sip:2001:db8::1", wantErr: "bad"},
		{name: "unclosed ipv6", in: "sip:[2001:db8::1", wantErr: "no ']'"},
		{name: "ipv4 in brackets", in: "sip:[10.0.0.1]", wantErr: "bad IPv6 reference"},
		{name: "bad host", in: "sip:bad host", wantErr: "bad host"},
		{name: "empty host", in: "sip:alice@", wantErr: "empty host"},
		{name: "empty user", in: "sip:@10.0.0.1", wantErr: "empty user"},
		{name: "other scheme", in: "tel:+1234", wantErr: "bad"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDestURI(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNormalizeURI(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "sip kept", in: "sip:10.0.0.1", want: "sip:10.0.0.1"},
		{name: "sips kept", in: "SIPS:h", want: "SIPS:h"},
		{name: "prefixed", in: "10.0.0.1", want: "sip:10.0.0.1"},
		{name: "too short kept", in: "a.b", want: "a.b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizeURI(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
