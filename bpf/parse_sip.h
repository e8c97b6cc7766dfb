/* This file contains the SIP parser: the start line, the headers the contract needs, Via and number syntax. */
#ifndef SIPEDGE_PARSE_SIP_H
#define SIPEDGE_PARSE_SIP_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "pass_reasons.h"

/*
 * The parser reads the copy of the UDP payload in scratch.buf (BUF_IN onwards), not
 * the packet: every read is buf[BUF_IN + (off & IN_MASK)], which the verifier proves
 * in bounds without a comparison against data_end, and 8-byte reads need no
 * alignment. Offsets are payload offsets (0 = first byte of the start line); the
 * masks never change an offset the parser produces (all are <= SIP_MAX_LEN + 8).
 *
 * Scanning is 8 bytes per step (SWAR): swar_match flags the bytes equal to a
 * pattern byte, swar_first gives the index of the lowest flagged byte.
 */

/* The address is formed as an integer on purpose: &buf[i] tells clang the target is
 * only byte-aligned, and it would then split every 8-byte access into 8 byte loads.
 * (scratch.buf is the first member of struct scratch.) */
#define IN_AT(s, off) ((__u8 *)((unsigned long)(s) + BUF_IN + ((__u32)(off) & IN_MASK)))
#define BUF_AT(s, off) ((__u8 *)((unsigned long)(s) + ((__u32)(off) & BUF_READ_MASK)))

static __always_inline __u8 in_u8(struct scratch *s, __u32 off)
{
	return *IN_AT(s, off);
}

/* in_u64 reads 8 payload bytes at off, little endian (byte off in bits 0-7). */
static __always_inline __u64 in_u64(struct scratch *s, __u32 off)
{
	return *(__u64 *)IN_AT(s, off); /* unaligned loads are fine on the JITs we run on */
}

#define SWAR_ONES 0x0101010101010101ULL
#define SWAR_LO7 0x7f7f7f7f7f7f7f7fULL
#define SWAR_HI 0x8080808080808080ULL
#define SWAR_INDEX 0x0001020304050607ULL

/* swar_match returns 0x80 in each byte of w equal to that byte of pat, 0 elsewhere.
 * Exact per byte (no borrow between bytes, unlike the (x - 0x01..) & ~x trick). */
static __always_inline __u64 swar_match(__u64 w, __u64 pat)
{
	__u64 x = w ^ pat;
	__u64 t = ((x & SWAR_LO7) + SWAR_LO7) | x;

	return ~(t | SWAR_LO7);
}

/* swar_first returns the index (0-7) of the lowest flagged byte of m (m != 0): m & -m
 * isolates bit 8k+7; shifted down it is 256^k, and 256^k * SWAR_INDEX has k in its
 * top byte. */
static __always_inline __u32 swar_first(__u64 m)
{
	return (((m & -m) >> 7) * SWAR_INDEX) >> 56;
}

/* ---- Case-insensitive names (header names, parameter names) ----
 * pat_* fold at compile time: callers pass string literals and constant lengths. */

static __always_inline __u64 pat_val(const char *p, int n)
{
	__u64 v = 0;

#pragma unroll
	for (int i = 0; i < 8; i++)
		if (i < n)
			v |= (__u64)(__u8)p[i] << (8 * i);
	return v;
}

/* pat_lower has 0x20 at the letters of p: OR-ing it into the input folds A-Z to a-z
 * at those places only, so a byte that is no letter never matches a letter. */
static __always_inline __u64 pat_lower(const char *p, int n)
{
	__u64 v = 0;

#pragma unroll
	for (int i = 0; i < 8; i++)
		if (i < n && p[i] >= 'a' && p[i] <= 'z')
			v |= 0x20ULL << (8 * i);
	return v;
}

