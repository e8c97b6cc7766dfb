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
SPAN_CLASS_FN(sip_span_uri, CLS_URI)
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
	case CLS_URI:
		return sip_span_uri(s, pos, end);
	case CLS_VALUE:
		return sip_span_value(s, pos, end);
	default:
		return sip_span_display(s, pos, end);
	}
}

/* sip_all_class reports whether [pos, end) is not empty and all in class cls. */
static __always_inline int sip_all_class(struct scratch *s, __u32 pos, __u32 end, __u32 cls)
{
	return end > pos && sip_span_class(s, pos, end, cls) == (int)end;
}

/* sip_find_delim returns the offset of the first of ; , CR SP HTAB in [pos, end), or -1:
 * the end of a Via or URI parameter. */
static __always_inline int sip_find_delim(struct scratch *s, __u32 pos, __u32 end)
{
	/* Five delimiters do not fit one 4-byte set: HTAB, the rare one, gets a cheap
	 * one-byte scan up to the first hit of the other four. */
	int at = sip_find4(s, pos, end, CHARS4(';', ',', '\r', ' '));
	int tab = sip_find1(s, pos, at < 0 ? end : (__u32)at, '\t');

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
	sp = sip_find1(s, 0, cr - 8, ' ');
	if (sp < 1 || sp > 16)
		return PASS_PARSE;
	/* Exactly one SP between the method and " SIP/2.0": the URI holds none. */
	sp2 = sip_find4(s, sp + 1, cr - 8, CHARS4(' ', '\t', ' ', '\t'));
	if (sp2 >= 0 || (__u32)sp + 1 >= cr - 8)
		return PASS_PARSE;
	m->is_request = 1;
	m->method = sip_method_of(w0, in_u8(s, 8), sp);
	if (m->method == METHOD_OTHER && !sip_all_class(s, 0, sp, CLS_NAME))
		return PASS_PARSE; /* not a token (or token characters we do not take) */
	m->ruri = sp + 1;
	m->ruri_end = cr - 8;
	/* Request-URI: a letter first, a ':', no blank, control, non-ASCII, < > " */
	c = in_u8(s, m->ruri) | 0x20;
	if (c < 'a' || c > 'z' || sip_find1(s, m->ruri, m->ruri_end, ':') < 0 ||
	    !sip_all_class(s, m->ruri, m->ruri_end, CLS_URI))
		return PASS_PARSE;
	return PASS_NONE;
}

/* sip_hdr_kind names the header whose name is the nlen bytes at ls (w: its first 8
 * bytes), ignoring case, long or compact form. Returns: an enum sip_hdr. */
