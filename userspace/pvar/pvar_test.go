package pvar

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const allowed = "(allowed: $ci $fu $fU $fd $ft $tu $tU $td $tt $ru $rU $rd $rm $si $sp $du $hdr(Name))"

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		parts    int
		err      string
	}{
		{name: "kamailio example", in: "hash the $fU@$ci", parts: 4},
		{name: "parenthesised", in: "$(ru)-$(si)", parts: 3},
		{name: "adjacent", in: "$si$sp", parts: 2},
		{name: "only literal", in: "abc", parts: 1},
		{name: "empty", in: "", parts: 0},
		{name: "header", in: "$hdr(X-Tenant)/$(hdr(f))", parts: 3},
		{name: "new variables", in: "$rm $ft $tt $du", parts: 7},
		{name: "unknown", in: "$ciabc", err: `"$ciabc": unknown variable $ciabc ` + allowed},
		{name: "case matters", in: "$CI", err: `"$CI": unknown variable $CI ` + allowed},
		{name: "kamailio avp", in: "$avp(i:273)", err: `"$avp(i:273)": unknown variable $avp ` + allowed},
		{name: "lone dollar", in: "a$", err: `"a$": '$' at offset 1 is not followed by a variable name`},
		{name: "unclosed", in: "$(ci", err: `"$(ci": $(ci must close with ')' (transformations are not supported)`},
		{name: "transformation", in: "$(ci{s.len})", err: `"$(ci{s.len})": $(ci must close with ')' (transformations are not supported)`},
		{name: "index", in: "$ci[0]", err: `"$ci[0]": $ci takes no [...]: indexes and transformations are not supported`},
		{name: "hdr without name", in: "$(hdr)", err: `"$(hdr)": $hdr needs a header name: $hdr(Name)`},
		{name: "hdr unclosed", in: "$hdr(From", err: `"$hdr(From": $hdr( must close with ')'`},
		{name: "hdr bad name", in: "$hdr(a b)", err: `"$hdr(a b)": $hdr(a b): "a b" is not a header name`},
		{name: "hdr index", in: "$hdr(Via)[1]", err: `"$hdr(Via)[1]": $hdr takes no [...]: indexes and transformations are not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("error = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.parts) != tc.parts || got.String() != tc.in {
				t.Errorf("%d parts, %q; want %d, %q", len(got.parts), got.String(), tc.parts, tc.in)
			}
		})
	}
}

func TestTemplateFlags(t *testing.T) {
	for _, tc := range []struct {
		in                     string
		empty, hasVar, usesDst bool
	}{
		{"", true, false, false},
		{"x", false, false, false},
		{"$ci", false, true, false},
		{"a$du", false, true, true},
	} {
		tm, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if tm.IsEmpty() != tc.empty || tm.HasVariable() != tc.hasVar || tm.UsesDestination() != tc.usesDst {
			t.Errorf("%q: empty %v hasVar %v usesDst %v", tc.in, tm.IsEmpty(), tm.HasVariable(), tm.UsesDestination())
		}
	}
}

func parse(t *testing.T, b []byte) *sipmsg.Msg {
	t.Helper()
	var m sipmsg.Msg
	if err := sipmsg.Parse(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestAppend(t *testing.T) {
	in := crlf("INVITE sip:bob@biloxi.example.com:5070;user=phone SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"f: \"A\" <sip:alice@atlanta.example.com>;tag=9\n" +
		"To: tel:+15551234\n" +
		"X-Tenant: acme\n" +
		"x-tenant: second\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")
	src := netip.MustParseAddrPort("[2001:db8::7]:5062")
	input := &Input{Buf: in, Msg: parse(t, in), Src: src, DstURI: "sip:10.0.0.2:5080"}
	tests := []struct {
		name, tmpl, want string
	}{
		{"call-id", "$ci", "cid-1"},
		{"from parts", "$fu|$fU|$fd", "sip:alice@atlanta.example.com|alice|atlanta.example.com"},
		{"tel To", "$tu|$tU|$td", "tel:+15551234|+15551234|"},
		{"request-uri", "$ru|$rU|$rd", "sip:bob@biloxi.example.com:5070;user=phone|bob|biloxi.example.com"},
		{"source", "$si:$sp", "2001:db8::7:5062"},
		{"parenthesised", "x$(ci)y", "xcid-1y"},
		{"method", "$rm", "INVITE"},
		{"tags", "[$ft][$tt]", "[9][]"},
		{"destination", "$du", "sip:10.0.0.2:5080"},
		{"header, first of its name, any case", "$hdr(x-TENANT)", "acme"},
		{"compact form asked by long name", "$hdr(From)", "\"A\" <sip:alice@atlanta.example.com>;tag=9"},
		{"long form asked by compact name", "$(hdr(i))", "cid-1"},
		{"absent header", "<$hdr(Subject)>", "<>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := Parse(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tm.Append(make([]byte, 0, 256), input)
			if err != nil || string(got) != tc.want {
				t.Errorf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
	t.Run("cut at capacity", func(t *testing.T) {
		tm, _ := Parse("$ci$ci$ci")
		got, _ := tm.Append(make([]byte, 0, 7), input)
		if string(got) != "cid-1ci" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("no destination", func(t *testing.T) {
		tm, _ := Parse("<$du>")
		got, _ := tm.Append(make([]byte, 0, 64), &Input{Buf: in, Msg: input.Msg})
		if string(got) != "<>" {
			t.Errorf("got %q", got)
		}
	})
}

// TestAppendReply: a reply's $rm is its CSeq method, $tt the tag the
// callee added; it has no Request-URI.
func TestAppendReply(t *testing.T) {
	in := crlf("SIP/2.0 200 OK\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: <sip:alice@atlanta.example.com>;tag=9\n" +
		"To: <sip:bob@biloxi.example.com>;tag=b7\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")
	tm, _ := Parse("$rm|$ft|$tt|$ru")
	got, err := tm.Append(make([]byte, 0, 64), &Input{Buf: in, Msg: parse(t, in)})
	if err != nil || string(got) != "INVITE|9|b7|" {
		t.Errorf("got %q (%v)", got, err)
	}
}

func TestAppendErrors(t *testing.T) {
	in := crlf("INVITE sip:bob@biloxi.example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: <sip:alice@[bad>;tag=9\n" +
		"To: <sip:bob@[bad>\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")
	input := &Input{Buf: in, Msg: parse(t, in)}
	for _, tc := range []struct {
		tmpl string
		want error
	}{
		{"a$fU", ErrBadFrom},
		{"a$ft", ErrBadFrom},
		{"a$tu", ErrBadTo},
		{"a$tt", ErrBadTo},
	} {
		got, err := mustParse(t, tc.tmpl).Append(make([]byte, 0, 64), input)
		if !errors.Is(err, tc.want) || string(got) != "a" {
			t.Errorf("%s: %q, %v; want %q, %v", tc.tmpl, got, err, "a", tc.want)
		}
	}
	bad := crlf("INVITE sip:bob@[bad SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: <sip:alice@a.example>;tag=9\nTo: <sip:bob@b.example>\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")
	var m sipmsg.Msg
	_ = sipmsg.Parse(bad, &m)
	if _, err := mustParse(t, "$rd").Append(make([]byte, 0, 64), &Input{Buf: bad, Msg: &m}); !errors.Is(err, ErrBadRURI) {
		t.Errorf("bad Request-URI: %v, want ErrBadRURI", err)
	}
}

func mustParse(t *testing.T, s string) Template {
	t.Helper()
	tm, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestAppendAllocs: expanding allocates nothing (the slow path expands
// alg 7's template per message).
func TestAppendAllocs(t *testing.T) {
	in := crlf("INVITE sip:bob@b.example SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: <sip:alice@a.example>;tag=9\nTo: <sip:bob@b.example>\n" +
		"X-Tenant: acme\nCall-ID: cid-1\nCSeq: 1 INVITE\n\n")
	input := &Input{Buf: in, Msg: parse(t, in), Src: netip.MustParseAddrPort("192.0.2.1:5060"), DstURI: "sip:x"}
	tm := mustParse(t, "$fU@$rd/$ci/$si:$sp/$hdr(X-Tenant)/$du/$ft")
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { _, _ = tm.Append(buf[:0], input) }); n != 0 {
		t.Errorf("%v allocations per Append, want 0", n)
	}
}
