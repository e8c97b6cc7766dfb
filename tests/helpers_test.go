package tests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
	"github.com/sipedge/sipedge/tests/proc"
	"github.com/sipedge/sipedge/tests/sipp"
)

var lo = netip.MustParseAddr("127.0.0.1")

// freeAddr is a free UDP port on 127.0.0.1.
func freeAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	return netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo))
}

func sipURI(a netip.AddrPort) string { return "sip:" + a.String() }

// startUAS starts n SIPp servers running sc on loopback ("uas0", "uas1", ...).
func startUAS(t testing.TB, n int, sc sipp.Scenario) []*sipp.SIPp {
	t.Helper()
	out := make([]*sipp.SIPp, n)
	for i := range out {
		out[i] = sipp.Start(t, sipp.Options{Name: fmt.Sprintf("uas%d", i), Scenario: sc, Local: freeAddr(t)})
	}
	return out
}

// edgeAgent starts sipedge with one UDP listener "edge" on a free loopback
// port, the rule r (Listener and Set filled in) and set 1 = dests.
func edgeAgent(t testing.TB, r agent.Rule, dests []agent.Dest, failoverTimeout time.Duration) (*agent.Agent, netip.AddrPort) {
	t.Helper()
	edge := freeAddr(t)
	r.Listener, r.Set = "edge", 1
	cfg := agent.Config{
		Listeners:       []agent.Listener{{Name: "edge", Address: edge}},
		Rules:           []agent.Rule{r},
		Dests:           dests,
		FailoverTimeout: failoverTimeout,
	}
	return agent.Start(t, bins, cfg, agent.Options{}), edge
}

// destsOf lists the servers in set 1, all with priority 0.
func destsOf(uas []*sipp.SIPp) []agent.Dest {
	var ds []agent.Dest
	for _, u := range uas {
		ds = append(ds, agent.Dest{Set: 1, URI: sipURI(u.Opts.Local)})
	}
	return ds
}

