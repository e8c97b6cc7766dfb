package sipmsg

// Span is the half-open byte range [Start, End) of a message buffer. The
// zero Span is empty; whether a field is present is told by its own flag,
// never by the Span alone.
type Span struct {
	Start, End int32
}

func span(start, end int) Span { return Span{Start: int32(start), End: int32(end)} }

// Len is the number of bytes in the span.
func (s Span) Len() int { return int(s.End - s.Start) }

// Bytes returns the span's bytes in b, or nil when the span does not lie
// inside b.
func (s Span) Bytes(b []byte) []byte {
	if s.Start < 0 || s.End < s.Start || int(s.End) > len(b) {
		return nil
	}
	return b[s.Start:s.End:s.End]
}

// String returns a copy of the span's bytes as a string (allocates; for
// tests and logs).
func (s Span) String(b []byte) string { return string(s.Bytes(b)) }
