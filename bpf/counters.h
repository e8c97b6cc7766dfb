/* This file contains the per-CPU counters and the two exits that count: pass() and drop(). */
#ifndef SIPEDGE_COUNTERS_H
#define SIPEDGE_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"

/* pass counts the reason and hands the packet to the stack (the slow path).
 * @ctx: the packet (unused today; kept so every exit reads the same)
 * @reason: enum pass_reason
 * Returns: XDP_PASS */
static __always_inline int pass(struct xdp_md *ctx, __u32 reason)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&pass_count, &key);

	(void)ctx;
	if (n)
		*n += 1; /* per-CPU: no atomic needed */
	return XDP_PASS;
}

/* drop counts the reason and drops the packet.
 * Returns: XDP_DROP */
static __always_inline int drop(struct xdp_md *ctx, __u32 reason)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&drop_count, &key);

	(void)ctx;
	if (n)
		*n += 1;
	return XDP_DROP;
}

static __always_inline struct listener_stats *counters_listener(__u32 id)
{
	__u32 key = id;

	return bpf_map_lookup_elem(&listener_stats, &key);
}

/* counters_dst counts one packet of bytes payload bytes sent to a destination. */
static __always_inline void counters_dst(__u32 set_slot, __s32 idx, __u32 bytes)
{
	__u32 key = (set_slot % MAX_SETS) * MAX_DSTS + ((__u32)idx & DST_MASK);
	struct dst_stats *st = bpf_map_lookup_elem(&dst_stats, &key);

	if (st) {
		st->packets += 1;
		st->bytes += bytes;
	}
}

#endif
