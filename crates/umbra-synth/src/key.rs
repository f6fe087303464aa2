//! The answer key (`key.json`): every planted identifier and where it is, what each file should
//! become (written or held back), the links between objects and which patient each belongs to.
//!
//! The key is the contract between [`crate::generate`] and [`crate::check`], and it is meant to be
//! read by other people's tools too, so its shape is plain JSON with stable names. Paths inside
//! objects use the scanner's notation: `(0008,1111)[0].(0010,0010)`, private elements by their
//! full tag (`(0009,1010)`), `meta.(0002,0013)` for the file meta group.

use serde::{Deserialize, Serialize};

/// The format name written into every key; [`crate::check`] refuses keys of another format.
pub const FORMAT: &str = "umbra-synth-key/1";

/// The whole answer key of one generated corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Key {
    /// Always [`FORMAT`].
    pub format: String,
    /// How the corpus was made.
    pub generator: Generator,
    /// The organisation UID root the generator's original UIDs live under.
    pub org_root: String,
    /// One entry per synthetic patient, in order; files refer to them by index.
    pub patients: Vec<Patient>,
    /// Every identifier planted anywhere, in order; plants refer to them by index.
    pub identifiers: Vec<Identifier>,
    /// Every file written under the corpus root, sorted by path.
    pub files: Vec<File>,
}

/// How a corpus was made: enough to make it again, byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generator {
    /// `umbra` version that wrote it.
    pub version: String,
    /// The seed.
    pub seed: u64,
    /// The profile name (`small`, `ct512`).
    pub profile: String,
    /// Number of patients asked for.
    pub patients: usize,
}

/// One synthetic person.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Patient {
    /// The original Patient ID (also listed as an identifier).
    pub patient_id: String,
    /// The original Patient's Name, as written in the objects (`FAMILY^GIVEN`).
    pub name: String,
    /// The character set the patient's text is written in (`ISO_IR 100`, `ISO_IR 192`, or
    /// `\ISO 2022 IR 87` for Japanese); empty for the default repertoire.
    pub charset: String,
    /// Indexes into [`Key::files`] of this patient's files.
    pub files: Vec<usize>,
}

/// HIPAA Safe Harbor identifier classes, 45 CFR 164.514(b)(2)(i) (A) to (R).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Hipaa {
    /// (A) Names.
    A,
    /// (B) Geographic subdivisions smaller than a state: street address, city, ZIP code.
    B,
    /// (C) All elements of dates (except year) directly related to an individual; ages over 89.
    C,
    /// (D) Telephone numbers.
    D,
    /// (E) Fax numbers.
    E,
    /// (F) Electronic mail addresses.
    F,
    /// (G) Social security numbers.
    G,
    /// (H) Medical record numbers.
    H,
    /// (I) Health plan beneficiary numbers.
    I,
    /// (J) Account numbers.
    J,
    /// (K) Certificate and license numbers.
    K,
    /// (L) Vehicle identifiers and serial numbers, including license plates.
    L,
    /// (M) Device identifiers and serial numbers.
    M,
    /// (N) Web URLs.
    N,
    /// (O) IP addresses.
    O,
    /// (P) Biometric identifiers.
    P,
    /// (Q) Full-face photographs and comparable images.
    Q,
    /// (R) Any other unique identifying number, characteristic or code (UIDs, accession
    /// numbers, institution names).
    R,
}

impl Hipaa {
    /// All classes, in order.
    pub const ALL: [Hipaa; 18] = [
        Hipaa::A,
        Hipaa::B,
        Hipaa::C,
        Hipaa::D,
        Hipaa::E,
        Hipaa::F,
        Hipaa::G,
        Hipaa::H,
        Hipaa::I,
        Hipaa::J,
        Hipaa::K,
        Hipaa::L,
        Hipaa::M,
        Hipaa::N,
        Hipaa::O,
        Hipaa::P,
        Hipaa::Q,
        Hipaa::R,
    ];

