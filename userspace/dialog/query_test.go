package dialog

import (
	"slices"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name, field, op, value string
		err                    string // a substring of the error; "" for none
	}{
		{name: "every field and op", field: "src", op: "eq", value: "x"},
		{name: "any", field: "any", op: "eq", value: "*"},
		{name: "names are case-insensitive", field: "DST", op: "Sw", value: "x"},
		{name: "unknown field", field: "from", op: "eq", err: `unknown field "from"`},
		{name: "unknown op", field: "src", op: "lt", err: `unknown operator "lt"`},
		{name: "bad regex", field: "src", op: "re", value: "(", err: `bad regular expression "("`},
		{name: "unclosed glob class", field: "src", op: "fm", value: "sip:[ab", err: `bad glob "sip:[ab"`},
		{name: "trailing backslash in glob", field: "src", op: "fm", value: `sip:\`, err: "trailing backslash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseQuery(tc.field, tc.op, tc.value)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one with %q", err, tc.err)
			}
		})
	}
}

// queryTracker holds four calls: alice@a live twice (one by serial fork
// after a finished one), bob@b live, carol finished.
func queryTracker(t *testing.T) *Tracker {
	t.Helper()
	tr := New(Config{})
	mk := func(call, branch, src, dst, data string) Message {
		m := invite(call, branch)
		m.Src, m.Dst, m.Data = src, dst, data
		return m
	}
	observe(t, tr,
		mk("1", "b1", "sip:alice@a.example", "sip:gw1/x", "Gold"),
		mk("2", "b1", "sip:alice@a.example", "sip:gw2", "silver"),
		mk("3", "b1", "sip:bob@b.example", "sip:gw1", "gold"),
		mk("4", "b1", "sip:carol@c.example", "sip:gw1", "gold"), reply("4", 486),
		reply("2", 200), request("2", Ack))
	return tr
}

// TestCount checks dlgs_count: live dialogs only, the true number, 0 (not
// Kamailio's -1) for none, each operator.
func TestCount(t *testing.T) {
	tr := queryTracker(t)
	tests := []struct {
		name, field, op, value string
		want                   int
	}{
		{name: "any counts every live dialog, whatever the value", field: "any", op: "eq", value: "*", want: 3},
		{name: "eq", field: "src", op: "eq", value: "sip:alice@a.example", want: 2},
		{name: "eq, none: 0 not -1", field: "src", op: "eq", value: "sip:nobody", want: 0},
		{name: "eq skips finished dialogs", field: "src", op: "eq", value: "sip:carol@c.example", want: 0},
		{name: "ne", field: "src", op: "ne", value: "sip:alice@a.example", want: 1},
		{name: "sw", field: "dst", op: "sw", value: "sip:gw1", want: 2},
		{name: "re is case-insensitive and unanchored (works, unlike Kamailio 5.6)", field: "data", op: "re", value: "^gol", want: 2},
		{name: "re alternation", field: "src", op: "re", value: "ALICE|bob", want: 3},
		{name: "fm star matches slash (fnmatch without flags)", field: "dst", op: "fm", value: "sip:gw1*", want: 2},
		{name: "fm is anchored", field: "dst", op: "fm", value: "gw1", want: 0},
		{name: "fm question mark and class", field: "dst", op: "fm", value: "sip:gw[!1]", want: 1},
		{name: "fm range", field: "dst", op: "fm", value: "sip:gw[1-2]", want: 2},
		{name: "fm escape", field: "src", op: "fm", value: `sip:alice\@?.example`, want: 2},
		{name: "fm is case-sensitive", field: "data", op: "fm", value: "gold", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery(tc.field, tc.op, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Count(q); got != tc.want {
				t.Errorf("Count = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestFind checks dlgs.get and dlgs.getall: finished records included, any
// as src, max honoured; and List.
func TestFind(t *testing.T) {
	tr := queryTracker(t)
	calls := func(rs []Record) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.CallID)
		}
		return out
	}
	tests := []struct {
		name, field, op, value string
		max                    int
		want                   []string
	}{
		{name: "getall includes finished records", field: "data", op: "re", value: "gold", want: []string{"1", "3", "4"}},
		{name: "get returns the first", field: "data", op: "re", value: "gold", max: 1, want: []string{"1"}},
		{name: "any matches as src", field: "any", op: "eq", value: "sip:carol@c.example", want: []string{"4"}},
		{name: "no match", field: "src", op: "eq", value: "sip:nobody"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery(tc.field, tc.op, tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if got := calls(tr.Find(q, tc.max)); !slices.Equal(got, tc.want) {
				t.Errorf("Find = %q, want %q", got, tc.want)
			}
		})
	}
	if got := calls(tr.List(0)); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Errorf("List(0) = %q", got)
	}
	if got := tr.List(2); len(got) != 2 {
		t.Errorf("List(2) returned %d", len(got))
	}
	seen := map[string]bool{}
	for _, r := range tr.List(0) {
		if seen[r.RUID] {
			t.Errorf("RUID %q twice", r.RUID)
		}
		seen[r.RUID] = true
	}
}

func TestStateString(t *testing.T) {
	var got []string
	for s := range State(NumStates + 1) {
		got = append(got, s.String())
	}
	want := []string{"init", "progress", "answered", "confirmed", "terminated", "notanswered", "unknown"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestQueryString(t *testing.T) {
	q, err := ParseQuery("data", "fm", "x*")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Field.String() + " " + q.Op.String(); got != "data fm" {
		t.Errorf("%q", got)
	}
	if got := Field(9).String() + " " + Op(9).String(); got != "unknown unknown" {
		t.Errorf("%q", got)
	}
}
