// Package dialog tracks SIP dialogs the way Kamailio's dlgs module does
// (kamailio-behaviour §8), for a stateless edge that must know how many
// calls it carries, per caller, destination, data string and tag, without
// being call-stateful. Both of sipedge's paths feed it through one adapter:
// the slow path with parsed messages, the fast path with compact ring-buffer
// events. It knows nothing of either path, of BPF, sipgo, config or RPC.
//
// Live dialogs are counted per tag, per INVITE source address and per
// destination set, each kept in O(1) where a record starts or stops being
// live, so that the agent's dialog limits read them per INVITE.
//
// A record is created by an INVITE request and driven by the messages of
// its call: INIT → PROGRESS (1xx) → ANSWERED (2xx) → CONFIRMED (ACK), and
// TERMINATED (BYE) or NOTANSWERED (≥300, CANCEL). A timer (Run, Expire)
// removes records past their lifetimes. A second INVITE with another branch
// starts a new record only when every record of its Call-ID has finished
// (a serial fork); a retransmission (same branch) changes nothing.
//
// Matching is by the 64-bit hash of the Call-ID alone (wordhash.CallID),
// newest record first, as Kamailio matches by Call-ID alone. The hash, not
// the text, is the key because the fast path reports most messages (1xx,
// ACK, BYE, CANCEL, their replies) by hash only: copying the Call-ID out of
// every packet would cost the ring buffer what the hash saves. With 64 bits,
// the chance that two of a million live Call-IDs share a hash is about
// 3 in 10^8.
//
// Differences from Kamailio's dlgs, each a quirk fixed:
//   - The active gauges (Stats.Active, Count with FieldAny) go down on every
//     state change and on expiry; Kamailio never decrements them, so they
//     drift upward. A gauge that would go below zero is left at zero and
//     counted in Stats.Underflow (kamailio#1591).
//   - Count and TagsCount return the true number, 0 when nothing matches;
//     Kamailio returns -1 for none, and users saw its counts answer 1
//     whatever the truth (kamailio#2568, kamailio#2884).
//   - Tags are a set: a retransmitted INVITE tags its dialog once, not twice.
//   - OpRe matches (Kamailio 5.6 passes no compiled regex and never does).
//   - Every message that changes nothing is counted (Unmatched, Ignored), as
//     are records shed or refused under the cap (MaxRecords), so bad input
//     (a flood of fresh Call-IDs, BYE for unknown calls, replies without an
//     INVITE, duplicates, out-of-order messages) is never silent.
//   - Stats.Final also counts the records shed under the cap, so that every
//     record ever created is either held or in Final.
//
// Memory: a million concurrent dialogs is the design point. A record keeps
// all of its strings in one immutable string (its arena), with uint16 end
// offsets; timestamps are int64 Unix nanoseconds; records sit in fixed
// pages of a slot table linked by uint32 indexes, so the table grows
// without copying. The Call-ID index is an array of uint32 chain heads, not
// a Go map, sized for the cap so that Observe never rehashes it. The
// INIT/PROGRESS records are also kept in creation order in a list, so that
// shedding the oldest is O(1). Expiry and queries scan the table in chunks,
// releasing the lock between chunks, so that a scan of a million records
// never stalls the paths that feed Observe. Pages are kept once allocated:
// after a flood the table holds its peak number of slots (88 bytes each),
// reused by later records.
package dialog
