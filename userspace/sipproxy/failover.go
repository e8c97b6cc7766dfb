package sipproxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// Failover mode is Kamailio's t_relay + failure_route + ds_next_dst: the
// INVITE is relayed statefully to the picked destination; a timeout without
// any response, or a 5xx final response, moves it to the next destination of
// the failover list; when the list is spent the caller gets 503. A failed
// destination is skipped for this call only: without probing (a later
// issue), Kamailio's ds_mark_dst would take it out for good.
//
// The transactions are the package's own (stateful.go, timers.go), run on
// the raw datagrams: the caller's side is an INVITE server transaction
// (RFC 3261 §17.2.1: Proceeding, Completed with Timers G and H, Confirmed
// with Timer I; RFC 6026's Accepted with Timer L), each destination an
// INVITE client transaction (§17.1.1: Timer A, the failover timeout in
// place of Timer B, Timer C once a provisional came, the hop-by-hop ACK of
// a non-2xx final, CANCEL per §9.1). sipgo builds the outgoing INVITE.

// statefulBranchPrefix marks branches of failover-mode client transactions,
// so that the contract (and the XDP program) hand their responses to the
// transaction layer instead of forwarding them statelessly.
const statefulBranchPrefix = "z9hG4bKsf"

// Stateful counters (Stats.Stateful).
const (
	statInviteRetransmission = "invite_retransmission" // absorbed; the last response resent
	statAckAbsorbed          = "ack_absorbed"          // the ACK of a non-2xx final the agent sent
	statAckTimeout           = "ack_timeout"           // Timer H: the caller never ACKed the final
	statTableFull            = "table_full"            // INVITE refused (503 Retry-After): the table is at its cap
	statTableBytesFull       = "table_bytes_full"      // INVITE refused (503 Retry-After): the table holds its byte budget
	statBranchFailed         = "branch_failed"         // a destination timed out or answered 5xx
	statAllFailed            = "all_failed"            // every destination failed: 503
	statCancelled            = "cancelled"             // the caller's CANCEL: 487
	statStuck                = "stuck"                 // a transaction waiting for nothing, unfinished: ended (500 up when no final went)
	statStray2xx             = "stray_2xx"             // a 2xx from a branch given up on: ACKed and ended with BYE, not relayed
)

// statefulInvite starts the failover transaction of a handed-off INVITE, or
// absorbs a retransmission of one.
func (p *Proxy) statefulInvite(data []byte, src, local netip.AddrPort, sel dispatch.Selection) {
	var m sipmsg.Msg
	if sipmsg.Parse(data, &m) != nil {
		p.stats.drop(DropMalformed)
		return
	}
	branch, sentBy, ok := m.TopViaKey(data)
	if !ok {
		p.stats.drop(DropMalformed)
		return
	}
	up, ok := p.upstream(data, &m, src, local)
	if !ok {
		return
	}
	t := p.txs
	t.mu.Lock()
	done := p.admitInvite(data, &m, src, local, branch, sentBy)
	t.mu.Unlock()
	if done {
		return
	}
	// The outgoing INVITE is built outside the lock (sipgo's parse and
	// print, the random branch): the timers and the other calls go on
	// meanwhile. sipgo is stricter than the contract's scanner: what it
	// refuses is answered here. Retransmissions and refusals above cost
	// no sipgo parse.
	req, err := parseRequest(data)
	if err != nil {
		p.replyLocked(data, &m, src, local, 400, "Bad Request", "")
		p.refusedCallLoad(local, m.CallID.Bytes(data))
		p.logs.info(p.log, "failover INVITE refused by sipgo's parser", "src", src.String(), "error", err)
		return
	}
	tx := &invTx{
		key:    string(branch),
		sentBy: string(sentBy),
		local:  local,
		up:     up,
		in:     append([]byte(nil), data...),
		src:    unmapped(src),
		dests:  sel.Dests,
		callID: string(m.CallID.Bytes(data)),
		idx:    -1,
		setID:  sel.SetID,
	}
	if l, ok := p.listener(local); ok {
		tx.listener = l.Name
		tx.callLoad = l.Rule.Alg == dispatch.AlgCallLoad
	}
	first := p.nextBranch(tx, req)
	t.mu.Lock()
	defer t.mu.Unlock()
	// A copy of the INVITE may have started the transaction meanwhile, or
	// other calls filled the table.
	if p.admitInvite(data, &m, src, local, branch, sentBy) {
		return
	}
	// Asked last, when nothing else can stop the transaction: an admitted
	// INVITE is then always observed (Config.Admit, Observed.Failover).
	if p.refusedFailover(data, &m, src, local, sel.SetID) {
		return
	}
	now := time.Now()
	p.trying(tx, data, &m, src)
	t.byKey[tx.key] = tx
	if first != nil {
		p.launch(tx, first, now)
	} else {
		p.allFailed(tx, now)
	}
	p.reschedule(tx)
}

