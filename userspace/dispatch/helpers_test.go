package dispatch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// testRand is a fixed source, so weight tables are the same on every run.
func testRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// fakeResolver answers from a map; other names fail.
func fakeResolver(m map[string]string) Resolver {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		a, ok := m[host]
		if !ok {
			return nil, fmt.Errorf("no such host %s", host)
		}
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
}

// ents makes entries of one set from URIs, with a Source per line.
func ents(set int, uris ...string) []Entry {
	out := make([]Entry, len(uris))
	for i, u := range uris {
		out[i] = Entry{SetID: set, URI: u, Source: fmt.Sprintf("dispatcher.list:%d", i+1)}
	}
	return out
}

// mustBuild builds with a fixed random source, failing the test on error.
func mustBuild(t testing.TB, opt Options, entries []Entry) *Snapshot {
	t.Helper()
	if opt.Rand == nil {
		opt.Rand = testRand()
	}
	s, err := Build(context.Background(), entries, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// uris lists a set's URIs in index order.
func uris(set *Set) []string {
	out := make([]string, len(set.Dests))
	for i := range set.Dests {
		out[i] = set.Dests[i].URI
	}
	return out
}

// selURIs lists a selection's URIs in order.
func selURIs(sel Selection) []string {
	out := make([]string, len(sel.Dests))
	for i := range sel.Dests {
		out[i] = sel.Dests[i].URI
	}
	return out
}

// hosts returns n entries of set 1: sip:10.0.0.1 .. sip:10.0.0.n.
func hosts(n int) []Entry {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("sip:10.0.%d.%d", (i+1)/256, (i+1)%256)
	}
	return ents(1, u...)
}
