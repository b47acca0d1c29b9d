/*
 * Packet builder, parser and checksum checks for the BPF tests; see pkt.h.
 *
 * Headers are written and read byte by byte at offsets taken from the UAPI
 * structs (offsetof), never through a cast pointer: a frame's IP header sits
 * at offset 14 or 18 and is not aligned for struct iphdr.
 */
#include "pkt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define ETH_ADDR_OFF    0               /* destination, then source */
#define ETH_TYPE_OFF    (2 * ETH_ALEN)
#define VLAN_HLEN       4               /* TCI + next ethertype */
#define VLAN_MAX        2
#define IPV4_HLEN       ((size_t)sizeof(struct iphdr))
#define IPV4_OPTS_MAX   40
#define IPV6_HLEN       ((size_t)sizeof(struct ipv6hdr))
#define FRAG_HLEN       8               /* IPv6 Fragment header */
#define TCP_HLEN        ((size_t)sizeof(struct tcphdr))
#define UDP_HLEN        ((size_t)sizeof(struct udphdr))
#define ICMP_HLEN       ((size_t)sizeof(struct icmphdr))
#define ICMP6_HLEN      8               /* type, code, checksum, 4 bytes of body */
#define IP_LEN_MAX      0xffff
/* Extension headers pkt_parse() walks through before giving up. */
#define V6_EXT_MAX      8

#define PCAP_MAGIC      0xa1b2c3d4u
#define PCAP_SNAPLEN    262144u
#define LINKTYPE_ETHERNET 1u

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Unfolded ones' complement sum of big-endian words, added to sum. */
static uint64_t sum_words(const void *data, size_t len, uint64_t sum)
{
    const uint8_t *p = data;
    size_t i;

    for (i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)p[i] << 8 | p[i + 1];
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

uint16_t pkt_csum(const void *data, size_t len, uint32_t initial)
{
    return (uint16_t)~fold(sum_words(data, len, initial));
}

static size_t addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/*
 * Folded sum of the pseudo header. IPv4 carries the length in 16 bits and
 * IPv6 in 32; adding it as one number is the same as adding its 16-bit
 * halves once the sum is folded, so one expression serves both.
 */
static uint32_t pseudo_sum(int family, const uint8_t *saddr,
                           const uint8_t *daddr, uint8_t proto, size_t l4_len)
{
    uint64_t sum;

    sum = sum_words(saddr, addr_len(family), 0);
    sum = sum_words(daddr, addr_len(family), sum);
    sum += proto;
    sum += l4_len;
    return fold(sum);
}

/* Offset of the checksum field in the L4 header, or -1 if proto has none. */
static int l4_csum_off(uint8_t proto)
{
    switch (proto) {
    case IPPROTO_TCP:
        return offsetof(struct tcphdr, check);
    case IPPROTO_UDP:
        return offsetof(struct udphdr, check);
    case IPPROTO_ICMP:
        return offsetof(struct icmphdr, checksum);
    case IPPROTO_ICMPV6:
        return offsetof(struct icmp6hdr, icmp6_cksum);
    default:
        return -1;
    }
}

static size_t l4_hdr_len(uint8_t proto)
{
    switch (proto) {
    case IPPROTO_TCP:
        return TCP_HLEN;
    case IPPROTO_UDP:
        return UDP_HLEN;
    case IPPROTO_ICMP:
        return ICMP_HLEN;
    case IPPROTO_ICMPV6:
        return ICMP6_HLEN;
    default:
        return 0;
    }
}

/* Checksum of the L4 segment as it should be stored; ICMP has no pseudo header. */
static uint16_t l4_csum(int family, const uint8_t *saddr, const uint8_t *daddr,
                        uint8_t proto, const uint8_t *l4, size_t l4_len)
{
    uint32_t initial = 0;

    if (proto != IPPROTO_ICMP)
        initial = pseudo_sum(family, saddr, daddr, proto, l4_len);
    return pkt_csum(l4, l4_len, initial);
}

int pkt_addr(struct pkt_spec *s, const char *src, const char *dst)
{
    static const int families[] = { AF_INET, AF_INET6 };
    uint8_t a[16], b[16];
    size_t i;

    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        memset(a, 0, sizeof(a));
        memset(b, 0, sizeof(b));
        if (inet_pton(families[i], src, a) == 1 &&
            inet_pton(families[i], dst, b) == 1) {
            s->family = families[i];
            memcpy(s->src, a, sizeof(a));
            memcpy(s->dst, b, sizeof(b));
            return 0;
        }
    }
    return -EINVAL;
}

