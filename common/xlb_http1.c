// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb_http1 - the HTTP/1.x message parser of xlb_http1.h.
 *
 * The head is parsed line by line.  Each call first looks for the next LF
 * with memchr() from where the previous call stopped, so bytes of an
 * incomplete line are searched once; only when the LF is there is the line
 * itself validated and split, in one pass over it.  The outcome therefore
 * depends only on which lines are complete, never on how the bytes were
 * split across calls.  Everything is limited to the first max_head bytes:
 * a head whose end is not within them is refused (431), and a start line
 * with no LF within max_start_line + 1 bytes (its CR) is refused (414).
 *
 * Which error a bad line yields is fixed: first the line length (start line
 * only), then the CR before the LF, then the first offending byte from the
 * left.  A CR inside a line is reported as XLB_H1_E_BARE_LF, a control
 * character in the start line or a field name as XLB_H1_E_CTL, and any byte
 * a field value may not hold (NUL, other controls but HTAB, DEL) as
 * XLB_H1_E_FIELD_VALUE.
 *
 * Fields that decide the framing (Content-Length, Transfer-Encoding), Host,
 * Connection, Upgrade and Expect are interpreted as each line is parsed.
 *
 * A body is decoded by a byte-wise state machine for the chunked framing
 * (size lines, extensions, the CRLF after data, trailers) and by bulk steps
 * for payload runs.  Each call returns at most one payload run; a caller
 * that got XLB_H1_MORE with *consumed < len calls again with the rest.
 */
#include <string.h>

#include "xlb_http1.h"

/* Character classes. */
#define C_TCHAR 1               /* token character */
#define C_VCHAR 2               /* visible ASCII (request target) */
#define C_FVAL 4                /* field value: HTAB, SP, VCHAR, obs-text */
#define C_QDTEXT 8              /* quoted-string text */
#define C_HEX 16

