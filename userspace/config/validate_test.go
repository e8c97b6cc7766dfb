package config

import (
	"net/netip"
	"testing"
)

func TestParseListenAddress(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		proto string
		addr  string
		err   string
	}{
		{name: "ipv4", in: "udp:127.0.0.1:5060", proto: "udp", addr: "127.0.0.1:5060"},
		{name: "ipv6", in: "udp:[::1]:5060", proto: "udp", addr: "[::1]:5060"},
		{name: "upper-case proto", in: "UDP:10.0.0.1:5061", proto: "udp", addr: "10.0.0.1:5061"},
		{name: "tcp parses, Validate rejects it", in: "tcp:10.0.0.1:5060", proto: "tcp", addr: "10.0.0.1:5060"},
		{name: "ipv6 without brackets", in: "udp:::1:5060", err: `"udp:::1:5060": write IPv6 in brackets with a port, e.g. udp:[::1]:5060`},
		{name: "ipv6 without port", in: "udp:[::1]", err: `"udp:[::1]" has no port: want proto:IP:PORT such as udp:127.0.0.1:5060`},
		{name: "zone", in: "udp:[fe80::1%eth0]:5060", err: `"udp:[fe80::1%eth0]:5060": IPv6 zones are not supported`},
		{name: "port 0", in: "udp:127.0.0.1:0", err: `"udp:127.0.0.1:0": port 0 is not a port to listen on`},
		{name: "empty", in: "", err: `"": want proto:IP:PORT such as udp:127.0.0.1:5060`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proto, ap, err := parseListenAddress(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("error = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil || proto != tc.proto || ap != netip.MustParseAddrPort(tc.addr) {
				t.Errorf("got %s %s %v", proto, ap, err)
			}
		})
	}
}

func TestCheckHostPort(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  string
	}{
		{name: "ipv4", in: "203.0.113.10:5060"},
		{name: "ipv6", in: "[2001:db8::1]:5060"},
		{name: "name", in: "sip-edge.example.com:5080"},
		{name: "single label", in: "edge:5060"},
		{name: "port 0", in: "edge:0", err: `"edge:0": port "0" is not 1-65535`},
		{name: "port sign", in: "edge:+5060", err: `"edge:+5060": port "+5060" is not 1-65535`},
		{name: "no port ipv6", in: "[2001:db8::1]", err: `"[2001:db8::1]" has no port: want host:port such as 203.0.113.10:5060`},
		{name: "unbracketed ipv6", in: "2001:db8::1:5060", err: `"2001:db8::1:5060": want host:port such as 203.0.113.10:5060 or [2001:db8::1]:5060`},
		{name: "bad label", in: "-edge.example.com:5060", err: `"-edge.example.com:5060": "-edge.example.com" is neither an IP address nor a host name`},
		{name: "underscore", in: "my_edge:5060", err: `"my_edge:5060": "my_edge" is neither an IP address nor a host name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHostPort(tc.in)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Errorf("checkHostPort(%q) = %v, want %q", tc.in, err, tc.err)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "ipv4", in: "127.0.0.1:8080", ok: true},
		{name: "other 127", in: "127.0.0.2:8080", ok: true},
		{name: "ipv6", in: "[::1]:8080", ok: true},
		{name: "localhost", in: "localhost:8080", ok: true},
		{name: "wildcard", in: ":8080"},
		{name: "public", in: "192.0.2.1:8080"},
		{name: "no port", in: "127.0.0.1"},
		{name: "port 0", in: "127.0.0.1:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkLoopback(tc.in); (err == nil) != tc.ok {
				t.Errorf("checkLoopback(%q) = %v", tc.in, err)
			}
		})
	}
}

func TestCheckAlgorithm(t *testing.T) {
	for alg := -1; alg <= 70; alg++ {
		msg := checkAlgorithm(alg)
		supported := alg >= 0 && alg <= 11 || alg == 13 || alg == 14
		if (msg == "") != supported {
			t.Errorf("checkAlgorithm(%d) = %q", alg, msg)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{name: "file and line", err: Error{File: "a.yaml", Line: 3, Msg: "m"}, want: "a.yaml:3: m"},
		{name: "file only", err: Error{File: "a.yaml", Msg: "m"}, want: "a.yaml: m"},
		{name: "neither", err: Error{Msg: "m"}, want: "m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
