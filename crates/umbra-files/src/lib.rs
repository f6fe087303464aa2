//! Files at the edges of the engine: finding inputs, reading DICOM (with or without a file meta
//! group), writing outputs atomically under pseudonymous paths, and the per-input run record.
//!
//! The engine ([`umbra_core`]) never sees a path; this crate never decides what to keep.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod face;
mod gate;
pub mod guard;
mod keyfile;
pub mod pixels;
mod read;
mod run;

pub use gate::{Gate, allow_for};
pub use keyfile::read_key_file;
pub use pixels::{Cleaned, Cleaner};
pub use read::{
    HEADER_FIRST_FROM, Input, RawPixelData, ReadError, ScanInput, input_from_bytes,
    input_from_bytes_at, parse_bytes, read_for_scan, read_input, read_input_at, read_input_with,
    read_object,
};
pub use run::{
    Encoded, Outcome, Produced, Record, Refused, RunOptions, Summary, UsageError, collect_inputs,
    deidentify_file, deidentify_file_with, deidentify_input, list_files, run,
};
