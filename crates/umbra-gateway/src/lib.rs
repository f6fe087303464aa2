//! The de-identifying gateway (`umbra serve`): DIMSE and DICOMweb listeners receive objects
//! into a durable spool; a job queue in SQLite takes each through route → de-identify → check
//! → forward, per destination, with retries; what cannot be released goes to quarantine with
//! its reason.
//!
//! This crate holds no de-identification logic: it calls `umbra-files` (the same trip as
//! `umbra deid`) with each destination's own engine and key.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod serve;
pub mod spool;
pub mod tls;

pub use config::{Config, ConfigError};
pub use serve::{Gateway, StartError};
