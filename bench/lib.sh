# Shared by the benchmark scripts (sourced, not run). Needs $W (work folder) and log().

# ensure_ct_corpus N SEED: the generated CT corpus of N slices in $W/ct (one series of K slices
# per study, S studies per patient, P patients), made once and reused while its stamp (sizes,
# seed, generator hash) holds. Sets CT and CT_COUNT.
ensure_ct_corpus() {
  local n=$1 seed=$2 s k p stamp have
  if [ "$n" -ge 200 ]; then s=2; k=100; else s=1; k=$n; fi
  p=$(( (n + s*k - 1) / (s*k) ))
  CT_COUNT=$(( p * s * k ))
  CT=$W/ct
  stamp="patients=$p studies=$s slices=$k seed=$seed gen=$(sha256sum bench/gen_ct_corpus.py | cut -c1-16)"
  have=$(find "$CT" -type f -name '*.dcm' 2>/dev/null | wc -l || true)
  if [ "$have" = "$CT_COUNT" ] && [ "$(cat "$W/ct.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "ct corpus: reusing $CT ($CT_COUNT files)"
  else
    log "ct corpus: generating $CT_COUNT slices into $CT ($stamp)"
    rm -rf "$CT" "$W/ct.stamp"
    python3 bench/gen_ct_corpus.py --out "$CT" --patients "$p" \
      --studies-per-patient "$s" --slices "$k" --seed "$seed"
    echo "$stamp" > "$W/ct.stamp"
  fi
  CT_STAMP=$stamp
}
