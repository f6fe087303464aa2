//! Recall as a property: whatever identifier an original carries, wherever a copy of it is
//! planted in an object (any depth, private blocks, UN bytes, free text between other words,
//! any case), a scan against the original finds it there.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::InMemDicomObject;
use proptest::prelude::*;
use umbra_scan::{AgainstBuilder, Allow, Policy, Rule, Scanner, against, shape};

/// An identifier of one kind, as the original holds it and as it is planted.
#[derive(Debug, Clone)]
enum Ident {
    /// A surname (the original's Patient's Name is `SURNAME^GIVEN`).
    Name(String),
    /// A Patient ID.
    Id(String),
    /// A birth date, YYYYMMDD; planted written in one of the common forms.
    Date(u32, u32, u32, u8),
    /// A Study Instance UID.
    Uid(String),
}

fn ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        // (words that mean "nothing here" are not identifiers and are not searched for)
        "[A-Z][a-z]{3,10}"
            .prop_filter("a placeholder or generic word", |n| {
                !shape::is_placeholder(n) && !against::is_name_stop_word(n)
            })
            .prop_map(Ident::Name),
        "[A-Z]{0,3}[0-9]{5,9}"
            .prop_filter("masking characters", |id| !shape::is_placeholder(id))
            .prop_map(Ident::Id),
        (1920u32..2020, 1u32..13, 1u32..29, 0u8..4)
            .prop_map(|(y, m, d, f)| Ident::Date(y, m, d, f)),
        proptest::collection::vec(1u32..99_999, 4..10)
            .prop_map(|arcs| format!(
                "1.2.826.0.1.{}",
                arcs.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            ))
            .prop_map(Ident::Uid),
    ]
}

impl Ident {
    fn original(&self) -> InMemDicomObject {
        let mut o = InMemDicomObject::new_empty();
        let put = |o: &mut InMemDicomObject, t: Tag, vr: VR, v: &str| {
            o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
        };
        match self {
            Ident::Name(n) => put(&mut o, Tag(0x0010, 0x0010), VR::PN, &format!("{n}^Zed")),
            Ident::Id(id) => put(&mut o, Tag(0x0010, 0x0020), VR::LO, id),
            Ident::Date(y, m, d, _) => put(
                &mut o,
                Tag(0x0010, 0x0030),
                VR::DA,
                &format!("{y:04}{m:02}{d:02}"),
            ),
            Ident::Uid(u) => put(&mut o, Tag(0x0020, 0x000D), VR::UI, u),
        }
        o
    }

    /// How it is written where it is planted; `lower` changes the case of names and IDs.
    fn written(&self, lower: bool) -> String {
        let case = |s: &str| {
            if lower {
                s.to_lowercase()
            } else {
                s.to_owned()
            }
        };
        match self {
            Ident::Name(n) => case(n),
            Ident::Id(id) => case(id),
            Ident::Date(y, m, d, f) => match f {
                0 => format!("{y:04}{m:02}{d:02}"),
                1 => format!("{y:04}-{m:02}-{d:02}"),
                2 => format!("{d:02}/{m:02}/{y:04}"),
                _ => format!("{m:02}/{d:02}/{y:04}"),
            },
            Ident::Uid(u) => u.clone(),
        }
    }
}

/// Where a copy is planted.
#[derive(Debug, Clone)]
enum Place {
    /// An LT value, between other words.
    FreeText {
        depth: usize,
        before: String,
        after: String,
    },
    /// A private LO value in a block with a creator.
    Private { depth: usize },
    /// Raw bytes of a private UN value, between other bytes.
    UnBytes { depth: usize, before: Vec<u8> },
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        (0usize..5, "[a-z ]{0,12}", "[a-z ]{0,12}").prop_map(|(depth, b, a)| Place::FreeText {
            depth,
            before: if b.is_empty() { b } else { format!("{b} ") },
            after: if a.is_empty() { a } else { format!(" {a}") },
        }),
        (0usize..5).prop_map(|depth| Place::Private { depth }),
        (0usize..5, proptest::collection::vec(0u8..32, 0..16))
            .prop_map(|(depth, before)| Place::UnBytes { depth, before }),
    ]
}

