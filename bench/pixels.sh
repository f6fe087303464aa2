#!/usr/bin/env bash
# What pixel cleaning costs: 640x480 ultrasound with burned-in text (`umbra synth --profile
# us640`), copied (`cp -r`, the floor), de-identified without looking at the pixels (plain
# `umbra deid` with no at-risk modalities, so the images are released as they are: the speed a
# header-only tool reaches, not a safe setting) and with `--option clean-pixel-data` (decode,
# find text, fill, check, encode), on all cores and with --jobs 1 (frames per second per core).
#
# Usage: bench/pixels.sh [PATIENTS] [FRAMES]   (defaults 10 and 20: 3 single frames and one clip
#                                              of FRAMES frames per patient)
# Env:   RUNS (default 5), WARMUP (default 1), SEED (default 1),
#        OUT (where outputs go; default bench/work; /dev/shm/... takes disk noise out)
# Table: bench/work/pixels-results.md and stdout.  It never builds umbra.
set -euo pipefail

PATIENTS=${1:-10}
FRAMES=${2:-20}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
SEED=${SEED:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=target/release/umbra
OUT=${OUT:-$W}
mkdir -p "$W" "$OUT"
log() { printf '\n== %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

if [ ! -x "$UMBRA" ]; then echo "missing $UMBRA; run: cargo build --release" >&2; exit 1; fi
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
ensure_key
ensure_synth "$W/synth-us640" --profile us640 --patients "$PATIENTS" --frames "$FRAMES" --seed "$SEED"
IN=$W/synth-us640/corpus
files=$(find "$IN" -type f | wc -l)
frames=$((PATIENTS * (3 + FRAMES)))
bytes=$(bytes_of "$IN")
D=$OUT/pixels-out
plain="$UMBRA deid $IN --out $D --key-file $W/key --quiet --at-risk-modalities ''"
clean="$UMBRA deid $IN --out $D --key-file $W/key --quiet --option clean-pixel-data"
hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$W/pixels.json" \
  --prepare "rm -rf $D; sync" -i \
  -n "cp -r" "cp -r $IN $D" \
  -n "umbra deid (pixels not read)" "$plain" \
  -n "umbra deid --option clean-pixel-data" "$clean" \
  -n "umbra deid --jobs 1 (pixels not read)" "$plain --jobs 1" \
  -n "umbra deid --jobs 1 --option clean-pixel-data" "$clean --jobs 1" >&2
rm -rf "$D"
$clean --report "$W/pixels-report.jsonl" >/dev/null 2>&1 || true
written=$(grep -c '"written"' "$W/pixels-report.jsonl" || true)
held=$(grep -c '"held_back"' "$W/pixels-report.jsonl" || true)
rm -rf "$D"
python3 - "$W/pixels.json" "$files" "$frames" "$bytes" "$written" "$held" "$(nproc)" > "$W/pixels-results.md" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
files, frames, nbytes, written, held, cpus = (int(x) for x in sys.argv[2:])
cp = res[0]["mean"]
print(f"{files} files, {frames} frames of 640x480 RGB, {nbytes/1e6:.0f} MB; with clean-pixel-data: "
      f"{written} written, {held} held back; {cpus} CPUs")
print()
print("| command | mean s (± sd) | frames/s | frames/s per core | ratio to cp |")
print("|---|---|---|---|---|")
for r in res:
    jobs1 = "--jobs 1" in r["command"]
    fps = frames / r["mean"]
    per_core = fps if jobs1 else fps / cpus
    print(f"| {r['command']} | {r['mean']:.3f} ± {r['stddev']:.3f} | {fps:.0f} | {per_core:.0f} | {r['mean']/cp:.2f} |")
PY
cat "$W/pixels-results.md"
