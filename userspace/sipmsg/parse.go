package sipmsg

import (
	"bytes"
	"encoding/binary"
)

// Parse scans the message in b and fills m with offsets into b. It returns
// an error when the message cannot be framed (see the package doc); field
// problems are recorded in m and do not make Parse fail. Parse allocates
// nothing and never panics.
func Parse(b []byte, m *Msg) error {
	m.reset()
	n := len(b)
	if n == 0 {
		return ErrEmpty
	}
	if n > MaxMsgLen {
		return ErrTooLong
	}
	// RFC 3261 §7.5: CRLFs before the start line are ignored (and a
	// datagram of nothing else is a keepalive).
	i := 0
	for i+1 < n && b[i] == '\r' && b[i+1] == '\n' {
		i += 2
	}
	if i == n {
		return ErrKeepalive
	}
	eol, err := lineEnd(b, i)
	if err != nil {
		return err
	}
	if eol-i > MaxLineLen {
		return ErrLineTooLong
	}
	m.Start = span(i, eol+2)
	if err := m.parseStartLine(b, i, eol); err != nil {
		return err
	}
	pos := eol + 2
	for {
		if pos >= n {
			return ErrNoEndOfHeaders
		}
		switch c := b[pos]; {
		case c == '\r':
			if pos+1 < n && b[pos+1] == '\n' {
				m.HeadersEnd = pos
				m.Body = pos + 2
				return nil
			}
			return ErrLineEnding
		case c == '\n':
			return ErrLineEnding
		case isWSP(c):
			// A continuation line with no header before it.
			return ErrHeaderLine
		}
		next, err := m.parseHeader(b, pos)
		if err != nil {
			return err
		}
		pos = next
	}
}

// lineEnd returns the offset of the CR of the CRLF that ends the physical
// line starting at i. A bare CR or LF is an error: the line must end at
// its first CR or LF, and that must be a CR followed by an LF.
//
// It looks for both bytes in one pass, eight bytes at a time: header lines
// are too short for bytes.IndexByte's vector loop to pay for its call, and
// it would take two. A word whose bytes are all 0x10 or above, the usual
// case, is passed after four operations; only a word holding a lower byte
// (HTAB, CR, LF) is looked at byte by byte.
func lineEnd(b []byte, i int) (int, error) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// A byte's top bit ends up set when it is 0x80 or above, or when
		// one of its bits 0x70 is set; per byte, (c & 0x70) + 0x70 does
		// not carry into the next one.
		if (w&(0x70*lo)+0x70*lo|w)&hi == hi {
			continue
		}
		for j := i; j < i+8; j++ {
			if c := b[j]; c == '\r' || c == '\n' {
				return crlfAt(b, j)
			}
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '\r' || c == '\n' {
			return crlfAt(b, i)
		}
	}
	return 0, ErrNoEndOfHeaders
}

// crlfAt checks that the first CR or LF of a line, at i, starts a CRLF.
func crlfAt(b []byte, i int) (int, error) {
	if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
		return i, nil
	}
	return 0, ErrLineEnding
}

// parseStartLine parses the line b[i:eol].
func (m *Msg) parseStartLine(b []byte, i, eol int) error {
	line := b[i:eol]
	if len(line) >= 4 && equalFold(line[:4], "sip/") {
		return m.parseStatusLine(b, i, eol)
	}
	m.IsRequest = true
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 == sp1 {
		return ErrStartLine
	}
	m.Method = span(i, i+sp1)
	m.RURI = span(i+sp1+1, i+sp2)
	m.Version = span(i+sp2+1, eol)
	if scan(b, i, i+sp1, cToken) != i+sp1 {
		m.StartErr = ErrMethod
		return nil
	}
	if !validRURIChars(line[sp1+1 : sp2]) {
		m.StartErr = ErrRequestURI
		return nil
	}
	m.checkVersion(b)
	return nil
}

// validRURIChars checks the Request-URI's characters: a scheme letter first,
// a ':' somewhere, nothing blank, no control or non-ASCII byte.
func validRURIChars(u []byte) bool {
	if len(u) == 0 || !isAlpha(u[0]) || bytes.IndexByte(u, ':') < 0 {
		return false
	}
	end, _ := uriScan(u, 0, len(u))
	return end == len(u)
}

