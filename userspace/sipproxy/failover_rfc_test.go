package sipproxy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// A destination given up on (failover timeout, no provisional yet) that
// rings late is CANCELled (RFC 3261 §9.1, as Kamailio's tm does); its 200,
// racing the CANCEL, never reaches the caller, who has its final already:
// the agent ACKs it and ends the dialog with BYE.
func TestFailoverLateProvisionalCancelled(t *testing.T) {
	late := startBackend(t, backendLate200)
	bad := startBackend(t, backend503)
	p, edge := startTestProxy(t, Rule{Failover: true}, nil, late, bad)
	c := newClient(t, edge)
	c.send(t, "INVITE", "late-180", 1)
	rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return finals(rs, "INVITE", 503) > 0 })
	if finals(rs, "INVITE", 503) == 0 {
		t.Fatalf("no 503: %v", rs)
	}
	var final []byte
	for _, r := range rs {
		if r.code == 503 {
			final = r.raw
		}
	}
	c.sendAck(t, "late-180", final)
	waitFor(t, 3*time.Second, "the late destination's CANCEL", func() bool { return count(late.methods(), "CANCEL") > 0 })
	waitFor(t, 3*time.Second, "the ACK and BYE of the stray 200", func() bool {
		return count(late.methods(), "ACK") > 0 && count(late.methods(), "BYE") > 0
	})
	more := c.readResponses(t, 500*time.Millisecond, nil)
	for _, r := range append(rs, more...) {
		if r.method == "INVITE" && r.code >= 200 && r.code < 300 {
			t.Errorf("the caller got a %d after the agent's 503", r.code)
		}
	}
	if n := counterOf(p.Stats().Snapshot().Stateful, "stray_2xx"); n != 1 {
		t.Errorf("%s = %d, want 1", "stray_2xx", n)
	}
}

// The ACK of a 2xx belongs to the dialog, not to the INVITE transaction
// (RFC 3261 §17.1.1.3): a UA that reuses the INVITE's branch in it must
// still see it reach the callee.
func TestFailover2xxAckWithInviteBranchForwarded(t *testing.T) {
	b := startBackend(t, backend200)
	edge := startFailoverProxy(t, b)
	c := newClient(t, edge)
	c.send(t, "INVITE", "ack-2xx", 1)
	rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return finals(rs, "INVITE", 200) > 0 })
	if finals(rs, "INVITE", 200) == 0 {
		t.Fatalf("no 200: %v", rs)
	}
	c.sendAck(t, "ack-2xx", rs[len(rs)-1].raw) // same branch as the INVITE
	waitFor(t, 3*time.Second, "the callee to get the ACK", func() bool { return count(b.methods(), "ACK") == 1 })
}

// capture records what a Proxy writes, in place of its sockets.
type capture struct {
	mu  sync.Mutex
	out [][]byte
}

func (c *capture) write(_ netip.AddrPort, b []byte, _ netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, append([]byte(nil), b...))
	return nil
}

func (c *capture) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = nil
}

func (c *capture) all() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.out...)
}

func (c *capture) codes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var codes []int
	for _, b := range c.out {
		var m sipmsg.Msg
		if sipmsg.Parse(b, &m) == nil && !m.IsRequest {
			codes = append(codes, m.StatusCode)
		}
	}
	return codes
}

