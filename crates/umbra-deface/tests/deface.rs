//! Defacing on phantoms: removal, brain safety, non-heads, orientation, dense objects.
//!
//! Grids are 80³ over 256 mm (3.2 mm voxels) so the tests stay quick in debug builds; the
//! evaluation example runs 128³.

use umbra_deface::phantom::{self, Body, Subject};
use umbra_deface::{DefaceOptions, Error, Modality, assess, deface};

const DIMS: [usize; 3] = [80, 80, 80];

#[test]
fn removes_the_face_and_never_the_brain() {
    for modality in [Modality::Ct, Modality::Mr] {
        for index in 0..3 {
            let subject = Subject::new(7, index);
            for scan in 0..2 {
                let (vol, gt) = phantom::render(&subject, modality, scan, DIMS);
                let d = deface(&vol, modality, &DefaceOptions::default())
                    .unwrap_or_else(|e| panic!("{modality:?} {index}/{scan}: {e}"));
                let removed = d.changed.count_and(&gt.face) as f64 / gt.face.count() as f64;
                assert!(removed >= 0.99, "{modality:?} {index}/{scan}: {removed}");
                // The chin was the weak point (its back lies furthest below the skin); the
                // removal deepens toward it.
                for (name, m, min) in [
                    ("nose", &gt.nose, 0.99),
                    ("lips", &gt.lips, 0.99),
                    ("chin", &gt.chin, 0.97),
                    ("eyes", &gt.eyes, 0.97),
                ] {
                    let r = d.changed.count_and(m) as f64 / m.count().max(1) as f64;
                    assert!(r >= min, "{modality:?} {index}/{scan} {name}: {r}");
                }
                assert_eq!(
                    d.changed.count_and(&gt.brain),
                    0,
                    "{modality:?} {index}/{scan}: brain touched"
                );
                let head = gt.head.count() as f64;
                assert!(
                    (d.changed.count_and(&gt.head) as f64) < 0.15 * head,
                    "removal too large"
                );
                let expected_fill = if modality == Modality::Ct {
                    -1000.0
                } else {
                    vol.voxels().iter().copied().fold(f32::INFINITY, f32::min)
                };
                assert_eq!(d.fill, expected_fill);
                let out = d.apply(&vol);
                for (idx, (&a, &b)) in vol.voxels().iter().zip(out.voxels()).enumerate() {
                    match (d.changed.get(idx), d.plate.get(idx)) {
                        (false, false) => assert_eq!(a, b),
                        (true, false) => assert_eq!(b, d.fill),
                        (true, true) => assert_eq!(b, d.plate_fill),
                        (false, true) => panic!("plate voxel {idx} outside the changed mask"),
                    }
                }
                // The plate is tissue to the body mask: above the air threshold.
                let air = umbra_deface::head::air_threshold(&vol, modality);
                assert!(d.plate.none() || d.plate_fill > air);
            }
        }
    }
}

#[test]
fn a_supplied_brain_mask_is_respected() {
    let subject = Subject::new(3, 1);
    let (vol, gt) = phantom::render(&subject, Modality::Ct, 0, DIMS);
    let opts = DefaceOptions {
        brain_mask: Some(gt.brain.clone()),
        ..DefaceOptions::default()
    };
    let d = deface(&vol, Modality::Ct, &opts).expect("defaces");
    assert_eq!(d.changed.count_and(&gt.brain), 0);
    assert!(d.changed.count_and(&gt.face) as f64 >= 0.98 * gt.face.count() as f64);
    let opts = DefaceOptions {
        brain_mask: Some(umbra_deface::Mask::new([4, 4, 4])),
        ..DefaceOptions::default()
    };
    assert!(matches!(
        deface(&vol, Modality::Ct, &opts),
        Err(Error::MaskDims { .. })
    ));
}

#[test]
fn chest_and_knee_have_no_face() {
    for modality in [Modality::Ct, Modality::Mr] {
        for body in [Body::Chest, Body::Knee] {
            for seed in 0..2 {
                let vol = phantom::render_body(body, seed, modality, DIMS);
                let a = assess(&vol, modality);
                assert!(!a.is_head_with_face, "{body:?} {modality:?}: {}", a.reason);
                match deface(&vol, modality, &DefaceOptions::default()) {
                    Err(Error::NotAHead(a)) => assert!(!a.reason.is_empty()),
                    other => panic!(
                        "{body:?} {modality:?}: {:?}",
                        other.map(|d| d.changed.count())
                    ),
                }
            }
        }
    }
}

#[test]
fn heads_are_recognised_with_the_reason() {
    for modality in [Modality::Ct, Modality::Mr] {
        for index in 0..4 {
            let (vol, _) = phantom::render(&Subject::new(11, index), modality, 1, DIMS);
            let a = assess(&vol, modality);
            assert!(a.is_head_with_face, "{modality:?} {index}: {}", a.reason);
            assert!(a.geometry_agrees);
            // The phantom's j axis points posterior, so anterior is j decreasing.
            assert_eq!((a.anterior.axis, a.anterior.sign), (1, -1));
            assert_eq!((a.superior.axis, a.superior.sign), (2, 1));
        }
    }
}

