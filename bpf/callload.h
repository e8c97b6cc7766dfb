/* This file contains call-load dispatching (algorithm 10): the least-loaded pick, the stickiness of a call's later messages, and the loads the program keeps between the agent's writes. */
#ifndef SIPEDGE_CALLLOAD_H
#define SIPEDGE_CALLLOAD_H

#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "pass_reasons.h"
#include "maps.h"
#include "hash.h"

/*
 * The same decisions as userspace/dispatch's Call-ID table (callload.go, place), on
 * the same key (the events' Call-ID hash, hash_callid):
 *
 *  - An INVITE of a call call_dst holds, whose destination is up: there, uncharged
 *    while the call is live (a retransmission, a re-INVITE); a released call (an
 *    INVITE again after a 401/407) is charged there again if its maxload leaves
 *    room. Otherwise the least-loaded up destination with a duid, skipping those at
 *    their maxload (0: no limit), ties to the lowest index, the use_default default
 *    only when no other can be; none: PASS_NO_DST, and the slow path answers.
 *  - Any other request of a call call_dst holds goes where the call went, in any
 *    state. One call_dst does not hold (never seen here, or evicted from the LRU)
 *    passes (PASS_CALL_UNKNOWN): the slow path's table holds every call the agent
 *    saw, the slow path's picks included, and sends one it never saw to index 0.
 *
 * Loads are keyed by load slot, one per (set, duid), as the table keys them: a
 * reload that moves a destination to another index keeps its slot, so a call
 * still finds its destination. A pick is recorded (call_dst, +1 on its load) only
 * once the packet is forwarded (callload_forwarded): a packet passed after the
 * pick (FIB, rewrite) is placed by the slow path, and charged there, once. The
 * agent learns the pick from the INVITE's event (set, dst_idx) and charges it in
 * its table; it writes the table's loads back into dst_load after each event
 * batch. In between, the program's own +1s (and -1s on releases) keep a burst of
 * INVITEs spreading.
 */

/* callload_load is the load of slot, 0 when out of range. */
static __always_inline __s64 callload_load(__u32 slot)
{
	__s64 *v = bpf_map_lookup_elem(&dst_load, &slot);

	return v ? *v : 0;
}

/* callload_add adds delta to slot's load, atomically (programs on other CPUs add
 * too). A release never takes a load below 0: the agent's next write would put it
 * right, but a pick would meanwhile see the destination as emptier than any. */
static __always_inline void callload_add(__u32 slot, __s64 delta)
{
	__s64 *v;

	if (!slot)
		return;
	v = bpf_map_lookup_elem(&dst_load, &slot);
	if (!v || (delta < 0 && *v <= 0))
		return;
	__sync_fetch_and_add(v, delta);
}

/* callload_room reports whether d can take one more call: no maxload, or its load
 * below it. */
static __always_inline int callload_room(const struct dst *d)
{
	return !d->maxload || callload_load(d->load_slot) < (__s64)d->maxload;
}

/* callload_pick is algorithm 10 on set for the request in s. A pick to record sets
 * fwd.cl_hash and fwd.cl_slot (callload_forwarded records it). A global function:
 * the verifier walks its loop once.
 * Returns: the destination index, or -reason. */
