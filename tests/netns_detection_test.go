package tests

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/netns"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// Settings of TestNetnsXDPProbingDetection.
const (
	detectInterval  = 400 * time.Millisecond // ds_ping_interval
	detectThreshold = 2                      // ds_probing_threshold
	detectTimeout   = 50 * time.Millisecond  // ds_ping_timeout
	detectSlack     = 100 * time.Millisecond // issue 8: interval × threshold + 100 ms
	detectRounds    = 3
	// detectGap is the traffic's pace: one INVITE every gap, spread by the
	// Call-ID hash over the three backends.
	detectGap = time.Millisecond
	// detectMaxGap bounds the pauses of the traffic to one backend.
	detectMaxGap = 50 * time.Millisecond
	// detectRetries bounds the rounds done again for lack of resolution.
	detectRetries = 3
)

// TestNetnsXDPProbingDetection: the time from a backend's death to the
// fast path's last INVITE to it, with traffic flowing (issue 8: at most
// interval × threshold + 100 ms).
//
// Three backends in their namespaces answer OPTIONS; the agent runs XDP
// native, alg 0 (hash of the Call-ID), ds_ping_interval 400 ms,
// ds_probing_threshold 2, ds_ping_timeout 50 ms. A client sends an INVITE
// with a new Call-ID every millisecond all along, which the fast path
// forwards. In each round one backend answers one more probe and dies
// right after its reply (the worst case: death right after a good probe);
// it still reads its socket, recording when each INVITE arrives. The
// detection time is the arrival of its last INVITE minus the arrival of
// that last answered probe. Both instants are the kernel's receive
// timestamps (SO_TIMESTAMPNS), not the test goroutine's clock: on a
// loaded host the test process can be descheduled for a few hundred
// milliseconds, and packets read late would look like a late detection.
//
// Why the bound holds (docs/probing.md, "Time to inactive"): probes of a
// destination start exactly one interval I apart; the good probe started
// at most a round trip before the death, the next T = threshold probes
// fail, the T-th at its deadline D, T × I + D after the good one; then
// the result is applied (one 5 ms scheduler tick at most, one snapshot
// swap and BPF map update: milliseconds). So detection ≤ T × I + D +
// tick + swap; with D = 50 ms that is about T × I + 60 ms, inside
// T × I + 100 ms with 40 ms left for scheduling noise on a loaded host.
// It is also at least (T − 1) × I + D: a shorter time would mean the
// backend was dropped for something other than its failed probes.
func TestNetnsXDPProbingDetection(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommand(t, "nsenter", exec.LookPath)
	topo := netns.NewTopology(t, 3)
	ifaces := topo.ForXDP(t)
	var backends []*dyingBackend
	var dests []agent.Dest
	for _, b := range topo.Backends {
		addr := netip.AddrPortFrom(b.Addr, 5060)
		c := b.NS.ListenUDP(t, addr)
		backends = append(backends, serveDying(t, c))
		dests = append(dests, agent.Dest{Set: 1, URI: sipURI(addr)})
	}
	clientAddr := netip.AddrPortFrom(topo.Client.Addr, 5060)
	cc := topo.Client.NS.ListenUDP(t, clientAddr)
	mnt := netns.NewMounts(t, netns.FreshBPFRoot)
	edge := netip.AddrPortFrom(topo.Client.EdgeAddr, 5060)
	a := agent.Start(t, bins, agent.Config{
		Listeners: []agent.Listener{{Name: "edge", Address: edge}},
		Rules:     []agent.Rule{{Listener: "edge", Set: 1, Algorithm: 0}},
		Dests:     dests,
		XDP:       &agent.XDP{Interfaces: ifaces, Mode: "native"},
		DispatcherKeys: [][2]string{
			{"ds_ping_interval", detectInterval.String()},
			{"ds_ping_timeout", detectTimeout.String()},
			{"ds_probing_mode", "1"},
			{"ds_probing_threshold", fmt.Sprint(detectThreshold)},
			{"ds_inactive_threshold", "1"},
		},
	}, agent.Options{Exec: mnt.Exec(topo.Edge)})
	waitAttached(t, a, 10*time.Second)
	for _, d := range dests {
		waitFlags(t, a, d.URI, "AP", 5*time.Second)
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sendSteady(ctx, cc, clientAddr, edge) }()
	t.Cleanup(func() { stop(); wg.Wait() })

	var took []time.Duration
	for round, unresolved := 0, 0; len(took) < detectRounds; round++ {
		i := round % len(backends)
		b := backends[i]
		// The fast path carries the traffic to the victim before it dies.
		if !waitInvites(b, time.Now(), 20, 5*time.Second) {
			t.Fatalf("round %d: backend %d gets no INVITE: the fast path does not carry the traffic, the test proves nothing", round, i)
		}
		before := fastPathStats(t, a)
		died := b.dieAfterNextReply(t)
		waitFlags(t, a, dests[i].URI, "IP", 10*time.Second)
		time.Sleep(300 * time.Millisecond) // traffic goes on; the victim must get none
		after := fastPathStats(t, a)
		arrivals := b.invitesSince(died)
		if len(arrivals) == 0 {
			t.Fatalf("round %d: no INVITE reached backend %d after its death: no traffic flowed, nothing is measured", round, i)
		}
		last := arrivals[len(arrivals)-1]
		d := last.Sub(died)
		bf, _ := before.dest(1, dests[i].URI)
		af, _ := after.dest(1, dests[i].URI)
		t.Logf("round %d: backend %d: last INVITE %v after its death (%d INVITEs meanwhile, largest gap %v; fast path packets to it %d)",
			round, i, d.Round(time.Millisecond), len(arrivals), maxGap(died, arrivals).Round(time.Millisecond), af.Packets-bf.Packets)
		// The traffic's gaps are the measurement's resolution: a stalled
		// sender (the test process descheduled) could hide a late
		// removal. Such a round measures nothing: it is done again, up
		// to detectRetries times.
		if g := maxGap(died, arrivals); g > detectMaxGap {
			unresolved++
			t.Logf("round %d: the INVITEs to backend %d paused %v (more than %v): the measurement lost its resolution, round not counted", round, i, g, detectMaxGap)
			if unresolved > detectRetries {
				t.Fatalf("%d rounds without resolution: the host is too loaded to measure", unresolved)
			}
			b.revive()
			waitFlags(t, a, dests[i].URI, "AP", 10*time.Second)
			continue
		}
		took = append(took, d)
		if limit := detectThreshold*detectInterval + detectSlack; d > limit {
			t.Errorf("round %d: detection took %v, want at most interval × threshold + 100 ms = %v", round, d, limit)
		}
		if least := (detectThreshold-1)*detectInterval + detectTimeout; d < least {
			t.Errorf("round %d: detection took %v, less than (threshold − 1) × interval + deadline = %v: not the probes' doing", round, d, least)
		}
		if af.Packets-bf.Packets < uint64(len(arrivals)) {
			t.Errorf("round %d: %d INVITEs reached backend %d but the fast path sent it %d packets: the slow path carried them", round, len(arrivals), i, af.Packets-bf.Packets)
		}
		if n := b.noStamp.Load(); n > 0 {
			t.Errorf("round %d: %d datagrams without a kernel timestamp: the times are the test's, not the kernel's", round, n)
		}
		b.revive()
		waitFlags(t, a, dests[i].URI, "AP", 10*time.Second)
	}
	t.Logf("detection times: %v (bound %v)", took, detectThreshold*detectInterval+detectSlack)
}

