/* Shared harness of the BPF tests; see harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <criterion/criterion.h>

#include "xlb_addr.h"

const uint8_t xt_mac_if0[6] = XT_MAC_IF0;
const uint8_t xt_mac_if2[6] = XT_MAC_IF2;
const uint8_t xt_mac_client[6] = XT_MAC_CLIENT;

int xt_if0, xt_if2;

/* Neighbour ranges of the topology (last byte of the address). */
#define NEIGH_FIRST 0x10
#define NEIGH_LAST  0x40

static void write_sysctl(const char *path, const char *val)
{
    FILE *f = fopen(path, "w");

    if (!f)
        cr_assert_fail("cannot open %s: %s", path, strerror(errno));
    int bad = fputs(val, f) == EOF;

    if (fclose(f) != 0 || bad)
        cr_assert_fail("cannot write %s to %s: %s", val, path, strerror(errno));
}

static void mac_str(const uint8_t mac[6], char *buf, size_t len)
{
    snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
}

void xt_real_mac(const char *addr, uint8_t mac[6])
{
    struct xlb_addr a;
    const uint8_t *b = (const uint8_t *)a.addr_be;
    int fam = xt_addr(addr, &a);

    mac[0] = 0x02;
    mac[1] = 0x00;
    mac[2] = 0x00;
    mac[3] = fam == XLB_FAMILY_V4 ? 0x04 : 0x06;
    mac[4] = fam == XLB_FAMILY_V4 ? b[2] : b[14];
    mac[5] = fam == XLB_FAMILY_V4 ? b[3] : b[15];
}

static void neigh_cmd(FILE *ip, const char *addr, const char *dev)
{
    uint8_t mac[6];
    char m[24];

    xt_real_mac(addr, mac);
    mac_str(mac, m, sizeof(m));
    fprintf(ip, "neigh add %s lladdr %s dev %s nud permanent\n", addr, m, dev);
}

void xt_env_setup(void)
{
    char m0[24], m2[24], a[64];
    FILE *ip;
    int st;

    if (geteuid() != 0)
        cr_assert_fail("the BPF tests load XDP programs and build a private network "
                       "namespace: they need root (run them with sudo)");
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
        cr_assert_fail("unshare(CLONE_NEWNET | CLONE_NEWNS) failed: %s", strerror(errno));
    /* A bpffs of this test's own: what it pins goes with its process, and
     * nothing is mounted on the host's /sys/fs/bpf. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        cr_assert_fail("making the test's mounts private failed: %s", strerror(errno));
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
        cr_assert_fail("mount -t bpf bpf /sys/fs/bpf (private) failed: %s", strerror(errno));
    /* bpf_fib_lookup() answers only on interfaces that forward. */
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
    write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");

    mac_str(xt_mac_if0, m0, sizeof(m0));
    mac_str(xt_mac_if2, m2, sizeof(m2));
    ip = popen("ip -batch - >&2", "w");
    if (!ip)
        cr_assert_fail("cannot run ip(8): %s", strerror(errno));
    fprintf(ip, "link set lo up\n");
    fprintf(ip, "link add %s address %s type veth peer name xlbtveth1\n", XT_IF0, m0);
    fprintf(ip, "link add %s address %s type veth peer name xlbtveth3\n", XT_IF2, m2);
    fprintf(ip, "link set %s up\nlink set xlbtveth1 up\n", XT_IF0);
    fprintf(ip, "link set %s up\nlink set xlbtveth3 up\n", XT_IF2);
    fprintf(ip, "addr add 198.18.0.1/24 dev %s\n", XT_IF0);
    fprintf(ip, "addr add fd00::1/64 dev %s nodad\n", XT_IF0);
    fprintf(ip, "addr add 198.18.2.1/24 dev %s\n", XT_IF2);
    fprintf(ip, "addr add fd00:2::1/64 dev %s nodad\n", XT_IF2);
    for (int i = NEIGH_FIRST; i <= NEIGH_LAST; i++) {
        snprintf(a, sizeof(a), "198.18.0.%d", i);
        neigh_cmd(ip, a, XT_IF0);
        snprintf(a, sizeof(a), "fd00::%x", i);
        neigh_cmd(ip, a, XT_IF0);
    }
    neigh_cmd(ip, "198.18.2.50", XT_IF2);
    neigh_cmd(ip, "fd00:2::50", XT_IF2);
    st = pclose(ip);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        cr_assert_fail("setting up the test namespace with ip(8) failed (status %d)", st);
    xt_if0 = if_nametoindex(XT_IF0);
    xt_if2 = if_nametoindex(XT_IF2);
    cr_assert(xt_if0 > 0 && xt_if2 > 0, "the test interfaces have no index");
}

