package probe

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// BranchPrefix starts the Via branch of every probe: RFC 3261's magic
// cookie and "pr". The slow path tells a probe reply from its own
// stateless and stateful branches by this prefix; the rest of the branch
// is 16 hex digits of the probe's sequence number and 16 hex digits of a
// per-probe random nonce.
const BranchPrefix = "z9hG4bKpr"

const (
	hexLen    = 16
	branchLen = len(BranchPrefix) + 2*hexLen
	// cseqNum is the CSeq number of every probe, as Kamailio writes it.
	cseqNum = "10"
)

// checkPrefix reports whether p can start probe branches: the magic
// cookie and two lower-case letters or digits (the length of BranchPrefix,
// which the branch layout assumes).
func checkPrefix(p string) error {
	const cookie = "z9hG4bK"
	if len(p) != len(BranchPrefix) || p[:len(cookie)] != cookie {
		return fmt.Errorf("branch prefix %q: want %s and two lower-case letters or digits", p, cookie)
	}
	for i := len(cookie); i < len(p); i++ {
		if c := p[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("branch prefix %q: want %s and two lower-case letters or digits", p, cookie)
		}
	}
	return nil
}

// checkURI reports whether s is a sip: or sips: URI that may be written
// as a Request-URI, To or From (no blanks, no CR or LF, no brackets).
func checkURI(what, s string) error {
	b := []byte(s)
	var u sipmsg.URI
	if len(b) == 0 || len(b) > sipmsg.MaxLineLen/4 {
		return fmt.Errorf("%s %q: want a sip: URI of 1 to %d bytes", what, s, sipmsg.MaxLineLen/4)
	}
	if err := sipmsg.ParseURI(b, sipmsg.Span{Start: 0, End: int32(len(b))}, &u); err != nil || !u.SIP {
		return fmt.Errorf("%s %q: not a sip: or sips: URI", what, s)
	}
	return nil
}

// checkToken reports whether s is an RFC 3261 token (a method name).
func checkMethod(s string) error {
	if s == "" {
		return errors.New("method: empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '!' || c == '%' || c == '*' || c == '_' || c == '+' || c == '`' || c == '\'' || c == '~':
		default:
			return fmt.Errorf("method %q: not a token", s)
		}
	}
	switch s {
	case "INVITE", "ACK", "CANCEL":
		// INVITE needs Timer A/B and an ACK; ACK and CANCEL get no
		// transaction of their own to match.
		return fmt.Errorf("method %q: probes are non-INVITE requests with a reply (OPTIONS, INFO, ...)", s)
	}
	return nil
}

// checkSentBy reports whether s can be a Via sent-by (host[:port]).
func checkSentBy(s string) error {
	if s == "" || len(s) > 255 {
		return fmt.Errorf("via sent-by %q: want host[:port] of 1 to 255 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == ':' || c == '[' || c == ']':
		default:
			return fmt.Errorf("via sent-by %q: byte %q not allowed", s, c)
		}
	}
	return nil
}

// request is what a target's probes are built from. A probe's message is
// a pure function of it and the probe's sequence number and nonce, so a
// retransmission rebuilds identical bytes and nothing is kept per probe
// but these numbers.
type request struct {
	method, uri, from, sentBy, userAgent string
	prefix                               string // branch prefix; "" is BranchPrefix
}

// appendHex64 appends v as 16 lower-case hex digits.
func appendHex64(b []byte, v uint64) []byte {
	var x [8]byte
	for i := 7; i >= 0; i-- {
		x[i] = byte(v)
		v >>= 8
	}
	return hex.AppendEncode(b, x[:])
}

// appendBranch appends the probe's Via branch.
func appendBranch(b []byte, prefix string, seq, nonce uint64) []byte {
	b = append(b, prefix...)
	b = appendHex64(b, seq)
	return appendHex64(b, nonce)
}

// appendRequest appends the probe request (RFC 3261 §8.1.1; headers in the
// order Kamailio's tm writes them) to b: Request-URI and To are the
// destination URI, From carries a tag, Via has rport (RFC 3581) and the
// probe branch, Max-Forwards 70, Content-Length 0, no body and no Contact.
func appendRequest(b []byte, r *request, seq, nonce uint64) []byte {
	b = append(b, r.method...)
	b = append(b, ' ')
	b = append(b, r.uri...)
	b = append(b, " SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	b = append(b, r.sentBy...)
	b = append(b, ";rport;branch="...)
	prefix := r.prefix
	if prefix == "" {
		prefix = BranchPrefix
	}
	b = appendBranch(b, prefix, seq, nonce)
	b = append(b, "\r\nTo: <"...)
	b = append(b, r.uri...)
	b = append(b, ">\r\nFrom: <"...)
	b = append(b, r.from...)
	b = append(b, ">;tag="...)
	b = appendHex64(b, nonce^seq)
	b = append(b, "\r\nCSeq: "+cseqNum+" "...)
	b = append(b, r.method...)
	b = append(b, "\r\nCall-ID: "...)
	b = appendHex64(b, nonce)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '@')
	b = append(b, r.sentBy...)
	b = append(b, "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n"...)
	if r.userAgent != "" {
		b = append(b, "User-Agent: "...)
		b = append(b, r.userAgent...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// parseBranch splits a probe branch starting with prefix (as long as
// BranchPrefix) into its sequence number and nonce.
func parseBranch(branch []byte, prefix string) (seq, nonce uint64, ok bool) {
	if len(branch) != branchLen || string(branch[:len(prefix)]) != prefix {
		return 0, 0, false
	}
	h := branch[len(prefix):]
	seq, ok1 := parseHex64(h[:hexLen])
	nonce, ok2 := parseHex64(h[hexLen:])
	return seq, nonce, ok1 && ok2
}

// parseHex64 parses exactly 16 lower-case hex digits (what appendHex64
// writes; an upper-case digit is not ours).
func parseHex64(h []byte) (uint64, bool) {
	if len(h) != hexLen {
		return 0, false
	}
	var v uint64
	for _, c := range h {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
