// Package keepalive is Kamailio's keepalive module: destinations monitored
// with SIP OPTIONS probes, for the config (the keepalive.destination list,
// owner "_params") and for other packages and RPC callers (Add, Remove,
// keepalive.add, keepalive.del), each destination up, down or unknown.
//
// The package owns the destinations, their owners and states, the
// delete_counter rule and the resolution of host names; it sends nothing
// itself. A Prober sends the probes (the agent's, userspace/agent/
// keepalive.go, runs a probe.Engine of its own over the slow path's
// sockets, the engine dispatcher probing uses, with the branch prefix
// z9hG4bKka) and hands each outcome back through Result.
//
// States (kamailio-behaviour §6): Unknown until a probe of the destination
// ends, then Up after a 2xx and Down after anything else (another code, no
// reply by the deadline, a send error, a host that does not resolve). No
// thresholds: one result decides, as in Kamailio. Each change is logged
// once (keepalive:dst-up, keepalive:dst-down) and told to the owners'
// callbacks, in order, by one function (emit).
//
// Differences from Kamailio, each a quirk fixed (docs/keepalive.md):
//   - IsAlive returns 1 for Up only; Unknown is not alive (Kamailio says 1).
//   - URIs are normalized ("sip:" prepended, scheme in lower case) for
//     every lookup, not only for the add, so is_alive works for sips: and
//     keepalive.del finds what keepalive.add stored.
//   - One probe per URI, whatever the number of owners, who share its state.
//   - delete_counter removes a dynamically added destination after that
//     many failed probes in a row and tells its owners; Kamailio stops
//     probing after one more and keeps the entry, down, forever (adding it
//     again does not restart it). Static destinations are never removed.
//   - sips: and non-UDP destinations are refused: probes go over UDP.
package keepalive
