//! Faces in head CT and MR, as users meet them: synthetic head series (`umbra synth --profile
//! heads`, with ground-truth masks) through `umbra deid` with and without
//! `--option clean-recognizable-visual-features`.

mod common;

use common::*;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::open_file;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir(dir);
    v.sort();
    v
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn text(o: &dicom_object::DefaultDicomObject, t: Tag) -> String {
    o.element(t)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn pixels(o: &dicom_object::DefaultDicomObject) -> Vec<i16> {
    let bytes = o.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Geometry attributes that must come out exactly as they went in.
const GEOMETRY: [Tag; 7] = [
    tags::IMAGE_POSITION_PATIENT,
    tags::IMAGE_ORIENTATION_PATIENT,
    tags::PIXEL_SPACING,
    tags::SLICE_THICKNESS,
    tags::ROWS,
    tags::COLUMNS,
    tags::INSTANCE_NUMBER,
];

#[test]
fn head_series_are_held_back_or_defaced_and_other_series_pass_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    let o = umbra(&[
        "synth",
        "--profile",
        "heads",
        "--patients",
        "1",
        "--voxels",
        "96",
        "--seed",
        "3",
        "--out",
        synth.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let corpus = synth.join("corpus");
    let key = tmp.path().join("key");
    assert!(umbra(&["keygen", key.to_str().unwrap()]).status.success());

    // Without the option: every head slice is held back with the face reason, the chest goes.
    let plain = tmp.path().join("plain");
    let report = tmp.path().join("plain.jsonl");
    umbra(&[
        "deid",
        corpus.to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
        "--quiet",
        "--key-file",
        key.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &records {
        let input = r["input"].as_str().unwrap();
        if input.contains("/chest/") {
            assert_eq!(r["outcome"], "written", "{r}");
        } else {
            assert_eq!(r["outcome"], "held_back", "{r}");
            assert!(
                r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("clean-recognizable-visual-features"),
                "{r}"
            );
        }
    }

    // With it: every slice written, head slices defaced and marked, the chest untouched.
    let out = tmp.path().join("out");
    let report = tmp.path().join("out.jsonl");
    let o = umbra(&[
        "deid",
        corpus.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--key-file",
        key.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--option",
        "clean-recognizable-visual-features",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_input: HashMap<String, PathBuf> = records
        .iter()
        .map(|r| {
            (
                r["input"].as_str().unwrap().to_string(),
                out.join(r["output"].as_str().unwrap()),
            )
        })
        .collect();
    for series in ["ct1", "ct2", "mr1", "mr2", "chest"] {
        let inputs = files(&corpus.join("S001").join(series));
        // ground truth of the head series, in the slices' own voxel order (x fastest)
        let truth = |name: &str| {
            let f = synth.join(format!("truth/S001/{series}-{name}.nii.gz"));
            umbra_deface::nifti::read(&std::fs::read(f).unwrap()).unwrap()
        };
        let (face, brain) = if series == "chest" {
            (None, None)
        } else {
            (Some(truth("face")), Some(truth("brain")))
        };
        let (mut face_total, mut face_filled, mut brain_changed, mut changed) = (0, 0, 0, 0);
        for (k, input) in inputs.iter().enumerate() {
            let original = open_file(input).unwrap();
            let output_path = &by_input[input.to_str().unwrap()];
            let copy = open_file(output_path).unwrap();
            for t in GEOMETRY {
                assert_eq!(text(&original, t), text(&copy, t), "{series} slice {k} {t}");
            }
            let (a, b) = (pixels(&original), pixels(&copy));
            assert_eq!(a.len(), b.len());
            if series == "chest" {
                assert_eq!(a, b, "chest slice {k} changed");
                assert_eq!(text(&copy, tags::RECOGNIZABLE_VISUAL_FEATURES), "");
                continue;
            }
            assert_eq!(text(&copy, tags::RECOGNIZABLE_VISUAL_FEATURES), "NO");
            let codes = copy
                .element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
                .unwrap()
                .items()
                .unwrap()
                .iter()
                .map(|i| {
                    i.element(tags::CODE_VALUE)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .trim()
                        .to_string()
                })
                .collect::<Vec<_>>();
            assert!(codes.contains(&"113102".to_string()), "{codes:?}");
            let plane = a.len();
            let (face, brain) = (face.as_ref().unwrap(), brain.as_ref().unwrap());
            for i in 0..plane {
                let v = k * plane + i;
                let differs = a[i] != b[i];
                changed += usize::from(differs);
                if brain.voxels()[v] > 0.5 {
                    brain_changed += usize::from(differs);
                }
                if face.voxels()[v] > 0.5 {
                    face_total += 1;
                    // blanked (CT -1000 HU) or under the generic plate: changed either way
                    face_filled += usize::from(differs);
                }
            }
        }
        if series == "chest" {
            continue;
        }
        assert_eq!(brain_changed, 0, "{series}: brain voxels changed");
        assert!(face_total > 500, "{series}: the phantom has a face");
        let share = face_filled as f64 / face_total as f64;
        // measured on this phantom: 97-100% (BENCHMARKS.md has the 40-subject figures)
        assert!(
            share >= 0.95,
            "{series}: {face_filled} of {face_total} face voxels removed"
        );
        let voxels = inputs.len() * pixels(&open_file(&inputs[0]).unwrap()).len();
        assert!(
            changed < voxels / 5,
            "{series}: {changed} of {voxels} voxels changed"
        );
    }
    // the enhanced (multi-frame) MR, frames stored in reverse order of position: placed by its
    // functional groups, defaced as one volume, written back frame for frame
    let input = files(&corpus.join("S001/mr-enhanced")).remove(0);
    let original = open_file(&input).unwrap();
    let copy = open_file(&by_input[input.to_str().unwrap()]).unwrap();
    assert_eq!(text(&copy, tags::RECOGNIZABLE_VISUAL_FEATURES), "NO");
    assert_eq!(
        text(&copy, tags::NUMBER_OF_FRAMES),
        text(&original, tags::NUMBER_OF_FRAMES)
    );
    let (a, b) = (pixels(&original), pixels(&copy));
    assert_eq!(a.len(), b.len());
    let truth = |name: &str| {
        let f = synth.join(format!("truth/S001/mr-enhanced-{name}.nii.gz"));
        umbra_deface::nifti::read(&std::fs::read(f).unwrap()).unwrap()
    };
    let (face, brain) = (truth("face"), truth("brain"));
    let nz = face.dims()[2];
    let plane = a.len() / nz;
    let (mut face_total, mut face_changed, mut brain_changed) = (0, 0, 0);
    for f in 0..nz {
        let k = nz - 1 - f; // frame f shows slice k
        for i in 0..plane {
            let differs = a[f * plane + i] != b[f * plane + i];
            if brain.voxels()[k * plane + i] > 0.5 {
                brain_changed += usize::from(differs);
            }
            if face.voxels()[k * plane + i] > 0.5 {
                face_total += 1;
                face_changed += usize::from(differs);
            }
        }
    }
    assert_eq!(brain_changed, 0, "enhanced MR: brain voxels changed");
    assert!(
        face_changed as f64 >= 0.95 * face_total as f64 && face_total > 500,
        "enhanced MR: {face_changed} of {face_total} face voxels removed"
    );

    // every output reads back with dcmtk too, when it is installed
    if std::process::Command::new("dcmdump")
        .arg("--version")
        .output()
        .is_ok()
    {
        for f in files(&out).iter().take(20) {
            let o = std::process::Command::new("dcmdump")
                .arg("-q")
                .arg(f)
                .output()
                .unwrap();
            assert!(o.status.success(), "dcmdump {}", f.display());
        }
    }
}

#[test]
fn nifti_volumes_are_defaced_and_non_heads_refused() {
    use umbra_deface::phantom::{self, Body, Subject};
    use umbra_deface::{Modality, nifti};
    let tmp = tempfile::tempdir().unwrap();
    let (vol, truth) = phantom::render(&Subject::new(5, 0), Modality::Mr, 0, [96; 3]);
    let input = tmp.path().join("head.nii.gz");
    std::fs::write(&input, nifti::write(&vol, true).unwrap()).unwrap();
    let out = tmp.path().join("defaced.nii");
    let changed = tmp.path().join("changed.nii.gz");
    let o = umbra(&[
        "deface",
        input.to_str().unwrap(),
        "--modality",
        "mr",
        "--out",
        out.to_str().unwrap(),
        "--changed-mask",
        changed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = nifti::read(&std::fs::read(&out).unwrap()).unwrap();
    let mask = nifti::read(&std::fs::read(&changed).unwrap()).unwrap();
    assert_eq!(after.dims(), vol.dims());
    let (mut face, mut face_changed, mut brain_changed) = (0, 0, 0);
    for i in 0..vol.len() {
        let differs = after.voxels()[i] != vol.voxels()[i];
        // the changed mask says exactly which voxels differ (a voxel already at the fill value
        // may be in the mask and unchanged)
        if differs {
            assert_eq!(mask.voxels()[i], 1.0, "voxel {i} changed outside the mask");
        }
        if truth.brain.get(i) {
            brain_changed += usize::from(differs);
        }
        if truth.face.get(i) {
            face += 1;
            face_changed += usize::from(mask.voxels()[i] == 1.0);
        }
    }
    assert_eq!(brain_changed, 0);
    assert!(
        face_changed as f64 >= 0.95 * face as f64,
        "{face_changed} of {face}"
    );

    let chest = phantom::render_body(Body::Chest, 5, Modality::Ct, [64; 3]);
    let input = tmp.path().join("chest.nii");
    std::fs::write(&input, nifti::write(&chest, false).unwrap()).unwrap();
    let o = umbra(&[
        "deface",
        input.to_str().unwrap(),
        "--modality",
        "ct",
        "--out",
        tmp.path().join("x.nii").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a head"));
    assert!(!tmp.path().join("x.nii").exists());
    // garbage is a usage error of one line, never a panic
    std::fs::write(tmp.path().join("bad.nii"), b"not a nifti file").unwrap();
    let o = umbra(&[
        "deface",
        tmp.path().join("bad.nii").to_str().unwrap(),
        "--modality",
        "ct",
        "--out",
        tmp.path().join("y.nii").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}
