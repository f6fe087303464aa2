"""pydicom/deid has no folder-in/folder-out command (`deid identifiers` only lists them): this is
the documented library call, replace_identifiers with no recipe given, i.e. deid's default
`deid.dicom` recipe, one file at a time, mirroring the input tree.  A file it raises on is
skipped (counted on stderr as `driver-errors: N`).  Usage: python deid_driver.py SRC OUT"""
import os
import sys

from deid.dicom import replace_identifiers

src, out = sys.argv[1], sys.argv[2]
errors = 0
for r, _, fs in os.walk(src):
    for f in sorted(fs):
        p = os.path.join(r, f)
        o = os.path.join(out, os.path.relpath(p, src))
        try:
            ds = replace_identifiers([p], save=False)[0]
            os.makedirs(os.path.dirname(o), exist_ok=True)
            ds.save_as(o)
        except Exception as e:  # noqa: BLE001
            errors += 1
            print(f"driver: {p}: {type(e).__name__}: {e}", file=sys.stderr)
            if os.path.exists(o):
                os.remove(o)
print(f"driver-errors: {errors}", file=sys.stderr)
