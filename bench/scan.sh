#!/usr/bin/env bash
# `umbra scan` against the physical floor (`cp -r` of the same files), with and without
# --against, on the CT corpus of bench/deid.sh (run that first: it generates bench/work/ct).
# Usage: bench/scan.sh   Env: RUNS (default 10), WARMUP (default 2), OUT (cp's target dir
# parent; default /dev/shm). Writes bench/work/scan-results.md. It never builds umbra.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
OUT=${OUT:-/dev/shm}
CT=bench/work/ct
UMBRA=target/release/umbra
[ -x "$UMBRA" ] || { echo "missing $UMBRA; run: cargo build --release" >&2; exit 1; }
[ -d "$CT" ] || { echo "missing $CT; run bench/deid.sh first" >&2; exit 1; }
# umbra scan exits 1 on the raw corpus (it is full of identity): that is its answer, not a failure
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" -i \
  --prepare "rm -rf $OUT/umbra-scan-cp" \
  "cp -r $CT $OUT/umbra-scan-cp" \
  "$UMBRA scan $CT --format json" \
  "$UMBRA scan $CT --format json --against $CT" \
  --export-markdown bench/work/scan-results.md
cat bench/work/scan-results.md
