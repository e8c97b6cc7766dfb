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

/* swar_ctl flags (0x80) the lowest byte of w below SWAR_CTL_END (CR, LF, HTAB and
 * the other control bytes); bytes above it may be flagged too (the borrow), so only
 * the lowest flag is exact. Four operations a word: the header scan's filter. */
static __always_inline __u64 swar_ctl(__u64 w)
{
	return (w - SWAR_CTL_END * SWAR_ONES) & ~w & SWAR_HI;
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

/* sip_find1 returns the offset of the first byte c in [pos, end), or -1; one SWAR
 * compare per 8 bytes. Up to MAX_LINE_WORDS steps: a whole message. */
__noinline int sip_find1(struct scratch *s, __u32 pos, __u32 end, __u32 c)
{
	__u64 pat = (c & 0xff) * SWAR_ONES;

	if (!s)
		return -1;
	for (int i = 0; i < MAX_LINE_WORDS; i++) {
		__u64 m;

		if (pos >= end)
			return -1;
		m = swar_match(in_u64(s, pos), pat);
		if (m) {
			__u32 at = pos + swar_first(m);

			return at < end ? (int)at : -1;
		}
		pos += 8;
	}
	return -1;
}

/* swar_ge flags the bytes of v (each < 0x80) that are >= c (1 <= c <= 0x80): adding
 * 0x80 - c cannot carry out of a byte. */
#define swar_ge(v, c) (((v) + (0x80 - (c)) * SWAR_ONES) & SWAR_HI)

/* The byte classes as SWAR predicates: each flags (0x80) the bytes of w in the
 * class; bytes >= 0x80 belong to none. lo = w & SWAR_LO7, low = lo | 0x20 (letters
 * folded to lower case). */
#define SWAR_LETTER(low) (swar_ge(low, 'a') & ~swar_ge(low, 'z' + 1))
#define SWAR_DIGIT(lo) (swar_ge(lo, '0') & ~swar_ge(lo, '9' + 1))
#define SWAR_EQ(w, c) swar_match(w, (c) * SWAR_ONES)

static __always_inline __u64 swar_class(__u64 w, __u32 cls)
{
	__u64 lo = w & SWAR_LO7, low = lo | (0x20 * SWAR_ONES), ok;

	switch (cls) {
	case CLS_NAME:
		ok = SWAR_LETTER(low) | SWAR_DIGIT(lo) | SWAR_EQ(w, '-');
		break;
	case CLS_HOST:
		ok = SWAR_LETTER(low) | SWAR_DIGIT(lo) | SWAR_EQ(w, '-') | SWAR_EQ(w, '.') | SWAR_EQ(w, '_');
		break;
	case CLS_IPV6:
		ok = (swar_ge(low, 'a') & ~swar_ge(low, 'f' + 1)) | SWAR_DIGIT(lo) | SWAR_EQ(w, ':') | SWAR_EQ(w, '.');
		break;
	case CLS_URI:
		ok = swar_ge(lo, 0x21) & ~swar_ge(lo, 0x7f) & ~(SWAR_EQ(w, '<') | SWAR_EQ(w, '>') | SWAR_EQ(w, '"'));
		break;
	case CLS_VALUE:
		ok = SWAR_LETTER(low) | SWAR_DIGIT(lo) | SWAR_EQ(w, '-') | SWAR_EQ(w, '.') | SWAR_EQ(w, '_') |
		     SWAR_EQ(w, ':') | SWAR_EQ(w, '[') | SWAR_EQ(w, ']');
		break;
	default: /* CLS_DISPLAY */
		ok = SWAR_LETTER(low) | SWAR_DIGIT(lo) | SWAR_EQ(w, '-') | SWAR_EQ(w, '.') | SWAR_EQ(w, ' ') |
		     SWAR_EQ(w, '\t');
		break;
	}
	return ok & ~w & SWAR_HI;
}

/* One scanner per class (the class is a constant at every call site: each loop
 * runs one predicate, no switch per word). SPAN_CLASS_FN(name, cls) defines
 * name(s, pos, end): the offset of the first byte in [pos, end) outside cls, end
 * when there is none, or -1 past MAX_TOKEN_WORDS steps. */
#define SPAN_CLASS_FN(name, cls)                                                 \
	__noinline int name(struct scratch *s, __u32 pos, __u32 end)            \
	{                                                                        \
		if (!s)                                                          \
			return -1;                                               \
		for (int i = 0; i < MAX_TOKEN_WORDS; i++) {                      \
			__u64 bad;                                               \
									 \
			if (pos >= end)                                          \
				return end;                                      \
			bad = ~swar_class(in_u64(s, pos), cls) & SWAR_HI;        \
			if (bad) {                                               \
				__u32 at = pos + swar_first(bad);                \
									 \
				return at < end ? at : end;                      \
			}                                                        \
			pos += 8;                                                \
		}                                                                \
		return -1;                                                       \
	}

SPAN_CLASS_FN(sip_span_name, CLS_NAME)
SPAN_CLASS_FN(sip_span_host, CLS_HOST)
SPAN_CLASS_FN(sip_span_ipv6, CLS_IPV6)
SPAN_CLASS_FN(sip_span_value, CLS_VALUE)
SPAN_CLASS_FN(sip_span_display, CLS_DISPLAY)

/* sip_span_class returns what the class's scanner returns. */
static __always_inline int sip_span_class(struct scratch *s, __u32 pos, __u32 end, __u32 cls)
{
	switch (cls) {
	case CLS_NAME:
		return sip_span_name(s, pos, end);
	case CLS_HOST:
		return sip_span_host(s, pos, end);
	case CLS_IPV6:
		return sip_span_ipv6(s, pos, end);
	case CLS_VALUE:
		return sip_span_value(s, pos, end);
	default: /* CLS_DISPLAY; CLS_URI has its own pass, sip_uri_span */
		return sip_span_display(s, pos, end);
	}
}

/* sip_all_class reports whether [pos, end) is not empty and all in class cls. */
static __always_inline int sip_all_class(struct scratch *s, __u32 pos, __u32 end, __u32 cls)
{
	return end > pos && sip_span_class(s, pos, end, cls) == (int)end;
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

/* swar_name_bad flags (0x80) the bytes of w that are no name characters (letters,
 * digits, '-'; bytes >= 0x80 never are). */
static __always_inline __u64 swar_name_bad(__u64 w)
{
	__u64 lo = w & SWAR_LO7, low = lo | (0x20 * SWAR_ONES);
	__u64 ok = SWAR_LETTER(low) | SWAR_DIGIT(lo) | SWAR_EQ(w, '-');

	return ~(ok & ~w) & SWAR_HI;
}

/* sip_is_name reports whether [pos, pos+n) is not empty and all name characters. */
static __always_inline int sip_is_name(struct scratch *s, __u32 pos, __u32 n)
{
	__u64 bad = swar_name_bad(in_u64(s, pos));

	if (n < 8)
		return n && !(bad & ((1ULL << (8 * n)) - 1));
	return !bad && (n == 8 || sip_span_name(s, pos + 8, pos + n) == (int)(pos + n));
}

#define URI_COLON_SHIFT 16 /* sip_uri_span: bits 16-31 hold the first ':' */
#define URI_NO_COLON 0xffff

/* sip_uri_span scans the URI characters (CLS_URI: 0x21-0x7e but < > ") at pos and
 * finds the first ':' in the same pass.
 * Returns: the offset of the first byte outside the class (end when none) | the
 * first ':' before it (URI_NO_COLON when none) << URI_COLON_SHIFT; -1 past
 * MAX_TOKEN_WORDS words. One pass instead of a class scan, a ':' scan and the
 * search for the closing '>'. */
__noinline long sip_uri_span(struct scratch *s, __u32 pos, __u32 end)
{
	long colon = URI_NO_COLON;

	if (!s)
		return -1;
	for (int i = 0; i < MAX_TOKEN_WORDS; i++) {
		__u64 w, bad, col;
		__u32 at;

		if (pos >= end)
			return end | (colon < end ? colon : URI_NO_COLON) << URI_COLON_SHIFT;
		w = in_u64(s, pos);
		bad = ~swar_class(w, CLS_URI) & SWAR_HI;
		col = SWAR_EQ(w, ':');
		if (bad)
			col &= (bad & -bad) - 1; /* the ':' before the first other byte */
		if (col && colon == URI_NO_COLON)
			colon = pos + swar_first(col);
		if (bad) {
			at = pos + swar_first(bad);
			if (at > end)
				at = end;
			if (colon != URI_NO_COLON && colon >= at)
				colon = URI_NO_COLON;
			return at | colon << URI_COLON_SHIFT;
		}
		pos += 8;
	}
	return -1;
}

/* sip_uri_colon returns the first ':' of a URI spanning [pos, end) exactly, or -1
 * (a byte outside CLS_URI, or no ':'). */
static __always_inline int sip_uri_colon(struct scratch *s, __u32 pos, __u32 end)
{
	long r = sip_uri_span(s, pos, end);
	__u32 colon;

	if (r < 0 || (r & 0xffff) != end)
		return -1;
	colon = (r >> URI_COLON_SHIFT) & 0xffff;
	return colon == URI_NO_COLON ? -1 : (int)colon;
}

#define SPAN_EQ_SHIFT 16 /* sip_span_param: bits 16-31 hold the first '=' */
#define SPAN_EQ_TWICE (1L << 32) /* sip_span_param: a second '=' */

/* sip_span_param scans a Via sent-by or parameter at pos: the bytes of CLS_VALUE
 * and '=', up to the first other byte (or end).
 * Returns: that byte's offset | the first '=' (the same offset when none) <<
 * SPAN_EQ_SHIFT | SPAN_EQ_TWICE when '=' is there twice; -1 past MAX_TOKEN_WORDS
 * words. One pass instead of a delimiter scan, an '=' scan and two class scans. */
__noinline long sip_span_param(struct scratch *s, __u32 pos, __u32 end)
{
	long eq = -1, twice = 0;

	if (!s)
		return -1;
	for (int i = 0; i < MAX_TOKEN_WORDS; i++) {
		__u64 w, e, bad, keep;
		__u32 at;

		if (pos >= end)
			return end | (eq < 0 ? end : eq) << SPAN_EQ_SHIFT | twice;
		w = in_u64(s, pos);
		e = SWAR_EQ(w, '=');
		bad = ~(swar_class(w, CLS_VALUE) | e) & SWAR_HI;
		/* the '=' before the first other byte: bits below its flag */
		keep = bad ? (bad & -bad) - 1 : ~0ULL;
		if (end - pos < 8)
			keep &= (1ULL << (8 * (end - pos))) - 1;
		e &= keep;
		if (e) {
			if (eq < 0) {
				eq = pos + swar_first(e);
				e &= e - 1;
			}
			if (e)
				twice = SPAN_EQ_TWICE;
		}
		if (bad) {
			at = pos + swar_first(bad);
			if (at > end)
				at = end;
			return at | (eq < 0 ? at : eq) << SPAN_EQ_SHIFT | twice;
		}
		pos += 8;
	}
	return -1;
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
	__u64 w0 = in_u64(s, 0), sp_m;
	__u32 sp;
	long r;
	__u8 c;

	if (bytes_eq(w0, "SIP/2.0 ", 8)) {
		long st = sip_uint(s, 8, 11, 3);

		c = in_u8(s, 11);
		if (st < STATUS_MIN || st > STATUS_MAX || (c != ' ' && c != '\r'))
			return PASS_PARSE;
		m->is_request = 0;
		m->status = st;
		return PASS_NONE;
	}
	/* Request: the line ends in " SIP/2.0". */
	if (cr < 12 || !bytes_eq(in_u64(s, cr - 8), " SIP/2.0", 8))
		return PASS_PARSE;
	/* The method: up to the first SP, at most 16 bytes. */
	sp_m = SWAR_EQ(w0, ' ');
	if (sp_m) {
		sp = swar_first(sp_m);
	} else {
		sp_m = SWAR_EQ(in_u64(s, 8), ' ');
		if (sp_m)
			sp = 8 + swar_first(sp_m);
		else if (in_u8(s, 16) == ' ')
			sp = 16;
		else
			return PASS_PARSE;
	}
	if (sp < 1 || sp + 1 >= cr - 8)
		return PASS_PARSE;
	m->is_request = 1;
	m->method = sip_method_of(w0, in_u8(s, 8), sp);
	if (m->method == METHOD_OTHER && !sip_is_name(s, 0, sp))
		return PASS_PARSE; /* not a token (or token characters we do not take) */
	m->ruri = sp + 1;
	m->ruri_end = cr - 8;
	/* Request-URI: a letter first, a ':', nothing but 0x21-0x7e without < > "
	 * (so no second SP: exactly one SP on each side) */
	c = in_u8(s, m->ruri) | 0x20;
	r = sip_uri_colon(s, m->ruri, m->ruri_end);
	if (c < 'a' || c > 'z' || r < 0)
		return PASS_PARSE;
	return PASS_NONE;
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

/* sip_hdr_kind names the header whose name is nlen bytes, w and w1 its first 16
 * bytes (w1 read only when nlen > 8), ignoring case, long or compact form. The name
 * is letters, digits and '-' (checked), so OR-ing 0x20 into every byte folds the
 * letters and changes nothing else. Returns: an enum sip_hdr. */
static __always_inline __u32 sip_hdr_kind(__u64 w, __u64 w1, __u32 nlen)
{
	__u64 lw = w | (0x20 * SWAR_ONES), lw1 = w1 | (0x20 * SWAR_ONES);

	switch (nlen) {
	case 1:
		switch ((__u8)lw) {
		case 'v':
			return HDR_VIA;
		case 'i':
			return HDR_CALLID;
		case 'f':
			return HDR_FROM;
		case 't':
			return HDR_TO;
		case 'l':
			return HDR_CLEN;
		}
		break;
	case 2:
		if ((lw & pat_mask(2)) == pat_val("to", 2))
			return HDR_TO;
		break;
	case 3:
		if ((lw & pat_mask(3)) == pat_val("via", 3))
			return HDR_VIA;
		break;
	case 4:
		if ((lw & pat_mask(4)) == pat_val("from", 4))
			return HDR_FROM;
		if ((lw & pat_mask(4)) == pat_val("cseq", 4))
			return HDR_CSEQ;
		break;
	case 5:
		if ((lw & pat_mask(5)) == pat_val("route", 5))
			return HDR_ROUTE;
		break;
	case 7:
		if ((lw & pat_mask(7)) == pat_val("call-id", 7))
			return HDR_CALLID;
		break;
	case 12:
		if (lw == pat_val("max-forw", 8) && (lw1 & pat_mask(4)) == pat_val("ards", 4))
			return HDR_MAXFWD;
		if (lw == pat_val("record-r", 8) && (lw1 & pat_mask(4)) == pat_val("oute", 4))
			return HDR_RECORD_ROUTE;
		break;
	case 14:
		if (lw == pat_val("content-", 8) && (lw1 & pat_mask(6)) == pat_val("length", 6))
			return HDR_CLEN;
		break;
	}
	return HDR_OTHER;
}

/* sip_eol returns the offset of the CR that ends the line starting at p: the first
 * byte below SWAR_CTL_END, stepping over HTAB and the other control bytes a value
 * may hold (the slow path frames lines on CRLF only). 32 bytes per step. With
 * commas set it also counts the line's commas into s->msg.scan_commas (a ','
 * stops the step like a control byte): an upper bound of the values of a Via,
 * Route or Record-Route line, whose number the slow path limits.
 * Returns: the CR's offset, or -PASS_PARSE for a bare CR or LF, no line end in
 * the message, or more than MAX_CTL_SKIPS bytes stepped over (-PASS_TOO_MANY_VALUES
 * when counting commas).
 * Verifier: the position is laundered at the end of every step (XOR with a field
 * that is always 0, then the mask): the verifier cannot know the field's value, so
 * "32 bytes on" and "after a control byte" leave the same unknown scalar in
 * [0, IN_MASK] and the two kinds of step do not multiply. The length is read from
 * memory at every use for the same reason: comparing a register with it would
 * narrow that register differently on every step. */
static __always_inline int sip_eol(struct scratch *s, __u32 p, const int commas)
{
	__u32 zero = *(volatile __u16 *)&s->msg.scan_zero;
#define EOL_LEN (*(volatile __u16 *)&s->msg.len)
#define EOL_STOP(w) (commas ? swar_ctl(w) | SWAR_EQ(w, ',') : swar_ctl(w))

	for (int i = 0; i < EOL_STEPS; i++) {
		__u64 a, b, c, d;
		__u32 ev, x;
		__u8 *at = IN_AT(s, p);

		a = EOL_STOP(*(__u64 *)at);
		b = EOL_STOP(*(__u64 *)(at + 8));
		c = EOL_STOP(*(__u64 *)(at + 16));
		d = EOL_STOP(*(__u64 *)(at + 24));
		if (!(a | b | c | d)) {
			p += 32;
			if (p >= EOL_LEN)
				return -PASS_PARSE;
			p = (p ^ zero) & IN_MASK;
			continue;
		}
		if (a)
			ev = p + swar_first(a);
		else if (b)
			ev = p + 8 + swar_first(b);
		else if (c)
			ev = p + 16 + swar_first(c);
		else
			ev = p + 24 + swar_first(d);
		if (ev + 1 >= EOL_LEN)
			return -PASS_PARSE;
		x = *(__u16 *)IN_AT(s, ev);
		if (x == ('\r' | '\n' << 8))
			return ev;
		/* a bare CR or LF makes the message malformed (the slow path drops it) */
		if ((x & 0xff) == '\r' || (x & 0xff) == '\n')
			return -PASS_PARSE;
		if (commas && (x & 0xff) == ',')
			s->msg.scan_commas++;
		p = ((ev + 1) ^ zero) & IN_MASK;
	}
	/* more than MAX_CTL_SKIPS control bytes (or commas) in one line */
	return commas ? -PASS_TOO_MANY_VALUES : -PASS_PARSE;
#undef EOL_STOP
#undef EOL_LEN
}

/* sip_line_end is sip_eol as a global function: the start line's end as one
 * unknown scalar, so the rest of sip_parse is verified once, not once per way
 * out of the scan. */
__noinline int sip_line_end(struct scratch *s, __u32 p)
{
	if (!s)
		return -PASS_INTERNAL;
	return sip_eol(s, p, 0);
}

#define LINE_BLANK 0 /* sip_line: the blank line that ends the headers */

/* sip_line handles the line starting at ls: the blank line, a continuation line
 * (allowed only after a header the fast path does not use), or a header line
 * "name *(SP/HTAB) ':' value", whose name must be letters, digits and '-' (other
 * token characters, and anything the slow path would reject, pass). It records the
 * headers the fast path uses and bounds the Via, Route and Record-Route values.
 * The name is read before the line's end is looked for (Via, Route and
 * Record-Route lines count their commas on the way), but a framing error of the
 * line is reported first. A global function: verified once, not once per line.
 * Returns: the offset of the next line, LINE_BLANK after the blank line (msg.body
 * set), or -reason. */
__noinline int sip_line(struct scratch *s, __u32 ls)
{
	struct sip_msg *m;
	__u64 w, w1 = 0, bad;
	__u32 cr, ne, hdr;
	int r;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	w = in_u64(s, ls);
	if ((__u8)w == ' ' || (__u8)w == '\t') {
		if (m->last_ours)
			return -PASS_FOLDED;
		r = sip_eol(s, ls, 0);
		return r < 0 ? r : r + 2;
	}
	/* The name: letters, digits, '-'; the first 16 bytes inline. */
	bad = swar_name_bad(w);
	if (bad) {
		ne = ls + swar_first(bad);
	} else {
		w1 = in_u64(s, ls + 8);
		bad = swar_name_bad(w1);
		if (bad) {
			ne = ls + 8 + swar_first(bad);
		} else {
			r = sip_span_name(s, ls + 16, m->len);
			ne = r < 0 ? ls : (__u32)r; /* too long: fails below */
		}
	}
	hdr = ne > ls ? sip_hdr_kind(w, w1, ne - ls) : HDR_OTHER;
	/* Verifier: the kind and the name's end go through memory, so that the ways
	 * to them (nine kinds, three name lengths) meet before the scan instead of
	 * each walking it. */
	m->scan_kind = hdr;
	m->scan_ne = ne;
	if (hdr == HDR_VIA || hdr == HDR_ROUTE || hdr == HDR_RECORD_ROUTE) {
		m->scan_commas = 0;
		r = sip_eol(s, ls, 1);
	} else {
		r = sip_eol(s, ls, 0);
	}
	asm volatile("" ::: "memory");
	hdr = m->scan_kind;
	ne = m->scan_ne;
	if (r < 0)
		return r;
	cr = r;
	if (cr == ls) {
		m->body = cr + 2;
		return LINE_BLANK;
	}
	if (ne <= ls || ne >= cr)
		return -PASS_HDR_FORM;
	if (in_u8(s, ne) != ':') {
		/* "name SP ':'": the slow path takes it; the fast path only for a
		 * header it does not use */
		if (hdr != HDR_OTHER && hdr != HDR_RECORD_ROUTE)
			return -PASS_HDR_FORM;
		r = sip_skip_ws(s, ne);
		if (r <= (int)ne || (__u32)r >= cr || in_u8(s, r) != ':')
			return -PASS_HDR_FORM;
	}
	if (hdr == HDR_RECORD_ROUTE) {
		m->n_rr_vals += m->scan_commas + 1;
		hdr = HDR_OTHER;
	}
	m->last_ours = hdr != HDR_OTHER;
	if (hdr == HDR_OTHER)
		return cr + 2;
	if (hdr == HDR_VIA)
		m->n_via_vals += m->scan_commas + 1;
	else if (hdr == HDR_ROUTE)
		m->n_route_vals += m->scan_commas + 1;
	r = sip_skip_ws(s, ne + 1);
	if (r < 0)
		return -PASS_PARSE;
	r = sip_hdr_record(m, hdr, ls, (__u32)r > cr ? cr : (__u32)r, cr);
	return r ? -r : (int)(cr + 2);
}

/* sip_scan_headers walks the header lines from m->rl_end to the blank line, one
 * sip_line call per line. Returns: PASS_NONE or the reason. */
static __always_inline int sip_scan_headers(struct scratch *s, struct sip_msg *m)
{
	__u32 ls = m->rl_end;

	/* a continuation line right after the start line is malformed */
	m->last_ours = 1;
	for (int i = 0; i <= MAX_HDR_LINES; i++) {
		int r = sip_line(s, ls);

		if (r <= 0)
			return r == LINE_BLANK ? PASS_NONE : -r;
		ls = r;
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
	__u32 p, q, hl, eq;
	long sp;
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

	/* sent-by: host [":" port], up to the first byte that is no parameter
	 * character (it must be ; , or the CR: checked by the parameter loop) */
	sp = sip_span_param(s, p, end + 1);
	if (sp < 0)
		return PASS_VIA_FORM;
	q = sp & 0xffff;
	if (q <= p || ((sp >> SPAN_EQ_SHIFT) & 0xffff) != q)
		return PASS_VIA_FORM; /* empty, or an '=' in it */
	v->sentby = p;
	v->sentby_len = q - p;
	if (in_u8(s, p) == '[') {
		at = sip_find1(s, p, q, ']');
		if (at < (int)p + 3 || !sip_all_class(s, p + 1, at, CLS_IPV6))
			return PASS_VIA_FORM;
		hl = at + 1 - p;
	} else {
		/* the host runs to the first byte that is no host character: the end,
		 * or the ':' before the port (checked below) */
		at = sip_span_class(s, p, q, CLS_HOST);
		if (at <= (int)p)
			return PASS_VIA_FORM;
		hl = at - p;
	}
	v->host_len = hl;
	if (p + hl < q) {
		long port;

		if (in_u8(s, p + hl) != ':')
			return PASS_VIA_FORM;
		port = sip_uint(s, p + hl + 1, q, PORT_MAX_DIGITS);
		if (port < 1 || port > PORT_MAX)
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
			return PASS_VIA_FORM; /* SP or HTAB inside the value, or a byte we do not take */
		np = q + 1;
		/* ;name[=value]: name letters, digits, '-'; value token characters, ':[]'
		 * (a quoted value, an empty one, or bytes we do not take: slow path) */
		sp = sip_span_param(s, np, end + 1);
		if (sp < 0 || (sp & SPAN_EQ_TWICE))
			return PASS_VIA_FORM;
		q = sp & 0xffff;
		eq = (sp >> SPAN_EQ_SHIFT) & 0xffff;
		if (eq + 1 == q || !sip_is_name(s, np, eq - np))
			return PASS_VIA_FORM;
		v->scan = q;
		w = in_u64(s, np);
		switch (eq - np) {
		case 6:
			if (!name_eq(w, "branch", 6))
				break;
			if (v->branch || eq == q)
				return PASS_VIA_FORM;
			v->branch = eq + 1;
			v->branch_len = q - (eq + 1);
			break;
		case 5:
			if (name_eq(w, "rport", 5)) {
				if (v->has_rport)
					return PASS_VIA_FORM;
				v->has_rport = 1;
				v->rport_end = eq;
				if (eq < q) {
					long port = sip_uint(s, eq + 1, q, PORT_MAX_DIGITS);

					if (port < 1 || port > PORT_MAX)
						return PASS_VIA_FORM;
					v->rport_has_value = 1;
					v->rport = port;
				}
			} else if (name_eq(w, "maddr", 5)) {
				if (eq == q)
					return PASS_VIA_FORM;
				v->has_maddr = 1;
			}
			break;
		case 8:
			if (!name_eq(w, "received", 8))
				break;
			if (v->received || eq == q)
				return PASS_VIA_FORM;
			v->received = eq + 1;
			v->received_len = q - (eq + 1);
			break;
		}
	}
	return PASS_VIA_FORM;
}

/* sip_parse_uri parses the URI in [p, end), whose characters the caller checked and
 * whose first ':' is colon (URI_NO_COLON: none), as the slow path's ParseURI does, or
 * stricter: only characters 0x21-0x7e but < > "; for sip: "sip:" [user[:password] "@"]
 * host [":" port] *(";" name["=" value]) ["?" headers], host a name (letters,
 * digits, - . _) or [IPv6]. Another scheme (tel:, sips:, ...) is checked for its
 * characters only and marked u->sip = 0. Fills u (val and val_end are the caller's).
 * Returns: PASS_NONE or PASS_ROUTE_FORM. */
static __always_inline int sip_parse_uri(struct scratch *s, struct uri_info *u, __u32 p, __u32 end, __u32 colon)
{
	__u32 q, hl;
	int at;
	__u8 c;

	/* Verifier: the colon goes through memory, so that its range is not tied to
	 * the caller's bounds of the URI (each tie is a state of its own). */
	u->colon = colon;
	asm volatile("" ::: "memory");
	at = u->colon == URI_NO_COLON ? -1 : (int)u->colon;

	u->user = u->user_len = u->host = u->host_len = u->port = u->port_end = 0;
	u->maddr = u->maddr_len = u->transport = u->transport_len = 0;
	u->lr = u->sip = 0;
	/* scheme: a letter, then letters, digits, '-' ('+' and '.' pass), then ':' and
	 * something after it (at: the first ':', from the caller's sip_uri_span) */
	c = in_u8(s, p) | 0x20;
	if (c < 'a' || c > 'z' || at < 0 || (__u32)at + 1 >= end || !sip_is_name(s, p, at - p))
		return PASS_ROUTE_FORM;
	if (end < p + 5 || !name_eq(in_u64(s, p), "sip:", 4))
		return PASS_NONE; /* not sip: (the callers decide) */
	u->sip = 1;
	p += 4;
	at = sip_find1(s, p, end, '@');
	if (at >= 0) {
		int colon = sip_find1(s, p, at, ':');

		u->user = p;
		u->user_len = (colon >= 0 ? (__u32)colon : (__u32)at) - p; /* the password is no key */
		if (!u->user_len)
			return PASS_ROUTE_FORM;
		p = at + 1;
	}
	if (in_u8(s, p) == '[') {
		at = sip_find1(s, p, end, ']');
		if (at < (int)p + 3 || !sip_all_class(s, p + 1, at, CLS_IPV6))
			return PASS_ROUTE_FORM;
		hl = at + 1 - p;
	} else {
		at = sip_span_class(s, p, end, CLS_HOST);
		if (at <= (int)p)
			return PASS_ROUTE_FORM;
		hl = at - p;
	}
	u->host = p;
	u->host_len = hl;
	q = p + hl;
	c = q < end ? in_u8(s, q) : ';';
	if (q < end && c != ':' && c != ';' && c != '?')
		return PASS_ROUTE_FORM;
	if (c == ':') {
		long port;

		at = sip_find4(s, q + 1, end, CHARS4(';', '?', ';', '?'));
		u->port_end = at < 0 ? end : (__u32)at;
		port = sip_uint(s, q + 1, u->port_end, PORT_MAX_DIGITS);
		if (port < 1 || port > PORT_MAX)
			return PASS_ROUTE_FORM;
		u->port = port;
		q = u->port_end;
	}
	/* ;params: each not empty, "name" or "name=value" with both not empty.
	 * Verifier: the position lives in u->scan (memory), so the parameter kinds of
	 * one step do not multiply with the next step's (see sip_parse_via). */
	u->scan = q;
	for (int i = 0; i < MAX_URI_PARAMS; i++) {
		__u32 np, pe, eq;
		__u64 w;

		asm volatile("" ::: "memory");
		q = u->scan;
		if (q >= end || in_u8(s, q) == '?')
			return PASS_NONE;
		np = q + 1;
		at = sip_find4(s, np, end, CHARS4(';', '?', ';', '?'));
		pe = at < 0 ? end : (__u32)at;
		at = sip_find1(s, np, pe, '=');
		eq = at < 0 ? pe : (__u32)at;
		if (pe == np || eq == np || eq + 1 == pe)
			return PASS_ROUTE_FORM;
		w = in_u64(s, np);
		if (eq - np == 2 && name_eq(w, "lr", 2)) {
			u->lr = 1;
		} else if (eq - np == 5 && name_eq(w, "maddr", 5)) {
			if (eq == pe)
				return PASS_ROUTE_FORM;
			if (!u->maddr) {
				u->maddr = eq + 1;
				u->maddr_len = pe - (eq + 1);
			}
		} else if (eq - np == 9 && name_eq(w, "transpor", 8) && (in_u8(s, np + 8) | 0x20) == 't') {
			if (eq == pe)
				return PASS_ROUTE_FORM;
			if (!u->transport) {
				u->transport = eq + 1;
				u->transport_len = pe - (eq + 1);
			}
		}
		u->scan = pe;
	}
	return PASS_ROUTE_FORM;
}

/* sip_uri_udp reports whether a URI's next hop is UDP: no transport parameter, or
 * transport=udp in any case. */
static __always_inline int sip_uri_udp(struct scratch *s, struct uri_info *u)
{
	return !u->transport || (u->transport_len == 3 && name_eq(in_u64(s, u->transport), "udp", 3));
}

/* sip_check_params checks the header parameters of a name-addr in [p, end) as the
 * slow path does, or stricter: *(";" name ["=" value]) with blanks around; names
 * letters, digits, '-'; values token characters and ":[]" (a quoted value passes).
 * Returns: 1 when a tag parameter is there, 0 when not, or -PASS_ADDR_FORM. */
__noinline int sip_check_params(struct scratch *s, __u32 p, __u32 end)
{
	struct sip_msg *m;
	int at, tag = 0;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	/* Verifier: the position lives in memory (see sip_scan_headers). */
	m->addr_scan = p;
	for (int i = 0; i < MAX_URI_PARAMS; i++) {
		__u32 np, ne, ve;

		asm volatile("" ::: "memory");
		if (m->addr_scan >= end)
			return tag;
		at = sip_skip_ws(s, m->addr_scan);
		if (at < 0 || (__u32)at >= end)
			return at < 0 ? -PASS_ADDR_FORM : tag;
		if (in_u8(s, at) != ';')
			return -PASS_ADDR_FORM;
		at = sip_skip_ws(s, at + 1);
		if (at < 0)
			return -PASS_ADDR_FORM;
		np = at;
		at = sip_span_class(s, np, end, CLS_NAME);
		if (at <= (int)np)
			return -PASS_ADDR_FORM;
		ne = at;
		ve = ne;
		if (ne < end && in_u8(s, ne) == '=') {
			at = sip_span_class(s, ne + 1, end, CLS_VALUE);
			if (at <= (int)ne + 1)
				return -PASS_ADDR_FORM; /* empty, or quoted */
			ve = at;
		}
		if (ne - np == 3 && name_eq(in_u64(s, np), "tag", 3)) {
			if (ve == ne)
				return -PASS_ADDR_FORM; /* tag needs a value */
			tag = 1;
		}
		m->addr_scan = ve;
	}
	return -PASS_ADDR_FORM;
}

/* sip_parse_route parses the Route value at val (its line's CR at end) into
 * s->msg.rt[which]: "<" URI ">" *(";" rr-param), then "," or the line's end.
 * Returns: PASS_NONE or the reason. */
__noinline int sip_parse_route(struct scratch *s, __u32 which, __u32 val, __u32 end)
{
	struct uri_info *u;
	__u32 colon;
	int gt, at, r;
	long span;

	if (!s)
		return PASS_INTERNAL;
	u = &s->msg.rt[which & 1];
	__builtin_memset(u, 0, sizeof(*u));
	u->val = val;
	if (in_u8(s, val) != '<')
		return PASS_ROUTE_FORM; /* a display name: slow path */
	/* the URI runs to the first byte outside CLS_URI: '>' */
	span = sip_uri_span(s, val + 1, end);
	if (span < 0)
		return PASS_ROUTE_FORM;
	gt = span & 0xffff;
	colon = (span >> URI_COLON_SHIFT) & 0xffff;
	if ((__u32)gt >= end || in_u8(s, gt) != '>')
		return PASS_ROUTE_FORM;
	r = sip_parse_uri(s, u, val + 1, gt, colon);
	if (r)
		return r;
	if (!u->sip)
		return PASS_ROUTE_FORM; /* sips: and the rest: slow path */
	u->val = val;
	at = sip_find4(s, gt, end + 1, CHARS4(',', '\r', ',', '\r'));
	if (at < 0)
		return PASS_ROUTE_FORM;
	u->val_end = at;
	u->more = in_u8(s, at) == ',';
	/* rr-params after '>' up to the comma or the line's end */
	if (sip_check_params(s, gt + 1, at) < 0)
		return PASS_ROUTE_FORM;
	return PASS_NONE;
}

/* sip_parse_ruri parses the Request-URI into s->msg.ruri_info.
 * Returns: PASS_NONE or the reason. */
__noinline int sip_parse_ruri(struct scratch *s)
{
	struct uri_info *u;
	int r;

	if (!s)
		return PASS_INTERNAL;
	u = &s->msg.ruri_info;
	__builtin_memset(u, 0, sizeof(*u));
	u->val = s->msg.ruri;
	r = sip_uri_colon(s, s->msg.ruri, s->msg.ruri_end);
	return sip_parse_uri(s, u, s->msg.ruri, s->msg.ruri_end, r < 0 ? URI_NO_COLON : (__u32)r);
}

/* sip_check_nameaddr checks a To or From value in [val, end) as the slow path's
 * ParseNameAddr does, or stricter: [display] "<" URI ">" *(";" name ["=" value]);
 * display a quoted string without escapes or letters, digits, - . and blanks; the
 * URI as sip_parse_uri takes it (into s->msg.addr_uri). An addr-spec (no angle
 * brackets) passes.
 * Returns: 1 when a tag parameter is there, 0 when not, or -reason. */
__noinline int sip_check_nameaddr(struct scratch *s, __u32 val, __u32 end)
{
	struct sip_msg *m;
	__u32 p = val, lt, gt, colon;
	long r;
	int at;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	if (p >= end)
		return -PASS_ADDR_FORM;
	if (in_u8(s, p) == '"') {
		at = sip_find4(s, p + 1, end, CHARS4('"', '\\', '"', '\\'));
		if (at < 0 || in_u8(s, at) != '"')
			return -PASS_ADDR_FORM; /* unterminated, or an escape */
		at = sip_skip_ws(s, at + 1); /* blanks before '<' */
		if (at < 0)
			return -PASS_ADDR_FORM;
		lt = at;
	} else {
		/* the display name runs to the first byte outside CLS_DISPLAY: '<' */
		at = sip_span_class(s, p, end, CLS_DISPLAY);
		if (at < 0)
			return -PASS_ADDR_FORM;
		lt = at;
	}
	if (lt >= end || in_u8(s, lt) != '<')
		return -PASS_ADDR_FORM;
	/* the URI runs to the first byte outside CLS_URI: '>' */
	r = sip_uri_span(s, lt + 1, end);
	if (r < 0)
		return -PASS_ADDR_FORM;
	gt = r & 0xffff;
	colon = (r >> URI_COLON_SHIFT) & 0xffff;
	if (gt >= end || in_u8(s, gt) != '>' || gt == lt + 1 ||
	    sip_parse_uri(s, &m->addr_uri, lt + 1, gt, colon))
		return -PASS_ADDR_FORM;
	m->addr_uri.val = lt + 1;
	m->addr_uri.val_end = gt;

	return sip_check_params(s, gt + 1, end);
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
	r = sip_line_end(s, 0);
	if (r < 1)
		return r < 0 ? -r : PASS_PARSE;
	cr = r;
	m->rl_end = cr + 2;
	r = sip_start_line(s, m, cr);
	if (r)
		return r;

	r = sip_scan_headers(s, m);
	if (r)
		return r;
	if (!m->via[0].line || !m->callid_h.line || !m->from.line || !m->to.line || !m->cseq_h.line)
		return PASS_MISSING_HEADER;
	if (m->n_via_vals > SLOW_MAX_VIAS || m->n_route_vals > SLOW_MAX_ROUTES || m->n_rr_vals > SLOW_MAX_RECORD_ROUTES)
		return PASS_TOO_MANY_VALUES;
	/* A forwarded request gains our Via (and maybe our Record-Route): one at
	 * the slow path's bound would leave past it, which the slow path answers
	 * with 483. The counts are upper bounds, so passing is always safe. */
	if (m->is_request && (m->n_via_vals >= SLOW_MAX_VIAS || m->n_rr_vals >= SLOW_MAX_RECORD_ROUTES))
		return PASS_TOO_MANY_VALUES;

	/* Content-Length, when present, is the body's length (RFC 3261 18.3). */
	if (m->clen_h.line) {
		v = sip_uint(s, m->clen_h.val, m->clen_h.end, PORT_MAX_DIGITS);
		if (v < 0 || (__u32)v != len - m->body)
			return PASS_BODY_LENGTH;
		m->clen = v;
	} else if (m->body != len) {
		return PASS_BODY_LENGTH;
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
	if (in_u8(s, e - 1) == ' ' || in_u8(s, e - 1) == '\t')
		return PASS_PARSE; /* more blanks than trimmed: the token would differ */
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
	if (m->cseq_method == METHOD_OTHER && !sip_all_class(s, r, m->cseq_h.end, CLS_NAME))
		return PASS_PARSE; /* not a token (or token characters we do not take) */
	if (m->is_request && m->cseq_method != m->method)
		return PASS_PARSE; /* the slow path forwards it; we keep events exact */

	return sip_parse_via(s, 0, m->via[0].val, m->via[0].end);
}

#endif
