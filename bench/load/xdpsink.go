package load

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// XDPSink counts, in an XDP program on a backend's interface, the IPv4 UDP
// datagrams to one port (the backend's SIP port) and drops them, or passes
// them up to the stack (SetPass) for a check with a socket Sink. Counting
// and dropping costs a few tens of nanoseconds per datagram, so on a small
// machine the backend side never limits what the proxy can deliver.
// Anything else (other ports, ARP, IPv6) is passed.
//
// One program serves any number of interfaces, in any namespaces: Attach
// from a thread in the interface's namespace (tests/netns NS.Do).
type XDPSink struct {
	prog    *ebpf.Program
	counts  *ebpf.Map // per-CPU {packets, bytes}
	verdict *ebpf.Map // [0] = XDP_DROP or XDP_PASS
	links   []link.Link
}

// XDP verdicts.
const (
	xdpDrop = 1
	xdpPass = 2
)

type sinkCount struct {
	Packets uint64
	Bytes   uint64
}

// NewXDPSink loads the program for UDP destination port port (IPv4
// without IP options).
func NewXDPSink(port uint16) (*XDPSink, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{Name: "sink_counts", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("load: xdp sink counters: %w", err)
	}
	verdict, err := ebpf.NewMap(&ebpf.MapSpec{Name: "sink_verdict", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		counts.Close()
		return nil, fmt.Errorf("load: xdp sink verdict: %w", err)
	}
	s := &XDPSink{counts: counts, verdict: verdict}
	if err := s.SetPass(false); err != nil {
		s.Close()
		return nil, err
	}
	// The port as the program reads it: a big-endian u16 loaded as a
	// little-endian one (this is only built for little-endian hosts).
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], port)
	wirePort := int32(binary.LittleEndian.Uint16(be[:]))
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // ethertype
		asm.JNE.Imm(asm.R5, 0x0008, "pass"),       // ETH_P_IP on the wire
		asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte), // version, IHL
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 23, asm.Byte), // protocol
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 36, asm.Half), // UDP destination port
		asm.JNE.Imm(asm.R5, wirePort, "pass"),
		asm.Mov.Reg(asm.R7, asm.R3),
		asm.Sub.Reg(asm.R7, asm.R2), // frame length
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, counts.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R7),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, verdict.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Imm(asm.R1, xdpDrop),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.Mov.Reg(asm.R0, asm.R1).WithSymbol("out"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
	s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_sink", Type: ebpf.XDP, Instructions: insns, License: "GPL"})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("load: xdp sink program: %w", err)
	}
	return s, nil
}

// Attach attaches the program in native (driver) mode to the interface
// with index ifindex in the calling thread's network namespace. A veth
// with an XDP program runs NAPI, so frames redirected into its peer by an
// XDP program arrive (xdp-notes.md §8).
func (s *XDPSink) Attach(ifindex int) error {
	l, err := link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("load: attach xdp sink to ifindex %d: %w", ifindex, err)
	}
	s.links = append(s.links, l)
	return nil
}

// SetPass makes the program pass counted datagrams up to the stack (true)
// or drop them (false, the default).
func (s *XDPSink) SetPass(pass bool) error {
	v := uint32(xdpDrop)
	if pass {
		v = xdpPass
	}
	if err := s.verdict.Put(uint32(0), v); err != nil {
		return fmt.Errorf("load: xdp sink verdict: %w", err)
	}
	return nil
}

// Count returns the datagrams and bytes (Ethernet frames) counted so far,
// summed over CPUs and interfaces.
func (s *XDPSink) Count() (packets, bytes uint64, err error) {
	var per []sinkCount
	if err := s.counts.Lookup(uint32(0), &per); err != nil {
		return 0, 0, fmt.Errorf("load: xdp sink counters: %w", err)
	}
	for _, c := range per {
		packets += c.Packets
		bytes += c.Bytes
	}
	return packets, bytes, nil
}

// Program is the loaded program (for its ID and run statistics).
func (s *XDPSink) Program() *ebpf.Program { return s.prog }

// Close detaches from every interface and frees the program and maps.
func (s *XDPSink) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	if s.prog != nil {
		errs = append(errs, s.prog.Close())
	}
	errs = append(errs, s.counts.Close(), s.verdict.Close())
	return errors.Join(errs...)
}
