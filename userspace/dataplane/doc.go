// Package dataplane loads, pins and attaches the sipedge XDP fast path
// (bpf/xdp_sip.c, compiled by bpf2go into xdpsip_bpfel.{go,o}) and keeps its
// maps in step with the agent: listeners with their rules and ADV text, and
// the destination sets of a dispatch.Snapshot, swapped in atomically, and
// the algorithm 10 loads of the agent's Call-ID table (callload.go). It also
// reads the program's per-CPU counters (pass reasons by name) and its ring
// buffer of dialog events, which carry, when the agent asks (EventCopies),
// the INVITEs and their 2xx replies as received.
//
// Load also prepares the host, in one place (host.go): it mounts a BPF
// filesystem at the pin root when none is mounted there, as Cilium's agent
// does, and raises RLIMIT_MEMLOCK where the kernel still charges maps to it;
// what it cannot fix it reports as a one-line *HostError with the command
// that fixes it. It lives here, not in a package of its own, because only
// the data plane needs it and this package is the home of cilium/ebpf.
//
// A Dataplane owns the loaded objects: Close releases them (pinned maps
// survive in bpffs; an attached link detaches when it is closed). Nothing
// here keeps global state; lifetimes follow the contexts and Close calls the
// caller makes. docs/fastpath.md describes the program and the maps.
package dataplane
