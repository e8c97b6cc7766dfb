package sipproxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// FuzzStateful: the slow path's stateful (failover-mode) handling of a
// sequence of datagrams, after one INVITE started a transaction. The
// fuzzed input is up to four datagrams separated by fuzzSep; fuzzBranch in
// them stands for the branch of the INVITE the agent sent downstream
// (random, so a fuzzer could never guess it). A response comes from the
// destination, a request from the caller; tick says after which datagrams
// the timers run, and how far the clock jumps. Invariants: no panic; no
// reply to an ACK or to a response (an ACK yields no response; a response
// yields no response carrying its Vias, which a reply would copy);
// nothing for what does not parse; and the table stays sound: no
// unfinished transaction waits for nothing (it would keep its slot
// forever), its byte count is the sum of what its transactions hold.
// `make test` runs it for a few seconds, `make fuzz` for FUZZTIME.
func FuzzStateful(f *testing.F) {
	for _, c := range loadFixtures(f) {
		f.Add(c.In, uint8(0))
	}
	for _, s := range fuzzStatefulSeeds {
		f.Add(crlf(s), uint8(0))
		f.Add(crlf(s), uint8(0xff))
	}
	entries := []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.11:5060", Priority: 2, Source: "fuzz:1"},
		{SetID: 1, URI: "sip:10.0.0.12:5060", Priority: 1, Source: "fuzz:2"},
	}
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
	if err != nil {
		f.Fatal(err)
	}
	d := dispatch.New(snap)
	invite := crlf(fuzzInvite)
	f.Fuzz(func(t *testing.T, in []byte, tick uint8) {
		var w capture
		p, err := New(Config{
			Listeners:       []Listener{{Name: "edge", Addr: testLocal, Rule: Rule{SetID: 1, Alg: dispatch.AlgPriority, Failover: true, NoDestinationCode: 503}}},
			Dispatcher:      d,
			FailoverTimeout: time.Second,
			Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
			writeTo:         w.write,
		})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 0, readBufferSize+1024)
		p.handle(invite, testSrc, testLocal, out, new(sipmsg.Msg))
		p.txs.mu.Lock()
		tx := p.txs.byKey["z9hG4bKfuzzinv"]
		if tx == nil || tx.current() == nil {
			p.txs.mu.Unlock()
			t.Fatal("the INVITE started no transaction")
		}
		branch := []byte(tx.current().id)
		p.txs.mu.Unlock()
		now := time.Now()
		for i, dg := range bytes.SplitN(in, []byte(fuzzSep), 4) {
			dg = bytes.ReplaceAll(dg, []byte(fuzzBranch), branch)
			src := testSrc
			if bytes.HasPrefix(dg, []byte("SIP/")) {
				src = netip.MustParseAddrPort("10.0.0.11:5060")
			}
			w.reset()
			p.handle(dg, src, testLocal, out, new(sipmsg.Msg))
			checkStatefulOutput(t, dg, w.all())
			if tick&(1<<i) != 0 {
				// The clock jumps by 0.6 s to 200 s: Timers A, the failover
				// timeout, C, G, H, I, L fire as they fall.
				now = now.Add([]time.Duration{600 * time.Millisecond, 5 * time.Second, 40 * time.Second, 200 * time.Second}[(int(tick)>>4+i)%4])
				p.txs.mu.Lock()
				for _, tx := range append([]*invTx(nil), p.txs.heap...) {
					if !tx.due.After(now) {
						p.fire(tx, now)
						p.reschedule(tx)
					}
				}
				p.txs.mu.Unlock()
			}
			checkTable(t, p.txs)
		}
	})
}

