#!/usr/bin/env bash
# Body of `make fuzz`: runs each cargo-fuzz target in fuzz/ for SECONDS
# (default 30) and exits non-zero if any of them crashes. Not part of
# `make test`. See fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo fuzz needs a nightly toolchain (for the sanitizer flags). Without one
# (and when `rustup toolchain install nightly` fails, e.g. offline), the
# script falls back to the stable toolchain: it builds the targets' checks as
# a plain binary (`replay`) and runs them over the seed corpus and any saved
# corpus. That proves the seeds still pass; it does not fuzz.
# FUZZ_REPLAY_ONLY=1 takes that path even when nightly is there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SECS=${1:-30}
if ! [[ "$SECS" =~ ^[0-9]+$ ]] || (( SECS < 1 )); then
  echo "usage: $0 [SECONDS]   (seconds per target, default 30)" >&2
  exit 2
fi
TARGETS=(kickoff_parser ndjson_line)

log() { printf 'fuzz: %s\n' "$*" >&2; }

have_nightly() { rustup run nightly rustc --version >/dev/null 2>&1; }

if [[ -n "${FUZZ_REPLAY_ONLY:-}" ]]; then
  have_nightly() { false; }
elif ! have_nightly && command -v rustup >/dev/null; then
  log "no nightly toolchain: trying 'rustup toolchain install nightly --profile minimal'"
  rustup toolchain install nightly --profile minimal >&2 || log "could not install nightly"
fi

if ! have_nightly; then
  log "FALLBACK: no nightly toolchain (or FUZZ_REPLAY_ONLY), so no fuzzing: replaying the corpus with stable instead"
  cargo build --release --manifest-path fuzz/Cargo.toml --bin replay
  status=0
  for t in "${TARGETS[@]}"; do
    dirs=("$ROOT/fuzz/seeds/$t")
    [[ -d "$ROOT/fuzz/corpus/$t" ]] && dirs+=("$ROOT/fuzz/corpus/$t")
    if ! "$ROOT/fuzz/target/release/replay" "$t" "${dirs[@]}"; then
      log "$t: CRASH (see above)"
      status=1
    fi
  done
  exit "$status"
fi

if ! command -v cargo-fuzz >/dev/null; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

status=0
summary=()
for t in "${TARGETS[@]}"; do
  corpus="$ROOT/fuzz/corpus/$t"
  mkdir -p "$corpus"
  log "$t: fuzzing for ${SECS}s (corpus $corpus, seeds fuzz/seeds/$t)"
  out="$ROOT/fuzz/artifacts/$t.log"
  mkdir -p "$ROOT/fuzz/artifacts"
  # The first corpus directory receives new inputs; the seeds are only read.
  if cargo +nightly fuzz run --fuzz-dir "$ROOT/fuzz" "$t" "$corpus" "$ROOT/fuzz/seeds/$t" -- \
      -max_total_time="$SECS" -timeout=10 -dict="$ROOT/fuzz/dict/$t.dict" -print_final_stats=1 2>&1 | tee "$out"; then
    execs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$out" | tail -1)
    summary+=("$t: ok, ${execs:-?} executions in ${SECS}s")
  else
    summary+=("$t: CRASH: see fuzz/artifacts/$t/ and $out")
    status=1
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit "$status"