func (m *Msg) parseStatusLine(b []byte, i, eol int) error {
	line := b[i:eol]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return ErrStartLine
	}
	m.Version = span(i, i+sp1)
	m.checkVersion(b)
	rest := line[sp1+1:]
	d := 0
	code := 0
	for d < len(rest) && isDigit(rest[d]) && d < 4 {
		code = code*10 + int(rest[d]-'0')
		d++
	}
	switch {
	case d != 3, d < len(rest) && rest[d] != ' ', code < 100 || code > 699:
		if m.StartErr == nil {
			m.StartErr = ErrStatus
		}
		return nil
	}
	m.StatusCode = code
	if d < len(rest) {
		m.Reason = span(i+sp1+1+d+1, eol)
	} else {
		m.Reason = span(eol, eol)
	}
	return nil
}

// checkVersion validates SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT and
// sets VersionOK for 2.0.
func (m *Msg) checkVersion(b []byte) {
	v := m.Version.Bytes(b)
	ok := len(v) >= 7 && equalFold(v[:4], "sip/")
	if ok {
		dot := bytes.IndexByte(v[4:], '.')
		ok = dot > 0 && 4+dot+1 < len(v)
		if ok {
			for k, c := range v[4:] {
				if k != dot && !isDigit(c) {
					ok = false
					break
				}
			}
		}
	}
	if !ok {
		if m.StartErr == nil {
			m.StartErr = ErrVersion
		}
		return
	}
	m.VersionOK = len(v) == 7 && v[4] == '2' && v[5] == '.' && v[6] == '0'
}

// parseHeader parses the header line (with its continuation lines) that
// starts at pos and returns the offset of the next line.
func (m *Msg) parseHeader(b []byte, pos int) (int, error) {
	n := len(b)
	k := scan(b, pos, n, cToken)
	if k == pos {
		return 0, ErrHeaderLine
	}
	nameEnd := k
	for k < n && isWSP(b[k]) {
		k++
	}
	if k >= n || b[k] != ':' {
		return 0, ErrHeaderLine
	}
	k++
	e, err := lineEnd(b, k)
	if err != nil {
		return 0, err
	}
	if e-pos > MaxLineLen {
		return 0, ErrLineTooLong
	}
	for e+2 < n && isWSP(b[e+2]) {
		e, err = lineEnd(b, e+2)
		if err != nil {
			return 0, err
		}
		if e-pos > MaxLineLen {
			return 0, ErrLineTooLong
		}
	}
	vs, ve := k, e
	for vs < ve && isLWS(b[vs]) {
		vs++
	}
	for ve > vs && isLWS(b[ve-1]) {
		ve--
	}
	if m.NumHeaders == MaxHeaders {
		return 0, ErrTooManyHeaders
	}
	kind := kindOf(b[pos:nameEnd])
	idx := m.NumHeaders
	m.Headers[idx] = Header{Kind: kind, Name: span(pos, nameEnd), Value: span(vs, ve), Line: span(pos, e+2)}
	m.NumHeaders++
	if m.Count[kind] < 255 {
		m.Count[kind]++
	}
	firstOfKind := m.first[kind] == 0
	if firstOfKind {
		m.first[kind] = uint8(idx + 1)
	}
	value := span(vs, ve)
	switch kind {
	case KindVia:
		had := m.NumVias
		if err := splitValues(b, value, idx, m.Vias[:], &m.NumVias); err != nil {
			return 0, err
		}
		if had == 0 && m.NumVias > 0 {
			m.TopVia.Err = ParseVia(b, m.Vias[0].Span, &m.TopVia)
		}
	case KindRoute:
		had := m.NumRoutes
		if err := splitValues(b, value, idx, m.Routes[:], &m.NumRoutes); err != nil {
			return 0, err
		}
		if had == 0 && m.NumRoutes > 0 {
			m.TopRoute.Err = ParseNameAddr(b, m.Routes[0].Span, &m.TopRoute)
		}
	case KindRecordRoute:
		if err := splitValues(b, value, idx, m.RecordRoutes[:], &m.NumRecordRoutes); err != nil {
			return 0, err
		}
	case KindCallID:
		if firstOfKind {
			m.CallID = value
			if vs == ve {
				m.CallIDErr = ErrCallID
			}
		}
	case KindFrom:
		if firstOfKind {
			m.From.Err = ParseNameAddr(b, value, &m.From)
		}
	case KindTo:
		if firstOfKind {
			m.To.Err = ParseNameAddr(b, value, &m.To)
		}
	case KindCSeq:
		if firstOfKind {
			m.CSeq.Err = parseCSeq(b, value, &m.CSeq)
		}
	case KindMaxForwards:
		if firstOfKind {
			m.MaxForwards = value
			m.MaxForwardsNum, m.MaxForwardsErr = parseCapped(b[vs:ve], 256, ErrMaxForwards)
		}
	case KindContentLength:
		if firstOfKind {
			m.ContentLength, m.ContentLengthErr = parseCapped(b[vs:ve], MaxMsgLen+1, ErrContentLength)
			if m.ContentLengthErr != nil {
				m.ContentLength = -1
			}
		}
	}
	return e + 2, nil
}

