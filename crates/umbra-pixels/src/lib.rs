//! Pixel data for Umbra.
//!
//! An in-memory image model ([`Image`]: native little-endian pixels, samples interleaved, frame
//! after frame), an 8x8 bitmap font to burn text into images ([`font`]), plausible synthetic
//! backgrounds ([`background`]), encoders and decoders for the transfer syntaxes a pure-Rust
//! program can write ([`codec`]: native, RLE Lossless, JPEG baseline, JPEG lossless SV1) and
//! code streams of a real image in the syntaxes it cannot ([`templates`]).
//!
//! The crate does no I/O: its only data is compiled in with `include_bytes!`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod background;
pub mod codec;
pub mod detect;
pub mod font;
pub mod redact;
pub mod rules;
pub mod templates;

/// Photometric Interpretation (0028,0004): how the samples of a pixel are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Photometric {
    /// `MONOCHROME1`: one sample, the lowest value is white.
    Monochrome1,
    /// `MONOCHROME2`: one sample, the lowest value is black.
    Monochrome2,
    /// `RGB`: three samples, red, green, blue.
    Rgb,
    /// `YBR_FULL_422`: luminance and two chrominance samples, the chrominance subsampled
    /// horizontally (as stored by colour JPEG baseline).
    YbrFull422,
    /// `YBR_FULL`: luminance and two chrominance samples, full range.
    YbrFull,
    /// `PALETTE COLOR`: one sample, an index into the palette lookup tables.
    PaletteColor,
}

impl Photometric {
    /// The defined term as written in a data set, e.g. `"MONOCHROME2"`, `"YBR_FULL_422"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Photometric::Monochrome1 => "MONOCHROME1",
            Photometric::Monochrome2 => "MONOCHROME2",
            Photometric::Rgb => "RGB",
            Photometric::YbrFull422 => "YBR_FULL_422",
            Photometric::YbrFull => "YBR_FULL",
            Photometric::PaletteColor => "PALETTE COLOR",
        }
    }

    /// Parses a defined term; surrounding spaces and NUL padding are ignored, case is not.
    /// Terms this crate does not model (`YBR_ICT`, `YBR_RCT`, `YBR_PARTIAL_420`, ...) give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let term = s.trim_matches(|c: char| c == ' ' || c == '\0');
        [
            Photometric::Monochrome1,
            Photometric::Monochrome2,
            Photometric::Rgb,
            Photometric::YbrFull422,
            Photometric::YbrFull,
            Photometric::PaletteColor,
        ]
        .into_iter()
        .find(|p| p.as_str() == term)
    }

    /// Whether the samples are luminance and chrominance (`YBR_*`).
    pub fn is_ybr(self) -> bool {
        matches!(self, Photometric::YbrFull | Photometric::YbrFull422)
    }
}

/// A rectangle of pixels: `x` is the column, `y` the row of its top left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Column of the left edge.
    pub x: u16,
    /// Row of the top edge.
    pub y: u16,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

impl Rect {
    /// Whether the rectangle covers no pixel.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }
}

/// Native pixels: little endian, samples interleaved (planar configuration 0), frame after frame.
///
/// `bits_allocated` is 8 or 16 (anything above 8 is treated as 16 by the accessors; the codecs
/// refuse other values). Values are stored as raw bits: a signed image holds two's complement
/// values, conventionally sign-extended from `bits_stored` to `bits_allocated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Rows (0028,0010): the height.
    pub rows: u16,
    /// Columns (0028,0011): the width.
    pub columns: u16,
    /// Samples per Pixel (0028,0002): 1 for monochrome and palette, 3 for colour.
    pub samples: u16,
    /// Bits Allocated (0028,0100): 8 or 16.
    pub bits_allocated: u16,
    /// Bits Stored (0028,0101): at most `bits_allocated`.
    pub bits_stored: u16,
    /// Pixel Representation (0028,0103) is 1: two's complement values.
    pub signed: bool,
    /// Photometric Interpretation (0028,0004).
    pub photometric: Photometric,
    /// Number of Frames (0028,0008); 1 for a single-frame object.
    pub frames: u32,
    /// The pixels: `frames * frame_len()` bytes.
    pub data: Vec<u8>,
}

