//! Finding text burned into pixels, on the CPU, with no trained model.
//!
//! Burned-in annotations are drawn by a machine: strokes of one flat colour (white, grey,
//! yellow, green, cyan; sometimes black on a light label), a few pixels thick, in glyphs of one
//! height laid out on a line. The detector looks for exactly that and nothing more:
//!
//! 1. **Luminance plane** (8-bit): RGB → Rec. 601 luma (`(77 R + 150 G + 29 B) / 256`); YBR → its
//!    Y sample; MONOCHROME1 is inverted; palette colour uses the index as a level (no LUT is at
//!    hand). 8-bit samples with fewer bits stored are shifted up; 16-bit samples are windowed
//!    from their 1st to their 99.5th percentile (whatever the bits stored say, CT and radiograph
//!    values rarely use their range). Colour images also give a chroma plane (max − min of the
//!    three samples, or |Cb − 128| + |Cr − 128|).
//! 2. **Candidate masks**, each labelled on its own so that a stroke is not swallowed by a
//!    neighbouring bright region of another kind:
//!    - *white top-hat* (level minus its morphological opening by a square of
//!      [`Params::window`] pixels, larger than any stroke): thin bright strokes on any
//!      background, flat or textured. The threshold adapts per 32×32 tile: the smaller of the
//!      tile's median top-hat and the median of the medians of the 3×3 tiles around it (a
//!      tile mostly covered by large text does not raise its own bar), plus the larger of
//!      [`Params::tophat_margin`] and [`Params::texture`] times the lower quartile of the
//!      interquartile ranges of the 3×3 tiles around it (a line of large text raises the
//!      range of up to six of them), at least [`Params::tophat_min`] and at most
//!      [`Params::tophat_cap`]. On flat backgrounds median and spread are 0 and faint grey text
//!      passes; on ultrasound speckle or anatomy they are high and only strokes clearly
//!      brighter than the texture pass, so speckle does not percolate into blobs. Where a
//!      tile and its eight neighbours are all flat (three quarters of their horizontally
//!      adjacent pixels within [`Params::flat_diff`] levels; text edges are a minority), the
//!      threshold is the tile's lower quartile plus [`Params::tophat_margin`] instead: lines
//!      of large, heavy text stacked on a screen capture fill most of their tiles and would
//!      otherwise raise median and spread above their own contrast;
//!    - the same white top-hat with a horizontal line of [`Params::window`] pixels as the
//!      element: text on a bar or label not much higher than the text (the square opening
//!      takes the dark outside the bar, so bar and text come out as one block);
//!    - *black top-hat* (closing minus level) with the horizontal line element: dark strokes
//!      on light labels (as low as their text) and bright anatomy ([`Params::dark_text`]);
//!    - *near white* (level ≥ [`Params::bright`]): large glyphs whose strokes are wider than
//!      the top-hat window;
//!    - *saturated colour* (chroma ≥ [`Params::chroma`] and level ≥ 64): coloured text over
//!      grey pictures;
//!    - *exact brightest value* (16-bit greyscale): the pixels stored at exactly the frame's
//!      display-brightest value (the maximum; the minimum for MONOCHROME1), when the window
//!      saturates it and they are at most [`Params::extreme_max`] of the frame. Text burned
//!      in at the maximum over a band near it comes out of the window at the band's level
//!      (both 255), but the stored ink is that one value and a noisy or graded band is not.
//! 3. **Connected components** (8-connected, on runs), after dropping the thin parts (at most
//!    two pixels across) of horizontal and vertical runs of [`Params::rule_len`] pixels or
//!    more: rules and the borders of bars and boxes, which would join the glyphs that touch
//!    them into one component too long to be a glyph. A component is a glyph (or several
//!    touching glyphs) when its height is within [`Params::min_height`]..=[`Params::max_height`],
//!    its width at most [`Params::max_aspect`] heights, its fill ratio (ink over bounding box)
//!    within [`Params::min_fill`]..=[`Params::max_fill`], and its mean stroke width
//!    (2 × area / perimeter) at most [`Params::max_stroke`] of its height (strokes are thin;
//!    bone, bars and blobs are not), and its roughness (mean level difference between
//!    horizontally adjacent pixels of the component) at most [`Params::max_roughness`]
//!    (burned-in strokes are flat; clusters of speckle are not), or at most
//!    [`Params::max_roughness_flat`] when the ring of pixels around its box is flat
//!    ([`Params::flat_ring`]: anti-aliased text on a bar). Components of 10 px or less are too
//!    coarse for fill and stroke width: only the roughness test applies to them. Its *ink*
//!    is its most frequent level (give or take [`Params::ink_tol`], two): burned-in glyphs are
//!    drawn in one colour, so at least [`Params::min_modal`] of a glyph's pixels are at its
//!    ink level (unless the ring around it is flat: anti-aliased text on a bar), where a
//!    cluster of speckle spreads over many levels. On pixels from a lossy syntax
//!    ([`Params::lossy`], chosen by the caller), compression spreads the levels of small
//!    anti-aliased glyphs: the tolerance is then [`Params::ink_tol_contrast`] times the
//!    component's contrast (its ink against the median of the ring around its box), since the
//!    ringing grows with the height of the edge and speckle clusters are of low contrast. A
//!    component mostly but not only at its ink level (below [`Params::pure`]: glyphs with speckle or other ink stuck to them), or one that fails a test
//!    only with what is stuck to it, is taken apart once: its pixels at its ink level are
//!    labelled again and tested as glyphs (so text over speckle as bright as parts of it
//!    comes out as its glyphs, with boxes around them and not around the speckle). Dark ink
//!    (black top-hat) must also be [`Params::dark_contrast`] levels below the median of the
//!    ring around its box: dark text is on a light label, and the floor of speckle, flat
//!    enough to pass as one level, is not. A solid component (fill ≥ 0.95: a heavy glyph,
//!    or a rule or bar of a drawing) is kept but does not make a line on its own.
//! 4. **Lines**: glyphs are joined (union-find) when their heights differ by at most a factor
//!    [`Params::max_height_ratio`], they overlap vertically by at least 60% of the smaller one, and
//!    the horizontal gap is at most [`Params::line_gap`] heights (word spaces included). A line
//!    is kept when it has at least four glyph components, or two or three under at least
//!    [`Params::min_cover`] of its width (not arcs of anatomy a few heights apart), or one
//!    component at least [`Params::min_single_aspect`] times as wide as high that crosses at
//!    least [`Params::min_across`] strokes per column on average (a word of touching bold
//!    glyphs, not an arc of bone), and not only solid ones.
//! 5. **Extension**: a group too short to be kept (a lone glyph, a word cut off by a glyph the
//!    filters dropped) joins a kept line it is aligned with within [`Params::extend_gap`]
//!    heights, and kept lines of one height on one baseline join across such a gap, until
//!    nothing changes (pieces of one line become one box).
//! 6. Line boxes reach [`Params::line_margin`] heights further left and right (a glyph at
//!    the end of a line lost against a band as bright as it), then are merged when they
//!    overlap or touch ([`crate::redact::union`]).
//!
//! What it avoids: CT bone and the patient table (solid: fill and stroke width too high; a
//! ring of cortex is one component, not a line), the ultrasound fan edge and tissue layers
//! (longer than [`Params::max_aspect`], or taller than [`Params::max_height`]), speckle (the
//! adaptive threshold; specks under [`Params::min_height`]; clusters are not of one level,
//! and dark speckle is not below a light ring), the borders of drawn boxes (solid, or
//! dropped as rules). What it misses: single isolated characters far from any line (one
//! glyph is not a line), glyphs shorter than [`Params::min_height`] (such as a lone `.` or
//! `-`: they are usually inside their line's box anyway), text taller than
//! [`Params::max_height`], text of a level and colour within the texture under it, and
//! hand-written or rotated text.

