package sipproxy

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// FuzzProcess: the slow path's handling of one datagram. Process never
// panics and never writes its input; it decides one action (so at most one
// datagram leaves: the forwarded message or the reply); it never answers an
// ACK or a response, and what it answers gets a reply that can be built
// (issue 7 item 6); whatever it forwards re-parses with sipmsg, keeps
// Content-Length equal to the body length and, for a request, carries our
// Via on top; a forwarded response never goes to an unroutable or
// reflecting next hop (issue 7 item 7). Seeds: the fixtures and the
// RFC 4475 torture messages. `make test` runs it for a few seconds, `make
// fuzz` for FUZZTIME.
func FuzzProcess(f *testing.F) {
	for _, c := range loadFixtures(f) {
		f.Add(c.In, uint16(c.Src.Port()), false)
	}
	files, _ := filepath.Glob("../sipmsg/testdata/torture/*/*.dat")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b, uint16(5060), true)
		}
	}
	d := fixtureDispatcher(f)
	l := Listener{Addr: testLocal, Rule: Rule{SetID: 2, RecordRoute: true}}
	fwd, err := NewForwarder(d, []Listener{l}, Options{OwnsTransaction: func(b, s []byte, ack bool) bool { return len(b)%7 == 3 }})
	if err != nil {
		f.Fatal(err)
	}
	adv := []byte(advText(l))
	f.Fuzz(func(t *testing.T, in []byte, port uint16, v6 bool) {
		src := netip.AddrPortFrom(testSrc.Addr(), port)
		if v6 {
			src = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::7"), port)
		}
		keep := append([]byte(nil), in...)
		res := fwd.Process(in, src, testLocal, nil)
		if !bytes.Equal(in, keep) {
			t.Fatal("Process modified its input")
		}
		switch res.Action {
		case ActionForward, ActionReply, ActionDrop, ActionHandoff:
		default:
			t.Fatalf("action %d", res.Action)
		}
		var im sipmsg.Msg
		parsed := sipmsg.Parse(in, &im) == nil
		if res.Action == ActionReply {
			if !parsed || !im.IsRequest || string(im.Method.Bytes(in)) == "ACK" {
				t.Fatalf("a reply (%d %s) to something that is no request or an ACK\nin: %q", res.Code, res.Reason, in)
			}
			if res.Out != nil {
				t.Fatalf("a reply and forwarded bytes at once")
			}
			if _, ok := appendReply(nil, in, &im, src, res.Code, res.Reason); !ok {
				t.Fatalf("reply %d %s decided but cannot be built\nin: %q", res.Code, res.Reason, in)
			}
		}
		if res.Action == ActionForward && parsed && !im.IsRequest && fwd.nextHop(&fwd.listeners[0], res.Dst) != nextHopOK {
			t.Fatalf("response forwarded to %s\nin: %q", res.Dst, in)
		}
		if res.Action != ActionForward && res.Out == nil {
			return
		}
		var m sipmsg.Msg
		if err := sipmsg.Parse(res.Out, &m); err != nil {
			t.Fatalf("%s output does not re-parse: %v\nin:  %q\nout: %q", res.Action, err, in, res.Out)
		}
		if m.ContentLength >= 0 && m.ContentLength != len(res.Out)-m.Body {
			t.Fatalf("Content-Length %d, body %d\nout: %q", m.ContentLength, len(res.Out)-m.Body, res.Out)
		}
		if m.IsRequest && (m.TopVia.Err != nil || !bytes.Equal(m.TopVia.SentBy.Bytes(res.Out), adv)) {
			t.Fatalf("top Via is not ours\nin:  %q\nout: %q", in, res.Out)
		}
		if res.Action == ActionForward && !res.Dst.IsValid() {
			t.Fatalf("forward without a destination")
		}
	})
}
