#!/usr/bin/env bash
# Takes the compose suite down: first the containers the orchestrator started (they are not part
# of the compose project, but sit on its network), then the project with its volumes.
set -euo pipefail
cd "$(dirname "$0")"
managed=$(docker ps -aq --filter label=io.flotilla.managed=true)
if [ -n "$managed" ]; then
  # shellcheck disable=SC2086 # one id per word
  docker rm -f $managed >/dev/null
fi
docker-compose -p flotilla -f docker-compose.yml down -v --remove-orphans
