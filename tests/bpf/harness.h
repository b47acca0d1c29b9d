/*
 * harness.h - what every BPF test shares.
 *
 * The programs under test call bpf_fib_lookup() on the interface a frame
 * arrived on, so a frame needs a real interface, routes and neighbours
 * behind it.  xt_env_setup() (the .init of every test) builds them in a
 * private network namespace of the test's own process, which Criterion
 * forks per test: the namespace and its links vanish with the process and
 * nothing is left behind on the host.
 *
 *   xlbtveth0 (peer xlbtveth1)  MAC XT_MAC_IF0   198.18.0.1/24  fd00::1/64
 *       ingress of every frame; the addresses 198.18.0.16-64 and
 *       fd00::10-fd00::40 have permanent neighbours with the MACs of
 *       xt_real_mac()
 *   xlbtveth2 (peer xlbtveth3)  MAC XT_MAC_IF2   198.18.2.1/24  fd00:2::1/64
 *       second egress, for XDP_REDIRECT; neighbours 198.18.2.50, fd00:2::50
 *
 * Nothing routes 203.0.113.0/24 (no default route) and 198.18.0.99 /
 * fd00::99 have no neighbour entry.
 *
 * The balancer is loaded with private maps, the tunnel source prefixes
 * XT_TUN_SRC4/24 and XT_TUN_SRC6/64 and GUE port XT_GUE_PORT.
 */
#ifndef XLBT_HARNESS_H
#define XLBT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "xlb_loader.h"
#include "pkt.h"

#define XT_IF0 "xlbtveth0"
#define XT_IF2 "xlbtveth2"

#define XT_MAC_IF0    { 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe }
#define XT_MAC_IF2    { 0x02, 0x00, 0x00, 0x00, 0x02, 0xfe }
#define XT_MAC_CLIENT { 0x02, 0x00, 0x00, 0x00, 0x00, 0xc1 }

#define XT_TUN_SRC4   "198.19.0.0"
#define XT_TUN_SRC4_PLEN 24
#define XT_TUN_SRC6   "fd00:ff::"
#define XT_TUN_SRC6_PLEN 64
#define XT_GUE_PORT   6080
#define XT_SPORT_MIN  49152         /* GUE source ports: 49152..65535 */

#define XT_FRAME_MAX  4096

#define XT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

extern const uint8_t xt_mac_if0[6];
extern const uint8_t xt_mac_if2[6];
extern const uint8_t xt_mac_client[6];

/* Interface indexes inside the test's namespace, set by xt_env_setup(). */
extern int xt_if0, xt_if2;

/* Criterion .init of every test: fail (never skip) without root, then
 * enter a fresh network namespace and build the topology above. */
void xt_env_setup(void);

/* The MAC of the permanent neighbour entry of a real server address:
 * 02:00:00:04:c:d for IPv4 a.b.c.d, 02:00:00:06:x:y for IPv6 ...:xy. */
void xt_real_mac(const char *addr, uint8_t mac[6]);

/* Parse a text address; returns XLB_FAMILY_V4/V6 (fails the test on bad text). */
int xt_addr(const char *text, struct xlb_addr *a);

/* ---- running a program ---- */

struct xt_out {
    int verdict;                /* XDP_* */
    size_t len;
    uint8_t data[XT_FRAME_MAX];
};

/* Run prog_fd once on frame as received on ifindex (0: no device, i.e.
 * lo).  Returns 0, or -errno from BPF_PROG_TEST_RUN. */
int xt_run(int prog_fd, int ifindex, const uint8_t *frame, size_t len, struct xt_out *out);
/* The same, failing the test when the run itself fails. */
void xt_run_ok(const char *what, int prog_fd, const uint8_t *frame, size_t len,
               struct xt_out *out);

const char *xt_verdict_name(int verdict);

/*
 * Fail unless act equals exp byte for byte.  On a mismatch the input, the
 * expected and the actual frame go to /tmp/xlbt-<what>.pcap and the
 * message carries pkt_hexdiff().
 */
void xt_assert_frame(const char *what, const uint8_t *in, size_t ilen,
                     const uint8_t *exp, size_t elen, const uint8_t *act, size_t alen);

/* ---- frames ---- */

/* A spec for src -> dst with the client's and the balancer's MACs, a
 * TCP SYN (or plain UDP/ICMP) and a recognisable payload of payload_len. */
struct pkt_spec xt_spec(const char *src, const char *dst, uint8_t proto, uint16_t sport,
                        uint16_t dport, size_t payload_len);
/* pkt_build into buf (XT_FRAME_MAX), failing the test if s is invalid. */
size_t xt_build(const struct pkt_spec *s, uint8_t *buf);
/* payload_len bytes of a fixed pattern (at most XT_FRAME_MAX). */
const uint8_t *xt_payload(void);

