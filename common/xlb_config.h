/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_config.h - the node's configuration model and its YAML reader.
 *
 * One YAML file describes the node and every virtual service, layer 4 and
 * layer 7 (docs/config.md is the schema reference, etc/xlb.yaml a commented
 * example).  xlb-agent and xlb-proxy both read it through xlb_config_load(),
 * which validates strictly: an unknown key, a wrong type, a value out of
 * range, a duplicate name, two services claiming one (address, port,
 * protocol) or an impossible combination is an error that names
 * FILE:LINE:COLUMN, the key path (services[2].reals[0].weight) and what is
 * allowed.  Nothing is half-loaded: on error the caller gets no config.
 *
 * Durations are stored in milliseconds, sizes in bytes.  Every field has its
 * documented default filled in by the reader, so consumers never test for
 * "unset" except where a field says so.
 */
#ifndef XLB_CONFIG_H
#define XLB_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "xlb_abi.h"

#define XLB_CFG_MAX_IFACES 16
#define XLB_CFG_PATH_MAX 256
#define XLB_CFG_STR_MAX 256

enum xlb_cfg_fwd { XLB_CFG_FWD_IPIP = 1, XLB_CFG_FWD_GUE, XLB_CFG_FWD_DSR, XLB_CFG_FWD_NAT };

/* The scheduler names of the config; agent/sched.h maps each to its code. */
enum xlb_cfg_sched {
    XLB_SCHED_RR = 1, XLB_SCHED_WRR, XLB_SCHED_LC, XLB_SCHED_WLC, XLB_SCHED_ADAPTIVE,
    XLB_SCHED_FIXED, XLB_SCHED_WRT, XLB_SCHED_SH, XLB_SCHED_MAGLEV,
};

enum xlb_cfg_hc_type {
    XLB_HC_NONE = 0, XLB_HC_ICMP, XLB_HC_TCP, XLB_HC_HTTP, XLB_HC_HTTPS, XLB_HC_FTP,
    XLB_HC_SMTP, XLB_HC_POP3, XLB_HC_IMAP, XLB_HC_NNTP, XLB_HC_TELNET, XLB_HC_DNS,
    XLB_HC_GENERIC,
};

enum xlb_cfg_persist {
    XLB_PERSIST_NONE = 0, XLB_PERSIST_SOURCE_IP,
    /* layer 7 only */
    XLB_PERSIST_ACTIVE_COOKIE, XLB_PERSIST_SERVER_COOKIE, XLB_PERSIST_HASH_COOKIES,
    XLB_PERSIST_SUPER_HTTP, XLB_PERSIST_URL_HASH, XLB_PERSIST_HOST, XLB_PERSIST_QUERY_ITEM,
    XLB_PERSIST_HEADER,
};

/* The cookie active-cookie persistence inserts when no `cookie` is given. */
#define XLB_CFG_COOKIE_DEFAULT "XLBID"

/* protocol: bit set */
#define XLB_CFG_PROTO_TCP 1u
#define XLB_CFG_PROTO_UDP 2u

struct xlb_cfg_listen {
    bool set;                   /* false: the feature is off */
    uint8_t family;             /* XLB_FAMILY_V4 / V6 */
    struct xlb_addr addr;
    uint16_t port;
};

/* Status ranges: a status s passes when lo <= s <= hi for one range. */
struct xlb_cfg_status_range {
    uint16_t lo, hi;
};
#define XLB_CFG_MAX_STATUS 16

struct xlb_cfg_hc {
    enum xlb_cfg_hc_type type;  /* default tcp (a connect to the check port) */
    uint16_t port;              /* 0 = the real's port, else the service's first port */
    uint32_t interval_ms;       /* default 5s, 100ms .. 1h */
    uint32_t timeout_ms;        /* default 3s, 10ms .. interval */
    uint32_t rise, fall;        /* default 2, 3; 1 .. 100 */
    /* http / https */
    char method[8];             /* "HEAD" (default) or "GET" */
    char path[XLB_CFG_STR_MAX]; /* default "/" */
    char host[XLB_CFG_STR_MAX]; /* "" = the real's address; with it HTTP/1.1 */
    bool http10;                /* http_version: "1.0" (default "1.1") */
    int n_status;               /* default: 200-299, 301, 302, 401 */
    struct xlb_cfg_status_range status[XLB_CFG_MAX_STATUS];
    char expect_body[XLB_CFG_STR_MAX];  /* negotiate: "" = not checked */
    bool tls_verify;            /* https: verify the real's certificate (default false) */
    char tls_ca[XLB_CFG_PATH_MAX];
    /* dns */
    char dns_name[XLB_CFG_STR_MAX];     /* default "localhost." */
    /* generic: bytes to send, pattern expected within expect_within bytes */
    uint8_t send[XLB_CFG_STR_MAX];
    size_t send_len;
    uint8_t expect[XLB_CFG_STR_MAX];
    size_t expect_len;
    uint32_t expect_within;     /* default 1024 */
};

