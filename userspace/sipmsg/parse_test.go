package sipmsg

import (
	"errors"
	"strings"
	"testing"
)

func TestParseInvite(t *testing.T) {
	b := crlf(invite)
	var m Msg
	if err := Parse(b, &m); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  string
		want string
	}{
		{"method", m.Method.String(b), "INVITE"},
		{"request-uri", m.RURI.String(b), "sip:bob@biloxi.example.com"},
		{"version", m.Version.String(b), "SIP/2.0"},
		{"start line", m.Start.String(b), "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"},
		{"top via sent-by", m.TopVia.SentBy.String(b), "pc33.atlanta.example.com"},
		{"branch", m.TopVia.Branch.String(b), "z9hG4bK776asdhds"},
		{"call-id", m.CallID.String(b), "a84b4c76e66710@pc33.atlanta.example.com"},
		{"from uri", m.From.URI.Whole.String(b), "sip:alice@atlanta.example.com"},
		{"from user", m.From.URI.User.String(b), "alice"},
		{"from tag", m.From.Tag.String(b), "1928301774"},
		{"to host", m.To.URI.Host.String(b), "biloxi.example.com"},
		{"cseq number", m.CSeq.Num.String(b), "314159"},
		{"cseq method", m.CSeq.Method.String(b), "INVITE"},
		{"max-forwards", m.MaxForwards.String(b), "70"},
		{"route 0", m.Routes[0].Span.String(b), "<sip:p1.example.com;lr>"},
		{"route 1", m.Routes[1].Span.String(b), "<sip:p2.example.com:5070;lr;maddr=10.0.0.2>"},
		{"route 2", m.Routes[2].Span.String(b), "<sip:p3.example.com>"},
		{"top route host", m.TopRoute.URI.Host.String(b), "p1.example.com"},
		{"record-route 1", m.RecordRoutes[1].Span.String(b), "<sip:rr2.example.com;lr>"},
		{"body", string(b[m.Body:]), strings.ReplaceAll(invite[strings.Index(invite, "\n\n")+2:], "\n", "\r\n")},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%q, want %q", c.got, c.want)
			}
		})
	}
	if m.NumVias != 1 || m.NumRoutes != 3 || m.NumRecordRoutes != 2 || m.NumHeaders != 15 {
		t.Errorf("vias %d routes %d rr %d headers %d", m.NumVias, m.NumRoutes, m.NumRecordRoutes, m.NumHeaders)
	}
	if !m.TopVia.HasRport || m.TopVia.HasRportValue || m.MaxForwardsNum != 70 || m.ContentLength != 149 ||
		m.CSeq.Seq != 314159 || !m.TopRoute.URI.LR || m.To.HasTag || !m.From.HasTag || !m.VersionOK || !m.IsRequest {
		t.Errorf("flags: %+v", m.TopVia)
	}
	if m.ContentLength != len(b)-m.Body {
		t.Errorf("Content-Length %d, body %d", m.ContentLength, len(b)-m.Body)
	}
	if h, ok := m.First(KindContentType); !ok || h.Value.String(b) != "application/sdp" || h.Line.String(b) != "Content-Type: application/sdp\r\n" {
		t.Errorf("Content-Type header %+v", h)
	}
	if br, sb, ok := m.TopViaKey(b); !ok || string(br) != "z9hG4bK776asdhds" || string(sb) != "pc33.atlanta.example.com" {
		t.Errorf("TopViaKey %q %q %v", br, sb, ok)
	}
	if !ValueAlone(m.Routes[:m.NumRoutes], 2) || ValueAlone(m.Routes[:m.NumRoutes], 0) || NextOnLine(m.Routes[:m.NumRoutes], 0) != 1 ||
		NextOnLine(m.Routes[:m.NumRoutes], 1) != -1 {
		t.Error("value line helpers")
	}
}