// admitInvite answers an INVITE that starts no transaction: a
// retransmission (absorbed, the last response sent again), a branch
// another client reuses (482), a full table (503 Retry-After). It says
// whether it did. The caller holds p.txs.mu.
func (p *Proxy) admitInvite(data []byte, m *sipmsg.Msg, src, local netip.AddrPort, branch, sentBy []byte) bool {
	t := p.txs
	if tx, ok := t.byKey[string(branch)]; ok {
		if tx.sentBy != string(sentBy) {
			// Another client reused the branch: RFC 3261 §17.2.3 says it is
			// another transaction, which this table cannot hold beside the
			// first. Refuse it rather than mix the two.
			p.replyLocked(data, m, src, local, 482, "Loop Detected", "")
			return true
		}
		p.stats.stateful(statInviteRetransmission)
		switch {
		case tx.last != nil:
			p.write(tx.local, tx.last, tx.up)
		case tx.state == srvProceeding:
			p.trying(tx, data, m, src)
		}
		return true
	}
	if why := t.full(len(data)); why != "" {
		p.stats.stateful(why)
		p.logs.warn(p.log, "failover: transaction table full, INVITE refused with 503", "why", why,
			"max_transactions", t.max, "max_transaction_bytes", t.maxBytes, "call_id", string(m.CallID.Bytes(data)))
		p.replyLocked(data, m, src, local, 503, "Service Unavailable", strconv.Itoa(overflowRetryAfter))
		p.refusedCallLoad(local, m.CallID.Bytes(data))
		return true
	}
	return false
}

// refusedCallLoad releases the call load (alg 10) of an INVITE the
// selection charged and the failover layer then refused itself: Observe
// does not report that reply, so without this the load would stay until
// ds_hash_initexpire.
func (p *Proxy) refusedCallLoad(local netip.AddrPort, callID []byte) {
	l, ok := p.listener(local)
	if !ok || l.Rule.Alg != dispatch.AlgCallLoad {
		return
	}
	if cl := p.fwd.d.CallLoad(); cl != nil {
		cl.Update(wordhash.CallID(trimWSP(callID)), dispatch.CallRejected)
	}
}

// upstream is where the replies to a request go (replyAddr), checked once
// like every next hop taken from a message (issue 7 item 7, nexthop.go): a
// caller whose Via points at nowhere, everyone or the agent itself gets no
// reply and no transaction; the request is dropped and counted.
func (p *Proxy) upstream(data []byte, m *sipmsg.Msg, src, local netip.AddrPort) (netip.AddrPort, bool) {
	up := replyAddr(src, m.TopVia.HasRport, m.TopVia.PortNum)
	if reason := p.fwd.resolvedNextHop(local, up, false); reason != "" {
		p.stats.drop(reason)
		p.logs.log(p.log, slog.LevelDebug, "failover: request dropped, its replies would go to "+up.String(),
			"reason", reason, "src", src.String(), "call_id", string(m.CallID.Bytes(data)))
		return up, false
	}
	return up, true
}

// trying sends 100 Trying for the INVITE data: a stateful proxy answers
// it at once (RFC 3261 §16.2), so the caller stops retransmitting while the
// destinations are tried. It is a function of the request, so it is made
// again for a retransmission rather than kept.
func (p *Proxy) trying(tx *invTx, data []byte, m *sipmsg.Msg, src netip.AddrPort) {
	var buf [2048]byte
	if out, ok := appendReply(buf[:0], data, m, src, 100, "Trying"); ok {
		p.write(tx.local, out, tx.up)
	}
}

