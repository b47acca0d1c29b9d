/*
 * xlbt-client: drive connections through a virtual service and report which
 * real server answered each of them.
 *
 *   xlbt-client --connect ADDR:PORT --count N [--exchanges K] [--timeout-ms T]
 *               [--parallel P] [--deadline-ms D] [--interval-ms I] [--source ADDR]
 *               [--udp] [--json]
 *
 * Makes N connections, at most P at a time. On each one it sends K lines
 * "ping i\n" in lock step (the next line only after the reply to the previous
 * one) and reads one reply line per request, as sent by xlbt-namesrv. With
 * --interval-ms, each request after the first waits I milliseconds after the
 * previous reply, so that a connection lives at least (K-1)*I ms (a reply or
 * a reset arriving during the pause still counts). A connection succeeds only
 * if all K replies arrive within T milliseconds of its start (pauses
 * included) and carry the same name: every packet of the connection reached
 * the same real server. A reply with another name marks the connection
 * "inconsistent" (and failed). The whole run stops at the deadline D; what is
 * unfinished then counts as failed.
 *
 * With --udp a "connection" is a connected UDP socket (one source port); each
 * request is one datagram and each reply datagram is one reply line.
 *
 * With --source every socket is bound to ADDR (an address of the target's
 * family, without a port; the port stays ephemeral) before it connects, so
 * one host can act as several clients.
 *
 * Output: one "NAME COUNT" line per name (successful connections only) and
 * "ok=N failed=M"; with --json a single object
 *   {"ok":N,"failed":M,"inconsistent":X,"by_name":{"rs1":101,...},
 *    "errors":{"connect":..,"timeout":..,...}}
 * Exit status: 0 if no connection failed, 1 if any did, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "xlbt_tool.h"

#define MAX_PARALLEL 4096
#define MAX_NAME 255
#define LINE_CAP (MAX_NAME + 2)
#define MAX_NAMES 1024
#define MAX_DETAILS 5

enum err_kind { E_CONNECT, E_TIMEOUT, E_RESET, E_CLOSED, E_PROTOCOL, E_INCONSISTENT, E_DEADLINE, E_COUNT };

static const char *const err_names[E_COUNT] = {
	[E_CONNECT] = "connect",
	[E_TIMEOUT] = "timeout",
	[E_RESET] = "reset",
	[E_CLOSED] = "closed",
	[E_PROTOCOL] = "protocol",
	[E_INCONSISTENT] = "inconsistent",
	[E_DEADLINE] = "deadline",
};

enum conn_state { C_FREE, C_CONNECTING, C_EXCHANGING };

struct conn {
	enum conn_state state;
	int fd;
	unsigned long id;
	int64_t deadline;
	unsigned long exch;  /* replies received so far */
	bool pausing;        /* waiting for next_send before the next request */
	int64_t next_send;
	char req[48];
	size_t req_len, req_sent;
	bool awaiting;       /* request fully sent, reply outstanding */
	char first[LINE_CAP];
	bool have_first;
	char line[LINE_CAP];
	size_t line_len;
	uint32_t events;
};

struct name_count {
	char *name;
	unsigned long count;
};

static struct {
	struct sockaddr_storage ss, src;
	socklen_t sslen, srclen;
	const char *target;
	unsigned long count, exchanges, parallel;
	long timeout_ms, deadline_ms, interval_ms;
	bool json, udp, have_src;
} cfg = {
	.exchanges = 1,
	.parallel = 1,
	.timeout_ms = 2000,
	.deadline_ms = 60000,
};

static int epfd = -1;
static struct conn *conns;
static unsigned long n_ok, n_failed, n_active;
static unsigned long errs[E_COUNT];
static unsigned long n_details;
static struct name_count names[MAX_NAMES];
static size_t n_names;
static unsigned long other_names;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xlbt-client --connect ADDR:PORT --count N [--exchanges K] [--timeout-ms T]\n"
		"                   [--parallel P] [--deadline-ms D] [--interval-ms I] [--source ADDR]\n"
		"                   [--udp] [--json]\n"
		"  N connections (at most P at once), K request/reply lines each, I ms apart\n"
		"  (from a reply to the next request); a connection succeeds if all K replies\n"
		"  arrive within T ms of its start and carry the same name.\n"
		"  --source binds every socket to ADDR (no port) before connecting.\n"
		"  Defaults: K=1, T=2000, P=1, D=60000, I=0. IPv6: --connect [ADDR]:PORT.\n");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * Parse a bare IPv4 or IPv6 address (no port, no brackets) into *ss with
 * port 0. Returns 0 or -EINVAL.
 */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		*len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

