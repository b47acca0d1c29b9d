/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tls.h - xlb-proxy's TLS layer (OpenSSL 3), independent of libuv: the I/O
 * core moves ciphertext between a socket and a struct px_tls, and plaintext
 * between the px_tls and the HTTP code.  Nothing here blocks or touches a
 * socket.
 *
 * Objects:
 *   px_tls_srv  one per layer-7 service with tls: its certificates (one
 *               SSL_CTX per certificate file, chosen by SNI), the session
 *               cache and the session-ticket keys.  Shared by every worker.
 *   px_tls_cli  one per process (or per CA file): re-encryption to reals.
 *   px_tls      one per connection, used by one thread at a time.
 *
 * A connection's buffers are allocated once, at px_tls_accept/connect: an
 * input ring of PX_TLS_IN_SIZE bytes of ciphertext not yet decrypted and an
 * output ring of PX_TLS_OUT_SIZE bytes of ciphertext not yet sent.  Calls
 * copy into and out of them and never allocate.
 *
 * The I/O core's loop (any order is fine; every call makes what progress
 * it can, the handshake included):
 *
 *   socket readable:  p = px_tls_in_buf(t, &room) (or a buffer of its own
 *                     and px_tls_in(), which may accept less than given);
 *                     read at most room bytes into p; px_tls_in_commit(t, n).
 *                     room 0: the input ring is full, stop reading the
 *                     socket until px_tls_read() made room.
 *   plaintext wanted: px_tls_read() until it returns 0 (needs more input)
 *                     or a negative PX_TLS_* code, or the caller's buffer
 *                     is full.
 *   plaintext to send: px_tls_write(); it may take fewer bytes than given
 *                     (output ring full, or handshake not finished: 0);
 *                     offer the rest again, starting with the same bytes,
 *                     after output was sent.
 *   after every call: n = px_tls_out(t, &p); if n > 0 write p[0..n) to the
 *                     socket and, when that write completed, call
 *                     px_tls_out_done(t, n).  p stays valid and unchanged
 *                     until px_tls_out_done(); do not call px_tls_out()
 *                     again while a write of its bytes is in flight.
 *   after out_done:   call px_tls_read()/px_tls_write() again if they
 *                     stopped for lack of output room.
 *
 * Errors are negative PX_TLS_* codes (negative errnos, distinct for the
 * cases the I/O core handles differently).  After an error, px_tls_out()
 * may still hold an alert for the peer: send it if convenient, then close.
 */
#ifndef XLB_PX_TLS_H
#define XLB_PX_TLS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xlb_config.h"

/* Per-connection ring sizes (ciphertext).  The output ring bounds what a
 * px_tls_write() accepts before the socket took it. */
#define PX_TLS_IN_SIZE  (32 * 1024)
#define PX_TLS_OUT_SIZE (48 * 1024)

/* Session-ticket keys: a new key every period; tickets of the previous key
 * are still accepted (and renewed) for one more period. */
#define PX_TLS_TICKET_PERIOD_MS (3600u * 1000u)

/* Return codes of px_tls_read/write/in/handshake. */
#define PX_TLS_CLOSED    (-ESHUTDOWN)   /* the peer sent close_notify: clean end */
#define PX_TLS_PLAINTEXT (-EPROTONOSUPPORT) /* first bytes are not a TLS record:
                                             * plain HTTP on the TLS port? */
#define PX_TLS_ERROR     (-EPROTO)      /* any other failure: px_tls_error() says why */

struct px_tls_srv;
struct px_tls_cli;
struct px_tls;

/* Handshake counters of a px_tls_srv (or px_tls_cli), all workers.
 * ok counts every completed handshake, resumed the part of them that
 * resumed a session (ticket or cache).  A failed handshake counts once,
 * in one of the fail_* fields. */
