//! The transform itself: gates, harvest, walk, markers, meta.

use crate::charset::TextView;
use crate::dates::{shift_da, shift_dt};
use crate::face::{FacePolicy, FaceRisk};
use crate::key::{PatientKey, Pseudonymizer};
use crate::scrub::{Harvest, Scrubber};
use crate::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use std::borrow::Cow;
use std::collections::BTreeMap;
use umbra_profile::{
    Action, BASIC_PROFILE_CODE, EDITION, IodKnowledge, IodTypes, Lookup, OptionSet, ProfileOption,
};

/// Modalities on which text is commonly burned into the pixels: an image of one of these
/// without an explicit Burned In Annotation = NO is held back until pixel cleaning exists.
/// Ultrasound, other/secondary capture, angiography and fluoroscopy, endoscopy, photography,
/// microscopy, document scans, dose screens.
pub const DEFAULT_AT_RISK_MODALITIES: &[&str] = &[
    "US", "IVUS", "OT", "SC", "XA", "RF", "ES", "XC", "GM", "SM", "DOC", "OP", "OPT", "DG", "TG",
    "RG", "KO", "PX",
];

/// Settings of one de-identification run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Profile options in force.
    pub options: OptionSet,
    /// Modalities held back when Burned In Annotation is absent (see [`DEFAULT_AT_RISK_MODALITIES`]).
    pub at_risk_modalities: Vec<String>,
    /// Which head images can show a face, and whether they are held back.
    pub face: FacePolicy,
}

impl Config {
    /// The Basic Profile with the given options and the default at-risk modalities.
    pub fn new(options: OptionSet) -> Self {
        Config {
            options,
            at_risk_modalities: DEFAULT_AT_RISK_MODALITIES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            face: FacePolicy::default(),
        }
    }

    /// The De-identification Method (0012,0063) text: profile, edition, options.
    pub fn method_description(&self) -> Vec<String> {
        method_description(self.options)
    }
}

/// The De-identification Method (0012,0063) text for the options applied to one object.
fn method_description(options: OptionSet) -> Vec<String> {
    let mut v = vec![format!(
        "PS3.15 {EDITION} Basic Application Confidentiality Profile"
    )];
    v.extend(options.iter().map(|o| o.cid7050().1.to_string()));
    v.push(format!("umbra {}", env!("CARGO_PKG_VERSION")));
    v
}

/// Why an object is not released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// Not an image or document to release (a DICOMDIR index): skipped, never copied.
    Skipped,
    /// Released only once a later capability (pixel cleaning) runs on it.
    HeldBack,
    /// The object could not be processed in full.
    Failed,
}

/// An object that must not be written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldBack {
    /// Kind of refusal.
    pub kind: HoldKind,
    /// One-line reason, safe to log: it may name a tag or a character set, never an
    /// identifying value of the object.
    pub reason: String,
}

impl HoldBack {
    fn held(reason: impl Into<String>) -> Self {
        HoldBack {
            kind: HoldKind::HeldBack,
            reason: reason.into(),
        }
    }
    fn failed(reason: impl Into<String>) -> Self {
        HoldBack {
            kind: HoldKind::Failed,
            reason: reason.into(),
        }
    }
}

/// What the caller found out about a face in an object's series (the engine sees one object;
/// a face is a property of the series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// Nothing: the engine's face policy decides from the header alone.
    Unchecked,
    /// The face was removed from the series' pixels (under
    /// `clean-recognizable-visual-features`): the object is marked Recognizable Visual
    /// Features NO with code 113102.
    Removed,
}

/// A de-identified object and the pseudonymous identifiers that name it.
#[derive(Debug)]
pub struct Deidentified {
    /// The object with its new meta group, in the input's transfer syntax.
    pub object: FileDicomObject<InMemDicomObject>,
    /// The patient's pseudonym.
    pub patient: String,
    /// New Study Instance UID (empty if the object has none).
    pub study_uid: String,
    /// New Series Instance UID (empty if the object has none).
    pub series_uid: String,
    /// New SOP Instance UID.
    pub sop_instance_uid: String,
    /// The pixels may carry burned-in text and `clean-pixel-data` is on: the caller must clean
    /// them (the object already says Burned In Annotation NO and lists code 113101) or hold the
    /// object back. Never write such an object with its pixels as they are.
    pub clean_pixels: bool,
    /// A note for the report (e.g. a head image released because a face cannot be rendered
    /// from it), naming no identifier.
    pub note: Option<String>,
}

/// The de-identification engine: a configuration and a keyed pseudonymizer.
#[derive(Debug, Clone)]
pub struct Deidentifier {
    config: Config,
    pz: Pseudonymizer,
}

/// Other Patient IDs (0010,1000), retired but still met in files.
const OTHER_PATIENT_IDS: Tag = Tag(0x0010, 0x1000);
const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";
/// Encapsulated documents (PDF, CDA, STL, OBJ, MTL): their content cannot be checked.
const ENCAPSULATED_PREFIX: &str = "1.2.840.10008.5.1.4.1.1.104.";
/// Registered DICOM UIDs (SOP classes, transfer syntaxes, coding schemes) identify nobody.
const DICOM_ROOT: &str = "1.2.840.10008.";

