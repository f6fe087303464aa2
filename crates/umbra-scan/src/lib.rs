//! An independent second pair of eyes: finds identity left in a DICOM object.
//!
//! The scanner is written apart from the de-identification engine on purpose. It does not
//! import the PS3.15 tables or any choice the engine makes; it has its own list of
//! identity-bearing attributes ([`attributes`]), its own text patterns ([`text`]), its own
//! idea of what a pseudonym looks like ([`shape`]) and its own harvest of identifiers from
//! originals ([`against`]). A de-identifier checked only by its own rules repeats its own
//! blind spots; this crate is the check that does not share them.
//!
//! [`Scanner::scan`] walks every element at every depth (sequences, private blocks, sequences
//! inside private blocks, UN values re-read as implicit VR little endian where they parse,
//! overlays, curves, encapsulated documents) and returns [`Finding`]s: an attribute path such
//! as `(0040,0275)[0].(0040,1001)`, a [`Rule`], a [`Severity`] and a masked excerpt. With an
//! [`Against`] set (identifiers harvested from the originals) it also searches the parsed text
//! and the raw bytes for each of them, in Latin-1, UTF-8 and ISO 2022 Japanese.
//!
//! Pure: no files, no clocks. Callers read the bytes and say which file a finding belongs to.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod against;
pub mod attributes;
mod mask;
pub mod shape;
pub mod text;
mod un;
mod walk;

pub use against::{Against, AgainstBuilder};
pub use walk::RawRegion;

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not identity by itself.
    Info,
    /// Possibly identifying, or unverifiable; a person should look.
    Warn,
    /// Identity is left, or the object cannot be shown to be clean.
    Error,
}

impl Severity {
    /// The lower-case name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// What a finding is about. Names (kebab-case) are stable: reports and tests use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// An identity-bearing attribute (or any person name) holds a value that is not
    /// pseudonym-shaped.
    IdentityAttribute,
    /// A person-name shape in text (titled name, `FAMILY^GIVEN`, "Patient: ...").
    TextPersonName,
    /// A date or date-time written in text.
    TextDate,
    /// A phone number in text.
    TextPhone,
    /// An e-mail address in text.
    TextEmail,
    /// A postal address in text.
    TextAddress,
    /// A medical record, accession or other record number in text.
    TextIdentifier,
    /// A national identifier shape (US SSN, UK NHS number) in text.
    TextNationalId,
    /// A UID under an organisation's root instead of `2.25.` or an accepted root.
    UidRoot,
    /// A date attribute holds a date and the object does not say its dates were modified.
    DateValue,
    /// Patient's Age above 90 years (HIPAA groups those as 90 or older).
    AgeOver89,
    /// Private attributes are present.
    PrivateAttribute,
    /// Burned In Annotation is YES, or absent on a modality that commonly burns in text.
    BurnedInAnnotation,
    /// Recognizable Visual Features is YES.
    RecognizableVisualFeatures,
    /// Patient Identity Removed (0012,0062) is not YES.
    IdentityRemovedMissing,
    /// De-identification Method Code Sequence (0012,0064) is missing.
    MethodCodeMissing,
    /// An overlay plane (60xx) is present: its bitmap can carry text.
    Overlay,
    /// A curve (50xx, retired) is present.
    Curve,
    /// An encapsulated document (PDF, CDA, ...) is present: its content cannot be verified.
    EncapsulatedDocument,
    /// Text under a character set whose code extensions are not decoded: matches may be missed.
    UnsupportedCharset,
    /// An identifier of the originals found in the parsed text of an element.
    AgainstText,
    /// An identifier of the originals found in raw bytes that no parsed value accounts for.
    AgainstRaw,
    /// Text-like shapes in the pixels of an image that may carry burned-in text (found by the
    /// caller, which decodes pixels; this crate does not).
    PixelText,
    /// The file is not DICOM.
    NotDicom,
    /// The file looks like DICOM but cannot be read: nothing in it can be verified.
    Unreadable,
}

impl Rule {
    /// Every rule, in report order.
    pub const ALL: &[Rule] = &[
        Rule::IdentityAttribute,
        Rule::TextPersonName,
        Rule::TextDate,
        Rule::TextPhone,
        Rule::TextEmail,
        Rule::TextAddress,
        Rule::TextIdentifier,
        Rule::TextNationalId,
        Rule::UidRoot,
        Rule::DateValue,
        Rule::AgeOver89,
        Rule::PrivateAttribute,
        Rule::BurnedInAnnotation,
        Rule::RecognizableVisualFeatures,
        Rule::IdentityRemovedMissing,
        Rule::MethodCodeMissing,
        Rule::Overlay,
        Rule::Curve,
        Rule::EncapsulatedDocument,
        Rule::UnsupportedCharset,
        Rule::AgainstText,
        Rule::AgainstRaw,
        Rule::PixelText,
        Rule::NotDicom,
        Rule::Unreadable,
    ];

