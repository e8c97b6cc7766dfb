/* This file contains the structs shared by the parser, the maps and the Go side (bpf2go -type). */
#ifndef SIPEDGE_STRUCTS_H
#define SIPEDGE_STRUCTS_H

#include <linux/types.h>
#include "consts.h"

/* Key of listeners: where a UDP datagram was sent. */
struct listener_key {
	__u8 family; /* enum addr_family */
	__u8 pad;
	__u16 port; /* host byte order */
	__u8 addr[16]; /* network byte order; IPv4 in the first 4 bytes, the rest zero */
};

/* Key of limit_block: a source address, a set, or everything, at a dialog limit. */
struct limit_key {
	__u8 kind; /* enum limit_kind */
	__u8 family; /* LIMIT_SOURCE: enum addr_family; else 0 */
	__u16 pad;
	__s32 set_id; /* LIMIT_SET: the set as configured; else 0 */
	__u8 addr[16]; /* LIMIT_SOURCE: network byte order, IPv4 in the first 4 bytes, the rest zero; else zero */
};

/* Value of limit_block. Written by the agent. */
struct limit_verdict {
	__u32 rule; /* index of the dialogs.limits rule at its limit (read by operators, not the program) */
};

/* Value of limit_active: which kinds limit_block holds. Written by the agent. */
struct limit_present {
	__u32 kinds; /* bit 1 << LIMIT_x set while limit_block holds an entry of that kind */
};

/* Value of listeners: the listener, its ADV text and its rule. Written by the agent. */
struct listener {
	__u32 id; /* index into listener_stats */
	__u32 set_slot; /* the rule's set: index into one half of dst_sets */
	__s32 set_id; /* the rule's set as configured (for events) */
	__u8 alg; /* enum dispatch_alg */
	__u8 flags; /* F_LIS_* */
	__u8 family; /* enum addr_family */
	__u8 token_digits; /* TOKEN_DIGITS, or TOKEN_DIGITS+1 when len(ADV) is odd */
	__u16 port; /* the listener's port: source port of forwarded packets */
	__u16 adv_port; /* ADV's port */
	__u8 addr[16]; /* the listener's IP: source address of forwarded packets */
	__u8 via_len; /* bytes used in via_prefix */
	__u8 adv_len; /* ADV is via_prefix[VIA_ADV_OFF .. VIA_ADV_OFF+adv_len) */
	__u8 adv_host_len; /* ADV's host is the first adv_host_len bytes of ADV */
	__u8 host_len; /* bytes used in host */
	__u8 rr_len; /* bytes used in rr_line */
	__u8 pad[3];
	__u8 via_prefix[VIA_PREFIX_MAX]; /* "Via: SIP/2.0/UDP <ADV>;branch=z9hG4bK" */
	__u8 rr_line[RR_LINE_MAX]; /* "Record-Route: <sip:<ADV>;lr>\r\n" */
	__u8 host[HOST_TEXT_MAX]; /* the listener's IP as text (IPv6 bracketed), for Route matching */
};

/* One destination of a set. */
struct dst {
	__u8 family; /* enum addr_family; FAMILY_NONE when not usable */
	__u8 flags; /* F_DST_* */
	__u16 port; /* host byte order */
	__u8 addr[16]; /* network byte order */
	__u16 load_slot; /* alg 10: its (set, duid)'s key in dst_load; 0: no duid, never picked */
	__u16 pad;
	__u32 maxload; /* alg 10: the maxload attribute; 0: no limit */
};

/* Value of dst_sets: one destination set with its pick tables (userspace/dispatch.Set). */
struct dst_set {
	__s32 set_id; /* dispatcher set id */
	__u16 count; /* destinations in dsts */
	__u16 hash_mod; /* m: every start value is taken modulo m (Set.HashMod) */
	__u8 flags; /* F_SET_* */
	__u8 pad;
	__u16 live_count; /* entries used in live */
	__u8 pad2[4];
	__s16 next_up[MAX_DSTS]; /* the 2.2 walk from each start index; -1: nothing up */
	__u8 live[MAX_DSTS]; /* the up start indexes, ascending (Set.Live): F_SET_SPREAD's choices */
	__u8 weights[WEIGHT_SLOTS]; /* alg 9 table: a destination index per slot */
	__u8 rweights[WEIGHT_SLOTS]; /* alg 11 table */
	struct dst dsts[MAX_DSTS];
};

/* Value of active_half: which half of dst_sets packets read. */
struct active_half {
	__u32 half; /* 0 or 1 */
};

/* Value of set_cursor (per CPU): the rotating positions of algs 4, 9, 11 and 14. */
struct set_cursor {
	__u32 rr;
	__u32 wslot;
	__u32 rwslot;
	__u32 pad;
};

