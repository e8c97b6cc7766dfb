//go:build ignore

/* The sipedge XDP fast path: parse a UDP SIP message, decide as the forwarding
 * contract says (docs/forwarding-contract.md), rewrite and forward it, or pass it
 * to the slow path with a counted reason (pass_reasons.h). docs/fastpath.md
 * describes the design. */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "consts.h"
#include "structs.h"
#include "pass_reasons.h"
#include "maps.h"
#include "config.h"
#include "counters.h"
#include "parse_l34.h"
#include "parse_sip.h"
#include "hash.h"
#include "pick.h"
#include "rewrite_sip.h"
#include "rewrite_l34.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Never read: it puts the enums and the event record into the object's BTF, where
 * bpf2go -type finds them and the agent reads the pass and drop reason names
 * (userspace/dataplane). */
const volatile struct {
	enum pass_reason pass_reason;
	enum drop_reason drop_reason;
	enum event_kind event_kind;
	enum sip_method sip_method;
	enum dispatch_alg dispatch_alg;
	enum limit_kind limit_kind;
	struct sip_event sip_event;
} btf_anchor;

/* Verdicts of the deciding functions besides PASS_NONE (forward) and PASS_*. */
#define VERDICT_DROP_BASE 0x100 /* VERDICT_DROP_BASE + enum drop_reason */

/* uri_names_us reports whether a URI's host and port (5060 when absent) name this
 * listener: byte for byte ADV's host and port, or the listener's IP text and port. */
static __always_inline int uri_names_us(struct scratch *s, struct listener *lis, struct uri_info *u)
{
	__u32 port = u->port ? u->port : SIP_PORT_DEFAULT;
	__u32 hl = u->host_len;

	/* two pairs, not mixed: ADV's host and port, or the listener's IP and port */
	if (port == lis->adv_port && hl == lis->adv_host_len && hl <= HOST_TEXT_MAX &&
	    rw_lis_eq(s, u->host, lis->via_prefix + VIA_ADV_OFF, hl))
		return 1;
	return port == lis->port && hl == lis->host_len && hl <= HOST_TEXT_MAX &&
	       rw_lis_eq(s, u->host, lis->host, hl);
}

/* next_hop_addr sets fwd.daddr from the IP text in [pos, pos+len): a dotted quad, or
 * IPv6 text with or without brackets, of the listener's family.
 * Returns: PASS_NONE, PASS_NEXT_HOP_NAME (a name, or text the parser does not take),
 * or PASS_DST_UNUSABLE (an address of the other family). */
static __always_inline int next_hop_addr(struct scratch *s, __u32 pos, __u32 len)
{
	struct fwd_info *f = &s->fwd;
	int v6 = 0;
	long a;

	if (len >= 2 && in_u8(s, pos) == '[') {
		if (in_u8(s, pos + len - 1) != ']')
			return PASS_NEXT_HOP_NAME;
		pos++;
		len -= 2;
		v6 = 1;
	} else {
		v6 = sip_find1(s, pos, pos + len, ':') >= 0;
	}
	if (v6) {
		if (f->family != FAMILY_V6)
			return PASS_DST_UNUSABLE;
		return sip_ipv6_parse(s, pos, len) ? PASS_NEXT_HOP_NAME : PASS_NONE;
	}
	a = sip_ipv4_parse(s, pos, len);
	if (a < 0)
		return PASS_NEXT_HOP_NAME;
	if (f->family != FAMILY_V4)
		return PASS_DST_UNUSABLE;
	__builtin_memset(f->daddr, 0, sizeof(f->daddr));
	*(__u32 *)f->daddr = (__u32)a;
	return PASS_NONE;
}

/* next_hop_check refuses a next hop taken from the message itself (a response's next
 * Via or received, a request's Route or Request-URI IP literal) that goes nowhere or
 * comes back to this host (contract: Next hops taken from the message), as the slow
 * path's Forwarder.nextHop does. resp: a response, for which the unspecified address,
 * broadcast and multicast are unroutable; a request's unspecified address is a loop
 * (the kernel delivers it locally) and its multicast is allowed (RFC 3261 18.1.1).
 * Returns: PASS_NONE, PASS_NEXT_HOP_UNROUTABLE or PASS_NEXT_HOP_LOOP. */
