package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"unsafe"
)

// rawEvent is a ring record as the program writes it: struct sip_event as
// bpf2go lays it out (binary.Write of the generated type), then the message.
func rawEvent(t testing.TB, ev xdpsipSipEvent, msg []byte) []byte {
	t.Helper()
	ev.MsgLen = uint16(len(msg))
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, ev); err != nil {
		t.Fatal(err)
	}
	buf.Write(msg)
	return buf.Bytes()
}

// TestDecodeEvent: the hand decoder reads struct sip_event as bpf2go lays it
// out, with its source address of either family, and the message copy after
// it; records it cannot read are errors, not panics.
func TestDecodeEvent(t *testing.T) {
	if n := unsafe.Sizeof(xdpsipSipEvent{}); n != sipEventSize {
		t.Fatalf("sizeof(struct sip_event) = %d, sipEventSize = %d", n, sipEventSize)
	}
	v4 := xdpsipSipEvent{TsNs: 1 << 40, CallidHash: 0xfeedfacecafebeef, ListenerId: 7, SetId: -1, DstIdx: -1,
		Status: 183, Kind: uint8(EventReply), Method: uint8(MethodInvite), Cseq: 314159,
		SrcFamily: familyV4, SrcPort: 5070, SrcAddr: [16]uint8{198, 51, 100, 7}}
	v6 := v4
	v6.SrcFamily, v6.SrcAddr = familyV6, netip.MustParseAddr("2001:db8::7").As16()
	v6.Kind, v6.Method, v6.Status, v6.SetId, v6.DstIdx = uint8(EventRequest), uint8(MethodInvite), 0, 2, 1
	msg := []byte("INVITE sip:bob@biloxi.example.com SIP/2.0\r\n")
	for _, tc := range []struct {
		name string
		raw  []byte
		want Event
	}{
		{"compact, IPv4 source", rawEvent(t, v4, nil), Event{KtimeNS: 1 << 40, CallIDHash: 0xfeedfacecafebeef, ListenerID: 7,
			SetID: -1, DstIndex: -1, Status: 183, Kind: EventReply, Method: MethodInvite, CSeq: 314159,
			Src: netip.MustParseAddrPort("198.51.100.7:5070")}},
		{"with a copy, IPv6 source", rawEvent(t, v6, msg), Event{KtimeNS: 1 << 40, CallIDHash: 0xfeedfacecafebeef, ListenerID: 7,
			SetID: 2, DstIndex: 1, Kind: EventRequest, Method: MethodInvite, CSeq: 314159,
			Src: netip.MustParseAddrPort("[2001:db8::7]:5070"), Msg: msg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeEvent(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Msg, tc.want.Msg) || (got.Msg == nil) != (tc.want.Msg == nil) {
				t.Errorf("Msg = %q, want %q", got.Msg, tc.want.Msg)
			}
			got.Msg, tc.want.Msg = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decodeEvent = %+v, want %+v", got, tc.want)
			}
		})
	}

	short := rawEvent(t, v4, msg)
	short = short[:len(short)-1] // msg_len says one byte more than the record holds
	noFamily := v4
	noFamily.SrcFamily = 0
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"12 bytes", rawEvent(t, v4, nil)[:12]},
		{"message longer than the record", short},
		{"no address family", rawEvent(t, noFamily, nil)},
	} {
		if _, err := decodeEvent(tc.raw); err == nil {
			t.Errorf("decodeEvent of %s: no error", tc.name)
		}
	}
}

// TestEventReaderBatchMessages: ringbuf.Reader.ReadInto reuses one buffer
// for every record, so a batch must not hold messages in it. Records are
// fed to the reader through one buffer overwritten each time, as ReadInto
// does; every batch handed over holds each event's own message, also when
// the messages outgrow the arena and the batch is handed over early.
func TestEventReaderBatchMessages(t *testing.T) {
	r := &EventReader{batch: make([]Event, 0, eventBatch)}
	hdr := xdpsipSipEvent{Kind: uint8(EventRequest), Method: uint8(MethodInvite), SrcFamily: familyV4}
	msgOf := func(i int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("INVITE %06d ", i)), 80) // 1,120 bytes
	}
	var raw []byte // the reused record buffer
	checked, handovers := 0, 0
	check := func(evs []Event) {
		handovers++
		for _, e := range evs {
			if want := msgOf(int(e.CSeq)); !bytes.Equal(e.Msg, want) {
				t.Fatalf("event %d: Msg %.24q..., want %.24q...", e.CSeq, e.Msg, want)
			}
			if cap(e.Msg) != len(e.Msg) {
				t.Fatalf("event %d: Msg has capacity %d past its %d bytes: an append would overwrite the next message", e.CSeq, cap(e.Msg), len(e.Msg))
			}
			checked++
		}
	}
	// more message bytes than one arena holds, fewer events than a batch
	const n = eventArenaBytes/1120 + 50
	for i := 0; i < n; i++ {
		hdr.Cseq = uint32(i)
		raw = append(raw[:0], rawEvent(t, hdr, msgOf(i))...)
		if err := r.add(raw, check); err != nil {
			t.Fatal(err)
		}
		clear(raw) // the next ReadInto overwrites it
	}
	r.handOver(check)
	if checked != n || handovers != 2 {
		t.Errorf("%d events checked in %d batches, want %d in 2 (one ended by the arena)", checked, handovers, n)
	}
}

// TestEventReaderAddAllocs: decoding a record into the batch, its message
// copied into the arena, allocates nothing per event.
func TestEventReaderAddAllocs(t *testing.T) {
	r := &EventReader{batch: make([]Event, 0, eventBatch)}
	hdr := xdpsipSipEvent{Kind: uint8(EventRequest), Method: uint8(MethodInvite), SrcFamily: familyV6}
	withCopy, compact := rawEvent(t, hdr, bytes.Repeat([]byte("x"), 900)), rawEvent(t, hdr, nil)
	fn := func([]Event) {}
	add := func() {
		for _, raw := range [][]byte{withCopy, compact} {
			if err := r.add(raw, fn); err != nil {
				t.Fatal(err)
			}
		}
		if len(r.batch) == cap(r.batch) {
			r.handOver(fn)
		}
	}
	add() // the arena is allocated at the first copy, once per reader
	if n := testing.AllocsPerRun(10000, add); n != 0 {
		t.Errorf("%.2f allocations per pair of events, want 0", n)
	}
}
