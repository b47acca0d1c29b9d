/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb_http1.h - an incremental, non-allocating HTTP/1.x message parser,
 * strict per RFC 9112, for the L7 proxy (both directions).
 *
 * The parser never allocates and never copies.  A message head (start line
 * and header fields) is parsed from a caller-owned buffer that the caller
 * appends received bytes to; xlb_h1_head() is called after every append and
 * resumes where it stopped, so a head split at any byte boundary parses
 * exactly as the whole one.  Header fields are reported as offsets into that
 * buffer in a caller-provided array.  A body is then decoded in place by
 * xlb_h1_body(), which says how many input bytes belong to the body (framing
 * included, so a proxy may forward them as they are) and where the payload
 * bytes are (so a consumer may decode chunked framing).
 *
 * Strictness.  What a proxy must refuse to avoid request smuggling and
 * response splitting is an error, never "repaired":
 *   - bare LF anywhere in the head, CR not followed by LF, NUL or other
 *     control characters in the start line, header names or values (HTAB is
 *     allowed inside values);
 *   - obs-fold (a field line starting with SP or HTAB), whitespace between a
 *     field name and its colon, an empty or non-token field name;
 *   - a request line that is not exactly METHOD SP TARGET SP HTTP/1.x CRLF
 *     (token method, visible-ASCII target), a version other than 1.0/1.1
 *     (505 for HTTP/2+ or 0.9-style lines);
 *   - Content-Length that is not 1*DIGIT, overflows, or appears twice (even
 *     with the same value, and also as a list "5, 5");
 *   - Transfer-Encoding together with Content-Length; in a request, a
 *     Transfer-Encoding whose codings are not exactly "chunked" (501) or any
 *     Transfer-Encoding in an HTTP/1.0 request; chunked appearing twice or not
 *     last;
 *   - an HTTP/1.1 request without exactly one Host field, or two Host fields
 *     in any request;
 *   - chunk sizes that are empty, not hex, longer than 15 hex digits, or
 *     followed by anything but an optional chunk-ext (";" token ["=" token /
 *     quoted-string], optional BWS around ";" and "=") and CRLF; missing CRLF
 *     after chunk data; malformed trailer fields (same rules as header
 *     fields);
 *   - limits exceeded: start line (414 for a request, 502-class for a
 *     response), header block size or header count (431).
 * A response whose Transfer-Encoding does not end in chunked is delimited by
 * the connection close (XLB_H1_BODY_EOF), as RFC 9112 section 6.3 says.
 */
#ifndef XLB_HTTP1_H
#define XLB_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xlb_h1_kind { XLB_H1_REQUEST = 0, XLB_H1_RESPONSE = 1 };

/* Limits; xlb_h1_limits_default() gives the documented defaults. */
struct xlb_h1_limits {
    uint32_t max_start_line;    /* request/status line without CRLF; default 8192 */
    uint32_t max_head;          /* start line + fields + final CRLF; default 32768 */
    uint32_t max_headers;       /* field lines; default 100; at most the size of the
                                 * array given to xlb_h1_init() */
    uint64_t max_body;          /* payload bytes (decoded); 0 = no limit (default) */
};
void xlb_h1_limits_default(struct xlb_h1_limits *l);

/* A slice of the head buffer. */
struct xlb_h1_str {
    uint32_t off, len;
};

struct xlb_h1_field {
    struct xlb_h1_str name;     /* as received (case kept) */
    struct xlb_h1_str value;    /* leading and trailing SP/HTAB removed */
};

enum xlb_h1_framing {
    XLB_H1_BODY_NONE = 0,       /* no body (also: HEAD responses, 1xx, 204, 304) */
    XLB_H1_BODY_LENGTH,         /* content_length bytes (may be 0) */
    XLB_H1_BODY_CHUNKED,
    XLB_H1_BODY_EOF,            /* response: until the connection closes */
};

/* Parse outcomes.  Negative values are errors. */
enum xlb_h1_rc {
    XLB_H1_OK = 0,              /* a head is complete / a body is complete */
    XLB_H1_MORE = 1,            /* need more bytes */
    XLB_H1_ERR = -1,            /* see xlb_h1_parser.error and .status */
};

/* Why a message was refused; xlb_h1_error_name() gives a short text. */
enum xlb_h1_error {
    XLB_H1_E_NONE = 0,
    XLB_H1_E_BARE_LF,           /* LF without CR, or CR without LF */
    XLB_H1_E_CTL,               /* control character in the start line or a field name */
    XLB_H1_E_METHOD,            /* empty or non-token method */
    XLB_H1_E_TARGET,            /* empty target or invalid character */
    XLB_H1_E_VERSION,           /* not HTTP/1.0 or HTTP/1.1 (status 505 when HTTP/x.y) */
    XLB_H1_E_STATUS_LINE,       /* response: not "HTTP/1.x DDD reason" */
    XLB_H1_E_LINE_TOO_LONG,     /* start line over max_start_line */
    XLB_H1_E_HEAD_TOO_LARGE,    /* head over max_head */
    XLB_H1_E_TOO_MANY_HEADERS,
    XLB_H1_E_OBS_FOLD,
    XLB_H1_E_FIELD_NAME,        /* empty, non-token, or whitespace before ':' */
    XLB_H1_E_FIELD_VALUE,       /* invalid character in a value (NUL, CTL but HTAB, DEL) */
    XLB_H1_E_CONTENT_LENGTH,    /* invalid, overflowing or repeated */
    XLB_H1_E_CL_AND_TE,         /* both Content-Length and Transfer-Encoding */
    XLB_H1_E_TE,                /* request: codings other than "chunked"; chunked twice
                                 * or not last; TE in an HTTP/1.0 request */
    XLB_H1_E_HOST,              /* HTTP/1.1 request without Host, or several Host */
    XLB_H1_E_CHUNK_SIZE,        /* bad chunk-size line or chunk-ext */
    XLB_H1_E_CHUNK_DATA,        /* no CRLF after chunk data */
    XLB_H1_E_TRAILER,           /* malformed trailer field */
    XLB_H1_E_BODY_TOO_LARGE,    /* payload over max_body */
    XLB_H1_E_STATE,             /* call out of order (a bug in the caller) */
};
const char *xlb_h1_error_name(enum xlb_h1_error e);