static __always_inline int next_hop_check(struct fwd_info *f, struct listener *lis, int resp)
{
	struct listener_key key = {};
	__u64 hi, lo, lhi, llo;
	int loop_dst, loop_lis;
	__u32 a;

	/* copies: no unaligned loads from the scratch or map values */
	__builtin_memcpy(&hi, f->daddr, 8);
	__builtin_memcpy(&lo, f->daddr + 8, 8);
	__builtin_memcpy(&lhi, lis->addr, 8);
	__builtin_memcpy(&llo, lis->addr + 8, 8);
	__builtin_memcpy(&a, f->daddr, 4); /* network order */
	if (f->family == FAMILY_V4) {
		if (a == 0)
			return resp ? PASS_NEXT_HOP_UNROUTABLE : PASS_NEXT_HOP_LOOP;
		if (resp && (a == 0xffffffff || (f->daddr[0] & 0xf0) == 0xe0))
			return PASS_NEXT_HOP_UNROUTABLE;
		loop_dst = f->daddr[0] == 127;
		loop_lis = lis->addr[0] == 127;
	} else {
		if (!hi && !lo)
			return resp ? PASS_NEXT_HOP_UNROUTABLE : PASS_NEXT_HOP_LOOP;
		if (resp && f->daddr[0] == 0xff)
			return PASS_NEXT_HOP_UNROUTABLE;
		/* ::1: fifteen zero bytes, then 1 (memory order, so compare as bytes) */
		loop_dst = !hi && lo == bpf_cpu_to_be64(1);
		loop_lis = !lhi && llo == bpf_cpu_to_be64(1);
	}
	if (loop_dst && !loop_lis)
		return PASS_NEXT_HOP_LOOP;
	/* one of our listeners (address and port) */
	key.family = f->family;
	key.port = f->dport;
	__builtin_memcpy(key.addr, f->daddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&listeners, &key))
		return PASS_NEXT_HOP_LOOP;
	return PASS_NONE;
}

/* next_hop_uri sets fwd's destination from a URI (the next Route or the
 * Request-URI): its maddr, else its host, and its port (5060 when absent).
 * Returns: PASS_NONE or the reason. */
static __always_inline int next_hop_uri(struct scratch *s, struct uri_info *u)
{
	int r;

	if (!u->sip)
		return PASS_ROUTE_FORM; /* sips:, tel:, ...: slow path */
	if (!sip_uri_udp(s, u))
		return PASS_NEXT_HOP_TRANSPORT;
	if (u->maddr)
		r = next_hop_addr(s, u->maddr, u->maddr_len);
	else
		r = next_hop_addr(s, u->host, u->host_len);
	if (r)
		return r;
	s->fwd.dport = u->port ? u->port : SIP_PORT_DEFAULT;
	return PASS_NONE;
}

/* req_loose_route handles a request whose top Route names us: plan the removal of that
 * value and take the next hop from the next Route, else the Request-URI.
 * Returns: PASS_NONE, the reason, or -1 when the Request-URI names us too: then
 * the request is dispatched (with our Route removed). */
static __always_inline int req_loose_route(struct scratch *s, struct listener *lis)
{
	struct sip_msg *m = &s->msg;
	struct uri_info *top = &m->rt[0];
	__u32 nv = 0;
	int r, next = 0;

	if (top->more) {
		r = sip_skip_ws(s, top->val_end + 1);
		if (r < 0 || (__u32)r >= m->route[0].end)
			return PASS_ROUTE_FORM;
		nv = r;
		r = rw_add_edit(&s->fwd, top->val, nv - top->val, 0, 0);
		if (r)
			return r;
		r = sip_parse_route(s, 1, nv, m->route[0].end);
		if (r)
			return r;
		next = 1;
	} else {
		/* the whole line, CRLF included */
		r = rw_add_edit(&s->fwd, m->route[0].line, m->route[0].end + 2 - m->route[0].line, 0, 0);
		if (r)
			return r;
		if (m->n_route >= 2) {
			r = sip_parse_route(s, 1, m->route[1].val, m->route[1].end);
			if (r)
				return r;
			next = 1;
		}
	}
	if (next) {
		if (uri_names_us(s, lis, &m->rt[1]))
			return PASS_ROUTE_DOUBLE;
		if (!m->rt[1].lr)
			return PASS_STRICT_ROUTE;
		return next_hop_uri(s, &m->rt[1]);
	}
	r = sip_parse_ruri(s);
	if (r)
		return r;
	if (uri_names_us(s, lis, &m->ruri_info))
		return -1;
	return next_hop_uri(s, &m->ruri_info);
}

