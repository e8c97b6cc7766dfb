package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sipedge/sipedge/tests/fixtures"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// eventsEnv loads the program with an event ring of ringBytes and one
// listener forwarding to set 2; it returns the env, the listener, the
// client and the destination INVITEs go to.
func eventsEnv(t testing.TB, ringBytes uint32) (*dptest.Env, netip.AddrPort, netip.AddrPort, netip.AddrPort) {
	t.Helper()
	return eventsEnvWith(t, dataplane.Options{EventsRingBytes: ringBytes})
}

// eventsEnvWith is eventsEnv with load options.
func eventsEnvWith(t testing.TB, opts dataplane.Options) (*dptest.Env, netip.AddrPort, netip.AddrPort, netip.AddrPort) {
	t.Helper()
	env := dptest.NewEnvWith(t, opts, backendPrefixes...)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	snap := buildSnapshot(t, "2 sip:10.0.0.21:5060\n2 sip:10.0.0.22:5060\n2 sip:10.0.0.23:5060", dispatch.Options{})
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	sel, err := snap.Select(2, dispatch.AlgCallID, dispatch.Key{CallID: "a84b4c76e66710@pc33.atlanta.example.com"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return env, lis, src, sel.Dests[0].Addr
}

// reply turns okIn into a reply with that status line, coming back to src.
func reply(status string) []byte {
	ok := strings.Replace(okIn, "10.10.10.7:5070;received=198.51.100.7", "198.51.100.7:5060", 1)
	return crlf(strings.Replace(ok, "SIP/2.0 200 OK", "SIP/2.0 "+status, 1))
}

// drainAll reads what the ring holds now, counted like fastpath.stats.
func drainAll(t *testing.T, env *dptest.Env) map[string]uint64 {
	t.Helper()
	r, err := env.DP.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[string]uint64{}
	if _, err := r.Drain(0, func(evs []dataplane.Event) {
		for _, e := range evs {
			got[e.Kind.String()+" "+e.Method.String()]++
		}
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestEventsLost: with a one-page ring and nobody reading, the events that
// do not fit are counted in event_lost by kind and method: drained plus lost
// is exactly what was forwarded, kind by kind, and some were lost; with
// message copies too (their records are reserved another way).
func TestEventsLost(t *testing.T) {
	for _, copies := range []bool{false, true} {
		t.Run(fmt.Sprintf("copies %v", copies), func(t *testing.T) {
			// 64 records of 64 bytes, or about 10 calls with copies
			env, lis, src, dst := eventsEnvWith(t, dataplane.Options{EventsRingBytes: 4096, EventCopies: copies})
			testEventsLost(t, env, lis, src, dst)
		})
	}
}

func testEventsLost(t *testing.T, env *dptest.Env, lis, src, dst netip.AddrPort) {
	sent := map[string]uint64{}
	for i := 0; i < 150; i++ {
		if o := send(t, env, src, lis, crlf(inviteIn)); o.verdict != dptest.XDPRedirect {
			t.Fatalf("INVITE %d: %s %s", i, verdictName(o.verdict), o.reason)
		}
		sent["request INVITE"]++
		if i%3 == 0 {
			if o := send(t, env, dst, lis, reply("200 OK")); o.verdict != dptest.XDPRedirect {
				t.Fatalf("200 OK %d: %s %s", i, verdictName(o.verdict), o.reason)
			}
			sent["reply INVITE"]++
		}
	}
	lost, err := env.DP.EventsLost()
	if err != nil {
		t.Fatal(err)
	}
	got := drainAll(t, env)
	var total uint64
	for k, n := range sent {
		if got[k]+lost[k] != n {
			t.Errorf("%s: %d drained + %d lost, %d forwarded", k, got[k], lost[k], n)
		}
		total += lost[k]
	}
	if total == 0 || len(lost) != len(sent) {
		t.Errorf("lost %v, drained %v: want losses of both kinds only", lost, got)
	}
	t.Logf("forwarded %v, drained %v, lost %v", sent, got, lost)
}

// wantEvent is the event rule, read from the message text alone: a
// forwarded INVITE, ACK, BYE or CANCEL, any reply whose CSeq method is
// INVITE (provisional and final), and final replies to BYE and CANCEL.
func wantEvent(msg []byte) (ev dataplane.Event, ok bool) {
	lines := strings.Split(string(msg), "\r\n")
	var cseqMethod string
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		if name, val, found := strings.Cut(l, ":"); found && strings.EqualFold(strings.TrimSpace(name), "CSeq") {
			if f := strings.Fields(val); len(f) == 2 {
				cseqMethod = f[1]
			}
		}
	}
	methods := map[string]dataplane.Method{"INVITE": dataplane.MethodInvite, "ACK": dataplane.MethodAck, "BYE": dataplane.MethodBye, "CANCEL": dataplane.MethodCancel}
	first := strings.Fields(lines[0])
	if len(first) >= 2 && first[0] == "SIP/2.0" {
		var status uint16
		for _, c := range first[1] {
			status = status*10 + uint16(c-'0')
		}
		m, known := methods[cseqMethod]
		if !known || m == dataplane.MethodAck || (m != dataplane.MethodInvite && status < 200) {
			return ev, false
		}
		return dataplane.Event{Kind: dataplane.EventReply, Method: m, Status: status}, true
	}
	m, known := methods[first[0]]
	if !known {
		return ev, false
	}
	return dataplane.Event{Kind: dataplane.EventRequest, Method: m}, true
}

// TestEventsByMessage: every message the fast path forwards reports exactly
// the events wantEvent says: requests of the dialog, provisional and final
// replies to INVITE, final replies to BYE and CANCEL; nothing else.
func TestEventsByMessage(t *testing.T) {
	env, lis, src, dst := eventsEnv(t, 0)
	bye := func(s string) []byte {
		return []byte(strings.Replace(string(s), "CSeq: 314159 INVITE", "CSeq: 314160 BYE", 1))
	}
	cancel := func(s string) []byte {
		return []byte(strings.Replace(string(s), "CSeq: 314159 INVITE", "CSeq: 314159 CANCEL", 1))
	}
	options := func(s string) []byte {
		return []byte(strings.Replace(string(s), "CSeq: 314159 INVITE", "CSeq: 1 OPTIONS", 1))
	}
	msgs := []struct {
		from netip.AddrPort
		msg  []byte
	}{
		{src, crlf(inviteIn)},
		{dst, reply("100 Trying")},
		{dst, reply("180 Ringing")},
		{dst, reply("183 Session Progress")},
		{dst, reply("200 OK")},
		{dst, reply("486 Busy Here")},
		{dst, bye(string(reply("100 Trying")))},
		{dst, bye(string(reply("200 OK")))},
		{dst, bye(string(reply("481 Call/Transaction Does Not Exist")))},
		{dst, cancel(string(reply("200 OK")))},
		{dst, cancel(string(reply("180 Ringing")))},
		{dst, options(string(reply("200 OK")))},
		{src, optionsMsg("events-options@example.com")},
	}
	for _, m := range msgs {
		o := send(t, env, m.from, lis, m.msg)
		first, _, _ := strings.Cut(string(m.msg), "\r\n")
		if o.verdict != dptest.XDPRedirect && o.verdict != dptest.XDPTX {
			t.Fatalf("%s: %s %s", first, verdictName(o.verdict), o.reason)
		}
		var got []dataplane.Event
		r, err := env.DP.NewEventReader()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Drain(0, func(evs []dataplane.Event) { got = append(got, evs...) }); err != nil {
			t.Fatal(err)
		}
		r.Close()
		want, ok := wantEvent(m.msg)
		switch {
		case !ok && len(got) != 0:
			t.Errorf("%s: events %+v, want none", first, got)
		case ok && len(got) != 1:
			t.Errorf("%s: %d events, want one %+v", first, len(got), want)
		case ok && (got[0].Kind != want.Kind || got[0].Method != want.Method || got[0].Status != want.Status):
			t.Errorf("%s: event %+v, want kind %v method %v status %d", first, got[0], want.Kind, want.Method, want.Status)
		}
	}
}

// TestFixtureEvents: every fixture case the fast path forwards reports the
// event wantEvent reads from its text, or none, and nothing more; the event
// names the case's source address and port. Loaded with EventCopies, the
// event of an INVITE or of a 2xx reply to INVITE carries the case's input
// byte for byte (whatever the rewrite did to the packet: Via inserted,
// received and rport added, Max-Forwards decremented, Route removed, IPv6),
// and every other event none; without, none does.
func TestFixtureEvents(t *testing.T) {
	for _, copies := range []bool{false, true} {
		t.Run(fmt.Sprintf("copies %v", copies), func(t *testing.T) {
			testFixtureEvents(t, copies)
		})
	}
}

func testFixtureEvents(t *testing.T, copies bool) {
	env := dptest.NewEnvWith(t, dataplane.Options{EventCopies: copies}, backendPrefixes...)
	dir := fixtures.Dir()
	cases, err := fixtures.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := fixtures.Entries(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := env.DP.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var forwarded, withEvent, withCopy int
	for _, c := range cases {
		snap, err := dispatch.Build(context.Background(), entries, c.Options(noDNS))
		if err != nil {
			t.Fatal(err)
		}
		if err := env.DP.SyncSets(snap); err != nil {
			t.Fatal(err)
		}
		lis := dataplane.Listener{Addr: c.Listener, ADV: c.Advertise, Rule: dataplane.Rule{
			SetID: c.Rule.SetID, Alg: c.Rule.Alg, RecordRoute: c.Rule.RecordRoute, Failover: c.Rule.Failover,
		}}
		if err := env.DP.SyncListeners([]dataplane.Listener{lis}); err != nil {
			t.Fatal(err)
		}
		o := send(t, env, c.Src, c.Listener, c.In)
		var got []dataplane.Event
		if _, err := r.Drain(0, func(evs []dataplane.Event) { got = append(got, evs...) }); err != nil {
			t.Fatal(err)
		}
		if o.verdict != dptest.XDPTX && o.verdict != dptest.XDPRedirect {
			if len(got) != 0 {
				t.Errorf("%s: not forwarded, events %+v", c.Name, got)
			}
			continue
		}
		forwarded++
		want, ok := wantEvent(c.In)
		switch {
		case !ok && len(got) != 0:
			t.Errorf("%s: events %+v, want none", c.Name, got)
		case ok && len(got) != 1:
			t.Errorf("%s: %d events, want one %+v", c.Name, len(got), want)
		case ok && (got[0].Kind != want.Kind || got[0].Method != want.Method || got[0].Status != want.Status):
			t.Errorf("%s: event %+v, want kind %v method %v status %d", c.Name, got[0], want.Kind, want.Method, want.Status)
		case ok && got[0].Src != c.Src:
			t.Errorf("%s: event source %v, want %v", c.Name, got[0].Src, c.Src)
		case ok && copies && wantCopy(want) && !bytes.Equal(got[0].Msg, c.In):
			t.Errorf("%s: event message (%d bytes) is not the input (%d bytes):\n%q\nwant\n%q", c.Name, len(got[0].Msg), len(c.In), got[0].Msg, c.In)
		case ok && (!copies || !wantCopy(want)) && got[0].Msg != nil:
			t.Errorf("%s: event %v %v %d carries a message (%d bytes), want none", c.Name, want.Kind, want.Method, want.Status, len(got[0].Msg))
		case ok:
			withEvent++
			if got[0].Msg != nil {
				withCopy++
			}
		}
	}
	t.Logf("%d cases forwarded, %d with an event, %d of them with a copy", forwarded, withEvent, withCopy)
	if copies && withCopy == 0 {
		t.Error("no event carried a copy")
	}
}

// wantCopy is the copy rule: an INVITE request, a 2xx reply to INVITE.
func wantCopy(e dataplane.Event) bool {
	if e.Kind == dataplane.EventRequest {
		return e.Method == dataplane.MethodInvite
	}
	return e.Method == dataplane.MethodInvite && e.Status >= 200 && e.Status < 300
}

// TestEventCopies: a call's messages through the fast path loaded with
// EventCopies. The INVITE's event and the 200 OK's carry the message
// exactly as sent, whatever the rewrite does to the packet, and the
// address and port it came from; 100, 180, 486, ACK, BYE and the BYE's 200
// stay compact. Without EventCopies no event carries a message.
func TestEventCopies(t *testing.T) {
	for _, copies := range []bool{false, true} {
		t.Run(fmt.Sprintf("copies %v", copies), func(t *testing.T) {
			env, lis, _, dst := eventsEnvWith(t, dataplane.Options{EventCopies: copies})
			// rport asks the fast path to write the port back (rport=5071;received=...)
			src := netip.MustParseAddrPort("198.51.100.7:5071")
			invite := crlf(strings.Replace(inviteIn, "branch=z9hG4bKnashds8", "rport;branch=z9hG4bKnashds8", 1))
			inDialog := func(method, cseq string) []byte {
				return crlf("\n" + method + " sip:bob@10.0.0.21:5060 SIP/2.0\n" +
					"Via: SIP/2.0/UDP 198.51.100.7:5071;branch=z9hG4bK776asdhds;rport\n" +
					"Max-Forwards: 70\n" +
					"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\n" +
					"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n" +
					"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n" +
					"CSeq: " + cseq + "\n" +
					"Content-Length: 0\n\n")
			}
			byeOK := []byte(strings.Replace(string(reply("200 OK")), "CSeq: 314159 INVITE", "CSeq: 314160 BYE", 1))
			msgs := []struct {
				name     string
				from     netip.AddrPort
				msg      []byte
				withCopy bool
			}{
				{"INVITE", src, invite, true},
				{"100", dst, reply("100 Trying"), false},
				{"180", dst, reply("180 Ringing"), false},
				{"486", dst, reply("486 Busy Here"), false},
				{"200 INVITE", dst, reply("200 OK"), true},
				{"ACK", src, inDialog("ACK", "314159 ACK"), false},
				{"BYE", src, inDialog("BYE", "314160 BYE"), false},
				{"200 BYE", dst, byeOK, false},
			}
			r, err := env.DP.NewEventReader()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for _, m := range msgs {
				sent := bytes.Clone(m.msg)
				o := send(t, env, m.from, lis, m.msg)
				if o.verdict != dptest.XDPRedirect {
					t.Fatalf("%s: %s %s", m.name, verdictName(o.verdict), o.reason)
				}
				if m.name == "INVITE" && (bytes.Equal(o.frame.Payload, sent) || !bytes.Contains(o.frame.Payload, []byte("rport=5071;received=198.51.100.7"))) {
					t.Fatalf("INVITE: the rewrite did not change the packet as the test needs (rport, received):\n%s", o.frame.Payload)
				}
				var got []dataplane.Event
				var msgs [][]byte // copied during fn: Msg is valid only then
				if _, err := r.Drain(0, func(evs []dataplane.Event) {
					for _, e := range evs {
						got = append(got, e)
						msgs = append(msgs, bytes.Clone(e.Msg))
					}
				}); err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 {
					t.Fatalf("%s: %d events, want 1", m.name, len(got))
				}
				if got[0].Src != m.from {
					t.Errorf("%s: event source %v, want %v", m.name, got[0].Src, m.from)
				}
				switch {
				case copies && m.withCopy && !bytes.Equal(msgs[0], sent):
					t.Errorf("%s: event message\n%q\nwant the message as sent\n%q", m.name, msgs[0], sent)
				case (!copies || !m.withCopy) && got[0].Msg != nil:
					t.Errorf("%s: event carries %d bytes of message, want none", m.name, len(got[0].Msg))
				}
			}
		})
	}
}

// TestEventsWakeUp: the program submits without waking the reader until an
// eighth of the ring is pending, then wakes it: a reader blocked in one
// long Drain sees nothing for 31 events of a 16 KiB ring (1,984 bytes
// pending) and gets all 32 in one batch as soon as the 32nd brings it to
// 2,048.
func TestEventsWakeUp(t *testing.T) {
	env, lis, src, _ := eventsEnv(t, 16384)
	r, err := env.DP.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	batches := make(chan int, 16)
	done := make(chan error, 1)
	go func() {
		_, err := r.Drain(time.Minute, func(evs []dataplane.Event) { batches <- len(evs) })
		done <- err
	}()
	t.Cleanup(func() {
		r.Close()
		<-done
	})
	const record = 8 + 56                          // ring header and struct sip_event
	const wakeAt = (16384/8 + record - 1) / record // the record that brings the pending bytes to 2,048 or more
	for i := 1; i <= wakeAt; i++ {
		if o := send(t, env, src, lis, crlf(inviteIn)); o.verdict != dptest.XDPRedirect {
			t.Fatalf("INVITE %d: %s %s", i, verdictName(o.verdict), o.reason)
		}
		if i == wakeAt-1 {
			select {
			case n := <-batches:
				t.Fatalf("reader woken with %d events after %d, want no wake-up before %d", n, i, wakeAt)
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	select {
	case n := <-batches:
		if n != wakeAt {
			t.Errorf("woken with a batch of %d events, want %d", n, wakeAt)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("reader not woken after %d events", wakeAt)
	}
}

// TestEventsQuietDelivery: in a quiet period (no wake-up from the program)
// ReadEvents still delivers each event, by polling every
// EventPollInterval; a reader that waited for wake-ups would never see them.
// The bound asserted is loose (this VM is shared); the latencies are logged.
func TestEventsQuietDelivery(t *testing.T) {
	env, lis, src, _ := eventsEnv(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan time.Time, 16)
	done := make(chan error, 1)
	go func() {
		done <- env.DP.ReadEvents(ctx, func(evs []dataplane.Event) {
			for range evs {
				got <- time.Now()
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ReadEvents: %v", err)
		}
	}()
	var worst time.Duration
	for i := 0; i < 10; i++ {
		o := send(t, env, src, lis, crlf(inviteIn))
		sent := time.Now()
		if o.verdict != dptest.XDPRedirect {
			t.Fatalf("INVITE %d: %s %s", i, verdictName(o.verdict), o.reason)
		}
		select {
		case at := <-got:
			worst = max(worst, at.Sub(sent))
		case <-time.After(time.Second):
			t.Fatalf("event %d not delivered within 1s (poll interval %v)", i, dataplane.EventPollInterval)
		}
		time.Sleep(7 * time.Millisecond) // land at another point of the poll cycle
	}
	t.Logf("worst delivery latency of 10 quiet events: %v (poll interval %v)", worst, dataplane.EventPollInterval)
}

// TestEventReaderCloseDuringDrain: Close from another goroutine (as
// ReadEvents does when its context ends) while Drain is between two reads
// must not race with Drain's look at the ring: Close unmaps it. The close
// lands while fn runs; no channel orders the two goroutines, so the race
// detector sees any unguarded access (go test -race).
func TestEventReaderCloseDuringDrain(t *testing.T) {
	env, lis, src, _ := eventsEnv(t, 0)
	for i := 0; i < 10; i++ {
		if o := send(t, env, src, lis, crlf(inviteIn)); o.verdict != dptest.XDPRedirect {
			t.Fatalf("INVITE %d: %s %s", i, verdictName(o.verdict), o.reason)
		}
	}
	r, err := env.DP.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Drain(time.Minute, func([]dataplane.Event) { time.Sleep(200 * time.Millisecond) })
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ringbuf.ErrClosed) {
		t.Errorf("Drain after Close: %v, want ErrClosed", err)
	}
}