/// How the values of a sequence's items are treated beyond their own table rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// Only the table applies.
    Plain,
    /// Inside a sequence to clean (C): all kept text is scrubbed.
    Clean,
    /// Inside a sequence to replace by a dummy (D): free text and names become dummies,
    /// short text is scrubbed, coded structure stays.
    Dummy,
}

impl Deidentifier {
    /// An engine for this configuration and key.
    pub fn new(config: Config, pz: Pseudonymizer) -> Self {
        Deidentifier { config, pz }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The fail-closed checks alone (what [`Self::deidentify`] refuses before transforming):
    /// lets a caller skip its own work on objects that will not be released.
    pub fn admit(&self, obj: &InMemDicomObject) -> Result<(), HoldBack> {
        self.admit_with(obj, Face::Unchecked)
    }

    /// [`Self::admit`] for an object whose face the caller has removed (see
    /// [`Self::deidentify_with`]).
    pub fn admit_with(&self, obj: &InMemDicomObject, face: Face) -> Result<(), HoldBack> {
        let sop_class = string_of(obj, tags::SOP_CLASS_UID).unwrap_or_default();
        self.gate(obj, &sop_class, face).map(|_| ())
    }

    /// De-identifies one data set. `transfer_syntax` is the one it was read in and is written in.
    pub fn deidentify(
        &self,
        obj: InMemDicomObject,
        transfer_syntax: &str,
    ) -> Result<Deidentified, HoldBack> {
        self.deidentify_with(obj, transfer_syntax, Face::Unchecked)
    }

    /// [`Self::deidentify`], told what the caller found out about a face in this object's
    /// series (see [`Face`]).
    pub fn deidentify_with(
        &self,
        obj: InMemDicomObject,
        transfer_syntax: &str,
        face: Face,
    ) -> Result<Deidentified, HoldBack> {
        let opts = self.config.options;
        let sop_class = string_of(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
        let clean_pixels = self.gate(&obj, &sop_class, face)?;
        let note = match (face, self.config.face.risk(&obj)) {
            (Face::Unchecked, FaceRisk::Coarse(why)) => Some(why),
            (Face::Unchecked, FaceRisk::Renderable(why)) => Some(format!(
                "{why}: released with its face (the face policy does not hold it back)"
            )),
            _ => None,
        };
        let face_removed = face == Face::Removed;

        let charsets = strings_of(&obj, tags::SPECIFIC_CHARACTER_SET);
        let view = TextView::for_charsets(&charsets).map_err(|e| {
            HoldBack::failed(format!(
                "Specific Character Set {:?} cannot be decoded for checking",
                e.0
            ))
        })?;

        let patient_key = patient_key(&obj);
        let patient = self.pz.patient(&patient_key);
        let day_offset = self.pz.day_offset(&patient_key);

        let mut harvest = Harvest::default();
        harvest_dataset(&obj, opts, view, &mut harvest);
        let walker = Walker {
            d: self,
            opts,
            view,
            harvest,
            scrubber: std::cell::OnceCell::new(),
            patient: &patient,
            day_offset,
            iod: umbra_profile::iod_types(&sop_class),
        };
        let mut out = walker.dataset(obj, 0, Mode::Plain)?;
        self.add_markers(&mut out, clean_pixels, face_removed);

        // These name the output file and fill the meta group: they must be UIDs, nothing else
        // (under retain-uids they are the input's own, and an input can hold anything).
        let sop_instance_uid = string_of(&out, tags::SOP_INSTANCE_UID)
            .filter(|s| is_valid_uid(s))
            .ok_or_else(|| HoldBack::failed("SOP Instance UID is not a valid UID"))?;
        let valid_or_empty = |tag, name: &str| {
            let v = string_of(&out, tag).unwrap_or_default();
            if v.is_empty() || is_valid_uid(&v) {
                Ok(v)
            } else {
                Err(HoldBack::failed(format!("{name} is not a valid UID")))
            }
        };
        let study_uid = valid_or_empty(tags::STUDY_INSTANCE_UID, "Study Instance UID")?;
        let series_uid = valid_or_empty(tags::SERIES_INSTANCE_UID, "Series Instance UID")?;
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class.as_str())
            .media_storage_sop_instance_uid(sop_instance_uid.as_str())
            .transfer_syntax(transfer_syntax)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
            .build()
            .map_err(|e| HoldBack::failed(format!("cannot build file meta group: {e}")))?;
        Ok(Deidentified {
            object: out.with_exact_meta(meta),
            patient,
            study_uid,
            series_uid,
            sop_instance_uid,
            clean_pixels,
            note,
        })
    }

    /// Fail-closed checks before any work: what must not be released at all yet. `Ok(true)`:
    /// releasable only once its pixels are cleaned (burned-in text is, or may be, there and
    /// `clean-pixel-data` is on).
    fn gate(&self, obj: &InMemDicomObject, sop_class: &str, face: Face) -> Result<bool, HoldBack> {
        let cleaning = self.config.options.contains(ProfileOption::CleanPixelData);
        let defacing = self
            .config
            .options
            .contains(ProfileOption::CleanRecognizableVisualFeatures);
        if sop_class == DICOMDIR_CLASS || obj.get(tags::DIRECTORY_RECORD_SEQUENCE).is_some() {
            return Err(HoldBack {
                kind: HoldKind::Skipped,
                reason: "DICOMDIR (a media index naming patients) is never copied".into(),
            });
        }
        if sop_class.is_empty() {
            return Err(HoldBack::failed("no SOP Class UID"));
        }
        if !is_valid_uid(sop_class) {
            return Err(HoldBack::failed("SOP Class UID is not a valid UID"));
        }
        if string_of(obj, tags::SOP_INSTANCE_UID).is_none_or(|s| s.is_empty()) {
            return Err(HoldBack::failed("no SOP Instance UID"));
        }
        if sop_class.starts_with(ENCAPSULATED_PREFIX) {
            return Err(HoldBack::held(
                "encapsulated document: its content cannot be checked for identity",
            ));
        }
        let flag = |tag| string_of(obj, tag).map(|s| s.trim().to_ascii_uppercase());
        if face != Face::Removed {
            if flag(tags::RECOGNIZABLE_VISUAL_FEATURES).as_deref() == Some("YES") {
                return Err(HoldBack::held(if defacing {
                    "Recognizable Visual Features is YES and the face was not removed"
                } else {
                    "Recognizable Visual Features is YES: give --option clean-recognizable-visual-features"
                }));
            }
            if let FaceRisk::Renderable(why) = self.config.face.risk(obj) {
                if self.config.face.hold_back {
                    return Err(HoldBack::held(if defacing {
                        format!("{why}: a face can be rendered and was not removed from its series")
                    } else {
                        format!(
                            "{why}: a face can be rendered from its series; give --option \
                             clean-recognizable-visual-features"
                        )
                    }));
                }
            }
        }
        let has_pixels = [
            tags::PIXEL_DATA,
            tags::FLOAT_PIXEL_DATA,
            tags::DOUBLE_FLOAT_PIXEL_DATA,
        ]
        .into_iter()
        .any(|t| obj.get(t).is_some());
        if flag(tags::BURNED_IN_ANNOTATION).as_deref() == Some("YES") {
            if cleaning && has_pixels {
                return Ok(true);
            }
            return Err(HoldBack::held(if has_pixels {
                "Burned In Annotation is YES: give --option clean-pixel-data to clean the pixels"
            } else {
                "Burned In Annotation is YES but there is no pixel data to clean"
            }));
        }
        if has_pixels && flag(tags::BURNED_IN_ANNOTATION).is_none() {
            let modality = flag(tags::MODALITY).unwrap_or_default();
            let secondary_capture = sop_class.starts_with("1.2.840.10008.5.1.4.1.1.7");
            let at_risk = modality.is_empty()
                || secondary_capture
                || self.config.at_risk_modalities.contains(&modality);
            if at_risk && cleaning {
                return Ok(true);
            }
            if modality.is_empty() {
                return Err(HoldBack::held(
                    "image without Modality or Burned In Annotation: burned-in text cannot be ruled out",
                ));
            }
            if at_risk {
                return Err(HoldBack::held(format!(
                    "{} image without Burned In Annotation: text is commonly burned in on this kind of image",
                    if secondary_capture {
                        "secondary capture"
                    } else {
                        modality.as_str()
                    }
                )));
            }
        }
        Ok(false)
    }

    /// Identity Removed, the method and its codes; under `clean-pixel-data`, code 113101 and
    /// Burned In Annotation NO only on objects whose pixels are to be cleaned; code 113102 and
    /// Recognizable Visual Features NO only on objects whose face was removed.
    fn add_markers(&self, obj: &mut InMemDicomObject, clean_pixels: bool, face_removed: bool) {
        let mut opts = self.config.options;
        if !clean_pixels {
            opts = opts.without(ProfileOption::CleanPixelData);
        }
        if face_removed {
            opts = opts.with(ProfileOption::CleanRecognizableVisualFeatures);
            obj.put(DataElement::new(
                tags::RECOGNIZABLE_VISUAL_FEATURES,
                VR::CS,
                PrimitiveValue::from("NO"),
            ));
        } else {
            opts = opts.without(ProfileOption::CleanRecognizableVisualFeatures);
        }
        if clean_pixels {
            obj.put(DataElement::new(
                tags::BURNED_IN_ANNOTATION,
                VR::CS,
                PrimitiveValue::from("NO"),
            ));
        }
        obj.put(DataElement::new(
            tags::PATIENT_IDENTITY_REMOVED,
            VR::CS,
            PrimitiveValue::from("YES"),
        ));
        let method: Vec<String> = method_description(opts);
        obj.put(DataElement::new(
            tags::DEIDENTIFICATION_METHOD,
            VR::LO,
            PrimitiveValue::Strs(method.into_iter().collect()),
        ));
        let mut codes: Vec<(&str, &str)> = std::iter::once(BASIC_PROFILE_CODE)
            .chain(opts.iter().map(ProfileOption::cid7050))
            .collect();
        codes.sort();
        let codes = codes
            .into_iter()
            .map(|(value, meaning)| {
                InMemDicomObject::from_element_iter([
                    DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
                    DataElement::new(
                        tags::CODING_SCHEME_DESIGNATOR,
                        VR::SH,
                        PrimitiveValue::from("DCM"),
                    ),
                    DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
                ])
            })
            .collect::<Vec<_>>();
        obj.put(DataElement::new(
            tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::new(codes, Length::UNDEFINED),
        ));
        let longitudinal = if opts.contains(ProfileOption::RetainLongitudinalFullDates) {
            "UNMODIFIED"
        } else if opts.contains(ProfileOption::RetainLongitudinalModifiedDates) {
            "MODIFIED"
        } else {
            "REMOVED"
        };
        obj.put(DataElement::new(
            tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
            VR::CS,
            PrimitiveValue::from(longitudinal),
        ));
    }
}

/// The patient's key from the top level of the object.
fn patient_key(obj: &InMemDicomObject) -> PatientKey {
    let id = string_of(obj, tags::PATIENT_ID).unwrap_or_default();
    if !id.trim().is_empty() {
        let issuer = string_of(obj, tags::ISSUER_OF_PATIENT_ID).unwrap_or_default();
        return PatientKey::from_id(&issuer, &id);
    }
    let name = string_of(obj, tags::PATIENT_NAME).unwrap_or_default();
    let birth = string_of(obj, tags::PATIENT_BIRTH_DATE).unwrap_or_default();
    if !name.trim().is_empty() {
        return PatientKey::from_name(&name, &birth);
    }
    PatientKey::from_study(&string_of(obj, tags::STUDY_INSTANCE_UID).unwrap_or_default())
}

/// The first value of a string attribute, trimmed of padding.
fn string_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    strings_of(obj, tag).into_iter().next()
}

