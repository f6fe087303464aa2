//! The spool's log across a crash: records made durable but never queued (the process killed
//! between the two) are queued again at start and delivered; a torn last record is not; once
//! every object in a segment is forwarded and purged, the segment's file goes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use umbra_gateway::Config;
use umbra_gateway::pipeline::{self, Shared};
use umbra_gateway::queue::{JobEnd, Queue};
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

#[test]
fn records_never_queued_are_recovered_and_delivered_and_the_segment_goes_when_purged() {
    let d = tempfile::tempdir().unwrap();
    let spool_dir = d.path().join("spool");
    let out = d.path().join("lab");
    let inputs = [corpus("CT_small.dcm"), corpus("MR_small.dcm")];
    // a process that made two objects durable and was killed before queueing them, while a
    // third was being written
    {
        let spool = Spool::open(&spool_dir).unwrap();
        for f in &inputs {
            let mut i = spool.receive().unwrap();
            i.write_all(&std::fs::read(f).unwrap()).unwrap();
            i.commit(|_, _, _| Ok(())).unwrap();
        }
        let mut torn = spool.receive().unwrap();
        torn.write_all(&std::fs::read(&inputs[0]).unwrap()).unwrap();
        torn.commit(|_, _, _| Ok(())).unwrap();
        let seg = spool.segment_path(1);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 100).unwrap();
    }
    // (the listener is configured, not started: this test drives the spool and a worker)
    let config = Config::parse(&format!(
        r#"
spool = "{}"
workers = 1
[http]
listen = "127.0.0.1:0"
[retention]
keep_forwarded_hours = 0
[[destination]]
name = "lab"
kind = "folder"
path = "{}"
[[route]]
destinations = ["lab"]
"#,
        spool_dir.display(),
        out.display()
    ))
    .unwrap();
    let spool = Spool::open(&spool_dir).unwrap();
    let queue = Queue::open(&spool.queue_path()).unwrap();
    let shared = Arc::new(Shared::new(&config, spool, queue).unwrap());
    assert_eq!(
        shared.recover().unwrap(),
        2,
        "the torn record is not an object"
    );
    assert_eq!(shared.queue.depth().unwrap().unrouted, 2);
    // a second start finds nothing more to recover
    assert_eq!(shared.recover().unwrap(), 0);

    let s = shared.clone();
    let worker = std::thread::spawn(move || pipeline::worker(&s));
    let seg = shared.spool.segment_path(1);
    let t0 = Instant::now();
    while (dcm_files(&out).len() < 2 || seg.exists()) && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.stop.store(true, Ordering::Relaxed);
    shared.notify();
    worker.join().unwrap();

    let written = dcm_files(&out);
    assert_eq!(written.len(), 2, "both recovered objects delivered");
    for f in &written {
        let obj = dicom_object::open_file(f).unwrap();
        let name = obj
            .element(dicom_dictionary_std::tags::PATIENT_NAME)
            .ok()
            .and_then(|e| e.to_str().ok().map(|s| s.to_string()))
            .unwrap_or_default();
        // the originals are CompressedSamples^CT1 and ^MR1
        assert!(
            !name.is_empty() && !name.contains("CompressedSamples"),
            "{name}"
        );
    }
    assert!(!seg.exists(), "every object purged: the segment went");
    assert_eq!(shared.queue.unknown(&["x".repeat(32)]).unwrap().len(), 1);
    let d = shared.queue.depth().unwrap();
    assert_eq!((d.unrouted, d.pending, d.running), (0, 0, 0));
}

/// An object just received waits in memory until a worker routes it; the queue has no row for
/// it yet, so its log segment must outlive a purge of every object the queue knows in that
/// segment. At shutdown it is queued, and the next worker delivers it.
#[test]
fn a_segment_with_an_object_not_yet_queued_outlives_a_purge() {
    let d = tempfile::tempdir().unwrap();
    let spool_dir = d.path().join("spool");
    let out = d.path().join("lab");
    let config = Config::parse(&format!(
        r#"
spool = "{}"
workers = 1
[http]
listen = "127.0.0.1:0"
[retention]
keep_forwarded_hours = 0
[[destination]]
name = "lab"
kind = "folder"
path = "{}"
[[route]]
destinations = ["lab"]
"#,
        spool_dir.display(),
        out.display()
    ))
    .unwrap();
    let spool = Spool::open(&spool_dir).unwrap();
    let queue = Queue::open(&spool.queue_path()).unwrap();
    let shared = Arc::new(Shared::new(&config, spool, queue).unwrap());
    let receive = |f: &Path| {
        let mut i = shared.spool.receive().unwrap();
        i.write_all(&std::fs::read(f).unwrap()).unwrap();
        i
    };
    // an object forwarded and done: the queue knows it, in segment 1
    let mut first = None;
    receive(&corpus("CT_small.dcm"))
        .commit(|id, loc, _| {
            first = Some(loc);
            let obj = umbra_gateway::queue::NewObject {
                id: id.into(),
                calling_ae: String::new(),
                source: "stow".into(),
                received_at: 0.0,
                loc,
            };
            shared
                .queue
                .record_routed(&obj, &["lab".into()], Some(JobEnd::Done))
                .map_err(std::io::Error::other)
        })
        .unwrap();
    assert_eq!(first.unwrap().segment, 1);
    // then one received and not yet taken by a worker, in the same segment
    shared
        .store(receive(&corpus("MR_small.dcm")), "stow", "")
        .unwrap();
    let seg = shared.spool.segment_path(1);
    shared.purge();
    assert!(seg.exists(), "the segment holds an object not yet queued");
    assert_eq!(shared.depth().unwrap().unrouted, 1);
    assert_eq!(shared.queue.depth().unwrap().unrouted, 0, "in memory only");
    // shutdown: the waiting object is queued
    shared.flush_fresh().unwrap();
    assert_eq!(shared.queue.depth().unwrap().unrouted, 1);
    assert_eq!(shared.depth().unwrap().unrouted, 1, "counted once");
    shared.purge();
    assert!(seg.exists());

    let s = shared.clone();
    let worker = std::thread::spawn(move || pipeline::worker(&s));
    let t0 = Instant::now();
    while (dcm_files(&out).is_empty() || seg.exists()) && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.stop.store(true, Ordering::Relaxed);
    shared.notify();
    worker.join().unwrap();
    assert_eq!(dcm_files(&out).len(), 1, "the waiting object was delivered");
    assert!(!seg.exists(), "then purged, and its segment went");
    let d = shared.depth().unwrap();
    assert_eq!((d.unrouted, d.pending, d.running), (0, 0, 0));
}
