// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb_config.c - the YAML reader of xlb_config.h.
 *
 * libyaml composes the whole file into a node tree first (every node keeps
 * its start mark), then a schema walk turns the tree into a struct
 * xlb_config.  Each mapping is first collected against the keys its schema
 * allows: unknown and duplicate keys fail there.  The walker then reads the
 * keys in the order the checks need (layer before the layer-specific keys,
 * ports before reals, a service before its sub-services), whatever their
 * order in the file, so a combination is always judged with every value it
 * depends on known.
 *
 * The first error stops the walk.  Its text names the position of the
 * offending node, the key path built while descending and what is allowed.
 * Everything allocated so far hangs off the config (counts are set before
 * the arrays are filled, arrays are zeroed), so one xlb_config_free() undoes
 * a failed load.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "xlb_addr.h"
#include "xlb_config.h"
#include "xlb_loader.h"

#define MAXKEYS 24
#define FILE_MAX (16u << 20)
#define MIN_MS ((uint64_t)60000)
#define HOUR_MS ((uint64_t)3600000)
#define DAY_MS ((uint64_t)86400000)
#define MAX_CONNS_LIMIT 100000000u
#define RING_MIN 7u

/* ------------------------------------------------------------------ */
/* name tables                                                          */

struct nv {
    const char *name;
    int val;
};

static const struct nv sched_nv[] = {
    { "rr", XLB_SCHED_RR }, { "wrr", XLB_SCHED_WRR }, { "lc", XLB_SCHED_LC },
    { "wlc", XLB_SCHED_WLC }, { "adaptive", XLB_SCHED_ADAPTIVE }, { "fixed", XLB_SCHED_FIXED },
    { "wrt", XLB_SCHED_WRT }, { "sh", XLB_SCHED_SH }, { "maglev", XLB_SCHED_MAGLEV },
    { NULL, 0 },
};

static const struct nv fwd_nv[] = {
    { "ipip", XLB_CFG_FWD_IPIP }, { "gue", XLB_CFG_FWD_GUE }, { "dsr", XLB_CFG_FWD_DSR },
    { "nat", XLB_CFG_FWD_NAT }, { NULL, 0 },
};

static const struct nv hc_nv[] = {
    { "none", XLB_HC_NONE }, { "icmp", XLB_HC_ICMP }, { "tcp", XLB_HC_TCP },
    { "http", XLB_HC_HTTP }, { "https", XLB_HC_HTTPS }, { "ftp", XLB_HC_FTP },
    { "smtp", XLB_HC_SMTP }, { "pop3", XLB_HC_POP3 }, { "imap", XLB_HC_IMAP },
    { "nntp", XLB_HC_NNTP }, { "telnet", XLB_HC_TELNET }, { "dns", XLB_HC_DNS },
    { "generic", XLB_HC_GENERIC }, { NULL, 0 },
};

static const struct nv persist_nv[] = {
    { "none", XLB_PERSIST_NONE }, { "source-ip", XLB_PERSIST_SOURCE_IP },
    { "active-cookie", XLB_PERSIST_ACTIVE_COOKIE }, { "server-cookie", XLB_PERSIST_SERVER_COOKIE },
    { "hash-cookies", XLB_PERSIST_HASH_COOKIES }, { "super-http", XLB_PERSIST_SUPER_HTTP },
    { "url-hash", XLB_PERSIST_URL_HASH }, { "host", XLB_PERSIST_HOST },
    { "query-item", XLB_PERSIST_QUERY_ITEM }, { "header", XLB_PERSIST_HEADER }, { NULL, 0 },
};

static const struct nv fallback_nv[] = {
    { "none", XLB_PERSIST_NONE }, { "source-ip", XLB_PERSIST_SOURCE_IP }, { NULL, 0 },
};

static const struct nv proto_nv[] = {
    { "tcp", XLB_CFG_PROTO_TCP }, { "udp", XLB_CFG_PROTO_UDP },
    { "tcp+udp", XLB_CFG_PROTO_TCP | XLB_CFG_PROTO_UDP }, { NULL, 0 },
};

static const struct nv mode_nv[] = {
    { "native", XLB_MODE_NATIVE }, { "generic", XLB_MODE_GENERIC }, { "auto", XLB_MODE_AUTO },
    { NULL, 0 },
};

static const struct nv method_nv[] = { { "HEAD", 0 }, { "GET", 1 }, { NULL, 0 } };
static const struct nv httpv_nv[] = { { "1.0", 1 }, { "1.1", 0 }, { NULL, 0 } };
static const struct nv tlsv_nv[] = { { "1.2", 0 }, { "1.3", 1 }, { NULL, 0 } };
static const struct nv samesite_nv[] = {
    { "Lax", 0 }, { "Strict", 1 }, { "None", 2 }, { NULL, 0 },
};

static const char *nv_name(const struct nv *t, int val)
{
    for (; t->name; t++)
        if (t->val == val)
            return t->name;
    return "unknown";
}

/* "a, b, c" of the names of t. */
static void nv_join(const struct nv *t, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (; t->name && off < len; t++) {
        int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", t->name);

        if (n < 0)
            break;
        off += (size_t)n;
    }
}

const char *xlb_cfg_sched_name(enum xlb_cfg_sched s)
{
    return nv_name(sched_nv, (int)s);
}

const char *xlb_cfg_fwd_name(enum xlb_cfg_fwd f)
{
    if ((int)f == 0)
        return "none";
    return nv_name(fwd_nv, (int)f);
}

const char *xlb_cfg_hc_name(enum xlb_cfg_hc_type t)
{
    return nv_name(hc_nv, (int)t);
}

const char *xlb_cfg_persist_name(enum xlb_cfg_persist p)
{
    return nv_name(persist_nv, (int)p);
}

/* ------------------------------------------------------------------ */
/* durations and sizes                                                  */

/* Decimal digits s[0..n-1] into *v; false when n is 0, a byte is not a
 * digit or the value does not fit (then *v is UINT64_MAX). */
static bool digits(const char *s, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    size_t i;

    if (n == 0)
        return false;
    for (i = 0; i < n; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return false;
        d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) {
            *v = UINT64_MAX;
            return false;
        }
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

static bool all_digits(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return i > 0;
}

/* An unsigned number followed by a unit of the table; "" in the table is
 * the bare number.  -EINVAL for anything else, -ERANGE on overflow. */
struct unit {
    const char *name;
    uint64_t mult;
};

static int parse_with_unit(const char *s, const struct unit *units, uint64_t *out)
{
    size_t n = 0;
    uint64_t v;

    if (!s || !out)
        return -EINVAL;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (n == 0)
        return -EINVAL;
    for (; units->name; units++) {
        if (strcmp(s + n, units->name))
            continue;
        if (!digits(s, n, &v))
            return -ERANGE;
        if (v && v > UINT64_MAX / units->mult)
            return -ERANGE;
        *out = v * units->mult;
        return 0;
    }
    return -EINVAL;
}

/* "500ms" "5s" "10m" "2h" "7d": digits and exactly one unit, no sign, no
 * space, no bare number.  Returns 0, -EINVAL or -ERANGE (overflow). */
int xlb_parse_duration_ms(const char *s, uint64_t *ms)
{
    static const struct unit u[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", MIN_MS }, { "h", HOUR_MS }, { "d", DAY_MS }, { NULL, 0 },
    };

    return parse_with_unit(s, u, ms);
}

/* "512" (bytes), "512B", "64KiB", "256MiB", "1GiB".  Returns 0, -EINVAL or
 * -ERANGE (overflow). */
int xlb_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit u[] = {
        { "", 1 }, { "B", 1 }, { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 },
        { NULL, 0 },
    };

    return parse_with_unit(s, u, bytes);
}

/* ------------------------------------------------------------------ */
/* the reader's state and its error line                                */

struct rd {
    const char *file;
    char *err;
    size_t errlen;
    yaml_document_t *doc;
    struct xlb_config *c;
    char path[512];             /* key path of the node being read */
    size_t plen;
    bool failed;
    uint64_t l4_vips;           /* (address, port, protocol) entries of layer 4 so far */
    uint64_t l4_reals;          /* (service, real) pairs of layer 4 so far */
};

/* Short texts for messages, returned by value (valid for the full
 * expression that uses them). */
struct txt {
    char s[112];
};

struct ctxt {
    char s[52];
};

