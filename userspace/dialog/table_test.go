package dialog

import "testing"

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
