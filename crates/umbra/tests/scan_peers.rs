//! `umbra scan` on what a peer de-identifier leaves: dicognito (PyPI) is run on real files of
//! the public corpus and on files with identifiers planted where it does not look (private
//! blocks, free text, nested sequences). What is left is established apart from the scanner, by
//! a plain byte search of each output file and of each element of it; the scanner must report
//! every identifier so found, in that file and at that element, with a consistent category and
//! a masked excerpt.

mod common;

use common::*;
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The real files dicognito is run on (tests/corpus/public/MANIFEST.tsv says what they hold).
const CORPUS_FILES: &[&str] = &[
    "deid-data/ctbrain1.dcm",
    "deid-data/ctbrain2.dcm",
    "pydicom/CT_small.dcm",
    "pydicom/JPGExtended.dcm",
    "pydicom/examples_overlay.dcm",
    "pydicom/MR_small.dcm",
    "pydicom/rtplan.dcm",
    "pydicom-data/JPGLosslessP14SV1_1s_1f_8b.dcm",
];

/// How to run dicognito, or None when it is not installed. dicognito 0.19.0's `dicognito`
/// script calls `main()` without its arguments and fails; `python3 -m dicognito` works, so
/// either form is accepted.
fn dicognito() -> Option<Vec<&'static str>> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let script = ["dicognito"];
    let module = ["python3", "-m", "dicognito"];
    if have("dicognito") && works(&script) {
        return Some(script.to_vec());
    }
    if have("python3") && works(&module) {
        return Some(module.to_vec());
    }
    assert!(
        !have("dicognito"),
        "dicognito is installed but neither `dicognito` nor `python3 -m dicognito` runs"
    );
    None
}

fn text(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn write(obj: InMemDicomObject, sop_uid: &str, ts: &str, path: &Path) {
    const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";
    let mut obj = obj;
    obj.put(text(tags::SOP_CLASS_UID, VR::UI, SECONDARY_CAPTURE));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, sop_uid));
    obj.put(text(tags::MODALITY, VR::CS, "OT"));
    obj.with_meta(
        FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(SECONDARY_CAPTURE)
            .media_storage_sop_instance_uid(sop_uid)
            .transfer_syntax(ts),
    )
    .unwrap()
    .write_to_file(path)
    .unwrap();
}

/// Planted patient 1, explicit VR: the name, MRN, institution and study UID copied into a
/// private block, Image Comments and Text Value two sequences deep.
fn planted_explicit(path: &Path) {
    let (name, mrn, site, study) = (
        "QUIMBY^ELDRIDGE",
        "MRN4471902",
        "OGDENVILLE COUNTY HOSPITAL",
        "1.2.826.0.1.3680043.9.7133.11",
    );
    let inner = InMemDicomObject::from_element_iter([
        text(tags::VALUE_TYPE, VR::CS, "TEXT"),
        text(
            tags::TEXT_VALUE,
            VR::UT,
            &format!("Referred by {site}, record {mrn}"),
        ),
    ]);
    let outer = InMemDicomObject::from_element_iter([
        text(tags::VALUE_TYPE, VR::CS, "TEXT"),
        text(
            tags::TEXT_VALUE,
            VR::UT,
            "Quimby, Eldridge: history reviewed",
        ),
        seq(tags::CONTENT_SEQUENCE, vec![inner]),
    ]);
    let obj = InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        text(tags::STUDY_DATE, VR::DA, "20190304"),
        text(tags::INSTITUTION_NAME, VR::LO, site),
        text(tags::PATIENT_NAME, VR::PN, name),
        text(tags::PATIENT_ID, VR::LO, mrn),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, "19610412"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7133.12",
        ),
        text(
            tags::IMAGE_COMMENTS,
            VR::LT,
            &format!("Patient {name} ({mrn}), scanned at {site}"),
        ),
        text(Tag(0x0011, 0x0010), VR::LO, "UMBRA PLANTED 1"),
        text(Tag(0x0011, 0x1001), VR::LO, name),
        text(Tag(0x0011, 0x1002), VR::LO, mrn),
        text(Tag(0x0011, 0x1003), VR::LO, &format!("study {study}")),
        seq(tags::CONTENT_SEQUENCE, vec![outer]),
    ]);
    write(
        obj,
        "1.2.826.0.1.3680043.9.7133.13",
        "1.2.840.10008.1.2.1",
        path,
    );
}

