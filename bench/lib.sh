# shellcheck shell=bash disable=SC2034  # sets variables (CT, CT_STAMP, ...) for the scripts that source it
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

# bytes_of DIR: total size of the files under DIR.
bytes_of() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {print s}'; }

# ensure_key: the benchmark's own Umbra key, $W/key (made once with umbra keygen; needs $UMBRA).
ensure_key() { [ -f "$W/key" ] || "$UMBRA" keygen "$W/key" >&2; }

# ensure_gdcm_cert: gdcmanon's Basic Profile mode (-e) will not run without an X.509
# certificate: it encrypts the original values into the Encrypted Attributes Sequence
# (0400,0500), PS3.15 E.1.1, so that they can be re-identified with the private key. A throwaway
# self-signed RSA-2048 certificate, $W/gdcm-cert.pem, is enough.
ensure_gdcm_cert() {
  if [ ! -f "$W/gdcm-cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=umbra-bench" \
      -keyout "$W/gdcm-key.pem" -out "$W/gdcm-cert.pem" 2>/dev/null
  fi
}

# ensure_synth DIR ARGS...: `umbra synth --out DIR ARGS...` (DIR/corpus and DIR/key.json), made
# once and reused while DIR.stamp holds the same ARGS and umbra version; needs $UMBRA. Sets
# SYNTH_STAMP.
ensure_synth() {
  local dir=$1 stamp
  shift
  stamp="umbra synth $* ($("$UMBRA" --version))"
  if [ -f "$dir/key.json" ] && [ -d "$dir/corpus" ] && [ "$(cat "$dir.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "synth corpus: reusing $dir ($stamp)"
  else
    log "synth corpus: generating $dir ($stamp)"
    rm -rf "$dir" "$dir.stamp"
    "$UMBRA" synth --out "$dir" "$@" >&2
    echo "$stamp" > "$dir.stamp"
  fi
  SYNTH_STAMP=$stamp
}
