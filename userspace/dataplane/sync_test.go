package dataplane_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/testutil"
)

func optionsMsg(callID string) []byte {
	return []byte("OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK1\r\n" +
		"To: <sip:bob@biloxi.example.com>\r\nFrom: <sip:alice@atlanta.example.com>;tag=1\r\n" +
		"Call-ID: " + callID + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
}

// TestSyncSwap: a new snapshot (a destination down, a set gone) and new
// listeners take effect as whole tables: picks follow dispatch's, a removed
// set passes with PASS_NO_SET, a removed listener with PASS_NOT_LISTENER.
func TestSyncSwap(t *testing.T) {
	env := newEnv(t)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	list := "2 sip:10.0.0.21:5060\n2 sip:10.0.0.22:5060\n2 sip:10.0.0.23:5060\n4 sip:10.0.0.41:5060"
	snap := buildSnapshot(t, list, dispatch.Options{})
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	disp := dispatch.New(snap)
	callIDs := []string{"a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "g@x", "h@x"}
	check := func(step string) {
		t.Helper()
		for _, cid := range callIDs {
			o := send(t, env, src, lis, optionsMsg(cid))
			sel, err := disp.Select(2, dispatch.AlgCallID, dispatch.Key{CallID: cid}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if o.verdict != dptest.XDPRedirect || o.frame.Dst != sel.Dests[0].Addr {
				t.Errorf("%s: Call-ID %s: %s %s to %s, dispatch picks %s", step, cid, verdictName(o.verdict), o.reason, o.frame.Dst, sel.Dests[0].Addr)
			}
		}
	}
	check("all up")

	// 10.0.0.22 goes down: the next-up tables change, the rest stays.
	if err := disp.SetState(2, "sip:10.0.0.22:5060", "i"); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(disp.Snapshot()); err != nil {
		t.Fatal(err)
	}
	check("one down")

	// Set 2 disappears from the snapshot.
	if err := env.DP.SyncSets(buildSnapshot(t, "4 sip:10.0.0.41:5060", dispatch.Options{})); err != nil {
		t.Fatal(err)
	}
	if o := send(t, env, src, lis, optionsMsg("a@x")); o.verdict != dptest.XDPPass || o.reason != "PASS_NO_SET" {
		t.Errorf("set gone: %s %s, want XDP_PASS PASS_NO_SET", verdictName(o.verdict), o.reason)
	}

	// The listener moves to set 4; then it is removed.
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 4}}}); err != nil {
		t.Fatal(err)
	}
	if o := send(t, env, src, lis, optionsMsg("a@x")); o.frame.Dst != netip.MustParseAddrPort("10.0.0.41:5060") {
		t.Errorf("listener on set 4: %s %s to %s", verdictName(o.verdict), o.reason, o.frame.Dst)
	}
	if err := env.DP.SyncListeners(nil); err != nil {
		t.Fatal(err)
	}
	if o := send(t, env, src, lis, optionsMsg("a@x")); o.verdict != dptest.XDPPass || o.reason != "PASS_NOT_LISTENER" {
		t.Errorf("no listener: %s %s, want XDP_PASS PASS_NOT_LISTENER", verdictName(o.verdict), o.reason)
	}
}

