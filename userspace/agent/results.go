package agent

import (
	"log/slog"
	"sync/atomic"

	"github.com/sipedge/sipedge/userspace/probe"
)

// resultQueueLen bounds the results waiting for the goroutine that
// applies them.
const resultQueueLen = 16384

// resultQueue carries a probe engine's results to the one goroutine that
// applies them (dispatcher probing, keepalive). The engine calls put from
// its own goroutine and from the slow path's readers, which must never
// wait: a result that finds the queue full is dropped and counted (the
// destination is probed again at its next interval).
type resultQueue struct {
	ch       chan probe.Result
	dropped  atomic.Uint64
	reported uint64 // dropped at the last report; the applying goroutine's
}

func (q *resultQueue) init() { q.ch = make(chan probe.Result, resultQueueLen) }

// put is the engine's OnResult.
func (q *resultQueue) put(r probe.Result) {
	select {
	case q.ch <- r:
	default:
		q.dropped.Add(1)
	}
}

// reportLost logs the results dropped since the last report, if any.
func (q *resultQueue) reportLost(log *slog.Logger, msg string) {
	if n := q.dropped.Load(); n != q.reported {
		log.Warn(msg, "lost", n-q.reported)
		q.reported = n
	}
}
