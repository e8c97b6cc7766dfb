package sipmsg

// Character classes of RFC 3261 §25.1.

// isToken reports whether c is a token character: alphanum and
// "-.!%*_+`'~". The two masks hold one bit per ASCII byte
// (TestTokenMask checks them against that definition).
func isToken(c byte) bool {
	const lo, hi = 0x03ff6ca200000000, 0x47ffffff87fffffe
	switch {
	case c < 64:
		return lo>>c&1 != 0
	case c < 128:
		return hi>>(c-64)&1 != 0
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isWSP is SP or HTAB; isLWS adds CR and LF, which inside a framed value
// only occur as part of a fold (CRLF followed by SP or HTAB).
func isWSP(c byte) bool { return c == ' ' || c == '\t' }
func isLWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

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

// kindOf maps a header name to its Kind, compact forms included.
func kindOf(name []byte) Kind {
	if len(name) == 1 {
		switch lower(name[0]) {
		case 'v':
			return KindVia
		case 'i':
			return KindCallID
		case 'f':
			return KindFrom
		case 't':
			return KindTo
		case 'm':
			return KindContact
		case 'l':
			return KindContentLength
		case 'k':
			return KindSupported
		case 'c':
			return KindContentType
		case 's':
			return KindSubject
		case 'e':
			return KindContentEncoding
		case 'o':
			return KindEvent
		case 'u':
			return KindAllowEvents
		case 'r':
			return KindReferTo
		case 'b':
			return KindReferredBy
		case 'x':
			return KindSessionExpires
		case 'a':
			return KindAcceptContact
		case 'j':
			return KindRejectContact
		case 'd':
			return KindRequestDisposition
		case 'y':
			return KindIdentity
		case 'n':
			return KindIdentityInfo
		}
		return KindOther
	}
	switch len(name) {
	case 2:
		if equalFold(name, "to") {
			return KindTo
		}
	case 3:
		if equalFold(name, "via") {
			return KindVia
		}
	case 4:
		if equalFold(name, "from") {
			return KindFrom
		}
		if equalFold(name, "cseq") {
			return KindCSeq
		}
	case 5:
		if equalFold(name, "route") {
			return KindRoute
		}
		if equalFold(name, "event") {
			return KindEvent
		}
	case 7:
		if equalFold(name, "call-id") {
			return KindCallID
		}
		if equalFold(name, "contact") {
			return KindContact
		}
		if equalFold(name, "subject") {
			return KindSubject
		}
	case 8:
		if equalFold(name, "refer-to") {
			return KindReferTo
		}
		if equalFold(name, "identity") {
			return KindIdentity
		}
	case 9:
		if equalFold(name, "supported") {
			return KindSupported
		}
	case 11:
		if equalFold(name, "referred-by") {
			return KindReferredBy
		}
	case 12:
		if equalFold(name, "record-route") {
			return KindRecordRoute
		}
		if equalFold(name, "max-forwards") {
			return KindMaxForwards
		}
		if equalFold(name, "content-type") {
			return KindContentType
		}
		if equalFold(name, "allow-events") {
			return KindAllowEvents
		}
	case 13:
		if equalFold(name, "identity-info") {
			return KindIdentityInfo
		}
		if equalFold(name, "authorization") {
			return KindAuthorization
		}
	case 14:
		if equalFold(name, "content-length") {
			return KindContentLength
		}
		if equalFold(name, "accept-contact") {
			return KindAcceptContact
		}
		if equalFold(name, "reject-contact") {
			return KindRejectContact
		}
	case 15:
		if equalFold(name, "session-expires") {
			return KindSessionExpires
		}
	case 16:
		if equalFold(name, "content-encoding") {
			return KindContentEncoding
		}
	case 19:
		if equalFold(name, "proxy-authorization") {
			return KindProxyAuthorization
		}
		if equalFold(name, "request-disposition") {
			return KindRequestDisposition
		}
	}
	return KindOther
}
