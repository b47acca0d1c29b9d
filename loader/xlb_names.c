// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Names of enum xlb_reason values, as used in xlbctl output and metrics. */
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
};

_Static_assert(XLB_R_MAX == sizeof(reason_names) / sizeof(reason_names[0]),
               "every reason needs a name");

const char *xlb_reason_name(uint32_t reason)
{
    if (reason >= XLB_R_MAX || !reason_names[reason])
        return "unknown";
    return reason_names[reason];
}
