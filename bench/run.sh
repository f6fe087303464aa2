#!/usr/bin/env bash
# Peers side by side: install the de-identification tools people use today and run each on the
# generated CT corpus (bench/lib.sh) beside umbra and `cp -r` (the physical floor), reporting
# speed and what each leaves behind.  See bench/README.md.
#
# Usage: bench/run.sh [N_SLICES]      (default 1000, about 0.5 GB)
# Env:   RUNS (default 5), WARMUP (default 1), SEED (default 1),
#        OUT (where outputs go; default bench/work; /dev/shm/... takes disk noise out)
#
# Python peers go in one venv each under bench/work/venv/NAME (their pydicom pins conflict).
# A peer that fails to install or run gets a row saying so.  Table: bench/work/peers.md + stdout.
set -euo pipefail

N=${1:-1000}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
SEED=${SEED:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=target/release/umbra
V=$W/venv
mkdir -p "$W" "$V"
log() { printf '\n== %s\n' "$*" >&2; }

if [ ! -x "$UMBRA" ]; then echo "missing $UMBRA; run: cargo build --release" >&2; exit 1; fi

# --- 1. system tools ----------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
  apt-get install -y -q "$@" >&2 && return 0
  [ $apt_updated = 0 ] || return 1
  apt-get update -q >&2 && apt_updated=1
  apt-get install -y -q "$@" >&2
}
need=()
command -v gdcmanon >/dev/null || need+=(libgdcm-tools)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null || need+=(openssl)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then log "installing ${need[*]}"; apt_install "${need[@]}" || log "apt-get failed for some of ${need[*]}"; fi
if ! python3 -c 'import pydicom' 2>/dev/null; then   # the corpus generator
  log "installing pydicom"
  python3 -m pip install -q pydicom >&2 || python3 -m pip install -q --break-system-packages pydicom >&2
fi

# --- 2. python peers, one venv each --------------------------------------------
# venv NAME PIP-SPEC: make $V/NAME with PIP-SPEC installed (once); status in $V/NAME.ok.
declare -A BROKEN   # tool name -> why it has no measurement
venv() {
  local name=$1 spec=$2
  if [ "$(cat "$V/$name.ok" 2>/dev/null)" = "$spec" ]; then return 0; fi
  log "installing $spec into $V/$name"
  rm -rf "${V:?}/$name" "$V/$name.ok"
  if python3 -m venv "$V/$name" >&2 && "$V/$name/bin/pip" install -q "$spec" >&2; then
    echo "$spec" > "$V/$name.ok"
  else
    return 1
  fi
}
venv dicognito dicognito==0.19.0 || BROKEN[dicognito]="pip install dicognito==0.19.0 failed"
venv deid deid || BROKEN[deid]="pip install deid failed"
venv dicom-anonymizer dicom-anonymizer || BROKEN[dicom-anonymizer]="pip install dicom-anonymizer failed"
venv dcmanon dcmanon || BROKEN[dcmanon]="pip install dcmanon failed"
pyver() { "$V/$1/bin/pip" show "$2" 2>/dev/null | awk '/^Version:/ {print $2}'; }

# Drivers for the two peers that are libraries without a folder CLI.  Both mirror the input tree
# (relative paths kept, as gdcmanon -r does), one file at a time.
mkdir -p "$W/drivers"
# pydicom/deid: its own CLI (`deid identifiers`) has no folder-in/folder-out mode; this is the
# documented library call with no recipe given, i.e. deid's default `deid.dicom` recipe.
cat > "$W/drivers/deid_driver.py" <<'EOF'
import os, sys
from deid.dicom import replace_identifiers
src, out = sys.argv[1], sys.argv[2]
for r, _, fs in os.walk(src):
    for f in sorted(fs):
        p = os.path.join(r, f)
        ds = replace_identifiers([p], save=False)[0]
        o = os.path.join(out, os.path.relpath(p, src))
        os.makedirs(os.path.dirname(o), exist_ok=True)
        ds.save_as(o)
EOF
# dcmanon: the PyPI package is a library (its CLI is a separate cargo crate); default settings.
cat > "$W/drivers/dcmanon_driver.py" <<'EOF'
import os, sys
from dcmanon import Anonymizer
src, out = sys.argv[1], sys.argv[2]
a = Anonymizer()
for r, _, fs in os.walk(src):
    for f in sorted(fs):
        p = os.path.join(r, f)
        o = os.path.join(out, os.path.relpath(p, src))
        os.makedirs(os.path.dirname(o), exist_ok=True)
        with open(o, "wb") as h:
            h.write(a.anonymize(p))
EOF

