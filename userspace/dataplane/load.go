package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// DefaultPinDir is where the agent pins the fast path's maps, so that
// operators can read them with `bpftool map dump pinned /sys/fs/bpf/sipedge/NAME`.
// Its parent, /sys/fs/bpf, is the pin root: Load mounts a BPF filesystem
// there when none is (host.go).
const DefaultPinDir = "/sys/fs/bpf/sipedge"

// Options configure Load.
type Options struct {
	// PinDir is the bpffs folder the maps are pinned in; empty means
	// DefaultPinDir. Its parent is the pin root, where Load mounts a BPF
	// filesystem when none is mounted. Ignored with NoPin.
	PinDir string
	// NoPin loads the maps without pinning them (tests, benchmarks).
	NoPin bool
	// TTL is the IPv4 TTL / IPv6 hop limit of forwarded packets; 0 means 64,
	// what the kernel gives packets of the slow path's sockets.
	TTL uint8
	// NoEvents stops the program from writing ring-buffer events (nobody
	// reads them).
	NoEvents bool
	// EventCopies makes the events of INVITE requests and of 2xx replies
	// to INVITE carry the SIP message as received (Event.Msg), for a
	// dialog tracker; every other event stays a header. Off, no event
	// carries a copy.
	EventCopies bool
	// EventsRingBytes sizes the event ring buffer (a power of two, at
	// least a page); 0 keeps the program's EVENTS_RING_BYTES, or
	// DefaultCopyRingBytes with EventCopies. Tests use a small ring to
	// fill it.
	EventsRingBytes uint32
	// ObjectPath loads this build of bpf/xdp_sip.c instead of the embedded
	// one (debug builds, experiments). Its maps and knobs must match.
	ObjectPath string
	// Logger gets the warning when pinned maps of another layout are
	// replaced; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultCopyRingBytes is the event ring's size with EventCopies, eight
// times the program's 256 KiB: a call's seven events take about 1.9 KB of
// ring with its INVITE and 200 copied (two copies of 700-800 bytes and
// five 64-byte headers), four times the 448 bytes of seven headers, so the
// ring holds twice as many calls' events as the compact ring (about 1,100)
// before a reader that falls behind loses any.
const DefaultCopyRingBytes = 2 << 20

// pinnedMaps are the maps pinned under PinDir: everything an operator may
// inspect. The per-CPU scratch map holds no state worth reading; call_dst
// is not pinned either: its load slots are this agent's (an agent that
// starts again may number them otherwise), so a new agent starts with none
// and its slow path places the calls of the old one, as it would without
// the fast path.
var pinnedMaps = []string{
	"listeners", "dst_sets", "active_half", "set_cursor", "limit_block", "limit_active",
	"pass_count", "drop_count", "listener_stats", "dst_stats", "events", "event_lost",
	"dst_load",
}

// Dataplane is the loaded XDP program and its maps.
type Dataplane struct {
	objs   xdpsipObjects
	pinDir string // "" when not pinned

	passNames []string // enum pass_reason, by value
	dropNames []string // enum drop_reason, by value

	// lmu guards limit_block's and limit_active's writers (limits.go).
	lmu               sync.Mutex
	limitCount        [numLimitKinds]int // limit_block's entries by kind
	limitKindsWritten int64              // limit_active's value; -1: unknown

	mu       sync.Mutex // guards everything below (map writers)
	slots    map[int]uint32
	lastFlip time.Time
	last     syncState
	loads    loadSlots
	// loadsFrom reads the alg 10 loads that count (SetCallLoads); nil:
	// dst_load stays as the program keeps it.
	loadsFrom func(set int, duid string) int64
}

// Load prepares the host (host.go: a BPF filesystem at the pin root,
// RLIMIT_MEMLOCK), loads the program with its knobs set, pins its maps
// (unless NoPin) and returns it; it attaches nothing. Maps already pinned by
// an earlier agent are reused; when one's layout no longer matches the
// program, all pins are replaced, with a warning (their counters restart).
// What the host lacks and the agent cannot fix is a *HostError.
func Load(opts Options) (*Dataplane, error) {
	pinDir := ""
	if !opts.NoPin {
		pinDir = opts.PinDir
		if pinDir == "" {
			pinDir = DefaultPinDir
		}
	}
	if err := prepareHost(pinDir); err != nil {
		return nil, err
	}
	spec, err := loadXdpsip()
	if opts.ObjectPath != "" {
		spec, err = ebpf.LoadCollectionSpec(opts.ObjectPath)
	}
	if err != nil {
		return nil, fmt.Errorf("load xdp spec: %w", err)
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = 64
	}
	events := uint8(1)
	if opts.NoEvents {
		events = 0
	}
	copies := uint8(0)
	if opts.EventCopies {
		copies = 1
	}
	for name, v := range map[string]uint8{"cfg_ip_ttl": ttl, "cfg_events": events, "cfg_events_copy": copies} {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("load xdp spec: no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	ring, ok := spec.Maps["events"]
	if !ok {
		return nil, fmt.Errorf("load xdp spec: no map events")
	}
	switch {
	case opts.EventsRingBytes != 0:
		ring.MaxEntries = opts.EventsRingBytes
	case opts.EventCopies:
		ring.MaxEntries = DefaultCopyRingBytes
	}
	// The program wakes the reader from an eighth of the ring pending
	// (bpf/events.h): early enough that a burst never fills the ring
	// while the reader sleeps, late enough to batch.
	vs, ok := spec.Variables["cfg_events_wake_bytes"]
	if !ok {
		return nil, fmt.Errorf("load xdp spec: no variable cfg_events_wake_bytes")
	}
	if err := vs.Set(ring.MaxEntries / 8); err != nil {
		return nil, fmt.Errorf("set cfg_events_wake_bytes: %w", err)
	}
	d := &Dataplane{slots: map[int]uint32{}, limitKindsWritten: -1}
	if d.passNames, err = enumNames(spec.Types, "pass_reason"); err != nil {
		return nil, err
	}
	if d.dropNames, err = enumNames(spec.Types, "drop_reason"); err != nil {
		return nil, err
	}

	var copts ebpf.CollectionOptions
	if pinDir != "" {
		d.pinDir = pinDir
		if err := os.MkdirAll(d.pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("create pin dir: %w", err)
		}
		for _, name := range pinnedMaps {
			ms, ok := spec.Maps[name]
			if !ok {
				return nil, fmt.Errorf("load xdp spec: no map %s", name)
			}
			ms.Pinning = ebpf.PinByName
		}
		copts.Maps.PinPath = d.pinDir
	}

	err = spec.LoadAndAssign(&d.objs, &copts)
	if errors.Is(err, ebpf.ErrMapIncompatible) && d.pinDir != "" {
		// An older agent pinned maps of another layout: they hold counters
		// and tables this agent rewrites anyway. Replace them, and say so:
		// the counters an operator reads restart from zero.
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("pinned maps of another layout replaced; their counters restart", "pins", d.pinDir, "reason", err)
		for _, name := range pinnedMaps {
			if rerr := os.Remove(filepath.Join(d.pinDir, name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return nil, fmt.Errorf("remove stale pin %s: %w", name, rerr)
			}
		}
		err = spec.LoadAndAssign(&d.objs, &copts)
	}
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load xdp program: %w (verifier log tail: %v)", err, tail(verr.Log, 20))
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	return d, nil
}

// Close releases the program and the maps (pins stay).
func (d *Dataplane) Close() error {
	if err := d.objs.Close(); err != nil {
		return fmt.Errorf("close xdp objects: %w", err)
	}
	return nil
}

// Program returns the XDP program, for attaching or BPF_PROG_TEST_RUN.
func (d *Dataplane) Program() *ebpf.Program { return d.objs.XdpSip }

// PinDir returns the folder the maps are pinned in, or "" when not pinned.
func (d *Dataplane) PinDir() string { return d.pinDir }

// enumNames reads an enum's constant names from the program's BTF, indexed
// by value (the C header is the only list of reasons).
func enumNames(types *btf.Spec, name string) ([]string, error) {
	var e *btf.Enum
	if err := types.TypeByName(name, &e); err != nil {
		return nil, fmt.Errorf("btf enum %s: %w", name, err)
	}
	var max uint64
	for _, v := range e.Values {
		max = maxU64(max, v.Value)
	}
	if max > 1024 {
		return nil, fmt.Errorf("btf enum %s: value %d out of range", name, max)
	}
	names := make([]string, max+1)
	for _, v := range e.Values {
		names[v.Value] = v.Name
	}
	return names, nil
}

func maxU64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}