/// All values of a string attribute (also when it came as UN), trimmed of padding.
fn strings_of(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    obj.get(tag).and_then(element_strings).unwrap_or_default()
}

fn dict_entry(
    tag: Tag,
) -> Option<&'static dicom_core::dictionary::DataDictionaryEntryRef<'static>> {
    StandardDataDictionary.by_tag(tag)
}

/// The VR to reason with: the dictionary's when the element came as UN.
fn effective_vr(tag: Tag, vr: VR) -> VR {
    if vr == VR::UN {
        dict_entry(tag).map(|e| e.vr.relaxed()).unwrap_or(VR::UN)
    } else {
        vr
    }
}

fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::PN | VR::AE | VR::CS
    )
}

/// Whether an attribute holds an identifier that gets a keyed pseudonym rather than a dummy:
/// LO/SH attributes whose keyword names an ID or number (Patient ID, Accession Number, Study ID,
/// Admission ID, Requested Procedure ID, Device Serial Number, ...).
fn is_identifier(tag: Tag, vr: VR) -> bool {
    matches!(vr, VR::LO | VR::SH)
        && dict_entry(tag).is_some_and(|e| {
            let k = e.alias();
            ["ID", "IDs", "Number", "Numbers", "Identifier"]
                .iter()
                .any(|s| k.ends_with(s))
        })
}