static int frag_has_offset(const struct pkt_spec *s)
{
    return (s->frag_off & PKT_OFFMASK) != 0;
}

static size_t spec_l3_len(const struct pkt_spec *s)
{
    if (s->family == AF_INET)
        return IPV4_HLEN + s->ip_opts_len;
    return IPV6_HLEN + (s->frag_off ? FRAG_HLEN : 0);
}

/* L4 header bytes pkt_build() writes: none after a non-first fragment. */
static size_t spec_l4_hdr_len(const struct pkt_spec *s)
{
    return frag_has_offset(s) ? 0 : l4_hdr_len(s->proto);
}

size_t pkt_len(const struct pkt_spec *s)
{
    size_t l3, ip_len;

    if (s->n_vlan < 0 || s->n_vlan > VLAN_MAX)
        return 0;
    if (s->payload_len && !s->payload)
        return 0;
    if (s->payload_len > IP_LEN_MAX)
        return 0;
    switch (s->family) {
    case AF_INET:
        if (s->ip_opts_len % 4 || s->ip_opts_len > IPV4_OPTS_MAX)
            return 0;
        break;
    case AF_INET6:
        if (s->ip_opts_len)
            return 0;
        break;
    default:
        return 0;
    }

    l3 = spec_l3_len(s);
    ip_len = l3 + spec_l4_hdr_len(s) + s->payload_len;
    /* IPv4 counts its header in tot_len, IPv6 leaves the fixed header out. */
    if (ip_len - (s->family == AF_INET6 ? IPV6_HLEN : 0) > IP_LEN_MAX)
        return 0;
    return ETH_HLEN + (size_t)s->n_vlan * VLAN_HLEN + ip_len;
}

static void build_ipv4(const struct pkt_spec *s, uint8_t *ip, size_t ip_len)
{
    size_t hl = IPV4_HLEN + s->ip_opts_len;

    ip[0] = 4 << 4 | (uint8_t)(hl / 4);     /* version, IHL */
    ip[offsetof(struct iphdr, tos)] = s->tos;
    put16(ip + offsetof(struct iphdr, tot_len), (uint16_t)ip_len);
    put16(ip + offsetof(struct iphdr, id), s->ip_id);
    put16(ip + offsetof(struct iphdr, frag_off), s->frag_off);
    ip[offsetof(struct iphdr, ttl)] = s->ttl ? s->ttl : 64;
    ip[offsetof(struct iphdr, protocol)] = s->proto;
    put16(ip + offsetof(struct iphdr, check), 0);
    memcpy(ip + offsetof(struct iphdr, saddr), s->src, 4);
    memcpy(ip + offsetof(struct iphdr, daddr), s->dst, 4);
    if (s->ip_opts_len) {
        memset(ip + IPV4_HLEN, IPOPT_NOOP, s->ip_opts_len);
        ip[hl - 1] = IPOPT_END;
    }
    put16(ip + offsetof(struct iphdr, check), pkt_csum(ip, hl, 0));
}

