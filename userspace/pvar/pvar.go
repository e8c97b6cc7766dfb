package pvar

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Names lists the variables, without '$', in the order errors list them.
var Names = []string{"ci", "fu", "fU", "fd", "ft", "tu", "tU", "td", "tt", "ru", "rU", "rd", "rm", "si", "sp", "du", "hdr(Name)"}

// variable is one pseudo-variable.
type variable uint8

const (
	literal variable = iota
	callID
	fromURI
	fromUser
	fromHost
	fromTag
	toURI
	toUser
	toHost
	toTag
	rURI
	rURIUser
	rURIHost
	method
	srcIP
	srcPort
	dstURI
	header
)

var byName = map[string]variable{
	"ci": callID,
	"fu": fromURI, "fU": fromUser, "fd": fromHost, "ft": fromTag,
	"tu": toURI, "tU": toUser, "td": toHost, "tt": toTag,
	"ru": rURI, "rU": rURIUser, "rd": rURIHost, "rm": method,
	"si": srcIP, "sp": srcPort, "du": dstURI,
	"hdr": header,
}

// part is a literal or a variable of a parsed template.
type part struct {
	v   variable
	lit string // the literal text; for header, the name folded to lower case
	// kind is header's sipmsg.Kind (KindOther: compared by name).
	kind sipmsg.Kind
}

// Template is a parsed template. The zero Template is the empty one: it
// expands to nothing.
type Template struct {
	text  string
	parts []part
}

// String returns the template as written.
func (t Template) String() string { return t.text }

// IsEmpty reports whether t expands to nothing whatever the message.
func (t Template) IsEmpty() bool { return len(t.parts) == 0 }

// HasVariable reports whether t holds at least one variable.
func (t Template) HasVariable() bool {
	for _, p := range t.parts {
		if p.v != literal {
			return true
		}
	}
	return false
}

// UsesDestination reports whether t reads $du, which only a message whose
// destination is chosen has.
func (t Template) UsesDestination() bool {
	for _, p := range t.parts {
		if p.v == dstURI {
			return true
		}
	}
	return false
}

// Parse parses a template; "" is the empty template. Errors quote the
// template and name what is wrong.
func Parse(s string) (Template, error) {
	t := Template{text: s}
	lit := strings.Builder{}
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			i++
			continue
		}
		start := i
		i++
		paren := i < len(s) && s[i] == '('
		if paren {
			i++
		}
		j := i
		for j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
			j++
		}
		name := s[i:j]
		if name == "" {
			return Template{}, fmt.Errorf("%q: '$' at offset %d is not followed by a variable name", s, start)
		}
		v, ok := byName[name]
		if !ok {
			return Template{}, fmt.Errorf("%q: unknown variable $%s (allowed: $%s)", s, name, strings.Join(Names, " $"))
		}
		p := part{v: v}
		if v == header {
			hdr, next, err := headerName(s, j)
			if err != nil {
				return Template{}, err
			}
			p.lit, p.kind = strings.ToLower(hdr), sipmsg.KindOf([]byte(hdr))
			j = next
		}
		if paren {
			if j >= len(s) || s[j] != ')' {
				return Template{}, fmt.Errorf("%q: $(%s must close with ')' (transformations are not supported)", s, name)
			}
			j++
		} else if j < len(s) && strings.IndexByte("([{", s[j]) >= 0 {
			pair := map[byte]string{'(': "(...)", '[': "[...]", '{': "{...}"}[s[j]]
			return Template{}, fmt.Errorf("%q: $%s takes no %s: indexes and transformations are not supported", s, name, pair)
		}
		flush()
		t.parts = append(t.parts, p)
		i = j
	}
	flush()
	return t, nil
}

// headerName reads $hdr's "(Name)" at s[i:]: a header name (an RFC 3261
// token). It returns the name and the offset after ')'.
func headerName(s string, i int) (string, int, error) {
	if i >= len(s) || s[i] != '(' {
		return "", 0, fmt.Errorf("%q: $hdr needs a header name: $hdr(Name)", s)
	}
	end := strings.IndexByte(s[i:], ')')
	if end < 0 {
		return "", 0, fmt.Errorf("%q: $hdr( must close with ')'", s)
	}
	name := s[i+1 : i+end]
	if name == "" || !sipmsg.IsToken(name) {
		return "", 0, fmt.Errorf("%q: $hdr(%s): %q is not a header name", s, name, name)
	}
	return name, i + end + 1, nil
}

