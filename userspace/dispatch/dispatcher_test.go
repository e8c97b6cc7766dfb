package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// flagsOf lists set 1's flags in index order.
func flagsOf(s *Snapshot) []Flags {
	var out []Flags
	for _, d := range s.Set(1).Dests {
		out = append(out, d.Flags)
	}
	return out
}

func TestSetState(t *testing.T) {
	// index order: 0 sip:10.0.0.3, 1 sip:10.0.0.2, 2 sip:10.0.0.1
	base := []Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Flags: FlagNoPing},
		{SetID: 1, URI: "sip:10.0.0.2"},
		{SetID: 1, URI: "sip:10.0.0.3", Flags: FlagProbing},
	}
	tests := []struct {
		name    string
		set     int
		addr    string
		state   string
		want    []Flags
		wantErr error
	}{
		{name: "inactive by uri", set: 1, addr: "sip:10.0.0.2", state: "i", want: []Flags{FlagProbing, FlagInactive, FlagNoPing}},
		{name: "uri ignores case", set: 1, addr: "SIP:10.0.0.2", state: "0", want: []Flags{FlagProbing, FlagInactive, FlagNoPing}},
		{name: "trying is written as is", set: 1, addr: "sip:10.0.0.2", state: "3", want: []Flags{FlagProbing, FlagTrying, FlagNoPing}},
		{name: "active clears probing", set: 1, addr: "sip:10.0.0.3", state: "a", want: []Flags{0, 0, FlagNoPing}},
		{name: "noping kept", set: 1, addr: "sip:10.0.0.1", state: "dp", want: []Flags{FlagProbing, 0, FlagNoPing | FlagDisabled | FlagProbing}},
		{name: "all", set: 1, addr: "all", state: "ip", want: []Flags{FlagInactive | FlagProbing, FlagInactive | FlagProbing, FlagNoPing | FlagInactive | FlagProbing}},
		{name: "unknown uri", set: 1, addr: "sip:10.0.0.9", state: "i", wantErr: ErrUnknownDestination},
		{name: "unknown set", set: 2, addr: "all", state: "i", wantErr: ErrNoSet},
		{name: "bad state", set: 1, addr: "all", state: "z", wantErr: ErrBadState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := New(mustBuild(t, Options{}, base))
			err := d.SetState(tc.set, tc.addr, tc.state)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := flagsOf(d.Snapshot()); !slices.Equal(got, tc.want) {
				t.Errorf("flags %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("by iuid only that duplicate", func(t *testing.T) {
		d := New(mustBuild(t, Options{}, ents(1, "sip:10.0.0.1", "sip:10.0.0.1")))
		if err := d.SetState(1, d.Snapshot().Set(1).Dests[1].IUID, "i"); err != nil {
			t.Fatal(err)
		}
		if got := flagsOf(d.Snapshot()); !slices.Equal(got, []Flags{0, FlagInactive}) {
			t.Errorf("flags %v", got)
		}
	})
}

func TestCopyOnWrite(t *testing.T) {
	d := New(mustBuild(t, Options{}, append(hosts(3), ents(2, "sip:10.0.1.1")...)))
	old := d.Snapshot()
	oldSet := old.Set(1)
	oldNext := slices.Clone(oldSet.NextUp)
	if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil { // index 0
		t.Fatal(err)
	}
	cur := d.Snapshot()
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "new snapshot", ok: cur != old},
		{name: "old flags unchanged", ok: oldSet.Dests[0].Flags == 0},
		{name: "old NextUp unchanged", ok: slices.Equal(oldSet.NextUp, oldNext)},
		{name: "new flags", ok: cur.Set(1).Dests[0].Flags == FlagInactive},
		{name: "new NextUp walks", ok: slices.Equal(cur.Set(1).NextUp, []int16{1, 1, 2})},
		{name: "untouched set shared", ok: cur.Set(2) == old.Set(2)},
		{name: "counters shared", ok: cur.Set(1).ctr == oldSet.ctr},
		{name: "old snapshot still selects index 0", ok: func() bool { i, err := pickIdx(old, AlgPriority, Key{}); return err == nil && i == 0 }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fail()
			}
		})
	}
	t.Run("no change no swap", func(t *testing.T) {
		before := d.Snapshot()
		if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil {
			t.Fatal(err)
		}
		if d.Snapshot() != before {
			t.Error("snapshot swapped without a change")
		}
	})
}

