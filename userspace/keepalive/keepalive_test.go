package keepalive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testSeq numbers the probe results the tests feed in.
var testSeq atomic.Uint64

func nextSeq() uint64 { return testSeq.Add(1) }

// fakeProber records what the module asks to probe.
type fakeProber struct {
	mu      sync.Mutex
	targets map[string]Probe
	sets    int
	fail    error // Set fails with it
}

func newFakeProber() *fakeProber { return &fakeProber{targets: map[string]Probe{}} }

func (f *fakeProber) Set(key string, p Probe) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.sets++
	f.targets[key] = p
	return nil
}

func (f *fakeProber) Remove(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.targets, key)
}

// key returns the prober key of uri ("" when not probed).
func (f *fakeProber) key(uri string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, p := range f.targets {
		if p.URI == uri {
			return k
		}
	}
	return ""
}

func (f *fakeProber) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.targets)
}

// logBuffer is a log sink safe for concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newModule(t *testing.T, p Params) (*Module, *fakeProber, *logBuffer) {
	t.Helper()
	pr, logs := newFakeProber(), &logBuffer{}
	m, err := New(Options{Params: p, Prober: pr, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return m, pr, logs
}

// changes collects an owner's callbacks.
type changes struct {
	mu  sync.Mutex
	all []Change
}

func (c *changes) add(x Change) {
	c.mu.Lock()
	c.all = append(c.all, x)
	c.mu.Unlock()
}

func (c *changes) get() []Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.all)
}

// TestStateMachine: unknown until the first result, then one result
// decides (2xx up, anything else down, no thresholds); each change is one
// callback and one log line, a repeated state none.
func TestStateMachine(t *testing.T) {
	m, pr, logs := newModule(t, Params{DeleteCounter: 0})
	var got changes
	if err := m.Add("10.0.0.1:5080", "drouting", got.add); err != nil {
		t.Fatal(err)
	}
	const uri = "sip:10.0.0.1:5080"
	key := pr.key(uri)
	if key == "" {
		t.Fatalf("not probed: %v", pr.targets)
	}
	if p := pr.targets[key]; p.Addr != netip.MustParseAddrPort("10.0.0.1:5080") || !p.First || p.Interval != DefaultInterval || p.From != DefaultFrom {
		t.Errorf("probe %+v", p)
	}
	if st, ok := m.State(uri); !ok || st != Unknown {
		t.Fatalf("state after add %v %v, want unknown", st, ok)
	}
	steps := []struct {
		code int
		want State
	}{
		{200, Up}, {204, Up}, {503, Down}, {408, Down}, {200, Up}, {500, Down}, {180, Down},
	}
	for _, s := range steps {
		m.Result(key, nextSeq(), s.code, "")
		if st, _ := m.State(uri); st != s.want {
			t.Fatalf("after %d: %v, want %v", s.code, st, s.want)
		}
	}
	var seq []string
	for _, c := range got.get() {
		seq = append(seq, fmt.Sprintf("%v>%v:%d", c.Prev, c.State, c.Code))
		if c.URI != uri || c.Owner != "drouting" || c.Removed {
			t.Errorf("change %+v", c)
		}
	}
	want := []string{"unknown>up:200", "up>down:503", "down>up:200", "up>down:500"}
	if !slices.Equal(seq, want) {
		t.Errorf("changes %v, want %v", seq, want)
	}
	out := logs.String()
	if n, m := strings.Count(out, "msg=keepalive:dst-up"), strings.Count(out, "msg=keepalive:dst-down"); n != 2 || m != 2 {
		t.Errorf("log has %d dst-up and %d dst-down lines, want 2 and 2:\n%s", n, m, out)
	}
	if !strings.Contains(out, "msg=keepalive:dst-down uri=sip:10.0.0.1:5080 state=down prev=up code=503") {
		t.Errorf("dst-down line lacks the destination or code:\n%s", out)
	}
	e, err := m.Get(uri, "drouting")
	if err != nil || e.Failures != 2 || e.LastUp.IsZero() || e.LastDown.IsZero() || e.LastChecked.IsZero() {
		t.Errorf("entry %+v, %v", e, err)
	}
}

