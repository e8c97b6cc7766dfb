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
		__u32 w0, w1, w2, sa, da;

		if ((void *)(ip + 1) > data_end)
			return -1;
		eth->h_proto = bpf_htons(ETH_P_IP);
		/* What the kernel writes for an unconnected UDP socket with the default
		 * path-MTU discovery: DF set, ID 0, TOS 0. The header is built as five
		 * 32-bit words (little endian, as they lie in memory) and its checksum
		 * summed from them, not read back: reading the header right after
		 * writing it byte by byte stalls on store forwarding. */
		w0 = IPV4_VERSION_IHL | (__u32)bpf_htons(sizeof(*ip) + sizeof(*udp) + plen) << 16;
		w1 = (__u32)bpf_htons(IPV4_DF) << 16; /* ID 0 */
		w2 = cfg_ip_ttl | IPPROTO_UDP << 8; /* checksum 0 while summing */
		__builtin_memcpy(&sa, f->saddr, 4);
		__builtin_memcpy(&da, f->daddr, 4);
		w2 |= (~csum_fold((__u64)w0 + w1 + w2 + sa + da) & 0xffff) << 16;
		((__u32 *)ip)[0] = w0;
		((__u32 *)ip)[1] = w1;
		((__u32 *)ip)[2] = w2;
		((__u32 *)ip)[3] = sa;
		((__u32 *)ip)[4] = da;
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

/* rw_copy copies n bytes from buf[src] to buf[dst], 8 bytes a step (up to 7 bytes
 * after dst + n are overwritten), and returns their sum as if buf[src] sat at an even
 * offset: the checksum comes with the copy, no second pass. */
__noinline __u32 rw_copy(struct scratch *s, __u32 dst, __u32 src, __u32 n)
{
	__u64 acc = 0, w;

	if (!s)
		return 0;
	for (int i = 0; i < COPY_STEPS; i++) {
		if (!n)
			break;
		w = *(__u64 *)BUF_AT(s, src);
		*(__u64 *)BUF_AT(s, dst) = w;
		if (n < 8) {
			w &= (1ULL << (8 * n)) - 1;
			n = 0;
		} else {
			n -= 8;
		}
		acc += w;
		acc += acc < w; /* end-around carry */
		src += 8;
		dst += 8;
	}
	return csum_fold(acc);
}

/* csum_short sums the n (<= 8) bytes of w (little endian) as if at an even offset. */
static __always_inline __u32 csum_short(__u64 w, __u32 n)
{
	return csum_fold(n >= 8 ? w : w & ((1ULL << (8 * n)) - 1));
}

/* rw_apply applies the edits: it assembles the new front part of the payload (the
 * bytes up to the end of the last edit, rewritten) in buf[BUF_OUT], summing it on
 * the way, resizes the packet by fwd.delta, writes the headers, stores the front
 * part with one helper call in front of the tail (which stays in place), patches
 * Max-Forwards and sets the UDP checksum:
 *   T' = S(new front) + S(tail, swapped when delta is odd),  S(tail) = T - S(old front).
 * Every sum goes into one of two accumulators by the parity of its new place (a
 * byte at an odd offset is the high byte of its word); the odd one is swapped
 * once at the end, so there is one fold, not one per term.
 * Returns: PASS_NONE; PASS_ADJUST when the resize is refused (packet untouched);
 * -1 when a store failed after the resize (the caller must drop). */
