package dispatch

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Call load (algorithm 10, Kamailio's ds_ht.c): a table from the 64-bit
// Call-ID hash the whole agent keys calls on (the caller computes it) to
// the destination carrying the call, and a load per (set, duid): the live
// calls of that table charged to it.
//
// The table is sharded by the hash's top bits, each shard a map under its
// own lock: insert, look-up and removal are O(1) and calls on different
// shards do not wait for each other. A load is one atomic counter that
// picks read without a lock, plus its count per shard, changed together
// under that shard's lock: the audit can so recount one shard at a time
// against the loads' share in it, exactly, while the other shards serve.
//
// Loads are keyed by (set, duid), not by destination: a reload, an add or
// a remove builds new Sets, and the loads carry over to every destination
// that keeps its duid (kamailio PR #2353; Kamailio refuses to reload with
// alg 10 and starts counting from 0 when it reloads). A load is never
// dropped: the calls it counts may end after the destination is gone.

// loadShards is the number of shards of the Call-ID table, chosen by the
// hash's top loadShardBits bits (the hash is avalanched: they are as good
// as any).
const (
	loadShardBits = 6
	loadShards    = 1 << loadShardBits
)

// releasedLinger is how long a released call keeps its destination: the
// ACK of a non-2xx final, a CANCEL's 487 ACK and retransmitted BYEs, which
// come after the release, still go where the call went; 64*T1, the life of
// a transaction's retransmissions.
const releasedLinger = 32 * time.Second

// maxPreallocLog bounds the cells ds_hash_size preallocates (2^20): the
// table grows past it.
const maxPreallocLog = 20

// CallLoadConfig are the call-load modparams.
type CallLoadConfig struct {
	// Size is ds_hash_size: the table starts with room for 2^Size calls
	// (at most 2^20) and grows past it. Kamailio's table has exactly 2^Size
	// slots, each a list.
	Size int
	// Expire is ds_hash_expire: a call is dropped this long after its
	// INVITE, answered or not, unless released before.
	Expire time.Duration
	// InitExpire is ds_hash_initexpire: an unanswered call is dropped this
	// long after its INVITE.
	InitExpire time.Duration
	// CheckInterval is ds_hash_check_interval: how often expired calls are
	// dropped and the loads audited.
	CheckInterval time.Duration
}

// DefaultCallLoadConfig are Kamailio's defaults, with Size 10.
func DefaultCallLoadConfig() CallLoadConfig {
	return CallLoadConfig{Size: 10, Expire: 2 * time.Hour, InitExpire: 2 * time.Hour, CheckInterval: 30 * time.Second}
}

// CallEvent is what a message does to the call it belongs to.
type CallEvent uint8

// The call events, from the messages both paths forward.
const (
	// CallBye is a BYE request: the call ends, whatever its state.
	CallBye CallEvent = iota
	// CallCancel is a CANCEL request: an unanswered call ends; an answered
	// one stays (a CANCEL cannot end it).
	CallCancel
	// CallAnswered is a 2xx reply to INVITE: the call is confirmed.
	CallAnswered
	// CallRejected is a 3xx-6xx reply to INVITE: an unanswered call ends;
	// an answered one stays (a re-INVITE was refused).
	CallRejected
)

// cellState is a call's state in the table.
type cellState uint8

const (
	cellInit      cellState = iota // INVITE sent, no 2xx yet: counted
	cellConfirmed                  // 2xx seen: counted
	cellReleased                   // ended: not counted, kept for releasedLinger
)

// loadCell is one call. Times are whole seconds on the table's clock.
type loadCell struct {
	ctr *loadCounter
	// expire is the INVITE's time + Expire; deadline is when the timer
	// drops the cell: min(expire, INVITE + InitExpire) while INIT, expire
	// once confirmed, release + releasedLinger once released.
	expire, deadline uint32
	state            cellState
}

func (c *loadCell) live() bool { return c.state != cellReleased }

type loadShard struct {
	mu    sync.Mutex
	cells map[uint64]loadCell
	_     [40]byte // one shard per cache line
}

// loadKey names a load.
type loadKey struct {
	set  int
	duid string
}

// loadCounter is the load of one (set, duid): total, read by picks, and
// its share in each shard, which only that shard's lock guards. total is
// always the sum of the shares: both change together, under that lock.
type loadCounter struct {
	key   loadKey
	total atomic.Int64
	share [loadShards]int32
}

// reserve adds one call to the load unless max > 0 and the load is at
// max already. The caller holds shard si's lock.
func (c *loadCounter) reserve(si int, max int) bool {
	for {
		v := c.total.Load()
		if max > 0 && v >= int64(max) {
			return false
		}
		if c.total.CompareAndSwap(v, v+1) {
			c.share[si]++
			return true
		}
	}
}

// CallLoad is the call-load state of a Dispatcher (EnableCallLoad).
type CallLoad struct {
	now   func() time.Time
	epoch time.Time

	expire, initExpire atomic.Int64 // seconds
	interval           atomic.Int64 // time.Duration

	shards [loadShards]loadShard

	mu       sync.Mutex
	counters map[loadKey]*loadCounter

	expired     atomic.Uint64
	corrections atomic.Uint64
	underflows  atomic.Uint64
}

func newCallLoad(c CallLoadConfig, now func() time.Time) *CallLoad {
	if now == nil {
		now = time.Now
	}
	l := &CallLoad{now: now, epoch: now(), counters: map[loadKey]*loadCounter{}}
	l.SetConfig(c)
	per := (1 << min(max(c.Size, 0), maxPreallocLog)) / loadShards
	for i := range l.shards {
		l.shards[i].cells = make(map[uint64]loadCell, per)
	}
	return l
}

// SetConfig takes new expiry times and check interval (a reload); Size is
// read at EnableCallLoad only. Calls already in the table keep their
// expiry; the interval applies from the next check.
func (l *CallLoad) SetConfig(c CallLoadConfig) {
	l.expire.Store(int64(c.Expire / time.Second))
	l.initExpire.Store(int64(c.InitExpire / time.Second))
	l.interval.Store(int64(c.CheckInterval))
}

// clock is now in whole seconds since the table was made.
func (l *CallLoad) clock() uint32 { return uint32(l.now().Sub(l.epoch) / time.Second) }

func shardOf(h uint64) int { return int(h >> (64 - loadShardBits)) }

// counter returns the load of (set, duid), made on first use.
func (l *CallLoad) counter(set int, duid string) *loadCounter {
	k := loadKey{set, duid}
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.counters[k]
	if !ok {
		// A copy of the duid: it may alias a buffer of the caller's.
		k.duid = strings.Clone(duid)
		c = &loadCounter{key: k}
		l.counters[k] = c
	}
	return c
}

// Load returns the load of (set, duid): its calls not yet ended.
func (l *CallLoad) Load(set int, duid string) int64 {
	l.mu.Lock()
	c := l.counters[loadKey{set, duid}]
	l.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.total.Load()
}

// Update applies what a message does to the call with that Call-ID hash
// (nothing for a call the table does not hold).
func (l *CallLoad) Update(callID uint64, ev CallEvent) {
	si := shardOf(callID)
	sh := &l.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, ok := sh.cells[callID]
	if !ok || !c.live() {
		return
	}
	switch ev {
	case CallBye:
	case CallCancel, CallRejected:
		if c.state != cellInit {
			return
		}
	case CallAnswered:
		if c.state == cellInit {
			c.state, c.deadline = cellConfirmed, c.expire
			sh.cells[callID] = c
		}
		return
	default:
		return
	}
	l.unload(si, c.ctr)
	c.state, c.deadline = cellReleased, l.clock()+uint32(releasedLinger/time.Second)
	sh.cells[callID] = c
}

// Has reports whether the table holds the call with that Call-ID hash,
// ended or not.
func (l *CallLoad) Has(callID uint64) bool {
	sh := &l.shards[shardOf(callID)]
	sh.mu.Lock()
	_, ok := sh.cells[callID]
	sh.mu.Unlock()
	return ok
}

// unload takes one call off ctr's share in shard si. A share already at 0
// is left there and counted: the load never goes below zero
// (kamailio#1591), and the audit would put it right. The caller holds the
// shard's lock.
func (l *CallLoad) unload(si int, ctr *loadCounter) {
	if ctr.share[si] <= 0 {
		l.underflows.Add(1)
		return
	}
	ctr.share[si]--
	ctr.total.Add(-1)
}

// CallLoadStats are the table's counters.
type CallLoadStats struct {
	Calls       int    // cells in the table, released ones included
	Live        int    // calls counted in a load
	Expired     uint64 // live calls dropped by the timer (no BYE, CANCEL or final seen)
	Corrections uint64 // calls the audit added to or took from loads
	Underflows  uint64 // releases that found the load at 0
}

// Stats returns the counters; Calls and Live walk the table.
func (l *CallLoad) Stats() CallLoadStats {
	st := CallLoadStats{Expired: l.expired.Load(), Corrections: l.corrections.Load(), Underflows: l.underflows.Load()}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		st.Calls += len(sh.cells)
		for _, c := range sh.cells {
			if c.live() {
				st.Live++
			}
		}
		sh.mu.Unlock()
	}
	return st
}

