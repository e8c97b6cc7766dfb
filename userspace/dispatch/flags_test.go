package dispatch

import "testing"

func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		f    Flags
		str  string
		down bool
	}{
		{name: "active", f: 0, str: "AX"},
		{name: "active probing", f: FlagProbing, str: "AP"},
		{name: "inactive", f: FlagInactive, str: "IX", down: true},
		{name: "inactive wins over disabled", f: FlagInactive | FlagDisabled, str: "IX", down: true},
		{name: "disabled", f: FlagDisabled | FlagNoPing, str: "DN", down: true},
		{name: "trying is up", f: FlagTrying | FlagProbing, str: "TP"},
		{name: "probing wins over noping", f: FlagProbing | FlagNoPing, str: "AP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.f.String() != tc.str || tc.f.Down() != tc.down {
				t.Errorf("%d: %q down=%v, want %q down=%v", tc.f, tc.f, tc.f.Down(), tc.str, tc.down)
			}
		})
	}
}
