package dispatch

import (
	"errors"
	"testing"
)

// probeSet is one destination at a given state, behind a Dispatcher.
func probeSet(t *testing.T, flags Flags) *Dispatcher {
	t.Helper()
	return New(mustBuild(t, Options{}, []Entry{{SetID: 1, URI: "sip:10.0.0.1", Flags: flags}}))
}

func TestProbeResult(t *testing.T) {
	const ok, fail = true, false
	tests := []struct {
		name        string
		mode        ProbingMode
		pt, it      int // probing and inactive thresholds (0 = 1)
		start       Flags
		results     []bool
		want        Flags
		wantCount   int
		lastChanged bool
	}{
		// mode 0: probe flagged destinations until their first result.
		{name: "m0 success clears probing", mode: 0, start: FlagProbing, results: []bool{ok},
			want: 0, lastChanged: true},
		{name: "m0 failure goes inactive without probing", mode: 0, start: FlagProbing, results: []bool{fail},
			want: FlagInactive, lastChanged: true},
		{name: "m0 inactive success comes up", mode: 0, start: FlagInactive | FlagProbing, results: []bool{ok},
			want: 0, lastChanged: true},
		{name: "m0 inactive failure stays inactive, drops probing", mode: 0, start: FlagInactive | FlagProbing, results: []bool{fail},
			want: FlagInactive, lastChanged: true},
		// mode 1: probe everything, keep probing.
		{name: "m1 success on active sets probing", mode: 1, start: 0, results: []bool{ok},
			want: FlagProbing, lastChanged: true},
		{name: "m1 failure threshold 1", mode: 1, start: 0, results: []bool{fail},
			want: FlagInactive | FlagProbing, lastChanged: true},
		{name: "m1 failures below threshold 3 are trying", mode: 1, pt: 3, start: FlagProbing, results: []bool{fail, fail},
			want: FlagTrying | FlagProbing, wantCount: 2, lastChanged: false},
		{name: "m1 third failure goes inactive", mode: 1, pt: 3, start: FlagProbing, results: []bool{fail, fail, fail},
			want: FlagInactive | FlagProbing, lastChanged: true},
		{name: "m1 success while trying is active at once", mode: 1, pt: 3, start: FlagProbing, results: []bool{fail, ok},
			want: FlagProbing, lastChanged: true},
		{name: "m1 inactive needs 2 successes", mode: 1, it: 2, start: FlagInactive | FlagProbing, results: []bool{ok},
			want: FlagInactive | FlagProbing, wantCount: 1, lastChanged: false},
		{name: "m1 second success comes up", mode: 1, it: 2, start: FlagInactive | FlagProbing, results: []bool{ok, ok},
			want: FlagProbing, lastChanged: true},
		{name: "m1 failure while inactive resets the count", mode: 1, it: 2, start: FlagInactive | FlagProbing, results: []bool{ok, fail, ok},
			want: FlagInactive | FlagProbing, wantCount: 1, lastChanged: false},
		{name: "m1 inactive success below threshold gains probing", mode: 1, it: 2, start: FlagInactive, results: []bool{ok},
			want: FlagInactive | FlagProbing, wantCount: 1, lastChanged: true},
		// mode 2: probe inactive flagged destinations.
		{name: "m2 success clears probing", mode: 2, start: FlagInactive | FlagProbing, results: []bool{ok},
			want: 0, lastChanged: true},
		{name: "m2 failure keeps inactive probing", mode: 2, start: FlagInactive | FlagProbing, results: []bool{fail},
			want: FlagInactive | FlagProbing, lastChanged: false},
		{name: "m2 failure on active probing", mode: 2, start: FlagProbing, results: []bool{fail},
			want: FlagInactive | FlagProbing, lastChanged: true},
		// mode 3: probe flagged destinations forever.
		{name: "m3 success keeps probing", mode: 3, start: FlagProbing, results: []bool{ok},
			want: FlagProbing, lastChanged: false},
		{name: "m3 failure keeps probing", mode: 3, start: FlagProbing, results: []bool{fail},
			want: FlagInactive | FlagProbing, lastChanged: true},
		{name: "m3 inactive success comes up probing", mode: 3, start: FlagInactive | FlagProbing, results: []bool{ok},
			want: FlagProbing, lastChanged: true},
		{name: "m3 ignores a destination without probing", mode: 3, start: FlagInactive, results: []bool{ok},
			want: FlagInactive, lastChanged: false},
		// ignored and preserved.
		{name: "disabled ignored", mode: 1, start: FlagDisabled | FlagProbing, results: []bool{ok, fail},
			want: FlagDisabled | FlagProbing, lastChanged: false},
		{name: "noping kept", mode: 1, start: FlagNoPing | FlagProbing, results: []bool{fail},
			want: FlagNoPing | FlagInactive | FlagProbing, lastChanged: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := probeSet(t, tc.start)
			p := ProbeParams{Mode: tc.mode, ProbingThreshold: max(tc.pt, 1), InactiveThreshold: max(tc.it, 1)}
			var changed bool
			for _, r := range tc.results {
				var err error
				if changed, err = d.ProbeResult(1, "sip:10.0.0.1", r, p); err != nil {
					t.Fatal(err)
				}
			}
			dst := d.Snapshot().Set(1).Dests[0]
			if dst.Flags != tc.want || dst.ProbingCount != tc.wantCount || changed != tc.lastChanged {
				t.Errorf("flags %s(%d) count %d changed %v; want %s(%d) count %d changed %v",
					dst.Flags, dst.Flags, dst.ProbingCount, changed, tc.want, tc.want, tc.wantCount, tc.lastChanged)
			}
		})
	}
}

