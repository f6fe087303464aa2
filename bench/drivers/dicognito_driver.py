"""dicognito's own command line (dicognito.__main__.main, default settings), patched only so that
one file it cannot convert does not end the run: 0.19.0 calls sys.exit(1) on the first such file
("Error occurred while converting X. Aborting.") and lets read errors other than
InvalidDicomError escape, e.g. on a truncated file.  Those files are logged and skipped instead;
their count goes to stderr as `driver-errors: N`.  Usage: python dicognito_driver.py ARGS...
(the arguments of `python -m dicognito`)."""
import sys

import pydicom
import dicognito.__main__ as m

errors = []


class _Sys:
    """sys for dicognito.__main__, whose per-file `sys.exit(1)` now only counts the file."""

    def __getattr__(self, name):
        return getattr(sys, name)

    def exit(self, code=0):
        errors.append(code)


def _datasets(sources):
    # As dicognito's _get_datasets_from_sources, plus: any read error skips the file.
    for filename in list(m._get_filenames_from_sources(sources)):
        try:
            dataset = pydicom.dcmread(filename, force=False)
        except pydicom.errors.InvalidDicomError:
            continue  # dicognito's own behaviour: not DICOM, skipped
        except Exception as e:  # noqa: BLE001
            print(f"driver: cannot read {filename}: {e}", file=sys.stderr)
            errors.append(filename)
            continue
        with dataset:
            yield dataset


m.sys = _Sys()
m._get_datasets_from_sources = _datasets
m.main(sys.argv[1:])
print(f"driver-errors: {len(errors)}", file=sys.stderr)
