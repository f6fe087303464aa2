#!/usr/bin/env bash
# What the release gate (the independent scanner run on every object before it is
# written) costs `umbra deid`: `cp -r` (the floor), `umbra deid` (gate on, the default) and
# `umbra deid --no-verify` in one hyperfine session per corpus, on two corpora:
#   ct  - the 512x512 CT slices of bench/deid.sh (pixels dominate; same generator, same stamp)
#   hdr - the small real files of tests/corpus/public (at most 64 KiB each: headers with
#         private blocks, sequences, SR, RT, several transfer syntaxes) copied COPIES times,
#         where the gate's share of the work is largest.
# See bench/README.md.
#
# Usage: bench/gate.sh [N_SLICES] [COPIES]   (defaults 1000 and 40)
# Env:   RUNS (default 10), WARMUP (default 2), SEED (default 1),
#        JOBS1 (default 1: also time both umbra rows with --jobs 1; 0 to skip),
#        OUT (where outputs go; default bench/work; /dev/shm/... takes disk noise out)
#
# Everything it writes goes under bench/work/ (git-ignored) and OUT; the table is printed
# and saved to bench/work/gate-results.md.  It never builds umbra.
set -euo pipefail

N=${1:-1000}
COPIES=${2:-40}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
SEED=${SEED:-1}
JOBS1=${JOBS1:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=target/release/umbra
PUBLIC=tests/corpus/public
mkdir -p "$W"

log() { printf '\n== %s\n' "$*" >&2; }

# --- 1. tools ---------------------------------------------------------------
if ! command -v hyperfine >/dev/null; then
  log "installing hyperfine"
  apt-get install -y -q hyperfine >&2 || { apt-get update -q >&2 && apt-get install -y -q hyperfine >&2; }
fi
if ! python3 -c 'import pydicom' 2>/dev/null; then
  log "installing pydicom"; python3 -m pip install -q pydicom >&2
fi
if [ ! -x "$UMBRA" ]; then
  echo "missing $UMBRA; run: cargo build --release" >&2
  exit 1
fi

# --- 2. corpora -------------------------------------------------------------
# ct: exactly as bench/deid.sh makes it (same folder and stamp, so the two scripts share it).
# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_ct_corpus "$N" "$SEED"
STAMP=$CT_STAMP

# hdr: every file of the public corpus's MANIFEST.tsv of at most 64 KiB except the one text
# file, copied byte for byte into COPIES folders c01/, c02/, ... .  The copies are
# identical, so each writes the same output path as its first copy (umbra compares the bytes
# and keeps one file); the few that umbra holds back, fails or skips (duplicate SOP Instance
# UIDs among the MR_small transfer syntaxes, secondary captures without Burned In
# Annotation, no SOP Class UID, a DICOMDIR, no DICM magic) do so in every row alike.
HDR=$W/hdr
HDR_LIST=$(awk -F'\t' 'NR > 1 && $6 <= 65536 && $1 !~ /\.txt$/ {print $1}' "$PUBLIC/MANIFEST.tsv")
HDR_STAMP="copies=$COPIES files=$(printf '%s\n' "$HDR_LIST" | (cd "$PUBLIC" && xargs sha256sum) | sha256sum | cut -c1-16)"
HDR_COUNT=$(( $(printf '%s\n' "$HDR_LIST" | wc -l) * COPIES ))
have=$(find "$HDR" -type f 2>/dev/null | wc -l || true)
if [ "$have" = "$HDR_COUNT" ] && [ "$(cat "$W/hdr.stamp" 2>/dev/null)" = "$HDR_STAMP" ]; then
  log "hdr corpus: reusing $HDR ($HDR_COUNT files)"
else
  log "hdr corpus: copying $HDR_COUNT files into $HDR ($HDR_STAMP)"
  rm -rf "$HDR" "$W/hdr.stamp"
  for c in $(seq -w 1 "$COPIES"); do
    while IFS= read -r f; do
      mkdir -p "$HDR/c$c/$(dirname "$f")"
      cp "$PUBLIC/$f" "$HDR/c$c/$f"
    done <<< "$HDR_LIST"
  done
  echo "$HDR_STAMP" > "$W/hdr.stamp"
fi


# --- 3. key -----------------------------------------------------------------
ensure_key

# --- 4. timings, one hyperfine session per corpus -------------------------------
# Each run starts with its output folder removed and `sync`ed.  umbra exits 1 when it
# holds back or fails any input, which it does on hdr, so hyperfine ignores exit codes
# there; step 5 checks what each row did instead.
O=${OUT:-$W}
mkdir -p "$O"
log "warming the page cache"
find "$CT" "$HDR" -type f -print0 | xargs -0 cat > /dev/null

declare -a NAMES CMDS OUTS
for corpus in ct hdr; do
  src=$W/$corpus
  NAMES=(); CMDS=(); OUTS=()
  add() { NAMES+=("$1"); OUTS+=("$2"); CMDS+=("$3"); }
  d="$UMBRA deid $src --key-file $W/key --quiet"
  add "cp -r"                           "$O/gate-cp"   "cp -r $src $O/gate-cp"
  add "umbra deid"                      "$O/gate-on"   "$d --out $O/gate-on"
  add "umbra deid --no-verify"          "$O/gate-off"  "$d --out $O/gate-off --no-verify"
  if [ "$JOBS1" = 1 ]; then
    add "umbra deid --jobs 1"             "$O/gate-on1"  "$d --out $O/gate-on1 --jobs 1"
    add "umbra deid --jobs 1 --no-verify" "$O/gate-off1" "$d --out $O/gate-off1 --jobs 1 --no-verify"
  fi
  hf=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic
      --export-json "$W/gate-$corpus.json")
  [ "$corpus" = hdr ] && hf+=(--ignore-failure)
  for i in "${!CMDS[@]}"; do
    hf+=(--prepare "rm -rf ${OUTS[$i]} && sync" --command-name "${NAMES[$i]}" "${CMDS[$i]}")
  done
  log "timing $corpus: ${hf[*]}"
  "${hf[@]}" >&2

  # --- 5. what each umbra row did (one extra run each, with --report) --------------
  : > "$W/gate-$corpus-check.txt"
  for i in "${!CMDS[@]}"; do
    case "${NAMES[$i]}" in umbra*) ;; *) continue ;; esac
    rm -rf "${OUTS[$i]}"; sync
    # shellcheck disable=SC2086
    ${CMDS[$i]} --report "$W/gate-report.jsonl" >/dev/null 2>&1 || true
    python3 - "$W/gate-report.jsonl" "${NAMES[$i]}" "$(find "${OUTS[$i]}" -type f | wc -l)" \
      >> "$W/gate-$corpus-check.txt" <<'EOF'