/// The string values of an element as dicom-rs decoded them, or of a UN element's bytes.
fn element_strings(elem: &InMemElement) -> Option<Vec<String>> {
    match elem.value() {
        Value::Primitive(PrimitiveValue::U8(bytes)) if elem.vr() == VR::UN => Some(
            bytes
                .iter()
                .map(|&b| b as char)
                .collect::<String>()
                .split('\\')
                .map(|s| s.trim_matches([' ', '\0']).to_owned())
                .collect(),
        ),
        Value::Primitive(p) => match p {
            PrimitiveValue::Str(_) | PrimitiveValue::Strs(_) => Some(p.to_multi_str()).map(|v| {
                v.iter()
                    .map(|s| s.trim_matches([' ', '\0']).to_owned())
                    .collect()
            }),
            _ => None,
        },
        _ => None,
    }
}

/// Collects identifiers from every attribute the profile removes or replaces (and every person
/// name), at every depth, to scrub them from the text it keeps.
fn harvest_dataset(obj: &InMemDicomObject, opts: OptionSet, view: TextView, h: &mut Harvest) {
    for elem in obj.iter() {
        let tag = elem.tag();
        if let Value::Sequence(seq) = elem.value() {
            for item in seq.items() {
                harvest_dataset(item, opts, view, h);
            }
            continue;
        }
        let vr = effective_vr(tag, elem.vr());
        // What the profile takes away is what must not reappear in the text it keeps.
        let (taken, private) = match umbra_profile::lookup(tag.0, tag.1) {
            Lookup::Public(row) => (
                !matches!(row.action(opts, None), Action::Keep | Action::Clean),
                false,
            ),
            Lookup::Private(_) => (true, true),
            Lookup::NotListed => (false, false),
        };
        if !(taken || vr == VR::PN) {
            continue;
        }
        let Some(values) = element_strings(elem) else {
            continue;
        };
        for v in values {
            let real = view.real(&v);
            // Private values are mostly numbers and codes: only words are worth searching for.
            if private && (real.chars().count() < 4 || !real.chars().any(char::is_alphabetic)) {
                continue;
            }
            match vr {
                VR::PN => h.add_person_name(&real),
                VR::DA => h.add_date(&real),
                VR::LO | VR::SH | VR::AE | VR::UI => h.add_value(&real),
                VR::ST | VR::LT if tag.0 & 1 == 0 && is_address(tag) => h.add_words(&real),
                _ => {}
            }
        }
    }
}

