/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * compress.h - xlb-proxy's response compression: content-coding
 * negotiation, the eligibility rules, the rewrite of the response head, the
 * encoders (gzip, br, zstd) and the chunk framing of the compressed body.
 *
 * How the I/O core uses it, per response:
 *   1. enc = px_enc_choose(Accept-Encoding of the request) when the
 *      request came in; PX_ENC_IDENTITY means no compression.
 *   2. When the response head is parsed: compress when enc != IDENTITY and
 *      px_compress_eligible(); then write the status line, call
 *      px_compress_fields() for the fields, add "Transfer-Encoding:
 *      chunked" (and the Connection field) yourself, and the final CRLF.
 *      px_compress_fields() never writes Transfer-Encoding.
 *   3. The body: if framing is XLB_H1_BODY_LENGTH, content_length <=
 *      PX_ENC_ONESHOT_MAX and the whole payload sits in one contiguous
 *      buffer, px_enc_oneshot() into a buffer of px_enc_bound() bytes and
 *      send it as one chunk (libdeflate for gzip: about twice zlib's
 *      speed).  Otherwise px_enc_new() once, px_enc_run() on each run of
 *      payload bytes (xlb_h1_body() gives them), px_enc_run(finish=true)
 *      at the end of the body until it returns PX_ENC_END, px_enc_free().
 *      Each non-empty run of output is sent as one chunk:
 *      px_chunk_header() + data + "\r\n"; after the last, PX_CHUNK_LAST.
 *      px_enc_flush() pushes out what the encoder holds back, e.g. when
 *      the real stops sending for a while (event streams, slow pages).
 *
 * Memory.  Encoders are set up for bounded memory per stream; the peak of
 * the codec's allocations over a long stream (px_enc_mem() reports them):
 *           level 1     level 6     level 9
 *   gzip    262 KiB     262 KiB     262 KiB   (zlib, windowBits 31, memLevel 8)
 *   br      715 KiB     1.9 MiB     2.5 MiB   (PX_BR_LGWIN 16)
 *   zstd    521 KiB     650 KiB     650 KiB   (PX_ZSTD_WINDOWLOG 16)
 * Brotli's peak is mostly transient (block splitting at the end of each
 * meta-block).  px_enc_oneshot() uses per-thread compressors instead
 * (libdeflate: 200 KiB at level 1, 656 KiB at 2..9, per level used, once
 * per thread).
 */
#ifndef XLB_PX_COMPRESS_H
#define XLB_PX_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xlb_config.h"
#include "xlb_http1.h"
#include "xlb_httpd.h"

/* Content codings, in the order of the enum's values. */
enum px_enc {
    PX_ENC_IDENTITY = 0,        /* no compression */
    PX_ENC_GZIP,
    PX_ENC_BR,
    PX_ENC_ZSTD,
};

/* The coding's name as in Content-Encoding ("identity", "gzip", "br",
 * "zstd"). */
const char *px_enc_name(enum px_enc enc);

/*
 * Choose the coding of a response from the request's Accept-Encoding value
 * v[0..len) (present false: the request had no such field), per RFC 9110
 * section 12.5.3:
 *   - elements are "coding *(OWS ";" OWS param)", separated by commas with
 *     OWS; empty elements are skipped; codings are case-insensitive;
 *     "x-gzip" is gzip; codings other than gzip, br, zstd, identity and "*"
 *     are ignored;
 *   - "q=" (name case-insensitive) is the weight, default 1, 0..1 with at
 *     most three decimals; a malformed q value, a malformed element or
 *     "q" given twice make that element's weight 0 (a refusal); other
 *     parameters are ignored;
 *   - "*" gives its weight to every coding not listed (identity included);
 *   - a coding listed several times (gzip and x-gzip count as one) gets the
 *     lowest of its weights: a refusal anywhere wins;
 *   - no field, or an empty value: identity only;
 *   - the coding with the highest weight above 0 wins; ties go to br, then
 *     zstd, then gzip (server preference: smallest output first).  Identity
 *     wins only when its weight (explicit, else the one of "*", else 0) is
 *     strictly higher than the best coding's.
 * When no supported coding is acceptable, PX_ENC_IDENTITY is returned even
 * if identity itself was refused ("identity;q=0" or "*;q=0"): sending the
 * representation unchanged is then the only thing the proxy can do (RFC
 * 9110 allows it rather than a 415-style refusal for responses).
 */
