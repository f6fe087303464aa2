//! `umbra synth` and `umbra synth check` end to end: the corpus re-reads with other readers, the
//! scorer finds every planted identifier in an untouched copy, scores Umbra's own output as
//! perfect, and takes exactly the right points off a deliberately broken output.

mod common;

use common::{deid, fixed_key, have, read_report, tree, umbra};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `umbra synth --out DIR/syn --patients N --seed S`; returns (corpus folder, key path, key).
fn synth(dir: &Path, patients: usize, seed: u64) -> (PathBuf, PathBuf, Value) {
    let out = dir.join("syn");
    let o = umbra(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--patients",
        &patients.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let key_path = out.join("key.json");
    let key: Value = serde_json::from_slice(&std::fs::read(&key_path).unwrap()).unwrap();
    (out.join("corpus"), key_path, key)
}

/// `umbra synth check KEY OUT --format json`: (exit code, report).
fn check(key: &Path, out: &Path) -> (Option<i32>, Value) {
    let o = umbra(&[
        "synth",
        "check",
        key.to_str().unwrap(),
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code(), report)
}

fn files(key: &Value) -> &Vec<Value> {
    key["files"].as_array().unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// (action, corpus file, path) of every failure.
fn failure_set(report: &Value) -> BTreeSet<(String, String, String)> {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["action"].as_str().unwrap().to_owned(),
                f["file"].as_str().unwrap_or("").to_owned(),
                f["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_same_seed_makes_the_same_corpus_and_another_seed_another() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, ka, _) = synth(&tmp.path().join("a"), 6, 7);
    let (b, kb, _) = synth(&tmp.path().join("b"), 6, 7);
    let (c, _, _) = synth(&tmp.path().join("c"), 6, 8);
    assert_eq!(tree(&a), tree(&b));
    assert_eq!(std::fs::read(ka).unwrap(), std::fs::read(kb).unwrap());
    assert_ne!(tree(&a), tree(&c));
}

#[test]
fn the_corpus_covers_every_syntax_modality_character_set_place_and_hazard() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _, key) = synth(tmp.path(), 8, 1);
    let set = |f: &dyn Fn(&Value) -> Option<String>| -> BTreeSet<String> {
        files(&key).iter().filter_map(f).collect()
    };
    let syntaxes = set(&|f| f["dicom"]["transfer_syntax"].as_str().map(String::from));
    for ts in [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
    ] {
        assert!(syntaxes.contains(ts), "{ts} missing from {syntaxes:?}");
    }
    let modalities = set(&|f| f["dicom"]["modality"].as_str().map(String::from));
    for m in ["CT", "MR", "CR", "DX", "US", "OT", "SR", "RTSTRUCT"] {
        assert!(modalities.contains(m), "{m}");
    }
    let charsets = set(&|f| f["dicom"]["charset"].as_str().map(String::from));
    for c in ["", "ISO_IR 100", "ISO_IR 192", "\\ISO 2022 IR 87"] {
        assert!(charsets.contains(c), "{c:?}");
    }
    let kinds = set(&|f| f["kind"].as_str().map(String::from));
    assert_eq!(
        kinds,
        ["dicom", "dicomdir", "no-preamble", "not-dicom", "truncated"]
            .map(String::from)
            .into()
    );
    let mut places: BTreeSet<String> = files(&key)
        .iter()
        .flat_map(|f| f["plants"].as_array().unwrap())
        .map(|p| p["location"].as_str().unwrap().to_owned())
        .collect();
    if files(&key).iter().any(|f| f["burned_in"].is_array()) {
        places.insert("pixels".into());
    }
    for l in [
        "standard",
        "sequence",
        "private-safe",
        "private-unknown",
        "free-text",
        "overlay",
        "uid",
        "pixels",
        "folder-name",
        "file-name",
        "meta",
        "non-dicom",
        "directory",
    ] {
        assert!(places.contains(l), "{l} missing from {places:?}");
    }
    let depths: BTreeSet<u64> = files(&key)
        .iter()
        .flat_map(|f| f["plants"].as_array().unwrap())
        .map(|p| p["depth"].as_u64().unwrap())
        .collect();
    assert!(
        depths.contains(&3),
        "identity three sequences deep: {depths:?}"
    );
    let classes: BTreeSet<String> = key["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["hipaa"].as_str().unwrap().to_owned())
        .collect();
    // P (biometrics) and Q (faces) come with the defacing work
    for c in "ABCDEFGHIJKLMNOR".chars() {
        assert!(classes.contains(&c.to_string()), "HIPAA ({c})");
    }
    // every reference points at an object of the same patient
    for f in files(&key) {
        for r in f["references"].as_array().into_iter().flatten() {
            let t = &files(&key)[r["target"].as_u64().unwrap() as usize];
            assert_eq!(t["patient"], f["patient"]);
            assert_eq!(t["kind"], "dicom");
        }
    }
}

#[test]
fn the_corpus_reads_back_with_dcmdump_and_pydicom() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, _, key) = synth(tmp.path(), 8, 3);
    let dicom: Vec<PathBuf> = files(&key)
        .iter()
        .filter(|f| matches!(f["kind"].as_str(), Some("dicom" | "dicomdir")))
        .map(|f| corpus.join(f["path"].as_str().unwrap()))
        .collect();
    assert!(dicom.len() > 80);
    // dicom-rs, always
    for p in &dicom {
        dicom_object::open_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    if have("dcmdump") {
        for p in &dicom {
            let o = Command::new("dcmdump").arg("-q").arg(p).output().unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "dcmdump {}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let pydicom = Command::new("python3")
        .args(["-c", "import pydicom"])
        .output()
        .is_ok_and(|o| o.status.success());
    if pydicom {
        // every object parses; images without a decoder plugin for their syntax are read as
        // data sets only (pydicom itself decodes native, RLE and deflate)
        let script = r#"
import sys, pydicom
for p in sys.argv[1:]:
    d = pydicom.dcmread(p)
    d.walk(lambda ds, e: None)
    ts = d.file_meta.TransferSyntaxUID
    if 'PixelData' in d and ts in ('1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.5'):
        a = d.pixel_array
        assert a.size == d.Rows * d.Columns * d.get('SamplesPerPixel', 1) * int(d.get('NumberOfFrames', 1)), p
"#;
        let o = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(&dicom)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pydicom: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn the_scorer_finds_every_planted_identifier_in_an_untouched_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, key_path, key) = synth(tmp.path(), 8, 5);
    let copy = tmp.path().join("copy");
    copy_tree(&corpus, &copy);
    let (code, report) = check(&key_path, &copy);
    assert_eq!(code, Some(1));
    let failures = failure_set(&report);
    let mut planted = 0;
    for f in files(&key) {
        let file = f["path"].as_str().unwrap();
        for p in f["plants"].as_array().unwrap() {
            planted += 1;
            let path = p["path"].as_str().unwrap().to_owned();
            assert!(
                failures.contains(&("remove-identity".into(), file.into(), path.clone())),
                "not found: {} at {path} in {file}",
                p["location"]
            );
        }
        for b in f["burned_in"].as_array().into_iter().flatten() {
            planted += 1;
            let path = format!("box {}x{}+{}+{}", b["width"], b["height"], b["x"], b["y"]);
            assert!(failures.contains(&("remove-identity".into(), file.into(), path)));
        }
        if f["expect"] == "hold-back" {
            assert!(failures.contains(&("hold-back".into(), file.into(), String::new())));
        }
    }
    let a = &report["actions"];
    assert_eq!(
        a["remove-identity"]["required"], planted,
        "nothing counted twice"
    );
    assert_eq!(a["remove-identity"]["correct"], 0);
    // nothing else was changed: releases, UIDs, references, patients and pixels all hold
    for action in [
        "release",
        "uid-consistent",
        "reference-kept",
        "patient-consistent",
        "pixels-kept",
    ] {
        assert_eq!(a[action]["correct"], a[action]["required"], "{action}");
        assert!(a[action]["required"].as_u64().unwrap() > 0, "{action}");
    }
}

/// Runs `umbra deid` on a fresh corpus; returns (tmp, corpus, key path, key, output, report).
fn deid_corpus(
    patients: usize,
    seed: u64,
) -> (
    tempfile::TempDir,
    PathBuf,
    PathBuf,
    Value,
    PathBuf,
    Vec<common::Rec>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, key_path, key) = synth(tmp.path(), patients, seed);
    let out = tmp.path().join("out");
    let report = tmp.path().join("report.jsonl");
    let k = fixed_key(tmp.path());
    let o = deid(
        &corpus,
        &out,
        &k,
        &["--quiet", "--report", report.to_str().unwrap()],
    );
    // held-back files make the run exit 1; nothing may fail for another reason than the
    // planted truncation
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = read_report(&report);
    (tmp, corpus, key_path, key, out, recs)
}

#[test]
fn umbra_output_scores_perfect() {
    let (_tmp, _corpus, key_path, key, out, recs) = deid_corpus(8, 11);
    let (code, report) = check(&key_path, &out);
    assert_eq!(
        code,
        Some(0),
        "{}",
        serde_json::to_string_pretty(&report["failures"]).unwrap()
    );
    let write = files(&key)
        .iter()
        .filter(|f| f["expect"] == "write")
        .count();
    assert_eq!(report["actions"]["release"]["required"], write);
    assert_eq!(
        recs.iter().filter(|r| r.outcome == "written").count(),
        write,
        "exactly the files to write were written"
    );
    // every data set has an even length (PS3.5 7.1); a deflated one is padded with a zero byte
    // (A.5): the corpus's deflated objects include odd-length streams
    for (rel, bytes) in tree(&out) {
        assert_eq!(bytes.len() % 2, 0, "{}", rel.display());
    }
}

#[test]
fn a_broken_output_loses_exactly_those_points() {
    let (_tmp, corpus, key_path, key, out, recs) = deid_corpus(4, 13);
    let (code, before) = check(&key_path, &out);
    assert_eq!(code, Some(0));
    let output_of = |corpus_rel: &str| -> PathBuf {
        let input = corpus.join(corpus_rel);
        let r = recs
            .iter()
            .find(|r| r.input == input)
            .expect("in the report");
        out.join(r.output.as_ref().expect("written"))
    };
    let file = |pred: &dyn Fn(&Value) -> bool| -> Value {
        files(&key).iter().find(|f| pred(f)).cloned().unwrap()
    };

    // 1. one private block kept: a CT slice with its original (0029) block back
    let ct = file(&|f| {
        f["dicom"]["modality"] == "CT" && f["path"].as_str().unwrap().ends_with("IM0001.dcm")
    });
    let ct_rel = ct["path"].as_str().unwrap();
    let original = dicom_object::open_file(corpus.join(ct_rel)).unwrap();
    let target = output_of(ct_rel);
    let mut copy = dicom_object::open_file(&target).unwrap();
    let block = [0x0010u16, 0x1010, 0x1011, 0x1012];
    for e in block {
        copy.put(original.element(Tag(0x0029, e)).unwrap().clone());
    }
    copy.write_to_file(&target).unwrap();
    let mut expected: BTreeSet<(String, String, String)> = ct["plants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            ["(0029,1010)", "(0029,1011)", "(0029,1012)"].contains(&p["path"].as_str().unwrap())
        })
        .map(|p| {
            (
                "remove-identity".into(),
                ct_rel.into(),
                p["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 3);

    // 2. one reference not remapped: a report's evidence keeps the original UID of a slice
    let sr = file(&|f| f["dicom"]["modality"] == "SR");
    let sr_rel = sr["path"].as_str().unwrap();
    let reference = sr["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().unwrap().starts_with("(0040,A375)"))
        .unwrap()
        .clone();
    let ref_path = reference["path"].as_str().unwrap();
    let original_uid =
        files(&key)[reference["target"].as_u64().unwrap() as usize]["dicom"]["sop_instance_uid"]
            .as_str()
            .unwrap()
            .to_owned();
    let target = output_of(sr_rel);
    let mut copy = dicom_object::open_file(&target).unwrap();
    // (0040,A375)[0].(0008,1115)[0].(0008,1199)[k].(0008,1155)
    let k: usize = ref_path
        .split("(0008,1199)[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut ev = copy
        .element(Tag(0x0040, 0xA375))
        .unwrap()
        .items()
        .unwrap()
        .to_vec();
    let mut series = ev[0]
        .element(Tag(0x0008, 0x1115))
        .unwrap()
        .items()
        .unwrap()
        .to_vec();
    let mut sops = series[0]
        .element(Tag(0x0008, 0x1199))
        .unwrap()
        .items()
        .unwrap()
        .to_vec();
    sops[k].put(DataElement::new(
        Tag(0x0008, 0x1155),
        VR::UI,
        PrimitiveValue::from(original_uid.as_str()),
    ));
    let sq = |t: Tag, items| {
        DataElement::new(t, VR::SQ, dicom_core::value::DataSetSequence::from(items))
    };
    series[0].put(sq(Tag(0x0008, 0x1199), sops));
    ev[0].put(sq(Tag(0x0008, 0x1115), series));
    copy.put(sq(Tag(0x0040, 0xA375), ev));
    copy.write_to_file(&target).unwrap();
    expected.insert(("reference-kept".into(), sr_rel.into(), ref_path.into()));
    expected.insert(("remove-identity".into(), sr_rel.into(), ref_path.into()));
    // the original UID now maps to two values (the slice's new UID, and itself); the scorer
    // names the first corpus file using that UID
    let uid_owner = files(&key)
        .iter()
        .find(|f| {
            f["uids"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|u| u["value"] == original_uid.as_str())
        })
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned();
    expected.insert(("uid-consistent".into(), uid_owner, String::new()));

    let (code, after) = check(&key_path, &out);
    assert_eq!(code, Some(1));
    assert_eq!(failure_set(&after), expected);
    assert_eq!(after["score"]["required"], before["score"]["required"]);
    assert_eq!(
        after["score"]["correct"].as_u64().unwrap(),
        before["score"]["correct"].as_u64().unwrap() - expected.len() as u64
    );
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = tmp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    let o = umbra(&["synth", "--out", busy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    let o = umbra(&["synth"]);
    assert_eq!(o.status.code(), Some(2));
    let not_key = tmp.path().join("k.json");
    std::fs::write(&not_key, b"{\"format\": \"other\"}").unwrap();
    let o = umbra(&[
        "synth",
        "check",
        not_key.to_str().unwrap(),
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = umbra(&[
        "synth",
        "check",
        "/nonexistent/key.json",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.starts_with("umbra: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
