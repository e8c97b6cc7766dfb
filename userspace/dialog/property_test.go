package dialog

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// The property test: any sequence of messages, batches and expiries, bad
// input included, leaves the tracker consistent (checkConsistency). The
// sequence is decoded from bytes, so that the fixed-seed test and the fuzz
// target share one generator. A few Call-IDs, branches and tags make
// retransmissions, serial forks and collisions with the cap frequent.

var (
	propCalls    = []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11"}
	propBranches = []string{"b0", "b1", "b2"}
	propTags     = []string{"t0", "t1", "t2", "t3"}
	propStatuses = []int{100, 180, 183, 200, 202, 299, 300, 404, 486, 500, 603, 699, 99, 700, 0}
	// Sources and sets of INVITEs, the unknown ones included.
	propSources = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::1"), {}}
	propSets    = []int{-1, 0, 1, 2}
)

const propCap = 8

// propRun plays the program in data against a tracker, checking
// consistency after every batch and expiry, and finally expires everything.
func propRun(t *testing.T, data []byte) {
	tr := New(Config{MaxRecords: propCap, InitLifetime: 20 * time.Second,
		ActiveLifetime: 60 * time.Second, FinishLifetime: 5 * time.Second})
	now := t0
	var batch []Message
	flush := func(what string) {
		tr.Observe(batch)
		batch = batch[:0]
		if err := tr.checkConsistency(true); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	tagsOf := func(bits byte) []string {
		var out []string
		for i, tag := range propTags {
			if bits&(1<<i) != 0 {
				out = append(out, tag)
			}
		}
		return out
	}
	for len(data) >= 4 {
		kind, callB, arg, dt := data[0], data[1], data[2], data[3]
		data = data[4:]
		// Mostly forward in time, sometimes back (two paths, two clocks).
		now = now.Add(time.Duration(int8(dt)) * 100 * time.Millisecond)
		call := propCalls[int(callB)%len(propCalls)]
		var m Message
		switch kind % 12 {
		case 0, 1: // INVITE: initial, retransmitted, forked or re-INVITE
			m = invite(call, propBranches[int(arg)%len(propBranches)])
			m.AddTags, m.RemoveTags = tagsOf(arg>>2), tagsOf(arg>>6|dt<<2)
			m.Source = propSources[int(callB>>4)%len(propSources)]
			m.Set = propSets[int(arg>>4)%len(propSets)]
		case 2: // an INVITE lacking a field
			m = invite(call, propBranches[int(arg)%len(propBranches)])
			switch arg % 3 {
			case 0:
				m.FromTag = ""
			case 1:
				m.Branch = ""
			default:
				m.CallID, m.CallIDHash = "", 0
			}
		case 3, 4:
			m = reply(call, propStatuses[int(arg)%len(propStatuses)])
			if arg&0x80 != 0 {
				m.ToTag = "tt-" + call
			}
		case 5:
			m = request(call, Ack)
		case 6:
			m = request(call, Bye)
		case 7:
			m = request(call, Cancel)
		case 8: // another request or a reply to one
			m = request(call, OtherMethod)
			if arg&1 != 0 {
				m = reply(call, propStatuses[int(arg)%len(propStatuses)])
				m.Method = Method(arg>>1) % 5
				if m.Method == Invite {
					m.Method = Bye
				}
			}
		case 9:
			flush("batch")
			continue
		case 10:
			flush("before expiry")
			tr.Expire(now)
			if err := tr.checkConsistency(true); err != nil {
				t.Fatalf("expiry at %v: %v", now.Sub(t0), err)
			}
			continue
		case 11: // a message of an unknown call, or by hash only of a known one
			m = request("unknown-"+call, Method(arg)%5)
		}
		m.Time = now
		batch = append(batch, m)
	}
	flush("last batch")
	tr.Expire(now.Add(time.Hour))
	if err := tr.checkConsistency(true); err != nil {
		t.Fatalf("final expiry: %v", err)
	}
	if st := tr.Stats(); tr.Len() != 0 || st.Active != [NumStates]uint64{} || len(tr.tags) != 0 || len(tr.sources) != 0 || len(tr.sets) != 0 {
		t.Fatalf("after everything expired: %d records, active %v, tags %v, sources %v, sets %v", tr.Len(), st.Active, tr.tags, tr.sources, tr.sets)
	}
}

func TestPropertyConsistent(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 2)) // fixed: a failure replays
	data := make([]byte, 4*400)
	for run := range 300 {
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("run %d", run)
				}
			}()
			propRun(t, data)
		})
	}
}

func FuzzObserve(f *testing.F) {
	// A call through every state, a serial fork, a flood, then expiry.
	f.Add([]byte{0, 1, 0, 1, 3, 1, 1, 1, 3, 1, 3, 1, 5, 1, 0, 1, 6, 1, 0, 1, 9, 0, 0, 0, 10, 0, 0, 100})
	f.Add([]byte{0, 2, 0, 1, 3, 2, 8, 1, 0, 2, 1, 1, 3, 2, 3, 1, 10, 0, 0, 50, 0, 2, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0, 1, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 4, 0, 1, 0, 5, 0, 1, 0, 6, 0, 1, 0, 7, 0, 1, 0, 8, 0, 1, 0, 9, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) { propRun(t, data) })
}