#[test]
fn anterior_follows_reoriented_storage() {
    let subject = Subject::new(5, 2);
    for modality in [Modality::Ct, Modality::Mr] {
        let (vol, gt) = phantom::render(&subject, modality, 0, DIMS);
        for (perm, flip) in [
            ([0, 1, 2], [false, true, false]),
            ([0, 1, 2], [true, true, true]),
            ([1, 0, 2], [false, false, false]),
            ([2, 0, 1], [true, false, true]),
        ] {
            let v = vol.reorient(perm, flip).expect("reorients");
            let a = assess(&v, modality);
            assert!(a.is_head_with_face, "{perm:?} {flip:?}: {}", a.reason);
            assert!(a.geometry_agrees);
            assert_eq!(a.anterior, v.anterior(), "{perm:?} {flip:?}");
            // Physically the same direction: LPS -y.
            assert!(v.directions()[a.anterior.axis][1] * a.anterior.sign as f64 <= -0.99);
            let d = deface(&v, modality, &DefaceOptions::default()).expect("defaces");
            let brain = gt.brain.reorient(perm, flip).expect("reorients");
            let face = gt.face.reorient(perm, flip).expect("reorients");
            assert_eq!(d.changed.count_and(&brain), 0);
            assert!(d.changed.count_and(&face) as f64 >= 0.98 * face.count() as f64);
        }
    }
}

#[test]
fn anatomy_overrules_a_wrong_anterior_in_the_geometry() {
    let subject = Subject::new(5, 3);
    let (vol, gt) = phantom::render(&subject, Modality::Ct, 0, DIMS);
    // The voxels reversed along j, the geometry left as it was: the face is now where the
    // geometry says posterior.
    let flipped = vol
        .reorient([0, 1, 2], [false, true, false])
        .expect("reorients");
    let lying = vol
        .with_voxels(flipped.voxels().to_vec())
        .expect("same grid");
    let a = assess(&lying, Modality::Ct);
    assert!(a.is_head_with_face, "{}", a.reason);
    assert!(!a.geometry_agrees);
    assert_eq!((a.anterior.axis, a.anterior.sign), (1, 1));
    assert!(a.reason.contains("anatomy wins"));
    let d = deface(&lying, Modality::Ct, &DefaceOptions::default()).expect("defaces");
    // The plate leans the anatomy's way: it stays a plate, not a block filling the field of
    // view in front of the face, and is about as large as on the correctly labelled volume.
    let straight = deface(&vol, Modality::Ct, &DefaceOptions::default()).expect("defaces");
    let (a, b) = (d.plate.count() as f64, straight.plate.count() as f64);
    assert!(a > 0.0 && (a - b).abs() < 0.1 * b, "plate {a} vs {b}");
    let brain = gt
        .brain
        .reorient([0, 1, 2], [false, true, false])
        .expect("reorients");
    let face = gt
        .face
        .reorient([0, 1, 2], [false, true, false])
        .expect("reorients");
    assert_eq!(d.changed.count_and(&brain), 0);
    assert!(d.changed.count_and(&face) as f64 >= 0.98 * face.count() as f64);
}

#[test]
fn dense_objects_on_the_skin_are_reported() {
    let (index, subject) = (0..200u32)
        .map(|i| (i, Subject::new(1, i)))
        .find(|(_, s)| s.stud.is_some())
        .expect("some subject wears a stud");
    let (vol, _) = phantom::render(&subject, Modality::Ct, 0, [128, 128, 128]);
    let d = deface(&vol, Modality::Ct, &DefaceOptions::default()).expect("defaces");
    assert_eq!(d.dense_surface.len(), 1, "subject {index}");
    let stud = subject.stud.expect("stud");
    let p = vol.world_of(d.dense_surface[0]);
    let dist = (0..3).map(|a| (p[a] - stud[a]).powi(2)).sum::<f64>().sqrt();
    assert!(dist < 4.0, "reported {p:?}, stud at {stud:?}");
    // A subject without a stud: nothing reported.
    let plain = (0..200u32)
        .map(|i| Subject::new(1, i))
        .find(|s| s.stud.is_none())
        .expect("plain");
    let (vol, _) = phantom::render(&plain, Modality::Ct, 0, DIMS);
    let d = deface(&vol, Modality::Ct, &DefaceOptions::default()).expect("defaces");
    assert!(d.dense_surface.is_empty());
}

#[test]
fn phantoms_are_deterministic() {
    let s = Subject::new(9, 4);
    let (a, _) = phantom::render(&s, Modality::Mr, 1, [40, 40, 40]);
    let (b, _) = phantom::render(&Subject::new(9, 4), Modality::Mr, 1, [40, 40, 40]);
    assert_eq!(a, b);
    let (c, _) = phantom::render(&s, Modality::Mr, 0, [40, 40, 40]);
    assert_ne!(a, c);
}

#[test]
fn the_same_volume_gets_the_same_plate() {
    let (vol, _) = phantom::render(&Subject::new(4, 0), Modality::Mr, 0, DIMS);
    let a = deface(&vol, Modality::Mr, &DefaceOptions::default()).expect("defaces");
    let b = deface(&vol, Modality::Mr, &DefaceOptions::default()).expect("defaces");
    assert_eq!(a.changed, b.changed);
    assert_eq!(a.plate, b.plate);
    assert!(!a.plate.none());
}