/*
 * The flow-hash fields of an encapsulated frame: the outer source, the GUE
 * source port and the outer IPv6 flow label.  xt_expect_encap() takes them
 * from the actual output so that the rest can be compared byte by byte;
 * xt_assert_entropy_fields() checks their own properties.
 */
struct xt_entropy {
    uint8_t src[16];
    uint16_t sport;
    uint32_t flow_label;
    bool parsed;                /* the actual frame had the expected shape */
};

/*
 * Build into exp the frame the balancer must produce when it forwards the
 * IP packet of `in` to real (text address) over IPIP/6in6/4in6, or GUE when
 * gue: in's L2 header with its tags and with eth_dst/eth_src, the outer
 * header (TOS/traffic class of the inner packet, TTL 64, id 0, DF copied
 * from an inner IPv4 packet, checksums), the GUE UDP header (checksum 0
 * over IPv4, computed over IPv6), then the inner packet byte for byte and
 * whatever trailed it in `in` (Ethernet padding).  Returns the length.
 */
size_t xt_expect_encap(const uint8_t *in, size_t ilen, const uint8_t *act, size_t alen,
                       const char *real, bool gue, const uint8_t eth_dst[6],
                       const uint8_t eth_src[6], uint8_t *exp, struct xt_entropy *ent);

/* Outer source inside the tunnel prefix with a host part that is neither
 * all zeros nor all ones, GUE source port in 49152..65535. */
void xt_assert_entropy_fields(const char *what, bool v6, bool gue, const struct xt_entropy *e);

/* Flow-hash fields of an encapsulated frame (fails the test if it is not one). */
struct xt_entropy xt_entropy_of(const char *what, const uint8_t *frame, size_t len, bool gue);

/* ---- the balancer ---- */

struct xt_lb {
    struct xlb_dp *dp;
    const struct xlb_maps *m;
    int prog;
};

/* Open and load with the harness's tunnel settings (opts NULL) or opts. */
void xt_lb_open(struct xt_lb *lb, const struct xlb_load_opts *opts);
void xt_lb_close(struct xt_lb *lb);
struct xlb_load_opts xt_lb_default_opts(void);

uint32_t xt_service(struct xt_lb *lb, const char *name, const char *vip, uint16_t port,
                    uint8_t proto, uint8_t method, uint32_t ring_size);
/* The same with service flags (XLB_VS_F_SEQ / XLB_VS_F_SRC_HASH). */
uint32_t xt_service_f(struct xt_lb *lb, const char *name, const char *vip, uint16_t port,
                      uint8_t proto, uint8_t method, uint32_t ring_size, uint32_t flags);
uint32_t xt_real(struct xt_lb *lb, uint32_t vs, const char *addr, uint32_t weight);
/* Install a selection table of `size` slots that all name real_id. */
void xt_table_all(struct xt_lb *lb, uint32_t vs, uint32_t real_id, uint32_t size);
/* Install t[0..size-1] as the service's selection table. */
void xt_table(struct xt_lb *lb, uint32_t vs, const uint32_t *t, uint32_t size);
/* The service's installed table into t (room for max entries); returns its
 * size, and the inner map's id in *map_id when not NULL. */
uint32_t xt_table_read(struct xt_lb *lb, uint32_t vs, uint32_t *t, uint32_t max,
                       uint32_t *map_id);
void xt_rebuild(struct xt_lb *lb, uint32_t vs);
void xt_real_del(struct xt_lb *lb, uint32_t vs, const char *addr);

/* The connection-table key of the frame s describes. */
struct xlb_flow_key xt_flow_key(const struct pkt_spec *s);
/* The flow entry of s's flow: true when there is one. */
bool xt_flow_get(struct xt_lb *lb, const struct pkt_spec *s, struct xlb_flow_value *v);

/* Run this process on cpu only (fails the test if it cannot). */
void xt_pin_cpu(int cpu);
/* The CPUs this process may run on, up to max of them; returns the count. */
int xt_allowed_cpus(int *cpus, int max);

struct xlb_counters xt_vs_stats(struct xt_lb *lb, uint32_t vs);
struct xlb_counters xt_real_stats(struct xt_lb *lb, uint32_t real_id);
/* Every reason counter of a reasons map, summed over CPUs. */
void xt_reasons(int map_fd, struct xlb_reason_counter out[XLB_R_MAX]);

/* ---- the decap program ---- */

struct xt_decap {
    struct xlb_decap *d;
    int prog;
    int reasons;
};

/* Load decap accepting the n text addresses of addrs. */
void xt_decap_open(struct xt_decap *dc, const char *const *addrs, int n);
void xt_decap_close(struct xt_decap *dc);

#endif
