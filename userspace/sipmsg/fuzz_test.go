package sipmsg

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/tests/fixtures"
)

// FuzzParse: Parse never panics, every span it returns lies inside the
// message and in order, and every number it accepts is its whole text in
// digits (never the leading digits of something else, issue 7 item 5).
// Seeds: the RFC 4475 torture messages and the fixtures' datagrams.
func FuzzParse(f *testing.F) {
	cases, err := fixtures.Load(fixtures.Dir())
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		f.Add(c.In)
	}
	files, _ := filepath.Glob("testdata/torture/*/*.dat")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add(crlf(invite))
	f.Add(crlf("SIP/2.0 200 OK\nv: SIP/2.0/UDP [::1]:5;rport=9;received=::2, SIP/2.0/TCP h\nl: 0\n\n"))
	f.Add(crlf("\n\nBYE sip:a@b SIP/2.0\nRoute: \"x,\" <sip:a;lr>,\n <sip:b>\nt: <sip:c>;tag=1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		err := Parse(b, &m)
		in := func(name string, s Span) {
			if s.Start < 0 || s.End < s.Start || int(s.End) > len(b) {
				t.Fatalf("%s span %v outside the %d-byte message", name, s, len(b))
			}
		}
		if err != nil {
			return
		}
		in("start", m.Start)
		in("method", m.Method)
		in("ruri", m.RURI)
		prev := m.Start.End
		for i := 0; i < m.NumHeaders; i++ {
			h := m.Headers[i]
			in("line", h.Line)
			in("name", h.Name)
			in("value", h.Value)
			if h.Line.Start != prev || h.Name.Start != h.Line.Start || h.Value.End > h.Line.End-2 {
				t.Fatalf("header %d out of order: %+v after %d", i, h, prev)
			}
			prev = h.Line.End
		}
		if m.Body != int(prev)+2 || m.Body > len(b) {
			t.Fatalf("body at %d, headers end at %d", m.Body, prev)
		}
		for i := 0; i < m.NumVias; i++ {
			in("via", m.Vias[i].Span)
			var v Via
			if ParseVia(b, m.Vias[i].Span, &v) == nil {
				in("sent-by", v.SentBy)
				in("branch", v.Branch)
				in("received param", v.ReceivedParam)
				if v.HasPort {
					wholeNumber(t, "sent-by port", v.Port.Bytes(b), v.PortNum, 65535)
				}
				if v.HasRportValue {
					wholeNumber(t, "rport", v.Rport.Bytes(b), v.RportNum, 65535)
				}
			}
		}
		if m.MaxForwardsErr == nil && m.Count[KindMaxForwards] > 0 {
			wholeNumber(t, "Max-Forwards", m.MaxForwards.Bytes(b), m.MaxForwardsNum, 256)
		}
		if m.CSeq.Err == nil && m.Count[KindCSeq] > 0 {
			wholeNumber(t, "CSeq", m.CSeq.Num.Bytes(b), int(m.CSeq.Seq), 1<<31-1)
		}
		if m.ContentLengthErr == nil && m.Count[KindContentLength] > 0 && m.ContentLength < 0 {
			t.Fatalf("Content-Length accepted as %d", m.ContentLength)
		}
		for i := 0; i < m.NumRoutes; i++ {
			in("route", m.Routes[i].Span)
			var na NameAddr
			if ParseNameAddr(b, m.Routes[i].Span, &na) == nil {
				in("route host", na.URI.Host)
			}
		}
		in("call-id", m.CallID)
		in("to tag", m.To.Tag)
		in("from uri", m.From.URI.Whole)
		in("max-forwards", m.MaxForwards)
	})
}

// wholeNumber fails t unless text is 1*DIGIT whose value is num (values
// above capAt read as capAt).
func wholeNumber(t *testing.T, what string, text []byte, num, capAt int) {
	t.Helper()
	if len(text) == 0 {
		t.Fatalf("%s: accepted an empty number as %d", what, num)
	}
	v := 0
	for _, c := range text {
		if c < '0' || c > '9' {
			t.Fatalf("%s: accepted %q as %d", what, text, num)
		}
		if v <= capAt {
			v = v*10 + int(c-'0')
		}
	}
	if v > capAt {
		v = capAt
	}
	if v != num {
		t.Fatalf("%s: %q read as %d", what, text, num)
	}
}
