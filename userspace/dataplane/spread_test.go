package dataplane_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// TestHashFallbackPicks holds the program's pick_spread to dispatch's
// WalkHash: random sets of 1 to 64 destinations with random ones down,
// with and without use_default, in both ds_hash_fallback modes, 64
// Call-IDs each (alg 0). The program must send every INVITE to the
// destination Select names. (The differential test compares whole
// messages on fixed sets; this one covers set sizes, down patterns and
// use_default, the default being spread's last resort.)
func TestHashFallbackPicks(t *testing.T) {
	env := newEnv(t)
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 5}}}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 2361))
	spreadMoved := 0
	for iter := 0; iter < 40; iter++ {
		n := 1 + r.IntN(64)
		useDefault := iter%2 == 1
		var list strings.Builder
		for i := 1; i <= n; i++ {
			flags := 0
			if r.IntN(4) == 0 {
				flags = 1 // inactive
			}
			fmt.Fprintf(&list, "5 sip:10.0.5.%d:5060 %d\n", i, flags)
		}
		snaps := map[dispatch.HashFallback]*dispatch.Snapshot{}
		for _, fb := range []dispatch.HashFallback{dispatch.FallbackNext, dispatch.FallbackSpread} {
			snaps[fb] = buildSnapshot(t, list.String(), dispatch.Options{UseDefault: useDefault, HashFallback: fb})
		}
		for _, fb := range []dispatch.HashFallback{dispatch.FallbackNext, dispatch.FallbackSpread} {
			snap := snaps[fb]
			if err := env.DP.SyncSets(snap); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 64; k++ {
				cid := fmt.Sprintf("%016x@fallback.example.com", r.Uint64())
				name := fmt.Sprintf("n=%d use_default=%v %s call %s", n, useDefault, fb, cid)
				o := send(t, env, src, lis, crlf(strings.Replace(inviteIn, "a84b4c76e66710@pc33.atlanta.example.com", cid, -1)))
				sel, err := snap.Select(5, dispatch.AlgCallID, dispatch.Key{CallID: cid}, 1)
				if err != nil {
					if o.reason != "PASS_NO_DST" {
						t.Fatalf("%s: the slow path has no destination (%v), the program: %s %s", name, err, verdictName(o.verdict), o.reason)
					}
					continue
				}
				if o.err != nil || o.frame.Dst != sel.Dests[0].Addr {
					t.Fatalf("%s: the program sent to %v (%s %s), Select picks %v (index %d)", name, o.frame.Dst, verdictName(o.verdict), o.reason, sel.Dests[0].Addr, sel.Dests[0].Index)
				}
				if fb == dispatch.FallbackSpread {
					if other, err := snaps[dispatch.FallbackNext].Select(5, dispatch.AlgCallID, dispatch.Key{CallID: cid}, 1); err == nil && other.Dests[0].Index != sel.Dests[0].Index {
						spreadMoved++
					}
				}
			}
		}
	}
	if spreadMoved < 100 {
		t.Errorf("spread picked another destination than next for %d calls: the test does not exercise pick_spread", spreadMoved)
	}
	t.Logf("%d calls went elsewhere with spread; the program agreed on every pick", spreadMoved)
}
