/* This file contains the SIP text edits: our Via and the insertion block, received/rport, Max-Forwards, Route and Via removal. */
#ifndef SIPEDGE_REWRITE_SIP_H
#define SIPEDGE_REWRITE_SIP_H

#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "parse_sip.h"

/*
 * Edits are planned here and applied by rw_apply (rewrite_l34.h). Text the program
 * inserts is written into blk (scratch.buf[0, BUF_IN)); an edit names its payload
 * position, how many bytes it deletes there and which blk bytes it inserts. Edits
 * that change the length sit in fwd.edits, sorted by position; the Max-Forwards
 * decrement keeps the length and is a separate in-place patch.
 */

#define BLK_AT(s, off) ((__u8 *)((unsigned long)(s) + ((__u32)(off) & BLK_MASK)))

/* rw_hex8 returns the 8 lowercase hex digits of v, most significant first, as the
 * 8 bytes of a little-endian store. */
static __always_inline __u64 rw_hex8(__u32 v)
{
	__u64 x = v;
	__u64 alpha;

	/* Spread the 8 nibbles into 8 bytes (byte i = nibble i), then reverse. */
	x = (x | (x << 16)) & 0x0000ffff0000ffffULL;
	x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;
	x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0fULL;
	x = __builtin_bswap64(x);
	/* A nibble >= 10 carries into bit 4 when 6 is added: those bytes get 'a'-'0'-10 more. */
	alpha = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
	return x + 0x3030303030303030ULL + alpha * ('a' - '0' - 10);
}

/* rw_div10 is v / 10 for v < DIV10_MAX, without a divide instruction. */
static __always_inline __u32 rw_div10(__u32 v)
{
	return ((__u64)v * DIV10_MUL) >> DIV10_SHIFT;
}

/* rw_put_uint writes v (< 100000) in decimal at buf[off] and returns its length. */
static __always_inline __u32 rw_put_uint(struct scratch *s, __u32 off, __u32 v)
{
	__u32 n = v >= 10000 ? 5 : v >= 1000 ? 4 : v >= 100 ? 3 : v >= 10 ? 2 : 1;

#pragma unroll
	for (int i = PORT_MAX_DIGITS - 1; i >= 0; i--) {
		if (i < n) {
			__u32 q = rw_div10(v);

			*BUF_AT(s, off + i) = '0' + (v - q * 10);
			v = q;
		}
	}
	return n;
}

/* rw_put_ipv4 writes the dotted quad of addr (network order in memory) at buf[off]
 * and returns its length (7-15). No branch and no division: each octet's three
 * digits come from multiply-shifts (v / 100 == (v * 41) >> 12 and r / 10 ==
 * (r * 205) >> 11 for v < 256, r < 100), its leading zeros are shifted out, and
 * the 4-byte store of the next octet overwrites what lies past this one. */
static __always_inline __u32 rw_put_ipv4(struct scratch *s, __u32 off, __u32 addr)
{
	__u32 n = 0;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 v = (addr >> (8 * i)) & 0xff, h, r, t, len, text;

		h = (v * OCTET_DIV100_MUL) >> OCTET_DIV100_SHIFT;
		r = v - h * 100;
		t = (r * OCTET_DIV10_MUL) >> OCTET_DIV10_SHIFT;
		len = 1 + ((v + 256 - 10) >> 8) + ((v + 256 - 100) >> 8); /* 1 + (v >= 10) + (v >= 100) */
		text = ('0' + h) | ('0' + t) << 8 | ('0' + r - t * 10) << 16 | '.' << 24;
		text >>= 8 * (3 - len); /* the digits, then '.' */
		*(__u32 *)BUF_AT(s, off + n) = text;
		n += len + (i < 3); /* the last '.' is overwritten by the caller or unused */
	}
	return n;
}

/* rw_hex4 returns the 4 lowercase hex digits of v (< 0x10000), most significant
 * first, in the low 4 bytes of a little-endian store. */
