package sipmsg

import "encoding/binary"

// Character classes of RFC 3261 §25.1, as one table: the scanning loops
// test a class with one load instead of a chain of comparisons.
const (
	cToken    = 1 << iota // token: alphanum and "-.!%*_+`'~"
	cLWS                  // SP, HTAB, CR, LF
	cHost                 // hostname: alphanum, '-', '.', '_'
	cGenValue             // gen-value without quotes: token, ':', '[', ']'
	cScheme               // after a scheme's first letter: alphanum, '+', '-', '.'
	// cURIPlain: may be in a URI (not a blank, a control or non-ASCII
	// byte, '<', '>' or '"') and is not '@'.
	cURIPlain
	// cValuePlain: none of what splitValues looks at ('"', '<', '>', ',').
	cValuePlain
)

var class = func() (t [256]uint16) {
	for c := 0; c < 256; c++ {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		var k uint16
		if c < 128 && (alnum || hasByte("-.!%*_+`'~", c)) {
			k |= cToken | cGenValue
		}
		if hasByte(" \t\r\n", c) {
			k |= cLWS
		}
		if alnum || hasByte("-._", c) {
			k |= cHost
		}
		if hasByte(":[]", c) {
			k |= cGenValue
		}
		if alnum || hasByte("+-.", c) {
			k |= cScheme
		}
		if c > ' ' && c < 0x7f && !hasByte("<>\"@", c) {
			k |= cURIPlain
		}
		if !hasByte("\"<>,", c) {
			k |= cValuePlain
		}
		t[c] = k
	}
	return t
}()

func hasByte(s string, c int) bool {
	for i := 0; i < len(s); i++ {
		if int(s[i]) == c {
			return true
		}
	}
	return false
}

// scan returns the offset of the first byte of b[i:e] whose class has
// none of the bits in k, or e. It tests four bytes per step (a bit set in
// the AND of their classes is set in each one) before going byte by
// byte: the runs it skips (tokens, host names, URIs) are mostly longer
// than four bytes, and one branch per four bytes is what makes it pay.
// e must not be beyond len(b).
func scan(b []byte, i, e int, k uint16) int {
	if i >= e {
		return i
	}
	s := b[i:e]
	for len(s) >= 4 && class[s[0]]&class[s[1]]&class[s[2]]&class[s[3]]&k != 0 {
		s = s[4:]
	}
	for len(s) > 0 && class[s[0]]&k != 0 {
		s = s[1:]
	}
	return e - len(s)
}

// isToken reports whether c is a token character: alphanum and
// "-.!%*_+`'~" (TestTokenMask checks the table against that definition).
func isToken(c byte) bool { return class[c]&cToken != 0 }

// IsToken reports whether s is an RFC 3261 token (a method or header
// name): one or more token characters.
func IsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isToken(s[i]) {
			return false
		}
	}
	return s != ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isWSP is SP or HTAB; isLWS adds CR and LF, which inside a framed value
// only occur as part of a fold (CRLF followed by SP or HTAB).
func isWSP(c byte) bool { return c == ' ' || c == '\t' }
func isLWS(c byte) bool { return class[c]&cLWS != 0 }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case in b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// EqualFold reports whether b equals s ignoring ASCII case; s must be
// lower case.
func EqualFold(b []byte, s string) bool { return equalFold(b, s) }

