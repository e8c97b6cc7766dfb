package config

import (
	"testing"

	"github.com/sipedge/sipedge/examples"
)

// TestExamples loads the embedded default config the agent runs without -c.
func TestExamples(t *testing.T) {
	c, err := LoadFS(examples.FS, "sipedge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, ok := c.RuleFor("edge")
	if !ok || r.Set != 1 || r.Algorithm != 0 || !r.RecordRoute || r.Mode != ModeStateless {
		t.Errorf("rule for edge = %+v, %v", r, ok)
	}
	if got := c.Listeners[0].Addr.String(); got != "127.0.0.1:5060" {
		t.Errorf("listener address = %s", got)
	}
	if c.Control.Socket != "/run/sipedge/sipedge.sock" {
		t.Errorf("control socket = %q", c.Control.Socket)
	}
	entries, err := c.ReadDispatcherList()
	if err != nil {
		t.Fatal(err)
	}
	var set1 []string
	for _, e := range entries {
		if e.SetID == 1 {
			set1 = append(set1, e.URI)
		}
	}
	if len(set1) != 3 || set1[0] != "sip:127.0.0.1:5080" || set1[1] != "sip:127.0.0.1:5082" || set1[2] != "sip:127.0.0.1:5084" {
		t.Errorf("set 1 = %q", set1)
	}
	has := map[int]bool{}
	for _, e := range entries {
		has[e.SetID] = true
	}
	if err := c.CheckSets(func(s int) bool { return has[s] }); err != nil {
		t.Error(err)
	}
}
