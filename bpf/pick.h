/* This file contains destination selection: Kamailio's algorithms over the tables the agent writes. */
#ifndef SIPEDGE_PICK_H
#define SIPEDGE_PICK_H

#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "hash.h"

/*
 * Every algorithm yields a start value; the destination is set->next_up[start % m]:
 * userspace/dispatch precomputes Kamailio's 2.2 walk over down destinations (and the
 * use_default fallback) for every start index, so the program never loops over the
 * set. Rotating algorithms keep their position per CPU (set_cursor): each CPU is an
 * exact Kamailio round robin of its own; together they spread the same way.
 */

/* pick_set returns the live copy of the listener's set, or NULL. */
static __always_inline struct dst_set *pick_set(__u32 slot)
{
	__u32 zero = 0, key;
	struct active_half *a = bpf_map_lookup_elem(&active_half, &zero);

	if (!a)
		return NULL;
	key = (a->half & 1) * MAX_SETS + (slot % MAX_SETS);
	return bpf_map_lookup_elem(&dst_sets, &key);
}

/* pick_uri_hash is Kamailio's hash of a URI's keys (get_uri_hash_keys): the user, then
 * the host as written, with ":port" when the URI has a port other than 5060; with
 * user_only the user alone. which: ALG_FROM_URI, ALG_TO_URI or ALG_RURI. From and To
 * take the URI inside <...>, or up to the first ';' or white space of an addr-spec.
 * Only sip: URIs; a port with leading zeros (the key would not be the bytes as
 * written) and the rest go to the slow path.
 * Returns: the hash (>= 1), or -reason. */
__noinline long pick_uri_hash(struct scratch *s, __u32 which, __u32 user_only)
{
	struct sip_msg *m;
	__u32 us, ue, r, user = 0, ulen = 0, hl, klen;
	int at;
	__u32 h;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	if (which == ALG_RURI) {
		us = m->ruri;
		ue = m->ruri_end;
	} else {
		struct hdr_pos *hp = which == ALG_FROM_URI ? &m->from : &m->to;
		__u32 p = hp->val, end = hp->end;

		if (in_u8(s, p) == '"') {
			at = sip_find4(s, p + 1, end, CHARS4('"', '\\', '"', '\\'));
			if (at < 0 || in_u8(s, at) != '"')
				return -PASS_URI_FORM;
			p = at + 1;
		}
		at = sip_find4(s, p, end, CHARS4('<', '<', '<', '<'));
		if (at >= 0) {
			us = at + 1;
			at = sip_find4(s, us, end, CHARS4('>', '>', '>', '>'));
			if (at < 0)
				return -PASS_URI_FORM;
			ue = at;
		} else {
			us = p;
			at = sip_find4(s, us, end + 1, CHARS4(';', ' ', '\t', '\r'));
			if (at < 0)
				return -PASS_URI_FORM;
			ue = at;
		}
	}
	if (ue <= us + 4 || !name_eq(in_u64(s, us), "sip:", 4))
		return -PASS_URI_FORM; /* sips:, tel:, ... */
	r = us + 4;
	at = sip_find4(s, r, ue, CHARS4('@', '@', '@', '@'));
	if (at >= 0) {
		int colon = sip_find4(s, r, at, CHARS4(':', ':', ':', ':'));

		user = r;
		ulen = (colon >= 0 ? (__u32)colon : (__u32)at) - r; /* the password is no key */
		if (!ulen)
			return -PASS_URI_FORM;
		r = at + 1;
	}
	if (in_u8(s, r) == '[') {
		at = sip_find4(s, r, ue, CHARS4(']', ']', ']', ']'));
		if (at < 0)
			return -PASS_URI_FORM;
		hl = at + 1 - r;
	} else {
		at = sip_find4(s, r, ue, CHARS4(':', ';', '?', ':'));
		hl = (at < 0 ? ue : (__u32)at) - r;
	}
	if (!hl)
		return -PASS_URI_FORM;
	klen = hl;
	if (r + hl < ue && in_u8(s, r + hl) == ':') {
		__u32 ps = r + hl + 1;
		__u32 pe;
		long port;

		at = sip_find4(s, ps, ue, CHARS4(';', '?', ';', '?'));
		pe = at < 0 ? ue : (__u32)at;
		port = sip_uint(s, ps, pe, PORT_MAX_DIGITS);
		if (port < 1 || port > 65535 || in_u8(s, ps) == '0')
			return -PASS_URI_FORM;
		if (port != SIP_PORT_DEFAULT)
			klen = pe - r; /* "host:port", as written */
	}
	h = hash_ds_key(s, 0, user, ulen);
	if (!user_only)
		h = hash_ds_key(s, h, r, klen);
	return hash_ds_finish(h);
}

