/* This file contains destination selection: Kamailio's algorithms over the tables the agent writes. */
#ifndef SIPEDGE_PICK_H
#define SIPEDGE_PICK_H

#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "hash.h"
#include "callload.h"

/*
 * Every algorithm yields a start value; the destination is set->next_up[start % m]:
 * userspace/dispatch precomputes Kamailio's 2.2 walk over down destinations (and the
 * use_default fallback) for every start index, so the program never loops over the
 * set. With F_SET_SPREAD (ds_hash_fallback spread), the hash algorithms and random
 * replace a walk away from a down start index by a rendezvous pick among all live
 * ones (pick_spread: one bounded loop over live[], only when the start is down). Rotating algorithms keep their position per CPU
 * (set_cursor): each CPU is an exact Kamailio round robin of its own; together they
 * spread the same way.
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

/* pick_uri_hash is Kamailio's hash of a URI's keys (get_uri_hash_keys): the user,
 * then the host as written, or "host:port" with the port as written when its number
 * is not 5060; with user_only the user alone. which: ALG_FROM_URI, ALG_TO_URI or
 * ALG_RURI. The URI is checked as the slow path parses it first (From and To as
 * name-addr); only sip: URIs (tel:, sips: pass).
 * Returns: the hash (>= 1), or -reason. */
__noinline long pick_uri_hash(struct scratch *s, __u32 which, __u32 user_only)
{
	struct sip_msg *m;
	struct uri_info *u;
	__u32 klen;
	__u32 h;
	int r;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	if (which == ALG_RURI) {
		r = sip_parse_ruri(s);
		if (r)
			return -r;
		u = &m->ruri_info;
	} else {
		struct hdr_pos *hp = which == ALG_FROM_URI ? &m->from : &m->to;

		r = sip_check_nameaddr(s, hp->val, hp->end);
		if (r < 0)
			return r;
		u = &m->addr_uri;
	}
	if (!u->sip || !u->host_len)
		return -PASS_URI_FORM;
	klen = u->host_len;
	if (u->port && u->port != SIP_PORT_DEFAULT && u->port_end > u->host)
		klen = u->port_end - u->host; /* "host:port", as written */
	h = hash_ds_key(s, 0, u->user, u->user_len);
	if (!user_only)
		h = hash_ds_key(s, h, u->host, klen);
	return hash_ds_finish(h);
}

/* pick_spread_mix is murmur3's 32-bit finalizer, userspace/dispatch.SpreadMix: the
 * hash F_SET_SPREAD scores destinations with. */
static __always_inline __u32 pick_spread_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/* pick_spread_score is destination index d's rendezvous score for hash h,
 * userspace/dispatch.SpreadScore: mix(h ^ (d + 1) * 0x9e3779b9). The seed is a fixed
 * function of the index (sets are rebuilt from the same list in the same order); the
 * odd multiplier makes the seeds distinct, so two indexes never tie. */
static __always_inline __u32 pick_spread_score(__u32 h, __u32 d)
{
	return pick_spread_mix(h ^ ((d + 1) * 0x9e3779b9U));
}

/* pick_rendezvous returns the entry of set->live[0..live_count) with the highest
 * pick_spread_score for h (rendezvous hashing), the lowest index on a tie: live is
 * ascending and only a strictly higher score replaces the pick. A global function, so
 * the verifier walks the loop once, not once per algorithm that reaches pick_spread.
 * Returns: a destination index, or -1 (no set, or live_count out of 1..MAX_DSTS). */
__noinline int pick_rendezvous(const struct dst_set *set, __u32 h)
{
	__u32 live, j, d, sc, top;
	int best;

	if (!set)
		return -1;
	live = set->live_count;
	if (live == 0 || live > MAX_DSTS)
		return -1;
	best = set->live[0];
	top = pick_spread_score(h, best);
	/* A plain loop, not bpf_loop: at most MAX_DSTS - 1 steps of a few ALU ops, where
	 * a callback per step would cost more than the step. The constant bound is what
	 * the verifier checks; live (<= MAX_DSTS, checked above) ends it early. j is a
	 * known constant in each step, so the mask is for clang's sake only. */
	for (j = 1; j < MAX_DSTS; j++) {
		if (j >= live)
			break;
		d = set->live[j & DST_MASK];
		sc = pick_spread_score(h, d);
		if (sc > top) {
			top = sc;
			best = d;
		}
	}
	return best;
}

/* pick_spread is ds_hash_fallback spread (userspace/dispatch.Set.WalkHash): a hash
 * start h whose own index is down goes to the live destination pick_rendezvous names
 * instead of the walk's next one; another destination going down leaves that pick
 * where it is. idx is the walk's pick, start = h % m. The loop runs only when the
 * start is down.
 * Returns: the destination index (idx when spread does not apply). */
static __always_inline int pick_spread(const struct dst_set *set, __u32 h, __u32 start, int idx)
{
	int best;

	if (!(set->flags & F_SET_SPREAD) || idx < 0 || (__u32)idx == start)
		return idx; /* the start index is up (next_up[i] == i exactly then), or none is */
	best = pick_rendezvous(set, h);
	return best < 0 ? idx : best; /* -1: nothing up among the start indexes: the use_default default */
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
	__u32 m = set->hash_mod, n = set->count, start = 0, raw;
	int rotate = 0, hashed = 0, idx;

	if (!(set->flags & F_SET_EXISTS))
		return -PASS_NO_SET;
	if (set->flags & F_SET_TOO_LARGE)
		return -PASS_SET_TOO_LARGE;
	if (m == 0 || m > MAX_DSTS || n == 0 || n > MAX_DSTS || !cur)
		return -PASS_NO_DST;

	switch (lis->alg) {
	case ALG_CALLID:
		start = hash_ds_finish(hash_ds_key(s, 0, s->msg.callid, s->msg.callid_len));
		hashed = 1;
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
		hashed = 1;
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
		hashed = 1;
		break;
	}
	case ALG_CALL_LOAD:
		return callload_pick(s, set); /* no start index: callload.h */
	case ALG_AUTH_USER:
	case ALG_PVAR:
	case ALG_PARALLEL:
	case ALG_LATENCY:
	case ALG_SRV_WEIGHT:
	case ALG_OVERLOAD:
		return -PASS_ALG_UNSUPPORTED;
	default:
		break; /* numbers Kamailio does not define start at index 0 */
	}
	raw = start; /* the whole hash: pick_spread scores with it */
	start %= m;
	barrier_var(start); /* keep the mask: clang knows start < m <= MAX_DSTS, the verifier does not */
	idx = set->next_up[start & DST_MASK];
	if (hashed)
		idx = pick_spread(set, raw, start, idx);
	if (idx < 0 || (__u32)idx >= n)
		return -PASS_NO_DST;
	if (rotate)
		cur->rr = ((__u32)idx + 1) % n; /* Kamailio: last = picked + 1 */
	return idx & DST_MASK;
}

#endif
