/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * agent.h - xlb-agent's runtime state: the config in force, one record per
 * layer-4 service and per (service, real) pair with its health, operator
 * state and data-plane slot, and the calls that keep the data plane equal to
 * that state.
 *
 * Layer-7 services have no data-plane slot: each pool of reals (the
 * service's own, named "SERVICE", and each sub-service's, "SERVICE/SUB") is
 * a record with l7 set whose reals are checked and commanded like layer-4
 * ones, and whose state goes into the pinned xlb_l7_reals map that
 * xlb-proxy reads (bpf/xlb_abi.h).
 *
 * Everything runs on one libuv loop.  A health-check decision, an operator
 * command and a reload all end in agent_apply_service(), which writes the
 * real's flags and installs a new selection table before returning, so the
 * data plane follows a decision within the same loop iteration.
 */
#ifndef XLB_AGENT_H
#define XLB_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "xlb_config.h"
#include "xlb_loader.h"
#include "xlb_httpd.h"
#include "xlb_prom.h"
#include "check.h"
#include "xlb_sched.h"

enum agent_admin { ADMIN_NONE = 0, ADMIN_DRAIN, ADMIN_HALT };

/* What an operator sees: halt > down > drain > up. */
enum agent_state { RS_UP = 0, RS_DOWN, RS_DRAIN, RS_HALT };

struct agent;
struct agent_service;

/* A shared layer-3 (ICMP) check of one address: its failure takes the
 * address out of every service that has it as a real. */
struct agent_icmp {
    uint8_t family;
    struct xlb_addr addr;
    struct xlb_check *check;
    struct xlb_cfg_hc spec;     /* what it was started with */
    struct agent *agent;
    bool up;
    bool used;                  /* mark for reloads */
};

struct agent_real {
    struct xlb_cfg_real cfg;
    struct agent_service *svc;
    uint32_t real_id;           /* slot in xlb_reals */
    uint32_t weight;            /* configured, or set by the operator */
    bool weight_set;            /* weight comes from the operator */
    enum agent_admin admin;
    bool admin_by_operator;     /* admin came from xlbctl, not from `enabled: false` */
    bool check_up;              /* the service's own (layer 4/7) check */
    struct xlb_check *check;    /* NULL for type none and icmp */
    struct xlb_cfg_hc hc_used;  /* what check was started with */
    uint16_t hc_port;
    struct agent_icmp *icmp;    /* the address's ICMP check, if any service has one */
    uint32_t active;            /* active flows at the last scan */
    int load;                   /* adaptive: last load read, -1 = none */
    bool fetching;
    double rt_ms;               /* wrt: smoothed check response time */
    uint64_t usable_since_ms;   /* slow start origin */
    bool was_up;                /* up at the last table build (slow start origin) */
    uint32_t eff_weight;        /* what the scheduler gave it last */
    uint32_t dp_flags;          /* xlb_real.flags as last written */
    uint32_t dp_weight;
    bool in_dp;
    struct agent_real *prev;    /* during a reload: the record this one replaces */
    uint64_t next_fetch_ms;     /* adaptive: loop time of the next load fetch */
    uint64_t state_change_ms;   /* wall clock of the last state change */
    double last_apply_us;       /* decision -> data plane, last change */
    /* layer 7: the xlb_l7_reals entry as last written */
    bool l7_written;
    uint32_t l7_state;          /* enum xlb_l7_state */
    uint32_t l7_gen;
    struct xlb_prom_hist hist;  /* check durations, seconds */
};

/* Longest pool name: "SERVICE/SUB". */
#define AGENT_POOL_NAME_LEN (2 * XLB_NAME_LEN + 2)

struct agent_service {
    struct xlb_cfg_service *cfg;    /* points into agent->cfg */
    struct agent *agent;
    char name[AGENT_POOL_NAME_LEN]; /* cfg->name, or "SERVICE/SUB" for a sub-service pool */
    bool l7;                    /* a layer-7 pool: state in xlb_l7_reals, no vs_id */
    const struct xlb_cfg_sub *sub;  /* layer 7: the sub-service, NULL for the own reals */
    const struct xlb_cfg_hc *hc;    /* the check in force: cfg->hc or sub->hc */
    enum xlb_cfg_sched scheduler;   /* cfg's or sub's */
    const struct xlb_cfg_persistence *persistence;
    uint32_t vs_id;             /* layer 4 only */
    const struct xlb_sched *sched;
    int n_reals;
    struct agent_real **reals;  /* each allocated alone: checks keep pointers */
    uint32_t table_len;
    uint64_t prev_new_flows;    /* lc/wlc: rate estimate */
    uint32_t expected_new;
    uint64_t tables_built;
    bool dirty;                 /* the last write failed: retry */
};