use crate::{Image, Photometric, Rect};

/// Tuning of [`find_text`]; the defaults are tuned on the generated set of the `text_eval`
/// example and the public ultrasound samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Smallest glyph component height in pixels.
    pub min_height: u16,
    /// Largest glyph component height in pixels.
    pub max_height: u16,
    /// Side of the square structuring element of the top-hats (odd; wider than a stroke).
    pub window: u16,
    /// Least top-hat value (8-bit levels) of a stroke pixel.
    pub tophat_min: u8,
    /// Added to a tile's base (its median top-hat, or the median of its neighbourhood's if
    /// lower) to give its threshold.
    pub tophat_margin: u8,
    /// Largest tile threshold (so text brighter than any texture always passes).
    pub tophat_cap: u8,
    /// A tile's threshold is at least its median plus this many times the lower quartile of
    /// the interquartile ranges of the top-hat in it and its eight neighbours (texture).
    pub texture: f32,
    /// Level at or above which a pixel is a candidate whatever its surroundings.
    pub bright: u8,
    /// Chroma at or above which a colour pixel is a candidate.
    pub chroma: u8,
    /// Look for dark text on light backgrounds too (black top-hat).
    pub dark_text: bool,
    /// Smallest fill ratio of a glyph component.
    pub min_fill: f32,
    /// Largest fill ratio of a glyph component.
    pub max_fill: f32,
    /// Largest mean stroke width of a glyph component, as a fraction of its height.
    pub max_stroke: f32,
    /// Largest mean absolute level difference between horizontally adjacent pixels of a
    /// component: burned-in strokes are flat, clusters of speckle are not.
    pub max_roughness: f32,
    /// The same for a component whose surroundings are flat (the mean level difference
    /// between neighbours on the ring of pixels around its box at most [`Params::flat_ring`]):
    /// anti-aliased text on a flat bar is rough inside, with no speckle around to mistake.
    pub max_roughness_flat: f32,
    /// See [`Params::max_roughness_flat`].
    pub flat_ring: f32,
    /// Least share of a component's pixels within [`Params::ink_tol`] levels of its most
    /// frequent level (its ink), unless the ring around its box is flat ([`Params::flat_ring`]).
    pub min_modal: f32,
    /// Levels either side of a component's most frequent level that count as its ink (2:
    /// burned-in glyphs are one level, speckle is not). Lossy compression spreads the levels
    /// of small anti-aliased glyphs: see [`Params::lossy`].
    pub ink_tol: u8,
    /// Share of a glyph component at its ink level below which it is taken apart all the same
    /// (the box of the glyph alone, not of the glyph and the speckle stuck to it).
    pub pure: f32,
    /// When above 0 (lossy pixels): a component's ink tolerance is this share of its contrast
    /// (its ink level against the median of the ring around its box), at least
    /// [`Params::ink_tol`] and at most [`Params::ink_tol_max`]. Compression noise around a
    /// glyph grows with the height of its edges; a cluster of speckle is of low contrast.
    pub ink_tol_contrast: f32,
    /// See [`Params::ink_tol_contrast`].
    pub ink_tol_max: u8,
    /// Least difference between the median level of the ring around a dark glyph's box and
    /// its ink: dark text is on a light label, not at the floor of speckle.
    pub dark_contrast: u8,
    /// Candidate runs (horizontal or vertical) this long or longer are rules or borders: their
    /// parts at most two pixels across are dropped before labelling, so that glyphs touching
    /// them stay glyphs.
    pub rule_len: u16,
    /// Line boxes reach this many heights further left and right (a glyph at the end of a
    /// line lost against the picture under it).
    pub line_margin: f32,
    /// Largest width of a component, in heights.
    pub max_aspect: f32,
    /// Largest ratio of the heights of two glyphs on one line.
    pub max_height_ratio: f32,
    /// Largest horizontal gap between two glyphs on one line, in heights of the taller.
    pub line_gap: f32,
    /// A line of one component is kept when it is at least this many heights wide and crosses
    /// at least [`Params::min_across`] strokes per column on average.
    pub min_single_aspect: f32,
    /// See [`Params::min_single_aspect`]: the glyphs of a word of touching glyphs have
    /// horizontal strokes (a column of `E`, `2` or `B` crosses two or three), an arc of bone or
    /// a band of tissue has one across.
    pub min_across: f32,
    /// Least share of the width of a line of two or three glyph components under them:
    /// glyphs of a line are close (word spaces are about a glyph wide), three arcs of anatomy a
    /// few heights apart are not. Lines of four or more are kept whatever their share (text
    /// whose anti-aliased glyphs fail the ink-level test keeps only some of them).
    pub min_cover: f32,
    /// Largest gap, in heights, across which a kept line takes in an aligned short group or
    /// another kept line of its height ([`find_text`] step 5).
    pub extend_gap: f32,
    /// A 32×32 tile is flat when three quarters of its horizontally adjacent pixel pairs
    /// differ by at most this many levels; where a tile and its eight neighbours are all flat
    /// (screen captures, bars, labels: nothing there to mistake for text), the top-hat
    /// threshold is the tile's lower quartile plus [`Params::tophat_margin`], whatever the
    /// median and spread (dense large text raises both).
    pub flat_diff: u8,
    /// For 16-bit greyscale, also take the pixels stored at exactly the display-brightest
    /// value of the frame (text burned in at the maximum over a band the percentile window
    /// saturates), when they are at most this fraction of the frame.
    pub extreme_max: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_height: 5,
            max_height: 48,
            window: 21,
            tophat_min: 25,
            tophat_margin: 30,
            tophat_cap: 200,
            texture: 1.5,
            bright: 230,
            chroma: 80,
            dark_text: true,
            min_fill: 0.12,
            max_fill: 1.0,
            max_stroke: 0.5,
            max_roughness: 20.0,
            max_roughness_flat: 80.0,
            flat_ring: 4.0,
            min_modal: 0.6,
            ink_tol: 2,
            pure: 0.9,
            ink_tol_contrast: 0.0,
            ink_tol_max: 16,
            dark_contrast: 64,
            rule_len: 64,
            line_margin: 0.5,
            max_aspect: 15.0,
            max_height_ratio: 2.2,
            line_gap: 3.5,
            min_single_aspect: 2.0,
            min_across: 1.1,
            min_cover: 0.4,
            extend_gap: 6.0,
            flat_diff: 2,
            extreme_max: 0.05,
        }
    }
}

