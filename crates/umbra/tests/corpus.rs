//! `umbra deid` on the public corpus (real files from pydicom, pydicom-data and deid-data).

mod common;

use common::*;
use dicom_core::VR;
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_object::InMemDicomObject;
use std::collections::BTreeSet;
use std::path::Path;
use umbra_profile::{Action, Lookup, OptionSet, ProfileOption};

/// The string values of every element at every depth, split by whether the Basic Profile keeps
/// the element (kept) or removes / replaces it (gone). Private elements count as gone.
fn values_by_fate(
    obj: &InMemDicomObject,
    opts: OptionSet,
    kept: &mut BTreeSet<String>,
    gone: &mut BTreeSet<String>,
) {
    for e in obj.iter() {
        let tag = e.tag();
        if let Value::Sequence(s) = e.value() {
            for item in s.items() {
                values_by_fate(item, opts, kept, gone);
            }
            continue;
        }
        let strings: Vec<String> = match e.value() {
            Value::Primitive(p @ (PrimitiveValue::Str(_) | PrimitiveValue::Strs(_))) => p
                .to_multi_str()
                .iter()
                .map(|s| s.trim_matches([' ', '\0']).to_string())
                .collect(),
            Value::Primitive(PrimitiveValue::U8(b)) if e.vr() == VR::UN => {
                vec![
                    b.iter()
                        .map(|&c| c as char)
                        .collect::<String>()
                        .trim_matches([' ', '\0'])
                        .to_string(),
                ]
            }
            _ => continue,
        };
        let vr = e.vr();
        let shifted = opts.contains(ProfileOption::RetainLongitudinalModifiedDates)
            && matches!(vr, VR::DA | VR::DT);
        let remapped_uid = vr == VR::UI
            && !strings
                .iter()
                .all(|u| u.is_empty() || u.starts_with("1.2.840.10008."));
        let removed = shifted
            || match umbra_profile::lookup(tag.0, tag.1) {
                Lookup::Private(_) => true,
                Lookup::NotListed => remapped_uid,
                Lookup::Public(row) => {
                    !matches!(row.action(opts, None), Action::Keep | Action::Clean)
                }
            };
        let set = if removed { &mut *gone } else { &mut *kept };
        set.extend(strings);
    }
}

fn run_corpus(out: &Path, report: &Path, key: &Path, extra: &[&str]) -> std::process::Output {
    // The face rule would hold back the corpus's thin-slice head CT and MR (tests/face.rs checks
    // it); here every file's transform is what is checked, so they are released with a note.
    let mut args = vec![
        "--report",
        report.to_str().unwrap(),
        "--quiet",
        "--face-policy",
        "report",
    ];
    args.extend_from_slice(extra);
    deid(&corpus(), out, key, &args)
}

#[test]
fn every_corpus_file_is_written_clean_or_refused_with_a_reason() {
    check_corpus(OptionSet::EMPTY);
}

#[test]
fn the_same_holds_with_cleaning_and_retaining_options() {
    check_corpus(
        [
            ProfileOption::CleanDescriptors,
            ProfileOption::CleanStructuredContent,
            ProfileOption::CleanGraphics,
            ProfileOption::RetainLongitudinalModifiedDates,
            ProfileOption::RetainPatientCharacteristics,
            ProfileOption::RetainDeviceIdentity,
        ]
        .into_iter()
        .collect(),
    );
}

