package sipproxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// response is one response the test client received.
type response struct {
	code   int
	method string // CSeq method
	callID string
	raw    []byte
	at     time.Time // when it was read
}

// readResponses reads responses until stop says so or d passes, and
// returns them all.
func (c *testClient) readResponses(t *testing.T, d time.Duration, stop func([]response) bool) []response {
	t.Helper()
	var got []response
	buf := make([]byte, 65536)
	deadline := time.Now().Add(d)
	for stop == nil || !stop(got) {
		_ = c.conn.SetReadDeadline(deadline)
		n, _, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		in := append([]byte(nil), buf[:n]...)
		var m sipmsg.Msg
		if sipmsg.Parse(in, &m) != nil || m.IsRequest {
			continue
		}
		got = append(got, response{code: m.StatusCode, method: string(m.CSeq.Method.Bytes(in)),
			callID: string(m.CallID.Bytes(in)), raw: in, at: time.Now()})
	}
	return got
}

// calls counts the distinct calls that got code to method.
func calls(rs []response, method string, code int) int {
	seen := map[string]bool{}
	for _, r := range rs {
		if r.method == method && r.code == code {
			seen[r.callID] = true
		}
	}
	return len(seen)
}

func finals(rs []response, method string, code int) int {
	n := 0
	for _, r := range rs {
		if r.method == method && r.code == code {
			n++
		}
	}
	return n
}

// sendAck sends the ACK of the INVITE c.send sent for callID, answered by
// the non-2xx final res (RFC 3261 §17.1.1.3: same branch, the response's To).
func (c *testClient) sendAck(t *testing.T, callID string, res []byte) {
	t.Helper()
	var m sipmsg.Msg
	if err := sipmsg.Parse(res, &m); err != nil {
		t.Fatal(err)
	}
	to, _ := m.First(sipmsg.KindTo)
	me := c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	msg := fmt.Sprintf("ACK sip:bob@example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK%x\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:alice@example.com>;tag=a\r\n"+
		"%s"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 ACK\r\n"+
		"Content-Length: 0\r\n\r\n", me, callID, to.Line.Bytes(res), callID)
	if _, err := c.conn.WriteToUDPAddrPort([]byte(msg), c.to); err != nil {
		t.Fatal(err)
	}
}

// Item 9: the caller's ACK of a final the agent made itself (503 when every
// destination failed, 487 after CANCEL) is absorbed by the transaction,
// never forwarded, and the final is retransmitted only until it comes.
func TestFailoverAckAbsorbed(t *testing.T) {
	t.Run("503 every destination failed", func(t *testing.T) {
		silent := startBackend(t, backendSilent)
		edge := startFailoverProxy(t, silent)
		c := newClient(t, edge)
		c.send(t, "INVITE", "ack-503", 1)
		rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return finals(rs, "INVITE", 503) > 0 })
		if finals(rs, "INVITE", 503) != 1 {
			t.Fatalf("no 503: %v", rs)
		}
		c.sendAck(t, "ack-503", rs[len(rs)-1].raw)
		// Timer G would resend at +500 ms and +1.5 s.
		if more := c.readResponses(t, 2*time.Second, nil); finals(more, "INVITE", 503) != 0 {
			t.Errorf("503 retransmitted %d times after the ACK", finals(more, "INVITE", 503))
		}
		if n := count(silent.methods(), "ACK"); n != 0 {
			t.Errorf("the backend got %d ACKs of the agent's own 503", n)
		}
	})
	t.Run("487 after CANCEL", func(t *testing.T) {
		ringing := startBackend(t, backendRinging)
		edge := startFailoverProxy(t, ringing)
		c := newClient(t, edge)
		c.send(t, "INVITE", "ack-487", 1)
		c.readResponses(t, 3*time.Second, func(rs []response) bool { return finals(rs, "INVITE", 180) > 0 })
		c.send(t, "CANCEL", "ack-487", 1)
		rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return finals(rs, "INVITE", 487) > 0 })
		if finals(rs, "INVITE", 487) != 1 {
			t.Fatalf("no 487: %v", rs)
		}
		var final []byte
		for _, r := range rs {
			if r.code == 487 {
				final = r.raw
			}
		}
		c.sendAck(t, "ack-487", final)
		if more := c.readResponses(t, 2*time.Second, nil); finals(more, "INVITE", 487) != 0 {
			t.Errorf("487 retransmitted %d times after the ACK", finals(more, "INVITE", 487))
		}
		if n := count(ringing.methods(), "ACK"); n != 0 {
			t.Errorf("the backend got %d ACKs of the agent's own 487", n)
		}
	})
}

