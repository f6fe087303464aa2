//! RLE Lossless, DICOM PS3.5 Annex G.
//!
//! A frame is a 64-byte header (segment count, then 15 segment offsets, little endian u32)
//! followed by one segment per byte plane: for each sample, its most significant byte first.
//! Each segment is the byte plane PackBits-encoded row by row (G.3.1), padded to even length.

use super::CodecError;
use crate::Image;

/// PackBits-encodes `bytes` (one row of one byte plane) onto `out` (PS3.5 G.3.1): a replicate
/// run of n (2..=128) equal bytes as `1 - n` (as a byte) followed by the byte; a literal run of
/// n (1..=128) bytes as `n - 1` followed by them. Runs of three or more equal bytes are always
/// replicated; a pair only when no literal is pending.
pub fn packbits_encode(bytes: &[u8], out: &mut Vec<u8>) {
    let mut literal: Vec<u8> = Vec::with_capacity(128);
    let flush = |literal: &mut Vec<u8>, out: &mut Vec<u8>| {
        if !literal.is_empty() {
            out.push((literal.len() - 1) as u8);
            out.extend_from_slice(literal);
            literal.clear();
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let run = bytes[i..].iter().take(128).take_while(|&&x| x == b).count();
        if run >= 3 || (run == 2 && literal.is_empty()) {
            flush(&mut literal, out);
            out.push((1 - run as i32) as u8);
            out.push(b);
            i += run;
        } else {
            for &x in &bytes[i..i + run] {
                literal.push(x);
                if literal.len() == 128 {
                    flush(&mut literal, out);
                }
            }
            i += run;
        }
    }
    flush(&mut literal, out);
}

/// Decodes a PackBits segment into exactly `out_len` bytes. Bytes after the last needed run
/// (such as a padding zero) are ignored; a run reaching past `out_len` is cut there.
pub fn packbits_decode(segment: &[u8], out_len: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(out_len);
    let mut i = 0;
    while out.len() < out_len {
        let Some(&header) = segment.get(i) else {
            return Err(CodecError::Invalid(format!(
                "RLE segment ends after {} of {} bytes",
                out.len(),
                out_len
            )));
        };
        i += 1;
        let n = header as i8;
        let room = out_len - out.len();
        if n >= 0 {
            let count = n as usize + 1;
            let Some(literal) = segment.get(i..i + count) else {
                return Err(CodecError::Invalid(
                    "RLE literal run past end of segment".into(),
                ));
            };
            out.extend_from_slice(&literal[..count.min(room)]);
            i += count;
        } else if n != -128 {
            let count = (1 - i32::from(n)) as usize;
            let Some(&b) = segment.get(i) else {
                return Err(CodecError::Invalid(
                    "RLE replicate run past end of segment".into(),
                ));
            };
            out.resize(out.len() + count.min(room), b);
            i += 1;
        }
    }
    Ok(out)
}

/// Encodes one frame (`frame`: native interleaved little-endian bytes of `img`'s geometry).
pub(super) fn encode_frame(img: &Image, frame: &[u8]) -> Result<Vec<u8>, CodecError> {
    let bps = img.bytes_per_sample();
    let samples = usize::from(img.samples);
    let segments = samples * bps;
    if segments > 15 {
        return Err(CodecError::Geometry(format!(
            "RLE holds at most 15 byte planes, {samples} samples of {bps} bytes need {segments}"
        )));
    }
    let columns = usize::from(img.columns);
    let pixel = samples * bps;
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(&(segments as u32).to_le_bytes());
    let mut plane_row = Vec::with_capacity(columns);
    for sample in 0..samples {
        // Most significant byte first: in little endian, the highest offset first.
        for byte in (0..bps).rev() {
            let segment_index = sample * bps + (bps - 1 - byte);
            let offset = out.len() as u32;
            let at = 4 + 4 * segment_index;
            out[at..at + 4].copy_from_slice(&offset.to_le_bytes());
            for row in frame.chunks_exact(columns * pixel) {
                plane_row.clear();
                plane_row.extend(row.chunks_exact(pixel).map(|px| px[sample * bps + byte]));
                packbits_encode(&plane_row, &mut out);
            }
            if out.len() % 2 == 1 {
                out.push(0);
            }
        }
    }
    Ok(out)
}

/// Decodes one RLE frame of `g`'s geometry, appending native interleaved bytes to `out`.
pub(super) fn decode_frame(g: &Image, frame: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let bps = g.bytes_per_sample();
    let samples = usize::from(g.samples);
    let expected = samples * bps;
    let Some(header) = frame.get(..64) else {
        return Err(CodecError::Invalid(format!(
            "RLE frame of {} bytes has no header",
            frame.len()
        )));
    };
    let word = |k: usize| {
        u32::from_le_bytes([
            header[4 * k],
            header[4 * k + 1],
            header[4 * k + 2],
            header[4 * k + 3],
        ]) as usize
    };
    let count = word(0);
    if count != expected {
        return Err(CodecError::Invalid(format!(
            "RLE header has {count} segments, the geometry needs {expected}"
        )));
    }
    let offsets: Vec<usize> = (1..=count).map(word).collect();
    let pixels = usize::from(g.rows) * usize::from(g.columns);
    let start = out.len();
    out.resize(start + pixels * expected, 0);
    let dest = &mut out[start..];
    for (k, &from) in offsets.iter().enumerate() {
        let to = offsets.get(k + 1).copied().unwrap_or(frame.len());
        if from < 64 || from > to || to > frame.len() {
            return Err(CodecError::Invalid(format!(
                "RLE segment {k} spans {from}..{to} of a {}-byte frame",
                frame.len()
            )));
        }
        let plane = packbits_decode(&frame[from..to], pixels)?;
        let sample = k / bps;
        let byte = bps - 1 - k % bps;
        for (px, &b) in dest.chunks_exact_mut(expected).zip(&plane) {
            px[sample * bps + byte] = b;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_matches_the_classic_example() {
        // The PackBits example of Apple Technical Note TN1023, the scheme PS3.5 G.3.1 adopts.
        let unpacked = [
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let packed = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let mut out = Vec::new();
        packbits_encode(&unpacked, &mut out);
        assert_eq!(out, packed);
        assert_eq!(packbits_decode(&packed, unpacked.len()).unwrap(), unpacked);
    }

    #[test]
    fn packbits_run_limits_and_noop() {
        // 130 equal bytes: a run of 128 (0x81) then a pair (0xFF).
        let mut out = Vec::new();
        packbits_encode(&[7; 130], &mut out);
        assert_eq!(out, [0x81, 7, 0xFF, 7]);
        // 129 distinct-ish bytes: a literal of 128 (0x7F) then one of 1 (0x00).
        let distinct: Vec<u8> = (0..129u32).map(|i| (i * 2 % 251) as u8).collect();
        out.clear();
        packbits_encode(&distinct, &mut out);
        assert_eq!(out[0], 0x7F);
        assert_eq!(out[129], 0x00);
        assert_eq!(out.len(), 131);
        // -128 (0x80) is a no-op; a single byte 0x05.
        assert_eq!(packbits_decode(&[0x80, 0x00, 0x05], 1).unwrap(), [5]);
        assert!(packbits_decode(&[0x02, 0x01], 3).is_err());
        assert!(packbits_decode(&[0xFE], 3).is_err());
    }

    #[test]
    fn header_and_segment_order_follow_annex_g() {
        // One 16-bit sample of value 0x0102 in a 1x2 image: segment 1 holds the high bytes.
        let mut img = Image::new(1, 2, 1, 16, 16, false, crate::Photometric::Monochrome2, 1);
        img.set(0, 0, 0, 0, 0x0102);
        img.set(0, 0, 1, 0, 0x0102);
        let f = encode_frame(&img, &img.data).unwrap();
        assert_eq!(&f[..4], &[2, 0, 0, 0]);
        assert_eq!(&f[4..8], &[64, 0, 0, 0]);
        assert_eq!(&f[8..12], &[66, 0, 0, 0]);
        assert!(f[12..64].iter().all(|&b| b == 0));
        assert_eq!(&f[64..], &[0xFF, 0x01, 0xFF, 0x02]);
    }
}
