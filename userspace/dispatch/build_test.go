package dispatch

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestBuildOrdering(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		want    []string
	}{
		{name: "equal priorities reverse input order",
			entries: ents(1, "sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.3"),
			want:    []string{"sip:10.0.0.3", "sip:10.0.0.2", "sip:10.0.0.1"}},
		{name: "highest priority first",
			entries: []Entry{
				{SetID: 1, URI: "sip:10.0.0.1", Priority: 1},
				{SetID: 1, URI: "sip:10.0.0.2", Priority: 5},
				{SetID: 1, URI: "sip:10.0.0.3", Priority: 1},
				{SetID: 1, URI: "sip:10.0.0.4", Priority: 5},
				{SetID: 1, URI: "sip:10.0.0.5", Priority: 3},
			},
			want: []string{"sip:10.0.0.4", "sip:10.0.0.2", "sip:10.0.0.5", "sip:10.0.0.3", "sip:10.0.0.1"}},
		{name: "priority 0 last",
			entries: []Entry{
				{SetID: 1, URI: "sip:10.0.0.1"},
				{SetID: 1, URI: "sip:10.0.0.2", Priority: 1},
			},
			want: []string{"sip:10.0.0.2", "sip:10.0.0.1"}},
		{name: "duplicates kept",
			entries: ents(1, "sip:10.0.0.1", "sip:10.0.0.1"),
			want:    []string{"sip:10.0.0.1", "sip:10.0.0.1"}},
		{name: "interleaved sets keep their own order",
			entries: append(ents(1, "sip:10.0.0.1", "sip:10.0.0.2"), Entry{SetID: 1, URI: "sip:10.0.0.3"}, Entry{SetID: 2, URI: "sip:10.0.0.9"}),
			want:    []string{"sip:10.0.0.3", "sip:10.0.0.2", "sip:10.0.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustBuild(t, Options{}, tc.entries)
			set := s.Set(1)
			if got := uris(set); !slices.Equal(got, tc.want) {
				t.Errorf("order %v, want %v", got, tc.want)
			}
			for i := range set.Dests {
				if set.Dests[i].Index != i {
					t.Errorf("Dests[%d].Index = %d", i, set.Dests[i].Index)
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		want    []string
	}{
		{name: "bad weight names the line",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "weight=300", Source: "dispatcher.list:12"}},
			want:    []string{`dispatcher.list:12: weight "300" outside 1..100`}},
		{name: "bad ping_strict names the line",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "ping_strict=true", Source: "dispatcher.list:7"}},
			want:    []string{`dispatcher.list:7: ping_strict "true": want 0 or 1`}},
		{name: "every entry reported",
			entries: []Entry{
				{SetID: 1, URI: "sip:10.0.0.1;transport=tcp", Source: "f:1"},
				{SetID: 1, URI: "sip:10.0.0.2", Source: "f:2"},
				{SetID: 2, URI: "sip:10.0.0.3", Attrs: "rweight=0;maxload=x", Source: "f:3"},
			},
			want: []string{"f:1: uri", "transport tcp not supported yet (UDP only)", `f:3: rweight "0" outside 1..100`, `f:3: maxload "x" is not a number`}},
		// Entry.Check: the limits of a dispatcher.list line, whatever the source.
		{name: "negative set",
			entries: []Entry{{SetID: -1, URI: "sip:10.0.0.1", Source: "rpc dispatcher.add"}},
			want:    []string{"rpc dispatcher.add: set id -1 is out of range 0-2147483647"}},
		{name: "set over 2^31-1",
			entries: []Entry{{SetID: 1 << 31, URI: "sip:10.0.0.1", Source: "rpc dispatcher.add"}},
			want:    []string{"rpc dispatcher.add: set id 2147483648 is out of range 0-2147483647"}},
		{name: "bad flags",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1", Flags: 64, Source: "rpc dispatcher.add"}},
			want:    []string{"rpc dispatcher.add: flags 64 set bits outside mask 63"}},
		{name: "negative priority",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1", Priority: -1}},
			want:    []string{"entry 1: priority -1 is out of range 0-2147483647"}},
		{name: "attrs too long",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "duid=" + strings.Repeat("a", 10<<20)}},
			want:    []string{"entry 1: attrs are 10485765 bytes long; the limit is 4096"}},
		{name: "attrs with a blank",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "duid=a; weight=5"}},
			want:    []string{`entry 1: attrs "duid=a; weight=5" hold a blank`}},
		{name: "uri with a hash",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1#x"}},
			want:    []string{`entry 1: URI "sip:10.0.0.1#x" holds '#', which starts a comment`}},
		{name: "uri with a control character",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1\x01"}},
			want:    []string{`holds the control character 0x01`}},
		{name: "no source numbers the entry",
			entries: []Entry{{SetID: 1, URI: "sip:10.0.0.1"}, {SetID: 1, URI: "x"}},
			want:    []string{"entry 2: uri"}},
		{name: "dns failure",
			entries: []Entry{{SetID: 1, URI: "sip:nowhere.example", Source: "f:7"}},
			want:    []string{"f:7: resolve nowhere.example: no such host"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Build(context.Background(), tc.entries, Options{Resolver: fakeResolver(nil)})
			if err == nil {
				t.Fatalf("no error, snapshot %v", s)
			}
			if s != nil {
				t.Error("snapshot returned with an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestBuildResolve(t *testing.T) {
	calls := map[string]int{}
	res := func(ctx context.Context, host string) ([]netip.Addr, error) {
		calls[host]++
		return fakeResolver(map[string]string{"gw1.example": "192.0.2.1", "gw6.example": "::ffff:192.0.2.6"})(ctx, host)
	}
	entries := []Entry{
		{SetID: 1, URI: "sip:gw1.example"},
		{SetID: 1, URI: "sip:gw1.example:5080", Priority: 1},
		{SetID: 1, URI: "sip:gw6.example", Priority: 2},
		{SetID: 1, URI: "sip:unknown.example", Flags: FlagNoDNSARes, Priority: 3},
		{SetID: 1, URI: "sip:[2001:db8::5]", Priority: 4},
		{SetID: 1, URI: "sip:10.0.0.1", Flags: FlagNoDNSARes, Priority: 5},
	}
	s := mustBuild(t, Options{Resolver: res}, entries)
	tests := []struct {
		name string
		uri  string
		want netip.AddrPort
	}{
		{name: "literal with no-dns flag keeps its address", uri: "sip:10.0.0.1", want: netip.MustParseAddrPort("10.0.0.1:5060")},
		{name: "ipv6 literal", uri: "sip:[2001:db8::5]", want: netip.MustParseAddrPort("[2001:db8::5]:5060")},
		{name: "no-dns name stays zero", uri: "sip:unknown.example"},
		{name: "mapped answer unmapped", uri: "sip:gw6.example", want: netip.MustParseAddrPort("192.0.2.6:5060")},
		{name: "name with port", uri: "sip:gw1.example:5080", want: netip.MustParseAddrPort("192.0.2.1:5080")},
		{name: "name default port", uri: "sip:gw1.example", want: netip.MustParseAddrPort("192.0.2.1:5060")},
	}
	set := s.Set(1)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := set.Dests[i]
			if d.URI != tc.uri || d.Addr != tc.want {
				t.Errorf("Dests[%d] = %s %v, want %s %v", i, d.URI, d.Addr, tc.uri, tc.want)
			}
		})
	}
	if calls["gw1.example"] != 1 || calls["unknown.example"] != 0 {
		t.Errorf("resolver calls %v: want gw1 once, unknown never", calls)
	}
}

