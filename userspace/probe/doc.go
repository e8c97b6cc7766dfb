// Package probe sends SIP probes (OPTIONS, or the configured method) to
// many destinations and reports each probe's outcome: the final reply's
// status code and round-trip time, a timeout, or a send error. It is the
// engine under dispatcher probing (ds_ping_*) and the keepalive module;
// the agent's dispatcher probing (userspace/agent/probing.go) runs it over
// the slow path's sockets.
//
// # What it owns, and what it does not
//
// The Engine owns the schedule (when each destination is probed next), the
// probes in flight (one per destination at most), their RFC 3261 Timer E
// retransmissions and deadlines, and the matching of replies to probes.
// It owns no socket and no destination state:
//   - it sends through a Sender, which the slow path implements over its
//     own UDP listeners (Target.Local picks the send socket, Target.SentBy
//     is the address written in Via);
//   - the slow path hands it the replies to the agent's own requests
//     through HandleResponse;
//   - what a result means (active, trying, inactive; which codes count as
//     success: config.ReplyCodes.Accepts for ds_ping_reply_codes;
//     thresholds and probing modes) belongs to the dispatch and keepalive
//     packages, which receive results through Config.OnResult. Destination
//     URIs are resolved by the caller: a Target carries the address to
//     send to (the URI's host and port, or the outbound proxy).
//
// # How the slow path plugs in
//
// A probe carries one Via, ours, whose branch starts with the engine's
// Config.BranchPrefix (default BranchPrefix, "z9hG4bKpr"; the keepalive
// module's engine uses "z9hG4bKka", so the slow path can offer a reply to
// both engines and only the one that sent the probe takes and counts it). The slow path, on a response whose top Via has its own
// sent-by and is the only Via (sipproxy's HandoffLocalReply), calls
// HandleResponse(data, src); true means the engine took it. Replies are
// parsed with sipmsg (no sipgo, no allocation on the matching path) and
// matched by branch: a sequence number picks the probe in flight and a
// random nonce must match, the CSeq method must be the probe's, and the
// reply must come from the address the probe was sent to. Anything else
// is counted in Stats and ignored: Malformed, WrongSource, UnknownBranch,
// Late (answered, timed out or removed already).
//
// # Scheduling
//
// One goroutine (Run) and one timer heap serve every destination; there is
// no goroutine, timer or socket per destination. Each destination has one
// heap slot holding its next event: the next probe start, or, while a
// probe is in flight, its next retransmission or deadline. A new
// destination's first probe is drawn uniformly within its interval, so
// 10,000 destinations added at once at 1 s are spread over the second
// instead of firing in one burst, and every later start is exactly one
// interval after the previous one was due (counted from the due time, so
// a late step does not drift the schedule). There is no jitter after the
// first probe: the first draw already spreads the load, and a ±10 %
// jitter on each interval would stretch the time to inactive (threshold
// intervals plus a deadline) by up to threshold × 10 %, making the
// documented bound looser than the setting. MaxInFlight bounds the probes awaiting
// a reply; a destination due while the bound is reached waits in FIFO
// order for a slot. Run sleeps at least 5 ms between steps, so events fire
// up to 5 ms late; RTTs are taken when the reply arrives.
//
// Retransmissions follow RFC 3261 §17.1.2.2 for a non-INVITE request over
// UDP: the first after T1, each next one after twice the previous interval
// capped at T2, after a provisional reply every T2, until the probe's
// deadline: Target.Timeout, else Config.Timeout, else min(interval, 5 s),
// instead of Timer F's 32 s (sipgo's transaction default, which issue 8
// asks to avoid).
// Retransmissions are byte-identical: the message is a pure function of
// the destination and the probe's sequence number and nonce, rebuilt into
// a scratch buffer for each send, so nothing is stored per probe but
// numbers.
//
// # The probe request
//
// As Kamailio's dispatcher builds it (tm's build_uac_req): Request-URI and
// To are the destination URI, From is Target.From (ping_from) or
// Config.From (ds_ping_from, default sip:dispatcher@localhost) with a
// random tag, Via has rport and the probe branch, then CSeq 10 <method>,
// a Call-ID unique per probe, Max-Forwards 70, Content-Length 0 and, when
// set, User-Agent. No Contact, no body.
package probe
