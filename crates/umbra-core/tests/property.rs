//! Random objects with identifiers planted at random depths (standard attributes, private blocks,
//! UN bytes, nested sequences): none survives, references stay consistent, output is stable.

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use proptest::prelude::*;
use std::collections::BTreeSet;
use umbra_core::{Config, Deidentifier, Key, OptionSet, ProfileOption, Pseudonymizer};

/// Identifying attributes a planted value may land in (all removed or replaced by the profile).
const TEXT_SLOTS: &[(Tag, VR)] = &[
    (tags::INSTITUTION_NAME, VR::LO),
    (tags::PATIENT_ADDRESS, VR::LO),
    (tags::STATION_NAME, VR::SH),
    (tags::OPERATORS_NAME, VR::PN),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::PERSON_NAME, VR::PN),
    (tags::ACCESSION_NUMBER, VR::SH),
    (tags::STUDY_ID, VR::SH),
    (tags::PATIENT_COMMENTS, VR::LT),
    (tags::IMAGE_COMMENTS, VR::LT),
    (tags::STUDY_DESCRIPTION, VR::LO),
];

/// Free-text slots (Patient Comments, Image Comments, Study Description) that clean-descriptors
/// keeps after scrubbing: what they must lose is the identity the object states elsewhere.
const DESCRIPTOR_SLOTS: std::ops::Range<usize> = 8..11;

/// Sequences that are kept and whose items are processed (so planted values are deep inside).
const SEQ_SLOTS: &[Tag] = &[
    tags::REFERENCED_IMAGE_SEQUENCE,
    tags::CONTENT_SEQUENCE,
    tags::SOURCE_IMAGE_SEQUENCE,
];

#[derive(Debug, Clone)]
enum Slot {
    Text(usize, String),
    Private(u16, String, bool),
    Ref(usize),
    Seq(usize, Vec<Vec<Slot>>),
}

fn token() -> impl Strategy<Value = String> {
    "[A-Z]{8}".prop_map(|s| format!("QZX{s}"))
}

fn slots() -> impl Strategy<Value = Vec<Slot>> {
    let leaf = prop_oneof![
        (0..TEXT_SLOTS.len(), token()).prop_map(|(i, t)| Slot::Text(i, t)),
        (0x0009u16..0x0FFF, token(), any::<bool>()).prop_map(|(g, t, un)| Slot::Private(
            g | 1,
            t,
            un
        )),
        (0..4usize).prop_map(Slot::Ref),
    ];
    let slot = leaf.prop_recursive(4, 64, 4, |inner| {
        prop_oneof![
            inner.clone(),
            (
                0..SEQ_SLOTS.len(),
                prop::collection::vec(prop::collection::vec(inner, 1..4), 1..3)
            )
                .prop_map(|(i, items)| Slot::Seq(i, items)),
        ]
    });
    prop::collection::vec(slot, 1..10)
}

const POOL: [&str; 4] = [
    "1.2.826.0.1.3680043.9.7.100",
    "1.2.826.0.1.3680043.9.7.101",
    "1.2.826.0.1.3680043.9.7.102",
    "1.2.826.0.1.3680043.9.7.1", // the object's own SOP Instance UID
];

