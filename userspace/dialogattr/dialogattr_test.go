package dialogattr

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

var invite = crlf("INVITE sip:bob@edge.example.com SIP/2.0\n" +
	"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
	"From: <sip:alice@atlanta.example.com>;tag=9\n" +
	"To: <sip:bob@biloxi.example.com>\n" +
	"X-Tenant: acme\n" +
	"x-tenant: globex\n" +
	"s: urgent call\n" +
	"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")

func input(t testing.TB, b []byte) *Input {
	t.Helper()
	var m sipmsg.Msg
	if err := sipmsg.Parse(b, &m); err != nil {
		t.Fatal(err)
	}
	return &Input{
		Buf: b, Msg: &m, Src: netip.MustParseAddrPort("[::ffff:198.51.100.7]:5060"),
		Listener: "edge", Set: 1, DstURI: "sip:10.0.0.2:5080",
	}
}

func mustNew(t testing.TB, cfg Config) *Attrs {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestEvalFields(t *testing.T) {
	a := mustNew(t, Config{Src: "$fu", Dst: "$du", Data: "$hdr(X-Tenant)/$si"})
	var r Result
	if err := a.Eval(input(t, invite), &r); err != nil {
		t.Fatal(err)
	}
	if r.Src != "sip:alice@atlanta.example.com" || r.Dst != "sip:10.0.0.2:5080" || r.Data != "acme/198.51.100.7" {
		t.Errorf("src %q dst %q data %q", r.Src, r.Dst, r.Data)
	}
	if len(r.Add) != 0 || len(r.Remove) != 0 {
		t.Errorf("tags %v %v without rules", r.Add, r.Remove)
	}
}

// TestEvalRules: each condition alone, together, and the order rules
// apply in.
func TestEvalRules(t *testing.T) {
	tests := []struct {
		name        string
		rules       []Rule
		add, remove []string
	}{
		{name: "no condition", rules: []Rule{{Tag: "all", Set: -1}}, add: []string{"all"}},
		{name: "template tag", rules: []Rule{{Tag: "src-$si", Set: -1}}, add: []string{"src-198.51.100.7"}},
		{name: "source prefix matches mapped IPv4", rules: []Rule{{Tag: "t", Source: "198.51.100.0/24", Set: -1}}, add: []string{"t"}},
		{name: "source one IP", rules: []Rule{{Tag: "t", Source: "198.51.100.7", Set: -1}}, add: []string{"t"}},
		{name: "source other", rules: []Rule{{Tag: "t", Source: "203.0.113.0/24", Set: -1}}},
		{name: "listener", rules: []Rule{{Tag: "a", Listener: "edge", Set: -1}, {Tag: "b", Listener: "other", Set: -1}}, add: []string{"a"}},
		{name: "set", rules: []Rule{{Tag: "a", Set: 1}, {Tag: "b", Set: 2}, {Tag: "c", Set: 0}}, add: []string{"a"}},
		{name: "header present", rules: []Rule{{Tag: "a", Header: "x-tenant", Set: -1}, {Tag: "b", Header: "X-Other", Set: -1}}, add: []string{"a"}},
		{name: "value of a later header of that name", rules: []Rule{{Tag: "g", Header: "X-Tenant", Value: "^glob", Set: -1}}, add: []string{"g"}},
		{name: "value no match", rules: []Rule{{Tag: "g", Header: "X-Tenant", Value: "^initech$", Set: -1}}},
		{name: "compact header by long name", rules: []Rule{{Tag: "u", Header: "Subject", Value: "urgent", Set: -1}}, add: []string{"u"}},
		{name: "all conditions", rules: []Rule{{Tag: "x", Source: "198.51.100.0/24", Listener: "edge", Set: 1, Header: "To", Value: "biloxi"}}, add: []string{"x"}},
		{name: "one condition fails", rules: []Rule{{Tag: "x", Source: "198.51.100.0/24", Listener: "edge", Set: 7, Header: "To", Value: "biloxi"}}},
		{name: "remove", rules: []Rule{{Tag: "vip", Remove: true, Set: -1}}, remove: []string{"vip"}},
		{name: "later rule undoes", rules: []Rule{{Tag: "a", Set: -1}, {Tag: "b", Set: -1}, {Tag: "a", Remove: true, Set: -1}, {Tag: "b", Set: -1}},
			add: []string{"b"}, remove: []string{"a"}},
		{name: "empty tag skipped", rules: []Rule{{Tag: "$tt", Set: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, Config{Rules: tc.rules})
			var r Result
			if err := a.Eval(input(t, invite), &r); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Add, tc.add) || !slices.Equal(r.Remove, tc.remove) {
				t.Errorf("add %q remove %q, want %q %q", r.Add, r.Remove, tc.add, tc.remove)
			}
		})
	}
}