static __always_inline __u32 rw_hex4(__u32 v)
{
	__u32 x = v, alpha;

	x = (x | (x << 8)) & 0x00ff00ffU;
	x = (x | (x << 4)) & 0x0f0f0f0fU;
	x = __builtin_bswap32(x);
	alpha = ((x + 0x06060606U) >> 4) & 0x01010101U;
	return x + 0x30303030U + alpha * ('a' - '0' - 10);
}

/* rw_put_ipv6 writes the RFC 5952 text of s->pkt.saddr at buf[off], without
 * brackets: lowercase hex without leading zeros, the longest run of two or more
 * zero groups (the first on a tie) as "::"; what Go's netip.Addr.String writes.
 * Returns: its length, or -1 for a v4-mapped address (Go writes those dotted).
 *
 * Verifier: no branch depends on the address. With branches, every pattern of zero
 * groups would be a path of its own, each with its own precise output offset (over
 * the 1M-instruction limit). The zero run is found with bit operations on the
 * 8-bit mask of zero groups, and each group's text and length are selected
 * arithmetically. */
__noinline int rw_put_ipv6(struct scratch *s, __u32 off)
{
	__u32 zmask = 0, x, last, len = 0, best, run, lsb, v, start;
	__u32 n = 0;

	if (!s)
		return -1;
#pragma unroll
	for (int i = 0; i < IPV6_GROUPS; i++) {
		v = (__u32)s->pkt.saddr[2 * i] << 8 | s->pkt.saddr[2 * i + 1];
		zmask |= ((v - 1) >> 31) << i; /* 1 when the group is 0 */
	}
	if (zmask == 0x1f && s->pkt.saddr[10] == 0xff && s->pkt.saddr[11] == 0xff)
		return -1; /* ::ffff:a.b.c.d */
	/* Longest run of ones: x &= x << 1 shortens every run by one, so the run length
	 * is the number of steps with x != 0; the last non-zero x flags the ends of the
	 * longest runs, its lowest bit the end of the first one. */
	x = zmask;
	last = zmask;
#pragma unroll
	for (int k = 0; k < IPV6_GROUPS; k++) {
		__u32 nz = (x + 0xff) >> 8; /* x != 0, x < 256 */

		len += nz;
		last ^= (last ^ x) & -nz;
		x &= x << 1;
	}
	lsb = last & -last;
	lsb -= 1; /* popcount(lsb - 1) = index of the lowest set bit */
	lsb = lsb - ((lsb >> 1) & 0x55);
	lsb = (lsb & 0x33) + ((lsb >> 2) & 0x33);
	lsb = (lsb + (lsb >> 4)) & 0x0f;
	best = (lsb + 1 - len) & 7;
	run = (len + 254) >> 8; /* len >= 2: compress */
	len &= -run;
	x = ((1U << len) - 1) << best; /* groups inside the run */
	start = run << best; /* the run's first group */
#pragma unroll
	for (int i = 0; i < IPV6_GROUPS; i++) {
		__u32 in = (x >> i) & 1, first = (start >> i) & 1, d, t;
		__u64 text, head;

		v = (__u32)s->pkt.saddr[2 * i] << 8 | s->pkt.saddr[2 * i + 1];
		d = 1 + ((v + 0xfff0) >> 16) + ((v + 0xff00) >> 16) + ((v + 0xf000) >> 16);
		text = rw_hex4(v) >> (8 * (4 - d));
		t = d;
		if (i < IPV6_GROUPS - 1) {
			text |= (__u64)':' << (8 * d);
			t++;
		}
		/* the run's first group writes ":" (or "::" at the start); the rest of the
		 * run writes nothing */
		head = i == 0 ? (__u64)':' | (__u64)':' << 8 : (__u64)':';
		text = (text & (in - 1ULL)) | (head & -(__u64)first);
		t = (t & (in - 1)) + ((i == 0 ? 2 : 1) & -first);
		*(__u64 *)BUF_AT(s, off + n) = text;
		n += t;
	}
	return n;
}

