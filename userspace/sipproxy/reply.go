package sipproxy

import (
	"net/netip"
	"strconv"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Stateless replies (483, 400, 503, ...) are built from the raw request's
// spans rather than through a full SIP parser: a request malformed enough to
// need a 400 is often one a strict parser refuses, and it still deserves
// its answer (RFC 3261 §8.2.6, §16.3).

// appendReply appends to out a response with code and reason to the request
// in, parsed into m, received from src. It copies every Via line (adding
// received/rport to the top one, RFC 3261 §18.2.1 and RFC 3581 §4), From,
// To (with a tag when the request had none), Call-ID and CSeq (RFC 3261
// §8.2.6.2). A request that lacks From, To, Call-ID or CSeq is still
// answered (that is what its 400 Missing X says): the reply copies the
// headers that are there. It returns false only when there is no reply to
// send: for a response, an ACK (never answered) or a request without a top
// Via that parses (nowhere to send it).
func appendReply(out, in []byte, m *sipmsg.Msg, src netip.AddrPort, code int, reason string) ([]byte, bool) {
	if !m.IsRequest || string(m.Method.Bytes(in)) == "ACK" || m.NumVias == 0 || m.TopVia.Err != nil {
		return out, false
	}
	from, okFrom := m.First(sipmsg.KindFrom)
	to, okTo := m.First(sipmsg.KindTo)
	callID, okCallID := m.First(sipmsg.KindCallID)
	cseq, okCSeq := m.First(sipmsg.KindCSeq)

	out = append(out, "SIP/2.0 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, reason...)
	out = append(out, "\r\n"...)

	topDone := false
	for i := 0; i < m.NumHeaders; i++ {
		h := &m.Headers[i]
		if h.Kind != sipmsg.KindVia {
			continue
		}
		line := h.Line.Bytes(in)
		if topDone {
			out = append(out, line...)
			continue
		}
		topDone = true
		out = appendTopVia(out, in, h, &m.TopVia, src)
	}
	if okFrom {
		out = append(out, from.Line.Bytes(in)...)
	}
	switch {
	case !okTo:
	case m.To.HasTag || code == 100 || m.To.Err != nil:
		out = append(out, to.Line.Bytes(in)...)
	default:
		// A final or provisional reply other than 100 carries a To tag
		// (RFC 3261 §8.2.6.2). It is a function of the request, so a
		// retransmitted request gets the same reply.
		line := to.Line.Bytes(in)
		cut := int(to.Value.End - to.Line.Start)
		out = append(out, line[:cut]...)
		out = append(out, ";tag=se"...)
		out = appendHex64(out, BranchToken(m.From.Tag.Bytes(in), nil, m.CallID.Bytes(in)))
		out = append(out, line[cut:]...)
	}
	if okCallID {
		out = append(out, callID.Line.Bytes(in)...)
	}
	if okCSeq {
		out = append(out, cseq.Line.Bytes(in)...)
	}
	out = append(out, "Content-Length: 0\r\n\r\n"...)
	return out, true
}

// appendTopVia copies the top Via line with received (and rport when the
// client asked for it) added to its first value, as the forwarding contract
// edits it on forwarded requests.
func appendTopVia(out, in []byte, h *sipmsg.Header, v *sipmsg.Via, src netip.AddrPort) []byte {
	line := h.Line.Bytes(in)
	base := int(h.Line.Start)
	ip := src.Addr().Unmap().String()
	var at int
	var insert []byte
	switch {
	case v.HasRport && !v.HasRportValue:
		at = int(v.RportName.End) - base
		insert = append(insert, '=')
		insert = strconv.AppendUint(insert, uint64(src.Port()), 10)
		insert = append(insert, ";received="...)
		insert = append(insert, ip...)
	case v.HasReceived || string(v.Host.Bytes(in)) == ip || string(v.Host.Bytes(in)) == "["+ip+"]":
		return append(out, line...)
	default:
		at = int(v.SentBy.End) - base
		insert = append(insert, ";received="...)
		insert = append(insert, ip...)
	}
	if at < 0 || at > len(line) {
		return append(out, line...)
	}
	out = append(out, line[:at]...)
	out = append(out, insert...)
	return append(out, line[at:]...)
}

// replyAddr is where a UDP reply goes (RFC 3261 §18.2.2 with RFC 3581): the
// source IP, and the source port when the client asked for rport, else the
// sent-by port (5060 when absent).
func replyAddr(src netip.AddrPort, rport bool, sentByPort int) netip.AddrPort {
	if rport {
		return src
	}
	if sentByPort == 0 {
		sentByPort = 5060
	}
	return netip.AddrPortFrom(src.Addr(), uint16(sentByPort))
}
