//! The DICOM PS3.15 Annex E Application Level Confidentiality Profile, as compiled data.
//!
//! Tables E.1-1 (attributes and their action codes per option), E.1-1a (the codes) and E.3.10-1
//! (safe private attributes) are vendored under `data/` with their edition and `content_sha256`
//! and compiled into statics by `build.rs`; no tag list in this crate is typed by hand.
//!
//! This crate answers one question: *what does the profile, with a given set of options, say
//! to do with this attribute?* It does no I/O and knows nothing of DICOM objects.
//!
//! ```
//! use umbra_profile::{lookup, Lookup, OptionSet, ProfileOption, Action};
//! let Lookup::Public(row) = lookup(0x0008, 0x0020) else { panic!() }; // Study Date
//! assert_eq!(row.action(OptionSet::EMPTY, None), Action::Empty);
//! let opts = OptionSet::EMPTY.with(ProfileOption::RetainLongitudinalModifiedDates);
//! assert_eq!(row.action(opts, None), Action::Clean);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod generated {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/tables.rs"));
}

pub use generated::{
    ADDITION_ROWS, E11_ROW_COUNT, E11_ROWS, E11_SHA256, E11_WILDCARD_ROWS, E3101_ROW_COUNT,
    E3101_SHA256, EDITION, IOD_TYPES, IOD_TYPES_SOURCE, SAFE_PRIVATE,
};

/// An action code of Table E.1-1a, as written in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// Replace with a non-zero length dummy value consistent with the VR.
    D,
    /// Replace with a zero length value (or a dummy).
    Z,
    /// Remove.
    X,
    /// Keep (sequences are cleaned: their items still go through the profile).
    K,
    /// Clean: replace with values of similar meaning known not to identify.
    C,
    /// Replace with a non-zero length UID, consistent within a set of instances.
    U,
    /// Z unless D is required (Type 2 versus Type 1).
    ZD,
    /// X unless Z is required (Type 3 versus Type 2).
    XZ,
    /// X unless D is required (Type 3 versus Type 1).
    XD,
    /// X unless Z or D is required (Type 3 versus 2 versus 1).
    XZD,
    /// X unless Z or replacement of contained instance UIDs is required (`X/Z/U*`).
    XZU,
}

impl Code {
    /// The code as the standard writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::D => "D",
            Code::Z => "Z",
            Code::X => "X",
            Code::K => "K",
            Code::C => "C",
            Code::U => "U",
            Code::ZD => "Z/D",
            Code::XZ => "X/Z",
            Code::XD => "X/D",
            Code::XZD => "X/Z/D",
            Code::XZU => "X/Z/U*",
        }
    }
}

/// What to do with one attribute, after options and combined codes are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Remove the attribute (X).
    Remove,
    /// Keep with a zero-length value (Z); identifiers may carry a keyed pseudonym instead.
    Empty,
    /// Replace with a dummy value consistent with the VR (D); identifiers get a keyed pseudonym.
    Dummy,
    /// Keep the value (K). Sequence items are still processed.
    Keep,
    /// Clean the value (C): shift dates, scrub text, process sequence items in cleaning mode.
    Clean,
    /// Replace UIDs with keyed UIDs (U); for sequences, keep items and process them.
    ReplaceUid,
}

/// Attribute type within an IOD (PS3.3), as far as the resolution of combined codes needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrType {
    /// Type 1: required, non-empty.
    T1,
    /// Type 1C: conditionally required, non-empty.
    T1C,
    /// Type 2: required, may be empty.
    T2,
    /// Type 2C: conditionally required, may be empty.
    T2C,
    /// Type 3: optional.
    T3,
}

