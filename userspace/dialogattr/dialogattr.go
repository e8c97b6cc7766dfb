package dialogattr

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unsafe"

	"github.com/sipedge/sipedge/userspace/pvar"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Lengths at which expansions are cut: a record's fields and tags are
// bounded whatever the INVITE carries.
const (
	MaxFieldLen = 512 // src, dst, data
	MaxTagLen   = 128
)

// Rule is one tag rule as configured. A rule applies to an INVITE that
// meets every condition it sets; one with none applies to every INVITE.
type Rule struct {
	// Tag is a template; a tag that expands to nothing is not applied.
	Tag string
	// Remove removes the tag instead of adding it.
	Remove bool
	// Source is an IP prefix ("10.0.0.0/8") or one IP the INVITE must come
	// from; "" any (ParseSource).
	Source string
	// Listener is the name of the listener the INVITE must arrive on; ""
	// any.
	Listener string
	// Set is the destination set the INVITE must be dispatched to; -1 any.
	Set int
	// Header names a header the INVITE must carry (long or compact form,
	// any case); with Value, a regular expression (RE2, unanchored) one
	// header of that name must match. "" no header condition.
	Header string
	Value  string
}

// Config is the dialogs section's part that Attrs compiles.
type Config struct {
	Src, Dst, Data string // templates
	Rules          []Rule
}

// Attrs is a compiled Config; safe for concurrent use.
type Attrs struct {
	src, dst, data pvar.Template
	rules          []rule
}

type rule struct {
	tag      pvar.Template
	remove   bool
	source   netip.Prefix // invalid: any
	listener string
	set      int
	hasHdr   bool
	hdrKind  sipmsg.Kind // KindOther: by name
	hdrName  string      // lower case
	value    *regexp.Regexp
}

// ParseSource parses a rule's source: an IP prefix, or one IP (a prefix
// of its full length). IPv4-mapped IPv6 is taken as IPv4.
func ParseSource(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is neither an IP prefix (10.0.0.0/8) nor an IP", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP prefix such as 10.0.0.0/8 or 2001:db8::/32", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96 spans more than IPv4", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: write %s", s, p.Masked())
	}
	return p, nil
}

// CheckHeaderName checks a rule's header name: an RFC 3261 token.
func CheckHeaderName(s string) error {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || strings.IndexByte("-.!%*_+`'~", b) >= 0) {
			return fmt.Errorf("%q is not a header name", s)
		}
	}
	if s == "" {
		return fmt.Errorf("empty header name")
	}
	return nil
}

// New compiles cfg. Errors name the template or rule (by index) at fault;
// the config package checks the same things with file and line first.
func New(cfg Config) (*Attrs, error) {
	a := &Attrs{}
	var err error
	for _, f := range []struct {
		name string
		text string
		dst  *pvar.Template
	}{{"src", cfg.Src, &a.src}, {"dst", cfg.Dst, &a.dst}, {"data", cfg.Data, &a.data}} {
		if *f.dst, err = pvar.Parse(f.text); err != nil {
			return nil, fmt.Errorf("dialogs %s: %w", f.name, err)
		}
	}
	for i, r := range cfg.Rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("dialogs tag rule %d: %w", i, err)
		}
		a.rules = append(a.rules, cr)
	}
	return a, nil
}

func compileRule(r Rule) (rule, error) {
	cr := rule{remove: r.Remove, listener: r.Listener, set: r.Set}
	var err error
	if r.Tag == "" {
		return rule{}, fmt.Errorf("no tag")
	}
	if cr.tag, err = pvar.Parse(r.Tag); err != nil {
		return rule{}, fmt.Errorf("tag: %w", err)
	}
	if r.Source != "" {
		if cr.source, err = ParseSource(r.Source); err != nil {
			return rule{}, fmt.Errorf("source: %w", err)
		}
	}
	if r.Set < -1 {
		return rule{}, fmt.Errorf("set %d: want a set id, or -1 for any", r.Set)
	}
	switch {
	case r.Header != "":
		if err := CheckHeaderName(r.Header); err != nil {
			return rule{}, fmt.Errorf("header: %w", err)
		}
		cr.hasHdr = true
		cr.hdrKind = sipmsg.KindOf([]byte(r.Header))
		cr.hdrName = strings.ToLower(r.Header)
		if r.Value != "" {
			if cr.value, err = regexp.Compile(r.Value); err != nil {
				return rule{}, fmt.Errorf("value: %w", err)
			}
		}
	case r.Value != "":
		return rule{}, fmt.Errorf("value without header: name the header whose value it matches")
	}
	return cr, nil
}