// A transaction that waits for nothing (no timer) but has not finished,
// as a final that could not be relayed up leaves it, does not keep its
// slot forever: the caller gets 500 and the transaction ends.
func TestFailoverStuckTransactionEnds(t *testing.T) {
	var w capture
	b := startBackend(t, backendSilent)
	p, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.writeTo = w.write
		c.timers = timerValues{t1: 20 * time.Millisecond, t2: 80 * time.Millisecond, t4: 50 * time.Millisecond, c: time.Second}
		c.FailoverTimeout = 10 * time.Second
	}, b)
	src := netip.MustParseAddrPort("192.0.2.99:5060")
	inv := crlf("INVITE sip:bob@example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKstuck\n" +
		"Max-Forwards: 70\nFrom: <sip:a@example.com>;tag=a\nTo: <sip:b@example.com>\n" +
		"Call-ID: stuck\nCSeq: 1 INVITE\nContent-Length: 0\n\n")
	p.handle(inv, src, edge, nil, new(sipmsg.Msg))
	t.Cleanup(func() {}) // the proxy stops with the test
	tx := func() *invTx {
		p.txs.mu.Lock()
		defer p.txs.mu.Unlock()
		return p.txs.byKey["z9hG4bKstuck"]
	}()
	if tx == nil {
		t.Fatal("no transaction")
	}
	// What relayUp's failure on a final leaves: the branch done, the
	// server side still Proceeding, nothing scheduled.
	p.txs.mu.Lock()
	br := tx.current()
	br.state, br.tA, br.tEnd = brDone, time.Time{}, time.Time{}
	bout := br.out
	p.txs.mu.Unlock()
	// Any event on it: here a late provisional from the branch.
	var bm sipmsg.Msg
	if err := sipmsg.Parse(bout, &bm); err != nil {
		t.Fatal(err)
	}
	ringing, ok := appendReply(nil, bout, &bm, b.addr(), 180, "Ringing")
	if !ok {
		t.Fatal("cannot build the 180")
	}
	p.handle(ringing, b.addr(), edge, nil, new(sipmsg.Msg))
	waitFor(t, 3*time.Second, "the stuck transaction to leave the table", func() bool { return p.txs.Len() == 0 })
	got500 := false
	for _, c := range w.codes() {
		got500 = got500 || c == 500
	}
	if !got500 {
		t.Errorf("the caller got no 500: %v", w.codes())
	}
}

// The agent's own replies in failover mode (100, 503, 487, ...) obey the
// same next-hop rule as forwarded responses (issue 7 item 7): an INVITE
// whose Via points back at the agent's listener gets nothing, starts no
// transaction, and is counted.
func TestFailoverReplyNextHopChecked(t *testing.T) {
	b := startBackend(t, backend200)
	p, edge := startTestProxy(t, Rule{Failover: true}, nil, b)
	c := newClient(t, edge)
	msg := "INVITE sip:bob@example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + edge.String() + ";branch=z9hG4bKreflect\n" +
		"Max-Forwards: 70\nFrom: <sip:alice@example.com>;tag=a\nTo: <sip:bob@example.com>\n" +
		"Call-ID: reflect\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
	if _, err := c.conn.WriteToUDPAddrPort(crlf(msg), edge); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the reflecting INVITE to be counted", func() bool {
		return counterOf(p.Stats().Snapshot().Drops, DropNextHopLoop) > 0
	})
	time.Sleep(100 * time.Millisecond)
	if n := count(b.methods(), "INVITE"); n != 0 {
		t.Errorf("the backend got %d INVITEs whose caller cannot be answered", n)
	}
	s := p.Stats().Snapshot()
	if n := counterOf(s.Drops, DropNextHopLoop); n != 1 {
		t.Errorf("%s = %d, want 1 (the agent answered itself?)", DropNextHopLoop, n)
	}
}