impl Params {
    /// The default parameters for pixels decoded from a lossy syntax: see [`Params::to_lossy`].
    pub fn lossy() -> Self {
        Params::default().to_lossy()
    }

    /// These parameters for pixels decoded from a lossy syntax (JPEG baseline or extended,
    /// lossy JPEG 2000, JPEG-LS near-lossless, or Lossy Image Compression 01). Compression
    /// spreads the levels of small anti-aliased glyphs around their ink, roughens them and the
    /// background around them, and blurs glyphs of 5 px into 4: the ink tolerance grows with
    /// each component's contrast ([`Params::ink_tol_contrast`] 0.08, up to
    /// [`Params::ink_tol_max`]), glyphs may be 4 px high, rougher (30) and their ring less flat
    /// (8). More boxes on texture than with the lossless parameters: on lossy pixels the
    /// detector fails closed.
    pub fn to_lossy(&self) -> Self {
        Params {
            ink_tol_contrast: if self.ink_tol_contrast > 0.0 {
                self.ink_tol_contrast
            } else {
                0.08
            },
            min_height: self.min_height.min(4),
            flat_ring: self.flat_ring.max(8.0),
            max_roughness: self.max_roughness.max(30.0),
            ..self.clone()
        }
    }
}

/// Boxes of text lines in one frame (empty when the frame is outside the image or its data is
/// short). Boxes are tight around the detected ink; pad them when redacting.
pub fn find_text(img: &Image, frame: u32, params: &Params) -> Vec<Rect> {
    let (w, h) = (usize::from(img.columns), usize::from(img.rows));
    if frame >= img.frames || w == 0 || h == 0 || img.samples == 0 {
        return Vec::new();
    }
    let start = frame as usize * img.frame_len();
    let Some(data) = img.data.get(start..start + img.frame_len()) else {
        return Vec::new();
    };
    let (level, chroma, extreme_mask) = planes(img, data, params);
    let flat = flat_tiles(&level, w, h, params);
    let mut comps = Vec::new();
    if let Some(mask) = extreme_mask {
        components(&mask, &level, w, h, params, &mut comps);
    }
    let r = usize::from(params.window.max(3) / 2);
    let eroded = extreme(&level, w, h, r, false);
    let opened = extreme(&eroded, w, h, r, true);
    let tophat: Vec<u8> = level
        .iter()
        .zip(&opened)
        .map(|(&a, &b)| a.saturating_sub(b))
        .collect();
    drop(eroded);
    let mask = adaptive(&tophat, &flat, w, h, params);
    components(&mask, &level, w, h, params, &mut comps);
    // The same with a horizontal line as the element: text on a bar or a label lower than
    // the square window (the opening by a square takes the dark outside the bar, so bar
    // and text would come out as one block).
    let eroded = extreme2(&level, w, h, r, 0, false);
    let opened = extreme2(&eroded, w, h, r, 0, true);
    let tophat: Vec<u8> = level
        .iter()
        .zip(&opened)
        .map(|(&a, &b)| a.saturating_sub(b))
        .collect();
    let mask = adaptive(&tophat, &flat, w, h, params);
    components(&mask, &level, w, h, params, &mut comps);
    if params.dark_text {
        // Dark text: closing by a horizontal line only (labels are wide but hardly higher
        // than their text).
        let dilated = extreme2(&level, w, h, r, 0, true);
        let closed = extreme2(&dilated, w, h, r, 0, false);
        let blackhat: Vec<u8> = closed
            .iter()
            .zip(&level)
            .map(|(&a, &b)| a.saturating_sub(b))
            .collect();
        let mask = adaptive(&blackhat, &flat, w, h, params);
        dark_components(&mask, &level, w, h, params, &mut comps);
    }
    let mask: Vec<u8> = level
        .iter()
        .map(|&v| u8::from(v >= params.bright))
        .collect();
    components(&mask, &level, w, h, params, &mut comps);
    if let Some(chroma) = chroma {
        let mask: Vec<u8> = chroma
            .iter()
            .zip(&level)
            .map(|(&c, &l)| u8::from(c >= params.chroma && l >= 64))
            .collect();
        components(&mask, &level, w, h, params, &mut comps);
    }
    // A glyph at either end of a line can be lost against what is under it (white on a
    // bright band): lines reach a little further along their baseline.
    let grown: Vec<Rect> = lines(&mut comps, params)
        .into_iter()
        .map(|r| {
            let m = (params.line_margin * f32::from(r.height)).round() as u16;
            let x0 = r.x.saturating_sub(m);
            let x1 = (r.x + r.width).saturating_add(m).min(w as u16);
            Rect {
                x: x0,
                width: x1 - x0,
                ..r
            }
        })
        .collect();
    crate::redact::union(&grown)
}

/// The union of the text boxes of every frame, merged ([`crate::redact::union`]).
pub fn find_text_all_frames(img: &Image, params: &Params) -> Vec<Rect> {
    let mut all = Vec::new();
    for f in 0..img.frames {
        all.extend(find_text(img, f, params));
    }
    crate::redact::union(&all)
}

/// The planes of one frame: 8-bit level, chroma (colour images) and, for 16-bit greyscale,
/// the mask of the pixels stored at exactly the display-brightest value when they are few
/// ([`Params::extreme_max`]).
type Planes = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

