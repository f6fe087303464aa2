//! Face removal for head CT and MR volumes.
//!
//! The crate is pure: it takes volumes as values and returns masks and values; the caller reads
//! and writes files. Modules:
//!
//! - [`volume`]: the voxel grid with its geometry in DICOM patient coordinates (LPS), and [`Mask`].
//! - [`morph`]: distance transforms, dilation, erosion, connected components, hole filling.
//! - [`nifti`]: NIfTI-1 single-file reading and writing (`.nii`, `.nii.gz`).
//! - [`head`]: does the volume show a head with a face, and which side is anterior.
//! - [`brain`]: brain masks for CT and MR.
//! - [`face`]: the defacing itself ([`deface`]).
//! - [`phantom`]: synthetic heads (and non-heads) with ground truth.
//! - [`eval`]: metrics and the linkage attack.

// Voxel code indexes several parallel arrays by the same linear index.
#![allow(clippy::needless_range_loop)]

pub mod brain;
pub mod eval;
pub mod face;
pub mod head;
pub mod morph;
pub mod nifti;
pub mod phantom;
mod rng;
pub mod volume;

pub use face::{DefaceOptions, DefaceStats, Defaced, deface};
pub use head::{Assessment, assess};
pub use volume::{AxisDir, Mask, Volume};

/// The kind of image, which decides the tissue values the engine expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modality {
    /// Computed tomography: values are Hounsfield units.
    Ct,
    /// Magnetic resonance: values are arbitrary intensities (T1-like contrast assumed).
    Mr,
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The volume's description is inconsistent (dimensions, voxel count, spacing, directions).
    #[error("invalid volume: {0}")]
    InvalidVolume(String),
    /// A mask does not have the volume's dimensions.
    #[error("mask dimensions {mask:?} differ from the volume's {volume:?}")]
    MaskDims {
        /// The mask's dimensions.
        mask: [usize; 3],
        /// The volume's dimensions.
        volume: [usize; 3],
    },
    /// The volume does not show a head with a face; nothing was changed.
    #[error("not a head with a face: {}", .0.reason)]
    NotAHead(Box<Assessment>),
}