// tokenIs reports whether the token t equals s ignoring ASCII case, where
// s is lower-case letters, digits and '-'. It compares up to eight bytes at
// a time, folding case by setting bit 0x20 of every byte: for a token byte
// that maps exactly the upper-case letters onto the lower-case ones (the
// only other token byte it changes is '_', which becomes DEL and matches
// nothing in s), so t must hold token characters only.
func tokenIs(t []byte, s string) bool {
	n := len(s)
	if len(t) != n {
		return false
	}
	const fold8 = 0x2020202020202020
	switch {
	case n >= 8:
		// Whole words, then the last eight bytes (overlapping).
		i := 0
		for ; i+8 <= n; i += 8 {
			if binary.LittleEndian.Uint64(t[i:])|fold8 != le64(s[i:]) {
				return false
			}
		}
		return i == n || binary.LittleEndian.Uint64(t[n-8:])|fold8 == le64(s[n-8:])
	case n >= 4:
		const fold4 = 0x20202020
		return binary.LittleEndian.Uint32(t)|fold4 == le32(s) &&
			binary.LittleEndian.Uint32(t[n-4:])|fold4 == le32(s[n-4:])
	}
	for i := 0; i < n; i++ {
		if t[i]|0x20 != s[i] {
			return false
		}
	}
	return true
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// compactKind maps a one-letter (compact) header name, folded to lower
// case, to its Kind (RFC 3261 §7.3.3 and the extensions' compact forms).
var compactKind = [256]Kind{
	'v': KindVia, 'i': KindCallID, 'f': KindFrom, 't': KindTo, 'm': KindContact,
	'l': KindContentLength, 'k': KindSupported, 'c': KindContentType, 's': KindSubject,
	'e': KindContentEncoding, 'o': KindEvent, 'u': KindAllowEvents, 'r': KindReferTo,
	'b': KindReferredBy, 'x': KindSessionExpires, 'a': KindAcceptContact,
	'j': KindRejectContact, 'd': KindRequestDisposition, 'y': KindIdentity, 'n': KindIdentityInfo,
}

// longNames are the full header names with a Kind, lower case.
var longNames = [...]struct {
	name string
	kind Kind
}{
	{"to", KindTo}, {"via", KindVia}, {"from", KindFrom}, {"cseq", KindCSeq},
	{"route", KindRoute}, {"event", KindEvent}, {"call-id", KindCallID},
	{"contact", KindContact}, {"subject", KindSubject}, {"refer-to", KindReferTo},
	{"identity", KindIdentity}, {"supported", KindSupported}, {"referred-by", KindReferredBy},
	{"record-route", KindRecordRoute}, {"max-forwards", KindMaxForwards},
	{"content-type", KindContentType}, {"allow-events", KindAllowEvents},
	{"identity-info", KindIdentityInfo}, {"authorization", KindAuthorization},
	{"content-length", KindContentLength}, {"accept-contact", KindAcceptContact},
	{"reject-contact", KindRejectContact}, {"session-expires", KindSessionExpires},
	{"content-encoding", KindContentEncoding}, {"proxy-authorization", KindProxyAuthorization},
	{"request-disposition", KindRequestDisposition},
}

// nameSlot hashes a header name of two bytes or more (token characters)
// by its length and its first and last letters, case folded. The hash is
// perfect over longNames (TestKindOf checks it), so a name is compared
// with one candidate at most, without a chain of branches.
func nameSlot(name []byte) int {
	n := len(name)
	return (n + int(name[0]|0x20)*13 + int(name[n-1]|0x20)) & 63
}

// nameTable holds longNames by nameSlot.
var nameTable = func() (t [64]struct {
	name string
	kind Kind
}) {
	for _, ln := range longNames {
		t[nameSlot([]byte(ln.name))] = ln
	}
	return t
}()

// KindOf maps a header name to its Kind, compact forms included, in any
// case: "From", "f" and "FROM" are all KindFrom. A name sipmsg does not
// know, or that is not a token, is KindOther.
func KindOf(name []byte) Kind {
	for _, c := range name {
		if !isToken(c) {
			return KindOther
		}
	}
	return kindOf(name)
}

// kindOf maps a header name (token characters) to its Kind, compact forms
// included.
func kindOf(name []byte) Kind {
	switch len(name) {
	case 0:
		return KindOther
	case 1:
		return compactKind[name[0]|0x20] // see tokenIs
	}
	if e := &nameTable[nameSlot(name)]; tokenIs(name, e.name) {
		return e.kind
	}
	return KindOther
}
