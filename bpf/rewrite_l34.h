/* This file contains the packet rewrite: resizing, moving the front part, L2-L4 headers, checksums and the FIB next hop. */
#ifndef SIPEDGE_REWRITE_L34_H
#define SIPEDGE_REWRITE_L34_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "structs.h"
#include "config.h"
#include "pass_reasons.h"
#include "parse_sip.h"

#ifndef AF_INET
#define AF_INET FAMILY_V4
#endif
#ifndef AF_INET6
#define AF_INET6 FAMILY_V6
#endif

/*
 * Checksums. All sums are 16-bit one's-complement sums in memory order: the bytes
 * are added as little-endian words, exactly what the kernel's csum_partial does on
 * x86, so the result is stored into the header as is. A byte at an even payload
 * offset is the low byte of its word, at an odd offset the high byte; moving bytes
 * by an odd distance therefore swaps the bytes of their sum (csum_swap).
 *
 * The UDP checksum is updated, not recomputed: the received checksum gives the sum
 * T of the received payload (minus pseudo header and UDP header). The rewrite moves
 * the payload's front part and keeps the tail in place, so
 *   T' = T + sum(inserted) - sum(deleted)
 *        + for every kept segment moved by an odd distance: swap(S) - S,
 * where the tail's sum, when the total size change is odd, is T minus everything
 * before it. Only the bytes in front of the last edit are ever summed. Errors in the
 * received payload stay errors (no checksum laundering), as with incremental updates
 * everywhere. Our Via line is even by construction (parity padding), so a plain
 * INVITE or its reply moves the tail by an even distance and sums only the edits.
 */

static __always_inline __u32 csum_fold(__u64 x)
{
	x = (x & 0xffffffffULL) + (x >> 32);
	x = (x & 0xffffffffULL) + (x >> 32);
	x = (x & 0xffff) + (x >> 16);
	x = (x & 0xffff) + (x >> 16);
	x = (x & 0xffff) + (x >> 16);
	return x;
}

static __always_inline __u32 csum_add(__u32 a, __u32 b)
{
	return csum_fold((__u64)a + b);
}

static __always_inline __u32 csum_sub(__u32 a, __u32 b)
{
	return csum_fold((__u64)a + (~b & 0xffff));
}

static __always_inline __u32 csum_swap(__u32 a)
{
	return ((a & 0xff) << 8) | (a >> 8);
}

/* csum_buf sums buf[off, off+len) as if buf[off] sat at an even offset. */
__noinline __u32 csum_buf(struct scratch *s, __u32 off, __u32 len)
{
	__u64 acc = 0, w;

	if (!s)
		return 0;
	for (int i = 0; i < MAX_LINE_WORDS; i++) {
		if (len < 8)
			break;
		w = *(__u64 *)BUF_AT(s, off);
		acc += w;
		acc += acc < w; /* end-around carry */
		off += 8;
		len -= 8;
	}
	if (len) {
		w = *(__u64 *)BUF_AT(s, off) & ((1ULL << (8 * len)) - 1);
		acc += w;
		acc += acc < w;
	}
	return csum_fold(acc);
}

/* csum_at is the sum of buf[off, off+len) placed at payload offset pos. */
static __always_inline __u32 csum_at(struct scratch *s, __u32 off, __u32 len, __u32 pos)
{
	__u32 c = csum_buf(s, off, len);

	return (pos & 1) ? csum_swap(c) : c;
}

static __always_inline __u32 csum_addr(const __u8 *a, __u8 family)
{
	__u64 acc = *(const __u32 *)a;

	if (family == FAMILY_V6)
		acc += (__u64)*(const __u32 *)(a + 4) + *(const __u32 *)(a + 8) + *(const __u32 *)(a + 12);
	return csum_fold(acc);
}

/* csum_l4_fixed sums the pseudo header and the UDP header without its checksum. */
static __always_inline __u32 csum_l4_fixed(const __u8 *saddr, const __u8 *daddr, __u8 family,
					   __u16 sport, __u16 dport, __u16 udp_len)
{
	__u64 acc = csum_addr(saddr, family) + csum_addr(daddr, family);

	acc += bpf_htons(IPPROTO_UDP) + 2 * (__u64)bpf_htons(udp_len); /* pseudo header + UDP header */
	acc += bpf_htons(sport) + bpf_htons(dport);
	return csum_fold(acc);
}

/* rw_fib finds the next hop of the forwarded packet (from the listener to fwd.daddr)
 * and fills fwd.smac, fwd.dmac and fwd.ifindex. Returns: PASS_NONE or the reason. */
