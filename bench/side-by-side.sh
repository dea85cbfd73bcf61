#!/usr/bin/env bash
# The booking workload on ticket and on etcd 3.4, one after the other in one session on this
# machine, printed as one table. Shared machines drift: compare the ratios, not the figures.
#
# Needs: a release build of ticket (cargo build --release), and for etcd
#   apt-get install -y etcd-server etcd-client protobuf-compiler
#   (cd bench/etcd && cargo build --release)
# Usage: bench/side-by-side.sh [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-8}
ticket=$root/target/release/ticket
etcd_bench=$here/etcd/target/release/etcd-bench
work=$(mktemp -d)
# shellcheck source=bench/ticket-up.sh
source "$here/ticket-up.sh"
# No `kill -INT 0` once the cluster is stopped: pid 0 is this whole process group, the script
# included, which then died in its trap before it could stop etcd.
trap '{ [ -n "${up:-}" ] && kill -INT "$up"; } 2>/dev/null || true; "$here/etcd/cluster.sh" stop; rm -rf "$work"' EXIT

# ticket: a fresh local 3-node cluster of the stock cluster.toml (fsync on).
cp "$root/cluster.toml" "$work/"
ticket_up
results=$work/results.jsonl
for run in "ping 64" "unary 64" "batch 64" "unary 256" "ping 1" "unary 1" "checkout 64"; do
  set -- $run
  "$ticket" --config "$work/cluster.toml" bench --mode "$1" --clients "$2" --seconds "$secs" \
    --json --user admin >>"$results"
done
kill -INT $up; wait $up 2>/dev/null || true; up=
# Let the nodes' exit settle before etcd starts on the same cores.
sleep 2

# etcd: the same booking, one transaction "put the seat if it was never created".
"$here/etcd/cluster.sh" start
for clients in 64 256 1; do
  "$etcd_bench" --clients "$clients" --seconds "$secs" >>"$results"
done

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("| system | mode | clients | ops/s | p50 ms | p99 ms | p99.9 ms | max gap ms | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    system = "etcd 3.4" if r["mode"] == "etcd" else "ticket"
    mode = "txn put-if-absent" if r["mode"] == "etcd" else r["mode"]
    print(f"| {system} | {mode} | {r['clients']} | {r['ops_per_sec']:.0f} | {r['p50_ms']:.2f} "
          f"| {r['p99_ms']:.2f} | {r['p999_ms']:.2f} | {r['max_gap_ms']:.0f} | {r['errors'] or 0} |")
PY
