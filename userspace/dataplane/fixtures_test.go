package dataplane_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/tests/fixtures"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// TestFixtures runs every forwarding-contract case of tests/fixtures through
// the program. A case passes when the program forwards exactly the case's
// out bytes to its dst (from the listener, with the egress link's MACs and
// valid checksums), or passes the message up with a reason the case allows
// (pass: a reason, "any", or, for a case the slow path does not forward,
// any reason), or drops a message the slow path drops.
func TestFixtures(t *testing.T) {
	env := newEnv(t)
	dir := fixtures.Dir()
	cases, err := fixtures.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := fixtures.Entries(dir)
	if err != nil {
		t.Fatal(err)
	}
	// One snapshot per ds_hash_fallback the cases name, synced when the
	// case's differs from the one the program holds.
	snaps := map[dispatch.HashFallback]*dispatch.Snapshot{}
	synced := dispatch.HashFallback(-1)
	var forwarded, passed, dropped int
	for _, c := range cases {
		if snaps[c.HashFallback] == nil {
			snap, err := dispatch.Build(context.Background(), entries, c.Options(noDNS))
			if err != nil {
				t.Fatal(err)
			}
			snaps[c.HashFallback] = snap
		}
		if synced != c.HashFallback {
			if err := env.DP.SyncSets(snaps[c.HashFallback]); err != nil {
				t.Fatal(err)
			}
			synced = c.HashFallback
		}
		t.Run(filepath.Base(c.File), func(t *testing.T) {
			lis := dataplane.Listener{Addr: c.Listener, ADV: c.Advertise, Rule: dataplane.Rule{
				SetID: c.Rule.SetID, Alg: c.Rule.Alg, RecordRoute: c.Rule.RecordRoute, Failover: c.Rule.Failover,
			}}
			if err := env.DP.SyncListeners([]dataplane.Listener{lis}); err != nil {
				t.Fatal(err)
			}
			o := send(t, env, c.Src, c.Listener, c.In)
			switch o.verdict {
			case dptest.XDPTX, dptest.XDPRedirect:
				forwarded++
				if c.Action != fixtures.ActionForward || c.Out == nil {
					t.Fatalf("%s: forwarded (%s) a message whose action is %s", c.Name, verdictName(o.verdict), c.Action)
				}
				checkForward(t, env, o, c.Src, c.Listener, c.Dst, c.Out)
			case dptest.XDPPass:
				passed++
				switch {
				case c.Pass == fixtures.PassAny:
				case c.Pass == "":
					if c.Action == fixtures.ActionForward {
						t.Errorf("%s: passed (%s), the fast path must forward it", c.Name, o.reason)
					}
				case c.Pass != o.reason:
					t.Errorf("%s: passed with %s, want %s", c.Name, o.reason, c.Pass)
				}
				t.Logf("passed: %s", o.reason)
			case dptest.XDPDrop:
				dropped++
				if c.Action != fixtures.ActionDrop {
					t.Errorf("%s: dropped (%s), action is %s", c.Name, o.reason, c.Action)
				}
				t.Logf("dropped: %s", o.reason)
			default:
				t.Errorf("%s: verdict %s", c.Name, verdictName(o.verdict))
			}
		})
	}
	t.Logf("%d cases: %d forwarded, %d passed, %d dropped", len(cases), forwarded, passed, dropped)
}