/// Resolves a table code to an action.
///
/// Combined codes are resolved by the attribute's type in the object's IOD when it is known
/// (`attr_type` is `Some`, or `iod_known` with the attribute absent from the IOD); otherwise by
/// the safer choice. The resolution, documented in ARCHITECTURE.md:
///
/// | code    | Type 1/1C | Type 2/2C | Type 3 or not in IOD | IOD unknown |
/// |---------|-----------|-----------|----------------------|-------------|
/// | Z/D     | D         | Z         | Z                    | D           |
/// | X/Z     | Z         | Z         | X                    | X           |
/// | X/D     | D         | D         | X                    | X           |
/// | X/Z/D   | D         | Z         | X                    | X           |
/// | X/Z/U*  | U         | U         | U                    | U           |
///
/// `X/Z/U*` always resolves to U: the sequence is kept and the UIDs in it are replaced, because
/// references between objects are what make a de-identified study usable. Z/D with an unknown
/// IOD takes D: a dummy carries no more information than an empty value and never breaks a
/// Type 1 requirement.
pub fn resolve(code: Code, iod: IodKnowledge) -> Action {
    use AttrType::*;
    match code {
        Code::D => Action::Dummy,
        Code::Z => Action::Empty,
        Code::X => Action::Remove,
        Code::K => Action::Keep,
        Code::C => Action::Clean,
        Code::U | Code::XZU => Action::ReplaceUid,
        Code::ZD => match iod {
            IodKnowledge::Type(T1 | T1C) | IodKnowledge::Unknown => Action::Dummy,
            _ => Action::Empty,
        },
        Code::XZ => match iod {
            IodKnowledge::Type(T1 | T1C | T2 | T2C) => Action::Empty,
            _ => Action::Remove,
        },
        Code::XD => match iod {
            IodKnowledge::Type(T1 | T1C | T2 | T2C) => Action::Dummy,
            _ => Action::Remove,
        },
        Code::XZD => match iod {
            IodKnowledge::Type(T1 | T1C) => Action::Dummy,
            IodKnowledge::Type(T2 | T2C) => Action::Empty,
            _ => Action::Remove,
        },
    }
}

/// What is known of an attribute's type at the place it occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IodKnowledge {
    /// The IOD is known and lists the attribute with this type.
    Type(AttrType),
    /// The IOD is known and does not list the attribute at the top level.
    NotInIod,
    /// The IOD is not known (unknown SOP class, or the attribute is nested in a sequence).
    Unknown,
}

/// One option of the profile (Table E.1-1 columns), named as the standard names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ProfileOption {
    /// Retain Safe Private Option.
    RetainSafePrivate = 0,
    /// Retain UIDs Option.
    RetainUids,
    /// Retain Device Identity Option.
    RetainDeviceIdentity,
    /// Retain Institution Identity Option.
    RetainInstitutionIdentity,
    /// Retain Patient Characteristics Option.
    RetainPatientCharacteristics,
    /// Retain Longitudinal Temporal Information With Full Dates Option.
    RetainLongitudinalFullDates,
    /// Retain Longitudinal Temporal Information With Modified Dates Option.
    RetainLongitudinalModifiedDates,
    /// Clean Descriptors Option.
    CleanDescriptors,
    /// Clean Structured Content Option.
    CleanStructuredContent,
    /// Clean Graphics Option.
    CleanGraphics,
    /// Clean Pixel Data Option: burned-in text is removed from the pixels (not a column of
    /// Table E.1-1; it changes what is done to pixel data, not to attributes).
    CleanPixelData,
    /// Clean Recognizable Visual Features Option: faces are removed from head CT and MR (not a
    /// column of Table E.1-1 either).
    CleanRecognizableVisualFeatures,
}

impl ProfileOption {
    /// Every option this crate implements.
    pub const ALL: [ProfileOption; 12] = [
        ProfileOption::RetainSafePrivate,
        ProfileOption::RetainUids,
        ProfileOption::RetainDeviceIdentity,
        ProfileOption::RetainInstitutionIdentity,
        ProfileOption::RetainPatientCharacteristics,
        ProfileOption::RetainLongitudinalFullDates,
        ProfileOption::RetainLongitudinalModifiedDates,
        ProfileOption::CleanDescriptors,
        ProfileOption::CleanStructuredContent,
        ProfileOption::CleanGraphics,
        ProfileOption::CleanPixelData,
        ProfileOption::CleanRecognizableVisualFeatures,
    ];

