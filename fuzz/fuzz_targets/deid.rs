//! read → scan → de-identify → gate → write → read again, on arbitrary bytes.
//!
//! Input layout: byte 0 selects the profile options, bytes 1.. are the file.
//! Bits 0–7 of byte 0 select `ProfileOption::ALL[0..8]`; `ALL[8]` (Clean Structured Content)
//! is on when bit 0 xor bit 2 is set and `ALL[9]` (Clean Graphics) when bit 1 xor bit 3 is,
//! so every option is reachable from one byte. A byte selecting both Retain Longitudinal
//! options (bits 5 and 6) is an invalid configuration and is skipped.
//!
//! Allocation cap: any single allocation above `UMBRA_FUZZ_ALLOC_CAP_MB` (default 256 MiB)
//! aborts, and libFuzzer reports it as a crash. Inputs are at most 200 KB and deflate inflates
//! at most ~1032:1, so nothing legitimate comes near it; dicom-rs allocating a hostile declared
//! length (finding 1) or misreading a UN sequence (finding 5) does. `UMBRA_FUZZ_ALLOC_CAP_MB=0`
//! removes the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use umbra_core::{Config, Deidentifier, Key, OptionSet, ProfileOption, Pseudonymizer};

static CAP: AtomicUsize = AtomicUsize::new(256 << 20);
static CLEANER: std::sync::OnceLock<umbra_files::Cleaner> = std::sync::OnceLock::new();

struct Capped;

// SAFETY: forwards to the system allocator; only refuses (returns null for) large requests.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let cap = CAP.load(Ordering::Relaxed);
        if cap != 0 && layout.size() > cap {
            // A finding, not an error to recover from: no input of at most 200 KB should
            // need this much (deflate inflates at most ~1032:1). Returning null would let
            // fallible allocations fail quietly and hide a blow-up that production would pay.
            std::process::abort();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let cap = CAP.load(Ordering::Relaxed);
        if cap != 0 && layout.size() > cap {
            // A finding, not an error to recover from: no input of at most 200 KB should
            // need this much (deflate inflates at most ~1032:1). Returning null would let
            // fallible allocations fail quietly and hide a blow-up that production would pay.
            std::process::abort();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let cap = CAP.load(Ordering::Relaxed);
        if cap != 0 && new_size > cap {
            // A finding, not an error to recover from: no input of at most 200 KB should
            // need this much (deflate inflates at most ~1032:1). Returning null would let
            // fallible allocations fail quietly and hide a blow-up that production would pay.
            std::process::abort();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Capped = Capped;

fn options(b: u8) -> Option<OptionSet> {
    let bits = b as u16;
    let mask = bits | ((((bits ^ (bits >> 2)) & 0b11) as u16) << 8);
    let set: OptionSet = ProfileOption::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, o)| *o)
        .collect();
    if set.contains(ProfileOption::RetainLongitudinalFullDates)
        && set.contains(ProfileOption::RetainLongitudinalModifiedDates)
    {
        return None;
    }
    Some(set)
}

fn encoded(o: &dicom_object::InMemDicomObject) -> Vec<u8> {
    let mut v = Vec::new();
    let ts = dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
    // An object that cannot be encoded compares as empty on both sides.
    let _ = o.write_dataset_with_ts(&mut v, &ts);
    v
}

fn same_as_header_first(
    file: &[u8],
    in_memory: &Result<umbra_files::Input, umbra_files::ReadError>,
) {
    let path = std::env::temp_dir().join(format!("umbra-fuzz-{}.dcm", std::process::id()));
    std::fs::write(&path, file).expect("temporary file");
    let from_file = umbra_files::read_input_with(&path, 0, 256);
    match (in_memory, &from_file) {
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (Ok(a), Ok(b)) => {
            assert_eq!(a.transfer_syntax, b.transfer_syntax);
            assert!(encoded(&a.object) == encoded(&b.object), "data sets differ");
            let raw = |i: &umbra_files::Input| i.raw_pixel_data.as_ref().map(|r| r.to_vec().unwrap());
            assert_eq!(raw(a), raw(b), "pixel data differs");
        }
        (a, b) => panic!("reads disagree: {:?} vs {:?}", a.as_ref().err(), b.as_ref().err()),
    }
    drop(from_file);
    let _ = std::fs::remove_file(&path);
}

fuzz_target!(init: {
    if let Some(mb) = std::env::var("UMBRA_FUZZ_ALLOC_CAP_MB").ok().and_then(|v| v.parse::<usize>().ok()) {
        CAP.store(mb << 20, Ordering::Relaxed);
    }
}, |data: &[u8]| {
    let Some((&first, file)) = data.split_first() else {
        return;
    };
    let Some(opts) = options(first) else {
        return;
    };
    // The path `umbra deid` takes: header parsed, pixel data carried raw when it ends the file.
    let in_memory = umbra_files::input_from_bytes(file.to_vec());
    // Differential check: reading the same bytes from a file header first (small prefixes that
    // must grow, pixel data left in the file) agrees with reading them whole.
    same_as_header_first(file, &in_memory);
    let Ok(input) = in_memory else {
        return;
    };
    let config = Config::new(opts);
    // The scanner on the hostile input itself, as `umbra scan` runs it (UN values re-read, raw
    // bytes searched), with the identifiers harvested from it: findings, never a panic.
    let gate = umbra_files::Gate::for_config(&config);
    let against = gate.harvest(&input.object);
    let scanner = umbra_scan::Scanner::new(umbra_scan::Policy::default(), None);
    let raw = umbra_scan::RawRegion { bytes: file, offset: 0 };
    let _ = scanner.scan_against(&against, &input.object, None, Some(raw));
    let engine = Deidentifier::new(config, Pseudonymizer::new(&Key::from_bytes([7u8; 32])));
    let ts = input.transfer_syntax.clone();
    let Ok(mut d) = engine.deidentify(input.object, &ts) else {
        return;
    };
    // the release gate on the engine's output
    let _ = gate.check(&against, &d.object);
    // pixel cleaning (decode, rules, detector, fill, encode) on whatever pixel data this is:
    // an error holds the object back; only a panic or a blow-up is a bug
    let cleaner = CLEANER.get_or_init(umbra_files::Cleaner::default);
    let _ = umbra_files::pixels::clean(
        &mut d.object.clone(),
        input.raw_pixel_data.as_ref(),
        &ts,
        cleaner,
        &[],
    );
    let mut out = Vec::new();
    if let Some(raw) = &input.raw_pixel_data {
        d.object.remove_element(dicom_dictionary_std::tags::PIXEL_DATA);
        // An encoding error is reported by `umbra deid` as a failed file; only a panic is a bug.
        if d.object.write_all(&mut out).is_err() {
            return;
        }
        out.extend_from_slice(&raw.to_vec().unwrap());
    } else if d.object.write_all(&mut out).is_err() {
        return;
    }
    if let Err(e) = umbra_files::parse_bytes(&out) {
        panic!(
            "de-identified output (transfer syntax {ts}, {} bytes) does not parse again: {e}",
            out.len()
        );
    }
});
