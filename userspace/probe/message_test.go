package probe

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func TestAppendRequestExact(t *testing.T) {
	r := request{method: "OPTIONS", uri: "sip:10.0.0.2:5080", from: "sip:dispatcher@localhost",
		sentBy: "10.0.0.1:5060"}
	want := "OPTIONS sip:10.0.0.2:5080 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKpr00000000000000010123456789abcdef\r\n" +
		"To: <sip:10.0.0.2:5080>\r\n" +
		"From: <sip:dispatcher@localhost>;tag=0123456789abcdee\r\n" +
		"CSeq: 10 OPTIONS\r\n" +
		"Call-ID: 0123456789abcdef-1@10.0.0.1:5060\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Length: 0\r\n" +
		"\r\n"
	if got := string(appendRequest(nil, &r, 1, 0x0123456789abcdef)); got != want {
		t.Errorf("request:\n%s\nwant:\n%s", got, want)
	}
	r.userAgent = "sipedge"
	if got := string(appendRequest(nil, &r, 1, 0x0123456789abcdef)); !strings.HasSuffix(got, "Content-Length: 0\r\nUser-Agent: sipedge\r\n\r\n") {
		t.Errorf("request with User-Agent:\n%s", got)
	}
}

// TestProbeMessage builds probes through the engine and reads them back
// with sipmsg, as a backend would.
func TestProbeMessage(t *testing.T) {
	proxy := netip.MustParseAddrPort("198.51.100.7:5060")
	tests := []struct {
		name                 string
		cfg                  Config
		tg                   Target
		wantMethod, wantFrom string
		wantSentBy, wantUA   string
		wantDst, wantLocal   netip.AddrPort
	}{
		{
			name:       "defaults as Kamailio's dispatcher",
			tg:         Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal},
			wantMethod: "OPTIONS", wantFrom: "sip:dispatcher@localhost", wantSentBy: "192.0.2.1:5060",
			wantDst: testDst, wantLocal: testLocal,
		},
		{
			name:       "method, ds_ping_from and User-Agent from the config",
			cfg:        Config{Method: "INFO", From: "sip:proxy@sip.example.com", UserAgent: "sipedge/1"},
			tg:         Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal},
			wantMethod: "INFO", wantFrom: "sip:proxy@sip.example.com", wantSentBy: "192.0.2.1:5060", wantUA: "sipedge/1",
			wantDst: testDst, wantLocal: testLocal,
		},
		{
			name:       "per-destination ping_from wins over ds_ping_from",
			cfg:        Config{From: "sip:proxy@sip.example.com"},
			tg:         Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal, From: "sip:gw-check@example.net"},
			wantMethod: "OPTIONS", wantFrom: "sip:gw-check@example.net", wantSentBy: "192.0.2.1:5060",
			wantDst: testDst, wantLocal: testLocal,
		},
		{
			name:       "outbound proxy: sent to the proxy, Request-URI stays the destination",
			tg:         Target{URI: "sip:gw1.example.com;transport=udp", Addr: proxy, Local: testLocal},
			wantMethod: "OPTIONS", wantFrom: "sip:dispatcher@localhost", wantSentBy: "192.0.2.1:5060",
			wantDst: proxy, wantLocal: testLocal,
		},
		{
			name:       "advertised sent-by, default socket, IPv6",
			tg:         Target{URI: "sip:[2001:db8::10]:5080", Addr: netip.MustParseAddrPort("[2001:db8::10]:5080"), SentBy: "[2001:db8::1]:5070"},
			wantMethod: "OPTIONS", wantFrom: "sip:dispatcher@localhost", wantSentBy: "[2001:db8::1]:5070",
			wantDst: netip.MustParseAddrPort("[2001:db8::10]:5080"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Interval = time.Second
			e, s, c, _ := newFakeEngine(t, tc.cfg)
			if err := e.Add("k", tc.tg); err != nil {
				t.Fatal(err)
			}
			run(e, c, time.Second)
			sent := s.all()
			if len(sent) != 1 {
				t.Fatalf("sent %d messages in the first interval, want 1", len(sent))
			}
			if sent[0].dst != tc.wantDst || sent[0].local != tc.wantLocal {
				t.Errorf("sent from %v to %v, want from %v to %v", sent[0].local, sent[0].dst, tc.wantLocal, tc.wantDst)
			}
			b := sent[0].msg
			var m sipmsg.Msg
			if err := sipmsg.Parse(b, &m); err != nil {
				t.Fatalf("parse probe: %v\n%s", err, b)
			}
			if !m.IsRequest || m.StartErr != nil || m.Method.String(b) != tc.wantMethod || m.RURI.String(b) != tc.tg.URI {
				t.Errorf("request line %q, want %s %s", m.Start.String(b), tc.wantMethod, tc.tg.URI)
			}
			v := &m.TopVia
			if m.NumVias != 1 || v.Err != nil || v.SentBy.String(b) != tc.wantSentBy || !v.HasRport || v.HasRportValue ||
				!isProbeBranch(v.Branch.Bytes(b)) || v.Transport.String(b) != "UDP" {
				t.Errorf("Via %q: want one UDP Via, sent-by %s, bare rport, probe branch", v.Value.String(b), tc.wantSentBy)
			}
			if m.To.Err != nil || m.To.URI.Whole.String(b) != tc.tg.URI || m.To.HasTag {
				t.Errorf("To: URI %q tag %v, want %s without tag", m.To.URI.Whole.String(b), m.To.HasTag, tc.tg.URI)
			}
			if m.From.Err != nil || m.From.URI.Whole.String(b) != tc.wantFrom || !m.From.HasTag || m.From.Tag.Len() < 10 {
				t.Errorf("From: URI %q tag %q, want %s with a tag", m.From.URI.Whole.String(b), m.From.Tag.String(b), tc.wantFrom)
			}
			if m.CSeq.Err != nil || m.CSeq.Seq != 10 || m.CSeq.Method.String(b) != tc.wantMethod {
				t.Errorf("CSeq %d %q, want 10 %s", m.CSeq.Seq, m.CSeq.Method.String(b), tc.wantMethod)
			}
			if m.CallIDErr != nil || m.CallID.Len() == 0 || m.MaxForwardsNum != 70 || m.ContentLength != 0 || m.Body != len(b) {
				t.Errorf("Call-ID %q, Max-Forwards %d, Content-Length %d, body at %d of %d", m.CallID.String(b), m.MaxForwardsNum, m.ContentLength, m.Body, len(b))
			}
			gotUA := ""
			for _, h := range m.Headers[:m.NumHeaders] {
				if sipmsg.EqualFold(h.Name.Bytes(b), "user-agent") {
					gotUA = h.Value.String(b)
				}
			}
			if gotUA != tc.wantUA {
				t.Errorf("User-Agent %q, want %q\n%s", gotUA, tc.wantUA, b)
			}
			if m.Has(sipmsg.KindContact) {
				t.Error("probe has a Contact")
			}
		})
	}
}