/* pick_slot returns the cursor's weight-table slot and advances it modulo
 * WEIGHT_SLOTS. Compares, not %: clang turns "% 100" into x - x/100*100, whose range
 * the verifier cannot bound. */
static __always_inline __u32 pick_slot(__u32 *ctr)
{
	__u32 v = *ctr;

	if (v >= WEIGHT_SLOTS)
		v = 0;
	*ctr = v + 1 >= WEIGHT_SLOTS ? 0 : v + 1;
	return v;
}

/* pick_dst runs the listener's algorithm on set.
 * Returns: the destination index, or -reason. */
static __always_inline int pick_dst(struct scratch *s, struct listener *lis, struct dst_set *set)
{
	__u32 slot = lis->set_slot % MAX_SETS;
	struct set_cursor *cur = bpf_map_lookup_elem(&set_cursor, &slot);
	__u32 m = set->hash_mod, n = set->count, start = 0;
	int rotate = 0, idx;

	if (!(set->flags & F_SET_EXISTS))
		return -PASS_NO_SET;
	if (set->flags & F_SET_TOO_LARGE)
		return -PASS_SET_TOO_LARGE;
	if (m == 0 || m > MAX_DSTS || n == 0 || n > MAX_DSTS || !cur)
		return -PASS_NO_DST;

	switch (lis->alg) {
	case ALG_CALLID:
		start = hash_ds_finish(hash_ds_key(s, 0, s->msg.callid, s->msg.callid_len));
		break;
	case ALG_RR_PRIORITY:
		if (!(set->flags & F_SET_EQUAL_PRIO))
			break; /* alg 8: index 0 */
		/* fall through */
	case ALG_ROUND_ROBIN:
		start = cur->rr % n;
		rotate = 1;
		break;
	case ALG_RANDOM:
		start = bpf_get_prandom_u32();
		break;
	case ALG_PRIORITY:
		break;
	case ALG_WEIGHT:
		start = set->weights[pick_slot(&cur->wslot)];
		break;
	case ALG_RWEIGHT:
		start = set->rweights[pick_slot(&cur->rwslot)];
		break;
	case ALG_FROM_URI:
	case ALG_TO_URI:
	case ALG_RURI: {
		long h = pick_uri_hash(s, lis->alg, !!(set->flags & F_SET_HASH_USER_ONLY));

		if (h < 0)
			return h;
		start = h;
		break;
	}
	case ALG_AUTH_USER:
	case ALG_PVAR:
	case ALG_CALL_LOAD:
	case ALG_PARALLEL:
	case ALG_LATENCY:
	case ALG_SRV_WEIGHT:
	case ALG_OVERLOAD:
		return -PASS_ALG_UNSUPPORTED;
	default:
		break; /* numbers Kamailio does not define start at index 0 */
	}
	start %= m;
	barrier_var(start); /* keep the mask: clang knows start < m <= MAX_DSTS, the verifier does not */
	idx = set->next_up[start & DST_MASK];
	if (idx < 0 || (__u32)idx >= n)
		return -PASS_NO_DST;
	if (rotate)
		cur->rr = ((__u32)idx + 1) % n; /* Kamailio: last = picked + 1 */
	return idx & DST_MASK;
}

#endif
