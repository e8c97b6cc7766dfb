package sipproxy

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// An INVITE refused by Config.Admit (dialog limit) gives back the call
// load alg 10's selection charged, stateless and failover: else a caller
// over its limit fills every destination for ds_hash_initexpire.
func TestLimitRefusalReleasesCallLoad(t *testing.T) {
	for _, failover := range []bool{false, true} {
		b := startBackend(t, backend200)
		entries := []dispatch.Entry{{SetID: 1, URI: "sip:" + b.addr().String(), Attrs: "duid=a"}}
		snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := dispatch.New(snap)
		loads := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
		local := freeLoopbackPort(t)
		var adm admitter
		p, err := New(Config{
			Listeners:  []Listener{{Name: "edge", Addr: local, Rule: Rule{SetID: 1, Alg: dispatch.AlgCallLoad, Failover: failover, NoDestinationCode: 503}}},
			Dispatcher: d, FailoverTimeout: 300 * time.Millisecond,
			Admit:  adm.admit,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		runProxy(t, p)
		c := newClient(t, local)
		c.send(t, "INVITE", "over-1", 1)
		if codes := c.waitFinal(t, "INVITE", 3*time.Second); codes[len(codes)-1] != 486 {
			t.Fatalf("%v", codes)
		}
		if got := loads.Load(1, "a"); got != 0 {
			t.Errorf("failover=%v: load %d after a refused INVITE, want 0", failover, got)
		}
	}
}
