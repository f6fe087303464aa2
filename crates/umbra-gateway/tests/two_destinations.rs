//! One object routed to two destinations: each gets its own copy, made with its own key, so
//! the two pseudonym sets cannot be linked; every object reaches both, and nothing is left
//! waiting. Runs the workers in-process on real files (no listener).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use umbra_gateway::Config;
use umbra_gateway::pipeline::{self, Shared};
use umbra_gateway::queue::Queue;
use umbra_gateway::spool::Spool;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public/pydicom")
        .join(name)
}

fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(dcm_files(&p));
            } else if p.extension().is_some_and(|x| x == "dcm") {
                out.push(p);
            }
        }
    }
    out
}

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
    let config = Config::parse(&format!(
        r#"
spool = "{}"
workers = 2
[http]
listen = "127.0.0.1:0"
[[destination]]
name = "a"
kind = "folder"
path = "{}"
[[destination]]
name = "b"
kind = "folder"
path = "{}"
[[route]]
destinations = ["a", "b"]
"#,
        spool_dir.display(),
        a.display(),
        b.display()
    ))
    .unwrap();
    let spool = Spool::open(&spool_dir).unwrap();
    let queue = Queue::open(&spool.queue_path()).unwrap();
    let shared = Arc::new(Shared::new(&config, spool, queue).unwrap());
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let s = shared.clone();
            std::thread::spawn(move || pipeline::worker(&s))
        })
        .collect();
    let inputs = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm"];
    for f in inputs {
        let mut i = shared.spool.receive().unwrap();
        i.write_all(&std::fs::read(corpus(f)).unwrap()).unwrap();
        shared.store(i, "stow", "").unwrap();
    }
    let t0 = Instant::now();
    while (dcm_files(&a).len() < inputs.len() || dcm_files(&b).len() < inputs.len())
        && t0.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let depth = shared.depth().unwrap();
    shared.stop.store(true, Ordering::Relaxed);
    shared.notify();
    for w in workers {
        w.join().unwrap();
    }
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
