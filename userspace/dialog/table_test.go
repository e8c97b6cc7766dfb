package dialog

import (
	"strconv"
	"testing"

	"github.com/sipedge/sipedge/userspace/wordhash"
)

// TestIndexGrowth checks both ways the Call-ID index grows with records
// held: past its size in Observe, and for a cap raised by SetConfig. After
// each, every call must still be found.
func TestIndexGrowth(t *testing.T) {
	const calls = 3000
	tr := New(Config{MaxRecords: 1000})
	tr.tab.rehash(2) // as if the cap were past maxBucketsInit: Observe grows it
	var msgs, replies []Message
	for i := range calls {
		msgs = append(msgs, invite(callName(i), "b1"))
		replies = append(replies, reply(callName(i), 180))
	}
	tr.Observe(msgs[:1000])
	if n := len(tr.tab.buckets); n < 1000 {
		t.Errorf("%d buckets for 1000 records", n)
	}
	tr.SetConfig(Config{MaxRecords: calls})
	if n := len(tr.tab.buckets); n < calls {
		t.Errorf("%d buckets after the cap rose to %d", n, calls)
	}
	if err := tr.checkConsistency(true); err != nil {
		t.Fatal(err)
	}
	tr.Observe(msgs[1000:])
	tr.Observe(replies)
	if err := tr.checkConsistency(true); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Active[Progress] != calls || st.Unmatched != 0 || st.Shed != 0 {
		t.Errorf("stats %+v after growth", st)
	}
}

// TestBucketsKeyed: Call-IDs chosen so that their hashes share the low
// bits of the index (found offline against wordhash's public seed) still
// spread over the buckets, so none can make every look-up of the others
// walk a long chain.
func TestBucketsKeyed(t *testing.T) {
	tr := New(Config{MaxRecords: 1})
	mask := uint64(len(tr.tab.buckets) - 1)
	target := wordhash.CallID([]byte("victim")) & mask
	var msgs []Message
	for i := 0; len(msgs) < 64; i++ {
		id := "a" + strconv.Itoa(i)
		if wordhash.CallID([]byte(id))&mask == target {
			msgs = append(msgs, invite(id, "b1"))
		}
	}
	tr.SetConfig(Config{MaxRecords: len(msgs)})
	tr.Observe(msgs)
	longest := 0
	for _, head := range tr.tab.buckets {
		n := 0
		for i := head; i != 0; i = tr.tab.at(i).next {
			n++
		}
		longest = max(longest, n)
	}
	// 64 records in 1,024 buckets: a chain of 8 has a chance below 1e-9.
	if longest >= 8 {
		t.Errorf("%d of %d colliding Call-IDs chain in one bucket of %d", longest, len(msgs), mask+1)
	}
	if st := tr.Stats(); st.Active[Init] != uint64(len(msgs)) {
		t.Errorf("stats %+v, want %d INIT", st, len(msgs))
	}
}
