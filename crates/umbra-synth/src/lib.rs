//! Synthetic DICOM corpora whose every identifier is known, and a scorer for any tool's output.
//!
//! [`generate`] makes studies of many modalities, transfer syntaxes and character sets with
//! synthetic identity planted in attributes, sequences, private blocks, free text, overlays,
//! UIDs, pixels and file names, plus hazards (truncated files, non-DICOM files, DICOMDIRs, files
//! without preamble), and writes the answer [`key`]. [`check`] reads a key and a de-identifier's
//! output folder and scores it: leaks by HIPAA class and by place, UID and pseudonym
//! consistency, references, pixels, hold-backs.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod generate;
pub mod heads;
pub mod key;
mod node;
pub mod people;

pub use generate::{GenerateError, ORG_ROOT, Options, Profile, Sink, date_forms, generate};
pub mod check;