// Input is what a template reads: the message, where it came from and
// where it goes.
type Input struct {
	// Buf holds the message Msg was parsed from.
	Buf []byte
	Msg *sipmsg.Msg
	// Src is the address the message came from ($si, $sp).
	Src netip.AddrPort
	// DstURI is the URI of the destination the message is forwarded to
	// ($du); "" when none was chosen.
	DstURI string
}

// Errors Append returns when a variable reads a field that is present but
// does not parse. A field that is absent expands to nothing.
var (
	ErrBadFrom = errors.New("pvar: From does not parse")
	ErrBadTo   = errors.New("pvar: To does not parse")
	ErrBadRURI = errors.New("pvar: Request-URI does not parse")
)

// Append appends the expansion of t over in to dst, up to dst's capacity:
// a longer expansion is cut there, so that Append never allocates. On an
// error it returns what it appended before it.
func (t Template) Append(dst []byte, in *Input) ([]byte, error) {
	m, b := in.Msg, in.Buf
	var ruri sipmsg.URI
	ruriParsed := false
	put := func(v []byte) {
		if room := cap(dst) - len(dst); len(v) > room {
			v = v[:room]
		}
		dst = append(dst, v...)
	}
	for _, p := range t.parts {
		var u *sipmsg.URI
		switch p.v {
		case literal:
			if room := cap(dst) - len(dst); len(p.lit) > room {
				dst = append(dst, p.lit[:room]...)
			} else {
				dst = append(dst, p.lit...)
			}
			continue
		case callID:
			put(m.CallID.Bytes(b))
			continue
		case method:
			if m.IsRequest {
				put(m.Method.Bytes(b))
			} else {
				put(m.CSeq.Method.Bytes(b))
			}
			continue
		case srcIP:
			var ip [64]byte
			put(in.Src.Addr().AppendTo(ip[:0]))
			continue
		case srcPort:
			var d [8]byte
			put(strconv.AppendUint(d[:0], uint64(in.Src.Port()), 10))
			continue
		case dstURI:
			if room := cap(dst) - len(dst); len(in.DstURI) > room {
				dst = append(dst, in.DstURI[:room]...)
			} else {
				dst = append(dst, in.DstURI...)
			}
			continue
		case header:
			put(headerValue(m, b, &p))
			continue
		case fromTag:
			if m.From.Err != nil {
				return dst, ErrBadFrom
			}
			if m.From.HasTag {
				put(m.From.Tag.Bytes(b))
			}
			continue
		case toTag:
			if m.To.Err != nil {
				return dst, ErrBadTo
			}
			if m.To.HasTag {
				put(m.To.Tag.Bytes(b))
			}
			continue
		case fromURI, fromUser, fromHost:
			if m.From.Err != nil {
				return dst, ErrBadFrom
			}
			u = &m.From.URI
		case toURI, toUser, toHost:
			if m.To.Err != nil {
				return dst, ErrBadTo
			}
			u = &m.To.URI
		case rURI, rURIUser, rURIHost:
			if !m.IsRequest {
				continue // a reply has no Request-URI
			}
			if !ruriParsed {
				if sipmsg.ParseURI(b, m.RURI, &ruri) != nil {
					return dst, ErrBadRURI
				}
				ruriParsed = true
			}
			u = &ruri
		}
		switch p.v {
		case fromURI, toURI, rURI:
			put(u.Whole.Bytes(b))
		case fromUser, toUser, rURIUser:
			if u.SIP {
				put(u.User.Bytes(b))
			} else {
				put(u.Opaque.Bytes(b))
			}
		default:
			put(u.Host.Bytes(b))
		}
	}
	return dst, nil
}

// headerValue is the value of the first header p names, nil when there is
// none.
func headerValue(m *sipmsg.Msg, b []byte, p *part) []byte {
	if p.kind != sipmsg.KindOther {
		h, ok := m.First(p.kind)
		if !ok {
			return nil
		}
		return h.Value.Bytes(b)
	}
	for i := 0; i < m.NumHeaders; i++ {
		h := &m.Headers[i]
		if h.Kind == sipmsg.KindOther && sipmsg.EqualFold(h.Name.Bytes(b), p.lit) {
			return h.Value.Bytes(b)
		}
	}
	return nil
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
