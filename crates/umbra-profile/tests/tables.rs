//! The vendored tables are the standard's, unaltered, and the resolution of codes is as documented.

use sha2::{Digest, Sha256};
use umbra_profile::*;

/// Python's `json.dumps(rows, sort_keys=True, separators=(',', ':'))` (ASCII-escaped), which is
/// how the tables' `content_sha256` is defined.
fn canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value::*;
    match v {
        Null => out.push_str("null"),
        Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Number(n) => out.push_str(&n.to_string()),
        String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7E => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{:04x}", u));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        Object(m) => {
            out.push('{');
            let mut keys: Vec<&std::string::String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(&serde_json::Value::String((*k).clone()), out);
                out.push(':');
                canonical(&m[*k], out);
            }
            out.push('}');
        }
    }
}

fn check(file: &str, expected_sha: &str, expected_rows: usize) {
    let path = format!("{}/data/ps3.15-2026d/{file}", env!("CARGO_MANIFEST_DIR"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut s = String::new();
    canonical(&v["rows"], &mut s);
    assert_eq!(
        hex::encode(Sha256::digest(s.as_bytes())),
        v["content_sha256"].as_str().unwrap(),
        "{file}"
    );
    assert_eq!(v["content_sha256"].as_str().unwrap(), expected_sha);
    assert_eq!(v["rows"].as_array().unwrap().len(), expected_rows);
    assert_eq!(v["edition"].as_str().unwrap(), EDITION);
}

#[test]
fn vendored_tables_match_their_recorded_hashes() {
    check("table-E.1-1.json", E11_SHA256, E11_ROW_COUNT);
    check("table-E.3.10-1.json", E3101_SHA256, E3101_ROW_COUNT);
    check(
        "table-E.1-1a.json",
        "f88f2439552d2d17a3f476e602819020091619dac9ee94545855fd569d03305c",
        11,
    );
    assert_eq!(E11_ROW_COUNT, 657);
    assert_eq!(
        E11_ROWS.len() + E11_WILDCARD_ROWS.len() + 1,
        E11_ROW_COUNT,
        "every row compiled in"
    );
}

#[test]
fn combined_codes_resolve_by_type_else_safer() {
    use Action::*;
    use AttrType::*;
    use IodKnowledge::*;
    let cases = [
        (Code::ZD, Type(T1), Dummy),
        (Code::ZD, Type(T2), Empty),
        (Code::ZD, NotInIod, Empty),
        (Code::ZD, Unknown, Dummy),
        (Code::XZ, Type(T2), Empty),
        (Code::XZ, Type(T3), Remove),
        (Code::XZ, NotInIod, Remove),
        (Code::XZ, Unknown, Remove),
        (Code::XD, Type(T1C), Dummy),
        (Code::XD, Type(T3), Remove),
        (Code::XD, Unknown, Remove),
        (Code::XZD, Type(T1), Dummy),
        (Code::XZD, Type(T2C), Empty),
        (Code::XZD, Type(T3), Remove),
        (Code::XZD, Unknown, Remove),
        (Code::XZU, Type(T3), ReplaceUid),
        (Code::XZU, Unknown, ReplaceUid),
        (Code::D, Unknown, Dummy),
        (Code::Z, Unknown, Empty),
        (Code::X, Type(T1), Remove),
        (Code::K, Unknown, Keep),
        (Code::C, Unknown, Clean),
        (Code::U, Unknown, ReplaceUid),
    ];
    for (code, k, want) in cases {
        assert_eq!(resolve(code, k), want, "{} with {k:?}", code.as_str());
    }
}

#[test]
fn lookups_cover_wildcards_private_and_unlisted() {
    assert!(matches!(lookup(0x6002, 0x3000), Lookup::Public(r) if r.name == "Overlay Data"));
    assert!(matches!(lookup(0x5010, 0x0005), Lookup::Public(r) if r.name == "Curve Data"));
    assert!(
        matches!(lookup(0x6001, 0x3000), Lookup::Private(_)),
        "odd group is private"
    );
    assert!(matches!(lookup(0x0029, 0x1010), Lookup::Private(_)));
    assert!(
        matches!(lookup(0x0028, 0x0010), Lookup::NotListed),
        "Rows are kept"
    );
    let Lookup::Public(row) = lookup(0x0008, 0x0022) else {
        panic!()
    };
    assert_eq!(row.code(OptionSet::EMPTY), Code::XZ);
    assert_eq!(
        row.code(OptionSet::EMPTY.with(ProfileOption::RetainLongitudinalFullDates)),
        Code::K
    );
    assert_eq!(
        row.code(OptionSet::EMPTY.with(ProfileOption::RetainLongitudinalModifiedDates)),
        Code::C
    );
    assert!(safe_private(0x0019, "GEMS_ACQU_01 ", 0x23).is_some());
    assert!(safe_private(0x0019, "GEMS_ACQU_01", 0x99).is_none());
    assert!(
        safe_private(0x0021, "GEMS_ACQU_01", 0x23).is_none(),
        "group matters"
    );
    assert!(
        iod_types("1.2.840.10008.5.1.4.1.1.2").is_some(),
        "CT Image Storage is known"
    );
}

#[test]
fn option_codes_are_cid_7050() {
    let codes: Vec<&str> = ProfileOption::ALL.iter().map(|o| o.cid7050().0).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 12, "one distinct code per option");
    // CID 7050: 113101 Clean Pixel Data, 113102 Clean Recognizable Visual Features,
    // 113103..=113112 the others
    assert!(codes.iter().all(|c| ("113101"..="113112").contains(c)));
    for o in ProfileOption::ALL {
        assert_eq!(ProfileOption::from_name(o.name()), Some(o));
    }
}

#[test]
fn additions_only_remove_and_never_shadow_the_standard() {
    assert!(!ADDITION_ROWS.is_empty());
    for r in ADDITION_ROWS {
        assert!(
            E11_ROWS.binary_search_by_key(&r.tag, |x| x.tag).is_err(),
            "{} shadows the table",
            r.name
        );
        assert_eq!(r.basic, Code::X);
    }
    assert!(
        matches!(lookup(0x0400, 0x0500), Lookup::Public(r) if r.name == "Encrypted Attributes Sequence")
    );
}
