package dataplane

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/ringbuf"
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

// Word-hash constants (bpf/consts.h; docs/forwarding-contract.md).
const (
	tokenK     = 0x9e3779b97f4a7c15
	tokenFin   = 0xbf58476d1ce4e5b9
	tokenSeed  = 0x7369706564676521 // "sipedge!"
	callIDSeed = 0x63616c6c2d696421 // "call-id!"
)

// CallIDHash is the 64-bit hash events carry for a Call-ID (leading and
// trailing SP/HTAB removed): the branch-token word hash with its own seed, so
// the slow path can key the same dialogs (docs/fastpath.md).
func CallIDHash(callID string) uint64 {
	return wordHashFinish(wordAbsorb(callIDSeed, []byte(strings.Trim(callID, " \t"))))
}

// BranchToken is the branch token of docs/forwarding-contract.md: B the top
// Via's branch, S its sent-by, C the trimmed Call-ID. The fast path computes
// the same in C (bpf/hash.h); tests hold the two together.
func BranchToken(b, s, c string) uint64 {
	h := wordAbsorb(tokenSeed, []byte(b))
	h = wordAbsorb(h, []byte(s))
	h = wordAbsorb(h, []byte(c))
	return wordHashFinish(h)
}

func wordMix(h, w uint64) uint64 {
	h = (h ^ w) * tokenK
	return h ^ h>>32
}

func wordAbsorb(h uint64, p []byte) uint64 {
	for len(p) >= 8 {
		h = wordMix(h, binary.LittleEndian.Uint64(p))
		p = p[8:]
	}
	t := uint64(len(p)) << 56
	for i, b := range p {
		t |= uint64(b) << (8 * i)
	}
	return wordMix(h, t)
}

func wordHashFinish(h uint64) uint64 {
	h ^= h >> 29
	h *= tokenFin
	return h ^ h>>32
}