fn is_address(tag: Tag) -> bool {
    dict_entry(tag).is_some_and(|e| e.alias().contains("Address"))
}

struct Walker<'a> {
    d: &'a Deidentifier,
    opts: OptionSet,
    view: TextView,
    harvest: Harvest,
    /// Built on first use: most objects under most options never scrub anything.
    scrubber: std::cell::OnceCell<Scrubber>,
    patient: &'a str,
    day_offset: i64,
    iod: Option<&'static IodTypes>,
}

/// A decision for one private data element, taken per data set.
/// The private elements Retain Safe Private keeps in one data set, with the VR the standard
/// lists for them (`None` for the Private Creator elements of their blocks).
fn private_plan(obj: &InMemDicomObject, retain_safe: bool) -> BTreeMap<Tag, Option<&'static str>> {
    let mut keep = BTreeMap::new();
    if !retain_safe {
        return keep;
    }
    let mut creators: BTreeMap<(u16, u16), String> = BTreeMap::new();
    for e in obj.iter() {
        let t = e.tag();
        if t.0 & 1 == 1 && (0x0010..=0x00FF).contains(&t.1) {
            if let Some(v) = element_strings(e).and_then(|v| v.into_iter().next()) {
                creators.insert((t.0, t.1), v);
            }
        }
    }
    for e in obj.iter() {
        let t = e.tag();
        if t.0 & 1 == 0 || t.1 < 0x1000 {
            continue;
        }
        let block = t.1 >> 8;
        if let Some(creator) = creators.get(&(t.0, block)) {
            if let Some(safe) = umbra_profile::safe_private(t.0, creator, (t.1 & 0xFF) as u8) {
                keep.insert(t, Some(safe.vr));
                keep.insert(Tag(t.0, block), None);
            }
        }
    }
    keep
}

