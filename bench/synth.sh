#!/usr/bin/env bash
# How fast `umbra synth` makes a corpus and `umbra synth check` scores one, beside `cp -r` of the
# same corpus (the floor for writing those bytes).
#
# Usage: bench/synth.sh [PATIENTS]   (default 720: about 9,600 files of the small profile)
# Env:   RUNS (default 5), WARMUP (default 1), OUT (default bench/work; /dev/shm/... takes disk
#        noise out).  Table: bench/work/synth-results.md and stdout.  It never builds umbra.
set -euo pipefail
PATIENTS=${1:-720}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=target/release/umbra
OUT=${OUT:-$W}
mkdir -p "$W" "$OUT"
if [ ! -x "$UMBRA" ]; then echo "missing $UMBRA; run: cargo build --release" >&2; exit 1; fi
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_key
S=$OUT/synth-speed
rm -rf "$S" && "$UMBRA" synth --out "$S/ref" --patients "$PATIENTS" >&2
"$UMBRA" deid "$S/ref/corpus" --out "$S/deid" --key-file "$W/key" --quiet >/dev/null 2>&1 || true
files=$(find "$S/ref/corpus" -type f | wc -l)
mb=$(du -sm "$S/ref/corpus" | cut -f1)
hyperfine --warmup "$WARMUP" --runs "$RUNS" -i --export-markdown "$W/synth-results.md" \
  --prepare "rm -rf $S/gen $S/cp; sync" \
  -n "cp -r of the corpus" "cp -r $S/ref/corpus $S/cp" \
  -n "umbra synth --patients $PATIENTS" "$UMBRA synth --out $S/gen --patients $PATIENTS" \
  -n "umbra synth check (umbra's output)" "$UMBRA synth check $S/ref/key.json $S/deid" \
  -n "umbra synth check (the corpus itself: everything leaks)" "$UMBRA synth check $S/ref/key.json $S/ref/corpus" >&2
echo "corpus: $files files, $mb MB; $(nproc) CPUs" | tee -a "$W/synth-results.md"
cat "$W/synth-results.md"
rm -rf "$S"
