//! JPEG baseline encoding (via `jpeg-encoder`) and JPEG decoding (via `jpeg-decoder`: baseline,
//! 8-bit extended, lossless with any predictor).
//!
//! Before `jpeg-decoder` sees a stream, its frame header is read here and checked against the
//! geometry (size, components, precision, process), so the decoder never allocates for a
//! header the data set contradicts. `jpeg-decoder` has `panic!`/`unwrap` paths on malformed
//! input; a panic inside it is caught and reported as invalid data.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::CodecError;
use crate::{Image, Photometric};

/// The frame header (SOFn) of a JPEG stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameHeader {
    /// The n of SOFn.
    pub process: u8,
    pub precision: u8,
    pub rows: u16,
    pub columns: u16,
    pub components: u8,
}

/// Reads markers from SOI up to the first frame header.
pub(super) fn frame_header(data: &[u8]) -> Result<FrameHeader, CodecError> {
    let invalid = |m: &str| CodecError::Invalid(format!("JPEG: {m}"));
    if data.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(invalid("no SOI marker at the start"));
    }
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes 0xFF.
        if data.get(i) != Some(&0xFF) {
            return Err(invalid("expected a marker"));
        }
        while data.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = data.get(i) else {
            return Err(invalid("stream ends before a frame header"));
        };
        i += 1;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 | 0xD9 | 0xDA | 0x00 => {
                return Err(invalid("no frame header before the scan"));
            }
            _ => {}
        }
        let (body, next) = super::marker_segment(data, i, &invalid)?;
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            if body.len() < 6 {
                return Err(invalid("short frame header"));
            }
            let components = body[5];
            return Ok(FrameHeader {
                process: marker - 0xC0,
                precision: body[0],
                rows: u16::from_be_bytes([body[1], body[2]]),
                columns: u16::from_be_bytes([body[3], body[4]]),
                components,
            });
        }
        i = next;
    }
}

/// Decodes one JPEG frame, appending native bytes in `g`'s geometry to `out`; returns the
/// photometric interpretation of the decoded pixels.
pub(super) fn decode_frame(
    ts: &str,
    g: &Image,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<Photometric, CodecError> {
    let h = frame_header(frame)?;
    let lossless = match h.process {
        0..=2 => false,
        3 => true,
        5..=7 => return Err(CodecError::Unsupported(format!("{ts}: hierarchical JPEG"))),
        _ => {
            return Err(CodecError::Unsupported(format!(
                "{ts}: arithmetic-coded JPEG"
            )));
        }
    };
    if h.rows != g.rows || h.columns != g.columns {
        return Err(CodecError::Invalid(format!(
            "JPEG frame is {}x{}, the data set says {}x{}",
            h.columns, h.rows, g.columns, g.rows
        )));
    }
    if u16::from(h.components) != g.samples || !(h.components == 1 || h.components == 3) {
        return Err(CodecError::Invalid(format!(
            "JPEG frame has {} components, the data set says {} samples",
            h.components, g.samples
        )));
    }
    if !lossless && h.precision != 8 {
        return Err(CodecError::Unsupported(format!(
            "{ts}: {}-bit DCT JPEG",
            h.precision
        )));
    }
    if !(2..=16).contains(&h.precision) || u16::from(h.precision) > g.bits_allocated {
        return Err(CodecError::Invalid(format!(
            "JPEG precision {} with bits allocated {}",
            h.precision, g.bits_allocated
        )));
    }
    let pixels = usize::from(g.rows) * usize::from(g.columns) * usize::from(g.samples);
    // jpeg-decoder gives one byte per sample at precision 8, two (native order) otherwise.
    let wide = h.precision != 8;
    let expected = pixels * if wide { 2 } else { 1 };

    let mut decoder = jpeg_decoder::Decoder::new(frame);
    decoder.set_max_decoding_buffer_size(expected.saturating_mul(2).max(1 << 16));
    if !lossless && h.components == 3 && g.photometric.is_ybr() {
        decoder.set_color_transform(jpeg_decoder::ColorTransform::YCbCr);
    }
    let decoded = match catch_unwind(AssertUnwindSafe(|| decoder.decode())) {
        Ok(Ok(d)) => d,
        Ok(Err(jpeg_decoder::Error::Unsupported(feature))) => {
            return Err(CodecError::Unsupported(format!("{ts}: {feature:?}")));
        }
        Ok(Err(e)) => return Err(CodecError::Invalid(format!("JPEG: {e}"))),
        Err(_) => {
            return Err(CodecError::Invalid(
                "JPEG: the decoder gave up (panicked)".into(),
            ));
        }
    };
    if decoded.len() != expected {
        return Err(CodecError::Invalid(format!(
            "JPEG decoded to {} bytes, expected {}",
            decoded.len(),
            expected
        )));
    }
    let bps = g.bytes_per_sample();
    let sign_extend = g.signed && lossless && g.bits_stored < g.bits_allocated;
    let stored = u32::from(g.bits_stored);
    out.reserve(pixels * bps);
    for k in 0..pixels {
        // jpeg-decoder writes 16-bit samples in native byte order.
        super::push_sample(out, &decoded, k, wide, sign_extend, stored, bps);
    }
    Ok(if h.components == 3 && !lossless {
        Photometric::Rgb
    } else {
        g.photometric
    })
}

/// Encodes every frame of an 8-bit image as JPEG baseline; returns the fragments and the
/// photometric interpretation to store.
pub(super) fn encode_baseline(
    img: &Image,
    quality: u8,
) -> Result<(Vec<Vec<u8>>, Photometric), CodecError> {
    if img.bits_allocated != 8 || img.bits_stored != 8 || img.signed {
        return Err(CodecError::Geometry(format!(
            "JPEG baseline takes unsigned 8-bit samples, not {} bits stored in {}{}",
            img.bits_stored,
            img.bits_allocated,
            if img.signed { ", signed" } else { "" }
        )));
    }
    let (color, photometric) = match (img.samples, img.photometric) {
        (1, Photometric::Monochrome1 | Photometric::Monochrome2) => {
            (jpeg_encoder::ColorType::Luma, img.photometric)
        }
        (3, Photometric::Rgb) => (jpeg_encoder::ColorType::Rgb, Photometric::YbrFull422),
        (3, Photometric::YbrFull) => (jpeg_encoder::ColorType::Ycbcr, Photometric::YbrFull422),
        (s, p) => {
            return Err(CodecError::Geometry(format!(
                "JPEG baseline here takes MONOCHROME1/2 or RGB/YBR_FULL, not {s} samples of {}",
                p.as_str()
            )));
        }
    };
    let quality = quality.clamp(1, 100);
    let fragments = img
        .data
        .chunks_exact(img.frame_len())
        .map(|frame| {
            let mut out = Vec::new();
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
            if img.samples == 3 {
                // 4:2:2, chrominance halved horizontally: what YBR_FULL_422 says (PS3.5 8.2.1).
                encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_2);
            }
            encoder
                .encode(frame, img.columns, img.rows, color)
                .map_err(|e| CodecError::Geometry(format!("JPEG encoder: {e}")))?;
            Ok(out)
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    Ok((fragments, photometric))
}
