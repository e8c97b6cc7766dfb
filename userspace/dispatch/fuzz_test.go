package dispatch

import (
	"context"
	"net/netip"
	"testing"
)

// The fuzz targets check that no input makes the parsers, the hash or a
// whole Build panic. Their seeds run as ordinary tests.

func FuzzParseAttrs(f *testing.F) {
	for _, s := range []string{"", "duid=a;weight=50;", `ping_from="sip:a;b"`, "=;;=", "weight=999999999999999999999", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAttrs(s)
		if err == nil && a.Body != s {
			t.Errorf("Body %q, want %q", a.Body, s)
		}
	})
}

func FuzzParseDestURI(f *testing.F) {
	for _, s := range []string{"sip:10.0.0.1", "sip:a@[::1]:5060;transport=udp", "10.0.0.1", "sip:[", "sip::", "sip:@", "sip:a@b@c", "SIP:h;transport"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseDestURI(s)
		if err == nil && (u.host == "" || (u.transport != "" && u.transport != "udp")) {
			t.Errorf("%q parsed to %+v", s, u)
		}
	})
}

func FuzzHash(f *testing.F) {
	f.Add("abc", "")
	f.Add("\xff\xfe", "x")
	f.Fuzz(func(t *testing.T, x, y string) {
		if Hash(x, y) == 0 {
			t.Error("hash 0")
		}
	})
}

func FuzzBuildSelect(f *testing.F) {
	f.Add("sip:10.0.0.1", "weight=10", 3, uint8(0), "call-id")
	f.Add("gw", "rweight=1", 0, uint8(FlagInactive), "")
	f.Fuzz(func(t *testing.T, uri, attrs string, prio int, flags uint8, callID string) {
		entries := []Entry{
			{SetID: 1, URI: uri, Attrs: attrs, Priority: prio, Flags: Flags(flags)},
			{SetID: 1, URI: "sip:10.0.0.9", Flags: FlagInactive},
		}
		res := func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
		}
		s, err := Build(context.Background(), entries, Options{UseDefault: prio%2 == 0, Resolver: res, Rand: testRand()})
		if err != nil {
			return
		}
		for _, alg := range Algs() {
			sel, err := s.Select(1, alg, Key{CallID: callID, PVar: callID, AuthUser: callID}, 0)
			if err == nil && (len(sel.Dests) == 0 || !sel.Dests[0].Up()) {
				t.Errorf("alg %d picked %+v", alg, sel.Dests)
			}
		}
		d := New(s)
		_ = d.SetState(1, "all", attrs)
		_ = d.Mark(1, uri, attrs)
		_, _ = d.ProbeResult(1, uri, prio > 0, ProbeParams{Mode: ProbingMode(flags % 4)})
	})
}
