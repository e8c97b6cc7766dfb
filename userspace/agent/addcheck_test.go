package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// TestAddKeepsCallLoadDUIDsDistinct: dispatcher.add is refused, and the
// set left as it was, when it would put a destination without a duid, or
// with another's, into a set a rule dispatches with algorithm 10: the load
// is kept by duid, so the later requests of a call placed on the added
// destination would go to the other one.
func TestAddKeepsCallLoadDUIDsDistinct(t *testing.T) {
	snap, err := dispatch.Build(context.Background(), []dispatch.Entry{{SetID: 1, URI: "sip:10.0.0.1", Attrs: "duid=a"}}, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{d: dispatch.New(snap)}
	a.cur.Store(&Snapshot{Config: &config.Config{Rules: []config.Rule{{Set: 1, Algorithm: int(dispatch.AlgCallLoad)}}}, Sets: snap})
	a.d.SetAddCheck(a.checkAdded)
	for _, tc := range []struct{ attrs, want string }{
		{"duid=a", `both have duid "a"`},
		{"", "needs a duid"},
	} {
		err := a.d.Add(context.Background(), dispatch.Entry{SetID: 1, URI: "sip:10.0.0.9", Attrs: tc.attrs})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add with %q: %v, want an error with %q", tc.attrs, err, tc.want)
		}
		if n := len(a.d.Snapshot().Set(1).Dests); n != 1 {
			t.Errorf("add with %q: set 1 has %d destinations, want 1", tc.attrs, n)
		}
	}
	if err := a.d.Add(context.Background(), dispatch.Entry{SetID: 1, URI: "sip:10.0.0.9", Attrs: "duid=b"}); err != nil {
		t.Errorf("add with its own duid: %v", err)
	}
}
