package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// BenchmarkObserveFast is the dialog adapter on the fast path's drainer:
// batches of 256 events of whole calls (INVITE and its 200 with the
// message copied, 180, ACK, BYE and its 200 as compact events), parsed,
// expanded (src $fu, dst $du, data $rU, four tag rules: $rU, by listener,
// by set, by source) and applied to the tracker, which grows by one
// dialog per call. It reports the events and the calls per second that
// one drainer goroutine feeds the tracker.
//
//	go test -run '^$' -bench ObserveFast -cpu 1 ./userspace/agent/
func BenchmarkObserveFast(b *testing.B) {
	cfg := config.Defaults()
	cfg.Listeners = []config.Listener{{Name: "edge", Proto: "udp", Addr: netip.MustParseAddrPort("10.42.0.1:5060")}}
	cfg.Dialogs.Enabled = true
	cfg.Dialogs.MaxRecords = 1 << 24
	cfg.Dialogs.Data = "$rU"
	cfg.Dialogs.Tags = []config.TagRule{
		{Tag: "$rU", Set: -1},
		{Tag: "edge", Listener: "edge", Set: -1},
		{Tag: "set1", Set: 1},
		{Tag: "client", Source: "10.42.0.0/24", Set: -1},
	}
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{
		{SetID: 1, URI: "sip:10.42.1.2:5060"}, {SetID: 1, URI: "sip:10.42.2.2:5060"}, {SetID: 1, URI: "sip:10.42.3.2:5060"},
	}, dispatch.Options{})
	if err != nil {
		b.Fatal(err)
	}
	g, err := newDialogs(&cfg, dispatch.New(snap), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	const perCall = 6
	const callsPerBatch = 256 / perCall
	src := netip.MustParseAddrPort("10.42.0.2:5061")
	call := 0
	batch := make([]dataplane.Event, 0, callsPerBatch*perCall)
	fill := func() {
		batch = batch[:0]
		for range callsPerBatch {
			call++
			callID := fmt.Sprintf("%d-4242@10.42.0.2", call)
			h := wordhash.CallID([]byte(callID))
			ev := func(kind dataplane.EventKind, m dataplane.Method, status uint16, msg []byte) dataplane.Event {
				e := dataplane.Event{CallIDHash: h, Kind: kind, Method: m, Status: status, Src: src, SetID: -1, DstIndex: -1, CSeq: 1, Msg: msg}
				if kind == dataplane.EventRequest && m == dataplane.MethodInvite {
					e.SetID, e.DstIndex = 1, int16(call%3)
				}
				return e
			}
			batch = append(batch,
				ev(dataplane.EventRequest, dataplane.MethodInvite, 0, benchInvite(callID, call)),
				ev(dataplane.EventReply, dataplane.MethodInvite, 180, nil),
				ev(dataplane.EventReply, dataplane.MethodInvite, 200, benchOK(callID, call)),
				ev(dataplane.EventRequest, dataplane.MethodAck, 0, nil),
				ev(dataplane.EventRequest, dataplane.MethodBye, 0, nil),
				ev(dataplane.EventReply, dataplane.MethodBye, 200, nil))
		}
	}
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		g.observeFast(batch)
		events += len(batch)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(events)/secs, "events/s")
	b.ReportMetric(float64(events/perCall)/secs, "calls/s")
	if st := g.t.Stats(); st.Active[3]+st.Active[4] != uint64(call) || st.Unmatched != 0 {
		b.Fatalf("the tracker holds %v of %d calls (stats %+v)", st.Active, call, st)
	}
}

// benchInvite is an INVITE as SIPp's client sends it, about 600 bytes.
func benchInvite(callID string, i int) []byte {
	sdp := "v=0\r\no=user1 53655765 2353687637 IN IP4 10.42.0.2\r\ns=-\r\nc=IN IP4 10.42.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	return fmt.Appendf(nil, "INVITE sip:answer@10.42.0.1:5060 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 10.42.0.2:5061;branch=z9hG4bK-4242-%d-0\r\n"+
		"From: sipp <sip:sipp@10.42.0.2:5061>;tag=4242SIPpTag00%d\r\n"+
		"To: answer <sip:answer@10.42.0.1:5060>\r\n"+
		"Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: sip:sipp@10.42.0.2:5061\r\nMax-Forwards: 70\r\n"+
		"Subject: Performance Test\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", i, i, callID, len(sdp), sdp)
}

// benchOK is the 200 to benchInvite as the backend sends it.
func benchOK(callID string, i int) []byte {
	return fmt.Appendf(nil, "SIP/2.0 200 OK\r\n"+
		"Via: SIP/2.0/UDP 10.42.0.1:5060;branch=z9hG4bKsl0123456789abcdef0\r\n"+
		"Via: SIP/2.0/UDP 10.42.0.2:5061;branch=z9hG4bK-4242-%d-0;received=10.42.0.2;rport=5061\r\n"+
		"Record-Route: <sip:10.42.0.1:5060;lr>\r\n"+
		"From: sipp <sip:sipp@10.42.0.2:5061>;tag=4242SIPpTag00%d\r\n"+
		"To: answer <sip:answer@10.42.0.1:5060>;tag=4243SIPpTag01%d\r\n"+
		"Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:10.42.1.2:5060;transport=UDP>\r\nContent-Length: 0\r\n\r\n", i, i, i, callID)
}