/// Planted patient 2, implicit VR (private values reach readers as UN): a private block inside
/// a Request Attributes item, free text in Additional Patient History and in the requested
/// procedure's description.
fn planted_implicit(path: &Path) {
    let (name, id, site, study) = (
        "FLANDERS^NEDWARD",
        "4471903",
        "SHELBYVILLE ORTHOPAEDICS",
        "1.2.826.0.1.3680043.9.7133.21",
    );
    let request = InMemDicomObject::from_element_iter([
        text(tags::REQUESTED_PROCEDURE_ID, VR::SH, "RP4471903"),
        text(
            tags::REQUESTED_PROCEDURE_DESCRIPTION,
            VR::LO,
            "NEDWARD FLANDERS knee",
        ),
        text(Tag(0x0033, 0x0010), VR::LO, "UMBRA PLANTED 2"),
        text(Tag(0x0033, 0x1001), VR::LO, &format!("{name} {id}")),
        text(Tag(0x0033, 0x1002), VR::LO, site),
    ]);
    let obj = InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        text(tags::STUDY_DATE, VR::DA, "20200615"),
        text(tags::INSTITUTION_NAME, VR::LO, site),
        text(tags::OPERATORS_NAME, VR::PN, name),
        text(tags::PATIENT_NAME, VR::PN, name),
        text(tags::PATIENT_ID, VR::LO, id),
        text(
            tags::ADDITIONAL_PATIENT_HISTORY,
            VR::LT,
            &format!("Patient {id} FLANDERS, seen before at {site}; see study {study}"),
        ),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7133.22",
        ),
        seq(tags::REQUEST_ATTRIBUTES_SEQUENCE, vec![request]),
    ]);
    write(
        obj,
        "1.2.826.0.1.3680043.9.7133.23",
        "1.2.840.10008.1.2",
        path,
    );
}

/// What identifies people and places in an original, read apart from the scanner: the parts of
/// every person name at any depth (the patient's, the physicians', the operators'), Patient ID,
/// Institution Name, Device Serial Number, Study Instance UID; each with the category the
/// scanner reports it under.
fn identifiers(original: &Path) -> Vec<(&'static str, String)> {
    fn names(obj: &InMemDicomObject, out: &mut Vec<(&'static str, String)>) {
        for e in obj.iter() {
            if let Value::Sequence(s) = e.value() {
                for item in s.items() {
                    names(item, out);
                }
            } else if e.vr() == VR::PN {
                let v = e.to_str().unwrap_or_default();
                for part in v.split(['^', '=', ' ']) {
                    // "J" (a middle initial) would be found in any file
                    if part.chars().filter(|c| c.is_alphanumeric()).count() >= 3 {
                        out.push(("name", part.to_string()));
                    }
                }
            }
        }
    }
    let obj = dicom_object::open_file(original).unwrap();
    let get = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_matches([' ', '\0']).to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    names(&obj, &mut out);
    // Test data names the vendor as the institution (MR_small: "TOSHIBA" beside Manufacturer
    // "TOSHIBA_MEC"; rtplan: "Here" beside "Manufacturer name here"): that names no site, and
    // dicognito keeps the manufacturer, so it is not counted as left.
    let vendor = format!(
        "{} {}",
        get(tags::MANUFACTURER),
        get(tags::MANUFACTURER_MODEL_NAME)
    );
    let institution = get(tags::INSTITUTION_NAME);
    if !grep_word(vendor.as_bytes(), &institution, false) {
        out.push(("institution", institution));
    }
    out.push(("id", get(tags::PATIENT_ID)));
    out.push(("device", get(tags::DEVICE_SERIAL_NUMBER)));
    out.push(("uid", get(tags::STUDY_INSTANCE_UID)));
    out.retain(|(_, v)| v.chars().filter(|c| c.is_alphanumeric()).count() >= 3);
    out.sort();
    out.dedup();
    out
}

/// Whether `needle` is in `hay` (ASCII case ignored) as a whole word: not inside a longer word,
/// number or (for a UID) a longer UID.
fn grep_word(hay: &[u8], needle: &str, uid: bool) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() {
        return false;
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || uid && b == b'.';
    hay.windows(n.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(n)
            && !(i > 0 && word(hay[i - 1]))
            && !hay.get(i + n.len()).is_some_and(|&b| word(b))
    })
}

