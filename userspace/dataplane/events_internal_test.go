package dataplane

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

// TestDecodeEvent: the hand decoder reads struct sip_event as bpf2go lays it out.
func TestDecodeEvent(t *testing.T) {
	if n := unsafe.Sizeof(xdpsipSipEvent{}); n != sipEventSize {
		t.Fatalf("sizeof(struct sip_event) = %d, sipEventSize = %d", n, sipEventSize)
	}
	raw := xdpsipSipEvent{TsNs: 1 << 40, CallidHash: 0xfeedfacecafebeef, ListenerId: 7, SetId: -1, DstIdx: -1,
		Status: 183, Kind: uint8(EventReply), Method: uint8(MethodInvite), Cseq: 314159}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, raw); err != nil {
		t.Fatal(err)
	}
	got, err := decodeEvent(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := Event{KtimeNS: 1 << 40, CallIDHash: 0xfeedfacecafebeef, ListenerID: 7, SetID: -1, DstIndex: -1,
		Status: 183, Kind: EventReply, Method: MethodInvite, CSeq: 314159}
	if got != want {
		t.Errorf("decodeEvent = %+v, want %+v", got, want)
	}
	if _, err := decodeEvent(buf.Bytes()[:12]); err == nil {
		t.Error("decodeEvent of 12 bytes: no error")
	}
}
