#!/usr/bin/env bash
# The suite's main job on one machine, on the embedded store (no database server needed):
# builds the binaries, starts the version registry, and runs the narrated walkthrough against it.
# With --keep, the registry keeps running afterwards for grpcurl (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/../.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true
listen="${FLOTILLA_REGISTRY_LISTEN:-127.0.0.1:50051}"
state_dir=".flotilla"
mkdir -p "$state_dir"
# A fresh store each run, so the walkthrough starts from nothing.
rm -f "$state_dir"/registry.sqlite*

echo "== building (release)"
cargo build --release --quiet --bin version-registry --example walkthrough

echo "== starting version-registry on $listen (embedded store: $state_dir/registry.sqlite)"
target/release/version-registry --listen "$listen" --data-file "$state_dir/registry.sqlite" \
  2>"$state_dir/registry.log" &
registry_pid=$!
trap 'kill -TERM $registry_pid 2>/dev/null; wait $registry_pid 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null; then break; fi
  if ! kill -0 "$registry_pid" 2>/dev/null; then
    echo "version-registry exited; its log:" >&2; cat "$state_dir/registry.log" >&2; exit 1
  fi
  sleep 0.1
done

target/release/examples/walkthrough "http://$listen"

if $keep; then
  echo
  echo "== the registry keeps running on $listen (log: $state_dir/registry.log); Ctrl-C stops it"
  wait "$registry_pid"
fi
