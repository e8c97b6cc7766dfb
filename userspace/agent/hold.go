package agent

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dialog"
)

// Holding the slow path's messages of calls not known yet: the INVITE of
// a call can take the fast path, whose events reach the feed up to
// EventPollInterval plus a drain later, while its reply (a 200 with an SDP
// too long for the program) or its ACK and BYE take the slow path, which
// delivers at once. Delivered first, they would match nothing.
const (
	// holdGrace is how long a held message waits for its INVITE before
	// it is delivered anyway.
	holdGrace = 3 * dataplane.EventPollInterval
	// holdMax bounds the held messages; beyond, messages are delivered
	// at once and counted.
	holdMax = 4096
)

// heldMessage is a slow-path message waiting for its call's INVITE.
type heldMessage struct {
	m  dialog.Message
	at time.Time // when it arrived
}

// slowHold holds the slow path's messages of unknown calls, in arrival
// order, until a fast-path batch brings their INVITE or holdGrace passes.
type slowHold struct {
	now func() time.Time
	// pending is len(held), read without the lock by the common path.
	pending atomic.Int64
	// overflow counts messages delivered at once because holdMax were held.
	overflow atomic.Uint64

	mu    sync.Mutex
	held  []heldMessage
	timer *time.Timer // armed while messages are held
	out   []dialog.Message
}

// holdSlow makes f hold the slow path's messages of unknown calls: set
// when the fast path runs, before the paths start.
func (f *feed) holdSlow(now func() time.Time) {
	f.hold = &slowHold{now: now}
}

// knows reports whether a consumer holds the call of hash h.
func (f *feed) knows(h uint64) bool {
	return f.dlg != nil && f.dlg.t.Has(h) || f.loads != nil && f.loads.Has(h)
}

// held reports whether m, a slow-path message, is held: an INVITE request
// is never held; another message is when an earlier one of its call is
// held, or no consumer knows its call. m is copied.
func (f *feed) held(m *dialog.Message) bool {
	h := f.hold
	if h == nil || m.Request && m.Method == dialog.Invite {
		return false
	}
	if h.pending.Load() == 0 && f.knows(m.CallIDHash) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	queued := false
	for i := range h.held {
		if h.held[i].m.CallIDHash == m.CallIDHash {
			queued = true
			break
		}
	}
	if !queued && f.knows(m.CallIDHash) {
		return false
	}
	if len(h.held) >= holdMax {
		h.overflow.Add(1)
		// Behind its call's held messages it would overtake them: those
		// go first.
		if queued {
			f.releaseLocked(true)
		}
		return false
	}
	c := *m
	c.ToTag = strings.Clone(m.ToTag)
	h.held = append(h.held, heldMessage{m: c, at: h.now()})
	h.pending.Store(int64(len(h.held)))
	if h.timer == nil {
		h.timer = time.AfterFunc(holdGrace, f.releaseTimer)
	}
	return true
}

// release delivers, in arrival order, the held messages whose call a
// consumer now knows or whose grace has passed (all when all is set).
func (f *feed) release(all bool) {
	h := f.hold
	if h == nil || h.pending.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	f.releaseLocked(all)
}

// releaseLocked is release with h.mu held: the messages are delivered
// under it, so that a later slow-path message of their call, which checks
// held under it, cannot overtake them.
func (f *feed) releaseLocked(all bool) {
	h := f.hold
	now := h.now()
	h.out = h.out[:0]
	kept := h.held[:0]
	for _, hm := range h.held {
		// Expiry goes by arrival: a call's earlier message expires first,
		// and knowing is by call: its messages leave in order.
		if all || now.Sub(hm.at) >= holdGrace || f.knows(hm.m.CallIDHash) {
			h.out = append(h.out, hm.m)
		} else {
			kept = append(kept, hm)
		}
	}
	clear(h.held[len(kept):])
	h.held = kept
	h.pending.Store(int64(len(kept)))
	if len(h.out) > 0 {
		f.deliver(h.out, nil)
	}
}

// releaseTimer is the one timer's work: expired messages go, and it is
// armed again while messages are held.
func (f *feed) releaseTimer() {
	h := f.hold
	h.mu.Lock()
	defer h.mu.Unlock()
	f.releaseLocked(false)
	if len(h.held) > 0 {
		h.timer.Reset(holdGrace)
	} else {
		h.timer = nil
	}
}
