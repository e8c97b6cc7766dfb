package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/tests/fixtures"
	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/sipproxy"
)

// The differential test: XDP vs sipproxy, same bytes or a reason.
//
// One comparison (diffHarness.compare) runs a SIP datagram, framed as
// Ethernet/IP/UDP, through the loaded XDP program (BPF_PROG_TEST_RUN in the
// dptest namespace) and through sipproxy.Forwarder.Process with the same
// dispatcher snapshot, listener, rule and source. The paths agree when
//
//   - XDP forwarded (XDP_TX / XDP_REDIRECT): the slow path forwarded the
//     identical UDP payload to the identical destination, and the XDP frame
//     is right: listener → destination addresses and ports, lengths and
//     checksums, the egress link's MACs, TTL 64, the verdict that link needs;
//   - XDP_PASS with a counted reason and the frame untouched: the slow path
//     may do anything (the pairs are counted);
//   - XDP_DROP: the slow path dropped too.
//
// Anything else is a disagreement, reported with the input, both outputs as
// a line diff and the fast path's reason. The comparison is used by
// TestDifferentialFixtures (tests/fixtures, as written and in the other IP
// family), TestDifferentialTorture (RFC 4475), TestDifferentialReproducers
// (the reported disagreements, testdata/differential/cases),
// TestDifferentialMutations (the fixtures mutated a few bytes at a time) and
// FuzzDifferential.
//
// Rules use hash algorithms only (0-3 and 8, and the fixtures' own): picks
// with per-CPU state (round robin, weight tables, random) cannot be compared
// message by message.

// diffBackends are routed through the backend link of the dptest topology;
// every other address through the client link.
var diffBackends = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8::20/124"),
}

// diffExtraSets join the fixtures' dispatcher.list: set 20 mirrors set 2 in
// IPv6, set 21 mixes families and an inactive destination; sets 22-24 have
// destinations down for the hash fallback (TestDifferentialHashFallback):
// 22 six with three down (start index and live count correlated), 23
// sixteen with two down, 24 four IPv6 with one down.
var diffExtraSets = append([]dispatch.Entry{
	{SetID: 20, URI: "sip:[2001:db8::21]:5060", Source: "differential:1"},
	{SetID: 20, URI: "sip:[2001:db8::22]:5060", Source: "differential:2"},
	{SetID: 20, URI: "sip:[2001:db8::23]:5060", Source: "differential:3"},
	{SetID: 21, URI: "sip:10.0.0.41:5060", Source: "differential:4"},
	{SetID: 21, URI: "sip:[2001:db8::24]:5060", Source: "differential:5"},
	{SetID: 21, URI: "sip:10.0.0.42:5080", Flags: 1, Source: "differential:6"},
	{SetID: 21, URI: "sip:10.0.0.43", Source: "differential:7"},
}, diffFallbackSets()...)

// diffFallbackSets are sets 22-24 (diffExtraSets).
func diffFallbackSets() []dispatch.Entry {
	var out []dispatch.Entry
	add := func(set int, uri string, down bool) {
		e := dispatch.Entry{SetID: set, URI: uri, Source: fmt.Sprintf("differential:set %d:%d", set, len(out)+1)}
		if down {
			e.Flags = dispatch.FlagInactive
		}
		out = append(out, e)
	}
	for i := 1; i <= 6; i++ {
		add(22, fmt.Sprintf("sip:10.0.2.%d:5060", i), i%2 == 0)
	}
	for i := 1; i <= 16; i++ {
		add(23, fmt.Sprintf("sip:10.0.3.%d:5060", i), i == 5 || i == 6)
	}
	for i := 5; i <= 8; i++ {
		add(24, fmt.Sprintf("sip:[2001:db8::2%d]:5060", i), i == 6)
	}
	return out
}

// diffSetup is the listener a datagram arrives on and its rule.
type diffSetup struct {
	Listener  netip.AddrPort
	Advertise string
	Rule      fixtures.Rule
	// OwnsTransaction is what the slow path's stateful hook answers.
	OwnsTransaction bool
	// HashFallback is the dispatcher's ds_hash_fallback, on both paths.
	HashFallback dispatch.HashFallback
}

func (s diffSetup) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "listener %s", s.Listener)
	if s.Advertise != "" {
		fmt.Fprintf(&b, " advertise %s", s.Advertise)
	}
	fmt.Fprintf(&b, ", set %d alg %d", s.Rule.SetID, s.Rule.Alg)
	if s.Rule.RecordRoute {
		b.WriteString(" record_route")
	}
	if s.Rule.Failover {
		b.WriteString(" failover")
	}
	if s.HashFallback != dispatch.FallbackNext {
		fmt.Fprintf(&b, " hash_fallback %s", s.HashFallback)
	}
	return b.String()
}

