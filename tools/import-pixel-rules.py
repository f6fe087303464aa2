#!/usr/bin/env python3
"""Regenerate Umbra's burned-in text rule files from the vendored upstream rule sets.

Inputs (kept byte for byte under crates/umbra-pixels/data/rules/upstream/):
  deid.dicom                    pydicom/deid 0.4.13, deid/data/deid.dicom (MIT)
  DicomPixelAnonymizer.script   RSNA CTP, source/files/scripts/DicomPixelAnonymizer.script

Outputs (crates/umbra-pixels/data/rules/):
  deid.toml   every deid %filter LABEL that has coordinates, in Umbra's rule format
  ctp.toml    every CTP signature, in Umbra's rule format (match = "first", as in CTP)
  PROVENANCE.md, the part between the "skipped:begin" and "skipped:end" markers:
              every upstream rule that is not imported, with the reason

Usage:  tools/import-pixel-rules.py          rewrite the outputs
        tools/import-pixel-rules.py --check  exit 1 if an output is not what this script makes

Python 3 standard library only. The semantics this script reproduces are those of
deid/config/utils.py (parse_label, parse_member), deid/dicom/pixels/detect.py (evaluate_group),
deid/dicom/filter.py, deid/dicom/pixels/clean.py, and CTP's PixelScript.java, Signature.java,
Regions.java and DicomObject.matches(String); see data/rules/README.md.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "crates", "umbra-pixels", "data", "rules")
UPSTREAM = os.path.join(RULES, "upstream")

# ---------------------------------------------------------------------------------------------
# TOML writing


def q(s):
    """A TOML basic string."""
    out = []
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def test_toml(t):
    parts = ["attribute = %s" % q(t["attribute"]), "op = %s" % q(t["op"])]
    if "value" in t:
        parts.append("value = %s" % q(t["value"]))
    if t.get("ci"):
        parts.append("case-insensitive = true")
    return "{ " + ", ".join(parts) + " }"


def rule_toml(rule):
    lines = ["[[rule]]", "name = %s" % q(rule["name"]), "source = %s" % q(rule["source"])]
    lines.append("when = [")
    for clause in rule["when"]:
        if len(clause) == 1:
            lines.append("  %s," % test_toml(clause[0]))
        else:
            lines.append("  { any = [%s] }," % ", ".join(test_toml(t) for t in clause))
    lines.append("]")
    if rule.get("whole"):
        lines.append("whole = true")
    else:
        regions = ", ".join(
            "{ x = %d, y = %d, width = %d, height = %d }" % r for r in rule["regions"]
        )
        lines.append("regions = [%s]" % regions)
    return "\n".join(lines) + "\n"


def file_toml(header, match, rules):
    out = [header, 'match = "%s"\n' % match]
    for r in rules:
        out.append("\n" + rule_toml(r))
    return "".join(out)


def cnf_or(a, b):
    """(a) OR (b) for two conjunctions of clauses: distribute."""
    return [ca + cb for ca in a for cb in b]


# ---------------------------------------------------------------------------------------------
# deid

DEID_FILTERS = ("contains", "notcontains", "equals", "notequals", "missing", "present", "empty")
REGEX_META = set(".^$*+?{}[]|()\\")


class Skip(Exception):
    pass


def deid_test(action, field, value):
    """One deid filter as a test of ours. deid always compares case-insensitively, both sides
    stripped (filter.py: equalsBase/compareBase with ignore_case=True)."""
    if field.startswith("0x") or "(" in field or "," in field:
        raise Skip("condition on a tag number (%s), not a keyword" % field)
    if action in ("missing", "present", "empty"):
        return {"attribute": field, "op": action}
    value = value.strip()
    if action in ("equals", "notequals"):
        op = "equals" if action == "equals" else "not-equals"
        if "|" in value:
            raise Skip(
                "`%s %s %s`: deid's equals compares whole strings (not a regular expression), "
                "so this condition is never true upstream and the rule never fires" % (action, field, value)
            )
        return {"attribute": field, "op": op, "value": value, "ci": True}
    # contains / notcontains: re.search of the lower-cased expression in the lower-cased value
    if "\\" in value:
        raise Skip("regular expression with an escape (deid lower-cases the pattern text): %r" % value)
    regex = any(c in REGEX_META for c in value)
    if action == "contains":
        op = "regex" if regex else "contains"
    else:
        op = "not-regex" if regex else "not-contains"
    return {"attribute": field, "op": op, "value": value, "ci": True}


def deid_member(member):
    """parse_member of deid/config/utils.py: a filter line as [(test, inner operator)...]."""
    members = [member]
    actions, fields, values, operators = [], [], [], []
    while members:
        operator = None
        value = None
        member = members.pop(0).strip()
        match_or = re.search(r"\|\|", member)
        match_and = re.search(r"\+", member)
        if match_or is not None:
            operator = "||"
        if match_and is not None:
            if match_or is not None:
                if match_or.start() >= match_and.start():
                    operator = "+"
            else:
                operator = "+"
        if operator is not None:
            member, rest = member.split(operator, 1)
            if any(word in rest for word in DEID_FILTERS):
                members.append(rest.strip())
                operators.append("or" if operator == "||" else "and")
            else:
                member = operator.join([member, rest])
        action, member = member.split(" ", 1)
        action = action.lower().strip()
        if action in ("contains", "notcontains", "equals", "notequals"):
            field, value = member.split(" ", 1)
        elif action in ("missing", "empty", "present"):
            field = member.strip()
        else:
            raise Skip("unknown filter action %r" % action)
        actions.append(action)
        fields.append(field.strip())
        values.append(value.strip() if value is not None else None)
    tests = [deid_test(a, f, v) for a, f, v in zip(actions, fields, values)]
    # evaluate_group folds left to right with no precedence: ((t0 op0 t1) op1 t2) ...
    cnf = [[tests[0]]]
    for op, t in zip(operators, tests[1:]):
        if op == "and":
            cnf = cnf + [[t]]
        else:
            cnf = cnf_or(cnf, [[t]])
    return cnf


def deid_coordinate(kind, raw, line_no):
    raw = raw.strip()
    if raw.lower() == "all":
        return "whole"
    try:
        nums = [int(x) for x in raw.split(",") if x]
    except ValueError:
        raise Skip("line %d: coordinates %r are not integers" % (line_no, raw))
    if len(nums) != 4:
        raise Skip("line %d: coordinates %r do not have four numbers" % (line_no, raw))
    if any(n < 0 or n > 65535 for n in nums):
        raise Skip("line %d: coordinates %r outside 0..65535 (numpy slicing semantics)" % (line_no, raw))
    if kind == "ctp":  # x, y, width, height
        x, y, w, h = nums
    else:  # xmin, ymin, xmax, ymax; clean.py: mask[ymin:ymax, xmin:xmax]
        x, y = nums[0], nums[1]
        w, h = max(nums[2] - x, 0), max(nums[3] - y, 0)
    if w > 65535 or h > 65535:
        raise Skip("line %d: coordinates %r too large" % (line_no, raw))
    return (x, y, w, h)


def import_deid(text, fname):
    """load_deid of deid/config/utils.py, filter sections only."""
    spec = []
    for no, raw in enumerate(text.splitlines(), 1):
        s = raw.strip("\n").strip(" ").strip()
        if s:
            spec.append((no, s))
    rules, skipped, upstream = [], [], 0
    section = None
    section_name = None
    i = 0
    while i < len(spec):
        no, line = spec[i]
        i += 1
        if line.startswith("#"):
            continue
        if line.startswith("%"):
            line = line.split("#", 1)[0].strip()
            parts = line.split(" ")
            section = re.sub(r"[%]|(\s+)", "", parts[0]).lower()
            section_name = " ".join(parts[1:]) if len(parts) > 1 else None
            continue
        if not (line.upper().startswith("LABEL") and section == "filter"):
            continue
        members = []
        while i < len(spec):
            nxt = spec[i][1]
            if nxt.upper().strip().startswith("LABEL") or nxt.upper().strip().startswith("%"):
                break
            members.append(spec[i])
            i += 1
        upstream += 1
        label = line.replace("label", "", 1)
        label = re.sub(r"^LABEL", "", label).split("#")[0].strip()
        name = "deid %s: %s" % (section_name, label)
        source = "%s:%d LABEL %s (%%filter %s)" % (fname, no, label, section_name)
        try:
            when, regions, whole, has_coords = [], [], False, False
            for mno, member in members:
                member = member.strip()
                low = member.lower()
                if low.startswith("ctpcoordinates") or low.startswith("coordinates"):
                    has_coords = True
                    kind = "ctp" if low.startswith("ctp") else "xy"
                    word = "ctpcoordinates" if kind == "ctp" else "coordinates"
                    raw = member.replace(word, "", 1)
                    if "from:" in raw:
                        raise Skip("line %d: coordinates taken from an attribute (%s)" % (mno, raw.strip()))
                    r = deid_coordinate(kind, raw, mno)
                    if r == "whole":
                        whole = True
                    else:
                        regions.append(r)
                    continue
                if low.startswith("ctpkeepcoordinates") or low.startswith("keepcoordinates"):
                    raise Skip("line %d: keepcoordinates (regions to keep) are not expressible" % mno)
                if member.startswith("+"):
                    member = member.replace("+", "", 1).strip()
                elif member.startswith("||"):
                    # detect.py ANDs the lines of a LABEL whatever their leading operator
                    member = member.replace("||", "", 1).strip()
                if member.startswith("#"):
                    continue
                if not member.lower().startswith(DEID_FILTERS):
                    raise Skip("line %d: %r is not a filter (deid ignores it with a warning)" % (mno, member))
                when.extend(deid_member(member))
            if not has_coords:
                raise Skip(
                    "no coordinates: %%filter %s entry that only flags an image (nothing to redact)" % section_name
                )
            if not when:
                when = []
            rules.append({"name": name, "source": source, "when": when, "regions": regions, "whole": whole})
        except Skip as e:
            skipped.append((source, str(e)))
    return rules, skipped, upstream


# ---------------------------------------------------------------------------------------------
# CTP

CTP_TAGS = {
    "0008,0070": "Manufacturer",
    "0008,1090": "ManufacturerModelName",
    "0018,1030": "ProtocolName",
    "0028,0010": "Rows",
    "0028,0011": "Columns",
    "6000,0022": "OverlayDescription",
}

CTP_METHODS = {
    "equals": ("equals", False),
    "equalsIgnoreCase": ("equals", True),
    "contains": ("contains", False),
    "containsIgnoreCase": ("contains", True),
    "startsWith": ("starts-with", False),
    "startsWithIgnoreCase": ("starts-with", True),
    "endsWith": ("ends-with", False),
    "endsWithIgnoreCase": ("ends-with", True),
    "matches": ("regex", False),
}


def ctp_tokens(script):
    """DicomObject.Tokenizer: operands, ( ) + * !, // comments."""
    toks = []
    i = 0
    n = len(script)
    while i < n:
        c = script[i]
        if c.isspace():
            i += 1
        elif script.startswith("//", i):
            j = script.find("\n", i)
            i = n if j < 0 else j + 1
        elif c in "()+*!":
            toks.append(c)
            i += 1
        elif c == "[" or c.isalpha():
            # Operand.getField: identifier up to '.', method up to '(', match up to ')' (quotes aware)
            def field(i, delim):
                f, inq = "", False
                while i < n:
                    ch = script[i]
                    i += 1
                    if ch == '"':
                        inq = not inq
                    if not inq and ch == delim:
                        return f, i
                    f += ch
                return f, i

            ident, i = field(i, ".")
            method, i = field(i, "(")
            match, i = field(i, ")")
            toks.append(("operand", ident.strip(), method.strip(), match.strip()))
        else:
            raise Skip("unknown character %r in the signature" % c)
    return toks


