package sipproxy

import (
	"container/heap"
	"time"
)

// The failover transactions share one timer: a min-heap of transactions
// ordered by their next deadline, served by one goroutine (Proxy.runTimers).
// A transaction is in the heap at most once, under its earliest deadline;
// when it fires, the table works out which of its timers (A, B/C, D, G, H,
// I, L) are due and reschedules it. A pending call therefore costs a heap
// slot, not a goroutine or a runtime timer per RFC 3261 timer.

type txHeap []*invTx

func (h txHeap) Len() int           { return len(h) }
func (h txHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h txHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *txHeap) Push(x any) {
	tx := x.(*invTx)
	tx.idx = len(*h)
	*h = append(*h, tx)
}
func (h *txHeap) Pop() any {
	old := *h
	n := len(old)
	tx := old[n-1]
	old[n-1] = nil
	tx.idx = -1
	*h = old[:n-1]
	return tx
}

// schedule puts tx in the heap under due, moves it there, or takes it out
// when due is zero. It reports whether tx is now the earliest.
func (h *txHeap) schedule(tx *invTx, due time.Time) bool {
	tx.due = due
	switch {
	case due.IsZero() && tx.idx >= 0:
		heap.Remove(h, tx.idx)
		return false
	case due.IsZero():
		return false
	case tx.idx >= 0:
		heap.Fix(h, tx.idx)
	default:
		heap.Push(h, tx)
	}
	return tx.idx == 0
}

// earliest is min over non-zero times; zero when all are zero.
func earliest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if !t.IsZero() && (m.IsZero() || t.Before(m)) {
			m = t
		}
	}
	return m
}
