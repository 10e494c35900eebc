#!/usr/bin/env bash
# Brings the whole suite up in docker compose and deploys the greeter fleet through the
# orchestrator: builds the images (build-images.sh), starts PostgreSQL, two registries, the
# orchestrator and a frontend, waits until every container is healthy, publishes the greeter's
# releases and deploys greeter 1.0.0 (two containers the orchestrator starts through the Docker
# Engine). down.sh takes it all down again.
set -euo pipefail
cd "$(dirname "$0")"

compose() { docker-compose -p flotilla -f docker-compose.yml "$@"; }
log() { echo "== $*"; }

# FLOTILLA_IMAGES_BUILT=1 skips the build (the e2e tests build and time it on their own).
if [ "${FLOTILLA_IMAGES_BUILT:-0}" != 1 ]; then
  started=$(date +%s)
  bash build-images.sh
  log "images built in $(( $(date +%s) - started )) s"
fi

# wait_healthy SERVICE...: until each container's health check passes (90 s each at most).
wait_healthy() {
  local service status
  for service in "$@"; do
    status=none
    for _ in $(seq 1 90); do
      status=$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q "$service")" 2>/dev/null || true)
      [ "$status" = healthy ] && break
      sleep 1
    done
    if [ "$status" != healthy ]; then
      echo "$service is not healthy ($status); its log:" >&2
      compose logs --tail 40 "$service" >&2
      exit 1
    fi
  done
}

started=$(date +%s)
# The frontend follows greeter from its first moment, so it starts once greeter is published.
compose up -d postgres registry-a registry-b orchestrator
wait_healthy postgres registry-a registry-b orchestrator
log "suite healthy in $(( $(date +%s) - started )) s; the greeter fleet next"

log "publishing greeter releases"
for release in "--release 1.0.0" "--release 1.1.0" "--release 2.0.0" \
  "--release 1.1.0 --version 1.2.0 --error-ratio 0.3"; do
  # shellcheck disable=SC2086 # the release flags are meant to split
  compose exec -T orchestrator demo-greeter --publish-only --registry http://registry-a:50051 \
    --image flotilla/suite:dev $release 2>/dev/null
done

log "deploying greeter 1.0.0 (two containers, started by the orchestrator)"
compose exec -T orchestrator flotilla rollout --orchestrator http://127.0.0.1:50061 \
  start greeter 1.0.0 --replicas 2 --watch

compose up -d frontend
wait_healthy frontend
log "suite and fleet healthy in $(( $(date +%s) - started )) s"
compose ps
