package dialog

import (
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/sipedge/sipedge/userspace/wordhash"
)

// benchCall writes the text fields of call i into buf, as an adapter
// decoding a packet would, and returns its INVITE with strings aliasing
// buf: realistic sizes (src and dst ~30 B, Call-ID 36 B, tags ~10 B,
// branch 30 B, data ~10 B, one tag).
func benchCall(buf []byte, i, tags int) ([]byte, Message) {
	field := func(f func([]byte) []byte) string {
		start := len(buf)
		buf = f(buf)
		return unsafe.String(&buf[start], len(buf)-start)
	}
	m := Message{Request: true, Method: Invite}
	m.Src = field(func(b []byte) []byte { return fmt.Appendf(b, "sip:alice%d@10.1.%d.%d:5060", i%10000, i>>8&255, i&255) })
	m.Dst = field(func(b []byte) []byte { return fmt.Appendf(b, "sip:bob%d@192.168.%d.20:5060", i%10000, i&255) })
	m.CallID = field(func(b []byte) []byte {
		return fmt.Appendf(b, "%08x-%04x-4%03x-a%03x-%012x", uint32(i*2654435761), i&0xffff, i&0xfff, i>>12&0xfff, i)
	})
	m.FromTag = field(func(b []byte) []byte { return fmt.Appendf(b, "%010x", uint64(i)*0x9e3779b9&0xffffffffff) })
	m.Branch = field(func(b []byte) []byte { return fmt.Appendf(b, "z9hG4bK%023x", i) })
	m.Data = field(func(b []byte) []byte { return fmt.Appendf(b, "cust-%05d", i%100000) })
	t := i % tags
	m.AddTags = []string{field(func(b []byte) []byte { return fmt.Appendf(b, "10.%d.%d.%d", t>>16&255, t>>8&255, t&255) })}
	// The caller's address, as the tag names it (a count per source as
	// there is one per tag), and one set.
	m.Source, m.Set = netip.AddrFrom4([4]byte{10, byte(t >> 16), byte(t >> 8), byte(t)}), 1
	m.CallIDHash = wordhash.CallID([]byte(m.CallID))
	return buf, m
}

// BenchmarkMillionDialogs holds 1,000,000 confirmed dialogs (INVITE, 200
// with a To tag, ACK) and reports the heap they take per dialog, with 1000
// distinct tags (one per trunk, say) and with one distinct tag per dialog
// (per caller's address: the worst case of the tag counts); also the
// longest Observe of a batch while filling (bucket growth rehashes under
// the lock), and at 1,000,000 held the time of an Expire scan that removes
// nothing and of a Count by regular expression (both release the lock
// every scanChunk slots).
func BenchmarkMillionDialogs(b *testing.B) {
	for _, tags := range []int{1000, 1_000_000} {
		b.Run(fmt.Sprintf("tags=%d", tags), func(b *testing.B) { benchMillion(b, tags) })
	}
}

func benchMillion(b *testing.B, tags int) {
	const n, batch = 1_000_000, 512
	var perDialog float64
	var maxBatch, expireScan, countRe time.Duration
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := New(Config{MaxRecords: n})
		buf := make([]byte, 0, batch*256) // never grows: the strings alias it
		msgs := make([]Message, 0, 3*batch)
		for first := 0; first < n; first += batch {
			buf, msgs = buf[:0], msgs[:0]
			for i := first; i < min(first+batch, n); i++ {
				var m Message
				buf, m = benchCall(buf, i, tags)
				m.Time = t0
				msgs = append(msgs, m)
			}
			for k := range len(msgs) {
				h := msgs[k].CallIDHash
				ok := Message{Time: t0, CallIDHash: h, Method: Invite, Status: 200,
					CallID: msgs[k].CallID, FromTag: msgs[k].FromTag, ToTag: "tt" + strconv.Itoa(100000000 + first + k)[1:]}
				msgs = append(msgs, ok, Message{Time: t0, CallIDHash: h, Request: true, Method: Ack})
			}
			start := time.Now()
			tr.Observe(msgs)
			maxBatch = max(maxBatch, time.Since(start))
		}
		buf, msgs = nil, nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := tr.Stats().Active[Confirmed]; got != n {
			b.Fatalf("%d confirmed dialogs, want %d", got, n)
		}
		perDialog = float64(after.HeapAlloc-before.HeapAlloc) / n
		start := time.Now()
		if tr.Expire(t0) != 0 {
			b.Fatal("Expire removed records")
		}
		expireScan = time.Since(start)
		q, err := ParseQuery("src", "re", "^sip:alice12")
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if tr.Count(q) == 0 {
			b.Fatal("Count found nothing")
		}
		countRe = time.Since(start)
	}
	b.ReportMetric(perDialog, "B/dialog")
	b.ReportMetric(float64(maxBatch.Microseconds())/1000, "max-batch-ms")
	b.ReportMetric(float64(expireScan.Microseconds())/1000, "expire-ms")
	b.ReportMetric(float64(countRe.Microseconds())/1000, "count-re-ms")
	b.ReportMetric(float64(unsafe.Sizeof(record{})), "B/slot")
}

