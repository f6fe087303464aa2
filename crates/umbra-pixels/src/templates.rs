//! A real image in syntaxes no pure-Rust encoder writes.
//!
//! pydicom's `MR_small` test image (64x64, 16 bits stored, signed, MONOCHROME2; MIT licence,
//! pydicom) as native pixels and as the single-fragment JPEG-LS lossless and JPEG 2000 lossless
//! code streams of `MR_small_jpeg_ls_lossless.dcm` and `MR_small_jp2klossless.dcm`. Both decode
//! to exactly the native pixels (checked with DCMTK and GDCM; see `data/README.md`). Used to
//! make synthetic objects in those transfer syntaxes.

use crate::{Image, Photometric};

const MR_SMALL: &[u8] = include_bytes!("../data/mr_small.raw");
const MR_SMALL_JLS: &[u8] = include_bytes!("../data/mr_small.jls");
const MR_SMALL_J2K: &[u8] = include_bytes!("../data/mr_small.j2k");

/// Transfer syntax of [`mr_small_jpeg_ls`]: JPEG-LS Lossless.
pub const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
/// Transfer syntax of [`mr_small_jpeg_2000`]: JPEG 2000 Image Compression (Lossless Only).
pub const JPEG_2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";

/// pydicom's MR_small: 64x64, 1 sample, 16 bits allocated and stored, signed, MONOCHROME2,
/// one frame, native little-endian pixels.
pub fn mr_small() -> Image {
    Image {
        rows: 64,
        columns: 64,
        samples: 1,
        bits_allocated: 16,
        bits_stored: 16,
        signed: true,
        photometric: Photometric::Monochrome2,
        frames: 1,
        data: MR_SMALL.to_vec(),
    }
}

/// MR_small as a JPEG-LS lossless code stream (one fragment, even length, SOI..EOI).
pub fn mr_small_jpeg_ls() -> &'static [u8] {
    MR_SMALL_JLS
}

/// MR_small as a JPEG 2000 lossless code stream (a raw J2K code stream, SOC..EOC; one
/// fragment, even length).
pub fn mr_small_jpeg_2000() -> &'static [u8] {
    MR_SMALL_J2K
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_geometry_matches_data() {
        let img = mr_small();
        assert_eq!(img.data.len(), img.frame_len());
        assert_eq!(img.frame_len(), 64 * 64 * 2);
        assert_eq!(mr_small_jpeg_ls().len() % 2, 0);
        assert_eq!(mr_small_jpeg_2000().len() % 2, 0);
    }
}
