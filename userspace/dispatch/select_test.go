package dispatch

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// pickIdx runs one Select and returns the picked index (or -1 and the error).
func pickIdx(s *Snapshot, alg Alg, key Key) (int, error) {
	sel, err := s.Select(1, alg, key, 1)
	if err != nil {
		return -1, err
	}
	return sel.Dests[0].Index, nil
}

// downAt returns a copy of s with the listed indices of set 1 inactive.
func downAt(t *testing.T, s *Snapshot, idx ...int) *Snapshot {
	t.Helper()
	d := New(s)
	for _, i := range idx {
		if err := d.SetState(1, d.Snapshot().Set(1).Dests[i].IUID, "i"); err != nil {
			t.Fatal(err)
		}
	}
	return d.Snapshot()
}

func TestSelectHashAlgorithms(t *testing.T) {
	s100 := mustBuild(t, Options{}, hosts(100))
	s101def := mustBuild(t, Options{UseDefault: true}, hosts(101))
	s7 := mustBuild(t, Options{}, hosts(7))
	s7user := mustBuild(t, Options{HashUserOnly: true}, hosts(7))
	alice := URIKey{User: "alice", Host: "example.com"}
	alice5080 := URIKey{User: "alice", Host: "example.com", Port: 5080}
	tests := []struct {
		name string
		snap *Snapshot
		alg  Alg
		key  Key
		want int
	}{
		// dispatcher.hash 100 "abc" gives slot 10 in Kamailio 5.6.3.
		{name: "alg 0 abc is slot 10 of 100", snap: s100, alg: AlgCallID, key: Key{CallID: "abc"}, want: 10},
		{name: "alg 0 trims the call-id", snap: s100, alg: AlgCallID, key: Key{CallID: " abc\r\n"}, want: 10},
		{name: "alg 0 walks past a down pick", snap: downAt(t, s100, 10), alg: AlgCallID, key: Key{CallID: "abc"}, want: 11},
		{name: "alg 0 with use_default hashes over n-1", snap: s101def, alg: AlgCallID, key: Key{CallID: "abc"}, want: 10},
		{name: "alg 0 call-id vector", snap: s7, alg: AlgCallID, key: Key{CallID: "a84b4c76e66710@pc33.atlanta.com"}, want: int(2175018094 % 7)},
		{name: "alg 1 from uri", snap: s7, alg: AlgFromURI, key: Key{From: alice}, want: int(1442294598 % 7)},
		{name: "alg 1 port 5060 ignored", snap: s7, alg: AlgFromURI, key: Key{From: URIKey{User: "alice", Host: "example.com", Port: 5060}}, want: int(1442294598 % 7)},
		{name: "alg 1 port 5080 hashed", snap: s7, alg: AlgFromURI, key: Key{From: alice5080}, want: int(4164599908 % 7)},
		{name: "alg 1 user only", snap: s7user, alg: AlgFromURI, key: Key{From: alice5080}, want: int(Hash("alice", "") % 7)},
		{name: "alg 2 to uri", snap: s7, alg: AlgToURI, key: Key{To: URIKey{User: "bob", Host: "server.com"}}, want: int(3883463682 % 7)},
		{name: "alg 3 request uri", snap: s7, alg: AlgRURI, key: Key{RURI: alice5080}, want: int(4164599908 % 7)},
		{name: "alg 5 auth user", snap: s7, alg: AlgAuthUser, key: Key{AuthUser: "alice"}, want: int(Hash("alice", "") % 7)},
		{name: "alg 5 auth user drops the realm", snap: s7, alg: AlgAuthUser, key: Key{AuthUser: "alice@example.com"}, want: int(Hash("alice", "") % 7)},
		{name: "alg 7 pvar trimmed", snap: s100, alg: AlgPVar, key: Key{PVar: "\tabc "}, want: 10},
		{name: "alg 8 index 0", snap: s7, alg: AlgPriority, want: 0},
		{name: "alg 8 walks", snap: downAt(t, s7, 0, 1), alg: AlgPriority, want: 2},
		{name: "unknown alg uses index 0", snap: s7, alg: 99, want: 0},
		{name: "unknown alg walks", snap: downAt(t, s7, 0), alg: -3, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickIdx(tc.snap, tc.alg, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("picked %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSelectErrors(t *testing.T) {
	s3 := mustBuild(t, Options{}, hosts(3))
	def := mustBuild(t, Options{UseDefault: true}, hosts(3))
	tests := []struct {
		name  string
		snap  *Snapshot
		set   int
		alg   Alg
		key   Key
		want  error
		wantI int
	}{
		{name: "no set", snap: s3, set: 2, alg: AlgCallID, key: Key{CallID: "x"}, want: ErrNoSet},
		{name: "all down", snap: downAt(t, s3, 0, 1, 2), set: 1, alg: AlgPriority, want: ErrNoDestination},
		{name: "all down round robin", snap: downAt(t, s3, 0, 1, 2), set: 1, alg: AlgRoundRobin, want: ErrNoDestination},
		{name: "default when the rest is down", snap: downAt(t, def, 0, 1), set: 1, alg: AlgCallID, key: Key{CallID: "x"}, wantI: 2},
		{name: "default down too", snap: downAt(t, def, 0, 1, 2), set: 1, alg: AlgCallID, key: Key{CallID: "x"}, want: ErrNoDestination},
		{name: "alg 10 without a call-load table", snap: s3, set: 1, alg: AlgCallLoad, key: Key{CallID: "x"}, want: ErrCallLoadOff},
		{name: "alg 12", snap: s3, set: 1, alg: AlgParallel, want: ErrAlgNotSupported},
		{name: "alg 64", snap: s3, set: 1, alg: AlgOverloadCtl, want: ErrAlgNotSupported},
		{name: "empty call-id", snap: s3, set: 1, alg: AlgCallID, key: Key{CallID: " "}, want: ErrEmptyHashKey},
		{name: "from without host", snap: s3, set: 1, alg: AlgFromURI, want: ErrEmptyHashKey},
		{name: "empty pvar", snap: s3, set: 1, alg: AlgPVar, key: Key{PVar: " \t"}, want: ErrEmptyHashKey},
		{name: "zero snapshot", snap: &Snapshot{}, set: 1, alg: AlgCallID, want: ErrNoSet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := tc.snap.Select(tc.set, tc.alg, tc.key, 0)
			if tc.want == nil {
				if err != nil || sel.Dests[0].Index != tc.wantI {
					t.Fatalf("got %v %v, want index %d", sel, err, tc.wantI)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// sequence runs k selects and returns the picked indices.
func sequence(t *testing.T, s *Snapshot, alg Alg, key Key, k int) []int {
	t.Helper()
	out := make([]int, k)
	for i := range out {
		p, err := pickIdx(s, alg, key)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

func TestSelectRoundRobin(t *testing.T) {
	prio := func(p ...int) []Entry {
		e := hosts(len(p))
		for i := range e {
			e[i].Priority = p[i]
		}
		return e
	}
	tests := []struct {
		name string
		snap func() *Snapshot
		alg  Alg
		key  Key
		want []int
	}{
		{name: "alg 4 cycles", snap: func() *Snapshot { return mustBuild(t, Options{}, hosts(3)) },
			alg: AlgRoundRobin, want: []int{0, 1, 2, 0, 1, 2}},
		{name: "alg 4 skips down and resumes after the pick", snap: func() *Snapshot { return downAt(t, mustBuild(t, Options{}, hosts(4)), 1) },
			alg: AlgRoundRobin, want: []int{0, 2, 3, 0, 2, 3}},
		{name: "alg 4 with use_default never starts on the default", snap: func() *Snapshot { return mustBuild(t, Options{UseDefault: true}, hosts(3)) },
			alg: AlgRoundRobin, want: []int{0, 1, 0, 1, 0, 1}},
		{name: "alg 5 without credentials is round robin", snap: func() *Snapshot { return mustBuild(t, Options{}, hosts(3)) },
			alg: AlgAuthUser, want: []int{0, 1, 2, 0}},
		{name: "alg 14 equal priorities is round robin", snap: func() *Snapshot { return mustBuild(t, Options{}, prio(5, 5, 5)) },
			alg: AlgRRPriority, want: []int{0, 1, 2, 0}},
		{name: "alg 14 priority 0 is serial", snap: func() *Snapshot { return mustBuild(t, Options{}, prio(0, 0, 0)) },
			alg: AlgRRPriority, want: []int{0, 0, 0}},
		{name: "alg 14 mixed priorities is serial", snap: func() *Snapshot { return mustBuild(t, Options{}, prio(5, 1, 5)) },
			alg: AlgRRPriority, want: []int{0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sequence(t, tc.snap(), tc.alg, tc.key, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Errorf("picks %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSelectRoundRobinDefaultLast: with use_default, a pick of the default
// sets last to 0 (n is the modulus of the update, as in Kamailio).
func TestSelectRoundRobinDefaultLast(t *testing.T) {
	s := downAt(t, mustBuild(t, Options{UseDefault: true}, hosts(3)), 0, 1)
	if got := sequence(t, s, AlgRoundRobin, Key{}, 3); !slices.Equal(got, []int{2, 2, 2}) {
		t.Errorf("picks %v", got)
	}
	if v := s.Set(1).ctr.last.Load(); v != 0 {
		t.Errorf("last = %d, want 0", v)
	}
}

func TestSelectWeightAlgorithms(t *testing.T) {
	withAttrs := func(attrs ...string) []Entry {
		e := hosts(len(attrs))
		for i := range e {
			e[i].Attrs = attrs[i]
		}
		return e
	}
	tests := []struct {
		name  string
		snap  func() *Snapshot
		alg   Alg
		picks int
		want  []int
	}{
		// input order is reversed: index 0 is the last entry.
		{name: "alg 9 counts match weights", alg: AlgWeight, picks: 100, want: []int{20, 30, 50},
			snap: func() *Snapshot { return mustBuild(t, Options{}, withAttrs("weight=50", "weight=30", "weight=20")) }},
		{name: "alg 9 over 300 picks", alg: AlgWeight, picks: 300, want: []int{60, 90, 150},
			snap: func() *Snapshot { return mustBuild(t, Options{}, withAttrs("weight=50", "weight=30", "weight=20")) }},
		{name: "alg 9 keeps its table when one goes down", alg: AlgWeight, picks: 100, want: []int{20, 0, 80},
			snap: func() *Snapshot {
				return downAt(t, mustBuild(t, Options{}, withAttrs("weight=50", "weight=30", "weight=20")), 1)
			}},
		{name: "alg 9 without weights is index 0", alg: AlgWeight, picks: 10, want: []int{10, 0, 0},
			snap: func() *Snapshot { return mustBuild(t, Options{}, hosts(3)) }},
		{name: "alg 11 1/2/1 is 25/50/25", alg: AlgRWeight, picks: 100, want: []int{25, 50, 25},
			snap: func() *Snapshot { return mustBuild(t, Options{}, withAttrs("rweight=1", "rweight=2", "rweight=1")) }},
		{name: "alg 11 one down is 33/67/0", alg: AlgRWeight, picks: 100, want: []int{33, 67, 0},
			snap: func() *Snapshot {
				return downAt(t, mustBuild(t, Options{}, withAttrs("rweight=1", "rweight=2", "rweight=1")), 2)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.snap()
			got := make([]int, len(tc.want))
			for _, p := range sequence(t, s, tc.alg, Key{}, tc.picks) {
				got[p]++
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("counts %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSelectRandom(t *testing.T) {
	s := downAt(t, mustBuild(t, Options{}, hosts(5)), 1, 3)
	seen := map[int]int{}
	for _, p := range sequence(t, s, AlgRandom, Key{}, 2000) {
		seen[p]++
	}
	tests := []struct {
		name string
		idx  int
		ok   func(n int) bool
	}{
		{name: "down 1 never", idx: 1, ok: func(n int) bool { return n == 0 }},
		{name: "down 3 never", idx: 3, ok: func(n int) bool { return n == 0 }},
		{name: "0 sometimes", idx: 0, ok: func(n int) bool { return n > 0 }},
		{name: "2 sometimes", idx: 2, ok: func(n int) bool { return n > 0 }},
		{name: "4 sometimes", idx: 4, ok: func(n int) bool { return n > 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok(seen[tc.idx]) {
				t.Errorf("index %d picked %d times", tc.idx, seen[tc.idx])
			}
		})
	}
}

func TestAlgNames(t *testing.T) {
	tests := []struct {
		name      string
		alg       Alg
		str       string
		supported bool
		known     bool
	}{
		{name: "0", alg: AlgCallID, str: "callid", supported: true, known: true},
		{name: "9", alg: AlgWeight, str: "weight", supported: true, known: true},
		{name: "10", alg: AlgCallLoad, str: "call-load", supported: true, known: true},
		{name: "13", alg: AlgLatency, str: "latency", supported: true, known: true},
		{name: "14", alg: AlgRRPriority, str: "round-robin-priority", supported: true, known: true},
		{name: "64", alg: AlgOverloadCtl, str: "overload-control", known: true},
		{name: "unknown", alg: 42, str: "42", supported: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.alg.String() != tc.str || tc.alg.Supported() != tc.supported || tc.alg.Known() != tc.known {
				t.Errorf("%d: %q supported=%v known=%v", int(tc.alg), tc.alg, tc.alg.Supported(), tc.alg.Known())
			}
		})
	}
	for _, a := range Algs() {
		t.Run(fmt.Sprintf("parse %s", a), func(t *testing.T) {
			byName, err1 := ParseAlg(a.String())
			byNum, err2 := ParseAlg(fmt.Sprint(int(a)))
			if err1 != nil || err2 != nil || byName != a || byNum != a {
				t.Errorf("ParseAlg: %v %v %v %v", byName, err1, byNum, err2)
			}
		})
	}
	t.Run("parse bad", func(t *testing.T) {
		if _, err := ParseAlg("fastest"); err == nil {
			t.Error("no error")
		}
	})
}

// The failover list Select returns comes from a per-Set cache: it must equal
// what Failover builds for every pick and limit, and a caller appending to
// it must not change what the next caller gets.
func TestCachedFailover(t *testing.T) {
	entries := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Priority: 4, Source: "t:1"},
		{SetID: 1, URI: "sip:10.0.0.2", Priority: 3, Source: "t:2"},
		{SetID: 1, URI: "sip:10.0.0.3", Flags: FlagInactive, Priority: 2, Source: "t:3"},
		{SetID: 1, URI: "sip:10.0.0.4", Priority: 1, Source: "t:4"},
	}
	for _, useDefault := range []bool{false, true} {
		set := mustBuild(t, Options{UseDefault: useDefault}, entries).Set(1)
		for pick := range set.Dests {
			for limit := 0; limit <= len(set.Dests)+1; limit++ {
				want := set.Failover(pick, limit)
				got := set.cachedFailover(pick, limit)
				if !slices.EqualFunc(got, want, func(a, b Destination) bool { return a.URI == b.URI }) {
					t.Fatalf("use_default %v pick %d limit %d: cached %v, built %v", useDefault, pick, limit, destURIs(got), destURIs(want))
				}
				_ = append(got, Destination{URI: "sip:scribbled"})
				if again := set.cachedFailover(pick, 0); slices.ContainsFunc(again, func(d Destination) bool { return d.URI == "sip:scribbled" }) {
					t.Fatalf("an append by one caller reached the cache: %v", destURIs(again))
				}
			}
		}
	}
}

func destURIs(ds []Destination) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.URI
	}
	return out
}