static void build_ipv6(const struct pkt_spec *s, uint8_t *ip, size_t ip_len)
{
    ip[0] = 6 << 4 | s->tos >> 4;           /* version, traffic class high */
    ip[1] = (uint8_t)(s->tos << 4);         /* traffic class low, flow label 0 */
    ip[2] = 0;
    ip[3] = 0;
    put16(ip + offsetof(struct ipv6hdr, payload_len),
          (uint16_t)(ip_len - IPV6_HLEN));
    ip[offsetof(struct ipv6hdr, nexthdr)] =
        s->frag_off ? IPPROTO_FRAGMENT : s->proto;
    ip[offsetof(struct ipv6hdr, hop_limit)] = s->ttl ? s->ttl : 64;
    memcpy(ip + offsetof(struct ipv6hdr, saddr), s->src, 16);
    memcpy(ip + offsetof(struct ipv6hdr, daddr), s->dst, 16);
    if (s->frag_off) {
        uint8_t *fh = ip + IPV6_HLEN;

        fh[0] = s->proto;                   /* next header */
        fh[1] = 0;                          /* reserved */
        put16(fh + 2, (uint16_t)((s->frag_off & PKT_OFFMASK) << 3 |
                                 (s->frag_off & PKT_MF ? 1 : 0)));
        put32(fh + 4, s->ip_id);
    }
}

static void build_l4_hdr(const struct pkt_spec *s, uint8_t *l4, size_t l4_len)
{
    switch (s->proto) {
    case IPPROTO_TCP:
        memset(l4, 0, TCP_HLEN);
        put16(l4 + offsetof(struct tcphdr, source), s->sport);
        put16(l4 + offsetof(struct tcphdr, dest), s->dport);
        put32(l4 + offsetof(struct tcphdr, seq), s->tcp_seq);
        put32(l4 + offsetof(struct tcphdr, ack_seq), s->tcp_ack);
        l4[12] = (TCP_HLEN / 4) << 4;       /* data offset, no options */
        l4[13] = s->tcp_flags;
        put16(l4 + offsetof(struct tcphdr, window), PKT_TCP_WINDOW);
        break;
    case IPPROTO_UDP:
        put16(l4 + offsetof(struct udphdr, source), s->sport);
        put16(l4 + offsetof(struct udphdr, dest), s->dport);
        put16(l4 + offsetof(struct udphdr, len), (uint16_t)l4_len);
        put16(l4 + offsetof(struct udphdr, check), 0);
        break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
        /* struct icmphdr and struct icmp6hdr share this layout. */
        l4[0] = s->icmp_type;
        l4[1] = s->icmp_code;
        put16(l4 + 2, 0);
        put16(l4 + 4, s->sport);
        put16(l4 + 6, s->dport);
        break;
    }
}

