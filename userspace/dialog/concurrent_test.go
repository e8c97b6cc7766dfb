package dialog

import (
	"sync"
	"testing"
)

// TestConcurrent runs the feeders of both paths, the timer and RPC queries
// at once (run with -race), then checks the tracker is consistent and that
// every call was applied.
func TestConcurrent(t *testing.T) {
	const feeders, calls = 3, 3000
	tr := New(Config{MaxRecords: 1 << 20})
	q, err := ParseQuery("src", "sw", "sip:alice@call-1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for f := range feeders {
		wg.Go(func() {
			var batch []Message
			for i := range calls {
				call := callName(f*calls + i)
				batch = append(batch, invite(call, "b1", "gw"), reply(call, 180), reply(call, 200), request(call, Ack))
				if i%2 == 0 {
					batch = append(batch, request(call, Bye))
				}
				if len(batch) >= 512 {
					tr.Observe(batch)
					batch = batch[:0]
				}
			}
			tr.Observe(batch)
		})
	}
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			tr.Count(q)
			tr.TagsCount("gw")
			tr.Find(q, 3)
			tr.Stats()
			tr.Expire(t0) // nothing is due at t0
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	if err := tr.checkConsistency(true); err != nil {
		t.Fatal(err)
	}
	const total = feeders * calls
	st := tr.Stats()
	if st.Active[Confirmed] != total/2 || st.Active[Terminated] != total/2 || tr.TagsCount("gw") != total/2 {
		t.Errorf("active %v, tag count %d; want %d confirmed and terminated", st.Active, tr.TagsCount("gw"), total/2)
	}
}
