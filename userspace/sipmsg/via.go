package sipmsg

// ParseVia parses one Via value (RFC 3261 §20.42, RFC 3581):
//
//	sent-protocol LWS sent-by *( SEMI via-params )
//
// with blanks allowed around '/', ':', ';' and '=' as the grammar's SLASH,
// COLON, SEMI and EQUAL allow. It fills v in place (v is large) and returns
// ErrVia, or ErrTooManyParams, when the value does not parse.
func ParseVia(b []byte, s Span, v *Via) error {
	v.Err = nil
	v.Value = s
	v.NumParams = 0
	v.Proto, v.Transport, v.SentBy, v.Host, v.Port = Span{}, Span{}, Span{}, Span{}, Span{}
	v.HasPort, v.PortNum = false, 0
	v.HasBranch, v.Branch = false, Span{}
	v.HasRport, v.HasRportValue, v.RportName, v.Rport, v.RportNum = false, false, Span{}, Span{}, 0
	v.HasReceived, v.Received, v.ReceivedParam = false, Span{}, Span{}
	v.HasMaddr, v.Maddr = false, Span{}

	i, e := int(s.Start), int(s.End)
	if i < 0 || e > len(b) || i > e {
		return ErrVia
	}
	i = skipLWS(b, i, e)
	// sent-protocol: name SLASH version SLASH transport.
	ps := i
	var ok bool
	if i, ok = tokenEnd(b, i, e); !ok {
		return ErrVia
	}
	for part := 0; part < 2; part++ {
		i = skipLWS(b, i, e)
		if i >= e || b[i] != '/' {
			return ErrVia
		}
		i = skipLWS(b, i+1, e)
		ts := i
		if i, ok = tokenEnd(b, i, e); !ok {
			return ErrVia
		}
		if part == 1 {
			v.Transport = span(ts, i)
		}
	}
	v.Proto = span(ps, i)
	if i >= e || !isLWS(b[i]) {
		return ErrVia
	}
	i = skipLWS(b, i, e)
	// sent-by: host [ COLON port ].
	hs := i
	h, err := hostEnd(b, i, e)
	if err != nil {
		return ErrVia
	}
	v.Host = span(hs, h)
	v.SentBy = v.Host
	i = h
	if j := skipLWS(b, i, e); j < e && b[j] == ':' {
		p, num, ok := portAt(b, skipLWS(b, j+1, e), e)
		if !ok {
			return ErrVia
		}
		v.HasPort, v.Port, v.PortNum = true, span(skipLWS(b, j+1, e), p), num
		v.SentBy = span(hs, p)
		i = p
	}
	// via-params.
	for {
		i = skipLWS(b, i, e)
		if i == e {
			return nil
		}
		if b[i] != ';' {
			return ErrVia
		}
		sep := i
		i = skipLWS(b, i+1, e)
		ns := i
		if i, ok = tokenEnd(b, i, e); !ok {
			return ErrVia
		}
		p := Param{Name: span(ns, i), Whole: span(sep, i)}
		if j := skipLWS(b, i, e); j < e && b[j] == '=' {
			vs := skipLWS(b, j+1, e)
			ve, ok := genValueEnd(b, vs, e)
			if !ok {
				return ErrVia
			}
			p.HasValue, p.Value, p.Whole.End = true, span(vs, ve), int32(ve)
			i = ve
		}
		if v.NumParams == MaxParams {
			return ErrTooManyParams
		}
		v.Params[v.NumParams] = p
		v.NumParams++
		if err := v.known(b, &p); err != nil {
			return err
		}
	}
}

// known records the parameters the contract reads; the first of each wins.
// The name is a token, so tokenIs can compare it; the switch on its length
// leaves one comparison at most.
func (v *Via) known(b []byte, p *Param) error {
	name := p.Name.Bytes(b)
	switch len(name) {
	case 6:
		if !tokenIs(name, "branch") {
			return nil
		}
		if !p.HasValue {
			return ErrVia
		}
		if !v.HasBranch {
			v.HasBranch, v.Branch = true, p.Value
		}
	case 5:
		switch name[0] | 0x20 {
		case 'r':
			if !tokenIs(name, "rport") || v.HasRport {
				return nil
			}
			v.HasRport, v.RportName = true, p.Name
			if p.HasValue {
				num, ok := portIs(b, p.Value)
				if !ok {
					return ErrVia
				}
				v.HasRportValue, v.Rport, v.RportNum = true, p.Value, num
			}
		case 'm':
			if !tokenIs(name, "maddr") {
				return nil
			}
			if !p.HasValue {
				return ErrVia
			}
			if !v.HasMaddr {
				v.HasMaddr, v.Maddr = true, p.Value
			}
		}
	case 8:
		if !tokenIs(name, "received") {
			return nil
		}
		if !p.HasValue {
			return ErrVia
		}
		if !v.HasReceived {
			v.HasReceived, v.Received, v.ReceivedParam = true, p.Value, p.Whole
		}
	}
	return nil
}

// Param returns the i-th parameter (i < NumParams).
func (v *Via) Param(i int) Param {
	if i < 0 || i >= v.NumParams {
		return Param{}
	}
	return v.Params[i]
}

func skipLWS(b []byte, i, e int) int {
	for i < e && class[b[i]]&cLWS != 0 {
		i++
	}
	return i
}

// tokenEnd returns the end of the non-empty token at i.
func tokenEnd(b []byte, i, e int) (int, bool) {
	s := i
	i = scan(b, i, e, cToken)
	return i, i > s
}