__noinline int callload_pick(struct scratch *s, const struct dst_set *set)
{
	const struct dst *d;
	struct fwd_info *f;
	struct call_dst *c;
	__u32 i, n, want = 0, state = 0;
	int at, best, invite;
	__s64 load;
	__u64 h;

	if (!s || !set)
		return -PASS_INTERNAL;
	f = &s->fwd;
	n = set->count;
	if (n == 0 || n > MAX_DSTS)
		return -PASS_NO_DST;
	invite = s->msg.method == METHOD_INVITE;
	h = hash_callid(s);
	c = bpf_map_lookup_elem(&call_dst, &h);
	if (c) {
		want = c->load_slot;
		state = c->state;
	}
	f->cl_at = -1;
	f->cl_best = -1;
	f->cl_dflt = -1;
	f->cl_top = 0;
	f->cl_want = want;
	f->cl_invite = invite;
	/* One walk finds the call's destination and, for an INVITE, the least-loaded
	 * one. A plain loop: at most MAX_DSTS steps of a map look-up and a few
	 * compares. The constant bound is what the verifier checks; n (<= MAX_DSTS,
	 * checked above) ends it early. What it finds goes to fwd (map memory), whose
	 * values the verifier does not track: kept in registers, each index found
	 * would be a state of its own, and the walk would exceed the verifier's
	 * budget. The walk reads its inputs (the call's slot, INVITE or not, the
	 * count) from memory too: a register would be narrowed by each test of it, and
	 * every mix of narrowings would be a state of its own at the next step. */
	for (i = 0; i < MAX_DSTS; i++) {
		if (i >= set->count)
			break;
		d = &set->dsts[i & DST_MASK];
		if (!d->load_slot)
			continue; /* no duid: alg 10 never picks it */
		if (f->cl_want && d->load_slot == f->cl_want)
			f->cl_at = i;
		if (!f->cl_invite || !(d->flags & F_DST_UP))
			continue;
		if (d->flags & F_DST_DEFAULT) {
			f->cl_dflt = i;
			continue;
		}
		load = callload_load(d->load_slot);
		if (d->maxload && load >= (__s64)d->maxload)
			continue;
		if (f->cl_best < 0 || load < f->cl_top) {
			f->cl_best = i;
			f->cl_top = load;
		}
	}
	at = f->cl_at;
	best = f->cl_best;
	if (at >= MAX_DSTS || best >= MAX_DSTS || f->cl_dflt >= MAX_DSTS)
		return -PASS_INTERNAL; /* never: for the verifier */
	if (!invite)
		return at >= 0 ? at : -PASS_CALL_UNKNOWN;
	if (at >= 0 && (set->dsts[at & DST_MASK].flags & F_DST_UP)) {
		if (state != CALL_RELEASED)
			return at; /* a retransmission or a re-INVITE: already counted */
		if (callload_room(&set->dsts[at & DST_MASK]))
			best = at; /* a new INVITE of a released call: counted again there */
	}
	if (best < 0 && f->cl_dflt >= 0 && callload_room(&set->dsts[f->cl_dflt & DST_MASK]))
		best = f->cl_dflt;
	if (best < 0)
		return -PASS_NO_DST;
	f->cl_hash = h;
	f->cl_slot = set->dsts[best & DST_MASK].load_slot;
	if (c && state != CALL_RELEASED && want != f->cl_slot)
		f->cl_old = want; /* a live call whose destination is down or gone: moved */
	return best;
}

/* callload_release moves the call h through what a forwarded message does to it, as
 * dispatch.CallLoad.Update: a BYE releases a live call; a CANCEL or a 3xx-6xx final
 * releases an unanswered one; a 2xx confirms it. A release takes 1 off its load.
 * The state changes by compare-and-swap: of two CPUs forwarding retransmissions of
 * one BYE, one releases. */
static __always_inline void callload_release(__u64 h, struct sip_msg *m)
{
	struct call_dst *c = bpf_map_lookup_elem(&call_dst, &h);
	__u32 st, to;

	if (!c)
		return;
	st = c->state;
	if (m->is_request) {
		if (m->method == METHOD_BYE && (st == CALL_INIT || st == CALL_CONFIRMED))
			to = CALL_RELEASED;
		else if (m->method == METHOD_CANCEL && st == CALL_INIT)
			to = CALL_RELEASED;
		else
			return;
	} else {
		if (m->cseq_method != METHOD_INVITE || m->status < STATUS_FINAL_MIN || st != CALL_INIT)
			return;
		to = m->status < STATUS_REDIRECT_MIN ? CALL_CONFIRMED : CALL_RELEASED;
	}
	if (__sync_val_compare_and_swap(&c->state, st, to) != st)
		return;
	if (to == CALL_RELEASED)
		callload_add(c->load_slot, -1);
}

/* callload_forwarded runs once a message is forwarded: it records an alg 10 pick
 * (call_dst, +1 on its load, -1 on the load a live call left) and, on an alg 10
 * listener, applies what a BYE, CANCEL or final reply to INVITE does to its call. */
static __always_inline void callload_forwarded(struct scratch *s, struct listener *lis)
{
	struct fwd_info *f = &s->fwd;
	struct sip_msg *m = &s->msg;
	struct call_dst v = {};

	if (f->cl_slot) {
		v.load_slot = f->cl_slot;
		v.state = CALL_INIT;
		bpf_map_update_elem(&call_dst, &f->cl_hash, &v, BPF_ANY);
		callload_add(f->cl_slot, 1);
		callload_add(f->cl_old, -1);
		return;
	}
	if (lis->alg != ALG_CALL_LOAD)
		return;
	if (m->is_request ? m->method == METHOD_BYE || m->method == METHOD_CANCEL
			  : m->cseq_method == METHOD_INVITE && m->status >= STATUS_FINAL_MIN)
		callload_release(hash_callid(s), m);
}

#endif