/* Value of call_dst (alg 10), keyed by the 64-bit Call-ID hash of events: where the
 * call went, by load slot (a destination's index may change on a reload, its
 * (set, duid) does not), and its state (enum call_state). */
struct call_dst {
	__u32 load_slot;
	__u32 state;
};

/* Value of listener_stats (per CPU). */
struct listener_stats {
	__u64 rx; /* SIP datagrams to the listener */
	__u64 fwd_requests;
	__u64 fwd_replies;
	__u64 fwd_bytes; /* UDP payload bytes sent */
	__u64 passed;
	__u64 dropped;
};

/* Value of dst_stats (per CPU), keyed by set_slot * MAX_DSTS + destination index. */
struct dst_stats {
	__u64 packets;
	__u64 bytes;
};

/* A ring-buffer record: a dialog-relevant message the fast path forwarded. With
 * cfg_events_copy, an INVITE request's record and a 2xx reply to INVITE's are
 * followed by msg_len bytes: the UDP payload as received (events.h); every other
 * record is this header alone (msg_len 0). */
struct sip_event {
	__u64 ts_ns; /* bpf_ktime_get_ns */
	__u64 callid_hash; /* docs/fastpath.md: word hash of the trimmed Call-ID */
	__u32 listener_id;
	__s32 set_id; /* -1 for replies */
	__s16 dst_idx; /* destination index in the set; -1 for replies */
	__u16 status; /* reply status, 0 for requests */
	__u8 kind; /* enum event_kind */
	__u8 method; /* enum sip_method: the request's, or the CSeq method of a reply */
	__u8 src_family; /* enum addr_family of src_addr */
	__u8 pad;
	__u32 cseq; /* CSeq number */
	__u16 src_port; /* the packet's UDP source port as received, host byte order */
	__u16 msg_len; /* bytes of the message copy after this header; 0: none */
	__u8 src_addr[16]; /* the packet's IP source as received, network byte order; IPv4 in the first 4 bytes, the rest zero */
};

/* ---- Per-packet state in the scratch map (not written by Go) ---- */

/* Where one header line is: offsets into the UDP payload. */
struct hdr_pos {
	__u16 line; /* first byte of the line; 0 when the header is absent */
	__u16 val; /* first byte of the value, after the colon and SP/HTAB */
	__u16 end; /* the line's CR */
	__u16 pad;
};

/* One parsed Via value. Offsets into the payload; 0 means absent. */
struct via_info {
	__u16 val; /* the value's first byte ("SIP/2.0/UDP") */
	__u16 val_end; /* its ',' or the line's CR */
	__u16 sentby;
	__u16 sentby_len;
	__u16 host_len; /* host part of sent-by, brackets included */
	__u16 port; /* sent-by port; 0 when absent */
	__u16 branch;
	__u16 branch_len;
	__u16 rport_end; /* just after the letters "rport" */
	__u16 rport; /* rport value; 0 when absent or empty */
	__u16 received;
	__u16 received_len;
	__u8 has_rport;
	__u8 rport_has_value;
	__u8 has_maddr;
	__u8 more; /* another value follows on the same line */
	__u16 scan; /* sip_parse_via: the parameter being read */
	__u16 pad;
};

/* One parsed SIP URI (a Route value's, the Request-URI, a From/To URI). Offsets into
 * the payload; 0 means absent. */
struct uri_info {
	__u16 val; /* a Route value's first byte ('<'); the URI's first byte otherwise */
	__u16 val_end; /* a Route value's ',' or CR */
	__u16 user;
	__u16 user_len; /* the password excluded */
	__u16 host;
	__u16 host_len; /* brackets included */
	__u16 port; /* 0 when absent */
	__u16 port_end; /* just after the port's digits */
	__u16 maddr; /* the maddr value */
	__u16 maddr_len;
	__u16 transport; /* the transport value */
	__u16 transport_len;
	__u8 lr;
	__u8 more; /* another Route value follows on the same line */
	__u8 sip; /* scheme sip: (0: another scheme, only its characters checked) */
	__u8 pad;
	__u16 colon; /* sip_parse_uri: the scheme's ':' */
	__u16 scan; /* sip_parse_uri: the parameter being read */
};

