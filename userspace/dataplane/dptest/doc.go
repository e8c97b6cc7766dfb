// Package dptest runs the sipedge XDP program under BPF_PROG_TEST_RUN in a
// private network namespace with a fixed routed topology, so that its FIB
// lookups, MAC rewrites and XDP_TX/XDP_REDIRECT verdicts are deterministic,
// and builds and checks the Ethernet/IP/UDP frames around SIP payloads. It is
// for tests and benchmarks only (userspace/dataplane, bench/); every entry
// point needs root (testutil.NeedRoot).
//
// The namespace belongs to one locked OS thread that never returns to the Go
// scheduler: test runs and FIB lookups happen on it, and it (with its
// namespace and links) goes away when the Env is closed.
//
// Topology (both veth pairs live in the namespace, all links up):
//
//	cl0 02:5e:00:00:00:01  203.0.113.1/30  fd00:c1::1/64   client side; default routes
//	    gateway 203.0.113.2 / fd00:c1::2   02:5e:00:00:00:02 (permanent neighbour)
//	be0 02:5e:00:00:01:01  10.255.0.1/30   fd00:be::1/64   backend side; the Env's backend prefixes
//	    gateway 10.255.0.2 / fd00:be::2    02:5e:00:00:01:02 (permanent neighbour)
//
// IPv4 and IPv6 forwarding are on (the FIB lookup in input mode needs it).
package dptest