// Item 9: without the ACK, Timer G retransmits the final at T1, 2*T1, 4*T1
// ... capped at T2, until Timer H (64*T1). Run with T1 = 50 ms, T2 = 400 ms
// (the RFC's ratios): sent at 0, then at 1, 3, 7, 15, 23, 31, 39, 47, 55,
// 63 T1, and Timer H at 64 T1 = 3.2 s.
func TestFailoverFinalRetransmittedUntilTimerH(t *testing.T) {
	silent := startBackend(t, backendSilent)
	tm := timerValues{t1: 50 * time.Millisecond, t2: 400 * time.Millisecond, t4: 250 * time.Millisecond, c: 10 * time.Second}
	_, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.timers = tm
		c.FailoverTimeout = 100 * time.Millisecond
	}, silent)
	c := newClient(t, edge)
	c.send(t, "INVITE", "no-ack", 1)
	start := time.Now()
	rs := c.readResponses(t, tm.t64()+time.Second, nil)
	var at []time.Duration
	for _, r := range rs {
		if r.code == 503 {
			at = append(at, r.at.Sub(start))
		}
	}
	// A busy machine fires timers late, and each late firing delays the
	// next ones: the last one or two may fall after Timer H.
	if len(at) < 9 || len(at) > 11 {
		t.Fatalf("503 sent %d times without an ACK, want 11 (at least 9 on a busy machine): %v", len(at), at)
	}
	for i := 2; i < len(at); i++ {
		if gap, prev := at[i]-at[i-1], at[i-1]-at[i-2]; gap < prev*3/4 && gap < tm.t2*3/4 {
			t.Errorf("retransmission intervals shrink: %v", at)
		}
	}
	if last := at[len(at)-1]; last > tm.t64()+tm.t2 {
		t.Errorf("503 retransmitted at %v, after Timer H (%v)", last, tm.t64())
	}
}

// Item 10: the table has a cap; an INVITE beyond it gets 503 with
// Retry-After and is counted.
func TestFailoverTableCap(t *testing.T) {
	silent := startBackend(t, backendSilent)
	p, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.MaxTransactions = 2
		c.FailoverTimeout = 10 * time.Second
	}, silent)
	c := newClient(t, edge)
	for i := range 3 {
		c.send(t, "INVITE", fmt.Sprintf("cap-%d", i), 1)
	}
	rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return len(rs) >= 3 })
	var refused []response
	for _, r := range rs {
		if r.code == 503 {
			refused = append(refused, r)
		}
	}
	if len(refused) != 1 || refused[0].callID != "cap-2" {
		t.Fatalf("503s %v, want one, to cap-2", refused)
	}
	if !strings.Contains(string(refused[0].raw), "\r\nRetry-After: 5\r\n") {
		t.Errorf("no Retry-After in\n%s", refused[0].raw)
	}
	s := p.Stats().Snapshot()
	if n := counterOf(s.Stateful, statTableFull); n != 1 || s.Pending != 2 {
		t.Errorf("table_full %d pending %d, want 1 and 2", n, s.Pending)
	}
}

// Item 10: a pending call costs no goroutine: the timers are shared.
func TestFailoverNoGoroutinePerCall(t *testing.T) {
	silent := startBackend(t, backendSilent)
	_, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.FailoverTimeout = 20 * time.Second
	}, silent)
	c := newClient(t, edge)
	before := runtime.NumGoroutine()
	const n = 300
	go func() { c.readResponses(t, 10*time.Second, nil) }()
	for i := range n {
		c.send(t, "INVITE", fmt.Sprintf("g-%d", i), 1)
	}
	waitFor(t, 5*time.Second, "the backend to see every INVITE", func() bool {
		return count(silent.methods(), "INVITE") >= n
	})
	if more := runtime.NumGoroutine() - before; more > 20 {
		t.Errorf("%d goroutines more with %d calls pending", more, n)
	}
}

