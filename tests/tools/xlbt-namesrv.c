/*
 * xlbt-namesrv: a test server that answers every request with its own name.
 *
 *   xlbt-namesrv --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...] [--udp]
 *
 * TCP: for every line a client sends ("...\n"), the server replies "NAME\n".
 * A last line without a newline is answered when the client closes its side;
 * the connection is closed once every reply is written. UDP (--udp, on the
 * same addresses): every datagram is answered with one datagram "NAME\n",
 * sent from the address the request was sent to, so a server bound to a
 * wildcard address still answers from a VIP held on loopback.
 *
 * IPv6 addresses are written in brackets: [fd00:10::10]:80. IPv6 sockets are
 * IPv6-only, so 0.0.0.0:80 and [::]:80 can be listened on together.
 *
 * The integration tests run one instance per real server; a client that sees
 * the same name in every reply of a connection knows that all packets of the
 * connection reached the same real. SIGTERM or SIGINT end the server (exit 0)
 * after it prints its totals to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xlbt_tool.h"

#define MAX_LISTEN 32
#define MAX_NAME 255
/* Stop reading from a client that does not read its replies. */
#define MAX_PENDING_REPLIES 65536u
/* Datagrams handled per wakeup of one UDP socket, so TCP is not starved. */
#define UDP_BURST 64

enum handle_kind { H_SIGNAL, H_TCP_LISTEN, H_UDP, H_CONN };

struct handle {
	enum handle_kind kind;
	int fd;
	/* H_CONN only */
	uint64_t pending;  /* replies owed to the client */
	size_t off;        /* bytes of the first owed reply already sent */
	bool partial_line; /* bytes received since the last '\n' */
	bool eof;          /* client closed its sending side */
	uint32_t events;   /* events currently registered in epoll */
	struct handle *prev, *next; /* all open handles, to close them at exit */
};

static char reply[MAX_NAME + 2];
static size_t reply_len;
static int epfd = -1;
static struct handle *handles;
static int reserve_fd = -1;
static unsigned long long n_conns, n_lines, n_datagrams, n_errors;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xlbt-namesrv --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...] [--udp]\n"
		"  Replies NAME to every line (TCP) and, with --udp, to every datagram.\n"
		"  IPv6: --listen [ADDR]:PORT. Ends on SIGTERM/SIGINT.\n");
}

static int set_events(struct handle *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (h->events == events)
		return 0;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0)
		return -errno;
	h->events = events;
	return 0;
}

static struct handle *add_handle(enum handle_kind kind, int fd, uint32_t events)
{
	struct handle *h = calloc(1, sizeof(*h));
	struct epoll_event ev = { .events = events };

	if (!h)
		return NULL;
	h->kind = kind;
	h->fd = fd;
	h->events = events;
	ev.data.ptr = h;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;

		free(h);
		errno = err;
		return NULL;
	}
	h->next = handles;
	if (handles)
		handles->prev = h;
	handles = h;
	return h;
}

static void close_handle(struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	epoll_ctl(epfd, EPOLL_CTL_DEL, h->fd, NULL);
	close(h->fd);
	free(h);
}