# RSNA Anonymizer (PyPI rsna-anonymizer 19.0.10, checked 2026-11-25) is not installed: its
# headless mode (`rsna-anonymizer -c PROJECT.json`) starts its DICOM C-STORE listener and waits
# for a signal; importing a folder is done from the GUI only, so there is no folder-in/folder-out
# run to time.  (It also pulls in torch, easyocr and totalsegmentator: ~7.6 GB.)
BROKEN[rsna-anonymizer]="not headless for folders: its -c headless mode only runs a DICOM C-STORE listener; folder import is GUI-only (19.0.10, not installed)"

# --- 3. corpus and keys -------------------------------------------------------
# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_ct_corpus "$N" "$SEED"
COUNT=$CT_COUNT
BYTES=$(bytes_of "$CT")
ensure_key
ensure_gdcm_cert

# --- 4. commands --------------------------------------------------------------
O=${OUT:-$W}/peers
mkdir -p "$O"
declare -a NAMES CMDS OUTS VERS
add() { NAMES+=("$1"); OUTS+=("$2"); CMDS+=("$3"); VERS+=("$4"); }
UV=$("$UMBRA" --version | awk '{print $2}')
add "cp -r" "$O/cp" "cp -r $CT $O/cp" "$(cp --version | head -1 | awk '{print $NF}')"
add "umbra deid" "$O/umbra" "$UMBRA deid $CT --out $O/umbra --key-file $W/key --quiet" "$UV"
add "umbra deid --jobs 1" "$O/umbra1" "$UMBRA deid $CT --out $O/umbra1 --key-file $W/key --quiet --jobs 1" "$UV"
if command -v gdcmanon >/dev/null; then
  add "gdcmanon -e -r" "$O/gdcm" "gdcmanon -e -c $W/gdcm-cert.pem -r --continue -i $CT -o $O/gdcm" \
    "$(gdcmanon --version 2>&1 | head -1 | awk '{print $3}')"
else
  BROKEN[gdcmanon]="apt-get install libgdcm-tools failed"
fi
# dicognito 0.19.0's `dicognito` script crashes (main() lacks its arguments): run the module.
[ -n "${BROKEN[dicognito]:-}" ] || add "dicognito" "$O/dicognito" \
  "$V/dicognito/bin/python -m dicognito --quiet -o $O/dicognito $CT" "$(pyver dicognito dicognito)"
[ -n "${BROKEN[deid]:-}" ] || add "deid (default recipe)" "$O/deid" \
  "$V/deid/bin/python $W/drivers/deid_driver.py $CT $O/deid" "$(pyver deid deid)"
