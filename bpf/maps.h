/* This file contains every map of the XDP program, declared once with BTF types. */
#ifndef SIPEDGE_MAPS_H
#define SIPEDGE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"
#include "pass_reasons.h"

/* ---- Written by the agent (userspace/dataplane/sync.go) ---- */

/* The UDP listeners: where SIP arrives, its ADV text and its rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LISTENERS);
	__type(key, struct listener_key);
	__type(value, struct listener);
} listeners SEC(".maps");

/* Destination sets, two halves: key = half * MAX_SETS + set slot. The agent writes
 * the half packets do not read, then flips active_half. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SET_HALVES * MAX_SETS);
	__type(key, __u32);
	__type(value, struct dst_set);
} dst_sets SEC(".maps");

/* Which half of dst_sets is live (one entry, key 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct active_half);
} active_half SEC(".maps");

/* Dialog limits reached (userspace/agent/limits.go): a dialog-creating INVITE (no To
 * tag) from a source, or dispatched to a set, listed here, or any such INVITE while
 * LIMIT_ALL is listed, passes to the slow path, which answers it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LIMIT_BLOCKS);
	__type(key, struct limit_key);
	__type(value, struct limit_verdict);
} limit_block SEC(".maps");

/* Which kinds of entry limit_block holds (one entry, key 0): an INVITE looks up only
 * those, so that no limit reached costs one array read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct limit_present);
} limit_active SEC(".maps");

/* Alg 10 loads (callload.h), key = load slot (one per set and duid, 1..MAX_LOADS-1):
 * the live calls of that duid, as the agent's Call-ID table counts them. The agent
 * writes them after each event batch that changed them; the program adds each pick
 * (and takes each release) in between, atomically, so a burst spreads. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_LOADS);
	__type(key, __u32);
	__type(value, __s64);
} dst_load SEC(".maps");

/* ---- Written by the program ---- */

/* Alg 10 calls (callload.h): Call-ID hash -> where the call went. LRU: a call whose
 * entry was evicted is placed by the slow path (PASS_CALL_UNKNOWN), which keeps every
 * call until it expires. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CALL_DST_ENTRIES);
	__type(key, __u64);
	__type(value, struct call_dst);
} call_dst SEC(".maps");

/* Rotating positions of algs 4, 9, 11, 14 per set slot (per CPU: no contention). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SETS);
	__type(key, __u32);
	__type(value, struct set_cursor);
} set_cursor SEC(".maps");

/* Packets passed to the stack, key = enum pass_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PASS_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} pass_count SEC(".maps");

/* Packets dropped, key = enum drop_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drop_count SEC(".maps");

/* Per-listener counters, key = listener.id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_LISTENERS);
	__type(key, __u32);
	__type(value, struct listener_stats);
} listener_stats SEC(".maps");

/* Per-destination counters, key = set slot * MAX_DSTS + destination index. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SETS * MAX_DSTS);
	__type(key, __u32);
	__type(value, struct dst_stats);
} dst_stats SEC(".maps");

/* Dialog-relevant messages forwarded (struct sip_event), for the agent's dialog table. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RING_BYTES);
} events SEC(".maps");

/* Events the full ring could not take, key = kind * EVENT_METHOD_SLOTS + method
 * (enum event_kind, enum sip_method: the request's, or a reply's CSeq method). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} event_lost SEC(".maps");

/* Per-CPU working memory: the payload copy, parse results, edits (one entry, key 0). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

#endif
