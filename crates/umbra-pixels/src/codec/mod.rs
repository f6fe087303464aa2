//! Pixel data encoders and decoders: the transfer syntaxes a pure-Rust program can write, and
//! those it can read.
//!
//! - Native (explicit VR little endian): the bytes as they are.
//! - RLE Lossless (PS3.5 Annex G): written and read here.
//! - JPEG Lossless, process 14, selection value 1 (ITU T.81 Annex H): written here, read with
//!   the `jpeg-decoder` crate (an independent implementation).
//! - JPEG Baseline (process 1): written with `jpeg-encoder`, read with `jpeg-decoder`.
//! - JPEG Extended (process 2 & 4): 8-bit read with `jpeg-decoder`; 12-bit (sequential DCT,
//!   Huffman, SOF1, or SOF0 at precision 12) with this crate's own decoder (`jpeg12.rs`): 1 or
//!   3 components, any sampling factors, restart intervals; a floating-point IDCT, so samples
//!   may differ by one from libjpeg's integer IDCT (checked in tests against DCMTK `dcmdjpeg`
//!   and GDCM `gdcmconv --raw`).
//! - JPEG 2000 (lossless .90, lossy .91): read only, with `jpeg2k` over `openjp2`, a Rust port
//!   of OpenJPEG (no C compiler step), under the feature `jpeg2000` (on by default). A raw
//!   code stream per frame (a JP2 file is taken too); components must not be subsampled; a
//!   code stream with a component transform (DICOM's YBR_ICT, YBR_RCT) decodes to RGB. Checked
//!   in tests against GDCM 3.2.6 `gdcmconv --raw`, bit for bit, on lossless, lossy and colour
//!   files.
//! - JPEG-LS (lossless .80, near-lossless .81): read only, with this crate's own decoder
//!   (`jpegls.rs`, ITU-T T.87), in every build: 1 or 3 components (interleave none, line or
//!   sample), 2 to 16 bits, NEAR > 0, preset parameters (LSE), restart intervals. Checked in
//!   tests bit for bit against DCMTK `dcmdjpls` (corpus images encoded by `dcmcjpls` in every
//!   interleave mode, lossless and near-lossless, default and preset thresholds), GDCM
//!   `gdcmconv --raw` (pydicom's JPEG-LS files) and, with the feature `charls` (off by
//!   default: it compiles CharLS, C++, with cmake), CharLS itself on random images. The
//!   feature only adds [`decode_with_charls`] for those comparisons: [`decode`] always uses
//!   the pure-Rust decoder.
//!
//! [`can_decode`] says which syntaxes this build reads.
//!
//! Checked by hand (not in tests, which use `jpeg-decoder` and PS3.5/TN1023 examples): RLE and
//! JPEG lossless output for 8-bit, 12-bit, 16-bit signed multi-frame and RGB images, wrapped
//! in DICOM files, decompresses to the same bytes with DCMTK (`dcmdrle`, `dcmdjpeg`) and
//! GDCM 3.2.6 (`gdcmconv --raw`).
//!
//! Decoding refuses, rather than allocates for, a declared image far larger than its encoded
//! bytes could hold (see [`decode`]).

#[cfg(feature = "jpeg2000")]
mod j2k;
#[cfg(feature = "charls")]
mod jls;
mod jpeg;
mod jpeg12;
mod jpegls;
mod lossless;

/// Appends decoded sample `idx` as `bps` little-endian bytes: byte `idx` of `decoded`, or (`wide`)
/// the native-order 16-bit word at `2 * idx`, as the JPEG decoders write them; sign-extended
/// from `stored` bits when `sign_extend`.
fn push_sample(
    out: &mut Vec<u8>,
    decoded: &[u8],
    idx: usize,
    wide: bool,
    sign_extend: bool,
    stored: u32,
    bps: usize,
) {
    let mut v = if wide {
        u32::from(u16::from_ne_bytes([decoded[2 * idx], decoded[2 * idx + 1]]))
    } else {
        u32::from(decoded[idx])
    };
    if sign_extend && v & (1 << (stored - 1)) != 0 {
        v |= !((1u32 << stored) - 1);
    }
    if bps == 1 {
        out.push(v as u8);
    } else {
        out.extend_from_slice(&(v as u16).to_le_bytes());
    }
}
mod rle;

pub use rle::{packbits_decode, packbits_encode};

use crate::{Image, Photometric};