// Run drops expired calls and audits the loads every check interval until
// ctx ends; corrected, when not nil, gets the number of calls each audit
// that found drift corrected.
func (l *CallLoad) Run(ctx context.Context, corrected func(calls uint64)) error {
	for {
		d := time.Duration(l.interval.Load())
		if d <= 0 {
			d = DefaultCallLoadConfig().CheckInterval
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			if n := l.Check(); n > 0 && corrected != nil {
				corrected(n)
			}
		}
	}
}

// Check drops the calls whose time is up (ds_hash_check_interval's
// timer) and audits every load against the live calls of the table
// (kamailio#2322: loads drifting from the calls), one shard at a time.
// It returns the calls the audit corrected.
func (l *CallLoad) Check() uint64 {
	now := l.clock()
	l.mu.Lock()
	ctrs := make([]*loadCounter, 0, len(l.counters))
	for _, c := range l.counters {
		ctrs = append(ctrs, c)
	}
	l.mu.Unlock()
	var fixed uint64
	count := map[*loadCounter]int32{}
	for si := range l.shards {
		sh := &l.shards[si]
		sh.mu.Lock()
		clear(count)
		for h, c := range sh.cells {
			if int64(now)-int64(c.deadline) > 0 {
				if c.live() {
					l.unload(si, c.ctr)
					l.expired.Add(1)
				}
				delete(sh.cells, h)
				continue
			}
			if c.live() {
				count[c.ctr]++
			}
		}
		// A load made after ctrs was taken has its cells of this shard in
		// count; one with none here has a share of 0 here.
		for _, c := range ctrs {
			if _, ok := count[c]; !ok {
				count[c] = 0
			}
		}
		for c, n := range count {
			if d := n - c.share[si]; d != 0 {
				c.share[si] = n
				c.total.Add(int64(d))
				fixed += uint64(max(d, -d))
			}
		}
		sh.mu.Unlock()
	}
	l.corrections.Add(fixed)
	return fixed
}