struct xlb_cfg_persistence {
    enum xlb_cfg_persist type;
    uint32_t timeout_ms;        /* 1m .. 7d, default 5m */
    uint8_t netmask4;           /* netmask: prefix length, default 32 (v4) / 128 (v6) */
    uint8_t netmask6;
    enum xlb_cfg_persist fallback;  /* NONE or SOURCE_IP */
    char name[XLB_CFG_STR_MAX];     /* cookie / item / header name where the type takes one */
    bool share_by_address;      /* port following: one table for services on one address */
    bool cookie_secure, cookie_httponly;    /* active-cookie; default true, true */
    char cookie_samesite[16];               /* "Lax" (default), "Strict", "None" */
};

struct xlb_cfg_prefix {
    uint8_t family, plen;
    struct xlb_addr addr;
};

struct xlb_cfg_acl {
    int n_allow, n_deny;
    struct xlb_cfg_prefix *allow, *deny;
};

struct xlb_cfg_real {
    char name[XLB_NAME_LEN];    /* default: the address as text */
    uint8_t family;
    struct xlb_addr addr;
    uint16_t port;              /* 0 = the client's destination port */
    uint32_t weight;            /* 0 .. 65535, default 100 */
    uint32_t max_conns;         /* 0 = no limit */
    bool tls;                   /* layer 7: re-encrypt to this real */
    bool enabled;               /* default true; false starts it halted */
    int line, column;           /* where it was defined, for messages */
};

struct xlb_cfg_match {          /* content switching; every set field must match */
    char path_prefix[XLB_CFG_STR_MAX];
    char path_regex[XLB_CFG_STR_MAX];
    char host[XLB_CFG_STR_MAX];
    char header_name[XLB_CFG_STR_MAX], header_value[XLB_CFG_STR_MAX];
    char method[16];
};

struct xlb_cfg_sub {
    char name[XLB_NAME_LEN];
    struct xlb_cfg_match match;
    enum xlb_cfg_sched scheduler;
    struct xlb_cfg_persistence persistence;
    struct xlb_cfg_hc hc;
    int n_reals;
    struct xlb_cfg_real *reals;
};

struct xlb_cfg_tls {
    bool enabled;
    int n_certs;
    char (*certs)[XLB_CFG_PATH_MAX];
    bool redirect_http;
    char min_version[8];        /* "1.2" (default) or "1.3" */
    char ca_file[XLB_CFG_PATH_MAX];     /* verify reals with tls: true against it */
};

struct xlb_cfg_compression {
    bool enabled;
    uint64_t min_size;          /* default 1KiB */
    int level;                  /* 1..9, default 6 */
    int n_types;
    char (*types)[64];          /* default text/[*], application/json, application/javascript */
};

struct xlb_cfg_cache {
    bool enabled;
    uint64_t max_size;          /* default 64MiB */
    uint64_t max_object;        /* default 1MiB */
    bool cache_query;           /* default false: URLs with a query are not cached */
};

struct xlb_cfg_service {
    char name[XLB_NAME_LEN];
    uint8_t family;
    struct xlb_addr addr;
    int n_ports;
    uint16_t *ports;            /* expanded from lists and "A-B" ranges, sorted, unique */
    uint32_t protocols;         /* XLB_CFG_PROTO_* bits, default tcp */
    int layer;                  /* 4 (default) or 7 */
    enum xlb_cfg_fwd forwarding;    /* layer 4; default ipip */
    enum xlb_cfg_sched scheduler;   /* default wrr */
    bool drop_on_failure;       /* default false */
    uint32_t slow_start_ms;     /* lc/wlc ramp time; 0 = off (default) */
    uint32_t ring_size;         /* selection table size for hash schedulers, prime;
                                 * default XLB_RING_DEFAULT */
    /* adaptive: the load file fetched from every real */
    char adaptive_path[XLB_CFG_STR_MAX];    /* default "/load" */
    uint16_t adaptive_port;                 /* default 80 */
    uint32_t adaptive_interval_ms;          /* default 5s */
    struct xlb_cfg_persistence persistence;
    struct xlb_cfg_acl acl;
    struct xlb_cfg_hc hc;
    int n_reals;
    struct xlb_cfg_real *reals;
    /* layer 7 */
    struct xlb_cfg_tls tls;
    struct xlb_cfg_compression compression;
    struct xlb_cfg_cache cache;
    bool forwarded_headers;
    int n_subs;
    struct xlb_cfg_sub *subs;
    int line, column;
};