/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// Implicit VR Little Endian.
pub const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
/// Explicit VR Big Endian (retired); the caller hands pixel data over already little endian.
pub const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
/// Deflated Explicit VR Little Endian; the caller hands pixel data over inflated.
pub const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
/// RLE Lossless.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG Baseline (Process 1).
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
/// JPEG Extended (Process 2 & 4), 8 or 12 bits.
pub const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
/// JPEG Lossless, Non-Hierarchical (Process 14), any predictor.
pub const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.57";
/// JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14, Selection Value 1).
pub const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
/// JPEG-LS Lossless.
pub const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
/// JPEG-LS Lossy (Near-Lossless).
pub const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";
/// JPEG 2000 Image Compression (Lossless Only); decoded with the `jpeg2000` feature.
pub const JPEG_2000_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
/// JPEG 2000 Image Compression (lossless or lossy); decoded with the `jpeg2000` feature.
pub const JPEG_2000: &str = "1.2.840.10008.1.2.4.91";

/// Whether [`decode`] takes pixel data in `transfer_syntax` in this build (JPEG 2000 depends
/// on the Cargo feature `jpeg2000`, on by default). A `true` is no promise
/// for every image: hierarchical, progressive 12-bit and arithmetic-coded JPEG are still
/// refused as [`CodecError::Unsupported`] when met.
pub fn can_decode(transfer_syntax: &str) -> bool {
    let ts = transfer_syntax.trim_matches(|c: char| c == ' ' || c == '\0');
    let always = matches!(
        ts,
        EXPLICIT_VR_LITTLE_ENDIAN
            | IMPLICIT_VR_LITTLE_ENDIAN
            | EXPLICIT_VR_BIG_ENDIAN
            | DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN
            | RLE_LOSSLESS
            | JPEG_BASELINE
            | JPEG_EXTENDED
            | JPEG_LOSSLESS
            | JPEG_LOSSLESS_SV1
            | JPEG_LS_LOSSLESS
            | JPEG_LS_NEAR_LOSSLESS
    );
    always || (cfg!(feature = "jpeg2000") && matches!(ts, JPEG_2000_LOSSLESS | JPEG_2000))
}

/// A way to store pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Native pixels, Explicit VR Little Endian.
    Native,
    /// RLE Lossless.
    RleLossless,
    /// JPEG Baseline (8-bit only) at a quality of 1..=100.
    JpegBaseline {
        /// Encoder quality, 1 (worst) to 100 (best); 0 counts as 1, above 100 as 100.
        quality: u8,
    },
    /// JPEG Lossless, process 14, selection value 1.
    JpegLossless,
}

impl Codec {
    /// The transfer syntax UID the encoded pixel data is stored under.
    pub fn transfer_syntax(self) -> &'static str {
        match self {
            Codec::Native => EXPLICIT_VR_LITTLE_ENDIAN,
            Codec::RleLossless => RLE_LOSSLESS,
            Codec::JpegBaseline { .. } => JPEG_BASELINE,
            Codec::JpegLossless => JPEG_LOSSLESS_SV1,
        }
    }

    /// Whether decoding gives back something other than the encoded pixels (JPEG baseline).
    /// A data set holding lossy pixels must say so: Lossy Image Compression (0028,2110) `01`.
    pub fn is_lossy(self) -> bool {
        matches!(self, Codec::JpegBaseline { .. })
    }
}

/// Encoded pixel data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// One fragment per frame, each of even length (JPEG streams padded with one zero byte
    /// after EOI when odd). Native: one element holding all frames, padded with one zero byte
    /// when odd, as a Pixel Data value must be.
    pub fragments: Vec<Vec<u8>>,
    /// The Photometric Interpretation to store with it: the image's own, except colour JPEG
    /// baseline, which is stored as `YbrFull422` (PS3.5 8.2.1: chrominance subsampled 2:1
    /// horizontally).
    pub photometric: Photometric,
}

/// What went wrong encoding or decoding.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The transfer syntax (the UID, followed by `: detail` when only a part of the syntax,
    /// such as 12-bit JPEG extended, is out of reach) is not one this crate decodes.
    #[error("unsupported transfer syntax {0}")]
    Unsupported(String),
    /// The encoded bytes are not valid for the transfer syntax or do not match the geometry.
    #[error("invalid pixel data: {0}")]
    Invalid(String),
    /// The geometry (bits, samples, photometric, sizes) is outside what the codec handles, or
    /// the image's data does not match its geometry.
    #[error("unsupported geometry: {0}")]
    Geometry(String),
}

/// Checks what every codec needs: a non-empty geometry of 8 or 16 bits allocated.
/// The marker segment whose two-byte length starts at `data[at]`: its body, and where the next
/// marker starts. JPEG and JPEG-LS frame their segments alike (ITU-T T.81 B.1.1.4, T.87 C.1).
fn marker_segment<'a>(
    data: &'a [u8],
    at: usize,
    invalid: &dyn Fn(&str) -> CodecError,
) -> Result<(&'a [u8], usize), CodecError> {
    let Some(len) = data
        .get(at..at + 2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return Err(invalid("truncated marker segment"));
    };
    if len < 2 || at + len > data.len() {
        return Err(invalid("marker segment runs past the end"));
    }
    Ok((&data[at + 2..at + len], at + len))
}

