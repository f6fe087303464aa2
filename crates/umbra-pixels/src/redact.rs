//! Painting boxes black.
//!
//! "Black" is the photometric's darkest value: 0 for MONOCHROME2 and RGB (the most negative
//! value, sign-extended, for signed data), the largest value `bits_stored` holds for MONOCHROME1,
//! Y = 0 with Cb = Cr = the middle of the range for YBR, and index 0 for palette colour (the
//! palette is not consulted: index 0 is black in every palette seen so far, but that is a
//! convention, not a rule).

use crate::{Image, Photometric, Rect};

/// The black value of each sample of a pixel of `img` (raw stored bits, as [`Image::set`] takes).
pub fn black(img: &Image) -> Vec<u32> {
    let bits = u32::from(img.bits_stored.clamp(1, 16));
    let alloc_mask: u32 = if img.bytes_per_sample() == 1 {
        0xFF
    } else {
        0xFFFF
    };
    let darkest = if img.signed {
        // Most negative value, sign-extended to the allocated width.
        ((-(1i32 << (bits - 1))) as u32) & alloc_mask
    } else {
        0
    };
    let mid = if img.signed { 0 } else { 1u32 << (bits - 1) };
    (0..img.samples)
        .map(|s| match img.photometric {
            Photometric::Monochrome1 => img.max_value(),
            Photometric::YbrFull | Photometric::YbrFull422 => {
                if s == 0 {
                    darkest
                } else {
                    mid
                }
            }
            _ => darkest,
        })
        .collect()
}

/// Grows `r` by `padding` on every side (saturating at 0 and `u16::MAX`).
pub fn pad(r: Rect, padding: u16) -> Rect {
    let x = r.x.saturating_sub(padding);
    let y = r.y.saturating_sub(padding);
    let right = (u32::from(r.x) + u32::from(r.width) + u32::from(padding)).min(u32::from(u16::MAX));
    let bottom =
        (u32::from(r.y) + u32::from(r.height) + u32::from(padding)).min(u32::from(u16::MAX));
    Rect {
        x,
        y,
        width: (right - u32::from(x)) as u16,
        height: (bottom - u32::from(y)) as u16,
    }
}

/// Fills every sample of every pixel in each box, grown by `padding` and clipped to the image,
/// with the photometric's black ([`black`]), in `frame` or (`None`) every frame. A frame
/// outside the image, or data shorter than the geometry, fills nothing there.
pub fn fill(img: &mut Image, frame: Option<u32>, rects: &[Rect], padding: u16) {
    let black = black(img);
    fill_with(img, frame, rects, padding, &black);
}

/// [`fill`] with a given pixel value (one value per sample), e.g. the palette index whose
/// colour is darkest in a `PALETTE COLOR` image.
pub fn fill_with(img: &mut Image, frame: Option<u32>, rects: &[Rect], padding: u16, black: &[u32]) {
    let frames = match frame {
        Some(f) if f < img.frames => f..f + 1,
        Some(_) => return,
        None => 0..img.frames,
    };
    let bps = img.bytes_per_sample();
    let spp = usize::from(img.samples);
    if black.len() != spp {
        return;
    }
    // One pixel's bytes, little endian.
    let pixel: Vec<u8> = black
        .iter()
        .flat_map(|&v| {
            if bps == 1 {
                vec![v as u8]
            } else {
                (v as u16).to_le_bytes().to_vec()
            }
        })
        .collect();
    let px_len = spp * bps;
    let row_len = usize::from(img.columns) * px_len;
    let frame_len = img.frame_len();
    for f in frames {
        let base = f as usize * frame_len;
        if img.data.len() < base + frame_len {
            return;
        }
        for &r in rects {
            let r = img.clip(pad(r, padding));
            if r.is_empty() {
                continue;
            }
            for row in r.y..r.y + r.height {
                let start = base + usize::from(row) * row_len + usize::from(r.x) * px_len;
                let end = start + usize::from(r.width) * px_len;
                for chunk in img.data[start..end].chunks_exact_mut(px_len) {
                    chunk.copy_from_slice(&pixel);
                }
            }
        }
    }
}

fn touches(a: &Rect, b: &Rect) -> bool {
    let (ax1, ay1) = (
        u32::from(a.x) + u32::from(a.width),
        u32::from(a.y) + u32::from(a.height),
    );
    let (bx1, by1) = (
        u32::from(b.x) + u32::from(b.width),
        u32::from(b.y) + u32::from(b.height),
    );
    u32::from(a.x) <= bx1 && u32::from(b.x) <= ax1 && u32::from(a.y) <= by1 && u32::from(b.y) <= ay1
}

/// Merges boxes that overlap or touch (share an edge or a corner) into their bounding boxes,
/// until no two remaining boxes touch. Empty boxes are dropped. The result is sorted by row,
/// then column.
pub fn union(rects: &[Rect]) -> Vec<Rect> {
    let mut out: Vec<Rect> = rects.iter().copied().filter(|r| !r.is_empty()).collect();
    loop {
        let mut merged = false;
        let mut i = 0;
        while i < out.len() {
            let mut j = i + 1;
            while j < out.len() {
                if touches(&out[i], &out[j]) {
                    let b = out.swap_remove(j);
                    let a = out[i];
                    let x0 = a.x.min(b.x);
                    let y0 = a.y.min(b.y);
                    let x1 = (u32::from(a.x) + u32::from(a.width))
                        .max(u32::from(b.x) + u32::from(b.width));
                    let y1 = (u32::from(a.y) + u32::from(a.height))
                        .max(u32::from(b.y) + u32::from(b.height));
                    out[i] = Rect {
                        x: x0,
                        y: y0,
                        width: (x1 - u32::from(x0)) as u16,
                        height: (y1 - u32::from(y0)) as u16,
                    };
                    merged = true;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
        if !merged {
            break;
        }
    }
    out.sort_by_key(|r| (r.y, r.x, r.height, r.width));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn union_merges_overlapping_and_touching_only() {
        let u = union(&[
            r(0, 0, 10, 10),
            r(10, 0, 5, 5),
            r(30, 30, 2, 2),
            r(5, 5, 0, 9),
        ]);
        assert_eq!(u, vec![r(0, 0, 15, 10), r(30, 30, 2, 2)]);
        // A chain merges transitively, whatever the order.
        let u = union(&[
            r(20, 0, 5, 5),
            r(0, 0, 5, 5),
            r(10, 0, 11, 1),
            r(4, 4, 7, 1),
        ]);
        assert_eq!(u, vec![r(0, 0, 25, 5)]);
        // One pixel apart: kept apart.
        assert_eq!(union(&[r(0, 0, 2, 2), r(3, 0, 2, 2)]).len(), 2);
        assert!(union(&[]).is_empty());
    }

    #[test]
    fn pad_saturates() {
        assert_eq!(pad(r(1, 5, 3, 3), 2), r(0, 3, 6, 7));
        assert_eq!(pad(r(65534, 0, 1, 1), 4), r(65530, 0, 5, 5));
    }
}
