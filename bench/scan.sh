#!/usr/bin/env bash
# `umbra scan` against the physical floor (`cp -r` of the same files), with and without
# --against, on the CT corpus bench/deid.sh uses (bench/work/ct, generated when missing; needs
# hyperfine and pydicom, which bench/deid.sh installs).
# Usage: bench/scan.sh [N_SLICES]   (default 1000)
# Env: RUNS (default 10), WARMUP (default 2), SEED (default 1), OUT (where cp writes; default
# /dev/shm). Writes bench/work/scan-results.md. It never builds umbra.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
OUT=${OUT:-/dev/shm}
SEED=${SEED:-1}
W=bench/work
UMBRA=target/release/umbra
mkdir -p "$W"
log() { printf '\n== %s\n' "$*" >&2; }
[ -x "$UMBRA" ] || { echo "missing $UMBRA; run: cargo build --release" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_ct_corpus "${1:-1000}" "$SEED"
# umbra scan exits 1 on the raw corpus (it is full of identity): that is its answer, not a failure
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" -i \
  --prepare "rm -rf $OUT/umbra-scan-cp" \
  "cp -r $CT $OUT/umbra-scan-cp" \
  "$UMBRA scan $CT --format json" \
  "$UMBRA scan $CT --format json --against $CT" \
  --export-markdown bench/work/scan-results.md
cat bench/work/scan-results.md
