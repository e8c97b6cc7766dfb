package sipproxy

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// statefulCall is a failover-mode INVITE between the contract's hand-off and
// the end of its server transaction.
type statefulCall struct {
	added     time.Time
	sentBy    string
	local     netip.AddrPort
	selection dispatch.Selection
}

// statefulTable maps the client's INVITE branch to its failover call. The
// contract consults it (owns) to send that transaction's CANCEL and non-2xx
// ACK to the transaction layer instead of forwarding them.
type statefulTable struct {
	mu        sync.Mutex
	calls     map[string]*statefulCall // key: top Via branch of the client's INVITE
	lastSweep time.Time
}

func newStatefulTable() *statefulTable {
	return &statefulTable{calls: make(map[string]*statefulCall)}
}

// owns implements Options.OwnsTransaction.
func (t *statefulTable) owns(branch, sentBy []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.calls[string(branch)]
	return ok && c.sentBy == string(sentBy)
}

// register records an INVITE the contract handed off. A retransmission
// finds its entry already there and keeps it.
func (t *statefulTable) register(data []byte, local netip.AddrPort, sel dispatch.Selection) error {
	branch, sentBy, err := topViaKey(data)
	if err != nil {
		return fmt.Errorf("failover INVITE: %w", err)
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	if _, ok := t.calls[branch]; !ok {
		t.calls[branch] = &statefulCall{added: now, sentBy: sentBy, local: local, selection: sel}
	}
	return nil
}

// statefulCallMaxAge bounds how long an entry may outlive its transaction
// in case sipgo never opened one for it (it refused the INVITE after the
// contract handed it off): well past Timer C (3 min) of the longest call
// setup.
const statefulCallMaxAge = 10 * time.Minute

// sweep drops entries older than statefulCallMaxAge, at most once a minute.
// The caller holds t.mu.
func (t *statefulTable) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < time.Minute {
		return
	}
	t.lastSweep = now
	for k, c := range t.calls {
		if now.Sub(c.added) > statefulCallMaxAge {
			delete(t.calls, k)
		}
	}
}

// lookup finds the call of an INVITE sipgo parsed.
func (t *statefulTable) lookup(req *sip.Request) (*statefulCall, bool) {
	via := req.Via()
	if via == nil {
		return nil, false
	}
	branch, _ := via.Params.Get("branch")
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.calls[branch]
	return c, ok
}

func (t *statefulTable) remove(req *sip.Request) {
	via := req.Via()
	if via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.calls, branch)
}