    /// A short description for tables.
    pub fn description(self) -> &'static str {
        match self {
            Hipaa::A => "names",
            Hipaa::B => "addresses, cities, ZIP codes",
            Hipaa::C => "dates, ages over 89",
            Hipaa::D => "telephone numbers",
            Hipaa::E => "fax numbers",
            Hipaa::F => "e-mail addresses",
            Hipaa::G => "social security numbers",
            Hipaa::H => "medical record numbers",
            Hipaa::I => "health plan numbers",
            Hipaa::J => "account numbers",
            Hipaa::K => "certificate and license numbers",
            Hipaa::L => "vehicle identifiers",
            Hipaa::M => "device identifiers and serials",
            Hipaa::N => "web URLs",
            Hipaa::O => "IP addresses",
            Hipaa::P => "biometric identifiers",
            Hipaa::Q => "face images",
            Hipaa::R => "other unique codes (UIDs, accession numbers, institutions)",
        }
    }
}

/// Where in a file an identifier was planted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Location {
    /// A standard attribute at the top level of the data set.
    Standard,
    /// A standard attribute inside a sequence item (any depth ≥ 1; the plant gives the depth).
    Sequence,
    /// A private block whose creator and element are on PS3.15's safe private list.
    PrivateSafe,
    /// A private block of an unknown creator.
    PrivateUnknown,
    /// Free text (descriptions, comments, reports, SR text values) that embeds the identifier.
    FreeText,
    /// Text drawn into an overlay plane (60xx,3000).
    Overlay,
    /// A UID under the organisation's root.
    Uid,
    /// Text burned into the pixel data (see [`File::burned_in`]).
    Pixels,
    /// The file's own name.
    FileName,
    /// A folder name on the way to the file.
    FolderName,
    /// The file meta group or the preamble.
    Meta,
    /// A file that is not DICOM at all (a text note beside the images).
    NonDicom,
    /// A DICOMDIR's directory records.
    Directory,
}

impl Location {
    /// All locations, in order.
    pub const ALL: [Location; 13] = [
        Location::Standard,
        Location::Sequence,
        Location::PrivateSafe,
        Location::PrivateUnknown,
        Location::FreeText,
        Location::Overlay,
        Location::Uid,
        Location::Pixels,
        Location::FileName,
        Location::FolderName,
        Location::Meta,
        Location::NonDicom,
        Location::Directory,
    ];

    /// The kebab-case name used in keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            Location::Standard => "standard",
            Location::Sequence => "sequence",
            Location::PrivateSafe => "private-safe",
            Location::PrivateUnknown => "private-unknown",
            Location::FreeText => "free-text",
            Location::Overlay => "overlay",
            Location::Uid => "uid",
            Location::Pixels => "pixels",
            Location::FileName => "file-name",
            Location::FolderName => "folder-name",
            Location::Meta => "meta",
            Location::NonDicom => "non-dicom",
            Location::Directory => "directory",
        }
    }
}

/// One identifier of one patient (or of the site: institution, device serial).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identifier {
    /// The patient it belongs to; `None` for site identifiers (institution, station, serials).
    pub patient: Option<usize>,
    /// Its HIPAA class.
    pub hipaa: Hipaa,
    /// What it is (`patient-name`, `patient-id`, `birth-date`, `accession`, `phone`,
    /// `study-uid`, ...).
    pub kind: String,
    /// The value as planted in attributes.
    pub value: String,
    /// Every written form a checker should search for (the value itself, name parts, other
    /// date spellings); case-insensitive, matched as whole words or numbers. Non-ASCII forms
    /// are searched in every character set the corpus uses.
    pub forms: Vec<String>,
}

/// What a de-identifier should do with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Write a de-identified copy.
    Write,
    /// Do not release it as it is: it must be absent from the output, or (for burned-in text
    /// and DICOMDIRs) present only with every planted identifier gone.
    HoldBack,
}

/// What kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A Part 10 DICOM file.
    Dicom,
    /// A data set without preamble and file meta group (implicit VR little endian), as older
    /// systems write them.
    NoPreamble,
    /// A Part 10 file cut short.
    Truncated,
    /// Not DICOM at all.
    NotDicom,
    /// A DICOMDIR (media storage directory).
    Dicomdir,
}

