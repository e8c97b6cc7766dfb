// Package load is sipedge's SIP load generator: stateless SIP requests
// from templates (a new Call-ID, branch and From tag in every message) sent
// with sendmmsg from one or more UDP sockets, at a target rate or as fast
// as the sending CPUs allow; a sink that counts what arrives (recvmmsg) and
// can answer each request with a 200 so the replies flow back through the
// proxy; and an XDP sink that counts and drops at the backend's interface,
// costing the backend CPU almost nothing, for saturation runs.
//
// SIPp runs real call flows but tops out near 1k calls/s per instance;
// this generator offers several hundred thousand messages per second per
// core (bench/README.md). It keeps no transaction state: it measures how
// many messages a proxy forwards, not call completion.
package load

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Stream is one sending socket (connected to the proxy) and the message it
// sends.
type Stream struct {
	Socket   *Socket
	Template *Template
}

// Config configures a Generator.
type Config struct {
	Streams []Stream
	// Rate is the target in messages per second over all streams; 0 sends
	// as fast as possible. SetRate changes it while running.
	Rate float64
	// Batch is the largest number of messages per sendmmsg; default 64.
	Batch int
	// Quantum spaces the bursts at a target rate: every Quantum a stream
	// sends what fell due in it (at least one message, at most Batch), as
	// a NIC with interrupt coalescing hands a host its packets. Waits are
	// spun, not slept, below a few hundred microseconds, so bursts stay
	// small and even. Default 50µs.
	Quantum time.Duration
	// CPUs pins the sending threads: stream i runs on CPUs[i % len(CPUs)].
	// Empty: no pinning.
	CPUs []int
	// Run goes into the top 16 bits of every message identifier, so that
	// runs with different Run values never reuse a Call-ID.
	Run uint16
	// Receive counts the datagrams that come back on the streams' sockets
	// (the replies of an answering sink), one receiving goroutine per
	// stream.
	Receive bool
	// Count stops the senders after Count messages over all streams (the
	// streams share it evenly); 0 sends until StopSending.
	Count uint64
}

// Stats are a generator's counters since Start.
type Stats struct {
	At         time.Time
	Sent       uint64 // datagrams the kernel accepted (sendmmsg's count)
	SentBytes  uint64
	SendErrors uint64 // failed sendmmsg calls
	Received   uint64 // datagrams received back (Config.Receive)
	// Skipped counts the messages that fell due while a sender was not
	// running (descheduled, CPU busy) and were forgotten rather than sent
	// in one burst. At a target rate, Sent+Skipped is what fell due.
	Skipped uint64
	// Paced is when a sender last computed what was due at a target rate
	// (zero before the first time; the latest of all streams): then, that
	// stream's Sent+Skipped was all that had fallen due for it but at most
	// max(Batch, a millisecond's worth).
	Paced     time.Time
	LastError string
}

// Sub is s - o, counter by counter (At stays s's).
func (s Stats) Sub(o Stats) Stats {
	return Stats{At: s.At, Sent: s.Sent - o.Sent, SentBytes: s.SentBytes - o.SentBytes,
		SendErrors: s.SendErrors - o.SendErrors, Received: s.Received - o.Received,
		Skipped: s.Skipped - o.Skipped, Paced: s.Paced, LastError: s.LastError}
}

// Generator sends until Stop.
type Generator struct {
	cfg      Config
	rate     atomic.Uint64 // float64 bits
	epoch    atomic.Uint64 // bumped by SetRate: senders restart their pacing
	stop     atomic.Bool   // everything stops
	stopSend atomic.Bool   // the senders stop
	wg       sync.WaitGroup
	sendWG   sync.WaitGroup

	sent, bytes, errs, recvd, skipped atomic.Uint64
	paced                             atomic.Int64 // Stats.Paced, unix ns
	lastErr                           atomic.Pointer[string]
}

// Start starts one sending goroutine (on its own locked OS thread) per
// stream, and one receiving goroutine per stream when cfg.Receive.
func Start(cfg Config) (*Generator, error) {
	if len(cfg.Streams) == 0 {
		return nil, errors.New("load: no streams")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Quantum <= 0 {
		cfg.Quantum = 50 * time.Microsecond
	}
	for i, s := range cfg.Streams {
		if s.Socket == nil || s.Template == nil {
			return nil, fmt.Errorf("load: stream %d has no socket or no template", i)
		}
		if !s.Socket.remote.IsValid() {
			return nil, fmt.Errorf("load: stream %d: socket %s is not connected (use Dial)", i, s.Socket.local)
		}
	}
	g := &Generator{cfg: cfg}
	g.SetRate(cfg.Rate)
	for i := range cfg.Streams {
		g.wg.Add(1)
		g.sendWG.Add(1)
		go g.send(i)
		if cfg.Receive {
			g.wg.Add(1)
			go g.receive(i)
		}
	}
	return g, nil
}

// SetRate changes the target rate (messages per second over all streams;
// 0 = as fast as possible). Pacing restarts from now: no catch-up burst.
func (g *Generator) SetRate(r float64) {
	if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		r = 0
	}
	g.rate.Store(math.Float64bits(r))
	g.epoch.Add(1)
}

// Rate is the current target (0 = as fast as possible).
func (g *Generator) Rate() float64 { return math.Float64frombits(g.rate.Load()) }

