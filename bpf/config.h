/* This file contains the load-time knobs of the XDP program (volatile const, set through spec.Variables). */
#ifndef SIPEDGE_CONFIG_H
#define SIPEDGE_CONFIG_H

#include <linux/types.h>
#include "consts.h"

/* Do not include this file from any other program: the knobs live in this object's .rodata. */

/* TTL (IPv4) or hop limit (IPv6) of forwarded packets; the kernel's default for sockets. */
volatile const __u8 cfg_ip_ttl = IP_TTL_DEFAULT;

/* 1: emit ring-buffer events (struct sip_event, events_wanted in events.h); 0: emit
 * none (nobody consumes them). */
volatile const __u8 cfg_events = 1;

/* 1: the events of INVITE requests and of 2xx replies to INVITE carry a copy of
 * the SIP message as received (struct sip_event, events.h), for a dialog tracker
 * that reads its own fields from it; 0: every event is the header alone. */
volatile const __u8 cfg_events_copy = 0;

/* Pending bytes in the event ring from which a submit wakes the agent (events.h);
 * the agent sets an eighth of the ring's size. */
volatile const __u32 cfg_events_wake_bytes = EVENTS_RING_BYTES / 8;

#endif
