/* This file contains the bounds-checked Ethernet, IPv4/IPv6 and UDP parsing of the ingress frame. */
#ifndef SIPEDGE_PARSE_L34_H
#define SIPEDGE_PARSE_L34_H

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
#include "pass_reasons.h"

/* l34_is_v6_ext reports whether an IPv6 next-header value is an extension header. */
static __always_inline int l34_is_v6_ext(__u8 nh)
{
	switch (nh) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case IPPROTO_MH:
		return 1;
	}
	return 0;
}

/* l34_parse checks the frame is Ethernet + IPv4 (no options, no fragment) or IPv6 (no
 * extension header) + UDP with consistent lengths, and fills pi.
 * Returns: PASS_NONE, or the pass reason. */
static __always_inline int l34_parse(struct xdp_md *ctx, struct pkt_info *pi)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u32 flen, l3_len;

	if ((void *)(eth + 1) > data_end)
		return PASS_NOT_IP;
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD))
		return PASS_VLAN;
	flen = bpf_xdp_get_buff_len(ctx);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return PASS_BAD_LENGTH;
		if (ip->version != 4 || ip->ihl != IPV4_IHL_PLAIN)
			return PASS_IP_OPTIONS;
		if (ip->frag_off & bpf_htons(IPV4_FRAG_MASK))
			return PASS_FRAGMENT;
		if (ip->protocol != IPPROTO_UDP)
			return PASS_NOT_UDP;
		l3_len = bpf_ntohs(ip->tot_len);
		if (flen != sizeof(*eth) + l3_len || l3_len < sizeof(*ip) + sizeof(*udp))
			return PASS_BAD_LENGTH;
		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end)
			return PASS_BAD_LENGTH;
		pi->family = FAMILY_V4;
		__builtin_memset(pi->saddr, 0, sizeof(pi->saddr));
		__builtin_memset(pi->daddr, 0, sizeof(pi->daddr));
		__builtin_memcpy(pi->saddr, &ip->saddr, 4);
		__builtin_memcpy(pi->daddr, &ip->daddr, 4);
		pi->l4_off = sizeof(*eth) + sizeof(*ip);
		l3_len -= sizeof(*ip);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return PASS_BAD_LENGTH;
		if (ip6->nexthdr != IPPROTO_UDP)
			return l34_is_v6_ext(ip6->nexthdr) ? PASS_IPV6_EXT : PASS_NOT_UDP;
		l3_len = bpf_ntohs(ip6->payload_len);
		if (flen != sizeof(*eth) + sizeof(*ip6) + l3_len || l3_len < sizeof(*udp))
			return PASS_BAD_LENGTH;
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > data_end)
			return PASS_BAD_LENGTH;
		pi->family = FAMILY_V6;
		__builtin_memcpy(pi->saddr, &ip6->saddr, 16);
		__builtin_memcpy(pi->daddr, &ip6->daddr, 16);
		pi->l4_off = sizeof(*eth) + sizeof(*ip6);
	} else {
		return PASS_NOT_IP;
	}
	if (bpf_ntohs(udp->len) != l3_len)
		return PASS_BAD_LENGTH;
	/* The checksum is updated incrementally from the received one (rewrite_l34.h), so
	 * it must be there: optional on IPv4, and 0 is invalid on IPv6 anyway. */
	if (udp->check == 0)
		return PASS_NO_CSUM;
	pi->sport = bpf_ntohs(udp->source);
	pi->dport = bpf_ntohs(udp->dest);
	pi->udp_check = udp->check;
	pi->udp_len = l3_len;
	pi->payload_off = pi->l4_off + sizeof(*udp);
	pi->payload_len = l3_len - sizeof(*udp);
	return PASS_NONE;
}

#endif