// TestOutOfOrder: a result older than one applied is ignored (a timeout
// reported after the next probe's reply).
func TestOutOfOrder(t *testing.T) {
	m, pr, _ := newModule(t, Params{})
	if err := m.Add("sip:10.0.0.1", "a", nil); err != nil {
		t.Fatal(err)
	}
	key := pr.key("sip:10.0.0.1")
	m.Result(key, 5, 200, "")
	m.Result(key, 4, 408, "")
	if st, _ := m.State("sip:10.0.0.1"); st != Up {
		t.Errorf("an older timeout applied after a newer 200: %v", st)
	}
	m.Result(key, 6, 408, "")
	if st, _ := m.State("sip:10.0.0.1"); st != Down {
		t.Errorf("a newer timeout not applied: %v", st)
	}
}

// TestIsAlive: 1 for up only; unknown and down are 2 (Kamailio says 1 for
// unknown); -1 when not monitored. Any spelling of the URI finds it,
// sips: too (Kamailio cuts four bytes off the stored URI).
func TestIsAlive(t *testing.T) {
	m, pr, _ := newModule(t, Params{})
	if err := m.Add("sip:10.0.0.1", "x", nil); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"10.0.0.1", "sip:10.0.0.1", "SIP:10.0.0.1"} {
		if got := m.IsAlive(uri); got != 2 {
			t.Errorf("unknown: IsAlive(%q) = %d, want 2 (unknown is not up)", uri, got)
		}
	}
	m.Result(pr.key("sip:10.0.0.1"), nextSeq(), 200, "")
	if got := m.IsAlive("10.0.0.1"); got != 1 {
		t.Errorf("up: IsAlive = %d, want 1", got)
	}
	m.Result(pr.key("sip:10.0.0.1"), nextSeq(), 404, "")
	if got := m.IsAlive("10.0.0.1"); got != 2 {
		t.Errorf("down: IsAlive = %d, want 2", got)
	}
	if got := m.IsAlive("10.0.0.2"); got != -1 {
		t.Errorf("not monitored: IsAlive = %d, want -1", got)
	}
	if got := m.IsAlive("sips:10.0.0.1"); got != -1 {
		t.Errorf("sips: is another URI: IsAlive = %d, want -1", got)
	}
}

// TestDeleteCounter: a destination added at run time that fails
// delete_counter probes in a row is removed, its owners told once (the
// down change, then the removal); a success in between restarts the
// count; a static destination is never removed; a re-add restarts the
// count (ErrExists). A late result of the removed destination does not
// touch one added again under the same URI.
func TestDeleteCounter(t *testing.T) {
	m, pr, logs := newModule(t, Params{DeleteCounter: 3, Destinations: []string{"sip:10.0.0.9"}})
	var a, b changes
	if err := m.Add("sip:10.0.0.1", "a", a.add); err != nil {
		t.Fatal(err)
	}
	if err := m.Add("sip:10.0.0.1", "b", b.add); err != nil {
		t.Fatal(err)
	}
	if err := m.Add("sip:10.0.0.9", "a", a.add); err != nil { // also static
		t.Fatal(err)
	}
	if pr.count() != 2 {
		t.Fatalf("two owners of one URI: %d probe targets, want 1 per URI", pr.count())
	}
	k1, k9 := pr.key("sip:10.0.0.1"), pr.key("sip:10.0.0.9")
	m.Result(k1, nextSeq(), 408, "")
	m.Result(k1, nextSeq(), 408, "")
	m.Result(k1, nextSeq(), 200, "") // restarts the count
	m.Result(k1, nextSeq(), 408, "")
	m.Result(k1, nextSeq(), 408, "")
	if err := m.Add("sip:10.0.0.1", "a", nil); !errors.Is(err, ErrExists) { // restarts the count too
		t.Fatalf("re-add: %v, want ErrExists", err)
	}
	m.Result(k1, nextSeq(), 408, "")
	m.Result(k1, nextSeq(), 408, "")
	if _, ok := m.State("sip:10.0.0.1"); !ok {
		t.Fatal("removed before delete_counter failures in a row")
	}
	m.Result(k1, nextSeq(), 503, "")
	if _, ok := m.State("sip:10.0.0.1"); ok || pr.key("sip:10.0.0.1") != "" {
		t.Fatal("not removed after delete_counter failures in a row")
	}
	for name, c := range map[string]*changes{"a": &a, "b": &b} {
		var last Change
		for _, x := range c.get() {
			if x.URI == "sip:10.0.0.1" {
				last = x
			}
		}
		if !last.Removed || last.Code != 503 || last.Owner != name {
			t.Errorf("owner %s: last change %+v, want the removal with code 503", name, last)
		}
	}
	if !strings.Contains(logs.String(), "msg=keepalive:dst-removed uri=sip:10.0.0.1") {
		t.Errorf("no dst-removed line:\n%s", logs.String())
	}

	// The static destination: owner a is removed, probing goes on.
	for range 5 {
		m.Result(k9, nextSeq(), 408, "")
	}
	if e, err := m.Get("sip:10.0.0.9", StaticOwner); err != nil || e.State != Down || e.Failures != 5 || pr.key("sip:10.0.0.9") != k9 {
		t.Errorf("static destination: %+v, %v; want down, still probed", e, err)
	}
	if _, err := m.Get("sip:10.0.0.9", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("owner a of the static destination: %v, want removed", err)
	}

	// Added again: a fresh destination; a late result of the old one is
	// ignored.
	if err := m.Add("sip:10.0.0.1", "a", nil); err != nil {
		t.Fatal(err)
	}
	m.Result(k1, nextSeq(), 200, "")
	if st, _ := m.State("sip:10.0.0.1"); st != Unknown {
		t.Errorf("late result of the removed destination applied: %v", st)
	}
}

