/*
 * fixtures.h - the packet fixture table of the balancer tests.
 *
 * Each row describes one input frame, the verdict and xlb_reasons entry it
 * must get, and the output frame: an expected-output builder, or NULL for
 * "byte-identical to the input".  The rows are written against one set of
 * services (xt_world_setup()), each with a single real server and a
 * hand-made selection table, so that the real of every row is known.
 *
 * The same table drives the forwarding test, the truncation test and the
 * decap round trip.
 */
#ifndef XLBT_FIXTURES_H
#define XLBT_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

struct xt_fixture;

/* Frames pkt_build() cannot describe: returns the length written. */
typedef size_t (*xt_build_fn)(const struct xt_fixture *f, uint8_t *buf);
/* Build the expected output of f for input `in` into exp (XT_FRAME_MAX);
 * may read the actual output for the flow-hash fields (see xt_entropy). */
typedef size_t (*xt_expect_fn)(const struct xt_fixture *f, const uint8_t *in, size_t ilen,
                               const struct xt_out *out, uint8_t *exp);

struct xt_fixture {
    const char *desc;

    /* The input: a pkt_spec made of these fields (MACs: client ->
     * xlbtveth0), or build() when set. */
    const char *src, *dst;
    uint8_t proto;
    uint16_t sport, dport;      /* ICMP: echo id, sequence */
    uint8_t tcp_flags;
    uint8_t icmp_type, icmp_code;
    uint8_t tos;
    uint8_t ttl;
    uint8_t ip_opts_len;
    uint16_t ip_id, frag_off;
    int n_vlan;
    struct pkt_vlan vlan[2];
    size_t payload_len;
    size_t pad_to;              /* zero bytes appended up to this length */
    xt_build_fn build;

    /* The expectation. */
    int verdict;                /* XDP_* */
    uint32_t reason;            /* the one xlb_reasons entry it counts in */
    xt_expect_fn expect;        /* NULL: output identical to the input */
    const char *real;           /* xt_exp_encap: the outer destination */
    bool gue;                   /* xt_exp_encap: GUE rather than IP-in-IP */
    int egress;                 /* xt_exp_encap: MACs of the next hop on
                                 * xlbtveth0 (0) or xlbtveth2 (2); -1: the
                                 * input's MACs are kept */
};

extern struct xt_fixture xt_fixtures[];
extern const size_t xt_n_fixtures;

/* The encapsulated frame for f->real (see xt_expect_encap()). */
size_t xt_exp_encap(const struct xt_fixture *f, const uint8_t *in, size_t ilen,
                    const struct xt_out *out, uint8_t *exp);
/* The ICMP echo reply to f. */
size_t xt_exp_echo(const struct xt_fixture *f, const uint8_t *in, size_t ilen,
                   const struct xt_out *out, uint8_t *exp);

/* The input frame of f, into buf (XT_FRAME_MAX). */
size_t xt_fixture_build(const struct xt_fixture *f, uint8_t *buf);
/* The pkt_spec of f's input (not for rows with build()). */
struct pkt_spec xt_fixture_spec(const struct xt_fixture *f);

/*
 * Run f's input through lb and check everything the row states: the
 * verdict, the output byte for byte, exactly one count in f->reason (with
 * the frame's length as bytes) and none elsewhere, and for encapsulated
 * output the checksums and the flow-hash fields on their own.  The input
 * and the output are left in in/ilen and out.
 */
void xt_fixture_check(struct xt_lb *lb, const struct xt_fixture *f, uint8_t *in, size_t *ilen,
                      struct xt_out *out);

/* Load the balancer into lb and add the services and reals of the rows. */
void xt_world_setup(struct xt_lb *lb);

/* Every real server of the world: the tunnel endpoints for decap. */
extern const char *const xt_world_reals[];
extern const int xt_n_world_reals;

#endif
