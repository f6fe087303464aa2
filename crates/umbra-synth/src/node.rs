//! A data set under construction that remembers what was planted where.
//!
//! Items are built bottom-up: a [`Node`] records its plants, UID uses and references with paths
//! relative to itself; [`Node::seq`] nests child nodes and prefixes their paths with
//! `(gggg,eeee)[i].`, so every record ends with the full path from the top of the object.

use crate::key::{Location, Plant, UidUse};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::InMemDicomObject;

/// Where an identifier is kept while a patient is being generated: the site's (global index)
/// or the patient's own (index into the patient's list, renumbered when patients are merged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdRef {
    /// A site identifier, by its index in the key.
    Site(usize),
    /// One of the patient's identifiers.
    Local(usize),
}

/// A plant before identifiers are numbered for the whole corpus.
#[derive(Debug, Clone)]
pub struct PendingPlant {
    /// Which identifier.
    pub id: IdRef,
    /// Where.
    pub location: Location,
    /// The path.
    pub path: String,
    /// Sequence depth.
    pub depth: u32,
    /// Digest of binary identity.
    pub sha256: Option<String>,
}

impl PendingPlant {
    /// The key's form, with identifiers numbered by `number`.
    pub fn finish(self, number: impl Fn(IdRef) -> usize) -> Plant {
        Plant {
            identifier: number(self.id),
            location: self.location,
            path: self.path,
            depth: self.depth,
            sha256: self.sha256,
        }
    }
}

/// A data set (top level or sequence item) and what was planted in it.
pub struct Node {
    /// The data set.
    pub obj: InMemDicomObject,
    /// Plants, paths relative to this node.
    pub plants: Vec<PendingPlant>,
    /// UID uses, paths relative to this node.
    pub uids: Vec<UidUse>,
    /// References to other objects of the same patient (by their local number), paths
    /// relative to this node.
    pub refs: Vec<(String, usize)>,
    /// How text values are to be written: for ISO 2022 Japanese, dicom-rs cannot encode the
    /// escapes, so the encoded bytes go in as Latin-1 characters (written out unchanged).
    pub iso2022: bool,
}

/// `(gggg,eeee)`.
pub fn tag_path(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}

/// Encodes `s` as ISO 2022 Japanese (JIS X 0208 through `ESC $ B`, back to ASCII with
/// `ESC ( B` before every delimiter) and returns the bytes as Latin-1 characters.
pub fn iso2022_as_latin1(s: &str) -> String {
    // encoding_rs's ISO-2022-JP encoder switches to ASCII for every ASCII character, which puts
    // the `ESC ( B` before `^` and `=` as PS3.5 6.1.2.5.3 asks.
    let (bytes, _, _) = encoding_rs::ISO_2022_JP.encode(s);
    bytes.iter().map(|&b| b as char).collect()
}

impl Node {
    /// An empty node; `iso2022` when the object's character set is ISO 2022 Japanese.
    pub fn new(iso2022: bool) -> Node {
        Node {
            obj: InMemDicomObject::new_empty(),
            plants: Vec::new(),
            uids: Vec::new(),
            refs: Vec::new(),
            iso2022,
        }
    }

    /// An empty node of the same character set.
    pub fn child(&self) -> Node {
        Node::new(self.iso2022)
    }

    fn text(&self, vr: VR, value: &str) -> String {
        let textual = matches!(
            vr,
            VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC
        );
        if self.iso2022 && textual && !value.is_ascii() {
            iso2022_as_latin1(value)
        } else {
            value.to_owned()
        }
    }

    /// Puts a plain value (no identity).
    pub fn put(&mut self, tag: Tag, vr: VR, value: &str) {
        let v = self.text(vr, value);
        self.obj
            .put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    }

    /// Puts a primitive value as it is.
    pub fn put_value(&mut self, tag: Tag, vr: VR, value: PrimitiveValue) {
        self.obj.put(DataElement::new(tag, vr, value));
    }

    /// Puts `value` and records that identifier `id` is planted there.
    pub fn plant(&mut self, tag: Tag, vr: VR, value: &str, id: IdRef, location: Location) {
        self.put(tag, vr, value);
        self.record(tag_path(tag), id, location);
    }

    /// Puts free text that embeds the identifiers `ids`.
    pub fn plant_text(&mut self, tag: Tag, vr: VR, text: &str, ids: &[IdRef]) {
        self.put(tag, vr, text);
        for &id in ids {
            self.record(tag_path(tag), id, Location::FreeText);
        }
    }

    /// Records a plant at `path` (relative to this node) without writing anything.
    pub fn record(&mut self, path: String, id: IdRef, location: Location) {
        self.plants.push(PendingPlant {
            id,
            location,
            path,
            depth: 0,
            sha256: None,
        });
    }

    /// Puts a UID: an identifier of the organisation (planted under [`Location::Uid`]) whose
    /// every use a checker follows.
    pub fn uid(&mut self, tag: Tag, value: &str, id: IdRef) {
        self.put(tag, VR::UI, value);
        self.record(tag_path(tag), id, Location::Uid);
        self.uids.push(UidUse {
            path: tag_path(tag),
            value: value.to_owned(),
        });
    }

    /// Puts a Referenced SOP Instance UID pointing at the patient's object number `target`.
    pub fn reference(&mut self, tag: Tag, value: &str, id: IdRef, target: usize) {
        self.uid(tag, value, id);
        self.refs.push((tag_path(tag), target));
    }

    /// Nests `items` as the sequence `tag`, taking over their records.
    pub fn seq(&mut self, tag: Tag, items: Vec<Node>) {
        let mut objs = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let prefix = format!("{}[{i}].", tag_path(tag));
            for mut p in item.plants {
                p.path = format!("{prefix}{}", p.path);
                p.depth += 1;
                if p.location == Location::Standard {
                    p.location = Location::Sequence;
                }
                self.plants.push(p);
            }
            for mut u in item.uids {
                u.path = format!("{prefix}{}", u.path);
                self.uids.push(u);
            }
            for (path, target) in item.refs {
                self.refs.push((format!("{prefix}{path}"), target));
            }
            objs.push(item.obj);
        }
        self.obj.put(DataElement::new(
            tag,
            VR::SQ,
            DataSetSequence::new(objs, Length::UNDEFINED),
        ));
    }
}