// checkStatefulOutput: what handling dg wrote.
func checkStatefulOutput(t *testing.T, dg []byte, outs [][]byte) {
	t.Helper()
	var m sipmsg.Msg
	if sipmsg.Parse(dg, &m) != nil {
		if len(outs) > 0 {
			t.Fatalf("%d messages out for an input that does not parse\nin:  %q\nout: %q", len(outs), dg, outs[0])
		}
		return
	}
	ack := m.IsRequest && string(m.Method.Bytes(dg)) == "ACK"
	for _, o := range outs {
		var om sipmsg.Msg
		if sipmsg.Parse(o, &om) != nil {
			t.Fatalf("output does not parse\nin:  %q\nout: %q", dg, o)
		}
		if om.IsRequest {
			continue
		}
		if ack {
			t.Fatalf("a response to an ACK\nin:  %q\nout: %q", dg, o)
		}
		// A reply copies every Via of what it answers; a relayed response
		// has one Via fewer (ours).
		if !m.IsRequest && m.NumVias > 0 && om.NumVias == m.NumVias &&
			bytes.Equal(om.TopVia.Branch.Bytes(o), m.TopVia.Branch.Bytes(dg)) &&
			bytes.Equal(om.TopVia.SentBy.Bytes(o), m.TopVia.SentBy.Bytes(dg)) {
			t.Fatalf("a reply to a response\nin:  %q\nout: %q", dg, o)
		}
	}
}

// checkTable: no unfinished transaction without a timer; the byte count
// adds up.
func checkTable(t *testing.T, tt *txTable) {
	t.Helper()
	tt.mu.Lock()
	defer tt.mu.Unlock()
	var sum int64
	for _, tx := range tt.byKey {
		if !tx.finished() && tx.nextDue().IsZero() {
			t.Fatalf("transaction %s (state %d) waits for nothing", tx.key, tx.state)
		}
		if tx.held != tx.size() {
			t.Fatalf("transaction %s holds %d bytes, counted %d", tx.key, tx.size(), tx.held)
		}
		sum += int64(tx.held)
	}
	if sum != tt.bytes {
		t.Fatalf("table counts %d bytes, its transactions hold %d", tt.bytes, sum)
	}
}

const (
	fuzzSep    = "\x00--\x00"
	fuzzBranch = "z9hG4bKsfBRANCH"
)

const fuzzInvite = `INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKfuzzinv;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>
Call-ID: fuzz@198.51.100.7
CSeq: 1 INVITE
Contact: <sip:alice@198.51.100.7>
Content-Length: 0

`

// fuzzResp is a response of the destination to the INVITE sent to it.
func fuzzResp(code string) string {
	return "SIP/2.0 " + code + `
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=` + fuzzBranch + `
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKfuzzinv;rport=5060;received=198.51.100.7
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: fuzz@198.51.100.7
CSeq: 1 INVITE
Contact: <sip:bob@10.0.0.11>
Content-Length: 0

`
}

// fuzzReq is a request of the caller in the INVITE's transaction.
func fuzzReq(method string) string {
	return method + ` sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKfuzzinv;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: fuzz@198.51.100.7
CSeq: 1 ` + method + `
Content-Length: 0

`
}

var fuzzStatefulSeeds = []string{
	fuzzResp("180 Ringing"),
	fuzzResp("200 OK"),
	fuzzResp("503 Service Unavailable"),
	fuzzReq("ACK"),
	fuzzReq("CANCEL"),
	fuzzInvite,
	strings.Join([]string{fuzzResp("180 Ringing"), fuzzReq("CANCEL"), fuzzResp("487 Request Terminated"), fuzzReq("ACK")}, fuzzSep),
	strings.Join([]string{fuzzResp("503 Service Unavailable"), fuzzReq("ACK"), fuzzResp("503 Service Unavailable")}, fuzzSep),
	strings.Join([]string{fuzzResp("200 OK"), fuzzReq("ACK"), fuzzResp("200 OK"), fuzzInvite}, fuzzSep),
	strings.Join([]string{fuzzReq("CANCEL"), fuzzResp("180 Ringing"), fuzzResp("200 OK"), fuzzResp("200 OK")}, fuzzSep),
}
