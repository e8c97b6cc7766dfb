package dataplane_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sipedge/sipedge/tests/fixtures"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// mutationBytes are the bytes a mutation writes: the ones SIP syntax turns on.
var mutationBytes = []byte(" \t\r\n,;:=\"<>@[]?/\\%.-_x0Z\x00\x7f\xff")

// mutate changes one to three bytes of in (replace, insert or delete) in its
// header section, or not at all.
func mutate(r *rand.Rand, in []byte) []byte {
	end := bytes.Index(in, []byte("\r\n\r\n"))
	if end < 1 {
		end = len(in)
	}
	out := append([]byte(nil), in...)
	for n := 1 + r.IntN(3); n > 0; n-- {
		if end < 1 {
			break
		}
		i := r.IntN(end)
		c := mutationBytes[r.IntN(len(mutationBytes))]
		switch r.IntN(3) {
		case 0:
			out[i] = c
		case 1:
			out = append(out[:i], append([]byte{c}, out[i:]...)...)
			end++
		default:
			if end > 1 {
				out = append(out[:i], out[i+1:]...)
				end--
			}
		}
	}
	return out
}

// TestDifferentialMutations holds the program to the rule "never forward what
// the slow path does not forward, and forward the same bytes": the fixtures'
// messages, mutated a few bytes at a time, go through the XDP program and
// through sipproxy.Forwarder; whenever the program forwards, the slow path
// must forward the same bytes to the same place. SIPEDGE_MUTATIONS sets the
// number of mutations per case (default 40).
func TestDifferentialMutations(t *testing.T) {
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
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{Resolver: noDNS})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	disp := dispatch.New(snap)
	per := 40
	if v, err := strconv.Atoi(os.Getenv("SIPEDGE_MUTATIONS")); err == nil {
		per = v
	}
	r := rand.New(rand.NewPCG(7, 11))
	forwarded, failures := 0, 0
	for _, c := range cases {
		rule := sipproxy.Rule{SetID: c.Rule.SetID, Alg: dispatch.Alg(c.Rule.Alg), Limit: c.Rule.Limit,
			RecordRoute: c.Rule.RecordRoute, Failover: c.Rule.Failover, HashPVar: c.Rule.HashPVar,
			NoDestinationCode: c.Rule.NoDestinationCode}
		owns := c.OwnsTransaction
		fw, err := sipproxy.NewForwarder(disp, []sipproxy.Listener{{Name: "l", Addr: c.Listener, Advertise: c.Advertise, Rule: rule}},
			sipproxy.Options{OwnsTransaction: func([]byte, []byte) bool { return owns }})
		if err != nil {
			t.Fatal(err)
		}
		lis := dataplane.Listener{Addr: c.Listener, ADV: c.Advertise, Rule: dataplane.Rule{
			SetID: c.Rule.SetID, Alg: c.Rule.Alg, RecordRoute: c.Rule.RecordRoute, Failover: c.Rule.Failover}}
		if err := env.DP.SyncListeners([]dataplane.Listener{lis}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < per; i++ {
			in := mutate(r, c.In)
			o := send(t, env, c.Src, c.Listener, in)
			if o.verdict != dptest.XDPTX && o.verdict != dptest.XDPRedirect {
				continue
			}
			forwarded++
			res := fw.Process(in, c.Src, c.Listener, nil)
			if res.Action != sipproxy.ActionForward || res.Dst != o.frame.Dst || !bytes.Equal(res.Out, o.frame.Payload) {
				failures++
				if failures <= 10 {
					t.Errorf("%s: the fast path forwarded to %s, the slow path says %v %q to %s\n in: %q\nxdp: %q\n go: %q",
						filepath.Base(c.File), o.frame.Dst, res.Action, res.Reason, res.Dst, in, o.frame.Payload, res.Out)
				}
			}
		}
	}
	t.Logf("%d mutations forwarded by the fast path, %d disagreements", forwarded, failures)
}