fn check_geometry(g: &Image) -> Result<(), CodecError> {
    if g.rows == 0 || g.columns == 0 || g.samples == 0 || g.frames == 0 {
        return Err(CodecError::Geometry(format!(
            "empty image: {} rows, {} columns, {} samples, {} frames",
            g.rows, g.columns, g.samples, g.frames
        )));
    }
    if g.bits_allocated != 8 && g.bits_allocated != 16 {
        return Err(CodecError::Geometry(format!(
            "bits allocated {} (8 or 16 supported)",
            g.bits_allocated
        )));
    }
    if g.bits_stored == 0 || g.bits_stored > g.bits_allocated {
        return Err(CodecError::Geometry(format!(
            "bits stored {} with bits allocated {}",
            g.bits_stored, g.bits_allocated
        )));
    }
    Ok(())
}

fn total_len(g: &Image) -> Result<usize, CodecError> {
    g.frame_len()
        .checked_mul(g.frames as usize)
        .ok_or_else(|| CodecError::Geometry("image too large".into()))
}

fn pad_even(mut v: Vec<u8>) -> Vec<u8> {
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// Encodes `img` with `codec`.
///
/// Native and RLE take any geometry of 8 or 16 bits allocated (RLE: at most 15 byte planes,
/// i.e. up to 7 samples of 16 bits). JPEG lossless takes 1 or 3 samples, precision
/// `bits_stored` (2..=16; bits above it are dropped, and restored by sign extension for signed
/// images on decode). JPEG baseline takes 8 bits stored, 1 sample (MONOCHROME1/2) or 3 samples
/// (RGB, stored as YBR_FULL_422).
pub fn encode(img: &Image, codec: Codec) -> Result<Encoded, CodecError> {
    check_geometry(img)?;
    let total = total_len(img)?;
    if img.data.len() != total {
        return Err(CodecError::Geometry(format!(
            "data holds {} bytes, geometry says {}",
            img.data.len(),
            total
        )));
    }
    let frames = || img.data.chunks_exact(img.frame_len());
    match codec {
        Codec::Native => Ok(Encoded {
            fragments: vec![pad_even(img.data.clone())],
            photometric: img.photometric,
        }),
        Codec::RleLossless => {
            let fragments = frames()
                .map(|f| rle::encode_frame(img, f))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Encoded {
                fragments,
                photometric: img.photometric,
            })
        }
        Codec::JpegLossless => {
            let fragments = frames()
                .map(|f| lossless::encode_frame(img, f).map(pad_even))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Encoded {
                fragments,
                photometric: img.photometric,
            })
        }
        Codec::JpegBaseline { quality } => {
            let (fragments, photometric) = jpeg::encode_baseline(img, quality)?;
            Ok(Encoded {
                fragments: fragments.into_iter().map(pad_even).collect(),
                photometric,
            })
        }
    }
}

/// Decodes pixel data as stored in a data set.
///
/// `fragments` are the encapsulated frames (one per frame; the caller has dropped the basic
/// offset table and joined multi-fragment frames when it can; a single-frame image given
/// several fragments has them joined here), or for native syntaxes a single slice of the whole
/// value (already little endian: the caller converts big endian and inflates deflated data
/// sets). `geometry` gives rows, columns, samples, bits, sign, photometric and frames as the
/// data set says (its `data` is ignored).
///
/// Returns native little-endian interleaved pixels in the geometry given. JPEG baseline
/// colour decodes to RGB (photometric `Rgb`); JPEG lossless colour keeps the stored samples
/// and photometric; RLE always returns interleaved samples (its segments are planar by
/// definition). Signed JPEG lossless images with fewer bits stored than allocated come back
/// sign-extended. Native data may be longer than the geometry (padding): the excess is ignored.
///
/// JPEG 2000 (feature `jpeg2000`) and JPEG-LS return the samples as stored, interleaved, in the geometry's photometric, except JPEG 2000 code streams with a
/// component transform, which come back as RGB (photometric `Rgb`); signed JPEG-LS images with
/// fewer bits stored than allocated come back sign-extended.
///
/// Unsupported syntaxes (JPEG 2000 without its feature, HTJ2K, MPEG, ...) give
/// `Err(CodecError::Unsupported(ts))`; see [`can_decode`].
/// Never panics; refuses an image whose decoded size exceeds 4096 times its encoded size plus
/// 64 KiB per frame (no real encoding compresses that well), so garbage cannot make it allocate
/// gigabytes.
pub fn decode(
    transfer_syntax: &str,
    fragments: &[&[u8]],
    geometry: &Image,
) -> Result<Image, CodecError> {
    decode_with(transfer_syntax, fragments, geometry, false)
}