// place finds or makes the call's cell and returns the index of the
// destination of set that carries it (set must have loads, see
// selectCallLoad). invite says the request is an INVITE.
func (l *CallLoad) place(set *Set, ctrs []*loadCounter, h uint64, invite bool) (int, error) {
	si := shardOf(h)
	sh := &l.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, known := sh.cells[h]
	at := -1
	if known {
		for i, ctr := range ctrs {
			if ctr == c.ctr {
				at = i
				break
			}
		}
	}
	if !invite {
		// In-dialog requests, CANCEL, ACK: where the call went, in any
		// state; a call the table does not know starts at index 0, as in
		// Kamailio.
		if at >= 0 {
			return at, nil
		}
		return set.walked(0)
	}
	if at >= 0 && set.Dests[at].Up() {
		if c.live() {
			return at, nil // a retransmission or a re-INVITE
		}
		// A new INVITE of a released call (after a 401/407 challenge):
		// counted again where it went, if there is room.
		if c.ctr.reserve(si, set.Dests[at].Attrs.MaxLoad) {
			l.track(sh, h, c.ctr)
			return at, nil
		}
	}
	i, err := l.leastLoaded(set, ctrs, si)
	if err != nil {
		return -1, err
	}
	if known && c.live() {
		l.unload(si, c.ctr) // its destination is down or gone: moved
	}
	l.track(sh, h, ctrs[i])
	return i, nil
}