/* req_dispatch picks the destination from the listener's set.
 * Returns: PASS_NONE or the reason. */
static __always_inline int req_dispatch(struct scratch *s, struct listener *lis)
{
	struct fwd_info *f = &s->fwd;
	struct dst_set *set = pick_set(lis->set_slot);
	struct dst *d;
	int idx;

	if (!set)
		return PASS_INTERNAL;
	idx = pick_dst(s, lis, set);
	if (idx < 0)
		return -idx;
	d = &set->dsts[idx & DST_MASK];
	if (d->flags & F_DST_NAME)
		return PASS_NEXT_HOP_NAME;
	if (!(d->flags & F_DST_USABLE) || d->family != f->family)
		return PASS_DST_UNUSABLE;
	__builtin_memcpy(f->daddr, d->addr, sizeof(f->daddr));
	f->dport = d->port;
	f->dst_idx = idx;
	f->set_slot = lis->set_slot;
	f->set_id = set->set_id;
	return PASS_NONE;
}

/* limit_blocked looks up one limit_block entry. */
static __always_inline int limit_blocked(struct limit_key *k)
{
	return bpf_map_lookup_elem(&limit_block, k) != NULL;
}

/* limit_kinds returns the kinds of entry limit_block holds (bits 1 << LIMIT_x). */
static __always_inline __u32 limit_kinds(void)
{
	struct limit_present *a;
	__u32 zero = 0;

	a = bpf_map_lookup_elem(&limit_active, &zero);
	return a ? a->kinds : 0;
}

/* limit_check_source passes a dialog-creating INVITE while every such INVITE must go to
 * the slow path (LIMIT_ALL) or while its source is at a dialog limit; kinds says which
 * entries limit_block holds.
 * Returns: PASS_NONE, PASS_LIMIT_ALL or PASS_LIMIT_SOURCE. */
static __always_inline int limit_check_source(struct scratch *s, __u32 kinds)
{
	struct limit_key k = {};

	if (kinds & (1 << LIMIT_ALL))
		return PASS_LIMIT_ALL;
	if (!(kinds & (1 << LIMIT_SOURCE)))
		return PASS_NONE;
	k.kind = LIMIT_SOURCE;
	k.family = s->pkt.family;
	__builtin_memcpy(k.addr, s->pkt.saddr, sizeof(k.addr));
	if (limit_blocked(&k))
		return PASS_LIMIT_SOURCE;
	return PASS_NONE;
}

/* limit_check_set passes a dialog-creating INVITE dispatched to a set at its limit.
 * Returns: PASS_NONE or PASS_LIMIT_SET. */
static __always_inline int limit_check_set(__s32 set_id)
{
	struct limit_key k = {};

	k.kind = LIMIT_SET;
	k.set_id = set_id;
	if (limit_blocked(&k))
		return PASS_LIMIT_SET;
	return PASS_NONE;
}

/* sip_request decides a request: Max-Forwards, the top Via, loose routing or dispatch,
 * received/rport, our Via, Record-Route; then the FIB next hop.
 * Returns: PASS_NONE (forward), or the reason. */