    /// The option's command-line name: the standard's name in kebab-case.
    pub fn name(self) -> &'static str {
        match self {
            ProfileOption::RetainSafePrivate => "retain-safe-private",
            ProfileOption::RetainUids => "retain-uids",
            ProfileOption::RetainDeviceIdentity => "retain-device-identity",
            ProfileOption::RetainInstitutionIdentity => "retain-institution-identity",
            ProfileOption::RetainPatientCharacteristics => "retain-patient-characteristics",
            ProfileOption::RetainLongitudinalFullDates => "retain-longitudinal-full-dates",
            ProfileOption::RetainLongitudinalModifiedDates => "retain-longitudinal-modified-dates",
            ProfileOption::CleanDescriptors => "clean-descriptors",
            ProfileOption::CleanStructuredContent => "clean-structured-content",
            ProfileOption::CleanGraphics => "clean-graphics",
            ProfileOption::CleanPixelData => "clean-pixel-data",
            ProfileOption::CleanRecognizableVisualFeatures => "clean-recognizable-visual-features",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The code and meaning of this option in PS3.16 CID 7050 (De-identification Method).
    pub fn cid7050(self) -> (&'static str, &'static str) {
        match self {
            ProfileOption::CleanPixelData => ("113101", "Clean Pixel Data Option"),
            ProfileOption::CleanRecognizableVisualFeatures => {
                ("113102", "Clean Recognizable Visual Features Option")
            }
            ProfileOption::CleanGraphics => ("113103", "Clean Graphics Option"),
            ProfileOption::CleanStructuredContent => ("113104", "Clean Structured Content Option"),
            ProfileOption::CleanDescriptors => ("113105", "Clean Descriptors Option"),
            ProfileOption::RetainLongitudinalFullDates => (
                "113106",
                "Retain Longitudinal Temporal Information Full Dates Option",
            ),
            ProfileOption::RetainLongitudinalModifiedDates => (
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ),
            ProfileOption::RetainPatientCharacteristics => {
                ("113108", "Retain Patient Characteristics Option")
            }
            ProfileOption::RetainDeviceIdentity => ("113109", "Retain Device Identity Option"),
            ProfileOption::RetainUids => ("113110", "Retain UIDs Option"),
            ProfileOption::RetainSafePrivate => ("113111", "Retain Safe Private Option"),
            ProfileOption::RetainInstitutionIdentity => {
                ("113112", "Retain Institution Identity Option")
            }
        }
    }
}

/// CID 7050 code of the Basic Application Level Confidentiality Profile itself.
pub const BASIC_PROFILE_CODE: (&str, &str) =
    ("113100", "Basic Application Confidentiality Profile");

/// Options of the standard this build does not implement yet, with the reason given to users.
pub const NOT_YET_SUPPORTED: &[(&str, &str)] = &[];

/// A set of options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OptionSet(u16);

impl OptionSet {
    /// No option: the Basic Profile alone.
    pub const EMPTY: OptionSet = OptionSet(0);

    /// This set with `opt` added.
    #[must_use]
    pub const fn with(self, opt: ProfileOption) -> Self {
        OptionSet(self.0 | (1 << opt as u8))
    }

    /// This set without `opt`.
    #[must_use]
    pub const fn without(self, opt: ProfileOption) -> Self {
        OptionSet(self.0 & !(1 << opt as u8))
    }

    /// Whether `opt` is in the set.
    pub const fn contains(self, opt: ProfileOption) -> bool {
        self.0 & (1 << opt as u8) != 0
    }

    /// The set named by `names` (the standard's option names in kebab-case, as users write
    /// them). Refuses unknown names, options this build does not implement, and the two
    /// longitudinal date options together; the error is one line for the user.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<OptionSet, String> {
        let mut set = OptionSet::EMPTY;
        for n in names {
            let n = n.as_ref();
            if let Some((_, why)) = NOT_YET_SUPPORTED.iter().find(|(name, _)| *name == n) {
                return Err(format!("option {n} is not available yet: {why}"));
            }
            let opt = ProfileOption::from_name(n).ok_or_else(|| {
                let known: Vec<&str> = ProfileOption::ALL.iter().map(|o| o.name()).collect();
                format!("unknown option {n:?}; known options: {}", known.join(", "))
            })?;
            set = set.with(opt);
        }
        if set.contains(ProfileOption::RetainLongitudinalFullDates)
            && set.contains(ProfileOption::RetainLongitudinalModifiedDates)
        {
            return Err(
                "retain-longitudinal-full-dates and retain-longitudinal-modified-dates \
                        exclude each other"
                    .into(),
            );
        }
        Ok(set)
    }

    /// The options in the set, in the standard's column order.
    pub fn iter(self) -> impl Iterator<Item = ProfileOption> {
        ProfileOption::ALL
            .into_iter()
            .filter(move |o| self.contains(*o))
    }
}

impl FromIterator<ProfileOption> for OptionSet {
    fn from_iter<I: IntoIterator<Item = ProfileOption>>(iter: I) -> Self {
        iter.into_iter().fold(OptionSet::EMPTY, OptionSet::with)
    }
}

/// One row of Table E.1-1.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    /// `(group << 16) | element`; 0 for wildcard and private rows (see [`WildcardRow`]).
    pub tag: u32,
    /// Attribute name.
    pub name: &'static str,
    /// Basic Profile code.
    pub basic: Code,
    /// Codes of the options that change the action, as (option, code).
    pub options: &'static [(ProfileOption, Code)],
    /// Retired in the standard.
    pub retired: bool,
    /// Used in a standard IOD.
    pub in_standard_iod: bool,
}