// TestDeleteCounterOff: 0 never removes.
func TestDeleteCounterOff(t *testing.T) {
	m, pr, _ := newModule(t, Params{DeleteCounter: 0})
	if err := m.Add("sip:10.0.0.1", "a", nil); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		m.Result(pr.key("sip:10.0.0.1"), nextSeq(), 408, "")
	}
	if st, ok := m.State("sip:10.0.0.1"); !ok || st != Down {
		t.Errorf("state %v %v, want down and kept", st, ok)
	}
}

// TestOwners: Remove needs the owner that added; the probe stops with the
// last owner; Get and List show one entry per (URI, owner).
func TestOwners(t *testing.T) {
	m, pr, _ := newModule(t, Params{})
	if l := m.List(); l == nil || len(l) != 0 {
		t.Fatalf("empty list %#v, want empty and not nil", l)
	}
	for _, o := range []string{"a", "b"} {
		if err := m.Add("10.0.0.1", o, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Add("10.0.0.1", "", nil); err == nil {
		t.Error("empty owner accepted")
	}
	if err := m.Remove("10.0.0.1", "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove by a stranger: %v", err)
	}
	if l := m.List(); len(l) != 2 || l[0].Owner != "a" || l[1].Owner != "b" || l[0].URI != "sip:10.0.0.1" {
		t.Errorf("list %+v", l)
	}
	if err := m.Remove("sip:10.0.0.1", "a"); err != nil {
		t.Fatal(err)
	}
	if pr.count() != 1 {
		t.Error("probe stopped while owner b remains")
	}
	if err := m.Remove("SIP:10.0.0.1", "b"); err != nil {
		t.Fatal(err)
	}
	if pr.count() != 0 || len(m.List()) != 0 {
		t.Errorf("after the last owner: %d probes, list %v", pr.count(), m.List())
	}
}

// TestRefused: what cannot be probed over UDP is refused at the add.
func TestRefused(t *testing.T) {
	m, pr, _ := newModule(t, Params{})
	for _, uri := range []string{"sips:10.0.0.1", "sip:10.0.0.1;transport=tcp", "sip:", "sip:10.0.0.1:99999", "sip:a b", "http://x"} {
		if err := m.Add(uri, "a", nil); err == nil {
			t.Errorf("%q accepted", uri)
		}
	}
	pr.fail = errors.New("no listener of the address family")
	if err := m.Add("sip:[2001:db8::1]", "a", nil); err == nil || !strings.Contains(err.Error(), "no listener") {
		t.Errorf("unprobeable address: %v", err)
	}
	if len(m.List()) != 0 {
		t.Errorf("refused destinations listed: %v", m.List())
	}
	if _, err := New(Options{Prober: pr, Params: Params{Destinations: []string{"sip:1.2.3.4", "1.2.3.4"}}}); err == nil {
		t.Error("a destination listed twice accepted")
	}
}

// TestFlushAndConfigure: flush removes everything and tells the owners;
// Configure adds the static destinations back, drops the ones no longer
// listed (unless another owner keeps them) and applies the interval.
func TestFlushAndConfigure(t *testing.T) {
	m, pr, _ := newModule(t, Params{Destinations: []string{"10.0.0.1", "10.0.0.2"}})
	var a changes
	if err := m.Add("10.0.0.2", "a", a.add); err != nil {
		t.Fatal(err)
	}
	m.Flush()
	if pr.count() != 0 || len(m.List()) != 0 {
		t.Fatalf("after flush: %d probes, %v", pr.count(), m.List())
	}
	if c := a.get(); len(c) != 1 || !c[0].Removed {
		t.Errorf("owner a after flush: %+v, want one removal", c)
	}
	if err := m.Configure(Params{Destinations: []string{"10.0.0.1", "10.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Add("10.0.0.2", "a", nil); err != nil {
		t.Fatal(err)
	}
	if pr.count() != 2 {
		t.Fatalf("after configure: %d probes, want 2", pr.count())
	}
	if err := m.Configure(Params{Destinations: []string{"10.0.0.3"}, Interval: time.Second, From: "sip:ka@example.com"}); err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, e := range m.List() {
		uris = append(uris, e.URI+"/"+e.Owner)
	}
	if want := []string{"sip:10.0.0.2/a", "sip:10.0.0.3/_params"}; !slices.Equal(uris, want) {
		t.Errorf("after reconfigure: %v, want %v", uris, want)
	}
	for _, p := range pr.targets {
		if p.Interval != time.Second || p.From != "sip:ka@example.com" {
			t.Errorf("probe %+v: interval and From not applied", p)
		}
	}
	if err := m.Configure(Params{Interval: time.Millisecond}); err == nil {
		t.Error("interval 1ms accepted")
	}
}

// TestConcurrentOwners: several owners add and remove the same URIs at
// once while results arrive (run with -race): every owner's Remove finds
// its own Add, nothing is left behind, and the probe count matches.
func TestConcurrentOwners(t *testing.T) {
	m, pr, _ := newModule(t, Params{DeleteCounter: 0})
	var wg sync.WaitGroup
	for o := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("owner%d", o)
			for i := range 200 {
				uri := fmt.Sprintf("sip:10.0.0.%d", i%5+1)
				if err := m.Add(uri, owner, func(Change) { m.State(uri) }); err != nil {
					t.Errorf("%s add %s: %v", owner, uri, err)
					return
				}
				if k := pr.key(uri); k != "" {
					m.Result(k, nextSeq(), 200+i%2*303, "")
				}
				if err := m.Remove(uri, owner); err != nil {
					t.Errorf("%s remove %s: %v", owner, uri, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(m.List()); n != 0 || pr.count() != 0 {
		t.Errorf("left behind: %d entries, %d probes", n, pr.count())
	}
}

// TestResolve: a host name is resolved by Run; until then it is unknown
// and not probed; a failing lookup makes it down once (one log line, one
// callback, however many attempts); once it resolves it is probed at the
// address; a later failure keeps the address.
func TestResolve(t *testing.T) {
	var mu sync.Mutex
	answer := map[string][]netip.Addr{}
	lookups := 0
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if a, ok := answer[host]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}
	pr, logs := newFakeProber(), &logBuffer{}
	m, err := New(Options{Params: Params{Interval: 20 * time.Millisecond, DeleteCounter: 0}, Prober: pr, Resolver: resolver,
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var a changes
	if err := m.Add("sip:gw.example.net:5070", "a", a.add); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.State("sip:gw.example.net:5070"); st != Unknown || pr.count() != 0 {
		t.Fatalf("before Run: %v, %d probes", st, pr.count())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "three failed lookups", func() bool { mu.Lock(); defer mu.Unlock(); return lookups >= 3 })
	if st, _ := m.State("sip:gw.example.net:5070"); st != Down || pr.count() != 0 {
		t.Fatalf("unresolvable: %v, %d probes; want down, not probed", st, pr.count())
	}
	if n := strings.Count(logs.String(), "msg=keepalive:dst-down"); n != 1 {
		t.Errorf("dst-down logged %d times over several failed lookups, want once:\n%s", n, logs.String())
	}
	if c := a.get(); len(c) != 1 || c[0].Code != 0 || !strings.Contains(c[0].Reason, "resolve gw.example.net: no such host") {
		t.Errorf("changes %+v, want one down with the lookup error", c)
	}

	mu.Lock()
	answer["gw.example.net"] = []netip.Addr{netip.MustParseAddr("192.0.2.7")}
	mu.Unlock()
	waitFor(t, "the probe at the resolved address", func() bool { return pr.count() == 1 })
	p := pr.targets[pr.key("sip:gw.example.net:5070")]
	if p.Addr != netip.MustParseAddrPort("192.0.2.7:5070") || !p.First {
		t.Errorf("probe %+v", p)
	}
	m.Result(pr.key("sip:gw.example.net:5070"), nextSeq(), 200, "")
	if st, _ := m.State("gw.example.net:5070"); st != Up {
		t.Errorf("after a 200: %v", st)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
