#!/usr/bin/env bash
# A 3-member etcd cluster on loopback (clients on 2379, 22379, 32379), its data under
# ${TMPDIR:-/tmp}/ticket-etcd-bench: `cluster.sh start`, `cluster.sh stop`.
set -euo pipefail
dir=${TMPDIR:-/tmp}/ticket-etcd-bench
members="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
case "${1:-start}" in
start)
  rm -rf "$dir" && mkdir -p "$dir"
  i=0
  for client in 2379 22379 32379; do
    i=$((i + 1)); peer=$((client + 1))
    # The member writes its own pid: setsid forks when it is started as a process group
    # leader (under `timeout`, say), and then $! would be setsid's, long gone.
    setsid sh -c 'echo $$ >"$0"; exec "$@"' "$dir/m$i.pid" \
      etcd --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "$members" --initial-cluster-state new --initial-cluster-token ticket-bench \
      >"$dir/m$i.log" 2>&1 &
  done
  for _ in $(seq 100); do
    etcdctl --endpoints=127.0.0.1:2379 endpoint health >/dev/null 2>&1 && exit 0
    sleep 0.2
  done
  echo "etcd did not become healthy; see $dir/m*.log" >&2; exit 1 ;;
stop)
  # etcd 3.4 may keep campaigning after SIGTERM once its peers are gone: SIGKILL after 5 s.
  # A member with no pid file is skipped: `kill 0` would signal this whole process group.
  for i in 1 2 3; do
    [ -f "$dir/m$i.pid" ] && kill "$(cat "$dir/m$i.pid")" 2>/dev/null || true
  done
  for i in 1 2 3; do
    [ -f "$dir/m$i.pid" ] || continue
    pid=$(cat "$dir/m$i.pid")
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/m$i.pid"
  done ;;
esac
