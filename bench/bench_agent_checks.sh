#!/usr/bin/env bash
# CPU time of xlb-agent health-checking N real servers over TCP at a 1 s
# interval, against one local listener on every loopback address it uses.
#
#   bench/bench_agent_checks.sh BUILD [N=5000] [SECONDS=20]
#
# Runs in a private network namespace (unshare -n) with its own pin
# directory; the agent loads the data plane without attaching it.  Reports
# the agent's user+system CPU seconds over the measured window, as a share
# of one core and per probe.  Reported, never asserted.
set -euo pipefail
BUILD=${1:-build}
N=${2:-5000}
SECS=${3:-20}
AGENT=$(realpath "$BUILD/xlb-agent")
NAMESRV=$(realpath "$BUILD/tests/xlbt-namesrv")
TMP=$(mktemp -d /tmp/xlbt-bench-agent.XXXXXX)
BPFFS=/sys/fs/bpf/xlbt-bench-agent-$$
# shellcheck source=tests/integration/bpffs.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/integration/bpffs.sh"
trap 'rm -rf "$TMP" "$BPFFS"; xlbt_bpffs_release' EXIT
xlbt_bpffs_need || { echo "bench_agent_checks: $XLBT_BPFFS_ERROR" >&2; exit 1; }

per=100
{
    echo "node:"
    echo "  interfaces: []"
    echo "  bpffs: $BPFFS"
    echo "  conn_table_size: 65536"
    echo "  metrics: {enabled: false}"
    echo "  api: {enabled: false}"
    echo "services:"
    for ((s = 0; s < (N + per - 1) / per; s++)); do
        echo "  - name: svc$s"
        echo "    address: 198.18.$((100 + s / 250)).$((s % 250 + 1))"
        echo "    ports: [80]"
        echo "    scheduler: wrr"
        echo "    health_check: {type: tcp, port: 9000, interval: 1s, timeout: 500ms, rise: 2, fall: 3}"
        echo "    reals:"
        for ((r = 0; r < per && s * per + r < N; r++)); do
            i=$((s * per + r))
            echo "      - {address: 127.0.$((i / 250 + 1)).$((i % 250 + 1))}"
        done
    done
} >"$TMP/bench.yaml"

cat >"$TMP/run.sh" <<EOS
set -euo pipefail
ip link set lo up
"$NAMESRV" --name bench --listen 0.0.0.0:9000 2>"$TMP/namesrv.log" &
NS=\$!
"$AGENT" --config "$TMP/bench.yaml" 2>"$TMP/agent.log" &
AG=\$!
for ((i = 0; i < 600; i++)); do     # start-up, at most 60 s
    grep -q "running" "$TMP/agent.log" && break
    sleep 0.1
done
grep -q "running" "$TMP/agent.log" || { echo "xlb-agent did not start:"; cat "$TMP/agent.log"; exit 1; }
sleep 2    # the first round of probes (spread over 1 s)
read -r -a a < <(cut -d' ' -f14,15 /proc/\$AG/stat)
t0=\$(date +%s.%N)
sleep $SECS
read -r -a b < <(cut -d' ' -f14,15 /proc/\$AG/stat)
t1=\$(date +%s.%N)
kill \$AG \$NS; wait \$AG || true; wait \$NS || true
hz=\$(getconf CLK_TCK)
python3 - "\${a[@]}" "\${b[@]}" "\$t0" "\$t1" "\$hz" $N <<'PY'
import sys
u0, s0, u1, s1 = map(int, sys.argv[1:5]); t0, t1 = float(sys.argv[5]), float(sys.argv[6])
hz, n = int(sys.argv[7]), int(sys.argv[8])
cpu = ((u1 - u0) + (s1 - s0)) / hz
wall = t1 - t0
probes = n * wall            # one probe per real per second
print(f"agent health checks: {n} reals, tcp, 1 s interval, {wall:.1f} s measured")
print(f"  cpu {cpu:.2f} s (user {(u1-u0)/hz:.2f}, system {(s1-s0)/hz:.2f}) = {100*cpu/wall:.1f}% of one core")
print(f"  {1e6*cpu/probes:.1f} us of cpu per probe")
PY
if grep -q " -> down" "$TMP/agent.log"; then
    echo "  reals taken down during the run (the listener did not keep up):"
    grep -c " -> down" "$TMP/agent.log"
fi
EOS
unshare -n bash "$TMP/run.sh"