// runUAC runs a SIPp client (opts.Remote is the edge) until it is done
// and fails the test unless every one of its opts.Calls calls succeeded.
// A missing opts.Local is a free loopback port.
func runUAC(t testing.TB, opts sipp.Options) *sipp.SIPp {
	t.Helper()
	if !opts.Local.IsValid() {
		opts.Local = freeAddr(t)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	uac := sipp.Start(t, opts)
	res := uac.Wait(t)
	if res.ExitCode != 0 || res.Stats.Successful != opts.Calls || res.Stats.Failed != 0 {
		t.Errorf("%s: %d calls: exit code %d, created %d, successful %d, failed %d (want exit 0 and %d successful)",
			opts.Name, opts.Calls, res.ExitCode, res.Stats.Created, res.Stats.Successful, res.Stats.Failed, opts.Calls)
		uac.LogOutput()
		logFile(t, filepath.Join(uac.Opts.Dir, opts.Name+".err"), 8<<10)
	}
	return uac
}

// stopAll stops the SIPp servers, so their logs are complete.
func stopAll(servers []*sipp.SIPp) {
	for _, s := range servers {
		s.Stop()
	}
}

// seen is, per Call-ID, which backend (index) received how many requests
// of each method.
type seen map[string]map[int]map[string]int

// receivedRequests reads the backends' message logs.
func receivedRequests(t testing.TB, backends []*sipp.SIPp) (seen, []sipp.Messages) {
	t.Helper()
	s := seen{}
	logs := make([]sipp.Messages, len(backends))
	for i, b := range backends {
		logs[i] = b.Messages(t)
		for _, m := range logs[i].Requests(sipp.Received, "") {
			cid := m.CallID()
			if s[cid] == nil {
				s[cid] = map[int]map[string]int{}
			}
			if s[cid][i] == nil {
				s[cid][i] = map[string]int{}
			}
			s[cid][i][m.Method]++
		}
	}
	return s, logs
}

// backendsOf returns the backends that received requests of Call-ID cid.
func (s seen) backendsOf(cid string) []int {
	var out []int
	for b := range s[cid] {
		out = append(out, b)
	}
	sort.Ints(out)
	return out
}

// invitesPerBackend counts the Call-IDs whose INVITE reached each backend.
func (s seen) invitesPerBackend(n int) []int {
	out := make([]int, n)
	for _, per := range s {
		for b, methods := range per {
			if methods["INVITE"] > 0 {
				out[b]++
			}
		}
	}
	return out
}

// sentCallIDs are the Call-IDs of the INVITEs the client sent.
func sentCallIDs(t testing.TB, uac *sipp.SIPp) []string {
	t.Helper()
	var out []string
	for cid := range uac.Messages(t).Requests(sipp.Sent, "INVITE").CallIDs() {
		out = append(out, cid)
	}
	sort.Strings(out)
	return out
}

// assertOneBackendPerCall checks that every request of each call reached
// one backend, that it got every method in methods, and that the backends
// saw no call the client did not make.
func assertOneBackendPerCall(t testing.TB, s seen, callIDs []string, methods []string) {
	t.Helper()
	var errs []string
	for _, cid := range callIDs {
		bs := s.backendsOf(cid)
		if len(bs) != 1 {
			errs = append(errs, fmt.Sprintf("Call-ID %s reached backends %v (requests %v), want exactly one", cid, bs, s[cid]))
			continue
		}
		for _, m := range methods {
			if s[cid][bs[0]][m] == 0 {
				errs = append(errs, fmt.Sprintf("Call-ID %s: backend %d got %v, no %s", cid, bs[0], s[cid][bs[0]], m))
			}
		}
	}
	for cid := range s {
		if !slices.Contains(callIDs, cid) {
			errs = append(errs, fmt.Sprintf("backends %v got Call-ID %s, which the client never sent", s.backendsOf(cid), cid))
		}
	}
	reportErrs(t, errs)
}

// reportErrs fails t with at most 10 of errs, and their number.
func reportErrs(t testing.TB, errs []string) {
	t.Helper()
	if len(errs) == 0 {
		return
	}
	shown := errs
	if len(shown) > 10 {
		shown = shown[:10]
	}
	t.Errorf("%d problem(s):\n  %s", len(errs), strings.Join(shown, "\n  "))
}

func logFile(t testing.TB, path string, max int) {
	t.Helper()
	out, _, err := proc.Run(context.Background(), "tail", "-c", fmt.Sprint(max), path)
	if err == nil && len(out) > 0 {
		t.Logf("---- %s ----\n%s", path, out)
	}
}

// sink is a UDP socket standing where a backend should get nothing.
type sink struct {
	Addr netip.AddrPort
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func newSink(t testing.TB, addr netip.AddrPort) *sink {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("sink on %s: %v", addr, err)
	}
	s := &sink{Addr: addr, conn: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, append([]byte(nil), buf[:n]...))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-s.done })
	return s
}

// Got returns the datagrams received so far.
func (s *sink) Got() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// rawClient sends hand-written SIP to the edge and reads the answers.
type rawClient struct {
	conn *net.UDPConn
	Addr netip.AddrPort
	edge netip.AddrPort
}

func newRawClient(t testing.TB, edge netip.AddrPort) *rawClient {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{conn: c, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), edge: edge}
}

// Send writes msg, with its LF line ends made CRLF.
func (c *rawClient) Send(t testing.TB, msg string) {
	t.Helper()
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	if _, err := c.conn.WriteToUDPAddrPort([]byte(msg), c.edge); err != nil {
		t.Fatalf("send to %s: %v", c.edge, err)
	}
}

// FinalResponse reads until a final response (status >= 200) arrives or
// timeout passes; provisional responses are skipped.
func (c *rawClient) FinalResponse(timeout time.Duration) (sipp.Message, []byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(buf)
		if err != nil {
			return sipp.Message{}, nil, fmt.Errorf("no final response within %v: %w", timeout, err)
		}
		raw := append([]byte(nil), buf[:n]...)
		m, err := sipp.ParseSIP(raw)
		if err != nil {
			return sipp.Message{}, raw, fmt.Errorf("unparsable answer %q: %w", raw, err)
		}
		if m.IsRequest() {
			return m, raw, errors.New("got a request, want a response")
		}
		if m.Status >= 200 {
			return m, raw, nil
		}
	}
}