func TestBuildDestinationFields(t *testing.T) {
	s := mustBuild(t, Options{}, []Entry{{SetID: 3, URI: "10.0.0.7:5070", Flags: FlagProbing, Priority: 9, Attrs: "duid=a;weight=10"}})
	d := s.Set(3).Dests[0]
	want := Destination{SetID: 3, URI: "sip:10.0.0.7:5070", Flags: FlagProbing, Priority: 9,
		Attrs:  Attrs{Body: "duid=a;weight=10", DUID: "a", Weight: 10, OCMax: 100},
		Scheme: "sip", Host: "10.0.0.7", Port: 5070, Transport: "udp",
		Addr: netip.MustParseAddrPort("10.0.0.7:5070"), IUID: d.IUID}
	if d != want {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
	if !strings.HasPrefix(d.IUID, "dspt-") || len(d.IUID) != 13 {
		t.Errorf("IUID %q", d.IUID)
	}
}

func TestBuildIUIDs(t *testing.T) {
	entries := ents(1, "sip:10.0.0.1", "sip:10.0.0.1", "sip:10.0.0.2")
	a := mustBuild(t, Options{}, entries)
	b := mustBuild(t, Options{}, append(entries, Entry{SetID: 1, URI: "sip:10.0.0.3", Priority: 7}))
	ids := func(s *Snapshot) map[string]string {
		m := map[string]string{}
		for _, d := range s.Set(1).Dests {
			m[d.IUID] = d.URI
		}
		return m
	}
	tests := []struct {
		name string
		snap *Snapshot
		n    int
	}{
		{name: "unique with duplicates", snap: a, n: 3},
		{name: "unique after add", snap: b, n: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(ids(tc.snap)); got != tc.n {
				t.Errorf("%d distinct IUIDs, want %d", got, tc.n)
			}
		})
	}
	t.Run("stable across rebuilds", func(t *testing.T) {
		for id, u := range ids(a) {
			if ids(b)[id] != u {
				t.Errorf("IUID %s was %s, now %q", id, u, ids(b)[id])
			}
		}
	})
}

func TestBuildSnapshotAccessors(t *testing.T) {
	entries := append(ents(3, "sip:10.0.0.3"), append(ents(1, "sip:10.0.0.1"), ents(2, "sip:10.0.0.2")...)...)
	s := mustBuild(t, Options{}, entries)
	var ids []int
	for _, set := range s.Sets() {
		ids = append(ids, set.ID)
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "sets ascending", ok: slices.Equal(ids, []int{1, 2, 3})},
		{name: "exists", ok: s.Exists(2) && !s.Exists(4)},
		{name: "set nil when absent", ok: s.Set(9) == nil},
		{name: "entries in input order", ok: slices.Equal(s.Entries(), entries)},
		{name: "entries is a copy", ok: func() bool { e := s.Entries(); e[0].URI = "x"; return s.Entries()[0].URI != "x" }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fail()
			}
		})
	}
}

func TestBuildEmptyAndTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		wantErr string
	}{
		{name: "empty list", entries: nil},
		// The error names the first entry over the limit, so a list file's
		// error has FILE:LINE.
		{name: "set too large", entries: hosts(MaxSetSize + 1), wantErr: "dispatcher.list:32768: set 1 has more than 32767 destinations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Build(context.Background(), tc.entries, Options{Rand: testRand()})
			if tc.wantErr == "" {
				if err != nil || len(s.Sets()) != 0 {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestBuildContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := func(ctx context.Context, host string) ([]netip.Addr, error) { return nil, ctx.Err() }
	_, err := Build(ctx, ents(1, "sip:gw.example"), Options{Resolver: res})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}