// diffInput is one datagram to compare.
type diffInput struct {
	Name  string
	Setup diffSetup
	Src   netip.AddrPort
	In    []byte
}

// diffResult is what both paths did with one datagram.
type diffResult struct {
	Verdict  uint32
	Reason   string // the fast path's pass or drop reason
	Frame    dptest.Frame
	FrameErr error  // the forwarded frame does not parse (lengths, checksums)
	Raw      []byte // the frame after the run
	Go       sipproxy.Result
	// Problem says how the paths disagree; "" when they agree.
	Problem string
}

func (r diffResult) forwarded() bool {
	return r.Verdict == dptest.XDPTX || r.Verdict == dptest.XDPRedirect
}

// diffHarness is the loaded program and the slow path's dispatchers, one
// per ds_hash_fallback, the program holding the sets of the setup's one,
// and the listener currently configured on both.
type diffHarness struct {
	env    *dptest.Env
	disps  map[dispatch.HashFallback]*dispatch.Dispatcher
	synced dispatch.HashFallback // whose snapshot the program holds

	cur   diffSetup
	fw    *sipproxy.Forwarder
	pass  map[string]uint64 // pass_count as last read
	drops map[string]uint64 // drop_count as last read

	// pairs counts "fast path outcome / slow path outcome".
	pairs map[string]int
}

func newDiffHarness(t testing.TB) *diffHarness {
	t.Helper()
	env := dptest.NewEnvWith(t, dataplane.Options{NoEvents: true}, diffBackends...)
	entries, err := fixtures.Entries(fixtures.Dir())
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, diffExtraSets...)
	h := &diffHarness{env: env, disps: map[dispatch.HashFallback]*dispatch.Dispatcher{}, pairs: map[string]int{}}
	for _, fb := range []dispatch.HashFallback{dispatch.FallbackNext, dispatch.FallbackSpread} {
		snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{Resolver: diffNoDNS, HashFallback: fb})
		if err != nil {
			t.Fatal(err)
		}
		h.disps[fb] = dispatch.New(snap)
	}
	h.sync(t, dispatch.FallbackNext)
	if h.pass, err = env.DP.PassCounts(); err != nil {
		t.Fatal(err)
	}
	if h.drops, err = env.DP.DropCounts(); err != nil {
		t.Fatal(err)
	}
	return h
}

// diffNoDNS fails every lookup: the fixtures and the fuzzer need no DNS.
func diffNoDNS(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("no DNS in the differential test")
}

// sync writes the current snapshot of fb's dispatcher into the program.
func (h *diffHarness) sync(t testing.TB, fb dispatch.HashFallback) {
	t.Helper()
	if err := h.env.DP.SyncSets(h.disps[fb].Snapshot()); err != nil {
		t.Fatal(err)
	}
	h.synced = fb
}

// configure puts s on both paths (when it is not there already).
func (h *diffHarness) configure(t testing.TB, s diffSetup) {
	t.Helper()
	if s.HashFallback != h.synced {
		h.sync(t, s.HashFallback)
	}
	if h.fw != nil && s == h.cur {
		return
	}
	r := s.Rule
	fw, err := sipproxy.NewForwarder(h.disps[s.HashFallback], []sipproxy.Listener{{
		Name: "diff", Addr: s.Listener, Advertise: s.Advertise,
		Rule: sipproxy.Rule{SetID: r.SetID, Alg: dispatch.Alg(r.Alg), Limit: r.Limit, RecordRoute: r.RecordRoute,
			Failover: r.Failover, HashPVar: r.HashPVar, NoDestinationCode: r.NoDestinationCode},
	}}, sipproxy.Options{OwnsTransaction: func([]byte, []byte, bool) bool { return s.OwnsTransaction }})
	if err != nil {
		t.Fatalf("slow path, %s: %v", s, err)
	}
	lis := dataplane.Listener{Addr: s.Listener, ADV: s.Advertise, Rule: dataplane.Rule{
		SetID: r.SetID, Alg: r.Alg, RecordRoute: r.RecordRoute, Failover: r.Failover}}
	if err := h.env.DP.SyncListeners([]dataplane.Listener{lis}); err != nil {
		t.Fatalf("fast path, %s: %v", s, err)
	}
	h.cur, h.fw = s, fw
}

