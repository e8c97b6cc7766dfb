package dptest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/testutil"
)

// XDP verdicts.
const (
	XDPAborted  = 0
	XDPDrop     = 1
	XDPPass     = 2
	XDPTX       = 3
	XDPRedirect = 4
)

// Side is one of the two links of the topology.
type Side struct {
	Name    string // cl0 or be0
	Index   int    // ifindex inside the namespace
	MAC     net.HardwareAddr
	GWMAC   net.HardwareAddr
	GW4     netip.Addr
	GW6     netip.Addr
	Prefix4 netip.Prefix
	Prefix6 netip.Prefix
}

// The fixed topology.
var (
	clientSide = Side{
		Name: "cl0", MAC: mustMAC("02:5e:00:00:00:01"), GWMAC: mustMAC("02:5e:00:00:00:02"),
		GW4: netip.MustParseAddr("203.0.113.2"), GW6: netip.MustParseAddr("fd00:c1::2"),
		Prefix4: netip.MustParsePrefix("203.0.113.1/30"), Prefix6: netip.MustParsePrefix("fd00:c1::1/64"),
	}
	backendSide = Side{
		Name: "be0", MAC: mustMAC("02:5e:00:00:01:01"), GWMAC: mustMAC("02:5e:00:00:01:02"),
		GW4: netip.MustParseAddr("10.255.0.2"), GW6: netip.MustParseAddr("fd00:be::2"),
		Prefix4: netip.MustParsePrefix("10.255.0.1/30"), Prefix6: netip.MustParsePrefix("fd00:be::1/64"),
	}
)

// Env is a loaded Dataplane and the namespace its test runs happen in.
type Env struct {
	DP      *dataplane.Dataplane
	Client  Side
	Backend Side

	backends []netip.Prefix
	fns      chan func()
}

// NewEnv loads the program (maps not pinned), builds the namespace and routes
// the backend prefixes through be0 (everything else goes through cl0). It
// needs root; it closes everything in t.Cleanup.
func NewEnv(t testing.TB, backends ...netip.Prefix) *Env {
	t.Helper()
	return NewEnvWith(t, dataplane.Options{}, backends...)
}

// NewEnvWith is NewEnv with load options (NoPin is always set).
func NewEnvWith(t testing.TB, opts dataplane.Options, backends ...netip.Prefix) *Env {
	t.Helper()
	testutil.NeedRoot(t)
	opts.NoPin = true
	dp, err := dataplane.Load(opts)
	if err != nil {
		t.Fatalf("load dataplane: %v", err)
	}
	e := &Env{DP: dp, Client: clientSide, Backend: backendSide, backends: backends, fns: make(chan func())}
	errc := make(chan error, 1)
	go e.loop(errc)
	if err := <-errc; err != nil {
		dp.Close()
		t.Fatalf("network namespace: %v", err)
	}
	t.Cleanup(func() {
		close(e.fns)
		dp.Close()
	})
	return e
}

// loop owns the namespace thread. It never unlocks the thread: when the loop
// ends, the runtime ends the thread and the namespace goes with it.
func (e *Env) loop(errc chan<- error) {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		errc <- fmt.Errorf("unshare: %w", err)
		return
	}
	err := e.setup()
	errc <- err
	if err != nil {
		return
	}
	for fn := range e.fns {
		fn()
	}
}

// Do runs fn on the namespace thread and waits for it.
func (e *Env) Do(fn func()) {
	done := make(chan struct{})
	e.fns <- func() {
		defer close(done)
		fn()
	}
	<-done
}

func (e *Env) setup() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	for _, p := range []string{"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", p, err)
		}
	}
	for _, s := range []*Side{&e.Client, &e.Backend} {
		if err := addSide(s); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	for _, r := range []struct {
		dst  netip.Prefix
		side *Side
	}{
		{netip.MustParsePrefix("0.0.0.0/0"), &e.Client},
		{netip.MustParsePrefix("::/0"), &e.Client},
	} {
		if err := addRoute(r.dst, r.side); err != nil {
			return err
		}
	}
	for _, p := range e.backends {
		if err := addRoute(p, &e.Backend); err != nil {
			return err
		}
	}
	return nil
}

func addSide(s *Side) error {
	la := netlink.NewLinkAttrs()
	la.Name = s.Name
	la.HardwareAddr = s.MAC
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: s.Name + "p"}); err != nil {
		return fmt.Errorf("add veth: %w", err)
	}
	link, err := netlink.LinkByName(s.Name)
	if err != nil {
		return err
	}
	peer, err := netlink.LinkByName(s.Name + "p")
	if err != nil {
		return err
	}
	s.Index = link.Attrs().Index
	for _, l := range []netlink.Link{link, peer} {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	for _, p := range []netip.Prefix{s.Prefix4, s.Prefix6} {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrAdd(link, a); err != nil {
			return fmt.Errorf("addr %s: %w", p, err)
		}
	}
	for _, gw := range []netip.Addr{s.GW4, s.GW6} {
		fam := netlink.FAMILY_V4
		if gw.Is6() {
			fam = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: s.Index, Family: fam, State: netlink.NUD_PERMANENT, IP: gw.AsSlice(), HardwareAddr: s.GWMAC}
		if err := netlink.NeighSet(n); err != nil {
			return fmt.Errorf("neighbour %s: %w", gw, err)
		}
	}
	return nil
}

func addRoute(dst netip.Prefix, s *Side) error {
	gw := s.GW4
	if dst.Addr().Is6() {
		gw = s.GW6
	}
	r := &netlink.Route{
		LinkIndex: s.Index,
		Dst:       &net.IPNet{IP: dst.Masked().Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())},
		Gw:        gw.AsSlice(),
	}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s via %s: %w", dst, gw, err)
	}
	return nil
}

// SideOf returns the link an address is reached through.
func (e *Env) SideOf(a netip.Addr) *Side {
	for _, p := range e.backends {
		if p.Contains(a) {
			return &e.Backend
		}
	}
	return &e.Client
}

// xdpMD is struct xdp_md as BPF_PROG_TEST_RUN takes it.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Result is one run of the program.
type Result struct {
	Verdict uint32
	Out     []byte // the frame after the run
}

// Run runs the program once on frame as if it arrived on ingress.
func (e *Env) Run(frame []byte, ingress *Side) (Result, error) {
	var res Result
	var err error
	e.Do(func() {
		out := make([]byte, len(frame)+512)
		opts := &ebpf.RunOptions{
			Data:    frame,
			DataOut: out,
			Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ingress.Index)}, // data_end: the linear part is the whole frame
			Repeat:  1,
		}
		res.Verdict, err = e.DP.Program().Run(opts)
		res.Out = opts.DataOut
	})
	return res, err
}

// Time runs prog n times on frame (one run per BPF_PROG_TEST_RUN, so that
// every run sees the frame as given: with a repeat count the kernel feeds a
// rewritten packet back in) and returns the mean in-kernel time per run and
// the last verdict. The runs have no context: the ingress is the namespace's
// loopback, with forwarding on like the rest.
func (e *Env) Time(prog *ebpf.Program, frame []byte, n int) (time.Duration, uint32, error) {
	var total time.Duration
	var verdict uint32
	var err error
	e.Do(func() {
		for i := 0; i < n; i++ {
			var d time.Duration
			verdict, d, err = prog.Benchmark(frame, 1, nil)
			if err != nil {
				return
			}
			total += d
		}
	})
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, verdict, errors.New("no runs")
	}
	return total / time.Duration(n), verdict, nil
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