static void count_name(const char *name)
{
	for (size_t i = 0; i < n_names; i++) {
		if (strcmp(names[i].name, name) == 0) {
			names[i].count++;
			return;
		}
	}
	if (n_names == MAX_NAMES) {
		other_names++;
		return;
	}
	names[n_names].name = strdup(name);
	if (!names[n_names].name) {
		other_names++;
		return;
	}
	names[n_names++].count = 1;
}

static void finish(struct conn *c, bool ok, enum err_kind kind, const char *detail)
{
	if (ok) {
		n_ok++;
		count_name(c->first);
	} else {
		n_failed++;
		errs[kind]++;
		if (n_details < MAX_DETAILS) {
			n_details++;
			fprintf(stderr, "xlbt-client: connection %lu to %s failed after %lu/%lu replies: %s%s%s\n",
				c->id, cfg.target, c->exch, cfg.exchanges, err_names[kind],
				detail ? ": " : "", detail ? detail : "");
		}
	}
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_FREE;
	n_active--;
}

static void fail_errno(struct conn *c, int err)
{
	enum err_kind kind = E_CONNECT;

	if (c->state == C_EXCHANGING)
		kind = (err == ECONNRESET || err == EPIPE) ? E_RESET : E_CLOSED;
	if (err == ECONNREFUSED || err == ENETUNREACH || err == EHOSTUNREACH)
		kind = E_CONNECT;
	if (err == ETIMEDOUT)
		kind = E_TIMEOUT;
	finish(c, false, kind, strerror(err));
}

static int want(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return 0;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return -errno;
	c->events = events;
	return 0;
}

/* Send (the rest of) the current request; afterwards wait for its reply. */
static void send_request(struct conn *c)
{
	while (c->req_sent < c->req_len) {
		ssize_t n = send(c->fd, c->req + c->req_sent, c->req_len - c->req_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (want(c, EPOLLOUT) < 0)
					fail_errno(c, errno);
				return;
			}
			fail_errno(c, errno);
			return;
		}
		c->req_sent += (size_t)n;
	}
	c->awaiting = true;
	if (want(c, EPOLLIN) < 0)
		fail_errno(c, errno);
}

static void next_request(struct conn *c)
{
	int n = snprintf(c->req, sizeof(c->req), "ping %lu\n", c->exch);

	c->req_len = (size_t)n;
	c->req_sent = 0;
	c->awaiting = false;
	send_request(c);
}

/* Handle one complete reply: check the name, then finish or send the next request. */
static void on_reply(struct conn *c, const char *name)
{
	if (!*name) {
		finish(c, false, E_PROTOCOL, "empty reply line");
		return;
	}
	if (!c->have_first) {
		snprintf(c->first, sizeof(c->first), "%s", name);
		c->have_first = true;
	} else if (strcmp(c->first, name) != 0) {
		char detail[2 * LINE_CAP + 32];

		snprintf(detail, sizeof(detail), "first '%s', then '%s'", c->first, name);
		finish(c, false, E_INCONSISTENT, detail);
		return;
	}
	c->exch++;
	if (c->exch == cfg.exchanges) {
		finish(c, true, E_COUNT, NULL);
		return;
	}
	if (cfg.interval_ms > 0) {
		/* Keep reading during the pause: data or a reset then is an error. */
		c->awaiting = false;
		c->pausing = true;
		c->next_send = now_ms() + cfg.interval_ms;
		if (want(c, EPOLLIN) < 0)
			fail_errno(c, errno);
		return;
	}
	next_request(c);
}

static void on_readable(struct conn *c)
{
	if (cfg.udp) {
		char buf[LINE_CAP + 1];
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				fail_errno(c, errno);
			return;
		}
		if (!c->awaiting) {
			finish(c, false, E_PROTOCOL, c->pausing ? "datagram between exchanges" :
				"reply before request");
			return;
		}
		if (n > 0 && buf[n - 1] == '\n')
			n--;
		if ((size_t)n > MAX_NAME || memchr(buf, '\n', (size_t)n)) {
			finish(c, false, E_PROTOCOL, "malformed reply datagram");
			return;
		}
		buf[n] = '\0';
		on_reply(c, buf);
		return;
	}

	ssize_t n = recv(c->fd, c->line + c->line_len, sizeof(c->line) - c->line_len, MSG_DONTWAIT);

	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			fail_errno(c, errno);
		return;
	}
	if (n == 0) {
		finish(c, false, E_CLOSED, c->pausing ? "server closed the connection between exchanges" :
			"server closed the connection");
		return;
	}
	c->line_len += (size_t)n;

	char *nl = memchr(c->line, '\n', c->line_len);

	if (!nl) {
		if (c->line_len == sizeof(c->line))
			finish(c, false, E_PROTOCOL, "reply line too long");
		return;
	}
	/* Lock step: one request outstanding, so at most one reply line is due. */
	if (!c->awaiting || nl + 1 != c->line + c->line_len) {
		finish(c, false, E_PROTOCOL, "unexpected data from server");
		return;
	}
	*nl = '\0';
	if (nl > c->line && nl[-1] == '\r')
		nl[-1] = '\0';
	c->line_len = 0;
	on_reply(c, c->line);
}

