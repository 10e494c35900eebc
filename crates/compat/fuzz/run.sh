#!/usr/bin/env bash
# Runs every fuzz target of flotilla-compat for a bounded time each (default 60 s; the first
# argument overrides), from a corpus seeded with the buf fixtures' descriptor sets, and prints
# how many inputs each executed. The seed is fixed, so a run explores the same inputs in the
# same order on every machine (how far it gets depends on the machine's speed). A crash fails
# the run and leaves its input under artifacts/.
# Needs cargo-fuzz (installed from crates.io when missing); runs on the stable toolchain with
# --sanitizer none (coverage-guided libFuzzer, no ASan: the code fuzzed forbids unsafe).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io"
  cargo install --locked cargo-fuzz
fi
cargo fuzz build --sanitizer none

fixtures=../tests/fixtures/buf
seed() {
  local target=$1
  mkdir -p "corpus/$target"
  case "$target" in
    schema)
      for set in "$fixtures"/*/*.binpb; do
        cp "$set" "corpus/$target/$(basename "$(dirname "$set")")-$(basename "$set")"
      done
      ;;
    publish | diff)
      # A split byte in the middle, then the previous and the current schema.
      for case in "$fixtures"/*/; do
        [ -f "$case/old.binpb" ] && [ -f "$case/new.binpb" ] || continue
        { printf '\x80'; cat "$case/old.binpb" "$case/new.binpb"; } >"corpus/$target/$(basename "$case")"
      done
      ;;
  esac
}

for target in $(cargo fuzz list); do
  seed "$target"
  log="$(mktemp)"
  if ! cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -seed=1 -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed; the input is under $(pwd)/artifacts/$target/"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  corpus=$(find "corpus/$target" -type f | wc -l)
  echo "fuzz target $target: ${runs:-?} inputs in ${seconds} s, corpus of ${corpus}"
  rm -f "$log"
done
