package sipproxy

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func TestAppendReply(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.7:40000")
	tests := []struct {
		name   string
		in     string
		code   int
		reason string // the phrase; phrases[code] when empty
		want   string // exact reply; "" when no reply may be built
		wantTo string // the reply must reach this address
		// notSipgo: the reply lacks a header sipgo requires (it answers a
		// request that lacked it), so sipgo's parser is not asked.
		notSipgo bool
	}{
		{
			name: "483 with rport filled and a To tag added",
			in: "INVITE sip:bob@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP client.example.com:5070;rport;branch=z9hG4bK1\n" +
				"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\n" +
				"Max-Forwards: 0\n" +
				"From: <sip:alice@example.com>;tag=a1\n" +
				"To: <sip:bob@example.com>\n" +
				"Call-ID: c1@example.com\n" +
				"CSeq: 1 INVITE\n" +
				"Content-Length: 0\n\n",
			code: 483,
			want: "SIP/2.0 483 Too Many Hops\n" +
				"Via: SIP/2.0/UDP client.example.com:5070;rport=40000;received=192.0.2.7;branch=z9hG4bK1\n" +
				"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK0\n" +
				"From: <sip:alice@example.com>;tag=a1\n" +
				"To: <sip:bob@example.com>;tag=se" + hex64(BranchToken([]byte("a1"), nil, []byte("c1@example.com"))) + "\n" +
				"Call-ID: c1@example.com\n" +
				"CSeq: 1 INVITE\n" +
				"Content-Length: 0\n\n",
			wantTo: "192.0.2.7:40000",
		},
		{
			name: "503 keeps an existing To tag, received after sent-by, sent-by port",
			in: "BYE sip:bob@10.0.0.2 SIP/2.0\n" +
				"v: SIP/2.0/UDP host.example:5090;branch=z9hG4bK2\n" +
				"f: <sip:alice@example.com>;tag=a1\n" +
				"t: <sip:bob@example.com>;tag=b2\n" +
				"i: c2\n" +
				"CSeq: 2 BYE\n\n",
			code: 503,
			want: "SIP/2.0 503 Service Unavailable\n" +
				"v: SIP/2.0/UDP host.example:5090;received=192.0.2.7;branch=z9hG4bK2\n" +
				"f: <sip:alice@example.com>;tag=a1\n" +
				"t: <sip:bob@example.com>;tag=b2\n" +
				"i: c2\n" +
				"CSeq: 2 BYE\n" +
				"Content-Length: 0\n\n",
			wantTo: "192.0.2.7:5090",
		},
		{
			name: "sent-by equal to the source gets no received",
			in: "OPTIONS sip:x@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bK3\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:x@example.com>;tag=2\n" +
				"Call-ID: c3\n" +
				"CSeq: 3 OPTIONS\n\n",
			code: 400,
			want: "SIP/2.0 400 Bad Request\n" +
				"Via: SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bK3\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:x@example.com>;tag=2\n" +
				"Call-ID: c3\n" +
				"CSeq: 3 OPTIONS\n" +
				"Content-Length: 0\n\n",
			wantTo: "192.0.2.7:40000",
		},
		{
			name: "no Call-ID: answered with what is there",
			in: "INVITE sip:b@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK4\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:b@example.com>\n" +
				"CSeq: 1 INVITE\n\n",
			code: 400, reason: "Missing Call-ID",
			want: "SIP/2.0 400 Missing Call-ID\n" +
				"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK4\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:b@example.com>;tag=se" + hex64(BranchToken([]byte("1"), nil, nil)) + "\n" +
				"CSeq: 1 INVITE\n" +
				"Content-Length: 0\n\n",
			wantTo:   "192.0.2.7:5060",
			notSipgo: true,
		},
		{
			name: "no To, Max-Forwards 0: 400 Missing To, not silence",
			in: "OPTIONS sip:b@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP 192.0.2.7:40000;rport;branch=z9hG4bK6\n" +
				"Max-Forwards: 0\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"Call-ID: c6\n" +
				"CSeq: 6 OPTIONS\n\n",
			code: 400, reason: "Missing To",
			want: "SIP/2.0 400 Missing To\n" +
				"Via: SIP/2.0/UDP 192.0.2.7:40000;rport=40000;received=192.0.2.7;branch=z9hG4bK6\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"Call-ID: c6\n" +
				"CSeq: 6 OPTIONS\n" +
				"Content-Length: 0\n\n",
			wantTo:   "192.0.2.7:40000",
			notSipgo: true,
		},
		{
			name: "no From and no CSeq",
			in: "OPTIONS sip:b@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK7\n" +
				"To: <sip:b@example.com>;tag=2\n" +
				"Call-ID: c7\n\n",
			code: 400, reason: "Missing From",
			want: "SIP/2.0 400 Missing From\n" +
				"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK7\n" +
				"To: <sip:b@example.com>;tag=2\n" +
				"Call-ID: c7\n" +
				"Content-Length: 0\n\n",
			wantTo:   "192.0.2.7:5070",
			notSipgo: true,
		},
		{
			name: "a response is never answered",
			in: "SIP/2.0 200 OK\n" +
				"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK8\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:b@example.com>;tag=2\n" +
				"Call-ID: c8\n" +
				"CSeq: 1 OPTIONS\n\n",
			code: 400,
		},
		{
			name: "no Via: nowhere to answer",
			in: "OPTIONS sip:b@example.com SIP/2.0\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:b@example.com>;tag=2\n" +
				"Call-ID: c9\n" +
				"CSeq: 1 OPTIONS\n\n",
			code: 400,
		},
		{
			name: "ACK is never answered",
			in: "ACK sip:b@example.com SIP/2.0\n" +
				"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK5\n" +
				"From: <sip:a@example.com>;tag=1\n" +
				"To: <sip:b@example.com>;tag=2\n" +
				"Call-ID: c5\n" +
				"CSeq: 1 ACK\n\n",
			code: 400,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := crlf(tc.in)
			var m sipmsg.Msg
			if err := sipmsg.Parse(in, &m); err != nil {
				t.Fatalf("parse request: %v", err)
			}
			reason := tc.reason
			if reason == "" {
				reason = phrases[tc.code]
			}
			out, ok := appendReply(nil, in, &m, src, tc.code, reason)
			if tc.want == "" {
				if ok {
					t.Fatalf("built a reply, want none:\n%s", out)
				}
				return
			}
			if !ok {
				t.Fatal("no reply built")
			}
			if got, want := string(out), string(crlf(tc.want)); got != want {
				t.Errorf("reply:\n%s\nwant:\n%s", got, want)
			}
			var back sipmsg.Msg
			if err := sipmsg.Parse(out, &back); err != nil || back.IsRequest || back.TopVia.Err != nil {
				t.Errorf("the reply does not parse as a response: %v", err)
			}
			if _, err := sip.ParseMessage(out); err != nil && !tc.notSipgo {
				t.Errorf("sipgo cannot parse the reply: %v", err)
			}
			if got := replyAddr(src, m.TopVia.HasRport, m.TopVia.PortNum).String(); got != tc.wantTo {
				t.Errorf("reply address %s, want %s", got, tc.wantTo)
			}
		})
	}
}

var phrases = map[int]string{400: "Bad Request", 483: "Too Many Hops", 503: "Service Unavailable"}

func hex64(v uint64) string { return string(appendHex64(nil, v)) }
