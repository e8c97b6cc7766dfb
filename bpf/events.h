/* This file contains the ring-buffer events: which forwarded messages are reported, and the emit helpers (compact records, and records that carry the message). */
#ifndef SIPEDGE_EVENTS_H
#define SIPEDGE_EVENTS_H

#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "config.h"
#include "maps.h"
#include "hash.h"
#include "parse_sip.h"

/* events_wanted reports whether a forwarded message is dialog-relevant: an INVITE,
 * ACK, BYE or CANCEL; any reply to an INVITE (1xx, 100 included, moves a dialog
 * from INIT to PROGRESS, as in Kamailio's dlgs); a final reply to a BYE or CANCEL.
 * Provisional replies to BYE and CANCEL change no dialog and are left out. */
static __always_inline int events_wanted(struct sip_msg *m)
{
	if (m->is_request)
		return m->method == METHOD_INVITE || m->method == METHOD_ACK || m->method == METHOD_BYE ||
		       m->method == METHOD_CANCEL;
	if (m->cseq_method == METHOD_INVITE)
		return 1;
	return (m->cseq_method == METHOD_BYE || m->cseq_method == METHOD_CANCEL) && m->status >= STATUS_FINAL_MIN;
}

/* A method must fit its slot: the mask below would file a larger one under another. */
_Static_assert(METHOD_OTHER < EVENT_METHOD_SLOTS, "enum sip_method outgrew EVENT_METHOD_SLOTS");

/* events_lost counts an event the full ring could not take, by kind and method:
 * the agent reports it (fastpath.stats events_lost), so a loss is never silent. */
static __always_inline void events_lost(__u8 kind, __u8 method)
{
	__u32 key = (__u32)kind * EVENT_METHOD_SLOTS + (method & (EVENT_METHOD_SLOTS - 1));
	__u64 *n = bpf_map_lookup_elem(&event_lost, &key);

	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

/* events_copy_wanted reports whether a message's event carries a copy of it (with
 * cfg_events_copy): an INVITE request, whose record the dialog tracker fills from
 * any header, and a 2xx reply to INVITE, whose To tag it learns. */
static __always_inline int events_copy_wanted(struct sip_msg *m)
{
	if (m->is_request)
		return m->method == METHOD_INVITE;
	return m->cseq_method == METHOD_INVITE && m->status >= STATUS_FINAL_MIN && m->status < STATUS_REDIRECT_MIN;
}

/* events_fill writes an event's header; msg_len is the length of the copy that
 * follows it, 0 for none. */
static __always_inline void events_fill(struct sip_event *ev, struct scratch *s, struct listener *lis, __u16 msg_len)
{
	struct sip_msg *m = &s->msg;

	ev->ts_ns = bpf_ktime_get_ns();
	ev->callid_hash = hash_callid(s);
	ev->listener_id = lis->id;
	ev->set_id = m->is_request ? s->fwd.set_id : -1;
	ev->dst_idx = s->fwd.dst_idx;
	ev->status = m->status;
	ev->kind = m->is_request ? EVENT_REQUEST : EVENT_REPLY;
	ev->method = m->is_request ? m->method : m->cseq_method;
	ev->src_family = s->pkt.family;
	ev->pad = 0;
	ev->cseq = m->cseq;
	ev->src_port = s->pkt.sport;
	ev->msg_len = msg_len;
	__builtin_memcpy(ev->src_addr, s->pkt.saddr, sizeof(ev->src_addr));
}

/* events_wake_flags says how to submit a record. A wake-up per event costs the
 * agent a poll return and a context switch per event, more than reading the
 * event. Submit silently, and wake the agent only when an eighth of the ring is
 * pending: it drains on its own every few ms (EventPollInterval), so an idle
 * period still delivers events, and a burst wakes it long before the ring fills.
 * (The default, 0, would wake it only when it had caught up: once per record at
 * low rates.) Pending bytes count records, not events: a ring of copies wakes the
 * agent after fewer events, which is what bounds the time to full. */
static __always_inline __u64 events_wake_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_events_wake_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* events_emit_copy reports an INVITE or a 2xx reply to INVITE with a copy of the
 * message as received: the payload copy at IN_AT(s, 0), which the rewrite only
 * reads (rw_apply assembles the new front part at BUF_OUT and writes the packet;
 * inserted text lives in blk, below BUF_IN), so it is still the original here.
 *
 * The record is sized to the message (bpf_ringbuf_reserve_dynptr takes a size
 * known only at run time), not reserved at the largest size: a fixed
 * sizeof(struct sip_event) + SIP_MAX_LEN record would take 1,536 ring bytes for a
 * typical 900-byte INVITE. bpf_ringbuf_output could size it too, but it copies
 * one contiguous source, and the header and the payload copy are not contiguous
 * in the scratch map; staging them together would be a second copy. Here the
 * header is written in place through bpf_dynptr_data and the message is copied
 * once by bpf_dynptr_write. */
static __always_inline void events_emit_copy(struct scratch *s, struct listener *lis, __u8 kind, __u8 method)
{
	struct bpf_dynptr rec;
	struct sip_event *ev;
	__u32 len = s->pkt.payload_len;

	/* Bound for the verifier: bpf_dynptr_write reads [IN_AT(s, 0), +len) of the
	 * scratch value, and len <= SIP_MAX_LEN keeps BUF_IN + len inside buf
	 * (BUF_IN + SIP_MAX_LEN < BUF_OUT). xdp_sip passed longer payloads
	 * (PASS_TOO_LONG), so this never drops an event. */
	if (len > SIP_MAX_LEN)
		return;
	/* A failed reserve still initializes rec (as invalid): it must be discarded. */
	if (bpf_ringbuf_reserve_dynptr(&events, sizeof(*ev) + len, 0, &rec)) {
		bpf_ringbuf_discard_dynptr(&rec, 0);
		events_lost(kind, method);
		return;
	}
	/* Never NULL: the record is at least a header long; the verifier wants the check. */
	ev = bpf_dynptr_data(&rec, 0, sizeof(*ev));
	if (!ev) {
		bpf_ringbuf_discard_dynptr(&rec, 0);
		events_lost(kind, method);
		return;
	}
	events_fill(ev, s, lis, len);
	if (bpf_dynptr_write(&rec, sizeof(*ev), IN_AT(s, 0), len, 0)) {
		bpf_ringbuf_discard_dynptr(&rec, 0);
		events_lost(kind, method);
		return;
	}
	bpf_ringbuf_submit_dynptr(&rec, events_wake_flags());
}

/* events_emit reports a forwarded message to the agent. A full ring buffer loses the
 * event, not the packet, and counts the loss. */
static __always_inline void events_emit(struct scratch *s, struct listener *lis)
{
	struct sip_msg *m = &s->msg;
	struct sip_event *ev;
	__u8 kind, method;

	if (!cfg_events || !events_wanted(m))
		return;
	kind = m->is_request ? EVENT_REQUEST : EVENT_REPLY;
	method = m->is_request ? m->method : m->cseq_method;
	if (cfg_events_copy && events_copy_wanted(m)) {
		events_emit_copy(s, lis, kind, method);
		return;
	}
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		events_lost(kind, method);
		return;
	}
	events_fill(ev, s, lis, 0);
	bpf_ringbuf_submit(ev, events_wake_flags());
}

#endif
