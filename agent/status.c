// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * status.c - the "system overview" status page, on the API listener
 * (docs/status-page.md):
 *
 *   GET /, GET /status   the page (HTML)
 *   GET /status.css      its style sheet
 *   GET /status.js       its script
 *   GET /favicon.ico     204, so that browsers do not log a 404
 *
 * These need no token: they are the same static text for everyone and hold
 * no data.  The script asks the operator for the token and reads the
 * token-protected JSON API with it.  Every answer carries a
 * Content-Security-Policy that allows only this origin, Cache-Control:
 * no-store, and nosniff.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "status_page.h"

#define STATUS_HEADERS                                                                      \
    "Content-Security-Policy: default-src 'self'; base-uri 'none'; form-action 'none'; "   \
    "frame-ancestors 'none'\r\n"                                                            \
    "Cache-Control: no-store\r\n"                                                           \
    "X-Content-Type-Options: nosniff\r\n"                                                   \
    "Referrer-Policy: no-referrer\r\n"

_Static_assert(sizeof(STATUS_HEADERS) <= sizeof(((struct xlb_http_resp *)0)->extra_headers),
               "the status page's headers do not fit xlb_http_resp.extra_headers");

static const struct status_asset {
    const char *path;
    const char *type;           /* NULL: 204, no body */
    const char *body;
    size_t len;
} assets[] = {
    { "/", "text/html; charset=utf-8", status_html, sizeof(status_html) - 1 },
    { "/status", "text/html; charset=utf-8", status_html, sizeof(status_html) - 1 },
    { "/status.css", "text/css; charset=utf-8", status_css, sizeof(status_css) - 1 },
    { "/status.js", "text/javascript; charset=utf-8", status_js, sizeof(status_js) - 1 },
    { "/favicon.ico", NULL, NULL, 0 },
};

/*
 * Answer req if its path is one of the status page's (the query is
 * ignored) and return true; return false, leaving resp untouched, for any
 * other path.  GET and HEAD only (405 otherwise).  No authorization: the
 * answers are static.
 */
bool agent_status_handler(const struct xlb_http_req *req, struct xlb_http_resp *resp)
{
    const struct status_asset *a = NULL;

    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
        if (!strcmp(req->path, assets[i].path)) {
            a = &assets[i];
            break;
        }
    if (!a)
        return false;
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        resp->status = 405;
        snprintf(resp->extra_headers, sizeof(resp->extra_headers), "Allow: GET, HEAD\r\n");
        xlb_buf_printf(&resp->body, "use GET for %s\n", a->path);
        return true;
    }
    memcpy(resp->extra_headers, STATUS_HEADERS, sizeof(STATUS_HEADERS));
    if (!a->type) {
        resp->status = 204;
        return true;
    }
    resp->status = 200;
    snprintf(resp->content_type, sizeof(resp->content_type), "%s", a->type);
    if (xlb_buf_add(&resp->body, a->body, a->len)) {
        resp->status = 500;
        snprintf(resp->content_type, sizeof(resp->content_type), "text/plain; charset=utf-8");
        xlb_buf_reset(&resp->body);
        xlb_buf_printf(&resp->body, "out of memory\n");
    }
    return true;
}
