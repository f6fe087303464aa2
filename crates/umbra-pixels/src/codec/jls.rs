//! JPEG-LS decoding (1.2.840.10008.1.2.4.80 lossless, .81 near-lossless) through the `charls`
//! crate: bindings to CharLS (C++), compiled only with the `charls` feature, and used only by
//! `codec::decode_with_charls` to check the pure-Rust decoder (`jpegls.rs`) against it.
//!
//! Before CharLS sees a stream, its frame header (SOF55) and first scan header are read here
//! and checked against the geometry, so it never allocates for a header the data set
//! contradicts.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::CodecError;
use crate::{Image, Photometric};

fn invalid(m: impl std::fmt::Display) -> CodecError {
    CodecError::Invalid(format!("JPEG-LS: {m}"))
}

/// What the headers of a JPEG-LS stream say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub precision: u8,
    pub rows: u16,
    pub columns: u16,
    pub components: u8,
    /// Components in the first scan (1 for a three-component image: one scan per component,
    /// decoded as planes).
    pub scan_components: u8,
}

/// Reads markers from SOI up to the first scan header.
pub(super) fn header(data: &[u8]) -> Result<Header, CodecError> {
    if data.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(invalid("no SOI marker at the start"));
    }
    let mut i = 2;
    let mut frame: Option<Header> = None;
    loop {
        if data.get(i) != Some(&0xFF) {
            return Err(invalid("expected a marker"));
        }
        while data.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = data.get(i) else {
            return Err(invalid("stream ends before a scan"));
        };
        i += 1;
        let Some(len) = data
            .get(i..i + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return Err(invalid("truncated marker segment"));
        };
        if len < 2 || i + len > data.len() {
            return Err(invalid("marker segment runs past the end"));
        }
        let body = &data[i + 2..i + len];
        match marker {
            0xF7 => {
                if body.len() < 6 {
                    return Err(invalid("short frame header"));
                }
                frame = Some(Header {
                    precision: body[0],
                    rows: u16::from_be_bytes([body[1], body[2]]),
                    columns: u16::from_be_bytes([body[3], body[4]]),
                    components: body[5],
                    scan_components: 0,
                });
            }
            0xDA => {
                let Some(mut h) = frame else {
                    return Err(invalid("scan before the frame header"));
                };
                h.scan_components = *body.first().ok_or_else(|| invalid("short scan header"))?;
                return Ok(h);
            }
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Err(invalid("a JPEG (not JPEG-LS) frame header"));
            }
            _ => {}
        }
        i += len;
    }
}

/// Decodes one JPEG-LS frame, appending native bytes in `g`'s geometry to `out`; returns the
/// photometric interpretation of the decoded pixels (the stored one: JPEG-LS has no colour
/// transform of its own in DICOM).
pub(super) fn decode_frame(
    g: &Image,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<Photometric, CodecError> {
    let h = header(frame)?;
    if h.rows != g.rows || h.columns != g.columns {
        return Err(CodecError::Invalid(format!(
            "JPEG-LS frame is {}x{}, the data set says {}x{}",
            h.columns, h.rows, g.columns, g.rows
        )));
    }
    if u16::from(h.components) != g.samples || !(h.components == 1 || h.components == 3) {
        return Err(CodecError::Invalid(format!(
            "JPEG-LS frame has {} components, the data set says {} samples",
            h.components, g.samples
        )));
    }
    if !(2..=16).contains(&h.precision) || u16::from(h.precision) > g.bits_allocated {
        return Err(CodecError::Invalid(format!(
            "JPEG-LS precision {} with bits allocated {}",
            h.precision, g.bits_allocated
        )));
    }
    let pixels = usize::from(g.rows) * usize::from(g.columns);
    let samples = usize::from(g.samples);
    let wide = h.precision > 8;
    let expected = pixels * samples * if wide { 2 } else { 1 };
    let decoded = catch_unwind(AssertUnwindSafe(|| charls::CharLS::default().decode(frame)));
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(invalid(e)),
        Err(_) => return Err(invalid("the decoder gave up (panicked)")),
    };
    if decoded.len() != expected {
        return Err(CodecError::Invalid(format!(
            "JPEG-LS decoded to {} bytes, expected {}",
            decoded.len(),
            expected
        )));
    }
    // one scan per component: CharLS writes planes
    let planar = samples > 1 && h.scan_components == 1;
    let bps = g.bytes_per_sample();
    let sign_extend = g.signed && g.bits_stored < g.bits_allocated;
    let stored = u32::from(g.bits_stored);
    out.reserve(pixels * samples * bps);
    for k in 0..pixels {
        for s in 0..samples {
            let idx = if planar {
                s * pixels + k
            } else {
                k * samples + s
            };
            // CharLS writes samples of more than 8 bits as 16 bits in native order
            super::push_sample(out, &decoded, idx, wide, sign_extend, stored, bps);
        }
    }
    Ok(g.photometric)
}
