#!/usr/bin/env bash
# gdcmanon -e -r --continue skips files it cannot read, but stops (exit 0, nothing written) when
# it cannot write one: it cannot write a DICOMDIR back ("Could not Write : OUT//DICOMDIR"), so on
# a folder holding one it writes no file at all.  Run it once per top-level entry instead (a
# folder with -r, a file on its own), default Basic Profile settings otherwise; an entry whose
# run fails is counted on stderr as `driver-errors: N`.
# Usage: bash gdcmanon.sh SRC OUT CERT
set -u
src=$1 out=$2 cert=$3
errors=0
mkdir -p "$out"
for e in "$src"/*; do
  if [ -d "$e" ]; then
    gdcmanon -e -c "$cert" -r --continue -i "$e" -o "$out/${e##*/}" >&2 || errors=$((errors + 1))
  else
    gdcmanon -e -c "$cert" --continue -i "$e" -o "$out/${e##*/}" >&2 || errors=$((errors + 1))
  fi
done
echo "driver-errors: $errors" >&2
