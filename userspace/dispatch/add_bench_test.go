package dispatch

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAdd2000 is 2,000 dispatcher.add calls into a dispatcher that
// starts with two sets of 100 destinations: one op is all 2,000 adds, half
// into an existing set and half into new sets.
func BenchmarkAdd2000(b *testing.B) {
	base := append(hosts(100), ents(2, hosts(100)[0].URI)...)
	entries := make([]Entry, 2000)
	for i := range entries {
		set := 1
		if i%2 == 1 {
			set = 10 + i
		}
		entries[i] = Entry{SetID: set, URI: fmt.Sprintf("sip:10.1.%d.%d:5060", i/250, i%250), Priority: i % 3}
	}
	ctx := context.Background()
	for b.Loop() {
		d := New(mustBuild(b, Options{}, base))
		for _, e := range entries {
			if err := d.Add(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	}
}
