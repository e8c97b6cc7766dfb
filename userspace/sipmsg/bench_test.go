package sipmsg

import "testing"

// BenchmarkParse parses an INVITE with SDP of about 800 bytes.
func BenchmarkParse(b *testing.B) {
	msg := crlf(invite[:len(invite)-len("a=rtpmap:0 PCMU/8000\n")] +
		"a=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\na=ptime:20\na=sendrecv\n")
	var m Msg
	if err := Parse(msg, &m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(msg, &m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(msg)), "msg-bytes")
}

// BenchmarkParseFreshMsg includes zeroing a new Msg, as a caller that
// declares one per message pays.
func BenchmarkParseFreshMsg(b *testing.B) {
	msg := crlf(invite)
	b.ReportAllocs()
	for b.Loop() {
		var m Msg
		if err := Parse(msg, &m); err != nil {
			b.Fatal(err)
		}
	}
}