def ctp_parse(toks):
    """Precedence as in DicomObject: ! over * over +. Returns a CNF: list of OR-clauses."""
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        t = peek()
        pos[0] += 1
        return t

    def expr():
        cnf = term()
        while peek() == "+":
            take()
            cnf = cnf_or(cnf, term())
        return cnf

    def term():
        cnf = factor()
        while peek() == "*":
            take()
            cnf = cnf + factor()
        return cnf

    def factor():
        t = take()
        if t == "!":
            raise Skip("negation (!) is not expressible")
        if t == "(":
            cnf = expr()
            if take() != ")":
                raise Skip("unbalanced parentheses")
            return cnf
        if isinstance(t, tuple):
            return [[ctp_test(t)]]
        raise Skip("unexpected token %r" % (t,))

    cnf = expr()
    if peek() is not None:
        raise Skip("trailing tokens after the expression")
    return cnf


def ctp_test(tok):
    _, ident, method, match = tok
    if ident in ("true", "false"):
        raise Skip("constant operand %r" % ident)
    if ident.startswith("[") and ident.endswith("]"):
        tag = ident[1:-1].strip().upper()
        if tag not in CTP_TAGS:
            raise Skip("tag %s has no keyword in the importer's table" % ident)
        ident = CTP_TAGS[tag]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", ident):
        raise Skip("attribute %r is not a keyword" % ident)
    if not (len(match) > 1 and match[0] == '"' and match[-1] == '"'):
        raise Skip("%s.%s: argument is not a quoted string (CTP evaluates it as false)" % (ident, method))
    value = match[1:-1]
    if method not in CTP_METHODS:
        raise Skip("method %s is not expressible" % method)
    if value == "":
        raise Skip("empty argument (CTP treats a missing attribute as the empty string)")
    op, ci = CTP_METHODS[method]
    if op == "regex":
        value = "^(?:%s)$" % value  # String.matches is a whole-string match
    return {"attribute": ident, "op": op, "value": value, "ci": ci}