int xt_addr(const char *text, struct xlb_addr *a)
{
    uint8_t fam;

    cr_assert_eq(xlb_addr_parse(text, a, &fam, NULL), 0, "bad address %s", text);
    return fam;
}

/* ---- running a program ---- */

int xt_run(int prog_fd, int ifindex, const uint8_t *frame, size_t len, struct xt_out *out)
{
    struct xdp_md ctx = { .data = 0, .data_end = (__u32)len, .ingress_ifindex = ifindex };
    LIBBPF_OPTS(bpf_test_run_opts, o,
        .data_in = frame,
        .data_size_in = (__u32)len,
        .data_out = out->data,
        .data_size_out = sizeof(out->data),
        .repeat = 1,
    );

    if (ifindex) {
        o.ctx_in = &ctx;
        o.ctx_size_in = sizeof(ctx);
    }
    out->verdict = -1;
    out->len = 0;
    if (bpf_prog_test_run_opts(prog_fd, &o))
        return -errno;
    out->verdict = (int)o.retval;
    out->len = o.data_size_out;
    return 0;
}

void xt_run_ok(const char *what, int prog_fd, const uint8_t *frame, size_t len,
               struct xt_out *out)
{
    int err;

    cr_assert_gt(xt_if0, 0, "%s: the test has no network namespace (missing .init = "
                 "xt_env_setup)", what);
    err = xt_run(prog_fd, xt_if0, frame, len, out);
    cr_assert_eq(err, 0, "%s: BPF_PROG_TEST_RUN failed: %s", what, strerror(-err));
}

const char *xt_verdict_name(int verdict)
{
    switch (verdict) {
    case XDP_ABORTED:
        return "XDP_ABORTED";
    case XDP_DROP:
        return "XDP_DROP";
    case XDP_PASS:
        return "XDP_PASS";
    case XDP_TX:
        return "XDP_TX";
    case XDP_REDIRECT:
        return "XDP_REDIRECT";
    default:
        return "(unknown verdict)";
    }
}

void xt_assert_frame(const char *what, const uint8_t *in, size_t ilen,
                     const uint8_t *exp, size_t elen, const uint8_t *act, size_t alen)
{
    static char diff[16384];
    const uint8_t *frames[3] = { in, exp, act };
    size_t lens[3] = { ilen, elen, alen };
    char path[160];
    size_t n;
    int err;

    if (elen == alen && !memcmp(exp, act, elen))
        return;
    n = (size_t)snprintf(path, sizeof(path), "/tmp/xlbt-");
    for (const char *c = what; *c && n < sizeof(path) - 6; c++)
        path[n++] = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') ? *c : '_';
    snprintf(path + n, sizeof(path) - n, ".pcap");
    err = pkt_pcap_write(path, frames, lens, 3);
    pkt_hexdiff(exp, elen, act, alen, diff, sizeof(diff));
    cr_assert_fail("%s: the output frame is not the expected one (input, expected, actual %s "
                   "%s):\n%s", what, err ? "could not be written to" : "written to", path,
                   diff);
}

/* ---- frames ---- */

const uint8_t *xt_payload(void)
{
    static uint8_t p[XT_FRAME_MAX];

    if (!p[1])
        for (size_t i = 0; i < sizeof(p); i++)
            p[i] = (uint8_t)(i * 7 + 3);
    return p;
}

