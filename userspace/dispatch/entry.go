package dispatch

import (
	"fmt"
	"math"
	"strings"
)

// Entry is one destination as a source declares it: a dispatcher.list line,
// a database row or a dispatcher.add call. Build turns entries into a Snapshot.
type Entry struct {
	SetID    int
	URI      string
	Flags    Flags
	Priority int
	// Attrs is the raw attribute string, e.g. "duid=gw1;weight=50".
	Attrs string
	// Source names where the entry came from, e.g. "dispatcher.list:12" or
	// "rpc dispatcher.add"; errors about the entry start with it.
	Source string
}

// Limits of one entry, whatever its source (docs/config.md, "Limits").
const (
	// MaxID is the largest set id and the largest priority.
	MaxID = math.MaxInt32
	// MaxURILen is the longest destination URI, in bytes.
	MaxURILen = 4096
	// MaxAttrsLen is the longest attribute string, in bytes.
	MaxAttrsLen = 4096
)

// Check reports the first way e breaks the rules every source of entries
// shares: what a dispatcher.list line can hold, so that dispatcher.add (or
// a database row) cannot load what the file would refuse. Set id and
// priority 0..MaxID, flags within FlagsMask, a URI and attrs of bounded
// length with no blank, control character or '#' (which end a field or
// start a comment in the file); attrs may not start with '#'. The URI's and
// the attributes' syntax are checked by Build.
func (e Entry) Check() error {
	switch {
	case e.SetID < 0 || e.SetID > MaxID:
		return fmt.Errorf("set id %d is out of range 0-%d", e.SetID, MaxID)
	case e.URI == "":
		return fmt.Errorf("set %d has no destination URI", e.SetID)
	case len(e.URI) > MaxURILen:
		return fmt.Errorf("URI is %d bytes long; the limit is %d", len(e.URI), MaxURILen)
	case e.Flags&^FlagsMask != 0:
		return fmt.Errorf("flags %d set bits outside mask %d (1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS, 32 no ping)", e.Flags, FlagsMask)
	case e.Priority < 0 || e.Priority > MaxID:
		return fmt.Errorf("priority %d is out of range 0-%d", e.Priority, MaxID)
	case len(e.Attrs) > MaxAttrsLen:
		return fmt.Errorf("attrs are %d bytes long; the limit is %d", len(e.Attrs), MaxAttrsLen)
	}
	if i := strings.IndexFunc(e.URI, badFieldRune); i >= 0 {
		return fmt.Errorf("URI %q holds %s", e.URI, describeRune(e.URI, i))
	}
	if i := strings.IndexFunc(e.Attrs, badAttrRune); i >= 0 {
		return fmt.Errorf("attrs %q hold %s", e.Attrs, describeRune(e.Attrs, i))
	}
	if strings.HasPrefix(e.Attrs, "#") {
		return fmt.Errorf("attrs %q start with '#', which starts a comment", e.Attrs)
	}
	return nil
}

// badAttrRune: a blank or a control character ends the attrs field.
func badAttrRune(r rune) bool { return r <= ' ' || r == 0x7f }

// badFieldRune: what ends a URI field ('#' too).
func badFieldRune(r rune) bool { return badAttrRune(r) || r == '#' }

func describeRune(s string, i int) string {
	switch b := s[i]; {
	case b == ' ' || b == '\t':
		return "a blank"
	case b == '#':
		return "'#', which starts a comment"
	default:
		return fmt.Sprintf("the control character 0x%02x", b)
	}
}