// replyLocked answers a request statelessly, with a Retry-After header
// when retryAfter is set.
func (p *Proxy) replyLocked(data []byte, m *sipmsg.Msg, src, local netip.AddrPort, code int, reason, retryAfter string) {
	out, ok := appendReply(nil, data, m, src, code, reason)
	if !ok {
		p.stats.drop("malformed_unanswerable")
		return
	}
	if retryAfter != "" {
		// The reply has no body: it ends with the empty line.
		out = append(out[:len(out)-2:len(out)-2], "Retry-After: "+retryAfter+"\r\n\r\n"...)
	}
	if p.sendReply(local, out, replyAddr(src, m.TopVia.HasRport, m.TopVia.PortNum)) {
		p.stats.replied(code)
	}
}

// startNextBranch sends the INVITE to the next destination of the failover
// list, or answers 503 when none is left. The caller holds p.txs.mu.
func (p *Proxy) startNextBranch(tx *invTx, now time.Time) {
	if b := p.nextBranch(tx, nil); b != nil {
		p.launch(tx, b, now)
		return
	}
	p.allFailed(tx, now)
}

// nextBranch builds the INVITE for the next destination of tx that takes
// one, or returns nil when none is left. req, when not nil, is tx.in
// parsed by sipgo, which it consumes; else it parses tx.in again. It only
// reads and advances tx.next: tx is not in the table yet, or the caller
// holds p.txs.mu.
func (p *Proxy) nextBranch(tx *invTx, req *sip.Request) *branch {
	for tx.next < len(tx.dests) {
		dst := tx.dests[tx.next]
		tx.next++
		// Call load (alg 10): the call's load moves with it, as
		// ds_next_dst moves it; a destination at its maxload is skipped.
		if tx.callLoad && tx.next > 1 && !p.fwd.d.MoveCallLoad(tx.setID, wordhash.CallID(trimWSP([]byte(tx.callID))), &dst) {
			continue
		}
		b, err := p.newBranch(tx, dst, req)
		req = nil
		if err != nil {
			p.logs.warn(p.log, "failover: cannot build INVITE", "dst", dst.URI, "error", err)
			continue
		}
		return b
	}
	return nil
}

// launch sends branch b's INVITE and starts its timers. The caller holds
// p.txs.mu.
func (p *Proxy) launch(tx *invTx, b *branch, now time.Time) {
	tx.branches = append(tx.branches, b)
	p.txs.byBranch[b.id] = tx
	p.send(tx.local, b.out, b.dst)
	b.state = brCalling
	b.interval = p.tm.t1
	b.tA = now.Add(p.tm.t1)
	b.tEnd = now.Add(min(p.cfg.FailoverTimeout, p.tm.t64()))
}

// allFailed answers 503: no destination is left.
func (p *Proxy) allFailed(tx *invTx, now time.Time) {
	p.stats.stateful(statAllFailed)
	p.logs.warn(p.log, "failover: every destination failed", "call_id", tx.callID, "tried", len(tx.dests))
	p.finalUp(tx, 503, "Service Unavailable", now)
}

// finalUp sends a final response the agent makes itself (503, 487) to the
// caller and enters Completed: Timer G retransmits it, doubling up to T2,
// until the ACK (statefulAck) or Timer H.
func (p *Proxy) finalUp(tx *invTx, code int, reason string, now time.Time) {
	var m sipmsg.Msg
	if sipmsg.Parse(tx.in, &m) != nil {
		return
	}
	out, ok := appendReply(nil, tx.in, &m, tx.up, code, reason)
	if !ok {
		return
	}
	if p.write(tx.local, out, tx.up) {
		p.stats.replied(code)
	}
	p.observeLocalFinal(tx, out)
	p.enterCompleted(tx, out, now)
}

func (p *Proxy) enterCompleted(tx *invTx, final []byte, now time.Time) {
	tx.state = srvCompleted
	tx.last = final
	tx.interval = p.tm.t1
	tx.tG = now.Add(p.tm.t1)
	tx.tEnd = now.Add(p.tm.t64())
}

