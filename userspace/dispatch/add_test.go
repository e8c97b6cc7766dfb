package dispatch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestAddMatchesBuild: adding entries one by one gives the sets a Build of
// all the entries gives: order, indices, IUIDs (duplicates included),
// tables; and the entries in input order.
func TestAddMatchesBuild(t *testing.T) {
	base := append(ents(1, "sip:10.0.0.1", "sip:10.0.0.2"), ents(5, "sip:10.0.5.1")...)
	var added []Entry
	for i := range 40 {
		added = append(added, Entry{
			SetID:    []int{1, 3, 5, 7}[i%4],
			URI:      fmt.Sprintf("sip:10.0.%d.%d", i%3, i%5), // duplicates on purpose
			Priority: i % 4,
			Attrs:    fmt.Sprintf("duid=d%d", i),
			Source:   fmt.Sprintf("add %d", i),
		})
	}
	opt := Options{UseDefault: true}
	d := New(mustBuild(t, opt, base))
	for _, e := range added {
		if err := d.Add(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	got, want := d.Snapshot(), mustBuild(t, opt, append(slices.Clone(base), added...))
	if !slices.EqualFunc(got.Entries(), want.Entries(), func(a, b Entry) bool { return a == b }) {
		t.Errorf("entries differ:\n got %v\nwant %v", got.Entries(), want.Entries())
	}
	if len(got.Sets()) != len(want.Sets()) {
		t.Fatalf("%d sets, want %d", len(got.Sets()), len(want.Sets()))
	}
	for i, ws := range want.Sets() {
		gs := got.Sets()[i]
		if gs.ID != ws.ID || gs.HashMod != ws.HashMod || gs.DefaultIdx != ws.DefaultIdx ||
			gs.EqualPriority != ws.EqualPriority || !slices.Equal(gs.NextUp, ws.NextUp) {
			t.Errorf("set %d: got %+v, want %+v", ws.ID, gs, ws)
		}
		for j := range ws.Dests {
			g, w := gs.Dests[j], ws.Dests[j]
			if g.URI != w.URI || g.IUID != w.IUID || g.Index != w.Index || g.Priority != w.Priority || g.Attrs != w.Attrs || g.Addr != w.Addr {
				t.Errorf("set %d dest %d: got %s %s idx %d prio %d, want %s %s idx %d prio %d",
					ws.ID, j, g.URI, g.IUID, g.Index, g.Priority, w.URI, w.IUID, w.Index, w.Priority)
			}
		}
	}
}

// TestAddSetFull: an add beyond MaxSetSize fails, naming the entry.
func TestAddSetFull(t *testing.T) {
	d := New(mustBuild(t, Options{}, hosts(MaxSetSize)))
	err := d.Add(context.Background(), Entry{SetID: 1, URI: "sip:10.9.9.9", Source: "rpc dispatcher.add"})
	if want := "rpc dispatcher.add: set 1 has more than 32767 destinations"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}