static const unsigned char cls[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0, 12,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    12, 15,  6, 15, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 14,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 14, 14, 14, 14, 14, 14,
    14, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14,  6, 14, 15, 15,
    15, 31, 31, 31, 31, 31, 31, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 15, 14, 15,  0,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

/*
 * Word-at-a-time scans: whether any of the 8 bytes of w might stop a scan.
 * A flagged word is then looked at bytewise, so false positives (bytes above
 * a true one, through borrows) cost time only, never correctness.
 */
#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull

static inline uint64_t has_lt(uint64_t w, unsigned n)         /* a byte < n (n <= 0x80) */
{
    return (w - ONES * n) & ~w & HIGH;
}

static inline uint64_t has_del(uint64_t w)
{
    uint64_t x = w ^ (ONES * 0x7f);
    return (x - ONES) & ~x & HIGH;
}

/* First index in [i, end) whose 8-byte word holds a byte that is not
 * SP, VCHAR or obs-text (field value); the bytes before it are fine. */
static inline uint32_t skip_fval8(const char *buf, uint32_t i, uint32_t end)
{
    uint64_t w;

    for (; end - i >= 8; i += 8) {
        memcpy(&w, buf + i, 8);
        if (has_lt(w, 0x20) | has_del(w))
            break;
    }
    return i;
}

/* The same for visible ASCII (request target). */
static inline uint32_t skip_vchar8(const char *buf, uint32_t i, uint32_t end)
{
    uint64_t w;

    for (; end - i >= 8; i += 8) {
        memcpy(&w, buf + i, 8);
        if (has_lt(w, 0x21) | (w & HIGH) | has_del(w))
            break;
    }
    return i;
}

/* A chunk-size line (size and extensions) longer than this is refused. */
#define MAX_CHUNK_LINE 4096

/* p->flags while the head is parsed. */
#define F_CLOSE 1u              /* Connection: close */
#define F_KEEP_ALIVE 2u         /* Connection: keep-alive */
#define F_CONN_UPGRADE 4u       /* Connection: upgrade */
#define F_UPGRADE 8u            /* an Upgrade field */

enum {
    ST_START = 0,               /* before the start line */
    ST_FIELDS,                  /* field lines */
    ST_ERR,                     /* an error was reported; every call repeats it */
    /* head complete; body states */
    ST_DONE,
    ST_LENGTH,
    ST_EOF,
    ST_CSIZE,                   /* chunk-size digits */
    ST_CSIZE_WS,                /* BWS after the size, before ';' */
    ST_CEXT_NAME_WS,            /* after ';' */
    ST_CEXT_NAME,
    ST_CEXT_NAME_END,           /* BWS after an extension name */
    ST_CEXT_VAL_WS,             /* after '=' */
    ST_CEXT_VAL_TOK,
    ST_CEXT_VAL_Q,              /* inside a quoted-string */
    ST_CEXT_VAL_QP,             /* after a backslash in a quoted-string */
    ST_CEXT_VAL_END,            /* right after the closing quote */
    ST_CEXT_AFTER_VAL,          /* BWS after a value */
    ST_CSIZE_LF,                /* CR of the size line seen */
    ST_CDATA,
    ST_CDATA_CR,
    ST_CDATA_LF,
    ST_TR_START,                /* start of a trailer line */
    ST_TR_NAME,
    ST_TR_VALUE,
    ST_TR_LF,
    ST_TR_END_LF,               /* CR of the final empty line seen */
};

static const char *const error_names[] = {
    [XLB_H1_E_NONE] = "none",
    [XLB_H1_E_BARE_LF] = "bare LF or CR",
    [XLB_H1_E_CTL] = "control character",
    [XLB_H1_E_METHOD] = "bad method",
    [XLB_H1_E_TARGET] = "bad request target",
    [XLB_H1_E_VERSION] = "unsupported HTTP version",
    [XLB_H1_E_STATUS_LINE] = "bad status line",
    [XLB_H1_E_LINE_TOO_LONG] = "start line too long",
    [XLB_H1_E_HEAD_TOO_LARGE] = "header section too large",
    [XLB_H1_E_TOO_MANY_HEADERS] = "too many header fields",
    [XLB_H1_E_OBS_FOLD] = "obsolete line folding",
    [XLB_H1_E_FIELD_NAME] = "bad field name",
    [XLB_H1_E_FIELD_VALUE] = "bad field value",
    [XLB_H1_E_CONTENT_LENGTH] = "bad or repeated Content-Length",
    [XLB_H1_E_CL_AND_TE] = "Content-Length with Transfer-Encoding",
    [XLB_H1_E_TE] = "bad Transfer-Encoding",
    [XLB_H1_E_HOST] = "missing or repeated Host",
    [XLB_H1_E_CHUNK_SIZE] = "bad chunk size line",
    [XLB_H1_E_CHUNK_DATA] = "no CRLF after chunk data",
    [XLB_H1_E_TRAILER] = "bad trailer field",
    [XLB_H1_E_BODY_TOO_LARGE] = "body too large",
    [XLB_H1_E_STATE] = "parser call out of order",
};

/* A short English text for e; "unknown" for values outside the enum. */
const char *xlb_h1_error_name(enum xlb_h1_error e)
{
    if ((unsigned)e >= sizeof(error_names) / sizeof(error_names[0]) || !error_names[e])
        return "unknown";
    return error_names[e];
}

/* The documented defaults of struct xlb_h1_limits. */
void xlb_h1_limits_default(struct xlb_h1_limits *l)
{
    l->max_start_line = 8192;
    l->max_head = 32768;
    l->max_headers = 100;
    l->max_body = 0;
}

/* Reset p for a new message; see xlb_http1.h. */
void xlb_h1_init(struct xlb_h1_parser *p, enum xlb_h1_kind kind, const struct xlb_h1_limits *lim,
                 struct xlb_h1_field *fields, uint32_t max_fields)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    if (lim)
        p->lim = *lim;
    else
        xlb_h1_limits_default(&p->lim);
    if (p->lim.max_headers > max_fields)
        p->lim.max_headers = max_fields;
    p->max_fields = max_fields;
    p->head.fields = fields;
    p->head.host_field = -1;
    p->head.connection_field = -1;
    p->state = ST_START;
}

/* Mark a response parser as answering a HEAD request (no body). */
void xlb_h1_set_head_request(struct xlb_h1_parser *p, bool head)
{
    p->head_request = head;
}

