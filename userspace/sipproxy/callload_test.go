package sipproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// startCallLoadProxy runs a Proxy with one failover-mode alg 10 listener
// over the backends, backend i with attrs[i] (index order = list order),
// and call load on.
func startCallLoadProxy(t *testing.T, maxTx int, backends []*testBackend, attrs []string) (*dispatch.Dispatcher, *dispatch.CallLoad, *testClient) {
	t.Helper()
	var entries []dispatch.Entry
	for i, b := range backends {
		entries = append(entries, dispatch.Entry{SetID: 1, URI: "sip:" + b.addr().String(), Priority: len(backends) - i, Attrs: attrs[i]})
	}
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	loads := d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
	local := freeLoopbackPort(t)
	p, err := New(Config{
		Listeners:       []Listener{{Name: "edge", Addr: local, Rule: Rule{SetID: 1, Alg: dispatch.AlgCallLoad, Failover: true, NoDestinationCode: 503}}},
		Dispatcher:      d,
		FailoverTimeout: 300 * time.Millisecond,
		MaxTransactions: maxTx,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	runProxy(t, p)
	return d, loads, newClient(t, local)
}

func loadKey(callID string) dispatch.Key {
	return dispatch.Key{CallID: callID, CallIDHash: wordhash.CallID([]byte(callID)), Invite: true}
}

// A failover moves the call's load to the destination tried next, and
// skips one at its maxload (ds_next_dst moves the load; Kamailio does not
// skip).
func TestCallLoadFailover(t *testing.T) {
	silent, full, free := startBackend(t, backendSilent), startBackend(t, backend200), startBackend(t, backend200)
	d, loads, c := startCallLoadProxy(t, 0, []*testBackend{silent, full, free}, []string{"duid=a", "duid=b;maxload=1", "duid=c"})
	// b at its maxload: one call on a (ended), one on b.
	for _, id := range []string{"pre-a", "pre-b"} {
		if _, err := d.Select(1, dispatch.AlgCallLoad, loadKey(id), 0); err != nil {
			t.Fatal(err)
		}
	}
	loads.Update(wordhash.CallID([]byte("pre-a")), dispatch.CallBye)

	c.send(t, "INVITE", "moved", 1)
	codes := c.waitFinal(t, "INVITE", 5*time.Second)
	if got := codes[len(codes)-1]; got != 200 {
		t.Fatalf("final %v, want 200", codes)
	}
	if n := count(silent.methods(), "INVITE"); n == 0 {
		t.Error("the least loaded destination (a) never got the INVITE")
	}
	if n := count(full.methods(), "INVITE"); n != 0 {
		t.Errorf("b, at its maxload, got %d INVITEs", n)
	}
	got := fmt.Sprint(loads.Load(1, "a"), loads.Load(1, "b"), loads.Load(1, "c"))
	if got != "0 1 1" {
		t.Errorf("loads a b c: %s, want 0 1 1 (the call moved to c)", got)
	}
}

// An INVITE the failover layer refuses itself (its table is full) gives
// back the load its selection took.
func TestCallLoadRefusedReleased(t *testing.T) {
	ringing := startBackend(t, backendRinging)
	_, loads, c := startCallLoadProxy(t, 1, []*testBackend{ringing}, []string{"duid=a"})
	c.send(t, "INVITE", "rings", 1)
	deadline := time.Now().Add(3 * time.Second)
	for count(ringing.methods(), "INVITE") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.send(t, "INVITE", "refused", 1)
	if codes := c.waitFinal(t, "INVITE", 3*time.Second); codes[len(codes)-1] != 503 {
		t.Fatalf("second INVITE: %v, want 503 (table full)", codes)
	}
	if got := loads.Load(1, "a"); got != 1 {
		t.Errorf("load %d, want 1: the ringing call only", got)
	}
}