// Item 10 with large INVITEs: the table is bounded by the bytes its
// transactions hold, not only by their count. 64 kB INVITEs fill a byte
// budget long before the count cap; beyond it, 503 with Retry-After,
// counted; and the bytes go back to zero when the transactions end.
func TestFailoverTableByteBudget(t *testing.T) {
	silent := startBackend(t, backendSilent)
	const budget = 1 << 20
	p, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.MaxTransactions = 1000
		c.MaxTransactionBytes = budget
		c.FailoverTimeout = 100 * time.Millisecond
		c.timers = timerValues{t1: 10 * time.Millisecond, t2: 40 * time.Millisecond, t4: 20 * time.Millisecond, c: time.Second}
	}, silent)
	c := newClient(t, edge)
	me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	body := strings.Repeat("a=x-padding:0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 500) // 31 kB
	const n = 40
	for i := range n {
		msg := fmt.Sprintf("INVITE sip:bob@example.com SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bKbig%d\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"+
			"Call-ID: big-%d\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"+
			"Content-Length: %d\r\n\r\n%s", me, i, i, len(body), body)
		if _, err := c.conn.WriteToUDPAddrPort([]byte(msg), edge); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			// Half of them in, nothing has ended yet (failover timeout
			// 100 ms): the table holds its budget.
			waitFor(t, 2*time.Second, "20 INVITEs taken", func() bool {
				return counterOf(p.Stats().Snapshot().Handoffs, HandoffStatefulInvite) > n/2
			})
			s := p.Stats().Snapshot()
			if s.PendingBytes > budget {
				t.Errorf("pending bytes %d over the budget %d", s.PendingBytes, budget)
			}
			if counterOf(s.Stateful, statTableBytesFull) == 0 || s.Pending >= n/2 {
				t.Errorf("%d pending, %d refused by the byte budget: the budget did not hold", s.Pending, counterOf(s.Stateful, statTableBytesFull))
			}
		}
	}
	rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return calls(rs, "INVITE", 503) == n })
	refused := 0
	for _, r := range rs {
		if r.code == 503 && strings.Contains(string(r.raw), "\r\nRetry-After: 5\r\n") {
			refused++
		}
	}
	s := p.Stats().Snapshot()
	if refused == 0 || uint64(refused) != counterOf(s.Stateful, statTableBytesFull) {
		t.Errorf("%d 503s with Retry-After, table_bytes_full %d", refused, counterOf(s.Stateful, statTableBytesFull))
	}
	if n := counterOf(s.Stateful, statTableFull); n != 0 {
		t.Errorf("table_full = %d: the count cap (1000) was hit", n)
	}
	waitFor(t, 5*time.Second, "the table to empty", func() bool {
		s := p.Stats().Snapshot()
		return s.Pending == 0 && s.PendingBytes == 0
	})
}

// A response matches a client transaction by its branch and its CSeq
// method (RFC 3261 §17.1.3): one that carries an INVITE branch of ours
// but another method, or no CSeq, is not the INVITE's and goes nowhere.
// (Found by FuzzStateful: a 110 without CSeq was relayed to the caller.)
func TestFailoverResponseMatchesCSeqMethod(t *testing.T) {
	for _, cseq := range []string{"CSeq: 1 BYE\n", ""} {
		var w capture
		b := startBackend(t, backendSilent)
		p, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
			c.writeTo = w.write
			c.FailoverTimeout = 10 * time.Second
		}, b)
		caller := netip.MustParseAddrPort("192.0.2.99:5060")
		p.handle(crlf("INVITE sip:bob@example.com SIP/2.0\n"+
			"Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKcseq\n"+
			"Max-Forwards: 70\nFrom: <sip:a@example.com>;tag=a\nTo: <sip:b@example.com>\n"+
			"Call-ID: cseq\nCSeq: 1 INVITE\nContent-Length: 0\n\n"), caller, edge, nil, new(sipmsg.Msg))
		p.txs.mu.Lock()
		id := p.txs.byKey["z9hG4bKcseq"].current().id
		p.txs.mu.Unlock()
		w.reset()
		p.handle(crlf("SIP/2.0 180 Ringing\n"+
			"Via: SIP/2.0/UDP "+edge.String()+";branch="+id+"\n"+
			"Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKcseq\n"+
			"From: <sip:a@example.com>;tag=a\nTo: <sip:b@example.com>;tag=b\nCall-ID: cseq\n"+
			cseq+"Content-Length: 0\n\n"), b.addr(), edge, nil, new(sipmsg.Msg))
		if out := w.all(); len(out) != 0 {
			t.Errorf("%q: a response that is not the INVITE's was relayed: %q", cseq, out[0])
		}
	}
}