/* Record error e with the status that answers it and return XLB_H1_ERR.
 * Every later call of xlb_h1_head() or xlb_h1_body() returns it again.  A
 * request's status is st, or when st is 0 the one that goes with e. */
static int fail_st(struct xlb_h1_parser *p, enum xlb_h1_error e, int st)
{
    if (p->kind == XLB_H1_RESPONSE) {
        st = 502;
    } else if (!st) {
        st = 400;
        switch (e) {
        case XLB_H1_E_LINE_TOO_LONG: st = 414; break;
        case XLB_H1_E_HEAD_TOO_LARGE:
        case XLB_H1_E_TOO_MANY_HEADERS: st = 431; break;
        case XLB_H1_E_BODY_TOO_LARGE: st = 413; break;
        default: break;
        }
    }
    p->error = e;
    p->status = st;
    p->state = ST_ERR;
    return XLB_H1_ERR;
}

static int fail(struct xlb_h1_parser *p, enum xlb_h1_error e)
{
    return fail_st(p, e, 0);
}

/* The error for an unexpected byte c: CR is a CR without LF, a control
 * character is XLB_H1_E_CTL, anything else is dflt. */
static enum xlb_h1_error byte_err(unsigned char c, enum xlb_h1_error dflt)
{
    if (c == '\r')
        return XLB_H1_E_BARE_LF;
    if (c < 0x20 || c == 0x7f)
        return XLB_H1_E_CTL;
    return dflt;
}

/* Whether buf[0..n) equals the lowercase token lc, ignoring ASCII case.
 * lc holds only lowercase letters, digits and '-'; buf holds token bytes. */
static bool tok_eq(const char *buf, size_t n, const char *lc, size_t lcn)
{
    if (n != lcn)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lc[i])
            return false;
    }
    return true;
}

#define TOK_EQ(b, n, lit) tok_eq((b), (n), lit, sizeof(lit) - 1)

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

/*
 * Step through a comma-separated list in v[*i..n): store the next non-empty
 * element (OWS trimmed) as offset *s and length *len, and advance *i past it
 * and its comma.
 * Returns false when no element is left.
 */
static bool list_next(const char *v, size_t n, size_t *i, size_t *s, size_t *len)
{
    while (*i < n) {
        size_t a = *i, b;
        while (a < n && (v[a] == ' ' || v[a] == '\t'))
            a++;
        b = a;
        while (b < n && v[b] != ',')
            b++;
        *i = b < n ? b + 1 : b;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a) {
            *s = a;
            *len = b - a;
            return true;
        }
    }
    return false;
}

/*
 * Classify the HTTP-version v[0..n): 0 or 1 for HTTP/1.0 and HTTP/1.1, -2
 * for another "HTTP/d" or "HTTP/d.d" (505), -1 for anything else.
 */
static int parse_version(const char *v, size_t n)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1'))
        return v[7] - '0';
    if (n >= 6 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' &&
        (n == 6 || (n == 8 && v[6] == '.' && v[7] >= '0' && v[7] <= '9')))
        return -2;
    return -1;
}

/* Parse the request line buf[s..ce) (ce is the CR).  0 or an error. */
static enum xlb_h1_error request_line(struct xlb_h1_parser *p, const char *buf, uint32_t s,
                                      uint32_t ce)
{
    uint32_t i = s, t;
    int v;

    while (i < ce && IS(buf[i], C_TCHAR))
        i++;
    if (i == ce || buf[i] != ' ')
        return i == ce ? XLB_H1_E_METHOD : byte_err(buf[i], XLB_H1_E_METHOD);
    if (i == s)
        return XLB_H1_E_METHOD;
    p->head.method = (struct xlb_h1_str){ s, i - s };
    t = ++i;
    i = skip_vchar8(buf, i, ce);
    while (i < ce && IS(buf[i], C_VCHAR))
        i++;
    if (i < ce && buf[i] != ' ')
        return byte_err(buf[i], XLB_H1_E_TARGET);
    if (i == t)
        return XLB_H1_E_TARGET;
    p->head.target = (struct xlb_h1_str){ t, i - t };
    if (i == ce) {              /* "GET /": HTTP/0.9 */
        p->status = 505;
        return XLB_H1_E_VERSION;
    }
    for (t = ++i; i < ce; i++)
        if (!IS(buf[i], C_VCHAR))
            return byte_err(buf[i], XLB_H1_E_VERSION);
    v = parse_version(buf + t, ce - t);
    if (v < 0) {
        if (v == -2)
            p->status = 505;
        return XLB_H1_E_VERSION;
    }
    p->head.version_minor = v;
    return XLB_H1_E_NONE;
}

