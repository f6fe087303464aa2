#!/usr/bin/env bash
# Peers side by side: install the de-identification tools people use today and run each beside
# umbra and `cp -r` on two corpora made by `umbra synth`:
#   - throughput: --profile ct512 (one CT series of 512x512 16-bit slices per patient), timed with
#     hyperfine: files/s, MB/s, ratio to cp, peak RSS;
#   - correctness: --profile small (every modality, transfer syntax, character set and hazard, with
#     identity planted everywhere), one run each scored by `umbra synth check KEY OUT`.
# See bench/README.md.
#
# Usage: bench/run.sh
# Env:   PATIENTS (small corpus, default 40), CT_PATIENTS (default 10), SLICES (per CT patient,
#        default 100), SEED (default 1), RUNS (default 5), WARMUP (default 1),
#        OUT (where outputs go; default bench/work; /dev/shm/... takes disk noise out)
#
# Python peers go in one venv each under bench/work/venv/NAME (their pydicom pins conflict).
# A peer that fails to install or run gets a row saying so.  Writes bench/work/peers.md (also on
# stdout), bench/work/peers.json, bench/work/scores/TOOL.json and, with bench/plot.py,
# bench/peers.svg.
set -euo pipefail

PATIENTS=${PATIENTS:-40}
CT_PATIENTS=${CT_PATIENTS:-10}
SLICES=${SLICES:-100}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=target/release/umbra
V=$W/venv
D=bench/drivers
mkdir -p "$W" "$V" "$W/scores"
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

# RSNA Anonymizer (PyPI rsna-anonymizer 19.0.10, checked 2026-11-25) is not installed: its
# headless mode (`rsna-anonymizer -c PROJECT.json`) starts its DICOM C-STORE listener and waits
# for a signal; importing a folder is done from the GUI only, so there is no folder-in/folder-out
# run to time.  (It also pulls in torch, easyocr and totalsegmentator: ~7.6 GB.)
BROKEN[rsna-anonymizer]="not headless for folders: its -c headless mode only runs a DICOM C-STORE listener; folder import is GUI-only (19.0.10, not installed)"

# --- 3. corpora and keys ------------------------------------------------------
# shellcheck source=bench/lib.sh
. bench/lib.sh
ensure_synth "$W/synth-small" --profile small --patients "$PATIENTS" --seed "$SEED"
SMALL_STAMP=$SYNTH_STAMP
ensure_synth "$W/synth-ct512" --profile ct512 --patients "$CT_PATIENTS" --slices "$SLICES" --seed "$SEED"
CT_STAMP=$SYNTH_STAMP
SMALL=$W/synth-small/corpus
KEY=$W/synth-small/key.json
CT=$W/synth-ct512/corpus
COUNT=$(find "$CT" -type f | wc -l)
BYTES=$(bytes_of "$CT")
SMALL_COUNT=$(find "$SMALL" -type f | wc -l)
ensure_key
ensure_gdcm_cert

# --- 4. commands --------------------------------------------------------------
# Each tool has a throughput command (THR, run on the ct512 corpus) and a correctness command
# (COR, run on the small corpus); {SRC} and {OUT} stand for the input and output folders.  They
# differ only where a peer stops at the first file it cannot handle: on the small corpus that
# peer runs through its driver in bench/drivers/ (which skips such files and counts them).
O=${OUT:-$W}/peers
mkdir -p "$O"
declare -a NAMES SLUGS THR COR VERS
add() { NAMES+=("$1"); SLUGS+=("$2"); VERS+=("$3"); THR+=("$4"); COR+=("${5:-$4}"); }
UV=$("$UMBRA" --version | awk '{print $2}')
add "cp -r" cp "$(cp --version | head -1 | awk '{print $NF}')" "cp -r {SRC} {OUT}"
add "umbra deid" umbra "$UV" "$UMBRA deid {SRC} --out {OUT} --key-file $W/key --quiet"
add "umbra deid --jobs 1" umbra-jobs1 "$UV" "$UMBRA deid {SRC} --out {OUT} --key-file $W/key --quiet --jobs 1"
if command -v gdcmanon >/dev/null; then
  # -e is gdcmanon's only mode that applies the Basic Profile; it will not run without a
  # certificate (bench/lib.sh ensure_gdcm_cert).
  add "gdcmanon -e -r" gdcmanon "$(gdcmanon --version 2>&1 | head -1 | awk '{print $3}')" \
    "gdcmanon -e -c $W/gdcm-cert.pem -r --continue -i {SRC} -o {OUT}" \
    "bash $D/gdcmanon.sh {SRC} {OUT} $W/gdcm-cert.pem"