struct pkt_spec xt_spec(const char *src, const char *dst, uint8_t proto, uint16_t sport,
                        uint16_t dport, size_t payload_len)
{
    struct pkt_spec s = {
        .eth_src = XT_MAC_CLIENT,
        .eth_dst = XT_MAC_IF0,
        .proto = proto,
        .sport = sport,
        .dport = dport,
        .tcp_flags = proto == IPPROTO_TCP ? 0x02 : 0,
        .tcp_seq = 1000,
        .payload = xt_payload(),
        .payload_len = payload_len,
    };

    cr_assert_eq(pkt_addr(&s, src, dst), 0, "bad address pair %s %s", src, dst);
    return s;
}

size_t xt_build(const struct pkt_spec *s, uint8_t *buf)
{
    size_t n = pkt_build(s, buf, XT_FRAME_MAX);

    cr_assert_neq(n, 0, "pkt_build() rejected a spec");
    return n;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void tunnel_prefix(bool v6, uint8_t base[16], int *plen)
{
    struct xlb_addr a;

    xt_addr(v6 ? XT_TUN_SRC6 : XT_TUN_SRC4, &a);
    memcpy(base, a.addr_be, 16);
    *plen = v6 ? XT_TUN_SRC6_PLEN : XT_TUN_SRC4_PLEN;
}

static void entropy_from(const uint8_t *frame, size_t len, bool v6, bool gue,
                         struct xt_entropy *e)
{
    struct pkt_view v;
    const uint8_t *oh;

    memset(e, 0, sizeof(*e));
    if (pkt_parse(frame, len, &v) || v.family != (v6 ? AF_INET6 : AF_INET))
        return;
    if (gue && (v.proto != IPPROTO_UDP || v.l4_len < 8))
        return;
    oh = frame + v.l3_off;
    if (v6) {
        memcpy(e->src, oh + 8, 16);
        e->flow_label = (uint32_t)(oh[1] & 0x0f) << 16 | (uint32_t)oh[2] << 8 | oh[3];
    } else {
        memcpy(e->src, oh + 12, 4);
    }
    if (gue)
        e->sport = rd16(frame + v.l4_off);
    e->parsed = true;
}

struct xt_entropy xt_entropy_of(const char *what, const uint8_t *frame, size_t len, bool gue)
{
    struct xt_entropy e;
    struct pkt_view v;

    cr_assert_eq(pkt_parse(frame, len, &v), 0, "%s: the output is not an IP frame", what);
    entropy_from(frame, len, v.family == AF_INET6, gue, &e);
    cr_assert(e.parsed, "%s: the output is not an encapsulated frame", what);
    return e;
}

size_t xt_expect_encap(const uint8_t *in, size_t ilen, const uint8_t *act, size_t alen,
                       const char *real, bool gue, const uint8_t eth_dst[6],
                       const uint8_t eth_src[6], uint8_t *exp, struct xt_entropy *ent)
{
    struct pkt_spec o = { 0 };
    struct pkt_view iv, ov;
    struct xlb_addr ra;
    const uint8_t *inner;
    size_t inner_len, trail, n;
    bool v6, inner4;
    uint8_t *oh;

    cr_assert_eq(pkt_parse(in, ilen, &iv), 0, "the input is not an IP frame");
    inner = in + iv.l3_off;
    inner_len = iv.l3_len + iv.l4_len;
    trail = ilen - iv.l3_off - inner_len;
    inner4 = iv.family == AF_INET;
    v6 = xt_addr(real, &ra) == XLB_FAMILY_V6;
    entropy_from(act, alen, v6, gue, ent);

    memcpy(o.eth_dst, eth_dst, 6);
    memcpy(o.eth_src, eth_src, 6);
    o.n_vlan = iv.n_vlan;
    memcpy(o.vlan, iv.vlan, sizeof(o.vlan));
    o.family = v6 ? AF_INET6 : AF_INET;
    memcpy(o.src, ent->src, 16);
    memcpy(o.dst, ra.addr_be, 16);
    o.tos = inner4 ? inner[1] : (uint8_t)((inner[0] & 0x0f) << 4 | inner[1] >> 4);
    o.ttl = 64;
    o.frag_off = !v6 && inner4 && (iv.frag_off & PKT_DF) ? PKT_DF : 0;
    /* Without DF the outer identification varies per packet (RFC 6864):
     * taken from the output here, its variation is asserted in test_encap. */
    o.ip_id = 0;
    if (!v6 && !o.frag_off) {
        struct pkt_view av;

        cr_assert_eq(pkt_parse(act, alen, &av), 0, "the output is not an IP frame");
        o.ip_id = (uint16_t)(act[av.l3_off + 4] << 8 | act[av.l3_off + 5]);
    }
    if (gue) {
        o.proto = IPPROTO_UDP;
        o.sport = ent->sport;
        o.dport = XT_GUE_PORT;
    } else {
        o.proto = inner4 ? IPPROTO_IPIP : IPPROTO_IPV6;
    }
    o.payload = inner;
    o.payload_len = inner_len;
    n = pkt_build(&o, exp, XT_FRAME_MAX - trail);
    cr_assert_neq(n, 0, "cannot build the expected encapsulated frame");
    cr_assert_eq(pkt_parse(exp, n, &ov), 0);
    oh = exp + ov.l3_off;
    if (v6) {
        oh[1] = (uint8_t)((oh[1] & 0xf0) | (ent->flow_label >> 16 & 0x0f));
        oh[2] = (uint8_t)(ent->flow_label >> 8);
        oh[3] = (uint8_t)ent->flow_label;
    } else if (gue) {
        /* UDP over IPv4 goes without a checksum (RFC 768). */
        exp[ov.l4_off + 6] = 0;
        exp[ov.l4_off + 7] = 0;
    }
    memcpy(exp + n, in + ilen - trail, trail);
    return n + trail;
}

void xt_assert_entropy_fields(const char *what, bool v6, bool gue, const struct xt_entropy *e)
{
    uint8_t base[16];
    int plen, full = v6 ? 16 : 4;
    bool zero = true, ones = true;

    cr_assert(e->parsed, "%s: the output is not an encapsulated frame", what);
    tunnel_prefix(v6, base, &plen);
    for (int i = 0; i < plen / 8; i++)
        cr_assert_eq(e->src[i], base[i], "%s: outer source outside %s/%d (byte %d is %u)",
                     what, v6 ? XT_TUN_SRC6 : XT_TUN_SRC4, plen, i, e->src[i]);
    for (int i = plen / 8; i < full; i++) {
        zero = zero && e->src[i] == 0;
        ones = ones && e->src[i] == 0xff;
    }
    cr_assert(!zero && !ones, "%s: outer source %s the all-%s host of the tunnel prefix", what,
              v6 ? "(IPv6) is" : "(IPv4) is", zero ? "zeros" : "ones");
    if (gue)
        cr_assert_geq(e->sport, XT_SPORT_MIN, "%s: GUE source port %u below %u", what,
                      e->sport, XT_SPORT_MIN);
}

/* ---- the balancer ---- */

struct xlb_load_opts xt_lb_default_opts(void)
{
    struct xlb_load_opts o = {
        .no_pin = true,
        .conn_table_size = 65536,
        .tunnel_src4_plen = XT_TUN_SRC4_PLEN,
        .tunnel_src6_plen = XT_TUN_SRC6_PLEN,
        .gue_port = XT_GUE_PORT,
    };

    xt_addr(XT_TUN_SRC4, &o.tunnel_src4);
    xt_addr(XT_TUN_SRC6, &o.tunnel_src6);
    return o;
}

void xt_lb_open(struct xt_lb *lb, const struct xlb_load_opts *opts)
{
    struct xlb_load_opts def = xt_lb_default_opts();
    struct xlb_err e = { "" };
    int err;

    memset(lb, 0, sizeof(*lb));
    err = xlb_dp_open(opts ? opts : &def, &lb->dp, &e);
    cr_assert_eq(err, 0, "xlb_dp_open: %s", e.msg);
    err = xlb_dp_load(lb->dp, &e);
    cr_assert_eq(err, 0, "xlb_dp_load: %s", e.msg);
    lb->m = xlb_dp_maps(lb->dp);
    lb->prog = xlb_dp_prog_fd(lb->dp);
    cr_assert_geq(lb->prog, 0, "the balancer program has no fd");
}

void xt_lb_close(struct xt_lb *lb)
{
    xlb_dp_close(lb->dp);
    memset(lb, 0, sizeof(*lb));
}

uint32_t xt_service(struct xt_lb *lb, const char *name, const char *vip, uint16_t port,
                    uint8_t proto, uint8_t method, uint32_t ring_size)
{
    return xt_service_f(lb, name, vip, port, proto, method, ring_size, 0);
}

uint32_t xt_service_f(struct xt_lb *lb, const char *name, const char *vip, uint16_t port,
                      uint8_t proto, uint8_t method, uint32_t ring_size, uint32_t flags)
{
    struct xlb_service_spec s = {
        .name = name, .port = port, .proto = proto, .method = method, .ring_size = ring_size,
        .flags = flags,
    };
    struct xlb_err e = { "" };
    uint32_t id;

    s.family = (uint8_t)xt_addr(vip, &s.vip);
    cr_assert_eq(xlb_service_add(lb->m, &s, &id, &e), 0, "xlb_service_add %s: %s", name,
                 e.msg);
    return id;
}

uint32_t xt_real(struct xt_lb *lb, uint32_t vs, const char *addr, uint32_t weight)
{
    struct xlb_err e = { "" };
    struct xlb_addr a;
    uint8_t fam = (uint8_t)xt_addr(addr, &a);
    uint32_t id;

    cr_assert_eq(xlb_real_add(lb->m, vs, fam, &a, weight, NULL, &id, &e), 0,
                 "xlb_real_add %s: %s", addr, e.msg);
    return id;
}

void xt_table_all(struct xt_lb *lb, uint32_t vs, uint32_t real_id, uint32_t size)
{
    struct xlb_err e = { "" };
    uint32_t *t = malloc(size * sizeof(*t));
    int err;

    cr_assert_not_null(t);
    for (uint32_t i = 0; i < size; i++)
        t[i] = real_id;
    err = xlb_sel_install(lb->m, vs, t, size, &e);
    free(t);
    cr_assert_eq(err, 0, "xlb_sel_install: %s", e.msg);
}

void xt_table(struct xt_lb *lb, uint32_t vs, const uint32_t *t, uint32_t size)
{
    struct xlb_err e = { "" };

    cr_assert_eq(xlb_sel_install(lb->m, vs, t, size, &e), 0, "xlb_sel_install: %s", e.msg);
}

uint32_t xt_table_read(struct xt_lb *lb, uint32_t vs, uint32_t *t, uint32_t max,
                       uint32_t *map_id)
{
    struct bpf_map_info info = {};
    __u32 info_len = sizeof(info);
    uint32_t id, n, idx = XLB_SEL_SIZE_IDX;
    int fd;

    fd = xlb_sel_live_fd(lb->m, vs);
    cr_assert_geq(fd, 0, "cannot open the table of service %u: %s", vs, strerror(-fd));
    cr_assert_eq(bpf_obj_get_info_by_fd(fd, &info, &info_len), 0);
    id = info.id;
    cr_assert_eq(bpf_map_lookup_elem(fd, &idx, &n), 0);
    cr_assert_leq(n, max, "the table of service %u has %u entries, more than %u", vs, n, max);
    for (idx = 1; idx <= n; idx++)
        cr_assert_eq(bpf_map_lookup_elem(fd, &idx, &t[idx - 1]), 0);
    close(fd);
    if (map_id)
        *map_id = id;
    return n;
}

void xt_rebuild(struct xt_lb *lb, uint32_t vs)
{
    struct xlb_err e = { "" };

    cr_assert_eq(xlb_service_rebuild(lb->m, vs, &e), 0, "xlb_service_rebuild: %s", e.msg);
}

void xt_real_del(struct xt_lb *lb, uint32_t vs, const char *addr)
{
    struct xlb_err e = { "" };
    struct xlb_addr a;
    uint8_t fam = (uint8_t)xt_addr(addr, &a);

    cr_assert_eq(xlb_real_del(lb->m, vs, fam, &a, &e), 0, "xlb_real_del %s: %s", addr, e.msg);
}

struct xlb_flow_key xt_flow_key(const struct pkt_spec *s)
{
    struct xlb_flow_key k;

    memset(&k, 0, sizeof(k));
    k.family = s->family == AF_INET ? XLB_FAMILY_V4 : XLB_FAMILY_V6;
    memcpy(k.src.addr_be, s->src, k.family == XLB_FAMILY_V4 ? 4 : 16);
    memcpy(k.dst.addr_be, s->dst, k.family == XLB_FAMILY_V4 ? 4 : 16);
    k.sport_be = htons(s->sport);
    k.dport_be = htons(s->dport);
    k.proto = s->proto;
    return k;
}

bool xt_flow_get(struct xt_lb *lb, const struct pkt_spec *s, struct xlb_flow_value *v)
{
    struct xlb_flow_key k = xt_flow_key(s);

    return bpf_map_lookup_elem(lb->m->conns, &k, v) == 0;
}

void xt_pin_cpu(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0, "cannot run on CPU %d: %s", cpu,
                 strerror(errno));
}