static __always_inline __u64 pat_mask(int n)
{
	return n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

/* name_eq reports whether the first n (<= 8) bytes of w spell p, ignoring case. */
#define name_eq(w, p, n) ((((w) | pat_lower(p, n)) & pat_mask(n)) == pat_val(p, n))

/* bytes_eq reports whether the first n (<= 8) bytes of w are p exactly. */
#define bytes_eq(w, p, n) (((w) & pat_mask(n)) == pat_val(p, n))

#define CHARS4(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)

/* sip_find4 returns the offset of the first byte in [pos, end) equal to one of the 4
 * bytes of chars (repeat one to look for fewer), or -1. At most MAX_TOKEN_WORDS
 * steps: for delimiters inside one header value. */
__noinline int sip_find4(struct scratch *s, __u32 pos, __u32 end, __u32 chars)
{
	__u64 p0 = (chars & 0xff) * SWAR_ONES;
	__u64 p1 = ((chars >> 8) & 0xff) * SWAR_ONES;
	__u64 p2 = ((chars >> 16) & 0xff) * SWAR_ONES;
	__u64 p3 = ((chars >> 24) & 0xff) * SWAR_ONES;

	if (!s)
		return -1;
	for (int i = 0; i < MAX_TOKEN_WORDS; i++) {
		__u64 w, m;

		if (pos >= end)
			return -1;
		w = in_u64(s, pos);
		m = swar_match(w, p0) | swar_match(w, p1) | swar_match(w, p2) | swar_match(w, p3);
		if (m) {
			__u32 at = pos + swar_first(m);

			return at < end ? (int)at : -1;
		}
		pos += 8;
	}
	return -1;
}

/* sip_find_delim returns the offset of the first of ; , CR SP HTAB in [pos, end), or -1:
 * the end of a Via or URI parameter. */
static __always_inline int sip_find_delim(struct scratch *s, __u32 pos, __u32 end)
{
	/* Two scans would cost twice; instead treat HTAB as SP: a HTAB anywhere is found
	 * by the same pass through the CHARS4 set {';', ',', '\r', ' '} plus a second
	 * set {'\t'} only when the first hit is not the CR that ends the line. */
	int at = sip_find4(s, pos, end, CHARS4(';', ',', '\r', ' '));
	int tab = sip_find4(s, pos, at < 0 ? end : (__u32)at, CHARS4('\t', '\t', '\t', '\t'));

	return tab >= 0 ? tab : at;
}

/* sip_skip_ws returns the offset of the first byte at or after pos that is not SP or
 * HTAB, looking at most 8 bytes ahead; -1 when all 8 are white space. */
static __always_inline int sip_skip_ws(struct scratch *s, __u32 pos)
{
	__u64 w = in_u64(s, pos);
	__u64 ws = swar_match(w, ' ' * SWAR_ONES) | swar_match(w, '\t' * SWAR_ONES);
	__u64 other = ~ws & SWAR_HI;

	if (!other)
		return -1;
	return pos + swar_first(other);
}

/* sip_uint parses the decimal digits in [pos, end): 1 to maxd digits, nothing else.
 * Returns: the value, or -1. */
static __always_inline long sip_uint(struct scratch *s, __u32 pos, __u32 end, __u32 maxd)
{
	long v = 0;

	if (end <= pos || end - pos > maxd)
		return -1;
#pragma unroll
	for (int i = 0; i < CSEQ_MAX_DIGITS; i++) {
		__u8 c;

		if (pos + i >= end)
			break;
		c = in_u8(s, pos + i);
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	return v;
}

/* sip_ipv4_parse reads a dotted quad in [pos, pos+len): four decimal octets up to
 * 255 without leading zeros (what Go's netip.ParseAddr takes).
 * Returns: the address as it lies in memory (network order), or -1. */
__noinline long sip_ipv4_parse(struct scratch *s, __u32 pos, __u32 len)
{
	__u32 addr = 0, oct = 0, digits = 0, dots = 0;

	if (!s || len < 7 || len > 15)
		return -1;
	for (int i = 0; i < 15; i++) {
		__u8 c;

		if (i >= len)
			break;
		c = in_u8(s, pos + i);
		if (c == '.') {
			if (!digits || dots == 3)
				return -1;
			addr = addr << 8 | oct;
			oct = 0;
			digits = 0;
			dots++;
			continue;
		}
		if (c < '0' || c > '9' || (digits && oct == 0))
			return -1;
		oct = oct * 10 + (c - '0');
		digits++;
		if (oct > 255)
			return -1;
	}
	if (dots != 3 || !digits)
		return -1;
	addr = addr << 8 | oct;
	return (long)__builtin_bswap32(addr);
}

static __always_inline int sip_hexval(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* sip_ipv6_parse reads IPv6 text in [pos, pos+len) (no brackets): up to 8 groups of
 * 1-4 hex digits, one "::" at most; what Go's netip.ParseAddr takes, except an
 * embedded IPv4 or a zone. The address goes to s->fwd.daddr.
 * Returns: 0, or -1 (the caller passes).
 * Verifier: the reader's state lives in s->fwd (memory), not in registers, so the
 * paths through one character's cases do not multiply from character to character
 * (see sip_scan_headers). */
__noinline int sip_ipv6_parse(struct scratch *s, __u32 pos, __u32 len)
{
	struct fwd_info *f;
	__u32 n, gap;

	if (!s || len < 2 || len > IPV6_TEXT_MAX)
		return -1;
	f = &s->fwd;
	f->v6_n = 0;
	f->v6_cur = 0;
	f->v6_digits = 0;
	f->v6_gap = IPV6_GROUPS + 1;
	f->v6_prev = 0;
	for (int i = 0; i < IPV6_TEXT_MAX; i++) {
		__u8 c;
		int h;

		/* reload the state from memory: clang would keep it in registers */
		asm volatile("" ::: "memory");
		if (i >= len)
			break;
		c = in_u8(s, pos + i);
		if (c == ':') {
			if (f->v6_digits) {
				n = f->v6_n;
				if (n >= IPV6_GROUPS)
					return -1;
				f->v6_groups[n & (IPV6_GROUPS - 1)] = f->v6_cur;
				f->v6_n = n + 1;
				f->v6_cur = 0;
				f->v6_digits = 0;
			} else if (i == 0) {
				if (in_u8(s, pos + 1) != ':')
					return -1;
			} else if (f->v6_prev == ':' && f->v6_gap > IPV6_GROUPS) {
				f->v6_gap = f->v6_n;
			} else {
				return -1;
			}
			f->v6_prev = c;
			continue;
		}
		h = sip_hexval(c);
		if (h < 0 || f->v6_digits >= 4)
			return -1; /* '.', '%' and the rest: slow path */
		f->v6_cur = f->v6_cur << 4 | h;
		f->v6_digits++;
		f->v6_prev = c;
	}
	n = f->v6_n;
	gap = f->v6_gap;
	if (f->v6_digits) {
		if (n >= IPV6_GROUPS)
			return -1;
		f->v6_groups[n & (IPV6_GROUPS - 1)] = f->v6_cur;
		n++;
	} else if (f->v6_prev == ':' && gap != n) {
		return -1; /* a single trailing ':' */
	}
	if (gap > IPV6_GROUPS ? n != IPV6_GROUPS : n >= IPV6_GROUPS)
		return -1;
	/* Spread: groups before the gap, zeros, groups after it. */
#pragma unroll
	for (int k = 0; k < IPV6_GROUPS; k++) {
		__u32 v = 0;

		if (gap > IPV6_GROUPS || k < gap)
			v = f->v6_groups[k];
		else if (k >= gap + (IPV6_GROUPS - n))
			v = f->v6_groups[(k - (IPV6_GROUPS - n)) & (IPV6_GROUPS - 1)];
		f->daddr[2 * k] = v >> 8;
		f->daddr[2 * k + 1] = v & 0xff;
	}
	return 0;
}

/* sip_method_of names the method token of n bytes whose first 8 bytes are w and
 * whose ninth byte is b8 (methods are case-sensitive). */
static __always_inline __u8 sip_method_of(__u64 w, __u8 b8, __u32 n)
{
	switch (n) {
	case 3:
		if (bytes_eq(w, "ACK", 3))
			return METHOD_ACK;
		if (bytes_eq(w, "BYE", 3))
			return METHOD_BYE;
		break;
	case 4:
		if (bytes_eq(w, "INFO", 4))
			return METHOD_INFO;
		break;
	case 5:
		if (bytes_eq(w, "REFER", 5))
			return METHOD_REFER;
		if (bytes_eq(w, "PRACK", 5))
			return METHOD_PRACK;
		break;
	case 6:
		if (bytes_eq(w, "INVITE", 6))
			return METHOD_INVITE;
		if (bytes_eq(w, "CANCEL", 6))
			return METHOD_CANCEL;
		if (bytes_eq(w, "NOTIFY", 6))
			return METHOD_NOTIFY;
		if (bytes_eq(w, "UPDATE", 6))
			return METHOD_UPDATE;
		break;
	case 7:
		if (bytes_eq(w, "OPTIONS", 7))
			return METHOD_OPTIONS;
		if (bytes_eq(w, "MESSAGE", 7))
			return METHOD_MESSAGE;
		if (bytes_eq(w, "PUBLISH", 7))
			return METHOD_PUBLISH;
		break;
	case 8:
		if (bytes_eq(w, "REGISTER", 8))
			return METHOD_REGISTER;
		break;
	case 9:
		if (bytes_eq(w, "SUBSCRIB", 8) && b8 == 'E')
			return METHOD_SUBSCRIBE;
		break;
	}
	return METHOD_OTHER;
}

/* sip_start_line parses "METHOD SP Request-URI SP SIP/2.0" or "SIP/2.0 SP 3DIGIT SP
 * reason" ending at the CR at cr. Returns: PASS_NONE or the reason. */
static __always_inline int sip_start_line(struct scratch *s, struct sip_msg *m, __u32 cr)
{
	__u64 w0 = in_u64(s, 0);
	int sp, sp2;

	if (bytes_eq(w0, "SIP/2.0 ", 8)) {
		long st = sip_uint(s, 8, 11, 3);
		__u8 c = in_u8(s, 11);

		if (st < 100 || st > 699 || (c != ' ' && c != '\r'))
			return PASS_PARSE;
		m->is_request = 0;
		m->status = st;
		return PASS_NONE;
	}
	/* Request: the line ends in " SIP/2.0". */
	if (cr < 12 || !bytes_eq(in_u64(s, cr - 8), " SIP/2.0", 8))
		return PASS_PARSE;
	sp = sip_find4(s, 0, cr - 8, CHARS4(' ', ' ', ' ', ' '));
	if (sp < 1 || sp > 16)
		return PASS_PARSE;
	/* Exactly one SP between the method and " SIP/2.0": the URI holds none. */
	sp2 = sip_find4(s, sp + 1, cr - 8, CHARS4(' ', '\t', ' ', '\t'));
	if (sp2 >= 0 || (__u32)sp + 1 >= cr - 8)
		return PASS_PARSE;
	m->is_request = 1;
	m->method = sip_method_of(w0, in_u8(s, 8), sp);
	m->ruri = sp + 1;
	m->ruri_end = cr - 8;
	return PASS_NONE;
}

/* sip_hdr_name classifies the header line at ls (w = its first 8 bytes).
 * Returns: the enum sip_hdr with the name's length in bits 8-15, or -PASS_HDR_FORM
 * for a header the fast path uses written with white space before its colon. */
static __always_inline int sip_hdr_name(struct scratch *s, __u32 ls, __u64 w)
{
	__u32 hdr = HDR_OTHER, n = 0, alt = HDR_OTHER, altn = 0;
	__u8 sep;

	switch ((__u8)w | 0x20) {
	case 'v':
		if (name_eq(w, "via", 3)) {
			hdr = HDR_VIA;
			n = 3;
		}
		alt = HDR_VIA;
		altn = 1;
		break;
	case 'i':
		alt = HDR_CALLID;
		altn = 1;
		break;
	case 'c':
		if (name_eq(w, "call-id", 7)) {
			hdr = HDR_CALLID;
			n = 7;
		} else if (name_eq(w, "cseq", 4)) {
			hdr = HDR_CSEQ;
			n = 4;
		} else if (name_eq(w, "content-", 8) && name_eq(in_u64(s, ls + 8), "length", 6)) {
			hdr = HDR_CLEN;
			n = 14;
		}
		break;
	case 'f':
		if (name_eq(w, "from", 4)) {
			hdr = HDR_FROM;
			n = 4;
		}
		alt = HDR_FROM;
		altn = 1;
		break;
	case 't':
		if (name_eq(w, "to", 2)) {
			hdr = HDR_TO;
			n = 2;
		}
		alt = HDR_TO;
		altn = 1;
		break;
	case 'm':
		if (name_eq(w, "max-forw", 8) && name_eq(in_u64(s, ls + 8), "ards", 4)) {
			hdr = HDR_MAXFWD;
			n = 12;
		}
		break;
	case 'r':
		if (name_eq(w, "route", 5)) {
			hdr = HDR_ROUTE;
			n = 5;
		}
		break;
	case 'l':
		alt = HDR_CLEN;
		altn = 1;
		break;
	default:
		return HDR_OTHER;
	}
	if (hdr != HDR_OTHER) {
		sep = in_u8(s, ls + n);
		if (sep == ':')
			return hdr | n << 8;
		if (sep == ' ' || sep == '\t')
			return -PASS_HDR_FORM;
	}
	if (alt != HDR_OTHER) {
		sep = in_u8(s, ls + altn);
		if (sep == ':')
			return alt | altn << 8;
		if (sep == ' ' || sep == '\t')
			return -PASS_HDR_FORM;
	}
	return HDR_OTHER;
}

/* sip_hdr_record notes where a header the fast path uses is.
 * Returns: PASS_NONE or the reason. */
static __always_inline int sip_hdr_record(struct sip_msg *m, __u32 hdr, __u32 ls, __u32 val, __u32 cr)
{
	struct hdr_pos *h;

	switch (hdr) {
	case HDR_VIA:
		if (m->n_via >= 2)
			return PASS_NONE;
		h = &m->via[m->n_via & 1];
		m->n_via++;
		break;
	case HDR_ROUTE:
		if (m->n_route >= 2)
			return PASS_NONE;
		h = &m->route[m->n_route & 1];
		m->n_route++;
		break;
	case HDR_CALLID:
		h = &m->callid_h;
		break;
	case HDR_FROM:
		h = &m->from;
		break;
	case HDR_TO:
		h = &m->to;
		break;
	case HDR_CSEQ:
		h = &m->cseq_h;
		break;
	case HDR_MAXFWD:
		h = &m->maxfwd;
		break;
	case HDR_CLEN:
		h = &m->clen_h;
		break;
	default:
		return PASS_NONE;
	}
	if (hdr != HDR_VIA && hdr != HDR_ROUTE && h->line)
		return PASS_DUP_HEADER;
	h->line = ls;
	h->val = val;
	h->end = cr;
	return PASS_NONE;
}

#define LINE_HEADER 0 /* sip_line: a header line, carry on */
#define LINE_BLANK 1 /* sip_line: the blank line that ends the headers */

/* Header names start with one of these letters (bit x - 'a'): c f i l m r t v. */
#define HDR_FIRST_LETTERS ((1U << ('c' - 'a')) | (1U << ('f' - 'a')) | (1U << ('i' - 'a')) | \
			   (1U << ('l' - 'a')) | (1U << ('m' - 'a')) | (1U << ('r' - 'a')) | \
			   (1U << ('t' - 'a')) | (1U << ('v' - 'a')))

/* sip_hdr_line classifies and records the header line at ls (its CR at cr, its first
 * 8 bytes w), one whose first letter may start a header the fast path uses.
 * A global function: verified once, not once per scan step.
 * Returns: LINE_HEADER, or -reason. */
__noinline int sip_hdr_line(struct scratch *s, __u32 ls, __u32 cr, __u64 w)
{
	struct sip_msg *m;
	__u32 val;
	int r, v;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	r = sip_hdr_name(s, ls, w);
	if (r < 0)
		return r;
	m->last_ours = (r & 0xff) != HDR_OTHER;
	if (!m->last_ours)
		return LINE_HEADER;
	v = sip_skip_ws(s, ls + (r >> 8) + 1);
	if (v < 0)
		return -PASS_PARSE;
	val = v;
	r = sip_hdr_record(m, r & 0xff, ls, val > cr ? cr : val, cr);
	return r ? -r : LINE_HEADER;
}

/* sip_line handles the line [ls, nl] (nl: its LF): the blank line, a continuation
 * line (allowed only after a header the fast path does not use), or a header line.
 * Its state between lines is in s->msg.
 * Returns: LINE_HEADER, LINE_BLANK, or -reason. */
static __always_inline int sip_line(struct scratch *s, struct sip_msg *m, __u32 ls, __u32 nl)
{
	__u32 cr, lc;
	__u64 w;
	__u8 c;

	if (nl >= m->len || nl <= ls || in_u8(s, nl - 1) != '\r')
		return -PASS_PARSE; /* no LF, an empty LF line, or LF without CR */
	cr = nl - 1;
	if (cr == ls) { /* the blank line */
		m->body = nl + 1;
		return LINE_BLANK;
	}
	w = in_u64(s, ls);
	c = (__u8)w;
	if (c == ' ' || c == '\t')
		return m->last_ours ? -PASS_FOLDED : LINE_HEADER;
	/* Most lines are headers the fast path does not use: one test on the first
	 * letter sends them on. */
	lc = (c | 0x20) - 'a';
	if (lc > 'v' - 'a' || !((HDR_FIRST_LETTERS >> lc) & 1)) {
		m->last_ours = 0;
		return LINE_HEADER;
	}
	return sip_hdr_line(s, ls, cr, w);
}

/* sip_scan_headers walks the header lines from m->rl_end to the blank line in one
 * pass, 32 bytes per step (four SWAR words), and hands each line to sip_line.
 * Returns: PASS_NONE or the reason. */
static __always_inline int sip_scan_headers(struct scratch *s, struct sip_msg *m, __u32 len)
{
	const __u64 nl_pat = '\n' * SWAR_ONES;

	/* One loop, two kinds of step: skip 32 bytes without a LF, or finish a line.
	 * The bound covers every byte plus every line.
	 * Verifier: the line start and the scan position live in m (memory), not in
	 * registers (the barrier makes clang reload them). In registers they would be
	 * precise scalars whose ranges differ on every mix of "skip" and "line" steps,
	 * and the verifier would explore each mix (quadratic in the loop bound, over
	 * its 1M-instruction limit). Read back from memory they are plain unknown
	 * scalars, so only the loop counter tells iterations apart. */
	m->scan_ls = m->rl_end;
	m->scan_p = m->rl_end;
	for (int i = 0; i < SCAN_STEPS; i++) {
		__u64 a, b, c, d;
		__u32 p, nl;
		int r;

		asm volatile("" ::: "memory");
		p = m->scan_p;
		a = swar_match(in_u64(s, p), nl_pat);
		b = swar_match(in_u64(s, p + 8), nl_pat);
		c = swar_match(in_u64(s, p + 16), nl_pat);
		d = swar_match(in_u64(s, p + 24), nl_pat);
		if (!(a | b | c | d)) {
			p += 32;
			if (p >= len)
				return PASS_PARSE;
			m->scan_p = p;
			continue;
		}
		if (a)
			nl = p + swar_first(a);
		else if (b)
			nl = p + 8 + swar_first(b);
		else if (c)
			nl = p + 16 + swar_first(c);
		else
			nl = p + 24 + swar_first(d);
		r = sip_line(s, m, m->scan_ls, nl);
		if (r < 0)
			return -r;
		if (r == LINE_BLANK)
			return PASS_NONE;
		m->scan_ls = nl + 1;
		m->scan_p = nl + 1;
	}
	return PASS_TOO_MANY_HEADERS;
}

/* sip_parse_via parses the Via value at val (the line's CR at end) into
 * s->msg.top (which == 0) or s->msg.next: "SIP/2.0/UDP" LWS sent-by *(;param),
 * with no white space after sent-by (SEMI's optional SWS goes to the slow path).
 * Returns: PASS_NONE or the reason. */
__noinline int sip_parse_via(struct scratch *s, __u32 which, __u32 val, __u32 end)
{
	struct via_info *v;
	__u32 p, q, hl;
	int at;
	__u8 c;

	if (!s)
		return PASS_INTERNAL;
	v = which ? &s->msg.next : &s->msg.top;
	__builtin_memset(v, 0, sizeof(*v));
	v->val = val;
	if (!name_eq(in_u64(s, val), "sip/2.0/", 8) || !name_eq(in_u64(s, val + 8), "udp", 3))
		return PASS_VIA_FORM;
	c = in_u8(s, val + 11);
	if (c != ' ' && c != '\t')
		return PASS_VIA_FORM;
	at = sip_skip_ws(s, val + 11);
	if (at < 0)
		return PASS_VIA_FORM;
	p = at;

	/* sent-by: host [":" port] up to the first ; , CR SP HTAB */
	at = sip_find_delim(s, p, end + 1);
	if (at <= (int)p)
		return PASS_VIA_FORM;
	q = at;
	v->sentby = p;
	v->sentby_len = q - p;
	if (in_u8(s, p) == '[') {
		at = sip_find4(s, p, q, CHARS4(']', ']', ']', ']'));
		if (at < 0)
			return PASS_VIA_FORM;
		hl = at + 1 - p;
	} else {
		at = sip_find4(s, p, q, CHARS4(':', ':', ':', ':'));
		hl = (at < 0 ? q : (__u32)at) - p;
	}
	v->host_len = hl;
	if (p + hl < q) {
		long port;

		if (in_u8(s, p + hl) != ':')
			return PASS_VIA_FORM;
		port = sip_uint(s, p + hl + 1, q, PORT_MAX_DIGITS);
		if (port < 1 || port > 65535)
			return PASS_VIA_FORM;
		v->port = port;
	}

	/* ;params up to , or CR. Verifier: the position lives in v->scan (memory), so
	 * the parameter kinds of one step do not multiply with the next step's. */
	v->scan = q;
	for (int i = 0; i < MAX_VIA_PARAMS; i++) {
		__u32 np;
		__u64 w;

		asm volatile("" ::: "memory");
		q = v->scan;
		c = in_u8(s, q);
		if (c == '\r' || c == ',') {
			v->val_end = q;
			v->more = c == ',';
			return PASS_NONE;
		}
		if (c != ';')
			return PASS_VIA_FORM; /* SP or HTAB inside the value */
		np = q + 1;
		at = sip_find_delim(s, np, end + 1);
		if (at <= (int)np)
			return PASS_VIA_FORM;
		q = at;
		v->scan = q;
		w = in_u64(s, np);
		if (name_eq(w, "branch=", 7)) {
			if (v->branch)
				return PASS_VIA_FORM;
			v->branch = np + 7;
			v->branch_len = q - (np + 7);
		} else if (name_eq(w, "rport", 5)) {
			c = in_u8(s, np + 5);
			if (np + 5 == q) {
				if (v->has_rport)
					return PASS_VIA_FORM;
				v->has_rport = 1;
				v->rport_end = np + 5;
			} else if (c == '=') {
				long port = sip_uint(s, np + 6, q, PORT_MAX_DIGITS);

				if (v->has_rport || port < 1 || port > 65535)
					return PASS_VIA_FORM;
				v->has_rport = 1;
				v->rport_has_value = 1;
				v->rport_end = np + 5;
				v->rport = port;
			}
		} else if (name_eq(w, "received", 8) && in_u8(s, np + 8) == '=') {
			if (v->received)
				return PASS_VIA_FORM;
			v->received = np + 9;
			v->received_len = q - (np + 9);
		} else if (name_eq(w, "maddr=", 6)) {
			v->has_maddr = 1;
		}
	}
	return PASS_VIA_FORM;
}

/* sip_to_has_tag reports whether the To (or From) value in [val, end) has a tag
 * parameter: after the name-addr's '>' (a quoted display name skipped), or among the
 * parameters of an addr-spec. Returns: 1, 0, or -reason. */
__noinline int sip_has_tag(struct scratch *s, __u32 val, __u32 end)
{
	__u32 p = val;
	int at;

	if (!s)
		return -PASS_INTERNAL;
	if (in_u8(s, p) == '"') {
		at = sip_find4(s, p + 1, end, CHARS4('"', '\\', '"', '\\'));
		if (at < 0 || in_u8(s, at) != '"')
			return -PASS_PARSE; /* unterminated, or an escape: slow path */
		p = at + 1;
	}
	at = sip_find4(s, p, end, CHARS4('<', '<', '<', '<'));
	if (at >= 0) {
		at = sip_find4(s, at, end, CHARS4('>', '>', '>', '>'));
		if (at < 0)
			return -PASS_PARSE;
		p = at + 1;
	}
	for (int i = 0; i < MAX_URI_PARAMS; i++) {
		at = sip_find4(s, p, end, CHARS4(';', ';', ';', ';'));
		if (at < 0)
			return 0;
		if (name_eq(in_u64(s, at + 1), "tag=", 4))
			return 1;
		p = at + 1;
	}
	return -PASS_PARSE;
}

/* sip_parse_uri parses the SIP URI in [p, end) ("sip:" [userinfo "@"] host [":" port]
 * *(";" param)) into u: host, port, lr, maddr. Returns: PASS_NONE or PASS_ROUTE_FORM. */
static __always_inline int sip_parse_uri(struct scratch *s, struct uri_info *u, __u32 p, __u32 end)
{
	__u32 q, hl;
	int at;

	if (!name_eq(in_u64(s, p), "sip:", 4))
		return PASS_ROUTE_FORM; /* sips:, tel:, ...: not a UDP next hop the fast path takes */
	p += 4;
	at = sip_find4(s, p, end, CHARS4('@', '@', '@', '@'));
	if (at >= 0)
		p = at + 1;
	if (in_u8(s, p) == '[') {
		at = sip_find4(s, p, end, CHARS4(']', ']', ']', ']'));
		if (at < 0)
			return PASS_ROUTE_FORM;
		hl = at + 1 - p;
	} else {
		at = sip_find4(s, p, end, CHARS4(':', ';', '?', ':'));
		hl = (at < 0 ? end : (__u32)at) - p;
	}
	if (!hl)
		return PASS_ROUTE_FORM;
	u->host = p;
	u->host_len = hl;
	q = p + hl;
	if (q < end && in_u8(s, q) == ':') {
		long port;

		at = sip_find4(s, q + 1, end, CHARS4(';', '?', ';', '?'));
		port = sip_uint(s, q + 1, at < 0 ? end : (__u32)at, PORT_MAX_DIGITS);
		if (port < 1 || port > 65535)
			return PASS_ROUTE_FORM;
		u->port = port;
		q = at < 0 ? end : (__u32)at;
	}
	for (int i = 0; i < MAX_URI_PARAMS; i++) {
		__u32 np, pe;
		__u64 w;
		__u8 c;

		if (q >= end || in_u8(s, q) == '?')
			return PASS_NONE;
		if (in_u8(s, q) != ';')
			return PASS_ROUTE_FORM;
		np = q + 1;
		at = sip_find4(s, np, end, CHARS4(';', '?', ';', '?'));
		pe = at < 0 ? end : (__u32)at;
		w = in_u64(s, np);
		c = in_u8(s, np + 2);
		if (name_eq(w, "lr", 2) && (np + 2 == pe || c == '='))
			u->lr = 1;
		else if (name_eq(w, "maddr=", 6)) {
			u->maddr = np + 6;
			u->maddr_len = pe - (np + 6);
		}
		q = pe;
	}
	return PASS_ROUTE_FORM;
}

/* sip_parse_route parses the Route value at val (its line's CR at end) into
 * s->msg.rt[which]: "<" URI ">" *(";" rr-param), then "," or the line's end.
 * Returns: PASS_NONE or the reason. */
__noinline int sip_parse_route(struct scratch *s, __u32 which, __u32 val, __u32 end)
{
	struct uri_info *u;
	int gt, at, r;

	if (!s)
		return PASS_INTERNAL;
	u = &s->msg.rt[which & 1];
	__builtin_memset(u, 0, sizeof(*u));
	u->val = val;
	if (in_u8(s, val) != '<')
		return PASS_ROUTE_FORM; /* a display name: slow path */
	gt = sip_find4(s, val, end, CHARS4('>', '>', '>', '>'));
	if (gt < 0)
		return PASS_ROUTE_FORM;
	r = sip_parse_uri(s, u, val + 1, gt);
	if (r)
		return r;
	at = sip_find4(s, gt, end + 1, CHARS4(',', '\r', ',', '\r'));
	if (at < 0)
		return PASS_ROUTE_FORM;
	u->val_end = at;
	u->more = in_u8(s, at) == ',';
	return PASS_NONE;
}

/* sip_parse_ruri parses the Request-URI into s->msg.ruri_info.
 * Returns: PASS_NONE or the reason. */
__noinline int sip_parse_ruri(struct scratch *s)
{
	struct uri_info *u;

	if (!s)
		return PASS_INTERNAL;
	u = &s->msg.ruri_info;
	__builtin_memset(u, 0, sizeof(*u));
	u->val = s->msg.ruri;
	return sip_parse_uri(s, u, s->msg.ruri, s->msg.ruri_end);
}

/* sip_parse parses the message in the payload copy (s->msg.len bytes): start line,
 * header positions, Call-ID, CSeq, Content-Length and the top Via value.
 * Returns: PASS_NONE or the reason. */
__noinline int sip_parse(struct scratch *s)
{
	struct sip_msg *m;
	__u32 len, cr, e;
	long v;
	int r, at;

	if (!s)
		return PASS_INTERNAL;
	m = &s->msg;
	len = m->len;
	if (len < SIP_MIN_LEN || len > SIP_MAX_LEN)
		return PASS_PARSE;
	__builtin_memset(m, 0, sizeof(*m));
	m->len = len;

	/* The start line. */
	at = sip_find4(s, 0, len, CHARS4('\n', '\n', '\n', '\n'));
	if (at < 2 || in_u8(s, at - 1) != '\r')
		return PASS_PARSE;
	cr = at - 1;
	m->rl_end = at + 1;
	r = sip_start_line(s, m, cr);
	if (r)
		return r;
#ifdef BENCH_PARSE_STOP
	if (BENCH_PARSE_STOP == 1) return PASS_PARSE;
#endif

	r = sip_scan_headers(s, m, len);
	if (r)
		return r;
#ifdef BENCH_PARSE_STOP
	if (BENCH_PARSE_STOP == 2) return PASS_PARSE;
#endif
	if (!m->via[0].line || !m->callid_h.line || !m->from.line || !m->to.line || !m->cseq_h.line)
		return PASS_MISSING_HEADER;

	/* Content-Length, when present, is the body's length (RFC 3261 18.3). */
	if (m->clen_h.line) {
		v = sip_uint(s, m->clen_h.val, m->clen_h.end, PORT_MAX_DIGITS);
		if (v < 0 || (__u32)v != len - m->body)
			return PASS_CONTENT_LENGTH;
		m->clen = v;
	} else if (m->body != len) {
		return PASS_CONTENT_LENGTH;
	}

	/* Call-ID, trailing SP/HTAB trimmed (the leading ones were skipped). */
	e = m->callid_h.end;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u8 c = in_u8(s, e - 1);

		if (e > m->callid_h.val && (c == ' ' || c == '\t'))
			e--;
	}
	if (e <= m->callid_h.val || e - m->callid_h.val > CALLID_MAX)
		return PASS_CALLID_LONG;
	m->callid = m->callid_h.val;
	m->callid_len = e - m->callid_h.val;

	/* CSeq: number LWS method */
	at = sip_find4(s, m->cseq_h.val, m->cseq_h.end, CHARS4(' ', '\t', ' ', '\t'));
	if (at < 0)
		return PASS_PARSE;
	v = sip_uint(s, m->cseq_h.val, at, CSEQ_MAX_DIGITS);
	if (v < 0 || v > 0x7fffffff)
		return PASS_PARSE;
	m->cseq = v;
	r = sip_skip_ws(s, at);
	if (r < 0 || (__u32)r >= m->cseq_h.end || m->cseq_h.end - r > 9)
		return PASS_PARSE;
	m->cseq_method = sip_method_of(in_u64(s, r), in_u8(s, r + 8), m->cseq_h.end - r);
	if (m->is_request && m->cseq_method != m->method)
		return PASS_PARSE;
#ifdef BENCH_PARSE_STOP
	if (BENCH_PARSE_STOP == 3) return PASS_PARSE;
#endif

	return sip_parse_via(s, 0, m->via[0].val, m->via[0].end);
}

#endif
