//! The per-object de-identification transform.
//!
//! [`Deidentifier::deidentify`] takes one parsed DICOM data set and either returns its
//! de-identified copy (with a rebuilt file meta group) or a [`HoldBack`] saying why it must not
//! be released. It is a pure function of the object, the key and the [`Config`]: no files,
//! sockets or clocks, so the same input and key give the same bytes on any machine, in any run.
//!
//! One trip per object: gate (fail-closed checks) → harvest identifiers → walk every element at
//! every depth applying the profile → add markers → rebuild the meta group.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod charset;
pub mod dates;
mod deid;
pub mod face;
pub mod key;
pub mod scrub;

pub use deid::{
    Config, DEFAULT_AT_RISK_MODALITIES, Deidentified, Deidentifier, Face, HoldBack, HoldKind,
    is_valid_uid,
};
pub use face::{FacePolicy, FaceRisk};
pub use key::{Key, KeyError, PatientKey, Pseudonymizer};
pub use umbra_profile::{NOT_YET_SUPPORTED, OptionSet, ProfileOption};

/// Umbra's Implementation Class UID for the file meta group (a `2.25` UUID-derived UID).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.211435303413202689488341865374591224182";
/// Umbra's Implementation Version Name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("UMBRA_", env!("CARGO_PKG_VERSION"));
