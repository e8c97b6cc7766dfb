package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sipedge/sipedge/userspace/wordhash"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds (enum event_kind).
const (
	EventRequest EventKind = EventKind(xdpsipEventKindEVENT_REQUEST) // an INVITE, ACK, BYE or CANCEL forwarded
	EventReply   EventKind = EventKind(xdpsipEventKindEVENT_REPLY)   // a reply to an INVITE (1xx or final), or a final reply to a BYE or CANCEL, forwarded
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
	// Src is the packet's source address and UDP port as received.
	Src netip.AddrPort
	// Msg is the SIP message as received (the UDP payload, before the
	// program's rewrite) when the program was loaded with EventCopies and
	// the message is an INVITE request or a 2xx reply to INVITE; nil
	// otherwise. It is valid only during the call of the function the
	// batch is handed to: the reader reuses its memory for the next batch.
	// Copy what must outlive the call.
	Msg []byte
}

// EventPollInterval is how long the event reader sleeps between drains
// when the program does not wake it. The program wakes it only when an
// eighth of the ring is pending (bpf/events.h), so this bounds how late an
// event of a quiet period reaches the agent: one interval plus the drain.
const EventPollInterval = 5 * time.Millisecond

// ReadEvents calls fn with every event, in batches, until ctx is done; it
// returns nil then, or the reader's error. An event reaches fn at most
// about EventPollInterval after the program wrote it. Events are read by
// one goroutine: fn must not block for long (a full ring buffer loses
// events, counted in EventsLost, never packets); it must not keep the slice
// nor the events' Msg (Event.Msg).
func (d *Dataplane) ReadEvents(ctx context.Context, fn func([]Event)) error {
	r, err := d.NewEventReader()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	defer r.Close()
	for {
		if _, err := r.Drain(EventPollInterval, fn); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// EventReader reads the event ring. It is used by one goroutine at a time.
//
// ringbuf.Reader.ReadInto copies each record into one buffer it reuses
// (rec.RawSample), so a message copy read from the ring is overwritten by
// the next record. A batch holds many events, so each message of the batch
// is copied once more, into arena: a buffer of fixed capacity that the
// batch's events slice, never appended past its capacity, so earlier slices
// stay valid. When the next message does not fit, the batch is handed over
// first and the arena starts again. Nothing is allocated per event.
type EventReader struct {
	rd    *ringbuf.Reader
	rec   ringbuf.Record
	batch []Event
	arena []byte // the messages of batch; allocated at the first copy
	// mu orders Drain's look at the ring's positions (AvailableBytes,
	// which ringbuf does not lock) with Close, which unmaps the ring: a
	// Close from another goroutine between two reads would otherwise
	// make that look fault or race.
	mu     sync.Mutex
	closed bool
}

// eventBatch is how many events Drain hands over at most per call of fn.
const eventBatch = 512

// eventArenaBytes is the capacity of a reader's message arena: the message
// copies of one batch. eventBatch events of calls (two copies in seven)
// hold about 146 copies, 110 KB of 700-800-byte messages: the arena ends a
// batch early only when large copies dominate (more than 178 of the
// largest, 1,472 bytes), and it is small enough to stay in the cache the
// callback reads it from.
const eventArenaBytes = 256 << 10

// NewEventReader opens the event ring for reading.
func (d *Dataplane) NewEventReader() (*EventReader, error) {
	rd, err := ringbuf.NewReader(d.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("open event ring: %w", err)
	}
	return &EventReader{rd: rd, batch: make([]Event, 0, eventBatch)}, nil
}

// Close closes the reader; a Drain under way returns ringbuf.ErrClosed.
// It may be called from another goroutine than Drain's.
func (r *EventReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.rd.Close()
}

// empty reports whether the ring holds no record now (or the reader is
// closed: the next read says so).
func (r *EventReader) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed || r.rd.AvailableBytes() == 0
}

// Drain reads events until wait has passed, handing them to fn in batches
// (a batch ends when the ring is empty, eventBatch events are read or the
// arena holds no more message copies; fn must not keep the slice nor the
// events' Msg). With wait 0 it reads what the ring holds now
// and returns. It returns the number of events read.
func (r *EventReader) Drain(wait time.Duration, fn func([]Event)) (int, error) {
	r.rd.SetDeadline(time.Now().Add(wait))
	n := 0
	for {
		err := r.rd.ReadInto(&r.rec)
		if err != nil {
			r.handOver(fn)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n, nil
			}
			return n, fmt.Errorf("read event ring: %w", err)
		}
		if err := r.add(r.rec.RawSample, fn); err != nil {
			return n, err
		}
		n++
		if len(r.batch) == cap(r.batch) || r.empty() {
			r.handOver(fn)
		}
	}
}

