package dataplane

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sipedge/sipedge/userspace/wordhash"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds (enum event_kind).
const (
	EventRequest EventKind = EventKind(xdpsipEventKindEVENT_REQUEST) // an INVITE, ACK, BYE or CANCEL forwarded
	EventReply   EventKind = EventKind(xdpsipEventKindEVENT_REPLY)   // a final reply to an INVITE forwarded
)

// Method is the program's method number (enum sip_method).
type Method uint8

// The methods events carry.
const (
	MethodInvite Method = Method(xdpsipSipMethodMETHOD_INVITE)
	MethodAck    Method = Method(xdpsipSipMethodMETHOD_ACK)
	MethodBye    Method = Method(xdpsipSipMethodMETHOD_BYE)
	MethodCancel Method = Method(xdpsipSipMethodMETHOD_CANCEL)
)

// String returns the method's name as SIP writes it.
func (m Method) String() string {
	switch m {
	case MethodInvite:
		return "INVITE"
	case MethodAck:
		return "ACK"
	case MethodBye:
		return "BYE"
	case MethodCancel:
		return "CANCEL"
	}
	return fmt.Sprintf("method(%d)", uint8(m))
}

// Event is one dialog-relevant message the fast path forwarded.
type Event struct {
	KtimeNS    uint64 // CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns)
	CallIDHash uint64 // CallIDHash of the trimmed Call-ID
	ListenerID uint32
	SetID      int32 // -1 for replies
	DstIndex   int16 // destination index in the set; -1 for replies and loose-routed requests
	Status     uint16
	Kind       EventKind
	Method     Method // the request's, or the CSeq method of a reply
	CSeq       uint32
}

// ReadEvents calls fn for every event until ctx is done; it returns nil
// then, or the reader's error. Events are read by one goroutine: fn must not
// block for long (a full ring buffer loses events, never packets).
func (d *Dataplane) ReadEvents(ctx context.Context, fn func(Event)) error {
	rd, err := ringbuf.NewReader(d.objs.Events)
	if err != nil {
		return fmt.Errorf("open event ring: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	defer rd.Close()
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read event ring: %w", err)
		}
		var raw xdpsipSipEvent
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &raw); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		fn(Event{
			KtimeNS:    raw.TsNs,
			CallIDHash: raw.CallidHash,
			ListenerID: raw.ListenerId,
			SetID:      raw.SetId,
			DstIndex:   raw.DstIdx,
			Status:     raw.Status,
			Kind:       EventKind(raw.Kind),
			Method:     Method(raw.Method),
			CSeq:       raw.Cseq,
		})
	}
}

// CallIDHash is the 64-bit key events carry for a Call-ID (leading and
// trailing SP/HTAB removed): wordhash.CallID, so the slow path can key the
// same dialogs (docs/fastpath.md).
func CallIDHash(callID string) uint64 {
	return wordhash.CallID([]byte(strings.Trim(callID, " \t")))
}
