//! read → de-identify → write → read again, on arbitrary bytes.
//!
//! Input layout: byte 0 selects the profile options, bytes 1.. are the file.
//! Bits 0–7 of byte 0 select `ProfileOption::ALL[0..8]`; `ALL[8]` (Clean Structured Content)
//! is on when bit 0 xor bit 2 is set and `ALL[9]` (Clean Graphics) when bit 1 xor bit 3 is,
//! so every option is reachable from one byte. A byte selecting both Retain Longitudinal
//! options (bits 5 and 6) is an invalid configuration and is skipped.
//!
//! Allocation cap: dicom-rs allocates (and zero-fills) a value's *declared* length before
//! reading it, so a few bytes declaring a 4 GiB value cost 4 GiB (see README.md, finding 1).
//! To keep fuzzing past that known issue, allocations above `UMBRA_FUZZ_ALLOC_CAP_MB`
//! (default 32 MiB; inputs are at most 200 KB) fail: fallible ones (`try_reserve`) turn into
//! a parse error, infallible ones abort and are reported as crashes. `UMBRA_FUZZ_ALLOC_CAP_MB=0`
//! removes the cap (use with libFuzzer's `-malloc_limit_mb=` to reproduce finding 1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use umbra_core::{Config, Deidentifier, Key, OptionSet, ProfileOption, Pseudonymizer};

static CAP: AtomicUsize = AtomicUsize::new(32 << 20);

struct Capped;

// SAFETY: forwards to the system allocator; only refuses (returns null for) large requests.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let cap = CAP.load(Ordering::Relaxed);
        if cap != 0 && layout.size() > cap {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let cap = CAP.load(Ordering::Relaxed);
        if cap != 0 && layout.size() > cap {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let cap = CAP.load(Ordering::Relaxed);
        if cap != 0 && new_size > cap {
            return std::ptr::null_mut();
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
    let Ok(input) = umbra_files::input_from_bytes(file.to_vec()) else {
        return;
    };
    let engine = Deidentifier::new(
        Config::new(opts),
        Pseudonymizer::new(&Key::from_bytes([7u8; 32])),
    );
    let ts = input.transfer_syntax.clone();
    let Ok(mut d) = engine.deidentify(input.object, &ts) else {
        return;
    };
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