import collections, json, sys
c = collections.Counter(json.loads(l)["outcome"] for l in open(sys.argv[1]))
done = " / ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(c.items()))
print(sys.argv[2], f"{done}; {sys.argv[3]} output files", sep="\t")
EOF
  done
  rm -rf "${OUTS[@]}" "$W/gate-report.jsonl"
done

# --- 6. table ---------------------------------------------------------------
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
python3 - "$W" "$CT_COUNT" "$(bytes_of "$CT")" "$HDR_COUNT" "$(bytes_of "$HDR")" > "$W/gate-results.md" <<EOF
import json, math, sys
w = sys.argv[1]
sizes = {"ct": (int(sys.argv[2]), int(sys.argv[3])), "hdr": (int(sys.argv[4]), int(sys.argv[5]))}
about = {
    "ct": "CT slices 512x512x16 bit ($STAMP)",
    "hdr": "small real files from $PUBLIC, <= 64 KiB each, $COPIES copies ($HDR_STAMP)",
}
print("# Release gate cost")
print()
print("- date: $(date -u '+%Y-%m-%d %H:%M UTC')")
print("- machine: $(nproc) CPUs, $CPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM")
print("- umbra: $("$UMBRA" --version) ($UMBRA), $(hyperfine --version)")
print("- hyperfine --warmup $WARMUP --runs $RUNS; each run starts from an empty, synced output folder; outputs in $O; page cache warm")
for corpus in ("ct", "hdr"):
    count, nbytes = sizes[corpus]
    res = json.load(open(f"{w}/gate-{corpus}.json"))["results"]
    chk = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{w}/gate-{corpus}-check.txt"))
    by = {r["command"]: r for r in res}
    cp = by["cp -r"]["mean"]
    print()
    print(f"## {corpus}: {count} files, {nbytes/1e6:.0f} MB, {about[corpus]}")
    print()
    print("| command | mean wall s (± sd) | CPU s (user+sys) | files/s | ratio to cp | what umbra did |")
    print("|---|---|---|---|---|---|")
    for r in res:
        n = r["command"]; m = r["mean"]; sd = r["stddev"] or 0.0
        print(f"| {n} | {m:.3f} ± {sd:.3f} | {r['user'] + r['system']:.3f} | {count/m:.0f} | "
              f"{m/cp:.2f} | {chk.get(n, '-')} |")
    print()
    for on, off in (("umbra deid", "umbra deid --no-verify"),
                    ("umbra deid --jobs 1", "umbra deid --jobs 1 --no-verify")):
        if on not in by:
            continue
        a, b = by[on], by[off]
        cost = (a["mean"] - b["mean"]) / b["mean"]
        # sd of a/b from the two relative sds (independent runs)
        sd = a["mean"] / b["mean"] * math.hypot((a["stddev"] or 0) / a["mean"], (b["stddev"] or 0) / b["mean"])
        cpu_a, cpu_b = a["user"] + a["system"], b["user"] + b["system"]
        ms = (a["mean"] - b["mean"]) / count * 1e3
        print(f"- gate cost, {on}: {100*cost:+.0f}% ± {100*sd:.0f}% of wall time "
              f"({a['mean']:.3f} ± {a['stddev'] or 0:.3f} s vs {b['mean']:.3f} ± {b['stddev'] or 0:.3f} s; "
              f"{ms:.3f} ms of wall time per file), {100*(cpu_a - cpu_b)/cpu_b:+.0f}% of CPU time; "
              f"target < 15%: {'met' if cost < 0.15 else 'NOT met'}")
EOF
cat "$W/gate-results.md"