// TestParseFraming covers the framing errors Parse returns.
func TestParseFraming(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", MaxLineLen) + "\n"
	many := strings.Repeat("X-A: 1\n", MaxHeaders)
	vias := strings.Repeat("Via: SIP/2.0/UDP h, SIP/2.0/UDP h\n", MaxVias/2+1)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"ok", crlf("OPTIONS sip:a SIP/2.0\nVia: SIP/2.0/UDP h\n\n"), nil},
		{"ok response", crlf("SIP/2.0 200 OK\n\n"), nil},
		{"leading CRLFs skipped", crlf("\n\nOPTIONS sip:a SIP/2.0\n\n"), nil},
		{"empty", nil, ErrEmpty},
		{"keepalive", crlf("\n\n"), ErrKeepalive},
		{"too long", make([]byte, MaxMsgLen+1), ErrTooLong},
		{"one word", crlf("GARBAGE\n\n"), ErrStartLine},
		{"two words", crlf("OPTIONS sip:a\n\n"), ErrStartLine},
		{"response without code", crlf("SIP/2.0\n\n"), ErrStartLine},
		{"no line end", []byte("OPTIONS sip:a SIP/2.0"), ErrNoEndOfHeaders},
		{"bare LF", []byte("OPTIONS sip:a SIP/2.0\nVia: x\r\n\r\n"), ErrLineEnding},
		{"bare CR", []byte("OPTIONS sip:a SIP/2.0\r\nVia: x\ry\r\n\r\n"), ErrLineEnding},
		{"bare CR at the end", []byte("OPTIONS sip:a SIP/2.0\r\nVia: x\r"), ErrLineEnding},
		{"CR then garbage after headers", []byte("OPTIONS sip:a SIP/2.0\r\n\rx"), ErrLineEnding},
		{"no empty line", crlf("OPTIONS sip:a SIP/2.0\nVia: x\n"), ErrNoEndOfHeaders},
		{"no colon", crlf("OPTIONS sip:a SIP/2.0\nFoobar roobar\n\n"), ErrHeaderLine},
		{"empty name", crlf("OPTIONS sip:a SIP/2.0\n: x\n\n"), ErrHeaderLine},
		{"continuation first", crlf("OPTIONS sip:a SIP/2.0\n x\n\n"), ErrHeaderLine},
		{"line too long", crlf("OPTIONS sip:a SIP/2.0\n" + long + "\n"), ErrLineTooLong},
		{"folded line too long", crlf("OPTIONS sip:a SIP/2.0\nX-Long: a\n " + long[8:] + "\n"), ErrLineTooLong},
		{"too many headers", crlf("OPTIONS sip:a SIP/2.0\n" + many + "X: 1\n\n"), ErrTooManyHeaders},
		{"max headers ok", crlf("OPTIONS sip:a SIP/2.0\n" + many + "\n"), nil},
		{"too many Via values", crlf("OPTIONS sip:a SIP/2.0\n" + vias + "\n"), ErrTooManyValues},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Msg
			if err := Parse(tc.in, &m); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// TestParseStartLine covers the start line's field errors.
func TestParseStartLine(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		request   bool
		err       error
		versionOK bool
		status    int
		reason    string
	}{
		{"request", "INVITE sip:a@b SIP/2.0", true, nil, true, 0, ""},
		{"lower-case version", "INVITE sip:a@b sip/2.0", true, nil, true, 0, ""},
		{"other version", "INVITE sip:a@b SIP/3.0", true, nil, false, 0, ""},
		{"bad version", "INVITE sip:a@b SIP/2", true, ErrVersion, false, 0, ""},
		{"version letters", "INVITE sip:a@b SIP/2.x", true, ErrVersion, false, 0, ""},
		{"method not a token", "INV(ITE sip:a@b SIP/2.0", true, ErrMethod, false, 0, ""},
		{"double space", "INVITE  sip:a@b SIP/2.0", true, ErrRequestURI, false, 0, ""},
		{"angle brackets", "INVITE <sip:a@b> SIP/2.0", true, ErrRequestURI, false, 0, ""},
		{"no scheme", "INVITE a@b SIP/2.0", true, ErrRequestURI, false, 0, ""},
		{"trailing space", "INVITE sip:a@b SIP/2.0 ", true, ErrRequestURI, false, 0, ""},
		{"response", "SIP/2.0 180 Ringing", false, nil, true, 180, "Ringing"},
		{"empty reason", "SIP/2.0 100 ", false, nil, true, 100, ""},
		{"no reason, no space", "SIP/2.0 100", false, nil, true, 100, ""},
		{"reason with spaces", "SIP/2.0 486 Busy Here", false, nil, true, 486, "Busy Here"},
		{"code too big", "SIP/2.0 4294967301 x", false, ErrStatus, true, 0, ""},
		{"code 700", "SIP/2.0 700 x", false, ErrStatus, true, 0, ""},
		{"code 099", "SIP/2.0 099 x", false, ErrStatus, true, 0, ""},
		{"code letters", "SIP/2.0 2x0 x", false, ErrStatus, true, 0, ""},
		{"response version 2.1", "SIP/2.1 200 OK", false, nil, false, 200, "OK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := crlf(tc.line + "\n\n")
			var m Msg
			if err := Parse(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.IsRequest != tc.request || m.StartErr != tc.err || m.VersionOK != tc.versionOK ||
				m.StatusCode != tc.status || m.Reason.String(b) != tc.reason {
				t.Errorf("request %v err %v versionOK %v status %d reason %q", m.IsRequest, m.StartErr, m.VersionOK, m.StatusCode, m.Reason.String(b))
			}
		})
	}
}

