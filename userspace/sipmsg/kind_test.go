package sipmsg

import (
	"strings"
	"testing"
)

// TestKindOf checks kindOf, and so its hash table, against every name it
// knows, in any case, and against names it must not know.
func TestKindOf(t *testing.T) {
	compact := map[string]Kind{
		"v": KindVia, "i": KindCallID, "f": KindFrom, "t": KindTo, "m": KindContact,
		"l": KindContentLength, "k": KindSupported, "c": KindContentType, "s": KindSubject,
		"e": KindContentEncoding, "o": KindEvent, "u": KindAllowEvents, "r": KindReferTo,
		"b": KindReferredBy, "x": KindSessionExpires, "a": KindAcceptContact,
		"j": KindRejectContact, "d": KindRequestDisposition, "y": KindIdentity, "n": KindIdentityInfo,
	}
	seen := map[Kind]bool{}
	for _, ln := range longNames {
		if seen[ln.kind] {
			t.Errorf("%s: kind %d listed twice", ln.name, ln.kind)
		}
		seen[ln.kind] = true
		for _, name := range []string{ln.name, strings.ToUpper(ln.name), strings.ToUpper(ln.name[:1]) + ln.name[1:]} {
			if got := kindOf([]byte(name)); got != ln.kind {
				t.Errorf("kindOf(%q) = %d, want %d (hash slot shared?)", name, got, ln.kind)
			}
		}
	}
	if len(seen) != int(numKinds)-1 {
		t.Errorf("%d long names, want one per Kind (%d)", len(seen), numKinds-1)
	}
	for name, k := range compact {
		if kindOf([]byte(name)) != k || kindOf([]byte(strings.ToUpper(name))) != k {
			t.Errorf("compact %q: want %d", name, k)
		}
	}
	for _, name := range []string{"", "g", "_", "~", "Allow", "User-Agent", "tO_", "vias", "call_id", "cseq-", "X-Via",
		"max_forwards", "ROUTE_", "contact1", "content-lengtH2"} {
		if k, ok := compact[strings.ToLower(name)]; ok {
			_ = k
			continue
		}
		if got := kindOf([]byte(name)); got != KindOther {
			t.Errorf("kindOf(%q) = %d, want KindOther", name, got)
		}
	}
}

// TestKindOfExported: KindOf takes any bytes; a name that is not a token
// is KindOther, never a Kind its hash slot happens to hold.
func TestKindOfExported(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Kind
	}{
		{"From", KindFrom}, {"f", KindFrom}, {"CALL-ID", KindCallID}, {"i", KindCallID},
		{"X-Custom", KindOther}, {"", KindOther}, {"Fr m", KindOther}, {"t\x00", KindOther},
	} {
		if got := KindOf([]byte(tc.name)); got != tc.want {
			t.Errorf("KindOf(%q) = %d, want %d", tc.name, got, tc.want)
		}
	}
}