struct px_tls_stats {
    uint64_t ok, resumed;
    uint64_t fail_plaintext;    /* first byte not a TLS handshake record */
    uint64_t fail_version;      /* no common protocol version (TLS 1.0/1.1, min 1.3) */
    uint64_t fail_cipher;       /* no shared cipher suite / group / signature scheme */
    uint64_t fail_verify;       /* client side: the real's certificate did not verify */
    uint64_t fail_other;        /* malformed input, alerts from the peer, ... */
    uint64_t sni_miss;          /* SNI named no certificate: the first one served */
    uint64_t sni_none;          /* no SNI: the first certificate served */
};

/* ---- server side --------------------------------------------------------- */

/*
 * Build the TLS state of layer-7 service svc_name from cfg: load every
 * certificate file (PEM: the certificate, its private key and its
 * intermediates, in one file; one SSL_CTX each), or, when cfg->n_certs is
 * 0, generate a self-signed EC P-256 certificate for CN and DNS name
 * svc_name valid one year, with a warning in the log.  Protocols TLS 1.2
 * and 1.3 (cfg->min_version "1.3": 1.3 only), ECDHE with AES-GCM or
 * ChaCha20-Poly1305, server cipher preference, ALPN "http/1.1", a shared
 * session cache and rotating session-ticket keys.
 * Returns 0 and *out, or -errno with a sentence naming the service and the
 * file in err.
 */
int px_tls_srv_new(const struct xlb_cfg_tls *cfg, const char *svc_name, struct px_tls_srv **out,
                   char *err, size_t errlen);
void px_tls_srv_free(struct px_tls_srv *s);         /* NULL is fine; no px_tls may remain */

/* Start a new ticket key now: the current one becomes the previous one (still
 * accepted), the previous one is forgotten.  Also happens by itself every
 * PX_TLS_TICKET_PERIOD_MS (px_now_ms clock).  Thread-safe. */
void px_tls_srv_rotate_keys(struct px_tls_srv *s);

/* A snapshot of the counters.  Thread-safe. */
void px_tls_srv_stats(const struct px_tls_srv *s, struct px_tls_stats *out);

/* Number of certificates served and the names (DNS SANs, or the CN without
 * them) of certificate i, for logs; NULL past the end. */
int px_tls_srv_n_certs(const struct px_tls_srv *s);
const char *px_tls_srv_cert_name(const struct px_tls_srv *s, int i, int j);

/* A new server-side connection (accept).  Returns 0 and *out, -ENOMEM. */
int px_tls_accept(struct px_tls_srv *s, struct px_tls **out);

/* ---- client side (re-encryption to reals) -------------------------------- */

/*
 * Client settings: TLS 1.2+, ALPN "http/1.1", and, when ca_file is not "",
 * verification of the real's chain against ca_file and of its name.
 * Returns 0 and *out, or -errno with a sentence naming ca_file in err.
 */
int px_tls_cli_new(const char *ca_file, struct px_tls_cli **out, char *err, size_t errlen);
void px_tls_cli_free(struct px_tls_cli *c);         /* NULL is fine; no px_tls may remain */
void px_tls_cli_stats(const struct px_tls_cli *c, struct px_tls_stats *out);

/*
 * A new client-side connection to a real called name (a host name, sent as
 * SNI and verified against the certificate's DNS names, or an IPv4/IPv6
 * literal, not sent as SNI and verified against its IP addresses; NULL or
 * "": no SNI, no name check).  Call px_tls_handshake() to queue the
 * ClientHello.  Returns 0 and *out, -ENOMEM or -EINVAL.
 */
int px_tls_connect(struct px_tls_cli *c, const char *name, struct px_tls **out);

/* ---- per connection ------------------------------------------------------ */

void px_tls_free(struct px_tls *t);                 /* NULL is fine */

/* Network bytes in: copy up to len bytes of cipher into the input ring.
 * Returns the number taken (less than len when the ring is full: feed the
 * rest after px_tls_read()), or PX_TLS_PLAINTEXT / PX_TLS_ERROR. */