enum px_enc px_enc_choose(const char *v, size_t len, bool present);

/*
 * Whether a response may be compressed (the coding being already chosen).
 * req / req_buf: the request head and its buffer; resp / resp_buf: the
 * response head and its buffer.  All of these must hold:
 *   - cfg->enabled;
 *   - the request is HTTP/1.1 (the compressed body is sent chunked, which
 *     an HTTP/1.0 client cannot read), its method neither HEAD nor CONNECT;
 *   - the request has no Range field;
 *   - neither the request nor the response has Cache-Control with the
 *     no-transform directive (in any Cache-Control field, as a list token);
 *   - the status is 2xx except 204 and 206;
 *   - the response has a body: framing not NONE, and for
 *     XLB_H1_BODY_LENGTH content_length >= cfg->min_size and > 0 (chunked or
 *     close-delimited bodies of unknown length are eligible);
 *   - no Content-Encoding field other than "identity" (every element of
 *     every such field is "identity");
 *   - exactly one Content-Type field whose media type (before ';', OWS
 *     trimmed, case-insensitive) matches one of cfg->types: "type/subtype"
 *     exactly, "type/[*]" any subtype of type, "[*]/[*]" anything (without
 *     the brackets, which only keep this comment open).
 */
bool px_compress_eligible(const struct xlb_cfg_compression *cfg, const char *req_buf,
                          const struct xlb_h1_head *req, const char *resp_buf,
                          const struct xlb_h1_head *resp);

/* Fields the caller drops itself (hop-by-hop ones, say); NULL: none. */
typedef bool (*px_field_skip_fn)(const char *buf, const struct xlb_h1_head *h,
                                 const struct xlb_h1_field *f, void *arg);

/*
 * Append to out the response's header fields as they must be sent with a
 * body compressed with enc (not IDENTITY): "Name: value\r\n" lines, in the
 * order received, except:
 *   - fields skip() says to drop are not written (and do not count below);
 *   - Content-Length, Transfer-Encoding, Content-Encoding (only "identity"
 *     can be there), Accept-Ranges (ranges of the compressed body would not
 *     mean what the real meant) and the digests of the old body
 *     (Content-MD5, Digest, Content-Digest, Repr-Digest) are dropped;
 *   - a strong ETag ("x") becomes weak (W/"x"); weak ones stay;
 *   - Vary: if a Vary field lists "*" or Accept-Encoding, all Vary fields
 *     stay as they are; else the first Vary field gets ", Accept-Encoding"
 *     appended (or becomes "Accept-Encoding" when empty);
 *   - after the fields: "Content-Encoding: <enc>", and "Vary:
 *     Accept-Encoding" when there was no Vary field.
 * The status line, Transfer-Encoding: chunked, Connection and the final
 * CRLF are the caller's.  Returns 0, -EINVAL (enc IDENTITY or out of
 * range) or -ENOMEM (out then holds part of the fields).
 */
int px_compress_fields(struct xlb_buf *out, const char *resp_buf, const struct xlb_h1_head *resp,
                       enum px_enc enc, px_field_skip_fn skip, void *arg);

/* ---- encoders ------------------------------------------------------------ */

/* Window of brotli streams (2^PX_BR_LGWIN bytes) and of zstd streams. */
#define PX_BR_LGWIN         16
#define PX_ZSTD_WINDOWLOG   16

/* Bodies up to this size (known, in one buffer) go to px_enc_oneshot(). */
#define PX_ENC_ONESHOT_MAX  (256 * 1024)

/* px_enc_run() / px_enc_flush() results besides a negative errno. */
#define PX_ENC_AGAIN        0   /* call again (more input, or more output room) */
#define PX_ENC_END          1   /* run: the stream is finished; flush: all out */

