/* This file contains the only list of fast-path exits: why a packet goes to the slow path, or is dropped. */
#ifndef SIPEDGE_PASS_REASONS_H
#define SIPEDGE_PASS_REASONS_H

/*
 * Every XDP_PASS leaves through pass(ctx, PASS_X) (counters.h), which counts
 * it in pass_count[PASS_X]. The Go side reads the names from the object's
 * BTF (userspace/dataplane/counters.go), so a new reason needs no Go change.
 * Keep PASS_NONE first and PASS_REASON_MAX last.
 */
enum pass_reason {
	PASS_NONE = 0, /* not a pass: "carry on" inside the program; never counted */
	/* Layers 2 to 4 */
	PASS_NOT_IP, /* not IPv4 or IPv6 (ARP, LLDP, ...) */
	PASS_VLAN, /* 802.1Q/802.1ad tagged: the FIB would name the VLAN device */
	PASS_IP_OPTIONS, /* IPv4 header with options */
	PASS_FRAGMENT, /* IPv4 fragment */
	PASS_IPV6_EXT, /* IPv6 extension header before UDP */
	PASS_NOT_UDP, /* not UDP */
	PASS_BAD_LENGTH, /* IP or UDP length disagrees with the frame */
	PASS_NOT_LISTENER, /* UDP to an address and port that is no listener */
	PASS_TOO_LONG, /* SIP message longer than SIP_MAX_LEN */
	PASS_NO_CSUM, /* UDP checksum absent on IPv4: the fast path updates checksums incrementally */
	/* SIP syntax */
	PASS_PARSE, /* start line or header syntax the parser does not take */
	PASS_FOLDED, /* a header the fast path uses continues on a folded line */
	PASS_HDR_FORM, /* white space before the colon of a header the fast path uses */
	PASS_DUP_HEADER, /* Call-ID, From, To, CSeq, Max-Forwards or Content-Length twice */
	PASS_MISSING_HEADER, /* no Via, Call-ID, From, To or CSeq */
	PASS_BODY_LENGTH, /* the datagram is not headers plus Content-Length (extra bytes, or none given with a body) */
	PASS_TOO_MANY_HEADERS, /* more than MAX_HDR_LINES header lines */
	PASS_CALLID_LONG, /* Call-ID empty or longer than CALLID_MAX */
	PASS_VIA_FORM, /* top Via not "SIP/2.0/UDP sent-by;params" as the parser takes it */
	PASS_VIA_NO_COOKIE, /* top Via branch absent or without z9hG4bK (RFC 2543 client) */
	PASS_VIA_HAS_RECEIVED, /* top Via already has received: the slow path replaces it */
	PASS_IPV6_TEXT, /* IPv6 text the fast path does not write or read (v4-mapped, embedded IPv4, zone) */
	/* Requests */
	PASS_MAXFWD_ZERO, /* Max-Forwards 0: the slow path replies 483 */
	PASS_MAXFWD_INVALID, /* Max-Forwards not 1-3 digits up to 255: the slow path replies 400 */
	PASS_FAILOVER_RULE, /* the listener's rule is failover mode (stateful) */
	PASS_ROUTE_FORM, /* a Route value the parser does not take */
	PASS_ROUTE_DOUBLE, /* the next Route names us too (double Record-Route) */
	PASS_STRICT_ROUTE, /* next-hop Route without lr (RFC 3261 16.12.1.2) */
	PASS_NEXT_HOP_NAME, /* next hop is a host name or has maddr: needs DNS or rewriting */
	PASS_NO_SET, /* the rule's set does not exist: the slow path replies 500 */
	PASS_NO_DST, /* no destination up: the slow path replies 503 or 404 */
	PASS_SET_TOO_LARGE, /* the set has more than MAX_DSTS destinations */
	PASS_ALG_UNSUPPORTED, /* an algorithm the fast path does not run (5, 7, 12, 13, 15, 64) */
	PASS_URI_FORM, /* a From/To/Request-URI the URI-hash algorithms cannot key (not sip:) */
	PASS_ADDR_FORM, /* a To or From the parser does not take (addr-spec, escapes, parameters) */
	PASS_NEXT_HOP_TRANSPORT, /* next hop not UDP: sips: or transport= other than udp */
	PASS_DST_UNUSABLE, /* the picked destination is a name, not UDP, or another family */
	/* Responses */
	PASS_STATEFUL_BRANCH, /* branch z9hG4bKsf...: a failover-mode transaction */
	PASS_LOCAL_REPLY, /* no Via left: the reply answers the agent's own request */
	/* Output */
	PASS_GROW, /* the message would grow beyond the headroom or SIP_MAX_LEN */
	PASS_FIB, /* FIB lookup failed (no route, forwarding off, local destination, ...) */
	PASS_FIB_NO_NEIGH, /* FIB lookup found no neighbour entry yet: the stack resolves it */
	PASS_FIB_MTU, /* the forwarded packet would exceed the egress MTU */
	PASS_ADJUST, /* bpf_xdp_adjust_head refused */
	PASS_INTERNAL, /* a map lookup that cannot fail failed */
	/* SIP syntax (added after the list above; numbers of existing reasons stay) */
	PASS_TOO_MANY_VALUES, /* maybe more Via, Route or Record-Route values than the slow path takes (commas + 1 per line), or a request at the bound that forwarding would pass */
	/* Next hops taken from the message (added later; numbers of existing reasons stay) */
	PASS_NEXT_HOP_UNROUTABLE, /* a response's next hop (next Via, received) is 0.0.0.0/::, 255.255.255.255 or multicast: the slow path drops it */
	PASS_NEXT_HOP_LOOP, /* the next hop reflects to this host (a listener, loopback not on a loopback listener, a request's 0.0.0.0/::): the slow path drops a response, answers a request 482 */
	/* Dialog limits (added later; numbers of existing reasons stay) */
	PASS_LIMIT_SOURCE, /* a dialog-creating INVITE from a source at its dialog limit (limit_block): the slow path answers it */
	PASS_LIMIT_SET, /* a dialog-creating INVITE dispatched to a set at its dialog limit: the slow path answers it */
	PASS_LIMIT_ALL, /* a dialog-creating INVITE while a tag limit is reached (tags are the slow path's) or limit_block was full */
	/* Algorithm 10 (added later; numbers of existing reasons stay) */
	PASS_CALL_UNKNOWN, /* alg 10: a request other than INVITE of a call call_dst does not hold: the slow path's Call-ID table places it */
	PASS_REASON_MAX,
};

/* Every XDP_DROP leaves through drop(ctx, DROP_X), counted in drop_count[DROP_X]. */
enum drop_reason {
	DROP_NOT_OURS = 0, /* a response whose top Via is not ours (RFC 3261 16.7 step 1) */
	DROP_REWRITE_FAILED, /* a store into the packet failed after it was resized: cannot pass half-rewritten bytes */
	DROP_REASON_MAX,
};

#endif