func TestAddRemove(t *testing.T) {
	calls := 0
	res := func(ctx context.Context, host string) ([]netip.Addr, error) {
		calls++
		return fakeResolver(map[string]string{"gw.example": "192.0.2.1"})(ctx, host)
	}
	d := New(mustBuild(t, Options{Resolver: res}, append(ents(1, "sip:10.0.0.1", "sip:gw.example"), ents(2, "sip:10.0.2.1")...)))
	if err := d.SetState(1, "sip:10.0.0.1", "ip"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ProbeResult(1, "sip:gw.example", false, ProbeParams{Mode: ProbeAll, ProbingThreshold: 3}); err != nil {
		t.Fatal(err)
	}
	pickRR := func() int { i, _ := pickIdx(d.Snapshot(), AlgRoundRobin, Key{}); return i }
	pickRR()
	steps := []struct {
		name    string
		do      func() error
		wantErr error
		anyErr  bool // fails, keeping the old snapshot
		want    []string
		check   func(*Snapshot) bool
	}{
		{name: "add keeps state and order", do: func() error {
			return d.Add(context.Background(), Entry{SetID: 1, URI: "sip:10.0.0.5"})
		}, want: []string{"sip:10.0.0.5", "sip:gw.example", "sip:10.0.0.1"},
			check: func(s *Snapshot) bool {
				g := s.Set(1).Dests[1]
				return g.Flags == FlagTrying|FlagProbing && g.ProbingCount == 1 &&
					s.Set(1).Dests[2].Flags == FlagInactive|FlagProbing && s.Set(1).Dests[0].Flags == 0
			}},
		{name: "add resets counters", do: func() error { return nil }, want: []string{"sip:10.0.0.5", "sip:gw.example", "sip:10.0.0.1"},
			check: func(s *Snapshot) bool { return pickRR() == 0 }},
		{name: "add new set", do: func() error {
			return d.Add(context.Background(), Entry{SetID: 7, URI: "10.0.7.1"})
		}, want: []string{"sip:10.0.0.5", "sip:gw.example", "sip:10.0.0.1"},
			check: func(s *Snapshot) bool { return s.Exists(7) && s.Set(7).Dests[0].URI == "sip:10.0.7.1" }},
		{name: "bad add keeps the old snapshot", do: func() error {
			return d.Add(context.Background(), Entry{SetID: 1, URI: "sip:10.0.0.6", Attrs: "weight=101"})
		}, anyErr: true, want: []string{"sip:10.0.0.5", "sip:gw.example", "sip:10.0.0.1"}},
		{name: "remove by normalized uri", do: func() error { return d.Remove(7, "10.0.7.1") },
			want:  []string{"sip:10.0.0.5", "sip:gw.example", "sip:10.0.0.1"},
			check: func(s *Snapshot) bool { return !s.Exists(7) }},
		{name: "remove keeps state", do: func() error { return d.Remove(1, "sip:10.0.0.5") },
			want:  []string{"sip:gw.example", "sip:10.0.0.1"},
			check: func(s *Snapshot) bool { return s.Set(1).Dests[1].Flags == FlagInactive|FlagProbing }},
		{name: "remove is case-sensitive", do: func() error { return d.Remove(1, "SIP:10.0.0.1") }, wantErr: ErrUnknownDestination,
			want: []string{"sip:gw.example", "sip:10.0.0.1"}},
		{name: "remove from missing set", do: func() error { return d.Remove(9, "sip:10.0.0.1") }, wantErr: ErrNoSet,
			want: []string{"sip:gw.example", "sip:10.0.0.1"}},
		{name: "dns asked once in all", do: func() error { return nil }, want: []string{"sip:gw.example", "sip:10.0.0.1"},
			check: func(*Snapshot) bool { return calls == 1 }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := d.Snapshot()
			err := st.do()
			switch {
			case st.wantErr != nil && !errors.Is(err, st.wantErr):
				t.Fatalf("error %v, want %v", err, st.wantErr)
			case st.anyErr:
				if err == nil || d.Snapshot() != before {
					t.Fatalf("error %v, snapshot replaced %v", err, d.Snapshot() != before)
				}
			case st.wantErr == nil && !st.anyErr && err != nil:
				t.Fatal(err)
			}
			s := d.Snapshot()
			if got := uris(s.Set(1)); !slices.Equal(got, st.want) {
				t.Errorf("set 1 %v, want %v", got, st.want)
			}
			if st.check != nil && !st.check(s) {
				t.Error("check failed")
			}
		})
	}
}