def import_ctp(text, fname):
    """PixelScript.getSignatures: each {...} is a signature; every (...) between it and the next
    signature with four comma-separated parts is a region (x, y, width, height)."""
    rules, skipped = [], []
    sigs = list(re.finditer(r"\{[^\}]*\}", text))
    # names: the modality banner (between lines of asterisks) and the last free-text line
    lines = text.splitlines()
    line_starts = [0]
    for ln in lines:
        line_starts.append(line_starts[-1] + len(ln) + 1)

    def line_of(offset):
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    prev_end = 0
    modality, vendor, label, in_banner = "", "", "", False
    for k, m in enumerate(sigs):
        # free text between the previous signature's regions and this signature names it:
        # a banner between lines of asterisks is the modality, a line at column 0 the vendor,
        # an indented line the product or image kind
        between = text[prev_end : m.start()]
        for ln in between.splitlines():
            s = ln.strip()
            if not s or re.fullmatch(r"(\(\s*-?\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*,\s*-?\d+\s*\)\s*)+", s):
                continue
            if re.fullmatch(r"\*+", s):
                in_banner = not in_banner
                continue
            if in_banner:
                modality, vendor, label = s, "", ""
            elif ln[:1].isspace():
                label = s
            else:
                vendor, label = s, ""
        end = sigs[k + 1].start() if k + 1 < len(sigs) else len(text)
        region_text = text[m.end() : end]
        # the next signature's free text starts after the last region
        last = None
        for rm in re.finditer(r"\([^\)]*\)", region_text):
            last = rm
        prev_end = m.end() + (last.end() if last else 0)
        no = line_of(m.start())
        name = "CTP %s %s" % (modality, vendor)
        if label:
            name += ": " + label
        source = "%s:%d" % (fname, no)
        try:
            regions = []
            for rm in re.finditer(r"\([^\)]*\)", region_text):
                parts = rm.group()[1:-1].split(",")
                if len(parts) != 4:
                    raise Skip("region %r does not have four numbers (CTP skips it)" % rm.group())
                try:
                    nums = [int(p.strip()) for p in parts]
                except ValueError:
                    raise Skip("region %r is not four integers" % rm.group())
                if any(v < 0 for v in nums):
                    raise Skip("region %r counts from the right or bottom edge" % rm.group())
                if any(v > 65535 for v in nums):
                    raise Skip("region %r too large" % rm.group())
                regions.append(tuple(nums))
            if not regions:
                raise Skip("no region")
            when = ctp_parse(ctp_tokens(m.group()[1:-1]))
            rules.append({"name": name, "source": source, "when": when, "regions": regions})
        except Skip as e:
            skipped.append((source, str(e)))
    return rules, skipped, len(sigs)


