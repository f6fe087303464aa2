#!/usr/bin/env bash
# Benchmark `umbra deid` against the physical floor (`cp -r`) and gdcmanon
# (GDCM's PS3.15 Basic Profile tool, Debian package libgdcm-tools) on a
# generated corpus of 512x512 16-bit CT slices.  See bench/README.md.
#
# Usage: bench/deid.sh [N_SLICES]      (default 1000, about 0.5 GB)
# Env:   RUNS (default 5), WARMUP (default 1), SEED (default 1),
#        OUT (where outputs go; default bench/work; /dev/shm/... takes disk noise out)
#
# Everything it writes goes under bench/work/ (git-ignored); the table is
# printed and saved to bench/work/results.md.  It never builds umbra.
set -euo pipefail

N=${1:-1000}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
SEED=${SEED:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=target/release/umbra
mkdir -p "$W"

log() { printf '\n== %s\n' "$*" >&2; }

# --- 1. tools ---------------------------------------------------------------
apt_updated=0
apt_install() {
  local pkgs=("$@")
  if ! apt-get install -y -q "${pkgs[@]}" >&2; then
    if [ $apt_updated = 0 ]; then
      apt-get update -q >&2 && apt_updated=1
      apt-get install -y -q "${pkgs[@]}" >&2
    else
      return 1
    fi
  fi
}
need=()
command -v gdcmanon >/dev/null || need+=(libgdcm-tools)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then log "installing ${need[*]}"; apt_install "${need[@]}"; fi
if ! python3 -c 'import pydicom' 2>/dev/null; then
  log "installing pydicom"; python3 -m pip install -q pydicom >&2
fi

if [ ! -x "$UMBRA" ]; then
  echo "missing $UMBRA; run: cargo build --release" >&2
  exit 1
fi

# --- 2. corpus --------------------------------------------------------------
# One series of K slices per study, S studies per patient, P patients.
# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_ct_corpus "$N" "$SEED"
COUNT=$CT_COUNT
STAMP=$CT_STAMP
BYTES=$(bytes_of "$CT")

# --- 3. keys ----------------------------------------------------------------
ensure_key
ensure_gdcm_cert

# --- 4. commands ------------------------------------------------------------
# gdcmanon choice: `gdcmanon -e -c CERT -r --continue -i DIR -o OUT`.
#  * -e (de-identify, the default) is GDCM's implementation of the PS3.15
#    Basic Application Level Confidentiality Profile -- the same job umbra
#    does.  It is the only gdcmanon mode that applies a profile.
#  * --dumb applies nothing unless every tag is listed by hand with
#    --empty/--clear/--remove/--replace ("No operation(s) to be done" without
#    them); writing out the whole profile that way would be a hand-made
#    de-identifier, not gdcmanon's, so it is not used.
#  * -e always adds the CMS/AES-256 encryption of the replaced values; there
#    is no switch to turn it off.  The cost is one small RSA+AES envelope per
#    file, small next to reading and writing 512 KiB of pixels.
#  * -r -i DIR -o OUT is its own directory mode: it walks the tree and mirrors
#    it (keeping the identifying folder and file names).  --continue makes it
#    go past a file it cannot handle instead of stopping.  It is
#    single-threaded and has no option for more.
#  * GDCM 3.0.21's profile is older and narrower than umbra's: on this corpus
#    it keeps the dates, Patient's Address and Telephone Numbers, Issuer of
#    Patient ID, the GEMS private block and the folder/file names, so it does
#    less work per file than umbra.
# Where the outputs go: OUT=/dev/shm/umbra-bench puts them on tmpfs, which takes the disk's
# write-back (noisy on shared machines) out of the comparison; the default is bench/work.
O=${OUT:-$W}
mkdir -p "$O"
declare -a NAMES CMDS OUTS
add() { NAMES+=("$1"); OUTS+=("$2"); CMDS+=("$3"); }
add "cp -r"              "$O/out-cp"      "cp -r $CT $O/out-cp"
add "umbra deid"         "$O/out-umbra"   "$UMBRA deid $CT --out $O/out-umbra --key-file $W/key --quiet"
add "umbra deid --jobs 1" "$O/out-umbra1" "$UMBRA deid $CT --out $O/out-umbra1 --key-file $W/key --quiet --jobs 1"
add "gdcmanon -e -r"     "$O/out-gdcm"    "gdcmanon -e -c $W/gdcm-cert.pem -r --continue -i $CT -o $O/out-gdcm"

# --- 5. warm the page cache --------------------------------------------------
log "warming the page cache"
find "$CT" -type f -print0 | xargs -0 cat > /dev/null

# --- 6. timings -------------------------------------------------------------
# Each run starts with its output folder removed and `sync`ed, so no run pays
# for the previous run's dirty pages being written back.
hf=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$W/hyperfine.json" --style basic)
for i in "${!CMDS[@]}"; do
  hf+=(--prepare "rm -rf ${OUTS[$i]} && sync" --command-name "${NAMES[$i]}" "${CMDS[$i]}")
done
log "timing: ${hf[*]}"
"${hf[@]}" >&2

# --- 7. peak memory (one extra run each) ------------------------------------
log "peak RSS (/usr/bin/time -v)"
: > "$W/rss.txt"
for i in "${!CMDS[@]}"; do
  rm -rf "${OUTS[$i]}"; sync
  # shellcheck disable=SC2086
  /usr/bin/time -v ${CMDS[$i]} 2> "$W/time.txt" >/dev/null || { cat "$W/time.txt" >&2; exit 1; }
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
  printf '%s\t%s\n' "${NAMES[$i]}" "$kb" >> "$W/rss.txt"
done

# --- 8. sanity check of the outputs (from the RSS runs) ----------------------
log "checking outputs"
python3 - "$CT" "$O" > "$W/check.txt" <<'EOF'
import os, sys, pydicom
ct, w = sys.argv[1], sys.argv[2]
def files(d):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs)
names = {str(pydicom.dcmread(f, stop_before_pixels=True).PatientName) for f in files(ct)}
for tool, out in [("cp -r", "out-cp"), ("umbra deid", "out-umbra"),
                  ("umbra deid --jobs 1", "out-umbra1"), ("gdcmanon -e -r", "out-gdcm")]:
    fs = files(os.path.join(w, out))
    ok = bad = leaked = 0
    for f in fs:
        try:
            d = pydicom.dcmread(f)
            assert len(d.PixelData) == 512 * 512 * 2
            ok += 1
            if str(d.get("PatientName", "")) in names:
                leaked += 1
        except Exception:
            bad += 1
    print(f"{tool}\t{len(fs)}\t{ok}\t{bad}\t{leaked}")
