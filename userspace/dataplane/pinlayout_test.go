package dataplane

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestLoadReplacesOldLayoutPin: a dst_sets pinned by an agent of an older
// layout (the value before live[] was added, 64 bytes shorter) is
// replaced by one of the program's layout, and Load says so: the counters
// an operator reads restart.
func TestLoadReplacesOldLayoutPin(t *testing.T) {
	dir := privateMounts(t)
	pins := filepath.Join(mkdir(t, dir, "bpf"), "sipedge")
	dp, err := Load(Options{PinDir: pins})
	if err != nil {
		t.Fatal(err)
	}
	info, err := dp.objs.DstSets.Info()
	if err != nil {
		t.Fatal(err)
	}
	dp.Close()
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "dst_sets", Type: ebpf.Array, KeySize: 4,
		ValueSize: info.ValueSize - 64, MaxEntries: info.MaxEntries})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	path := filepath.Join(pins, "dst_sets")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(path); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	dp, err = Load(Options{PinDir: pins, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Load over an old-layout pin: %v", err)
	}
	defer dp.Close()
	got, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.ValueSize() != info.ValueSize {
		t.Errorf("pinned dst_sets value size %d, want %d", got.ValueSize(), info.ValueSize)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "another layout") || !strings.Contains(logs.String(), "dst_sets") {
		t.Errorf("replacing the old-layout pin logged %q, want a warning naming dst_sets", logs.String())
	}
}

// TestLoadEventCopiesRingPin: turning event copies on between two runs of
// the agent changes the size of the pinned event ring (DefaultCopyRingBytes):
// Load replaces the pins, says so, and the ring has the copy size; turning
// them off again gives back the program's size.
func TestLoadEventCopiesRingPin(t *testing.T) {
	dir := privateMounts(t)
	pins := filepath.Join(mkdir(t, dir, "bpf"), "sipedge")
	spec, err := loadXdpsip()
	if err != nil {
		t.Fatal(err)
	}
	compact := spec.Maps["events"].MaxEntries
	for i, tc := range []struct {
		copies bool
		want   uint32
	}{{false, compact}, {true, DefaultCopyRingBytes}, {false, compact}} {
		var logs bytes.Buffer
		dp, err := Load(Options{PinDir: pins, EventCopies: tc.copies, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("load %d (copies %v): %v", i, tc.copies, err)
		}
		dp.Close()
		ring, err := ebpf.LoadPinnedMap(filepath.Join(pins, "events"), nil)
		if err != nil {
			t.Fatal(err)
		}
		size := ring.MaxEntries()
		ring.Close()
		if size != tc.want {
			t.Errorf("load %d (copies %v): pinned ring of %d bytes, want %d", i, tc.copies, size, tc.want)
		}
		if replaced := strings.Contains(logs.String(), "another layout"); replaced != (i > 0) {
			t.Errorf("load %d (copies %v): pins replaced %v, want %v; log %q", i, tc.copies, replaced, i > 0, logs.String())
		}
	}
}