// add decodes one record into the batch, its message copied into the
// arena; a message that does not fit hands the batch over first.
func (r *EventReader) add(raw []byte, fn func([]Event)) error {
	e, err := decodeEvent(raw)
	if err != nil {
		return err
	}
	if e.Msg != nil {
		if r.arena == nil {
			r.arena = make([]byte, 0, eventArenaBytes)
		}
		if len(r.arena)+len(e.Msg) > cap(r.arena) {
			r.handOver(fn)
		}
		off := len(r.arena)
		r.arena = append(r.arena, e.Msg...) // within capacity: msg_len < 64 KiB
		// Capacity capped: an append by fn to one message cannot write into the next.
		e.Msg = r.arena[off:len(r.arena):len(r.arena)]
	}
	r.batch = append(r.batch, e)
	return nil
}

// handOver gives the batch to fn (when it holds anything) and starts the
// next one: its events and their messages are reused from here on.
func (r *EventReader) handOver(fn func([]Event)) {
	if len(r.batch) > 0 {
		fn(r.batch)
	}
	r.batch = r.batch[:0]
	r.arena = r.arena[:0]
}

// sipEventSize is sizeof(struct sip_event): a record's header, followed by
// msg_len bytes of message copy.
const sipEventSize = 56

// decodeEvent decodes one struct sip_event by hand (binary.Read's
// reflection costs more than the rest of the drain loop) and the message
// copy after it: Msg aliases b.
func decodeEvent(b []byte) (Event, error) {
	if len(b) < sipEventSize {
		return Event{}, fmt.Errorf("decode event: %d bytes, want %d", len(b), sipEventSize)
	}
	ne := binary.NativeEndian
	e := Event{
		KtimeNS:    ne.Uint64(b[0:]),
		CallIDHash: ne.Uint64(b[8:]),
		ListenerID: ne.Uint32(b[16:]),
		SetID:      int32(ne.Uint32(b[20:])),
		DstIndex:   int16(ne.Uint16(b[24:])),
		Status:     ne.Uint16(b[26:]),
		Kind:       EventKind(b[28]),
		Method:     Method(b[29]),
		CSeq:       ne.Uint32(b[32:]),
	}
	var addr netip.Addr
	switch b[30] {
	case familyV4:
		addr = netip.AddrFrom4([4]byte(b[40:44]))
	case familyV6:
		addr = netip.AddrFrom16([16]byte(b[40:56]))
	default:
		return Event{}, fmt.Errorf("decode event: source address family %d", b[30])
	}
	e.Src = netip.AddrPortFrom(addr, ne.Uint16(b[36:]))
	if n := int(ne.Uint16(b[38:])); n > 0 {
		if n > len(b)-sipEventSize {
			return Event{}, fmt.Errorf("decode event: message of %d bytes in a record of %d", n, len(b))
		}
		e.Msg = b[sipEventSize : sipEventSize+n]
	}
	return e, nil
}

// CallIDHash is the 64-bit key events carry for a Call-ID (leading and
// trailing SP/HTAB removed): wordhash.CallID, so the slow path can key the
// same dialogs (docs/fastpath.md).
func CallIDHash(callID string) uint64 {
	return wordhash.CallID([]byte(strings.Trim(callID, " \t")))
}

// eventMethodSlots is EVENT_METHOD_SLOTS: event_lost's key is kind *
// eventMethodSlots + method.
const eventMethodSlots = 16

// EventsLost returns the events the full ring could not take, summed over
// CPUs, by "KIND METHOD" as fastpath.stats names events (e.g. "request
// INVITE", "reply BYE"); kinds and methods never lost are absent.
func (d *Dataplane) EventsLost() (map[string]uint64, error) {
	out := map[string]uint64{}
	var per []uint64
	for _, k := range []EventKind{EventRequest, EventReply} {
		for m := 0; m < eventMethodSlots; m++ {
			key := uint32(k)*eventMethodSlots + uint32(m)
			if err := d.objs.EventLost.Lookup(key, &per); err != nil {
				return nil, fmt.Errorf("read event_lost[%d]: %w", key, err)
			}
			var sum uint64
			for _, v := range per {
				sum += v
			}
			if sum > 0 {
				out[k.String()+" "+Method(m).String()] = sum
			}
		}
	}
	return out, nil
}
