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
	// textKeys holds what the per-source and per-set counts key on, as
	// bytes: the set (4 bytes, big-endian; noSet when none), then the
	// INVITE's source address (none, 4 or 16 bytes). In the arena, not in
	// fields: 6 to 22 bytes of arena and 2 of ends cost less than 24 of
	// fields, which would take a slot past its 88 bytes.
	textKeys
	numTexts
)

// noSet is the set of textKeys when the INVITE was dispatched to none.
const noSet = math.MaxUint32

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
	state                State
}

// keysText encodes into b an INVITE's set (-1: none) and source address
// (invalid: unknown) as textKeys holds them.
func keysText(b *[20]byte, set int, src netip.Addr) []byte {
	v := uint32(noSet)
	if set >= 0 && set <= math.MaxInt32 {
		v = uint32(set)
	}
	out := binary.BigEndian.AppendUint32(b[:0], v)
	src = src.Unmap().WithZone("")
	switch {
	case src.Is4():
		a := src.As4()
		out = append(out, a[:]...)
	case src.Is6():
		a := src.As16()
		out = append(out, a[:]...)
	}
	return out
}

// setID is the set the record's INVITE was dispatched to, -1 when none.
func (r *record) setID() int32 {
	k := r.text(textKeys)
	if len(k) < 4 {
		return -1
	}
	v := uint32(k[0])<<24 | uint32(k[1])<<16 | uint32(k[2])<<8 | uint32(k[3])
	if v > math.MaxInt32 {
		return -1
	}
	return int32(v)
}

// source is the record's source address; invalid when unknown.
func (r *record) source() netip.Addr {
	k := r.text(textKeys)
	switch len(k) {
	case 4 + 4:
		var a [4]byte
		copy(a[:], k[4:])
		return netip.AddrFrom4(a)
	case 4 + 16:
		var a [16]byte
		copy(a[:], k[4:])
		return netip.AddrFrom16(a)
	}
	return netip.Addr{}
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
