"""dcmanon on PyPI is a library (its command line is a separate cargo crate): the default
Anonymizer(), one file at a time, mirroring the input tree.  A file it raises on is skipped
(counted on stderr as `driver-errors: N`).  Usage: python dcmanon_driver.py SRC OUT"""
import os
import sys

from dcmanon import Anonymizer

src, out = sys.argv[1], sys.argv[2]
a = Anonymizer()
errors = 0
for r, _, fs in os.walk(src):
    for f in sorted(fs):
        p = os.path.join(r, f)
        o = os.path.join(out, os.path.relpath(p, src))
        try:
            data = a.anonymize(p)
        except Exception as e:  # noqa: BLE001
            errors += 1
            print(f"driver: {p}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        os.makedirs(os.path.dirname(o), exist_ok=True)
        with open(o, "wb") as h:
            h.write(data)
print(f"driver-errors: {errors}", file=sys.stderr)