static void on_event(struct conn *c, uint32_t events)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			fail_errno(c, err);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		c->state = C_EXCHANGING;
		next_request(c);
		return;
	}
	if (events & EPOLLIN) {
		on_readable(c);
		return;
	}
	if (events & EPOLLOUT) {
		send_request(c);
		return;
	}
	if (events & (EPOLLERR | EPOLLHUP)) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			fail_errno(c, err);
		else
			finish(c, false, E_CLOSED, "hang-up");
	}
}

static void start_conn(struct conn *c, unsigned long id, int64_t now)
{
	struct epoll_event ev = { .events = EPOLLOUT };
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->id = id;
	c->deadline = now + cfg.timeout_ms;
	c->state = C_CONNECTING;
	n_active++;
	c->fd = socket(cfg.ss.ss_family,
		       (cfg.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail_errno(c, errno);
		return;
	}
	if (!cfg.udp)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg.have_src) {
		/* TCP: the port is picked at connect time, for the 4-tuple. */
		if (!cfg.udp)
			setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&cfg.src, cfg.srclen) < 0) {
			fail_errno(c, errno);
			return;
		}
	}
	ev.data.ptr = c;
	c->events = EPOLLOUT;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		fail_errno(c, errno);
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&cfg.ss, cfg.sslen) < 0 && errno != EINPROGRESS) {
		fail_errno(c, errno);
		return;
	}
	/* The first EPOLLOUT (or an immediate connect) moves on to the exchanges. */
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(((const struct name_count *)a)->name, ((const struct name_count *)b)->name);
}