/* Parse the status line buf[s..ce).  0 or an error. */
static enum xlb_h1_error status_line(struct xlb_h1_parser *p, const char *buf, uint32_t s,
                                     uint32_t ce)
{
    uint32_t i = s;
    int v, st = 0;

    while (i < ce && IS(buf[i], C_VCHAR))
        i++;
    if (i < ce && buf[i] != ' ')
        return byte_err(buf[i], XLB_H1_E_STATUS_LINE);
    if (i == s)
        return XLB_H1_E_STATUS_LINE;
    v = parse_version(buf + s, i - s);
    if (v < 0)
        return XLB_H1_E_VERSION;
    p->head.version_minor = v;
    if (i == ce)
        return XLB_H1_E_STATUS_LINE;
    i++;
    for (int k = 0; k < 3; k++, i++) {
        if (i == ce)
            return XLB_H1_E_STATUS_LINE;
        if (buf[i] < '0' || buf[i] > '9')
            return byte_err(buf[i], XLB_H1_E_STATUS_LINE);
        st = st * 10 + (buf[i] - '0');
    }
    if (st < 100)
        return XLB_H1_E_STATUS_LINE;
    p->head.status = st;
    /* RFC 9112 wants SP before an empty reason; its absence is harmless. */
    if (i < ce) {
        if (buf[i] != ' ')
            return byte_err(buf[i], XLB_H1_E_STATUS_LINE);
        for (s = ++i; i < ce; i++)
            if (!IS(buf[i], C_FVAL))
                return byte_err(buf[i], XLB_H1_E_STATUS_LINE);
        p->head.reason = (struct xlb_h1_str){ s, ce - s };
    } else {
        p->head.reason = (struct xlb_h1_str){ ce, 0 };
    }
    return XLB_H1_E_NONE;
}

/* Interpret a Content-Length value v[0..n).  0 or an error. */
static enum xlb_h1_error content_length(struct xlb_h1_parser *p, const char *v, size_t n)
{
    uint64_t x = 0;

    if (p->seen_te)
        return XLB_H1_E_CL_AND_TE;
    if (p->seen_cl || n == 0)
        return XLB_H1_E_CONTENT_LENGTH;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - '0';
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return XLB_H1_E_CONTENT_LENGTH;
        x = x * 10 + d;
    }
    p->seen_cl = true;
    p->head.content_length = x;
    return XLB_H1_E_NONE;
}

/*
 * Interpret a Transfer-Encoding value v[0..n).  While the head is parsed,
 * head.framing says CHUNKED when the last coding so far is chunked, EOF
 * when it is another one.  0 or an error.
 */
static enum xlb_h1_error transfer_encoding(struct xlb_h1_parser *p, const char *v, size_t n)
{
    size_t i = 0, s, len;
    bool any = false;

    if (p->seen_cl)
        return XLB_H1_E_CL_AND_TE;
    if (p->kind == XLB_H1_REQUEST && p->head.version_minor == 0)
        return XLB_H1_E_TE;
    p->seen_te = true;
    while (list_next(v, n, &i, &s, &len)) {
        any = true;
        if (p->head.framing == XLB_H1_BODY_CHUNKED)
            return XLB_H1_E_TE;                 /* chunked twice or not last */
        if (TOK_EQ(v + s, len, "chunked")) {
            p->head.framing = XLB_H1_BODY_CHUNKED;
        } else if (p->kind == XLB_H1_REQUEST) {
            p->status = 501;
            return XLB_H1_E_TE;
        } else {
            p->head.framing = XLB_H1_BODY_EOF;
        }
    }
    return any ? XLB_H1_E_NONE : XLB_H1_E_TE;
}