// statefulAck absorbs the caller's ACK of a non-2xx final response this
// transaction sent (RFC 3261 §17.2.1): Completed becomes Confirmed, Timer G
// stops, and Timer I (T4) absorbs the ACK's retransmissions.
func (p *Proxy) statefulAck(data []byte) {
	var m sipmsg.Msg
	if sipmsg.Parse(data, &m) != nil {
		p.stats.drop(DropMalformed)
		return
	}
	branch, sentBy, _ := m.TopViaKey(data)
	t := p.txs
	t.mu.Lock()
	defer t.mu.Unlock()
	tx, ok := t.byKey[string(branch)]
	if !ok || tx.sentBy != string(sentBy) {
		// The transaction ended between the contract's check and here.
		p.stats.drop("ack_no_transaction")
		return
	}
	p.stats.stateful(statAckAbsorbed)
	if tx.state == srvCompleted {
		tx.state = srvConfirmed
		tx.tG = time.Time{}
		tx.tEnd = time.Now().Add(p.tm.t4)
		p.reschedule(tx)
	}
}

// statefulCancel answers the caller's CANCEL (200), ends the INVITE with
// 487 when no final went up yet, and cancels the current branch: at once
// when it sent a provisional, else when it sends one (RFC 3261 §9.1).
func (p *Proxy) statefulCancel(data []byte, src, local netip.AddrPort) {
	var m sipmsg.Msg
	if sipmsg.Parse(data, &m) != nil {
		p.stats.drop(DropMalformed)
		return
	}
	branch, sentBy, _ := m.TopViaKey(data)
	if _, ok := p.upstream(data, &m, src, local); !ok {
		return
	}
	now := time.Now()
	t := p.txs
	t.mu.Lock()
	defer t.mu.Unlock()
	tx, ok := t.byKey[string(branch)]
	if !ok || tx.sentBy != string(sentBy) {
		p.replyLocked(data, &m, src, local, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	p.replyLocked(data, &m, src, local, 200, "OK", "")
	if tx.state != srvProceeding {
		return
	}
	p.stats.stateful(statCancelled)
	tx.next = len(tx.dests) // no failover after a CANCEL
	if b := tx.current(); b != nil {
		switch b.state {
		case brCalling:
			b.state, b.tA, b.tEnd = brCancelPending, time.Time{}, now.Add(p.tm.t64())
		case brProceeding:
			p.sendCancel(tx, b, now)
		}
	}
	p.finalUp(tx, 487, "Request Terminated", now)
	p.reschedule(tx)
}

// sendCancel cancels branch b downstream; Timer E's doubling to T2
// retransmits the CANCEL until the INVITE's final response or 64*T1.
func (p *Proxy) sendCancel(tx *invTx, b *branch, now time.Time) {
	out, ok := appendHopRequest(nil, "CANCEL", b.out, nil)
	if !ok {
		b.state, b.tA, b.tEnd = brDone, time.Time{}, time.Time{}
		return
	}
	b.cancel = out
	p.write(tx.local, out, b.dst)
	b.state = brCancelling
	b.interval = p.tm.t1
	b.tA = now.Add(p.tm.t1)
	b.tEnd = now.Add(p.tm.t64())
}

// statefulResponse takes a response to one of our branches, from src.
func (p *Proxy) statefulResponse(data []byte, src netip.AddrPort) {
	var m sipmsg.Msg
	if sipmsg.Parse(data, &m) != nil || m.NumVias == 0 || m.TopVia.Err != nil {
		p.stats.drop(DropMalformed)
		return
	}
	id := string(m.TopVia.Branch.Bytes(data))
	// A response matches a client transaction by branch and CSeq method
	// (RFC 3261 §17.1.3): ours are INVITEs and their CANCELs. One without
	// a CSeq, or for another method, is none of ours.
	switch method := string(m.CSeq.Method.Bytes(data)); {
	case m.CSeq.Err != nil:
		p.stats.drop(DropMalformed)
		return
	case method == "CANCEL":
		// The 200 to our CANCEL: the INVITE's final response is what ends
		// the branch; stop retransmitting the CANCEL only.
		p.cancelAnswered(id)
		return
	case method != "INVITE":
		p.stats.drop("response_no_transaction")
		return
	}
	now := time.Now()
	t := p.txs
	t.mu.Lock()
	defer t.mu.Unlock()
	tx, ok := t.byBranch[id]
	if !ok {
		p.stats.drop("response_no_transaction")
		return
	}
	var b *branch
	for _, c := range tx.branches {
		if c.id == id {
			b = c
		}
	}
	if b == nil {
		p.stats.drop("response_no_transaction")
		return
	}
	code := m.StatusCode
	current := b == tx.current()
	if code < 200 {
		switch b.state {
		case brCalling:
			b.state, b.tA, b.tEnd = brProceeding, time.Time{}, now.Add(p.tm.c)
		case brCancelPending:
			p.sendCancel(tx, b, now)
		}
		if code > 100 && current && b.state == brProceeding && tx.state == srvProceeding {
			p.relayUp(tx, b, data, &m, src, now)
		}
		p.reschedule(tx)
		return
	}
	if code < 300 && !p.answers(tx, b) {
		p.stray2xx(tx, b, data, &m)
		b.state, b.tA, b.tEnd = brDone, time.Time{}, time.Time{}
		p.reschedule(tx)
		return
	}
	if b.state == brDone {
		// A retransmission of the final (our ACK was lost), a 2xx the
		// callee retransmits (RFC 6026), which goes up, or a late final of
		// a branch given up on, which is ACKed all the same.
		switch {
		case code < 300:
			p.relayUp(tx, b, data, &m, src, now)
		case b.ack == nil:
			if ack, ok := appendHopRequest(nil, "ACK", b.out, toLine(data, &m)); ok {
				b.ack = ack
				p.write(tx.local, ack, b.dst)
			}
		default:
			p.write(tx.local, b.ack, b.dst)
		}
		p.reschedule(tx) // the ACK it may hold now counts
		return
	}
	cancelled := b.state == brCancelPending || b.state == brCancelling
	b.state, b.tA, b.tEnd = brDone, time.Time{}, time.Time{}
	if code >= 300 {
		// Hop by hop (RFC 3261 §17.1.1.3): the ACK of a non-2xx is ours.
		if ack, ok := appendHopRequest(nil, "ACK", b.out, toLine(data, &m)); ok {
			b.ack = ack
			p.write(tx.local, ack, b.dst)
		}
	}
	switch {
	case code < 300:
		// The answer of the current branch (answers said so).
		tx.answered = b
		p.relayUp(tx, b, data, &m, src, now)
	case tx.state != srvProceeding || !current:
		// The caller has its final already, or this branch was left for a
		// later one: nothing goes up.
	case code >= 500 && code < 600 && !cancelled:
		p.stats.stateful(statBranchFailed)
		p.logs.info(p.log, "failover: destination failed", "call_id", tx.callID,
			"dst", b.dst.String(), "attempt", len(tx.branches), "status", code)
		p.startNextBranch(tx, now)
	default:
		p.relayUp(tx, b, data, &m, src, now)
	}
	p.reschedule(tx)
}

// answers says whether a 2xx from branch b goes up to the caller: the
// first 2xx of the current branch while no final went up, and the
// retransmissions of the 2xx that did. A proxy relays every 2xx (RFC 3261
// §16.7 step 5), but this one tries one destination at a time and answers
// the caller itself (503, 487): a 2xx from a branch it gave up on, or
// after its own final, would be a second answered call or a 2xx after a
// final. Such a 2xx is ended downstream instead (stray2xx).
func (p *Proxy) answers(tx *invTx, b *branch) bool {
	if tx.answered != nil {
		return tx.answered == b
	}
	return tx.state == srvProceeding && b == tx.current() && (b.state == brCalling || b.state == brProceeding)
}

// stray2xx ends the dialog a 2xx from a branch given up on set up, as
// Kamailio's tm does for a 2xx after a CANCEL: the ACK the callee waits
// for, then a BYE. Both go to the destination the INVITE went to, with the
// 2xx's Contact as Request-URI. A retransmission of the 2xx gets the ACK
// again; the BYE is sent once.
func (p *Proxy) stray2xx(tx *invTx, b *branch, data []byte, m *sipmsg.Msg) {
	if b.ack2xx != nil {
		p.write(tx.local, b.ack2xx, b.dst)
		return
	}
	l, ok := p.listener(tx.local)
	if !ok {
		return
	}
	p.stats.stateful(statStray2xx)
	p.logs.info(p.log, "failover: 2xx from a destination given up on, ended with ACK and BYE",
		"call_id", tx.callID, "dst", b.dst.String())
	ack, okAck := appendDialogRequest(nil, "ACK", b.out, data, m, advText(l), newBranchID())
	bye, okBye := appendDialogRequest(nil, "BYE", b.out, data, m, advText(l), newBranchID())
	if !okAck || !okBye {
		p.stats.drop(DropInternal)
		return
	}
	b.ack2xx = ack
	p.write(tx.local, ack, b.dst)
	p.write(tx.local, bye, b.dst)
}

// newBranchID is a fresh branch of ours (RFC 3261 §8.1.1.7), in the
// stateful space so that responses to it come to the transaction layer.
// crypto/rand.Read never fails (Go 1.24).
func newBranchID() string {
	var token [8]byte
	_, _ = rand.Read(token[:])
	return statefulBranchPrefix + hex.EncodeToString(token[:])
}

// appendDialogRequest appends the ACK or BYE the agent sends, as the
// caller would, in the dialog a 2xx (res) to the INVITE inv set up: the
// 2xx's Contact as Request-URI (inv's when it has none), our Via with
// branch, inv's From, Call-ID and CSeq number (plus one for BYE), the 2xx's
// To (with the callee's tag).
func appendDialogRequest(out []byte, method string, inv, res []byte, rm *sipmsg.Msg, sentBy, branch string) ([]byte, bool) {
	var m sipmsg.Msg
	if sipmsg.Parse(inv, &m) != nil || m.CSeq.Err != nil {
		return out, false
	}
	from, okFrom := m.First(sipmsg.KindFrom)
	callID, okCallID := m.First(sipmsg.KindCallID)
	to, okTo := rm.First(sipmsg.KindTo)
	if !okFrom || !okCallID || !okTo {
		return out, false
	}
	ruri := m.RURI.Bytes(inv)
	if c, ok := rm.First(sipmsg.KindContact); ok {
		if u := contactURI(c.Value.Bytes(res)); len(u) > 0 {
			ruri = u
		}
	}
	seq := m.CSeq.Seq
	if method == "BYE" {
		seq++
	}
	out = append(out, method...)
	out = append(out, ' ')
	out = append(out, ruri...)
	out = append(out, " SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	out = append(out, sentBy...)
	out = append(out, ";branch="...)
	out = append(out, branch...)
	out = append(out, "\r\nMax-Forwards: 70\r\n"...)
	out = append(out, from.Line.Bytes(inv)...)
	out = append(out, to.Line.Bytes(res)...)
	out = append(out, callID.Line.Bytes(inv)...)
	out = append(out, "CSeq: "...)
	out = strconv.AppendUint(out, uint64(seq), 10)
	out = append(out, ' ')
	out = append(out, method...)
	out = append(out, "\r\nContent-Length: 0\r\n\r\n"...)
	return out, true
}

// contactURI is the URI of a Contact value: between the angle brackets,
// or up to the first ';' or ',' without them. Nil when there is none.
func contactURI(v []byte) []byte {
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		j := bytes.IndexByte(v[i:], '>')
		if j < 0 {
			return nil
		}
		v = v[i+1 : i+j]
	} else if i := bytes.IndexAny(v, ";,"); i >= 0 {
		v = v[:i]
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || bytes.ContainsAny(v, " \t\r\n") {
		return nil
	}
	return v
}

// reschedule puts tx under its next deadline in the timer heap, or ends it
// when it has finished. A transaction with nothing left to wait for (no
// timer) that has not finished would keep its slot forever: a final that
// could not be relayed up leaves one so. It is ended here: the caller gets
// 500 when it has no final yet (then Completed runs as for any final), and
// whatever still has no timer is over. The caller holds p.txs.mu.
func (p *Proxy) reschedule(tx *invTx) {
	if !tx.finished() && tx.nextDue().IsZero() {
		p.stats.stateful(statStuck)
		p.logs.warn(p.log, "failover: transaction waiting for nothing ended", "call_id", tx.callID, "state", int(tx.state))
		if tx.state == srvProceeding {
			p.finalUp(tx, 500, "Server Internal Error", time.Now())
		}
		for _, b := range tx.branches {
			if b.tA.IsZero() && b.tEnd.IsZero() {
				b.state = brDone
			}
		}
		if tx.tG.IsZero() && tx.tEnd.IsZero() {
			tx.state = srvTerminated
		}
	}
	p.txs.reschedule(tx)
}

// cancelAnswered stops the CANCEL retransmissions of branch id.
func (p *Proxy) cancelAnswered(id string) {
	t := p.txs
	t.mu.Lock()
	defer t.mu.Unlock()
	tx, ok := t.byBranch[id]
	if !ok {
		p.stats.drop("response_no_transaction")
		return
	}
	for _, b := range tx.branches {
		if b.id == id && b.state == brCancelling {
			b.tA = time.Time{}
		}
	}
	p.reschedule(tx)
}

// relayUp sends a downstream response of branch b, from src, to the caller
// without our Via. A provisional is kept for INVITE retransmissions; a
// final moves the server side to Accepted (2xx) or Completed.
func (p *Proxy) relayUp(tx *invTx, b *branch, data []byte, m *sipmsg.Msg, src netip.AddrPort, now time.Time) {
	var ed editor
	ed.begin, ed.end = int(m.Start.Start), len(data)
	if m.ContentLength >= 0 && m.Body+m.ContentLength <= len(data) {
		ed.end = m.Body + m.ContentLength
	}
	if !removeFirst(&ed, m, m.Vias[:m.NumVias], 1) {
		p.stats.drop(DropInternal)
		return
	}
	out, ok := ed.write(data, nil)
	if !ok {
		p.stats.drop(DropInternal)
		return
	}
	if p.send(tx.local, out, tx.up) {
		// The first response that goes up names the destination of the
		// call: the INVITE is reported now, before it (observe.go).
		p.observeInvite(tx, b)
		p.observeRelayed(tx, data, m, src)
	}
	if tx.state != srvProceeding {
		return
	}
	switch code := m.StatusCode; {
	case code < 200:
		tx.last = out
	case code < 300:
		tx.state = srvAccepted
		tx.last = nil
		tx.tG = time.Time{}
		tx.tEnd = now.Add(p.tm.t64())
	default:
		p.enterCompleted(tx, out, now)
	}
}

// fire runs the timers of tx that are due at now. The caller holds
// p.txs.mu and reschedules tx afterwards.
func (p *Proxy) fire(tx *invTx, now time.Time) {
	due := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }
	if due(tx.tG) { // Timer G
		p.write(tx.local, tx.last, tx.up)
		tx.interval = min(2*tx.interval, p.tm.t2)
		tx.tG = now.Add(tx.interval)
	}
	if due(tx.tEnd) { // Timer H, I or L
		if tx.state == srvCompleted {
			p.stats.stateful(statAckTimeout)
		}
		tx.state, tx.tG, tx.tEnd = srvTerminated, time.Time{}, time.Time{}
	}
	for _, b := range tx.branches {
		if due(b.tA) {
			switch b.state {
			case brCalling: // Timer A
				p.write(tx.local, b.out, b.dst)
				b.interval *= 2
			case brCancelling: // Timer E of the CANCEL
				p.write(tx.local, b.cancel, b.dst)
				b.interval = min(2*b.interval, p.tm.t2)
			}
			b.tA = now.Add(b.interval)
		}
		if !due(b.tEnd) {
			continue
		}
		state := b.state
		switch state {
		case brCalling:
			// Given up on before any provisional: no CANCEL may go yet
			// (RFC 3261 §9.1); one goes if a provisional comes, and its
			// final is awaited until 64*T1 (Kamailio's tm alike), so a
			// destination that answers late is cancelled, not left ringing.
			b.state, b.tA, b.tEnd = brCancelPending, time.Time{}, now.Add(p.tm.t64())
		case brProceeding:
			// Timer C: it rang and never answered.
			p.sendCancel(tx, b, now)
		default:
			// The wait for a cancelled branch's final is over.
			b.state, b.tA, b.tEnd = brDone, time.Time{}, time.Time{}
			continue
		}
		if b == tx.current() && tx.state == srvProceeding {
			p.stats.stateful(statBranchFailed)
			p.logs.info(p.log, "failover: destination failed", "call_id", tx.callID,
				"dst", b.dst.String(), "attempt", len(tx.branches), "status", "timeout")
			p.startNextBranch(tx, now)
		}
	}
}

// newBranch builds the INVITE for one destination: received/rport on the
// caller's Via, Max-Forwards, our Via with a fresh stateful branch, and
// Record-Route when the rule asks.
// req, when not nil, is tx.in parsed; newBranch edits it.
func (p *Proxy) newBranch(tx *invTx, dst dispatch.Destination, req *sip.Request) (*branch, error) {
	if !dst.Addr.IsValid() {
		return nil, fmt.Errorf("destination %s has no address", dst.URI)
	}
	l, ok := p.listener(tx.local)
	if !ok {
		return nil, fmt.Errorf("no listener %s", tx.local)
	}
	if req == nil {
		var err error
		if req, err = parseRequest(tx.in); err != nil {
			return nil, err
		}
	}
	id := newBranchID()
	if via := req.Via(); via != nil {
		// tx.up is the caller's source when it asked for rport.
		src := tx.up
		ip := src.Addr().String()
		if v, ok := via.Params.Get("rport"); ok && v == "" {
			via.Params.Add("rport", strconv.Itoa(int(src.Port())))
			via.Params.Add("received", ip)
		} else if via.Host != ip {
			via.Params.Add("received", ip)
		}
	}
	if mf := req.MaxForwards(); mf != nil {
		mf.Dec()
	} else {
		req.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	}
	host, port := advertised(l)
	via := &sip.ViaHeader{
		ProtocolName:    "SIP",
		ProtocolVersion: "2.0",
		Transport:       "UDP",
		Host:            host,
		Port:            port,
		Params:          sip.NewParams(),
	}
	via.Params.Add("branch", id)
	if l.Rule.RecordRoute {
		req.PrependHeader(sip.NewHeader("Record-Route", "<sip:"+advText(l)+";lr>"))
	}
	// Our Via is the first header line, alone: appendHopRequest copies it.
	req.PrependHeader(via)
	return &branch{id: id, dst: dst.Addr, uri: dst.URI, out: []byte(req.String())}, nil
}

// parseRequest parses a request with sipgo.
func parseRequest(data []byte) (*sip.Request, error) {
	msg, err := sip.ParseMessage(data)
	if err != nil {
		return nil, fmt.Errorf("parse INVITE: %w", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, fmt.Errorf("parse INVITE: not a request")
	}
	return req, nil
}

// toLine is the To header line of a response (with the callee's tag), for
// the ACK of its non-2xx final.
func toLine(data []byte, m *sipmsg.Msg) []byte {
	if h, ok := m.First(sipmsg.KindTo); ok {
		return h.Line.Bytes(data)
	}
	return nil
}

// appendHopRequest appends the CANCEL or the non-2xx ACK of the INVITE inv
// we sent (RFC 3261 §9.1, §17.1.1.3): its Request-URI, its top Via only
// (ours), its Route, From, Call-ID and CSeq number, and To from inv or, for
// the ACK, the response's (to).
func appendHopRequest(out []byte, method string, inv, to []byte) ([]byte, bool) {
	var m sipmsg.Msg
	if sipmsg.Parse(inv, &m) != nil || m.NumVias == 0 {
		return out, false
	}
	via, okVia := m.First(sipmsg.KindVia)
	from, okFrom := m.First(sipmsg.KindFrom)
	callID, okCallID := m.First(sipmsg.KindCallID)
	invTo, okTo := m.First(sipmsg.KindTo)
	if !okVia || !okFrom || !okCallID || !okTo || m.CSeq.Err != nil {
		return out, false
	}
	if to == nil {
		to = invTo.Line.Bytes(inv)
	}
	out = append(out, method...)
	out = append(out, ' ')
	out = append(out, m.RURI.Bytes(inv)...)
	out = append(out, " SIP/2.0\r\n"...)
	out = append(out, via.Line.Bytes(inv)...)
	for i := 0; i < m.NumHeaders; i++ {
		if m.Headers[i].Kind == sipmsg.KindRoute {
			out = append(out, m.Headers[i].Line.Bytes(inv)...)
		}
	}
	out = append(out, from.Line.Bytes(inv)...)
	out = append(out, to...)
	out = append(out, callID.Line.Bytes(inv)...)
	out = append(out, "CSeq: "...)
	out = append(out, m.CSeq.Num.Bytes(inv)...)
	out = append(out, ' ')
	out = append(out, method...)
	out = append(out, "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"...)
	return out, true
}

func (p *Proxy) listener(local netip.AddrPort) (Listener, bool) {
	for _, l := range p.cfg.Listeners {
		if l.Addr == local {
			return l, true
		}
	}
	return Listener{}, false
}

// advertised splits the listener's ADV into host and port.
func advertised(l Listener) (string, int) {
	ap, err := netip.ParseAddrPort(advText(l))
	if err == nil {
		return ap.Addr().String(), int(ap.Port())
	}
	host, port := splitHostPort(advText(l))
	return host, port
}