impl Image {
    /// A zero-filled image of the given geometry.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rows: u16,
        columns: u16,
        samples: u16,
        bits_allocated: u16,
        bits_stored: u16,
        signed: bool,
        photometric: Photometric,
        frames: u32,
    ) -> Image {
        let mut img = Image {
            rows,
            columns,
            samples,
            bits_allocated,
            bits_stored,
            signed,
            photometric,
            frames,
            data: Vec::new(),
        };
        img.data = vec![0; img.frame_len() * frames as usize];
        img
    }

    /// Bytes per sample: 1 when `bits_allocated` is 8 or less, else 2.
    pub fn bytes_per_sample(&self) -> usize {
        if self.bits_allocated <= 8 { 1 } else { 2 }
    }

    /// Bytes in one frame: rows x columns x samples x bytes per sample.
    pub fn frame_len(&self) -> usize {
        self.rows as usize * self.columns as usize * self.samples as usize * self.bytes_per_sample()
    }

    fn offset(&self, frame: u32, row: u16, col: u16, sample: u16) -> usize {
        assert!(
            frame < self.frames && row < self.rows && col < self.columns && sample < self.samples,
            "pixel ({frame}, {row}, {col}, {sample}) outside the image"
        );
        let bps = self.bytes_per_sample();
        frame as usize * self.frame_len()
            + ((row as usize * self.columns as usize + col as usize) * self.samples as usize
                + sample as usize)
                * bps
    }

    /// The raw stored value of one sample (two's complement bits for signed images).
    ///
    /// # Panics
    /// If the position is outside the image (like slice indexing).
    pub fn get(&self, frame: u32, row: u16, col: u16, sample: u16) -> u32 {
        let at = self.offset(frame, row, col, sample);
        if self.bytes_per_sample() == 1 {
            u32::from(self.data[at])
        } else {
            u32::from(u16::from_le_bytes([self.data[at], self.data[at + 1]]))
        }
    }

    /// Sets one sample to the low 8 or 16 bits of `value`.
    ///
    /// # Panics
    /// If the position is outside the image (like slice indexing).
    pub fn set(&mut self, frame: u32, row: u16, col: u16, sample: u16, value: u32) {
        let at = self.offset(frame, row, col, sample);
        if self.bytes_per_sample() == 1 {
            self.data[at] = value as u8;
        } else {
            self.data[at..at + 2].copy_from_slice(&(value as u16).to_le_bytes());
        }
    }

    /// The bytes of one rectangle in one frame, row after row, every sample: what a scorer hashes
    /// to see whether text is still there. The rectangle is clipped to the image; a frame outside
    /// the image gives no bytes.
    pub fn region_bytes(&self, frame: u32, rect: Rect) -> Vec<u8> {
        let rect = self.clip(rect);
        if frame >= self.frames || rect.is_empty() {
            return Vec::new();
        }
        let pixel = self.samples as usize * self.bytes_per_sample();
        let row_len = self.columns as usize * pixel;
        let base = frame as usize * self.frame_len();
        let mut out = Vec::with_capacity(rect.width as usize * rect.height as usize * pixel);
        for row in rect.y..rect.y + rect.height {
            let start = base + row as usize * row_len + rect.x as usize * pixel;
            let end = start + rect.width as usize * pixel;
            match self.data.get(start..end) {
                Some(bytes) => out.extend_from_slice(bytes),
                None => break,
            }
        }
        out
    }

    /// The part of `rect` inside the image (empty, at the clipped corner, when none is).
    pub fn clip(&self, rect: Rect) -> Rect {
        let x = rect.x.min(self.columns);
        let y = rect.y.min(self.rows);
        let right = (u32::from(rect.x) + u32::from(rect.width)).min(u32::from(self.columns));
        let bottom = (u32::from(rect.y) + u32::from(rect.height)).min(u32::from(self.rows));
        Rect {
            x,
            y,
            width: right.saturating_sub(u32::from(x)) as u16,
            height: bottom.saturating_sub(u32::from(y)) as u16,
        }
    }

    /// The largest stored value (unsigned) or the largest positive value (signed) that
    /// `bits_stored` can hold.
    pub fn max_value(&self) -> u32 {
        let bits = u32::from(self.bits_stored.clamp(1, 16));
        if self.signed {
            (1u32 << (bits - 1)).saturating_sub(1)
        } else {
            (1u32 << bits) - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photometric_terms_round_trip() {
        for p in [
            Photometric::Monochrome1,
            Photometric::Monochrome2,
            Photometric::Rgb,
            Photometric::YbrFull422,
            Photometric::YbrFull,
            Photometric::PaletteColor,
        ] {
            assert_eq!(Photometric::parse(p.as_str()), Some(p));
        }
        assert_eq!(
            Photometric::parse("MONOCHROME2 "),
            Some(Photometric::Monochrome2)
        );
        assert_eq!(
            Photometric::parse("YBR_FULL_422"),
            Some(Photometric::YbrFull422)
        );
        assert_eq!(
            Photometric::parse("PALETTE COLOR"),
            Some(Photometric::PaletteColor)
        );
        assert_eq!(Photometric::parse("YBR_RCT"), None);
        assert_eq!(Photometric::parse("monochrome2"), None);
    }

    #[test]
    fn get_set_are_little_endian_interleaved() {
        let mut img = Image::new(2, 3, 3, 16, 16, false, Photometric::Rgb, 2);
        assert_eq!(img.frame_len(), 2 * 3 * 3 * 2);
        assert_eq!(img.data.len(), 2 * img.frame_len());
        img.set(1, 1, 2, 1, 0x1234);
        let at = img.frame_len() + ((3 + 2) * 3 + 1) * 2;
        assert_eq!(&img.data[at..at + 2], &[0x34, 0x12]);
        assert_eq!(img.get(1, 1, 2, 1), 0x1234);
        assert_eq!(img.get(0, 1, 2, 1), 0);
        img.set(0, 0, 0, 0, 0xABCDEF);
        assert_eq!(img.get(0, 0, 0, 0), 0xCDEF);
    }

    #[test]
    fn region_bytes_takes_rows_of_the_rectangle_clipped() {
        let mut img = Image::new(4, 5, 1, 8, 8, false, Photometric::Monochrome2, 2);
        for (i, b) in img.data.iter_mut().enumerate() {
            *b = i as u8;
        }
        let r = Rect {
            x: 1,
            y: 2,
            width: 2,
            height: 2,
        };
        assert_eq!(img.region_bytes(0, r), vec![11, 12, 16, 17]);
        assert_eq!(img.region_bytes(1, r), vec![31, 32, 36, 37]);
        let wide = Rect {
            x: 3,
            y: 3,
            width: 10,
            height: 10,
        };
        assert_eq!(img.region_bytes(0, wide), vec![18, 19]);
        assert!(img.region_bytes(2, r).is_empty());
        assert!(
            img.region_bytes(
                0,
                Rect {
                    x: 9,
                    y: 0,
                    width: 3,
                    height: 3
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn max_value_follows_bits_stored_and_sign() {
        let u12 = Image::new(1, 1, 1, 16, 12, false, Photometric::Monochrome2, 1);
        assert_eq!(u12.max_value(), 4095);
        let s16 = Image::new(1, 1, 1, 16, 16, true, Photometric::Monochrome2, 1);
        assert_eq!(s16.max_value(), 32767);
    }
}