__noinline int rw_fib(struct xdp_md *ctx, struct scratch *s)
{
	struct bpf_fib_lookup fib = {};
	struct fwd_info *f;
	__u32 l3len;
	long r;

	if (!ctx || !s)
		return PASS_INTERNAL;
	f = &s->fwd;
	l3len = (f->family == FAMILY_V4 ? sizeof(struct iphdr) : 0) + sizeof(struct udphdr) +
		s->msg.len + f->delta;
	fib.family = f->family == FAMILY_V4 ? AF_INET : AF_INET6;
	fib.l4_protocol = IPPROTO_UDP;
	fib.sport = bpf_htons(f->sport);
	fib.dport = bpf_htons(f->dport);
	fib.tot_len = l3len; /* host order; checked against the route's MTU */
	fib.ifindex = ctx->ingress_ifindex;
	if (f->family == FAMILY_V4) {
		__builtin_memcpy(&fib.ipv4_src, f->saddr, 4);
		__builtin_memcpy(&fib.ipv4_dst, f->daddr, 4);
	} else {
		__builtin_memcpy(fib.ipv6_src, f->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, f->daddr, 16);
	}
	r = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (r == BPF_FIB_LKUP_RET_NO_NEIGH)
		return PASS_FIB_NO_NEIGH;
	if (r == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return PASS_FIB_MTU;
	if (r != BPF_FIB_LKUP_RET_SUCCESS)
		return PASS_FIB;
	__builtin_memcpy(f->smac, fib.smac, ETH_ALEN);
	__builtin_memcpy(f->dmac, fib.dmac, ETH_ALEN);
	f->ifindex = fib.ifindex;
	return PASS_NONE;
}

/* rw_store copies payload-copy bytes [pos, pos+len) into the packet at offset at
 * (len 0 is a no-op). */
static __always_inline long rw_store(struct xdp_md *ctx, struct scratch *s, __u32 at, __u32 pos, __u32 len)
{
	len &= IN_MASK;
	if (!len)
		return 0;
	/* Masked offset plus masked length stays inside struct scratch (BUF_IN + 2*IN_MASK
	 * < SCRATCH_BUF_SIZE): the verifier's proof for the helper's memory argument. */
	return bpf_xdp_store_bytes(ctx, at, IN_AT(s, pos), len);
}

/* rw_write_headers writes Ethernet, IP and UDP headers (checksum 0) for a payload of
 * plen bytes at the front of the resized packet. Returns: 0, or -1 when the frame
 * is too short (cannot happen after a successful resize). */
static __always_inline int rw_write_headers(struct xdp_md *ctx, struct fwd_info *f, __u32 plen)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
	if (f->family == FAMILY_V4) {
		struct iphdr *ip = (void *)(eth + 1);
		__u64 acc;

		if ((void *)(ip + 1) > data_end)
			return -1;
		eth->h_proto = bpf_htons(ETH_P_IP);
		/* What the kernel writes for an unconnected UDP socket with the default
		 * path-MTU discovery: DF set, ID 0, TOS 0. */
		*(__u8 *)ip = IPV4_VERSION_IHL;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*udp) + plen);
		ip->id = 0;
		ip->frag_off = bpf_htons(IPV4_DF);
		ip->ttl = cfg_ip_ttl;
		ip->protocol = IPPROTO_UDP;
		ip->check = 0;
		__builtin_memcpy(&ip->saddr, f->saddr, 4);
		__builtin_memcpy(&ip->daddr, f->daddr, 4);
		acc = 0;
#pragma unroll
		for (int i = 0; i < (int)sizeof(*ip) / 4; i++)
			acc += ((__u32 *)ip)[i];
		ip->check = ~csum_fold(acc) & 0xffff;
		udp = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__u32 *)ip6 = bpf_htonl(0x60000000); /* version 6, traffic class 0, flow label 0 */
		ip6->payload_len = bpf_htons(sizeof(*udp) + plen);
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = cfg_ip_ttl;
		__builtin_memcpy(&ip6->saddr, f->saddr, 16);
		__builtin_memcpy(&ip6->daddr, f->daddr, 16);
		udp = (void *)(ip6 + 1);
	}
	if ((void *)(udp + 1) > data_end)
		return -1;
	udp->source = bpf_htons(f->sport);
	udp->dest = bpf_htons(f->dport);
	udp->len = bpf_htons(sizeof(*udp) + plen);
	udp->check = 0;
	return 0;
}

/* rw_apply resizes the packet by fwd.delta, rebuilds the headers, moves the front part
 * with the edits applied, patches in place and sets the UDP checksum.
 * Returns: PASS_NONE; PASS_ADJUST when the resize is refused (packet untouched);
 * -1 when a store failed after the resize (the caller must drop). */
