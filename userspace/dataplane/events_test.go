package dataplane_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// eventsEnv loads the program with an event ring of ringBytes and one
// listener forwarding to set 2; it returns the env, the listener, the
// client and the destination INVITEs go to.
func eventsEnv(t *testing.T, ringBytes uint32) (*dptest.Env, netip.AddrPort, netip.AddrPort, netip.AddrPort) {
	t.Helper()
	env := dptest.NewEnvWith(t, dataplane.Options{EventsRingBytes: ringBytes}, backendPrefixes...)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	snap := buildSnapshot(t, "2 sip:10.0.0.21:5060\n2 sip:10.0.0.22:5060\n2 sip:10.0.0.23:5060", dispatch.Options{})
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	sel, err := snap.Select(2, dispatch.AlgCallID, dispatch.Key{CallID: "a84b4c76e66710@pc33.atlanta.example.com"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return env, lis, src, sel.Dests[0].Addr
}

// reply turns okIn into a reply with that status line, coming back to src.
func reply(status string) []byte {
	ok := strings.Replace(okIn, "10.10.10.7:5070;received=198.51.100.7", "198.51.100.7:5060", 1)
	return crlf(strings.Replace(ok, "SIP/2.0 200 OK", "SIP/2.0 "+status, 1))
}

// drainAll reads what the ring holds now, counted like fastpath.stats.
func drainAll(t *testing.T, env *dptest.Env) map[string]uint64 {
	t.Helper()
	r, err := env.DP.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[string]uint64{}
	if _, err := r.Drain(0, func(evs []dataplane.Event) {
		for _, e := range evs {
			got[e.Kind.String()+" "+e.Method.String()]++
		}
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestEventsLost: with a one-page ring and nobody reading, the events that
// do not fit are counted in event_lost by kind and method: drained plus lost
// is exactly what was forwarded, kind by kind, and some were lost.
func TestEventsLost(t *testing.T) {
	env, lis, src, dst := eventsEnv(t, 4096) // 85 records of 48 bytes
	sent := map[string]uint64{}
	for i := 0; i < 150; i++ {
		if o := send(t, env, src, lis, crlf(inviteIn)); o.verdict != dptest.XDPRedirect {
			t.Fatalf("INVITE %d: %s %s", i, verdictName(o.verdict), o.reason)
		}
		sent["request INVITE"]++
		if i%3 == 0 {
			if o := send(t, env, dst, lis, reply("200 OK")); o.verdict != dptest.XDPRedirect {
				t.Fatalf("200 OK %d: %s %s", i, verdictName(o.verdict), o.reason)
			}
			sent["reply INVITE"]++
		}
	}
	lost, err := env.DP.EventsLost()
	if err != nil {
		t.Fatal(err)
	}
	got := drainAll(t, env)
	var total uint64
	for k, n := range sent {
		if got[k]+lost[k] != n {
			t.Errorf("%s: %d drained + %d lost, %d forwarded", k, got[k], lost[k], n)
		}
		total += lost[k]
	}
	if total == 0 || len(lost) != len(sent) {
		t.Errorf("lost %v, drained %v: want losses of both kinds only", lost, got)
	}
	t.Logf("forwarded %v, drained %v, lost %v", sent, got, lost)
}
