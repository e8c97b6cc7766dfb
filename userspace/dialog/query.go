package dialog

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
)

// Field is the record field a query compares.
type Field uint8

// The fields of dlgs_count and dlgs.get.
const (
	FieldAny  Field = iota // Count: every live dialog; Find: as FieldSrc (Kamailio)
	FieldSrc               // the src template's value
	FieldDst               // the dst template's value
	FieldData              // the data template's value
)

var fieldNames = []string{"any", "src", "dst", "data"}

func (f Field) String() string {
	if int(f) < len(fieldNames) {
		return fieldNames[f]
	}
	return "unknown"
}

// Op is how a query compares a field with its value.
type Op uint8

// The operators of dlgs_count and dlgs.get.
const (
	OpEq Op = iota // equal
	OpNe           // not equal
	OpRe           // POSIX-like regular expression, case-insensitive, unanchored
	OpSw           // starts with
	OpFm           // fnmatch glob without flags: * ? [...] [!...], \ escapes; '*' matches '/'
)

var opNames = []string{"eq", "ne", "re", "sw", "fm"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "unknown"
}

// Query selects records by one field; build it with ParseQuery.
type Query struct {
	Field Field
	Op    Op
	Value string
	re    *regexp.Regexp // OpRe and OpFm, compiled
}

// ParseQuery's errors for a field or an operator it does not know; any
// other error is about the value (a regular expression or glob that does
// not compile).
var (
	ErrUnknownField = errors.New("unknown field")
	ErrUnknownOp    = errors.New("unknown operator")
)

// ParseQuery builds a query from dlgs_count's three strings, compiling the
// regular expression or glob once.
func ParseQuery(field, op, value string) (Query, error) {
	q := Query{Value: value}
	f, ok := lookup(fieldNames, field)
	if !ok {
		return Query{}, fmt.Errorf("dlgs query: %w %q (want %s)", ErrUnknownField, field, strings.Join(fieldNames, ", "))
	}
	o, ok := lookup(opNames, op)
	if !ok {
		return Query{}, fmt.Errorf("dlgs query: %w %q (want %s)", ErrUnknownOp, op, strings.Join(opNames, ", "))
	}
	q.Field, q.Op = Field(f), Op(o)
	var err error
	switch q.Op {
	case OpRe:
		if q.re, err = regexp.Compile("(?i)" + value); err != nil {
			// The error of the value as given: the (?i) prefix would show
			// in its text ("missing closing ): `(?i)(`").
			if _, e := regexp.Compile(value); e != nil {
				err = e
			}
			return Query{}, fmt.Errorf("dlgs query: bad regular expression %q: %w", value, err)
		}
	case OpFm:
		if q.re, err = globRegexp(value); err != nil {
			return Query{}, fmt.Errorf("dlgs query: bad glob %q: %w", value, err)
		}
	}
	return q, nil
}

func lookup(names []string, s string) (int, bool) {
	for i, n := range names {
		if strings.EqualFold(n, s) {
			return i, true
		}
	}
	return 0, false
}

// globRegexp translates an fnmatch pattern (no flags) into an anchored
// regular expression.
func globRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			if i+1 == len(p) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		case '[':
			j := i + 1
			if j < len(p) && (p[j] == '!' || p[j] == '^') {
				j++
			}
			if j < len(p) && p[j] == ']' { // a leading ] is a member
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j == len(p) {
				return nil, fmt.Errorf("unclosed [ at byte %d", i)
			}
			class := p[i+1 : j]
			b.WriteByte('[')
			if class[0] == '!' || class[0] == '^' {
				b.WriteByte('^')
				class = class[1:]
			}
			for k := 0; k < len(class); k++ {
				if c := class[k]; c == '\\' || c == '[' || c == ']' || c == '^' {
					b.WriteByte('\\')
				}
				b.WriteByte(class[k])
			}
			b.WriteByte(']')
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString(`$`)
	return regexp.Compile(b.String())
}

