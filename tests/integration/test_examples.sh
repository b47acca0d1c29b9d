#!/usr/bin/env bash
# Every shipped configuration passes "xlb-agent --check".
#
#   tests/integration/test_examples.sh
#
# Checked, for etc/*.yaml and etc/examples/*.yaml:
#   - the examples the documentation names exist (nat-web-farm.yaml,
#     rdp-gateway-dsr.yaml, tls-proxy.yaml), so an empty directory cannot
#     pass;
#   - "$XLB_AGENT --check FILE" exits 0 and says "valid";
#   - every address in the file is in 198.18.0.0/15, fd00::/8 or loopback;
#   - the same file with an unknown key appended to its first service is
#     rejected (exit 1, FILE:LINE:COLUMN and the key in the message), which
#     shows that --check really reads that file.
#
# Output: one "ok - ..." / "not ok - ..." line per check and last exactly
# one line "N passed, M failed". Exit status: 0 all passed, 1 a check
# failed, 2 the test cannot run (XLB_AGENT not set or not executable,
# python3 missing), reported as a failure, not skipped.
#
# Environment: XLB_AGENT (required; scripts/check.sh sets it).
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PASSED=0
FAILED=0
TMP=

ok() {
	printf 'ok - %s\n' "$*"
	PASSED=$((PASSED + 1))
}
not_ok() {
	printf 'not ok - %s\n' "$*"
	FAILED=$((FAILED + 1))
}
finish() {
	local rc=$1
	[[ -n $TMP ]] && rm -rf -- "$TMP"
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	exit "$rc"
}
prereq() {
	not_ok "prerequisites: $*"
	finish 2
}

[[ -n ${XLB_AGENT:-} ]] || prereq "XLB_AGENT is not set (the xlb-agent binary; scripts/check.sh sets it)"
[[ $XLB_AGENT == */* ]] || XLB_AGENT=$(command -v -- "$XLB_AGENT" || printf '%s' "$XLB_AGENT")
[[ -x $XLB_AGENT && -f $XLB_AGENT ]] || prereq "XLB_AGENT=$XLB_AGENT is not an executable file (run make first)"
command -v python3 >/dev/null 2>&1 || prereq "python3 not found"
TMP=$(mktemp -d /tmp/xlbt-examples.XXXXXX) || prereq "cannot create a temporary directory"
trap 'finish 130' INT TERM HUP

# addresses_ok FILE: every IPv4 / IPv6 literal is in the test ranges or
# loopback; prints the offenders.
addresses_ok() {
	python3 - "$1" <<'EOF'
import ipaddress, re, sys
allowed = [ipaddress.ip_network(n) for n in
           ("198.18.0.0/15", "127.0.0.0/8", "fd00::/8", "::1/128")]
bad = []
text = open(sys.argv[1]).read()
cands = re.findall(r'(?<![\w.:])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])', text)
cands += [t for t in re.findall(r'(?<![\w:])[0-9A-Fa-f:]*::?[0-9A-Fa-f:]*(?![\w:])', text)
          if t.count(':') >= 2]
for c in cands:
    try:
        a = ipaddress.ip_address(c)
    except ValueError:
        continue
    if not any(a in n for n in allowed if n.version == a.version):
        bad.append(c)
if bad:
    print("outside 198.18.0.0/15, fd00::/8 and loopback: " + " ".join(sorted(set(bad))))
    sys.exit(1)
EOF
}

# with_bogus FILE OUT: FILE with "bogus_key: 1" as a key of its first
# service (or at the top when it has none); prints the line number.
with_bogus() {
	python3 - "$1" "$2" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().split('\n')
out, done, line = [], False, 0
for l in lines:
    out.append(l)
    m = re.match(r'^(\s*)- name:', l)
    if not done and m:
        out.append(' ' * (len(m.group(1)) + 2) + 'bogus_key: 1')
        done, line = True, len(out)
if not done:
    out.insert(0, 'bogus_key: 1')
    line = 1
open(sys.argv[2], 'w').write('\n'.join(out))
print(line)
EOF
}

for want in nat-web-farm.yaml rdp-gateway-dsr.yaml tls-proxy.yaml; do
	if [[ -f $ROOT/etc/examples/$want ]]; then
		ok "etc/examples/$want exists"
	else
		not_ok "etc/examples/$want exists"
	fi
done

files=("$ROOT"/etc/*.yaml "$ROOT"/etc/examples/*.yaml)
for f in "${files[@]}"; do
	rel=${f#"$ROOT"/}
	if [[ ! -f $f ]]; then
		not_ok "$rel: no such file"
		continue
	fi
	out=$TMP/out rc=0
	(cd "$ROOT" && timeout 20 "$XLB_AGENT" --check "$rel") >"$out" 2>&1 || rc=$?
	if ((rc == 0)) && grep -q "valid" "$out"; then
		ok "$rel: xlb-agent --check: $(head -n 1 "$out")"
	else
		not_ok "$rel: xlb-agent --check (exit $rc): $(head -n 3 "$out" | tr '\n' ' ')"
	fi
	if msg=$(addresses_ok "$f"); then
		ok "$rel: addresses only from 198.18.0.0/15, fd00::/8, loopback"
	else
		not_ok "$rel: $msg"
	fi
	bogus=$TMP/$(basename "$f")
	line=$(with_bogus "$f" "$bogus") || line=x
	rc=0
	(cd "$ROOT" && timeout 20 "$XLB_AGENT" --check "$bogus") >"$out" 2>&1 || rc=$?
	if ((rc == 1)) && grep -qF "$bogus:$line:" "$out" && grep -qF bogus_key "$out"; then
		ok "$rel with an unknown key is rejected at line $line"
	else
		not_ok "$rel with an unknown key at line $line: exit $rc, $(head -n 2 "$out" | tr '\n' ' ')"
	fi
done

if ((FAILED > 0)); then finish 1; fi
finish 0
