package sipproxy

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/sipedge/sipedge/tests/fixtures"
)

// BenchmarkProcess runs Process on fixtures: the ~800-byte INVITE with SDP
// (dispatched, alg 0 over three backends), a loose-routed BYE and a 200 OK
// with SDP. Out is reused, as the transport's buffer pool does.
func BenchmarkProcess(b *testing.B) {
	d := fixtureDispatcher(b)
	cases := map[string]fixtures.Case{}
	for _, c := range loadFixtures(b) {
		cases[filepath.Base(c.File)] = c
	}
	for _, bc := range []struct {
		name, file string
	}{
		{"invite_forward", "invite-alg0-sdp.txt"},
		{"invite_record_route", "advertise-name.txt"},
		{"bye_loose_route", "bye-route-us-comma.txt"},
		{"response_200_sdp", "resp-200-received.txt"},
		{"response_180", "resp-180-received-rport.txt"},
	} {
		c, ok := cases[bc.file]
		if !ok {
			b.Fatalf("no fixture %s", bc.file)
		}
		f := fixtureForwarder(b, d, c)
		b.Run(bc.name, func(b *testing.B) {
			out := make([]byte, 0, 2048)
			b.SetBytes(int64(len(c.In)))
			b.ReportAllocs()
			var res Result
			for b.Loop() {
				res = f.Process(c.In, c.Src, c.Listener, out[:0])
			}
			if res.Action != ActionForward {
				b.Fatalf("%s: %s", res.Action, res.Reason)
			}
		})
	}
}

// BenchmarkBranchToken hashes a typical branch, sent-by and Call-ID.
func BenchmarkBranchToken(b *testing.B) {
	br, sb, cid := []byte("z9hG4bK776asdhds"), []byte("198.51.100.7:5060"), []byte("a84b4c76e66710@pc33.atlanta.example.com")
	var sink uint64
	for b.Loop() {
		sink += BranchToken(br, sb, cid)
	}
	_ = sink
	_ = netip.AddrPort{}
}

// BenchmarkProcessParallel runs the INVITE and 200 OK fixtures from every
// P (GOMAXPROCS) goroutine at once, each with its own out buffer: the
// Forwarder is shared, so this shows whether Process scales across cores
// (shared counters or allocation would make it flatten).
func BenchmarkProcessParallel(b *testing.B) {
	d := fixtureDispatcher(b)
	cases := map[string]fixtures.Case{}
	for _, c := range loadFixtures(b) {
		cases[filepath.Base(c.File)] = c
	}
	for _, bc := range []struct {
		name, file string
	}{
		{"invite_forward", "invite-alg0-sdp.txt"},
		{"response_200_sdp", "resp-200-received.txt"},
	} {
		c, ok := cases[bc.file]
		if !ok {
			b.Fatalf("no fixture %s", bc.file)
		}
		f := fixtureForwarder(b, d, c)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.In)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				out := make([]byte, 0, 2048)
				for pb.Next() {
					if res := f.Process(c.In, c.Src, c.Listener, out[:0]); res.Action != ActionForward {
						b.Errorf("%s: %s", res.Action, res.Reason)
						return
					}
				}
			})
		})
	}
}
