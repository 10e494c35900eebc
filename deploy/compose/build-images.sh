#!/usr/bin/env bash
# Builds every image deploy/compose/docker-compose.yml runs, on a machine with no image registry:
# nothing is pulled. The base is a minimal Debian bookworm root made by debootstrap from Debian's
# packages and imported with `docker import`; the suite's binaries are built here (release) and
# copied in, since this machine is bookworm too and its binaries link the same glibc.
#
#   flotilla/debian:bookworm   debootstrap --variant=minbase, imported (built once, then kept)
#   flotilla/postgres:15       the base + Debian's postgresql-15, with an entrypoint that inits
#   flotilla/suite:dev         the base + version-registry, rollout-orchestrator, demo-greeter,
#                              demo-frontend and flotilla in /usr/local/bin
#
# A user with a registry builds the same images with the ordinary multi-stage Dockerfile beside
# this script (see docs/compose.md). Needs root (debootstrap, docker).
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { echo "== $*"; }
mirror="${FLOTILLA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base=flotilla/debian:bookworm

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap bookworm (minbase) from $mirror"
  started=$(date +%s)
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >/dev/null
  # apt inside the image then fetches from the same mirror, without recommends, and keeps no cache.
  echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$root/etc/apt/apt.conf.d/90flotilla"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
  log "$base built in $(( $(date +%s) - started )) s"
fi

log "building the suite's binaries (release)"
cargo build --release --locked --quiet --bin version-registry --bin rollout-orchestrator \
  --bin demo-greeter --bin demo-frontend --bin flotilla

log "building flotilla/postgres:15"
docker build --quiet -t flotilla/postgres:15 -f deploy/compose/postgres/Dockerfile \
  deploy/compose/postgres >/dev/null

log "building flotilla/suite:dev"
context=$(mktemp -d)
trap 'rm -rf "$context" "${root:-}"' EXIT
mkdir -p "$context/bin"
for binary in version-registry rollout-orchestrator demo-greeter demo-frontend flotilla; do
  cp "target/release/$binary" "$context/bin/"
  # Line tables are for local debugging; the image does without them.
  strip --strip-debug "$context/bin/$binary"
done
docker build --quiet -t flotilla/suite:dev -f deploy/compose/Dockerfile.local "$context" >/dev/null
# Each rebuild leaves the previous suite image untagged; drop those (never one a container uses).
docker image prune --force --filter label=io.flotilla.image=suite >/dev/null
docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^flotilla/'
