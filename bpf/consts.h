/* This file contains every number the XDP fast path uses: sizes, flags and enums. */
#ifndef SIPEDGE_CONSTS_H
#define SIPEDGE_CONSTS_H

/* ---- Map sizes (overridable at build time) ---- */
#ifndef MAX_LISTENERS
#define MAX_LISTENERS 64 /* entries of listeners and listener_stats */
#endif
#ifndef MAX_SETS
#define MAX_SETS 128 /* set slots per half of dst_sets */
#endif
#ifndef MAX_DSTS
#define MAX_DSTS 64 /* destinations per set; a power of two (indices are masked) */
#endif
#define DST_MASK (MAX_DSTS - 1)
#define SET_HALVES 2 /* dst_sets holds two copies: the active one and the one being written */
#define WEIGHT_SLOTS 100 /* Kamailio's alg 9 / alg 11 table size */
#define EVENTS_RING_BYTES (256 * 1024)
#define EVENT_METHOD_SLOTS 16 /* enum sip_method values, METHOD_NONE..METHOD_OTHER */
#define EVENT_LOST_SLOTS (3 * EVENT_METHOD_SLOTS) /* event_lost keys: kind * EVENT_METHOD_SLOTS + method */
#ifndef MAX_LIMIT_BLOCKS
#define MAX_LIMIT_BLOCKS 65536 /* entries of limit_block: sources and sets at a dialog limit */
#endif
#define MAX_LOADS (MAX_SETS * MAX_DSTS) /* entries of dst_load: one per (set, duid), slot 0 unused (callload.h) */
#ifndef CALL_DST_ENTRIES
#define CALL_DST_ENTRIES (128 * 1024) /* calls call_dst remembers (LRU): alg 10's live calls and their linger */
#endif

/* ---- Message bounds ---- */
#define SIP_MAX_LEN 1472 /* longest UDP payload parsed; longer is PASS_TOO_LONG */
#define SIP_MIN_LEN 32 /* shorter than any request line plus the mandatory headers */
#define MAX_HDR_LINES 64 /* header lines scanned before the blank line */
#define MAX_LINE_WORDS ((SIP_MAX_LEN / 8) + 2) /* 8-byte steps over a whole message */
#define MAX_CTL_SKIPS 32 /* HTAB (or other control bytes) inside one line that sip_eol steps over */
#define EOL_STEPS ((SIP_MAX_LEN / 32) + 1 + MAX_CTL_SKIPS) /* sip_eol: 32-byte steps over a line, and skips */
#define SWAR_CTL_END 0x0e /* swar_ctl: bytes below it (CR 0x0d, LF 0x0a, HTAB 0x09, ...) stop the header scan */
#define MAX_TOKEN_WORDS 32 /* 8-byte steps of a delimiter scan inside one header value */
#define MAX_VIA_PARAMS 12 /* ;params of one Via value looked at */
#define MAX_URI_PARAMS 8 /* ;params of one Route URI looked at */
/* The slow path's hard limits on values (userspace/sipmsg MaxVias, MaxRoutes,
 * MaxRecordRoutes): a message with more is malformed there. The fast path bounds
 * the values of each header line by its commas + 1. */
#define SLOW_MAX_VIAS 64
#define SLOW_MAX_ROUTES 32
#define SLOW_MAX_RECORD_ROUTES 32
#define CALLID_MAX 255 /* longest Call-ID hashed on the fast path */
#define MAX_EDITS 4 /* text edits of one message (insertion block, Max-Forwards, Via, Route) */

/* ---- Scratch buffer (per CPU): struct scratch.buf ----
 * buf[0, BUF_IN) holds the text the program inserts (blk), buf[BUF_IN, ...) a copy of
 * the UDP payload, buf[BUF_OUT, ...) the rewritten front part of the payload (what is
 * stored into the packet in front of the tail that stays in place). Every offset is
 * masked before use: payload offsets with IN_MASK, text offsets with BLK_MASK,
 * front-part lengths with OUT_MASK, generic accesses with BUF_READ_MASK. The sizes
 * leave room for any masked offset plus the longest access, so each access is
 * provably inside the map value (verifier) without a bounds check. */
