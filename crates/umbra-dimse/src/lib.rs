//! DIMSE messages over dicom-ul's upper-layer PDUs: a storage SCP that streams each received
//! data set into a caller's sink, a listener serving associations on threads, and a storage
//! SCU that streams Part 10 files to a peer.
//!
//! dicom-ul provides the PDU types and their encoding; this crate owns the association state
//! machine so that it can bound every length a peer declares, stream P-DATA fragments without
//! holding an object in memory, answer with the exact rejection reasons a gateway needs, and
//! run over TLS (feature `tls`).
//!
//! Logs carry AE titles, peers, SOP Class UIDs and statuses, never SOP Instance UIDs or data
//! set contents.

#![deny(missing_docs)]

mod assoc;
pub mod commands;
mod error;
mod listener;
mod part10;
mod pdu;
mod scp;
mod scu;
pub mod sop;
mod status;

pub use assoc::{AcceptedContext, RejectReason};
pub use commands::CommandSet;
pub use error::Error;
pub use listener::{Listener, ShutdownHandle};
pub use part10::{
    IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, Part10Meta, parse_part10_meta,
    part10_header,
};
pub use pdu::Stream;
pub use scp::{
    AssociationInfo, AssociationSummary, Scp, ScpConfig, StoreHandler, StoreRequest, StoreSink,
    serve_association,
};
pub use scu::{PeerConfig, Proposals, Scu, StoreResponse};
pub use sop::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, VERIFICATION};
pub use status::Status;
