package sipproxy

import (
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// TestRequestValidation runs the contract's request checks in order.
func TestRequestValidation(t *testing.T) {
	ok := testRequest("OPTIONS", "Max-Forwards: 70\n")
	tests := []struct {
		name   string
		in     []byte
		action Action
		code   int
		reason string
	}{
		{"valid", ok, ActionForward, 0, ""},
		{"no Via: unanswerable", []byte(strings.Replace(string(ok), "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtest1\r\n", "", 1)), ActionDrop, 0, DropMalformed},
		{"bad Via: unanswerable", []byte(strings.Replace(string(ok), "SIP/2.0/UDP 198.51.100.7:5060", "SIP/2.0/UDP", 1)), ActionDrop, 0, DropMalformed},
		{"bad method", []byte(strings.Replace(string(ok), "OPTIONS sip", "OPT(IONS sip", 1)), ActionReply, 400, "Bad Method"},
		{"blank in Request-URI", []byte(strings.Replace(string(ok), "sip:bob@10.0.0.11:5060", "sip:bob@10.0.0.11:5060; lr", 1)), ActionReply, 400, "Bad Request-URI"},
		{"bad version", []byte(strings.Replace(string(ok), " SIP/2.0\r\n", " SIP/2\r\n", 1)), ActionReply, 400, "Bad SIP Version"},
		{"version 3.0", []byte(strings.Replace(string(ok), " SIP/2.0\r\n", " SIP/3.0\r\n", 1)), ActionReply, 505, "Version Not Supported"},
		{"version in lower case", []byte(strings.Replace(string(ok), " SIP/2.0\r\n", " sip/2.0\r\n", 1)), ActionForward, 0, ""},
		{"no From", []byte(strings.Replace(string(ok), "From: <sip:alice@atlanta.example.com>;tag=1\r\n", "", 1)), ActionReply, 400, "Missing From"},
		{"no To", []byte(strings.Replace(string(ok), "To: <sip:bob@biloxi.example.com>\r\n", "", 1)), ActionReply, 400, "Missing To"},
		{"no CSeq", []byte(strings.Replace(string(ok), "CSeq: 1 OPTIONS\r\n", "", 1)), ActionReply, 400, "Missing CSeq"},
		{"two Call-IDs", testRequest("OPTIONS", "i: other\n"), ActionReply, 400, "Duplicate Call-ID"},
		{"two Tos", testRequest("OPTIONS", "t: <sip:x@y>\n"), ActionReply, 400, "Duplicate To"},
		{"two CSeqs", testRequest("OPTIONS", "CSeq: 2 OPTIONS\n"), ActionReply, 400, "Duplicate CSeq"},
		{"two Froms", testRequest("OPTIONS", "f: <sip:x@y>\n"), ActionReply, 400, "Duplicate From"},
		{"empty Call-ID", []byte(strings.Replace(string(ok), "Call-ID: test-call-1", "Call-ID: ", 1)), ActionReply, 400, "Bad Call-ID"},
		{"bad To", []byte(strings.Replace(string(ok), "To: <sip:bob@biloxi.example.com>", "To: Watson, T <sip:t@example.org>", 1)), ActionReply, 400, "Bad To"},
		{"bad From is not read by alg 0", []byte(strings.Replace(string(ok), "From: <sip:alice@atlanta.example.com>", "From: <sip:alice@>", 1)), ActionForward, 0, ""},
		{"CSeq too big", []byte(strings.Replace(string(ok), "CSeq: 1 ", "CSeq: 2147483648 ", 1)), ActionReply, 400, "Bad CSeq"},
		{"CSeq max", []byte(strings.Replace(string(ok), "CSeq: 1 ", "CSeq: 2147483647 ", 1)), ActionForward, 0, ""},
		{"two Max-Forwards", testRequest("OPTIONS", "Max-Forwards: 70\nMax-Forwards: 69\n"), ActionReply, 400, "Duplicate Max-Forwards"},
		{"Max-Forwards not a number", testRequest("OPTIONS", "Max-Forwards: seventy\n"), ActionReply, 400, "Bad Max-Forwards"},
		{"Max-Forwards 255", testRequest("OPTIONS", "Max-Forwards: 255\n"), ActionForward, 0, ""},
		{"Max-Forwards 256", testRequest("OPTIONS", "Max-Forwards: 256\n"), ActionReply, 400, "Bad Max-Forwards"},
		{"Max-Forwards 0", testRequest("OPTIONS", "Max-Forwards: 0\n"), ActionReply, 483, "Too Many Hops"},
		{"Max-Forwards 00", testRequest("OPTIONS", "Max-Forwards: 00\n"), ActionReply, 483, "Too Many Hops"},
		{"ACK Max-Forwards 0", testRequest("ACK", "Max-Forwards: 0\n"), ActionDrop, 0, "max_forwards_zero"},
		{"ACK bad", testRequest("ACK", "Max-Forwards: x\n"), ActionDrop, 0, "bad_request"},
		{"two Content-Lengths", testRequest("OPTIONS", "l: 0\n"), ActionReply, 400, "Duplicate Content-Length"},
		{"Content-Length beyond the datagram", []byte(strings.Replace(string(ok), "Content-Length: 0", "Content-Length: 10", 1)), ActionReply, 400, "Bad Content-Length"},
		{"Content-Length negative", []byte(strings.Replace(string(ok), "Content-Length: 0", "Content-Length: -1", 1)), ActionReply, 400, "Bad Content-Length"},
		{"top Route unparsable", testRequest("OPTIONS", "Route: <sip:>\n"), ActionReply, 400, "Bad Route"},
		{"top Route not SIP", testRequest("OPTIONS", "Route: <tel:+1>\n"), ActionReply, 400, "Bad Route"},
		{"empty Route line", testRequest("OPTIONS", "Route:\n"), ActionReply, 400, "Bad Route"},
		{"Route without brackets", testRequest("OPTIONS", "Route: sip:192.0.2.10;lr\n"), ActionReply, 400, "Bad Route"},
		{"no empty line", crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\n"), ActionDrop, 0, DropMalformed},
		{"keepalive", crlf("\n\n"), ActionDrop, 0, DropKeepalive},
		{"empty", nil, ActionDrop, 0, DropEmpty},
	}
	f := testForwarder(t, Rule{SetID: 1}, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := f.Process(tc.in, testSrc, testLocal, nil)
			if res.Action != tc.action || res.Code != tc.code || (tc.reason != "" && res.Reason != tc.reason) {
				t.Errorf("got %s %d %q, want %s %d %q", res.Action, res.Code, res.Reason, tc.action, tc.code, tc.reason)
			}
		})
	}
}