// TestParseHeaders covers names, compact forms, folding and the fields.
func TestParseHeaders(t *testing.T) {
	tests := []struct {
		name  string
		hdrs  string
		check func(t *testing.T, b []byte, m *Msg)
	}{
		{"compact forms", "v: SIP/2.0/UDP h\ni: c1\nf: <sip:a@b>;tag=1\nt: sip:c@d\nm: <sip:e@f>\nl: 0\nk: timer\nc: text/plain\ns: hi\ne: gzip\no: presence\nu: talk\nr: <sip:g@h>\nb: <sip:i@j>\nx: 90\na: *;audio\nj: *;video\nd: proxy\ny: abc\nn: <http://x>\n",
			func(t *testing.T, b []byte, m *Msg) {
				for k := KindVia; k < numKinds; k++ {
					if k == KindRoute || k == KindRecordRoute || k == KindCSeq || k == KindMaxForwards || k == KindAuthorization || k == KindProxyAuthorization {
						continue
					}
					if !m.Has(k) {
						t.Errorf("kind %d missing", k)
					}
				}
				if m.CallID.String(b) != "c1" || m.To.URI.User.String(b) != "c" || m.ContentLength != 0 {
					t.Error("values")
				}
			}},
		{"case-insensitive names, blanks before the colon", "VIA  : SIP/2.0/UDP h\nCALL-id :c2\nmax-FORWARDS\t: 0068\nRecord-ROUTE: <sip:x>\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.NumVias != 1 || m.CallID.String(b) != "c2" || m.MaxForwardsNum != 68 || m.MaxForwards.String(b) != "0068" || m.NumRecordRoutes != 1 {
					t.Errorf("vias %d callid %q mf %d", m.NumVias, m.CallID.String(b), m.MaxForwardsNum)
				}
			}},
		{"folding", "Subject: one\n two\n\tthree\nVia: SIP/2.0/UDP h\n ;branch=z9hG4bKx\nCSeq: 0009\n  INVITE\n",
			func(t *testing.T, b []byte, m *Msg) {
				h, _ := m.First(KindSubject)
				if h.Value.String(b) != "one\r\n two\r\n\tthree" || h.Line.String(b) != "Subject: one\r\n two\r\n\tthree\r\n" {
					t.Errorf("subject %q line %q", h.Value.String(b), h.Line.String(b))
				}
				if m.TopVia.Branch.String(b) != "z9hG4bKx" || m.CSeq.Seq != 9 || m.CSeq.Method.String(b) != "INVITE" {
					t.Errorf("folded via/cseq: %v %v", m.TopVia.Err, m.CSeq.Err)
				}
			}},
		{"empty value", "Subject:\nX:   \n",
			func(t *testing.T, b []byte, m *Msg) {
				h, _ := m.First(KindSubject)
				if h.Value.Len() != 0 || m.NumHeaders != 2 {
					t.Errorf("value %q", h.Value.String(b))
				}
			}},
		{"comma values across lines", "Via: SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/UDP b\nv: SIP/2.0/UDP c;x=\"q,q\"\nRoute: \"D, N\" <sip:r1;lr>,<sip:r2?h=a,b>\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.NumVias != 3 || m.Vias[1].Span.String(b) != "SIP/2.0/UDP b" || m.Vias[2].Span.String(b) != "SIP/2.0/UDP c;x=\"q,q\"" {
					t.Errorf("vias %d: %q", m.NumVias, m.Vias[1].Span.String(b))
				}
				if m.Vias[0].Header != m.Vias[1].Header || m.Vias[1].Header == m.Vias[2].Header {
					t.Error("header indexes")
				}
				if m.NumRoutes != 2 || m.Routes[0].Span.String(b) != "\"D, N\" <sip:r1;lr>" || m.Routes[1].Span.String(b) != "<sip:r2?h=a,b>" {
					t.Errorf("routes %d %q", m.NumRoutes, m.Routes[0].Span.String(b))
				}
			}},
		{"empty elements skipped, empty line kept", "Route: ,<sip:a>,,\nRecord-Route:\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.NumRoutes != 1 || m.NumRecordRoutes != 1 || m.RecordRoutes[0].Span.Len() != 0 {
					t.Errorf("routes %d rr %d", m.NumRoutes, m.NumRecordRoutes)
				}
			}},
		{"duplicates counted, first wins", "Call-ID: a\ni: b\nContent-Length: 0\nl: 5\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.Count[KindCallID] != 2 || m.CallID.String(b) != "a" || m.ContentLength != 0 || m.Count[KindContentLength] != 2 {
					t.Error("first wins")
				}
			}},
		{"field errors", "Via: SIP/2.0/UDP\nCall-ID:\nFrom: <sip:@x>\nTo: \"unclosed <sip:a@b>\nCSeq: x INVITE\nMax-Forwards: 7a\nContent-Length: -1\nRoute: <sip:a\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.TopVia.Err == nil || m.CallIDErr == nil || m.From.Err == nil || m.To.Err == nil || m.CSeq.Err == nil ||
					m.MaxForwardsErr == nil || m.ContentLengthErr == nil || m.ContentLength != -1 || m.TopRoute.Err == nil {
					t.Errorf("missing field errors: %v %v %v %v %v %v %v %v", m.TopVia.Err, m.CallIDErr, m.From.Err, m.To.Err, m.CSeq.Err, m.MaxForwardsErr, m.ContentLengthErr, m.TopRoute.Err)
				}
			}},
		{"cseq limits", "CSeq: 2147483647 ACK\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.CSeq.Err != nil || m.CSeq.Seq != 2147483647 {
					t.Error(m.CSeq.Err)
				}
			}},
		{"cseq over 2^31", "CSeq: 2147483648 ACK\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.CSeq.Err == nil {
					t.Error("accepted")
				}
			}},
		{"max-forwards capped", "Max-Forwards: 99999999999999999999\n",
			func(t *testing.T, b []byte, m *Msg) {
				if m.MaxForwardsErr != nil || m.MaxForwardsNum != 256 {
					t.Errorf("%d %v", m.MaxForwardsNum, m.MaxForwardsErr)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := crlf("OPTIONS sip:a@b SIP/2.0\n" + tc.hdrs + "\n")
			var m Msg
			if err := Parse(b, &m); err != nil {
				t.Fatal(err)
			}
			tc.check(t, b, &m)
		})
	}
}