/* At most 48 bytes of s, control bytes replaced, "..." when cut. */
static struct ctxt clean(const char *s, size_t len)
{
    struct ctxt t;
    size_t i, n = len > 48 ? 45 : len;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        t.s[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (n < len) {
        memcpy(t.s + n, "...", 3);
        n += 3;
    }
    t.s[n] = '\0';
    return t;
}

static const char *sv(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool is_null(const yaml_node_t *n)
{
    const char *s;

    if (!is_plain(n))
        return false;
    s = sv(n);
    return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static struct txt describe(const yaml_node_t *n)
{
    struct txt t;

    if (n->type == YAML_MAPPING_NODE)
        snprintf(t.s, sizeof(t.s), "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(t.s, sizeof(t.s), "a list");
    else if (is_null(n))
        snprintf(t.s, sizeof(t.s), "nothing");
    else if (is_plain(n))
        snprintf(t.s, sizeof(t.s), "\"%s\"", clean(sv(n), slen(n)).s);
    else
        snprintf(t.s, sizeof(t.s), "the quoted string \"%s\"", clean(sv(n), slen(n)).s);
    return t;
}

static struct txt fmt_dur(uint64_t ms)
{
    struct txt t;

    if (ms == 0)
        snprintf(t.s, sizeof(t.s), "0s");
    else if (ms % DAY_MS == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "d", ms / DAY_MS);
    else if (ms % HOUR_MS == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "h", ms / HOUR_MS);
    else if (ms % MIN_MS == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "m", ms / MIN_MS);
    else if (ms % 1000 == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "s", ms / 1000);
    else
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "ms", ms);
    return t;
}

static struct txt fmt_size(uint64_t b)
{
    struct txt t;

    if (b && b % (1ull << 30) == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "GiB", b >> 30);
    else if (b && b % (1ull << 20) == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "MiB", b >> 20);
    else if (b && b % (1ull << 10) == 0)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 "KiB", b >> 10);
    else
        snprintf(t.s, sizeof(t.s), "%" PRIu64, b);
    return t;
}

static struct txt fmt_addr(uint8_t family, const struct xlb_addr *a)
{
    struct txt t;

    xlb_addr_str(a, family, t.s, sizeof(t.s));
    return t;
}

__attribute__((format(printf, 2, 3)))
static size_t push(struct rd *r, const char *fmt, ...)
{
    size_t old = r->plen, room = sizeof(r->path) - old;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(r->path + old, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    r->plen = (size_t)n < room ? old + (size_t)n : sizeof(r->path) - 1;
    return old;
}

static size_t push_key(struct rd *r, const char *key)
{
    return push(r, r->plen ? ".%s" : "%s", key);
}

static size_t push_idx(struct rd *r, size_t i)
{
    return push(r, "[%zu]", i);
}

static void pop(struct rd *r, size_t old)
{
    r->plen = old;
    r->path[old] = '\0';
}

/* The one error line: "FILE:LINE:COLUMN: PATH: text".  Only the first
 * error is kept.  Always returns -EINVAL. */
static int vfail_mark(struct rd *r, const yaml_mark_t *m, const char *fmt, va_list ap)
{
    int n;

    if (r->failed)
        return -EINVAL;
    r->failed = true;
    if (!r->err || !r->errlen)
        return -EINVAL;
    n = snprintf(r->err, r->errlen, "%s:%zu:%zu: %s: ", r->file, m->line + 1, m->column + 1,
                 r->plen ? r->path : "(root)");
    if (n >= 0 && (size_t)n < r->errlen)
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    return -EINVAL;
}

__attribute__((format(printf, 3, 4)))
static int fail_mark(struct rd *r, const yaml_mark_t *m, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_mark(r, m, fmt, ap);
    va_end(ap);
    return rc;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct rd *r, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_mark(r, &n->start_mark, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(struct rd *r)
{
    if (!r->failed && r->err && r->errlen)
        snprintf(r->err, r->errlen, "%s: out of memory", r->file);
    r->failed = true;
    return -ENOMEM;
}

static void *zalloc(struct rd *r, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        oom(r);
    return p;
}

/* ------------------------------------------------------------------ */
/* mappings against a schema                                            */

struct map {
    const yaml_node_t *node;
    const char *const *names;   /* NULL-terminated, index = key id */
    const yaml_node_t *key[MAXKEYS], *val[MAXKEYS];
};

static void join_names(const char *const *names, uint32_t mask, char *buf, size_t len)
{
    size_t off = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; names[i] && off < len; i++) {
        int n;

        if (!(mask & (1u << i)))
            continue;
        n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", names[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

/*
 * Check that n is a mapping whose keys are all in names, each once, and
 * record key and value nodes by key id.  Errors: not a mapping, a key that
 * is not a plain name, an unknown key, a key given twice.
 */
static int collect(struct rd *r, const yaml_node_t *n, const char *const *names, struct map *m)
{
    char all[512];
    yaml_node_pair_t *p;

    memset(m, 0, sizeof(*m));
    m->node = n;
    m->names = names;
    join_names(names, ~0u, all, sizeof(all));
    if (n->type != YAML_MAPPING_NODE)
        return fail(r, n, "expected a mapping, got %s; allowed: a mapping with the keys %s",
                    describe(n).s, all);
    for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(r->doc, p->value);
        size_t old;
        int i, rc;

        if (!k || !v)
            return fail(r, n, "malformed mapping; allowed: key: value pairs");
        if (k->type != YAML_SCALAR_NODE || is_null(k) || strlen(sv(k)) != slen(k))
            return fail(r, k, "a key must be a name, got %s; allowed: %s", describe(k).s, all);
        for (i = 0; names[i]; i++)
            if (!strcmp(names[i], sv(k)))
                break;
        if (!names[i]) {
            old = push_key(r, clean(sv(k), slen(k)).s);
            rc = fail(r, k, "unknown key; allowed: %s", all);
            pop(r, old);
            return rc;
        }
        if (m->key[i]) {
            old = push_key(r, names[i]);
            rc = fail(r, k, "duplicate key (first at line %zu, column %zu); allowed: each key once",
                      m->key[i]->start_mark.line + 1, m->key[i]->start_mark.column + 1);
            pop(r, old);
            return rc;
        }
        m->key[i] = k;
        m->val[i] = v;
    }
    return 0;
}

/* Errors about a present key: at its value or at the key itself. */
__attribute__((format(printf, 4, 5)))
static int fail_val(struct rd *r, const struct map *m, int k, const char *fmt, ...)
{
    size_t old = push_key(r, m->names[k]);
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_mark(r, &m->val[k]->start_mark, fmt, ap);
    va_end(ap);
    pop(r, old);
    return rc;
}

__attribute__((format(printf, 4, 5)))
static int fail_key(struct rd *r, const struct map *m, int k, const char *fmt, ...)
{
    size_t old = push_key(r, m->names[k]);
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail_mark(r, &m->key[k]->start_mark, fmt, ap);
    va_end(ap);
    pop(r, old);
    return rc;
}

/* ------------------------------------------------------------------ */
/* typed values                                                         */

static int get_uint(struct rd *r, const yaml_node_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s;
    uint64_t v;

    if (n->type != YAML_SCALAR_NODE || is_null(n) || !is_plain(n))
        goto type;
    s = sv(n);
    if (s[0] == '-' && all_digits(s + 1))
        goto range;
    if (!all_digits(s))
        goto type;
    if (!digits(s, strlen(s), &v) || v < min || v > max)
        goto range;
    *out = v;
    return 0;
range:
    return fail(r, n, "%s is out of range; allowed: %" PRIu64 "..%" PRIu64,
                clean(sv(n), slen(n)).s, min, max);
type:
    return fail(r, n, "expected an integer, got %s; allowed: an integer in %" PRIu64 "..%" PRIu64,
                describe(n).s, min, max);
}

static int get_bool(struct rd *r, const yaml_node_t *n, bool *out)
{
    if (is_plain(n)) {
        const char *s = sv(n);

        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
            *out = false;
            return 0;
        }
    }
    return fail(r, n, "expected true or false, got %s; allowed: true, false", describe(n).s);
}

/* Text of 1 (minlen) .. size-1 bytes, no control characters. */
static int get_str(struct rd *r, const yaml_node_t *n, char *buf, size_t size, size_t minlen)
{
    size_t len, i;

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(r, n, "expected a string, got %s; allowed: text of at most %zu characters",
                    describe(n).s, size - 1);
    len = slen(n);
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)sv(n)[i];

        if (ch < 0x20 || ch == 0x7f)
            return fail(r, n, "%s contains a control character; allowed: printable text",
                        describe(n).s);
    }
    if (len < minlen)
        return fail(r, n, "is empty; allowed: 1..%zu characters", size - 1);
    if (len >= size)
        return fail(r, n, "is too long (%zu characters); allowed: at most %zu characters", len,
                    size - 1);
    memcpy(buf, sv(n), len);
    buf[len] = '\0';
    return 0;
}

static int get_enum(struct rd *r, const yaml_node_t *n, const struct nv *t, const char *what,
                    int *out)
{
    const struct nv *e;
    char all[256];

    nv_join(t, all, sizeof(all));
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(r, n, "expected a %s, got %s; allowed: %s", what, describe(n).s, all);
    for (e = t; e->name; e++) {
        if (!strcmp(e->name, sv(n)) && strlen(e->name) == slen(n)) {
            *out = e->val;
            return 0;
        }
    }
    return fail(r, n, "unknown %s %s; allowed: %s", what, describe(n).s, all);
}

static int get_dur(struct rd *r, const yaml_node_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    int rc;

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(r, n, "expected a duration, got %s; allowed: a number with a unit (ms, s, m, "
                    "h, d) in %s..%s", describe(n).s, fmt_dur(min).s, fmt_dur(max).s);
    if (all_digits(sv(n)))
        return fail(r, n, "%s has no unit; allowed: a number with a unit (ms, s, m, h, d) in "
                    "%s..%s", describe(n).s, fmt_dur(min).s, fmt_dur(max).s);
    rc = xlb_parse_duration_ms(sv(n), &v);
    if (rc == -ERANGE || (!rc && (v < min || v > max)))
        return fail(r, n, "%s is out of range; allowed: %s..%s", clean(sv(n), slen(n)).s,
                    fmt_dur(min).s, fmt_dur(max).s);
    if (rc)
        return fail(r, n, "%s is not a duration; allowed: a number with a unit (ms, s, m, h, d) "
                    "in %s..%s", describe(n).s, fmt_dur(min).s, fmt_dur(max).s);
    *out = v;
    return 0;
}

static int get_size(struct rd *r, const yaml_node_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    int rc = -EINVAL;

    if (n->type == YAML_SCALAR_NODE && !is_null(n))
        rc = xlb_parse_size(sv(n), &v);
    if (rc == -ERANGE || (!rc && (v < min || v > max)))
        return fail(r, n, "%s is out of range; allowed: %s..%s", clean(sv(n), slen(n)).s,
                    fmt_size(min).s, fmt_size(max).s);
    if (rc)
        return fail(r, n, "%s is not a size; allowed: bytes, or a number with B, KiB, MiB or GiB, "
                    "in %s..%s", describe(n).s, fmt_size(min).s, fmt_size(max).s);
    *out = v;
    return 0;
}

/*
 * A list item that is a number or an "A-B" range (plain or quoted), each
 * end in min..max.  A quoted single number is a string, not a number.
 */
static int get_range(struct rd *r, const yaml_node_t *n, uint32_t min, uint32_t max,
                     const char *what, uint32_t *lo, uint32_t *hi)
{
    const char *s, *dash;
    uint64_t a, b;

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        goto type;
    s = sv(n);
    if (is_plain(n) && all_digits(s)) {
        if (!digits(s, strlen(s), &a) || a < min || a > max)
            return fail(r, n, "%s %s is out of range; allowed: %u..%u", what, clean(s, slen(n)).s,
                        min, max);
        *lo = *hi = (uint32_t)a;
        return 0;
    }
    dash = strchr(s, '-');
    if (dash && dash > s && all_digits(dash + 1) && strspn(s, "0123456789") == (size_t)(dash - s)) {
        bool ok_a = digits(s, (size_t)(dash - s), &a);
        bool ok_b = digits(dash + 1, strlen(dash + 1), &b);

        if (!ok_a || !ok_b || a < min || a > max || b < min || b > max)
            return fail(r, n, "range %s is out of range; allowed: %u..%u", clean(s, slen(n)).s,
                        min, max);
        if (a > b)
            return fail(r, n, "range %s is reversed; allowed: A-B with A <= B",
                        clean(s, slen(n)).s);
        *lo = (uint32_t)a;
        *hi = (uint32_t)b;
        return 0;
    }
type:
    return fail(r, n, "expected a %s number or an \"A-B\" range, got %s; allowed: integers in "
                "%u..%u and \"A-B\" ranges", what, describe(n).s, min, max);
}

/* Optional keys: 0 when absent (out untouched), 1 when read, <0 on error. */
static int opt_uint(struct rd *r, const struct map *m, int k, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    size_t old;
    int rc;

    if (!m->val[k])
        return 0;
    old = push_key(r, m->names[k]);
    rc = get_uint(r, m->val[k], min, max, out);
    pop(r, old);
    return rc < 0 ? rc : 1;
}

static int opt_u32(struct rd *r, const struct map *m, int k, uint32_t min, uint32_t max,
                   uint32_t *out)
{
    uint64_t v;
    int rc = opt_uint(r, m, k, min, max, &v);

    if (rc == 1)
        *out = (uint32_t)v;
    return rc;
}

static int opt_u16(struct rd *r, const struct map *m, int k, uint16_t min, uint16_t max,
                   uint16_t *out)
{
    uint64_t v;
    int rc = opt_uint(r, m, k, min, max, &v);

    if (rc == 1)
        *out = (uint16_t)v;
    return rc;
}

static int opt_bool(struct rd *r, const struct map *m, int k, bool *out)
{
    size_t old;
    int rc;

    if (!m->val[k])
        return 0;
    old = push_key(r, m->names[k]);
    rc = get_bool(r, m->val[k], out);
    pop(r, old);
    return rc < 0 ? rc : 1;
}

static int opt_str(struct rd *r, const struct map *m, int k, char *buf, size_t size,
                   size_t minlen)
{
    size_t old;
    int rc;

    if (!m->val[k])
        return 0;
    old = push_key(r, m->names[k]);
    rc = get_str(r, m->val[k], buf, size, minlen);
    pop(r, old);
    return rc < 0 ? rc : 1;
}

static int opt_enum(struct rd *r, const struct map *m, int k, const struct nv *t,
                    const char *what, int *out)
{
    size_t old;
    int rc;

    if (!m->val[k])
        return 0;
    old = push_key(r, m->names[k]);
    rc = get_enum(r, m->val[k], t, what, out);
    pop(r, old);
    return rc < 0 ? rc : 1;
}

static int opt_dur(struct rd *r, const struct map *m, int k, uint64_t min, uint64_t max,
                   uint32_t *out)
{
    uint64_t v;
    size_t old;
    int rc;

    if (!m->val[k])
        return 0;
    old = push_key(r, m->names[k]);
    rc = get_dur(r, m->val[k], min, max, &v);
    pop(r, old);
    if (rc < 0)
        return rc;
    *out = (uint32_t)v;
    return 1;
}

static int opt_size(struct rd *r, const struct map *m, int k, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    size_t old;
    int rc;

    if (!m->val[k])
        return 0;
    old = push_key(r, m->names[k]);
    rc = get_size(r, m->val[k], min, max, out);
    pop(r, old);
    return rc < 0 ? rc : 1;
}

/* A list node, or an error naming what its items must be. */
static int need_list(struct rd *r, const yaml_node_t *n, const char *items, size_t *count)
{
    *count = 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(r, n, "expected a list, got %s; allowed: a list of %s", describe(n).s, items);
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return 0;
}

static const yaml_node_t *item(struct rd *r, const yaml_node_t *seq, size_t i)
{
    return yaml_document_get_node(r->doc, seq->data.sequence.items.start[i]);
}

/* ------------------------------------------------------------------ */
/* value shapes                                                         */

static bool name_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return i > 0 && i < XLB_NAME_LEN;
}

/* An HTTP token (RFC 9110): header and cookie names, methods. */
static bool token_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                              "!#$%&'*+-.^_`|~") == n;
}

static bool no_space(const char *s)
{
    return !strpbrk(s, " \t");
}

static bool addr_zero(const struct xlb_addr *a)
{
    static const struct xlb_addr z;

    return !memcmp(a, &z, sizeof(z));
}

static bool addr_eq(uint8_t fa, const struct xlb_addr *a, uint8_t fb, const struct xlb_addr *b)
{
    return fa == fb && !memcmp(a, b, fa == XLB_FAMILY_V4 ? 4 : 16);
}

static const char *family_name(uint8_t f)
{
    return f == XLB_FAMILY_V4 ? "IPv4" : "IPv6";
}

static int name_err(struct rd *r, const yaml_node_t *n)
{
    return fail(r, n, "%s is not a valid name; allowed: 1..%d characters of A-Z a-z 0-9 . _ -",
                describe(n).s, XLB_NAME_LEN - 1);
}

static int opt_name(struct rd *r, const struct map *m, int k, char *buf)
{
    int rc = opt_str(r, m, k, buf, XLB_NAME_LEN, 1);
    size_t old;

    if (rc == 1 && !name_ok(buf)) {
        old = push_key(r, m->names[k]);
        rc = name_err(r, m->val[k]);
        pop(r, old);
    }
    return rc;
}

/* A unicast address without prefix length. */
static int get_addr(struct rd *r, const yaml_node_t *n, uint8_t *family, struct xlb_addr *a)
{
    char buf[64];
    int rc = get_str(r, n, buf, sizeof(buf), 1);

    if (rc)
        return rc;
    if (xlb_addr_parse(buf, a, family, NULL))
        return fail(r, n, "%s is not an IPv4 or IPv6 address; allowed: an address such as "
                    "198.18.10.10 or fd00::10", describe(n).s);
    if (addr_zero(a))
        return fail(r, n, "%s is the unspecified address; allowed: a unicast address",
                    describe(n).s);
    return 0;
}

/* "A" or "A/PLEN"; host bits below plen must be zero; family 0 = any. */
static int get_prefix(struct rd *r, const yaml_node_t *n, uint8_t family, struct xlb_cfg_prefix *p)
{
    struct xlb_addr masked;
    uint8_t *b = (uint8_t *)masked.addr_be;
    char buf[64];
    int rc = get_str(r, n, buf, sizeof(buf), 1), i, nbytes;

    if (rc)
        return rc;
    if (xlb_addr_parse(buf, &p->addr, &p->family, &p->plen))
        return fail(r, n, "%s is not an address or prefix; allowed: ADDRESS or ADDRESS/PLEN such "
                    "as 198.19.66.0/24", describe(n).s);
    if (family && p->family != family)
        return fail(r, n, "%s prefix %s never matches the clients of an %s service; allowed: %s "
                    "prefixes", family_name(p->family), buf, family_name(family),
                    family_name(family));
    masked = p->addr;
    nbytes = p->family == XLB_FAMILY_V4 ? 4 : 16;
    for (i = 0; i < nbytes; i++) {
        int keep = (int)p->plen - i * 8;

        if (keep <= 0)
            b[i] = 0;
        else if (keep < 8)
            b[i] &= (uint8_t)(0xff << (8 - keep));
    }
    if (memcmp(&masked, &p->addr, sizeof(masked)))
        return fail(r, n, "%s has host bits set; allowed: %s/%u", buf,
                    fmt_addr(p->family, &masked).s, p->plen);
    return 0;
}