static __always_inline __u32 sip_hdr_kind(struct scratch *s, __u32 ls, __u64 w, __u32 nlen)
{
	switch (nlen) {
	case 1:
		switch ((__u8)w | 0x20) {
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
		if (name_eq(w, "to", 2))
			return HDR_TO;
		break;
	case 3:
		if (name_eq(w, "via", 3))
			return HDR_VIA;
		break;
	case 4:
		if (name_eq(w, "from", 4))
			return HDR_FROM;
		if (name_eq(w, "cseq", 4))
			return HDR_CSEQ;
		break;
	case 5:
		if (name_eq(w, "route", 5))
			return HDR_ROUTE;
		break;
	case 7:
		if (name_eq(w, "call-id", 7))
			return HDR_CALLID;
		break;
	case 12:
		if (name_eq(w, "max-forw", 8) && name_eq(in_u64(s, ls + 8), "ards", 4))
			return HDR_MAXFWD;
		break;
	case 14:
		if (name_eq(w, "content-", 8) && name_eq(in_u64(s, ls + 8), "length", 6))
			return HDR_CLEN;
		break;
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

/* sip_hdr_line classifies and records the header line at ls (its CR at cr), whose
 * name is nlen bytes and whose colon is at colon; one whose first letter may start a
 * header the fast path uses. A global function: verified once, not once per scan step.
 * Returns: LINE_HEADER, or -reason. */
__noinline int sip_hdr_line(struct scratch *s, __u32 ls, __u32 cr, __u32 nlen, __u32 colon)
{
	struct sip_msg *m;
	__u32 hdr, val;
	int r, v;

	if (!s)
		return -PASS_INTERNAL;
	m = &s->msg;
	hdr = sip_hdr_kind(s, ls, in_u64(s, ls), nlen);
	m->last_ours = hdr != HDR_OTHER;
	if (hdr == HDR_OTHER)
		return LINE_HEADER;
	if (colon != ls + nlen)
		return -PASS_HDR_FORM; /* white space before the colon of a header we use */
	v = sip_skip_ws(s, colon + 1);
	if (v < 0)
		return -PASS_PARSE;
	val = v;
	r = sip_hdr_record(m, hdr, ls, val > cr ? cr : val, cr);
	return r ? -r : LINE_HEADER;
}

/* sip_line handles the line [ls, nl] (nl: its LF, after a CR): the blank line, a
 * continuation line (allowed only after a header the fast path does not use), or a
 * header line "name *(SP/HTAB) ':' value", whose name must be letters, digits and
 * '-' (other token characters, and anything the slow path would reject, pass).
 * Its state between lines is in s->msg.
 * Returns: LINE_HEADER, LINE_BLANK, or -reason. */
static __always_inline int sip_line(struct scratch *s, struct sip_msg *m, __u32 ls, __u32 nl)
{
	__u32 cr, lc, colon;
	__u64 bad;
	__u8 c;
	int ne;

	if (nl >= m->len || nl <= ls)
		return -PASS_PARSE;
	cr = nl - 1;
	if (cr == ls) { /* the blank line */
		m->body = nl + 1;
		return LINE_BLANK;
	}
	c = in_u8(s, ls);
	if (c == ' ' || c == '\t')
		return m->last_ours ? -PASS_FOLDED : LINE_HEADER;
	/* The name: letters, digits, '-'. Most names end inside their first 8 bytes:
	 * check those inline, call the scanner for longer ones. */
	bad = ~swar_class(in_u64(s, ls), CLS_NAME) & SWAR_HI;
	ne = bad ? (int)(ls + swar_first(bad)) : sip_span_class(s, ls + 8, cr, CLS_NAME);
	if (ne <= (int)ls || ne >= (int)cr)
		return -PASS_HDR_FORM;
	colon = ne;
	if (in_u8(s, colon) != ':') {
		int k = sip_skip_ws(s, colon);

		if (k <= (int)colon || (__u32)k >= cr || in_u8(s, k) != ':')
			return -PASS_HDR_FORM; /* not "token *(SP/HTAB) ':'", or a name we do not take */
		colon = k;
	}
	/* Most lines are headers the fast path does not use: one test on the first
	 * letter sends them on. */
	lc = (c | 0x20) - 'a';
	if (lc > 'v' - 'a' || !((HDR_FIRST_LETTERS >> lc) & 1)) {
		m->last_ours = 0;
		return LINE_HEADER;
	}
	return sip_hdr_line(s, ls, cr, ne - ls, colon);
}

/* sip_scan_headers walks the header lines from m->rl_end to the blank line in one
 * pass, 32 bytes per step (four SWAR words, CR and LF), and hands each line to
 * sip_line.
 * Returns: PASS_NONE or the reason. */
static __always_inline int sip_scan_headers(struct scratch *s, struct sip_msg *m, __u32 len)
{
	const __u64 lf = '\n' * SWAR_ONES, cr = '\r' * SWAR_ONES;

	/* One loop, two kinds of step: skip 32 bytes without CR or LF, or finish a line.
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
		__u64 a, b, c, d, w;
		__u32 p, ev;
		int r;

		asm volatile("" ::: "memory");
		p = m->scan_p;
		w = in_u64(s, p);
		a = swar_match(w, lf) | swar_match(w, cr);
		w = in_u64(s, p + 8);
		b = swar_match(w, lf) | swar_match(w, cr);
		w = in_u64(s, p + 16);
		c = swar_match(w, lf) | swar_match(w, cr);
		w = in_u64(s, p + 24);
		d = swar_match(w, lf) | swar_match(w, cr);
		if (!(a | b | c | d)) {
			p += 32;
			if (p >= len)
				return PASS_PARSE;
			m->scan_p = p;
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
		/* The first CR or LF must be a CR followed by LF: a bare CR or LF makes
		 * the message malformed (the slow path drops it). */
		if (in_u8(s, ev) != '\r' || in_u8(s, ev + 1) != '\n')
			return PASS_PARSE;
		r = sip_line(s, m, m->scan_ls, ev + 1);
		if (r < 0)
			return -r;
		if (r == LINE_BLANK)
			return PASS_NONE;
		m->scan_ls = ev + 2;
		m->scan_p = ev + 2;
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
		at = sip_find1(s, p, q, ']');
		if (at < (int)p + 3 || !sip_all_class(s, p + 1, at, CLS_IPV6))
			return PASS_VIA_FORM;
		hl = at + 1 - p;
	} else {
		at = sip_find1(s, p, q, ':');
		hl = (at < 0 ? q : (__u32)at) - p;
		if (!sip_all_class(s, p, p + hl, CLS_HOST))
			return PASS_VIA_FORM;
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
			return PASS_VIA_FORM; /* SP or HTAB inside the value */
		np = q + 1;
		at = sip_find_delim(s, np, end + 1);
		if (at <= (int)np)
			return PASS_VIA_FORM;
		q = at;
		v->scan = q;
		/* ;name[=value]: name letters, digits, '-'; value token characters, ':[]' */
		at = sip_find1(s, np, q, '=');
		eq = at < 0 ? q : (__u32)at;
		if (!sip_all_class(s, np, eq, CLS_NAME) ||
		    (eq < q && !sip_all_class(s, eq + 1, q, CLS_VALUE)))
			return PASS_VIA_FORM; /* a quoted value, an empty one, or bytes we do not take */
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

/* sip_parse_uri parses the URI in [p, end) as the slow path's ParseURI does, or
 * stricter: only characters 0x21-0x7e but < > "; for sip: "sip:" [user[:password] "@"]
 * host [":" port] *(";" name["=" value]) ["?" headers], host a name (letters,
 * digits, - . _) or [IPv6]. Another scheme (tel:, sips:, ...) is checked for its
 * characters only and marked u->sip = 0. Fills u (val and val_end are the caller's).
 * Returns: PASS_NONE or PASS_ROUTE_FORM. */
static __always_inline int sip_parse_uri(struct scratch *s, struct uri_info *u, __u32 p, __u32 end)
{
	__u32 q, hl;
	int at;
	__u8 c;

	u->user = u->user_len = u->host = u->host_len = u->port = u->port_end = 0;
	u->maddr = u->maddr_len = u->transport = u->transport_len = 0;
	u->lr = u->sip = 0;
	/* scheme: a letter, then letters, digits, '-' ('+' and '.' pass), then ':' and
	 * something after it */
	c = in_u8(s, p) | 0x20;
	at = sip_find1(s, p, end, ':');
	if (c < 'a' || c > 'z' || at < 0 || (__u32)at + 1 >= end || !sip_all_class(s, p, at, CLS_NAME) ||
	    !sip_all_class(s, p, end, CLS_URI))
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
	/* ;params: each not empty, "name" or "name=value" with both not empty */
	for (int i = 0; i < MAX_URI_PARAMS; i++) {
		__u32 np, pe, eq;
		__u64 w;

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
		q = pe;
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
	int gt, at, r;

	if (!s)
		return PASS_INTERNAL;
	u = &s->msg.rt[which & 1];
	__builtin_memset(u, 0, sizeof(*u));
	u->val = val;
	if (in_u8(s, val) != '<')
		return PASS_ROUTE_FORM; /* a display name: slow path */
	gt = sip_find1(s, val, end, '>');
	if (gt < 0)
		return PASS_ROUTE_FORM;
	r = sip_parse_uri(s, u, val + 1, gt);
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

	if (!s)
		return PASS_INTERNAL;
	u = &s->msg.ruri_info;
	__builtin_memset(u, 0, sizeof(*u));
	u->val = s->msg.ruri;
	return sip_parse_uri(s, u, s->msg.ruri, s->msg.ruri_end);
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
	__u32 p = val, lt, gt;
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
		at = sip_find1(s, p, end, '<');
		if (at < 0)
			return -PASS_ADDR_FORM;
		lt = at;
		if (lt > p && !sip_all_class(s, p, lt, CLS_DISPLAY))
			return -PASS_ADDR_FORM;
	}
	if (lt >= end || in_u8(s, lt) != '<')
		return -PASS_ADDR_FORM;
	at = sip_find1(s, lt + 1, end, '>');
	if (at < 0)
		return -PASS_ADDR_FORM;
	gt = at;
	if (gt == lt + 1 || sip_parse_uri(s, &m->addr_uri, lt + 1, gt))
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
	at = sip_find1(s, 0, len, '\n');
	if (at < 2 || in_u8(s, at - 1) != '\r' || sip_find1(s, 0, at, '\r') != at - 1)
		return PASS_PARSE; /* no CRLF, or a bare CR before it */
	cr = at - 1;
	m->rl_end = at + 1;
	r = sip_start_line(s, m, cr);
	if (r)
		return r;

	r = sip_scan_headers(s, m, len);
	if (r)
		return r;
	if (!m->via[0].line || !m->callid_h.line || !m->from.line || !m->to.line || !m->cseq_h.line)
		return PASS_MISSING_HEADER;

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