// parseCapped parses 1*DIGIT, returning min(value, max).
func parseCapped(d []byte, max int, bad error) (int, error) {
	if len(d) == 0 {
		return 0, bad
	}
	v := 0
	for _, c := range d {
		if !isDigit(c) {
			return 0, bad
		}
		if v < max {
			v = v*10 + int(c-'0')
		}
	}
	if v > max {
		v = max
	}
	return v, nil
}

// parseCSeq parses CSeq = 1*DIGIT LWS Method, the number below 2^31
// (RFC 3261 §8.1.1.5).
func parseCSeq(b []byte, v Span, c *CSeq) error {
	i, e := int(v.Start), int(v.End)
	s := i
	var seq uint64
	for i < e && isDigit(b[i]) {
		seq = seq*10 + uint64(b[i]-'0')
		if seq >= 1<<31 {
			return ErrCSeq
		}
		i++
	}
	if i == s || i == e || !isLWS(b[i]) {
		return ErrCSeq
	}
	c.Num = span(s, i)
	c.Seq = uint32(seq)
	for i < e && isLWS(b[i]) {
		i++
	}
	ms := i
	for i < e && isToken(b[i]) {
		i++
	}
	if i == ms || i != e {
		return ErrCSeq
	}
	c.Method = span(ms, e)
	return nil
}

// splitValues splits a comma-separated header value into dst[*n:]. Commas
// inside a quoted string or between < and > do not split. Blanks around a
// value are not part of it; empty elements are skipped, except that a line
// with no element at all yields one empty value (so that an empty Via or
// Route line is seen, and rejected, by whoever parses it).
func splitValues(b []byte, v Span, hdr int, dst []Value, n *int) error {
	s, e := int(v.Start), int(v.End)
	if bytes.IndexByte(b[s:e], ',') < 0 {
		// One value (the common case): the span is already trimmed.
		if *n >= len(dst) {
			return ErrTooManyValues
		}
		dst[*n] = Value{Span: v, Header: int32(hdr)}
		*n++
		return nil
	}
	start := s
	emitted := 0
	inAngle := false
	for k := s; k < e; k++ {
		if k = scan(b, k, e, cValuePlain); k == e {
			break
		}
		switch b[k] {
		case '"':
			// A quoted string (in or out of < >) runs to the next
			// unescaped quote, or to the end of the value.
			for k++; k < e && b[k] != '"'; k++ {
				if b[k] == '\\' {
					k++
				}
			}
		case '<':
			inAngle = true
		case '>':
			inAngle = false
		case ',':
			if !inAngle {
				ok, err := emitValue(b, start, k, hdr, dst, n)
				if err != nil {
					return err
				}
				if ok {
					emitted++
				}
				start = k + 1
			}
		}
	}
	ok, err := emitValue(b, start, e, hdr, dst, n)
	if err != nil {
		return err
	}
	if !ok && emitted == 0 {
		if *n >= len(dst) {
			return ErrTooManyValues
		}
		dst[*n] = Value{Span: span(s, s), Header: int32(hdr)}
		*n++
	}
	return nil
}

// emitValue appends b[a:z] without surrounding blanks to dst[*n:], unless
// it is empty; ok reports whether it did.
func emitValue(b []byte, a, z, hdr int, dst []Value, n *int) (ok bool, err error) {
	for a < z && isLWS(b[a]) {
		a++
	}
	for z > a && isLWS(b[z-1]) {
		z--
	}
	if a == z {
		return false, nil
	}
	if *n >= len(dst) {
		return false, ErrTooManyValues
	}
	dst[*n] = Value{Span: span(a, z), Header: int32(hdr)}
	*n++
	return true, nil
}
