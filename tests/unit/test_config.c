// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The configuration reader (common/xlb_config.c):
 *   - a table of bad configurations, each with the exact error line
 *     (FILE:LINE:COLUMN: key.path: what is wrong; allowed: ...);
 *   - good configurations checked field by field, defaults included;
 *   - etc/xlb.yaml, the commented example, loads;
 *   - duration and size parsing edge cases, port lists and ranges;
 *   - xlb_config_load() on fixture files, reload equality, names.
 * Run from the top of the tree (fixture paths are relative to it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "xlb_addr.h"
#include "xlb_config.h"
#include "xlb_loader.h"

static struct xlb_config *parse_ok(const char *text)
{
    struct xlb_config *c = NULL;
    char err[512] = "";
    int rc = xlb_config_parse("t.yaml", text, strlen(text), &c, err, sizeof(err));

    cr_assert_eq(rc, 0, "parse failed (%d): %s", rc, err);
    cr_assert_not_null(c);
    return c;
}

static void addr_is(uint8_t family, const struct xlb_addr *a, const char *want)
{
    char buf[XLB_ADDR_STRLEN];

    cr_expect_str_eq(xlb_addr_str(a, family, buf, sizeof(buf)), want);
}

/* ------------------------------------------------------------------ */
/* bad configurations                                                   */

/* A layer 4 service: name at 2:11, address at 3:14, ports '[' at 4:12;
 * further keys start at line 5, column 5. */
#define HDR "services:\n  - name: web\n    address: 198.18.10.10\n    ports: [80]\n"
#define HDRP(ports) "services:\n  - name: web\n    address: 198.18.10.10\n    ports: " ports "\n"
#define V6HDR "services:\n  - name: v6\n    address: \"fd00::10\"\n    ports: [80]\n"
/* A layer 7 service: further keys from line 6. */
#define L7HDR HDRP("[443]") "    layer: 7\n"
/* One real at line 6: '{' at column 9, its address at 19, then x from
 * column 30 (", key: value" puts the key at 32, the value at key + len + 2). */
#define REAL(x) "    reals:\n      - {address: 198.18.20.1" x "}\n"

struct bad {
    const char *what;
    const char *yaml;
    const char *err;
};

static struct bad bad_cases[] = {
    { "unknown top-level key", "nodes: {}\n",
      "t.yaml:1:1: nodes: unknown key; allowed: node, proxy, services" },
    { "unknown service key", HDR "    prot: tcp\n",
      "t.yaml:5:5: services[0].prot: unknown key; allowed: name, address, ports, protocol, layer, "
      "forwarding, scheduler, drop_on_failure, slow_start, ring_size, adaptive, persistence, acl, "
      "health_check, reals, tls, compression, cache, forwarded_headers, sub_services" },
    { "duplicate key", HDR "    ports: [81]\n",
      "t.yaml:5:5: services[0].ports: duplicate key (first at line 4, column 5); allowed: each "
      "key once" },
    { "duplicate key in a nested mapping", HDR "    health_check:\n      rise: 2\n      rise: 3\n",
      "t.yaml:7:7: services[0].health_check.rise: duplicate key (first at line 6, column 7); "
      "allowed: each key once" },
    { "a key that is not a name", "? [a]\n: 1\n",
      "t.yaml:1:3: (root): a key must be a name, got a list; allowed: node, proxy, services" },
    { "list where a mapping is expected", "node: [eth0]\n",
      "t.yaml:1:7: node: expected a mapping, got a list; allowed: a mapping with the keys "
      "interfaces, xdp_mode, bpffs, tunnel_source, gue_port, conn_table_size, rebalance_interval, "
      "metrics, api, deny, flood_threshold, udp_idle_timeout" },
    { "udp idle timeout out of range", "node: {udp_idle_timeout: 500ms}\n",
      "t.yaml:1:26: node.udp_idle_timeout: 500ms is out of range; allowed: 1s..1d" },
    { "mapping where a list is expected", "services: {name: web}\n",
      "t.yaml:1:11: services: expected a list, got a mapping; allowed: a list of services "
      "(mappings with name, address, ports, ...)" },
    { "string where a number is expected", HDR REAL(", weight: heavy"),
      "t.yaml:6:40: services[0].reals[0].weight: expected an integer, got \"heavy\"; allowed: an "
      "integer in 0..65535" },
    { "quoted number", HDR REAL(", weight: \"5\""),
      "t.yaml:6:40: services[0].reals[0].weight: expected an integer, got the quoted string "
      "\"5\"; allowed: an integer in 0..65535" },
    { "weight out of range", HDR REAL(", weight: 70000"),
      "t.yaml:6:40: services[0].reals[0].weight: 70000 is out of range; allowed: 0..65535" },
    { "negative weight in a sub-service",
      L7HDR "    sub_services:\n      - name: img\n"
            "        reals: [{address: 198.18.21.1, weight: -1}]\n",
      "t.yaml:8:48: services[0].sub_services[0].reals[0].weight: -1 is out of range; allowed: "
      "0..65535" },
    { "duplicate service name",
      HDR "  - name: web\n    address: 198.18.10.11\n    ports: [80]\n",
      "t.yaml:5:11: services[1].name: duplicate service name \"web\" (also services[0] at line "
      "2); allowed: a unique name per service" },
    { "duplicate real name",
      HDR "    reals:\n      - {name: a, address: 198.18.20.1}\n"
          "      - {name: a, address: 198.18.20.2}\n",
      "t.yaml:7:16: services[0].reals[1].name: duplicate real name \"a\" (also reals[0] at line "
      "6); allowed: a unique name per real" },
    { "duplicate real address",
      HDR "    reals:\n      - {address: 198.18.20.1}\n      - {address: 198.18.20.1}\n",
      "t.yaml:7:19: services[0].reals[1].address: duplicate real address 198.18.20.1 (also "
      "reals[0] at line 6); allowed: each address once" },
    { "two services claim one address, port and protocol",
      HDR "  - name: web2\n    address: 198.18.10.10\n    ports: [443, \"79-81\"]\n",
      "t.yaml:7:18: services[1].ports[1]: port 80/tcp of 198.18.10.10 is already served by "
      "services[0] (web); allowed: one service per address, port and protocol" },
    { "redirect_http claims port 80",
      HDR "  - name: secure\n    address: 198.18.10.10\n    ports: [443]\n    layer: 7\n"
          "    tls: {certificates: [/etc/xlb/a.pem], redirect_http: true}\n"
          "    reals: [{address: 198.18.20.1}]\n",
      "t.yaml:9:58: services[1].tls.redirect_http: port 80/tcp of 198.18.10.10 is already served "
      "by services[0] (web); allowed: one service per address, port and protocol" },
    { "reversed range", HDRP("[\"8100-8000\"]"),
      "t.yaml:4:13: services[0].ports[0]: range 8100-8000 is reversed; allowed: A-B with A <= B" },
    { "port 0", HDRP("[0]"),
      "t.yaml:4:13: services[0].ports[0]: port 0 is out of range; allowed: 1..65535" },
    { "range beyond 65535", HDRP("[\"65000-65536\"]"),
      "t.yaml:4:13: services[0].ports[0]: range 65000-65536 is out of range; allowed: 1..65535" },
    { "port listed twice", HDRP("[80, 443, 80]"),
      "t.yaml:4:22: services[0].ports[2]: port 80 is listed twice; allowed: each port once" },
    { "range overlaps a port", HDRP("[8050, 8000-8100]"),
      "t.yaml:4:19: services[0].ports[1]: port 8050 (in 8000-8100) is listed twice; allowed: "
      "each port once" },
    { "empty port list", HDRP("[]"),
      "t.yaml:4:12: services[0].ports: empty list; allowed: at least one port" },
    { "single port instead of a list", HDRP("80"),
      "t.yaml:4:12: services[0].ports: expected a list, got \"80\"; allowed: a list of ports "
      "1..65535 and \"A-B\" ranges" },
    { "quoted single port", HDRP("[\"80\"]"),
      "t.yaml:4:13: services[0].ports[0]: expected a port number or an \"A-B\" range, got the "
      "quoted string \"80\"; allowed: integers in 1..65535 and \"A-B\" ranges" },
    { "port translation with dsr",
      HDR "    forwarding: dsr\n    reals:\n      - {address: 198.18.20.1, port: 8080}\n",
      "t.yaml:7:38: services[0].reals[0].port: port 8080 differs from the service port 80; only "
      "forwarding nat translates ports; allowed: 0 or 80 with forwarding dsr" },
    { "real port on a multi-port ipip service", HDRP("[80, 443]") REAL(", port: 80"),
      "t.yaml:6:38: services[0].reals[0].port: port 80 with a service of 2 ports; only "
      "forwarding nat translates ports; allowed: 0 (the client's port) with forwarding ipip" },
    { "IPv4 real in an IPv6 service", V6HDR REAL(""),
      "t.yaml:6:19: services[0].reals[0].address: an IPv4 real in an IPv6 service cannot be "
      "reached with forwarding ipip; allowed: an IPv6 address" },
    { "IPv6 real in an IPv4 dsr service",
      HDR "    forwarding: dsr\n    reals:\n      - {address: \"fd00::20\"}\n",
      "t.yaml:7:19: services[0].reals[0].address: an IPv6 real in an IPv4 service needs "
      "forwarding ipip or gue (IPv4 in IPv6); allowed: an IPv4 address with forwarding dsr" },
    { "real at the VIP", HDR "    reals:\n      - {address: 198.18.10.10}\n",
      "t.yaml:6:19: services[0].reals[0].address: 198.18.10.10 is the service's own address; "
      "allowed: the real server's own address" },
    { "unspecified real address", HDR "    reals:\n      - {address: 0.0.0.0}\n",
      "t.yaml:6:19: services[0].reals[0].address: \"0.0.0.0\" is the unspecified address; "
      "allowed: a unicast address" },
    { "real without address", HDR "    reals:\n      - {name: a}\n",
      "t.yaml:6:9: services[0].reals[0]: address is missing; allowed: a real needs an address" },
    { "re-encryption on layer 4", HDR REAL(", tls: true"),
      "t.yaml:6:32: services[0].reals[0].tls: re-encryption to a real needs a layer 7 service; "
      "allowed: tls with layer: 7" },
    { "tls on layer 4", HDR "    tls: {certificates: [/a.pem]}\n",
      "t.yaml:5:5: services[0].tls: a layer 7 setting on a layer 4 service; allowed: tls with "
      "layer: 7" },
    { "sub_services on layer 4", HDR "    sub_services: []\n",
      "t.yaml:5:5: services[0].sub_services: a layer 7 setting on a layer 4 service; allowed: "
      "sub_services with layer: 7" },
    { "layer 7 persistence on layer 4", HDR "    persistence: {type: super-http}\n",
      "t.yaml:5:25: services[0].persistence.type: super-http persistence needs a layer 7 service; "
      "allowed on layer 4: none, source-ip" },
    { "proxy: unknown key", "proxy: {worker: 2}\n",
      "t.yaml:1:9: proxy.worker: unknown key; allowed: workers, metrics, access_log, "
      "cookie_key_file, trusted_proxies, timeouts, limits, upstream" },
    { "proxy: keepalive too short", "proxy:\n  timeouts: {keepalive: 50ms}\n",
      "t.yaml:2:25: proxy.timeouts.keepalive: 50ms is out of range; allowed: 100ms..1h" },
    { "proxy: relative access log", "proxy: {access_log: log.txt}\n",
      "t.yaml:1:21: proxy.access_log: \"log.txt\" is not a log destination; allowed: stderr, "
      "off or an absolute file path" },
    { "proxy: request line larger than the head",
      "proxy:\n  limits: {request_line: 64KiB, header_size: 16KiB}\n",
      "t.yaml:2:26: proxy.limits.request_line: request_line (65536 bytes) is larger than "
      "header_size (16384 bytes); allowed: request_line <= header_size" },
    { "proxy: fail_after 0", "proxy:\n  upstream: {fail_after: 0}\n",
      "t.yaml:2:26: proxy.upstream.fail_after: 0 is out of range; allowed: 1..1000" },
    { "layer 4 scheduler on layer 7",
      L7HDR "    scheduler: wrt\n    reals: [{address: 198.18.20.1}]\n",
      "t.yaml:6:16: services[0].scheduler: wrt is a layer 4 scheduler; allowed at layer 7: rr, "
      "wrr, lc, wlc, sh, fixed, maglev" },
    { "layer 7 real that is the service itself", L7HDR "    reals: [{address: 198.18.10.10}]\n",
      "t.yaml:6:23: services[0].reals[0].address: 198.18.10.10 port 443 is the service itself; "
      "allowed: another address, or a port the service does not listen on" },
    { "layer 7 real address and port twice",
      L7HDR "    reals: [{address: 198.18.20.1, port: 8080}, {address: 198.18.20.1, port: 8080}]\n",
      "t.yaml:6:78: services[0].reals[1].port: duplicate real 198.18.20.1 port 8080 (also "
      "reals[0] at line 6); allowed: each address and port once" },
    { "forwarding on layer 7", L7HDR "    forwarding: nat\n",
      "t.yaml:6:5: services[0].forwarding: a layer 7 service is proxied, not forwarded; allowed: "
      "forwarding with layer: 4" },
    { "udp on layer 7", L7HDR "    protocol: tcp+udp\n",
      "t.yaml:6:15: services[0].protocol: tcp+udp cannot be proxied at layer 7; allowed: tcp" },
    { "layer 7 without reals", L7HDR,
      "t.yaml:2:5: services[0]: a layer 7 service without reals; allowed: reals or sub_services "
      "with reals" },
    { "open sub-service before others",
      L7HDR "    sub_services:\n      - name: any\n        reals: [{address: 198.18.21.1}]\n"
            "      - name: img\n        match: {path_prefix: /img}\n"
            "        reals: [{address: 198.18.21.2}]\n",
      "t.yaml:7:9: services[0].sub_services[0]: has no match, so the sub-services after it are "
      "never chosen; allowed: a sub-service without match only as the last one" },
    { "persistence timeout too short", HDR "    persistence: {type: source-ip, timeout: 30s}\n",
      "t.yaml:5:45: services[0].persistence.timeout: 30s is out of range; allowed: 1m..7d" },
    { "persistence timeout too long", HDR "    persistence: {type: source-ip, timeout: 8d}\n",
      "t.yaml:5:45: services[0].persistence.timeout: 8d is out of range; allowed: 1m..7d" },
    { "netmask 33 on IPv4", HDR "    persistence: {type: source-ip, netmask: 33}\n",
      "t.yaml:5:45: services[0].persistence.netmask: 33 is out of range for an IPv4 service; "
      "allowed: 1..32" },
    { "netmask 129 on IPv6", V6HDR "    persistence: {type: source-ip, netmask: 129}\n",
      "t.yaml:5:45: services[0].persistence.netmask: 129 is out of range for an IPv6 service; "
      "allowed: 1..128" },
    { "persistence without type", HDR "    persistence: {timeout: 5m}\n",
      "t.yaml:5:18: services[0].persistence: type is missing; allowed: type: none, source-ip" },
    { "settings with type none", HDR "    persistence: {type: none, timeout: 5m}\n",
      "t.yaml:5:31: services[0].persistence.timeout: has no effect with type none; allowed: "
      "type: none alone" },
    { "fallback on source-ip", HDR "    persistence: {type: source-ip, fallback: source-ip}\n",
      "t.yaml:5:36: services[0].persistence.fallback: a fallback only applies to layer 7 "
      "persistence types; allowed: fallback with type active-cookie, server-cookie, "
      "hash-cookies, super-http, url-hash, host, query-item or header" },
    { "server-cookie without a cookie", L7HDR "    persistence: {type: server-cookie}\n",
      "t.yaml:6:18: services[0].persistence: server-cookie persistence needs cookie: NAME; "
      "allowed: cookie: the name to follow" },
    { "SameSite None without secure",
      L7HDR "    persistence: {type: active-cookie, secure: false, samesite: None}\n",
      "t.yaml:6:65: services[0].persistence.samesite: SameSite None needs secure: true (browsers "
      "drop such cookies otherwise); allowed: Lax, Strict, or None with secure: true" },
    { "check timeout above the interval", HDR "    health_check: {interval: 2s, timeout: 3s}\n",
      "t.yaml:5:43: services[0].health_check.timeout: 3s is longer than the interval 2s; "
      "allowed: 10ms..2s" },
    { "unreadable tls_ca",
      HDR "    health_check: {type: https, tls_ca: /nonexistent/ca.pem}\n",
      "t.yaml:5:41: services[0].health_check.tls_ca: cannot read /nonexistent/ca.pem: No such "
      "file or directory; allowed: a readable CA file (PEM)" },
    { "tls_ca on a directory", HDR "    health_check: {type: https, tls_ca: /}\n",
      "t.yaml:5:41: services[0].health_check.tls_ca: cannot read /: not a regular file; allowed: "
      "a readable CA file (PEM)" },
    { "check key of another type", HDR "    health_check: {type: http, query: x.test}\n",
      "t.yaml:5:32: services[0].health_check.query: not a setting of http checks; allowed with "
      "type http: type, port, interval, timeout, rise, fall, method, path, host, http_version, "
      "expect_status, expect_body" },
    { "unknown check type", HDR "    health_check: {type: ping}\n",
      "t.yaml:5:26: services[0].health_check.type: unknown check type \"ping\"; allowed: none, "
      "icmp, tcp, http, https, ftp, smtp, pop3, imap, nntp, telnet, dns, generic" },
    { "duration without unit", HDR "    health_check: {interval: 5}\n",
      "t.yaml:5:30: services[0].health_check.interval: \"5\" has no unit; allowed: a number with "
      "a unit (ms, s, m, h, d) in 100ms..1h" },
    { "duration with a bad unit", HDR "    health_check: {interval: 5x}\n",
      "t.yaml:5:30: services[0].health_check.interval: \"5x\" is not a duration; allowed: a "
      "number with a unit (ms, s, m, h, d) in 100ms..1h" },
    { "status code out of range", HDR "    health_check: {type: http, expect_status: [200, 600]}\n",
      "t.yaml:5:53: services[0].health_check.expect_status[1]: status 600 is out of range; "
      "allowed: 100..599" },
    { "expect_body with HEAD",
      HDR "    health_check: {type: http, method: HEAD, expect_body: OK}\n",
      "t.yaml:5:46: services[0].health_check.expect_body: a HEAD response has no body; allowed: "
      "expect_body with method: GET" },
    { "generic send not hex", HDR "    health_check: {type: generic, send: \"0g\"}\n",
      "t.yaml:5:41: services[0].health_check.send: the quoted string \"0g\" is not hex; allowed: "
      "pairs of hex digits, optionally separated by spaces, such as \"50 49 4e 47 0d 0a\"" },
    { "slow_start with wrr", HDR "    slow_start: 30s\n",
      "t.yaml:5:5: services[0].slow_start: only the lc and wlc schedulers ramp up new reals "
      "(this service uses wrr); allowed: slow_start with scheduler lc or wlc" },
    { "adaptive with wlc", HDR "    scheduler: wlc\n    adaptive: {path: /load}\n",
      "t.yaml:6:5: services[0].adaptive: only the adaptive scheduler reads a load file (this "
      "service uses wlc); allowed: adaptive with scheduler adaptive" },
    { "ring size not prime", HDR "    ring_size: 65536\n",
      "t.yaml:5:16: services[0].ring_size: 65536 is not a prime in 7..1048573; allowed: a prime "
      "such as 65537" },
    { "bool as yes", HDR "    drop_on_failure: yes\n",
      "t.yaml:5:22: services[0].drop_on_failure: expected true or false, got \"yes\"; allowed: "
      "true, false" },
    { "unknown scheduler", HDR "    scheduler: fastest\n",
      "t.yaml:5:16: services[0].scheduler: unknown scheduler \"fastest\"; allowed: rr, wrr, lc, "
      "wlc, adaptive, fixed, wrt, sh, maglev" },
    { "unknown protocol", HDR "    protocol: sctp\n",
      "t.yaml:5:15: services[0].protocol: unknown protocol \"sctp\"; allowed: tcp, udp, tcp+udp" },
    { "layer 5", HDR "    layer: 5\n",
      "t.yaml:5:12: services[0].layer: 5 is not a layer; allowed: 4, 7" },
    { "service without address", "services:\n  - name: web\n    ports: [80]\n",
      "t.yaml:2:5: services[0]: address is missing; allowed: a service needs name, address and "
      "ports" },
    { "address with a prefix length",
      "services:\n  - name: web\n    address: 198.18.10.0/24\n    ports: [80]\n",
      "t.yaml:3:14: services[0].address: \"198.18.10.0/24\" is not an IPv4 or IPv6 address; "
      "allowed: an address such as 198.18.10.10 or fd00::10" },
    { "name with a space",
      "services:\n  - name: \"web server\"\n    address: 198.18.10.10\n    ports: [80]\n",
      "t.yaml:2:11: services[0].name: the quoted string \"web server\" is not a valid name; "
      "allowed: 1..47 characters of A-Z a-z 0-9 . _ -" },
    { "name too long",
      "services:\n  - name: abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv\n"
      "    address: 198.18.10.10\n    ports: [80]\n",
      "t.yaml:2:11: services[0].name: is too long (48 characters); allowed: at most 47 "
      "characters" },
    { "control character in a string",
      "services:\n  - name: \"a\\tb\"\n    address: 198.18.10.10\n    ports: [80]\n",
      "t.yaml:2:11: services[0].name: the quoted string \"a?b\" contains a control character; "
      "allowed: printable text" },
    { "size with a decimal unit", L7HDR "    compression: {min_size: 1KB}\n",
      "t.yaml:6:29: services[0].compression.min_size: \"1KB\" is not a size; allowed: bytes, or "
      "a number with B, KiB, MiB or GiB, in 0..1GiB" },
    { "cache object above the cache", L7HDR "    cache: {max_size: 1MiB, max_object: 2MiB}\n",
      "t.yaml:6:41: services[0].cache.max_object: max_object 2MiB is larger than max_size 1MiB; "
      "allowed: max_object <= max_size" },
    { "unknown xdp mode", "node:\n  xdp_mode: fast\n",
      "t.yaml:2:13: node.xdp_mode: unknown xdp mode \"fast\"; allowed: native, generic, auto" },
    { "connection table too small", "node:\n  conn_table_size: 999\n",
      "t.yaml:2:20: node.conn_table_size: 999 is out of range; allowed: 1000..100000000" },
    { "rebalance interval too long", "node:\n  rebalance_interval: 61s\n",
      "t.yaml:2:23: node.rebalance_interval: 61s is out of range; allowed: 100ms..1m" },
    { "IPv6 listen without brackets", "node:\n  metrics: {listen: \"::1:9120\"}\n",
      "t.yaml:2:21: node.metrics.listen: the quoted string \"::1:9120\" is not ADDRESS:PORT; "
      "allowed: such as 127.0.0.1:9120 or [::1]:9120" },
    { "api and metrics on one port",
      "node:\n  metrics: {listen: \"127.0.0.1:9200\"}\n  api: {listen: \"127.0.0.1:9200\"}\n",
      "t.yaml:3:8: node.api: the api and metrics listen on the same address and port; allowed: "
      "two different ports" },
    { "interfaces as a string", "node:\n  interfaces: eth0\n",
      "t.yaml:2:15: node.interfaces: expected a list, got \"eth0\"; allowed: a list of interface "
      "names" },
    { "IPv6 tunnel source as ipv4", "node:\n  tunnel_source: {ipv4: \"fd00::1\"}\n",
      "t.yaml:2:25: node.tunnel_source.ipv4: the quoted string \"fd00::1\" is not a unicast IPv4 "
      "address; allowed: ADDRESS or ADDRESS/PLEN such as 198.18.0.1 or 198.18.0.0/24" },
    { "acl prefix with host bits", HDR "    acl: {deny: [\"198.19.66.1/24\"]}\n",
      "t.yaml:5:18: services[0].acl.deny[0]: 198.19.66.1/24 has host bits set; allowed: "
      "198.19.66.0/24" },
    { "acl prefix of the other family", HDR "    acl: {allow: [\"fd00::/8\"]}\n",
      "t.yaml:5:19: services[0].acl.allow[0]: IPv6 prefix fd00::/8 never matches the clients of "
      "an IPv4 service; allowed: IPv4 prefixes" },
    { "YAML syntax error", "services: [a, b\n",
      "t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
      "sequence at line 1, column 11)" },
    { "tab indentation", "node:\n\txdp_mode: auto\n",
      "t.yaml:2:1: YAML syntax error: found character that cannot start any token (while "
      "scanning for the next token at line 2, column 1)" },
    { "second document", "node: {}\n---\nservices: []\n",
      "t.yaml:2:1: (root): a second YAML document; allowed: one document per file" },
    { "empty file", "# nothing here\n",
      "t.yaml:1:1: (root): the configuration is empty; allowed: a mapping with node and "
      "services" },
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

/* Parameters are indexes: each test runs in a process of its own, where
 * the table's pointers are valid but the parent's would not be. */
ParameterizedTestParameters(config_bad, exact_error)
{
    static int idx[N_BAD];
    size_t i;

    for (i = 0; i < N_BAD; i++)
        idx[i] = (int)i;
    return cr_make_param_array(int, idx, N_BAD);
}

ParameterizedTest(int *i, config_bad, exact_error)
{
    const struct bad *b = &bad_cases[*i];
    struct xlb_config *c = (struct xlb_config *)1;
    char err[1024];
    int rc;

    memset(err, 'x', sizeof(err));
    rc = xlb_config_parse("t.yaml", b->yaml, strlen(b->yaml), &c, err, sizeof(err));
    cr_assert_eq(rc, -EINVAL, "%s: rc %d", b->what, rc);
    cr_expect_null(c, "%s: config returned with an error", b->what);
    cr_expect_str_eq(err, b->err, "%s", b->what);
    cr_expect_null(strchr(err, '\n'), "%s: the error spans lines", b->what);
}

Test(config_bad, table_is_large_enough)
{
    cr_expect_geq(N_BAD, 30);
}

Test(config_bad, tiny_error_buffer_and_no_buffer)
{
    const char *y = HDR REAL(", weight: 70000");
    struct xlb_config *c = NULL;
    char err[8];

    cr_expect_eq(xlb_config_parse("t.yaml", y, strlen(y), &c, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "t.yaml:");
    cr_expect_eq(xlb_config_parse("t.yaml", y, strlen(y), &c, NULL, 0), -EINVAL);
    cr_expect_null(c);
    cr_expect_eq(xlb_config_parse("t.yaml", NULL, 0, &c, NULL, 0), -EINVAL);
    cr_expect_eq(xlb_config_parse("t.yaml", y, strlen(y), NULL, NULL, 0), -EINVAL);
    xlb_config_free(NULL);
}

/* ------------------------------------------------------------------ */
/* good configurations                                                  */

static void expect_default_hc(const struct xlb_cfg_hc *h)
{
    cr_expect_eq(h->type, XLB_HC_TCP);
    cr_expect_eq(h->port, 0);
    cr_expect_eq(h->interval_ms, 5000);
    cr_expect_eq(h->timeout_ms, 3000);
    cr_expect_eq(h->rise, 2);
    cr_expect_eq(h->fall, 3);
    cr_expect_str_eq(h->method, "HEAD");
    cr_expect_str_eq(h->path, "/");
    cr_expect_str_eq(h->host, "");
    cr_expect_not(h->http10);
    cr_assert_eq(h->n_status, 4);
    cr_expect(h->status[0].lo == 200 && h->status[0].hi == 299);
    cr_expect(h->status[1].lo == 301 && h->status[1].hi == 301);
    cr_expect(h->status[2].lo == 302 && h->status[2].hi == 302);
    cr_expect(h->status[3].lo == 401 && h->status[3].hi == 401);
    cr_expect_str_eq(h->expect_body, "");
    cr_expect_not(h->tls_verify);
    cr_expect_str_eq(h->tls_ca, "");
    cr_expect_str_eq(h->dns_name, "localhost.");
    cr_expect_eq(h->send_len, 0);
    cr_expect_eq(h->expect_len, 0);
    cr_expect_eq(h->expect_within, 1024);
}

static void expect_default_persistence(const struct xlb_cfg_persistence *p)
{
    cr_expect_eq(p->type, XLB_PERSIST_NONE);
    cr_expect_eq(p->timeout_ms, 300000);
    cr_expect_eq(p->netmask4, 32);
    cr_expect_eq(p->netmask6, 128);
    cr_expect_eq(p->fallback, XLB_PERSIST_NONE);
    cr_expect_str_eq(p->name, "");
    cr_expect_not(p->share_by_address);
    cr_expect(p->cookie_secure);
    cr_expect(p->cookie_httponly);
    cr_expect_str_eq(p->cookie_samesite, "Lax");
}

Test(config_good, minimal_service_gets_every_default)
{
    struct xlb_config *c = parse_ok(HDR REAL(""));
    const struct xlb_cfg_service *s;
    const struct xlb_cfg_node *n = &c->node;
    const struct xlb_cfg_real *r;

    cr_expect_str_eq(c->path, "t.yaml");
    /* node defaults */
    cr_expect_eq(n->n_ifaces, 0);
    cr_expect_eq(n->xdp_mode, XLB_MODE_AUTO);
    cr_expect_str_eq(n->bpffs, XLB_BPFFS_DEFAULT);
    addr_is(XLB_FAMILY_V4, &n->tunnel_src4, "0.0.0.0");
    addr_is(XLB_FAMILY_V6, &n->tunnel_src6, "::");
    cr_expect_eq(n->tunnel_src4_plen, 0);
    cr_expect_eq(n->tunnel_src6_plen, 0);
    cr_expect_eq(n->gue_port, XLB_GUE_PORT_DEFAULT);
    cr_expect_eq(n->conn_table_size, XLB_CONN_TABLE_DEFAULT);
    cr_expect_eq(n->rebalance_ms, 1000);
    cr_expect_eq(n->flood_threshold, 0);
    cr_expect_eq(n->udp_idle_ms, 30000);
    cr_expect(n->metrics.set);
    cr_expect_eq(n->metrics.family, XLB_FAMILY_V4);
    addr_is(XLB_FAMILY_V4, &n->metrics.addr, "127.0.0.1");
    cr_expect_eq(n->metrics.port, 9120);
    cr_expect(n->api.set);
    addr_is(XLB_FAMILY_V4, &n->api.addr, "127.0.0.1");
    cr_expect_eq(n->api.port, 9121);
    cr_expect_str_eq(n->api_token_file, "/etc/xlb/api.token");
    cr_expect_eq(n->deny.n_deny, 0);
    cr_expect_eq(n->deny.n_allow, 0);

    cr_assert_eq(c->n_services, 1);
    s = &c->services[0];
    cr_expect_str_eq(s->name, "web");
    cr_expect_eq(s->family, XLB_FAMILY_V4);
    addr_is(s->family, &s->addr, "198.18.10.10");
    cr_assert_eq(s->n_ports, 1);
    cr_expect_eq(s->ports[0], 80);
    cr_expect_eq(s->protocols, XLB_CFG_PROTO_TCP);
    cr_expect_eq(s->layer, 4);
    cr_expect_eq(s->forwarding, XLB_CFG_FWD_IPIP);
    cr_expect_eq(s->scheduler, XLB_SCHED_WRR);
    cr_expect_not(s->drop_on_failure);
    cr_expect_eq(s->slow_start_ms, 0);
    cr_expect_eq(s->ring_size, XLB_RING_DEFAULT);
    cr_expect_str_eq(s->adaptive_path, "/load");
    cr_expect_eq(s->adaptive_port, 80);
    cr_expect_eq(s->adaptive_interval_ms, 5000);
    expect_default_persistence(&s->persistence);
    cr_expect_eq(s->acl.n_allow, 0);
    cr_expect_eq(s->acl.n_deny, 0);
    expect_default_hc(&s->hc);
    cr_expect_not(s->tls.enabled);
    cr_expect_eq(s->tls.n_certs, 0);
    cr_expect_not(s->tls.redirect_http);
    cr_expect_str_eq(s->tls.min_version, "1.2");
    cr_expect_not(s->compression.enabled);
    cr_expect_eq(s->compression.min_size, 1024);
    cr_expect_eq(s->compression.level, 6);
    cr_assert_eq(s->compression.n_types, 3);
    cr_expect_str_eq(s->compression.types[0], "text/*");
    cr_expect_str_eq(s->compression.types[1], "application/json");
    cr_expect_str_eq(s->compression.types[2], "application/javascript");
    cr_expect_not(s->cache.enabled);
    cr_expect_eq(s->cache.max_size, 64u << 20);
    cr_expect_eq(s->cache.max_object, 1u << 20);
    cr_expect_not(s->cache.cache_query);
    cr_expect_not(s->forwarded_headers);
    cr_expect_eq(s->n_subs, 0);
    cr_expect_eq(s->line, 2);
    cr_expect_eq(s->column, 5);

    cr_assert_eq(s->n_reals, 1);
    r = &s->reals[0];
    cr_expect_str_eq(r->name, "198.18.20.1");
    cr_expect_eq(r->family, XLB_FAMILY_V4);
    addr_is(r->family, &r->addr, "198.18.20.1");
    cr_expect_eq(r->port, 0);
    cr_expect_eq(r->weight, 100);
    cr_expect_eq(r->max_conns, 0);
    cr_expect_not(r->tls);
    cr_expect(r->enabled);
    cr_expect_eq(r->line, 6);
    cr_expect_eq(r->column, 9);
    xlb_config_free(c);
}

Test(config_good, empty_services_and_no_node)
{
    struct xlb_config *c = parse_ok("services: []\n");

    cr_expect_eq(c->n_services, 0);
    cr_expect_eq(c->node.conn_table_size, XLB_CONN_TABLE_DEFAULT);
    xlb_config_free(c);
}

Test(config_good, node_every_key)
{
    struct xlb_config *c = parse_ok(
        "node:\n"
        "  interfaces: [eth0, veth-lb1]\n"
        "  xdp_mode: generic\n"
        "  bpffs: /sys/fs/bpf/xlbt\n"
        "  tunnel_source: {ipv4: 198.18.0.0/28, ipv6: \"fd00::1\"}\n"
        "  gue_port: 7080\n"
        "  conn_table_size: 2000\n"
        "  rebalance_interval: 250ms\n"
        "  flood_threshold: 50000\n"
        "  udp_idle_timeout: 2m\n"
        "  metrics: {listen: \"[::1]:9300\"}\n"
        "  api: {enabled: false, token_file: /run/xlb.token}\n"
        "  deny: [198.19.0.1, \"fd00:bad::/48\"]\n");
    const struct xlb_cfg_node *n = &c->node;

    cr_assert_eq(n->n_ifaces, 2);
    cr_expect_str_eq(n->ifaces[0], "eth0");
    cr_expect_str_eq(n->ifaces[1], "veth-lb1");
    cr_expect_eq(n->xdp_mode, XLB_MODE_GENERIC);
    cr_expect_str_eq(n->bpffs, "/sys/fs/bpf/xlbt");
    addr_is(XLB_FAMILY_V4, &n->tunnel_src4, "198.18.0.0");
    cr_expect_eq(n->tunnel_src4_plen, 28);
    addr_is(XLB_FAMILY_V6, &n->tunnel_src6, "fd00::1");
    cr_expect_eq(n->tunnel_src6_plen, 128);
    cr_expect_eq(n->gue_port, 7080);
    cr_expect_eq(n->conn_table_size, 2000);
    cr_expect_eq(n->rebalance_ms, 250);
    cr_expect_eq(n->flood_threshold, 50000);
    cr_expect_eq(n->udp_idle_ms, 120000);
    cr_expect(n->metrics.set);
    cr_expect_eq(n->metrics.family, XLB_FAMILY_V6);
    addr_is(XLB_FAMILY_V6, &n->metrics.addr, "::1");
    cr_expect_eq(n->metrics.port, 9300);
    cr_expect_not(n->api.set);
    cr_expect_eq(n->api.port, 9121);
    cr_expect_str_eq(n->api_token_file, "/run/xlb.token");
    cr_assert_eq(n->deny.n_deny, 2);
    cr_expect_eq(n->deny.deny[0].family, XLB_FAMILY_V4);
    cr_expect_eq(n->deny.deny[0].plen, 32);
    addr_is(XLB_FAMILY_V4, &n->deny.deny[0].addr, "198.19.0.1");
    cr_expect_eq(n->deny.deny[1].family, XLB_FAMILY_V6);
    cr_expect_eq(n->deny.deny[1].plen, 48);
    addr_is(XLB_FAMILY_V6, &n->deny.deny[1].addr, "fd00:bad::");
    xlb_config_free(c);
}

Test(config_good, layer4_service_every_key)
{
    struct xlb_config *c = parse_ok(
        "services:\n"
        "  - name: gw\n"
        "    address: 198.18.10.10\n"
        "    ports: [443, \"8000-8002\", 80]\n"
        "    protocol: tcp+udp\n"
        "    layer: 4\n"
        "    forwarding: nat\n"
        "    scheduler: wlc\n"
        "    slow_start: 30s\n"
        "    ring_size: 251\n"
        "    drop_on_failure: true\n"
        "    persistence: {type: source-ip, timeout: 20m, netmask: 24, share_by_address: true}\n"
        "    acl: {allow: [198.19.0.0/16], deny: [198.19.66.0/24, 198.19.1.1]}\n"
        "    health_check:\n"
        "      type: https\n"
        "      port: 8443\n"
        "      method: GET\n"
        "      path: /ping\n"
        "      host: gw.example.test\n"
        "      http_version: \"1.0\"\n"
        "      expect_status: [\"200-204\", 302]\n"
        "      expect_body: OK\n"
        "      tls_verify: true\n"
        "      interval: 2s\n"
        "      timeout: 1500ms\n"
        "      rise: 1\n"
        "      fall: 5\n"
        "    reals:\n"
        "      - {name: a, address: 198.18.20.1, port: 8080, weight: 0, max_conns: 500,"
        " enabled: false}\n"
        "      - {address: 198.18.20.22, weight: 65535}\n");
    const struct xlb_cfg_service *s = &c->services[0];
    const struct xlb_cfg_hc *h = &s->hc;
    static const uint16_t ports[] = { 80, 443, 8000, 8001, 8002 };
    int i;

    cr_assert_eq(s->n_ports, 5);
    for (i = 0; i < 5; i++)
        cr_expect_eq(s->ports[i], ports[i], "port %d", i);
    cr_expect_eq(s->protocols, XLB_CFG_PROTO_TCP | XLB_CFG_PROTO_UDP);
    cr_expect_eq(s->forwarding, XLB_CFG_FWD_NAT);
    cr_expect_eq(s->scheduler, XLB_SCHED_WLC);
    cr_expect_eq(s->slow_start_ms, 30000);
    cr_expect_eq(s->ring_size, 251);
    cr_expect(s->drop_on_failure);
    cr_expect_eq(s->persistence.type, XLB_PERSIST_SOURCE_IP);
    cr_expect_eq(s->persistence.timeout_ms, 20 * 60000);
    cr_expect_eq(s->persistence.netmask4, 24);
    cr_expect_eq(s->persistence.netmask6, 128);
    cr_expect(s->persistence.share_by_address);
    cr_assert_eq(s->acl.n_allow, 1);
    cr_expect_eq(s->acl.allow[0].plen, 16);
    addr_is(XLB_FAMILY_V4, &s->acl.allow[0].addr, "198.19.0.0");
    cr_assert_eq(s->acl.n_deny, 2);
    cr_expect_eq(s->acl.deny[0].plen, 24);
    cr_expect_eq(s->acl.deny[1].plen, 32);
    addr_is(XLB_FAMILY_V4, &s->acl.deny[1].addr, "198.19.1.1");

    cr_expect_eq(h->type, XLB_HC_HTTPS);
    cr_expect_eq(h->port, 8443);
    cr_expect_str_eq(h->method, "GET");
    cr_expect_str_eq(h->path, "/ping");
    cr_expect_str_eq(h->host, "gw.example.test");
    cr_expect(h->http10);
    cr_assert_eq(h->n_status, 2);
    cr_expect(h->status[0].lo == 200 && h->status[0].hi == 204);
    cr_expect(h->status[1].lo == 302 && h->status[1].hi == 302);
    cr_expect_str_eq(h->expect_body, "OK");
    cr_expect(h->tls_verify);
    cr_expect_eq(h->interval_ms, 2000);
    cr_expect_eq(h->timeout_ms, 1500);
    cr_expect_eq(h->rise, 1);
    cr_expect_eq(h->fall, 5);

    cr_assert_eq(s->n_reals, 2);
    cr_expect_str_eq(s->reals[0].name, "a");
    cr_expect_eq(s->reals[0].port, 8080);
    cr_expect_eq(s->reals[0].weight, 0);
    cr_expect_eq(s->reals[0].max_conns, 500);
    cr_expect_not(s->reals[0].enabled);
    cr_expect_eq(s->reals[0].line, 29);
    cr_expect_str_eq(s->reals[1].name, "198.18.20.22");
    cr_expect_eq(s->reals[1].family, XLB_FAMILY_V4);
    cr_expect_eq(s->reals[1].weight, 65535);
    cr_expect(s->reals[1].enabled);
    xlb_config_free(c);
}

Test(config_good, ipv4_in_ipv6_and_real_port_equal_to_service_port)
{
    struct xlb_config *c = parse_ok(
        "services:\n"
        "  - {name: a, address: 198.18.10.30, ports: [53], protocol: udp, forwarding: gue,\n"
        "     reals: [{address: \"fd00:20::31\"}, {address: 198.18.20.2, port: 53}]}\n"
        "  - name: b\n"
        "    address: \"fd00:10::1\"\n"
        "    ports: [80]\n"
        "    forwarding: dsr\n"
        "    persistence: {type: source-ip, netmask: 64}\n"
        "    reals: [{address: \"fd00:20::1\", port: 80}]\n");

    cr_assert_eq(c->n_services, 2);
    cr_expect_eq(c->services[0].protocols, XLB_CFG_PROTO_UDP);
    cr_expect_eq(c->services[0].forwarding, XLB_CFG_FWD_GUE);
    cr_expect_eq(c->services[0].reals[0].family, XLB_FAMILY_V6);
    cr_expect_eq(c->services[0].reals[1].port, 53);
    cr_expect_eq(c->services[1].family, XLB_FAMILY_V6);
    cr_expect_eq(c->services[1].persistence.netmask6, 64);
    cr_expect_eq(c->services[1].persistence.netmask4, 32);
    xlb_config_free(c);
}

Test(config_good, same_port_other_protocol_or_address)
{
    struct xlb_config *c = parse_ok(
        "services:\n"
        "  - {name: t, address: 198.18.10.10, ports: [53], protocol: tcp}\n"
        "  - {name: u, address: 198.18.10.10, ports: [53], protocol: udp}\n"
        "  - {name: o, address: 198.18.10.11, ports: [53], protocol: tcp+udp}\n");

    cr_expect_eq(c->n_services, 3);
    xlb_config_free(c);
}

Test(config_good, check_defaults_follow_the_settings)
{
    struct xlb_config *c = parse_ok(
        HDR "    health_check: {type: http, interval: 1s, expect_body: ready}\n"
        "  - name: dns\n    address: 198.18.10.53\n    ports: [53]\n    protocol: udp\n"
        "    health_check: {type: dns, query: svc.example.test.}\n"
        "  - name: gen\n    address: 198.18.10.54\n    ports: [7]\n"
        "    health_check: {type: generic, send: \"50494e470d0a\", expect: \"50 4f 4e 47\","
        " expect_within: 64}\n"
        "  - name: off\n    address: 198.18.10.55\n    ports: [7]\n"
        "    health_check: {type: none}\n");
    const struct xlb_cfg_hc *h = &c->services[0].hc;
    static const uint8_t send[] = "PING\r\n", expect[] = "PONG";

    /* the timeout defaults to 3s but never beyond the interval; a body
     * check needs a body, so the method becomes GET */
    cr_expect_eq(h->interval_ms, 1000);
    cr_expect_eq(h->timeout_ms, 1000);
    cr_expect_str_eq(h->method, "GET");
    cr_expect_str_eq(h->expect_body, "ready");
    h = &c->services[1].hc;
    cr_expect_eq(h->type, XLB_HC_DNS);
    cr_expect_str_eq(h->dns_name, "svc.example.test.");
    h = &c->services[2].hc;
    cr_expect_eq(h->type, XLB_HC_GENERIC);
    cr_assert_eq(h->send_len, 6);
    cr_expect_arr_eq(h->send, send, 6);
    cr_assert_eq(h->expect_len, 4);
    cr_expect_arr_eq(h->expect, expect, 4);
    cr_expect_eq(h->expect_within, 64);
    cr_expect_eq(c->services[3].hc.type, XLB_HC_NONE);
    xlb_config_free(c);
}

Test(config_good, tls_ca_that_exists)
{
    char path[] = "/tmp/xlbt-cfg-ca-XXXXXX", text[512];
    struct xlb_config *c;
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(text, sizeof(text),
             HDR "    health_check: {type: https, tls_verify: true, tls_ca: %s}\n", path);
    c = parse_ok(text);
    unlink(path);
    cr_expect_str_eq(c->services[0].hc.tls_ca, path);
    cr_expect(c->services[0].hc.tls_verify);
    xlb_config_free(c);
}

Test(config_good, layer7_every_key_and_inheritance)
{
    struct xlb_config *c = parse_ok(
        "services:\n"
        "  - name: web\n"
        "    address: 198.18.10.20\n"
        "    ports: [443]\n"
        "    layer: 7\n"
        "    scheduler: lc\n"
        "    tls: {certificates: [/etc/xlb/a.pem, /etc/xlb/b.pem], redirect_http: true,\n"
        "          min_version: \"1.3\", ca_file: /etc/xlb/ca.pem}\n"
        "    persistence: {type: super-http, fallback: source-ip, timeout: 20m, netmask: 24}\n"
        "    compression: {min_size: 512, level: 9, types: [text/html, \"image/*\"]}\n"
        "    cache: {max_size: 256MiB, max_object: 2MiB, cache_query: true}\n"
        "    forwarded_headers: true\n"
        "    health_check: {type: http, path: /h}\n"
        "    sub_services:\n"
        "      - name: api\n"
        "        match: {path_prefix: /api, path_regex: \"^/api/v[0-9]+\", host: api.test,\n"
        "                header: {name: X-Tenant, value: blue}, method: POST}\n"
        "        scheduler: rr\n"
        "        persistence: {type: header, header: X-Session}\n"
        "        health_check: {type: tcp}\n"
        "        reals: [{address: 198.18.21.1, port: 8080, tls: true}]\n"
        "      - name: rest\n"
        "        reals: [{address: 198.18.21.2}, {address: \"fd00:21::3\"}]\n"
        "  - name: web-80\n"
        "    address: 198.18.10.21\n"
        "    ports: [80]\n"
        "    layer: 7\n"
        "    persistence: {type: active-cookie}\n"
        "    compression: {enabled: false}\n"
        "    reals: [{address: 198.18.21.5}]\n");
    const struct xlb_cfg_service *s = &c->services[0];
    const struct xlb_cfg_sub *a, *b;

    cr_expect_eq(s->layer, 7);
    cr_expect_eq(s->forwarding, 0);
    cr_expect_str_eq(xlb_cfg_fwd_name(s->forwarding), "none");
    cr_expect(s->tls.enabled);
    cr_assert_eq(s->tls.n_certs, 2);
    cr_expect_str_eq(s->tls.certs[0], "/etc/xlb/a.pem");
    cr_expect_str_eq(s->tls.certs[1], "/etc/xlb/b.pem");
    cr_expect(s->tls.redirect_http);
    cr_expect_str_eq(s->tls.min_version, "1.3");
    cr_expect_str_eq(s->tls.ca_file, "/etc/xlb/ca.pem");
    cr_expect_eq(s->persistence.type, XLB_PERSIST_SUPER_HTTP);
    cr_expect_eq(s->persistence.fallback, XLB_PERSIST_SOURCE_IP);
    cr_expect_eq(s->persistence.timeout_ms, 1200000);
    cr_expect_eq(s->persistence.netmask4, 24);
    cr_expect(s->compression.enabled);
    cr_expect_eq(s->compression.min_size, 512);
    cr_expect_eq(s->compression.level, 9);
    cr_assert_eq(s->compression.n_types, 2);
    cr_expect_str_eq(s->compression.types[0], "text/html");
    cr_expect_str_eq(s->compression.types[1], "image/*");
    cr_expect(s->cache.enabled);
    cr_expect_eq(s->cache.max_size, 256u << 20);
    cr_expect_eq(s->cache.max_object, 2u << 20);
    cr_expect(s->cache.cache_query);
    cr_expect(s->forwarded_headers);
    cr_expect_eq(s->n_reals, 0);

    cr_assert_eq(s->n_subs, 2);
    a = &s->subs[0];
    b = &s->subs[1];
    cr_expect_str_eq(a->name, "api");
    cr_expect_str_eq(a->match.path_prefix, "/api");
    cr_expect_str_eq(a->match.path_regex, "^/api/v[0-9]+");
    cr_expect_str_eq(a->match.host, "api.test");
    cr_expect_str_eq(a->match.header_name, "X-Tenant");
    cr_expect_str_eq(a->match.header_value, "blue");
    cr_expect_str_eq(a->match.method, "POST");
    cr_expect_eq(a->scheduler, XLB_SCHED_RR);
    cr_expect_eq(a->persistence.type, XLB_PERSIST_HEADER);
    cr_expect_str_eq(a->persistence.name, "X-Session");
    cr_expect_eq(a->persistence.fallback, XLB_PERSIST_NONE);
    cr_expect_eq(a->hc.type, XLB_HC_TCP);
    cr_assert_eq(a->n_reals, 1);
    cr_expect_eq(a->reals[0].port, 8080);
    cr_expect(a->reals[0].tls);
    /* the open sub-service inherits the service's scheduler, persistence
     * and check */
    cr_expect_str_eq(b->match.path_prefix, "");
    cr_expect_eq(b->scheduler, XLB_SCHED_LC);
    cr_expect_eq(b->persistence.type, XLB_PERSIST_SUPER_HTTP);
    cr_expect_eq(b->hc.type, XLB_HC_HTTP);
    cr_expect_str_eq(b->hc.path, "/h");
    cr_assert_eq(b->n_reals, 2);
    cr_expect_eq(b->reals[1].family, XLB_FAMILY_V6);

    s = &c->services[1];
    cr_expect_eq(s->persistence.type, XLB_PERSIST_ACTIVE_COOKIE);
    cr_expect_str_eq(s->persistence.name, XLB_CFG_COOKIE_DEFAULT);
    cr_expect(s->persistence.cookie_secure);
    cr_expect(s->persistence.cookie_httponly);
    cr_expect_str_eq(s->persistence.cookie_samesite, "Lax");
    cr_expect_not(s->compression.enabled);
    cr_expect_eq(s->compression.n_types, 3);
    cr_expect_not(s->tls.enabled);
    xlb_config_free(c);
}

Test(config_good, proxy_defaults_every_key_and_l7_reals_sharing_a_host)
{
    static const char y[] =
        "proxy:\n"
        "  workers: 4\n"
        "  metrics: {listen: \"127.0.0.1:9200\"}\n"
        "  access_log: /var/log/xlb/access.log\n"
        "  cookie_key_file: /etc/xlb/k\n"
        "  trusted_proxies: [198.18.0.0/24, \"fd00::/64\"]\n"
        "  timeouts: {client_header: 5s, client_body: 6s, keepalive: 7s, upstream_connect: 1s,\n"
        "             upstream_response: 9s, upstream_idle: 10s}\n"
        "  limits: {request_line: 4KiB, header_size: 16KiB, header_count: 50, body_size: 10MiB}\n"
        "  upstream: {max_idle: 8, retries: 1, fail_after: 3, fail_time: 20s}\n"
        HDRP("[443]") "    layer: 7\n"
        "    reals: [{address: 198.18.10.10, port: 8443}, {address: 198.18.20.1, port: 8080},\n"
        "            {address: 198.18.20.1, port: 8081}, {address: \"fd00::1\", port: 8080}]\n";
    struct xlb_config *c = parse_ok(y), *d = parse_ok("services: []\n");
    const struct xlb_cfg_proxy *p = &c->proxy, *q = &d->proxy;

    cr_expect_eq(p->workers, 4);
    cr_expect_eq(p->metrics.port, 9200);
    cr_expect_str_eq(p->access_log, "/var/log/xlb/access.log");
    cr_expect_str_eq(p->cookie_key_file, "/etc/xlb/k");
    cr_assert_eq(p->trusted.n_allow, 2);
    cr_expect_eq(p->trusted.allow[1].plen, 64);
    cr_expect_eq(p->client_header_ms, 5000);
    cr_expect_eq(p->client_body_ms, 6000);
    cr_expect_eq(p->keepalive_ms, 7000);
    cr_expect_eq(p->connect_ms, 1000);
    cr_expect_eq(p->response_ms, 9000);
    cr_expect_eq(p->upstream_idle_ms, 10000);
    cr_expect_eq(p->max_request_line, 4096);
    cr_expect_eq(p->max_header_size, 16384);
    cr_expect_eq(p->max_header_count, 50);
    cr_expect_eq(p->max_body_size, 10u << 20);
    cr_expect_eq(p->pool_max_idle, 8);
    cr_expect_eq(p->retries, 1);
    cr_expect_eq(p->fail_after, 3);
    cr_expect_eq(p->fail_ms, 20000);
    cr_assert_eq(c->services[0].n_reals, 4);
    cr_expect_str_eq(c->services[0].reals[0].name, "198.18.10.10:8443");
    cr_expect_str_eq(c->services[0].reals[2].name, "198.18.20.1:8081");
    cr_expect_str_eq(c->services[0].reals[3].name, "[fd00::1]:8080");
    /* the documented defaults */
    cr_expect_eq(q->workers, 0);
    cr_expect(q->metrics.set);
    cr_expect_eq(q->metrics.port, 9122);
    cr_expect_str_eq(q->access_log, "stderr");
    cr_expect_str_eq(q->cookie_key_file, "/etc/xlb/cookie.key");
    cr_expect_eq(q->trusted.n_allow, 0);
    cr_expect_eq(q->client_header_ms, 10000);
    cr_expect_eq(q->client_body_ms, 30000);
    cr_expect_eq(q->keepalive_ms, 60000);
    cr_expect_eq(q->connect_ms, 3000);
    cr_expect_eq(q->response_ms, 60000);
    cr_expect_eq(q->upstream_idle_ms, 30000);
    cr_expect_eq(q->max_request_line, 8192);
    cr_expect_eq(q->max_header_size, 32768);
    cr_expect_eq(q->max_header_count, 100);
    cr_expect_eq(q->max_body_size, 1ull << 30);
    cr_expect_eq(q->pool_max_idle, 64);
    cr_expect_eq(q->retries, 2);
    cr_expect_eq(q->fail_after, 1);
    cr_expect_eq(q->fail_ms, 10000);
    xlb_config_free(c);
    xlb_config_free(d);
}

Test(config_good, later_service_may_not_take_port_80_of_a_redirect)
{
    const char *y =
        "services:\n"
        "  - {name: s, address: 198.18.10.20, ports: [443], layer: 7,\n"
        "     tls: {certificates: [/x.pem], redirect_http: true},\n"
        "     reals: [{address: 198.18.21.1}]}\n"
        "  - {name: p, address: 198.18.10.20, ports: [80]}\n";
    struct xlb_config *c = NULL;
    char err[512];

    cr_expect_eq(xlb_config_parse("t.yaml", y, strlen(y), &c, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "t.yaml:5:46: services[1].ports[0]: port 80/tcp of 198.18.10.20 is "
                     "already served by services[0] (s); allowed: one service per address, port "
                     "and protocol");
}

/* ------------------------------------------------------------------ */
/* the example file and fixture files                                   */

Test(config_files, example_config_loads)
{
    struct xlb_config *c = NULL;
    char err[512] = "";
    int rc = xlb_config_load("etc/xlb.yaml", &c, err, sizeof(err)), i, l7 = -1;

    cr_assert_eq(rc, 0, "etc/xlb.yaml: %s", err);
    cr_expect_str_eq(c->path, "etc/xlb.yaml");
    cr_expect_geq(c->n_services, 6);
    cr_expect_eq(c->node.n_ifaces, 1);
    cr_expect_eq(c->node.tunnel_src4_plen, 28);
    for (i = 0; i < c->n_services; i++)
        if (c->services[i].layer == 7)
            l7 = i;
    cr_assert_geq(l7, 0, "the example has a layer 7 service");
    cr_expect_geq(c->services[l7].n_subs, 2);
    xlb_config_free(c);
}

Test(config_files, fixture_errors_name_the_file)
{
    struct xlb_config *c = NULL;
    char err[512];

    cr_expect_eq(xlb_config_load("tests/unit/configs/bad-weight.yaml", &c, err, sizeof(err)),
                 -EINVAL);
    cr_expect_null(c);
    cr_expect_str_eq(err, "tests/unit/configs/bad-weight.yaml:9:40: services[0].reals[1].weight: "
                     "-5 is out of range; allowed: 0..65535");
    cr_expect_eq(xlb_config_load("tests/unit/configs/minimal.yaml", &c, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_not_null(c);
    cr_expect_eq(c->n_services, 1);
    cr_expect_str_eq(c->services[0].reals[0].name, "198.18.20.1");
    xlb_config_free(c);
}

Test(config_files, unreadable_files)
{
    struct xlb_config *c = (struct xlb_config *)1;
    char err[512];

    cr_expect_eq(xlb_config_load("tests/unit/configs/none.yaml", &c, err, sizeof(err)), -ENOENT);
    cr_expect_null(c);
    cr_expect_str_eq(err, "tests/unit/configs/none.yaml: cannot read: No such file or directory");
    cr_expect_eq(xlb_config_load("tests/unit/configs", &c, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "tests/unit/configs: not a regular file");
}

/* ------------------------------------------------------------------ */
/* durations, sizes, ports                                              */

Test(config_values, durations)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t ms;
    } t[] = {
        { "500ms", 0, 500 }, { "5s", 0, 5000 }, { "10m", 0, 600000 }, { "2h", 0, 7200000 },
        { "7d", 0, 604800000 }, { "0s", 0, 0 }, { "0ms", 0, 0 }, { "007s", 0, 7000 },
        { "18446744073709551615ms", 0, UINT64_MAX },
        { "18446744073709551616ms", -ERANGE, 0 }, { "213503982334602d", -ERANGE, 0 },
        { "5", -EINVAL, 0 }, { "", -EINVAL, 0 }, { "s", -EINVAL, 0 }, { "5S", -EINVAL, 0 },
        { "5sec", -EINVAL, 0 }, { "5 s", -EINVAL, 0 }, { " 5s", -EINVAL, 0 },
        { "-5s", -EINVAL, 0 }, { "+5s", -EINVAL, 0 }, { "1.5s", -EINVAL, 0 },
        { "1h30m", -EINVAL, 0 }, { "5us", -EINVAL, 0 },
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t v = 12345;
        int rc = xlb_parse_duration_ms(t[i].s, &v);

        cr_expect_eq(rc, t[i].rc, "\"%s\": rc %d", t[i].s, rc);
        if (!t[i].rc)
            cr_expect_eq(v, t[i].ms, "\"%s\": %llu", t[i].s, (unsigned long long)v);
    }
    cr_expect_eq(xlb_parse_duration_ms(NULL, NULL), -EINVAL);
}

Test(config_values, sizes)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t b;
    } t[] = {
        { "512", 0, 512 }, { "0", 0, 0 }, { "512B", 0, 512 }, { "64KiB", 0, 65536 },
        { "256MiB", 0, 256ull << 20 }, { "1GiB", 0, 1ull << 30 },
        { "17179869183GiB", 0, 17179869183ull << 30 }, { "17179869184GiB", -ERANGE, 0 },
        { "99999999999999999999", -ERANGE, 0 },
        { "1KB", -EINVAL, 0 }, { "1kib", -EINVAL, 0 }, { "1K", -EINVAL, 0 }, { "KiB", -EINVAL, 0 },
        { "", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "1 KiB", -EINVAL, 0 }, { "1TiB", -EINVAL, 0 },
        { "1.5MiB", -EINVAL, 0 },
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t v = 12345;
        int rc = xlb_parse_size(t[i].s, &v);

        cr_expect_eq(rc, t[i].rc, "\"%s\": rc %d", t[i].s, rc);
        if (!t[i].rc)
            cr_expect_eq(v, t[i].b, "\"%s\": %llu", t[i].s, (unsigned long long)v);
    }
}

Test(config_values, durations_and_sizes_in_the_config)
{
    struct xlb_config *c = parse_ok(
        L7HDR "    persistence: {type: source-ip, timeout: 7d}\n"
        "    health_check: {interval: 1h, timeout: 10ms}\n"
        "    cache: {max_size: 1GiB, max_object: 1048576}\n"
        "    reals: [{address: 198.18.21.1}]\n");
    const struct xlb_cfg_service *s = &c->services[0];

    cr_expect_eq(s->persistence.timeout_ms, 7u * 86400000u);
    cr_expect_eq(s->hc.interval_ms, 3600000);
    cr_expect_eq(s->hc.timeout_ms, 10);
    cr_expect_eq(s->cache.max_size, 1u << 30);
    cr_expect_eq(s->cache.max_object, 1u << 20);
    xlb_config_free(c);
}

Test(config_ports, lists_and_ranges_expand_sorted)
{
    struct xlb_config *c = parse_ok(
        HDRP("[65535, \"1-3\", 443, 8000-8002, \"90-90\"]"));
    static const uint16_t want[] = { 1, 2, 3, 90, 443, 8000, 8001, 8002, 65535 };
    const struct xlb_cfg_service *s = &c->services[0];
    int i;

    cr_assert_eq(s->n_ports, 9);
    for (i = 0; i < 9; i++)
        cr_expect_eq(s->ports[i], want[i], "ports[%d] = %u", i, s->ports[i]);
    xlb_config_free(c);
}

/* The data plane holds XLB_MAX_VIPS (address, port, protocol) entries;
 * layer 7 services take none. */
Test(config_ports, data_plane_entries_up_to_the_limit)
{
    struct xlb_config *c = parse_ok(
        "services:\n"
        "  - {name: a, address: 198.18.10.1, ports: [\"1-8192\"], protocol: tcp+udp}\n"
        "  - {name: w, address: 198.18.10.2, ports: [\"1-65535\"], layer: 7,\n"
        "     reals: [{address: 198.18.21.1}]}\n");

    cr_assert_eq(c->services[0].n_ports, 8192);
    cr_expect_eq(c->services[0].ports[8191], 8192);
    cr_assert_eq(c->services[1].n_ports, 65535);
    cr_expect_eq(c->services[1].ports[0], 1);
    cr_expect_eq(c->services[1].ports[65534], 65535);
    xlb_config_free(c);
}

Test(config_ports, too_many_data_plane_entries)
{
    const char *y =
        "services:\n"
        "  - {name: a, address: 198.18.10.1, ports: [\"1-8192\"], protocol: tcp+udp}\n"
        "  - {name: b, address: 198.18.10.2, ports: [1]}\n";
    struct xlb_config *c = NULL;
    char err[512];

    cr_expect_eq(xlb_config_parse("t.yaml", y, strlen(y), &c, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "t.yaml:3:44: services[1].ports: the layer 4 services claim 16385 "
                     "(address, port, protocol) entries in all; allowed: at most 16384");
}

Test(config_ports, adjacent_ranges_do_not_overlap_and_overlap_is_caught)
{
    struct xlb_config *c = parse_ok(HDRP("[\"10-19\", \"20-29\"]"));
    const char *y = HDRP("[\"10-20\", \"20-29\"]");
    char err[512];

    cr_expect_eq(c->services[0].n_ports, 20);
    xlb_config_free(c);
    c = NULL;
    cr_expect_eq(xlb_config_parse("t.yaml", y, strlen(y), &c, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "t.yaml:4:22: services[0].ports[1]: port 20 (in 20-29) is listed twice; "
                     "allowed: each port once");
}

/* ------------------------------------------------------------------ */
/* reload equality and names                                            */

static const char *const eq_base =
    "services:\n"
    "  - name: s\n"
    "    address: 198.18.10.10\n"
    "    ports: [80, 443]\n"
    "    scheduler: maglev\n"
    "    persistence: {type: source-ip, timeout: 10m}\n"
    "    acl: {deny: [198.19.66.0/24]}\n"
    "    health_check: {type: tcp}\n"
    "    reals: [{address: 198.18.20.1}]\n";

/* eq_base with one line replaced (the line that starts with `from`). */
static struct xlb_config *variant(const char *from, const char *to)
{
    char buf[2048];
    const char *p = strstr(eq_base, from), *end;

    cr_assert_not_null(p, "no line %s", from);
    end = strchr(p, '\n') + 1;
    snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - eq_base), eq_base, to, end);
    return parse_ok(buf);
}

Test(config_reload, dp_equal)
{
    static const struct {
        const char *from, *to;
        bool equal;
    } t[] = {
        { "    reals:", "    reals: [{address: 198.18.20.2}, {address: 198.18.20.3}]\n", true },
        { "    health_check:", "    health_check: {type: http, interval: 1s}\n", true },
        { "  - name: s", "  - name: renamed\n", true },
        { "    ports:", "    ports: [80]\n", false },
        { "    address:", "    address: 198.18.10.11\n", false },
        { "    scheduler:", "    scheduler: sh\n", false },
        { "    persistence:", "    persistence: {type: source-ip, timeout: 11m}\n", false },
        { "    acl:", "    acl: {deny: [198.19.67.0/24]}\n", false },
        { "    acl:", "    acl: {allow: [198.19.66.0/24]}\n", false },
        { "    scheduler:", "    scheduler: maglev\n    ring_size: 251\n", false },
        { "    scheduler:", "    scheduler: maglev\n    protocol: tcp+udp\n", false },
        { "    scheduler:", "    scheduler: maglev\n    forwarding: gue\n", false },
        { "    scheduler:", "    scheduler: maglev\n    drop_on_failure: true\n", false },
        { "    scheduler:", "    scheduler: wlc\n    slow_start: 10s\n", false },
        { "    scheduler:", "    scheduler: adaptive\n", false },
    };
    struct xlb_config *base = parse_ok(eq_base), *a = parse_ok(eq_base);
    size_t i;

    cr_expect(xlb_cfg_service_dp_equal(&base->services[0], &a->services[0]));
    xlb_config_free(a);
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct xlb_config *v = variant(t[i].from, t[i].to);

        cr_expect_eq(xlb_cfg_service_dp_equal(&base->services[0], &v->services[0]), t[i].equal,
                     "change %zu (%s)", i, t[i].to);
        xlb_config_free(v);
    }
    a = variant("    scheduler:", "    scheduler: adaptive\n");
    {
        struct xlb_config *b = variant("    scheduler:", "    scheduler: adaptive\n"
                                       "    adaptive: {path: /l, port: 8080, interval: 2s}\n");

        cr_expect_not(xlb_cfg_service_dp_equal(&a->services[0], &b->services[0]));
        xlb_config_free(b);
    }
    xlb_config_free(a);
    cr_expect(xlb_cfg_service_dp_equal(NULL, NULL));
    cr_expect_not(xlb_cfg_service_dp_equal(&base->services[0], NULL));
    xlb_config_free(base);
}

Test(config_names, every_enum_has_its_config_name)
{
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_RR), "rr");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_WRR), "wrr");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_LC), "lc");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_WLC), "wlc");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_ADAPTIVE), "adaptive");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_FIXED), "fixed");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_WRT), "wrt");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_SH), "sh");
    cr_expect_str_eq(xlb_cfg_sched_name(XLB_SCHED_MAGLEV), "maglev");
    cr_expect_str_eq(xlb_cfg_sched_name((enum xlb_cfg_sched)99), "unknown");
    cr_expect_str_eq(xlb_cfg_fwd_name(XLB_CFG_FWD_IPIP), "ipip");
    cr_expect_str_eq(xlb_cfg_fwd_name(XLB_CFG_FWD_GUE), "gue");
    cr_expect_str_eq(xlb_cfg_fwd_name(XLB_CFG_FWD_DSR), "dsr");
    cr_expect_str_eq(xlb_cfg_fwd_name(XLB_CFG_FWD_NAT), "nat");
    cr_expect_str_eq(xlb_cfg_fwd_name((enum xlb_cfg_fwd)0), "none");
    cr_expect_str_eq(xlb_cfg_fwd_name((enum xlb_cfg_fwd)9), "unknown");
    cr_expect_str_eq(xlb_cfg_hc_name(XLB_HC_NONE), "none");
    cr_expect_str_eq(xlb_cfg_hc_name(XLB_HC_ICMP), "icmp");
    cr_expect_str_eq(xlb_cfg_hc_name(XLB_HC_HTTPS), "https");
    cr_expect_str_eq(xlb_cfg_hc_name(XLB_HC_TELNET), "telnet");
    cr_expect_str_eq(xlb_cfg_hc_name(XLB_HC_GENERIC), "generic");
    cr_expect_str_eq(xlb_cfg_hc_name((enum xlb_cfg_hc_type)42), "unknown");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_NONE), "none");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_SOURCE_IP), "source-ip");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_ACTIVE_COOKIE), "active-cookie");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_SERVER_COOKIE), "server-cookie");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_HASH_COOKIES), "hash-cookies");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_SUPER_HTTP), "super-http");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_URL_HASH), "url-hash");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_HOST), "host");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_QUERY_ITEM), "query-item");
    cr_expect_str_eq(xlb_cfg_persist_name(XLB_PERSIST_HEADER), "header");
}

/* Every name the reader accepts maps back to itself. */
Test(config_names, names_round_trip_through_the_reader)
{
    static const char *const sched[] = { "rr", "wrr", "lc", "wlc", "adaptive", "fixed", "wrt",
                                         "sh", "maglev" };
    static const char *const hc[] = { "none", "icmp", "tcp", "http", "https", "ftp", "smtp",
                                      "pop3", "imap", "nntp", "telnet", "dns", "generic" };
    char text[512];
    size_t i;

    for (i = 0; i < sizeof(sched) / sizeof(sched[0]); i++) {
        struct xlb_config *c;

        snprintf(text, sizeof(text), HDR "    scheduler: %s\n", sched[i]);
        c = parse_ok(text);
        cr_expect_str_eq(xlb_cfg_sched_name(c->services[0].scheduler), sched[i]);
        xlb_config_free(c);
    }
    for (i = 0; i < sizeof(hc) / sizeof(hc[0]); i++) {
        struct xlb_config *c;

        snprintf(text, sizeof(text), HDR "    health_check: {type: %s}\n", hc[i]);
        c = parse_ok(text);
        cr_expect_str_eq(xlb_cfg_hc_name(c->services[0].hc.type), hc[i]);
        xlb_config_free(c);
    }
}