// TestEvalReuse: a Result reused for the next INVITE holds that INVITE's
// values only, and the strings of one Eval do not overlap.
func TestEvalReuse(t *testing.T) {
	a := mustNew(t, Config{Src: "$fU", Dst: "$du", Data: "$ci", Rules: []Rule{{Tag: "$fU", Set: -1}, {Tag: "t-$ci", Set: -1}}})
	var r Result
	in := input(t, invite)
	if err := a.Eval(in, &r); err != nil {
		t.Fatal(err)
	}
	other := []byte(strings.ReplaceAll(strings.ReplaceAll(string(invite), "alice", "carol"), "cid-1", "cid-2"))
	in2 := input(t, other)
	in2.DstURI = ""
	if err := a.Eval(in2, &r); err != nil {
		t.Fatal(err)
	}
	if r.Src != "carol" || r.Dst != "" || r.Data != "cid-2" || !slices.Equal(r.Add, []string{"carol", "t-cid-2"}) {
		t.Errorf("second eval: %q %q %q %q", r.Src, r.Dst, r.Data, r.Add)
	}
}

// TestEvalCut: an expansion longer than its bound is cut there, and the
// next field is whole.
func TestEvalCut(t *testing.T) {
	long := strings.Repeat("x", 2*MaxFieldLen)
	b := crlf("INVITE sip:bob@b.example SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: <sip:alice@a.example>;tag=9\nTo: <sip:bob@b.example>\nX-Long: " + long + "\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n\n")
	a := mustNew(t, Config{Src: "$hdr(X-Long)", Dst: "$ci", Rules: []Rule{{Tag: "$hdr(X-Long)", Set: -1}}})
	var r Result
	if err := a.Eval(input(t, b), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Src) != MaxFieldLen || r.Dst != "cid-1" || len(r.Add) != 1 || len(r.Add[0]) != MaxTagLen {
		t.Errorf("src %d bytes, dst %q, tags %d", len(r.Src), r.Dst, len(r.Add))
	}
}

// TestEvalBadFrom: a bad From fails its field, named, and leaves the rest.
func TestEvalBadFrom(t *testing.T) {
	b := crlf("INVITE sip:bob@b.example SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: <sip:alice@[bad>;tag=9\nTo: <sip:bob@b.example>\nCall-ID: cid-1\nCSeq: 1 INVITE\n\n")
	a := mustNew(t, Config{Src: "$fu", Dst: "$du", Rules: []Rule{{Tag: "all", Set: -1}}})
	var r Result
	err := a.Eval(input(t, b), &r)
	if err == nil || !strings.Contains(err.Error(), "dialogs src") {
		t.Errorf("error %v, want one naming src", err)
	}
	if r.Src != "" || r.Dst != "sip:10.0.0.2:5080" || !slices.Equal(r.Add, []string{"all"}) {
		t.Errorf("src %q dst %q add %q", r.Src, r.Dst, r.Add)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown variable", Config{Src: "$xx"}, "dialogs src: "},
		{"no tag", Config{Rules: []Rule{{Set: -1}}}, "dialogs tag rule 0: no tag"},
		{"bad tag", Config{Rules: []Rule{{Tag: "$avp(x)", Set: -1}}}, "tag rule 0: tag: "},
		{"bad source", Config{Rules: []Rule{{Tag: "t", Source: "10.0.0.0/33", Set: -1}}}, "source: "},
		{"host bits", Config{Rules: []Rule{{Tag: "t", Source: "10.0.0.1/8", Set: -1}}}, "host bits set: write 10.0.0.0/8"},
		{"bad set", Config{Rules: []Rule{{Tag: "t", Set: -2}}}, "set -2"},
		{"bad header", Config{Rules: []Rule{{Tag: "t", Header: "X Y", Set: -1}}}, "header: "},
		{"bad regex", Config{Rules: []Rule{{Tag: "t", Header: "X", Value: "(", Set: -1}}}, "value: error parsing regexp"},
		{"value alone", Config{Rules: []Rule{{Tag: "t", Value: "a", Set: -1}}}, "value without header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"192.0.2.1", "192.0.2.1/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"10.0.0.0/33", ""},
		{"::ffff:0.0.0.0/80", ""},
		{"example.com", ""},
		{"fe80::1%eth0", ""},
	} {
		p, err := ParseSource(tc.in)
		if got := p.String(); tc.want == "" && err == nil || tc.want != "" && got != tc.want {
			t.Errorf("ParseSource(%q) = %s, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestEvalAllocs: once a Result has grown, Eval allocates nothing (it
// runs on the reader goroutine of the slow path and the event drain).
func TestEvalAllocs(t *testing.T) {
	a := mustNew(t, Config{Src: "$fu", Dst: "$du", Data: "$hdr(X-Tenant)", Rules: []Rule{
		{Tag: "src-$si", Set: -1}, {Tag: "acme", Header: "X-Tenant", Value: "acme", Set: -1}, {Tag: "acme", Remove: true, Source: "198.51.100.0/24", Set: -1},
	}})
	in := input(t, invite)
	var r Result
	_ = a.Eval(in, &r)
	if n := testing.AllocsPerRun(100, func() { _ = a.Eval(in, &r) }); n != 0 {
		t.Errorf("%v allocations per Eval, want 0", n)
	}
}

// BenchmarkEval: the cost per INVITE of the default templates and three
// rules.
func BenchmarkEval(b *testing.B) {
	a := mustNew(b, Config{Src: "$fu", Dst: "$du", Rules: []Rule{
		{Tag: "src-$si", Set: -1}, {Tag: "acme", Header: "X-Tenant", Value: "acme", Set: -1}, {Tag: "edge", Listener: "edge", Set: 1},
	}})
	in := input(b, invite)
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		_ = a.Eval(in, &r)
	}
}
