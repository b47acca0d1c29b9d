// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Names of enum xlb_reason and enum xlb_event values, as used in xlbctl
 * output and metrics. */
#include "xlb_loader.h"

static const char *const reason_names[XLB_R_MAX] = {
    [XLB_R_TX] = "tx",
    [XLB_R_REDIRECT] = "redirect",
    [XLB_R_PASS_NOT_IP] = "pass_not_ip",
    [XLB_R_PASS_NOT_VIP] = "pass_not_vip",
    [XLB_R_PASS_MALFORMED] = "pass_malformed",
    [XLB_R_PASS_NO_NEIGH] = "pass_no_neigh",
    [XLB_R_PASS_FRAGMENT] = "pass_fragment",
    [XLB_R_ICMP_ECHO_REPLY] = "icmp_echo_reply",
    [XLB_R_DROP_MALFORMED] = "drop_malformed",
    [XLB_R_DROP_NO_REAL] = "drop_no_real",
    [XLB_R_DROP_ENCAP] = "drop_encap",
    [XLB_R_DROP_FIB] = "drop_fib",
    [XLB_R_DROP_TOO_BIG] = "drop_too_big",
    [XLB_R_DECAP] = "decap",
    [XLB_R_DECAP_PASS] = "decap_pass",
    [XLB_R_DROP_FWD_DISABLED] = "drop_fwd_disabled",
    [XLB_R_DROP_ACL_DENY] = "drop_acl_deny",
    [XLB_R_DROP_ACL_NOT_ALLOWED] = "drop_acl_not_allowed",
    [XLB_R_DROP_GLOBAL_DENY] = "drop_global_deny",
    [XLB_R_PASS_ICMP_NO_FLOW] = "pass_icmp_no_flow",
    [XLB_R_DROP_DSR_GATEWAY] = "drop_dsr_gateway",
    [XLB_R_DROP_NO_NEIGH] = "drop_no_neigh",
    [XLB_R_PASS_NAT_NO_ENTRY] = "pass_nat_no_entry",
    [XLB_R_PASS_NAT_UNTRANSLATED] = "pass_nat_untranslated",
    [XLB_R_PASS_NAT_FRAG_NO_ENTRY] = "pass_nat_frag_no_entry",
};

_Static_assert(XLB_R_MAX == sizeof(reason_names) / sizeof(reason_names[0]),
               "every reason needs a name");

const char *xlb_reason_name(uint32_t reason)
{
    if (reason >= XLB_R_MAX || !reason_names[reason])
        return "unknown";
    return reason_names[reason];
}

static const char *const event_names[XLB_EV_MAX] = {
    [XLB_EV_FLOOD_NO_INSERT] = "flood_no_insert",
    [XLB_EV_PERSIST_HIT] = "persist_hit",
    [XLB_EV_UDP_IDLE] = "udp_idle_expired",
    [XLB_EV_ICMP_TOO_BIG] = "icmp_too_big_to_real",
    [XLB_EV_ICMP_LOW_MTU] = "icmp_too_big_low_mtu",
    [XLB_EV_FRAGMENT] = "fragment_by_address",
    [XLB_EV_NAT_REPLY] = "nat_reply_translated",
};

_Static_assert(XLB_EV_MAX == sizeof(event_names) / sizeof(event_names[0]),
               "every event needs a name");

const char *xlb_event_name(uint32_t event)
{
    if (event >= XLB_EV_MAX || !event_names[event])
        return "unknown";
    return event_names[event];
}