fn check_corpus(opts: OptionSet) {
    let tmp = tempfile::tempdir().unwrap();
    let (out, report) = (tmp.path().join("out"), tmp.path().join("report.jsonl"));
    let key = fixed_key(tmp.path());
    let mut args = Vec::new();
    for o in opts.iter() {
        args.extend(["--option", o.name()]);
    }
    let o = run_corpus(&out, &report, &key, &args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "some corpus files must be held back: {o:?}"
    );
    let recs = read_report(&report);

    // one record per file of the corpus
    let all_files: Vec<_> = tree(&corpus()).into_iter().map(|(p, _)| p).collect();
    assert_eq!(recs.len(), all_files.len());

    let by_name = |suffix: &str| {
        recs.iter()
            .find(|r| r.input.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in report"))
    };
    // known answers, from the corpus MANIFEST
    assert_eq!(
        by_name("deid-data/us_GREYSCALE_IMAGE.dcm").outcome,
        "held_back"
    );
    assert_eq!(
        by_name("deid-data/us_RGB_IMAGE.dcm").outcome,
        "held_back",
        "no flag must not mean no text"
    );
    assert_eq!(by_name("dicomdirtests/DICOMDIR").outcome, "skipped");
    assert_eq!(by_name("dicomdirtests/README.txt").outcome, "skipped");
    assert_eq!(by_name("MANIFEST.tsv").outcome, "skipped");
    for ok in [
        "pydicom/CT_small.dcm",
        "pydicom/MR_small.dcm",
        "pydicom/rtplan.dcm",
        "pydicom/rtstruct.dcm",
        "pydicom/rtdose.dcm",
        "pydicom/reportsi.dcm",
        "pydicom/test-SR.dcm",
        "pydicom/waveform_ecg.dcm",
        "pydicom/liver_1frame.dcm",
        "pydicom/examples_overlay.dcm",
        "pydicom-data/eCT_Supplemental.dcm",
        "pydicom-data/emri_small_jpeg_2k_lossless.dcm",
        "pydicom-data/explicit_VR-UN.dcm",
        "pydicom-data/RG1_J2KI.dcm",
        "deid-data/animals_cat_DX.dcm",
        "pydicom/MR_small_bigendian.dcm",
    ] {
        let r = by_name(ok);
        // MR_small variants share one SOP Instance UID: only the first of them can be written.
        assert!(
            r.outcome == "written"
                || r.reason
                    .as_deref()
                    .is_some_and(|x| x.contains("same SOP Instance UID")),
            "{ok}: {r:?}"
        );
    }
    for r in &recs {
        if r.outcome != "written" {
            assert!(
                r.reason.as_deref().is_some_and(|s| !s.is_empty()),
                "{r:?} has no reason"
            );
            assert!(r.output.is_none());
        }
    }
    let written: Vec<_> = recs.iter().filter(|r| r.outcome == "written").collect();
    assert!(written.len() >= 40, "only {} written", written.len());

    // Only written outputs exist, and nothing half-written.
    let outputs = tree(&out);
    assert_eq!(outputs.len(), written.len());
    assert!(
        outputs
            .iter()
            .all(|(p, _)| !p.to_string_lossy().contains(".umbra-tmp"))
    );

    let dcmdump = have("dcmdump");
    for r in &written {
        let out_path = out.join(r.output.as_ref().unwrap());
        let bytes = std::fs::read(&out_path).unwrap();
        // re-reads cleanly with dicom-rs
        let (back, _) = umbra_files::read_object(&out_path)
            .unwrap_or_else(|e| panic!("{} does not re-read: {e}", r.input.display()));
        assert_eq!(
            back.get(dicom_dictionary_std::tags::PATIENT_IDENTITY_REMOVED)
                .unwrap()
                .to_str()
                .unwrap()
                .trim(),
            "YES"
        );
        // and with dcmtk when it is installed
        if dcmdump {
            let o = std::process::Command::new("dcmdump")
                .arg("-q")
                .arg(&out_path)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "dcmdump fails on output of {}: {}",
                r.input.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        // no value of an attribute the profile removes survives anywhere in the bytes
        let (orig, _) = umbra_files::read_object(&r.input).unwrap();
        let (mut kept, mut gone) = (BTreeSet::new(), BTreeSet::new());
        values_by_fate(&orig, opts, &mut kept, &mut gone);
        // Pixel data is carried byte for byte (tested below): a value that happens to occur in
        // the image bytes themselves says nothing about the header.
        let pixels: Vec<u8> = match orig
            .get(dicom_dictionary_std::tags::PIXEL_DATA)
            .map(|e| e.value())
        {
            Some(Value::PixelSequence(seq)) => seq.fragments().concat(),
            Some(v) => v.to_bytes().map(|b| b.into_owned()).unwrap_or_default(),
            None => Vec::new(),
        };
        for v in gone.difference(&kept) {
            let short_number = v.len() < 6 && v.bytes().all(|b| !b.is_ascii_alphabetic());
            if v.chars().count() < 4 || short_number || kept.iter().any(|k| k.contains(v.as_str()))
            {
                // too short to tell a leak from an accident of the bytes (Study ID "0010" occurs
                // in any date of the 2000s), or part of a value the profile keeps (Institution
                // Name TOSHIBA inside Manufacturer TOSHIBA_MEC)
                continue;
            }
            let latin1: Option<Vec<u8>> = v.chars().map(|c| u8::try_from(c as u32).ok()).collect();
            for enc in [Some(v.as_bytes().to_vec()), latin1].into_iter().flatten() {
                if contains(&pixels, &enc) {
                    continue;
                }
                assert!(
                    !contains(&bytes, &enc),
                    "{}: removed value {v:?} survives in the output",
                    r.input.display()
                );
            }
        }
    }
}

#[test]
fn pixel_data_is_carried_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, report) = (tmp.path().join("out"), tmp.path().join("report.jsonl"));
    let key = fixed_key(tmp.path());
    run_corpus(&out, &report, &key, &[]);
    let (mut checked, mut raw_checked) = (0, 0);
    for r in read_report(&report)
        .iter()
        .filter(|r| r.outcome == "written")
    {
        let (a, ts_a) = umbra_files::read_object(&r.input).unwrap();
        let (b, ts_b) = umbra_files::read_object(&out.join(r.output.as_ref().unwrap())).unwrap();
        assert_eq!(ts_a, ts_b, "{}: transfer syntax changed", r.input.display());
        let pix = dicom_dictionary_std::tags::PIXEL_DATA;
        match (a.get(pix), b.get(pix)) {
            (None, None) => {}
            (Some(x), Some(y)) => {
                assert_eq!(
                    x.value(),
                    y.value(),
                    "{}: pixel data changed",
                    r.input.display()
                );
                checked += 1;
            }
            _ => panic!("{}: pixel data appeared or vanished", r.input.display()),
        }
        // where the pixel data ends the input, its very bytes end the output
        let input = umbra_files::read_input(&r.input).unwrap();
        if let Some(raw) = &input.raw_pixel_data {
            let written = std::fs::read(out.join(r.output.as_ref().unwrap())).unwrap();
            assert!(
                written.ends_with(&raw.to_vec().unwrap()),
                "{}: pixel bytes differ",
                r.input.display()
            );
            raw_checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} images compared");
    assert!(raw_checked >= 30, "only {raw_checked} images carried raw");
}

#[test]
fn same_key_same_bytes_whatever_the_jobs_and_the_split() {
    let tmp = tempfile::tempdir().unwrap();
    let key = fixed_key(tmp.path());
    let one = tmp.path().join("one");
    let four = tmp.path().join("four");
    let split = tmp.path().join("split");
    let r = tmp.path().join("r");
    run_corpus(&one, &r, &key, &["--jobs", "1"]);
    run_corpus(&four, &r, &key, &["--jobs", "4"]);
    let t1 = tree(&one);
    assert!(!t1.is_empty());
    assert!(t1 == tree(&four), "--jobs 1 and --jobs 4 differ");

    // the same corpus in two runs (different folders, reverse order) joins up into the same tree
    let c = corpus();
    for part in [
        c.join("pydicom"),
        c.join("pydicom-data"),
        c.join("deid-data"),
    ]
    .iter()
    .rev()
    {
        deid(part, &split, &key, &["--quiet", "--face-policy", "report"]);
    }
    assert!(t1 == tree(&split), "split runs differ from one run");

    // a different key gives different pseudonyms throughout
    let other_key = tmp.path().join("key2");
    std::fs::write(&other_key, format!("{}\n", "a5".repeat(32))).unwrap();
    let other = tmp.path().join("other");
    deid(
        &c,
        &other,
        &other_key,
        &["--quiet", "--face-policy", "report"],
    );
    let names1: BTreeSet<_> = t1.iter().map(|(p, _)| p.clone()).collect();
    let names2: BTreeSet<_> = tree(&other).into_iter().map(|(p, _)| p).collect();
    assert_eq!(names1.len(), names2.len());
    assert!(names1.is_disjoint(&names2));
}

#[test]
fn big_endian_and_deflated_objects_keep_their_transfer_syntax_and_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let key = fixed_key(tmp.path());
    let mut inputs = vec![(
        corpus().join("pydicom/MR_small_bigendian.dcm"),
        "1.2.840.10008.1.2.2",
    )];
    // dcmtk makes a deflated copy of a real file when it is installed (CI installs it)
    if have("dcmconv") {
        let dfl = tmp.path().join("ct_deflated.dcm");
        let o = std::process::Command::new("dcmconv")
            .arg("+td")
            .arg(corpus().join("pydicom/CT_small.dcm"))
            .arg(&dfl)
            .output()
            .unwrap();
        assert!(o.status.success());
        inputs.push((dfl, "1.2.840.10008.1.2.1.99"));
    }
    for (i, (input, ts)) in inputs.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let o = deid(input, &out, &key, &["--quiet"]);
        assert_eq!(o.status.code(), Some(0), "{}: {o:?}", input.display());
        let files = tree(&out);
        assert_eq!(files.len(), 1);
        let written = out.join(&files[0].0);
        let (a, _) = umbra_files::read_object(input).unwrap();
        let (b, ts_b) = umbra_files::read_object(&written).unwrap();
        assert_eq!(ts_b, *ts, "{}", input.display());
        // every data set has an even length; a deflated one is padded (PS3.5 A.5), which the
        // file's length shows (the meta group before it is even)
        assert_eq!(
            std::fs::metadata(&written).unwrap().len() % 2,
            0,
            "{}",
            written.display()
        );
        let pix = dicom_dictionary_std::tags::PIXEL_DATA;
        assert_eq!(a.get(pix).unwrap().value(), b.get(pix).unwrap().value());
        if have("dcmdump") {
            let o = std::process::Command::new("dcmdump")
                .arg("-q")
                .arg(&written)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        #[cfg(unix)]
        {
            // ordinary permissions (0644 less the umask, like a file cp makes), not 0600
            use std::os::unix::fs::PermissionsExt;
            let fresh = tmp.path().join("fresh");
            std::fs::File::create(&fresh).unwrap();
            let expected = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o644;
            let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, expected, "output permissions {mode:o}");
        }
    }
}