// compare runs in through both paths and judges the outcomes.
func (h *diffHarness) compare(t testing.TB, in diffInput) diffResult {
	t.Helper()
	h.configure(t, in.Setup)
	lis := in.Setup.Listener
	ingress := h.env.SideOf(in.Src.Addr())
	frame := dptest.Frame{
		DstMAC: ingress.MAC, SrcMAC: ingress.GWMAC, Src: in.Src, Dst: lis, TTL: 61, IPID: 0x4242,
		Payload: in.In,
	}.Build()
	run, err := h.env.Run(frame, ingress)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	r := diffResult{Verdict: run.Verdict, Raw: run.Out}
	r.Go = h.fw.Process(append([]byte(nil), in.In...), in.Src, lis, nil)

	switch r.Verdict {
	case dptest.XDPPass:
		r.Reason = h.counted(t, h.env.DP.PassCounts, &h.pass)
		switch {
		case r.Reason == "":
			r.Problem = "XDP_PASS without a counted reason"
		case !bytes.Equal(run.Out, frame):
			r.Problem = "XDP_PASS with a changed frame"
		}
	case dptest.XDPDrop:
		r.Reason = h.counted(t, h.env.DP.DropCounts, &h.drops)
		if r.Go.Action != sipproxy.ActionDrop {
			r.Problem = "the fast path dropped, the slow path did not"
		}
	case dptest.XDPTX, dptest.XDPRedirect:
		r.Frame, r.FrameErr = dptest.Parse(run.Out)
		r.Problem = h.judgeForward(in, r)
	default:
		r.Problem = "verdict " + diffVerdictName(r.Verdict)
	}
	h.pairs[diffPair(r)]++
	return r
}

// counted returns the reasons whose counters moved since *last, and
// updates *last.
func (h *diffHarness) counted(t testing.TB, read func() (map[string]uint64, error), last *map[string]uint64) string {
	t.Helper()
	now, err := read()
	if err != nil {
		t.Fatal(err)
	}
	var moved []string
	for k, v := range now {
		if v != (*last)[k] {
			moved = append(moved, k)
		}
	}
	sort.Strings(moved)
	*last = now
	return strings.Join(moved, ",")
}

// judgeForward checks a forward of the fast path against the slow path's
// answer and the frame's headers.
func (h *diffHarness) judgeForward(in diffInput, r diffResult) string {
	g := r.Go
	if g.Action != sipproxy.ActionForward {
		return fmt.Sprintf("the fast path forwarded, the slow path says %s %q", g.Action, g.Reason)
	}
	if r.FrameErr != nil {
		return "the forwarded frame is broken: " + r.FrameErr.Error()
	}
	f := r.Frame
	dst := netip.AddrPortFrom(g.Dst.Addr().Unmap(), g.Dst.Port())
	fdst := netip.AddrPortFrom(f.Dst.Addr().Unmap(), f.Dst.Port())
	var probs []string
	if fdst != dst {
		probs = append(probs, fmt.Sprintf("destination %s, the slow path's %s", f.Dst, g.Dst))
	}
	if !bytes.Equal(f.Payload, g.Out) {
		probs = append(probs, "payloads differ")
	}
	if f.Src != in.Setup.Listener {
		probs = append(probs, fmt.Sprintf("source %s, want the listener %s", f.Src, in.Setup.Listener))
	}
	out := h.env.SideOf(f.Dst.Addr())
	want := uint32(dptest.XDPRedirect)
	if out == h.env.SideOf(in.Src.Addr()) {
		want = dptest.XDPTX
	}
	if r.Verdict != want {
		probs = append(probs, fmt.Sprintf("verdict %s, the egress link needs %s", diffVerdictName(r.Verdict), diffVerdictName(want)))
	}
	if !bytes.Equal(f.SrcMAC, out.MAC) || !bytes.Equal(f.DstMAC, out.GWMAC) {
		probs = append(probs, fmt.Sprintf("MACs %s -> %s, want %s -> %s", f.SrcMAC, f.DstMAC, out.MAC, out.GWMAC))
	}
	if f.TTL != 64 || f.TOS != 0 || (f.Src.Addr().Is4() && (f.IPID != 0 || !f.DF)) {
		probs = append(probs, fmt.Sprintf("IP header ttl %d tos %d id %d df %v, want 64 0 0 true", f.TTL, f.TOS, f.IPID, f.DF))
	}
	return strings.Join(probs, "; ")
}

// diffPair names an outcome pair for the tallies.
func diffPair(r diffResult) string {
	var x string
	switch {
	case r.forwarded():
		x = "forward"
	case r.Verdict == dptest.XDPPass:
		x = r.Reason
	case r.Verdict == dptest.XDPDrop:
		x = "drop " + r.Reason
	default:
		x = diffVerdictName(r.Verdict)
	}
	g := r.Go.Action.String()
	if r.Go.Action != sipproxy.ActionForward {
		g += " " + r.Go.Reason
	}
	return x + " / " + g
}

func diffVerdictName(v uint32) string {
	return [...]string{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "XDP_?"}[min(v, 5)]
}

