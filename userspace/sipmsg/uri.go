package sipmsg

import "bytes"

// ParseURI parses the URI in s (no surrounding blanks or brackets) into u.
// A sip: or sips: URI is split into user, password, host, port, parameters
// (lr, maddr and transport recognised) and headers; any other scheme is
// accepted as opaque. It returns ErrURI for a malformed URI.
func ParseURI(b []byte, s Span, u *URI) error {
	*u = URI{Whole: s}
	i, e := int(s.Start), int(s.End)
	if i < 0 || e > len(b) || i >= e || !isAlpha(b[i]) {
		return ErrURI
	}
	k := i + 1
	for k < e && (isAlpha(b[k]) || isDigit(b[k]) || b[k] == '+' || b[k] == '-' || b[k] == '.') {
		k++
	}
	if k >= e || b[k] != ':' {
		return ErrURI
	}
	u.Scheme = span(i, k)
	for _, c := range b[k+1 : e] {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' {
			return ErrURI
		}
	}
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
	if at := bytes.IndexByte(b[r:e], '@'); at >= 0 {
		ui := b[r : r+at]
		user := ui
		if c := bytes.IndexByte(ui, ':'); c >= 0 {
			user = ui[:c]
			u.HasPassword = true
			u.Password = span(r+c+1, r+at)
		}
		if len(user) == 0 {
			return ErrURI
		}
		u.HasUser = true
		u.User = span(r, r+len(user))
		r += at + 1
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
		pe := s + indexOr(b[s:e], ';', e-s)
		if pe == s {
			return ErrURI
		}
		name, ve := pe, pe
		if eq := bytes.IndexByte(b[s:pe], '='); eq >= 0 {
			name = s + eq
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

func indexOr(b []byte, c byte, or int) int {
	if i := bytes.IndexByte(b, c); i >= 0 {
		return i
	}
	return or
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
	k := i
	for k < e && isHostChar(b[k]) {
		k++
	}
	if k == i {
		return 0, ErrURI
	}
	return k, nil
}

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isHostChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_'
}

// portAt parses 1*5DIGIT at i as a port 1..65535; it returns the end.
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