ssize_t px_tls_in(struct px_tls *t, const char *cipher, size_t len);

/* Zero-copy variant: *room bytes (0: full) may be written at the returned
 * pointer, then px_tls_in_commit() says how many were.  No other px_tls
 * call may come between the two. */
char *px_tls_in_buf(struct px_tls *t, size_t *room);
int px_tls_in_commit(struct px_tls *t, size_t n);   /* 0, PX_TLS_PLAINTEXT, -EINVAL */

/* Drive the handshake: 1 done, 0 in progress (send px_tls_out, feed input),
 * or a negative PX_TLS_* code.  px_tls_read/write drive it too; a client
 * calls this once after connecting so that its ClientHello is queued. */
int px_tls_handshake(struct px_tls *t);
bool px_tls_handshake_done(const struct px_tls *t);

/* Plaintext out: up to len bytes into buf.  Returns > 0 bytes, 0 when more
 * input is needed (or output room, for a handshake message), PX_TLS_CLOSED
 * once the peer's close_notify came (after the data before it), or
 * PX_TLS_PLAINTEXT / PX_TLS_ERROR. */
ssize_t px_tls_read(struct px_tls *t, char *buf, size_t len);

/* Plaintext in: encrypts up to len bytes of buf into the output ring.
 * Returns the number taken (0 while the handshake is not done or the ring
 * is full), or a negative PX_TLS_* code (-EPIPE after px_tls_shutdown).
 * Bytes not taken must be offered again, starting with the same bytes. */
ssize_t px_tls_write(struct px_tls *t, const char *buf, size_t len);

/* Whether px_tls_read() may give more without new input: plaintext or
 * ciphertext is buffered, or it has the end or a failure to report.  False
 * saves a call that would return 0. */
bool px_tls_readable(struct px_tls *t);

/* Encrypt the n pieces bufs[i][0..lens[i]) as one record, when together
 * they fit in one (16 KiB) and the output ring takes it whole: a response
 * head and a small body cost one record, not two.  Returns the total taken
 * (all of it), 0 when that does not apply (nothing taken: use
 * px_tls_write() on each), or a negative PX_TLS_* code. */
ssize_t px_tls_write_gather(struct px_tls *t, const char *const *bufs, const size_t *lens, int n);

/* Ciphertext to send: the pending output's first contiguous part; see the
 * top of this file for the pointer's lifetime. */
size_t px_tls_out(struct px_tls *t, const char **p);
void px_tls_out_done(struct px_tls *t, size_t n);

/* Queue close_notify (once; later writes fail with -EPIPE; nothing is sent
 * after a failure or before the handshake finished).  If the output ring is
 * full it is queued by a later px_tls_out_done().  Send px_tls_out, then
 * close: waiting for the peer's close_notify is not needed.  Returns 0. */
int px_tls_shutdown(struct px_tls *t);

/* After the handshake: "TLSv1.3" / "TLSv1.2", the cipher suite's name,
 * whether a session was resumed, the SNI name received (server) or sent
 * (client) or NULL, and the ALPN protocol agreed ("http/1.1") or "". */
const char *px_tls_version(const struct px_tls *t);
const char *px_tls_cipher(const struct px_tls *t);
bool px_tls_resumed(const struct px_tls *t);
const char *px_tls_sni(const struct px_tls *t);
const char *px_tls_alpn(const struct px_tls *t);

/* Why the last PX_TLS_ERROR/PLAINTEXT happened ("" before one). */
const char *px_tls_error(const struct px_tls *t);

/* Whether p[0..n) may be the start of a plain HTTP/1 request ("GET / ...";
 * an uppercase token followed by a space), so that the I/O core can answer
 * 400 to a client that spoke HTTP to the TLS port. */
bool px_tls_looks_like_http(const char *p, size_t n);

#endif