/* rw_text_eq reports whether payload bytes [pos, pos+n) equal buf[boff, boff+n), n <= 48. */
static __always_inline int rw_text_eq(struct scratch *s, __u32 pos, __u32 boff, __u32 n)
{
#pragma unroll
	for (int i = 0; i < HOST_TEXT_MAX / 8; i++) {
		__u64 a, b, mask;

		if (8 * i >= n)
			break;
		mask = n - 8 * i >= 8 ? ~0ULL : (1ULL << (8 * (n - 8 * i))) - 1;
		a = in_u64(s, pos + 8 * i);
		b = *(__u64 *)BUF_AT(s, boff + 8 * i);
		if ((a ^ b) & mask)
			return 0;
	}
	return 1;
}

/* rw_lis_eq reports whether payload bytes [pos, pos+n) equal text[0, n) of a listener
 * field (n <= 48 and inside the field). */
static __always_inline int rw_lis_eq(struct scratch *s, __u32 pos, const __u8 *text, __u32 n)
{
#pragma unroll
	for (int i = 0; i < HOST_TEXT_MAX / 8; i++) {
		__u64 a, b, mask;

		if (8 * i >= n)
			break;
		mask = n - 8 * i >= 8 ? ~0ULL : (1ULL << (8 * (n - 8 * i))) - 1;
		a = in_u64(s, pos + 8 * i);
		b = *(const __u64 *)((unsigned long)text + 8 * i); /* integer address: see IN_AT */
		if ((a ^ b) & mask)
			return 0;
	}
	return 1;
}

/* rw_add_edit appends an edit and keeps fwd.edits sorted by position (stable: an
 * edit goes after those at the same position). Returns: PASS_NONE or the reason. */
static __always_inline int rw_add_edit(struct fwd_info *f, __u32 pos, __u32 del, __u32 ins_off, __u32 ins_len)
{
	__u32 n = f->n_edits;

	if (n >= MAX_EDITS)
		return PASS_INTERNAL;
	f->edits[n & (MAX_EDITS - 1)].pos = pos;
	f->edits[n & (MAX_EDITS - 1)].del = del;
	f->edits[n & (MAX_EDITS - 1)].ins_off = ins_off;
	f->edits[n & (MAX_EDITS - 1)].ins_len = ins_len;
	f->n_edits = n + 1;
	f->delta += (__s32)ins_len - (__s32)del;
	/* Bubble it down: struct edit is 8 bytes with pos in the low 16 bits. */
#pragma unroll
	for (int i = MAX_EDITS - 1; i > 0; i--) {
		__u64 *a = (__u64 *)&f->edits[i - 1];
		__u64 *b = (__u64 *)&f->edits[i];

		if (i <= n && (__u16)*a > (__u16)*b) {
			__u64 t = *a;

			*a = *b;
			*b = t;
		}
	}
	return PASS_NONE;
}

/* rw_insert_block writes our Via line, Record-Route (rr) and Max-Forwards: 70 (mf) at
 * blk[BLK_INSERT] and returns the block's length. */
static __always_inline __u32 rw_insert_block(struct scratch *s, struct listener *lis, __u64 token, int rr, int mf)
{
	__u32 p = lis->via_len;

	/* Fixed-size copies: bytes past the used length are overwritten next or unused. */
	__builtin_memcpy(BLK_AT(s, BLK_INSERT), lis->via_prefix, VIA_PREFIX_MAX);
	if (p > VIA_PREFIX_MAX)
		p = VIA_PREFIX_MAX;
	if (lis->token_digits > TOKEN_DIGITS) { /* parity padding: len(ADV) is odd */
		*BLK_AT(s, p) = '0';
		p++;
	}
	*(__u64 *)BLK_AT(s, p) = rw_hex8(token >> 32);
	*(__u64 *)BLK_AT(s, p + 8) = rw_hex8((__u32)token);
	p += TOKEN_DIGITS;
	*(__u16 *)BLK_AT(s, p) = '\r' | '\n' << 8;
	p += 2;
	if (rr) {
		__builtin_memcpy(BLK_AT(s, p), lis->rr_line, RR_LINE_MAX);
		p += lis->rr_len > RR_LINE_MAX ? RR_LINE_MAX : lis->rr_len;
	}
	if (mf) {
		*(__u64 *)BLK_AT(s, p) = pat_val("Max-Forw", 8);
		*(__u64 *)BLK_AT(s, p + 8) = pat_val("ards: 70", 8);
		*(__u16 *)BLK_AT(s, p + 16) = '\r' | '\n' << 8;
		p += MAXFWD_DEFAULT_LEN;
	}
	return p;
}