static void report(void)
{
	qsort(names, n_names, sizeof(names[0]), cmp_names);
	if (cfg.json) {
		printf("{\"ok\":%lu,\"failed\":%lu,\"inconsistent\":%lu,\"by_name\":{",
		       n_ok, n_failed, errs[E_INCONSISTENT]);
		for (size_t i = 0; i < n_names; i++) {
			if (i)
				putchar(',');
			print_json_string(names[i].name);
			printf(":%lu", names[i].count);
		}
		if (other_names)
			printf("%s\"(other)\":%lu", n_names ? "," : "", other_names);
		printf("},\"errors\":{");
		for (int k = 0; k < E_COUNT; k++)
			printf("%s\"%s\":%lu", k ? "," : "", err_names[k], errs[k]);
		printf("}}\n");
	} else {
		for (size_t i = 0; i < n_names; i++)
			printf("%s %lu\n", names[i].name, names[i].count);
		if (other_names)
			printf("(other) %lu\n", other_names);
		printf("ok=%lu failed=%lu\n", n_ok, n_failed);
	}
	if (n_failed) {
		fprintf(stderr, "xlbt-client: %lu of %lu connections failed:", n_failed, cfg.count);
		for (int k = 0; k < E_COUNT; k++)
			if (errs[k])
				fprintf(stderr, " %s=%lu", err_names[k], errs[k]);
		fputc('\n', stderr);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "exchanges", required_argument, NULL, 'k' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "parallel", required_argument, NULL, 'p' },
		{ "deadline-ms", required_argument, NULL, 'd' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "source", required_argument, NULL, 's' },
		{ "udp", no_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_count = false;
	unsigned long v, started = 0;
	int64_t end;
	int c;

	while ((c = getopt_long(argc, argv, "c:n:k:t:p:d:i:s:ujh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (xlbt_parse_hostport(optarg, &cfg.ss, &cfg.sslen) < 0) {
				fprintf(stderr, "xlbt-client: bad --connect '%s' (want ADDR:PORT or [ADDR6]:PORT)\n",
					optarg);
				return 2;
			}
			cfg.target = optarg;
			break;
		case 'n':
			if (parse_ulong(optarg, 0, 100000000, &cfg.count) < 0)
				goto bad_number;
			have_count = true;
			break;
		case 'k':
			if (parse_ulong(optarg, 1, 1000000, &cfg.exchanges) < 0)
				goto bad_number;
			break;
		case 't':
			if (parse_ulong(optarg, 1, 3600000, &v) < 0)
				goto bad_number;
			cfg.timeout_ms = (long)v;
			break;
		case 'p':
			if (parse_ulong(optarg, 1, MAX_PARALLEL, &cfg.parallel) < 0)
				goto bad_number;
			break;
		case 'd':
			if (parse_ulong(optarg, 1, 86400000, &v) < 0)
				goto bad_number;
			cfg.deadline_ms = (long)v;
			break;
		case 'i':
			if (parse_ulong(optarg, 0, 3600000, &v) < 0)
				goto bad_number;
			cfg.interval_ms = (long)v;
			break;
		case 's':
			if (parse_addr(optarg, &cfg.src, &cfg.srclen) < 0) {
				fprintf(stderr, "xlbt-client: bad --source '%s' (want an IPv4 or IPv6 address)\n",
					optarg);
				return 2;
			}
			cfg.have_src = true;
			break;
		case 'u':
			cfg.udp = true;
			break;
		case 'j':
			cfg.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		continue;
bad_number:
		fprintf(stderr, "xlbt-client: bad value '%s' for --%s\n", optarg,
			c == 'n' ? "count" : c == 'k' ? "exchanges" : c == 't' ? "timeout-ms" :
			c == 'p' ? "parallel" : c == 'd' ? "deadline-ms" : "interval-ms");
		return 2;
	}
	if (optind != argc || !cfg.target || !have_count) {
		usage(stderr);
		return 2;
	}
	if (cfg.have_src && cfg.src.ss_family != cfg.ss.ss_family) {
		fprintf(stderr, "xlbt-client: --source and --connect are of different address families\n");
		return 2;
	}
	/* The pauses alone must leave time for the exchanges. */
	if ((double)cfg.interval_ms * (double)(cfg.exchanges - 1) >= (double)cfg.timeout_ms) {
		fprintf(stderr, "xlbt-client: --timeout-ms %ld cannot cover %lu pauses of --interval-ms %ld\n",
			cfg.timeout_ms, cfg.exchanges - 1, cfg.interval_ms);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	if (cfg.parallel > cfg.count && cfg.count > 0)
		cfg.parallel = cfg.count;
	conns = calloc(cfg.parallel, sizeof(*conns));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || epfd < 0) {
		perror("xlbt-client");
		return 1;
	}
	for (unsigned long i = 0; i < cfg.parallel; i++)
		conns[i].fd = -1;

	end = now_ms() + cfg.deadline_ms;
	while (n_ok + n_failed < cfg.count) {
		struct epoll_event evs[64];
		int64_t now = now_ms(), wait;
		int n;

		if (now >= end)
			break;
		for (unsigned long i = 0; i < cfg.parallel && started < cfg.count; i++)
			if (conns[i].state == C_FREE)
				start_conn(&conns[i], started++, now);
		if (n_active == 0)
			continue;

		wait = end - now;
		for (unsigned long i = 0; i < cfg.parallel; i++) {
			if (conns[i].state == C_FREE)
				continue;
			if (conns[i].deadline - now < wait)
				wait = conns[i].deadline - now;
			if (conns[i].pausing && conns[i].next_send - now < wait)
				wait = conns[i].next_send - now;
		}
		if (wait < 0)
			wait = 0;
		n = epoll_wait(epfd, evs, 64, (int)wait);
		if (n < 0 && errno != EINTR) {
			perror("xlbt-client: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *cn = evs[i].data.ptr;

			if (cn->state != C_FREE)
				on_event(cn, evs[i].events);
		}
		now = now_ms();
		for (unsigned long i = 0; i < cfg.parallel; i++) {
			struct conn *cn = &conns[i];

			if (cn->state != C_FREE && now >= cn->deadline) {
				finish(cn, false, E_TIMEOUT, NULL);
				continue;
			}
			if (cn->state != C_FREE && cn->pausing && now >= cn->next_send) {
				cn->pausing = false;
				next_request(cn);
			}
		}
	}

	/* Deadline reached: whatever is still open or not yet started has failed. */
	for (unsigned long i = 0; i < cfg.parallel; i++)
		if (conns[i].state != C_FREE)
			finish(&conns[i], false, E_DEADLINE, NULL);
	if (started < cfg.count) {
		errs[E_DEADLINE] += cfg.count - started;
		n_failed += cfg.count - started;
	}

	report();
	for (size_t i = 0; i < n_names; i++)
		free(names[i].name);
	free(conns);
	close(epfd);
	return n_failed ? 1 : 0;
}