    /// The rule's stable kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::IdentityAttribute => "identity-attribute",
            Rule::TextPersonName => "text-person-name",
            Rule::TextDate => "text-date",
            Rule::TextPhone => "text-phone",
            Rule::TextEmail => "text-email",
            Rule::TextAddress => "text-address",
            Rule::TextIdentifier => "text-identifier",
            Rule::TextNationalId => "text-national-id",
            Rule::UidRoot => "uid-root",
            Rule::DateValue => "date-value",
            Rule::AgeOver89 => "age-over-89",
            Rule::PrivateAttribute => "private-attribute",
            Rule::BurnedInAnnotation => "burned-in-annotation",
            Rule::RecognizableVisualFeatures => "recognizable-visual-features",
            Rule::IdentityRemovedMissing => "identity-removed-missing",
            Rule::MethodCodeMissing => "method-code-missing",
            Rule::Overlay => "overlay",
            Rule::Curve => "curve",
            Rule::EncapsulatedDocument => "encapsulated-document",
            Rule::UnsupportedCharset => "unsupported-charset",
            Rule::AgainstText => "against-text",
            Rule::AgainstRaw => "against-raw",
            Rule::PixelText => "pixel-text",
            Rule::NotDicom => "not-dicom",
            Rule::Unreadable => "unreadable",
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One thing found in one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Attribute path, e.g. `(0040,0275)[0].(0040,1001)`; `meta.(0002,0003)` for the file meta
    /// group; `raw@0x1a2b` for raw bytes; empty for the object as a whole.
    pub path: String,
    /// What was found.
    pub rule: Rule,
    /// How bad it is.
    pub severity: Severity,
    /// Kind of identifier (`name`, `id`, `date`, `address`, `phone`, `institution`, `device`,
    /// `uid`, ...), when the rule concerns one.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub category: &'static str,
    /// The value, masked: enough to find it again, not enough to read it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub excerpt: String,
    /// One line saying what this is: it names attributes, rules and categories, never a value
    /// of the object (the release gate uses it as a hold-back reason, which is logged).
    pub message: String,
}

/// What the scanned objects may legitimately keep: the options they were de-identified with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// Dates are kept unshifted (retain-longitudinal-full-dates): no date findings, dates are
    /// not searched for.
    pub dates: bool,
    /// UIDs are kept (retain-uids): no UID-root findings, UIDs are not searched for.
    pub uids: bool,
    /// Device identity is kept (retain-device-identity): station, serial numbers.
    pub device: bool,
    /// Institution identity is kept (retain-institution-identity).
    pub institution: bool,
    /// Private attributes may be present (retain-safe-private): reported as info only.
    pub private: bool,
    /// Patient characteristics are kept (retain-patient-characteristics): age findings off.
    pub patient_characteristics: bool,
}

/// Modalities on which text is commonly burned into the pixels: ultrasound, other and
/// secondary capture, angiography and fluoroscopy, endoscopy, photography, microscopy,
/// document scans. Kept by the scanner itself (not shared with the engine).
pub const DEFAULT_AT_RISK_MODALITIES: &[&str] = &[
    "US", "IVUS", "OT", "SC", "XA", "RF", "ES", "XC", "GM", "SM", "DOC", "OP", "OPT", "DG", "TG",
    "RG", "KO", "PX",
];

/// How to judge the scanned objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// What may be kept.
    pub allow: Allow,
    /// UID roots accepted besides `2.25.` and the DICOM root `1.2.840.10008.` (e.g. the
    /// output root a site configured), each without the trailing dot.
    pub uid_roots: Vec<String>,
    /// Modalities whose images must say Burned In Annotation = NO.
    pub at_risk_modalities: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow: Allow::default(),
            uid_roots: Vec::new(),
            at_risk_modalities: DEFAULT_AT_RISK_MODALITIES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// The scanner: a policy and, optionally, the identifiers of the originals.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    policy: Policy,
    against: Option<Against>,
}

impl Scanner {
    /// A scanner judging by `policy`, searching for `against` when given.
    pub fn new(policy: Policy, against: Option<Against>) -> Self {
        Scanner { policy, against }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Scans one object: its data set, its file meta group when it has one, and the raw bytes
    /// it was read from (or is about to be written as), without its pixel data. Findings come
    /// in walk order.
    pub fn scan(
        &self,
        dataset: &dicom_object::InMemDicomObject,
        meta: Option<&dicom_object::FileMetaTable>,
        raw: Option<RawRegion<'_>>,
    ) -> Vec<Finding> {
        walk::scan(&self.policy, self.against.as_ref(), dataset, meta, raw)
    }

    /// [`Scanner::scan`] searching for `against` (the identifiers of this object's own
    /// original, as the release gate does) instead of the scanner's own set.
    pub fn scan_against(
        &self,
        against: &Against,
        dataset: &dicom_object::InMemDicomObject,
        meta: Option<&dicom_object::FileMetaTable>,
        raw: Option<RawRegion<'_>>,
    ) -> Vec<Finding> {
        walk::scan(&self.policy, Some(against), dataset, meta, raw)
    }
}

/// The findings of one object at or above `level`.
pub fn at_least(findings: &[Finding], level: Severity) -> impl Iterator<Item = &Finding> {
    findings.iter().filter(move |f| f.severity >= level)
}
