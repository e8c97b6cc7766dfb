package sipmsg

import "strings"

// crlf turns a message written with LF into wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// whole is the span of all of b.
func whole(b []byte) Span { return Span{End: int32(len(b))} }

const invite = `INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Route: <sip:p1.example.com;lr>, <sip:p2.example.com:5070;lr;maddr=10.0.0.2>
Route: <sip:p3.example.com>
Record-Route: <sip:rr1.example.com;lr>,<sip:rr2.example.com;lr>
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY
Supported: replaces, timer
User-Agent: sipedge-test/1.0
Content-Type: application/sdp
Content-Length: 149

v=0
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com
s=-
c=IN IP4 192.0.2.101
t=0 0
m=audio 49172 RTP/AVP 0
a=rtpmap:0 PCMU/8000
`
