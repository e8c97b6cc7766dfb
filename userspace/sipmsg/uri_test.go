package sipmsg

import (
	"errors"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		err       error
		sip       bool
		secure    bool
		user      string
		password  string
		host      string
		port      int
		params    string
		headers   string
		lr        bool
		maddr     string
		transport string
	}{
		{"plain", "sip:alice@atlanta.example.com", nil, true, false, "alice", "", "atlanta.example.com", 0, "", "", false, "", ""},
		{"everything", "SIPS:bob:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=10.0.0.1?subject=x", nil, true, true, "bob", "secret", "[2001:db8::1]", 5061, "transport=tcp;lr;maddr=10.0.0.1", "subject=x", true, "10.0.0.1", "tcp"},
		{"no user", "sip:10.0.0.1:5070;lr", nil, true, false, "", "", "10.0.0.1", 5070, "lr", "", true, "", ""},
		{"lr with value", "sip:h;lr=on", nil, true, false, "", "", "h", 0, "lr=on", "", true, "", ""},
		{"semicolon in user (semiuri)", "sip:user;par=u%40example.net@example.com", nil, true, false, "user;par=u%40example.net", "", "example.com", 0, "", "", false, "", ""},
		{"weird user (intmeth)", "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com", nil, true, false, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*", "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)", "example.com", 0, "", "", false, "", ""},
		{"tel", "tel:+1-555-1234;phone-context=x", nil, false, false, "", "", "", 0, "", "", false, "", ""},
		{"unknown scheme", "soap.beep://192.0.2.103:3002", nil, false, false, "", "", "", 0, "", "", false, "", ""},
		{"empty", "", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"no scheme", "alice@example.com", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"empty opaque", "tel:", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"no host", "sip:", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"empty user", "sip:@h", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"host only user", "sip:a@", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"empty port", "sip:h:", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"port too big", "sip:h:65536", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"blank", "sip:h; lr", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"empty param", "sip:h;;lr", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"empty maddr", "sip:h;maddr=", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"maddr without value", "sip:h;maddr", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"bad host char", "sip:h!x", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"bad ipv6", "sip:[zz]", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"angle inside", "sip:a<b", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
		{"non-ascii", "sip:h\xc3\xa9", ErrURI, false, false, "", "", "", 0, "", "", false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			var u URI
			err := ParseURI(b, whole(b), &u)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if u.SIP != tc.sip || u.Secure != tc.secure || u.User.String(b) != tc.user || u.Password.String(b) != tc.password ||
				u.Host.String(b) != tc.host || u.PortNum != tc.port || u.Params.String(b) != tc.params || u.Headers.String(b) != tc.headers ||
				u.LR != tc.lr || u.Maddr.String(b) != tc.maddr || u.Transport.String(b) != tc.transport {
				t.Errorf("got sip %v secure %v user %q pw %q host %q port %d params %q headers %q lr %v maddr %q transport %q",
					u.SIP, u.Secure, u.User.String(b), u.Password.String(b), u.Host.String(b), u.PortNum, u.Params.String(b),
					u.Headers.String(b), u.LR, u.Maddr.String(b), u.Transport.String(b))
			}
			if !u.SIP && u.Opaque.Len() == 0 {
				t.Error("opaque part missing")
			}
		})
	}
	t.Run("span outside the buffer", func(t *testing.T) {
		var u URI
		if err := ParseURI([]byte("sip:h"), Span{Start: 2, End: 99}, &u); err == nil {
			t.Error("accepted")
		}
	})
}

func TestParseNameAddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		err     error
		display string
		angle   bool
		uri     string
		tag     string // "-" none
		params  string
	}{
		{"name-addr", "Bob <sip:bob@b.example.com>;tag=a6c85cf", nil, "Bob", true, "sip:bob@b.example.com", "a6c85cf", ";tag=a6c85cf"},
		{"quoted display", "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8", nil, "\"J Rosenberg \\\\\\\"\"", true, "sip:jdrosen@example.com", "98asjd8", ";\r\n  tag = 98asjd8"},
		{"no display", "<sip:b@h;lr>", nil, "", true, "sip:b@h;lr", "-", ""},
		{"token display glued (lwsdisp)", "caller<sip:caller@example.com>;tag=323", nil, "caller", true, "sip:caller@example.com", "323", ";tag=323"},
		{"addr-spec", "sip:caller@example.net;tag=2234923", nil, "", false, "sip:caller@example.net", "2234923", ";tag=2234923"},
		{"addr-spec then blanks (wsinv)", "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n", nil, "", false, "sip:vivekg@chair-dnrc.example.com", "1918181833n", ";   tag    = 1918181833n"},
		{"TAG in capitals, quoted param", "<sip:a@b>;x=\"1;2\";TAG=t", nil, "", true, "sip:a@b", "t", ";x=\"1;2\";TAG=t"},
		{"tel", "<tel:+1555>", nil, "", true, "tel:+1555", "-", ""},
		{"unquoted comma (baddn)", "Bell, Alexander <sip:a.g.bell@example.com>;tag=43", ErrURI, "", false, "", "", ""},
		{"blank inside brackets (badaspec)", "\"Watson, Thomas\" < sip:t.watson@example.org >", ErrURI, "", false, "", "", ""},
		{"unclosed quote (quotbal)", "\"Mr. J. User <sip:j.user@example.com>", ErrNameAddr, "", false, "", "", ""},
		{"unclosed bracket", "<sip:a@b", ErrNameAddr, "", false, "", "", ""},
		{"quote without bracket", "\"x\" sip:a@b", ErrNameAddr, "", false, "", "", ""},
		{"tag without value", "<sip:a@b>;tag", ErrNameAddr, "", false, "", "", ""},
		{"junk after", "<sip:a@b> x", ErrNameAddr, "", false, "", "", ""},
		{"empty param", "<sip:a@b>;;tag=1", ErrNameAddr, "", false, "", "", ""},
		{"empty", "  ", ErrNameAddr, "", false, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			var na NameAddr
			err := ParseNameAddr(b, whole(b), &na)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			tag := "-"
			if na.HasTag {
				tag = na.Tag.String(b)
			}
			if na.Display.String(b) != tc.display || na.Angle != tc.angle || na.URI.Whole.String(b) != tc.uri || tag != tc.tag || na.Params.String(b) != tc.params {
				t.Errorf("got display %q angle %v uri %q tag %q params %q", na.Display.String(b), na.Angle, na.URI.Whole.String(b), tag, na.Params.String(b))
			}
		})
	}
}

func TestDigestUsername(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "-" none
	}{
		{"quoted", `Digest username="alice@example.com", realm="x", nonce="n"`, "alice@example.com"},
		{"not first", `Digest realm="x",username="bob"`, "bob"},
		{"case and blanks", `Digest  USERNAME = "carol" , realm="x"`, "carol"},
		{"token value", `Digest username=dave`, "dave"},
		{"absent", `Digest realm="x"`, "-"},
		{"no params", `Digest`, "-"},
		{"other scheme without pairs (regaut01)", `NoOneKnowsThisScheme opaque-data=here`, "-"},
		{"broken", `Digest username=`, "-"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			s, ok := DigestUsername(b, whole(b))
			got := "-"
			if ok {
				got = s.String(b)
			}
			if got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestSpanBytes(t *testing.T) {
	b := []byte("abc")
	tests := []struct {
		name string
		s    Span
		want string
		nil_ bool
	}{
		{"inside", Span{1, 3}, "bc", false},
		{"empty", Span{2, 2}, "", false},
		{"beyond", Span{1, 4}, "", true},
		{"reversed", Span{2, 1}, "", true},
		{"negative", Span{-1, 1}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.Bytes(b)
			if string(got) != tc.want || (got == nil) != tc.nil_ {
				t.Errorf("%q (nil %v)", got, got == nil)
			}
		})
	}
}
