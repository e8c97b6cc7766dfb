package dialog

import (
	"strconv"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/wordhash"
)

// t0 is the time of the first message of every test call.
var t0 = time.Unix(1_700_000_000, 0)

func callHash(callID string) uint64 { return wordhash.CallID([]byte(callID)) }

// invite is an INVITE request of call on branch, with the slow path's text.
func invite(call, branch string, tags ...string) Message {
	return Message{
		Time: t0, CallIDHash: callHash(call), Request: true, Method: Invite,
		CallID: call, FromTag: "ft-" + call, Branch: branch,
		Src: "sip:alice@" + call, Dst: "sip:bob@example.net", Data: "data-" + call,
		AddTags: tags,
	}
}

// reply is a reply of call with the CSeq method INVITE, by hash only.
func reply(call string, status int) Message {
	return Message{Time: t0, CallIDHash: callHash(call), Method: Invite, Status: status}
}

// request is an in-dialog request of call, by hash only.
func request(call string, m Method) Message {
	return Message{Time: t0, CallIDHash: callHash(call), Request: true, Method: m, Branch: "z9hG4bK-in-dialog"}
}

// at returns m seen d after t0.
func at(d time.Duration, m Message) Message {
	m.Time = t0.Add(d)
	return m
}

// observe feeds msgs one by one and fails the test at the first
// inconsistency.
func observe(t *testing.T, tr *Tracker, msgs ...Message) {
	t.Helper()
	for k := range msgs {
		tr.Observe(msgs[k : k+1])
		if err := tr.checkConsistency(true); err != nil {
			t.Fatalf("after message %d: %v", k, err)
		}
	}
}

// newest returns the newest record of call.
func newest(t *testing.T, tr *Tracker, call string) Record {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	i := tr.tab.newest(callHash(call))
	if i == 0 {
		t.Fatalf("no record of %q", call)
	}
	return tr.tab.at(i).export(tr.ruidPrefix)
}

// active is a Stats.Active with n records in each state listed.
func active(states ...State) (a [NumStates]uint64) {
	for _, s := range states {
		a[s]++
	}
	return a
}

func callName(i int) string { return "call-" + strconv.Itoa(i) + "@10.0.0.1" }