else
  BROKEN[gdcmanon]="apt-get install libgdcm-tools failed"
fi
# dicognito 0.19.0's `dicognito` script crashes (main() lacks its arguments): run the module.
[ -n "${BROKEN[dicognito]:-}" ] || add "dicognito" dicognito "$(pyver dicognito dicognito)" \
  "$V/dicognito/bin/python -m dicognito --quiet -o {OUT} {SRC}" \
  "$V/dicognito/bin/python $D/dicognito_driver.py --quiet -o {OUT} {SRC}"
[ -n "${BROKEN[deid]:-}" ] || add "deid (default recipe)" deid "$(pyver deid deid)" \
  "$V/deid/bin/python $D/deid_driver.py {SRC} {OUT}"
[ -n "${BROKEN[dicom-anonymizer]:-}" ] || add "dicom-anonymizer (per folder)" dicom-anonymizer \
  "$(pyver dicom-anonymizer dicom-anonymizer)" \
  "bash $D/dicom-anonymizer.sh {SRC} {OUT} $V/dicom-anonymizer/bin/dicom-anonymizer"
[ -n "${BROKEN[dcmanon]:-}" ] || add "dcmanon (default)" dcmanon "$(pyver dcmanon dcmanon)" \
  "$V/dcmanon/bin/python $D/dcmanon_driver.py {SRC} {OUT}"
