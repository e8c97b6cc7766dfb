package sipmsg

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: Parse never panics, and every span it returns lies inside the
// message and in order.
func FuzzParse(f *testing.F) {
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
			}
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