// TestHashKey checks the key each algorithm gets from the message.
func TestHashKey(t *testing.T) {
	in := crlf("INVITE sip:bob@biloxi.example.com:5070 SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKx\n" +
		"From: \"A\" <sips:alice@atlanta.example.com>;tag=9\n" +
		"To: <sip:[2001:db8::5]>\n" +
		"Call-ID: cid-1\nCSeq: 1 INVITE\n" +
		"Authorization: Digest username=\"carol@c.example.com\", realm=\"x\"\n" +
		"Proxy-Authorization: Digest realm=\"x\", username=\"dave\"\n\n")
	var m sipmsg.Msg
	if err := sipmsg.Parse(in, &m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		alg  dispatch.Alg
		pvar string
		want dispatch.Key
	}{
		{"alg 0 Call-ID", dispatch.AlgCallID, "", dispatch.Key{CallID: "cid-1"}},
		{"alg 1 From", dispatch.AlgFromURI, "", dispatch.Key{From: dispatch.URIKey{User: "alice", Host: "atlanta.example.com", Secure: true}}},
		{"alg 2 To", dispatch.AlgToURI, "", dispatch.Key{To: dispatch.URIKey{Host: "[2001:db8::5]"}}},
		{"alg 3 R-URI", dispatch.AlgRURI, "", dispatch.Key{RURI: dispatch.URIKey{User: "bob", Host: "biloxi.example.com", Port: 5070, PortText: "5070"}}},
		{"alg 5 Proxy-Authorization first", dispatch.AlgAuthUser, "", dispatch.Key{AuthUser: "dave"}},
		{"alg 7 pvar", dispatch.AlgPVar, "$fU-$ci", dispatch.Key{PVar: "alice-cid-1"}},
		{"alg 4 needs nothing", dispatch.AlgRoundRobin, "", dispatch.Key{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := prepareListener(Listener{Addr: testLocal, Rule: Rule{Alg: tc.alg, HashPVar: tc.pvar}})
			if err != nil {
				t.Fatal(err)
			}
			rc := reqCtx{l: &l, in: in, m: &m, src: testSrc}
			key, r := rc.hashKey(make([]byte, 0, 64))
			if r != replyNone || key != tc.want {
				t.Errorf("key %+v (reply %d), want %+v", key, r, tc.want)
			}
		})
	}
	t.Run("alg 5 falls back to Authorization", func(t *testing.T) {
		in := testRequest("OPTIONS", "Authorization: Digest username=\"carol@c.example.com\"\n")
		var m sipmsg.Msg
		if err := sipmsg.Parse(in, &m); err != nil {
			t.Fatal(err)
		}
		if got := string(authUser(in, &m)); got != "carol" {
			t.Errorf("auth user %q, want carol", got)
		}
	})
}