struct xlb_cfg_node {
    int n_ifaces;
    char ifaces[XLB_CFG_MAX_IFACES][32];
    int xdp_mode;               /* enum xlb_mode of xlb_loader.h: auto (default) */
    char bpffs[XLB_CFG_PATH_MAX];       /* default XLB_BPFFS_DEFAULT */
    struct xlb_addr tunnel_src4, tunnel_src6;   /* all zero: not set */
    uint8_t tunnel_src4_plen, tunnel_src6_plen;
    uint16_t gue_port;          /* default XLB_GUE_PORT_DEFAULT */
    uint32_t conn_table_size;   /* default XLB_CONN_TABLE_DEFAULT */
    uint32_t rebalance_ms;      /* lc/wlc/max_conns re-evaluation, default 1s, 100ms..60s */
    uint32_t flood_threshold;   /* new flows per second and CPU above which flows are
                                 * forwarded by hash without entering the connection
                                 * table; 0 = off (default), 0..100000000 */
    uint32_t udp_idle_ms;       /* a UDP flow idle longer is placed again; default 30s,
                                 * 1s..1d */
    struct xlb_cfg_listen metrics;      /* default 127.0.0.1:9120 */
    struct xlb_cfg_listen api;          /* default 127.0.0.1:9121 */
    char api_token_file[XLB_CFG_PATH_MAX];  /* default /etc/xlb/api.token */
    struct xlb_cfg_acl deny;            /* node-wide deny list */
};

/* proxy: the settings of xlb-proxy (docs/proxy.md). */
struct xlb_cfg_proxy {
    uint32_t workers;           /* worker threads; 0 = one per core (default), 1..256 */
    struct xlb_cfg_listen metrics;      /* default 127.0.0.1:9122 */
    char access_log[XLB_CFG_PATH_MAX];  /* "stderr" (default), "off" or a file path */
    char cookie_key_file[XLB_CFG_PATH_MAX]; /* node key of active cookies; default
                                             * /etc/xlb/cookie.key, created when missing */
    struct xlb_cfg_acl trusted; /* trusted_proxies (in .allow): clients whose
                                 * X-Forwarded-For / Forwarded are kept and extended */
    /* timeouts */
    uint32_t client_header_ms;  /* first byte of a request to the end of its head; 10s */
    uint32_t client_body_ms;    /* the client makes no progress sending a request body or
                                 * reading a response; 30s */
    uint32_t keepalive_ms;      /* idle client connection between requests; 60s */
    uint32_t connect_ms;        /* upstream connect; 3s */
    uint32_t response_ms;       /* request sent to the response head, and a response
                                 * body makes no progress; 60s */
    uint32_t upstream_idle_ms;  /* a pooled upstream connection unused; 30s */
    /* limits */
    uint32_t max_request_line;  /* 8KiB */
    uint32_t max_header_size;   /* request line + fields; 32KiB */
    uint32_t max_header_count;  /* 100 */
    uint64_t max_body_size;     /* request body; 0 = no limit; default 1GiB */
    /* upstream */
    uint32_t pool_max_idle;     /* idle connections kept per real and worker; 64 */
    uint32_t retries;           /* other reals tried for an idempotent request whose
                                 * connection failed before any response byte; 2 */
    uint32_t fail_after;        /* consecutive connection failures that mark a real
                                 * failed; 1 */
    uint32_t fail_ms;           /* how long a failed real is not chosen; 10s */
};

struct xlb_config {
    char path[XLB_CFG_PATH_MAX];
    struct xlb_cfg_node node;
    struct xlb_cfg_proxy proxy;
    int n_services;
    struct xlb_cfg_service *services;
};

/*
 * Read and validate FILE.  Returns 0 and a config to free with
 * xlb_config_free(), or a negative errno with *out NULL and err holding one
 * line: "FILE:LINE:COLUMN: KEY.PATH: what is wrong; what is allowed".
 */
int xlb_config_load(const char *path, struct xlb_config **out, char *err, size_t errlen);
/* The same from a string; name stands for the file in messages. */
int xlb_config_parse(const char *name, const char *text, size_t len, struct xlb_config **out,
                     char *err, size_t errlen);
void xlb_config_free(struct xlb_config *c);

/* Value helpers, used by the reader and by xlbctl/API arguments. */
int xlb_parse_duration_ms(const char *s, uint64_t *ms);    /* "500ms" "5s" "10m" "2h" "7d" */
int xlb_parse_size(const char *s, uint64_t *bytes);         /* "512", "64KiB", "256MiB", "1GiB" */

const char *xlb_cfg_sched_name(enum xlb_cfg_sched s);
const char *xlb_cfg_fwd_name(enum xlb_cfg_fwd f);
const char *xlb_cfg_hc_name(enum xlb_cfg_hc_type t);
const char *xlb_cfg_persist_name(enum xlb_cfg_persist p);

/* Equality used by reloads: do two services program the data plane the same
 * way (everything but the reals and check settings)? */
bool xlb_cfg_service_dp_equal(const struct xlb_cfg_service *a, const struct xlb_cfg_service *b);

/*
 * Notes on values the reader fills in (docs/config.md has the schema):
 *   - forwarding is 0 on layer 7 services (xlb_cfg_fwd_name() says "none");
 *   - a real without `name` is named after its address text ("fd00::1");
 *   - sub-services without scheduler, persistence or health_check inherit
 *     the service's;
 *   - tunnel_src4/6_plen are 0 when the address is not set;
 *   - xlb_config_load() and xlb_config_parse() return -EINVAL for every
 *     configuration error, -ENOMEM, or the errno of reading the file.
 */

#endif