/* Open one listening TCP or bound UDP socket; returns fd or -1 (message printed). */
static int open_socket(const struct sockaddr_storage *ss, socklen_t sslen, int type, const char *what)
{
	int one = 1;
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		fprintf(stderr, "xlbt-namesrv: socket for %s: %s\n", what, strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (ss->ss_family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
			goto fail;
		if (type == SOCK_DGRAM &&
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
			goto fail;
	} else if (type == SOCK_DGRAM) {
		if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
			goto fail;
	}
	if (bind(fd, (const struct sockaddr *)ss, sslen) < 0)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:
	fprintf(stderr, "xlbt-namesrv: %s: %s\n", what, strerror(errno));
	close(fd);
	return -1;
}

/*
 * Write as many owed replies as the socket takes. Returns 0 when everything
 * owed is written or the socket is full, -1 when the connection is broken.
 */
static int flush_replies(struct handle *c)
{
	char buf[16384];

	while (c->pending > 0) {
		size_t len = 0;
		uint64_t queued = 0;
		ssize_t n;

		/* The rest of the first reply, then as many whole ones as fit. */
		memcpy(buf, reply + c->off, reply_len - c->off);
		len = reply_len - c->off;
		queued = 1;
		while (queued < c->pending && len + reply_len <= sizeof(buf)) {
			memcpy(buf + len, reply, reply_len);
			len += reply_len;
			queued++;
		}

		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}

		size_t sent = (size_t)n;
		size_t first = reply_len - c->off;

		if (sent < first) {
			c->off += sent;
			return 0;
		}
		sent -= first;
		c->pending--;
		c->off = 0;
		c->pending -= sent / reply_len;
		c->off = sent % reply_len;
		if ((size_t)n < len)
			return 0;
	}
	return 0;
}

/* Choose the epoll interest of a connection from its state; close it when done. */
static void update_conn(struct handle *c)
{
	uint32_t ev = 0;

	if (c->eof && c->pending == 0) {
		close_handle(c);
		return;
	}
	if (!c->eof && c->pending < MAX_PENDING_REPLIES)
		ev |= EPOLLIN;
	if (c->pending > 0)
		ev |= EPOLLOUT;
	if (set_events(c, ev) < 0) {
		n_errors++;
		close_handle(c);
	}
}

static void on_conn(struct handle *c, uint32_t events)
{
	char buf[65536];

	if ((events & EPOLLERR) && !(events & EPOLLIN)) {
		n_errors++;
		close_handle(c);
		return;
	}

	if ((events & (EPOLLIN | EPOLLHUP)) && !c->eof) {
		/* A bounded number of reads per wakeup keeps other clients served. */
		for (int i = 0; i < 16 && !c->eof && c->pending < MAX_PENDING_REPLIES; i++) {
			ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				n_errors++;
				close_handle(c);
				return;
			}
			if (n == 0) {
				c->eof = true;
				if (c->partial_line) {
					c->pending++;
					n_lines++;
					c->partial_line = false;
				}
				break;
			}
			const char *p = buf;
			const char *end = buf + n;
			const char *nl;

			while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
				c->pending++;
				n_lines++;
				p = nl + 1;
			}
			c->partial_line = p < end;
		}
	}

	if (flush_replies(c) < 0) {
		n_errors++;
		close_handle(c);
		return;
	}
	update_conn(c);
}

/* Accept with a reserved descriptor so running out of fds drops the client instead of spinning. */
static void on_listen(struct handle *l)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && reserve_fd >= 0) {
				close(reserve_fd);
				fd = accept(l->fd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				n_errors++;
				continue;
			}
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!add_handle(H_CONN, fd, EPOLLIN)) {
			n_errors++;
			close(fd);
			continue;
		}
		n_conns++;
	}
}

