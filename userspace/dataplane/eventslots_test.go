package dataplane

import (
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestEventSlotsAgree: the Go side reads event_lost with the layout the
// program writes, kind * eventMethodSlots + method, so the map must hold
// three kinds of eventMethodSlots and every method must fit a slot (the C
// side asserts the same at build time).
func TestEventSlotsAgree(t *testing.T) {
	spec, err := loadXdpsip()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := spec.Maps["event_lost"]
	if !ok {
		t.Fatal("no event_lost map in the program")
	}
	if m.MaxEntries != 3*eventMethodSlots {
		t.Errorf("event_lost has %d entries, want 3 kinds × %d method slots", m.MaxEntries, eventMethodSlots)
	}
	var methods *btf.Enum
	if err := spec.Types.TypeByName("sip_method", &methods); err != nil {
		t.Fatalf("enum sip_method in the program's BTF: %v", err)
	}
	for _, v := range methods.Values {
		if v.Value >= eventMethodSlots {
			t.Errorf("sip_method %s = %d does not fit %d slots", v.Name, v.Value, eventMethodSlots)
		}
	}
}
