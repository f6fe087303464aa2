//! Compiles the vendored PS3.15 tables (JSON, with edition and hash) into Rust statics.
//!
//! The tables are data: refreshing the standard's edition means replacing the JSON files under
//! `data/` (and the path constant below), not editing code. Nothing here is hand-typed.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const EDITION_DIR: &str = "data/ps3.15-2026d";
const IOD_TYPES: &str = "data/iod-types.json";
const ADDITIONS: &str = "data/additions.json";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let e11_path = root.join(EDITION_DIR).join("table-E.1-1.json");
    let e3101_path = root.join(EDITION_DIR).join("table-E.3.10-1.json");
    let iod_path = root.join(IOD_TYPES);
    let additions_path = root.join(ADDITIONS);
    for p in [&e11_path, &e3101_path, &iod_path, &additions_path] {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let mut out = String::new();
    let e11 = load(&e11_path);
    let e3101 = load(&e3101_path);
    emit_header(&mut out, &e11, &e3101);
    emit_e11(&mut out, &e11);
    emit_additions(&mut out, &load(&additions_path), &e11);
    emit_safe_private(&mut out, &e3101);
    emit_iod_types(&mut out, &load(&iod_path));

    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("tables.rs");
    std::fs::write(dest, out).unwrap();
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing string field {key:?} in {v}"))
}

fn emit_header(out: &mut String, e11: &Value, e3101: &Value) {
    writeln!(out, "/// Edition of PS3.15 the compiled tables come from.").unwrap();
    writeln!(out, "pub const EDITION: &str = {:?};", s(e11, "edition")).unwrap();
    assert_eq!(
        s(e11, "edition"),
        s(e3101, "edition"),
        "tables from different editions"
    );
    writeln!(out, "/// `content_sha256` of Table E.1-1 as vendored.").unwrap();
    writeln!(
        out,
        "pub const E11_SHA256: &str = {:?};",
        s(e11, "content_sha256")
    )
    .unwrap();
    writeln!(out, "/// `content_sha256` of Table E.3.10-1 as vendored.").unwrap();
    writeln!(
        out,
        "pub const E3101_SHA256: &str = {:?};",
        s(e3101, "content_sha256")
    )
    .unwrap();
}

/// Parses `(GGGG,EEEE)` with `x` wildcards into (value, mask) pairs for group and element.
fn parse_tag(tag: &str) -> Option<(u16, u16, u16, u16)> {
    let t = tag.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (g, e) = t.split_once(',')?;
    let part = |p: &str| -> Option<(u16, u16)> {
        if p.len() != 4 {
            return None;
        }
        let mut val = 0u16;
        let mut mask = 0u16;
        for c in p.chars() {
            val <<= 4;
            mask <<= 4;
            if c == 'x' || c == 'X' {
                continue;
            }
            val |= c.to_digit(16)? as u16;
            mask |= 0xF;
        }
        Some((val, mask))
    };
    let (gv, gm) = part(g)?;
    let (ev, em) = part(e)?;
    Some((gv, gm, ev, em))
}

fn code_variant(code: &str) -> &'static str {
    match code {
        "D" => "Code::D",
        "Z" => "Code::Z",
        "X" => "Code::X",
        "K" => "Code::K",
        "C" => "Code::C",
        "U" => "Code::U",
        "Z/D" => "Code::ZD",
        "X/Z" => "Code::XZ",
        "X/D" => "Code::XD",
        "X/Z/D" => "Code::XZD",
        "X/Z/U*" => "Code::XZU",
        other => panic!("unknown action code {other:?}"),
    }
}

fn option_variant(key: &str) -> &'static str {
    match key {
        "retain_safe_private" => "ProfileOption::RetainSafePrivate",
        "retain_uids" => "ProfileOption::RetainUids",
        "retain_device_identity" => "ProfileOption::RetainDeviceIdentity",
        "retain_institution_identity" => "ProfileOption::RetainInstitutionIdentity",
        "retain_patient_characteristics" => "ProfileOption::RetainPatientCharacteristics",
        "retain_longitudinal_full_dates" => "ProfileOption::RetainLongitudinalFullDates",
        "retain_longitudinal_modified_dates" => "ProfileOption::RetainLongitudinalModifiedDates",
        "clean_descriptors" => "ProfileOption::CleanDescriptors",
        "clean_structured_content" => "ProfileOption::CleanStructuredContent",
        "clean_graphics" => "ProfileOption::CleanGraphics",
        other => panic!("unknown option column {other:?}"),
    }
}

