//! Errors of the DIMSE layer.

use crate::commands::CommandError;

/// What went wrong on an association or with an object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(std::io::Error),
    /// No data arrived (or could be sent) within the configured timeout.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// The peer declared a PDU longer than allowed.
    #[error("peer sent a PDU of {length} bytes, more than the limit of {max}")]
    PduTooLarge {
        /// declared length
        length: u32,
        /// the limit in force
        max: u32,
    },
    /// A PDU that does not parse.
    #[error("malformed PDU: {0}")]
    MalformedPdu(String),
    /// A PDU that is not allowed in the current state.
    #[error("unexpected PDU: {0}")]
    UnexpectedPdu(String),
    /// A command set that does not parse or lacks required attributes.
    #[error("bad command set: {0}")]
    Command(#[from] CommandError),
    /// Any other violation of the DIMSE or upper-layer protocol by the peer.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer rejected the association.
    #[error("association rejected ({result}): {reason}")]
    Rejected {
        /// "permanent" or "transient"
        result: String,
        /// the source and reason as the peer gave them
        reason: String,
    },
    /// The peer aborted the association.
    #[error("association aborted by the peer")]
    Aborted,
    /// The peer accepted no presentation context for the object's SOP class in its transfer
    /// syntax. No transcoding is attempted.
    #[error(
        "no accepted presentation context for SOP class {sop_class} in transfer syntax {transfer_syntax}"
    )]
    NoPresentationContext {
        /// SOP Class UID of the object
        sop_class: String,
        /// the object's transfer syntax
        transfer_syntax: String,
    },
    /// More presentation contexts than one association can carry (128).
    #[error("{0} presentation contexts proposed, at most 128 fit one association")]
    TooManyPresentationContexts(usize),
    /// A file that is not a usable DICOM Part 10 file.
    #[error("not a usable Part 10 file: {0}")]
    Part10(String),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout,
            std::io::ErrorKind::UnexpectedEof => Error::Closed,
            _ => Error::Io(e),
        }
    }
}
