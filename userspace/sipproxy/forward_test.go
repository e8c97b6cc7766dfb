package sipproxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

func TestNewForwarder(t *testing.T) {
	d := fixtureDispatcher(t)
	a := netip.MustParseAddrPort("192.0.2.10:5060")
	tests := []struct {
		name      string
		d         *dispatch.Dispatcher
		listeners []Listener
		wantErr   string
	}{
		{"ok", d, []Listener{{Addr: a}}, ""},
		{"nil dispatcher", nil, []Listener{{Addr: a}}, "nil dispatcher"},
		{"no address", d, []Listener{{}}, "need IP:port"},
		{"port 0", d, []Listener{{Addr: netip.MustParseAddrPort("192.0.2.10:0")}}, "need IP:port"},
		{"twice", d, []Listener{{Addr: a}, {Addr: a}}, "used twice"},
		{"v4-mapped equals v4", d, []Listener{{Addr: a}, {Addr: netip.MustParseAddrPort("[::ffff:192.0.2.10]:5060")}}, "used twice"},
		{"bad advertise", d, []Listener{{Addr: a, Advertise: "bad host:5060"}}, "advertise"},
		{"bad no-destination code", d, []Listener{{Addr: a, Rule: Rule{NoDestinationCode: 200}}}, "no_destination_code"},
		{"bad pvar", d, []Listener{{Addr: a, Rule: Rule{Alg: dispatch.AlgPVar, HashPVar: "$nope"}}}, "hash_pvar"},
		{"pvar without variable", d, []Listener{{Addr: a, Rule: Rule{Alg: dispatch.AlgPVar, HashPVar: "abc"}}}, "has no variable"},
		{"pvar of the destination", d, []Listener{{Addr: a, Rule: Rule{Alg: dispatch.AlgPVar, HashPVar: "$du"}}}, "$du is the destination"},
		{"pvar ignored for other algs", d, []Listener{{Addr: a, Rule: Rule{HashPVar: "$nope"}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewForwarder(tc.d, tc.listeners, Options{})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	tests := []struct {
		name string
		a    Action
		want string
	}{
		{"forward", ActionForward, "forward"},
		{"reply", ActionReply, "reply"},
		{"drop", ActionDrop, "drop"},
		{"handoff", ActionHandoff, "handoff"},
		{"zero", Action(0), "action(0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.String(); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

func TestProcessListenerSelection(t *testing.T) {
	f := testForwarder(t, Rule{SetID: 1}, Options{})
	in := testRequest("OPTIONS", "")
	tests := []struct {
		name   string
		local  netip.AddrPort
		action Action
	}{
		{"listener", testLocal, ActionForward},
		{"v4-mapped listener", netip.MustParseAddrPort("[::ffff:192.0.2.10]:5060"), ActionForward},
		{"other port", netip.MustParseAddrPort("192.0.2.10:5061"), ActionDrop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if res := f.Process(in, testSrc, tc.local, nil); res.Action != tc.action {
				t.Errorf("action %s (%s), want %s", res.Action, res.Reason, tc.action)
			}
		})
	}
}

// TestProcessAppendsToOut: Out is out with the message appended, and the
// input is never written.
func TestProcessAppendsToOut(t *testing.T) {
	f := testForwarder(t, Rule{SetID: 1}, Options{})
	in := testRequest("OPTIONS", "Route: <sip:192.0.2.10;lr>\nMax-Forwards: 9\n")
	keep := string(in)
	res := f.Process(in, testSrc, testLocal, []byte("prefix"))
	if res.Action != ActionForward || !strings.HasPrefix(string(res.Out), "prefixOPTIONS ") {
		t.Fatalf("got %s %q", res.Action, res.Out)
	}
	if string(in) != keep {
		t.Error("Process modified its input")
	}
}

func TestEditorRejectsOverlap(t *testing.T) {
	in := []byte("0123456789")
	tests := []struct {
		name  string
		edits []edit
		want  string
		ok    bool
	}{
		{"insert before delete at one offset", []edit{{off: 2, end: 4}, {off: 2, end: 2, kind: insReceived}}, "01;received=x456789", true},
		{"overlap", []edit{{off: 2, end: 5}, {off: 4, end: 6}}, "", false},
		{"beyond the end", []edit{{off: 8, end: 12}}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ed := editor{end: len(in)}
			ed.srcIP[0], ed.srcIPLen = 'x', 1
			for _, e := range tc.edits {
				ed.add(e)
			}
			out, ok := ed.write(in, nil)
			if ok != tc.ok || ok && string(out) != tc.want {
				t.Errorf("got %q ok=%v, want %q ok=%v", out, ok, tc.want, tc.ok)
			}
		})
	}
	t.Run("full", func(t *testing.T) {
		var ed editor
		for i := 0; i < maxEdits; i++ {
			if !ed.add(edit{off: i, end: i}) {
				t.Fatal("add failed early")
			}
		}
		if ed.add(edit{}) {
			t.Error("add beyond maxEdits succeeded")
		}
	})
}

// TestRemoveFirst removes leading values across lines.
func TestRemoveFirst(t *testing.T) {
	tests := []struct {
		name, headers string
		k             int
		want          string
	}{
		{"whole line", "Route: <sip:a>\nRoute: <sip:b>\n", 1, "Route: <sip:b>\n"},
		{"first of two", "Route: <sip:a>, <sip:b>\n", 1, "Route: <sip:b>\n"},
		{"first two of three", "Route: <sip:a>,<sip:b> ,  <sip:c>\n", 2, "Route: <sip:c>\n"},
		{"line and a value", "Route: <sip:a>\nRoute: <sip:b>, <sip:c>\n", 2, "Route: <sip:c>\n"},
		{"all", "Route: <sip:a>, <sip:b>\n", 2, ""},
		{"folded", "Route: <sip:a>,\n <sip:b>\n", 1, "Route: <sip:b>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := crlf("BYE sip:x SIP/2.0\n" + tc.headers + "\n")
			var m sipmsg.Msg
			if err := sipmsg.Parse(in, &m); err != nil {
				t.Fatal(err)
			}
			ed := editor{end: len(in)}
			if !removeFirst(&ed, &m, m.Routes[:m.NumRoutes], tc.k) {
				t.Fatal("removeFirst failed")
			}
			out, ok := ed.write(in, nil)
			want := string(crlf("BYE sip:x SIP/2.0\n" + tc.want + "\n"))
			if !ok || string(out) != want {
				t.Errorf("got %q, want %q", out, want)
			}
		})
	}
}