__noinline int sip_request(struct xdp_md *ctx, struct scratch *s, struct listener *lis)
{
	struct sip_msg *m;
	struct via_info *v;
	__u32 blen;
	int r, add_mf = 0, rr = 0, loose = 0, to_tag;
	__u32 limits = 0;

	if (!ctx || !s || !lis)
		return PASS_INTERNAL;
	m = &s->msg;
	v = &m->top;
	if (lis->flags & F_LIS_FAILOVER)
		return PASS_FAILOVER_RULE;

	r = rw_maxfwd(s);
	if (r < 0)
		add_mf = 1;
	else if (r)
		return r;

	/* To must parse (the slow path answers 400 otherwise); its tag decides Record-Route. */
	r = sip_check_nameaddr(s, m->to.val, m->to.end);
	if (r < 0)
		return -r;
	to_tag = r;

	/* A dialog-creating INVITE from a source at a dialog limit goes to the slow path,
	 * which answers it (docs/dialogs.md, Limits); so does its retransmission, which
	 * the slow path forwards when the dialog exists. */
	if (m->method == METHOD_INVITE && !to_tag)
		limits = limit_kinds();
	if (limits) {
		r = limit_check_source(s, limits);
		if (r)
			return r;
	}

	/* The top Via: the branch token needs the RFC 3261 cookie. */
	if (!v->branch || v->branch_len < 7 || !bytes_eq(in_u64(s, v->branch), "z9hG4bK", 7))
		return PASS_VIA_NO_COOKIE;
	if (v->branch_len > CALLID_MAX || v->sentby_len > CALLID_MAX)
		return PASS_VIA_FORM;
	if (v->received)
		return PASS_VIA_HAS_RECEIVED;

	/* Route: loose routing when the top value names us, else dispatch. */
	if (m->n_route) {
		r = sip_parse_route(s, 0, m->route[0].val, m->route[0].end);
		if (r)
			return r;
		loose = uri_names_us(s, lis, &m->rt[0]);
	}
	if (loose) {
		r = req_loose_route(s, lis);
		s->fwd.dst_idx = -1;
		s->fwd.set_id = -1;
		if (r < 0) /* the Request-URI names us too */
			r = req_dispatch(s, lis);
	} else {
		r = req_dispatch(s, lis);
	}
	if (r)
		return r;
	if ((limits & (1 << LIMIT_SET)) && s->fwd.dst_idx >= 0) {
		r = limit_check_set(s->fwd.set_id);
		if (r)
			return r;
	}
	/* a next hop from the next Route or the Request-URI, not from the set */
	if (loose && s->fwd.dst_idx < 0) {
		r = next_hop_check(&s->fwd, lis, 0);
		if (r)
			return r;
	}

	r = rw_via_received(s);
	if (r)
		return r;

	/* Record-Route on dialog-forming requests (no To tag) when the rule asks. */
	if (!loose && (lis->flags & F_LIS_RECORD_ROUTE) &&
	    (m->method == METHOD_INVITE || m->method == METHOD_SUBSCRIBE || m->method == METHOD_REFER))
		rr = !to_tag;
	blen = rw_insert_block(s, lis, hash_token(s), rr, add_mf);
	r = rw_add_edit(&s->fwd, m->rl_end, 0, BLK_INSERT, blen);
	if (r)
		return r;
	return rw_fib(ctx, s);
}

/* sip_response decides a response: our top Via, removed; the next Via is the next hop.
 * Returns: PASS_NONE (forward), the reason, or VERDICT_DROP_BASE + DROP_NOT_OURS. */
