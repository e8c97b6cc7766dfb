// Package sipmsg is a zero-allocation scanner for raw SIP messages: the Go
// twin of bpf/parse_sip.h. Parse does not copy anything out of the message;
// it fills a Msg with Spans (byte offsets into the caller's buffer) for the
// start line, every header line (name, value, whole line with its CRLF), the
// values of the comma-separated headers the forwarding contract edits (Via,
// Route, Record-Route), and the fields the contract reads: the top Via with
// its parameters, Call-ID, From and To (URI and tag), CSeq, Max-Forwards,
// Content-Length and the body offset.
//
// Two kinds of problems are told apart. A message that cannot be framed (no
// start line, a header line without a colon, no empty line after the
// headers, a hard limit exceeded) makes Parse return an error. A field that
// is present but malformed (a Via that does not parse, a From with a bad
// URI, a CSeq that is not a number) is recorded in that field's Err and
// Parse goes on, so that a proxy can still answer 400 to a request it could
// frame, and can ignore the fields its rules do not read. Parse never panics,
// whatever the input; FuzzParse holds it to that.
//
// Spans are valid only as long as the buffer they were taken from is not
// modified. A Msg is large (a few KiB, the header table is a fixed array)
// and is meant to live on the caller's stack or be reused.
package sipmsg