fn build(
    slots: &[Slot],
    obj: &mut InMemDicomObject,
    planted: &mut Vec<String>,
    refs: &mut BTreeSet<String>,
) {
    for s in slots {
        match s {
            Slot::Text(i, t) => {
                let (tag, vr) = TEXT_SLOTS[*i];
                if DESCRIPTOR_SLOTS.contains(i) {
                    let text =
                        format!("{t} seen: qzxpatient Name, MRN QZXMRN0001, born 08/29/1951");
                    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(text)));
                    planted.push("08/29/1951".into());
                } else {
                    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(t.as_str())));
                    planted.push(t.clone());
                }
            }
            Slot::Private(g, t, un) => {
                obj.put(DataElement::new(
                    Tag(*g, 0x0010),
                    VR::LO,
                    PrimitiveValue::from("QZXVENDOR"),
                ));
                let v = if *un {
                    DataElement::new(
                        Tag(*g, 0x1001),
                        VR::UN,
                        PrimitiveValue::U8(t.bytes().collect()),
                    )
                } else {
                    DataElement::new(Tag(*g, 0x1001), VR::LO, PrimitiveValue::from(t.as_str()))
                };
                obj.put(v);
                planted.push(t.clone());
                planted.push("QZXVENDOR".into());
            }
            Slot::Ref(i) => {
                let item = InMemDicomObject::from_element_iter([DataElement::new(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    PrimitiveValue::from(POOL[*i]),
                )]);
                obj.put(DataElement::new(
                    tags::REFERENCED_IMAGE_SEQUENCE,
                    VR::SQ,
                    DataSetSequence::new(vec![item], Length::UNDEFINED),
                ));
                refs.insert(POOL[*i].to_string());
            }
            Slot::Seq(i, items) => {
                let built: Vec<InMemDicomObject> = items
                    .iter()
                    .map(|it| {
                        let mut o = InMemDicomObject::new_empty();
                        build(it, &mut o, planted, refs);
                        o
                    })
                    .collect();
                obj.put(DataElement::new(
                    SEQ_SLOTS[*i],
                    VR::SQ,
                    DataSetSequence::new(built, Length::UNDEFINED),
                ));
            }
        }
    }
}

fn collect_refs(obj: &InMemDicomObject, out: &mut BTreeSet<String>) {
    for e in obj.iter() {
        if let Value::Sequence(s) = e.value() {
            for i in s.items() {
                collect_refs(i, out);
            }
        } else if e.tag() == tags::REFERENCED_SOP_INSTANCE_UID {
            out.insert(
                e.value()
                    .to_str()
                    .unwrap()
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn planted_identity_never_survives_and_references_hold(s in slots(), opt_bits in 0u16..1024) {
        let opts: OptionSet = ProfileOption::ALL
            .iter()
            .enumerate()
            .filter(|(i, o)| opt_bits & (1 << i) != 0
                && !matches!(o, ProfileOption::RetainUids | ProfileOption::RetainLongitudinalFullDates
                    | ProfileOption::RetainInstitutionIdentity | ProfileOption::RetainDeviceIdentity))
            .map(|(_, o)| *o)
            .collect();
        let mut obj = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.88.33")),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(POOL[3])),
            DataElement::new(tags::PATIENT_NAME, VR::PN, PrimitiveValue::from("QZXPATIENT^NAME")),
            DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from("QZXMRN0001")),
            DataElement::new(tags::PATIENT_BIRTH_DATE, VR::DA, PrimitiveValue::from("19510829")),
        ]);
        let mut planted = vec!["QZXPATIENT".to_string(), "QZXMRN0001".to_string()];
        let mut refs = BTreeSet::new();
        build(&s, &mut obj, &mut planted, &mut refs);

        let pz = Pseudonymizer::new(&Key::from_bytes([3; 32]));
        let engine = Deidentifier::new(Config::new(opts), pz.clone());
        let a = engine.deidentify(obj.clone(), "1.2.840.10008.1.2.1").unwrap();
        let b = engine.deidentify(obj, "1.2.840.10008.1.2.1").unwrap();
        let (mut ba, mut bb) = (Vec::new(), Vec::new());
        a.object.write_all(&mut ba).unwrap();
        b.object.write_all(&mut bb).unwrap();
        prop_assert_eq!(&ba, &bb, "two runs differ");

        for t in &planted {
            prop_assert!(!contains(&ba, t.as_bytes()), "{} survives", t);
            prop_assert!(!contains(&ba.to_ascii_uppercase(), t.to_ascii_uppercase().as_bytes()), "{} survives", t);
        }
        for u in POOL {
            prop_assert!(!contains(&ba, u.as_bytes()), "original UID {} survives", u);
        }
        // Every reference maps through the same keyed function as the SOP Instance UID itself,
        // so a reference to this object points at its new UID.
        let mut got = BTreeSet::new();
        collect_refs(&a.object, &mut got);
        let want: BTreeSet<String> = refs.iter().map(|u| pz.uid(u)).collect();
        prop_assert!(got.is_subset(&want), "refs {:?} not within {:?}", got, want);
        prop_assert_eq!(a.sop_instance_uid, pz.uid(POOL[3]));
    }
}
