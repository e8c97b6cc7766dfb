package sipproxy

import (
	"net/netip"
	"strings"
	"testing"
)

// crlf turns a message written with LF into wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

var (
	testLocal = netip.MustParseAddrPort("192.0.2.10:5060")
	testSrc   = netip.MustParseAddrPort("198.51.100.7:5060")
)

// testForwarder is a Forwarder with one listener, testLocal, and rule.
func testForwarder(t testing.TB, rule Rule, opt Options) *Forwarder {
	t.Helper()
	f, err := NewForwarder(fixtureDispatcher(t), []Listener{{Name: "test", Addr: testLocal, Rule: rule}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// testRequest is an OPTIONS with extra headers after Via.
func testRequest(method, extra string) []byte {
	return crlf(method + " sip:bob@10.0.0.11:5060 SIP/2.0\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtest1\n" +
		extra +
		"To: <sip:bob@biloxi.example.com>\n" +
		"From: <sip:alice@atlanta.example.com>;tag=1\n" +
		"Call-ID: test-call-1\n" +
		"CSeq: 1 " + method + "\n" +
		"Content-Length: 0\n\n")
}
