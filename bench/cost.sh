#!/usr/bin/env bash
# What an operation costs the whole machine, mode by mode, on a fresh local 3-node cluster of
# the stock cluster.toml (fsync on): the busy CPU time and the context switches of the machine
# over each run (from /proc/stat), divided by the run's operations, and the commands an entry
# (from the nodes' metrics). It counts everything on the machine: run it when nothing else does.
#
# Needs: a release build of ticket (cargo build --release), python3 and curl; Linux.
# Usage: bench/cost.sh [SECONDS] [MODE:CLIENTS ...]   (default: ping and unary at 1 and 64
#        clients, unary at 32, 128 and 256, batch at 64)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-6}
shift || true
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(ping:64 unary:32 unary:64 unary:128 unary:256 batch:64 ping:1 unary:1)
ticket=$root/target/release/ticket
work=$(mktemp -d)
# shellcheck source=bench/ticket-up.sh
source "$here/ticket-up.sh"
trap '{ [ -n "${up:-}" ] && kill -INT "$up" && wait "$up"; } 2>/dev/null || true; rm -rf "$work"' EXIT

# The stock cluster.toml, each node with its metrics on a free loopback port.
python3 - "$root/cluster.toml" "$work/cluster.toml" >"$work/metrics" <<'PY'
import re, socket, sys
text = open(sys.argv[1]).read()
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
def add_metrics(match):
    port = free_port()
    print(f"127.0.0.1:{port}")
    return f'{match.group(0)}\nmetrics_listen = "127.0.0.1:{port}"'
text = re.sub(r'^peer_advertise = .*$', add_metrics, text, flags=re.M)
open(sys.argv[2], "w").write(text)
PY

ticket_up

# The machine's CPU jiffies and context switches, then the entries every node has proposed.
sample() {
  grep -E '^(cpu|ctxt) ' /proc/stat
  while read -r addr; do
    curl -fsS "http://$addr/metrics" | grep -E '^ticket_log_entries_proposed_total ' || true
  done <"$work/metrics"
}

for run in "${runs[@]}"; do
  mode=${run%%:*} clients=${run##*:}
  sample >"$work/before"
  "$ticket" --config "$work/cluster.toml" bench --mode "$mode" --clients "$clients" \
    --seconds "$secs" --json --user admin >"$work/bench.json"
  sample >"$work/after"
  python3 - "$work" "$secs" "$(getconf CLK_TCK)" >>"$work/rows" <<'PY'
import json, sys
work, secs, ticks = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def read(name):
    cpu, ctxt, entries = None, 0, 0
    for line in open(f"{work}/{name}"):
        key, *values = line.split()
        if key == "cpu":
            jiffies = list(map(int, values))
            cpu = (sum(jiffies), jiffies[3] + jiffies[4])  # all, idle + iowait
        elif key == "ctxt":
            ctxt = int(values[0])
        else:
            entries += float(values[0])
    return cpu, ctxt, entries
(all0, idle0), ctxt0, entries0 = read("before")
(all1, idle1), ctxt1, entries1 = read("after")
r = json.load(open(f"{work}/bench.json"))
ops = r.get("bookings") or r["ops_per_sec"] * secs
busy_s = ((all1 - all0) - (idle1 - idle0)) / ticks
entries = entries1 - entries0
per_entry = f"{ops / entries:.1f}" if entries else ""
print(f"| {r['mode']} | {r['clients']} | {r['ops_per_sec']:,.0f} | {r['p50_ms']:.2f} "
      f"| {per_entry} | {1e6 * busy_s / ops:.0f} | {(ctxt1 - ctxt0) / ops:.1f} |")
PY
done

echo "| mode | clients | ops/s | p50 ms | commands an entry | machine CPU us an op | context switches an op |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
cat "$work/rows"
