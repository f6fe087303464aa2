#!/usr/bin/env bash
# Load benchmark of the gateway (`umbra serve`), loopback only: N concurrent storescu
# associations send 512x512 CT slices (`umbra synth --profile ct512`) through the gateway to
# dcmtk's storescp, against the same transfer straight into storescp (the floor) and, when
# Orthanc is installed (Debian package `orthanc`), straight into Orthanc.
#
# Usage: bench/gateway.sh [N_SLICES]   (default 400, about 200 MB)
# Env:   CONC (default "1 4 8": concurrent associations), RUNS (default 5; each gateway run
#        is paired with a floor run just before it: times are medians, the ratio is the median
#        of the pairs' ratios), WARMUP (default 1: pairs run first and not counted), UMBRA
#        (default target/release/umbra; it never builds), OUT (default bench/work;
#        /dev/shm/... takes the disk out), ORTHANC=0 skips Orthanc, WORKERS=N sets the
#        gateway's workers (default: the CPU count, at least 4), MAX_PDU=N its [dimse] max_pdu
#        (default 116794), PERF=1 records the gateway with perf (OUT/gateway-cN.perf.data),
#        PERF=all records every process during the floor's and the gateway's runs
#        (OUT/{floor,gateway}-all-cN.perf.data; `perf report --sort comm` splits the CPU
#        between senders, gateway and receiver), PERF_RATE perf record's sampling option
#        (default "-F 999"; "-c 1" with tracepoint events in PERF_CALLGRAPH counts them all).
# Also written: OUT/gateway-cpu.txt (the gateway's own CPU, ms per object, per run) and
# OUT/busy.txt (the whole machine's busy CPU, ms per object, per floor and gateway run).
# The destination takes the Basic Profile without options (with clean-descriptors the ct512
# slices are held back: their Patient Comments carry the address).
#
# The gateway row is end to end: from the first storescu start until storescp has closed the
# last object's file (so it includes receiving, one fdatasync per object, de-identification,
# the check and forwarding); the floor row ends at the same observable. bench/wait_files.py
# sees it through inotify, without polling. "accepted" is when the last storescu exited
# (every object durable in the spool). Latency p99 is read from the gateway's receive→forward
# histogram (its bucket bound). Table: bench/work/gateway-results.md and stdout; every pair:
# OUT/gateway-runs.tsv (associations, floor s, forwarded s, accepted s).
set -euo pipefail
N=${1:-400}
CONC=${CONC:-"1 4 8"}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
W=bench/work
UMBRA=${UMBRA:-target/release/umbra}
OUT=${OUT:-$W}
mkdir -p "$W" "$OUT"
log() { printf '\n== %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

[ -x "$UMBRA" ] || { echo "missing $UMBRA; run: cargo build --release" >&2; exit 1; }
for t in storescu storescp; do
  [ -x /usr/bin/$t ] || { echo "needs dcmtk's /usr/bin/$t (apt-get install dcmtk)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
export TCP_NODELAY=1 # dcmtk 3.6.7 leaves Nagle on without it (40 ms per message)

# free_ports N: N distinct free ports, all bound at once while they are picked (ports picked
# one call at a time can coincide, and a gateway forwarding to its own port never finishes)
free_ports() {
  python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
now() { date +%s.%N; }
# busy() : CPU-seconds the whole machine has been busy since boot (user, nice, system, irq,
# softirq, steal from /proc/stat); the difference across a run is what the run cost
busy() { awk -v t="$(getconf CLK_TCK)" '/^cpu / {printf "%.3f", ($2 + $3 + $4 + $7 + $8 + $9) / t}' /proc/stat; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# --- corpus: N slices, 100 per patient -------------------------------------
ensure_key
P=$(( (N + 99) / 100 ))
ensure_synth "$W/gw-ct" --profile ct512 --patients "$P" --slices $(( (N + P - 1) / P )) --seed 1
mapfile -t FILES < <(find "$W/gw-ct/corpus" -type f -name '*.dcm' | sort)
COUNT=${#FILES[@]}
MB=$(du -sm "$W/gw-ct/corpus" | cut -f1)
log "corpus: $COUNT files, $MB MB"

# send C PORT AET: C storescu processes at once, files dealt round-robin; waits for all.
send() {
  local c=$1 port=$2 aet=$3 i j pids=()
  for ((i = 0; i < c; i++)); do
    local part=()
    for ((j = i; j < COUNT; j += c)); do part+=("${FILES[j]}"); done
    /usr/bin/storescu -aec "$aet" -aet BENCH 127.0.0.1 "$port" "${part[@]}" >/dev/null 2>>"$OUT/gw-storescu.log" &
    pids+=($!)
  done
  local ok=0
  for p in "${pids[@]}"; do wait "$p" || ok=1; done
  return $ok
}

# watch DIR [METRICS_URL]: starts bench/wait_files.py on DIR in the background (W_PID, its
# output in W_OUT) and returns once its inotify watch is in place; `ended` then waits for it
# and sets T_END to the time the receiver closed its COUNT-th file. Both floor and gateway runs end
# there: the same observable, read without polling (a poll every 20 ms with curl had cost the
# gateway's runs CPU and up to a poll's delay).
watch() {
  W_OUT=$(mktemp) && rm -f "$W_OUT.ready"
  python3 bench/wait_files.py "$1" "$COUNT" 300 "$W_OUT.ready" ${2:+"$2"} > "$W_OUT" &
  W_PID=$!
  PIDS+=("$W_PID")
  for _ in $(seq 200); do [ -e "$W_OUT.ready" ] && return 0; sleep 0.01; done
  echo "the file watcher did not start" >&2; exit 1
}
ended() {
  wait "$W_PID" || { echo "the receiver did not get every object${1:+ (see $1)}" >&2; exit 1; }
  T_END=$(cat "$W_OUT"); rm -f "$W_OUT" "$W_OUT.ready"
}

# metric NAME: one sample from the gateway's /metrics
metric() { curl -fsS "http://127.0.0.1:$HTTP/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

# p99 from the cumulative histogram: the first bucket bound holding 99% of the samples
p99() {
  curl -fsS "http://127.0.0.1:$HTTP/metrics" | awk '
    /^umbra_latency_seconds_bucket\{destination="vendor",le="/ {
      match($1, /le="[^"]+"/); le = substr($1, RSTART + 4, RLENGTH - 5); b[++n] = le; v[n] = $2 }
    /^umbra_latency_seconds_count\{destination="vendor"\}/ { total = $2 }
    END { for (i = 1; i <= n; i++) if (v[i] >= 0.99 * total) { print "≤ " b[i] " s"; exit } }'
}

RESULTS=$OUT/gateway-runs.tsv
: > "$RESULTS"
: > "$OUT/gateway-cpu.txt"
: > "$OUT/busy.txt"

# Each run_* sets R (it runs in this shell, so PIDS keeps what it started for the trap), and
# starts from a clean slate: the previous run's output deleted, then `sync`, so that writeback
# of what earlier runs left dirty does not compete with this one.
clean_slate() { rm -rf "$1" && mkdir -p "$1" && sync; }

# run_floor C: storescu → storescp; R=seconds
run_floor() {
  local c=$1 dir=$OUT/gw-floor port
  clean_slate "$dir"
  port=$(free_ports 1)
  /usr/bin/storescp --fork -aet VENDOR -od "$dir" "$port" 2>/dev/null & local scp=$!
  PIDS+=("$scp")
  wait_port "$port"
  local t0 t1 perf=
  if [ "${PERF:-0}" = all ]; then
    perf record -a -F 999 -g -o "$OUT/floor-all-c$c.perf.data" 2>/dev/null & perf=$!
    sleep 1
  fi
  local b0 b1
  watch "$dir"
  b0=$(busy); t0=$(now); send "$c" "$port" VENDOR; ended; t1=$T_END; b1=$(busy)
  echo "floor $c $(echo "$b0 $b1" | awk -v n="$COUNT" '{printf "%.2f", ($2 - $1) * 1000 / n}')" >> "$OUT/busy.txt"
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" 2>/dev/null || true; fi
  kill "$scp"; wait "$scp" 2>/dev/null || true
  local got; got=$(find "$dir" -type f | wc -l)
  [ "$got" = "$COUNT" ] || { echo "storescp got $got of $COUNT" >&2; exit 1; }
  R=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
}

# run_orthanc C: storescu → Orthanc (fresh storage); R=seconds, or empty if it fails
run_orthanc() {
  local c=$1 dir=$OUT/gw-orthanc port hport
  clean_slate "$dir" && mkdir -p "$dir/db"
  read -r port hport < <(free_ports 2)
  cat > "$dir/orthanc.json" <<EOF
{ "Name": "bench", "StorageDirectory": "$dir/db", "IndexDirectory": "$dir/db",
  "DicomAet": "ORTHANC", "DicomPort": $port, "HttpPort": $hport, "HttpServerEnabled": true,
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "DicomCheckCalledAet": false,
  "Plugins": [], "StorageCompression": false, "DicomThreadsCount": 8 }
EOF
  /usr/sbin/Orthanc "$dir/orthanc.json" >"$dir/log" 2>&1 & local o=$!
  PIDS+=("$o")
  R=
  if ! wait_port "$port"; then kill "$o" 2>/dev/null || true; return 0; fi
  local t0 t1
  t0=$(now); send "$c" "$port" ORTHANC || true; t1=$(now)
  local got; got=$(curl -fsS "http://127.0.0.1:$hport/statistics" | python3 -c 'import json,sys; print(json.load(sys.stdin)["CountInstances"])')
  kill "$o"; wait "$o" 2>/dev/null || true
  [ "$got" = "$COUNT" ] || { echo "Orthanc got $got of $COUNT" >&2; return 0; }
  R=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
}

# run_gateway C: storescu → umbra serve → storescp; R="seconds accepted_seconds p99"
run_gateway() {
  local c=$1 dir=$OUT/gw-umbra vport
  clean_slate "$dir" && mkdir -p "$dir/vendor"
  read -r vport DIMSE HTTP < <(free_ports 3)
  cat > "$dir/gateway.toml" <<EOF
spool = "$dir/spool"
${WORKERS:+workers = $WORKERS}
[dimse]
listen = "127.0.0.1:$DIMSE"
ae_title = "UMBRA"
${MAX_PDU:+max_pdu = $MAX_PDU}
[http]
listen = "127.0.0.1:$HTTP"
[retention]
keep_forwarded_hours = 0
min_free_mib = 64
[[destination]]
name = "vendor"
kind = "dimse"
ae_title = "VENDOR"
host = "127.0.0.1"
port = $vport
key_file = "$ROOT/$W/key"
[[route]]
destinations = ["vendor"]
EOF
  /usr/bin/storescp --fork -aet VENDOR -od "$dir/vendor" "$vport" 2>/dev/null & local scp=$!
  PIDS+=("$scp")
  "$UMBRA" serve --config "$dir/gateway.toml" 2>"$dir/log" & local g=$!
  PIDS+=("$g")
  wait_port "$vport"; wait_port "$HTTP"
  local perf=
  if [ "${PERF:-0}" = 1 ]; then
    perf record ${PERF_RATE:--F 999} ${PERF_CALLGRAPH:--g} -p "$g" -o "$OUT/gateway-c$c.perf.data" 2>/dev/null & perf=$!
    sleep 1 # perf attaches to every thread
  elif [ "${PERF:-0}" = all ]; then
    perf record -a -F 999 -g -o "$OUT/gateway-all-c$c.perf.data" 2>/dev/null & perf=$!
    sleep 1
  fi
  local t0 t1 t2 b0 b1
  watch "$dir/vendor" "http://127.0.0.1:$HTTP/metrics"
  b0=$(busy)
  t0=$(now)
  send "$c" "$DIMSE" UMBRA
  t1=$(now)
  ended "$dir/log"; t2=$T_END
  b1=$(busy)
  # (the gateway counts an object once storescp's response is in, just after its file closed)
  local f
  for _ in $(seq 100); do
    f=$(metric 'umbra_forwarded_total{destination="vendor"}')
    [ "${f:-0}" -ge "$COUNT" ] && break
    sleep 0.05
  done
  [ "${f:-0}" -ge "$COUNT" ] || { echo "storescp has every file but the gateway counts ${f:-0} forwarded" >&2; exit 1; }
  echo "gateway $c $(echo "$b0 $b1" | awk -v n="$COUNT" '{printf "%.2f", ($2 - $1) * 1000 / n}')" >> "$OUT/busy.txt"
  local q; q=$(p99)
  # the gateway's CPU time (user + system) for the whole run, in ms per object
  local cpu; cpu=$(awk -v t="$(getconf CLK_TCK)" -v n="$COUNT" '{printf "%.2f", ($14 + $15) / t * 1000 / n}' "/proc/$g/stat")
  echo "$c $cpu" >> "$OUT/gateway-cpu.txt"
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" 2>/dev/null || true; fi
  kill "$g"; wait "$g" 2>/dev/null || true
  kill "$scp"; wait "$scp" 2>/dev/null || true
  local got; got=$(find "$dir/vendor" -type f | wc -l)
  [ "$got" = "$COUNT" ] || { echo "storescp got $got of $COUNT through the gateway" >&2; exit 1; }
  R=$(echo "$t0 $t1 $t2" | awk -v q="$q" '{printf "%.3f %.3f %s", $3 - $1, $2 - $1, q}')
}

# median of RUNS numbers on stdin (first field decides)
median() { sort -n | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'; }

have_orthanc=0
if [ "${ORTHANC:-1}" != 0 ] && [ -x /usr/sbin/Orthanc ]; then have_orthanc=1; fi

TABLE=$W/gateway-results.md
{
  echo "| associations | target | wall (s, median of $RUNS) | instances/s | MB/s | p99 receive→forward | ratio to floor (median of paired runs) |"
  echo "|---:|---|---:|---:|---:|---:|---:|"
} > "$TABLE"
# Warm-up pairs, not counted: on the machine measured, the first pair of every invocation cost
# about 1.7 times the CPU per object of the pairs after it, the floor as well as the gateway
# (the slices were in the page cache throughout; the cause was not found).
for ((r = 0; r < WARMUP; r++)); do
  log "warm-up $((r + 1)) of $WARMUP (not counted)"
  c=${CONC%% *}
  run_floor "$c"
  run_gateway "$c"
done
: > "$OUT/gateway-cpu.txt"
: > "$OUT/busy.txt"
# The machine's speed drifts (shared virtual disk and CPUs): each gateway run is paired with a
# floor run just before it, and the ratio reported is the median of the pairs' ratios.
for c in $CONC; do
  log "$c association(s)"
  floors=; gws=; accs=; ratios=; ratios_acc=
  for ((r = 0; r < RUNS; r++)); do
    run_floor "$c"; f=$R
    run_gateway "$c"; read -r g a q <<<"$R"
    floors+="$f"$'\n'; gws+="$g $q"$'\n'; accs+="$a"$'\n'
    ratios+=$(awk -v f="$f" -v g="$g" 'BEGIN {printf "%.4f", f / g}')$'\n'
    ratios_acc+=$(awk -v f="$f" -v g="$a" 'BEGIN {printf "%.4f", f / g}')$'\n'
    printf '%s\t%s\t%s\t%s\n' "$c" "$f" "$g" "$a" >> "$RESULTS"
  done
  floor=$(printf '%s' "$floors" | median)
  read -r gw_s gw_p99 <<<"$(printf '%s' "$gws" | median)"
  gw_acc=$(printf '%s' "$accs" | median)
  ratio=$(printf '%s' "$ratios" | median)
  ratio_acc=$(printf '%s' "$ratios_acc" | median)
  row() { # name seconds p99 ratio
    awk -v c="$c" -v n="$1" -v s="$2" -v cnt="$COUNT" -v mb="$MB" -v p="$3" -v r="$4" 'BEGIN {
      printf "| %s | %s | %.2f | %.0f | %.0f | %s | %.0f%% |\n", c, n, s, cnt / s, mb / s, p, 100 * r }'
  }
  {
    row "storescp (floor)" "$floor" "—" 1
    row "umbra serve → storescp (accepted)" "$gw_acc" "" "$ratio_acc"
    row "umbra serve → storescp (forwarded)" "$gw_s" "$gw_p99" "$ratio"
  } >> "$TABLE"
  if [ $have_orthanc = 1 ]; then
    runs=; ratios=
    for ((r = 0; r < RUNS; r++)); do
      run_floor "$c"; f=$R
      run_orthanc "$c"
      if [ -n "$R" ]; then
        runs+="$R"$'\n'
        ratios+=$(awk -v f="$f" -v g="$R" 'BEGIN {printf "%.4f", f / g}')$'\n'
      fi
    done
    o=$(printf '%s' "$runs" | median)
    [ -n "$o" ] && row "Orthanc $(/usr/sbin/Orthanc --version 2>/dev/null | head -1 | awk '{print $NF}')" "$o" "—" "$(printf '%s' "$ratios" | median)" >> "$TABLE"
  fi
  cat "$TABLE" >&2
done
{
  echo
  echo "$COUNT CT slices 512x512 (ct512, $MB MB), $RUNS runs each, median; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(/usr/bin/storescu --version | head -1); $("$UMBRA" --version)"
} >> "$TABLE"
cat "$TABLE"