// TestProbesAreUnique: two probes never share a branch, Call-ID or tag.
func TestProbesAreUnique(t *testing.T) {
	e, s, c, _ := newFakeEngine(t, Config{Interval: time.Second, Timeout: 100 * time.Millisecond})
	for _, k := range []string{"a", "b", "c"} {
		if err := e.Add(k, Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
			t.Fatal(err)
		}
	}
	run(e, c, 5*time.Second)
	seen := map[string]bool{}
	n := 0
	for _, x := range s.all() {
		var m sipmsg.Msg
		if err := sipmsg.Parse(x.msg, &m); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(x.msg), "CSeq: 10 OPTIONS") {
			t.Fatalf("no CSeq 10:\n%s", x.msg)
		}
		for _, f := range []string{"b" + m.TopVia.Branch.String(x.msg), "c" + m.CallID.String(x.msg), "t" + m.From.Tag.String(x.msg)} {
			if seen[f] {
				continue // a retransmission repeats its probe's values
			}
			seen[f] = true
		}
		n++
	}
	if want := 3 * 4; n < want || uint64(len(seen)) != 3*e.Stats().Probes {
		t.Errorf("%d messages, %d distinct values for %d probes: want %d probes, 3 distinct values each", n, len(seen), e.Stats().Probes, want)
	}
}

func TestNewAndAddReject(t *testing.T) {
	news := []struct {
		name string
		cfg  Config
	}{
		{"INVITE method", Config{Method: "INVITE"}},
		{"method not a token", Config{Method: "OPT IONS"}},
		{"from not sip", Config{From: "mailto:a@b"}},
		{"from with CRLF", Config{From: "sip:a@b\r\nX: y"}},
		{"user agent with CRLF", Config{UserAgent: "a\r\nb"}},
		{"T2 below T1", Config{T1: time.Second, T2: time.Millisecond}},
	}
	for _, tc := range news {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg, &fakeSender{}); err == nil {
				t.Errorf("New(%+v) = nil error", tc.cfg)
			}
		})
	}
	adds := []struct {
		name string
		tg   Target
	}{
		{"no URI", Target{Addr: testDst, Local: testLocal}},
		{"URI with a blank", Target{URI: "sip:a b", Addr: testDst, Local: testLocal}},
		{"no address", Target{URI: "sip:192.0.2.10"}},
		{"no sent-by and no local", Target{URI: "sip:192.0.2.10", Addr: testDst}},
		{"unspecified local", Target{URI: "sip:192.0.2.10", Addr: testDst, Local: netip.MustParseAddrPort("0.0.0.0:5060")}},
		{"sent-by with CRLF", Target{URI: "sip:192.0.2.10", Addr: testDst, SentBy: "a\r\nb"}},
		{"bad per-destination from", Target{URI: "sip:192.0.2.10", Addr: testDst, Local: testLocal, From: "x"}},
	}
	e, _, _, _ := newFakeEngine(t, Config{})
	for _, tc := range adds {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.Add("k", tc.tg); err == nil {
				t.Errorf("Add(%+v) = nil error", tc.tg)
			}
		})
	}
	if n := e.Stats().Targets; n != 0 {
		t.Errorf("%d targets after rejected adds", n)
	}
}

// isProbeBranch: branch is a default-prefix probe branch the engine can
// read back.
func isProbeBranch(branch []byte) bool {
	_, _, ok := parseBranch(branch, BranchPrefix)
	return ok
}
