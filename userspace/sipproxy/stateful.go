package sipproxy

import (
	"net/netip"
	"sync"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// timerValues are the RFC 3261 §17 timers a Proxy runs its failover
// transactions with: per Proxy, so that tests can shrink or stretch them.
type timerValues struct {
	t1, t2, t4 time.Duration
	// c bounds a branch that sent a provisional and nothing after (RFC 3261
	// §16.6 step 11: more than 3 minutes).
	c time.Duration
}

// rfcTimers are the RFC 3261 values for UDP (Kamailio's tm defaults alike).
var rfcTimers = timerValues{t1: 500 * time.Millisecond, t2: 4 * time.Second, t4: 5 * time.Second, c: 181 * time.Second}

// t64 is 64*T1: Timers B, D (non-2xx ACK absorption), F, H and L.
func (tv timerValues) t64() time.Duration { return 64 * tv.t1 }

// DefaultMaxTransactions is the default cap of the failover transaction
// table (config failover.max_transactions).
const DefaultMaxTransactions = 32768

// DefaultMaxTransactionBytes is the default byte budget of the failover
// transaction table (config failover.max_transaction_bytes): about what
// the default count cap holds with 1 kB INVITEs, so that INVITEs up to
// 64 kB cannot make the table hold more than small ones at the cap.
const DefaultMaxTransactionBytes = 64 << 20

// overflowRetryAfter is the Retry-After of the 503 a full table answers.
const overflowRetryAfter = 5

// serverState is the upstream side of a failover INVITE (RFC 3261 §17.2.1,
// with RFC 6026's Accepted state).
type serverState uint8

const (
	srvProceeding serverState = iota // no final response sent yet
	srvCompleted                     // non-2xx final sent; Timer G retransmits it until the ACK or Timer H
	srvConfirmed                     // its ACK came; Timer I absorbs ACK retransmissions
	srvAccepted                      // a 2xx went up; Timer L absorbs INVITE retransmissions
	srvTerminated
)

// branchState is one downstream INVITE client transaction (RFC 3261
// §17.1.1) as a stateful proxy runs it (§16.7, §16.10).
type branchState uint8

const (
	brCalling       branchState = iota // INVITE sent; Timer A retransmits, the failover timeout waits
	brProceeding                       // a provisional came; Timer C waits for the final
	brCancelPending                    // cancelled before any provisional: CANCEL goes when one comes (§9.1)
	brCancelling                       // CANCEL sent (retransmitted); waiting for the final
	brDone                             // final response received (non-2xx ACKed) or given up
)

// branch is one destination tried for a failover INVITE.
type branch struct {
	id  string // our Via branch, statefulBranchPrefix + token
	dst netip.AddrPort
	uri string // the destination's URI, for Observe
	// out is the INVITE as sent (for Timer A and to build CANCEL and ACK).
	out    []byte
	cancel []byte // the CANCEL as sent, once sent
	ack    []byte // the ACK sent for its non-2xx final, resent on retransmissions
	ack2xx []byte // the ACK of a stray 2xx (stray2xx), resent on retransmissions
	state  branchState
	// interval is Timer A's (INVITE) or Timer E's (CANCEL) current value.
	interval time.Duration
	tA       time.Time // next retransmission
	tEnd     time.Time // failover timeout / Timer B, Timer C, or the cancel wait
}

// invTx is a failover-mode INVITE: its server transaction towards the
// caller and the branches tried downstream, one at a time.
type invTx struct {
	key    string // the caller's top Via branch
	sentBy string // the caller's top Via sent-by, part of the match
	local  netip.AddrPort
	up     netip.AddrPort // where responses to the caller go
	in     []byte         // the caller's INVITE, as received
	src    netip.AddrPort // where it came from
	dests  []dispatch.Destination
	next   int // index in dests of the next destination to try
	callID string

	state    serverState
	last     []byte // the provisional or final sent upstream last (nil: only 100 Trying), for retransmissions
	interval time.Duration
	tG       time.Time // Timer G: retransmit the non-2xx final
	tEnd     time.Time // Timer H, I or L: the server side ends

	branches []*branch // every branch tried; the last one is current
	answered *branch   // the branch whose 2xx went up, if one did

	// For Observe: the listener's name, the set dispatched to, and
	// whether the INVITE was reported (observe.go).
	listener string
	setID    int
	observed bool
	// callLoad: the rule dispatches with alg 10, whose load follows the
	// destination tried.
	callLoad bool

	due  time.Time // earliest of the timers above: the heap key
	idx  int       // index in txTable.heap, -1 when not in it
	held int       // bytes counted in txTable.bytes for it
}

// size is the bytes of messages tx holds.
func (tx *invTx) size() int {
	n := len(tx.in) + len(tx.last)
	for _, b := range tx.branches {
		n += len(b.out) + len(b.cancel) + len(b.ack) + len(b.ack2xx)
	}
	return n
}

func (tx *invTx) current() *branch {
	if len(tx.branches) == 0 {
		return nil
	}
	return tx.branches[len(tx.branches)-1]
}

// nextDue is the earliest timer of tx and its branches.
func (tx *invTx) nextDue() time.Time {
	d := earliest(tx.tG, tx.tEnd)
	for _, b := range tx.branches {
		d = earliest(d, b.tA, b.tEnd)
	}
	return d
}

// finished says nothing is left to do: the server side has ended and no
// branch waits for a final response.
func (tx *invTx) finished() bool {
	if tx.state != srvTerminated {
		return false
	}
	for _, b := range tx.branches {
		if b.state != brDone {
			return false
		}
	}
	return true
}

// txTable holds the failover transactions: by the caller's branch (the
// server side, RFC 3261 §17.2.3 matching on branch and sent-by) and by our
// branches (the client side, §17.1.3). One mutex guards it and the timer
// heap; the work under it is a few map operations and sendto calls.
type txTable struct {
	max      int
	maxBytes int64

	mu       sync.Mutex
	byKey    map[string]*invTx
	byBranch map[string]*invTx
	heap     txHeap
	wake     chan struct{}
	bytes    int64 // sum of the transactions' held bytes
}

func newTxTable(max int, maxBytes int64) *txTable {
	if max <= 0 {
		max = DefaultMaxTransactions
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxTransactionBytes
	}
	return &txTable{
		max:      max,
		maxBytes: maxBytes,
		byKey:    make(map[string]*invTx),
		byBranch: make(map[string]*invTx),
		wake:     make(chan struct{}, 1),
	}
}

// owns implements Options.OwnsTransaction: a CANCEL with this top Via
// branch and sent-by belongs to a failover INVITE; an ACK does only while
// the INVITE's non-2xx final is out (Completed, Confirmed: RFC 3261
// §17.2.3). The ACK of a 2xx is a transaction of its own, end to end,
// even when a UA reuses the INVITE's branch in it: it goes to the callee.
func (t *txTable) owns(branch, sentBy []byte, ack bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx, ok := t.byKey[string(branch)]
	if !ok || tx.sentBy != string(sentBy) {
		return false
	}
	return !ack || tx.state == srvCompleted || tx.state == srvConfirmed
}

// full says why an INVITE of n bytes cannot start a transaction now (the
// stateful counter), or "". It holds n twice: the caller's copy and the
// INVITE sent to the first destination. The caller holds t.mu.
func (t *txTable) full(n int) string {
	switch {
	case len(t.byKey) >= t.max:
		return statTableFull
	case t.bytes+2*int64(n) > t.maxBytes:
		return statTableBytesFull
	}
	return ""
}

// usage is the number of transactions and the bytes they hold.
func (t *txTable) usage() (int, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey), t.bytes
}

// Len is the number of failover transactions in the table.
func (t *txTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

// reschedule puts tx under its next deadline, or drops it from the table
// when it has finished. The caller holds t.mu.
func (t *txTable) reschedule(tx *invTx) {
	n := tx.size()
	t.bytes += int64(n - tx.held)
	tx.held = n
	if tx.finished() {
		t.bytes -= int64(tx.held)
		tx.held = 0
		t.heap.schedule(tx, time.Time{})
		delete(t.byKey, tx.key)
		for _, b := range tx.branches {
			delete(t.byBranch, b.id)
		}
		return
	}
	if t.heap.schedule(tx, tx.nextDue()) {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}
