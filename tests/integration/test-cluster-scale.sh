#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/cluster-scale.sh at a size CI affords: 12 nodes in network
# namespaces with the default protocol timings, 20 changes, 20 s of 10%
# loss and 20 s with 3 nodes stopped (SIGSTOP 2 s) at random times. Asserts
# what a user relies on, not speed: the cluster forms and every node serves
# every record; every change reaches every other node; a SIGKILLed node is
# declared dead everywhere and its record is withdrawn everywhere, after the
# dead grace and within memberlist's bound; no live node is ever declared
# dead, no live node's record is ever withdrawn, and no DNS answer lacks a
# live node's record, under loss or with nodes stopped. Needs root (exits
# 77 when network namespaces are not permitted).
set -euo pipefail

BUILD=${1:?usage: test-cluster-scale.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"

out=$(mktemp -d /tmp/jr-cluster-scale-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
N=12
rc=0
"$TOP/bench/cluster-scale.sh" --build "$BUILD" -n "$N" --changes 20 --rest 5 --duration 20 --starve 3 \
        --json "$out/figures.json" >"$out/log" 2>&1 || rc=$?
cat "$out/log"
[ "$rc" = 77 ] && exit 77
[ "$rc" = 0 ] || fail "bench/cluster-scale.sh exited with $rc"

python3 - "$out/figures.json" "$N" <<'PY' || fail "the figures above break a promise"
import json, math, sys
r = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
errors = []
def check(cond, what):
    if not cond:
        errors.append(what)

f = r["formation"]
check(f["members_s"] is not None, "not every node saw every other alive")
check(f["missing_count"] == 0, f"{f['missing_count']} (node, record) pairs missing after formation: {f['missing_records']}")

for phase in ("changes", "loss", "starve"):
    c = r[phase]
    check(c is not None and c["count"] > 0, f"{phase}: no changes were made")
    if c:
        check(not c["missed"], f"{phase}: changes that did not reach every other node: {c['missed']}")

# Failure detection: memberlist's bound is a probe round (n probe periods,
# the last node to probe the victim), the longest suspicion timeout
# (6 x 4 x max(1, log10 n) probe periods without confirmations) and the dead
# grace (5 s); the record must not go before the grace has passed.
k = r["kill"]
bound = n * 1 + 6 * 4 * max(1, math.log10(n)) + 5 + 5
check(k["all_dead_s"] is not None, f"the killed node was declared dead on {k['dead_on']} of {n - 1} nodes")
check(not k["records_kept_on"], f"the killed node's record stayed on {k['records_kept_on']}")
if k["records_gone_s"] is not None:
    check(k["records_gone_s"] >= 5 - 0.2, f"its record went after {k['records_gone_s']} s, before the 5 s grace")
    check(k["records_gone_s"] <= bound, f"its record went after {k['records_gone_s']} s, beyond {bound:.0f} s")

for phase in ("rest", "churn", "kill", "loss", "starve"):
    e = r[f"events_{phase}"]
    check(e["false_deaths"] == 0, f"{phase}: {e['false_deaths']} live nodes declared dead: {e['examples']}")
    check(e["self_records_withdrawn"] == 0, f"{phase}: live nodes' records withdrawn: {e['examples']}")
for phase in ("loss", "starve"):
    s = r[phase]
    check(s["samples"] > 0, f"{phase}: no DNS samples answered")
    check(s["wrong_answers"] == 0, f"{phase}: {s['wrong_answers']} answers lacked a live node's record: {s['wrong_examples']}")
check(r["starve"]["stops"] > 0, "no node was stopped")
for e in errors:
    print("FAIL:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
ok "$N nodes formed, every change reached every node, a killed node was withdrawn everywhere, no false death or flap under 10% loss or with nodes stopped"