#define BUF_IN 512 /* payload copy starts here */
#define IN_MASK 2047 /* payload offsets: BUF_IN + IN_MASK + 8 <= BUF_OUT */
#define BUF_OUT 2576 /* rewritten front part starts here */
#define OUT_MASK 2047 /* front-part lengths (<= SIP_MAX_LEN + XDP_GROW_MAX) */
#define BLK_MASK 255 /* offsets inside the insertion block */
#define BUF_READ_MASK 8191 /* any 8-byte access at buf[off & BUF_READ_MASK] stays inside buf */
#define SCRATCH_BUF_SIZE (BUF_READ_MASK + 1 + 8)
#define COPY_STEPS ((SIP_MAX_LEN + XDP_GROW_MAX) / 8 + 1) /* rw_copy: 8-byte steps */
/* Fixed places in blk for the pieces of inserted text. */
#define BLK_INSERT 0 /* the insertion block: our Via, Record-Route, Max-Forwards: 70 (< 256 bytes) */
#define BLK_VIA_EDIT 384 /* ";received=..." or "=PORT;received=..." (< 64 bytes) */
#define BLK_MAXFWD 448 /* the decremented Max-Forwards digits */
#define BLK_IPTEXT 464 /* scratch for an IP address as text (< 48 bytes) */

/* ---- Listener text fields ---- */
#define ADV_MAX 64 /* longest ADV, "host:port" */
#define VIA_PREFIX_MAX 96 /* "Via: SIP/2.0/UDP " ADV ";branch=z9hG4bK" */
#define VIA_ADV_OFF 17 /* ADV starts after "Via: SIP/2.0/UDP " */
#define RR_LINE_MAX 96 /* "Record-Route: <sip:" ADV ";lr>\r\n" */
#define HOST_TEXT_MAX 48 /* listener IP as text, IPv6 bracketed */
#define TOKEN_DIGITS 16 /* hex digits of the branch token; 17 with parity padding */
#define IP_TEXT_MAX 40 /* longest IP literal written into received= */
#define IPV6_TEXT_MAX 39 /* longest IPv6 text, without brackets */
#define IPV6_GROUPS 8

/* ---- Protocol numbers ---- */
#define SIP_PORT_DEFAULT 5060
#define MAXFWD_DEFAULT_LINE "Max-Forwards: 70\r\n"
#define MAXFWD_DEFAULT_LEN 18
#define MAXFWD_MAX_VALUE 255
#define MAXFWD_MAX_DIGITS 8 /* leading zeros allowed (RFC 4475 "0068"); the value is what counts */
#define CSEQ_MAX_DIGITS 10
#define PORT_MAX_DIGITS 5
#define STATUS_MIN 100
#define STATUS_MAX 699
#define STATUS_FINAL_MIN 200
#define STATUS_REDIRECT_MIN 300 /* 2xx is [STATUS_FINAL_MIN, STATUS_REDIRECT_MIN) */
#define PORT_MAX 65535
#define IPV4_IHL_PLAIN 5 /* 20-byte header, no options */
#define IPV4_VERSION_IHL 0x45
#define IPV4_FRAG_MASK 0x3fff /* MF flag and fragment offset */
#define IPV4_DF 0x4000
#define IP_TTL_DEFAULT 64
#define VLAN_HDR_LEN 4
#define XDP_GROW_MAX 256 /* the XDP headroom bpf_xdp_adjust_head can take */

/* ---- Decimal output without division ----
 * BPF has no multiply-high, so clang keeps "/ 10" as a divide instruction per digit.
 * v / 10 == (v * DIV10_MUL) >> DIV10_SHIFT for every v < DIV10_MAX (checked
 * exhaustively): ports and Max-Forwards. */
#define DIV10_MUL 0xCCCDULL
#define DIV10_SHIFT 19
#define DIV10_MAX 100000
/* The same for IPv4 octets (rw_put_ipv4), with small multipliers: v / 100 for v < 256
 * and r / 10 for r < 100 (checked exhaustively). */
#define OCTET_DIV100_MUL 41
#define OCTET_DIV100_SHIFT 12
#define OCTET_DIV10_MUL 205
#define OCTET_DIV10_SHIFT 11

/* ---- Hash constants (docs/forwarding-contract.md, "The branch token") ---- */
#define TOKEN_SEED 0x7369706564676521ULL /* "sipedge!" */
#define TOKEN_K 0x9e3779b97f4a7c15ULL
#define TOKEN_FIN 0xbf58476d1ce4e5b9ULL
#define CALLID_SEED 0x63616c6c2d696421ULL /* "call-id!": the event Call-ID hash (docs/fastpath.md) */

/* listener flags (struct listener.flags) */
#define F_LIS_RECORD_ROUTE 0x01 /* the rule asks for Record-Route on dialog-forming requests */
#define F_LIS_FAILOVER 0x02 /* the rule is failover mode: requests go to the transaction layer */

/* dst flags (struct dst.flags) */
#define F_DST_USABLE 0x01 /* an IP literal (or resolved) UDP destination the fast path can send to */
#define F_DST_NAME 0x02 /* a host name left unresolved: the slow path resolves it */
#define F_DST_UP 0x04 /* the destination is up (alg 10 picks only those) */
#define F_DST_DEFAULT 0x08 /* the set's use_default destination: alg 10 takes it only when no other can be */