impl Walker<'_> {
    fn dataset(
        &self,
        obj: InMemDicomObject,
        depth: usize,
        mode: Mode,
    ) -> Result<InMemDicomObject, HoldBack> {
        let keep_private = private_plan(&obj, self.opts.contains(ProfileOption::RetainSafePrivate));
        let issuer = string_of(&obj, tags::ISSUER_OF_PATIENT_ID).unwrap_or_default();
        let mut out = Vec::new();
        for elem in obj {
            let tag = elem.tag();
            if tag.1 == 0x0000 || tag.0 == 0x0002 {
                continue; // group lengths are recomputed by writers; meta is rebuilt
            }
            if tag.0 == 0xFFFE {
                // An item or delimiter tag read as a data element: the parse got out of step,
                // so what follows may sit under the wrong attributes. An empty stray delimiter
                // is harmless; anything else fails the object.
                if matches!(tag.1, 0xE00D | 0xE0DD) && element_is_empty(&elem) {
                    continue;
                }
                return Err(HoldBack::failed(format!(
                    "malformed data set: {tag} read as a data element"
                )));
            }
            if matches!(tag.0, 0x5000..=0x50FF | 0x6000..=0x60FF) && tag.0 & 1 == 0 {
                // Curves (50xx, retired) and overlay planes (60xx): the table removes Curve Data
                // and Overlay Data (X), and Clean Graphics cannot clean a bitmap or a curve
                // without pixel analysis, so the whole group goes, not a plane without its data.
                continue;
            }
            if tag.0 & 1 == 1 {
                if let Some(listed_vr) = keep_private.get(&tag) {
                    if let Some(e) = self.keep_private(elem, *listed_vr, depth, mode)? {
                        out.push(e);
                    }
                }
                continue;
            }
            if let Some(e) = self.element(elem, depth, mode, &issuer)? {
                out.push(e);
            }
        }
        Ok(InMemDicomObject::from_element_iter(out))
    }

    fn keep_private(
        &self,
        elem: InMemElement,
        listed_vr: Option<&str>,
        depth: usize,
        mode: Mode,
    ) -> Result<Option<InMemElement>, HoldBack> {
        match (elem.vr(), listed_vr) {
            (VR::SQ, _) => self.recurse(elem, depth, mode).map(Some),
            // A UID in a safe private attribute may still be an instance UID: map it, unless
            // UIDs are retained altogether.
            (VR::UI, _) | (VR::UN, Some("UI"))
                if !self.opts.contains(ProfileOption::RetainUids) =>
            {
                Ok(Some(self.replace_uids(elem)))
            }
            // A safe sequence that arrived as UN cannot be looked into: drop it.
            (VR::UN, Some("SQ")) => Ok(None),
            _ => Ok(Some(elem)),
        }
    }

    fn element(
        &self,
        elem: InMemElement,
        depth: usize,
        mode: Mode,
        issuer: &str,
    ) -> Result<Option<InMemElement>, HoldBack> {
        let tag = elem.tag();
        let elem = self.unwrap_un_sequence(elem)?;
        let action = match umbra_profile::lookup(tag.0, tag.1) {
            Lookup::Public(row) => {
                let iod = match (depth, self.iod) {
                    (0, Some(iod)) => iod.knowledge(tag.0, tag.1),
                    _ => IodKnowledge::Unknown,
                };
                Some(row.action(self.opts, Some(iod)))
            }
            Lookup::Private(_) => Some(Action::Remove),
            Lookup::NotListed => None,
        };
        let vr = effective_vr(tag, elem.vr());
        match action {
            None => self.not_listed(elem, depth, mode),
            Some(Action::Remove) => Ok(None),
            Some(Action::Keep) => self.keep(elem, depth, mode),
            Some(Action::Empty) => Ok(Some(self.empty(elem, vr, depth, issuer))),
            Some(Action::Dummy) => self.dummy(elem, vr, depth, issuer).map(Some),
            Some(Action::Clean) => self.clean(elem, vr, depth, mode),
            Some(Action::ReplaceUid) => match vr {
                VR::SQ => self.recurse(elem, depth, mode).map(Some),
                VR::UI => Ok(Some(self.replace_uids(elem))),
                _ => Ok(None),
            },
        }
    }

    /// A sequence that arrived as UN (e.g. from an implicit-VR hop) is re-read as implicit VR
    /// little endian, as PS3.5 6.2.2 prescribes, so its items can be processed. If that fails,
    /// nothing inside it can be checked: fail closed.
    fn unwrap_un_sequence(&self, elem: InMemElement) -> Result<InMemElement, HoldBack> {
        let tag = elem.tag();
        if elem.vr() != VR::UN || effective_vr(tag, VR::UN) != VR::SQ {
            return Ok(elem);
        }
        let Value::Primitive(PrimitiveValue::U8(bytes)) = elem.value() else {
            return Ok(elem);
        };
        let mut buf = Vec::with_capacity(bytes.len() + 8);
        buf.extend_from_slice(&tag.0.to_le_bytes());
        buf.extend_from_slice(&tag.1.to_le_bytes());
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(bytes);
        let ts = dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased();
        let parsed = InMemDicomObject::read_dataset_with_ts(&buf[..], &ts).map_err(|_| {
            HoldBack::failed(format!("sequence {tag} encoded as UN cannot be parsed"))
        })?;
        parsed
            .into_iter()
            .next()
            .filter(|e| e.tag() == tag && e.vr() == VR::SQ)
            .ok_or_else(|| {
                HoldBack::failed(format!("sequence {tag} encoded as UN cannot be parsed"))
            })
    }

    fn recurse(
        &self,
        elem: InMemElement,
        depth: usize,
        mode: Mode,
    ) -> Result<InMemElement, HoldBack> {
        let tag = elem.tag();
        let (header, value) = elem.into_parts();
        match value {
            Value::Sequence(seq) => {
                let items = seq
                    .into_items()
                    .into_iter()
                    .map(|item| self.dataset(item, depth + 1, mode))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(DataElement::new(
                    tag,
                    header.vr,
                    DataSetSequence::new(items, Length::UNDEFINED),
                ))
            }
            other => Ok(DataElement::new(tag, header.vr, other)),
        }
    }

    fn shifting(&self) -> bool {
        self.opts
            .contains(ProfileOption::RetainLongitudinalModifiedDates)
    }

    /// An attribute the table does not list: kept, as the standard says; inside sequences being
    /// cleaned its text is scrubbed; under modified dates every DA/DT is shifted.
    fn not_listed(
        &self,
        elem: InMemElement,
        depth: usize,
        mode: Mode,
    ) -> Result<Option<InMemElement>, HoldBack> {
        let tag = elem.tag();
        let vr = effective_vr(tag, elem.vr());
        match vr {
            VR::SQ => self.recurse(elem, depth, mode).map(Some),
            VR::DA | VR::DT if self.shifting() => Ok(Some(self.shift_dates(elem, vr))),
            // A deliberate step beyond the table: a UID is an identifier by construction, and
            // the table misses some that name instances (Multi-frame Source SOP Instance UID,
            // SOP Instance UID of Concatenation Source, Volume Frame of Reference UID, ...), so
            // unlisted UIDs are mapped like listed ones, keeping references consistent.
            // Registered DICOM UIDs (classes, transfer syntaxes, coding schemes) stay.
            VR::UI if !self.opts.contains(ProfileOption::RetainUids) => {
                Ok(Some(self.replace_uids(elem)))
            }
            VR::UT | VR::ST | VR::LT | VR::UC | VR::PN if mode == Mode::Dummy => {
                Ok(Some(self.dummy_value(tag, vr, depth)))
            }
            _ if mode != Mode::Plain && is_text_vr(vr) && vr != VR::CS => Ok(self.scrub(elem, vr)),
            _ => Ok(Some(elem)),
        }
    }

    fn keep(
        &self,
        elem: InMemElement,
        depth: usize,
        mode: Mode,
    ) -> Result<Option<InMemElement>, HoldBack> {
        let vr = effective_vr(elem.tag(), elem.vr());
        match vr {
            VR::SQ => self.recurse(elem, depth, mode).map(Some),
            VR::DA | VR::DT if self.shifting() => Ok(Some(self.shift_dates(elem, vr))),
            _ => Ok(Some(elem)),
        }
    }

    fn empty(&self, elem: InMemElement, vr: VR, depth: usize, issuer: &str) -> InMemElement {
        let tag = elem.tag();
        if vr == VR::SQ {
            return DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty());
        }
        if let Some(p) = self.pseudonym(&elem, vr, depth, issuer) {
            return p;
        }
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    }

    /// Keyed pseudonyms for the patient's name and identifiers; `None` for other attributes.
    fn pseudonym(
        &self,
        elem: &InMemElement,
        vr: VR,
        depth: usize,
        issuer: &str,
    ) -> Option<InMemElement> {
        let tag = elem.tag();
        if depth == 0 && (tag == tags::PATIENT_NAME || tag == tags::PATIENT_ID) {
            return Some(DataElement::new(
                tag,
                vr,
                PrimitiveValue::from(self.patient),
            ));
        }
        if !is_identifier(tag, vr) {
            return None;
        }
        let values = element_strings(elem).unwrap_or_default();
        let mapped: Vec<String> = values
            .iter()
            .map(|v| {
                if v.is_empty() {
                    String::new()
                } else if tag == tags::PATIENT_ID || tag == OTHER_PATIENT_IDS {
                    self.d.pz.patient(&PatientKey::from_id(issuer, v))
                } else {
                    let domain = dict_entry(tag).map_or("?", |e| e.alias());
                    self.d.pz.id(domain, v)
                }
            })
            .collect();
        if mapped.iter().all(String::is_empty) {
            return Some(DataElement::new(tag, vr, PrimitiveValue::Empty));
        }
        Some(DataElement::new(
            tag,
            vr,
            PrimitiveValue::Strs(mapped.into_iter().collect()),
        ))
    }

    fn dummy(
        &self,
        elem: InMemElement,
        vr: VR,
        depth: usize,
        issuer: &str,
    ) -> Result<InMemElement, HoldBack> {
        match vr {
            VR::SQ => self.recurse(elem, depth, Mode::Dummy),
            VR::UI => Ok(self.replace_uids(elem)),
            _ => Ok(self
                .pseudonym(&elem, vr, depth, issuer)
                .unwrap_or_else(|| self.dummy_value(elem.tag(), vr, depth))),
        }
    }

    /// A non-empty value of the VR that carries no information.
    fn dummy_value(&self, tag: Tag, vr: VR, depth: usize) -> InMemElement {
        let v = match vr {
            VR::PN if depth == 0 && tag == tags::PATIENT_NAME => PrimitiveValue::from(self.patient),
            VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC | VR::CS => {
                PrimitiveValue::from("ANONYMIZED")
            }
            VR::AE => PrimitiveValue::from("ANONYMIZED"),
            VR::DA => PrimitiveValue::from("19000101"),
            VR::TM => PrimitiveValue::from("000000.00"),
            VR::DT => PrimitiveValue::from("19000101000000.00"),
            VR::AS => PrimitiveValue::from("000D"),
            VR::DS | VR::IS => PrimitiveValue::from("0"),
            VR::UR => PrimitiveValue::from("http://anonymized.invalid"),
            VR::US => PrimitiveValue::from(0_u16),
            VR::SS => PrimitiveValue::from(0_i16),
            VR::UL => PrimitiveValue::from(0_u32),
            VR::SL => PrimitiveValue::from(0_i32),
            VR::FL => PrimitiveValue::from(0_f32),
            VR::FD => PrimitiveValue::from(0_f64),
            _ => PrimitiveValue::U8([0u8, 0].into_iter().collect()),
        };
        DataElement::new(tag, vr, v)
    }

    fn clean(
        &self,
        elem: InMemElement,
        vr: VR,
        depth: usize,
        mode: Mode,
    ) -> Result<Option<InMemElement>, HoldBack> {
        let tag = elem.tag();
        match vr {
            VR::SQ => self.recurse(elem, depth, mode.max(Mode::Clean)).map(Some),
            VR::DA | VR::DT if self.shifting() => Ok(Some(self.shift_dates(elem, vr))),
            // Whole-day shifts leave times of day as they are.
            VR::TM if self.shifting() => Ok(Some(elem)),
            VR::DA | VR::DT | VR::TM => Ok(Some(DataElement::new(tag, vr, PrimitiveValue::Empty))),
            VR::PN => Ok(Some(self.dummy_value(tag, vr, depth))),
            VR::AE => {
                let domain = dict_entry(tag).map_or("AE", |e| e.alias());
                let mapped: Vec<String> = element_strings(&elem)
                    .unwrap_or_default()
                    .iter()
                    .map(|v| self.d.pz.id(domain, v))
                    .collect();
                Ok(Some(DataElement::new(
                    tag,
                    vr,
                    PrimitiveValue::Strs(mapped.into_iter().collect()),
                )))
            }
            VR::AS => Ok(Some(cap_age(elem))),
            VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC => Ok(self.scrub(elem, vr)),
            // Nothing else can be cleaned reliably without knowing its meaning: remove it.
            _ => Ok(None),
        }
    }

    /// Scrubs every value of a text element; an unencodable result removes the element.
    fn scrub(&self, elem: InMemElement, vr: VR) -> Option<InMemElement> {
        let tag = elem.tag();
        let values = element_strings(&elem)?;
        let mut changed = false;
        let mut out = Vec::with_capacity(values.len());
        for v in &values {
            let real = self.view.real(v);
            let scrubber = self.scrubber.get_or_init(|| self.harvest.clone().build());
            match scrubber.scrub(&real) {
                Cow::Borrowed(_) => out.push(v.clone()),
                Cow::Owned(s) => {
                    changed = true;
                    out.push(self.view.back(&truncate_chars(&s, max_chars(vr)))?);
                }
            }
        }
        if !changed {
            return Some(elem);
        }
        Some(DataElement::new(
            tag,
            vr,
            PrimitiveValue::Strs(out.into_iter().collect()),
        ))
    }

    fn shift_dates(&self, elem: InMemElement, vr: VR) -> InMemElement {
        let tag = elem.tag();
        let values = element_strings(&elem).unwrap_or_default();
        let shifted: Option<Vec<String>> = values
            .iter()
            .map(|v| {
                if vr == VR::DA {
                    shift_da(v, self.day_offset)
                } else {
                    shift_dt(v, self.day_offset)
                }
            })
            .collect();
        match shifted {
            Some(v) if !v.iter().all(String::is_empty) => {
                DataElement::new(tag, vr, PrimitiveValue::Strs(v.into_iter().collect()))
            }
            // Not a date we can shift: it cannot stay, and an empty value is always allowed.
            _ => DataElement::new(tag, vr, PrimitiveValue::Empty),
        }
    }

    fn replace_uids(&self, elem: InMemElement) -> InMemElement {
        let tag = elem.tag();
        let values = element_strings(&elem).unwrap_or_default();
        let mapped: Vec<String> = values
            .iter()
            .map(|u| {
                if u.is_empty() || u.starts_with(DICOM_ROOT) {
                    u.clone()
                } else {
                    self.d.pz.uid(u)
                }
            })
            .collect();
        DataElement::new(
            tag,
            VR::UI,
            PrimitiveValue::Strs(mapped.into_iter().collect()),
        )
    }
}