EOF
rm -rf "${OUTS[@]}" "$W/time.txt"   # ~4x the corpus on disk otherwise

# --- 9. table ---------------------------------------------------------------
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
python3 - "$W/hyperfine.json" "$W/rss.txt" "$W/check.txt" "$COUNT" "$BYTES" > "$W/results.md" <<EOF
import json, sys
hf, rss_f, check_f, count, nbytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
res = json.load(open(hf))["results"]
rss = dict(l.rstrip("\n").split("\t") for l in open(rss_f))
chk = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(check_f)}
by = {r["command"]: r for r in res}
cp = by["cp -r"]["mean"]; gd = by["gdcmanon -e -r"]["mean"]
print("# umbra deid benchmark")
print()
print("- date: $(date -u '+%Y-%m-%d %H:%M UTC')")
print("- machine: $(nproc) CPUs, $CPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM")
print("- umbra: $("$UMBRA" --version) ($UMBRA), gdcmanon: $(gdcmanon --version 2>&1 | head -1 | sed 's/gdcmanon: //; s/ \$Date\$//'), $(hyperfine --version)")
print(f"- corpus: {count} CT slices 512x512x16 bit, {nbytes/1e6:.0f} MB ($STAMP), page cache warm")
print("- hyperfine --warmup $WARMUP --runs $RUNS; each run starts from an empty, synced output folder; outputs in $O")
print()
print("| tool | mean wall s (± sd) | files/s | MB/s | ratio to cp | peak RSS MB | output: files / readable / still named |")
print("|---|---|---|---|---|---|---|")
for r in res:
    n = r["command"]; m = r["mean"]; sd = r["stddev"] or 0.0
    c = chk.get(n, ["?"] * 4)
    print(f"| {n} | {m:.3f} ± {sd:.3f} | {count/m:.0f} | {nbytes/1e6/m:.0f} | {m/cp:.2f} | "
          f"{int(rss[n])/1024:.1f} | {c[0]} / {c[1]} / {c[3]} |")
print()
for n in ("umbra deid", "umbra deid --jobs 1"):
    m = by[n]["mean"]
    print(f"- {n}: {m/cp:.2f}x cp's wall time (target <= 2: {'met' if m/cp <= 2 else 'NOT met'}); "
          f"{gd/m:.2f}x gdcmanon's throughput (target >= 2: {'met' if gd/m >= 2 else 'NOT met'})")
print()
print("'still named' = output files whose PatientName is one of the corpus's real names "
      "(cp is expected to keep them all).")
EOF
cat "$W/results.md"
