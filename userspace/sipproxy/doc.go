// Package sipproxy is sipedge's slow path: the stateless forwarding
// contract of docs/forwarding-contract.md applied to raw UDP datagrams, and
// failover mode's transactions (docs/slowpath.md).
//
// The contract lives in the Forwarder (forward.go and the files named
// after each step: request.go, response.go, via.go, branch.go, route.go,
// maxfwd.go; alg 7's templates are package pvar's). Forwarder.Process takes the datagram as it came off
// the socket and returns what to do with it: forward these bytes to that
// address, reply with a status code, drop it, or hand it to the stateful
// layer. It edits the message as a list of byte insertions and deletions on
// the original buffer, never by re-serialising parsed headers, because the
// XDP program emits the same bytes and the differential test compares them.
// Package sipmsg scans the message without allocating.
//
// The Proxy (proxy.go) owns the listener sockets and reads them itself
// (socket.go): recvmsg into a buffer larger than any UDP payload, so a
// datagram is read whole and a cut one is seen (MSG_TRUNC) and counted;
// the socket's kernel drop counter comes with each datagram (SO_RXQ_OVFL);
// empty and NUL datagrams are counted before the contract. sipgo's
// transport layer, used before, read 32,768 bytes at most, reported neither
// truncation nor control messages and dropped empty datagrams unseen; a
// read loop of our own is the simplest way to see all of that.
//
// Failover mode (failover.go, stateful.go, timers.go) runs its INVITE
// server and client transactions on the raw datagrams, all timers served
// by one goroutine from one heap, in a table with a cap; sipgo builds the
// INVITE sent to each destination. Per-message log lines go through one
// rate limiter (loglimit.go).
package sipproxy