/// Where in a parsed object each of `idents` is: the path (as the scanner writes paths,
/// `(0040,A730)[0].(0040,A160)`) of every element at any depth whose text, or whose bytes when
/// it is binary (UN, OB), holds one. Pixel data is left out.
fn elements_holding(
    obj: &InMemDicomObject,
    prefix: &str,
    idents: &[(&'static str, String)],
    out: &mut Vec<(String, &'static str, String)>,
) {
    for e in obj.iter() {
        let tag = e.tag();
        let path = format!("{prefix}({:04X},{:04X})", tag.group(), tag.element());
        let bytes: Vec<u8> = match e.value() {
            Value::Sequence(s) => {
                for (i, item) in s.items().iter().enumerate() {
                    elements_holding(item, &format!("{path}[{i}]."), idents, out);
                }
                continue;
            }
            Value::PixelSequence(_) => continue,
            Value::Primitive(_) if tag == tags::PIXEL_DATA => continue,
            Value::Primitive(PrimitiveValue::U8(b)) => b.to_vec(),
            Value::Primitive(p) => p.to_str().into_owned().into_bytes(),
        };
        for (category, ident) in idents {
            if grep_word(&bytes, ident, *category == "uid") {
                out.push((path.clone(), category, ident.clone()));
            }
        }
    }
}

/// Whether a masked excerpt could be `ident` masked: same length (or cut short with `…`),
/// digits as `#`, letters as `*` or themselves, everything else as is; and it does not show
/// the identifier itself.
fn excerpt_fits(excerpt: &str, ident: &str) -> bool {
    let (shown, cut) = match excerpt.strip_suffix('…') {
        Some(s) => (s, true),
        None => (excerpt, false),
    };
    let (e, i): (Vec<char>, Vec<char>) = (shown.chars().collect(), ident.chars().collect());
    let length_ok = if cut {
        e.len() < i.len()
    } else {
        e.len() == i.len()
    };
    let chars_ok = e.iter().zip(&i).all(|(&e, &c)| {
        if c.is_ascii_digit() {
            e == '#'
        } else if c.is_alphabetic() {
            e == '*' || e.eq_ignore_ascii_case(&c)
        } else {
            e == c
        }
    });
    let hidden = !excerpt.to_lowercase().contains(&ident.to_lowercase());
    length_ok && chars_ok && hidden
}

#[derive(Debug)]
struct Finding {
    /// The input the output file came from (its run's folder).
    input: String,
    rule: String,
    severity: String,
    category: String,
    excerpt: String,
    path: String,
}

#[test]
fn scan_reports_every_identifier_dicognito_leaves() {
    let Some(dicognito) = dicognito() else {
        eprintln!(
            "skipping scan_peers: dicognito is not installed (pip install dicognito; .ci/run installs it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (orig, work, out) = (
        tmp.path().join("orig"),
        tmp.path().join("work"),
        tmp.path().join("out"),
    );
    for d in [&orig, &work, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut inputs: Vec<String> = Vec::new();
    for f in CORPUS_FILES {
        let name = Path::new(f)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        std::fs::copy(corpus().join(f), orig.join(format!("{name}.dcm"))).unwrap();
        inputs.push(name);
    }
    planted_explicit(&orig.join("planted_explicit.dcm"));
    planted_implicit(&orig.join("planted_implicit.dcm"));
    inputs.extend(["planted_explicit".into(), "planted_implicit".into()]);

    // One run per input, each into its own folder: dicognito names its outputs by the new SOP
    // Instance UID, and ctbrain1/ctbrain2 share theirs (one run would keep only one of them).
    // The same seed for every run makes the pseudonyms consistent, as in one run.
    let mut outputs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for name in &inputs {
        let copy = work.join(format!("{name}.dcm"));
        std::fs::copy(orig.join(format!("{name}.dcm")), &copy).unwrap();
        let dir = out.join(name);
        let o = Command::new(dicognito[0])
            .args(&dicognito[1..])
            .args([
                "--seed",
                "umbra-scan-peers",
                "--quiet",
                "--output-directory",
            ])
            .arg(&dir)
            .arg(&copy)
            .output()
            .expect("run dicognito");
        assert!(
            o.status.success(),
            "dicognito on {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let written = tree(&dir);
        assert_eq!(written.len(), 1, "dicognito wrote one file for {name}");
        outputs.insert(name.clone(), dir.join(&written[0].0));
    }

    // Ground truth: which identifiers of each original are still in the bytes of its output.
    let mut left: Vec<(String, &'static str, String)> = Vec::new();
    for name in &inputs {
        let bytes = std::fs::read(&outputs[name]).unwrap();
        for (category, ident) in identifiers(&orig.join(format!("{name}.dcm"))) {
            if grep_word(&bytes, &ident, category == "uid") {
                left.push((name.clone(), category, ident));
            }
        }
    }
    // ... and in which elements of it.
    let mut left_in: Vec<(String, String, &'static str, String)> = Vec::new();
    for name in &inputs {
        let obj = dicom_object::open_file(&outputs[name]).unwrap();
        let idents = identifiers(&orig.join(format!("{name}.dcm")));
        let mut found = Vec::new();
        elements_holding(&obj, "", &idents, &mut found);
        left_in.extend(found.into_iter().map(|(p, c, i)| (name.clone(), p, c, i)));
    }
    let planted_left = |name: &str| left.iter().filter(|(n, _, _)| n == name).count();
    // dicognito replaces these attributes themselves; the copies planted elsewhere stay
    assert!(
        planted_left("planted_explicit") >= 4 && planted_left("planted_implicit") >= 4,
        "dicognito no longer leaves the planted copies: {left:?} (the test must plant elsewhere)"
    );

    let o = umbra(&[
        "scan",
        out.to_str().unwrap(),
        "--against",
        orig.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "scan exit status; stderr: {stderr}"
    );
    let findings: Vec<Finding> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let file = PathBuf::from(s("file"));
            let input = file
                .strip_prefix(&out)
                .unwrap()
                .components()
                .next()
                .unwrap();
            Finding {
                input: input.as_os_str().to_str().unwrap().to_string(),
                rule: s("rule"),
                severity: s("severity"),
                category: s("category"),
                excerpt: s("excerpt"),
                path: s("path"),
            }
        })
        .collect();
    let against: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule.starts_with("against-"))
        .collect();
    assert!(
        !against.is_empty(),
        "the scanner found no identifier of the originals in dicognito's output"
    );
    for f in &findings {
        assert!(
            outputs.contains_key(&f.input),
            "finding for an unknown file: {f:?}"
        );
    }

    let mut missed = Vec::new();
    for (name, category, ident) in &left {
        let reported = against.iter().any(|f| {
            &f.input == name
                && (f.rule == "against-text" || f.rule == "against-raw")
                && (f.severity == "error" || f.severity == "warn")
                && f.category == *category
                && excerpt_fits(&f.excerpt, ident)
        });
        if !reported {
            missed.push(format!("{name}: {category} {ident:?}"));
        }
    }

    for (name, path, category, ident) in &left_in {
        let reported = against.iter().any(|f| {
            &f.input == name
                && (f.path == *path
                    || f.path.starts_with(&format!("{path}."))
                    || f.path.starts_with(&format!("{path}[")))
                && (f.severity == "error" || f.severity == "warn")
                && f.category == *category
                && excerpt_fits(&f.excerpt, ident)
        });
        if !reported {
            missed.push(format!("{name} {path}: {category} {ident:?}"));
        }
    }

    // The record (cargo test -p umbra --test scan_peers -- --nocapture).
    let mut by_rule: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for f in &findings {
        *by_rule
            .entry((f.rule.clone(), f.category.clone(), f.severity.clone()))
            .or_default() += 1;
    }
    let files_with_against: BTreeSet<&str> = against.iter().map(|f| f.input.as_str()).collect();
    eprintln!(
        "dicognito output of {} files: {} identifiers of the originals left by byte search, \
         in {} files; the scanner has against-* findings in {} files",
        inputs.len(),
        left.len(),
        left.iter().map(|l| &l.0).collect::<BTreeSet<_>>().len(),
        files_with_against.len()
    );
    for (name, path, category, ident) in &left_in {
        eprintln!("  left: {name} {path}: {category} {ident:?}");
    }
    for ((rule, category, severity), n) in &by_rule {
        eprintln!("  {rule:<26} {category:<12} {severity:<5} {n}");
    }
    for f in &against {
        eprintln!(
            "  {} {} {} [{}] {} {:?}",
            f.input, f.severity, f.rule, f.category, f.path, f.excerpt
        );
    }
    assert!(
        missed.is_empty(),
        "identifiers left in dicognito's output that umbra scan does not report:\n{}",
        missed.join("\n")
    );
}
