package dialog

import (
	"net/netip"
	"time"
)

// State of a dialog record, numbered as Kamailio's dlgs numbers them
// (dlgs.list "state").
type State uint8

// The states of a record, in Kamailio's order.
const (
	Init        State = iota // created by an INVITE, no reply yet
	Progress                 // a 1xx seen
	Answered                 // a 2xx seen
	Confirmed                // the ACK of the 2xx seen
	Terminated               // a BYE seen
	NotAnswered              // a final ≥300 or a CANCEL seen
)

// NumStates is the number of states, the length of the Stats arrays.
const NumStates = 6

var stateNames = [NumStates]string{"init", "progress", "answered", "confirmed", "terminated", "notanswered"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// live reports whether a record in state s is an ongoing dialog, one that
// Count and TagsCount see.
func (s State) live() bool { return s < Terminated }

// setup reports whether a record in state s may be shed under the cap.
func (s State) setup() bool { return s == Init || s == Progress }

// Method is what the tracker needs to know of a method.
type Method uint8

// The methods that drive a record; every other is OtherMethod.
const (
	OtherMethod Method = iota
	Invite
	Ack
	Bye
	Cancel
)

// Message is one SIP message of a dialog, as either path saw it.
// The tracker copies every string it keeps: strings may alias a buffer the
// caller reuses after Observe returns.
type Message struct {
	// Time the message was seen; zero means now.
	Time time.Time
	// CallIDHash is the match key: wordhash.CallID of the trimmed Call-ID.
	// Zero with a CallID means "compute it from CallID".
	CallIDHash uint64
	Request    bool
	Method     Method // a request's method, or the CSeq method of a reply
	Status     int    // replies only
	// Text fields, when the path has them: INVITE requests on both paths;
	// replies on the slow path, and 2xx replies to INVITE on the fast path.
	// Empty otherwise (the fast path reports other messages by hash only).
	CallID, FromTag, ToTag string
	Branch                 string // a request's top Via branch
	// INVITE requests only: the record's fields, expanded from the
	// configured templates, and the tags the configured rules add to or
	// remove from the dialog (removals apply after additions).
	Src, Dst, Data      string
	AddTags, RemoveTags []string
	// INVITE requests only: the address the INVITE came from (invalid:
	// unknown) and the destination set it was dispatched to (-1: none, a
	// loose-routed INVITE; the zero value is set 0). The tracker counts the
	// live dialogs per source address and per set (SourceCount, SetCount),
	// for the limits the agent enforces.
	Source netip.Addr
	Set    int
}
