package dialog

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// Record is a copy of one dialog record, as queries return it.
type Record struct {
	Src, Dst, Data       string
	RUID                 string // unique record id (Kamailio's ruid)
	CallID, Branch       string
	FromTag, ToTag       string
	Init, Answer, Finish time.Time // zero when not reached
	State                State
	Tags                 []string
}

// The text fields of a record, in the order they sit in its arena.
const (
	textSrc = iota
	textDst
	textData
	textCallID
	textBranch
	textFromTag
	textToTag
	numTexts
)

// maxToTag is the longest To tag a 2xx teaches a record, plus one
// (Kamailio: "under 127 characters").
const maxToTag = 127

// record is one slot of the table. Its strings live in arena: the text
// fields back to back, ends[i] the end of field i, then the tags, each
// prefixed with its length as a uvarint. The arena is immutable: a change
// (a learnt To tag, a tag added) builds a new one, so that the strings a
// query returned stay valid.
type record struct {
	hash  uint64 // Call-ID hash, the match key
	seq   uint64 // creation number, > 0; 0 marks a free slot
	arena string
	// Unix nanoseconds; 0 when not reached.
	init, answer, finish int64
	ends                 [numTexts]uint16
	next                 uint32 // next record of the bucket chain, or next free slot
	// Neighbours in the setup list (INIT/PROGRESS records in creation order).
	setupPrev, setupNext uint32
	// The INVITE's source address and set, the keys of the tracker's
	// per-source and per-set counts: 16 bytes and a length (0: unknown, 4
	// or 16) rather than a netip.Addr, whose zone pointer would take 8 more.
	set    int32 // -1: none
	src    [16]byte
	srcLen uint8
	state  State
}

// source is the record's source address; invalid when unknown.
func (r *record) source() netip.Addr {
	switch r.srcLen {
	case 4:
		return netip.AddrFrom4([4]byte(r.src[:4]))
	case 16:
		return netip.AddrFrom16(r.src)
	}
	return netip.Addr{}
}

func (r *record) setSource(a netip.Addr) {
	a = a.Unmap().WithZone("")
	switch {
	case a.Is4():
		r.srcLen = 4
		b := a.As4()
		copy(r.src[:], b[:])
	case a.Is6():
		r.srcLen = 16
		r.src = a.As16()
	default:
		r.srcLen = 0
	}
}

func (r *record) text(i int) string {
	start := 0
	if i > 0 {
		start = int(r.ends[i-1])
	}
	return r.arena[start:r.ends[i]]
}

// tagsText is the tag section of the arena.
func (r *record) tagsText() string { return r.arena[r.ends[numTexts-1]:] }

// eachTag calls fn with every tag of the record, in the order added.
func (r *record) eachTag(fn func(tag string)) {
	for s := r.tagsText(); s != ""; {
		tag, rest := nextTag(s)
		fn(tag)
		s = rest
	}
}

// nextTag splits the first tag off an encoded tag section. The section is
// built only by appendTag, so it is well formed.
func nextTag(s string) (tag, rest string) {
	n, w := uvarint(s)
	return s[w : w+n], s[w+n:]
}

func uvarint(s string) (n, width int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s); i++ {
		b := s[i]
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int(x), i + 1
		}
		shift += 7
	}
	return 0, len(s)
}

func appendTag(b []byte, tag string) []byte {
	b = binary.AppendUvarint(b, uint64(len(tag)))
	return append(b, tag...)
}

// buildArena lays out texts and the encoded tag section in one string. It
// fails when the texts do not fit the uint16 offsets (a SIP message over
// UDP cannot carry that much; over TCP it could).
func buildArena(texts *[numTexts]string, tags string) (arena string, ends [numTexts]uint16, ok bool) {
	n := 0
	for i, s := range texts {
		n += len(s)
		if n > math.MaxUint16 {
			return "", ends, false
		}
		ends[i] = uint16(n)
	}
	var b strings.Builder
	b.Grow(n + len(tags))
	for _, s := range texts {
		b.WriteString(s)
	}
	b.WriteString(tags)
	return b.String(), ends, true
}

func (r *record) texts() *[numTexts]string {
	var t [numTexts]string
	for i := range t {
		t[i] = r.text(i)
	}
	return &t
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// export copies the record out for a query. Its strings share the arena,
// which is never written again.
func (r *record) export(ruidPrefix string) Record {
	rec := Record{
		Src:     r.text(textSrc),
		Dst:     r.text(textDst),
		Data:    r.text(textData),
		RUID:    fmt.Sprintf("%s%x", ruidPrefix, r.seq),
		CallID:  r.text(textCallID),
		Branch:  r.text(textBranch),
		FromTag: r.text(textFromTag),
		ToTag:   r.text(textToTag),
		Init:    unixTime(r.init),
		Answer:  unixTime(r.answer),
		Finish:  unixTime(r.finish),
		State:   r.state,
	}
	r.eachTag(func(tag string) { rec.Tags = append(rec.Tags, tag) })
	return rec
}
