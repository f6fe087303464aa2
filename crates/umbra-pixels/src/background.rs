//! Plausible, deterministic pictures to draw text on.
//!
//! Values are in stored units for the image's bits stored and sign. CT assumes a rescale
//! intercept of -1024 and slope 1 when at least 12 bits are stored (stored = HU + 1024); with
//! fewer bits the HU window -1024..3071 is scaled into the stored range. Other kinds use a
//! fraction of the stored range. MONOCHROME1 images are inverted; YBR images get neutral chroma.

use crate::{Image, Photometric};

/// The kind of picture [`fill`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Background {
    /// Axial CT slice: air ring around a body ellipse with fat, soft tissue, lungs and bone.
    Ct,
    /// MR: smooth blobs with a little noise.
    Mr,
    /// Projection radiograph: smooth gradients and a broad body shadow.
    Radiograph,
    /// Ultrasound: a fan of speckle on black.
    Ultrasound,
    /// Screen capture: a flat dark background with a few UI boxes.
    Screen,
}

/// SplitMix64 step: a small, good, deterministic mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic parameters drawn from a seed.
struct Params(u64);

impl Params {
    /// A value in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = mix(self.0);
        lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// Per-pixel noise in [-1, 1): cheap integer hash of (frame seed, index).
#[inline]
fn noise(frame_seed: u64, i: u64) -> f32 {
    let mut h = (i ^ frame_seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    ((h & 0xFFFF) as f32 / 32768.0) - 1.0
}

/// Fills every frame with a plausible, deterministic picture for `seed`. Frames differ a little
/// (noise and, for CT, anatomy shift from frame to frame). Images whose `data` is shorter than
/// their geometry says are left alone.
pub fn fill(img: &mut Image, kind: Background, seed: u64) {
    let frame_len = img.frame_len();
    if frame_len == 0 || img.data.len() < frame_len * img.frames as usize {
        return;
    }
    let rows = usize::from(img.rows);
    let cols = usize::from(img.columns);
    let mut levels = vec![0f32; rows * cols];
    let mut boost = vec![false; rows * cols];
    let stored = Stored::of(img);
    for frame in 0..img.frames {
        let frame_seed = mix(seed ^ mix(u64::from(frame) + 1));
        let mut p = Params(mix(seed ^ kind as u64));
        match kind {
            Background::Ct => ct(&mut levels, rows, cols, &mut p, frame, frame_seed),
            Background::Mr => mr(&mut levels, rows, cols, &mut p, frame_seed),
            Background::Radiograph => radiograph(&mut levels, rows, cols, &mut p, frame_seed),
            Background::Ultrasound => ultrasound(&mut levels, rows, cols, &mut p, frame_seed),
            Background::Screen => {
                screen(&mut levels, &mut boost, rows, cols, &mut p, frame_seed);
            }
        }
        let start = frame as usize * frame_len;
        stored.write(
            &mut img.data[start..start + frame_len],
            &levels,
            (kind == Background::Screen).then_some(&boost[..]),
            kind == Background::Ct,
        );
    }
}

/// How a level (0..1, or HU for CT) becomes stored samples.
struct Stored {
    samples: usize,
    bytes: usize,
    max: f32,
    /// CT in stored units: stored = HU + 1024.
    hu_native: bool,
    invert: bool,
    ybr: bool,
    mid: u32,
}

impl Stored {
    fn of(img: &Image) -> Stored {
        let max = img.max_value();
        Stored {
            samples: usize::from(img.samples.max(1)),
            bytes: img.bytes_per_sample(),
            max: max as f32,
            hu_native: img.bits_stored >= 12,
            invert: img.photometric == Photometric::Monochrome1,
            ybr: img.photometric.is_ybr() && img.samples == 3,
            mid: max.div_ceil(2),
        }
    }

    fn write(&self, out: &mut [u8], levels: &[f32], tint: Option<&[bool]>, ct: bool) {
        let pixel = self.samples * self.bytes;
        for (i, (&level, px)) in levels.iter().zip(out.chunks_exact_mut(pixel)).enumerate() {
            let mut v = if ct {
                if self.hu_native {
                    level + 1024.0
                } else {
                    (level + 1024.0) / 4096.0 * self.max
                }
            } else {
                level * self.max
            };
            v = v.clamp(0.0, self.max);
            if self.invert {
                v = self.max - v;
            }
            let v = v as u32;
            let tinted = tint.is_some_and(|t| t[i]) && self.samples == 3 && !self.ybr;
            for s in 0..self.samples {
                let value = if self.ybr && s > 0 {
                    self.mid
                } else if tinted {
                    // UI boxes on colour screens are a little blue.
                    match s {
                        0 => v * 3 / 4,
                        1 => v * 7 / 8,
                        _ => v.saturating_add(v / 4).min(self.max as u32),
                    }
                } else {
                    v
                };
                let at = s * self.bytes;
                if self.bytes == 1 {
                    px[at] = value as u8;
                } else {
                    px[at..at + 2].copy_from_slice(&(value as u16).to_le_bytes());
                }
            }
        }
    }
}

/// Levels in Hounsfield units.
fn ct(levels: &mut [f32], rows: usize, cols: usize, p: &mut Params, frame: u32, fs: u64) {
    let (h, w) = (rows as f32, cols as f32);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let fov = 0.49 * w.min(h);
    // Anatomy drifts slowly from slice to slice.
    let drift = (frame as f32 * 0.37).sin();
    let bx = cx + p.range(-0.03, 0.03) * w;
    let by = cy + p.range(-0.02, 0.04) * h;
    let brx = p.range(0.36, 0.44) * w * (1.0 + 0.02 * drift);
    let bry = p.range(0.26, 0.33) * h * (1.0 + 0.02 * drift);
    let lungs = p.range(0.0, 1.0) < 0.6;
    let lrx = brx * 0.33;
    let lry = bry * 0.62;
    let lx = brx * 0.45;
    let spine_r = 0.09 * bry;
    let spine_y = by + bry * 0.62;
    let table_y = by + bry + 0.04 * h;
    for y in 0..rows {
        let fy = y as f32 + 0.5;
        let dyb = (fy - by) / bry;
        let dyl = (fy - by + 0.05 * bry) / lry;
        for x in 0..cols {
            let fx = x as f32 + 0.5;
            let i = y * cols + x;
            let n = noise(fs, i as u64);
            let dxf = fx - cx;
            let dyf = fy - cy;
            let hu = if dxf * dxf + dyf * dyf > fov * fov {
                -1024.0 // outside the reconstruction circle: padding
            } else {
                let dxb = (fx - bx) / brx;
                let r2 = dxb * dxb + dyb * dyb;
                if r2 > 1.0 {
                    if (fy - table_y).abs() < 0.012 * h && dxf.abs() < 0.8 * fov {
                        200.0 + 20.0 * n // patient table
                    } else {
                        -1000.0 + 12.0 * n
                    }
                } else if r2 > 0.88 {
                    -100.0 + 15.0 * n // subcutaneous fat
                } else {
                    let dxs = fx - bx;
                    let dys = fy - spine_y;
                    let dxl = (dxs.abs() - lx) / lrx;
                    if dxs * dxs + dys * dys < spine_r * spine_r {
                        let core = (dxs * dxs + dys * dys) < 0.5 * spine_r * spine_r;
                        if core {
                            350.0 + 40.0 * n
                        } else {
                            900.0 + 60.0 * n
                        }
                    } else if lungs && dxl * dxl + dyl * dyl < 1.0 {
                        -850.0 + 40.0 * n
                    } else {
                        40.0 + 18.0 * n + 20.0 * (fx * 0.05).sin() * (fy * 0.04).cos()
                    }
                }
            };
            levels[i] = hu;
        }
    }
}

/// Separable Gaussian factors for one blob along one axis.
fn gauss_axis(len: usize, centre: f32, sigma: f32) -> Vec<f32> {
    let k = -0.5 / (sigma * sigma);
    (0..len)
        .map(|i| {
            let d = i as f32 + 0.5 - centre;
            (k * d * d).exp()
        })
        .collect()
}

fn mr(levels: &mut [f32], rows: usize, cols: usize, p: &mut Params, fs: u64) {
    let (h, w) = (rows as f32, cols as f32);
    let blobs: Vec<(Vec<f32>, Vec<f32>, f32)> = (0..6)
        .map(|_| {
            let cx = p.range(0.25, 0.75) * w;
            let cy = p.range(0.25, 0.75) * h;
            let sx = p.range(0.06, 0.2) * w;
            let sy = p.range(0.06, 0.2) * h;
            let a = p.range(0.15, 0.45);
            (gauss_axis(cols, cx, sx), gauss_axis(rows, cy, sy), a)
        })
        .collect();
    // A head-like envelope: an ellipse with a soft edge.
    let ex = gauss_axis(cols, w / 2.0, 0.3 * w);
    let ey = gauss_axis(rows, h / 2.0, 0.34 * h);
    for y in 0..rows {
        for x in 0..cols {
            let i = y * cols + x;
            let mut v = 0.25 * ex[x] * ey[y];
            for (bx, by, a) in &blobs {
                v += a * bx[x] * by[y];
            }
            let envelope = ex[x] * ey[y];
            let n = noise(fs, i as u64);
            // Background noise only where there is no signal (Rician floor), more on tissue.
            levels[i] = (v * envelope.sqrt() + 0.01 * (n + 1.0) + 0.02 * n * envelope) * 0.5;
        }
    }
}

fn radiograph(levels: &mut [f32], rows: usize, cols: usize, p: &mut Params, fs: u64) {
    let (h, w) = (rows as f32, cols as f32);
    let a = p.range(0.15, 0.3);
    let gx = p.range(-0.15, 0.15);
    let gy = p.range(-0.1, 0.2);
    let body_x = gauss_axis(cols, w * p.range(0.4, 0.6), w * p.range(0.18, 0.3));
    let body_y = gauss_axis(rows, h * p.range(0.4, 0.6), h * p.range(0.25, 0.4));
    let bone_x = gauss_axis(cols, w * p.range(0.45, 0.55), w * 0.03);
    for (y, &by) in body_y.iter().enumerate() {
        let fy = y as f32 / h;
        for x in 0..cols {
            let fx = x as f32 / w;
            let i = y * cols + x;
            let v = a
                + gx * fx
                + gy * fy
                + 0.45 * body_x[x] * by
                + 0.2 * bone_x[x] * by
                + 0.006 * noise(fs, i as u64);
            levels[i] = v;
        }
    }
}

fn ultrasound(levels: &mut [f32], rows: usize, cols: usize, p: &mut Params, fs: u64) {
    let (h, w) = (rows as f32, cols as f32);
    let apex_x = w / 2.0;
    let apex_y = 0.05 * h;
    let half_angle_tan = p.range(0.55, 0.8);
    let r_in = 0.08 * h;
    let r_out = 0.92 * h;
    let lesion_x = apex_x + p.range(-0.15, 0.15) * w;
    let lesion_y = p.range(0.35, 0.7) * h;
    let lesion_r = p.range(0.04, 0.09) * h.min(w);
    for y in 0..rows {
        let dy = y as f32 + 0.5 - apex_y;
        for x in 0..cols {
            let i = y * cols + x;
            let dx = x as f32 + 0.5 - apex_x;
            let inside = dy > 0.0 && dx.abs() <= dy * half_angle_tan && {
                let r2 = dx * dx + dy * dy;
                r2 >= r_in * r_in && r2 <= r_out * r_out
            };
            levels[i] = if inside {
                let depth = dy / h;
                // Speckle: multiplicative, exponential-ish; attenuates with depth.
                let s = noise(fs, i as u64) * 0.5 + 0.5;
                let speckle = s * s;
                let lx = x as f32 + 0.5 - lesion_x;
                let ly = y as f32 + 0.5 - lesion_y;
                let dark = if lx * lx + ly * ly < lesion_r * lesion_r {
                    0.25
                } else {
                    1.0
                };
                (0.15 + 0.6 * speckle) * (1.0 - 0.6 * depth) * dark
            } else {
                0.0
            };
        }
    }
}

fn screen(
    levels: &mut [f32],
    boxes: &mut [bool],
    rows: usize,
    cols: usize,
    p: &mut Params,
    fs: u64,
) {
    let base = p.range(0.05, 0.12);
    levels.fill(base);
    boxes.fill(false);
    let count = 3 + (p.range(0.0, 3.0) as usize);
    for k in 0..count {
        let (x0, y0, bw, bh) = if k == 0 {
            // A title bar across the top.
            (0.0, 0.0, 1.0, 0.06)
        } else {
            (
                p.range(0.02, 0.6),
                p.range(0.1, 0.7),
                p.range(0.15, 0.38),
                p.range(0.08, 0.25),
            )
        };
        let fill = p.range(0.2, 0.45);
        let x0 = (x0 * cols as f32) as usize;
        let y0 = (y0 * rows as f32) as usize;
        let x1 = (x0 + (bw * cols as f32) as usize).min(cols);
        let y1 = (y0 + (bh * rows as f32) as usize).min(rows);
        for y in y0..y1 {
            for x in x0..x1 {
                let border = y == y0 || y + 1 == y1 || x == x0 || x + 1 == x1;
                levels[y * cols + x] = if border { 0.8 } else { fill };
                boxes[y * cols + x] = true;
            }
        }
    }
    // A faint flicker so frames differ a little.
    for (i, l) in levels.iter_mut().enumerate() {
        *l += 0.004 * noise(fs, i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> [Background; 5] {
        [
            Background::Ct,
            Background::Mr,
            Background::Radiograph,
            Background::Ultrasound,
            Background::Screen,
        ]
    }

    #[test]
    fn fill_is_deterministic_per_seed_and_frames_differ() {
        for kind in kinds() {
            let mut a = Image::new(48, 40, 1, 16, 12, false, Photometric::Monochrome2, 2);
            let mut b = a.clone();
            let mut c = a.clone();
            fill(&mut a, kind, 7);
            fill(&mut b, kind, 7);
            fill(&mut c, kind, 8);
            assert_eq!(a, b, "{kind:?}");
            assert_ne!(a.data, c.data, "{kind:?}");
            let f = a.frame_len();
            assert_ne!(a.data[..f], a.data[f..], "{kind:?}: frames identical");
            assert!(a.data.iter().any(|&x| x != 0), "{kind:?}: all zero");
            for row in 0..a.rows {
                for col in 0..a.columns {
                    assert!(a.get(0, row, col, 0) <= 4095, "{kind:?}");
                }
            }
        }
    }

    #[test]
    fn ct_uses_hounsfield_plus_1024() {
        let mut img = Image::new(128, 128, 1, 16, 16, true, Photometric::Monochrome2, 1);
        fill(&mut img, Background::Ct, 1);
        // Corner: outside the scan circle (-1024 HU -> 0). Centre of the body: soft tissue
        // or lung. Just inside the field of view at the left edge: air (about 24).
        assert_eq!(img.get(0, 0, 0, 0), 0);
        let air = img.get(0, 64, 3, 0) as i32;
        assert!((0..80).contains(&air), "air {air}");
        let hist: Vec<u32> = (0..128).map(|c| img.get(0, 64, c, 0)).collect();
        assert!(
            hist.iter().any(|&v| (1000..1150).contains(&v)),
            "no soft tissue: {hist:?}"
        );
    }

    #[test]
    fn colour_and_8_bit_images_fill() {
        for kind in kinds() {
            let mut rgb = Image::new(30, 41, 3, 8, 8, false, Photometric::Rgb, 1);
            fill(&mut rgb, kind, 3);
            assert!(rgb.data.iter().any(|&x| x != 0), "{kind:?}");
            let mut ybr = Image::new(30, 41, 3, 8, 8, false, Photometric::YbrFull, 1);
            fill(&mut ybr, kind, 3);
            assert_eq!(ybr.get(0, 10, 10, 1), 128, "{kind:?}");
        }
    }

    #[test]
    fn short_data_is_left_alone() {
        let mut img = Image::new(8, 8, 1, 8, 8, false, Photometric::Monochrome2, 1);
        img.data.truncate(10);
        fill(&mut img, Background::Mr, 1);
        assert_eq!(img.data, vec![0; 10]);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// By hand: `cargo test -p umbra-pixels --release fill_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand in release"]
    fn fill_speed() {
        for kind in [
            Background::Ct,
            Background::Mr,
            Background::Radiograph,
            Background::Ultrasound,
            Background::Screen,
        ] {
            let mut img = Image::new(512, 512, 1, 16, 16, true, Photometric::Monochrome2, 20);
            let t = std::time::Instant::now();
            fill(&mut img, kind, 1);
            println!("{kind:?}: {:?} per 512x512 16-bit frame", t.elapsed() / 20);
        }
    }
}
