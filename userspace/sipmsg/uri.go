package sipmsg

import "bytes"

// ParseURI parses the URI in s (no surrounding blanks or brackets) into u.
// A sip: or sips: URI is split into user, password, host, port, parameters
// (lr, maddr and transport recognised) and headers; any other scheme is
// accepted as opaque. It returns ErrURI for a malformed URI.
func ParseURI(b []byte, s Span, u *URI) error {
	*u = URI{Whole: s}
	i, e := int(s.Start), int(s.End)
	if i < 0 || e > len(b) || i >= e {
		return ErrURI
	}
	end, at := uriScan(b, i, e)
	if end != e {
		// A byte no URI holds. The scheme is still recorded when it
		// parses, as the field-by-field parse would have done.
		if isAlpha(b[i]) {
			if k := scan(b, i+1, e, cScheme); k < e && b[k] == ':' {
				u.Scheme = span(i, k)
			}
		}
		return ErrURI
	}
	return u.parse(b, i, e, at)
}

// uriScan returns the offset of the first byte of b[i:e] that a URI
// cannot hold (a blank, a control or non-ASCII byte, '<', '>' or '"'), or
// e, and the offset of the first '@' before it (-1 when none).
func uriScan(b []byte, i, e int) (end, at int) {
	at = -1
	for {
		i = scan(b, i, e, cURIPlain)
		if i >= e || b[i] != '@' {
			return i, at
		}
		if at < 0 {
			at = i
		}
		i++
	}
}

// parse parses the URI b[i:e] into u (whose Whole is set), given that
// uriScan found no byte a URI cannot hold and its first '@' at at.
func (u *URI) parse(b []byte, i, e, at int) error {
	if i >= e || !isAlpha(b[i]) {
		return ErrURI
	}
	k := scan(b, i+1, e, cScheme)
	if k >= e || b[k] != ':' {
		return ErrURI
	}
	u.Scheme = span(i, k)
	scheme := b[i:k]
	switch {
	case equalFold(scheme, "sip"):
		u.SIP = true
	case equalFold(scheme, "sips"):
		u.SIP, u.Secure = true, true
	default:
		if k+1 == e {
			return ErrURI
		}
		u.Opaque = span(k+1, e)
		return nil
	}
	r := k + 1
	// The scheme holds no '@': at is the first one after "sip:", the end
	// of the userinfo.
	if at >= 0 {
		userEnd := r
		for userEnd < at && b[userEnd] != ':' {
			userEnd++
		}
		if userEnd < at {
			u.HasPassword = true
			u.Password = span(userEnd+1, at)
		}
		if userEnd == r {
			return ErrURI
		}
		u.HasUser = true
		u.User = span(r, userEnd)
		r = at + 1
	}
	h, err := hostEnd(b, r, e)
	if err != nil {
		return ErrURI
	}
	u.Host = span(r, h)
	r = h
	if r < e && b[r] == ':' {
		p, num, ok := portAt(b, r+1, e)
		if !ok {
			return ErrURI
		}
		u.HasPort, u.Port, u.PortNum = true, span(r+1, p), num
		r = p
	}
	if r < e && b[r] == ';' {
		q := bytes.IndexByte(b[r+1:e], '?')
		pe := e
		if q >= 0 {
			pe = r + 1 + q
		}
		u.Params = span(r+1, pe)
		if err := u.parseParams(b, r+1, pe); err != nil {
			return err
		}
		r = pe
	}
	if r < e && b[r] == '?' {
		u.Headers = span(r+1, e)
		r = e
	}
	if r != e {
		return ErrURI
	}
	return nil
}

// parseParams walks uri-parameters in b[s:e] (between ';'s).
func (u *URI) parseParams(b []byte, s, e int) error {
	for s <= e {
		// pe: the end of this parameter; eq: its first '=', if any.
		pe, eq := s, -1
		for ; pe < e && b[pe] != ';'; pe++ {
			if b[pe] == '=' && eq < 0 {
				eq = pe
			}
		}
		if pe == s {
			return ErrURI
		}
		name, ve := pe, pe
		if eq >= 0 {
			name = eq
			if name == s || name+1 == pe {
				return ErrURI
			}
			ve = name + 1
		}
		switch {
		case equalFold(b[s:name], "lr"):
			u.LR = true
		case equalFold(b[s:name], "maddr"):
			if name == pe {
				return ErrURI
			}
			if !u.HasMaddr {
				u.HasMaddr, u.Maddr = true, span(ve, pe)
			}
		case equalFold(b[s:name], "transport"):
			if name == pe {
				return ErrURI
			}
			if !u.HasTransport {
				u.HasTransport, u.Transport = true, span(ve, pe)
			}
		}
		s = pe + 1
	}
	return nil
}

// hostEnd returns the end of the host starting at i: an IPv6 reference in
// brackets, or a run of hostname characters (alphanum, '-', '.', '_').
func hostEnd(b []byte, i, e int) (int, error) {
	if i >= e {
		return 0, ErrURI
	}
	if b[i] == '[' {
		k := i + 1
		for k < e && (isHex(b[k]) || b[k] == ':' || b[k] == '.') {
			k++
		}
		if k >= e || b[k] != ']' || k-i < 3 {
			return 0, ErrURI
		}
		return k + 1, nil
	}
	k := scan(b, i, e, cHost)
	if k == i {
		return 0, ErrURI
	}
	return k, nil
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// portIs parses the whole span s as a port: 1*5DIGIT, 1..65535, nothing
// before or after ("6101x", "61.01", "6:101" and "99999" are not ports, and
// never their leading digits).
func portIs(b []byte, s Span) (int, bool) {
	p, num, ok := portAt(b, int(s.Start), int(s.End))
	if !ok || p != int(s.End) {
		return 0, false
	}
	return num, true
}

// portAt parses 1*5DIGIT at i as a port 1..65535; it returns the end. The
// caller checks what follows.
func portAt(b []byte, i, e int) (int, int, bool) {
	k, v := i, 0
	for k < e && isDigit(b[k]) {
		v = v*10 + int(b[k]-'0')
		k++
		if k-i > 5 {
			return 0, 0, false
		}
	}
	if k == i || v == 0 || v > 65535 {
		return 0, 0, false
	}
	return k, v, true
}
