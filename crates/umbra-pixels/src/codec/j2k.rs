//! JPEG 2000 decoding (1.2.840.10008.1.2.4.90 lossless, .91 lossy) through the `jpeg2k` crate
//! with its `openjp2` backend: a Rust port of OpenJPEG, so no C compiler is involved.
//!
//! Before the decoder sees a code stream, its image and tile size (SIZ) and coding style (COD)
//! are read here and checked against the geometry (size, components, precision, no
//! subsampling), so the decoder never allocates for a header the data set contradicts. The port
//! keeps much of OpenJPEG's pointer arithmetic; a panic inside it is caught and reported as
//! invalid data.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::CodecError;
use crate::{Image, Photometric};

fn invalid(m: impl std::fmt::Display) -> CodecError {
    CodecError::Invalid(format!("JPEG 2000: {m}"))
}

/// What the main header of a code stream says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub columns: u32,
    pub rows: u32,
    /// Per component: (precision in bits, signed, horizontal and vertical subsampling).
    pub components: Vec<(u8, bool, u8, u8)>,
    /// Multiple component transform (ICT or RCT) applied to the first three components.
    pub mct: bool,
}

/// The code stream inside `data`: the bytes themselves when they start with SOC, or the
/// contiguous code stream box of a JP2 file (which some writers put in DICOM, against PS3.5).
fn code_stream(data: &[u8]) -> Result<&[u8], CodecError> {
    if data.starts_with(&[0xFF, 0x4F]) {
        return Ok(data);
    }
    if data.get(4..8) != Some(b"jP  ") {
        return Err(invalid("neither a code stream (SOC) nor a JP2 file"));
    }
    let mut i = 0usize;
    while i + 8 <= data.len() {
        let len = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        let kind = &data[i + 4..i + 8];
        let (start, end) = match len {
            0 => (i + 8, data.len()),
            1 => {
                let Some(b) = data.get(i + 8..i + 16) else {
                    return Err(invalid("truncated JP2 box"));
                };
                let xl = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                let end = usize::try_from(xl)
                    .ok()
                    .and_then(|xl| i.checked_add(xl))
                    .ok_or_else(|| invalid("JP2 box too long"))?;
                (i + 16, end)
            }
            2..=7 => return Err(invalid("JP2 box shorter than its header")),
            n => (i + 8, i.saturating_add(n)),
        };
        if end > data.len() || start > end {
            return Err(invalid("JP2 box runs past the end"));
        }
        if kind == b"jp2c" {
            return Ok(&data[start..end]);
        }
        i = end;
    }
    Err(invalid("JP2 file without a code stream box"))
}

/// Reads the main header, from SOC up to the first tile-part (SOT).
pub(super) fn header(data: &[u8]) -> Result<Header, CodecError> {
    let data = code_stream(data)?;
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if data.get(..4) != Some(&[0xFF, 0x4F, 0xFF, 0x51][..]) {
        return Err(invalid("the code stream does not start with SOC, SIZ"));
    }
    let mut i = 2;
    let mut siz: Option<Header> = None;
    loop {
        let Some(m) = data.get(i..i + 4) else {
            return Err(invalid("main header ends early"));
        };
        if m[0] != 0xFF {
            return Err(invalid("expected a marker"));
        }
        let marker = m[1];
        if marker == 0x90 {
            // SOT: the main header is over
            break;
        }
        let len = usize::from(be16(m, 2));
        if len < 2 || i + 2 + len > data.len() {
            return Err(invalid("marker segment runs past the end"));
        }
        let body = &data[i + 4..i + 2 + len];
        match marker {
            0x51 => {
                if body.len() < 36 {
                    return Err(invalid("short SIZ"));
                }
                let (x1, y1, x0, y0) =
                    (be32(body, 2), be32(body, 6), be32(body, 10), be32(body, 14));
                let count = usize::from(be16(body, 34));
                if x0 >= x1 || y0 >= y1 {
                    return Err(invalid("empty image area"));
                }
                if body.len() < 36 + 3 * count {
                    return Err(invalid("SIZ shorter than its components"));
                }
                let components = (0..count)
                    .map(|c| {
                        let s = body[36 + 3 * c];
                        (
                            (s & 0x7F) + 1,
                            s & 0x80 != 0,
                            body[37 + 3 * c],
                            body[38 + 3 * c],
                        )
                    })
                    .collect();
                siz = Some(Header {
                    columns: x1 - x0,
                    rows: y1 - y0,
                    components,
                    mct: false,
                });
            }
            0x52 => {
                if body.len() < 5 {
                    return Err(invalid("short COD"));
                }
                if let Some(h) = siz.as_mut() {
                    h.mct = body[4] != 0;
                }
            }
            _ => {}
        }
        i += 2 + len;
    }
    siz.ok_or_else(|| invalid("no SIZ"))
}

/// Decodes one JPEG 2000 frame, appending native bytes in `g`'s geometry to `out`; returns the
/// photometric interpretation of the decoded pixels (RGB when the code stream applied a
/// component transform: YBR_ICT and YBR_RCT images come back as RGB).
pub(super) fn decode_frame(
    g: &Image,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<Photometric, CodecError> {
    let h = header(frame)?;
    if h.columns != u32::from(g.columns) || h.rows != u32::from(g.rows) {
        return Err(CodecError::Invalid(format!(
            "JPEG 2000 image is {}x{}, the data set says {}x{}",
            h.columns, h.rows, g.columns, g.rows
        )));
    }
    if h.components.len() != usize::from(g.samples) {
        return Err(CodecError::Invalid(format!(
            "JPEG 2000 image has {} components, the data set says {} samples",
            h.components.len(),
            g.samples
        )));
    }
    for &(precision, _, dx, dy) in &h.components {
        if dx != 1 || dy != 1 {
            return Err(CodecError::Invalid(format!(
                "JPEG 2000 component subsampled {dx}x{dy} (DICOM samples are not)"
            )));
        }
        if u16::from(precision) > g.bits_allocated {
            return Err(CodecError::Invalid(format!(
                "JPEG 2000 precision {precision} with bits allocated {}",
                g.bits_allocated
            )));
        }
    }
    let stream = code_stream(frame)?;
    let decoded = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<Vec<i32>>, CodecError> {
        let image = jpeg2k::Image::from_bytes(stream).map_err(invalid)?;
        let comps = image.components();
        if comps.len() != usize::from(g.samples) {
            return Err(invalid("decoded a different number of components"));
        }
        let mut planes = Vec::with_capacity(comps.len());
        for c in comps {
            if c.width() != u32::from(g.columns) || c.height() != u32::from(g.rows) {
                return Err(invalid(format!(
                    "a component decoded to {}x{}",
                    c.width(),
                    c.height()
                )));
            }
            planes.push(c.data().to_vec());
        }
        Ok(planes)
    }));
    let planes = match decoded {
        Ok(r) => r?,
        Err(_) => return Err(invalid("the decoder gave up (panicked)")),
    };
    let pixels = usize::from(g.rows) * usize::from(g.columns);
    let bps = g.bytes_per_sample();
    out.reserve(pixels * planes.len() * bps);
    for k in 0..pixels {
        for plane in &planes {
            // two's complement in the width allocated: signed values keep their sign
            let v = plane[k];
            if bps == 1 {
                out.push(v as u8);
            } else {
                out.extend_from_slice(&(v as u16).to_le_bytes());
            }
        }
    }
    Ok(if h.mct && g.samples == 3 {
        Photometric::Rgb
    } else {
        g.photometric
    })
}