int xt_allowed_cpus(int *cpus, int max)
{
    cpu_set_t set;
    int n = 0;

    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0, "sched_getaffinity: %s",
                 strerror(errno));
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

struct xlb_counters xt_vs_stats(struct xt_lb *lb, uint32_t vs)
{
    struct xlb_counters c;

    cr_assert_eq(xlb_counters_read(lb->m->vs_stats, vs, &c), 0);
    return c;
}

struct xlb_counters xt_real_stats(struct xt_lb *lb, uint32_t real_id)
{
    struct xlb_counters c;

    cr_assert_eq(xlb_counters_read(lb->m->real_stats, real_id, &c), 0);
    return c;
}

void xt_reasons(int map_fd, struct xlb_reason_counter out[XLB_R_MAX])
{
    for (uint32_t r = 0; r < XLB_R_MAX; r++)
        cr_assert_eq(xlb_reason_read(map_fd, r, &out[r]), 0, "cannot read reason %u", r);
}

/* ---- the decap program ---- */

void xt_decap_open(struct xt_decap *dc, const char *const *addrs, int n)
{
    struct xlb_decap_key keys[64] = { 0 };
    struct xlb_err e = { "" };
    int err;

    cr_assert(n > 0 && n <= (int)XT_ARRAY_SIZE(keys));
    for (int i = 0; i < n; i++)
        keys[i].family = (uint8_t)xt_addr(addrs[i], &keys[i].addr);
    memset(dc, 0, sizeof(*dc));
    err = xlb_decap_open(&(struct xlb_decap_opts){ .no_pin = true, .gue_port = XT_GUE_PORT,
                                                   .n_addrs = n, .addrs = keys },
                         &dc->d, &e);
    cr_assert_eq(err, 0, "xlb_decap_open: %s", e.msg);
    err = xlb_decap_load(dc->d, &e);
    cr_assert_eq(err, 0, "xlb_decap_load: %s", e.msg);
    dc->prog = xlb_decap_prog_fd(dc->d);
    dc->reasons = xlb_decap_reasons_fd(dc->d);
}

void xt_decap_close(struct xt_decap *dc)
{
    xlb_decap_close(dc->d);
    memset(dc, 0, sizeof(*dc));
}
