package probe

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// FuzzHandleResponse: HandleResponse never panics, and reports a result
// only for the branch the engine issued, from the address it was sent to.
// An engine with no probe in flight never reports one.
func FuzzHandleResponse(f *testing.F) {
	_, _, _, _, req := startOneTB(f)
	ok := answer(req, 200, "OK")
	f.Add(ok, false)
	f.Add(answer(req, 503, "Service Unavailable"), false)
	f.Add(answer(req, 100, "Trying"), false)
	f.Add(ok, true)
	f.Add(flipNonce(bytes.Clone(ok)), false)
	f.Add(bytes.Replace(ok, []byte("CSeq: 10 OPTIONS"), []byte("CSeq: 10 INFO"), 1), false)
	f.Add(bytes.Replace(ok, []byte("branch="), []byte("branch=z9hG4bKpr;x="), 1), false)
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch="+BranchPrefix+"0000000000000001ffffffffffffffff\r\n\r\n"), false)
	f.Add([]byte("SIP/2.0 200 OK\r\n\r\n"), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, wrongSource bool) {
		// Nothing issued: nothing matches.
		idle, _, _, idleRes := newFakeEngine(t, Config{})
		idle.HandleResponse(data, testDst)
		if r := idleRes.get(); len(r) != 0 {
			t.Fatalf("engine with no probe reported %+v", r)
		}

		e, _, _, res, issued := startOneTB(t)
		src := testDst
		if wrongSource {
			src = netip.MustParseAddrPort("192.0.2.99:5080")
		}
		handled := e.HandleResponse(data, src)
		got := res.get()
		if len(got) == 0 {
			return
		}
		var in, q sipmsg.Msg
		if sipmsg.Parse(data, &in) != nil || sipmsg.Parse(issued, &q) != nil {
			t.Fatalf("result %+v for a message that does not parse", got)
		}
		if !handled || wrongSource || len(got) != 1 || got[0].Code != in.StatusCode ||
			in.StatusCode < 200 || in.NumVias != 1 ||
			!bytes.Equal(in.TopVia.Branch.Bytes(data), q.TopVia.Branch.Bytes(issued)) {
			t.Fatalf("results %+v (handled %v, wrong source %v) for\n%q\nissued branch %q",
				got, handled, wrongSource, data, q.TopVia.Branch.Bytes(issued))
		}
	})
}

// startOneTB is startOne for any testing.TB.
func startOneTB(tb testing.TB) (*Engine, *fakeSender, *fakeClock, *results, []byte) {
	tb.Helper()
	e, s, c, r := newFakeEngine(tb, Config{Interval: time.Second})
	if err := e.Add("dst1", Target{URI: "sip:192.0.2.10:5080", Addr: testDst, Local: testLocal}); err != nil {
		tb.Fatal(err)
	}
	for {
		w := e.step()
		if len(s.all()) > 0 {
			break
		}
		c.Add(w)
	}
	return e, s, c, r, s.all()[0].msg
}