size_t pkt_build(const struct pkt_spec *s, uint8_t *out, size_t cap)
{
    size_t len = pkt_len(s), l3_len, l4_hdr, ip_len;
    uint8_t *p = out, *ip, *l4;
    int i, csum_off;

    if (!len || len > cap)
        return 0;

    memcpy(p + ETH_ADDR_OFF, s->eth_dst, ETH_ALEN);
    memcpy(p + ETH_ADDR_OFF + ETH_ALEN, s->eth_src, ETH_ALEN);
    p += ETH_TYPE_OFF;
    for (i = 0; i < s->n_vlan; i++) {
        put16(p, s->vlan[i].tpid);
        put16(p + 2, s->vlan[i].tci);
        p += VLAN_HLEN;
    }
    put16(p, s->family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
    p += 2;

    ip = p;
    ip_len = len - (size_t)(ip - out);
    l3_len = spec_l3_len(s);
    l4_hdr = spec_l4_hdr_len(s);
    l4 = ip + l3_len;

    if (s->family == AF_INET)
        build_ipv4(s, ip, ip_len);
    else
        build_ipv6(s, ip, ip_len);

    if (l4_hdr)
        build_l4_hdr(s, l4, ip_len - l3_len);
    if (s->payload_len)
        memcpy(l4 + l4_hdr, s->payload, s->payload_len);

    csum_off = l4_csum_off(s->proto);
    if (l4_hdr && csum_off >= 0) {
        uint16_t c = l4_csum(s->family, s->src, s->dst, s->proto, l4,
                             ip_len - l3_len);

        /* RFC 768: a computed zero goes out as all ones; zero means none. */
        if (s->proto == IPPROTO_UDP && c == 0)
            c = 0xffff;
        put16(l4 + csum_off, c);
    }
    return len;
}

int pkt_ipv4_hdr_csum_ok(const uint8_t *ip)
{
    size_t hl = (size_t)(ip[0] & 0xf) * 4;

    if (ip[0] >> 4 != 4 || hl < IPV4_HLEN)
        return 0;
    return pkt_csum(ip, hl, 0) == 0;
}

/*
 * Fill the IP-level fields of v (l3_len, proto, frag_off, v6_frag, l4_off,
 * l4_len) for the header at ip, with offsets relative to ip. avail bounds
 * every read. Returns 0 or -EINVAL.
 */
static int parse_ipv4(const uint8_t *ip, size_t avail, struct pkt_view *v)
{
    size_t hl, tot;

    if (avail < IPV4_HLEN || ip[0] >> 4 != 4)
        return -EINVAL;
    hl = (size_t)(ip[0] & 0xf) * 4;
    tot = get16(ip + offsetof(struct iphdr, tot_len));
    if (hl < IPV4_HLEN || tot < hl || tot > avail)
        return -EINVAL;
    v->family = AF_INET;
    v->l3_len = hl;
    v->proto = ip[offsetof(struct iphdr, protocol)];
    v->frag_off = get16(ip + offsetof(struct iphdr, frag_off));
    v->v6_frag = 0;
    v->l4_off = hl;
    v->l4_len = tot - hl;
    return 0;
}

static int parse_ipv6(const uint8_t *ip, size_t avail, struct pkt_view *v)
{
    size_t end, off = IPV6_HLEN, hl;
    uint8_t nh;
    uint16_t fo;
    int i;

    if (avail < IPV6_HLEN || ip[0] >> 4 != 6)
        return -EINVAL;
    end = IPV6_HLEN + get16(ip + offsetof(struct ipv6hdr, payload_len));
    if (end > avail)
        return -EINVAL;
    nh = ip[offsetof(struct ipv6hdr, nexthdr)];
    v->family = AF_INET6;
    v->frag_off = 0;
    v->v6_frag = 0;

    for (i = 0; i <= V6_EXT_MAX; i++) {
        /* Past a fragment with an offset, only data follows. */
        if (v->frag_off & PKT_OFFMASK)
            break;
        switch (nh) {
        case IPPROTO_HOPOPTS:
        case IPPROTO_ROUTING:
        case IPPROTO_DSTOPTS:
            if (off + 2 > end)
                return -EINVAL;
            hl = ((size_t)ip[off + 1] + 1) * 8;
            break;
        case IPPROTO_AH:
            if (off + 2 > end)
                return -EINVAL;
            hl = ((size_t)ip[off + 1] + 2) * 4;
            break;
        case IPPROTO_FRAGMENT:
            if (v->v6_frag)
                return -EINVAL;
            hl = FRAG_HLEN;
            break;
        default:
            goto done;
        }
        if (i == V6_EXT_MAX || off + hl > end)
            return -EINVAL;
        if (nh == IPPROTO_FRAGMENT) {
            fo = get16(ip + off + 2);
            v->frag_off = (uint16_t)(fo >> 3 | (fo & 1 ? PKT_MF : 0));
            v->v6_frag = 1;
        }
        nh = ip[off];
        off += hl;
    }
done:
    v->l3_len = off;
    v->proto = nh;
    v->l4_off = off;
    v->l4_len = end - off;
    return 0;
}

int pkt_parse(const uint8_t *frame, size_t len, struct pkt_view *v)
{
    size_t off;
    uint16_t type;
    int err;

    memset(v, 0, sizeof(*v));
    if (len < ETH_HLEN)
        return -EINVAL;
    type = get16(frame + ETH_TYPE_OFF);
    off = ETH_HLEN;
    while (type == ETH_P_8021Q || type == ETH_P_8021AD) {
        if (v->n_vlan == VLAN_MAX || len < off + VLAN_HLEN)
            return -EINVAL;
        v->vlan[v->n_vlan].tpid = type;
        v->vlan[v->n_vlan].tci = get16(frame + off);
        v->n_vlan++;
        type = get16(frame + off + 2);
        off += VLAN_HLEN;
    }
    v->ethertype = type;
    v->l3_off = off;

    if (type == ETH_P_IP)
        err = parse_ipv4(frame + off, len - off, v);
    else if (type == ETH_P_IPV6)
        err = parse_ipv6(frame + off, len - off, v);
    else
        err = -EINVAL;
    if (err)
        return err;
    v->l4_off += off;
    return 0;
}

int pkt_l4_csum_ok(int family, const uint8_t *ip, size_t ip_total_len)
{
    struct pkt_view v;
    const uint8_t *saddr, *daddr, *l4;
    int csum_off;

    memset(&v, 0, sizeof(v));
    if (family == AF_INET) {
        if (parse_ipv4(ip, ip_total_len, &v))
            return 0;
        saddr = ip + offsetof(struct iphdr, saddr);
        daddr = ip + offsetof(struct iphdr, daddr);
    } else if (family == AF_INET6) {
        if (parse_ipv6(ip, ip_total_len, &v))
            return 0;
        saddr = ip + offsetof(struct ipv6hdr, saddr);
        daddr = ip + offsetof(struct ipv6hdr, daddr);
    } else {
        return 0;
    }

    csum_off = l4_csum_off(v.proto);
    if (csum_off < 0 || (v.frag_off & PKT_OFFMASK) ||
        v.l4_len < l4_hdr_len(v.proto))
        return 0;
    l4 = ip + v.l4_off;
    if (family == AF_INET && v.proto == IPPROTO_UDP &&
        get16(l4 + csum_off) == 0)
        return 1;
    return l4_csum(family, saddr, daddr, v.proto, l4, v.l4_len) == 0;
}

int pkt_pcap_write(const char *path, const uint8_t *const *frames,
                   const size_t *lens, size_t n)
{
    /* Classic pcap layout: both headers are naturally packed. */
    struct {
        uint32_t magic;
        uint16_t version_major, version_minor;
        int32_t thiszone;
        uint32_t sigfigs, snaplen, linktype;
    } gh = {
        .magic = PCAP_MAGIC,
        .version_major = 2,
        .version_minor = 4,
        .snaplen = PCAP_SNAPLEN,
        .linktype = LINKTYPE_ETHERNET,
    };
    struct {
        uint32_t ts_sec, ts_usec, incl_len, orig_len;
    } rh;
    FILE *f;
    size_t i;
    int err = 0;

    for (i = 0; i < n; i++) {
        if ((lens[i] && !frames[i]) || lens[i] > PCAP_SNAPLEN)
            return -EINVAL;
    }

    f = fopen(path, "wb");
    if (!f)
        return -errno;
    errno = 0;
    if (fwrite(&gh, sizeof(gh), 1, f) != 1)
        goto write_err;
    for (i = 0; i < n; i++) {
        rh.ts_sec = (uint32_t)(i / 1000000);
        rh.ts_usec = (uint32_t)(i % 1000000);
        rh.incl_len = (uint32_t)lens[i];
        rh.orig_len = (uint32_t)lens[i];
        if (fwrite(&rh, sizeof(rh), 1, f) != 1)
            goto write_err;
        if (lens[i] && fwrite(frames[i], lens[i], 1, f) != 1)
            goto write_err;
    }
    if (fclose(f)) {
        err = errno ? -errno : -EIO;
        goto remove;
    }
    return 0;

write_err:
    err = errno ? -errno : -EIO;
    fclose(f);
remove:
    unlink(path);
    return err;
}

/* Bounded text output for pkt_hexdiff(): keeps the buffer NUL-terminated. */
struct textbuf {
    char *buf;
    size_t size, pos;
    int truncated;
};

__attribute__((format(printf, 2, 3)))
static void tb_printf(struct textbuf *tb, const char *fmt, ...)
{
    va_list ap;
    size_t room = tb->size - tb->pos;
    int n;

    if (tb->truncated)
        return;
    va_start(ap, fmt);
    n = vsnprintf(tb->buf + tb->pos, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= room) {
        tb->pos = tb->size - 1;
        tb->truncated = 1;
    } else {
        tb->pos += (size_t)n;
    }
}

#define HEX_ROW 16

/* One hexdump row of data (len bytes long in total) from off; ".." past len. */
static void hex_row(struct textbuf *tb, char tag, size_t off, size_t row_len,
                    const uint8_t *data, size_t len)
{
    size_t i;

    tb_printf(tb, "%c %04zx", tag, off);
    for (i = 0; i < row_len; i++) {
        if (off + i < len)
            tb_printf(tb, "%s%02x", i == 8 ? "  " : " ", data[off + i]);
        else
            tb_printf(tb, "%s..", i == 8 ? "  " : " ");
    }
    tb_printf(tb, "\n");
}

static int byte_differs(const uint8_t *exp, size_t elen,
                        const uint8_t *act, size_t alen, size_t i)
{
    return i >= elen || i >= alen || exp[i] != act[i];
}

const char *pkt_hexdiff(const uint8_t *exp, size_t elen,
                        const uint8_t *act, size_t alen,
                        char *buf, size_t bufsz)
{
    struct textbuf tb = { .buf = buf, .size = bufsz };
    size_t max = elen > alen ? elen : alen;
    size_t i, off, row_len, last, ndiff = 0, first = 0;
    int row_diff;

    if (!buf || !bufsz)
        return buf;
    buf[0] = '\0';

    for (i = max; i-- > 0;) {
        if (byte_differs(exp, elen, act, alen, i)) {
            ndiff++;
            first = i;
        }
    }
    if (!ndiff) {
        tb_printf(&tb, "identical, %zu bytes\n", elen);
        return buf;
    }
    tb_printf(&tb, "expected %zu bytes, actual %zu bytes; %zu %s, "
              "first at 0x%04zx\n", elen, alen, ndiff,
              ndiff == 1 ? "byte differs" : "bytes differ", first);

    for (off = 0; off < max; off += HEX_ROW) {
        row_len = max - off < HEX_ROW ? max - off : HEX_ROW;
        row_diff = 0;
        for (i = 0; i < row_len; i++)
            row_diff |= byte_differs(exp, elen, act, alen, off + i);
        if (!row_diff) {
            hex_row(&tb, ' ', off, row_len, exp, elen);
            continue;
        }
        hex_row(&tb, '-', off, row_len, exp, elen);
        hex_row(&tb, '+', off, row_len, act, alen);
        last = 0;
        for (i = 0; i < row_len; i++) {
            if (byte_differs(exp, elen, act, alen, off + i))
                last = i;
        }
        tb_printf(&tb, "      ");
        for (i = 0; i <= last; i++) {
            tb_printf(&tb, "%s%s", i == 8 ? "  " : " ",
                      byte_differs(exp, elen, act, alen, off + i) ? "^^" : "  ");
        }
        tb_printf(&tb, "\n");
    }

    if (tb.truncated && bufsz > 4)
        memcpy(buf + bufsz - 5, "...\n", 5);
    return buf;
}
