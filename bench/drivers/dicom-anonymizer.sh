#!/usr/bin/env bash
# dicom-anonymizer reads only the files directly in its input folder (on a corpus root it
# processes 0 files and exits 0) and writes nothing unless the output folder exists: run it once
# per folder into the mirrored folder, with its default settings.  If a folder's run fails (one
# bad file stops it), that folder is redone file by file, and a file that still fails is skipped
# (counted on stderr as `driver-errors: N`).
# Usage: bash dicom-anonymizer.sh SRC OUT /path/to/dicom-anonymizer
set -u
src=$1 out=$2 bin=$3
errors=0
while IFS= read -r d; do
  o=$out/${d#"$src"}; o=${o%/}; mkdir -p "$o"
  if ! "$bin" "$d" "$o" >/dev/null 2>&1; then
    for f in "$d"/*; do
      [ -f "$f" ] || continue
      if ! "$bin" "$f" "$o/${f##*/}" >/dev/null 2>&1; then
        errors=$((errors + 1)); rm -f "$o/${f##*/}"
        echo "driver: $f failed" >&2
      fi
    done
  fi
done < <(find "$src" -type f -printf '%h\n' | sort -u)
echo "driver-errors: $errors" >&2