// check fails t when the paths disagree.
func (h *diffHarness) check(t testing.TB, in diffInput, r diffResult) {
	t.Helper()
	if r.Problem == "" {
		return
	}
	t.Errorf("%s: %s\n%s", in.Name, r.Problem, diffReport(in, r))
}

// diffReport shows a comparison for a human: the setup, the input, what
// each path did, and the two outputs as a line diff.
func diffReport(in diffInput, r diffResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  setup: %s, from %s\n", in.Setup, in.Src)
	fmt.Fprintf(&b, "  fast path: %s", diffVerdictName(r.Verdict))
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	if r.forwarded() {
		if r.FrameErr != nil {
			fmt.Fprintf(&b, ", frame: %v", r.FrameErr)
		} else {
			fmt.Fprintf(&b, " %s -> %s", r.Frame.Src, r.Frame.Dst)
		}
	}
	fmt.Fprintf(&b, "\n  slow path: %s", r.Go.Action)
	if r.Go.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Go.Reason)
	}
	if r.Go.Action == sipproxy.ActionForward {
		fmt.Fprintf(&b, " to %s", r.Go.Dst)
	}
	if r.Go.Action == sipproxy.ActionReply {
		fmt.Fprintf(&b, " %d", r.Go.Code)
	}
	var m sipmsg.Msg
	if err := sipmsg.Parse(in.In, &m); err != nil {
		fmt.Fprintf(&b, "; sipmsg: %v", err)
	}
	b.WriteString("\n  input:\n")
	b.WriteString(diffQuoteLines(in.In, "    "))
	var xdp []byte
	if r.forwarded() && r.FrameErr == nil {
		xdp = r.Frame.Payload
	}
	switch {
	case xdp != nil && r.Go.Out != nil:
		b.WriteString("  output (- fast path, + slow path):\n")
		b.WriteString(diffLines(xdp, r.Go.Out, "    "))
	case xdp != nil:
		b.WriteString("  fast path output:\n")
		b.WriteString(diffQuoteLines(xdp, "    "))
	case r.Go.Out != nil:
		b.WriteString("  slow path output:\n")
		b.WriteString(diffQuoteLines(r.Go.Out, "    "))
	}
	if r.forwarded() && r.FrameErr != nil {
		fmt.Fprintf(&b, "  fast path frame: %x\n", r.Raw)
	}
	return b.String()
}

// diffSplitLines splits a message after each LF, keeping the line ends.
func diffSplitLines(b []byte) []string {
	return strings.SplitAfter(string(b), "\n")
}

// diffQuoteLines prints b one line per line, Go-quoted so that CR, LF and
// any other byte are visible.
func diffQuoteLines(b []byte, indent string) string {
	var s strings.Builder
	for _, l := range diffSplitLines(b) {
		if l == "" {
			continue
		}
		s.WriteString(indent + "  " + strconv.Quote(l) + "\n")
	}
	return s.String()
}

// diffLines is a line diff of a and b (longest common subsequence; messages
// are short), lines Go-quoted.
func diffLines(a, b []byte, indent string) string {
	x, y := diffSplitLines(a), diffSplitLines(b)
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var s strings.Builder
	line := func(mark, l string) {
		if l != "" {
			s.WriteString(indent + mark + " " + strconv.Quote(l) + "\n")
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			line(" ", x[i])
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			line("+", y[j])
			j++
		default:
			line("-", x[i])
			i++
		}
	}
	return s.String()
}

// tally logs the outcome pairs and the verdict counts.
func (h *diffHarness) tally(t testing.TB, what string) {
	t.Helper()
	keys := make([]string, 0, len(h.pairs))
	total := 0
	for k, n := range h.pairs {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %5d  %s", h.pairs[k], k)
	}
	t.Logf("%s: %d comparisons (fast path / slow path):%s", what, total, b.String())
}

// The fuzzer's variants: the byte chooses family, algorithm, set, Record-Route
// and advertised address; the source is fixed per family.
var (
	diffLis4 = netip.MustParseAddrPort("192.0.2.10:5060")
	diffLis6 = netip.MustParseAddrPort("[2001:db8::10]:5060")
	diffSrc4 = netip.MustParseAddrPort("198.51.100.7:5060")
	diffSrc6 = netip.MustParseAddrPort("[2001:db8::7]:5060")

	diffAlgs = [...]int{0, 1, 2, 3, 8} // bits 1-3, modulo 5
	// diffSets (bits 4-5): the family's three backends, both families and
	// an inactive one, none up, a backend by name.
	diffSets4 = [...]int{2, 21, 3, 7}
	diffSets6 = [...]int{20, 21, 3, 7}
)

const (
	diffVariantIPv6        = 1 << 0
	diffVariantRecordRoute = 1 << 6
	diffVariantAdvertise   = 1 << 7 // advertise edge.example.com:5060
)