fn planes(img: &Image, data: &[u8], params: &Params) -> Planes {
    let n = usize::from(img.rows) * usize::from(img.columns);
    let spp = usize::from(img.samples);
    let bytes = img.bytes_per_sample();
    let mut raw: Vec<u32> = Vec::new();
    let sample = |i: usize, s: usize| -> u32 {
        let at = (i * spp + s) * bytes;
        if bytes == 1 {
            u32::from(data[at])
        } else {
            u32::from(u16::from_le_bytes([data[at], data[at + 1]]))
        }
    };
    let colour = spp >= 3;
    let ybr = img.photometric.is_ybr();
    if bytes == 1 {
        let shift = 8u32.saturating_sub(u32::from(img.bits_stored.clamp(1, 8)));
        if colour && spp == 3 {
            let mut level = Vec::with_capacity(n);
            let mut chroma = Vec::with_capacity(n);
            for px in data[..n * 3].chunks_exact(3) {
                let (a, b, c) = (u32::from(px[0]), u32::from(px[1]), u32::from(px[2]));
                if ybr {
                    level.push((a << shift).min(255) as u8);
                    let d = b.abs_diff(128) + c.abs_diff(128);
                    chroma.push((d << shift).min(255) as u8);
                } else {
                    level.push((((77 * a + 150 * b + 29 * c) >> 8) << shift).min(255) as u8);
                    let mx = a.max(b).max(c);
                    let mn = a.min(b).min(c);
                    chroma.push(((mx - mn) << shift).min(255) as u8);
                }
            }
            return (level, Some(chroma), None);
        }
        let mut level: Vec<u8> = (0..n)
            .map(|i| ((sample(i, 0) << shift).min(255)) as u8)
            .collect();
        if img.photometric == Photometric::Monochrome1 {
            level.iter_mut().for_each(|v| *v = 255 - *v);
        }
        return (level, None, None);
    }
    // 16-bit: one value per pixel (luma for colour), then a percentile window.
    let bits = u32::from(img.bits_stored.clamp(1, 16));
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let mut chroma = None;
    if colour {
        let mut c = Vec::with_capacity(n);
        raw.reserve(n);
        for i in 0..n {
            let (a, b, d) = (
                sample(i, 0) & mask,
                sample(i, 1) & mask,
                sample(i, 2) & mask,
            );
            if ybr {
                let mid = 1u32 << (bits - 1);
                raw.push(a);
                c.push(
                    ((b.abs_diff(mid) + d.abs_diff(mid)) >> bits.saturating_sub(8)).min(255) as u8,
                );
            } else {
                raw.push((77 * a + 150 * b + 29 * d) >> 8);
                c.push(
                    ((a.max(b).max(d) - a.min(b).min(d)) >> bits.saturating_sub(8)).min(255) as u8,
                );
            }
        }
        chroma = Some(c);
    } else {
        raw.extend((0..n).map(|i| {
            let v = sample(i, 0) & mask;
            if img.signed {
                // Sign-extend from bits stored, then offset into 0..65536.
                let s = ((v << (32 - bits)) as i32) >> (32 - bits);
                (s + 32768).clamp(0, 65535) as u32
            } else {
                v
            }
        }));
    }
    let mut hist = vec![0u32; 65536];
    for &v in &raw {
        hist[v.min(65535) as usize] += 1;
    }
    let quantile = |q: f64| -> u32 {
        let target = (q * n as f64) as u64;
        let mut acc = 0u64;
        for (v, &c) in hist.iter().enumerate() {
            acc += u64::from(c);
            if acc > target {
                return v as u32;
            }
        }
        65535
    };
    let lo = quantile(0.01);
    let hi = quantile(0.995).max(lo + 1);
    let span = f64::from(hi - lo);
    let mut level: Vec<u8> = raw
        .iter()
        .map(|&v| ((f64::from(v.saturating_sub(lo)) * 255.0 / span).min(255.0)) as u8)
        .collect();
    if img.photometric == Photometric::Monochrome1 {
        level.iter_mut().for_each(|v| *v = 255 - *v);
    }
    // Text burned in at the brightest value over a band near it: the window saturates both,
    // but the ink is that exact value and the band (noisy, or a gradient) rarely is.
    let mut extreme_mask = None;
    if !colour {
        let bright = if img.photometric == Photometric::Monochrome1 {
            hist.iter().position(|&c| c > 0)
        } else {
            hist.iter().rposition(|&c| c > 0)
        };
        if let Some(v) = bright {
            let count = hist[v] as f32;
            let saturated = if img.photometric == Photometric::Monochrome1 {
                (v as u32) < lo
            } else {
                v as u32 > hi
            };
            if saturated && count >= 8.0 && count <= params.extreme_max * n as f32 {
                let v = v as u32;
                extreme_mask = Some(raw.iter().map(|&r| u8::from(r == v)).collect());
            }
        }
    }
    (level, chroma, extreme_mask)
}

/// Per 32×32 tile: whether three quarters of its horizontally adjacent pixel pairs differ by
/// at most [`Params::flat_diff`] levels.
fn flat_tiles(level: &[u8], w: usize, h: usize, params: &Params) -> Vec<bool> {
    let (tw, tht) = (w.div_ceil(TILE), h.div_ceil(TILE));
    let mut small = vec![0u32; tw * tht];
    let mut pairs = vec![0u32; tw * tht];
    for y in 0..h {
        let row = &level[y * w..(y + 1) * w];
        let trow = (y / TILE) * tw;
        for x in 1..w {
            let t = trow + x / TILE;
            pairs[t] += 1;
            small[t] += u32::from(row[x].abs_diff(row[x - 1]) <= params.flat_diff);
        }
    }
    small
        .iter()
        .zip(&pairs)
        .map(|(&s, &p)| p > 0 && s * 4 >= p * 3)
        .collect()
}

/// Sliding maximum (`max`) or minimum over a (2r+1)-square window, separably; pixels outside
/// the image do not take part.
fn extreme(src: &[u8], w: usize, h: usize, r: usize, max: bool) -> Vec<u8> {
    extreme2(src, w, h, r, r, max)
}

/// Sliding maximum or minimum over a (2rx+1) wide, (2ry+1) high window.
fn extreme2(src: &[u8], w: usize, h: usize, r: usize, ry: usize, max: bool) -> Vec<u8> {
    let op = |a: u8, b: u8| if max { a.max(b) } else { a.min(b) };
    let len = 2 * r + 1;
    // Largest power of two not above the window.
    let p = 1usize << (usize::BITS - 1 - len.leading_zeros());
    // Horizontal: m_p[x] = op over [x, x + p), then out[x] = op(m_p[x - r], m_p[x - r + len - p]).
    let mut out = vec![0u8; w * h];
    let mut m = vec![0u8; w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        m.copy_from_slice(row);
        let mut span = 1;
        while span < p {
            for x in 0..w {
                if x + span < w {
                    m[x] = op(m[x], m[x + span]);
                }
            }
            span *= 2;
        }
        let dst = &mut out[y * w..(y + 1) * w];
        for (x, d) in dst.iter_mut().enumerate() {
            // Window [x - r, x + r] clipped: cover it with two runs of p starting at a and b.
            let a = x.saturating_sub(r);
            let end = (x + r + 1).min(w); // exclusive
            let b = end.saturating_sub(p).max(a);
            *d = op(m[a], m[b]);
        }
    }
    if ry == 0 {
        return out;
    }
    let r = ry;
    let len = 2 * r + 1;
    let p = 1usize << (usize::BITS - 1 - len.leading_zeros());
    // Vertical: the same with whole rows.
    let mut mv = out.clone();
    let mut span = 1;
    while span < p {
        for y in 0..h {
            if y + span < h {
                let (top, bottom) = mv.split_at_mut((y + span) * w);
                let dst = &mut top[y * w..(y + 1) * w];
                for (d, &s) in dst.iter_mut().zip(&bottom[..w]) {
                    *d = op(*d, s);
                }
            }
        }
        span *= 2;
    }
    for y in 0..h {
        let a = y.saturating_sub(r);
        let end = (y + r + 1).min(h);
        let b = end.saturating_sub(p).max(a);
        let dst = &mut out[y * w..(y + 1) * w];
        for x in 0..w {
            dst[x] = op(mv[a * w + x], mv[b * w + x]);
        }
    }
    out
}