/* What sip_parse learns about a message. */
struct sip_msg {
	__u16 len; /* UDP payload length */
	__u16 rl_end; /* first byte after the start line's CRLF */
	__u16 body; /* first byte after the blank line */
	__u16 status; /* responses */
	__u16 ruri; /* requests: the Request-URI */
	__u16 ruri_end;
	__u8 is_request;
	__u8 method; /* enum sip_method */
	__u8 cseq_method;
	__u8 n_via; /* Via lines seen (counted up to 2) */
	__u8 n_route; /* Route lines seen (counted up to 2) */
	__u8 pad0;
	__u8 last_ours; /* the last header line was one the fast path uses (no folding after it) */
	__u8 pad;
	__u32 cseq;
	__u16 scan_kind; /* sip_line: the line's enum sip_hdr */
	__u16 scan_ne; /* sip_line: the end of its name */
	__u16 scan_zero; /* always 0: sip_eol launders its position with it */
	__u16 scan_commas; /* sip_eol: commas of the current line */
	__u16 n_via_vals; /* upper bounds of the Via, Route and Record-Route values */
	__u16 n_route_vals;
	__u16 n_rr_vals;
	__u16 pad4;
	__u16 callid; /* trimmed Call-ID */
	__u16 callid_len;
	__u32 clen; /* Content-Length value */
	struct hdr_pos via[2];
	struct hdr_pos route[2];
	struct hdr_pos callid_h;
	struct hdr_pos from;
	struct hdr_pos to;
	struct hdr_pos cseq_h;
	struct hdr_pos maxfwd;
	struct hdr_pos clen_h;
	struct via_info top; /* the top Via value */
	struct via_info next; /* responses: the Via value after ours */
	struct uri_info rt[2]; /* requests: the top Route value and the one after it */
	struct uri_info ruri_info; /* requests: the Request-URI, when it is read */
	struct uri_info addr_uri; /* the URI of the last From/To checked */
	__u16 addr_scan; /* sip_check_nameaddr: the parameter being read */
	__u16 pad3[3];
};

/* A text edit: delete del bytes at pos, then insert ins_len bytes from buf[ins_off]. */
struct edit {
	__u16 pos;
	__u16 del;
	__u16 ins_off;
	__u16 ins_len;
};

/* Where and how the message leaves. */
struct fwd_info {
	__u8 family;
	__u8 n_edits;
	__u8 smac[6];
	__u8 dmac[6];
	__u16 sport; /* host byte order */
	__u16 dport;
	__u16 patch_pos; /* in-place replacement (Max-Forwards): payload offset, 0 = none */
	__u16 patch_len;
	__u16 patch_off; /* its text in buf */
	__s16 dst_idx;
	__u16 pad;
	__u32 set_slot;
	__s32 set_id;
	__s32 delta; /* payload growth in bytes (negative: shrink) */
	__u16 v6_groups[8]; /* sip_ipv6_parse's work area: the groups read */
	__u16 v6_n; /* groups read */
	__u16 v6_cur; /* the group being read */
	__u16 v6_digits; /* its digits so far */
	__u16 v6_gap; /* groups before "::"; IPV6_GROUPS + 1 when none */
	__u16 v6_prev; /* the previous character */
	__u16 pad2;
	__u32 ifindex;
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 cl_hash; /* alg 10 (callload.h): the Call-ID hash of a pick to record once forwarded */
	__u16 cl_slot; /* its load slot; 0: nothing to record (a retransmission, another alg) */
	__u16 cl_old; /* the load slot a live call moves away from; 0: none */
	/* callload_pick's walk keeps its state here, not in registers: the verifier does
	 * not track values in map memory, so the walk's steps do not multiply its states */
	__s16 cl_at; /* the call's destination index; -1: not in the set */
	__s16 cl_best; /* the least-loaded index so far; -1: none */
	__s16 cl_dflt; /* the use_default index, when up; -1: none */
	__u16 cl_want; /* the load slot call_dst names for the call; 0: none */
	__u16 cl_invite; /* the request is an INVITE */
	__u16 cl_pad;
	__s64 cl_top; /* cl_best's load */
	struct edit edits[MAX_EDITS]; /* sorted by pos */
};

/* What l34_parse learns about the frame. */
struct pkt_info {
	__u8 family;
	__u8 pad;
	__u16 l4_off; /* offset of the UDP header */
	__u16 payload_off;
	__u16 payload_len;
	__u16 sport; /* host byte order */
	__u16 dport;
	__u16 udp_check; /* as received (raw) */
	__u16 udp_len; /* host byte order */
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Value of scratch (per CPU, one entry): the payload copy and the per-packet state. */
struct scratch {
	/* buf[0 .. BUF_IN) holds inserted text (blk), buf[BUF_IN ..) the payload copy. */
	__u8 buf[SCRATCH_BUF_SIZE];
	struct sip_msg msg;
	struct fwd_info fwd;
	struct pkt_info pkt;
};

#endif