# cmd TEMPLATE SRC OUT: the command line with its folders filled in.
cmd() { local c=${1//\{SRC\}/$2}; printf '%s' "${c//\{OUT\}/$3}"; }

# --- 5. correctness: one run each on the small corpus, scored against its key -------------------
log "correctness: each tool once on $SMALL, then umbra synth check"
: > "$W/peers-correct.txt"
for i in "${!NAMES[@]}"; do
  s=${SLUGS[$i]} out=$O/small/${SLUGS[$i]}
  rm -rf "$out"; mkdir -p "$O/small"
  c=$(cmd "${COR[$i]}" "$SMALL" "$out")
  log "${NAMES[$i]}: $c"
  rc=0; eval "$c" > "$W/scores/$s.log" 2>&1 || rc=$?
  derr=$(awk '/^driver-errors:/ {print $2}' "$W/scores/$s.log" | tail -n 1)
  nf=$(find "$out" -type f 2>/dev/null | wc -l)
  if [ "$nf" = 0 ]; then
    rm -f "$W/scores/$s.json"
  else
    "$UMBRA" synth check "$KEY" "$out" --format json > "$W/scores/$s.json" || true
  fi
  printf '%s\t%s\t%s\t%s\n' "${NAMES[$i]}" "$rc" "${derr:--}" "$nf" >> "$W/peers-correct.txt"
done

# --- 6. throughput: does each run at all? (one extra run each: peak RSS and output count) -------
log "warming the page cache"
find "$CT" -type f -print0 | xargs -0 cat > /dev/null
log "peak RSS and output of one run each on $CT (/usr/bin/time -v)"
: > "$W/peers-rss.txt"
declare -a OK_I
for i in "${!NAMES[@]}"; do
  out=$O/${SLUGS[$i]}
  rm -rf "$out"; sync
  if eval "/usr/bin/time -v $(cmd "${THR[$i]}" "$CT" "$out")" 2> "$W/peers-time.txt" >/dev/null; then
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/peers-time.txt")
    nf=$(find "$out" -type f 2>/dev/null | wc -l)
    if [ "$nf" = 0 ]; then
      BROKEN[${NAMES[$i]}]="ran (exit 0) but wrote no file"
    else
      OK_I+=("$i")
    fi
    printf '%s\t%s\t%s\n' "${NAMES[$i]}" "$kb" "$nf" >> "$W/peers-rss.txt"
  else
    BROKEN[${NAMES[$i]}]="failed on the ct512 corpus: $(grep -v -E '^\s|Command exited' "$W/peers-time.txt" | tail -n 1 | cut -c1-120)"
  fi
done

# --- 7. timings (only what ran) ----------------------------------------------------------------
hf=(hyperfine --warmup "$WARMUP" --runs "$RUNS" --export-json "$W/peers-hyperfine.json" --style basic)
for i in "${OK_I[@]}"; do
  out=$O/${SLUGS[$i]}
  hf+=(--prepare "rm -rf $out && sync" --command-name "${NAMES[$i]}" "$(cmd "${THR[$i]}" "$CT" "$out")")
done
log "timing: ${hf[*]}"
"${hf[@]}" >&2
for i in "${!NAMES[@]}"; do rm -rf "${O:?}/${SLUGS[$i]}"; done
rm -f "$W/peers-time.txt"

# --- 8. table, JSON, plot ---------------------------------------------------------------------
: > "$W/peers-broken.txt"
for k in "${!BROKEN[@]}"; do printf '%s\t%s\n' "$k" "${BROKEN[$k]}" >> "$W/peers-broken.txt"; done
: > "$W/peers-tools.txt"
for i in "${!NAMES[@]}"; do
  # shellcheck disable=SC2016  # the table shows the folders as $CT, $SMALL and $OUT
  printf '%s\t%s\t%s\t%s\t%s\n' "${NAMES[$i]}" "${SLUGS[$i]}" "${VERS[$i]}" \
    "$(cmd "${THR[$i]}" '$CT' '$OUT')" "$(cmd "${COR[$i]}" '$SMALL' '$OUT')" >> "$W/peers-tools.txt"
done
CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
RAM=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
python3 - "$W" "$COUNT" "$BYTES" "$SMALL_COUNT" > "$W/peers.md" <<EOF
import json, sys
w, count, nbytes, small_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def tsv(name):
    return [l.rstrip("\n").split("\t") for l in open(f"{w}/{name}") if l.strip()]
res = {r["command"]: r for r in json.load(open(f"{w}/peers-hyperfine.json"))["results"]}
rss = {r[0]: r[1:] for r in tsv("peers-rss.txt")}
cor = {r[0]: r[1:] for r in tsv("peers-correct.txt")}
broken = dict(tsv("peers-broken.txt"))
tools = tsv("peers-tools.txt")
cp = res["cp -r"]["mean"] if "cp -r" in res else None
ACT = [("remove-identity", "rm"), ("release", "rel"), ("hold-back", "hold"), ("uid-consistent", "uid"),
       ("reference-kept", "ref"), ("patient-consistent", "pat"), ("pixels-kept", "px")]
meta = {
    "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
    "machine": "$(nproc) CPUs, $CPU, $RAM RAM",
    "throughput_corpus": {"files": count, "bytes": nbytes, "stamp": "$CT_STAMP"},
    "correctness_corpus": {"files": small_count, "stamp": "$SMALL_STAMP"},
    "hyperfine": {"warmup": $WARMUP, "runs": $RUNS},
    "outputs": "$O",
}
rows = []
for name, slug, ver, thr, corcmd in tools:
    r = {"tool": name, "slug": slug, "version": ver, "throughput_command": thr,
         "correctness_command": corcmd, "not_measured": broken.get(name)}
    h = res.get(name)
    if h:
        m = h["mean"]
        r.update(mean_s=m, sd_s=h["stddev"] or 0.0, files_per_s=count / m, mb_per_s=nbytes / 1e6 / m,
                 ratio_to_cp=m / cp if cp else None)
    if name in rss:
        r.update(peak_rss_mb=int(rss[name][0]) / 1024, ct_output_files=int(rss[name][1]))
    if name in cor:
        rc, derr, nf = cor[name]
        r.update(correctness_exit=int(rc), driver_errors=None if derr == "-" else int(derr),
                 small_output_files=int(nf))
        try:
            j = json.load(open(f"{w}/scores/{slug}.json"))
        except (OSError, ValueError):
            j = None
        if j:
            sc = j["score"]
            r.update(score_pct=100 * sc["correct"] / sc["required"] if sc["required"] else None,
                     required=sc["required"], correct=sc["correct"],
                     leaks=sum(1 for f in j["failures"] if f.get("action") == "remove-identity"),
                     actions=j["actions"], hipaa=j["hipaa"], locations=j["locations"],
                     unmatched_outputs=j["unmatched_outputs"])
    rows.append(r)
for n, why in broken.items():
    if not any(r["tool"] == n for r in rows):
        rows.append({"tool": n, "slug": n, "version": "-", "not_measured": why})
json.dump({"meta": meta, "tools": rows}, open(f"{w}/peers.json", "w"), indent=1)

def f(v, fmt):
    return "-" if v is None else format(v, fmt)
def pct(a):
    return "-" if not a or not a["required"] else f"{100 * a['correct'] / a['required']:.0f}"
print("# Peers side by side")
print()
print(f"- date: {meta['date']}")
print(f"- machine: {meta['machine']}")
print(f"- throughput corpus: {count} files, {nbytes/1e6:.0f} MB ($CT_STAMP), page cache warm; "
      f"hyperfine --warmup $WARMUP --runs $RUNS, each run into an empty, synced folder under $O")
print(f"- correctness corpus: {small_count} files ($SMALL_STAMP); one run each into a fresh folder, "
      "scored by \`umbra synth check KEY OUT --format json\` (bench/work/scores/TOOL.json)")
print()
print("| tool | version | files/s | MB/s | ratio to cp | peak RSS MB | score % | leaks | held back ok | "
      "per action % (rm · rel · hold · uid · ref · pat · px) | files out (ct512 / small) | notes |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("files_per_s") is None and r.get("score_pct") is None:
        print(f"| {r['tool']} | {r['version']} | not measured: {r['not_measured']} | | | | | | | | | |")
        continue
    a = r.get("actions") or {}
    hb = a.get("hold-back")
    notes = []
    if r.get("not_measured"):
        notes.append(r["not_measured"])
    if r.get("driver_errors"):
        notes.append(f"{r['driver_errors']} skipped by the driver")
    if r.get("unmatched_outputs"):
        notes.append(f"{r['unmatched_outputs']} outputs match no input")
    print(f"| {r['tool']} | {r['version']} | {f(r.get('files_per_s'), '.0f')} | {f(r.get('mb_per_s'), '.0f')} | "
          f"{f(r.get('ratio_to_cp'), '.2f')} | {f(r.get('peak_rss_mb'), '.0f')} | {f(r.get('score_pct'), '.2f')} | "
          f"{r.get('leaks', '-')} | {hb['correct'] if hb else '-'}/{hb['required'] if hb else '-'} | "
          f"{' · '.join(pct(a.get(k)) for k, _ in ACT)} | "
          f"{r.get('ct_output_files', '-')} / {r.get('small_output_files', '-')} | {'; '.join(notes)} |")
print()
print("Commands (\$CT = the ct512 corpus, \$SMALL = the small one, \$OUT = a fresh output folder):")
print()
print("| tool | throughput (ct512) | correctness (small) |")
print("|---|---|---|")
for r in rows:
    if r.get("throughput_command"):
        c = r["correctness_command"]
        print(f"| {r['tool']} | \`{r['throughput_command']}\` | {'same' if c == r['throughput_command'] else '\`' + c + '\`'} |")
EOF
rm -f "$W/peers-broken.txt" "$W/peers-tools.txt"
cat "$W/peers.md"
python3 bench/plot.py "$W/peers.json" bench/peers.svg && log "plot: bench/peers.svg"
