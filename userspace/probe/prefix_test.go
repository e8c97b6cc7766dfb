package probe

import (
	"bytes"
	"testing"
)

// TestBranchPrefixTwoEngines: two engines behind one slow path, the
// default prefix and "z9hG4bKka" (keepalive). Each reply is taken by the
// engine that sent the probe; the other returns false and counts nothing,
// so the LocalReply hook can offer a reply to both in turn.
func TestBranchPrefixTwoEngines(t *testing.T) {
	ds, _, _, dsResults, dsProbe := startOne(t, Config{})
	ka, _, _, kaResults, kaProbe := startOne(t, Config{BranchPrefix: "z9hG4bKka"})
	if !bytes.Contains(dsProbe, []byte(";branch="+BranchPrefix)) || !bytes.Contains(kaProbe, []byte(";branch=z9hG4bKka")) {
		t.Fatalf("probes do not carry their engine's prefix:\n%s\n%s", dsProbe, kaProbe)
	}

	if ds.HandleResponse(answer(kaProbe, 200, "OK"), testDst) {
		t.Error("the default engine took a keepalive reply")
	}
	if !ka.HandleResponse(answer(kaProbe, 200, "OK"), testDst) {
		t.Error("the keepalive engine refused its own reply")
	}
	if ka.HandleResponse(answer(dsProbe, 503, "Busy"), testDst) {
		t.Error("the keepalive engine took a dispatcher reply")
	}
	if !ds.HandleResponse(answer(dsProbe, 503, "Busy"), testDst) {
		t.Error("the default engine refused its own reply")
	}
	if r := kaResults.get(); len(r) != 1 || r[0].Code != 200 {
		t.Errorf("keepalive results %+v, want one 200", r)
	}
	if r := dsResults.get(); len(r) != 1 || r[0].Code != 503 {
		t.Errorf("dispatcher results %+v, want one 503", r)
	}
	for name, s := range map[string]Stats{"default": ds.Stats(), "keepalive": ka.Stats()} {
		if s.Replies != 1 || s.UnknownBranch != 0 || s.Malformed != 0 || s.Late != 0 || s.WrongSource != 0 {
			t.Errorf("%s engine stats %+v: want 1 reply and nothing counted as ignored", name, s)
		}
	}
}

func TestBranchPrefixChecked(t *testing.T) {
	for _, p := range []string{"z9hG4bK", "z9hG4bKk", "z9hG4bKKA", "z9hG4bKk-", "x9hG4bKka", "z9hG4bKkaa"} {
		if _, err := New(Config{BranchPrefix: p}, &fakeSender{}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	if _, err := New(Config{BranchPrefix: "z9hG4bKk2"}, &fakeSender{}); err != nil {
		t.Errorf("prefix z9hG4bKk2: %v", err)
	}
}