/// Binarises a top-hat plane with a per-tile threshold (see the module docs).
/// Side of the tiles of the adaptive threshold.
const TILE: usize = 32;

fn adaptive(th: &[u8], flat: &[bool], w: usize, h: usize, params: &Params) -> Vec<u8> {
    let (tw, tht) = (w.div_ceil(TILE), h.div_ceil(TILE));
    // Per tile: median and interquartile range of the top-hat.
    let mut median = vec![0u8; tw * tht];
    let mut lower = vec![0u8; tw * tht];
    let mut iqr = vec![0u8; tw * tht];
    for ty in 0..tht {
        for tx in 0..tw {
            let (x0, y0) = (tx * TILE, ty * TILE);
            let (x1, y1) = ((x0 + TILE).min(w), (y0 + TILE).min(h));
            let mut hist = [0u32; 256];
            for y in y0..y1 {
                for &v in &th[y * w + x0..y * w + x1] {
                    hist[usize::from(v)] += 1;
                }
            }
            let count = ((y1 - y0) * (x1 - x0)) as u32;
            let (mut acc, mut q1, mut q2, mut q3) = (0, None, None, None);
            for (v, &c) in hist.iter().enumerate() {
                acc += c;
                if q1.is_none() && acc * 4 >= count {
                    q1 = Some(v as u8);
                }
                if q2.is_none() && acc * 2 >= count {
                    q2 = Some(v as u8);
                }
                if acc * 4 >= count * 3 {
                    q3 = Some(v as u8);
                    break;
                }
            }
            median[ty * tw + tx] = q2.unwrap_or(0);
            lower[ty * tw + tx] = q1.unwrap_or(0);
            iqr[ty * tw + tx] = q3.unwrap_or(0) - q1.unwrap_or(0);
        }
    }
    let mut mask = vec![0u8; w * h];
    for ty in 0..tht {
        for tx in 0..tw {
            // Texture: the lower quartile of the spreads of the tile and its neighbours (text
            // raises the spread of the tiles it is in: a line of large text covers up to six of
            // the nine; speckle clusters this lets through fail the ink-level test).
            let mut around = Vec::with_capacity(9);
            let mut base = Vec::with_capacity(9);
            let mut all_flat = true;
            for ny in ty.saturating_sub(1)..(ty + 2).min(tht) {
                for nx in tx.saturating_sub(1)..(tx + 2).min(tw) {
                    around.push(iqr[ny * tw + nx]);
                    base.push(median[ny * tw + nx]);
                    all_flat &= flat[ny * tw + nx];
                }
            }
            around.sort_unstable();
            base.sort_unstable();
            let spread = around[(around.len() - 1) / 4];
            // The base too: a tile mostly covered by large text must not raise its own bar.
            let base = base[base.len() / 2].min(median[ty * tw + tx]);
            let lift = (params.tophat_margin as f32).max(params.texture * spread as f32);
            let t = if all_flat {
                // Flat surroundings: dense text may raise median and spread, but there is
                // no texture to mistake for it.
                lower[ty * tw + tx]
                    .saturating_add(params.tophat_margin)
                    .max(params.tophat_min)
            } else {
                (base as f32 + lift)
                    .max(params.tophat_min as f32)
                    .min(params.tophat_cap.max(params.tophat_min) as f32) as u8
            };
            let (x0, y0) = (tx * TILE, ty * TILE);
            let (x1, y1) = ((x0 + TILE).min(w), (y0 + TILE).min(h));
            for y in y0..y1 {
                for x in x0..x1 {
                    mask[y * w + x] = u8::from(th[y * w + x] >= t);
                }
            }
        }
    }
    mask
}

/// A glyph candidate: bounding box (x1, y1 exclusive).
#[derive(Debug, Clone, Copy)]
struct Comp {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    /// A solid block (fill ≥ 0.95): a glyph of heavy text, or a bar or a rule of a drawing;
    /// only glyphs that are not solid make a line.
    solid: bool,
    /// Vertical runs per column, on average: a word of touching glyphs crosses several strokes
    /// in many of its columns, an arc or a band one.
    across: f32,
}

impl Comp {
    fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        parent[i as usize] = parent[parent[i as usize] as usize];
        i = parent[i as usize];
    }
    i
}