// diffVariantSetup returns the listener, rule and source a fuzz variant names.
func diffVariantSetup(v uint8) (diffSetup, netip.AddrPort) {
	s := diffSetup{Listener: diffLis4}
	src := diffSrc4
	sets := diffSets4
	if v&diffVariantIPv6 != 0 {
		s.Listener, src, sets = diffLis6, diffSrc6, diffSets6
	}
	s.Rule.Alg = diffAlgs[int(v>>1&7)%len(diffAlgs)]
	s.Rule.SetID = sets[v>>4&3]
	s.Rule.RecordRoute = v&diffVariantRecordRoute != 0
	if v&diffVariantAdvertise != 0 {
		s.Advertise = "edge.example.com:5060"
	}
	return s, src
}

// diffVariantOf returns the variant closest to a case's setup (family,
// algorithm, Record-Route, advertised name), for seeding the fuzzer.
func diffVariantOf(s diffSetup) uint8 {
	var v uint8
	if s.Listener.Addr().Is6() {
		v |= diffVariantIPv6
	}
	for i, a := range diffAlgs {
		if a == s.Rule.Alg {
			v |= uint8(i) << 1
		}
	}
	if s.Rule.RecordRoute {
		v |= diffVariantRecordRoute
	}
	if s.Advertise != "" {
		v |= diffVariantAdvertise
	}
	return v
}

// diffADV is the ADV text of a setup (advertised host:port, else IP:PORT).
func diffADV(s diffSetup) string {
	if s.Advertise != "" {
		return s.Advertise
	}
	return s.Listener.String()
}

// diffAsOurResponse puts our Via (ADV) on top of a response; a request comes
// back unchanged.
func diffAsOurResponse(in []byte, adv string) []byte {
	if len(in) < 8 || !strings.EqualFold(string(in[:8]), "SIP/2.0 ") {
		return in
	}
	i := bytes.Index(in, []byte("\r\n"))
	if i < 0 {
		return in
	}
	out := append([]byte(nil), in[:i+2]...)
	out = append(out, "Via: SIP/2.0/UDP "+adv+";branch=z9hG4bKd1ff0urs\r\n"...)
	return append(out, in[i+2:]...)
}

// diffCaseSetup is a fixture's listener and rule.
func diffCaseSetup(c fixtures.Case) diffSetup {
	return diffSetup{Listener: c.Listener, Advertise: c.Advertise, Rule: c.Rule, OwnsTransaction: c.OwnsTransaction,
		HashFallback: c.HashFallback}
}

// diffOtherFamily moves a fixture to the other IP family: the listener, the
// source and the rule's set change family, and the listener advertises the
// fixture's ADV, so that the Vias and Routes naming us still do.
func diffOtherFamily(c fixtures.Case) (diffSetup, netip.AddrPort) {
	s := diffCaseSetup(c)
	s.Advertise = diffADV(s)
	swap := map[int]int{1: 6, 6: 1, 2: 20, 20: 2}
	if id, ok := swap[s.Rule.SetID]; ok {
		s.Rule.SetID = id
	}
	if s.Listener.Addr().Is4() {
		s.Listener = netip.AddrPortFrom(diffLis6.Addr(), s.Listener.Port())
	} else {
		s.Listener = netip.AddrPortFrom(diffLis4.Addr(), s.Listener.Port())
	}
	return s, diffOtherFamilyAddr(c.Src)
}

// diffOtherFamilyAddr maps a source to the other family, keeping its side of
// the topology (10.0.0.x ↔ 2001:db8::2x backends, clients elsewhere).
func diffOtherFamilyAddr(a netip.AddrPort) netip.AddrPort {
	ip := a.Addr()
	if ip.Is4() {
		b := ip.As4()
		if b[0] == 10 {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 0x20 | b[3]&0x0f}), a.Port())
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 15: b[3]}), a.Port())
	}
	b := ip.As16()
	if diffBackends[1].Contains(ip) {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 10 + b[15]&0x0f}), a.Port())
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, b[15]}), a.Port())
}

// diffFixtureCases loads tests/fixtures.
func diffFixtureCases(t testing.TB) []fixtures.Case {
	t.Helper()
	cases, err := fixtures.Load(fixtures.Dir())
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// diffReproducers loads the reproducers of reported disagreements.
func diffReproducers(t testing.TB) []fixtures.Case {
	t.Helper()
	cases, err := fixtures.Load(filepath.Join("testdata", "differential"))
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// diffTortureFiles are the RFC 4475 messages, valid and invalid.
func diffTortureFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "userspace", "sipmsg", "testdata", "torture", "*", "*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("torture corpus: %v (%d files)", err, len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f)] = b
	}
	return out
}

func diffSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestDifferentialFixtures compares the paths on every fixture, as written
// and moved to the other IP family.
func TestDifferentialFixtures(t *testing.T) {
	h := newDiffHarness(t)
	cases := diffFixtureCases(t)
	var fwd, pass, drop int
	for _, c := range cases {
		other, otherSrc := diffOtherFamily(c)
		for _, in := range []diffInput{
			{Name: filepath.Base(c.File), Setup: diffCaseSetup(c), Src: c.Src, In: c.In},
			{Name: filepath.Base(c.File) + " (other family)", Setup: other, Src: otherSrc, In: c.In},
		} {
			t.Run(in.Name, func(t *testing.T) {
				r := h.compare(t, in)
				switch {
				case r.forwarded():
					fwd++
				case r.Verdict == dptest.XDPPass:
					pass++
				case r.Verdict == dptest.XDPDrop:
					drop++
				}
				h.check(t, in, r)
			})
		}
	}
	t.Logf("%d fixtures, %d runs: %d forwarded, %d passed, %d dropped", len(cases), 2*len(cases), fwd, pass, drop)
	h.tally(t, "fixtures")
}

// diffHashCall is an INVITE whose Call-ID, From, To and Request-URI users
// all vary with i, so each hash algorithm sees a different key per call.
func diffHashCall(i int) []byte {
	return []byte(fmt.Sprintf("INVITE sip:callee%d@biloxi.example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKfb%d\r\n"+
		"Max-Forwards: 70\r\n"+
		"To: <sip:to%d@biloxi.example.com>\r\n"+
		"From: <sip:from%d@atlanta.example.com>;tag=%d\r\n"+
		"Call-ID: %x-%d@pc33.atlanta.example.com\r\n"+
		"CSeq: 1 INVITE\r\n"+
		"Contact: <sip:caller@198.51.100.7:5060>\r\n"+
		"Content-Length: 0\r\n\r\n", i, i, i*7, i*13, i, uint64(i)*0x9e3779b97f4a7c15, i))
}

// TestDifferentialHashFallback compares the paths pick by pick with
// destinations down, in both ds_hash_fallback modes: every hash algorithm
// the fast path runs (0-3) on sets with one of six down (fixtures' set 4),
// three of six (22), two of sixteen (23) and one of four IPv6 (24), then
// again after a state change on each path (another destination of set 4
// goes down: the live tables follow). Each call must go to the same
// destination with the same bytes; in spread mode, the calls that spread
// moves away from next's neighbour must be there (the test is not vacuous).
// After the state change, no call of set 4 whose destination is still up
// may have moved, in either mode.
func TestDifferentialHashFallback(t *testing.T) {
	h := newDiffHarness(t)
	const calls = 300
	type run struct {
		set  int
		lis  netip.AddrPort
		src  netip.AddrPort
		note string
	}
	runs := []run{
		{4, diffLis4, diffSrc4, "1 of 6 down"},
		{22, diffLis4, diffSrc4, "3 of 6 down"},
		{23, diffLis4, diffSrc4, "2 of 16 down"},
		{24, diffLis6, diffSrc6, "1 of 4 down, IPv6"},
	}
	// picks[set][alg][fallback]: each call's destination, for the check
	// after the state change.
	type pickKey struct {
		set, alg int
		fb       dispatch.HashFallback
	}
	compareAll := func(stage string) map[pickKey][]netip.AddrPort {
		picks := map[pickKey][]netip.AddrPort{}
		for _, r := range runs {
			for _, alg := range []int{0, 1, 2, 3} {
				dst := map[dispatch.HashFallback][]netip.AddrPort{}
				for _, fb := range []dispatch.HashFallback{dispatch.FallbackNext, dispatch.FallbackSpread} {
					s := diffSetup{Listener: r.lis, Rule: fixtures.Rule{SetID: r.set, Alg: alg}, HashFallback: fb}
					for i := 0; i < calls; i++ {
						in := diffInput{Name: fmt.Sprintf("%s set %d (%s) alg %d %s call %d", stage, r.set, r.note, alg, fb, i),
							Setup: s, Src: r.src, In: diffHashCall(i)}
						res := h.compare(t, in)
						h.check(t, in, res)
						if !res.forwarded() {
							t.Fatalf("%s: not forwarded by the fast path (%s): every call here must be", in.Name, res.Reason)
						}
						dst[fb] = append(dst[fb], res.Go.Dst)
					}
					picks[pickKey{r.set, alg, fb}] = dst[fb]
				}
				moved, spreadTo := 0, map[netip.AddrPort]bool{}
				for i := range dst[dispatch.FallbackNext] {
					if dst[dispatch.FallbackNext][i] != dst[dispatch.FallbackSpread][i] {
						moved++
						spreadTo[dst[dispatch.FallbackSpread][i]] = true
					}
				}
				// A down start index takes about calls*down/n calls, of
				// which spread moves all but the ones it gives the neighbour.
				if moved < calls/20 || len(spreadTo) < 2 {
					t.Errorf("%s set %d (%s) alg %d: spread moved %d of %d calls, to %d destinations: want the fallback exercised", stage, r.set, r.note, alg, moved, calls, len(spreadTo))
				}
				t.Logf("%s set %d (%s) alg %d: %d of %d calls go elsewhere with spread, to %d destinations; both paths agree", stage, r.set, r.note, alg, moved, calls, len(spreadTo))
			}
		}
		return picks
	}
	before := compareAll("as loaded")
	// Another destination of set 4 (index 4, 10.0.0.52) goes down on both
	// dispatchers; the program gets the new tables with the next sync.
	for _, d := range h.disps {
		if err := d.SetState(4, "sip:10.0.0.52:5060", "i"); err != nil {
			t.Fatal(err)
		}
	}
	h.sync(t, h.synced)
	runs = runs[:1]
	runs[0].note = "2 of 6 down after set_state"
	after := compareAll("after set_state")
	// Calls in progress keep their destination while it is up (issue 8
	// item 5): in both modes, a call of set 4 whose destination was not
	// 10.0.0.52 goes where it went before, the calls spread re-placed
	// included (both paths agree on every pick, so Go's picks stand for
	// the program's).
	gone := netip.MustParseAddrPort("10.0.0.52:5060")
	for _, fb := range []dispatch.HashFallback{dispatch.FallbackNext, dispatch.FallbackSpread} {
		for _, alg := range []int{0, 1, 2, 3} {
			k := pickKey{4, alg, fb}
			kept, moved := 0, 0
			for i, was := range before[k] {
				if was == gone {
					continue
				}
				if now := after[k][i]; now != was {
					moved++
					t.Errorf("set 4 alg %d %s call %d: went to %v, which is still up; after 10.0.0.52 went down it goes to %v", alg, fb, i, was, now)
				} else {
					kept++
				}
			}
			t.Logf("set 4 alg %d %s: %d calls on destinations still up kept them, %d moved", alg, fb, kept, moved)
		}
	}
	h.tally(t, "hash fallback")
}