// track stores a new INIT call charged to ctr. The caller holds sh's lock
// and has reserved the call on ctr.
func (l *CallLoad) track(sh *loadShard, h uint64, ctr *loadCounter) {
	now := l.clock()
	exp := now + uint32(l.expire.Load())
	dl := min(exp, now+uint32(l.initExpire.Load()))
	sh.cells[h] = loadCell{ctr: ctr, expire: exp, deadline: dl, state: cellInit}
}

// leastLoaded picks the up destination with the smallest load, skipping
// those without a duid and those whose load is at their maxload (0: no
// limit); ties go to the lowest index. With use_default the default is
// taken only when no other can be. The call is reserved on the pick's load.
// The caller holds shard si's lock.
func (l *CallLoad) leastLoaded(set *Set, ctrs []*loadCounter, si int) (int, error) {
	// A reservation fails only when another pick filled the load
	// meanwhile; loads only fill so far, so the retries are bounded.
	for range len(set.Dests) + 1 {
		best, bestLoad := -1, int64(0)
		for i := range set.Dests {
			d := &set.Dests[i]
			if ctrs[i] == nil || !d.Up() || i == set.DefaultIdx {
				continue
			}
			v := ctrs[i].total.Load()
			if d.Attrs.MaxLoad > 0 && v >= int64(d.Attrs.MaxLoad) {
				continue
			}
			if best < 0 || v < bestLoad {
				best, bestLoad = i, v
			}
		}
		if best < 0 {
			if i := set.DefaultIdx; i >= 0 && ctrs[i] != nil && set.Dests[i].Up() {
				best = i
			} else {
				return -1, ErrNoDestination
			}
		}
		if ctrs[best].reserve(si, set.Dests[best].Attrs.MaxLoad) {
			return best, nil
		}
	}
	return -1, ErrNoDestination
}

// move charges the call h to ctr (failover to another destination, as
// ds_next_dst does), unless ctr's load is at max; it reports whether the
// call may go there. A call the table does not hold may go anywhere.
func (l *CallLoad) move(h uint64, ctr *loadCounter, max int) bool {
	si := shardOf(h)
	sh := &l.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, ok := sh.cells[h]
	if !ok || c.ctr == ctr {
		return true
	}
	if !c.live() {
		c.ctr = ctr
		sh.cells[h] = c
		return true
	}
	if !ctr.reserve(si, max) {
		return false
	}
	l.unload(si, c.ctr)
	c.ctr = ctr
	sh.cells[h] = c
	return true
}

// loadIndex holds a Set's loads, one per destination (nil: no duid),
// resolved on first use; shared by the Sets derived from one (same
// destinations, same duids).
type loadIndex struct {
	once sync.Once
	l    *CallLoad
	ctrs []*loadCounter
}