fn join(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

#[derive(Clone, Copy)]
/// What labelling gathers about one component (x1, y1 exclusive).
struct Acc {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    area: u32,
    perim: u32,
    /// Sum of |level difference| between horizontal neighbours inside the component.
    rough: u32,
    pairs: u32,
    /// Pixels whose upper neighbour is not in the component: starts of vertical runs.
    starts: u32,
}

/// Labels the 8-connected components of `mask` (on runs) and pushes those shaped like glyphs.
fn components(mask: &[u8], level: &[u8], w: usize, h: usize, params: &Params, out: &mut Vec<Comp>) {
    let pass = Pass {
        dark: false,
        again: false,
    };
    components_at(mask, level, w, h, params, out, pass);
}

/// [`components`] for dark ink (the black top-hat): a glyph's ink must be at least
/// [`Params::dark_contrast`] below the median level of the ring around its box.
fn dark_components(
    mask: &[u8],
    level: &[u8],
    w: usize,
    h: usize,
    params: &Params,
    out: &mut Vec<Comp>,
) {
    let pass = Pass {
        dark: true,
        again: false,
    };
    components_at(mask, level, w, h, params, out, pass);
}

/// How [`components_at`] labels a mask.
#[derive(Clone, Copy)]
struct Pass {
    /// Dark ink (see [`dark_components`]).
    dark: bool,
    /// The pixels at the ink level of components taken apart: no rules to drop, nothing to
    /// take apart again.
    again: bool,
}

/// [`components`]: rules dropped ([`without_rules`]), glyph tests, and components that are
/// mostly but not only one level taken apart once: their pixels at that level labelled again.
fn components_at(
    mask: &[u8],
    level: &[u8],
    w: usize,
    h: usize,
    params: &Params,
    out: &mut Vec<Comp>,
    pass: Pass,
) {
    let cleaned;
    let mask = match (!pass.again)
        .then(|| without_rules(mask, w, h, usize::from(params.rule_len)))
        .flatten()
    {
        Some(m) => {
            cleaned = m;
            &cleaned[..]
        }
        None => mask,
    };
    // Runs: (y, x0, x1 exclusive).
    let mut runs: Vec<(u32, u32, u32)> = Vec::new();
    let mut row_start = Vec::with_capacity(h + 1);
    for y in 0..h {
        row_start.push(runs.len());
        let row = &mask[y * w..(y + 1) * w];
        let mut x = skip_zeros(row, 0);
        while x < w {
            let s = x;
            while x < w && row[x] != 0 {
                x += 1;
            }
            runs.push((y as u32, s as u32, x as u32));
            x = skip_zeros(row, x);
        }
    }
    row_start.push(runs.len());
    if runs.is_empty() {
        return;
    }
    let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
    // Exact (4-connected) overlap between vertically adjacent runs, for the perimeter.
    let mut overlap = vec![0u32; runs.len()];
    for y in 1..h {
        let (prev, cur) = (
            row_start[y - 1]..row_start[y],
            row_start[y]..row_start[y + 1],
        );
        let mut j = prev.start;
        for i in cur {
            let (_, x0, x1) = runs[i];
            while j < prev.end && runs[j].2 < x0 {
                j += 1;
            }
            let mut k = j;
            while k < prev.end && runs[k].1 <= x1 {
                let (_, bx0, bx1) = runs[k];
                join(&mut parent, i as u32, k as u32);
                let ov = x1.min(bx1).saturating_sub(x0.max(bx0));
                overlap[i] += 2 * ov;
                k += 1;
            }
        }
    }
    let mut acc: Vec<Option<Acc>> = vec![None; runs.len()];
    for i in 0..runs.len() {
        let root = find(&mut parent, i as u32) as usize;
        let (y, x0, x1) = runs[i];
        let len = x1 - x0;
        let perim = (2 + 2 * len).saturating_sub(overlap[i]);
        let row = &level[y as usize * w + x0 as usize..y as usize * w + x1 as usize];
        let rough: u32 = row.windows(2).map(|p| u32::from(p[0].abs_diff(p[1]))).sum();
        let a = acc[root].get_or_insert(Acc {
            x0,
            y0: y,
            x1,
            y1: y + 1,
            area: 0,
            perim: 0,
            rough: 0,
            pairs: 0,
            starts: 0,
        });
        a.x0 = a.x0.min(x0);
        a.x1 = a.x1.max(x1);
        a.y0 = a.y0.min(y);
        a.y1 = a.y1.max(y + 1);
        a.area += len;
        a.perim += perim;
        a.rough += rough;
        a.pairs += len - 1;
        a.starts += len - overlap[i] / 2;
    }
    // Level histograms of the components tall enough to be glyphs: their ink (most frequent
    // level, give or take [`Params::ink_tol`]) and how much of them is that ink.
    let mut slot: Vec<u32> = vec![u32::MAX; runs.len()];
    let mut roots: Vec<usize> = Vec::new();
    for (root, a) in acc.iter().enumerate() {
        if let Some(a) = a
            && a.y1 - a.y0 >= u32::from(params.min_height)
        {
            slot[root] = roots.len() as u32;
            roots.push(root);
        }
    }
    let mut hist = vec![[0u32; 256]; roots.len()];
    let mut run_root = vec![0u32; runs.len()];
    for (i, &(y, x0, x1)) in runs.iter().enumerate() {
        let root = find(&mut parent, i as u32);
        run_root[i] = root;
        let k = slot[root as usize];
        if k == u32::MAX {
            continue;
        }
        let hist = &mut hist[k as usize];
        for &v in &level[y as usize * w + x0 as usize..y as usize * w + x1 as usize] {
            hist[usize::from(v)] += 1;
        }
    }
    // Components of one level are taken as they are; those mostly of one level (glyphs with
    // speckle or other ink stuck to them, or failing a test only because of it) are taken
    // apart: their pixels at their ink level are labelled again.
    let mut split: Vec<Option<(u8, u8)>> = vec![None; roots.len()];
    for (k, &root) in roots.iter().enumerate() {
        let a = acc[root].expect("a root");
        // Lossy pixels: compression spreads a glyph's levels in proportion to its contrast
        // with what is around it.
        let tol = if params.ink_tol_contrast > 0.0 {
            let (ink0, _) = ink_of(&hist[k], usize::from(params.ink_tol));
            let ring = ring_median(level, w, h, a.x0, a.y0, a.x1, a.y1);
            let contrast = if pass.dark {
                ring.saturating_sub(ink0)
            } else {
                ink0.saturating_sub(ring)
            };
            ((params.ink_tol_contrast * f32::from(contrast)).round() as u8)
                .clamp(params.ink_tol, params.ink_tol_max.max(params.ink_tol))
        } else {
            params.ink_tol
        };
        let (ink, modal) = ink_of(&hist[k], usize::from(tol));
        // Dark ink is on something light (a label), not at the floor of speckle.
        if pass.dark
            && ring_median(level, w, h, a.x0, a.y0, a.x1, a.y1)
                < ink.saturating_add(params.dark_contrast)
        {
            continue;
        }
        let apart = !pass.again && modal < 1.0 && modal * a.area as f32 >= 8.0;
        let glyph = glyph_shape(&a, level, w, h, params)
            && (modal >= params.min_modal
                || ring_roughness(level, w, h, a.x0, a.y0, a.x1, a.y1) <= params.flat_ring);
        if glyph && !(apart && modal < params.pure) {
            out.push(Comp {
                x0: a.x0,
                y0: a.y0,
                x1: a.x1,
                y1: a.y1,
                solid: a.area as f32 >= 0.95 * ((a.x1 - a.x0) * (a.y1 - a.y0)) as f32,
                across: a.starts as f32 / (a.x1 - a.x0) as f32,
            });
        } else if apart {
            split[k] = Some((ink, tol));
        }
    }
    if split.iter().any(Option::is_some) {
        let mut sub = vec![0u8; w * h];
        for (i, &(y, x0, x1)) in runs.iter().enumerate() {
            let k = slot[run_root[i] as usize];
            let Some((ink, tol)) = split.get(k as usize).copied().flatten() else {
                continue;
            };
            let at = y as usize * w;
            for x in x0 as usize..x1 as usize {
                sub[at + x] = u8::from(level[at + x].abs_diff(ink) <= tol);
            }
        }
        let again = Pass {
            again: true,
            ..pass
        };
        components_at(&sub, level, w, h, params, out, again);
    }
}

/// The mask without the thin parts (at most two pixels across) of its horizontal and vertical
/// runs of `len` pixels or more: rules, borders of boxes and bars, which would otherwise join
/// the glyphs they touch into one component no glyph test accepts. None when there are none.
fn without_rules(mask: &[u8], w: usize, h: usize, len: usize) -> Option<Vec<u8>> {
    let len = len.max(2);
    let on = |x: usize, y: usize| mask[y * w + x] != 0;
    // Long runs: horizontal (y, x0, x1) and vertical (x, y0, y1), ends exclusive. Columns are
    // counted a row at a time and only those that reach `len` are walked.
    let (mut across, mut down) = (Vec::new(), Vec::new());
    let cap = len.min(usize::from(u16::MAX)) as u16;
    let mut col = vec![0u16; w];
    let mut long = vec![false; w];
    for y in 0..h {
        let row = &mask[y * w..(y + 1) * w];
        let mut x = skip_zeros(row, 0);
        while x < w {
            let s = x;
            while x < w && row[x] != 0 {
                x += 1;
            }
            if x - s >= len {
                across.push((y, s, x));
            }
            x = skip_zeros(row, x);
        }
        for ((c, l), &m) in col.iter_mut().zip(long.iter_mut()).zip(row) {
            *c = if m != 0 { c.saturating_add(1) } else { 0 };
            *l |= *c >= cap;
        }
    }
    for x in (0..w).filter(|&x| long[x]) {
        let mut y = 0;
        while y < h {
            if !on(x, y) {
                y += 1;
                continue;
            }
            let s = y;
            while y < h && on(x, y) {
                y += 1;
            }
            if y - s >= len {
                down.push((x, s, y));
            }
        }
    }
    if across.is_empty() && down.is_empty() {
        return None;
    }
    let mut out = mask.to_vec();
    for (y, x0, x1) in across {
        for x in x0..x1 {
            // Thick where the pixel is in a vertical run of three or more.
            let up = y >= 1 && on(x, y - 1);
            let up2 = y >= 2 && on(x, y - 2);
            let dn = y + 1 < h && on(x, y + 1);
            let dn2 = y + 2 < h && on(x, y + 2);
            if !((up && (up2 || dn)) || (dn && dn2)) {
                out[y * w + x] = 0;
            }
        }
    }
    for (x, y0, y1) in down {
        for y in y0..y1 {
            let l = x >= 1 && on(x - 1, y);
            let l2 = x >= 2 && on(x - 2, y);
            let r = x + 1 < w && on(x + 1, y);
            let r2 = x + 2 < w && on(x + 2, y);
            if !((l && (l2 || r)) || (r && r2)) {
                out[y * w + x] = 0;
            }
        }
    }
    Some(out)
}

/// The first index at or after `x` where `row` is not zero (`row.len()` when none), eight
/// bytes at a time across zeros.
fn skip_zeros(row: &[u8], mut x: usize) -> usize {
    while let Some(chunk) = row.get(x..x + 8) {
        if u64::from_ne_bytes(chunk.try_into().expect("eight bytes")) != 0 {
            break;
        }
        x += 8;
    }
    while x < row.len() && row[x] == 0 {
        x += 1;
    }
    x
}

/// Most frequent level of a histogram (give or take `tol`) and the share of the total within
/// `tol` of it.
fn ink_of(hist: &[u32; 256], tol: usize) -> (u8, f32) {
    let total: u32 = hist.iter().sum();
    let mut best = (0u32, 0usize);
    let mut window: u32 = hist[..=tol.min(255)].iter().sum();
    for v in 0..256usize {
        if v > 0 {
            if v + tol < 256 {
                window += hist[v + tol];
            }
            if v > tol {
                window -= hist[v - tol - 1];
            }
        }
        if window > best.0 {
            best = (window, v);
        }
    }
    (best.1 as u8, best.0 as f32 / total.max(1) as f32)
}

/// Whether a component is shaped like a glyph (or several touching glyphs): the height,
/// aspect, fill, stroke width and roughness tests of the module docs.
fn glyph_shape(a: &Acc, level: &[u8], w: usize, h: usize, params: &Params) -> bool {
    let (cw, ch) = (a.x1 - a.x0, a.y1 - a.y0);
    if ch < u32::from(params.min_height) || ch > u32::from(params.max_height) {
        return false;
    }
    if cw as f32 > params.max_aspect * ch as f32 {
        return false;
    }
    // Glyphs of 10 px or less are too coarse for shape: only the roughness test applies.
    let small = ch <= 10;
    let fill = a.area as f32 / (cw * ch) as f32;
    if fill < params.min_fill || (!small && fill > params.max_fill) {
        return false;
    }
    let stroke = 2.0 * a.area as f32 / a.perim.max(1) as f32;
    if !small && stroke > params.max_stroke * ch as f32 {
        return false;
    }
    // Burned-in strokes are flat, clusters of speckle are not; anti-aliased text is rough
    // too, but on a flat background (the ring around its box) nothing else is.
    let rough = a.rough as f32 / a.pairs.max(1) as f32;
    !(rough > params.max_roughness
        && (rough > params.max_roughness_flat
            || ring_roughness(level, w, h, a.x0, a.y0, a.x1, a.y1) > params.flat_ring))
}

/// Median level of the ring of pixels just outside the box (x1, y1 exclusive), clipped to the
/// image (0 when the box is the whole image).
fn ring_median(level: &[u8], w: usize, h: usize, x0: u32, y0: u32, x1: u32, y1: u32) -> u8 {
    let (x0, y0, x1, y1) = (x0 as usize, y0 as usize, x1 as usize, y1 as usize);
    let (l, r) = (x0.saturating_sub(1), (x1 + 1).min(w));
    let mut hist = [0u32; 256];
    for y in [y0.checked_sub(1), (y1 < h).then_some(y1)]
        .into_iter()
        .flatten()
    {
        for &v in &level[y * w + l..y * w + r] {
            hist[usize::from(v)] += 1;
        }
    }
    for x in [x0.checked_sub(1), (x1 < w).then_some(x1)]
        .into_iter()
        .flatten()
    {
        for y in y0..y1 {
            hist[usize::from(level[y * w + x])] += 1;
        }
    }
    let n: u32 = hist.iter().sum();
    let mut acc = 0;
    for (v, &c) in hist.iter().enumerate() {
        acc += c;
        if acc * 2 > n {
            return v as u8;
        }
    }
    0
}

/// Mean absolute level difference between neighbours along the ring of pixels just outside
/// the box (x1, y1 exclusive), clipped to the image: about 0 on a flat background.
fn ring_roughness(level: &[u8], w: usize, h: usize, x0: u32, y0: u32, x1: u32, y1: u32) -> f32 {
    let (x0, y0, x1, y1) = (x0 as usize, y0 as usize, x1 as usize, y1 as usize);
    let (l, r) = (x0.saturating_sub(1), (x1 + 1).min(w));
    let (mut sum, mut n) = (0u32, 0u32);
    for y in [y0.checked_sub(1), (y1 < h).then_some(y1)]
        .into_iter()
        .flatten()
    {
        let row = &level[y * w + l..y * w + r];
        for p in row.windows(2) {
            sum += u32::from(p[0].abs_diff(p[1]));
            n += 1;
        }
    }
    let (t, b) = (y0.saturating_sub(1), (y1 + 1).min(h));
    for x in [x0.checked_sub(1), (x1 < w).then_some(x1)]
        .into_iter()
        .flatten()
    {
        for y in t + 1..b {
            sum += u32::from(level[y * w + x].abs_diff(level[(y - 1) * w + x]));
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    sum as f32 / n as f32
}

/// Groups glyph components into lines and returns the boxes of the lines kept.
fn lines(comps: &mut [Comp], params: &Params) -> Vec<Rect> {
    comps.sort_by_key(|c| (c.x0, c.y0));
    let n = comps.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let max_h = u32::from(params.max_height);
    let reach = (params.line_gap * max_h as f32) as u32 + 1;
    for i in 0..n {
        let a = comps[i];
        for (j, &b) in comps.iter().enumerate().skip(i + 1) {
            if b.x0 > a.x1 + reach {
                break;
            }
            let (ha, hb) = (a.height() as f32, b.height() as f32);
            let (lo, hi) = (ha.min(hb), ha.max(hb));
            if hi > params.max_height_ratio * lo {
                continue;
            }
            let vov = a.y1.min(b.y1) as f32 - a.y0.max(b.y0) as f32;
            if vov < 0.6 * lo {
                continue;
            }
            let gap = b.x0 as f32 - a.x1 as f32;
            if gap > params.line_gap * hi {
                continue;
            }
            join(&mut parent, i as u32, j as u32);
        }
    }
    #[derive(Clone, Copy)]
    struct Line {
        c: Comp,
        /// Glyphs: components that start right of every earlier one (the same glyph found by
        /// two masks counts once).
        count: u32,
        last_x1: u32,
        /// Columns under one of its components.
        covered: u32,
    }
    let mut groups: Vec<Option<Line>> = vec![None; n];
    for (i, &c) in comps.iter().enumerate() {
        let root = find(&mut parent, i as u32) as usize;
        match &mut groups[root] {
            Some(l) => {
                l.c.solid &= c.solid;
                l.c.x0 = l.c.x0.min(c.x0);
                l.c.y0 = l.c.y0.min(c.y0);
                l.c.x1 = l.c.x1.max(c.x1);
                l.c.y1 = l.c.y1.max(c.y1);
                l.c.across = l.c.across.max(c.across);
                if c.x0 >= l.last_x1 {
                    l.count += 1;
                }
                l.covered += c.x1.saturating_sub(c.x0.max(l.last_x1));
                l.last_x1 = l.last_x1.max(c.x1);
            }
            slot => {
                *slot = Some(Line {
                    c,
                    count: 1,
                    last_x1: c.x1,
                    covered: c.x1 - c.x0,
                })
            }
        }
    }
    let (mut kept, mut rest): (Vec<Comp>, Vec<Comp>) = (Vec::new(), Vec::new());
    for l in groups.into_iter().flatten() {
        let width = (l.c.x1 - l.c.x0) as f32;
        if !l.c.solid
            && ((l.count >= 4 || (l.count >= 2 && l.covered as f32 >= params.min_cover * width))
                || (l.count == 1
                    && width >= params.min_single_aspect * l.c.height() as f32
                    && l.c.across >= params.min_across))
        {
            kept.push(l.c);
        } else {
            rest.push(l.c);
        }
    }
    extend(&mut kept, rest, params);
    let boxes: Vec<Rect> = kept
        .into_iter()
        .map(|c| Rect {
            x: c.x0 as u16,
            y: c.y0 as u16,
            width: (c.x1 - c.x0) as u16,
            height: (c.y1 - c.y0) as u16,
        })
        .collect();
    crate::redact::union(&boxes)
}

/// Whether `a` and `b` sit on one text line: heights within `ratio`, vertical overlap at least
/// `overlap` of the lower one, horizontal gap at most `gap` heights of the taller.
fn same_line(a: &Comp, b: &Comp, ratio: f32, overlap: f32, gap: f32) -> bool {
    let (ha, hb) = (a.height() as f32, b.height() as f32);
    let (lo, hi) = (ha.min(hb), ha.max(hb));
    if hi > ratio * lo {
        return false;
    }
    let vov = a.y1.min(b.y1) as f32 - a.y0.max(b.y0) as f32;
    if vov < overlap * lo {
        return false;
    }
    let dx = if a.x1 <= b.x0 {
        (b.x0 - a.x1) as f32
    } else if b.x1 <= a.x0 {
        (a.x0 - b.x1) as f32
    } else {
        0.0
    };
    dx <= gap * hi
}

/// Grows kept lines along their baseline: a group too short to be a line on its own (a lone
/// glyph, a word cut off by a glyph the filters dropped) joins a kept line it is aligned
/// with within [`Params::extend_gap`] heights, and kept lines of the same height on one
/// baseline join across such a gap (fields of one line split by a glyph that was missed).
fn extend(kept: &mut Vec<Comp>, mut rest: Vec<Comp>, params: &Params) {
    let gap = params.extend_gap;
    let merge = |a: &mut Comp, b: &Comp| {
        a.x0 = a.x0.min(b.x0);
        a.y0 = a.y0.min(b.y0);
        a.x1 = a.x1.max(b.x1);
        a.y1 = a.y1.max(b.y1);
    };
    loop {
        let mut changed = false;
        rest.retain(|r| {
            for k in kept.iter_mut() {
                if same_line(k, r, params.max_height_ratio, 0.6, gap) {
                    merge(k, r);
                    changed = true;
                    return false;
                }
            }
            true
        });
        let mut i = 0;
        while i < kept.len() {
            let mut j = i + 1;
            while j < kept.len() {
                if same_line(&kept[i], &kept[j], 1.25, 0.8, gap) {
                    let b = kept.swap_remove(j);
                    merge(&mut kept[i], &b);
                    changed = true;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
        if !changed {
            break;
        }
    }
}
