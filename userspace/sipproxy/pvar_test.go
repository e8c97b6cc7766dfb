package sipproxy

import (
	"net/netip"
	"testing"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func TestParsePVar(t *testing.T) {
	tests := []struct {
		name, tmpl string
		parts      int
		wantErr    bool
	}{
		{"one variable", "$ci", 1, false},
		{"literal and variables", "$fU@$fd", 3, false},
		{"parenthesised", "$(ru)-$(si)", 3, false},
		{"only literal", "abc", 1, false},
		{"empty", "", 0, true},
		{"unknown", "$xx", 0, true},
		{"unknown long", "$(hdr)", 0, true},
		{"lone dollar", "ab$", 0, true},
		{"unclosed", "$(ci", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts, err := parsePVar(tc.tmpl)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && len(parts) != tc.parts {
				t.Errorf("%d parts, want %d", len(parts), tc.parts)
			}
		})
	}
}

func TestExpandPVar(t *testing.T) {
	in := crlf("INVITE sip:bob@biloxi.example.com:5070;user=phone SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: \"A\" <sip:alice@atlanta.example.com>;tag=9\n" +
		"To: tel:+15551234\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")
	var m sipmsg.Msg
	if err := sipmsg.Parse(in, &m); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("[2001:db8::7]:5062")
	tests := []struct {
		name, tmpl, want string
	}{
		{"call-id", "$ci", "cid-1"},
		{"from parts", "$fu|$fU|$fd", "sip:alice@atlanta.example.com|alice|atlanta.example.com"},
		{"tel To", "$tu|$tU|$td", "tel:+15551234|+15551234|"},
		{"request-uri", "$ru|$rU|$rd", "sip:bob@biloxi.example.com:5070;user=phone|bob|biloxi.example.com"},
		{"source", "$si:$sp", "2001:db8::7:5062"},
		{"parenthesised", "x$(ci)y", "xcid-1y"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts, err := parsePVar(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, r := expandPVar(make([]byte, 0, 256), parts, in, &m, src)
			if r != replyNone || string(got) != tc.want {
				t.Errorf("got %q (reply %d), want %q", got, r, tc.want)
			}
		})
	}
	t.Run("cut at capacity", func(t *testing.T) {
		parts, _ := parsePVar("$ci$ci$ci")
		got, _ := expandPVar(make([]byte, 0, 7), parts, in, &m, src)
		if string(got) != "cid-1ci" {
			t.Errorf("got %q", got)
		}
	})
}