// BenchmarkObserve feeds calls in batches of 512, as the fast path's
// drainer delivers them: per call INVITE, 100, 180, 200, ACK, BYE and the
// 200 of the BYE, the non-INVITE ones by hash only as the fast path reports
// them (the 200 of the INVITE also carries its tags). Calls overlap in
// windows of 4096; message time advances 2 s per window and Expire runs
// every 30 s of it, as Run would. held=N first fills the tracker with N
// confirmed dialogs, so that lookups miss the caches as at scale. Every
// call has one tag of benchTags (callers' addresses, say).
func BenchmarkObserve(b *testing.B) {
	for _, held := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) { benchObserve(b, held) })
	}
}

const benchTags = 10_000

func benchObserve(b *testing.B, held int) {
	const window, windows, batch = 4096, 4, 512
	tr := New(Config{MaxRecords: held + 1<<20})
	now := t0
	if held > 0 {
		var buf []byte
		msgs := make([]Message, 0, 3*batch)
		for first := 0; first < held; first += batch {
			buf, msgs = buf[:0], msgs[:0]
			for i := first; i < min(first+batch, held); i++ {
				var m Message
				buf, m = benchCall(buf, i, benchTags)
				m.Time = now
				msgs = append(msgs, m, Message{Time: now, CallIDHash: m.CallIDHash, Method: Invite, Status: 200},
					Message{Time: now, CallIDHash: m.CallIDHash, Request: true, Method: Ack})
			}
			tr.Observe(msgs)
		}
	}
	// The stream: per window, each stage for every call of the window.
	var stream []Message
	var hashes []uint64
	for w := range windows {
		var buf []byte
		var invites []Message
		for c := range window {
			var m Message
			buf, m = benchCall(buf, held+w*window+c, benchTags)
			m.Src, m.Dst, m.CallID = string([]byte(m.Src)), string([]byte(m.Dst)), string([]byte(m.CallID))
			m.FromTag, m.Branch, m.Data = string([]byte(m.FromTag)), string([]byte(m.Branch)), string([]byte(m.Data))
			m.AddTags = []string{string([]byte(m.AddTags[0]))}
			invites = append(invites, m)
		}
		stages := []func(m Message) Message{
			func(m Message) Message { return m },
			func(m Message) Message { return Message{Method: Invite, Status: 100} },
			func(m Message) Message { return Message{Method: Invite, Status: 180} },
			func(m Message) Message {
				return Message{Method: Invite, Status: 200, CallID: m.CallID, FromTag: m.FromTag, ToTag: "tt-" + m.FromTag}
			},
			func(m Message) Message { return Message{Request: true, Method: Ack} },
			func(m Message) Message { return Message{Request: true, Method: Bye} },
			func(m Message) Message { return Message{Method: Bye, Status: 200} },
		}
		for _, stage := range stages {
			for _, m := range invites {
				stream = append(stream, stage(m))
				hashes = append(hashes, m.CallIDHash)
			}
		}
	}
	perWindow := 7 * window
	cycle := uint64(0)
	st0 := tr.Stats()
	b.ResetTimer()
	for done := 0; done < b.N; {
		for k := 0; k < len(stream) && done < b.N; k += batch {
			end := min(k+batch, len(stream), k+b.N-done)
			if k%perWindow == 0 {
				now = now.Add(2 * time.Second)
				if now.Sub(t0)%(30*time.Second) < 2*time.Second {
					tr.Expire(now)
				}
			}
			// A new Call-ID per call and cycle, and the time: what the
			// drainer would fill in.
			salt := cycle * 0x9e3779b97f4a7c15
			for j := k; j < end; j++ {
				stream[j].CallIDHash = hashes[j] ^ salt
				stream[j].Time = now
			}
			tr.Observe(stream[k:end])
			done += end - k
		}
		cycle++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	st := tr.Stats()
	if st.Unmatched != st0.Unmatched || st.Underflow != 0 {
		b.Fatalf("unmatched %d, underflow %d: the stream is not what it means to be", st.Unmatched-st0.Unmatched, st.Underflow)
	}
}