/* Answer each datagram from the address it was sent to. */
static void on_udp(struct handle *u)
{
	for (int i = 0; i < UDP_BURST; i++) {
		char buf[2048];
		union {
			char v4[CMSG_SPACE(sizeof(struct in_pktinfo))];
			char v6[CMSG_SPACE(sizeof(struct in6_pktinfo))];
			struct cmsghdr align;
		} cbuf;
		struct sockaddr_storage peer;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr msg = {
			.msg_name = &peer, .msg_namelen = sizeof(peer),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = &cbuf, .msg_controllen = sizeof(cbuf),
		};
		ssize_t n = recvmsg(u->fd, &msg, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		n_datagrams++;

		union {
			char v4[CMSG_SPACE(sizeof(struct in_pktinfo))];
			char v6[CMSG_SPACE(sizeof(struct in6_pktinfo))];
			struct cmsghdr align;
		} obuf;
		struct iovec oiov = { .iov_base = reply, .iov_len = reply_len };
		struct msghdr out = {
			.msg_name = &peer, .msg_namelen = msg.msg_namelen,
			.msg_iov = &oiov, .msg_iovlen = 1,
		};
		memset(&obuf, 0, sizeof(obuf));

		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo in, o = { 0 };
				struct cmsghdr *oc;

				memcpy(&in, CMSG_DATA(cm), sizeof(in));
				o.ipi_spec_dst = in.ipi_addr;
				out.msg_control = &obuf;
				out.msg_controllen = CMSG_SPACE(sizeof(o));
				oc = CMSG_FIRSTHDR(&out);
				oc->cmsg_level = IPPROTO_IP;
				oc->cmsg_type = IP_PKTINFO;
				oc->cmsg_len = CMSG_LEN(sizeof(o));
				memcpy(CMSG_DATA(oc), &o, sizeof(o));
				break;
			}
			if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
				struct in6_pktinfo in, o = { 0 };
				struct cmsghdr *oc;

				memcpy(&in, CMSG_DATA(cm), sizeof(in));
				o.ipi6_addr = in.ipi6_addr;
				/* Keep the interface only where the address needs it. */
				if (IN6_IS_ADDR_LINKLOCAL(&in.ipi6_addr))
					o.ipi6_ifindex = in.ipi6_ifindex;
				out.msg_control = &obuf;
				out.msg_controllen = CMSG_SPACE(sizeof(o));
				oc = CMSG_FIRSTHDR(&out);
				oc->cmsg_level = IPPROTO_IPV6;
				oc->cmsg_type = IPV6_PKTINFO;
				oc->cmsg_len = CMSG_LEN(sizeof(o));
				memcpy(CMSG_DATA(oc), &o, sizeof(o));
				break;
			}
		}
		if (sendmsg(u->fd, &out, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			n_errors++;
	}
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "udp", no_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL;
	const char *listen_arg[MAX_LISTEN];
	struct sockaddr_storage listen_ss[MAX_LISTEN];
	socklen_t listen_len[MAX_LISTEN];
	int n_listen = 0;
	bool udp = false;
	sigset_t mask;
	int sfd, c;

	while ((c = getopt_long(argc, argv, "n:l:uh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'l':
			if (n_listen == MAX_LISTEN) {
				fprintf(stderr, "xlbt-namesrv: at most %d --listen\n", MAX_LISTEN);
				return 2;
			}
			if (xlbt_parse_hostport(optarg, &listen_ss[n_listen], &listen_len[n_listen]) < 0) {
				fprintf(stderr, "xlbt-namesrv: bad --listen '%s' (want ADDR:PORT or [ADDR6]:PORT)\n",
					optarg);
				return 2;
			}
			listen_arg[n_listen++] = optarg;
			break;
		case 'u':
			udp = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !name || n_listen == 0) {
		usage(stderr);
		return 2;
	}
	reply_len = strlen(name);
	if (reply_len == 0 || reply_len > MAX_NAME || strpbrk(name, "\n\r")) {
		fprintf(stderr, "xlbt-namesrv: --name must be 1..%d characters without newlines\n", MAX_NAME);
		return 2;
	}
	memcpy(reply, name, reply_len);
	reply[reply_len++] = '\n';

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		perror("xlbt-namesrv: sigprocmask");
		return 1;
	}
	raise_nofile();
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	epfd = epoll_create1(EPOLL_CLOEXEC);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (epfd < 0 || sfd < 0 || !add_handle(H_SIGNAL, sfd, EPOLLIN)) {
		perror("xlbt-namesrv: epoll/signalfd");
		return 1;
	}

	for (int i = 0; i < n_listen; i++) {
		char what[128];
		int fd;

		snprintf(what, sizeof(what), "tcp %s", listen_arg[i]);
		fd = open_socket(&listen_ss[i], listen_len[i], SOCK_STREAM, what);
		if (fd < 0 || !add_handle(H_TCP_LISTEN, fd, EPOLLIN))
			return 1;
		if (udp) {
			snprintf(what, sizeof(what), "udp %s", listen_arg[i]);
			fd = open_socket(&listen_ss[i], listen_len[i], SOCK_DGRAM, what);
			if (fd < 0 || !add_handle(H_UDP, fd, EPOLLIN))
				return 1;
		}
		fprintf(stderr, "xlbt-namesrv: %s listening on %s%s\n", name, listen_arg[i],
			udp ? " (tcp+udp)" : " (tcp)");
	}

	for (bool running = true; running;) {
		struct epoll_event evs[64];
		int n = epoll_wait(epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("xlbt-namesrv: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct handle *h = evs[i].data.ptr;

			switch (h->kind) {
			case H_SIGNAL:
				running = false;
				break;
			case H_TCP_LISTEN:
				on_listen(h);
				break;
			case H_UDP:
				on_udp(h);
				break;
			case H_CONN:
				/* May free h; epoll reports each fd once per call. */
				on_conn(h, evs[i].events);
				break;
			}
		}
	}

	fprintf(stderr, "xlbt-namesrv: %s: %llu connections, %llu lines, %llu datagrams, %llu errors\n",
		name, n_conns, n_lines, n_datagrams, n_errors);
	while (handles)
		close_handle(handles);
	close(epfd);
	if (reserve_fd >= 0)
		close(reserve_fd);
	return 0;
}