/// One file of the corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct File {
    /// Path relative to the corpus root, `/`-separated.
    pub path: String,
    /// What kind of file it is.
    pub kind: FileKind,
    /// What a de-identifier should do with it.
    pub expect: Expect,
    /// Why, in a few words, when it should be held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Index into [`Key::patients`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<usize>,
    /// DICOM facts, for DICOM files (including truncated ones and DICOMDIRs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom: Option<DicomFacts>,
    /// Where identifiers were planted in this file.
    pub plants: Vec<Plant>,
    /// UIDs in this file whose consistency a checker verifies (every occurrence of one
    /// original UID, in any file, must map to one new UID).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<UidUse>,
    /// References from this file to other files' SOP instances.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// The pixel data, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<Pixels>,
    /// Boxes of text burned into the pixels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub burned_in: Vec<BurnedBox>,
    /// SHA-256 of the whole file, so a copied file can be recognised whatever its name.
    pub sha256: String,
}

/// DICOM facts of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DicomFacts {
    /// Modality.
    pub modality: String,
    /// SOP Class UID.
    pub sop_class: String,
    /// The original SOP Instance UID.
    pub sop_instance_uid: String,
    /// The original Study Instance UID.
    pub study_uid: String,
    /// The original Series Instance UID.
    pub series_uid: String,
    /// Transfer syntax UID.
    pub transfer_syntax: String,
    /// Series Number: unique in the whole corpus, so that with Instance Number and the SOP
    /// Class UID (none of which identify anyone, and which de-identifiers keep) it finds the
    /// file's de-identified copy whatever that copy is called.
    pub series_number: i32,
    /// Instance Number.
    pub instance_number: i32,
    /// The character set (Specific Character Set), empty for the default repertoire.
    pub charset: String,
}

/// One identifier planted at one place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plant {
    /// Index into [`Key::identifiers`].
    pub identifier: usize,
    /// The kind of place.
    pub location: Location,
    /// The attribute path (scanner notation), the file path for names, `pixels` for burned-in
    /// text.
    pub path: String,
    /// Sequence depth of the attribute (0 at top level).
    pub depth: u32,
    /// For identity that is not text (an overlay bitmap with text drawn in it): SHA-256 of the
    /// value as planted; a copy holding these very bytes still shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One use of an original UID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UidUse {
    /// Attribute path.
    pub path: String,
    /// The original UID.
    pub value: String,
}

/// A reference from one object to another's SOP instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    /// Path of the Referenced SOP Instance UID in this file.
    pub path: String,
    /// Index into [`Key::files`] of the referenced object.
    pub target: usize,
}

/// The pixel data of an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pixels {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub columns: u16,
    /// Number of frames.
    pub frames: u32,
    /// Samples per pixel.
    pub samples: u16,
    /// Bits allocated.
    pub bits_allocated: u16,
    /// Photometric interpretation as stored.
    pub photometric: String,
    /// Whether the stored pixel data is lossy (its decoded values depend on the decoder).
    pub lossy: bool,
    /// SHA-256 of the Pixel Data value as stored (native bytes, little endian; or the
    /// concatenated fragments of encapsulated data, without the offset table).
    pub stored_sha256: String,
    /// SHA-256 of the decoded native pixels (little endian, frame after frame, samples
    /// interleaved), when lossless; a copy in another lossless transfer syntax decodes to
    /// these bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_sha256: Option<String>,
}

/// A box of burned-in text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BurnedBox {
    /// Index into [`Key::identifiers`] of the identifier drawn.
    pub identifier: usize,
    /// Frame (0-based); `None` for every frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// Left column.
    pub x: u16,
    /// Top row.
    pub y: u16,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The value every sample of the text's pixels was set to.
    pub ink: u32,
    /// How many pixels of the box were at least `ink - 32` (every sample) once the text was
    /// drawn: a decoded copy with at least half as many, over [`BurnedBox::background_pixels`],
    /// still shows the text. This holds through lossy compression, where hashes do not.
    pub ink_pixels: u32,
    /// The same count before the text was drawn.
    pub background_pixels: u32,
}