// TestRequestHandoffs covers the failover rule and the transaction hook.
func TestRequestHandoffs(t *testing.T) {
	var hookBranch, hookSentBy string
	owns := func(branch, sentBy []byte, ack bool) bool {
		hookBranch, hookSentBy = string(branch), string(sentBy)
		return true
	}
	tests := []struct {
		name   string
		rule   Rule
		opt    Options
		in     []byte
		action Action
		reason string
	}{
		{"failover INVITE", Rule{SetID: 2, Failover: true}, Options{}, testRequest("INVITE", ""), ActionHandoff, HandoffStatefulInvite},
		{"failover re-INVITE is stateless", Rule{SetID: 2, Failover: true}, Options{},
			[]byte(strings.Replace(string(testRequest("INVITE", "")), "biloxi.example.com>", "biloxi.example.com>;tag=7", 1)), ActionForward, ""},
		{"failover with no destination replies", Rule{SetID: 3, Failover: true}, Options{}, testRequest("INVITE", ""), ActionReply, "Service Unavailable"},
		{"owned CANCEL", Rule{SetID: 2}, Options{OwnsTransaction: owns}, testRequest("CANCEL", ""), ActionHandoff, HandoffStatefulCancel},
		{"owned ACK", Rule{SetID: 2}, Options{OwnsTransaction: owns}, testRequest("ACK", ""), ActionHandoff, HandoffStatefulAck},
		{"BYE never asks the hook", Rule{SetID: 2}, Options{OwnsTransaction: func([]byte, []byte, bool) bool { panic("asked") }}, testRequest("BYE", ""), ActionForward, ""},
		{"unsupported algorithm", Rule{SetID: 2, Alg: dispatch.AlgParallel}, Options{}, testRequest("BYE", ""), ActionReply, "Server Internal Error"},
		{"alg 2 with a tel To hashes the number, as Kamailio", Rule{SetID: 2, Alg: dispatch.AlgToURI}, Options{},
			[]byte(strings.Replace(string(testRequest("BYE", "")), "To: <sip:bob@biloxi.example.com>", "To: <tel:+1555>", 1)), ActionForward, ""},
		{"alg 2 with a urn To has no key: no destination", Rule{SetID: 2, Alg: dispatch.AlgToURI}, Options{},
			[]byte(strings.Replace(string(testRequest("BYE", "")), "To: <sip:bob@biloxi.example.com>", "To: <urn:service:sos>", 1)), ActionReply, "Service Unavailable"},
		{"alg 1 with a bad From", Rule{SetID: 2, Alg: dispatch.AlgFromURI}, Options{},
			[]byte(strings.Replace(string(testRequest("BYE", "")), "<sip:alice@atlanta.example.com>", "<sip:alice@>", 1)), ActionReply, "Bad From"},
		{"alg 3 with a bad R-URI", Rule{SetID: 2, Alg: dispatch.AlgRURI}, Options{},
			[]byte(strings.Replace(string(testRequest("BYE", "")), "sip:bob@10.0.0.11:5060", "sip:bob@10.0.0.11:", 1)), ActionReply, "Bad Request-URI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testForwarder(t, tc.rule, tc.opt)
			res := f.Process(tc.in, testSrc, testLocal, nil)
			if res.Action != tc.action || (tc.reason != "" && res.Reason != tc.reason) {
				t.Fatalf("got %s %q, want %s %q", res.Action, res.Reason, tc.action, tc.reason)
			}
			if res.Reason == HandoffStatefulInvite && len(res.Selection.Dests) == 0 {
				t.Error("stateful INVITE hand-off without the selection")
			}
		})
	}
	if hookBranch != "z9hG4bKtest1" || hookSentBy != "198.51.100.7:5060" {
		t.Errorf("hook got branch %q sent-by %q", hookBranch, hookSentBy)
	}
}

