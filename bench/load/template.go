package load

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// Template is a SIP message with places for a per-message identifier: 16
// lower-case hex digits written into the Via branch, the Call-ID and the
// From tag, so every message is a new transaction of a new call (a
// stateless proxy hashing the Call-ID spreads them; nothing is a
// retransmission). Writing the identifier costs three 16-byte stores: the
// rest of the message is copied into the send buffers once.
type Template struct {
	Name  string
	data  []byte
	marks []int // offsets of the 16-digit identifier
}

// IDLen is the width of the identifier.
const IDLen = 16

const mark = "@@@@@@@@@@@@@@@@" // IDLen placeholder characters

// NewTemplate takes a message in which every "@@@@@@@@@@@@@@@@" (16 '@')
// is a place for the identifier. It fails when there is none.
func NewTemplate(name, msg string) (*Template, error) {
	t := &Template{Name: name}
	for i := 0; ; {
		j := strings.Index(msg[i:], mark)
		if j < 0 {
			break
		}
		t.marks = append(t.marks, i+j)
		i += j + IDLen
	}
	if len(t.marks) == 0 {
		return nil, fmt.Errorf("load: template %s has no identifier place (%q)", name, mark)
	}
	t.data = []byte(strings.ReplaceAll(msg, mark, strings.Repeat("0", IDLen)))
	return t, nil
}

// Len is the message's length in bytes.
func (t *Template) Len() int { return len(t.data) }

// Bytes is the message with identifier 0 (a copy).
func (t *Template) Bytes() []byte { return bytes.Clone(t.data) }

// Render returns the message with identifier id.
func (t *Template) Render(id uint64) []byte {
	b := t.Bytes()
	t.stamp(b, id)
	return b
}

// stamp writes id into buf, which holds the template's bytes.
func (t *Template) stamp(buf []byte, id uint64) {
	var hex [IDLen]byte
	const digits = "0123456789abcdef"
	for i := IDLen - 1; i >= 0; i-- {
		hex[i] = digits[id&0xf]
		id >>= 4
	}
	for _, m := range t.marks {
		copy(buf[m:m+IDLen], hex[:])
	}
}

// SDP is the offer carried by Invite: one audio stream, four codecs
// (about 300 bytes, as softphones send).
func SDP(from netip.Addr) string {
	ip := "IP4"
	if from.Is6() && !from.Is4In6() {
		ip = "IP6"
	}
	return "v=0\r\n" +
		"o=bench 2890844526 2890844526 IN " + ip + " " + from.String() + "\r\n" +
		"s=sipedge bench\r\n" +
		"c=IN " + ip + " " + from.String() + "\r\n" +
		"t=0 0\r\n" +
		"m=audio 49170 RTP/AVP 0 8 97 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:97 iLBC/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-15\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n"
}

func hostport(ap netip.AddrPort) string {
	if a := ap.Addr(); a.Is6() && !a.Is4In6() {
		return "[" + a.String() + "]:" + fmt.Sprint(ap.Port())
	}
	return ap.Addr().Unmap().String() + ":" + fmt.Sprint(ap.Port())
}

// Invite is an initial INVITE with SDP, about 850 bytes, from the client
// at from to a user at the proxy to: the headers a softphone sends (Allow,
// Supported, session timers, P-Asserted-Identity, User-Agent) and rport in
// the Via, so a proxy adds received/rport, inserts its Via, and decrements
// Max-Forwards.
func Invite(from, to netip.AddrPort) *Template {
	sdp := SDP(from.Addr())
	msg := "INVITE sip:bob@" + hostport(to) + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + hostport(from) + ";branch=z9hG4bK-" + mark + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: \"Alice\" <sip:alice@bench.sipedge.example>;tag=" + mark + "\r\n" +
		"To: <sip:bob@bench.sipedge.example>\r\n" +
		"Call-ID: " + mark + "@bench.sipedge.example\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:alice@" + hostport(from) + ">\r\n" +
		"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE\r\n" +
		"Supported: replaces, timer\r\n" +
		"Session-Expires: 1800;refresher=uac\r\n" +
		"Min-SE: 90\r\n" +
		"P-Asserted-Identity: \"Alice\" <sip:alice@bench.sipedge.example>\r\n" +
		"User-Agent: sipedge-bench/1.0\r\n" +
		"Content-Type: application/sdp\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(sdp)) + sdp
	t, err := NewTemplate("INVITE", msg)
	if err != nil {
		panic(err)
	}
	return t
}

// Options is an OPTIONS request without a body (about 330 bytes).
func Options(from, to netip.AddrPort) *Template {
	msg := "OPTIONS sip:bob@" + hostport(to) + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + hostport(from) + ";branch=z9hG4bK-" + mark + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:alice@bench.sipedge.example>;tag=" + mark + "\r\n" +
		"To: <sip:bob@bench.sipedge.example>\r\n" +
		"Call-ID: " + mark + "@bench.sipedge.example\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Accept: application/sdp\r\n" +
		"User-Agent: sipedge-bench/1.0\r\n" +
		"Content-Length: 0\r\n\r\n"
	t, err := NewTemplate("OPTIONS", msg)
	if err != nil {
		panic(err)
	}
	return t
}