/* Everything a parsed head says.  Offsets are into the head buffer. */
struct xlb_h1_head {
    /* request */
    struct xlb_h1_str method, target;
    /* response */
    int status;                 /* 100..999 */
    struct xlb_h1_str reason;
    /* both */
    int version_minor;          /* 0 or 1 */
    uint32_t n_fields;
    struct xlb_h1_field *fields;    /* the array given to xlb_h1_init() */
    uint32_t head_len;          /* bytes of the buffer the head took, final CRLF included */
    enum xlb_h1_framing framing;
    uint64_t content_length;    /* XLB_H1_BODY_LENGTH */
    bool keep_alive;            /* by version and Connection (close / keep-alive) */
    bool expect_continue;       /* request: Expect: 100-continue */
    bool upgrade;               /* Connection: upgrade with an Upgrade field */
    int host_field;             /* request: index of the Host field, -1 = none */
    int connection_field;       /* index of the first Connection field, -1 = none */
};

/* Parser state.  Embed it; zero it with xlb_h1_init().  The fields below the
 * head are private to xlb_http1.c. */
struct xlb_h1_parser {
    struct xlb_h1_head head;
    enum xlb_h1_error error;    /* set when a call returned XLB_H1_ERR */
    int status;                 /* the status to answer an erroneous request with
                                 * (400, 413, 414, 431, 501, 505); for a response 502 */
    /* private */
    enum xlb_h1_kind kind;
    struct xlb_h1_limits lim;
    uint32_t max_fields;
    uint32_t pos;               /* head: bytes already scanned */
    uint32_t line_start;
    int state;
    bool head_request;          /* response to HEAD: no body */
    bool seen_cl, seen_te;
    uint64_t body_left;         /* LENGTH: bytes left; CHUNKED: bytes left in chunk */
    uint64_t body_total;
    uint32_t chunk_digits;
    uint32_t trailer_len, trailer_fields;
    uint32_t flags;             /* head: Connection tokens and fields seen */
};

/*
 * Prepare p for one message of the given kind.  fields is an array of
 * max_fields entries that receives the header fields (it must outlive the
 * head).  lim NULL means the defaults; lim->max_headers above max_fields is
 * lowered to max_fields.
 */
void xlb_h1_init(struct xlb_h1_parser *p, enum xlb_h1_kind kind, const struct xlb_h1_limits *lim,
                 struct xlb_h1_field *fields, uint32_t max_fields);

/* For a response: say that it answers a HEAD request (no body whatever the
 * fields say).  Call after xlb_h1_init(), before xlb_h1_head(). */
void xlb_h1_set_head_request(struct xlb_h1_parser *p, bool head);

/*
 * Parse the head from buf[0..len).  buf holds every byte received for this
 * message so far, starting at its first byte, and only grows between calls
 * (the same bytes at the same offsets).  Returns XLB_H1_MORE (call again
 * with more), XLB_H1_OK (p->head is complete; bytes after head.head_len are
 * the body or the next message) or XLB_H1_ERR.  For requests, empty lines
 * (CRLF) before the request line are skipped as RFC 9112 section 2.2 allows;
 * they count in head_len.  A Content-Length over lim->max_body is refused
 * here (XLB_H1_E_BODY_TOO_LARGE, status 413) with p->head filled in.  Once
 * the head is complete, further calls return XLB_H1_OK and change nothing.
 */
int xlb_h1_head(struct xlb_h1_parser *p, const char *buf, size_t len);

/*
 * Decode body bytes after a complete head.  in[0..len) are the next bytes of
 * the body stream (any split).  Sets *consumed to how many of them belong to
 * the body (framing included) and *data / *data_len to a run of payload
 * bytes inside in[0..*consumed) (possibly empty; call again with the rest to
 * get the next run; XLB_H1_MORE with *consumed < len means exactly that;
 * with len > 0 it always consumes at least one byte).  Returns XLB_H1_MORE
 * when the body continues past the input, XLB_H1_OK when the body ended
 * within *consumed bytes (for chunked: after the last chunk, the trailer
 * section and its CRLF), or XLB_H1_ERR.
 * XLB_H1_BODY_NONE bodies return XLB_H1_OK at once with nothing consumed;
 * XLB_H1_BODY_EOF bodies consume everything and return XLB_H1_MORE (the
 * caller ends them at the close).  With max_body, the payload bytes up to
 * it are passed and the first byte over it is an error (a chunk whose size
 * goes over it is refused at its size line).
 */
int xlb_h1_body(struct xlb_h1_parser *p, const char *in, size_t len, size_t *consumed,
                const char **data, size_t *data_len);

/* Helpers on a parsed head. */
/* Index of the first field named name (case-insensitive), from index from;
 * -1 when none. */
int xlb_h1_find(const struct xlb_h1_head *h, const char *buf, const char *name, uint32_t from);
/* Whether a comma-separated list value contains token tok (case-insensitive,
 * OWS around elements ignored). */
bool xlb_h1_list_has(const char *value, size_t len, const char *tok);
/* Case-insensitive comparison of a slice with a C string. */
bool xlb_h1_str_eq(const char *buf, struct xlb_h1_str s, const char *text);

#endif
