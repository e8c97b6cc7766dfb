package dispatch

import (
	"net/netip"
	"testing"
)

func TestIsFromList(t *testing.T) {
	entries := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1:5080"},                                     // explicit port
		{SetID: 1, URI: "sip:10.0.0.2"},                                          // any port
		{SetID: 1, URI: "sip:10.0.0.3:5060", Flags: FlagInactive},                // down
		{SetID: 1, URI: "sip:10.0.0.4", Flags: FlagNoDNSARes},                    // never matches
		{SetID: 2, URI: "sip:10.0.0.2:5070", Attrs: "socket=udp:192.0.2.1:5060"}, // with socket
		{SetID: 2, URI: "sip:gw.example"},                                        // PROTO_NONE
		{SetID: 3, URI: "sip:10.0.0.5:5060", Attrs: "socket=udp:192.0.2.1:5060"},
		{SetID: 3, URI: "sip:10.0.0.5"},
		{SetID: 3, URI: "sip:[2001:db8::7]:5060"},
	}
	s := mustBuild(t, Options{Resolver: fakeResolver(map[string]string{"gw.example": "10.0.0.6"})}, entries)
	ap := netip.MustParseAddrPort
	tests := []struct {
		name      string
		group     int
		mode      int
		src       string
		proto     string
		socket    string
		wantOK    bool
		wantSet   int
		wantURI   string
		wantScore int
	}{
		{name: "default mode ip and port", group: 1, mode: MatchNoProto, src: "10.0.0.1:5080", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.1:5080"},
		{name: "wrong port", group: 1, mode: MatchNoProto, src: "10.0.0.1:5060"},
		{name: "port ignored", group: 1, mode: MatchNoPort | MatchNoProto, src: "10.0.0.1:5060", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.1:5080"},
		{name: "no explicit port matches any", group: 1, mode: 0, src: "10.0.0.2:40000", proto: "udp", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.2"},
		{name: "protocol must match in mode 0", group: 1, mode: 0, src: "10.0.0.2:5060", proto: "tcp"},
		{name: "protocol ignored", group: 1, mode: MatchNoProto, src: "10.0.0.2:5060", proto: "tcp", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.2"},
		{name: "down matches without mode 4", group: 1, mode: MatchNoProto, src: "10.0.0.3:5060", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.3:5060"},
		{name: "down skipped with mode 4", group: 1, mode: MatchNoProto | MatchActive, src: "10.0.0.3:5060"},
		{name: "no-dns never matches", group: 1, mode: MatchNoPort | MatchNoProto, src: "10.0.0.4:5060"},
		{name: "wrong group", group: 2, mode: MatchNoProto, src: "10.0.0.1:5080"},
		{name: "missing group", group: 9, mode: MatchNoProto, src: "10.0.0.1:5080"},
		{name: "all groups lowest set first", group: -1, mode: MatchNoPort | MatchNoProto, src: "10.0.0.2:5070", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.2"},
		{name: "all groups finds set 2", group: -1, mode: MatchNoProto, src: "10.0.0.6:5060", wantOK: true, wantSet: 2, wantURI: "sip:gw.example"},
		{name: "proto none is udp", group: 2, mode: 0, src: "10.0.0.6:1234", proto: "UDP", wantOK: true, wantSet: 2, wantURI: "sip:gw.example"},
		{name: "socket must match", group: 2, mode: MatchNoProto | MatchSocket, src: "10.0.0.2:5070", socket: "udp:192.0.2.9:5060"},
		{name: "socket matches", group: 2, mode: MatchNoProto | MatchSocket, src: "10.0.0.2:5070", socket: "UDP:192.0.2.1:5060", wantOK: true, wantSet: 2, wantURI: "sip:10.0.0.2:5070"},
		{name: "mapped source", group: 1, mode: MatchNoProto, src: "[::ffff:10.0.0.1]:5080", wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.1:5080"},
		{name: "ipv6", group: 3, mode: MatchNoProto, src: "[2001:db8::7]:5060", wantOK: true, wantSet: 3, wantURI: "sip:[2001:db8::7]:5060"},
		{name: "best match full score", group: 3, mode: MatchBest, src: "10.0.0.5:5060", proto: "udp", socket: "udp:192.0.2.1:5060",
			wantOK: true, wantSet: 3, wantURI: "sip:10.0.0.5:5060", wantScore: 15},
		{name: "best match without socket prefers port", group: 3, mode: MatchBest, src: "10.0.0.5:5060", proto: "udp",
			wantOK: true, wantSet: 3, wantURI: "sip:10.0.0.5:5060", wantScore: 7},
		{name: "best match tie goes to the lower index", group: 3, mode: MatchBest, src: "10.0.0.5:6000", proto: "udp",
			wantOK: true, wantSet: 3, wantURI: "sip:10.0.0.5", wantScore: 5},
		{name: "best match ignores port and proto", group: 1, mode: MatchBest, src: "10.0.0.1:9", proto: "tcp",
			wantOK: true, wantSet: 1, wantURI: "sip:10.0.0.1:5080", wantScore: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := s.IsFromListSocket(tc.group, tc.mode, ap(tc.src), tc.proto, tc.socket)
			if ok != tc.wantOK {
				t.Fatalf("matched %v (%+v), want %v", ok, m, tc.wantOK)
			}
			if !ok {
				return
			}
			if m.SetID != tc.wantSet || m.Dest.URI != tc.wantURI || m.Score != tc.wantScore {
				t.Errorf("got set %d %s score %d, want set %d %s score %d", m.SetID, m.Dest.URI, m.Score, tc.wantSet, tc.wantURI, tc.wantScore)
			}
		})
	}
	t.Run("IsFromList is without socket", func(t *testing.T) {
		if _, ok := s.IsFromList(2, MatchNoProto|MatchSocket, ap("10.0.0.2:5070"), "udp"); ok {
			t.Error("a destination with a socket matched an unknown receiving socket")
		}
	})
}

func TestIsActive(t *testing.T) {
	s := downAt(t, mustBuild(t, Options{}, hosts(2)), 0) // index 0 is sip:10.0.0.2
	tests := []struct {
		name  string
		group int
		uri   string
		want  bool
	}{
		{name: "any up", group: 1, want: true},
		{name: "that one up", group: 1, uri: "sip:10.0.0.1", want: true},
		{name: "that one down", group: 1, uri: "sip:10.0.0.2", want: false},
		{name: "exact bytes", group: 1, uri: "SIP:10.0.0.1", want: false},
		{name: "no set", group: 5, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.IsActive(tc.group, tc.uri); got != tc.want {
				t.Errorf("got %v", got)
			}
		})
	}
}