/// A UID as the meta group and file names need it: 1 to 64 characters, digits and dots,
/// no empty component.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

fn element_is_empty(elem: &InMemElement) -> bool {
    match elem.value() {
        Value::Primitive(p) => p.calculate_byte_len() == 0,
        Value::Sequence(s) => s.items().is_empty(),
        Value::PixelSequence(_) => false,
    }
}

/// Ages of 90 years and over are reported as 90 years (HIPAA Safe Harbor).
fn cap_age(elem: InMemElement) -> InMemElement {
    let tag = elem.tag();
    let v = element_strings(&elem)
        .and_then(|v| v.into_iter().next())
        .unwrap_or_default();
    let years = match v.as_bytes().last() {
        Some(b'Y') => v[..v.len() - 1].parse::<u32>().ok(),
        Some(b'M' | b'W' | b'D') => Some(0),
        _ => None,
    };
    match years {
        Some(y) if y >= 90 => DataElement::new(tag, VR::AS, PrimitiveValue::from("090Y")),
        Some(_) => DataElement::new(tag, VR::AS, PrimitiveValue::from(v)),
        None => DataElement::new(tag, VR::AS, PrimitiveValue::Empty),
    }
}

/// Maximum characters per value of a text VR (PS3.5 6.2), `usize::MAX` when unbounded.
fn max_chars(vr: VR) -> usize {
    match vr {
        VR::SH | VR::AE | VR::CS => 16,
        VR::LO | VR::PN => 64,
        VR::ST => 1024,
        VR::LT => 10240,
        _ => usize::MAX,
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