/// Plants `text` at `place`; returns the object and the expected finding path.
fn plant(text: &str, place: &Place) -> (InMemDicomObject, String) {
    let (depth, leaf, leaf_path) = match place {
        Place::FreeText {
            depth,
            before,
            after,
        } => {
            let mut o = InMemDicomObject::new_empty();
            o.put(DataElement::new(
                Tag(0x0020, 0x4000),
                VR::LT,
                PrimitiveValue::from(format!("{before}{text}{after}")),
            ));
            (*depth, o, "(0020,4000)")
        }
        Place::Private { depth } => {
            let mut o = InMemDicomObject::new_empty();
            o.put(DataElement::new(
                Tag(0x0029, 0x0010),
                VR::LO,
                PrimitiveValue::from("ACME 1"),
            ));
            o.put(DataElement::new(
                Tag(0x0029, 0x1010),
                VR::LO,
                PrimitiveValue::from(text),
            ));
            (*depth, o, "(0029,1010)")
        }
        Place::UnBytes { depth, before } => {
            let mut bytes = before.clone();
            bytes.push(b' ');
            bytes.extend(text.as_bytes());
            bytes.push(0);
            if bytes.len() % 2 == 1 {
                bytes.push(0);
            }
            let mut o = InMemDicomObject::new_empty();
            o.put(DataElement::new(
                Tag(0x0031, 0x0010),
                VR::LO,
                PrimitiveValue::from("ACME 2"),
            ));
            o.put(DataElement::new(
                Tag(0x0031, 0x1001),
                VR::UN,
                PrimitiveValue::U8(bytes.into()),
            ));
            (*depth, o, "(0031,1001)")
        }
    };
    // wrap in `depth` levels of a kept sequence
    let mut obj = leaf;
    let mut path = leaf_path.to_owned();
    for _ in 0..depth {
        let mut parent = InMemDicomObject::new_empty();
        parent.put(DataElement::new(
            Tag(0x0008, 0x2218),
            VR::SQ,
            DataSetSequence::from(vec![obj]),
        ));
        obj = parent;
        path = format!("(0008,2218)[0].{path}");
    }
    (obj, path)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_planted_identifier_of_the_original_is_found_where_it_is(
        id in ident(),
        place in place(),
        lower in any::<bool>(),
    ) {
        let mut b = AgainstBuilder::new(&Allow::default());
        b.harvest(&id.original());
        let against = b.build();
        let (obj, path) = plant(&id.written(lower), &place);
        let findings = Scanner::new(Policy::default(), None).scan_against(&against, &obj, None, None);
        let found = findings.iter().any(|f| {
            f.path == path && matches!(f.rule, Rule::AgainstText | Rule::AgainstRaw)
        });
        prop_assert!(found, "{:?} at {:?}: {:#?}", id, place, findings);
    }

    #[test]
    fn an_identifier_inside_a_longer_word_or_number_is_not_a_match(
        id in ident(),
        extra in "[A-Za-z0-9]{1,4}",
    ) {
        // HOMERIC is not HOMER, 123456789 is not 12345678, 1.2.3.45 is not 1.2.3.4
        let mut b = AgainstBuilder::new(&Allow::default());
        b.harvest(&id.original());
        let against = b.build();
        let glued = match &id {
            Ident::Uid(u) => format!("{u}{}", extra.chars().filter(char::is_ascii_digit).collect::<String>().chars().next().map_or("1".to_owned(), |c| c.to_string())),
            other => format!("{}{extra}", other.written(false)),
        };
        let (obj, path) = plant(&glued, &Place::FreeText { depth: 0, before: String::new(), after: String::new() });
        let findings = Scanner::new(Policy::default(), None).scan_against(&against, &obj, None, None);
        prop_assert!(
            !findings.iter().any(|f| f.path == path && f.rule == Rule::AgainstText),
            "{:?} glued as {:?}: {:#?}", id, glued, findings
        );
    }
}