__noinline int rw_apply(struct xdp_md *ctx, struct scratch *s)
{
	struct fwd_info *f;
	struct pkt_info *pi;
	__u32 plen, nplen, hdr, t, tn, front = 0, oldpos = 0, newpos = 0, n;
	__s32 delta;
	__u16 *check;
	void *data, *data_end;

	if (!ctx || !s)
		return PASS_INTERNAL;
	f = &s->fwd;
	pi = &s->pkt;
	plen = pi->payload_len;
	delta = f->delta;
	nplen = plen + delta;
	if (plen > SIP_MAX_LEN || delta > XDP_GROW_MAX || delta < -(__s32)SIP_MAX_LEN ||
	    nplen > SIP_MAX_LEN + XDP_GROW_MAX)
		return PASS_GROW;
	hdr = pi->payload_off; /* same layout out as in: eth + ip + udp */
	if (hdr != sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) &&
	    hdr != sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + sizeof(struct udphdr))
		return PASS_INTERNAL;

	/* T: the received payload's sum, from the received checksum. */
	t = csum_sub(~pi->udp_check & 0xffff,
		     csum_l4_fixed(pi->saddr, pi->daddr, pi->family, pi->sport, pi->dport, pi->udp_len));
	tn = t;

	if (bpf_xdp_adjust_head(ctx, -delta))
		return PASS_ADJUST;
	/* From here on the packet is changed: failures drop. */
	if (rw_write_headers(ctx, f, nplen))
		return -1;

	n = f->n_edits;
	for (int k = 0; k < MAX_EDITS; k++) {
		struct edit e;
		__u32 seg, sum;

		if (k >= n)
			break;
		e = f->edits[k];
		if (e.pos < oldpos || e.pos > plen)
			return -1;
		/* the kept segment in front of the edit */
		seg = e.pos - oldpos;
		if (seg && (((newpos - oldpos) & 1) || (delta & 1))) {
			sum = csum_at(s, BUF_IN + oldpos, seg, oldpos);
			if ((newpos - oldpos) & 1)
				tn = csum_add(tn, csum_sub(csum_swap(sum), sum));
			front = csum_add(front, sum);
		}
		if (rw_store(ctx, s, hdr + newpos, oldpos, seg))
			return -1;
		newpos += seg;
		/* the deleted bytes */
		if (e.del) {
			sum = csum_at(s, BUF_IN + e.pos, e.del, e.pos);
			tn = csum_sub(tn, sum);
			front = csum_add(front, sum);
		}
		/* the inserted bytes */
		if (e.ins_len) {
			if (e.ins_len > BLK_MASK || e.ins_off >= BUF_IN)
				return -1;
			tn = csum_add(tn, csum_at(s, e.ins_off, e.ins_len, newpos));
			if (bpf_xdp_store_bytes(ctx, hdr + newpos, &s->buf[e.ins_off & (BUF_IN - 1)],
						e.ins_len & BLK_MASK ? e.ins_len & BLK_MASK : 1))
				return -1;
			newpos += e.ins_len;
		}
		oldpos = e.pos + e.del;
	}
	/* The tail stayed in place and moved by delta relative to the payload start. */
	if (delta & 1) {
		__u32 tail = csum_sub(t, front);

		tn = csum_add(tn, csum_sub(csum_swap(tail), tail));
	}

	/* The in-place patch (Max-Forwards digits): not inside any edit. */
	if (f->patch_len) {
		__u32 pos = f->patch_pos, at = pos, n_patch = f->patch_len;

#pragma unroll
		for (int k = 0; k < MAX_EDITS; k++) {
			if (k < n && f->edits[k].pos <= pos)
				at += f->edits[k].ins_len - f->edits[k].del;
		}
		tn = csum_sub(tn, csum_at(s, BUF_IN + pos, n_patch, at));
		tn = csum_add(tn, csum_at(s, f->patch_off, n_patch, at));
		if (n_patch > MAXFWD_MAX_DIGITS ||
		    bpf_xdp_store_bytes(ctx, hdr + at, &s->buf[f->patch_off & (BUF_IN - 1)], n_patch))
			return -1;
	}

	/* The UDP checksum over the new pseudo header, UDP header and payload. */
	tn = csum_add(tn, csum_l4_fixed(f->saddr, f->daddr, f->family, f->sport, f->dport,
					sizeof(struct udphdr) + nplen));
	tn = ~tn & 0xffff;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* the UDP checksum is the last field before the payload; a constant offset per
	 * family keeps the pointer's range known to the verifier */
	check = data + (f->family == FAMILY_V4 ? sizeof(struct ethhdr) + sizeof(struct iphdr) :
						 sizeof(struct ethhdr) + sizeof(struct ipv6hdr)) +
		__builtin_offsetof(struct udphdr, check);
	if ((void *)(check + 1) > data_end)
		return -1;
	*check = tn ? tn : 0xffff; /* 0 means "no checksum" in UDP */
	return PASS_NONE;
}

#endif