// TestParseReuse: a Msg reused for a second message holds only the second.
func TestParseReuse(t *testing.T) {
	var m Msg
	a := crlf(invite)
	if err := Parse(a, &m); err != nil {
		t.Fatal(err)
	}
	b := crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;received=1.2.3.4\n\n")
	if err := Parse(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.IsRequest || m.NumRoutes != 0 || m.NumRecordRoutes != 0 || m.Has(KindCallID) || m.ContentLength != -1 ||
		m.TopVia.HasBranch || m.TopVia.HasRport || !m.TopVia.HasReceived || m.From.HasTag || m.NumHeaders != 1 {
		t.Errorf("stale fields: %+v", m.TopVia)
	}
}

// TestTokenMask checks isToken's bit masks against RFC 3261's token
// definition.
func TestTokenMask(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-.!%*_+`'~", byte(c)) >= 0
		if c >= 128 {
			want = false
		}
		if got := isToken(byte(c)); got != want {
			t.Errorf("isToken(%#x) = %v, want %v", c, got, want)
		}
	}
}

// TestNumericStrict: every number the scanner reads is the whole value,
// digits only; a value with anything around its digits is malformed, never
// read as its leading digits (issue 7 item 5).
func TestNumericStrict(t *testing.T) {
	for _, bad := range []string{"6101x", "61.01", "6:101", "+61", "-1", "6 1", "0x10", ""} {
		t.Run(bad, func(t *testing.T) {
			b := crlf("OPTIONS sip:a@b SIP/2.0\nMax-Forwards: " + bad + "\nContent-Length: " + bad + "\nCSeq: " + bad + " OPTIONS\n\n")
			var m Msg
			if err := Parse(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.MaxForwardsErr == nil {
				t.Errorf("Max-Forwards %q read as %d", bad, m.MaxForwardsNum)
			}
			if m.ContentLengthErr == nil {
				t.Errorf("Content-Length %q read as %d", bad, m.ContentLength)
			}
			if m.CSeq.Err == nil {
				t.Errorf("CSeq %q read as %d", bad, m.CSeq.Seq)
			}
		})
	}
}