struct agent {
    uv_loop_t *loop;
    struct xlb_config *cfg;
    char *cfg_text;             /* the file in force, as read */
    size_t cfg_len;
    char cfg_path[XLB_CFG_PATH_MAX];
    struct xlb_dp *dp;
    struct xlb_maps maps;
    bool maps_owned;            /* maps opened from pins rather than dp */
    int l7_fd;                  /* xlb_l7_reals, pinned in node.bpffs; -1 = none */
    uint32_t l7_map_id;
    uint64_t l7_write_errors;
    int l7_cmd_fd;              /* xlb_l7_cmds, pinned next to it; -1 = none */
    uint32_t l7_cmd_map_id;
    int n_services;
    struct agent_service **services;
    int n_icmp;
    struct agent_icmp **icmp;
    struct xlb_httpd *metrics_srv, *api_srv;
    char token[128];
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t rebalance, wrt, adaptive;
    uint64_t reloads_ok, reloads_failed;
    bool last_reload_ok;
    double last_reload_time;    /* seconds since the epoch */
    char last_reload_error[1024];
    uint32_t *active_buf;       /* XLB_MAX_REALS, for scans */
    struct xlb_reals_snap *snap;    /* xlb_reals during a converge */
    uint64_t scan_ms;           /* when active counts were read */
    bool stopping;
};

/* Load the config, open (or adopt) the data plane, converge, start checks,
 * timers and listeners.  Returns 0 or -errno with a sentence in err. */
int agent_start(struct agent *a, uv_loop_t *loop, const char *cfg_path, char *err, size_t errlen);
/* Stop everything; the data plane keeps forwarding. */
void agent_stop(struct agent *a);
/* Read cfg_path again; on success converge to it, else keep the running
 * config.  Returns 0 or -errno with the reason in err. */
int agent_reload(struct agent *a, char *err, size_t errlen);

struct agent_service *agent_find_service(struct agent *a, const char *name);
struct agent_real *agent_find_real(struct agent_service *s, const char *name_or_addr);
enum agent_state agent_real_state(const struct agent_real *r);
const char *agent_state_name(enum agent_state s);
bool agent_real_usable(const struct agent_real *r);

/* Operator commands; each writes the data plane before returning. */
int agent_set_admin(struct agent_real *r, enum agent_admin admin, char *err, size_t errlen);
int agent_set_weight(struct agent_real *r, uint32_t weight, char *err, size_t errlen);

/* Count active flows per real and rebuild the tables that depend on them
 * (every rebalance interval). */
void agent_rebalance(struct agent *a);

/* Recompute the service's table and the real flags and write them; for a
 * layer-7 pool, write the xlb_l7_reals entry of each of its reals. */
int agent_apply_service(struct agent_service *s, char *err, size_t errlen);

/* The xlb_l7_reals key of a layer-7 real (zero-padded). */
void agent_l7_key(const struct agent_real *r, struct xlb_l7_key *k);
/* Open the pinned xlb_l7_reals of bpffs, or create and pin it when it is
 * missing or has another layout.  Returns an fd or -errno with err set. */
int agent_l7_map_open(const char *bpffs, uint32_t *map_id, char *err, size_t errlen);
/* The same for xlb_l7_cmds, the proxy's command map (cache flush/purge). */
int agent_l7_cmd_map_open(const char *bpffs, uint32_t *map_id, char *err, size_t errlen);

/* Cache commands of a layer-7 service (cfg is its config).  url NULL or ""
 * flushes the whole cache, else purges that URL (checked by the caller).
 * Writes the xlb_l7_cmds entry with the generation after the one the map
 * holds (1 when new) and the wall clock; returns 0 with *gen set or -errno
 * with err set. */
int agent_cache_command(struct agent *a, const struct xlb_cfg_service *cfg, const char *url,
                        uint64_t *gen, char *err, size_t errlen);

/* HTTP handlers (api.c, metrics.c). */
void agent_metrics_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp, void *arg);
void agent_api_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp, void *arg);
int agent_metrics_write(struct agent *a, struct xlb_buf *b);
/* The status page (status.c), on the API listener without the token: answers
 * its own paths (/, /status, /status.css, /status.js) and returns true. */
bool agent_status_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp);

/* Logging: syslog-style level words on stderr. */
void agent_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define LOG_ERR_ 3
#define LOG_WARN_ 4
#define LOG_INFO_ 6
#define LOG_DEBUG_ 7
extern int agent_log_level;

#endif
