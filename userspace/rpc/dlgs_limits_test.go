package rpc

import (
	"context"
	"strings"
	"testing"
)

// TestDialogLimitsRPC: dlgs.limits gives the rules with their keys, []
// when none; with tracking off it answers the fault the dlgs methods
// answer then.
func TestDialogLimitsRPC(t *testing.T) {
	const req = `{"jsonrpc":"2.0","method":"dlgs.limits","id":1}`
	var lim DlgsLimits
	s := New(nil)
	RegisterDialogLimits(s, func() DlgsLimits { return lim })
	call := func() string { return string(s.handleMessage(context.Background(), []byte(req))) }

	lim = DlgsLimits{Rules: []DlgsLimit{}}
	if got, want := call(), `{"jsonrpc":"2.0","result":{"rules":[],"fastpath_blocked":0},"id":1}`; got != want {
		t.Errorf("no rules:\n got %s\nwant %s", got, want)
	}
	lim = DlgsLimits{Rules: []DlgsLimit{{Index: 2, Kind: "source", Match: "any", Max: 4, Code: 503,
		Reason: "Service Unavailable", Count: 1, Refused: 3}}, FastPathBlocked: 1}
	want := `{"jsonrpc":"2.0","result":{"rules":[{"index":2,"kind":"source","match":"any","max":4,"code":503,` +
		`"reason":"Service Unavailable","count":1,"refused":3}],"fastpath_blocked":1},"id":1}`
	if got := call(); got != want {
		t.Errorf("one rule:\n got %s\nwant %s", got, want)
	}

	off := New(nil)
	RegisterDialogLimits(off, nil)
	if got := string(off.handleMessage(context.Background(), []byte(req))); !strings.Contains(got, msgDlgsOff) {
		t.Errorf("tracking off: %s, want the %q fault", got, msgDlgsOff)
	}
}
