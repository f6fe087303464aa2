//! One object routed to two destinations: each gets its own copy, made with its own key, so
//! the two pseudonym sets cannot be linked; every object reaches both, and nothing is left
//! waiting. Runs the workers in-process on real files (no listener).

mod common;

use common::{corpus, dcm_files, folder_gateway, run_workers_until};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| {
            e.to_str()
                .ok()
                .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        })
        .unwrap_or_default()
}

#[test]
fn each_destination_gets_every_object_under_its_own_pseudonyms() {
    use dicom_dictionary_std::tags;
    let d = tempfile::tempdir().unwrap();
    let spool_dir = d.path().join("spool");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    // no key_file: each destination gets a key of its own, made in the spool
    let shared = folder_gateway(&spool_dir, &[("a", &a), ("b", &b)]);
    let inputs = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm"];
    for f in inputs {
        let mut i = shared.spool.receive().unwrap();
        i.write_all(&std::fs::read(corpus(f)).unwrap()).unwrap();
        shared.store(i, "stow", "").unwrap();
    }
    run_workers_until(&shared, 2, Duration::from_secs(60), || {
        dcm_files(&a).len() >= inputs.len() && dcm_files(&b).len() >= inputs.len()
    });
    let depth = shared.depth().unwrap();
    assert_eq!((depth.unrouted, depth.pending, depth.running), (0, 0, 0));
    let read = |dir: &Path| -> Vec<dicom_object::DefaultDicomObject> {
        dcm_files(dir)
            .iter()
            .map(|p| dicom_object::open_file(p).unwrap())
            .collect()
    };
    let (in_a, in_b) = (read(&a), read(&b));
    assert_eq!((in_a.len(), in_b.len()), (inputs.len(), inputs.len()));
    let values = |objs: &[dicom_object::DefaultDicomObject], tag| -> Vec<String> {
        let mut v: Vec<String> = objs.iter().map(|o| text(o, tag)).collect();
        v.sort();
        v
    };
    for tag in [
        tags::SOP_INSTANCE_UID,
        tags::STUDY_INSTANCE_UID,
        tags::PATIENT_ID,
    ] {
        let (va, vb) = (values(&in_a, tag), values(&in_b, tag));
        assert!(
            va.iter().all(|v| !v.is_empty()),
            "{tag}: replaced, not emptied"
        );
        for v in &va {
            assert!(
                !vb.contains(v),
                "{tag}: {v} is in both destinations' copies"
            );
        }
    }
    // and the same objects: the same SOP classes arrived at both
    assert_eq!(
        values(&in_a, tags::SOP_CLASS_UID),
        values(&in_b, tags::SOP_CLASS_UID)
    );
}