__noinline int rw_apply(struct xdp_md *ctx, struct scratch *s)
{
	struct fwd_info *f;
	struct pkt_info *pi;
	__u32 plen, nplen, hdr, t, tn, oldpos = 0, newpos = 0, n, sum, odd;
	__u64 acc[2] = {}; /* sums placed at even / odd payload offsets (the odd one is swapped once) */
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

	/* The new front part: kept segments and inserted text, in order. Sums are
	 * accumulated per parity of their new place and folded once at the end; the
	 * old front part is taken out of the tail's sum T, which moves by delta. */
	odd = delta & 1;
	acc[odd] += t;
	n = f->n_edits;
	for (int k = 0; k < MAX_EDITS; k++) {
		struct edit e;
		__u32 seg;

		if (k >= n)
			break;
		e = f->edits[k];
		if (e.pos < oldpos || e.pos > plen || e.ins_len > BLK_MASK || e.ins_off >= BUF_IN)
			return PASS_INTERNAL;
		seg = e.pos - oldpos;
		if (seg) {
			sum = rw_copy(s, BUF_OUT + newpos, BUF_IN + oldpos, seg);
			acc[(oldpos ^ odd) & 1] += ~sum & 0xffff;
			acc[newpos & 1] += sum;
			newpos += seg;
		}
		if (e.del)
			acc[(e.pos ^ odd) & 1] += ~csum_buf(s, BUF_IN + e.pos, e.del) & 0xffff;
		if (e.ins_len) {
			sum = rw_copy(s, BUF_OUT + newpos, e.ins_off, e.ins_len);
			acc[newpos & 1] += sum;
			newpos += e.ins_len;
		}
		oldpos = e.pos + e.del;
	}
	if (!newpos || newpos > OUT_MASK || newpos != oldpos + delta)
		return PASS_INTERNAL;

	/* The in-place patch (Max-Forwards digits): not inside any edit; in the front
	 * part or in the tail. Its new place is its old one moved by the edits before it. */
	if (f->patch_len) {
		__u32 pos = f->patch_pos, at = pos, np = f->patch_len;
		__u64 nw = *(__u64 *)BUF_AT(s, f->patch_off);

		if (np > MAXFWD_MAX_DIGITS)
			return PASS_INTERNAL;
#pragma unroll
		for (int k = 0; k < MAX_EDITS; k++) {
			if (k < n && f->edits[k].pos <= pos)
				at += f->edits[k].ins_len - f->edits[k].del;
		}
		acc[at & 1] += ~csum_short(in_u64(s, pos), np) & 0xffff;
		acc[at & 1] += csum_short(nw, np);
		if (pos < oldpos) { /* in the front part: patch the copy */
			__u8 *q = BUF_AT(s, BUF_OUT + at);
			__u64 keep = np >= 8 ? 0 : ~0ULL << (8 * np);

			*(__u64 *)q = (*(__u64 *)q & keep) | (nw & ~keep);
			f->patch_len = 0;
		} else {
			f->patch_pos = at; /* where it goes after the resize */
		}
	}

	if (bpf_xdp_adjust_head(ctx, -delta))
		return PASS_ADJUST;
	/* From here on the packet is changed: failures drop. */
	if (rw_write_headers(ctx, f, nplen))
		return -1;
	if (bpf_xdp_store_bytes(ctx, hdr, BUF_AT(s, BUF_OUT), newpos & OUT_MASK))
		return -1;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (f->patch_len) {
		/* A tail patch: written in place, or through the helper at the very end
		 * of the packet (8 bytes are checked, at most MAXFWD_MAX_DIGITS written). */
		__u32 np = ((f->patch_len - 1) & (MAXFWD_MAX_DIGITS - 1)) + 1; /* 1-8, checked above */
		__u8 *q = data + ((hdr + f->patch_pos) & 0xfff), *src = &s->buf[f->patch_off & (BUF_IN - 1)];

		if ((void *)(q + MAXFWD_MAX_DIGITS) <= data_end) {
#pragma unroll
			for (int k = 0; k < MAXFWD_MAX_DIGITS; k++)
				if (k < np)
					q[k] = src[k];
		} else if (bpf_xdp_store_bytes(ctx, hdr + f->patch_pos, src, np)) {
			return -1;
		}
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
	}

	/* The UDP checksum over the new pseudo header, UDP header and payload. */
	tn = csum_add(csum_fold(acc[0]), csum_swap(csum_fold(acc[1])));
	tn = csum_add(tn, csum_l4_fixed(f->saddr, f->daddr, f->family, f->sport, f->dport,
					sizeof(struct udphdr) + nplen));
	tn = ~tn & 0xffff;
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
