package probe

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeSender records what the engine sends.
type fakeSender struct {
	clock *fakeClock
	mu    sync.Mutex
	sent  []sentMsg
	err   error
}

type sentMsg struct {
	local, dst netip.AddrPort
	msg        []byte
	at         time.Time
}

func (s *fakeSender) Send(local, dst netip.AddrPort, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at time.Time
	if s.clock != nil {
		at = s.clock.Now()
	}
	s.sent = append(s.sent, sentMsg{local, dst, bytes.Clone(msg), at})
	return s.err
}

func (s *fakeSender) all() []sentMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentMsg(nil), s.sent...)
}

// fakeClock is a time source moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// results collects OnResult calls.
type results struct {
	mu  sync.Mutex
	all []Result
}

func (r *results) add(x Result) {
	r.mu.Lock()
	r.all = append(r.all, x)
	r.mu.Unlock()
}

func (r *results) get() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.all...)
}

// newFakeEngine returns an engine on a fake clock and sender, with a fixed
// random seed, so that its branches are the same on every run.
func newFakeEngine(tb testing.TB, cfg Config) (*Engine, *fakeSender, *fakeClock, *results) {
	tb.Helper()
	c, r := &fakeClock{t: time.Unix(1_700_000_000, 0)}, &results{}
	s := &fakeSender{clock: c}
	cfg.OnResult = r.add
	e, err := New(cfg, s)
	if err != nil {
		tb.Fatal(err)
	}
	e.now, e.epoch = c.Now, c.Now()
	e.rng = rand.NewChaCha8([32]byte{'s', 'i', 'p', 'e', 'd', 'g', 'e'})
	return e, s, c, r
}

var (
	testLocal = netip.MustParseAddrPort("192.0.2.1:5060")
	testDst   = netip.MustParseAddrPort("192.0.2.10:5080")
)

// answer builds a reply to req with code: the request's header lines
// (Via, To, From, CSeq, Call-ID ...) under a status line, as a cheap
// responder does.
func answer(req []byte, code int, reason string) []byte {
	i := bytes.Index(req, []byte("\r\n"))
	if i < 0 {
		return nil
	}
	out := append([]byte("SIP/2.0 "), []byte(strconv.Itoa(code)+" "+reason)...)
	return append(out, req[i:]...)
}

// run steps e on its fake clock until the clock has moved by d, jumping
// from one due time to the next.
func run(e *Engine, c *fakeClock, d time.Duration) {
	end := c.Now().Add(d)
	for {
		w := e.step()
		if w == 0 {
			continue
		}
		if c.Now().Add(w).After(end) {
			c.Add(end.Sub(c.Now()))
			e.step()
			return
		}
		c.Add(w)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
