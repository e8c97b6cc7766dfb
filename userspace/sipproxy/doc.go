// Package sipproxy is sipedge's slow path: the stateless forwarding
// contract of docs/forwarding-contract.md applied to raw UDP datagrams, on
// sipgo's transport layer.
//
// The contract lives in the Forwarder (forward.go and the files named
// after each step: request.go, response.go, via.go, branch.go, route.go,
// maxfwd.go, pvar.go). Forwarder.Process takes the datagram as it came off
// the socket and returns what to do with it: forward these bytes to that
// address, reply with a status code, drop it, or hand it to the stateful
// layer. It edits the message as a list of byte insertions and deletions on
// the original buffer, never by re-serialising parsed headers, because the
// XDP program emits the same bytes and the differential test compares them.
// sipgo's parser therefore never runs on this path; package sipmsg scans the
// message without allocating.
//
// The rest of the package (proxy.go, sipgo.go, failover.go) binds the
// sockets, answers with sipgo's response builder, resolves next hops that
// are names and runs failover-mode INVITEs through sipgo's transaction
// layer.
package sipproxy