impl Row {
    /// The code in force for this row under `opts`.
    ///
    /// When several enabled options name a code for the row, the more protective one wins:
    /// C (clean) over K (keep). E.g. a device's calibration date under both
    /// `retain-device-identity` (K) and `retain-longitudinal-modified-dates` (C) is shifted.
    pub fn code(&self, opts: OptionSet) -> Code {
        let mut chosen: Option<Code> = None;
        for &(opt, code) in self.options {
            if opts.contains(opt) {
                chosen = Some(match (chosen, code) {
                    (Some(Code::C), _) | (_, Code::C) => Code::C,
                    _ => code,
                });
            }
        }
        chosen.unwrap_or(self.basic)
    }

    /// The resolved action for this row under `opts`, knowing what is known of the IOD.
    pub fn action(&self, opts: OptionSet, iod: Option<IodKnowledge>) -> Action {
        resolve(self.code(opts), iod.unwrap_or(IodKnowledge::Unknown))
    }
}

/// A Table E.1-1 row whose tag has `x` wildcards, e.g. `(60xx,3000)`.
#[derive(Debug)]
pub struct WildcardRow {
    /// Group bits that must match.
    pub group: u16,
    /// Mask of the fixed group bits.
    pub group_mask: u16,
    /// Element bits that must match.
    pub element: u16,
    /// Mask of the fixed element bits.
    pub element_mask: u16,
    /// The row.
    pub row: Row,
}

impl WildcardRow {
    /// Whether the tag matches. Repeating groups (50xx, 60xx) are even groups only.
    pub fn matches(&self, group: u16, element: u16) -> bool {
        group & 1 == 0
            && group & self.group_mask == self.group
            && element & self.element_mask == self.element
    }
}

/// One row of Table E.3.10-1: a private attribute known to be safe.
#[derive(Debug)]
pub struct SafePrivate {
    /// Private group.
    pub group: u16,
    /// Private Creator value (trimmed).
    pub creator: &'static str,
    /// Element offset within the creator's block (the `ee` of `(gggg,xxee)`).
    pub offset: u8,
    /// VR as listed by the standard.
    pub vr: &'static str,
}

/// Types of the combined-code attributes at the top level of one IOD.
#[derive(Debug)]
pub struct IodTypes {
    /// Storage SOP Class UID.
    pub sop_class: &'static str,
    /// (tag, type), sorted by tag.
    pub types: &'static [(u32, AttrType)],
}

/// What Table E.1-1 says about a tag.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// A public attribute listed in the table (fixed or wildcard row).
    Public(&'static Row),
    /// A private attribute (odd group): the `(gggg,eeee)` row applies.
    Private(&'static Row),
    /// A public attribute the table does not list: the standard keeps it.
    NotListed,
}

/// Looks a tag up in Table E.1-1, then in Umbra's documented additions (`data/additions.json`).
pub fn lookup(group: u16, element: u16) -> Lookup {
    if group & 1 == 1 {
        return Lookup::Private(&generated::E11_PRIVATE_ROW);
    }
    let tag = ((group as u32) << 16) | element as u32;
    if let Ok(i) = E11_ROWS.binary_search_by_key(&tag, |r| r.tag) {
        return Lookup::Public(&E11_ROWS[i]);
    }
    if let Ok(i) = ADDITION_ROWS.binary_search_by_key(&tag, |r| r.tag) {
        return Lookup::Public(&ADDITION_ROWS[i]);
    }
    E11_WILDCARD_ROWS
        .iter()
        .find(|w| w.matches(group, element))
        .map_or(Lookup::NotListed, |w| Lookup::Public(&w.row))
}

/// Whether Table E.3.10-1 lists `(group, xx offset)` under this private creator as safe.
pub fn safe_private(group: u16, creator: &str, offset: u8) -> Option<&'static SafePrivate> {
    let creator = creator.trim_matches(|c: char| c == ' ' || c == '\0');
    SAFE_PRIVATE
        .binary_search_by(|s| (s.group, s.creator, s.offset).cmp(&(group, creator, offset)))
        .ok()
        .map(|i| &SAFE_PRIVATE[i])
}

/// The types of combined-code attributes for a SOP class, if its IOD is known.
pub fn iod_types(sop_class_uid: &str) -> Option<&'static IodTypes> {
    let uid = sop_class_uid.trim_end_matches(['\0', ' ']);
    IOD_TYPES
        .binary_search_by(|i| i.sop_class.cmp(uid))
        .ok()
        .map(|i| &IOD_TYPES[i])
}

impl IodTypes {
    /// What this IOD says of a top-level attribute's type.
    pub fn knowledge(&self, group: u16, element: u16) -> IodKnowledge {
        let tag = ((group as u32) << 16) | element as u32;
        match self.types.binary_search_by_key(&tag, |(t, _)| *t) {
            Ok(i) => IodKnowledge::Type(self.types[i].1),
            Err(_) => IodKnowledge::NotInIod,
        }
    }
}