static int get_prefixes(struct rd *r, const yaml_node_t *n, uint8_t family,
                        struct xlb_cfg_prefix **out, int *nout)
{
    size_t count = 0, i;
    int rc = need_list(r, n, "addresses or ADDRESS/PLEN prefixes", &count);

    if (rc)
        return rc;
    if (count > 65536)
        return fail(r, n, "%zu prefixes; allowed: at most 65536", count);
    *out = zalloc(r, count, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    *nout = (int)count;
    for (i = 0; i < count; i++) {
        size_t old = push_idx(r, i);

        rc = get_prefix(r, item(r, n, i), family, &(*out)[i]);
        pop(r, old);
        if (rc)
            return rc;
    }
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT", port 1..65535. */
static int parse_listen(const char *s, struct xlb_cfg_listen *l)
{
    char host[64];
    const char *port;
    size_t hl;
    uint64_t p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':')
            return -EINVAL;
        hl = (size_t)(close - s - 1);
        memcpy(host, s + 1, hl < sizeof(host) ? hl : 0);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');

        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl))
            return -EINVAL;
        memcpy(host, s, hl < sizeof(host) ? hl : 0);
        port = colon + 1;
    }
    if (hl == 0 || hl >= sizeof(host))
        return -EINVAL;
    host[hl] = '\0';
    if (xlb_addr_parse(host, &l->addr, &l->family, NULL))
        return -EINVAL;
    if ((s[0] == '[') != (l->family == XLB_FAMILY_V6))
        return -EINVAL;
    if (!all_digits(port) || !digits(port, strlen(port), &p) || p < 1 || p > 65535)
        return -EINVAL;
    l->port = (uint16_t)p;
    l->set = true;
    return 0;
}

