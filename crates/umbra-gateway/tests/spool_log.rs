//! The spool's log across a crash: records made durable but never queued (the process killed
//! between the two) are queued again at start and delivered; a torn last record is not; once
//! every object in a segment is forwarded and purged, the segment's file goes.

mod common;

use common::{corpus, dcm_files, folder_gateway, metric, run_workers_until};
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use umbra_gateway::queue::{JobEnd, NewObject, Routed};
use umbra_gateway::spool::{Origin, Spool};

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
        let mut at = None;
        torn.commit(|_, loc, _| {
            at = Some(loc);
            Ok(())
        })
        .unwrap();
        // the write torn 100 bytes before the object's end
        let at = at.unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(spool.segment_path(1))
            .unwrap();
        f.set_len(at.offset + at.len - 100).unwrap();
    }
    // (the listener is configured, not started: this test drives the spool and a worker)
    let shared = folder_gateway(&spool_dir, &[("lab", &out)]);
    assert_eq!(
        shared.recover().unwrap(),
        2,
        "the torn record is not an object"
    );
    assert_eq!(shared.queue.depth().unwrap().unrouted, 2);
    // a second start finds nothing more to recover
    assert_eq!(shared.recover().unwrap(), 0);

    let seg = shared.spool.segment_path(1);
    run_workers_until(&shared, 1, Duration::from_secs(30), || {
        dcm_files(&out).len() >= 2 && !seg.exists()
    });

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
    let shared = folder_gateway(&spool_dir, &[("lab", &out)]);
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
            let obj = NewObject {
                id: id.into(),
                calling_ae: String::new(),
                source: "stow".into(),
                received_at: 0.0,
                loc,
            };
            let dests = ["lab".to_string()];
            let routed = Routed {
                object: &obj,
                dests: &dests,
                first: Some(JobEnd::Done),
            };
            shared
                .queue
                .record_routed(&[routed])
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

    run_workers_until(&shared, 1, Duration::from_secs(30), || {
        !dcm_files(&out).is_empty() && !seg.exists()
    });
    assert_eq!(dcm_files(&out).len(), 1, "the waiting object was delivered");
    assert!(!seg.exists(), "then purged, and its segment went");
    let d = shared.depth().unwrap();
    assert_eq!((d.unrouted, d.pending, d.running), (0, 0, 0));
}

/// Routing after a crash matches what it would have been: a record says where its object came
/// from. Two objects with the same bytes, whose meta group names `CT_SCANNER` as Source AE
/// Title: one received over DIMSE from `CT_SCANNER` (the gateway wrote that meta group), one
/// over STOW-RS (the client's own meta group: STOW-RS has no caller). Both made durable by a
/// process killed before queueing them. At the next start the DIMSE one matches the route on
/// the calling AE title and the STOW-RS one does not.
#[test]
fn recovered_objects_route_on_the_caller_they_came_with() {
    let d = tempfile::tempdir().unwrap();
    let spool_dir = d.path().join("spool");
    let (by_ae, all) = (d.path().join("by_ae"), d.path().join("all"));
    let ct = std::fs::read(corpus("CT_small.dcm")).unwrap();
    // the data set after the meta group (its length is (0002,0000) at bytes 140..144)
    let meta_len = u32::from_le_bytes(ct[140..144].try_into().unwrap()) as usize;
    let data_set = &ct[144 + meta_len..];
    let object = |sop_instance: &str| {
        let mut b = umbra_dimse::part10_header(
            "1.2.840.10008.5.1.4.1.1.2",
            sop_instance,
            "1.2.840.10008.1.2.1",
            "CT_SCANNER",
        );
        b.extend_from_slice(data_set);
        b
    };
    {
        let spool = Spool::open(&spool_dir).unwrap();
        for origin in [Origin::Dimse, Origin::Stow] {
            let mut i = spool.receive().unwrap();
            i.set_origin(origin);
            i.write_all(&object("1.2.3.4")).unwrap();
            i.commit(|_, _, _| Ok(())).unwrap();
        }
    }
    let config = umbra_gateway::Config::parse(&format!(
        "spool = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[retention]\nkeep_forwarded_hours = 0\n\
         [[destination]]\nname = \"by_ae\"\nkind = \"folder\"\npath = \"{}\"\n\
         [[destination]]\nname = \"all\"\nkind = \"folder\"\npath = \"{}\"\n\
         [[route]]\ndestinations = [\"by_ae\"]\ncalling_ae = [\"CT_SCANNER\"]\n\
         [[route]]\ndestinations = [\"all\"]\n",
        spool_dir.display(),
        by_ae.display(),
        all.display()
    ))
    .unwrap();
    let spool = Spool::open(&spool_dir).unwrap();
    let queue = umbra_gateway::queue::Queue::open(&spool.queue_path()).unwrap();
    let shared =
        std::sync::Arc::new(umbra_gateway::pipeline::Shared::new(&config, spool, queue).unwrap());
    assert_eq!(shared.recover().unwrap(), 2);
    run_workers_until(&shared, 1, Duration::from_secs(30), || {
        let d = shared.queue.depth().unwrap();
        (d.unrouted, d.pending, d.running) == (0, 0, 0)
    });
    // both objects have the same SOP Instance UID, so each destination holds one file per
    // object it got: count deliveries from the metrics instead
    let forwarded = |dest: &str| {
        metric(
            &shared,
            &format!("umbra_forwarded_total{{destination=\"{dest}\"}}"),
        )
    };
    assert_eq!(
        forwarded("all"),
        2.0,
        "both objects take the route without conditions"
    );
    assert_eq!(
        forwarded("by_ae"),
        1.0,
        "only the object that came over DIMSE from CT_SCANNER takes the calling-AE route"
    );
    assert_eq!(dcm_files(&by_ae).len(), 1);
}