// Item 15: a flood of calls that all fail writes a bounded number of lines,
// and the next line that passes says how many were held back.
func TestFailoverLogFlood(t *testing.T) {
	var logw syncBuffer
	b := startBackend(t, backend503)
	_, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logw), nil))
	}, b)
	c := newClient(t, edge)
	const n = 200
	start := time.Now()
	go func() {
		for i := range n {
			c.send(t, "INVITE", fmt.Sprintf("flood-%d", i), 1)
		}
	}()
	rs := c.readResponses(t, 10*time.Second, func(rs []response) bool { return calls(rs, "INVITE", 503) >= n })
	if got := calls(rs, "INVITE", 503); got < n {
		t.Fatalf("%d of %d calls answered 503", got, n)
	}
	elapsed := time.Since(start)
	lines := strings.Count(logw.String(), "every destination failed")
	if max := int(elapsed/time.Second) + 1; lines > max {
		t.Errorf("%d lines for %d failed calls in %v, want at most %d", lines, n, elapsed, max)
	}
	time.Sleep(1100 * time.Millisecond)
	c.send(t, "INVITE", "flood-last", 1)
	c.readResponses(t, 3*time.Second, func(rs []response) bool {
		return len(rs) > 0 && rs[len(rs)-1].callID == "flood-last" && rs[len(rs)-1].code == 503
	})
	var last string
	for _, l := range strings.Split(logw.String(), "\n") {
		if strings.Contains(l, "every destination failed") {
			last = l
		}
	}
	if !strings.Contains(last, "suppressed=") {
		t.Errorf("the line after the flood has no suppressed count: %s", last)
	}
}

// A retransmitted INVITE is absorbed by its transaction: the caller gets
// the 100 Trying again, the backend no second INVITE from it.
func TestFailoverInviteRetransmissionAbsorbed(t *testing.T) {
	silent := startBackend(t, backendSilent)
	p, edge := startTestProxy(t, Rule{Failover: true}, func(c *Config) {
		c.FailoverTimeout = 10 * time.Second
		// Timer A far beyond the test: any second INVITE the backend
		// gets is the caller's retransmission, not absorbed.
		c.timers = timerValues{t1: 5 * time.Second, t2: 5 * time.Second, t4: 5 * time.Second, c: time.Minute}
	}, silent)
	c := newClient(t, edge)
	c.send(t, "INVITE", "retrans", 1)
	c.send(t, "INVITE", "retrans", 1)
	rs := c.readResponses(t, 300*time.Millisecond, nil)
	if n := finals(rs, "INVITE", 100); n != 2 {
		t.Errorf("%d 100 Trying for two copies of the INVITE, want 2", n)
	}
	if n := count(silent.methods(), "INVITE"); n != 1 {
		t.Errorf("backend got %d INVITEs before Timer A, want 1", n)
	}
	if n := counterOf(p.Stats().Snapshot().Stateful, statInviteRetransmission); n != 1 {
		t.Errorf("invite_retransmission = %d, want 1", n)
	}
}

// A destination given up on (failover timeout) that answers late with a
// non-2xx still gets its ACK (RFC 3261 §17.1.1.3), or it would retransmit
// the response for 32 s.
func TestFailoverLateFinalAcked(t *testing.T) {
	late := startBackend(t, backendLate503)
	ok := startBackend(t, backend200)
	edge := startFailoverProxy(t, late, ok)
	c := newClient(t, edge)
	c.send(t, "INVITE", "late", 1)
	if codes := c.waitFinal(t, "INVITE", 3*time.Second); codes[len(codes)-1] != 200 {
		t.Fatalf("final %v, want 200 from the second destination", codes)
	}
	waitFor(t, 2*time.Second, "the late 503 to be ACKed", func() bool { return count(late.methods(), "ACK") == 1 })
}
