#!/usr/bin/env bash
# The suite's main job on one machine, on the embedded stores (no database server needed):
# builds the binaries, starts the version registry and the rollout orchestrator, publishes the
# greeter's releases, deploys greeter 1.0.0, and then, under steady load from a frontend:
#   1. a canary 1.0.0 -> 1.1.0 that succeeds,
#   2. a breaking 2.0.0 refused before anything starts (a consumer still needs ^1.1),
#   3. a faulty 1.2.0 (30% of its calls fail) that the orchestrator aborts by itself,
# with each rollout's progress on screen and the load's answers and failures after each.
# With --keep, everything keeps running afterwards for grpcurl and the CLI (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/../.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true
listen="${FLOTILLA_REGISTRY_LISTEN:-127.0.0.1:50051}"
orchestrator_listen="${FLOTILLA_ORCHESTRATOR_LISTEN:-127.0.0.1:50061}"
registry="http://$listen"
export FLOTILLA_ORCHESTRATOR="http://$orchestrator_listen"
state_dir=".flotilla"
bin=target/release

pids=()
# Stops everything started, callers first (the registry last), then the instances the
# orchestrator started (they outlive it by design, as pods outlive their controller).
stop_all() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  stop_instances
}
stop_instances() {
  local record pid
  for record in "$state_dir"/instances/records/*/*.json; do
    [ -e "$record" ] || continue
    pid=$(basename "$record" .json)
    kill -TERM "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT

# A fresh state each run, so the demo starts from nothing; instances of an earlier run go first.
mkdir -p "$state_dir"
stop_instances
rm -rf "$state_dir"/registry.sqlite* "$state_dir"/orchestrator.sqlite* "$state_dir"/instances \
  "$state_dir"/*.log "$state_dir"/*.out

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

step() { echo; echo "== $*"; }

step "building (release)"
cargo build --release --quiet --bin version-registry --bin rollout-orchestrator \
  --bin demo-greeter --bin demo-frontend --bin flotilla --example load
flotilla="$bin/flotilla"

step "starting the suite on the embedded stores; state and logs in $state_dir/"
start registry "$bin/version-registry" --listen "$listen" --data-file "$state_dir/registry.sqlite"
echo "   version-registry      $address"
start orchestrator "$bin/rollout-orchestrator" --listen "$orchestrator_listen" \
  --registry "$registry" --data-file "$state_dir/orchestrator.sqlite" \
  --state-dir "$state_dir/instances" --bin-dir "$bin" \
  --allow-program "$bin/demo-greeter" --allow-program "$bin/demo-frontend"
echo "   rollout-orchestrator  $address"

step "publishing greeter releases (schema + how to run them; nothing runs yet)"
publish() { "$bin/demo-greeter" --publish-only --registry "$registry" "$@" 2>>"$state_dir/publish.log"; }
publish --release 1.0.0
publish --release 1.1.0
publish --release 2.0.0
# The faulty release: 1.1.0's API, 30% of its calls fail.
publish --release 1.1.0 --version 1.2.0 --error-ratio 0.3

# Analysis settings for a small demo machine: judge every 500 ms on at least 10 calls, and
# latency only well above scheduler noise.
analysis=(--analysis-interval 500ms --min-requests 10 --p99-floor 100ms)

step "deploying greeter 1.0.0 (two instances; a first deployment has no canary)"
"$flotilla" rollout start greeter 1.0.0 --replicas 2 "${analysis[@]}" --watch

step "starting frontend 0.9.0 (accepts greeter ^1.0) and steady load through it"
start "frontend-0.9.0" "$bin/demo-frontend" --registry "$registry" --version 0.9.0 \
  --greeter-requirement "^1.0"
legacy=$address
echo "   frontend 0.9.0        $legacy"
"$bin/examples/load" "http://$legacy" 4 >"$state_dir/load.out" 2>"$state_dir/load.log" &
load_pid=$!
pids+=("$load_pid")
sleep 1

step "canary greeter 1.0.0 -> 1.1.0 under load: 20%, analysis, 50%, analysis, 100%"
"$flotilla" rollout start greeter 1.1.0 --steps "20,analysis:3,50,analysis:3,100" \
  "${analysis[@]}" --watch
echo "   load, last seconds:"; tail -n 3 "$state_dir/load.out" | sed 's/^/     /'

step "starting frontend 1.0.0 (needs greeter ^1.1)"
start "frontend-1.0.0" "$bin/demo-frontend" --registry "$registry" --version 1.0.0 \
  --greeter-requirement "^1.1"
echo "   frontend 1.0.0        $address"

step "greeter 2.0.0 breaks the API: refused before anything starts"
if "$flotilla" rollout start greeter 2.0.0; then
  echo "2.0.0 was not refused" >&2; exit 1
fi

step "faulty greeter 1.2.0 under load: the orchestrator aborts it by itself"
if "$flotilla" rollout start greeter 1.2.0 --steps "5,analysis:10,50,analysis:10,100" \
  "${analysis[@]}" --watch; then
  echo "the faulty 1.2.0 was not aborted" >&2; exit 1
fi
sleep 1
kill -TERM "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
echo "   load:"; tail -n 1 "$state_dir/load.out" | sed 's/^/     /'

step "why 1.2.0 was aborted: flotilla rollout explain"
faulty_id=$("$flotilla" rollout list --service greeter --limit 1 --format json |
  grep -o '"id": *"[0-9a-f-]*"' | head -n 1 | grep -o '[0-9a-f-]\{36\}')
"$flotilla" rollout explain "$faulty_id" --events 4

step "revisions of greeter"
"$flotilla" rollout revisions greeter

step "rollouts of greeter"
"$flotilla" rollout list --service greeter

if $keep; then
  echo
  echo "== the suite keeps running (registry $listen, orchestrator $orchestrator_listen, logs in"
  echo "   $state_dir/); try: $flotilla rollout list; Ctrl-C stops it"
  wait "${pids[0]}"
fi