// TestDifferentialTorture compares the paths on the RFC 4475 torture
// messages: each from a fixed source to a listener of each family, under
// every hash algorithm, with Record-Route; a response gets our Via on top
// (it would be dropped as not ours otherwise).
func TestDifferentialTorture(t *testing.T) {
	h := newDiffHarness(t)
	files := diffTortureFiles(t)
	type counts struct{ fwd, pass, drop int }
	per := map[string]*counts{}
	for _, name := range diffSortedKeys(files) {
		per[name] = &counts{}
		for fam := uint8(0); fam < 2; fam++ {
			for a := range diffAlgs {
				s, src := diffVariantSetup(fam | uint8(a)<<1 | diffVariantRecordRoute)
				in := diffInput{Name: fmt.Sprintf("%s %s alg %d", name, s.Listener, s.Rule.Alg), Setup: s, Src: src,
					In: diffAsOurResponse(files[name], diffADV(s))}
				t.Run(in.Name, func(t *testing.T) {
					r := h.compare(t, in)
					switch {
					case r.forwarded():
						per[name].fwd++
					case r.Verdict == dptest.XDPPass:
						per[name].pass++
					case r.Verdict == dptest.XDPDrop:
						per[name].drop++
					}
					h.check(t, in, r)
				})
			}
		}
	}
	var sum counts
	var lines strings.Builder
	for _, name := range diffSortedKeys(per) {
		c := per[name]
		sum.fwd += c.fwd
		sum.pass += c.pass
		sum.drop += c.drop
		fmt.Fprintf(&lines, "\n  %-28s forwarded %2d passed %2d dropped %2d", name, c.fwd, c.pass, c.drop)
	}
	t.Logf("%d torture messages × %d setups: %d forwarded, %d passed, %d dropped%s",
		len(files), 2*len(diffAlgs), sum.fwd, sum.pass, sum.drop, lines.String())
	h.tally(t, "torture")
}