/* dst_set flags (struct dst_set.flags) */
#define F_SET_EXISTS 0x01 /* the slot holds a set of the snapshot */
#define F_SET_EQUAL_PRIO 0x02 /* alg 14 is round robin (else alg 8) */
#define F_SET_TOO_LARGE 0x04 /* more than MAX_DSTS destinations: only the slow path picks */
#define F_SET_HASH_USER_ONLY 0x08 /* dispatcher flags bit 1: algs 1-3 hash the URI user only */
#define F_SET_SPREAD 0x10 /* ds_hash_fallback spread: a hash pick whose start is down takes live[] */

/* States of an alg 10 call in call_dst (struct call_dst.state), as in userspace/dispatch's
 * Call-ID table: INIT and CONFIRMED are counted in their destination's load. */
enum call_state {
	CALL_INIT = 1, /* INVITE forwarded, no 2xx yet */
	CALL_CONFIRMED = 2, /* 2xx seen */
	CALL_RELEASED = 3, /* BYE, CANCEL or a 3xx-6xx final: not counted, still sticks */
};

/* Kamailio's dispatcher algorithms (ds_select_dst), by number. */
enum dispatch_alg {
	ALG_CALLID = 0,
	ALG_FROM_URI = 1,
	ALG_TO_URI = 2,
	ALG_RURI = 3,
	ALG_ROUND_ROBIN = 4,
	ALG_AUTH_USER = 5,
	ALG_RANDOM = 6,
	ALG_PVAR = 7,
	ALG_PRIORITY = 8,
	ALG_WEIGHT = 9,
	ALG_CALL_LOAD = 10,
	ALG_RWEIGHT = 11,
	ALG_PARALLEL = 12,
	ALG_LATENCY = 13,
	ALG_RR_PRIORITY = 14,
	ALG_SRV_WEIGHT = 15,
	ALG_OVERLOAD = 64,
};

/* SIP methods the fast path tells apart; everything else is METHOD_OTHER. */
enum sip_method {
	METHOD_NONE = 0,
	METHOD_INVITE = 1,
	METHOD_ACK = 2,
	METHOD_BYE = 3,
	METHOD_CANCEL = 4,
	METHOD_OPTIONS = 5,
	METHOD_REGISTER = 6,
	METHOD_SUBSCRIBE = 7,
	METHOD_NOTIFY = 8,
	METHOD_REFER = 9,
	METHOD_INFO = 10,
	METHOD_UPDATE = 11,
	METHOD_PRACK = 12,
	METHOD_MESSAGE = 13,
	METHOD_PUBLISH = 14,
	METHOD_OTHER = 15,
};

/* Byte classes of sip_span_class (each a subset of what the slow path accepts there;
 * a byte outside the class sends the message to the slow path). */
enum char_class {
	CLS_NAME = 1, /* header and parameter names, methods: ALPHA DIGIT "-" (a subset of token) */
	CLS_HOST = 2, /* host names and IPv4: ALPHA DIGIT "-" "." "_" */
	CLS_IPV6 = 3, /* inside [...]: HEXDIG ":" "." */
	CLS_URI = 4, /* a URI: 0x21-0x7e except < > " */
	CLS_VALUE = 5, /* parameter values: ALPHA DIGIT "-" "." "_" ":" "[" "]" (a subset of token plus :[]) */
	CLS_DISPLAY = 6, /* an unquoted display name: ALPHA DIGIT "-" "." SP HTAB */
};

/* The headers the parser records; all others are skipped. */
enum sip_hdr {
	HDR_OTHER = 0,
	HDR_VIA,
	HDR_CALLID,
	HDR_FROM,
	HDR_TO,
	HDR_CSEQ,
	HDR_MAXFWD,
	HDR_ROUTE,
	HDR_CLEN,
	HDR_RECORD_ROUTE, /* not recorded: only its values are bounded */
};

/* Kinds of ring-buffer events. */
enum event_kind {
	EVENT_REQUEST = 1, /* an INVITE, ACK, BYE or CANCEL forwarded */
	EVENT_REPLY = 2, /* a reply to an INVITE, or a final reply to a BYE or CANCEL, forwarded */
};

/* What a limit_block entry blocks (limit_key.kind). */
enum limit_kind {
	LIMIT_SOURCE = 1, /* a source address at its dialog limit */
	LIMIT_SET = 2, /* a destination set at its dialog limit */
	LIMIT_ALL = 3, /* every dialog-creating INVITE: a tag at its limit, or the map was full */
};

/* Address families in keys and destinations (same values as AF_INET/AF_INET6). */
enum addr_family {
	FAMILY_NONE = 0,
	FAMILY_V4 = 2,
	FAMILY_V6 = 10,
};

#endif