// field is the text q compares; FieldAny compares src (Kamailio's get).
func (q *Query) field(r *record) string {
	switch q.Field {
	case FieldDst:
		return r.text(textDst)
	case FieldData:
		return r.text(textData)
	default:
		return r.text(textSrc)
	}
}

func (q *Query) match(r *record) bool {
	s := q.field(r)
	switch q.Op {
	case OpEq:
		return s == q.Value
	case OpNe:
		return s != q.Value
	case OpSw:
		return strings.HasPrefix(s, q.Value)
	case OpRe, OpFm:
		return q.re != nil && q.re.MatchString(s)
	}
	return false
}

// Count returns how many live dialogs (not TERMINATED or NOTANSWERED) match
// q: the true number, 0 when none. FieldAny counts every live dialog,
// whatever the operator and value (Kamailio).
func (t *Tracker) Count(q Query) int {
	if q.Field == FieldAny {
		t.mu.Lock()
		defer t.mu.Unlock()
		n := uint64(0)
		for s := Init; s.live(); s++ {
			n += t.stats.Active[s]
		}
		return int(n)
	}
	n := 0
	t.scan(func(_ uint32, r *record) bool {
		if r.state.live() && q.match(r) {
			n++
		}
		return true
	})
	return n
}

// Find returns up to max records matching q (all when max ≤ 0), finished
// ones included, in table order: dlgs.get (max 1) and dlgs.getall.
// FieldAny matches as FieldSrc (Kamailio).
func (t *Tracker) Find(q Query, max int) []Record {
	return t.collect(max, q.match)
}

// List returns up to max records (all when max ≤ 0), in table order.
func (t *Tracker) List(max int) []Record {
	return t.collect(max, func(*record) bool { return true })
}

func (t *Tracker) collect(max int, keep func(*record) bool) []Record {
	var out []Record
	t.scan(func(_ uint32, r *record) bool {
		if keep(r) {
			out = append(out, r.export(t.ruidPrefix))
		}
		return max <= 0 || len(out) < max
	})
	return out
}

// TagsCount returns how many live dialogs carry tag.
func (t *Tracker) TagsCount(tag string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tags[tag]
}

// SourceCount returns how many live dialogs were created by an INVITE
// from addr (Message.Source), in O(1).
func (t *Tracker) SourceCount(addr netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	// keyOf drops the zone: As16 ignores it.
	k, ok := keyOf(addr)
	if !ok {
		return 0
	}
	return int(t.sources[k])
}

// SetCount returns how many live dialogs were created by an INVITE
// dispatched to set (Message.Set), in O(1).
func (t *Tracker) SetCount(set int) int {
	if set < 0 || set > math.MaxInt32 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sets[int32(set)]
}

// Sources calls fn for every source address with live dialogs and their
// count, under the lock (fn must be quick and must not call the tracker):
// the agent rebuilds its limit verdicts from it when the limits change.
func (t *Tracker) Sources(fn func(addr netip.Addr, n int)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, n := range t.sources {
		fn(netip.AddrFrom16(k).Unmap(), int(n))
	}
}

// Full reports whether a new INVITE would be refused a record (Stats
// Refused): at MaxRecords with no INIT or PROGRESS record to shed.
func (t *Tracker) Full() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tab.used >= t.cfg.MaxRecords && t.tab.setupHead == 0
}

// Retransmits reports whether an INVITE of this Call-ID hash and top Via
// branch retransmits one held already (a record of that branch), so that
// it adds no dialog. Admission lets these through whatever the limits. A
// new branch of a live Call-ID without To tag is not one: it may be a new
// dialog at the destination (a parallel fork, or a caller reusing its
// Call-ID), which the limits judge as any other attempt.
func (t *Tracker) Retransmits(hash uint64, branch string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := *t.tab.bucket(hash); i != 0; {
		r := t.tab.at(i)
		if r.hash == hash && r.text(textBranch) == branch {
			return true
		}
		i = r.next
	}
	return false
}

// Has reports whether the tracker holds a record of this Call-ID hash,
// whatever its state.
func (t *Tracker) Has(hash uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tab.newest(hash) != 0
}
