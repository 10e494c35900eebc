#!/usr/bin/env bash
# The suite's main job on one machine, on the embedded store (no database server needed):
# builds the binaries, starts the version registry, greeter 1.0.0 (two instances) and 1.1.0, and
# two frontends (0.9.0 accepts greeter ^1.0, 1.0.0 needs ^1.1), then sends requests through the
# frontends while the greeter route changes and prints which greeter versions answered.
# With --keep, everything keeps running afterwards for grpcurl (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/../.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true
listen="${FLOTILLA_REGISTRY_LISTEN:-127.0.0.1:50051}"
registry="http://$listen"
state_dir=".flotilla"
mkdir -p "$state_dir"
# A fresh store and fresh logs each run, so the tour starts from nothing.
rm -f "$state_dir"/registry.sqlite* "$state_dir"/*.log "$state_dir"/*.out

pids=()
# Stops everything started, callers first (the registry last), and waits for each to exit.
stop_all() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}
trap stop_all EXIT

# start NAME COMMAND...: runs COMMAND with stdout to NAME.out and stderr to NAME.log, records its
# pid for the cleanup, waits for its "... listening on ADDR" line and sets $address to ADDR. Not
# called in a subshell: the pid must reach stop_all.
start() {
  local name=$1; shift
  "$@" >"$state_dir/$name.out" 2>"$state_dir/$name.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 150); do
    if grep -q " listening on " "$state_dir/$name.out" 2>/dev/null; then
      address=$(sed -n 's/.* listening on //p' "$state_dir/$name.out" | head -n 1)
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited; its log:" >&2; cat "$state_dir/$name.log" >&2; return 1
    fi
    sleep 0.1
  done
  echo "$name did not start within 15 s; its log: $state_dir/$name.log" >&2
  return 1
}

echo "== building (release)"
cargo build --release --quiet --bin version-registry --bin demo-greeter --bin demo-frontend \
  --example fleet_tour
bin=target/release

echo "== starting the suite on the embedded store ($state_dir/registry.sqlite); logs in $state_dir/"
start registry "$bin/version-registry" --listen "$listen" --data-file "$state_dir/registry.sqlite"
echo "   version-registry    $address"
for n in 1 2; do
  start "greeter-1.0.0-$n" "$bin/demo-greeter" --registry "$registry" --release 1.0.0
  echo "   greeter 1.0.0 #$n    $address"
done
start "greeter-1.1.0" "$bin/demo-greeter" --registry "$registry" --release 1.1.0
echo "   greeter 1.1.0       $address"
start "frontend-0.9.0" "$bin/demo-frontend" --registry "$registry" --version 0.9.0 \
  --greeter-requirement "^1.0"
legacy=$address
echo "   frontend 0.9.0      $legacy  (accepts greeter ^1.0)"
start "frontend-1.0.0" "$bin/demo-frontend" --registry "$registry" --version 1.0.0 \
  --greeter-requirement "^1.1"
current=$address
echo "   frontend 1.0.0      $current  (needs greeter ^1.1)"

"$bin/examples/fleet_tour" "$registry" "http://$legacy" "http://$current"

if $keep; then
  echo
  echo "== the suite keeps running (registry on $listen, logs in $state_dir/); Ctrl-C stops it"
  wait "${pids[0]}"
fi
