/* This file contains the ring-buffer events: which forwarded messages are reported, and the emit helper. */
#ifndef SIPEDGE_EVENTS_H
#define SIPEDGE_EVENTS_H

#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "config.h"
#include "maps.h"
#include "hash.h"

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

/* events_emit reports a forwarded message to the agent. A full ring buffer loses the
 * event, not the packet, and counts the loss. */
static __always_inline void events_emit(struct scratch *s, struct listener *lis)
{
	struct sip_msg *m = &s->msg;
	struct sip_event *ev;

	if (!cfg_events || !events_wanted(m))
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		events_lost(m->is_request ? EVENT_REQUEST : EVENT_REPLY, m->is_request ? m->method : m->cseq_method);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->callid_hash = hash_callid(s);
	ev->listener_id = lis->id;
	ev->set_id = m->is_request ? s->fwd.set_id : -1;
	ev->dst_idx = s->fwd.dst_idx;
	ev->status = m->status;
	ev->kind = m->is_request ? EVENT_REQUEST : EVENT_REPLY;
	ev->method = m->is_request ? m->method : m->cseq_method;
	ev->pad[0] = 0;
	ev->pad[1] = 0;
	ev->cseq = m->cseq;
	ev->pad2 = 0;
	/* A wake-up per event costs the agent a poll return and a context switch per
	 * event, more than reading the event. Submit silently, and wake the agent only
	 * when an eighth of the ring is pending: it drains on its own every few ms
	 * (EventPollInterval), so an idle period still delivers events, and a burst
	 * wakes it long before the ring fills. (The default, 0, would wake it only when
	 * it had caught up: once per record at low rates.) */
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_events_wake_bytes)
		bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
}

#endif