struct px_enc_stream;

/*
 * A streaming encoder for enc (GZIP, BR or ZSTD) at level 1..9 (clamped):
 * gzip is zlib's deflate at that level (a standard gzip stream, windowBits
 * 31, memLevel 8); br uses quality = level with a 2^PX_BR_LGWIN window;
 * zstd uses the level with windowLog PX_ZSTD_WINDOWLOG and hash / chain
 * tables bounded to fit that window.  NULL with errno EINVAL (bad enc) or
 * ENOMEM.
 */
struct px_enc_stream *px_enc_new(enum px_enc enc, int level);

/*
 * Compress: consume input from in[0..in_len) and write output to
 * out[0..out_cap); *in_used and *out_len say how much of each was used
 * (either may be 0).  Without finish the encoder may keep input back and
 * return PX_ENC_AGAIN with *in_used == in_len; give it the next input.
 * With finish, the input given is the last: call again (with in + *in_used,
 * in_len - *in_used: no new bytes after finish) and fresh output room
 * until it returns PX_ENC_END, after which the stream only returns
 * PX_ENC_END with nothing written.  Returns PX_ENC_AGAIN, PX_ENC_END,
 * -EINVAL (NULL stream) or -EIO (the codec failed; the stream is dead).
 */
int px_enc_run(struct px_enc_stream *s, const char *in, size_t in_len, size_t *in_used, char *out,
               size_t out_cap, size_t *out_len, bool finish);

/*
 * Push out every byte of the input given so far, so that the receiver can
 * decode all of it (zlib sync flush, brotli / zstd flush), writing to
 * out[0..out_cap).  Returns PX_ENC_END when done (call it again only after
 * more input), PX_ENC_AGAIN when out was too small (call again with fresh
 * room), or -EIO.  Costs a few bytes of ratio each time; not after finish.
 */
int px_enc_flush(struct px_enc_stream *s, char *out, size_t out_cap, size_t *out_len);

/* Bytes the stream's codec holds now (and its peak in *peak if not NULL),
 * the stream struct included. */
size_t px_enc_mem(const struct px_enc_stream *s, size_t *peak);

/* Release a stream; NULL is fine. */
void px_enc_free(struct px_enc_stream *s);

/* ---- whole-buffer compression -------------------------------------------- */

/* Output room px_enc_oneshot() may need for len input bytes (0 for a bad
 * enc). */
size_t px_enc_bound(enum px_enc enc, size_t len);

/*
 * Compress in[0..len) as one complete stream into out[0..cap), the size in
 * *out_len: gzip with libdeflate (a standard gzip member), br with
 * BrotliEncoderCompress (same quality and window as the streams), zstd
 * with ZSTD_compress2 (the streams' parameters, content size in the
 * frame).  The compressors are kept per thread and reused; call
 * px_enc_thread_cleanup() when a thread that used this ends.  Returns 0,
 * -EINVAL (bad enc), -ENOSPC (cap too small: give px_enc_bound() bytes),
 * -ENOMEM or -EIO.
 */
int px_enc_oneshot(enum px_enc enc, int level, const char *in, size_t len, char *out, size_t cap,
                   size_t *out_len);

/* Free this thread's px_enc_oneshot() compressors. */
void px_enc_thread_cleanup(void);

/* ---- chunked framing ----------------------------------------------------- */

/* Longest chunk-size line px_chunk_header() writes, NUL included. */
#define PX_CHUNK_HEADER_MAX 20
/* The last chunk with an empty trailer section. */
#define PX_CHUNK_LAST       "0\r\n\r\n"
#define PX_CHUNK_LAST_LEN   5
/* What follows every chunk's data. */
#define PX_CHUNK_END        "\r\n"
#define PX_CHUNK_END_LEN    2

/* Write the chunk-size line of a chunk of len bytes (> 0; 0 would be the
 * last chunk, PX_CHUNK_LAST) as "%zx\r\n" to buf (PX_CHUNK_HEADER_MAX
 * bytes); returns its length. */
size_t px_chunk_header(char *buf, size_t len);

#endif