# ---------------------------------------------------------------------------------------------


def read(name):
    with open(os.path.join(UPSTREAM, name), encoding="utf-8", newline="") as f:
        return f.read()


HEADER = (
    "# Generated by tools/import-pixel-rules.py from upstream/%s: do not edit by hand.\n"
    "# Format: README.md in this folder. Provenance and skipped rules: PROVENANCE.md.\n"
    "# %s\n"
)


def main():
    check = "--check" in sys.argv[1:]
    deid_rules, deid_skipped, deid_n = import_deid(read("deid.dicom"), "deid.dicom")
    ctp_rules, ctp_skipped, ctp_n = import_ctp(read("DicomPixelAnonymizer.script"), "DicomPixelAnonymizer.script")
    outputs = {
        "deid.toml": file_toml(
            HEADER
            % (
                "deid.dicom",
                "pydicom/deid: every LABEL whose conditions hold gives its regions (match = \"all\").",
            ),
            "all",
            deid_rules,
        ),
        "ctp.toml": file_toml(
            HEADER
            % (
                "DicomPixelAnonymizer.script",
                "RSNA CTP: only the first signature that matches gives regions (match = \"first\").",
            ),
            "first",
            ctp_rules,
        ),
    }
    table = [
        "<!-- skipped:begin (generated by tools/import-pixel-rules.py) -->",
        "",
        "| upstream rule | reason |",
        "|---|---|",
    ]
    for src, why in deid_skipped + ctp_skipped:
        table.append("| `%s` | %s |" % (src.replace("|", "\\|"), why.replace("|", "\\|")))
    table += [
        "",
        "deid.dicom: %d LABELs in %%filter sections, %d imported, %d skipped. "
        "DicomPixelAnonymizer.script: %d signatures, %d imported, %d skipped."
        % (deid_n, len(deid_rules), len(deid_skipped), ctp_n, len(ctp_rules), len(ctp_skipped)),
        "",
        "<!-- skipped:end -->",
    ]
    prov_path = os.path.join(RULES, "PROVENANCE.md")
    with open(prov_path, encoding="utf-8") as f:
        prov = f.read()
    begin = prov.index("<!-- skipped:begin")
    end = prov.index("<!-- skipped:end -->") + len("<!-- skipped:end -->")
    outputs["PROVENANCE.md"] = prov[:begin] + "\n".join(table) + prov[end:]
    stale = []
    for name, text in outputs.items():
        path = os.path.join(RULES, name)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            stale.append(name)
            if not check:
                with open(path, "w", encoding="utf-8", newline="\n") as f:
                    f.write(text)
    print(
        "deid: %d upstream, %d imported, %d skipped; ctp: %d upstream, %d imported, %d skipped"
        % (deid_n, len(deid_rules), len(deid_skipped), ctp_n, len(ctp_rules), len(ctp_skipped))
    )
    if check and stale:
        print("out of date: %s" % ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