func TestProbeResultErrors(t *testing.T) {
	d := probeSet(t, FlagProbing)
	tests := []struct {
		name string
		set  int
		addr string
		mode ProbingMode
		want error
	}{
		{name: "no set", set: 2, addr: "sip:10.0.0.1", want: ErrNoSet},
		{name: "no destination", set: 1, addr: "sip:10.0.0.2", want: ErrUnknownDestination},
		{name: "all is not an address here", set: 1, addr: "all", want: ErrUnknownDestination},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.ProbeResult(tc.set, tc.addr, true, ProbeParams{Mode: tc.mode}); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("bad mode", func(t *testing.T) {
		if _, err := d.ProbeResult(1, "sip:10.0.0.1", true, ProbeParams{Mode: 4}); err == nil {
			t.Error("no error")
		}
	})
}

func TestMark(t *testing.T) {
	tests := []struct {
		name  string
		start Flags
		state string
		want  Flags
	}{
		{name: "empty is inactive", start: 0, state: "", want: FlagInactive},
		{name: "trying goes inactive at once", start: 0, state: "t", want: FlagInactive},
		{name: "trying probing", start: 0, state: "TP", want: FlagInactive | FlagProbing},
		{name: "active at once", start: FlagInactive | FlagProbing, state: "a", want: 0},
		{name: "active probing", start: FlagInactive, state: "ap", want: FlagProbing},
		{name: "inactive probing", start: 0, state: "ip", want: FlagInactive | FlagProbing},
		{name: "disabled alone", start: FlagProbing, state: "dp", want: FlagDisabled},
		{name: "noping kept", start: FlagNoPing, state: "i", want: FlagNoPing | FlagInactive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := probeSet(t, tc.start)
			if err := d.Mark(1, "SIP:10.0.0.1", tc.state); err != nil {
				t.Fatal(err)
			}
			dst := d.Snapshot().Set(1).Dests[0]
			if dst.Flags != tc.want || dst.ProbingCount != 0 {
				t.Errorf("flags %d count %d, want %d count 0", dst.Flags, dst.ProbingCount, tc.want)
			}
		})
	}
	t.Run("bad letter", func(t *testing.T) {
		if err := probeSet(t, 0).Mark(1, "sip:10.0.0.1", "x"); !errors.Is(err, ErrBadState) {
			t.Errorf("error %v", err)
		}
	})
}

func TestParseRPCState(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Flags
		wantErr bool
	}{
		{name: "0", in: "0", want: FlagInactive},
		{name: "i", in: "i", want: FlagInactive},
		{name: "IP", in: "IP", want: FlagInactive | FlagProbing},
		{name: "1", in: "1", want: 0},
		{name: "a", in: "a", want: 0},
		{name: "ap", in: "ap", want: FlagProbing},
		{name: "2", in: "2", want: FlagDisabled},
		{name: "d", in: "D", want: FlagDisabled},
		{name: "3", in: "3", want: FlagTrying},
		{name: "tp", in: "tp", want: FlagTrying | FlagProbing},
		{name: "1p", in: "1p", want: FlagProbing},
		{name: "empty", in: "", wantErr: true},
		{name: "unknown letter", in: "x", wantErr: true},
		{name: "bad second", in: "ax", wantErr: true},
		{name: "too long", in: "ipp", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRPCState(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadState) {
					t.Errorf("error %v, want ErrBadState", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %d %v, want %d", got, err, tc.want)
			}
		})
	}
}

func TestTransitionDisabledRequest(t *testing.T) {
	tests := []struct {
		name      string
		old       Flags
		req       Flags
		want      Flags
		wantCount int
	}{
		{name: "disabled wins over probing", old: 0, req: FlagDisabled | FlagProbing, want: FlagDisabled},
		{name: "disabled on inactive counts like a success", old: FlagInactive, req: FlagDisabled, want: FlagDisabled | FlagInactive, wantCount: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, c := transition(tc.old, 0, tc.req, false, ProbeParams{ProbingThreshold: 1, InactiveThreshold: 2})
			if f != tc.want || c != tc.wantCount {
				t.Errorf("got %d/%d, want %d/%d", f, c, tc.want, tc.wantCount)
			}
		})
	}
}

func TestShouldPing(t *testing.T) {
	tests := []struct {
		name  string
		mode  ProbingMode
		flags Flags
		want  bool
	}{
		{name: "m0 probing", mode: 0, flags: FlagProbing, want: true},
		{name: "m0 not probing", mode: 0, flags: FlagInactive, want: false},
		{name: "m1 everything", mode: 1, flags: 0, want: true},
		{name: "m1 not disabled", mode: 1, flags: FlagDisabled, want: false},
		{name: "m1 not noping", mode: 1, flags: FlagNoPing, want: false},
		{name: "m1 not unresolved", mode: 1, flags: FlagNoDNSARes, want: false},
		{name: "m2 inactive probing", mode: 2, flags: FlagInactive | FlagProbing, want: true},
		{name: "m2 active probing", mode: 2, flags: FlagProbing, want: false},
		{name: "m3 probing", mode: 3, flags: FlagProbing | FlagTrying, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (ProbeParams{Mode: tc.mode}).ShouldPing(tc.flags); got != tc.want {
				t.Errorf("got %v", got)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		if p := DefaultProbeParams(); p.Mode != 0 || p.ProbingThreshold != 1 || p.InactiveThreshold != 1 {
			t.Errorf("%+v", p)
		}
	})
}