# dicom-anonymizer reads only the files directly in its input folder (on the corpus root it
# processes 0 files and exits 0) and writes nothing unless the output folder exists: run it
# once per series folder into the mirrored folder.
cat > "$W/drivers/dicom-anonymizer.sh" <<'EOS'
set -e
src=$1 out=$2 bin=$3
find "$src" -type f -printf '%h\n' | sort -u | while read -r d; do
  o=$out/${d#"$src"/}; mkdir -p "$o"; "$bin" "$d" "$o" >/dev/null 2>&1
done
EOS
[ -n "${BROKEN[dicom-anonymizer]:-}" ] || add "dicom-anonymizer (per folder)" "$O/dicom-anonymizer" \
  "bash $W/drivers/dicom-anonymizer.sh $CT $O/dicom-anonymizer $V/dicom-anonymizer/bin/dicom-anonymizer" \
  "$(pyver dicom-anonymizer dicom-anonymizer)"
[ -n "${BROKEN[dcmanon]:-}" ] || add "dcmanon (default)" "$O/dcmanon" \
  "$V/dcmanon/bin/python $W/drivers/dcmanon_driver.py $CT $O/dcmanon" "$(pyver dcmanon dcmanon)"

# --- 5. does each run at all? (one extra run each: also gives peak RSS and the output) -----------
log "warming the page cache"
find "$CT" -type f -print0 | xargs -0 cat > /dev/null
log "peak RSS and output of one run each (/usr/bin/time -v)"
: > "$W/peers-rss.txt"
declare -a OK_I
for i in "${!CMDS[@]}"; do
  rm -rf "${OUTS[$i]}"; sync
  if eval "/usr/bin/time -v ${CMDS[$i]}" 2> "$W/peers-time.txt" >/dev/null; then
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/peers-time.txt")
    nf=$(find "${OUTS[$i]}" -type f 2>/dev/null | wc -l)
    if [ "$nf" = 0 ]; then
      BROKEN[${NAMES[$i]}]="ran (exit 0) but wrote no file"
    else
      OK_I+=("$i")
    fi
    printf '%s\t%s\n' "${NAMES[$i]}" "$kb" >> "$W/peers-rss.txt"
  else
    BROKEN[${NAMES[$i]}]="failed: $(grep -v -E '^\s|Command exited' "$W/peers-time.txt" | tail -n 1 | cut -c1-120)"
  fi
done

# --- 6. what each leaves behind: umbra's own scanner as judge -------------------------------------
log "umbra scan OUT --against CT on each output"
: > "$W/peers-leaks.txt"
for i in "${OK_I[@]}"; do
  nf=$(find "${OUTS[$i]}" -type f | wc -l)
  "$UMBRA" scan "${OUTS[$i]}" --against "$CT" --format json > "$W/peers-scan.json" 2>/dev/null || true
  python3 - "${NAMES[$i]}" "$nf" "$W/peers-scan.json" >> "$W/peers-leaks.txt" <<'EOF'
import collections, json, sys
name, nf, path = sys.argv[1], sys.argv[2], sys.argv[3]
ag = other = 0
rules = collections.Counter()
for line in open(path):
    j = json.loads(line)
    if j.get("severity") != "error":
        continue
    rules[j["rule"]] += 1
    if j["rule"].startswith("against-"):
        ag += 1
    else:
        other += 1
top = ", ".join(f"{r} {n}" for r, n in rules.most_common())
print(f"{name}\t{nf}\t{ag}\t{other}\t{top}")
EOF
done

# --- 7. timings (only what ran) ----------------------------------------------------------------
hf=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$W/peers-hyperfine.json" --style basic)
for i in "${OK_I[@]}"; do
  hf+=(--prepare "rm -rf ${OUTS[$i]} && sync" --command-name "${NAMES[$i]}" "${CMDS[$i]}")
done
log "timing: ${hf[*]}"
"${hf[@]}" >&2
rm -rf "${OUTS[@]}" "$W/peers-time.txt" "$W/peers-scan.json"

# --- 8. table -------------------------------------------------------------------------------------
: > "$W/peers-broken.txt"
for k in "${!BROKEN[@]}"; do printf '%s\t%s\n' "$k" "${BROKEN[$k]}" >> "$W/peers-broken.txt"; done
: > "$W/peers-vers.txt"
for i in "${!NAMES[@]}"; do printf '%s\t%s\n' "${NAMES[$i]}" "${VERS[$i]}" >> "$W/peers-vers.txt"; done
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
python3 - "$W" "$COUNT" "$BYTES" > "$W/peers.md" <<EOF
import json, sys
w, count, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def tsv(name):
    return [l.rstrip("\n").split("\t") for l in open(f"{w}/{name}") if l.strip()]
res = json.load(open(f"{w}/peers-hyperfine.json"))["results"]
rss = {r[0]: r[1] for r in tsv("peers-rss.txt")}
leaks = {r[0]: r[1:] for r in tsv("peers-leaks.txt")}
vers = {r[0]: r[1] for r in tsv("peers-vers.txt")}
broken = tsv("peers-broken.txt")
cp = next(r["mean"] for r in res if r["command"] == "cp -r")
print("# Peers side by side")
print()
print("- date: $(date -u '+%Y-%m-%d %H:%M UTC')")
print("- machine: $(nproc) CPUs, $CPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM")
print(f"- corpus: {count} CT slices 512x512x16 bit, {nbytes/1e6:.0f} MB ($CT_STAMP), page cache warm")
print("- hyperfine --warmup $WARMUP --runs $RUNS; each run starts from an empty, synced output folder; outputs in $O")
print()
print("Leaks: error-level findings of \`umbra scan OUT --against ORIGINALS\` on each output -- umbra's own "
      "scanner as judge, an interim measure until \`umbra synth check\` exists. against-* = identifiers of "
      "the originals found in the output; other = shape findings (identity-looking values, private "
      "blocks, UIDs under the original root, ...).")
print()
print("| tool | version | mean wall s (± sd) | files/s | MB/s | ratio to cp | peak RSS MB | output files | leaks: against-* / other | error findings by rule |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in res:
    n = r["command"]; m = r["mean"]; sd = r["stddev"] or 0.0
    l = leaks.get(n, ["?", "?", "?", ""])
    print(f"| {n} | {vers.get(n, '?')} | {m:.3f} ± {sd:.3f} | {count/m:.0f} | {nbytes/1e6/m:.0f} | {m/cp:.2f} | "
          f"{int(rss[n])/1024:.0f} | {l[0]} | {l[1]} / {l[2]} | {l[3] or '-'} |")
for n, why in sorted(broken):
    print(f"| {n} | {vers.get(n, '-')} | not measured: {why} | | | | | | | |")
print()
print("cp -r is a copy, so its leaks are the corpus's own identity: the scale the others are read against.")
EOF
cat "$W/peers.md"