func TestReplaceResetsCounters(t *testing.T) {
	snap := mustBuild(t, Options{}, hosts(3))
	d := New(snap)
	for range 2 {
		if _, err := d.Select(1, AlgRoundRobin, Key{}, 1); err != nil {
			t.Fatal(err)
		}
	}
	d.Replace(snap)
	tests := []struct {
		name string
		ok   bool
	}{
		{name: "round robin restarts", ok: func() bool { i, _ := pickIdx(d.Snapshot(), AlgRoundRobin, Key{}); return i == 0 }()},
		{name: "nil replace gives no sets", ok: func() bool { d.Replace(nil); return len(d.Snapshot().Sets()) == 0 }()},
		{name: "select on empty", ok: func() bool { _, err := d.Select(1, AlgCallID, Key{CallID: "x"}, 0); return errors.Is(err, ErrNoSet) }()},
		{name: "new nil", ok: New(nil).Snapshot() != nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fail()
			}
		})
	}
}

func TestSubscribe(t *testing.T) {
	d := New(mustBuild(t, Options{}, hosts(2)))
	var got []*Snapshot
	var calls2 int
	cancel := d.Subscribe(func(s *Snapshot) { got = append(got, s) })
	cancel2 := d.Subscribe(func(*Snapshot) { calls2++ })
	cancel2()
	cancel2() // idempotent
	steps := []struct {
		name string
		do   func() error
		want int
	}{
		{name: "state change", do: func() error { return d.SetState(1, "all", "i") }, want: 1},
		{name: "no change no call", do: func() error { return d.SetState(1, "all", "i") }, want: 1},
		{name: "add", do: func() error { return d.Add(context.Background(), Entry{SetID: 1, URI: "sip:10.0.0.9"}) }, want: 2},
		{name: "replace", do: func() error { d.Replace(d.Snapshot()); return nil }, want: 3},
		{name: "after cancel", do: func() error { cancel(); return d.SetState(1, "all", "a") }, want: 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			if len(got) != st.want {
				t.Fatalf("%d calls, want %d", len(got), st.want)
			}
			if st.want > 0 && st.name != "after cancel" && got[len(got)-1] != d.Snapshot() {
				t.Error("subscriber did not get the swapped snapshot")
			}
		})
	}
	if calls2 != 0 {
		t.Errorf("cancelled subscriber called %d times", calls2)
	}
	if d.Subscribe(nil) == nil {
		t.Error("nil cancel")
	}
}

func TestPingActive(t *testing.T) {
	d := New(nil)
	tests := []struct {
		name    string
		set     bool
		wantOld bool
	}{
		{name: "off", set: false, wantOld: true},
		{name: "off again", set: false, wantOld: false},
		{name: "on", set: true, wantOld: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if old := d.SetPingActive(tc.set); old != tc.wantOld || d.PingActive() != tc.set {
				t.Errorf("old %v now %v", old, d.PingActive())
			}
		})
	}
}

// TestConcurrent runs readers against writers; run it with -race.
func TestConcurrent(t *testing.T) {
	e := append(hosts(8), Entry{SetID: 1, URI: "sip:10.0.9.9", Attrs: "rweight=5;weight=10"})
	d := New(mustBuild(t, Options{UseDefault: true}, e))
	var seen sync.Map
	cancel := d.Subscribe(func(s *Snapshot) { seen.Store(s, true) })
	defer cancel()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				for _, alg := range []Alg{AlgCallID, AlgRoundRobin, AlgWeight, AlgRWeight, AlgRandom} {
					sel, err := d.Select(1, alg, Key{CallID: fmt.Sprint(r, i)}, 0)
					if err != nil && !errors.Is(err, ErrNoDestination) {
						t.Error(err)
						return
					}
					for _, x := range sel.Dests {
						if !x.Up() {
							t.Errorf("picked a down destination %s", x.URI)
							return
						}
					}
				}
			}
		}()
	}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				u := fmt.Sprintf("sip:10.0.0.%d", 1+(i+w)%8)
				_ = d.SetState(1, u, []string{"i", "a", "t"}[i%3])
				_, _ = d.ProbeResult(1, u, i%2 == 0, ProbeParams{Mode: ProbeAll, ProbingThreshold: 2, InactiveThreshold: 2})
				_ = d.Mark(1, "sip:10.0.9.9", []string{"i", "a"}[i%2])
				if w == 0 && i%50 == 0 {
					_ = d.Add(context.Background(), Entry{SetID: 2, URI: fmt.Sprintf("sip:10.0.3.%d", i/50+1)})
					_ = d.Remove(2, fmt.Sprintf("sip:10.0.3.%d", i/50+1))
				}
			}
		}()
	}
	for range 200 {
		_ = d.Snapshot().Sets()
	}
	close(stop)
	wg.Wait()
	if _, ok := seen.Load(d.Snapshot()); !ok {
		t.Error("the final snapshot never reached the subscriber")
	}
}