// TestSameTransactionSameBranch: the INVITE, its retransmission, its
// CANCEL and its non-2xx ACK leave with one branch; the BYE with another.
func TestSameTransactionSameBranch(t *testing.T) {
	f := testForwarder(t, Rule{SetID: 2}, Options{})
	branch := func(method string, cseq string, clientBranch string) string {
		in := crlf(method + " sip:bob@b.example.com SIP/2.0\n" +
			"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=" + clientBranch + "\n" +
			"To: <sip:bob@b.example.com>\nFrom: <sip:a@a.example.com>;tag=1\nCall-ID: same-1\n" +
			"CSeq: " + cseq + " " + method + "\n\n")
		res := f.Process(in, testSrc, testLocal, nil)
		if res.Action != ActionForward {
			t.Fatalf("%s: %s %s", method, res.Action, res.Reason)
		}
		var m sipmsg.Msg
		if err := sipmsg.Parse(res.Out, &m); err != nil {
			t.Fatal(err)
		}
		return string(m.TopVia.Branch.Bytes(res.Out))
	}
	inv := branch("INVITE", "1", "z9hG4bKc1")
	for _, tc := range []struct {
		name, method, cseq, client string
		same                       bool
	}{
		{"retransmission", "INVITE", "1", "z9hG4bKc1", true},
		{"CANCEL", "CANCEL", "1", "z9hG4bKc1", true},
		{"ACK of a non-2xx", "ACK", "1", "z9hG4bKc1", true},
		{"BYE", "BYE", "2", "z9hG4bKc2", false},
		{"no-cookie INVITE vs CANCEL", "CANCEL", "1", "old", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := branch(tc.method, tc.cseq, tc.client); (got == inv) != tc.same {
				t.Errorf("branch %s vs INVITE's %s: same=%v, want %v", got, inv, got == inv, tc.same)
			}
		})
	}
	t.Run("no-cookie INVITE, CANCEL, ACK share; BYE does not", func(t *testing.T) {
		a, b, c, d := branch("INVITE", "5", "old"), branch("CANCEL", "5", "old"), branch("ACK", "5", "old"), branch("BYE", "6", "old")
		if a != b || a != c || a == d {
			t.Errorf("INVITE %s CANCEL %s ACK %s BYE %s", a, b, c, d)
		}
	})
}
