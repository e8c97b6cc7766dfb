/* This file contains the hashes: Kamailio's ds_get_hash (word-wise) and the branch-token word hash. */
#ifndef SIPEDGE_HASH_H
#define SIPEDGE_HASH_H

#include <linux/types.h>
#include "consts.h"
#include "structs.h"
#include "parse_sip.h"

/*
 * Kamailio's ds_get_hash (dispatch.c) reads each key as 4-byte big-endian words of
 * SIGNED chars: v = (p[0]<<24) + (p[1]<<16) + (p[2]<<8) + p[3] with every byte
 * sign-extended. A byte b >= 0x80 contributes b - 256, so v equals the plain
 * big-endian word minus 256<<shift for each such byte; that is minus (its bit 7,
 * moved up one place). In 32 bits: v = be - ((be & 0x80808080) << 1), where the top
 * byte's correction falls off the end, as (x - 256) << 24 == x << 24 (mod 2^32).
 * The same formula holds for the 1-3 byte tail word. Vectors: kamailio-behaviour.md
 * 2.1 and userspace/dispatch/hash.go (the Go twin); xdp_test.go checks both agree.
 */

static __always_inline __u32 hash_ds_word(__u32 be)
{
	__u32 v = be - ((be & 0x80808080U) << 1);

	return v ^ (v >> 3);
}

/* hash_ds_key adds one key (payload bytes [off, off+len)) to h, without the finish.
 * len <= CALLID_MAX. */
__noinline __u32 hash_ds_key(struct scratch *s, __u32 h, __u32 off, __u32 len)
{
	__u32 tail;
	__u64 w;

	if (!s || len > CALLID_MAX)
		return h;
	/* 8 bytes (two words) per step. */
	for (int i = 0; i < CALLID_MAX / 8 + 1; i++) {
		if (len < 8)
			break;
		w = in_u64(s, off);
		h += hash_ds_word(__builtin_bswap32((__u32)w));
		h += hash_ds_word(__builtin_bswap32((__u32)(w >> 32)));
		off += 8;
		len -= 8;
	}
	w = in_u64(s, off);
	if (len >= 4) {
		h += hash_ds_word(__builtin_bswap32((__u32)w));
		w >>= 32;
		len -= 4;
	}
	/* 0-3 bytes left: v = (v << 8) + b per byte, i.e. their big-endian value. Kamailio
	 * adds this word even when no byte is left (v = 0 adds 0). */
	if (len == 0)
		return h;
	tail = __builtin_bswap32((__u32)w & (__u32)((1ULL << (8 * len)) - 1)) >> (8 * (4 - len));
	return h + hash_ds_word(tail);
}

static __always_inline __u32 hash_ds_finish(__u32 h)
{
	h = (h + (h >> 11)) + ((h >> 13) + (h >> 23));
	return h ? h : 1;
}

/*
 * The branch token (docs/forwarding-contract.md, "The branch token"):
 *   mix(h, w) = ((h ^ w) * K) ^ (that >> 32)
 *   absorb(h, p): mix every full 8-byte little-endian word, then one tail word holding
 *   the 0-7 remaining bytes with len(tail) << 56.
 * Inputs are payload bytes, read 8 at a time from the scratch copy.
 */
static __always_inline __u64 hash_mix(__u64 h, __u64 w)
{
	h = (h ^ w) * TOKEN_K;
	return h ^ (h >> 32);
}

/* hash_absorb absorbs payload bytes [off, off+len) into h. len <= CALLID_MAX. */
__noinline __u64 hash_absorb(struct scratch *s, __u64 h, __u32 off, __u32 len)
{
	__u64 t;

	if (!s || len > CALLID_MAX)
		return h;
	for (int i = 0; i < CALLID_MAX / 8 + 1; i++) {
		if (len < 8)
			break;
		h = hash_mix(h, in_u64(s, off));
		off += 8;
		len -= 8;
	}
	t = len ? in_u64(s, off) & ((1ULL << (8 * len)) - 1) : 0;
	return hash_mix(h, t | (__u64)len << 56);
}

static __always_inline __u64 hash_token_finish(__u64 h)
{
	h ^= h >> 29;
	h *= TOKEN_FIN;
	return h ^ (h >> 32);
}

/* hash_token is the branch token of the top Via (B = branch, S = sent-by) and the
 * Call-ID (C). */
static __always_inline __u64 hash_token(struct scratch *s)
{
	struct sip_msg *m = &s->msg;
	__u64 h = TOKEN_SEED;

	h = hash_absorb(s, h, m->top.branch, m->top.branch_len);
	h = hash_absorb(s, h, m->top.sentby, m->top.sentby_len);
	h = hash_absorb(s, h, m->callid, m->callid_len);
	return hash_token_finish(h);
}

/* hash_callid is the 64-bit Call-ID hash carried in events (docs/fastpath.md). */
static __always_inline __u64 hash_callid(struct scratch *s)
{
	return hash_token_finish(hash_absorb(s, CALLID_SEED, s->msg.callid, s->msg.callid_len));
}

#endif