// Input is one INVITE and how it was handled.
type Input struct {
	// Buf holds the message Msg was parsed from.
	Buf []byte
	Msg *sipmsg.Msg
	// Src is the address it came from; Listener the name of the listener
	// it arrived on.
	Src      netip.AddrPort
	Listener string
	// Set is the destination set it was dispatched to, -1 when none (a
	// loose-routed request); DstURI the destination's URI, "" when none.
	Set    int
	DstURI string
}

// Result is what Eval computed. Its strings alias its own buffer: they are
// valid until the next Eval into the same Result.
type Result struct {
	Src, Dst, Data string
	// Add and Remove are the tags to add to and remove from the dialog,
	// each once, none in both: rules apply in order, a later one undoing
	// an earlier one's tag.
	Add, Remove []string
	buf         []byte
}

// Eval expands the templates and applies the rules to in, into r. A
// template that reads a header present but unparsable (a bad From URI)
// leaves what it expanded before and Eval returns the first such error,
// naming the field; the rest is still computed.
func (a *Attrs) Eval(in *Input, r *Result) error {
	if need := 3*MaxFieldLen + len(a.rules)*MaxTagLen; cap(r.buf) < need {
		r.buf = make([]byte, 0, need)
	}
	r.buf = r.buf[:0]
	r.Add, r.Remove = r.Add[:0], r.Remove[:0]
	src := in.Src.Addr().Unmap()
	pin := pvar.Input{Buf: in.Buf, Msg: in.Msg, Src: netip.AddrPortFrom(src, in.Src.Port()), DstURI: in.DstURI}
	var first error
	note := func(what string, err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("dialogs %s: %w", what, err)
		}
	}
	var err error
	r.Src, err = r.expand(&a.src, &pin, MaxFieldLen)
	note("src", err)
	r.Dst, err = r.expand(&a.dst, &pin, MaxFieldLen)
	note("dst", err)
	r.Data, err = r.expand(&a.data, &pin, MaxFieldLen)
	note("data", err)
	for i := range a.rules {
		ru := &a.rules[i]
		if !ru.matches(in, src) {
			continue
		}
		tag, err := r.expand(&ru.tag, &pin, MaxTagLen)
		note("tag", err)
		if tag == "" || err != nil {
			continue
		}
		if ru.remove {
			r.Add = without(r.Add, tag)
			r.Remove = with(r.Remove, tag)
		} else {
			r.Remove = without(r.Remove, tag)
			r.Add = with(r.Add, tag)
		}
	}
	return first
}

// expand appends t's expansion, at most max bytes, to r.buf and returns it
// as a string aliasing r.buf. r.buf never grows here (Eval sized it), so
// the strings returned before stay put.
func (r *Result) expand(t *pvar.Template, in *pvar.Input, max int) (string, error) {
	start := len(r.buf)
	out, err := t.Append(r.buf[start:start:start+max], in)
	r.buf = r.buf[:start+len(out)]
	if len(out) == 0 {
		return "", err
	}
	return unsafe.String(&out[0], len(out)), err
}

func (ru *rule) matches(in *Input, src netip.Addr) bool {
	switch {
	case ru.source.IsValid() && !ru.source.Contains(src):
		return false
	case ru.listener != "" && ru.listener != in.Listener:
		return false
	case ru.set >= 0 && ru.set != in.Set:
		return false
	case ru.hasHdr:
		return ru.headerMatches(in.Msg, in.Buf)
	}
	return true
}

// headerMatches reports whether a header of the rule's name is present
// and, with a value expression, whether one such header matches it.
func (ru *rule) headerMatches(m *sipmsg.Msg, b []byte) bool {
	if ru.hdrKind != sipmsg.KindOther && !m.Has(ru.hdrKind) {
		return false
	}
	for i := 0; i < m.NumHeaders; i++ {
		h := &m.Headers[i]
		if h.Kind != ru.hdrKind || ru.hdrKind == sipmsg.KindOther && !sipmsg.EqualFold(h.Name.Bytes(b), ru.hdrName) {
			continue
		}
		if ru.value == nil || ru.value.Match(h.Value.Bytes(b)) {
			return true
		}
	}
	return false
}

func with(tags []string, tag string) []string {
	for _, t := range tags {
		if t == tag {
			return tags
		}
	}
	return append(tags, tag)
}

func without(tags []string, tag string) []string {
	for i, t := range tags {
		if t == tag {
			return append(tags[:i], tags[i+1:]...)
		}
	}
	return tags
}