/* rw_via_received plans the top Via's received/rport edit (contract table, "The
 * sender's top Via"). Returns: PASS_NONE or the reason. */
static __always_inline int rw_via_received(struct scratch *s)
{
	struct via_info *v = &s->msg.top;
	struct pkt_info *pi = &s->pkt;
	__u32 iplen, p = BLK_VIA_EDIT, at, need;

	if (pi->family == FAMILY_V4) {
		__u32 src;

		__builtin_memcpy(&src, pi->saddr, 4);
		iplen = rw_put_ipv4(s, BLK_IPTEXT, src);
		need = v->host_len != iplen || !rw_text_eq(s, v->sentby, BLK_IPTEXT, iplen);
	} else {
		int r = rw_put_ipv6(s, BLK_IPTEXT);

		if (r < 0)
			return PASS_IPV6_TEXT;
		iplen = r;
		/* sent-by "[text]" */
		need = v->host_len != iplen + 2 || in_u8(s, v->sentby) != '[' ||
		       in_u8(s, v->sentby + 1 + iplen) != ']' || !rw_text_eq(s, v->sentby + 1, BLK_IPTEXT, iplen);
	}
	if (v->has_rport && !v->rport_has_value) {
		*BUF_AT(s, p) = '=';
		p++;
		p += rw_put_uint(s, p, pi->sport);
		at = v->rport_end;
		need = 1;
	} else {
		at = v->sentby + v->sentby_len;
	}
	if (!need)
		return PASS_NONE;
	*(__u64 *)BUF_AT(s, p) = pat_val(";receive", 8);
	*(__u16 *)BUF_AT(s, p + 8) = 'd' | '=' << 8;
	p += 10;
	/* the IP text again, after the prefix (fixed 40-byte copy of <= 39 bytes) */
#pragma unroll
	for (int i = 0; i < IP_TEXT_MAX / 8; i++)
		*(__u64 *)BUF_AT(s, p + 8 * i) = *(__u64 *)BUF_AT(s, BLK_IPTEXT + 8 * i);
	p += iplen;
	return rw_add_edit(&s->fwd, at, 0, BLK_VIA_EDIT, p - BLK_VIA_EDIT);
}

/* rw_maxfwd plans the Max-Forwards change: insertion (absent) or the in-place
 * decrement, right-aligned in the old digits' span and left-padded with spaces.
 * Like the slow path it takes leading zeros ("0068" becomes "  67"); a value that
 * is not all digits (trailing white space included) passes.
 * Returns: PASS_NONE, the reason, or -1 when the block must carry
 * "Max-Forwards: 70". */
static __always_inline int rw_maxfwd(struct scratch *s)
{
	struct hdr_pos *h = &s->msg.maxfwd;
	__u32 n, v;
	long val;

	if (!h->line)
		return -1;
	val = sip_uint(s, h->val, h->end, MAXFWD_MAX_DIGITS);
	if (val < 0 || val > MAXFWD_MAX_VALUE)
		return PASS_MAXFWD_INVALID;
	if (val == 0)
		return PASS_MAXFWD_ZERO;
	n = h->end - h->val;
	v = val - 1;
	/* Right-aligned digits of v in n (1-3) places, spaces before them. */
#pragma unroll
	for (int i = MAXFWD_MAX_DIGITS - 1; i >= 0; i--) {
		if (i < n) {
			__u32 q = rw_div10(v);

			*BUF_AT(s, BLK_MAXFWD + i) = (v || i == n - 1) ? '0' + (v - q * 10) : ' ';
			v = q;
		}
	}
	s->fwd.patch_pos = h->val;
	s->fwd.patch_len = n;
	s->fwd.patch_off = BLK_MAXFWD;
	return PASS_NONE;
}

#endif
