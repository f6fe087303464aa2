//! The linkage attack on phantoms: face depth maps link scans before defacing; after defacing,
//! with the generic plate over the cut, they link no better than chance (see the evaluation in
//! BENCHMARKS.md and `examples/deface_eval.rs`).
//!
//! The quick tests run 16 subjects at 96³ (2.7 mm voxels) on every `cargo test`; the heavy one
//! (20 subjects × 2 scans at 128³) runs with `cargo test --release -p umbra-deface --test
//! linkage -- --ignored`.

use umbra_deface::eval::{Report, evaluate};
use umbra_deface::{DefaceOptions, Modality};

fn check(r: &Report, n: usize) {
    println!("{}", r.markdown());
    let chance = 1.0 / n as f64;
    assert!(r.face.rank1_before >= 0.9, "{:?}", r.face);
    assert!(r.face.auc_before >= 0.85, "{:?}", r.face);
    // Rank-1 within 5 points of chance and genuine pairs barely more similar than impostor
    // pairs (measured at 16 subjects, 96³: rank-1 0, AUC 0.55; before the plate, at 40
    // subjects and 128³: rank-1 0.28 CT / 0.63 MR, AUC 0.74 / 0.95).
    assert!(r.face.rank1_after <= chance + 0.05, "{:?}", r.face);
    assert!(r.face.auc_after <= 0.65, "{:?}", r.face);
    // The same for an attacker who removes each map's best-fitting plane first (with a fixed
    // plate, at 20 subjects and 96³: rank-1 0.15, AUC 0.6). Measured here: rank-1 0.125 for
    // CT and MR (two hits of 16), AUC 0.50 / 0.57; at 16 subjects one hit more or less is
    // noise, so the bound allows two.
    let d = &r.face_detrended;
    assert!(d.rank1_before >= 0.9, "{d:?}");
    assert!(d.rank1_after <= chance + 0.1, "{d:?}");
    assert!(d.auc_after <= 0.6, "{d:?}");
    assert_eq!(r.brain_changed, 0);
    assert_eq!(r.declined, 0);
    assert!(r.face_removed >= 0.99, "{}", r.face_removed);
    assert!(r.face_removed_worst >= 0.97, "{}", r.face_removed_worst);
    assert!(r.outside_changed <= 0.01, "{}", r.outside_changed);
}

#[test]
fn face_depth_maps_stop_linking_after_defacing_ct() {
    let n = 16;
    let r = evaluate(3, n, Modality::Ct, [96; 3], &DefaceOptions::default(), 2);
    check(&r, n);
}

#[test]
fn face_depth_maps_stop_linking_after_defacing_mr() {
    let n = 16;
    let r = evaluate(3, n, Modality::Mr, [96; 3], &DefaceOptions::default(), 2);
    check(&r, n);
}

#[test]
#[ignore = "heavy: run in release with --ignored"]
fn face_depth_maps_stop_linking_after_defacing_128() {
    let n = 20;
    for modality in [Modality::Ct, Modality::Mr] {
        let r = evaluate(2, n, modality, [128; 3], &DefaceOptions::default(), 2);
        check(&r, n);
    }
}