fn emit_e11(out: &mut String, e11: &Value) {
    let rows = e11["rows"].as_array().expect("rows");
    let mut exact = Vec::new();
    let mut wildcard = Vec::new();
    let mut private = None;
    for row in rows {
        let tag = s(row, "tag");
        let basic = code_variant(s(row, "basic_profile"));
        let mut opts: Vec<String> = row["options"]
            .as_object()
            .expect("options")
            .iter()
            .map(|(k, v)| {
                format!(
                    "({}, {})",
                    option_variant(k),
                    code_variant(v.as_str().unwrap())
                )
            })
            .collect();
        opts.sort();
        let body = format!(
            "name: {:?}, basic: {basic}, options: &[{}], retired: {}, in_standard_iod: {}",
            s(row, "name"),
            opts.join(", "),
            row["retired"].as_bool().unwrap(),
            row["in_standard_iod"].as_bool().unwrap()
        );
        if tag.starts_with("(gggg,eeee)") {
            assert!(private.is_none(), "two private-attribute rows");
            private = Some(format!("Row {{ tag: 0, {body} }}"));
            continue;
        }
        let (gv, gm, ev, em) = parse_tag(tag).unwrap_or_else(|| panic!("bad tag {tag:?}"));
        if gm == 0xFFFF && em == 0xFFFF {
            exact.push((
                ((gv as u32) << 16) | ev as u32,
                format!("Row {{ tag: 0x{gv:04X}{ev:04X}, {body} }}"),
            ));
        } else {
            wildcard.push(format!(
                "WildcardRow {{ group: 0x{gv:04X}, group_mask: 0x{gm:04X}, element: 0x{ev:04X}, element_mask: 0x{em:04X}, row: Row {{ tag: 0, {body} }} }}"
            ));
        }
    }
    exact.sort_by_key(|(t, _)| *t);
    for w in exact.windows(2) {
        assert_ne!(w[0].0, w[1].0, "duplicate tag in E.1-1");
    }
    writeln!(out, "/// Table E.1-1 rows with a fixed tag, sorted by tag.").unwrap();
    writeln!(out, "pub static E11_ROWS: &[Row] = &[").unwrap();
    for (_, r) in &exact {
        writeln!(out, "    {r},").unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(
        out,
        "/// Table E.1-1 rows with `x` wildcards (curves, overlays)."
    )
    .unwrap();
    writeln!(out, "pub static E11_WILDCARD_ROWS: &[WildcardRow] = &[").unwrap();
    for r in &wildcard {
        writeln!(out, "    {r},").unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(
        out,
        "/// Table E.1-1 row for private attributes `(gggg,eeee)`, gggg odd."
    )
    .unwrap();
    writeln!(
        out,
        "pub static E11_PRIVATE_ROW: Row = {};",
        private.expect("private row")
    )
    .unwrap();
    writeln!(out, "/// Number of rows in Table E.1-1 as vendored.").unwrap();
    writeln!(out, "pub const E11_ROW_COUNT: usize = {};", rows.len()).unwrap();
}

/// Umbra's own rows beyond Table E.1-1, each with its reason; never a tag the table has.
fn emit_additions(out: &mut String, additions: &Value, e11: &Value) {
    let standard: std::collections::BTreeSet<&str> = e11["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(r, "tag"))
        .collect();
    let mut rows = Vec::new();
    for row in additions["rows"].as_array().expect("rows") {
        let tag = s(row, "tag");
        assert!(
            !standard.contains(tag),
            "addition {tag} overrides a row of Table E.1-1"
        );
        assert!(
            !s(row, "reason").is_empty(),
            "addition {tag} without a reason"
        );
        assert!(
            row["options"].as_object().is_some_and(|o| o.is_empty()),
            "additions take no options"
        );
        let (gv, gm, ev, em) = parse_tag(tag).unwrap_or_else(|| panic!("bad tag {tag:?}"));
        assert!(gm == 0xFFFF && em == 0xFFFF, "additions have fixed tags");
        rows.push((((gv as u32) << 16) | ev as u32, format!(
            "Row {{ tag: 0x{gv:04X}{ev:04X}, name: {:?}, basic: {}, options: &[], retired: false, in_standard_iod: false }}",
            s(row, "name"),
            code_variant(s(row, "basic_profile"))
        )));
    }
    rows.sort_by_key(|(t, _)| *t);
    writeln!(
        out,
        "/// Umbra's additions to Table E.1-1 (`data/additions.json`), sorted by tag."
    )
    .unwrap();
    writeln!(out, "pub static ADDITION_ROWS: &[Row] = &[").unwrap();
    for (_, r) in &rows {
        writeln!(out, "    {r},").unwrap();
    }
    writeln!(out, "];").unwrap();
}

fn emit_safe_private(out: &mut String, e3101: &Value) {
    let rows = e3101["rows"].as_array().expect("rows");
    let mut entries = Vec::new();
    for row in rows {
        let tag = s(row, "tag");
        let (gv, gm, ev, em) = parse_tag(tag).unwrap_or_else(|| panic!("bad tag {tag:?}"));
        assert_eq!(gm, 0xFFFF, "safe private row with wildcard group: {tag}");
        assert_eq!(
            em, 0x00FF,
            "safe private row not of the form (gggg,xxee): {tag}"
        );
        entries.push((
            gv,
            s(row, "private_creator").trim().to_string(),
            ev as u8,
            s(row, "vr").to_string(),
        ));
    }
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
    writeln!(
        out,
        "/// Table E.3.10-1, sorted by (group, private creator, element offset)."
    )
    .unwrap();
    writeln!(out, "pub static SAFE_PRIVATE: &[SafePrivate] = &[").unwrap();
    for (g, creator, off, vr) in &entries {
        writeln!(
            out,
            "    SafePrivate {{ group: 0x{g:04X}, creator: {creator:?}, offset: 0x{off:02X}, vr: {vr:?} }},"
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(out, "/// Number of rows in Table E.3.10-1 as vendored.").unwrap();
    writeln!(out, "pub const E3101_ROW_COUNT: usize = {};", rows.len()).unwrap();
}

fn type_variant(t: &str) -> &'static str {
    match t {
        "1" => "AttrType::T1",
        "1C" => "AttrType::T1C",
        "2" => "AttrType::T2",
        "2C" => "AttrType::T2C",
        "3" => "AttrType::T3",
        other => panic!("unknown attribute type {other:?}"),
    }
}

fn emit_iod_types(out: &mut String, iod: &Value) {
    let classes = iod["sop_classes"].as_object().expect("sop_classes");
    let mut list: Vec<(&String, &Value)> = classes.iter().collect();
    list.sort_by(|a, b| a.0.cmp(b.0));
    writeln!(
        out,
        "/// Attribute types of the combined-code attributes per Storage SOP Class."
    )
    .unwrap();
    writeln!(out, "pub static IOD_TYPES: &[IodTypes] = &[").unwrap();
    for (uid, entry) in list {
        let mut types: Vec<(u32, &'static str)> = entry["types"]
            .as_object()
            .expect("types")
            .iter()
            .map(|(tag, t)| {
                let (gv, _, ev, _) = parse_tag(tag).expect("tag");
                (
                    ((gv as u32) << 16) | ev as u32,
                    type_variant(t.as_str().unwrap()),
                )
            })
            .collect();
        types.sort();
        let body: Vec<String> = types
            .iter()
            .map(|(t, v)| format!("(0x{t:08X}, {v})"))
            .collect();
        writeln!(
            out,
            "    IodTypes {{ sop_class: {uid:?}, types: &[{}] }},",
            body.join(", ")
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
    let src = &iod["source"];
    writeln!(
        out,
        "/// Where the IOD attribute types come from.\npub const IOD_TYPES_SOURCE: &str = {:?};",
        format!(
            "{} @ {} ({})",
            src["repository"].as_str().unwrap_or("?"),
            src["commit"].as_str().unwrap_or("?"),
            src["standard_edition"].as_str().unwrap_or("?")
        )
    )
    .unwrap();
}