func BenchmarkSelect(b *testing.B) {
	e := hosts(8)
	for i := range e {
		e[i].Attrs = fmt.Sprintf("weight=%d;rweight=%d", 10+i, 1+i)
	}
	d := New(mustBuild(b, Options{}, e))
	if err := d.SetState(1, "sip:10.0.0.3", "i"); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		alg   Alg
		limit int
	}{
		{name: "callid-limit1", alg: AlgCallID, limit: 1},
		{name: "callid-failover", alg: AlgCallID},
		{name: "roundrobin-limit1", alg: AlgRoundRobin, limit: 1},
		{name: "weight-limit1", alg: AlgWeight, limit: 1},
		{name: "rweight-limit1", alg: AlgRWeight, limit: 1},
		{name: "latency-failover", alg: AlgLatency},
	}
	key := Key{CallID: "a84b4c76e66710@pc33.atlanta.com"}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := d.Select(1, tc.alg, key, tc.limit); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// SetPingActive pushes a change, and only a change, to the
// SubscribePingActive subscribers before it returns; cancel stops them.
func TestSubscribePingActive(t *testing.T) {
	d := New(nil)
	var got []bool
	cancel := d.SubscribePingActive(func(on bool) { got = append(got, on) })
	d.SetPingActive(true) // already on: no call
	if old := d.SetPingActive(false); !old {
		t.Errorf("SetPingActive(false) returned old %v, want true", old)
	}
	d.SetPingActive(false)
	d.SetPingActive(true)
	if !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("calls %v, want [false true]", got)
	}
	cancel()
	d.SetPingActive(false)
	if len(got) != 2 {
		t.Errorf("called after cancel: %v", got)
	}
}

// TestByIUID: the IUID index finds every destination, also in snapshots
// derived by state changes (they share it), and ProbeResult by IUID
// changes that destination only.
func TestByIUID(t *testing.T) {
	d := New(mustBuild(t, Options{}, ents(1, "sip:10.0.0.1", "sip:10.0.0.2", "sip:10.0.0.1", "sip:10.0.0.3")))
	check := func(s *Snapshot) {
		t.Helper()
		set := s.Set(1)
		for i := range set.Dests {
			if got := set.ByIUID(set.Dests[i].IUID); got != &set.Dests[i] {
				t.Errorf("ByIUID(%s) = %v, want index %d", set.Dests[i].IUID, got, i)
			}
		}
		if set.ByIUID("dspt-00000000") != nil || set.ByIUID("sip:10.0.0.1") != nil {
			t.Error("ByIUID found a destination for an unknown IUID or a URI")
		}
	}
	check(d.Snapshot())
	params := ProbeParams{Mode: ProbeAll, ProbingThreshold: 1, InactiveThreshold: 1}
	for _, i := range []int{2, 0, 3} {
		iuid := d.Snapshot().Set(1).Dests[i].IUID
		if changed, err := d.ProbeResult(1, iuid, false, params); err != nil || !changed {
			t.Fatalf("ProbeResult(%s): changed %v, %v", iuid, changed, err)
		}
		check(d.Snapshot())
		if got := d.Snapshot().Set(1).Dests[i].Flags; got&FlagInactive == 0 {
			t.Errorf("destination %d: flags %v after a failed probe, want inactive", i, got)
		}
	}
	if got := d.Snapshot().Set(1).Dests[1].Flags; got != 0 {
		t.Errorf("destination 1 (never probed): flags %v", got)
	}
}
