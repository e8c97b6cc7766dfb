package sipmsg

// DigestUsername finds the username auth-param in a Proxy-Authorization or
// Authorization value (`Digest username="alice@example.com", realm=...`)
// and returns the span of its text without the quotes. ok is false when the
// value has no username parameter.
func DigestUsername(b []byte, v Span) (Span, bool) {
	i, e := int(v.Start), int(v.End)
	if i < 0 || e > len(b) || i > e {
		return Span{}, false
	}
	// The scheme token, then auth-params separated by commas.
	var ok bool
	if i, ok = tokenEnd(b, skipLWS(b, i, e), e); !ok {
		return Span{}, false
	}
	for i < e {
		i = skipLWS(b, i, e)
		for i < e && (b[i] == ',' || isLWS(b[i])) {
			i++
		}
		ns := i
		if i, ok = tokenEnd(b, i, e); !ok {
			return Span{}, false
		}
		name := b[ns:i]
		i = skipLWS(b, i, e)
		if i >= e || b[i] != '=' {
			return Span{}, false
		}
		i = skipLWS(b, i+1, e)
		vs := i
		ve, ok := genValueEnd(b, i, e)
		if !ok {
			return Span{}, false
		}
		i = ve
		if equalFold(name, "username") {
			if b[vs] == '"' {
				return span(vs+1, ve-1), true
			}
			return span(vs, ve), true
		}
	}
	return Span{}, false
}
