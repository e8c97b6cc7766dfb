// Package dataplane loads, pins and attaches the sipedge XDP fast path
// (bpf/xdp_sip.c, compiled by bpf2go into xdpsip_bpfel.{go,o}) and keeps its
// maps in step with the agent: listeners with their rules and ADV text, and
// the destination sets of a dispatch.Snapshot, swapped in atomically. It also
// reads the program's per-CPU counters (pass reasons by name) and its ring
// buffer of dialog events.
//
// A Dataplane owns the loaded objects: Close releases them (pinned maps
// survive in bpffs; an attached link detaches when it is closed). Nothing
// here keeps global state; lifetimes follow the contexts and Close calls the
// caller makes. docs/fastpath.md describes the program and the maps.
package dataplane
