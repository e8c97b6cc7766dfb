package config

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dialogattr"
)

// TestDialogAttrs: the dialogs section as package dialogattr takes it,
// which compiles what Validate accepted.
func TestDialogAttrs(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Dialogs.DialogAttrs()
	want := dialogattr.Config{Src: "$fu", Dst: "$ru", Data: "$hdr(X-Tenant)", Rules: []dialogattr.Rule{
		{Tag: "$si", Set: -1},
		{Tag: "trunk", Source: "203.0.113.0/24", Listener: "edge", Set: 1},
		{Tag: "acme", Set: -1, Header: "X-Tenant", Value: "^acme$"},
		{Tag: "trunk", Remove: true, Set: -1, Header: "X-No-Trunk"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DialogAttrs:\n got %+v\nwant %+v", got, want)
	}
	if _, err := dialogattr.New(got); err != nil {
		t.Errorf("dialogattr.New: %v", err)
	}
	wantLimits := []LimitRule{
		{Source: "any", Set: -1, Max: 10, Code: 503},
		{Source: "198.51.100.0/24", Set: -1, Max: 2, Code: 486, Reason: "Busy Here", RetryAfter: 30 * time.Second},
		{Set: 1, Max: 500, Code: 503},
		{Tag: "acme", Set: -1, Code: 503},
	}
	gotLimits := slices.Clone(c.Dialogs.Limits)
	for i := range gotLimits {
		gotLimits[i].Line = 0
	}
	if !reflect.DeepEqual(gotLimits, wantLimits) {
		t.Errorf("limits:\n got %+v\nwant %+v", gotLimits, wantLimits)
	}
	d := Defaults().Dialogs
	if d.Enabled || d.Src != "$fu" || d.Dst != "$du" || d.Data != "" || d.MaxRecords != 1000000 {
		t.Errorf("defaults %+v", d)
	}
	if _, err := dialogattr.New(d.DialogAttrs()); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