// Stats reads the counters.
func (g *Generator) Stats() Stats {
	s := Stats{At: time.Now(), Sent: g.sent.Load(), SentBytes: g.bytes.Load(), SendErrors: g.errs.Load(), Received: g.recvd.Load(), Skipped: g.skipped.Load()}
	if p := g.paced.Load(); p != 0 {
		s.Paced = time.Unix(0, p)
	}
	if p := g.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// StopSending stops the senders and waits for them; the receivers go on
// counting replies still on their way until Stop.
func (g *Generator) StopSending() Stats {
	g.stopSend.Store(true)
	g.sendWG.Wait()
	return g.Stats()
}

// Stop stops every goroutine, waits for them, and returns the final
// counters. The sockets stay open (the caller owns them).
func (g *Generator) Stop() Stats {
	g.stopSend.Store(true)
	g.stop.Store(true)
	g.wg.Wait()
	return g.Stats()
}

func (g *Generator) fail(err error) {
	s := err.Error()
	g.lastErr.Store(&s)
}

// pinThread locks the calling goroutine to its thread and, when cpu ≥ 0,
// the thread to that CPU. The returned function restores the thread's
// CPU mask and unlocks it, so the thread goes back to the runtime as it
// was (a thread that ended with its goroutine would take with it any
// child process it had started, through the child's parent-death signal).
func pinThread(cpu int) (unpin func(), err error) {
	runtime.LockOSThread()
	if cpu < 0 {
		return runtime.UnlockOSThread, nil
	}
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return runtime.UnlockOSThread, err
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return runtime.UnlockOSThread, err
	}
	return func() {
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		} // else: stays locked, and the thread ends with the goroutine
	}, nil
}

func (g *Generator) pin(i int) func() {
	cpu := -1
	if len(g.cfg.CPUs) > 0 {
		cpu = g.cfg.CPUs[i%len(g.cfg.CPUs)]
	}
	unpin, err := pinThread(cpu)
	if err != nil {
		g.fail(fmt.Errorf("pin stream %d: %w", i, err))
	}
	return unpin
}

func (g *Generator) send(i int) {
	defer g.wg.Done()
	defer g.sendWG.Done()
	defer g.pin(i)()
	st := g.cfg.Streams[i]
	size := st.Template.Len()
	b := newBatch(g.cfg.Batch, size, false)
	for j := range b.bufs {
		copy(b.bufs[j], st.Template.data)
	}
	perStream := 1 / float64(len(g.cfg.Streams))
	id := uint64(g.cfg.Run)<<48 | uint64(i&0xff)<<40
	var (
		sent   uint64 // this stream's, since the pacing origin
		total  uint64 // this stream's, since Start
		limit  uint64 // this stream's share of Count; 0: none
		origin time.Time
		epoch  uint64 = math.MaxUint64
		rate   float64
	)
	if c, k := g.cfg.Count, uint64(len(g.cfg.Streams)); c > 0 {
		limit = c / k
		if uint64(i) < c%k {
			limit++
		}
		if limit == 0 {
			return
		}
	}
	for !g.stopSend.Load() && (limit == 0 || total < limit) {
		n := g.cfg.Batch
		if e := g.epoch.Load(); e != epoch {
			epoch, rate, origin, sent = e, g.Rate()*perStream, time.Now(), 0
		}
		if rate > 0 {
			// A burst is what falls due in a quantum: 1 to Batch messages.
			burst := int64(min(max(rate*g.cfg.Quantum.Seconds(), 1), float64(n)))
			now := time.Now()
			due := int64(now.Sub(origin).Seconds()*rate) - int64(sent)
			if due < burst {
				// Wait until a burst is due: sleep most of a long wait
				// (the runtime's timers are coarse), spin the rest.
				next := origin.Add(time.Duration(float64(int64(sent)+burst) / rate * float64(time.Second)))
				if wait := time.Until(next); wait > 300*time.Microsecond {
					time.Sleep(min(wait-200*time.Microsecond, 5*time.Millisecond))
				}
				for time.Now().Before(next) && !g.stopSend.Load() && g.epoch.Load() == epoch {
				}
				continue
			}
			// Behind by more than a millisecond's worth (descheduled):
			// forget the debt rather than send it in one burst.
			if maxDebt := max(int64(rate/1000), int64(n)); due > maxDebt {
				sent += uint64(due - maxDebt)
				g.skipped.Add(uint64(due - maxDebt))
				due = maxDebt
			}
			g.paced.Store(now.UnixNano())
			n = int(min(int64(n), due))
		}
		if limit > 0 {
			n = int(min(uint64(n), limit-total))
		}
		for j := range n {
			st.Template.stamp(b.bufs[j], id)
			id++
		}
		k, err := sendmmsg(st.Socket.fd, b.hdrs[:n])
		if err != nil {
			g.errs.Add(1)
			if !temporary(err) {
				g.fail(fmt.Errorf("sendmmsg from %s: %w", st.Socket.local, err))
				time.Sleep(10 * time.Millisecond)
			}
		}
		id -= uint64(n - k) // identifiers of unsent messages are used again
		sent += uint64(k)
		total += uint64(k)
		g.sent.Add(uint64(k))
		g.bytes.Add(uint64(k * size))
	}
}

func (g *Generator) receive(i int) {
	defer g.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := g.cfg.Streams[i].Socket
	b := newBatch(g.cfg.Batch, 2048, false)
	for !g.stop.Load() {
		b.resetForRecv()
		n, err := recvmmsg(s.fd, b.hdrs)
		if err != nil {
			if !temporary(err) {
				g.fail(fmt.Errorf("recvmmsg on %s: %w", s.local, err))
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		g.recvd.Add(uint64(n))
	}
}