/// [`decode`], with JPEG-LS decoded by CharLS instead of this crate's decoder: kept to check
/// the two against each other (feature `charls`).
#[cfg(feature = "charls")]
#[doc(hidden)]
pub fn decode_with_charls(
    transfer_syntax: &str,
    fragments: &[&[u8]],
    geometry: &Image,
) -> Result<Image, CodecError> {
    decode_with(transfer_syntax, fragments, geometry, true)
}

fn decode_with(
    transfer_syntax: &str,
    fragments: &[&[u8]],
    geometry: &Image,
    #[cfg_attr(not(feature = "charls"), allow(unused_variables))] charls: bool,
) -> Result<Image, CodecError> {
    let ts = transfer_syntax.trim_matches(|c: char| c == ' ' || c == '\0');
    enum Kind {
        Native,
        Rle,
        Jpeg,
        #[cfg(feature = "jpeg2000")]
        J2k,
        JpegLs,
    }
    let kind = match ts {
        EXPLICIT_VR_LITTLE_ENDIAN
        | IMPLICIT_VR_LITTLE_ENDIAN
        | EXPLICIT_VR_BIG_ENDIAN
        | DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => Kind::Native,
        RLE_LOSSLESS => Kind::Rle,
        JPEG_BASELINE | JPEG_EXTENDED | JPEG_LOSSLESS | JPEG_LOSSLESS_SV1 => Kind::Jpeg,
        #[cfg(feature = "jpeg2000")]
        JPEG_2000_LOSSLESS | JPEG_2000 => Kind::J2k,
        JPEG_LS_LOSSLESS | JPEG_LS_NEAR_LOSSLESS => Kind::JpegLs,
        other => return Err(CodecError::Unsupported(other.to_string())),
    };
    check_geometry(geometry)?;
    let total = total_len(geometry)?;
    let mut out = Image {
        data: Vec::new(),
        ..geometry.clone()
    };
    if let Kind::Native = kind {
        let [value] = fragments else {
            return Err(CodecError::Invalid(format!(
                "native pixel data must be one value, got {} fragments",
                fragments.len()
            )));
        };
        let Some(bytes) = value.get(..total) else {
            return Err(CodecError::Invalid(format!(
                "native pixel data holds {} bytes, geometry needs {}",
                value.len(),
                total
            )));
        };
        out.data = bytes.to_vec();
        return Ok(out);
    }
    let joined;
    let frames: Vec<&[u8]> = if geometry.frames == 1 && fragments.len() > 1 {
        joined = fragments.concat();
        vec![&joined[..]]
    } else {
        fragments.to_vec()
    };
    if frames.len() != geometry.frames as usize {
        return Err(CodecError::Invalid(format!(
            "{} fragments for {} frames",
            frames.len(),
            geometry.frames
        )));
    }
    let frame_len = geometry.frame_len();
    for f in &frames {
        let limit = f.len().saturating_mul(4096).saturating_add(64 * 1024);
        if frame_len > limit {
            return Err(CodecError::Invalid(format!(
                "a frame of {frame_len} bytes cannot come from {} encoded bytes",
                f.len()
            )));
        }
    }
    out.data = Vec::with_capacity(total);
    for f in frames {
        match kind {
            Kind::Native => return Err(CodecError::Invalid("native data in frames".into())),
            Kind::Rle => rle::decode_frame(geometry, f, &mut out.data)?,
            Kind::Jpeg => {
                // 12-bit sequential DCT here, everything else through jpeg-decoder
                let twelve =
                    jpeg::frame_header(f).is_ok_and(|h| h.process <= 1 && h.precision == 12);
                out.photometric = if twelve {
                    jpeg12::decode_frame(geometry, f, &mut out.data)?
                } else {
                    jpeg::decode_frame(ts, geometry, f, &mut out.data)?
                }
            }
            #[cfg(feature = "jpeg2000")]
            Kind::J2k => out.photometric = j2k::decode_frame(geometry, f, &mut out.data)?,
            #[cfg(feature = "charls")]
            Kind::JpegLs if charls => {
                out.photometric = jls::decode_frame(geometry, f, &mut out.data)?
            }
            Kind::JpegLs => out.photometric = jpegls::decode_frame(ts, geometry, f, &mut out.data)?,
        }
    }
    Ok(out)
}
