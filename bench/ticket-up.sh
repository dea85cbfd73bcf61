# Sourced by the bench scripts, not run: starts a local ticket cluster for them.

# Starts `ticket up` on "$work/cluster.toml" in the background, its pid in $up, and returns
# once a leader is elected; with none after 30 s, prints the cluster's log and exits 1.
# Needs $ticket (the binary) and $work (a scratch folder holding cluster.toml).
ticket_up() {
  export TICKET_ADMIN_PASSWORD=bench-admin TICKET_PASSWORD=bench-admin
  (cd "$work" && exec "$ticket" --config "$work/cluster.toml" up >"$work/up.log" 2>&1) &
  up=$!
  for _ in $(seq 100); do
    "$ticket" --config "$work/cluster.toml" status 2>/dev/null | grep -q '^leader: node' && return
    sleep 0.3
  done
  echo "the cluster elected no leader:" >&2
  tail -20 "$work/up.log" >&2
  exit 1
}
