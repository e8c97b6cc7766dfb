package sipmsg

import "bytes"

// ParseNameAddr parses a From, To, Route or Record-Route value: a
// name-addr (an optional display name, quoted or tokens, then <URI>) or an
// addr-spec (a bare URI, ending at the first ';' or blank), followed by
// header parameters; the tag parameter is recorded. It returns ErrNameAddr
// for a structural problem and ErrURI when the URI does not parse.
func ParseNameAddr(b []byte, s Span, na *NameAddr) error {
	*na = NameAddr{}
	i, e := int(s.Start), int(s.End)
	if i < 0 || e > len(b) || i > e {
		return ErrNameAddr
	}
	for i < e && isLWS(b[i]) {
		i++
	}
	if i == e {
		return ErrNameAddr
	}
	var uriStart, uriEnd, k int
	angle := true
	switch {
	case b[i] == '"':
		q, ok := quotedEnd(b, i, e)
		if !ok {
			return ErrNameAddr
		}
		na.Display = span(i, q)
		k = q
		for k < e && isLWS(b[k]) {
			k++
		}
		if k == e || b[k] != '<' {
			return ErrNameAddr
		}
	default:
		// Tokens and blanks, then '<'; the display name ends at its last
		// non-blank byte.
		k = scan(b, i, e, cToken|cLWS)
		if k < e && b[k] == '<' {
			last := k
			for last > i && isLWS(b[last-1]) {
				last--
			}
			if last > i {
				na.Display = span(i, last)
			}
		} else {
			// addr-spec: the URI runs to the first ';' or blank.
			k = i
			for k < e && b[k] != ';' && !isLWS(b[k]) {
				k++
			}
			uriStart, uriEnd = i, k
			angle = false
		}
	}
	if !angle {
		if err := ParseURI(b, span(uriStart, uriEnd), &na.URI); err != nil {
			return err
		}
		return na.parseParams(b, k, e)
	}
	// name-addr: b[k] == '<'. The URI runs to the first '>', and '>' is
	// one of the bytes a URI cannot hold: one scan finds the end and
	// checks the URI's bytes. A URI that stops at another such byte is
	// malformed, if a '>' follows at all.
	gt, at := uriScan(b, k+1, e)
	if gt == e || b[gt] != '>' {
		end := -1
		if gt < e {
			end = bytes.IndexByte(b[gt:e], '>')
		}
		if end < 0 {
			return ErrNameAddr
		}
		// ParseURI fails on it; it also fills what it parsed before
		// failing, as the caller may see.
		na.Angle = true
		return ParseURI(b, span(k+1, gt+end), &na.URI)
	}
	na.Angle = true
	na.URI.Whole = span(k+1, gt) // the rest of na.URI is zero
	if err := na.URI.parse(b, k+1, gt, at); err != nil {
		return err
	}
	return na.parseParams(b, gt+1, e)
}

// parseParams parses *( SEMI generic-param ) in b[k:e].
func (na *NameAddr) parseParams(b []byte, k, e int) error {
	for k < e && isLWS(b[k]) {
		k++
	}
	if k < e {
		na.Params = span(k, e)
	}
	for k < e {
		if b[k] != ';' {
			return ErrNameAddr
		}
		k++
		for k < e && isLWS(b[k]) {
			k++
		}
		ns := k
		k = scan(b, k, e, cToken)
		if k == ns {
			return ErrNameAddr
		}
		name := b[ns:k]
		for k < e && isLWS(b[k]) {
			k++
		}
		vs, ve := k, k
		hasValue := false
		if k < e && b[k] == '=' {
			k++
			for k < e && isLWS(b[k]) {
				k++
			}
			var ok bool
			vs = k
			ve, ok = genValueEnd(b, k, e)
			if !ok {
				return ErrNameAddr
			}
			hasValue = true
			k = ve
			for k < e && isLWS(b[k]) {
				k++
			}
		}
		if !na.HasTag && tokenIs(name, "tag") {
			if !hasValue {
				return ErrNameAddr
			}
			na.HasTag, na.Tag = true, span(vs, ve)
		}
	}
	return nil
}

// quotedEnd returns the offset after the closing quote of the quoted
// string starting at b[i] == '"'.
func quotedEnd(b []byte, i, e int) (int, bool) {
	// A CR or LF inside can only be a fold, which is LWS in a quoted
	// string.
	for k := i + 1; k < e; k++ {
		switch b[k] {
		case '\\':
			k++
		case '"':
			return k + 1, true
		}
	}
	return 0, false
}

// genValueEnd returns the end of a gen-value (token, host or quoted
// string) starting at k; it must not be empty.
func genValueEnd(b []byte, k, e int) (int, bool) {
	if k >= e {
		return 0, false
	}
	if b[k] == '"' {
		return quotedEnd(b, k, e)
	}
	s := k
	k = scan(b, k, e, cGenValue)
	return k, k > s
}
