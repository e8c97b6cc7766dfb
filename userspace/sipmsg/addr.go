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
		k = i
		last := i
		for k < e && (isToken(b[k]) || isLWS(b[k])) {
			if !isLWS(b[k]) {
				last = k + 1
			}
			k++
		}
		if k < e && b[k] == '<' {
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
	if angle {
		// name-addr: b[k] == '<'.
		gt := bytes.IndexByte(b[k+1:e], '>')
		if gt < 0 {
			return ErrNameAddr
		}
		na.Angle = true
		uriStart, uriEnd = k+1, k+1+gt
		k = uriEnd + 1
	}
	if err := ParseURI(b, span(uriStart, uriEnd), &na.URI); err != nil {
		return err
	}
	return na.parseParams(b, k, e)
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
		for k < e && isToken(b[k]) {
			k++
		}
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
		if !na.HasTag && equalFold(name, "tag") {
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
	for k := i + 1; k < e; k++ {
		switch b[k] {
		case '\\':
			k++
		case '"':
			return k + 1, true
		case '\r', '\n':
			// Only a fold may hold them; a fold inside quotes is LWS.
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
	for k < e && (isToken(b[k]) || b[k] == ':' || b[k] == '[' || b[k] == ']') {
		k++
	}
	return k, k > s
}
