package dataplane_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// TestLimitBlock runs the program (BPF_PROG_TEST_RUN) with limit_block
// entries: a dialog-creating INVITE (no To tag) from a blocked source, to
// a blocked set, or while everything is blocked, passes with its
// PASS_LIMIT_* reason, so that the slow path answers it; an in-dialog
// request (a re-INVITE with a To tag, a BYE) and other sources and sets
// are still forwarded; an unblocked source is forwarded again.
func TestLimitBlock(t *testing.T) {
	env := newEnv(t)
	snap := buildSnapshot(t, "2 sip:10.0.0.21:5060\n3 sip:10.0.0.31:5060", dispatch.Options{})
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	lis3 := netip.MustParseAddrPort("192.0.2.10:5062")
	if err := env.DP.SyncListeners([]dataplane.Listener{
		{Addr: lis, Rule: dataplane.Rule{SetID: 2}},
		{Addr: lis3, Rule: dataplane.Rule{SetID: 3}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	caller := netip.MustParseAddrPort("198.51.100.7:5060")
	other := netip.MustParseAddrPort("198.51.100.8:5060")
	caller6 := netip.MustParseAddrPort("[2001:db8::7]:5060")
	invite := crlf(inviteIn)
	reinvite := crlf(strings.Replace(inviteIn, "To: Bob <sip:bob@biloxi.example.com>", "To: Bob <sip:bob@biloxi.example.com>;tag=314", 1))
	bye := crlf(strings.NewReplacer("INVITE sip:", "BYE sip:", "CSeq: 314159 INVITE", "CSeq: 314160 BYE",
		"To: Bob <sip:bob@biloxi.example.com>", "To: Bob <sip:bob@biloxi.example.com>;tag=314").Replace(inviteIn))

	forwarded := func(o outcome) bool { return o.verdict == dptest.XDPTX || o.verdict == dptest.XDPRedirect }
	expect := func(what string, src, dst netip.AddrPort, msg []byte, reason string) {
		t.Helper()
		o := send(t, env, src, dst, msg)
		switch {
		case reason == "" && !forwarded(o):
			t.Errorf("%s: verdict %d reason %q, want forwarded", what, o.verdict, o.reason)
		case reason != "" && (o.verdict != dptest.XDPPass || o.reason != reason):
			t.Errorf("%s: verdict %d reason %q, want XDP_PASS %s", what, o.verdict, o.reason, reason)
		}
	}
	block := func(b dataplane.LimitBlock) {
		t.Helper()
		if err := env.DP.BlockLimit(b, 0); err != nil {
			t.Fatal(err)
		}
	}

	expect("nothing blocked: INVITE", caller, lis, invite, "")

	block(dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: caller.Addr()})
	expect("blocked source: INVITE", caller, lis, invite, "PASS_LIMIT_SOURCE")
	expect("blocked source: re-INVITE (To tag)", caller, lis, reinvite, "")
	expect("blocked source: BYE", caller, lis, bye, "")
	expect("another source: INVITE", other, lis, invite, "")

	// An IPv6 source blocked stays blocked; it blocks no IPv4 source.
	block(dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: caller6.Addr()})
	if err := env.DP.UnblockLimit(dataplane.LimitBlock{Kind: dataplane.LimitSource, Source: caller.Addr()}); err != nil {
		t.Fatal(err)
	}
	expect("unblocked source: INVITE", caller, lis, invite, "")

	block(dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: 2})
	expect("blocked set: INVITE dispatched to it", other, lis, invite, "PASS_LIMIT_SET")
	expect("blocked set: re-INVITE", other, lis, reinvite, "")
	expect("blocked set: INVITE to another set", other, lis3, invite, "")

	block(dataplane.LimitBlock{Kind: dataplane.LimitAll})
	expect("all blocked: INVITE to another set", other, lis3, invite, "PASS_LIMIT_ALL")
	expect("all blocked: BYE", other, lis3, bye, "")

	if err := env.DP.ClearLimitBlocks(); err != nil {
		t.Fatal(err)
	}
	expect("cleared: INVITE", caller, lis, invite, "")
	expect("cleared: INVITE to set 2", other, lis, invite, "")

	if err := env.DP.BlockLimit(dataplane.LimitBlock{Kind: dataplane.LimitSource}, 0); err == nil {
		t.Error("BlockLimit of an invalid source: no error")
	}
	if err := env.DP.UnblockLimit(dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: 9}); err != nil {
		t.Errorf("UnblockLimit of an entry not there: %v", err)
	}
	if err := env.DP.BlockLimit(dataplane.LimitBlock{Kind: dataplane.LimitSet, Set: -1}, 0); err == nil || errors.Is(err, dataplane.ErrLimitBlocksFull) {
		t.Errorf("BlockLimit of set -1: %v, want a range error", err)
	}
}