// TestEventsAndCounters: a forwarded INVITE and its 200 OK come out of the
// ring buffer; listener, destination and pass counters add up.
func TestEventsAndCounters(t *testing.T) {
	env := newEnv(t)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	snap := buildSnapshot(t, "2 sip:10.0.0.21:5060\n2 sip:10.0.0.22:5060\n2 sip:10.0.0.23:5060", dispatch.Options{})
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan dataplane.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- env.DP.ReadEvents(ctx, func(evs []dataplane.Event) {
			for _, e := range evs {
				events <- e
			}
		})
	}()

	callID := "a84b4c76e66710@pc33.atlanta.example.com"
	o := send(t, env, src, lis, crlf(inviteIn))
	if o.verdict != dptest.XDPRedirect {
		t.Fatalf("INVITE: %s %s", verdictName(o.verdict), o.reason)
	}
	sel, err := snap.Select(2, dispatch.AlgCallID, dispatch.Key{CallID: callID}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ok := crlf(strings.Replace(okIn, "10.10.10.7:5070;received=198.51.100.7", "198.51.100.7:5060", 1))
	if o := send(t, env, sel.Dests[0].Addr, lis, ok); o.verdict != dptest.XDPRedirect {
		t.Fatalf("200 OK: %s %s", verdictName(o.verdict), o.reason)
	}
	send(t, env, src, lis, []byte("garbage\r\n\r\n")) // passed, no event

	want := []dataplane.Event{
		{CallIDHash: dataplane.CallIDHash(callID), SetID: 2, DstIndex: int16(sel.Dests[0].Index), Kind: dataplane.EventRequest, Method: dataplane.MethodInvite, CSeq: 314159, Src: src},
		{CallIDHash: dataplane.CallIDHash(callID), SetID: -1, DstIndex: -1, Status: 200, Kind: dataplane.EventReply, Method: dataplane.MethodInvite, CSeq: 314159, Src: sel.Dests[0].Addr},
	}
	for i, w := range want {
		select {
		case e := <-events:
			if e.KtimeNS == 0 {
				t.Errorf("event %d: no timestamp", i)
			}
			e.KtimeNS = 0
			if !reflect.DeepEqual(e, w) { // Msg nil: loaded without EventCopies
				t.Errorf("event %d = %+v, want %+v", i, e, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d: none", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ReadEvents: %v", err)
	}

	ls, err := env.DP.ListenerStats(0)
	if err != nil {
		t.Fatal(err)
	}
	if ls.RX != 3 || ls.FwdRequests != 1 || ls.FwdReplies != 1 || ls.Passed != 1 || ls.FwdBytes == 0 {
		t.Errorf("listener stats %+v, want 3 rx, 1+1 forwarded, 1 passed", ls)
	}
	ds, err := env.DP.DstStats(2, sel.Dests[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Packets != 1 {
		t.Errorf("destination stats %+v, want 1 packet", ds)
	}
	pc, err := env.DP.PassCounts()
	if err != nil {
		t.Fatal(err)
	}
	if pc["PASS_PARSE"] != 1 || !slices.Contains(env.DP.PassReasons(), "PASS_VIA_NO_COOKIE") {
		t.Errorf("pass counts %v", pc)
	}
}

// TestPinAndAttach: maps pin under a bpffs folder and are reused by the next
// Load; the program attaches to a veth in native mode (and auto mode).
func TestPinAndAttach(t *testing.T) {
	testutil.NeedRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	pin := filepath.Join(dir, "sipedge")
	for i := 0; i < 2; i++ {
		dp, err := dataplane.Load(dataplane.Options{PinDir: pin})
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if i == 0 {
			if err := dp.SyncListeners([]dataplane.Listener{{Addr: netip.MustParseAddrPort("192.0.2.10:5060")}}); err != nil {
				t.Fatal(err)
			}
		}
		dp.Close()
	}
	for _, name := range []string{"listeners", "dst_sets", "active_half", "limit_block", "limit_active", "pass_count", "drop_count", "listener_stats", "dst_stats", "events", "event_lost", "dst_load"} {
		if _, err := os.Stat(filepath.Join(pin, name)); err != nil {
			t.Errorf("pin %s: %v", name, err)
		}
	}
	// call_dst's load slots are one agent's: never pinned.
	if _, err := os.Stat(filepath.Join(pin, "call_dst")); !os.IsNotExist(err) {
		t.Errorf("call_dst pinned (%v), want not", err)
	}

	env := newEnv(t)
	for _, mode := range []dataplane.Mode{dataplane.ModeNative, dataplane.ModeAuto, dataplane.ModeGeneric} {
		var err error
		var got dataplane.Mode
		env.Do(func() {
			l, m, aerr := env.DP.Attach("cl0", mode)
			got, err = m, aerr
			if aerr == nil {
				aerr = l.Close()
			}
			err = aerr
		})
		if err != nil {
			t.Errorf("attach %s: %v", mode, err)
		}
		t.Logf("attach %s: attached %s", mode, got)
	}
	var err error
	env.Do(func() { _, _, err = env.DP.Attach("cl0", "fast") })
	if err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Errorf("attach with a bad mode: %v", err)
	}
}