/* Interpret the field just stored at index idx.  0 or an error. */
static enum xlb_h1_error field_meaning(struct xlb_h1_parser *p, const char *buf, uint32_t idx)
{
    const struct xlb_h1_field *f = &p->head.fields[idx];
    const char *name = buf + f->name.off, *v = buf + f->value.off;
    size_t n = f->value.len, i = 0, s, len;
    bool req = p->kind == XLB_H1_REQUEST;

    switch (f->name.len) {
    case 4:
        if (req && TOK_EQ(name, 4, "host")) {
            if (p->head.host_field >= 0)
                return XLB_H1_E_HOST;
            p->head.host_field = (int)idx;
        }
        break;
    case 6:
        if (req && TOK_EQ(name, 6, "expect") && p->head.version_minor == 1 && n == 12 &&
            xlb_h1_str_eq(buf, f->value, "100-continue"))
            p->head.expect_continue = true;
        break;
    case 7:
        if (TOK_EQ(name, 7, "upgrade"))
            p->flags |= F_UPGRADE;
        break;
    case 10:
        if (TOK_EQ(name, 10, "connection")) {
            if (p->head.connection_field < 0)
                p->head.connection_field = (int)idx;
            while (list_next(v, n, &i, &s, &len)) {
                if (TOK_EQ(v + s, len, "close"))
                    p->flags |= F_CLOSE;
                else if (TOK_EQ(v + s, len, "keep-alive"))
                    p->flags |= F_KEEP_ALIVE;
                else if (TOK_EQ(v + s, len, "upgrade"))
                    p->flags |= F_CONN_UPGRADE;
            }
        }
        break;
    case 14:
        if (TOK_EQ(name, 14, "content-length"))
            return content_length(p, v, n);
        break;
    case 17:
        if (TOK_EQ(name, 17, "transfer-encoding"))
            return transfer_encoding(p, v, n);
        break;
    }
    return XLB_H1_E_NONE;
}