// loads returns the loads of set's destinations in l.
func (s *Set) loads(l *CallLoad) []*loadCounter {
	resolve := func() []*loadCounter {
		ctrs := make([]*loadCounter, len(s.Dests))
		for i := range s.Dests {
			if duid := s.Dests[i].Attrs.DUID; duid != "" {
				ctrs[i] = l.counter(s.ID, duid)
			}
		}
		return ctrs
	}
	x := s.loadIdx
	if x == nil {
		return resolve()
	}
	x.once.Do(func() { x.l, x.ctrs = l, resolve() })
	if x.l != l {
		return resolve() // a Set served by two dispatchers: rare, tests
	}
	return x.ctrs
}

// selectCallLoad is Select for algorithm 10.
func (s *Snapshot) selectCallLoad(set *Set, key Key, limit int) (Selection, error) {
	if s.loads == nil {
		return Selection{}, ErrCallLoadOff
	}
	if strings.Trim(key.CallID, " \t") == "" {
		return Selection{}, ErrEmptyHashKey
	}
	i, err := s.loads.place(set, set.loads(s.loads), key.CallIDHash, key.Invite)
	if err != nil {
		return Selection{}, err
	}
	return Selection{SetID: set.ID, Dests: set.cachedFailover(i, limit)}, nil
}

// EnableCallLoad turns algorithm 10 on (ds_hash_size > 0) and returns its
// table, whose Run the caller runs; a second call returns the first table
// with c's expiry times and interval. now is the clock (nil: time.Now).
func (d *Dispatcher) EnableCallLoad(c CallLoadConfig, now func() time.Time) *CallLoad {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.loads.Load(); l != nil {
		l.SetConfig(c)
		return l
	}
	l := newCallLoad(c, now)
	d.loads.Store(l)
	next := *d.cur.Load()
	d.swapLocked(&next)
	return l
}

// CallLoad returns the call-load table, nil when EnableCallLoad was not
// called.
func (d *Dispatcher) CallLoad() *CallLoad { return d.loads.Load() }

// MoveCallLoad charges the call with that Call-ID hash to dst of set
// setID, the next destination a failover tries (ds_next_dst moves the
// load). It reports false when dst's load is at its maxload: the failover
// should skip it. Without call load, or for a call the table does not
// hold, it reports true and changes nothing.
func (d *Dispatcher) MoveCallLoad(setID int, callID uint64, dst *Destination) bool {
	snap := d.cur.Load()
	if snap.loads == nil || dst.Attrs.DUID == "" {
		return true
	}
	return snap.loads.move(callID, snap.loads.counter(setID, dst.Attrs.DUID), dst.Attrs.MaxLoad)
}

// record charges the call h to ctr: the call went there, picked by
// someone else (the fast path), maxload or not. A live call already
// charged to ctr (a retransmission, a re-INVITE) changes nothing; a live
// call charged elsewhere moves; a released or unknown one is counted again
// from INIT.
func (l *CallLoad) record(h uint64, ctr *loadCounter) {
	si := shardOf(h)
	sh := &l.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, ok := sh.cells[h]
	if ok && c.live() {
		if c.ctr == ctr {
			return
		}
		l.unload(si, c.ctr)
	}
	ctr.share[si]++
	ctr.total.Add(1)
	l.track(sh, h, ctr)
}

// RecordCallLoad enters in the Call-ID table an INVITE the fast path
// dispatched to dst of set setID with algorithm 10 (the program picked and
// charged it as Select would have): the call is charged to dst's load, and
// Select sends its later messages there. Retransmissions are charged once.
// Without call load, or for a destination without a duid (algorithm 10
// never picks one), it does nothing.
func (d *Dispatcher) RecordCallLoad(setID int, callID uint64, dst *Destination) {
	snap := d.cur.Load()
	if snap.loads == nil || dst.Attrs.DUID == "" {
		return
	}
	snap.loads.record(callID, snap.loads.counter(setID, dst.Attrs.DUID))
}
