package agent

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// benchInvite and bench200 are a call's copied messages; the Call-ID's
// twelve digits are rewritten in place for every call.
const (
	benchInvite = "INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-bench-000000000000\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: \"Alice\" <sip:alice1234@10.1.2.3:5060>;tag=1928301774\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: bench-000000000000@10.1.2.3\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:alice1234@10.1.2.3:5060>\r\n" +
		"X-Tenant: acme\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: 0\r\n\r\n"
	bench200 = "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-bench-000000000000\r\n" +
		"From: \"Alice\" <sip:alice1234@10.1.2.3:5060>;tag=1928301774\r\n" +
		"To: <sip:bob@example.com>;tag=as83kd9\r\n" +
		"Call-ID: bench-000000000000@10.1.2.3\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:bob@10.9.9.9:5060>\r\n" +
		"Content-Length: 0\r\n\r\n"
)

// BenchmarkDialogsFastFeed times what the agent does with the fast path's
// drained events when dialog tracking is on: the adapter (feed.observeFast)
// parses the INVITE's and the 200's copies, expands the templates and tag
// rules, and the tracker applies the batch. A call is seven events (INVITE
// and its 200 with copies; 100, 180, ACK, BYE and the BYE's 200 by hash),
// in batches of 511 (the reader hands over up to 512); calls overlap in
// windows of 73, and no expiry runs, so the tracker ends holding every
// call of the run (hundreds of thousands: the B/op is its growth).
// events/s is the rate of the whole feed on one goroutine.
//
//	go test -count=3 -run '^$' -bench BenchmarkDialogsFastFeed -cpu 1 ./userspace/agent/
func BenchmarkDialogsFastFeed(b *testing.B) {
	c := config.Defaults()
	cfg := &c
	cfg.Dialogs.Enabled = true
	cfg.Dialogs.Data = "$hdr(X-Tenant)"
	cfg.Dialogs.Tags = []config.TagRule{{Tag: "$si", Set: -1}, {Tag: "acme", Set: -1, Header: "X-Tenant", Value: "^acme$"}}
	cfg.Listeners = []config.Listener{{Name: "edge", Addr: netip.MustParseAddrPort("127.0.0.1:5060")}}
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{{SetID: 1, URI: "sip:10.9.9.9:5060"}}, dispatch.Options{})
	if err != nil {
		b.Fatal(err)
	}
	dlg, err := newDialogs(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	g := newFeed(cfg, dispatch.New(snap), dlg, nil)

	// Calls in flight: a window's seven events per call fill one batch
	// (511 events), handed over before the next window rewrites the
	// messages its copies alias.
	const window = 73
	type call struct{ invite, ok []byte }
	calls := make([]call, window)
	for i := range calls {
		calls[i] = call{[]byte(benchInvite), []byte(bench200)}
	}
	// Where the twelve digits are (Call-ID and branch), found once.
	invDigits, okDigits := digitsAt(benchInvite), digitsAt(bench200)
	callID := indexAfter(benchInvite, "Call-ID: ")
	callIDEnd := callID + len("bench-000000000000@10.1.2.3")
	src := netip.MustParseAddrPort("10.1.2.3:5060")
	evs := make([]dataplane.Event, 0, 512)
	var n, id int
	// step is the k-th message of a call; the calls of a window advance
	// together, so INVITEs of one window precede their replies.
	step := func(c *call, k int, hash uint64) dataplane.Event {
		e := dataplane.Event{CallIDHash: hash, Src: src, SetID: 1, DstIndex: 0}
		switch k {
		case 0:
			e.Kind, e.Method, e.Msg = dataplane.EventRequest, dataplane.MethodInvite, c.invite
		case 1, 2:
			e.Kind, e.Method, e.Status, e.DstIndex, e.SetID = dataplane.EventReply, dataplane.MethodInvite, uint16(99+81*k-80), -1, -1
		case 3:
			e.Kind, e.Method, e.Status, e.Msg, e.DstIndex, e.SetID = dataplane.EventReply, dataplane.MethodInvite, 200, c.ok, -1, -1
		case 4:
			e.Kind, e.Method = dataplane.EventRequest, dataplane.MethodAck
		case 5:
			e.Kind, e.Method = dataplane.EventRequest, dataplane.MethodBye
		case 6:
			e.Kind, e.Method, e.Status, e.DstIndex, e.SetID = dataplane.EventReply, dataplane.MethodBye, 200, -1, -1
		}
		return e
	}
	hashes := make([]uint64, window)
	var digitBuf [20]byte
	b.ReportAllocs()
	b.ResetTimer()
	for n < b.N {
		// A new window of calls: fresh Call-IDs and branches.
		for i := range calls {
			id++
			digits := strconv.AppendInt(digitBuf[:0], int64(id), 10)
			for _, at := range invDigits {
				copy(calls[i].invite[at+12-len(digits):], digits)
			}
			for _, at := range okDigits {
				copy(calls[i].ok[at+12-len(digits):], digits)
			}
			hashes[i] = wordhash.CallID(calls[i].invite[callID:callIDEnd])
		}
		for k := 0; k < 7; k++ {
			for i := range calls {
				evs = append(evs, step(&calls[i], k, hashes[i]))
			}
		}
		g.observeFast(evs)
		n += len(evs)
		evs = evs[:0]
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	// The feed did its work: every call of the last windows ended.
	if st := g.dlg.t.Stats(); st.Active[dialog.Terminated] == 0 || st.Unmatched > 0 {
		b.Fatalf("calls did not end as fed: %+v", st)
	}
}

// digitsAt is where the twelve digits after each "bench-" in m start.
func digitsAt(m string) []int {
	var at []int
	for i := 0; ; {
		j := strings.Index(m[i:], "bench-")
		if j < 0 {
			return at
		}
		i += j + len("bench-")
		at = append(at, i)
	}
}

func indexAfter(m, s string) int { return strings.Index(m, s) + len(s) }