// TestDifferentialReproducers runs the reproducers of reported
// disagreements (testdata/differential/cases, fixture format) with their own
// setup: each fails until its class is fixed. The slow path must still do
// what each file says (action, reason, dst, out), so the files stay true
// records.
func TestDifferentialReproducers(t *testing.T) {
	h := newDiffHarness(t)
	for _, c := range diffReproducers(t) {
		in := diffInput{Name: filepath.Base(c.File), Setup: diffCaseSetup(c), Src: c.Src, In: c.In}
		t.Run(in.Name, func(t *testing.T) {
			r := h.compare(t, in)
			g := r.Go
			switch {
			case g.Action.String() != c.Action:
				t.Errorf("%s: the slow path's action is %s (%s), the file says %s", in.Name, g.Action, g.Reason, c.Action)
			case c.Reason != "" && g.Reason != c.Reason:
				t.Errorf("%s: the slow path's reason is %q, the file says %q", in.Name, g.Reason, c.Reason)
			case c.Action == fixtures.ActionForward && (g.Dst != c.Dst || !bytes.Equal(g.Out, c.Out)):
				t.Errorf("%s: the slow path forwards to %s, the file says %s:\n%s", in.Name, g.Dst, c.Dst, diffLines(c.Out, g.Out, "    "))
			}
			h.check(t, in, r)
		})
	}
	h.tally(t, "reproducers")
}

// diffMutationBytes are the bytes a mutation writes: the ones SIP syntax turns on.
var diffMutationBytes = []byte(" \t\r\n,;:=\"<>@[]?/\\%.-_x0Z\x00\x7f\xff")

// diffMutate changes one to three bytes of in (replace, insert or delete) in its
// header section, or not at all.
func diffMutate(r *rand.Rand, in []byte) []byte {
	end := bytes.Index(in, []byte("\r\n\r\n"))
	if end < 1 {
		end = len(in)
	}
	out := append([]byte(nil), in...)
	for n := 1 + r.IntN(3); n > 0; n-- {
		if end < 1 {
			break
		}
		i := r.IntN(end)
		c := diffMutationBytes[r.IntN(len(diffMutationBytes))]
		switch r.IntN(3) {
		case 0:
			out[i] = c
		case 1:
			out = append(out[:i], append([]byte{c}, out[i:]...)...)
			end++
		default:
			if end > 1 {
				out = append(out[:i], out[i+1:]...)
				end--
			}
		}
	}
	return out
}

// TestDifferentialMutations compares the paths on the fixtures' messages
// mutated a few bytes at a time (fixed seed), each with its fixture's setup.
// SIPEDGE_MUTATIONS sets the number of mutations per case (default 40).
func TestDifferentialMutations(t *testing.T) {
	h := newDiffHarness(t)
	per := 40
	if v, err := strconv.Atoi(os.Getenv("SIPEDGE_MUTATIONS")); err == nil {
		per = v
	}
	r := rand.New(rand.NewPCG(7, 11))
	forwarded, failures := 0, 0
	for _, c := range diffFixtureCases(t) {
		for i := 0; i < per; i++ {
			in := diffInput{Name: fmt.Sprintf("%s mutation %d", filepath.Base(c.File), i), Setup: diffCaseSetup(c), Src: c.Src,
				In: diffMutate(r, c.In)}
			res := h.compare(t, in)
			if res.forwarded() {
				forwarded++
			}
			if res.Problem != "" {
				failures++
				if failures <= 10 {
					h.check(t, in, res)
				}
			}
		}
	}
	t.Logf("%d mutations forwarded by the fast path, %d disagreements", forwarded, failures)
	h.tally(t, "mutations")
	if failures > 10 {
		t.Errorf("%d disagreements (the first 10 shown)", failures)
	}
}

// FuzzDifferential compares the paths on arbitrary SIP payloads. The
// variant byte chooses the listener's family, the algorithm (0-3, 8), the
// set, Record-Route and an advertised name (diffVariantSetup). Seeds: the
// fixtures, the torture messages (responses with our Via on top), the
// reproducers (testdata/differential/cases) and the crafted corner cases of
// the contract in testdata/fuzz/FuzzDifferential, where the fuzzer also
// writes what it finds.
//
//	go test -run '^$' -fuzz FuzzDifferential -fuzztime 10m ./tests/
func FuzzDifferential(f *testing.F) {
	for _, c := range diffFixtureCases(f) {
		f.Add(c.In, diffVariantOf(diffCaseSetup(c)))
	}
	files := diffTortureFiles(f)
	for _, name := range diffSortedKeys(files) {
		for _, fam := range []uint8{0, diffVariantIPv6} {
			s, _ := diffVariantSetup(fam | diffVariantRecordRoute)
			f.Add(diffAsOurResponse(files[name], diffADV(s)), fam|diffVariantRecordRoute)
		}
	}
	for _, c := range diffReproducers(f) {
		f.Add(c.In, diffVariantOf(diffCaseSetup(c)))
	}
	h := newDiffHarness(f)
	f.Fuzz(func(t *testing.T, in []byte, variant uint8) {
		s, src := diffVariantSetup(variant)
		d := diffInput{Name: fmt.Sprintf("variant %#02x", variant), Setup: s, Src: src, In: in}
		h.check(t, d, h.compare(t, d))
	})
}