/* Bytes as hex digit pairs, optionally separated by spaces. */
static int parse_hex(const char *s, uint8_t *out, size_t max, size_t *len)
{
    size_t n = 0;

    while (*s) {
        unsigned v = 0;
        int i;

        if (*s == ' ') {
            s++;
            continue;
        }
        for (i = 0; i < 2; i++, s++) {
            char ch = *s;

            v <<= 4;
            if (ch >= '0' && ch <= '9')
                v |= (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                v |= (unsigned)(ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F')
                v |= (unsigned)(ch - 'A' + 10);
            else
                return -EINVAL;
        }
        if (n == max)
            return -ERANGE;
        out[n++] = (uint8_t)v;
    }
    *len = n;
    return 0;
}

static bool is_prime(uint32_t v)
{
    uint32_t d;

    if (v < 2)
        return false;
    for (d = 2; d <= v / d; d++)
        if (v % d == 0)
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* defaults                                                             */

static void hc_defaults(struct xlb_cfg_hc *h)
{
    static const struct xlb_cfg_status_range st[] = {
        { 200, 299 }, { 301, 301 }, { 302, 302 }, { 401, 401 },
    };

    memset(h, 0, sizeof(*h));
    h->type = XLB_HC_TCP;
    h->interval_ms = 5000;
    h->timeout_ms = 3000;
    h->rise = 2;
    h->fall = 3;
    strcpy(h->method, "HEAD");
    strcpy(h->path, "/");
    h->n_status = (int)(sizeof(st) / sizeof(st[0]));
    memcpy(h->status, st, sizeof(st));
    strcpy(h->dns_name, "localhost.");
    h->expect_within = 1024;
}

static void persist_defaults(struct xlb_cfg_persistence *p)
{
    memset(p, 0, sizeof(*p));
    p->type = XLB_PERSIST_NONE;
    p->timeout_ms = 5 * MIN_MS;
    p->netmask4 = 32;
    p->netmask6 = 128;
    p->fallback = XLB_PERSIST_NONE;
    p->cookie_secure = true;
    p->cookie_httponly = true;
    strcpy(p->cookie_samesite, "Lax");
}

static const char *const default_types[] = { "text/*", "application/json",
                                              "application/javascript" };

static int service_defaults(struct rd *r, struct xlb_cfg_service *s)
{
    size_t i, n = sizeof(default_types) / sizeof(default_types[0]);

    s->protocols = XLB_CFG_PROTO_TCP;
    s->layer = 4;
    s->forwarding = XLB_CFG_FWD_IPIP;
    s->scheduler = XLB_SCHED_WRR;
    s->ring_size = XLB_RING_DEFAULT;
    strcpy(s->adaptive_path, "/load");
    s->adaptive_port = 80;
    s->adaptive_interval_ms = 5000;
    persist_defaults(&s->persistence);
    hc_defaults(&s->hc);
    strcpy(s->tls.min_version, "1.2");
    s->compression.min_size = 1024;
    s->compression.level = 6;
    s->compression.types = zalloc(r, n, sizeof(*s->compression.types));
    if (!s->compression.types)
        return -ENOMEM;
    s->compression.n_types = (int)n;
    for (i = 0; i < n; i++)
        strcpy(s->compression.types[i], default_types[i]);
    s->cache.max_size = 64ull << 20;
    s->cache.max_object = 1ull << 20;
    return 0;
}

static void node_defaults(struct xlb_cfg_node *n)
{
    n->xdp_mode = XLB_MODE_AUTO;
    snprintf(n->bpffs, sizeof(n->bpffs), "%s", XLB_BPFFS_DEFAULT);
    n->gue_port = XLB_GUE_PORT_DEFAULT;
    n->conn_table_size = XLB_CONN_TABLE_DEFAULT;
    n->rebalance_ms = 1000;
    n->udp_idle_ms = 30000;
    parse_listen("127.0.0.1:9120", &n->metrics);
    parse_listen("127.0.0.1:9121", &n->api);
    strcpy(n->api_token_file, "/etc/xlb/api.token");
}

/* ------------------------------------------------------------------ */
/* health checks                                                        */

enum {
    HC_TYPE, HC_PORT, HC_INTERVAL, HC_TIMEOUT, HC_RISE, HC_FALL, HC_METHOD, HC_PATH, HC_HOST,
    HC_HTTPV, HC_STATUS, HC_BODY, HC_TLSV, HC_TLSCA, HC_QUERY, HC_SEND, HC_EXPECT, HC_WITHIN,
    HC__N
};
static const char *const hc_keys[] = {
    "type", "port", "interval", "timeout", "rise", "fall", "method", "path", "host",
    "http_version", "expect_status", "expect_body", "tls_verify", "tls_ca", "query", "send",
    "expect", "expect_within", NULL,
};
_Static_assert(sizeof(hc_keys) / sizeof(hc_keys[0]) == HC__N + 1, "hc keys");

#define B(k) (1u << (k))
#define HC_TIMING (B(HC_INTERVAL) | B(HC_TIMEOUT) | B(HC_RISE) | B(HC_FALL))
#define HC_BASE (B(HC_TYPE) | B(HC_PORT) | HC_TIMING)
#define HC_HTTP (HC_BASE | B(HC_METHOD) | B(HC_PATH) | B(HC_HOST) | B(HC_HTTPV) | B(HC_STATUS) | \
                 B(HC_BODY))

static uint32_t hc_mask(enum xlb_cfg_hc_type t)
{
    switch (t) {
    case XLB_HC_NONE: return B(HC_TYPE);
    case XLB_HC_ICMP: return B(HC_TYPE) | HC_TIMING;
    case XLB_HC_HTTP: return HC_HTTP;
    case XLB_HC_HTTPS: return HC_HTTP | B(HC_TLSV) | B(HC_TLSCA);
    case XLB_HC_DNS: return HC_BASE | B(HC_QUERY);
    case XLB_HC_GENERIC: return HC_BASE | B(HC_SEND) | B(HC_EXPECT) | B(HC_WITHIN);
    default: return HC_BASE;
    }
}

static int hc_status(struct rd *r, const yaml_node_t *n, struct xlb_cfg_hc *h)
{
    size_t count = 0, i;
    int rc = need_list(r, n, "status codes and \"A-B\" ranges in 100..599", &count);

    if (rc)
        return rc;
    if (count == 0)
        return fail(r, n, "empty list; allowed: 1..%d status codes or ranges", XLB_CFG_MAX_STATUS);
    if (count > XLB_CFG_MAX_STATUS)
        return fail(r, n, "%zu entries; allowed: at most %d status codes or ranges", count,
                    XLB_CFG_MAX_STATUS);
    for (i = 0; i < count; i++) {
        size_t old = push_idx(r, i);
        uint32_t lo, hi;

        rc = get_range(r, item(r, n, i), 100, 599, "status", &lo, &hi);
        pop(r, old);
        if (rc)
            return rc;
        h->status[i].lo = (uint16_t)lo;
        h->status[i].hi = (uint16_t)hi;
    }
    h->n_status = (int)count;
    return 0;
}

static int hc_hex(struct rd *r, const struct map *m, int k, uint8_t *out, size_t *len)
{
    char buf[3 * XLB_CFG_STR_MAX + 1];
    int rc = opt_str(r, m, k, buf, sizeof(buf), 1);

    if (rc != 1)
        return rc;
    rc = parse_hex(buf, out, XLB_CFG_STR_MAX, len);
    if (rc == -ERANGE)
        return fail_val(r, m, k, "more than %d bytes; allowed: at most %d bytes as hex",
                        XLB_CFG_STR_MAX, XLB_CFG_STR_MAX);
    if (rc)
        return fail_val(r, m, k, "%s is not hex; allowed: pairs of hex digits, optionally "
                        "separated by spaces, such as \"50 49 4e 47 0d 0a\"",
                        describe(m->val[k]).s);
    return 0;
}

/*
 * A health_check mapping into h (defaults first).  Keys are accepted only
 * for the check types that use them.  Without a timeout the timeout is the
 * default capped at the interval.
 */
static int parse_hc(struct rd *r, const yaml_node_t *n, struct xlb_cfg_hc *h)
{
    struct map m;
    uint32_t mask;
    char lst[512];
    bool have_timeout;
    int rc, k, v = XLB_HC_TCP;

    hc_defaults(h);
    if ((rc = collect(r, n, hc_keys, &m)))
        return rc;
    if ((rc = opt_enum(r, &m, HC_TYPE, hc_nv, "check type", &v)) < 0)
        return rc;
    h->type = (enum xlb_cfg_hc_type)v;
    mask = hc_mask(h->type);
    for (k = 0; k < HC__N; k++) {
        if (m.key[k] && !(mask & B(k))) {
            join_names(hc_keys, mask, lst, sizeof(lst));
            return fail_key(r, &m, k, "not a setting of %s checks; allowed with type %s: %s",
                            xlb_cfg_hc_name(h->type), xlb_cfg_hc_name(h->type), lst);
        }
    }
    if ((rc = opt_u16(r, &m, HC_PORT, 0, 65535, &h->port)) < 0 ||
        (rc = opt_dur(r, &m, HC_INTERVAL, 100, HOUR_MS, &h->interval_ms)) < 0 ||
        (rc = opt_dur(r, &m, HC_TIMEOUT, 10, HOUR_MS, &h->timeout_ms)) < 0)
        return rc;
    have_timeout = m.val[HC_TIMEOUT] != NULL;
    if (have_timeout && h->timeout_ms > h->interval_ms)
        return fail_val(r, &m, HC_TIMEOUT, "%s is longer than the interval %s; allowed: "
                        "10ms..%s", fmt_dur(h->timeout_ms).s, fmt_dur(h->interval_ms).s,
                        fmt_dur(h->interval_ms).s);
    if (!have_timeout && h->timeout_ms > h->interval_ms)
        h->timeout_ms = h->interval_ms;
    if ((rc = opt_u32(r, &m, HC_RISE, 1, 100, &h->rise)) < 0 ||
        (rc = opt_u32(r, &m, HC_FALL, 1, 100, &h->fall)) < 0)
        return rc;

    if ((rc = opt_enum(r, &m, HC_METHOD, method_nv, "method", &v)) < 0)
        return rc;
    if (rc == 1)
        strcpy(h->method, nv_name(method_nv, v));
    if ((rc = opt_str(r, &m, HC_PATH, h->path, sizeof(h->path), 1)) < 0)
        return rc;
    if (rc == 1 && (h->path[0] != '/' || !no_space(h->path)))
        return fail_val(r, &m, HC_PATH, "%s is not a request path; allowed: a path that starts "
                        "with / and has no spaces", describe(m.val[HC_PATH]).s);
    if ((rc = opt_str(r, &m, HC_HOST, h->host, sizeof(h->host), 1)) < 0)
        return rc;
    if (rc == 1 && !no_space(h->host))
        return fail_val(r, &m, HC_HOST, "%s is not a host name; allowed: a name without spaces",
                        describe(m.val[HC_HOST]).s);
    if ((rc = opt_enum(r, &m, HC_HTTPV, httpv_nv, "HTTP version", &v)) < 0)
        return rc;
    if (rc == 1)
        h->http10 = v == 1;
    if (m.val[HC_STATUS]) {
        size_t old = push_key(r, "expect_status");

        rc = hc_status(r, m.val[HC_STATUS], h);
        pop(r, old);
        if (rc)
            return rc;
    }
    if ((rc = opt_str(r, &m, HC_BODY, h->expect_body, sizeof(h->expect_body), 1)) < 0)
        return rc;
    if (rc == 1) {
        if (!m.val[HC_METHOD])
            strcpy(h->method, "GET");
        else if (!strcmp(h->method, "HEAD"))
            return fail_key(r, &m, HC_BODY, "a HEAD response has no body; allowed: expect_body "
                            "with method: GET");
    }
    if ((rc = opt_bool(r, &m, HC_TLSV, &h->tls_verify)) < 0 ||
        (rc = opt_str(r, &m, HC_TLSCA, h->tls_ca, sizeof(h->tls_ca), 1)) < 0)
        return rc;
    if (rc == 1) {
        struct stat st;
        int fd = open(h->tls_ca, O_RDONLY | O_CLOEXEC), e = errno;

        if (fd >= 0) {
            e = fstat(fd, &st) ? errno : (S_ISREG(st.st_mode) ? 0 : EISDIR);
            close(fd);
        }
        if (e)
            return fail_val(r, &m, HC_TLSCA, "cannot read %s: %s; allowed: a readable CA file "
                            "(PEM)", clean(h->tls_ca, strlen(h->tls_ca)).s,
                            e == EISDIR ? "not a regular file" : strerror(e));
    }
    if ((rc = opt_str(r, &m, HC_QUERY, h->dns_name, sizeof(h->dns_name), 1)) < 0)
        return rc;
    if (rc == 1 && (strlen(h->dns_name) > 254 ||
                    strspn(h->dns_name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_.") != strlen(h->dns_name) ||
                    strstr(h->dns_name, "..") || h->dns_name[0] == '.'))
        return fail_val(r, &m, HC_QUERY, "%s is not a DNS name; allowed: labels of letters, "
                        "digits, - and _ separated by dots", describe(m.val[HC_QUERY]).s);
    if ((rc = hc_hex(r, &m, HC_SEND, h->send, &h->send_len)) < 0 ||
        (rc = hc_hex(r, &m, HC_EXPECT, h->expect, &h->expect_len)) < 0)
        return rc;
    {
        uint64_t w = h->expect_within;

        if ((rc = opt_size(r, &m, HC_WITHIN, 1, 65536, &w)) < 0)
            return rc;
        h->expect_within = (uint32_t)w;
    }
    if (h->expect_len > h->expect_within)
        return fail_val(r, &m, m.val[HC_WITHIN] ? HC_WITHIN : HC_EXPECT,
                        "the expected pattern of %zu bytes cannot appear within %u bytes; "
                        "allowed: expect_within of at least %zu", h->expect_len,
                        h->expect_within, h->expect_len);
    return 0;
}

/* ------------------------------------------------------------------ */
/* persistence                                                          */

enum {
    PS_TYPE, PS_TIMEOUT, PS_NETMASK, PS_FALLBACK, PS_COOKIE, PS_ITEM, PS_HEADER, PS_SHARE,
    PS_SECURE, PS_HTTPONLY, PS_SAMESITE, PS__N
};
static const char *const ps_keys[] = {
    "type", "timeout", "netmask", "fallback", "cookie", "item", "header", "share_by_address",
    "secure", "httponly", "samesite", NULL,
};
_Static_assert(sizeof(ps_keys) / sizeof(ps_keys[0]) == PS__N + 1, "persistence keys");

/* The name key each type takes (-1: none), and whether it is required. */
static int ps_name_key(enum xlb_cfg_persist t, bool *required)
{
    *required = true;
    switch (t) {
    case XLB_PERSIST_ACTIVE_COOKIE: *required = false; return PS_COOKIE;
    case XLB_PERSIST_SERVER_COOKIE: return PS_COOKIE;
    case XLB_PERSIST_QUERY_ITEM: return PS_ITEM;
    case XLB_PERSIST_HEADER: return PS_HEADER;
    default: *required = false; return -1;
    }
}

/* A persistence mapping for a service of the given layer and family. */
static int parse_persistence(struct rd *r, const yaml_node_t *n, struct xlb_cfg_persistence *p,
                             int layer, uint8_t family)
{
    static const char *const l4_types = "none, source-ip";
    char all[256];
    struct map m;
    uint64_t u;
    bool src, required;
    int rc, k, v, name_key;

    persist_defaults(p);
    if ((rc = collect(r, n, ps_keys, &m)))
        return rc;
    nv_join(persist_nv, all, sizeof(all));
    if (!m.val[PS_TYPE])
        return fail(r, n, "type is missing; allowed: type: %s", layer == 4 ? l4_types : all);
    if ((rc = opt_enum(r, &m, PS_TYPE, persist_nv, "persistence type", &v)) < 0)
        return rc;
    p->type = (enum xlb_cfg_persist)v;
    if (layer == 4 && p->type > XLB_PERSIST_SOURCE_IP)
        return fail_val(r, &m, PS_TYPE, "%s persistence needs a layer 7 service; allowed on "
                        "layer 4: %s", xlb_cfg_persist_name(p->type), l4_types);
    if (p->type == XLB_PERSIST_NONE) {
        for (k = 1; k < PS__N; k++)
            if (m.key[k])
                return fail_key(r, &m, k, "has no effect with type none; allowed: type: none "
                                "alone");
        return 0;
    }
    if (m.key[PS_FALLBACK] && p->type == XLB_PERSIST_SOURCE_IP)
        return fail_key(r, &m, PS_FALLBACK, "a fallback only applies to layer 7 persistence "
                        "types; allowed: fallback with type active-cookie, server-cookie, "
                        "hash-cookies, super-http, url-hash, host, query-item or header");
    if ((rc = opt_enum(r, &m, PS_FALLBACK, fallback_nv, "fallback", &v)) < 0)
        return rc;
    if (rc == 1)
        p->fallback = (enum xlb_cfg_persist)v;
    src = p->type == XLB_PERSIST_SOURCE_IP || p->fallback == XLB_PERSIST_SOURCE_IP;

    if ((rc = opt_dur(r, &m, PS_TIMEOUT, MIN_MS, 7 * DAY_MS, &p->timeout_ms)) < 0)
        return rc;
    if (m.key[PS_NETMASK] && !src)
        return fail_key(r, &m, PS_NETMASK, "netmask only applies to source-ip persistence; "
                        "allowed: netmask with type source-ip or fallback: source-ip");
    if ((rc = opt_uint(r, &m, PS_NETMASK, 0, UINT32_MAX, &u)) < 0)
        return rc;
    if (rc == 1) {
        unsigned max = family == XLB_FAMILY_V4 ? 32 : 128;

        if (u < 1 || u > max)
            return fail_val(r, &m, PS_NETMASK, "%" PRIu64 " is out of range for an %s service; "
                            "allowed: 1..%u", u, family_name(family), max);
        if (family == XLB_FAMILY_V4)
            p->netmask4 = (uint8_t)u;
        else
            p->netmask6 = (uint8_t)u;
    }
    if (m.key[PS_SHARE] && !src)
        return fail_key(r, &m, PS_SHARE, "share_by_address only applies to source-ip "
                        "persistence; allowed: with type source-ip or fallback: source-ip");
    if ((rc = opt_bool(r, &m, PS_SHARE, &p->share_by_address)) < 0)
        return rc;

    name_key = ps_name_key(p->type, &required);
    for (k = PS_COOKIE; k <= PS_HEADER; k++) {
        if (m.key[k] && k != name_key)
            return fail_key(r, &m, k, "%s persistence takes no %s; allowed: %s with type %s",
                            xlb_cfg_persist_name(p->type), ps_keys[k], ps_keys[k],
                            k == PS_COOKIE ? "active-cookie or server-cookie" :
                            k == PS_ITEM ? "query-item" : "header");
    }
    if (name_key >= 0) {
        if (!m.val[name_key] && required)
            return fail(r, n, "%s persistence needs %s: NAME; allowed: %s: the name to follow",
                        xlb_cfg_persist_name(p->type), ps_keys[name_key], ps_keys[name_key]);
        if ((rc = opt_str(r, &m, name_key, p->name, sizeof(p->name), 1)) < 0)
            return rc;
        if (rc == 1 && name_key != PS_ITEM && !token_ok(p->name))
            return fail_val(r, &m, name_key, "%s is not a valid %s name; allowed: letters, digits "
                            "and !#$%%&'*+-.^_`|~", describe(m.val[name_key]).s,
                            name_key == PS_COOKIE ? "cookie" : "header");
        if (rc == 1 && name_key == PS_ITEM && strpbrk(p->name, " &=#?"))
            return fail_val(r, &m, name_key, "%s is not a query item name; allowed: a name "
                            "without spaces, &, =, # or ?", describe(m.val[name_key]).s);
        if (!p->name[0])
            strcpy(p->name, XLB_CFG_COOKIE_DEFAULT);
    }

    for (k = PS_SECURE; k <= PS_SAMESITE; k++)
        if (m.key[k] && p->type != XLB_PERSIST_ACTIVE_COOKIE)
            return fail_key(r, &m, k, "only applies to the cookie xlb inserts; allowed: %s with "
                            "type active-cookie", ps_keys[k]);
    if ((rc = opt_bool(r, &m, PS_SECURE, &p->cookie_secure)) < 0 ||
        (rc = opt_bool(r, &m, PS_HTTPONLY, &p->cookie_httponly)) < 0 ||
        (rc = opt_enum(r, &m, PS_SAMESITE, samesite_nv, "SameSite value", &v)) < 0)
        return rc;
    if (rc == 1) {
        strcpy(p->cookie_samesite, nv_name(samesite_nv, v));
        if (v == 2 && !p->cookie_secure)
            return fail_val(r, &m, PS_SAMESITE, "SameSite None needs secure: true (browsers "
                            "drop such cookies otherwise); allowed: Lax, Strict, or None with "
                            "secure: true");
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* acl                                                                  */

enum { AC_ALLOW, AC_DENY, AC__N };
static const char *const acl_keys[] = { "allow", "deny", NULL };

static int parse_acl(struct rd *r, const yaml_node_t *n, struct xlb_cfg_acl *a, uint8_t family)
{
    struct map m;
    size_t old;
    int rc;

    if ((rc = collect(r, n, acl_keys, &m)))
        return rc;
    if (m.val[AC_ALLOW]) {
        old = push_key(r, "allow");
        rc = get_prefixes(r, m.val[AC_ALLOW], family, &a->allow, &a->n_allow);
        pop(r, old);
        if (rc)
            return rc;
    }
    if (m.val[AC_DENY]) {
        old = push_key(r, "deny");
        rc = get_prefixes(r, m.val[AC_DENY], family, &a->deny, &a->n_deny);
        pop(r, old);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* reals                                                                */

enum { RL_NAME, RL_ADDRESS, RL_PORT, RL_WEIGHT, RL_MAX_CONNS, RL_TLS, RL_ENABLED, RL__N };
static const char *const rl_keys[] = {
    "name", "address", "port", "weight", "max_conns", "tls", "enabled", NULL,
};
_Static_assert(sizeof(rl_keys) / sizeof(rl_keys[0]) == RL__N + 1, "real keys");

/* reals[i] of pool, of service s (whose ports, family, layer and
 * forwarding are known); unique address and name within the pool. */
static bool has_port(const struct xlb_cfg_service *s, uint16_t port)
{
    int lo = 0, hi = s->n_ports - 1;

    while (lo <= hi) {
        int mid = (lo + hi) / 2;

        if (s->ports[mid] == port)
            return true;
        if (s->ports[mid] < port)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return false;
}

static int parse_real(struct rd *r, const yaml_node_t *n, const struct xlb_cfg_service *s,
                      struct xlb_cfg_real *pool, int i)
{
    struct xlb_cfg_real *rl = &pool[i];
    const char *fwd = xlb_cfg_fwd_name(s->forwarding);
    struct map m;
    size_t old;
    int rc, j;

    rl->weight = 100;
    rl->enabled = true;
    rl->line = (int)n->start_mark.line + 1;
    rl->column = (int)n->start_mark.column + 1;
    if ((rc = collect(r, n, rl_keys, &m)))
        return rc;
    if (!m.val[RL_ADDRESS])
        return fail(r, n, "address is missing; allowed: a real needs an address");
    old = push_key(r, "address");
    rc = get_addr(r, m.val[RL_ADDRESS], &rl->family, &rl->addr);
    pop(r, old);
    if (rc)
        return rc;
    if (s->layer == 4 && addr_eq(rl->family, &rl->addr, s->family, &s->addr))
        return fail_val(r, &m, RL_ADDRESS, "%s is the service's own address; allowed: the real "
                        "server's own address", fmt_addr(rl->family, &rl->addr).s);
    if (s->layer == 4 && s->family == XLB_FAMILY_V4 && rl->family == XLB_FAMILY_V6 &&
        s->forwarding != XLB_CFG_FWD_IPIP && s->forwarding != XLB_CFG_FWD_GUE)
        return fail_val(r, &m, RL_ADDRESS, "an IPv6 real in an IPv4 service needs forwarding "
                        "ipip or gue (IPv4 in IPv6); allowed: an IPv4 address with forwarding %s",
                        fwd);
    if (s->layer == 4 && s->family == XLB_FAMILY_V6 && rl->family == XLB_FAMILY_V4)
        return fail_val(r, &m, RL_ADDRESS, "an IPv4 real in an IPv6 service cannot be reached "
                        "with forwarding %s; allowed: an IPv6 address", fwd);
    for (j = 0; s->layer == 4 && j < i; j++)
        if (addr_eq(rl->family, &rl->addr, pool[j].family, &pool[j].addr))
            return fail_val(r, &m, RL_ADDRESS, "duplicate real address %s (also reals[%d] at "
                            "line %d); allowed: each address once", fmt_addr(rl->family,
                            &rl->addr).s, j, pool[j].line);

    if ((rc = opt_u16(r, &m, RL_PORT, 0, 65535, &rl->port)) < 0)
        return rc;
    /* Layer 7: a real is an address and a port; it may share the host of the
     * service or of other reals on another port. */
    if (s->layer == 7 && addr_eq(rl->family, &rl->addr, s->family, &s->addr) &&
        (!rl->port || has_port(s, rl->port)))
        return fail_val(r, &m, m.val[RL_PORT] ? RL_PORT : RL_ADDRESS, "%s port %u is the "
                        "service itself; allowed: another address, or a port the service does "
                        "not listen on", fmt_addr(rl->family, &rl->addr).s,
                        rl->port ? rl->port : s->ports[0]);
    for (j = 0; s->layer == 7 && j < i; j++)
        if (addr_eq(rl->family, &rl->addr, pool[j].family, &pool[j].addr) &&
            rl->port == pool[j].port)
            return fail_val(r, &m, m.val[RL_PORT] ? RL_PORT : RL_ADDRESS, "duplicate real %s "
                            "port %u (also reals[%d] at line %d); allowed: each address and "
                            "port once", fmt_addr(rl->family, &rl->addr).s, rl->port, j,
                            pool[j].line);
    if ((rc = opt_name(r, &m, RL_NAME, rl->name)) < 0)
        return rc;
    if (rc == 0 && s->layer == 7 && rl->port) {
        /* Layer 7 reals may share an address: the default name is ADDRESS:PORT. */
        char a[XLB_ADDR_STRLEN];

        xlb_addr_str(&rl->addr, rl->family, a, sizeof(a));
        snprintf(rl->name, sizeof(rl->name), rl->family == XLB_FAMILY_V6 ? "[%s]:%u" : "%s:%u",
                 a, rl->port);
    } else if (rc == 0) {
        xlb_addr_str(&rl->addr, rl->family, rl->name, sizeof(rl->name));
    }
    for (j = 0; j < i; j++) {
        if (strcmp(rl->name, pool[j].name))
            continue;
        old = push_key(r, "name");
        rc = fail(r, m.val[RL_NAME] ? m.val[RL_NAME] : n, "duplicate real name \"%s\" (also "
                  "reals[%d] at line %d); allowed: a unique name per real", rl->name, j,
                  pool[j].line);
        pop(r, old);
        return rc;
    }

    if (rl->port && s->layer == 4 && s->forwarding != XLB_CFG_FWD_NAT) {
        if (s->n_ports != 1)
            return fail_val(r, &m, RL_PORT, "port %u with a service of %d ports; only forwarding "
                            "nat translates ports; allowed: 0 (the client's port) with "
                            "forwarding %s", rl->port, s->n_ports, fwd);
        if (rl->port != s->ports[0])
            return fail_val(r, &m, RL_PORT, "port %u differs from the service port %u; only "
                            "forwarding nat translates ports; allowed: 0 or %u with forwarding %s",
                            rl->port, s->ports[0], s->ports[0], fwd);
    }
    if ((rc = opt_u32(r, &m, RL_WEIGHT, 0, 65535, &rl->weight)) < 0 ||
        (rc = opt_u32(r, &m, RL_MAX_CONNS, 0, MAX_CONNS_LIMIT, &rl->max_conns)) < 0)
        return rc;
    if (m.key[RL_TLS] && s->layer == 4)
        return fail_key(r, &m, RL_TLS, "re-encryption to a real needs a layer 7 service; "
                        "allowed: tls with layer: 7");
    if ((rc = opt_bool(r, &m, RL_TLS, &rl->tls)) < 0 ||
        (rc = opt_bool(r, &m, RL_ENABLED, &rl->enabled)) < 0)
        return rc;
    return 0;
}

static int parse_reals(struct rd *r, const yaml_node_t *n, const struct xlb_cfg_service *s,
                       struct xlb_cfg_real **out, int *nout, bool need_one)
{
    size_t count = 0, i;
    int rc = need_list(r, n, "reals (mappings with address and optionally name, port, weight, "
                       "max_conns, tls, enabled)", &count);

    if (rc)
        return rc;
    if (count == 0 && need_one)
        return fail(r, n, "empty list; allowed: at least one real");
    if (count > XLB_MAX_REALS)
        return fail(r, n, "%zu reals; allowed: at most %d", count, XLB_MAX_REALS);
    *out = zalloc(r, count, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    *nout = (int)count;
    for (i = 0; i < count; i++) {
        size_t old = push_idx(r, i);

        rc = parse_real(r, item(r, n, i), s, *out, (int)i);
        pop(r, old);
        if (rc)
            return rc;
    }
    if (s->layer == 4) {
        r->l4_reals += count;
        if (r->l4_reals > XLB_MAX_REALS)
            return fail(r, n, "the layer 4 services have %" PRIu64 " reals in all; allowed: at "
                        "most %d", r->l4_reals, XLB_MAX_REALS);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* ports and the (address, port, protocol) claims                       */

/* Does o already take (port, one of protos) on its address?  A layer 7
 * redirect_http takes port 80/tcp. */
static uint32_t claims(const struct xlb_cfg_service *o, uint16_t port, uint32_t protos)
{
    uint32_t both = o->protocols & protos;

    if (both && has_port(o, port))
        return both;
    if (o->layer == 7 && o->tls.redirect_http && port == 80 && (protos & XLB_CFG_PROTO_TCP))
        return XLB_CFG_PROTO_TCP;
    return 0;
}

/* The first of the services same[0..n-1] that claims (port, protos). */
static int claimed_in(struct rd *r, const int *same, int n, uint16_t port, uint32_t protos,
                      uint32_t *which)
{
    int k;

    for (k = 0; k < n; k++) {
        *which = claims(&r->c->services[same[k]], port, protos);
        if (*which)
            return same[k];
    }
    return -1;
}

/* Indexes of the services before idx on the same address, into *out
 * (freed by the caller); returns their count or -ENOMEM. */
static int same_address(struct rd *r, int idx, int **out)
{
    const struct xlb_cfg_service *s = &r->c->services[idx];
    int j, n = 0;

    *out = zalloc(r, (size_t)idx, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    for (j = 0; j < idx; j++)
        if (addr_eq(s->family, &s->addr, r->c->services[j].family, &r->c->services[j].addr))
            (*out)[n++] = j;
    return n;
}

/* The first earlier service that claims (port, protos) on idx's address. */
static int claimed_by(struct rd *r, int idx, uint16_t port, uint32_t protos, uint32_t *which)
{
    int *same, n = same_address(r, idx, &same), j;

    if (n < 0)
        return n;
    j = claimed_in(r, same, n, port, protos, which);
    free(same);
    return j;
}

static int claim_err(struct rd *r, const yaml_node_t *n, int idx, int j, uint16_t port,
                     uint32_t which)
{
    const struct xlb_cfg_service *s = &r->c->services[idx], *o = &r->c->services[j];

    return fail(r, n, "port %u/%s of %s is already served by services[%d] (%s); allowed: one "
                "service per address, port and protocol", port,
                which & XLB_CFG_PROTO_TCP ? "tcp" : "udp", fmt_addr(s->family, &s->addr).s, j,
                o->name);
}

struct span {
    uint32_t lo, hi;
};

static int parse_ports(struct rd *r, const yaml_node_t *n, int idx)
{
    struct xlb_cfg_service *s = &r->c->services[idx];
    struct span *sp = NULL;
    uint8_t *seen = NULL;
    int *same = NULL, n_same;
    size_t count = 0, i, total = 0, old;
    uint32_t p, which;
    int rc = need_list(r, n, "ports 1..65535 and \"A-B\" ranges", &count), j;

    if (rc)
        return rc;
    if (count == 0)
        return fail(r, n, "empty list; allowed: at least one port");
    sp = zalloc(r, count, sizeof(*sp));
    seen = zalloc(r, 65536 / 8, 1);
    if (!sp || !seen) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < count; i++) {
        const yaml_node_t *it = item(r, n, i);

        old = push_idx(r, i);
        rc = get_range(r, it, 1, 65535, "port", &sp[i].lo, &sp[i].hi);
        for (p = sp[i].lo; !rc && p <= sp[i].hi; p++) {
            if (seen[p / 8] & (1u << (p % 8))) {
                if (sp[i].lo == sp[i].hi)
                    rc = fail(r, it, "port %u is listed twice; allowed: each port once", p);
                else
                    rc = fail(r, it, "port %u (in %u-%u) is listed twice; allowed: each port "
                              "once", p, sp[i].lo, sp[i].hi);
            }
            seen[p / 8] |= (uint8_t)(1u << (p % 8));
            total++;
        }
        pop(r, old);
        if (rc)
            goto out;
    }
    s->ports = zalloc(r, total, sizeof(*s->ports));
    if (!s->ports) {
        rc = -ENOMEM;
        goto out;
    }
    for (p = 1; p <= 65535; p++)
        if (seen[p / 8] & (1u << (p % 8)))
            s->ports[s->n_ports++] = (uint16_t)p;
    n_same = same_address(r, idx, &same);
    if (n_same < 0) {
        rc = n_same;
        goto out;
    }
    for (i = 0; n_same && i < count; i++) {
        for (p = sp[i].lo; p <= sp[i].hi; p++) {
            j = claimed_in(r, same, n_same, (uint16_t)p, s->protocols, &which);
            if (j < 0)
                continue;
            old = push_idx(r, i);
            rc = claim_err(r, item(r, n, i), idx, j, (uint16_t)p, which);
            pop(r, old);
            goto out;
        }
    }
    if (s->layer == 4) {
        /* the agent programs one VIP entry per (port, protocol) */
        r->l4_vips += total * (unsigned)__builtin_popcount(s->protocols);
        if (r->l4_vips > XLB_MAX_VIPS)
            rc = fail(r, n, "the layer 4 services claim %" PRIu64 " (address, port, protocol) "
                      "entries in all; allowed: at most %d", r->l4_vips, XLB_MAX_VIPS);
    }
out:
    free(same);
    free(sp);
    free(seen);
    return rc;
}

/* ------------------------------------------------------------------ */
/* layer 7 parts                                                        */

enum { TL_CERTS, TL_REDIRECT, TL_MINV, TL_CA, TL__N };
static const char *const tl_keys[] = { "certificates", "redirect_http", "min_version", "ca_file",
                                       NULL };

static int parse_tls(struct rd *r, const yaml_node_t *n, int idx)
{
    struct xlb_cfg_service *s = &r->c->services[idx];
    struct xlb_cfg_tls *t = &s->tls;
    struct map m;
    size_t count = 0, i, old;
    uint32_t which;
    int rc, v, j;

    if ((rc = collect(r, n, tl_keys, &m)))
        return rc;
    /* No certificates (absent or []): xlb-proxy makes a self-signed one at
     * start and warns that clients will not trust it. */
    old = push_key(r, "certificates");
    rc = m.val[TL_CERTS] ? need_list(r, m.val[TL_CERTS], "PEM file paths", &count) : 0;
    if (!rc && count && !(t->certs = zalloc(r, count, sizeof(*t->certs))))
        rc = -ENOMEM;
    if (!rc)
        t->n_certs = (int)count;
    for (i = 0; !rc && i < count; i++) {
        size_t o2 = push_idx(r, i);

        rc = get_str(r, item(r, m.val[TL_CERTS], i), t->certs[i], sizeof(t->certs[i]), 1);
        pop(r, o2);
    }
    pop(r, old);
    if (rc)
        return rc;
    t->enabled = true;
    if ((rc = opt_bool(r, &m, TL_REDIRECT, &t->redirect_http)) < 0)
        return rc;
    if (t->redirect_http) {
        if (has_port(s, 80) && (s->protocols & XLB_CFG_PROTO_TCP))
            return fail_val(r, &m, TL_REDIRECT, "the service itself listens on port 80; "
                            "allowed: redirect_http on a service without port 80");
        j = claimed_by(r, idx, 80, XLB_CFG_PROTO_TCP, &which);
        if (j == -ENOMEM)
            return j;
        if (j >= 0) {
            old = push_key(r, "redirect_http");
            rc = claim_err(r, m.val[TL_REDIRECT], idx, j, 80, which);
            pop(r, old);
            return rc;
        }
    }
    if ((rc = opt_enum(r, &m, TL_MINV, tlsv_nv, "TLS version", &v)) < 0)
        return rc;
    if (rc == 1)
        strcpy(t->min_version, nv_name(tlsv_nv, v));
    if ((rc = opt_str(r, &m, TL_CA, t->ca_file, sizeof(t->ca_file), 1)) < 0)
        return rc;
    return 0;
}

enum { CP_ENABLED, CP_MIN_SIZE, CP_LEVEL, CP_TYPES, CP__N };
static const char *const cp_keys[] = { "enabled", "min_size", "level", "types", NULL };

static bool mime_ok(const char *s)
{
    static const char tch[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                              "!#$&^_.+-";
    size_t a = strspn(s, tch);

    if (a == 0 || s[a] != '/')
        return false;
    s += a + 1;
    return !strcmp(s, "*") || (s[0] && strspn(s, tch) == strlen(s));
}

static int parse_compression(struct rd *r, const yaml_node_t *n, struct xlb_cfg_compression *cp)
{
    struct map m;
    size_t count = 0, i, old;
    uint64_t u;
    int rc;

    if ((rc = collect(r, n, cp_keys, &m)))
        return rc;
    cp->enabled = true;
    if ((rc = opt_bool(r, &m, CP_ENABLED, &cp->enabled)) < 0 ||
        (rc = opt_size(r, &m, CP_MIN_SIZE, 0, 1ull << 30, &cp->min_size)) < 0 ||
        (rc = opt_uint(r, &m, CP_LEVEL, 1, 9, &u)) < 0)
        return rc;
    if (rc == 1)
        cp->level = (int)u;
    if (!m.val[CP_TYPES])
        return 0;
    old = push_key(r, "types");
    rc = need_list(r, m.val[CP_TYPES], "media types such as text/* or application/json", &count);
    if (!rc && count == 0)
        rc = fail(r, m.val[CP_TYPES], "empty list; allowed: at least one media type");
    if (!rc) {
        free(cp->types);
        cp->n_types = 0;
        if (!(cp->types = zalloc(r, count, sizeof(*cp->types))))
            rc = -ENOMEM;
        else
            cp->n_types = (int)count;
    }
    for (i = 0; !rc && i < count; i++) {
        const yaml_node_t *it = item(r, m.val[CP_TYPES], i);
        size_t o2 = push_idx(r, i);

        rc = get_str(r, it, cp->types[i], sizeof(cp->types[i]), 1);
        if (!rc && !mime_ok(cp->types[i]))
            rc = fail(r, it, "%s is not a media type; allowed: TYPE/SUBTYPE or TYPE/*",
                      describe(it).s);
        pop(r, o2);
    }
    pop(r, old);
    return rc;
}

enum { CA_ENABLED, CA_MAX_SIZE, CA_MAX_OBJECT, CA_QUERY, CA__N };
static const char *const ca_keys[] = { "enabled", "max_size", "max_object", "cache_query", NULL };

static int parse_cache(struct rd *r, const yaml_node_t *n, struct xlb_cfg_cache *ca)
{
    struct map m;
    int rc;

    if ((rc = collect(r, n, ca_keys, &m)))
        return rc;
    ca->enabled = true;
    if ((rc = opt_bool(r, &m, CA_ENABLED, &ca->enabled)) < 0 ||
        (rc = opt_size(r, &m, CA_MAX_SIZE, 1ull << 20, 64ull << 30, &ca->max_size)) < 0 ||
        (rc = opt_size(r, &m, CA_MAX_OBJECT, 1, 64ull << 30, &ca->max_object)) < 0 ||
        (rc = opt_bool(r, &m, CA_QUERY, &ca->cache_query)) < 0)
        return rc;
    if (ca->max_object > ca->max_size)
        return fail_val(r, &m, m.val[CA_MAX_OBJECT] ? CA_MAX_OBJECT : CA_MAX_SIZE,
                        "max_object %s is larger than max_size %s; allowed: max_object <= "
                        "max_size", fmt_size(ca->max_object).s, fmt_size(ca->max_size).s);
    return 0;
}

enum { MT_PREFIX, MT_REGEX, MT_HOST, MT_HEADER, MT_METHOD, MT__N };
static const char *const mt_keys[] = { "path_prefix", "path_regex", "host", "header", "method",
                                       NULL };
enum { MH_NAME, MH_VALUE, MH__N };
static const char *const mh_keys[] = { "name", "value", NULL };

/* A match mapping; *any says whether it sets at least one condition. */
static int parse_match(struct rd *r, const yaml_node_t *n, struct xlb_cfg_match *mt, bool *any)
{
    struct map m, h;
    size_t old;
    int rc, k;

    if ((rc = collect(r, n, mt_keys, &m)))
        return rc;
    for (k = 0; k < MT__N; k++)
        *any = *any || m.val[k];
    if ((rc = opt_str(r, &m, MT_PREFIX, mt->path_prefix, sizeof(mt->path_prefix), 1)) < 0)
        return rc;
    if (rc == 1 && (mt->path_prefix[0] != '/' || !no_space(mt->path_prefix)))
        return fail_val(r, &m, MT_PREFIX, "%s is not a path prefix; allowed: a path that starts "
                        "with / and has no spaces", describe(m.val[MT_PREFIX]).s);
    if ((rc = opt_str(r, &m, MT_REGEX, mt->path_regex, sizeof(mt->path_regex), 1)) < 0 ||
        (rc = opt_str(r, &m, MT_HOST, mt->host, sizeof(mt->host), 1)) < 0)
        return rc;
    if (rc == 1 && !no_space(mt->host))
        return fail_val(r, &m, MT_HOST, "%s is not a host name; allowed: a name without spaces",
                        describe(m.val[MT_HOST]).s);
    if ((rc = opt_str(r, &m, MT_METHOD, mt->method, sizeof(mt->method), 1)) < 0)
        return rc;
    if (rc == 1 && !token_ok(mt->method))
        return fail_val(r, &m, MT_METHOD, "%s is not an HTTP method; allowed: a token such as "
                        "GET or POST", describe(m.val[MT_METHOD]).s);
    if (!m.val[MT_HEADER])
        return 0;
    old = push_key(r, "header");
    rc = collect(r, m.val[MT_HEADER], mh_keys, &h);
    if (!rc && !h.val[MH_NAME])
        rc = fail(r, m.val[MT_HEADER], "name is missing; allowed: {name: HEADER, value: TEXT}");
    if (!rc && (rc = opt_str(r, &h, MH_NAME, mt->header_name, sizeof(mt->header_name), 1)) == 1) {
        rc = 0;
        if (!token_ok(mt->header_name))
            rc = fail_val(r, &h, MH_NAME, "%s is not a header name; allowed: letters, digits and "
                          "!#$%%&'*+-.^_`|~", describe(h.val[MH_NAME]).s);
    }
    if (!rc && (rc = opt_str(r, &h, MH_VALUE, mt->header_value, sizeof(mt->header_value), 0)) > 0)
        rc = 0;
    pop(r, old);
    return rc;
}

enum { SB_NAME, SB_MATCH, SB_SCHED, SB_PERSIST, SB_HC, SB_REALS, SB__N };
static const char *const sb_keys[] = {
    "name", "match", "scheduler", "persistence", "health_check", "reals", NULL,
};

static int parse_sub(struct rd *r, const yaml_node_t *n, const struct xlb_cfg_service *s,
                     struct xlb_cfg_sub *subs, int i, bool *matched)
{
    struct xlb_cfg_sub *sb = &subs[i];
    struct map m;
    size_t old;
    int rc, j, v;

    sb->scheduler = s->scheduler;
    sb->persistence = s->persistence;
    sb->hc = s->hc;
    if ((rc = collect(r, n, sb_keys, &m)))
        return rc;
    if (!m.val[SB_NAME])
        return fail(r, n, "name is missing; allowed: a sub-service needs a name and reals");
    if ((rc = opt_name(r, &m, SB_NAME, sb->name)) < 0)
        return rc;
    for (j = 0; j < i; j++)
        if (!strcmp(subs[j].name, sb->name))
            return fail_val(r, &m, SB_NAME, "duplicate sub-service name \"%s\" (also "
                            "sub_services[%d]); allowed: a unique name per sub-service",
                            sb->name, j);
    *matched = false;
    if (m.val[SB_MATCH]) {
        old = push_key(r, "match");
        rc = parse_match(r, m.val[SB_MATCH], &sb->match, matched);
        pop(r, old);
        if (rc)
            return rc;
    }
    if ((rc = opt_enum(r, &m, SB_SCHED, sched_nv, "scheduler", &v)) < 0)
        return rc;
    if (rc == 1)
        sb->scheduler = (enum xlb_cfg_sched)v;
    if (sb->scheduler == XLB_SCHED_ADAPTIVE || sb->scheduler == XLB_SCHED_WRT)
        return fail_val(r, &m, SB_SCHED, "%s is a layer 4 scheduler; allowed at layer 7: rr, "
                        "wrr, lc, wlc, sh, fixed, maglev", xlb_cfg_sched_name(sb->scheduler));
    if (m.val[SB_PERSIST]) {
        old = push_key(r, "persistence");
        rc = parse_persistence(r, m.val[SB_PERSIST], &sb->persistence, s->layer, s->family);
        pop(r, old);
        if (rc)
            return rc;
    }
    if (m.val[SB_HC]) {
        old = push_key(r, "health_check");
        rc = parse_hc(r, m.val[SB_HC], &sb->hc);
        pop(r, old);
        if (rc)
            return rc;
    }
    if (!m.val[SB_REALS])
        return fail(r, n, "reals is missing; allowed: a sub-service needs a name and reals");
    old = push_key(r, "reals");
    rc = parse_reals(r, m.val[SB_REALS], s, &sb->reals, &sb->n_reals, true);
    pop(r, old);
    return rc;
}

static int parse_subs(struct rd *r, const yaml_node_t *n, struct xlb_cfg_service *s)
{
    size_t count = 0, i, last_open = SIZE_MAX;
    int rc = need_list(r, n, "sub-services (mappings with name, match, scheduler, persistence, "
                       "health_check, reals)", &count);

    if (rc)
        return rc;
    if (count == 0)
        return fail(r, n, "empty list; allowed: at least one sub-service");
    if (count > 1024)
        return fail(r, n, "%zu sub-services; allowed: at most 1024", count);
    s->subs = zalloc(r, count, sizeof(*s->subs));
    if (!s->subs)
        return -ENOMEM;
    s->n_subs = (int)count;
    for (i = 0; i < count; i++) {
        bool matched = false;
        size_t old;

        if (last_open != SIZE_MAX) {
            old = push_idx(r, last_open);
            rc = fail(r, item(r, n, last_open), "has no match, so the sub-services after it are "
                      "never chosen; allowed: a sub-service without match only as the last one");
            pop(r, old);
            return rc;
        }
        old = push_idx(r, i);
        rc = parse_sub(r, item(r, n, i), s, s->subs, (int)i, &matched);
        pop(r, old);
        if (rc)
            return rc;
        if (!matched)
            last_open = i;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* services                                                             */

enum { AD_PATH, AD_PORT, AD_INTERVAL, AD__N };
static const char *const ad_keys[] = { "path", "port", "interval", NULL };

static int parse_adaptive(struct rd *r, const yaml_node_t *n, struct xlb_cfg_service *s)
{
    struct map m;
    int rc;

    if ((rc = collect(r, n, ad_keys, &m)))
        return rc;
    if ((rc = opt_str(r, &m, AD_PATH, s->adaptive_path, sizeof(s->adaptive_path), 1)) < 0)
        return rc;
    if (rc == 1 && (s->adaptive_path[0] != '/' || !no_space(s->adaptive_path)))
        return fail_val(r, &m, AD_PATH, "%s is not a request path; allowed: a path that starts "
                        "with / and has no spaces", describe(m.val[AD_PATH]).s);
    if ((rc = opt_u16(r, &m, AD_PORT, 1, 65535, &s->adaptive_port)) < 0 ||
        (rc = opt_dur(r, &m, AD_INTERVAL, 1000, HOUR_MS, &s->adaptive_interval_ms)) < 0)
        return rc;
    return 0;
}

enum {
    SV_NAME, SV_ADDRESS, SV_PORTS, SV_PROTOCOL, SV_LAYER, SV_FORWARDING, SV_SCHEDULER, SV_DROP,
    SV_SLOW_START, SV_RING, SV_ADAPTIVE, SV_PERSIST, SV_ACL, SV_HC, SV_REALS, SV_TLS,
    SV_COMPRESSION, SV_CACHE, SV_FWD_HEADERS, SV_SUBS, SV__N
};
static const char *const sv_keys[] = {
    "name", "address", "ports", "protocol", "layer", "forwarding", "scheduler",
    "drop_on_failure", "slow_start", "ring_size", "adaptive", "persistence", "acl",
    "health_check", "reals", "tls", "compression", "cache", "forwarded_headers", "sub_services",
    NULL,
};
_Static_assert(sizeof(sv_keys) / sizeof(sv_keys[0]) == SV__N + 1, "service keys");

/* Does the service or one of its sub-services use one of the schedulers? */
static bool uses_sched(const struct xlb_cfg_service *s, enum xlb_cfg_sched a, enum xlb_cfg_sched b)
{
    int i;

    if (s->scheduler == a || s->scheduler == b)
        return true;
    for (i = 0; i < s->n_subs; i++)
        if (s->subs[i].scheduler == a || s->subs[i].scheduler == b)
            return true;
    return false;
}

/* Read a sub-tree at key k with the key on the path. */
#define SUBTREE(r, m, k, call)                      \
    ({                                              \
        size_t old_ = push_key((r), (m)->names[k]); \
        int rc_ = (call);                           \
        pop((r), old_);                             \
        rc_;                                        \
    })

static int parse_service(struct rd *r, const yaml_node_t *n, int idx)
{
    static const int l7_only[] = { SV_TLS, SV_COMPRESSION, SV_CACHE, SV_FWD_HEADERS, SV_SUBS };
    struct xlb_cfg_service *s = &r->c->services[idx];
    struct map m;
    uint64_t u;
    size_t i;
    int rc, v, j;

    s->line = (int)n->start_mark.line + 1;
    s->column = (int)n->start_mark.column + 1;
    if ((rc = service_defaults(r, s)) || (rc = collect(r, n, sv_keys, &m)))
        return rc;
    for (i = 0; i < 3; i++) {
        static const int req[] = { SV_NAME, SV_ADDRESS, SV_PORTS };

        if (!m.val[req[i]])
            return fail(r, n, "%s is missing; allowed: a service needs name, address and ports",
                        sv_keys[req[i]]);
    }
    if ((rc = opt_name(r, &m, SV_NAME, s->name)) < 0)
        return rc;
    for (j = 0; j < idx; j++)
        if (!strcmp(r->c->services[j].name, s->name))
            return fail_val(r, &m, SV_NAME, "duplicate service name \"%s\" (also services[%d] "
                            "at line %d); allowed: a unique name per service", s->name, j,
                            r->c->services[j].line);
    if ((rc = SUBTREE(r, &m, SV_ADDRESS, get_addr(r, m.val[SV_ADDRESS], &s->family, &s->addr))))
        return rc;

    if ((rc = opt_uint(r, &m, SV_LAYER, 0, UINT32_MAX, &u)) < 0)
        return rc;
    if (rc == 1) {
        if (u != 4 && u != 7)
            return fail_val(r, &m, SV_LAYER, "%" PRIu64 " is not a layer; allowed: 4, 7", u);
        s->layer = (int)u;
    }
    if (s->layer == 7) {
        s->forwarding = 0;
        if (m.key[SV_FORWARDING])
            return fail_key(r, &m, SV_FORWARDING, "a layer 7 service is proxied, not "
                            "forwarded; allowed: forwarding with layer: 4");
    }
    for (i = 0; s->layer == 4 && i < sizeof(l7_only) / sizeof(l7_only[0]); i++)
        if (m.key[l7_only[i]])
            return fail_key(r, &m, l7_only[i], "a layer 7 setting on a layer 4 service; allowed: "
                            "%s with layer: 7", sv_keys[l7_only[i]]);
    if ((rc = opt_enum(r, &m, SV_PROTOCOL, proto_nv, "protocol", &v)) < 0)
        return rc;
    if (rc == 1) {
        s->protocols = (uint32_t)v;
        if (s->layer == 7 && (s->protocols & XLB_CFG_PROTO_UDP))
            return fail_val(r, &m, SV_PROTOCOL, "%s cannot be proxied at layer 7; allowed: tcp",
                            nv_name(proto_nv, v));
    }
    if ((rc = opt_enum(r, &m, SV_FORWARDING, fwd_nv, "forwarding method", &v)) < 0)
        return rc;
    if (rc == 1)
        s->forwarding = (enum xlb_cfg_fwd)v;
    if ((rc = opt_enum(r, &m, SV_SCHEDULER, sched_nv, "scheduler", &v)) < 0)
        return rc;
    if (rc == 1)
        s->scheduler = (enum xlb_cfg_sched)v;
    if (s->layer == 7 && (s->scheduler == XLB_SCHED_ADAPTIVE || s->scheduler == XLB_SCHED_WRT))
        return fail_val(r, &m, SV_SCHEDULER, "%s is a layer 4 scheduler; allowed at layer 7: rr, "
                        "wrr, lc, wlc, sh, fixed, maglev", xlb_cfg_sched_name(s->scheduler));
    if ((rc = opt_bool(r, &m, SV_DROP, &s->drop_on_failure)) < 0)
        return rc;
    if ((rc = SUBTREE(r, &m, SV_PORTS, parse_ports(r, m.val[SV_PORTS], idx))))
        return rc;

    if ((rc = opt_dur(r, &m, SV_SLOW_START, 0, HOUR_MS, &s->slow_start_ms)) < 0 ||
        (rc = opt_u32(r, &m, SV_RING, 0, UINT32_MAX, &s->ring_size)) < 0)
        return rc;
    if (rc == 1 && (s->ring_size < RING_MIN || s->ring_size > XLB_RING_MAX ||
                    !is_prime(s->ring_size)))
        return fail_val(r, &m, SV_RING, "%u is not a prime in %u..%u; allowed: a prime such as "
                        "65537", s->ring_size, RING_MIN, XLB_RING_MAX);
    if (m.val[SV_ADAPTIVE] &&
        (rc = SUBTREE(r, &m, SV_ADAPTIVE, parse_adaptive(r, m.val[SV_ADAPTIVE], s))))
        return rc;
    if (m.val[SV_PERSIST] &&
        (rc = SUBTREE(r, &m, SV_PERSIST, parse_persistence(r, m.val[SV_PERSIST], &s->persistence,
                                                          s->layer, s->family))))
        return rc;
    if (m.val[SV_ACL] &&
        (rc = SUBTREE(r, &m, SV_ACL, parse_acl(r, m.val[SV_ACL], &s->acl, s->family))))
        return rc;
    if (m.val[SV_HC] && (rc = SUBTREE(r, &m, SV_HC, parse_hc(r, m.val[SV_HC], &s->hc))))
        return rc;

    if (m.val[SV_TLS] && (rc = SUBTREE(r, &m, SV_TLS, parse_tls(r, m.val[SV_TLS], idx))))
        return rc;
    if (m.val[SV_COMPRESSION] &&
        (rc = SUBTREE(r, &m, SV_COMPRESSION,
                      parse_compression(r, m.val[SV_COMPRESSION], &s->compression))))
        return rc;
    if (m.val[SV_CACHE] &&
        (rc = SUBTREE(r, &m, SV_CACHE, parse_cache(r, m.val[SV_CACHE], &s->cache))))
        return rc;
    if ((rc = opt_bool(r, &m, SV_FWD_HEADERS, &s->forwarded_headers)) < 0)
        return rc;

    if (m.val[SV_REALS] &&
        (rc = SUBTREE(r, &m, SV_REALS, parse_reals(r, m.val[SV_REALS], s, &s->reals, &s->n_reals,
                                                   false))))
        return rc;
    if (m.val[SV_SUBS] && (rc = SUBTREE(r, &m, SV_SUBS, parse_subs(r, m.val[SV_SUBS], s))))
        return rc;

    if (s->layer == 7 && s->n_reals == 0 && s->n_subs == 0)
        return m.val[SV_REALS] ?
            fail_val(r, &m, SV_REALS, "a layer 7 service without reals; allowed: at least one "
                     "real here or in sub_services") :
            fail(r, n, "a layer 7 service without reals; allowed: reals or sub_services with "
                 "reals");
    if (m.key[SV_SLOW_START] && !uses_sched(s, XLB_SCHED_LC, XLB_SCHED_WLC))
        return fail_key(r, &m, SV_SLOW_START, "only the lc and wlc schedulers ramp up new reals "
                        "(this service uses %s); allowed: slow_start with scheduler lc or wlc",
                        xlb_cfg_sched_name(s->scheduler));
    if (m.key[SV_ADAPTIVE] && !uses_sched(s, XLB_SCHED_ADAPTIVE, XLB_SCHED_ADAPTIVE))
        return fail_key(r, &m, SV_ADAPTIVE, "only the adaptive scheduler reads a load file "
                        "(this service uses %s); allowed: adaptive with scheduler adaptive",
                        xlb_cfg_sched_name(s->scheduler));
    return 0;
}

static int parse_services(struct rd *r, const yaml_node_t *n)
{
    struct xlb_config *c = r->c;
    size_t count = 0, i;
    int rc = need_list(r, n, "services (mappings with name, address, ports, ...)", &count);

    if (rc)
        return rc;
    if (count > XLB_MAX_SERVICES)
        return fail(r, n, "%zu services; allowed: at most %d", count, XLB_MAX_SERVICES);
    c->services = zalloc(r, count, sizeof(*c->services));
    if (!c->services)
        return -ENOMEM;
    c->n_services = (int)count;
    for (i = 0; i < count; i++) {
        size_t old = push_idx(r, i);

        rc = parse_service(r, item(r, n, i), (int)i);
        pop(r, old);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* node                                                                 */

enum { LS_ENABLED, LS_LISTEN, LS_TOKEN, LS__N };
static const char *const metrics_keys[] = { "enabled", "listen", NULL };
static const char *const api_keys[] = { "enabled", "listen", "token_file", NULL };

static int parse_endpoint(struct rd *r, const yaml_node_t *n, struct xlb_cfg_listen *l,
                          char *token, size_t token_len)
{
    struct xlb_cfg_listen nl = { 0 };
    char buf[80];
    struct map m;
    bool on = true;
    int rc;

    if ((rc = collect(r, n, token ? api_keys : metrics_keys, &m)))
        return rc;
    if ((rc = opt_bool(r, &m, LS_ENABLED, &on)) < 0 ||
        (rc = opt_str(r, &m, LS_LISTEN, buf, sizeof(buf), 1)) < 0)
        return rc;
    if (rc == 1) {
        if (parse_listen(buf, &nl))
            return fail_val(r, &m, LS_LISTEN, "%s is not ADDRESS:PORT; allowed: such as "
                            "127.0.0.1:9120 or [::1]:9120", describe(m.val[LS_LISTEN]).s);
        *l = nl;
    }
    l->set = on;
    if (token && (rc = opt_str(r, &m, LS_TOKEN, token, token_len, 1)) < 0)
        return rc;
    return 0;
}

enum { TS_V4, TS_V6, TS__N };
static const char *const ts_keys[] = { "ipv4", "ipv6", NULL };

static int parse_tunnel(struct rd *r, const yaml_node_t *n, struct xlb_cfg_node *nd)
{
    struct map m;
    int rc, k;

    if ((rc = collect(r, n, ts_keys, &m)))
        return rc;
    for (k = 0; k < TS__N; k++) {
        struct xlb_addr *a = k == TS_V4 ? &nd->tunnel_src4 : &nd->tunnel_src6;
        uint8_t *plen = k == TS_V4 ? &nd->tunnel_src4_plen : &nd->tunnel_src6_plen;
        uint8_t want = k == TS_V4 ? XLB_FAMILY_V4 : XLB_FAMILY_V6, fam;
        char buf[64];

        if ((rc = opt_str(r, &m, k, buf, sizeof(buf), 1)) < 0)
            return rc;
        if (rc == 0)
            continue;
        if (xlb_addr_parse(buf, a, &fam, plen) || fam != want || addr_zero(a))
            return fail_val(r, &m, k, "%s is not a unicast %s address; allowed: ADDRESS or "
                            "ADDRESS/PLEN such as %s", describe(m.val[k]).s, family_name(want),
                            k == TS_V4 ? "198.18.0.1 or 198.18.0.0/24" : "fd00::1 or fd00::/64");
    }
    return 0;
}

enum { ND_IFACES, ND_MODE, ND_BPFFS, ND_TUNNEL, ND_GUE, ND_CONNS, ND_REBAL, ND_METRICS, ND_API,
       ND_DENY, ND_FLOOD, ND_UDPIDLE, ND__N };
static const char *const nd_keys[] = {
    "interfaces", "xdp_mode", "bpffs", "tunnel_source", "gue_port", "conn_table_size",
    "rebalance_interval", "metrics", "api", "deny", "flood_threshold", "udp_idle_timeout", NULL,
};
_Static_assert(sizeof(nd_keys) / sizeof(nd_keys[0]) == ND__N + 1, "node keys");

static int parse_ifaces(struct rd *r, const yaml_node_t *n, struct xlb_cfg_node *nd)
{
    size_t count = 0, i;
    int rc = need_list(r, n, "interface names", &count), j;

    if (rc)
        return rc;
    if (count > XLB_CFG_MAX_IFACES)
        return fail(r, n, "%zu interfaces; allowed: at most %d", count, XLB_CFG_MAX_IFACES);
    for (i = 0; i < count; i++) {
        const yaml_node_t *it = item(r, n, i);
        size_t old = push_idx(r, i);
        char *name = nd->ifaces[i];

        rc = get_str(r, it, name, 16, 1);
        if (!rc && (strpbrk(name, "/: \t") || !strcmp(name, ".") || !strcmp(name, "..")))
            rc = fail(r, it, "%s is not an interface name; allowed: 1..15 characters without /, "
                      ": or spaces", describe(it).s);
        for (j = 0; !rc && j < (int)i; j++)
            if (!strcmp(nd->ifaces[j], name))
                rc = fail(r, it, "interface %s is listed twice; allowed: each interface once",
                          name);
        pop(r, old);
        if (rc)
            return rc;
        nd->n_ifaces = (int)i + 1;
    }
    return 0;
}

static int parse_node(struct rd *r, const yaml_node_t *n)
{
    struct xlb_cfg_node *nd = &r->c->node;
    struct map m;
    int rc, v;

    if ((rc = collect(r, n, nd_keys, &m)))
        return rc;
    if (m.val[ND_IFACES] &&
        (rc = SUBTREE(r, &m, ND_IFACES, parse_ifaces(r, m.val[ND_IFACES], nd))))
        return rc;
    if ((rc = opt_enum(r, &m, ND_MODE, mode_nv, "xdp mode", &v)) < 0)
        return rc;
    if (rc == 1)
        nd->xdp_mode = v;
    if ((rc = opt_str(r, &m, ND_BPFFS, nd->bpffs, sizeof(nd->bpffs), 1)) < 0)
        return rc;
    if (rc == 1 && nd->bpffs[0] != '/')
        return fail_val(r, &m, ND_BPFFS, "%s is not an absolute path; allowed: a directory on a "
                        "bpf file system such as /sys/fs/bpf/xlb", describe(m.val[ND_BPFFS]).s);
    if (m.val[ND_TUNNEL] &&
        (rc = SUBTREE(r, &m, ND_TUNNEL, parse_tunnel(r, m.val[ND_TUNNEL], nd))))
        return rc;
    if ((rc = opt_u16(r, &m, ND_GUE, 1, 65535, &nd->gue_port)) < 0 ||
        (rc = opt_u32(r, &m, ND_CONNS, 1000, 100000000, &nd->conn_table_size)) < 0 ||
        (rc = opt_dur(r, &m, ND_REBAL, 100, 60000, &nd->rebalance_ms)) < 0 ||
        (rc = opt_u32(r, &m, ND_FLOOD, 0, 100000000, &nd->flood_threshold)) < 0 ||
        (rc = opt_dur(r, &m, ND_UDPIDLE, 1000, 86400000, &nd->udp_idle_ms)) < 0)
        return rc;
    if (m.val[ND_METRICS] &&
        (rc = SUBTREE(r, &m, ND_METRICS, parse_endpoint(r, m.val[ND_METRICS], &nd->metrics,
                                                        NULL, 0))))
        return rc;
    if (m.val[ND_API] &&
        (rc = SUBTREE(r, &m, ND_API, parse_endpoint(r, m.val[ND_API], &nd->api,
                                                    nd->api_token_file,
                                                    sizeof(nd->api_token_file)))))
        return rc;
    if (nd->metrics.set && nd->api.set && nd->metrics.port == nd->api.port &&
        addr_eq(nd->metrics.family, &nd->metrics.addr, nd->api.family, &nd->api.addr))
        return fail_val(r, &m, m.val[ND_API] ? ND_API : ND_METRICS, "the api and metrics "
                        "listen on the same address and port; allowed: two different ports");
    if (m.val[ND_DENY] &&
        (rc = SUBTREE(r, &m, ND_DENY, get_prefixes(r, m.val[ND_DENY], 0, &nd->deny.deny,
                                                   &nd->deny.n_deny))))
        return rc;
    return 0;
}

/* ------------------------------------------------------------------ */
/* proxy                                                                */

static void proxy_defaults(struct xlb_cfg_proxy *p)
{
    parse_listen("127.0.0.1:9122", &p->metrics);
    strcpy(p->access_log, "stderr");
    strcpy(p->cookie_key_file, "/etc/xlb/cookie.key");
    p->client_header_ms = 10000;
    p->client_body_ms = 30000;
    p->keepalive_ms = 60000;
    p->connect_ms = 3000;
    p->response_ms = 60000;
    p->upstream_idle_ms = 30000;
    p->max_request_line = 8192;
    p->max_header_size = 32768;
    p->max_header_count = 100;
    p->max_body_size = 1ull << 30;
    p->pool_max_idle = 64;
    p->retries = 2;
    p->fail_after = 1;
    p->fail_ms = 10000;
}

enum { PT_CHEADER, PT_CBODY, PT_KEEPALIVE, PT_CONNECT, PT_RESPONSE, PT_UIDLE, PT__N };
static const char *const pt_keys[] = {
    "client_header", "client_body", "keepalive", "upstream_connect", "upstream_response",
    "upstream_idle", NULL,
};

static int parse_proxy_timeouts(struct rd *r, const yaml_node_t *n, struct xlb_cfg_proxy *p)
{
    struct map m;
    int rc;

    if ((rc = collect(r, n, pt_keys, &m)))
        return rc;
    if ((rc = opt_dur(r, &m, PT_CHEADER, 100, HOUR_MS, &p->client_header_ms)) < 0 ||
        (rc = opt_dur(r, &m, PT_CBODY, 100, HOUR_MS, &p->client_body_ms)) < 0 ||
        (rc = opt_dur(r, &m, PT_KEEPALIVE, 100, HOUR_MS, &p->keepalive_ms)) < 0 ||
        (rc = opt_dur(r, &m, PT_CONNECT, 10, 600000, &p->connect_ms)) < 0 ||
        (rc = opt_dur(r, &m, PT_RESPONSE, 100, 24 * HOUR_MS, &p->response_ms)) < 0 ||
        (rc = opt_dur(r, &m, PT_UIDLE, 100, HOUR_MS, &p->upstream_idle_ms)) < 0)
        return rc;
    return 0;
}

enum { PL_LINE, PL_HEAD, PL_COUNT, PL_BODY, PL__N };
static const char *const pl_keys[] = {
    "request_line", "header_size", "header_count", "body_size", NULL,
};

static int parse_proxy_limits(struct rd *r, const yaml_node_t *n, struct xlb_cfg_proxy *p)
{
    uint64_t v;
    struct map m;
    int rc;

    if ((rc = collect(r, n, pl_keys, &m)))
        return rc;
    if ((rc = opt_size(r, &m, PL_LINE, 256, 1 << 20, &v)) < 0)
        return rc;
    if (rc == 1)
        p->max_request_line = (uint32_t)v;
    if ((rc = opt_size(r, &m, PL_HEAD, 1024, 1 << 20, &v)) < 0)
        return rc;
    if (rc == 1)
        p->max_header_size = (uint32_t)v;
    if ((rc = opt_u32(r, &m, PL_COUNT, 8, 1000, &p->max_header_count)) < 0 ||
        (rc = opt_size(r, &m, PL_BODY, 0, UINT64_MAX, &p->max_body_size)) < 0)
        return rc;
    if (p->max_request_line > p->max_header_size)
        return fail_val(r, &m, m.val[PL_LINE] ? PL_LINE : PL_HEAD, "request_line (%u bytes) is "
                        "larger than header_size (%u bytes); allowed: request_line <= "
                        "header_size", p->max_request_line, p->max_header_size);
    return 0;
}

enum { PU_IDLE, PU_RETRIES, PU_FAILAFTER, PU_FAILTIME, PU__N };
static const char *const pu_keys[] = { "max_idle", "retries", "fail_after", "fail_time", NULL };

static int parse_proxy_upstream(struct rd *r, const yaml_node_t *n, struct xlb_cfg_proxy *p)
{
    struct map m;
    int rc;

    if ((rc = collect(r, n, pu_keys, &m)))
        return rc;
    if ((rc = opt_u32(r, &m, PU_IDLE, 0, 100000, &p->pool_max_idle)) < 0 ||
        (rc = opt_u32(r, &m, PU_RETRIES, 0, 16, &p->retries)) < 0 ||
        (rc = opt_u32(r, &m, PU_FAILAFTER, 1, 1000, &p->fail_after)) < 0 ||
        (rc = opt_dur(r, &m, PU_FAILTIME, 100, HOUR_MS, &p->fail_ms)) < 0)
        return rc;
    return 0;
}

enum { PX_WORKERS, PX_METRICS, PX_ALOG, PX_KEY, PX_TRUSTED, PX_TIMEOUTS, PX_LIMITS, PX_UPSTREAM,
       PX__N };
static const char *const px_keys[] = {
    "workers", "metrics", "access_log", "cookie_key_file", "trusted_proxies", "timeouts",
    "limits", "upstream", NULL,
};

static int parse_proxy(struct rd *r, const yaml_node_t *n)
{
    struct xlb_cfg_proxy *p = &r->c->proxy;
    struct map m;
    int rc;

    if ((rc = collect(r, n, px_keys, &m)))
        return rc;
    if ((rc = opt_u32(r, &m, PX_WORKERS, 0, 256, &p->workers)) < 0)
        return rc;
    if (m.val[PX_METRICS] &&
        (rc = SUBTREE(r, &m, PX_METRICS, parse_endpoint(r, m.val[PX_METRICS], &p->metrics,
                                                        NULL, 0))))
        return rc;
    if ((rc = opt_str(r, &m, PX_ALOG, p->access_log, sizeof(p->access_log), 1)) < 0)
        return rc;
    if (rc == 1 && strcmp(p->access_log, "stderr") && strcmp(p->access_log, "off") &&
        p->access_log[0] != '/')
        return fail_val(r, &m, PX_ALOG, "%s is not a log destination; allowed: stderr, off or "
                        "an absolute file path", describe(m.val[PX_ALOG]).s);
    if ((rc = opt_str(r, &m, PX_KEY, p->cookie_key_file, sizeof(p->cookie_key_file), 1)) < 0)
        return rc;
    if (rc == 1 && p->cookie_key_file[0] != '/')
        return fail_val(r, &m, PX_KEY, "%s is not an absolute path; allowed: a file such as "
                        "/etc/xlb/cookie.key", describe(m.val[PX_KEY]).s);
    if (m.val[PX_TRUSTED] &&
        (rc = SUBTREE(r, &m, PX_TRUSTED, get_prefixes(r, m.val[PX_TRUSTED], 0, &p->trusted.allow,
                                                      &p->trusted.n_allow))))
        return rc;
    if (m.val[PX_TIMEOUTS] &&
        (rc = SUBTREE(r, &m, PX_TIMEOUTS, parse_proxy_timeouts(r, m.val[PX_TIMEOUTS], p))))
        return rc;
    if (m.val[PX_LIMITS] &&
        (rc = SUBTREE(r, &m, PX_LIMITS, parse_proxy_limits(r, m.val[PX_LIMITS], p))))
        return rc;
    if (m.val[PX_UPSTREAM] &&
        (rc = SUBTREE(r, &m, PX_UPSTREAM, parse_proxy_upstream(r, m.val[PX_UPSTREAM], p))))
        return rc;
    return 0;
}

/* ------------------------------------------------------------------ */
/* entry points                                                         */

enum { RT_NODE, RT_PROXY, RT_SERVICES, RT__N };
static const char *const rt_keys[] = { "node", "proxy", "services", NULL };

static int parse_root(struct rd *r, const yaml_node_t *n)
{
    struct map m;
    int rc;

    if ((rc = collect(r, n, rt_keys, &m)))
        return rc;
    if (m.val[RT_NODE] && (rc = SUBTREE(r, &m, RT_NODE, parse_node(r, m.val[RT_NODE]))))
        return rc;
    if (m.val[RT_PROXY] && (rc = SUBTREE(r, &m, RT_PROXY, parse_proxy(r, m.val[RT_PROXY]))))
        return rc;
    if (m.val[RT_SERVICES] &&
        (rc = SUBTREE(r, &m, RT_SERVICES, parse_services(r, m.val[RT_SERVICES]))))
        return rc;
    return 0;
}

/* A libyaml error as the one error line, at the problem's position. */
static int yaml_fail(struct rd *r, const yaml_parser_t *p, const char *text, size_t len)
{
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1, i, n;

    if (p->error == YAML_MEMORY_ERROR)
        return oom(r);
    r->failed = true;
    if (p->error == YAML_READER_ERROR) {
        line = col = 1;
        for (i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    if (!r->err || !r->errlen)
        return -EINVAL;
    n = (size_t)snprintf(r->err, r->errlen, "%s:%zu:%zu: YAML syntax error: %s", r->file, line,
                         col, p->problem ? p->problem : "unknown problem");
    if (n < r->errlen && p->error == YAML_READER_ERROR && p->problem_value >= 0)
        n += (size_t)snprintf(r->err + n, r->errlen - n, " (byte 0x%02x)", p->problem_value);
    if (n < r->errlen && p->context)
        snprintf(r->err + n, r->errlen - n, " (%s at line %zu, column %zu)", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    return -EINVAL;
}

int xlb_config_parse(const char *name, const char *text, size_t len, struct xlb_config **out,
                     char *err, size_t errlen)
{
    struct rd r = { .file = name ? name : "(config)", .err = err, .errlen = errlen };
    const yaml_node_t *root;
    yaml_document_t doc, more;
    yaml_parser_t p;
    int rc;

    if (out)
        *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!text || !out)
        return -EINVAL;
    r.c = calloc(1, sizeof(*r.c));
    if (!r.c)
        return oom(&r);
    snprintf(r.c->path, sizeof(r.c->path), "%s", r.file);
    node_defaults(&r.c->node);
    proxy_defaults(&r.c->proxy);
    if (!yaml_parser_initialize(&p)) {
        free(r.c);
        return oom(&r);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        rc = yaml_fail(&r, &p, text, len);
        goto out;
    }
    r.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (!root) {
        yaml_mark_t start = { 0, 0, 0 };

        rc = fail_mark(&r, &start, "the configuration is empty; allowed: a mapping with node "
                       "and services");
    } else {
        rc = parse_root(&r, root);
    }
    if (!rc) {
        if (!yaml_parser_load(&p, &more)) {
            rc = yaml_fail(&r, &p, text, len);
        } else {
            if (yaml_document_get_root_node(&more))
                rc = fail_mark(&r, &more.start_mark, "a second YAML document; allowed: one "
                               "document per file");
            yaml_document_delete(&more);
        }
    }
    yaml_document_delete(&doc);
out:
    yaml_parser_delete(&p);
    if (rc) {
        xlb_config_free(r.c);
        return rc;
    }
    *out = r.c;
    return 0;
}

int xlb_config_load(const char *path, struct xlb_config **out, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc;

    if (out)
        *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!path || !out)
        return -EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (fstat(fd, &st)) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > FILE_MAX) {
        rc = -EFBIG;
        if (err && errlen)
            snprintf(err, errlen, "%s: %jd bytes; allowed: at most %u", path,
                     (intmax_t)st.st_size, FILE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    rc = xlb_config_parse(path, buf, got, out, err, errlen);
    goto out;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

static void free_service(struct xlb_cfg_service *s)
{
    int i;

    free(s->ports);
    free(s->acl.allow);
    free(s->acl.deny);
    free(s->reals);
    free(s->tls.certs);
    free(s->compression.types);
    for (i = 0; s->subs && i < s->n_subs; i++)
        free(s->subs[i].reals);
    free(s->subs);
}

void xlb_config_free(struct xlb_config *c)
{
    int i;

    if (!c)
        return;
    for (i = 0; c->services && i < c->n_services; i++)
        free_service(&c->services[i]);
    free(c->services);
    free(c->node.deny.allow);
    free(c->node.deny.deny);
    free(c->proxy.trusted.allow);
    free(c);
}

/* ------------------------------------------------------------------ */
/* reload equality                                                      */

static bool persist_equal(const struct xlb_cfg_persistence *a, const struct xlb_cfg_persistence *b)
{
    return a->type == b->type && a->timeout_ms == b->timeout_ms && a->netmask4 == b->netmask4 &&
           a->netmask6 == b->netmask6 && a->fallback == b->fallback &&
           !strcmp(a->name, b->name) && a->share_by_address == b->share_by_address &&
           a->cookie_secure == b->cookie_secure && a->cookie_httponly == b->cookie_httponly &&
           !strcmp(a->cookie_samesite, b->cookie_samesite);
}

static bool prefixes_equal(const struct xlb_cfg_prefix *a, int na, const struct xlb_cfg_prefix *b,
                           int nb)
{
    int i;

    if (na != nb)
        return false;
    for (i = 0; i < na; i++)
        if (a[i].plen != b[i].plen || !addr_eq(a[i].family, &a[i].addr, b[i].family, &b[i].addr))
            return false;
    return true;
}

bool xlb_cfg_service_dp_equal(const struct xlb_cfg_service *a, const struct xlb_cfg_service *b)
{
    if (!a || !b)
        return a == b;
    return addr_eq(a->family, &a->addr, b->family, &b->addr) && a->n_ports == b->n_ports &&
           (!a->n_ports || !memcmp(a->ports, b->ports, (size_t)a->n_ports * sizeof(*a->ports))) &&
           a->protocols == b->protocols && a->layer == b->layer &&
           a->forwarding == b->forwarding && a->scheduler == b->scheduler &&
           a->drop_on_failure == b->drop_on_failure && a->slow_start_ms == b->slow_start_ms &&
           a->ring_size == b->ring_size && !strcmp(a->adaptive_path, b->adaptive_path) &&
           a->adaptive_port == b->adaptive_port &&
           a->adaptive_interval_ms == b->adaptive_interval_ms &&
           persist_equal(&a->persistence, &b->persistence) &&
           prefixes_equal(a->acl.allow, a->acl.n_allow, b->acl.allow, b->acl.n_allow) &&
           prefixes_equal(a->acl.deny, a->acl.n_deny, b->acl.deny, b->acl.n_deny);
}
