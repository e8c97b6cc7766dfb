// Package dispatch holds Kamailio dispatcher semantics in plain Go: destination
// sets, destination state flags, the selection algorithms, the failover order
// and the immutable Snapshot the rest of sipedge reads. It knows nothing of
// SIP parsing, sockets or BPF: callers hand it strings (Call-ID, URI parts)
// and get destinations back.
//
// # Shape
//
// Build turns Entries (dispatcher.list lines, database rows) into a
// Snapshot: sets ordered as Kamailio orders them (highest priority first,
// equal priorities in reverse input order), each with the tables selection
// uses: NextUp (the down-walk for every start index), Live (the up start
// indices, for FallbackSpread), the alg 9 weight table and the alg 11
// rweight table. Select reads only these tables, so the XDP
// fast path, which copies them into BPF maps, gives the same answer for
// every input. A Dispatcher holds the current Snapshot behind an atomic
// pointer; every change (state, add, remove, reload) builds a new Snapshot
// and swaps it in, and subscribers (the dataplane) get each one. Probe
// latency statistics (latency.go) are the exception: they change with every
// probe result, so they live beside the snapshots, keyed by set and URI; so
// do the rweights congestion control derives from them (congestion.go),
// whose alg 11 table changes are swapped in at most every
// CongestionPublishDelay.
//
// # Where sipedge differs from Kamailio
//
// Kamailio quirks that hurt users are fixed; each fix is listed here.
//   - A weight or rweight outside 1..100 is an error naming the value
//     (Kamailio logs it and uses 0). Any bad entry fails the whole Build, so
//     a reload is all or nothing (Kamailio skips the entry unless
//     ds_load_mode=1).
//   - Sets are listed in ascending ID order; Kamailio walks its AVL tree in
//     post-order (sets 1,2,3 come out as 1,3,2). IsFromList with group -1
//     walks ascending too, so the lowest set ID wins a tie.
//   - Destinations must be UDP: transport=tcp/tls/sctp/ws/wss and sips: are
//     errors for now. A URI that leaves the transport open (PROTO_NONE) is
//     sent over UDP and so matches "udp" in IsFromList (it matches no
//     protocol in Kamailio). Names are resolved to A/AAAA only (no SRV).
//   - State changes keep NODNSARES (16) and NOPING (32): they are
//     configuration. Kamailio clears them with the state bits.
//   - SetState, Mark and ProbeResult change every destination with the URI
//     (Kamailio only the first duplicate); an IUID names one destination.
//     set_state rejects a state string with trailing characters.
//   - The failover list skips the default destination when it is down.
//   - Add gives the set a Build would give with the line appended to the
//     file, but rebuilds only that set (add.go): other sets and their
//     counters stay, the set's destinations keep their runtime state, known
//     host names are not resolved again. Remove rebuilds from the entries
//     in their original order; runtime state carries over by IUID.
//   - Every entry, whatever its source (list file, dispatcher.add), passes
//     Entry.Check: the limits of a dispatcher.list line.
//   - An IP-literal destination with FlagNoDNSARes still gets its Addr (no
//     DNS is needed); IsFromList never matches it, as in Kamailio.
//   - Algorithm 13 (latency) never picks a down destination (kamailio PR
//     #2964); with use_default the default is not ranked but picked when
//     the rest is down (alg_latency.go).
//   - Congestion control (cc) never sets a negative rweight
//     (congestion.go).
//   - Congestion control's rebuilds of the alg 11 table are coalesced:
//     swapped in at most CongestionPublishDelay after the change, and only
//     when some destination's share of slots changed (Kamailio rebuilds
//     and reshuffles on every result that changed an rweight).
//   - Algorithms 12 (parallel), 15 (SRV weight) and 64 (overload
//     control) return ErrAlgNotSupported rather than silently picking
//     index 0; other unknown numbers pick index 0 as in Kamailio.
//   - Call load (alg 10, callload.go) keys calls on the 64-bit Call-ID
//     hash the caller gives (Key.CallIDHash), in a sharded table that
//     grows (ds_hash_size only presizes it). A known Call-ID keeps its
//     destination: a retransmitted INVITE or a re-INVITE is not counted
//     again and other requests go where the call went (Kamailio picks
//     anew and does not track it; it sends non-INVITEs to index 0, as
//     sipedge does for calls it does not know). A released call keeps its
//     destination for releasedLinger, so the ACK of a 487 follows; a new
//     INVITE with its Call-ID (after a 401/407) is counted again there.
//     CANCEL and a non-2xx final release only unanswered calls. maxload 0
//     means no limit (kamailio#800, #2297), also in a failover, which
//     skips a destination at its maxload (MoveCallLoad). Loads are kept
//     across reload, add and remove, by (set, duid); Kamailio refuses
//     dispatcher.reload with alg 10 and loses them (PR #2353). A load
//     never goes below 0 (counted instead), and Check audits every load
//     against the table's live calls each ds_hash_check_interval
//     (kamailio#2322). use_default: the default is taken only when no
//     other destination can be.
//   - An empty Call-ID (alg 0), a URI key without host (algs 1-3) or an
//     empty hash_pvar value (alg 7) is an error (ErrEmptyHashKey).
//   - ProbeResults applies a batch of probe results with one snapshot swap
//     (Kamailio changes each destination in place, under its lock): the
//     same final states as one ProbeResult per result, and one run of the
//     subscribers (the fast path's set-map sync) instead of one per change.
//   - Options.HashFallback (ds_hash_fallback) FallbackSpread, not the
//     default, spreads the calls a hash algorithm would send to a down
//     destination over every up one, where Kamailio's walk gives them all to
//     the next one (kamailio#2361; fallback.go).
//   - Latency statistics are kept across every reload for each (set, URI)
//     the new list keeps (what kamailio PR #3534 asks for), and dropped
//     for the others. Samples are truncated whole milliseconds of the
//     round trip; Kamailio's own arithmetic on struct timeval can round a
//     sample up by 1 ms.
package dispatch
