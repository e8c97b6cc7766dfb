package dialog

import (
	"context"
	"testing"
	"time"
)

// TestExpire checks the timer rules of §8 at their edges: a record goes
// when its lifetime ended strictly before now, and the active gauge of its
// state goes down with it (the reference quirk fixed).
func TestExpire(t *testing.T) {
	cfg := Config{InitLifetime: 100 * time.Second, ActiveLifetime: 1000 * time.Second, FinishLifetime: 10 * time.Second}
	ok200 := at(5*time.Second, reply("c", 200))
	tests := []struct {
		name string
		msgs []Message
		// the record stays at deadline and goes at deadline+1ns
		deadline time.Duration
		state    State
	}{
		{name: "INIT: init + init_lifetime", msgs: []Message{invite("c", "b1")}, deadline: 100 * time.Second, state: Init},
		{name: "PROGRESS: init + init_lifetime", msgs: []Message{invite("c", "b1"), at(5*time.Second, reply("c", 180))},
			deadline: 100 * time.Second, state: Progress},
		{name: "ANSWERED: init + init_lifetime (ACK lost)", msgs: []Message{invite("c", "b1"), ok200},
			deadline: 100 * time.Second, state: Answered},
		{name: "CONFIRMED: answer + active_lifetime", msgs: []Message{invite("c", "b1"), ok200, at(6*time.Second, request("c", Ack))},
			deadline: 1005 * time.Second, state: Confirmed},
		{name: "TERMINATED: finish + finish_lifetime", msgs: []Message{invite("c", "b1"), ok200, at(6*time.Second, request("c", Ack)),
			at(50*time.Second, request("c", Bye))}, deadline: 60 * time.Second, state: Terminated},
		{name: "NOTANSWERED: finish + finish_lifetime", msgs: []Message{invite("c", "b1"), at(7*time.Second, reply("c", 486))},
			deadline: 17 * time.Second, state: NotAnswered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(cfg)
			observe(t, tr, tc.msgs...)
			if n := tr.Expire(t0.Add(tc.deadline)); n != 0 || tr.Len() != 1 {
				t.Fatalf("at the deadline: expired %d, %d left", n, tr.Len())
			}
			if n := tr.Expire(t0.Add(tc.deadline + 1)); n != 1 || tr.Len() != 0 {
				t.Fatalf("after the deadline: expired %d, %d left", n, tr.Len())
			}
			want := Stats{}
			want.Final[tc.state] = 1
			if got := tr.Stats(); got != want {
				t.Errorf("stats %+v, want %+v", got, want)
			}
			if err := tr.checkConsistency(true); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestExpireLive checks that lifetimes changed by SetConfig apply to the
// records already held.
func TestExpireLive(t *testing.T) {
	tr := New(Config{})
	observe(t, tr, invite("c", "b1"))
	if n := tr.Expire(t0.Add(time.Minute)); n != 0 {
		t.Fatalf("expired %d under the default init_lifetime", n)
	}
	tr.SetConfig(Config{InitLifetime: time.Second})
	if n := tr.Expire(t0.Add(time.Minute)); n != 1 {
		t.Fatalf("expired %d after init_lifetime became 1 s", n)
	}
}

// TestExpireHugeLifetime checks that a lifetime near the largest Duration
// does not overflow into "expired long ago".
func TestExpireHugeLifetime(t *testing.T) {
	tr := New(Config{InitLifetime: time.Duration(1<<63 - 1)})
	observe(t, tr, invite("c", "b1"))
	if n := tr.Expire(t0.Add(time.Hour)); n != 0 {
		t.Errorf("expired %d", n)
	}
}

// TestExpireLarge expires more records than one scan chunk holds, some in
// every chunk, and checks that the scan visits them all.
func TestExpireLarge(t *testing.T) {
	tr := New(Config{MaxRecords: 3 * scanChunk})
	var msgs []Message
	for i := range 3 * scanChunk {
		call := callName(i)
		msgs = append(msgs, invite(call, "b1"))
		if i%3 == 0 {
			msgs = append(msgs, reply(call, 200), request(call, Ack))
		}
	}
	tr.Observe(msgs)
	if n := tr.Expire(t0.Add(DefaultInitLifetime + 1)); n != 2*scanChunk {
		t.Errorf("expired %d, want %d", n, 2*scanChunk)
	}
	if err := tr.checkConsistency(true); err != nil {
		t.Error(err)
	}
	if got := tr.Stats().Active[Confirmed]; got != scanChunk || tr.Len() != scanChunk {
		t.Errorf("%d confirmed of %d records, want %d", got, tr.Len(), scanChunk)
	}
}

// TestRun checks that Run expires records on its timer, follows a new
// interval and returns nil when its context ends.
func TestRun(t *testing.T) {
	tr := New(Config{TimerInterval: time.Hour, InitLifetime: time.Nanosecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	observe(t, tr, invite("c", "b1")) // expired long ago: t0 is in 2023
	tr.SetConfig(Config{TimerInterval: time.Millisecond, InitLifetime: time.Nanosecond})
	for tr.Len() != 0 {
		time.Sleep(time.Millisecond) // the test's own timeout bounds this
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}
