// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xlb-agent - the control plane daemon.
 *
 *   xlb-agent --config FILE [--log-level LEVEL]   run
 *   xlb-agent --check FILE                         validate FILE, touch nothing
 *
 * Exit status: 0 clean stop (SIGTERM/SIGINT) or a valid config with --check,
 * 1 failure (the message says why), 2 usage error.  Stopping the agent
 * never stops forwarding: the XDP program and its pinned maps stay.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "xlb_err.h"

static const char usage_text[] =
"usage: xlb-agent --config FILE [--log-level err|warning|info|debug]\n"
"       xlb-agent --check FILE\n"
"\n"
"  --config FILE   run the node described by FILE (see docs/config.md)\n"
"  --check FILE    validate FILE and exit: 0 valid, 1 invalid (error on stderr)\n"
"  --log-level L   err, warning, info (default) or debug\n"
"\n"
"SIGHUP (or 'xlbctl reload') reloads the config; a config that fails\n"
"validation is rejected and the running one stays in force.\n";

static int check_only(const char *path)
{
    struct xlb_config *c = NULL;
    char err[1024];
    int rc = xlb_config_load(path, &c, err, sizeof(err));

    if (rc) {
        fprintf(stderr, "%s\n", err);
        xlb_config_free(c);
        return 1;
    }
    printf("%s: valid (%d services)\n", path, c->n_services);
    xlb_config_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", required_argument, NULL, 'k' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *check = NULL;
    struct agent a;
    uv_loop_t loop;
    char err[1024];
    int c, rc, lvl;

    while ((c = getopt_long(argc, argv, "c:k:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check = optarg;
            break;
        case 'l':
            if ((lvl = xlb_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "xlb-agent: --log-level must be err, warning, info or debug\n");
                return 2;
            }
            agent_log_level = lvl;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind != argc || !!config == !!check) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (check)
        return check_only(check);

    setvbuf(stderr, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);   /* a client that goes away is an error, not a death */
    if (uv_loop_init(&loop)) {
        fprintf(stderr, "xlb-agent: cannot create the event loop\n");
        return 1;
    }
    rc = agent_start(&a, &loop, config, err, sizeof(err));
    if (rc) {
        uv_run(&loop, UV_RUN_DEFAULT);  /* let closed handles finish */
        uv_loop_close(&loop);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    agent_stop(&a);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc)
        agent_log(LOG_WARN_, "event loop closed with handles open: %s", uv_strerror(rc));
    return 0;
}