// sendSteady sends an INVITE with a new Call-ID every detectGap from c to
// edge until ctx ends.
func sendSteady(ctx context.Context, c *net.UDPConn, from, edge netip.AddrPort) {
	tick := time.NewTicker(detectGap)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		msg := fmt.Sprintf("INVITE sip:service@%[1]s SIP/2.0\r\nVia: SIP/2.0/UDP %[2]s;branch=z9hG4bK-steady-%[3]d;rport\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:raw@%[2]s>;tag=raw1\r\nTo: <sip:service@%[1]s>\r\nCall-ID: steady-%[3]d\r\n"+
			"CSeq: 1 INVITE\r\nContact: <sip:raw@%[2]s>\r\nContent-Length: 0\r\n\r\n", edge, from, n)
		_, _ = c.WriteToUDPAddrPort([]byte(msg), edge)
	}
}

// dyingBackend answers OPTIONS with 200 until told to die, and records
// when each INVITE arrives, dead or alive.
type dyingBackend struct {
	conn    *net.UDPConn
	dead    atomic.Bool
	noStamp atomic.Uint64 // datagrams read without a kernel timestamp

	mu      sync.Mutex
	dying   bool           // answer one more probe, then die
	died    chan time.Time // the arrival of the last probe answered
	invites []time.Time
}

func serveDying(t *testing.T, c *net.UDPConn) *dyingBackend {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		t.Fatalf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	b := &dyingBackend{conn: c, died: make(chan time.Time, 1)}
	done := make(chan struct{})
	go func() { defer close(done); b.serve() }()
	t.Cleanup(func() { c.Close(); <-done })
	return b
}

func (b *dyingBackend) serve() {
	buf, oob := make([]byte, 65536), make([]byte, 128)
	for {
		n, oobn, _, src, err := b.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return
		}
		now, ok := rxTime(oob[:oobn])
		if !ok {
			now = time.Now()
			b.noStamp.Add(1)
		}
		msg := string(buf[:n])
		switch {
		case strings.HasPrefix(msg, "INVITE "):
			b.mu.Lock()
			b.invites = append(b.invites, now)
			b.mu.Unlock()
		case strings.HasPrefix(msg, "OPTIONS ") && !b.dead.Load():
			_, _ = b.conn.WriteToUDPAddrPort([]byte(answer(strings.ReplaceAll(msg, "\r\n", "\n"), 200)), src)
			b.mu.Lock()
			if b.dying {
				b.dying = false
				b.dead.Store(true)
				b.died <- now
			}
			b.mu.Unlock()
		}
	}
}

// rxTime is the kernel's receive timestamp in the control messages oob.
func rxTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// dieAfterNextReply makes b die right after its next probe reply and
// returns that instant.
func (b *dyingBackend) dieAfterNextReply(t *testing.T) time.Time {
	t.Helper()
	b.mu.Lock()
	b.dying = true
	b.mu.Unlock()
	select {
	case at := <-b.died:
		return at
	case <-time.After(5 * time.Second):
		t.Fatal("no probe reached the backend in 5 s")
		return time.Time{}
	}
}

func (b *dyingBackend) revive() { b.dead.Store(false) }

// invitesSince returns the arrival times of the INVITEs after t.
func (b *dyingBackend) invitesSince(t time.Time) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, _ := slices.BinarySearchFunc(b.invites, t, func(a, t time.Time) int { return a.Compare(t) })
	return slices.Clone(b.invites[i:])
}

// waitInvites waits up to timeout for n INVITEs to arrive after since.
func waitInvites(b *dyingBackend, since time.Time, n int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if len(b.invitesSince(since)) >= n {
			return true
		}
	}
	return false
}

// maxGap is the longest time between from and the first arrival, or
// between two arrivals: the resolution of the measurement.
func maxGap(from time.Time, arrivals []time.Time) time.Duration {
	var gap time.Duration
	for _, at := range arrivals {
		gap = max(gap, at.Sub(from))
		from = at
	}
	return gap
}