/* Parse the field line buf[s..ce) (not empty).  0 or an error. */
static enum xlb_h1_error field_line(struct xlb_h1_parser *p, const char *buf, uint32_t s,
                                    uint32_t ce)
{
    uint32_t i = s, vs, ve;
    struct xlb_h1_field *f;

    if (buf[s] == ' ' || buf[s] == '\t')
        return XLB_H1_E_OBS_FOLD;
    while (i < ce && IS(buf[i], C_TCHAR))
        i++;
    if (i == ce)
        return XLB_H1_E_FIELD_NAME;
    if (buf[i] != ':')
        return buf[i] == '\t' ? XLB_H1_E_FIELD_NAME : byte_err(buf[i], XLB_H1_E_FIELD_NAME);
    if (i == s)
        return XLB_H1_E_FIELD_NAME;
    ve = i++;
    while (i < ce && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    vs = i;
    for (i = skip_fval8(buf, i, ce); i < ce; i++)
        if (!IS(buf[i], C_FVAL))
            return buf[i] == '\r' ? XLB_H1_E_BARE_LF : XLB_H1_E_FIELD_VALUE;
    if (p->head.n_fields >= p->lim.max_headers)
        return XLB_H1_E_TOO_MANY_HEADERS;
    f = &p->head.fields[p->head.n_fields];
    f->name = (struct xlb_h1_str){ s, ve - s };
    while (i > vs && (buf[i - 1] == ' ' || buf[i - 1] == '\t'))
        i--;
    f->value = (struct xlb_h1_str){ vs, i - vs };
    return field_meaning(p, buf, p->head.n_fields++);
}

/* The head is complete at head_len: decide framing and connection use, and
 * set up the body state.  XLB_H1_OK or XLB_H1_ERR. */
static int head_done(struct xlb_h1_parser *p, uint32_t head_len)
{
    struct xlb_h1_head *h = &p->head;

    h->head_len = head_len;
    if (p->kind == XLB_H1_REQUEST) {
        if (h->version_minor == 1 && h->host_field < 0)
            return fail(p, XLB_H1_E_HOST);
        if (p->seen_te)
            h->framing = XLB_H1_BODY_CHUNKED;   /* anything else was refused */
        else
            h->framing = p->seen_cl ? XLB_H1_BODY_LENGTH : XLB_H1_BODY_NONE;
    } else if (p->head_request || h->status < 200 || h->status == 204 || h->status == 304) {
        h->framing = XLB_H1_BODY_NONE;
    } else if (!p->seen_te) {
        h->framing = p->seen_cl ? XLB_H1_BODY_LENGTH : XLB_H1_BODY_EOF;
    }
    if (h->framing != XLB_H1_BODY_LENGTH)
        h->content_length = 0;
    if (h->version_minor == 1)
        h->keep_alive = !(p->flags & F_CLOSE);
    else
        h->keep_alive = (p->flags & (F_CLOSE | F_KEEP_ALIVE)) == F_KEEP_ALIVE;
    if (h->framing == XLB_H1_BODY_EOF)
        h->keep_alive = false;
    h->upgrade = (p->flags & (F_CONN_UPGRADE | F_UPGRADE)) == (F_CONN_UPGRADE | F_UPGRADE);

    switch (h->framing) {
    case XLB_H1_BODY_NONE:
        p->state = ST_DONE;
        break;
    case XLB_H1_BODY_LENGTH:
        if (p->lim.max_body && h->content_length > p->lim.max_body)
            return fail(p, XLB_H1_E_BODY_TOO_LARGE);
        p->body_left = h->content_length;
        p->state = h->content_length ? ST_LENGTH : ST_DONE;
        break;
    case XLB_H1_BODY_CHUNKED:
        p->state = ST_CSIZE;
        p->body_left = 0;
        p->chunk_digits = 0;
        p->trailer_len = 0;
        break;
    case XLB_H1_BODY_EOF:
        p->state = ST_EOF;
        break;
    }
    return XLB_H1_OK;
}

/* Parse the head in buf[0..len); see xlb_http1.h.  Once the head is
 * complete, further calls return XLB_H1_OK and change nothing. */
int xlb_h1_head(struct xlb_h1_parser *p, const char *buf, size_t len)
{
    size_t end = len < p->lim.max_head ? len : p->lim.max_head;

    if (p->state == ST_ERR)
        return XLB_H1_ERR;
    if (p->state >= ST_DONE)
        return XLB_H1_OK;
    if (len < p->pos)
        return fail(p, XLB_H1_E_STATE);

    for (;;) {
        const char *lf = end > p->pos ? memchr(buf + p->pos, '\n', end - p->pos) : NULL;
        uint32_t s = p->line_start, e, ce;
        enum xlb_h1_error err;

        if (!lf) {
            p->pos = (uint32_t)end;
            if (p->state == ST_START && end - s > (size_t)p->lim.max_start_line + 1)
                return fail(p, XLB_H1_E_LINE_TOO_LONG);
            if (len > p->lim.max_head)
                return fail(p, XLB_H1_E_HEAD_TOO_LARGE);
            return XLB_H1_MORE;
        }
        e = (uint32_t)(lf - buf);
        p->pos = p->line_start = e + 1;
        if (p->state == ST_START && e - s > p->lim.max_start_line + 1)
            return fail(p, XLB_H1_E_LINE_TOO_LONG);
        if (e == s || buf[e - 1] != '\r')
            return fail(p, XLB_H1_E_BARE_LF);
        ce = e - 1;
        if (p->state == ST_START) {
            if (ce == s) {
                if (p->kind == XLB_H1_REQUEST)
                    continue;                   /* empty line before the request */
                return fail(p, XLB_H1_E_STATUS_LINE);
            }
            err = p->kind == XLB_H1_REQUEST ? request_line(p, buf, s, ce)
                                            : status_line(p, buf, s, ce);
            p->state = ST_FIELDS;
        } else if (ce == s) {
            return head_done(p, e + 1);
        } else {
            err = field_line(p, buf, s, ce);
        }
        if (err != XLB_H1_E_NONE)
            return fail_st(p, err, p->status);  /* 505 and 501 are set where found */
    }
}

/* Add n payload bytes to the total; an error when over max_body. */
static bool body_over(struct xlb_h1_parser *p, uint64_t n)
{
    if (p->lim.max_body && n > p->lim.max_body - p->body_total)
        return true;
    p->body_total += n;
    return false;
}

/* Decode chunked framing in in[0..len); see xlb_h1_body(). */
static int chunked(struct xlb_h1_parser *p, const char *in, size_t len, size_t *consumed,
                   const char **data, size_t *data_len)
{
    size_t i = 0;

    for (; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (p->state == ST_CDATA) {
            size_t n = len - i;
            if (n > p->body_left)
                n = (size_t)p->body_left;
            *data = in + i;
            *data_len = n;
            p->body_left -= n;
            if (!p->body_left)
                p->state = ST_CDATA_CR;
            *consumed = i + n;
            return XLB_H1_MORE;
        }
        if (p->state >= ST_CSIZE && p->state <= ST_CSIZE_LF && ++p->trailer_len > MAX_CHUNK_LINE)
            return fail(p, XLB_H1_E_CHUNK_SIZE);
        if (p->state >= ST_TR_START && ++p->trailer_len > p->lim.max_head)
            return fail(p, XLB_H1_E_TRAILER);

        switch (p->state) {
        case ST_CSIZE:
            if (IS(c, C_HEX)) {
                if (++p->chunk_digits > 15)
                    return fail(p, XLB_H1_E_CHUNK_SIZE);
                p->body_left = p->body_left << 4 | (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
                break;
            }
            if (!p->chunk_digits)
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            if (c == '\r')
                p->state = ST_CSIZE_LF;
            else if (c == ';')
                p->state = ST_CEXT_NAME_WS;
            else if (c == ' ' || c == '\t')
                p->state = ST_CSIZE_WS;
            else
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CSIZE_WS:
        case ST_CEXT_AFTER_VAL:
            if (c == ';')
                p->state = ST_CEXT_NAME_WS;
            else if (c != ' ' && c != '\t')
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_NAME_WS:
            if (IS(c, C_TCHAR))
                p->state = ST_CEXT_NAME;
            else if (c != ' ' && c != '\t')
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_NAME:
            if (IS(c, C_TCHAR))
                break;
            if (c == '\r')
                p->state = ST_CSIZE_LF;
            else if (c == ';')
                p->state = ST_CEXT_NAME_WS;
            else if (c == '=')
                p->state = ST_CEXT_VAL_WS;
            else if (c == ' ' || c == '\t')
                p->state = ST_CEXT_NAME_END;
            else
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_NAME_END:
            if (c == ';')
                p->state = ST_CEXT_NAME_WS;
            else if (c == '=')
                p->state = ST_CEXT_VAL_WS;
            else if (c != ' ' && c != '\t')
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_VAL_WS:
            if (c == '"')
                p->state = ST_CEXT_VAL_Q;
            else if (IS(c, C_TCHAR))
                p->state = ST_CEXT_VAL_TOK;
            else if (c != ' ' && c != '\t')
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_VAL_TOK:
        case ST_CEXT_VAL_END:
            if (p->state == ST_CEXT_VAL_TOK && IS(c, C_TCHAR))
                break;
            if (c == '\r')
                p->state = ST_CSIZE_LF;
            else if (c == ';')
                p->state = ST_CEXT_NAME_WS;
            else if (c == ' ' || c == '\t')
                p->state = ST_CEXT_AFTER_VAL;
            else
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_VAL_Q:
            if (c == '"')
                p->state = ST_CEXT_VAL_END;
            else if (c == '\\')
                p->state = ST_CEXT_VAL_QP;
            else if (!IS(c, C_QDTEXT))
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            break;
        case ST_CEXT_VAL_QP:
            if (!IS(c, C_FVAL))
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            p->state = ST_CEXT_VAL_Q;
            break;
        case ST_CSIZE_LF:
            if (c != '\n')
                return fail(p, XLB_H1_E_CHUNK_SIZE);
            p->trailer_len = 0;
            if (!p->body_left) {
                p->state = ST_TR_START;
                break;
            }
            if (body_over(p, p->body_left))
                return fail(p, XLB_H1_E_BODY_TOO_LARGE);
            p->state = ST_CDATA;
            break;
        case ST_CDATA_CR:
            if (c != '\r')
                return fail(p, XLB_H1_E_CHUNK_DATA);
            p->state = ST_CDATA_LF;
            break;
        case ST_CDATA_LF:
            if (c != '\n')
                return fail(p, XLB_H1_E_CHUNK_DATA);
            p->state = ST_CSIZE;
            p->chunk_digits = 0;
            p->trailer_len = 0;
            break;
        case ST_TR_START:
            if (c == '\r') {
                p->state = ST_TR_END_LF;
            } else if (IS(c, C_TCHAR)) {
                if (++p->trailer_fields > p->lim.max_headers)
                    return fail(p, XLB_H1_E_TRAILER);
                p->state = ST_TR_NAME;
            } else {
                return fail(p, XLB_H1_E_TRAILER);
            }
            break;
        case ST_TR_NAME:
            if (c == ':')
                p->state = ST_TR_VALUE;
            else if (!IS(c, C_TCHAR))
                return fail(p, XLB_H1_E_TRAILER);
            break;
        case ST_TR_VALUE:
            if (c == '\r')
                p->state = ST_TR_LF;
            else if (!IS(c, C_FVAL))
                return fail(p, XLB_H1_E_TRAILER);
            break;
        case ST_TR_LF:
            if (c != '\n')
                return fail(p, XLB_H1_E_TRAILER);
            p->state = ST_TR_START;
            break;
        case ST_TR_END_LF:
            if (c != '\n')
                return fail(p, XLB_H1_E_TRAILER);
            p->state = ST_DONE;
            *consumed = i + 1;
            return XLB_H1_OK;
        default:
            return fail(p, XLB_H1_E_STATE);
        }
    }
    *consumed = i;
    return XLB_H1_MORE;
}

/* Decode body bytes; see xlb_http1.h.  At most one payload run per call:
 * XLB_H1_MORE with *consumed < len means "call again with the rest". */
int xlb_h1_body(struct xlb_h1_parser *p, const char *in, size_t len, size_t *consumed,
                const char **data, size_t *data_len)
{
    size_t n;

    *consumed = 0;
    *data = in;
    *data_len = 0;
    switch (p->state) {
    case ST_ERR:
        return XLB_H1_ERR;
    case ST_START:
    case ST_FIELDS:
        return fail_st(p, XLB_H1_E_STATE, 500);
    case ST_DONE:
        return XLB_H1_OK;
    case ST_LENGTH:
        n = len < p->body_left ? len : (size_t)p->body_left;
        p->body_left -= n;
        p->body_total += n;
        *consumed = n;
        *data_len = n;
        if (p->body_left)
            return XLB_H1_MORE;
        p->state = ST_DONE;
        return XLB_H1_OK;
    case ST_EOF:
        /* Up to max_body bytes pass; the error comes with the first byte
         * over it, whatever the split. */
        n = len;
        if (p->lim.max_body && n > p->lim.max_body - p->body_total) {
            n = (size_t)(p->lim.max_body - p->body_total);
            if (!n)
                return fail(p, XLB_H1_E_BODY_TOO_LARGE);
        }
        p->body_total += n;
        *consumed = n;
        *data_len = n;
        return XLB_H1_MORE;
    default:
        return chunked(p, in, len, consumed, data, data_len);
    }
}

/* Index of the first field named name at or after from; -1 if none. */
int xlb_h1_find(const struct xlb_h1_head *h, const char *buf, const char *name, uint32_t from)
{
    for (uint32_t i = from; i < h->n_fields; i++)
        if (xlb_h1_str_eq(buf, h->fields[i].name, name))
            return (int)i;
    return -1;
}

/* Whether the list value[0..len) has the element tok (ASCII case ignored). */
bool xlb_h1_list_has(const char *value, size_t len, const char *tok)
{
    size_t i = 0, s, n, tl = strlen(tok);

    while (list_next(value, len, &i, &s, &n)) {
        size_t k = 0;
        if (n != tl)
            continue;
        while (k < n && lower((unsigned char)value[s + k]) == lower((unsigned char)tok[k]))
            k++;
        if (k == n)
            return true;
    }
    return false;
}

/* Whether buf's slice s equals text, ASCII case ignored. */
bool xlb_h1_str_eq(const char *buf, struct xlb_h1_str s, const char *text)
{
    size_t i;

    for (i = 0; i < s.len; i++)
        if (!text[i] || lower((unsigned char)buf[s.off + i]) != lower((unsigned char)text[i]))
            return false;
    return text[i] == '\0';
}
