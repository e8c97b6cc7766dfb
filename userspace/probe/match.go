package probe

import (
	"bytes"
	"net/netip"
	"sync"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// msgPool holds sipmsg.Msg values (a few KiB each) for HandleResponse,
// which may run on several goroutines at once.
var msgPool = sync.Pool{New: func() any { return new(sipmsg.Msg) }}

// HandleResponse takes a SIP response received from src and, when it
// answers a probe, reports the probe's result. The slow path calls it for
// every response whose only Via is its own; it returns true when the
// message carries this engine's probe branch (Config.BranchPrefix), whatever became of it:
// matched, or counted and ignored as late, unknown, from the wrong source
// or malformed. It returns false for anything else (the caller deals with
// it). It does not keep data.
func (e *Engine) HandleResponse(data []byte, src netip.AddrPort) bool {
	// The slow path offers every reply to each engine behind it: one
	// without this engine's prefix anywhere is another's (or nobody's),
	// not worth a parse, and an unparseable one is counted once, by the
	// engine whose prefix it carries.
	if !bytes.Contains(data, e.prefix) {
		return false
	}
	m := msgPool.Get().(*sipmsg.Msg)
	defer msgPool.Put(m)
	if sipmsg.Parse(data, m) != nil || m.IsRequest || m.NumVias == 0 || m.TopVia.Err != nil {
		e.count(&e.stats.Malformed)
		return false
	}
	branch := m.TopVia.Branch.Bytes(data)
	prefix := e.cfg.BranchPrefix
	if !m.TopVia.HasBranch || len(branch) < len(prefix) || string(branch[:len(prefix)]) != prefix {
		return false
	}
	seq, nonce, ok := parseBranch(branch, prefix)
	switch {
	case !ok:
		e.count(&e.stats.UnknownBranch)
		return true
	case m.StartErr != nil, !m.VersionOK, m.StatusCode < 100, m.StatusCode > 699,
		m.NumVias != 1, m.CSeq.Err != nil, !m.Has(sipmsg.KindCSeq):
		e.count(&e.stats.Malformed)
		return true
	}
	code := m.StatusCode
	method := m.CSeq.Method.Bytes(data)
	now := e.mono(e.now())

	e.mu.Lock()
	tg := e.inflight[seq]
	switch {
	case tg == nil:
		if seq != 0 && seq <= e.seq {
			e.stats.Late++
		} else {
			e.stats.UnknownBranch++
		}
		e.mu.Unlock()
		return true
	case tg.nonce != nonce:
		e.stats.UnknownBranch++
		e.mu.Unlock()
		return true
	case !bytes.Equal(method, []byte(tg.cur.req.method)):
		e.stats.Malformed++
		e.mu.Unlock()
		return true
	case src.Addr().Unmap() != tg.cur.addr.Addr().Unmap() || src.Port() != tg.cur.addr.Port():
		e.stats.WrongSource++
		e.mu.Unlock()
		return true
	case code < 200:
		// RFC 3261 §17.1.2.2: a provisional reply moves the client
		// transaction to Proceeding, retransmitting at T2.
		e.stats.Provisional++
		if tg.rto < e.cfg.T2 {
			tg.rto = e.cfg.T2
			if tg.idx >= 0 {
				e.schedule(tg, min(now+int64(tg.rto), tg.deadline))
			}
		}
		e.mu.Unlock()
		return true
	}
	e.stats.Replies++
	r := e.finish(tg, now, Result{Code: code})
	e.mu.Unlock()
	if e.cfg.OnResult != nil {
		e.cfg.OnResult(r)
	}
	return true
}

func (e *Engine) count(c *uint64) {
	e.mu.Lock()
	*c++
	e.mu.Unlock()
}
