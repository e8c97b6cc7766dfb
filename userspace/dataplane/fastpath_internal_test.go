package dataplane

import (
	"reflect"
	"testing"
)

// TestFastPathConsume: each drained batch is counted for fastpath.stats
// and then handed to FastPathConfig.Events, as drained; without a
// consumer the events are only counted.
func TestFastPathConsume(t *testing.T) {
	batch := []Event{
		{Kind: EventRequest, Method: MethodInvite, Msg: []byte("INVITE sip:bob@biloxi.example.com SIP/2.0\r\n")},
		{Kind: EventReply, Method: MethodInvite, Status: 180},
		{Kind: EventRequest, Method: MethodBye},
	}
	var got [][]Event
	f := NewFastPath(FastPathConfig{Events: func(evs []Event) { got = append(got, evs) }})
	f.consume(batch)
	f.consume(batch[:1])
	if want := [][]Event{batch, batch[:1]}; !reflect.DeepEqual(got, want) {
		t.Errorf("Events got %+v, want %+v", got, want)
	}
	if n := f.events[EventRequest][MethodInvite].Load(); n != 2 {
		t.Errorf("counted %d INVITE events, want 2", n)
	}

	f = NewFastPath(FastPathConfig{})
	f.consume(batch)
	if n := f.events[EventRequest][MethodBye].Load(); n != 1 {
		t.Errorf("without a consumer: counted %d BYE events, want 1", n)
	}
}

// TestFastPathLoadOptions: FastPathConfig.EventCopies loads the program
// with copies; the default does not.
func TestFastPathLoadOptions(t *testing.T) {
	for _, copies := range []bool{false, true} {
		if got := NewFastPath(FastPathConfig{EventCopies: copies}).loadOptions().EventCopies; got != copies {
			t.Errorf("EventCopies %v: load options' EventCopies %v", copies, got)
		}
	}
}