__noinline int sip_response(struct xdp_md *ctx, struct scratch *s, struct listener *lis)
{
	struct sip_msg *m;
	struct via_info *top, *nx;
	struct fwd_info *f;
	__u32 nv, hostp, hostl;
	int r;

	if (!ctx || !s || !lis)
		return PASS_INTERNAL;
	m = &s->msg;
	top = &m->top;
	nx = &m->next;
	f = &s->fwd;

	/* Ours: sent-by is ADV byte for byte and the branch has the cookie. */
	if (top->sentby_len != lis->adv_len || lis->adv_len > ADV_MAX ||
	    !rw_lis_eq(s, top->sentby, lis->via_prefix + VIA_ADV_OFF, lis->adv_len > HOST_TEXT_MAX ? HOST_TEXT_MAX : lis->adv_len) ||
	    (lis->adv_len > HOST_TEXT_MAX &&
	     !rw_lis_eq(s, top->sentby + HOST_TEXT_MAX, lis->via_prefix + VIA_ADV_OFF + HOST_TEXT_MAX,
			lis->adv_len - HOST_TEXT_MAX)) ||
	    !top->branch || top->branch_len < 7 || !bytes_eq(in_u64(s, top->branch), "z9hG4bK", 7))
		return VERDICT_DROP_BASE + DROP_NOT_OURS;
	if (top->branch_len >= 9 && in_u8(s, top->branch + 7) == 's' && in_u8(s, top->branch + 8) == 'f')
		return PASS_STATEFUL_BRANCH;

	/* The next Via value: on the same line after the comma, or the next Via line. */
	if (top->more) {
		r = sip_skip_ws(s, top->val_end + 1);
		if (r < 0 || (__u32)r >= m->via[0].end)
			return PASS_VIA_FORM;
		nv = r;
		r = sip_parse_via(s, 1, nv, m->via[0].end);
		if (r)
			return r;
		r = rw_add_edit(f, top->val, nv - top->val, 0, 0);
	} else {
		if (m->n_via < 2)
			return PASS_LOCAL_REPLY;
		r = sip_parse_via(s, 1, m->via[1].val, m->via[1].end);
		if (r)
			return r;
		r = rw_add_edit(f, m->via[0].line, m->via[0].end + 2 - m->via[0].line, 0, 0);
	}
	if (r)
		return r;

	/* Next hop: received, else sent-by host; port: rport, else sent-by port, else 5060. */
	if (nx->has_maddr)
		return PASS_NEXT_HOP_NAME;
	hostp = nx->received ? nx->received : nx->sentby;
	hostl = nx->received ? nx->received_len : nx->host_len;
	r = next_hop_addr(s, hostp, hostl);
	if (r)
		return r;
	f->dport = nx->rport_has_value ? nx->rport : nx->port ? nx->port : SIP_PORT_DEFAULT;
	f->dst_idx = -1;
	f->set_id = -1;
	r = next_hop_check(f, lis, 1);
	if (r)
		return r;
	return rw_fib(ctx, s);
}

SEC("xdp")
int xdp_sip(struct xdp_md *ctx)
{
	struct listener_key key = {};
	struct listener_stats *st;
	struct listener *lis;
	struct scratch *s;
	struct fwd_info *f;
	__u32 zero = 0, plen;
	int r;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return pass(ctx, PASS_INTERNAL);
	r = l34_parse(ctx, &s->pkt);
	if (r)
		return pass(ctx, r);

	key.family = s->pkt.family;
	key.port = s->pkt.dport;
	__builtin_memcpy(key.addr, s->pkt.daddr, sizeof(key.addr));
	lis = bpf_map_lookup_elem(&listeners, &key);
	if (!lis)
		return pass(ctx, PASS_NOT_LISTENER);
	st = counters_listener(lis->id);
	if (st)
		st->rx++;

	plen = s->pkt.payload_len;
	if (plen > SIP_MAX_LEN)
		r = PASS_TOO_LONG;
	else if (plen < SIP_MIN_LEN)
		r = PASS_PARSE;
	else if (bpf_xdp_load_bytes(ctx, s->pkt.payload_off, IN_AT(s, 0), plen))
		r = PASS_INTERNAL;
	else
		r = PASS_NONE;
	if (r)
		goto out_pass;

	/* Per-packet state starts clean; the parse fills msg. */
	f = &s->fwd;
	__builtin_memset(f, 0, sizeof(*f));
	f->family = s->pkt.family;
	f->sport = lis->port;
	__builtin_memcpy(f->saddr, lis->addr, sizeof(f->saddr));
	s->msg.len = plen;
	r = sip_parse(s);
	if (r)
		goto out_pass;

	r = s->msg.is_request ? sip_request(ctx, s, lis) : sip_response(ctx, s, lis);
	if (r >= VERDICT_DROP_BASE) {
		if (st)
			st->dropped++;
		return drop(ctx, r - VERDICT_DROP_BASE);
	}
	if (r)
		goto out_pass;

	r = rw_apply(ctx, s);
	if (r < 0) {
		if (st)
			st->dropped++;
		return drop(ctx, DROP_REWRITE_FAILED);
	}
	if (r)
		goto out_pass;

	callload_forwarded(s, lis);
	events_emit(s, lis);
	if (st) {
		if (s->msg.is_request)
			st->fwd_requests++;
		else
			st->fwd_replies++;
		st->fwd_bytes += plen + f->delta;
	}
	if (f->dst_idx >= 0)
		counters_dst(f->set_slot, f->dst_idx, plen + f->delta);
	if (f->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(f->ifindex, 0);

out_pass:
	if (st)
		st->passed++;
	return pass(ctx, r);
}
