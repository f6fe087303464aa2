//! The linkage attack on phantoms: face depth maps link scans before defacing; after defacing
//! they link far less, though not yet at chance (see the evaluation in BENCHMARKS.md).
//!
//! Heavy (20 subjects × 2 scans at 128³): `cargo test --release -p umbra-deface --test linkage
//! -- --ignored`.

use umbra_deface::eval::evaluate;
use umbra_deface::{DefaceOptions, Modality};

#[test]
#[ignore = "heavy: run in release with --ignored"]
fn face_depth_maps_link_before_and_much_less_after_ct() {
    let n = 20;
    let r = evaluate(
        2,
        n,
        Modality::Ct,
        [128, 128, 128],
        &DefaceOptions::default(),
        2,
    );
    println!("{}", r.markdown());
    let chance = 1.0 / n as f64;
    assert!(r.face.rank1_before >= 0.9, "{:?}", r.face);
    // Target: chance + 0.05. Measured at 40 subjects: 0.275 (chance 0.025); this bound records
    // the present state so a regression shows.
    assert!(r.face.rank1_after <= chance + 0.35, "{:?}", r.face);
    assert!(r.face.auc_after < r.face.auc_before - 0.15, "{:?}", r.face);
    assert_eq!(r.brain_changed, 0);
    assert_eq!(r.declined, 0);
    assert!(r.face_removed >= 0.98);
}
