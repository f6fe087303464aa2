//! Pixel cleaning for `clean-pixel-data`: the pixel data element is decoded, burned-in text is
//! found (known regions from rule files, and a text detector) and filled, and the pixels are
//! encoded back.
//!
//! Transfer syntaxes: native data (little or big endian, implicit or explicit, deflated) stays
//! native; RLE and JPEG lossless are decoded and encoded again losslessly in the same syntax;
//! JPEG 2000 lossless and JPEG-LS lossless (no encoder here) are written losslessly as JPEG
//! lossless SV1 (monochrome) or RLE (colour); JPEG baseline and extended, JPEG 2000 (.91) and
//! JPEG-LS near-lossless (lossy) are decoded and written as Explicit VR Little Endian, so the
//! image is not compressed lossily a second time (it says Lossy Image Compression 01, and
//! grows). What decodes is [`codec::can_decode`]'s answer (JPEG 2000 with umbra-pixels'
//! default feature `jpeg2000`; JPEG-LS and 12-bit JPEG always); what cannot be decoded is held
//! back with that reason. Palette colour is cleaned in its indices: text is found in the
//! colours the palette gives and filled with its darkest entry. Everything that cannot be done right is an error, and the caller
//! holds the object back: an object marked for cleaning is never written with its pixels
//! unexamined.

use crate::read::RawPixelData;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::{FileDicomObject, InMemDicomObject};
use umbra_pixels::codec::{self, Codec};
use umbra_pixels::{Image, Photometric, Rect, detect, redact, rules::RuleSet};

/// How pixels are cleaned in a run.
#[derive(Debug)]
pub struct Cleaner {
    /// Known regions of burned-in text.
    pub rules: RuleSet,
    /// Text detector settings.
    pub detect: detect::Params,
    /// Run the text detector (off: known regions from the rules only, as RSNA CTP's pixel
    /// anonymizer works; the detector then only checks, see `check_after`).
    pub detect_text: bool,
    /// With the rules only (`detect_text` off): after filling, run the detector and refuse the
    /// object if it finds text outside the rules' regions (fail closed; on by default). With the
    /// detector on, its second look around each line fills what it finds instead.
    pub check_after: bool,
    /// Pixels added around every box.
    pub padding: u16,
    /// After cleaning, read the pixels with tesseract (this program) and refuse the object if
    /// the text read holds one of its own identifiers. Off by default.
    pub ocr: Option<std::path::PathBuf>,
    /// Boxes found in one frame are filled in that frame only (default: in every frame).
    pub per_frame: bool,
}

impl Default for Cleaner {
    fn default() -> Self {
        Cleaner {
            rules: RuleSet::builtin(),
            detect: detect::Params::default(),
            detect_text: true,
            check_after: true,
            padding: 3,
            ocr: None,
            per_frame: false,
        }
    }
}

/// What cleaning did to one object.
#[derive(Debug, Clone)]
pub struct Cleaned {
    /// Boxes filled (after merging), over all frames.
    pub boxes: usize,
    /// Rules that matched.
    pub rules: Vec<String>,
    /// The transfer syntax the object is written in now.
    pub transfer_syntax: String,
}

/// Whether `b`'s centre lies in one of `boxes`.
fn inside_any(b: &Rect, boxes: &[Rect]) -> bool {
    let (cx, cy) = (
        u32::from(b.x) + u32::from(b.width) / 2,
        u32::from(b.y) + u32::from(b.height) / 2,
    );
    boxes.iter().any(|f| {
        cx >= u32::from(f.x)
            && cx < u32::from(f.x) + u32::from(f.width)
            && cy >= u32::from(f.y)
            && cy < u32::from(f.y) + u32::from(f.height)
    })
}

/// Where the rest of a text line, or the next line, would be: four of its heights to either
/// side, two above and below, within the image.
fn neighbourhood(b: &Rect, rows: u16, columns: u16) -> Rect {
    let h = u32::from(b.height.max(8));
    let x0 = u32::from(b.x).saturating_sub(4 * h);
    let y0 = u32::from(b.y).saturating_sub(2 * h);
    let x1 = (u32::from(b.x) + u32::from(b.width) + 4 * h).min(u32::from(columns));
    let y1 = (u32::from(b.y) + u32::from(b.height) + 2 * h).min(u32::from(rows));
    Rect {
        x: x0 as u16,
        y: y0 as u16,
        width: x1.saturating_sub(x0) as u16,
        height: y1.saturating_sub(y0) as u16,
    }
}

/// The pixels of `area` in every frame, as an image of their own.
fn crop(img: &Image, area: Rect) -> Image {
    let mut part = Image::new(
        area.height,
        area.width,
        img.samples,
        img.bits_allocated,
        img.bits_stored,
        img.signed,
        img.photometric,
        img.frames,
    );
    // row by row, as bytes: every sample of a pixel is contiguous (interleaved)
    let px = usize::from(img.samples) * img.bytes_per_sample();
    let row_in = usize::from(img.columns) * px;
    let row_out = usize::from(area.width) * px;
    let (fin, fout) = (img.frame_len(), part.frame_len());
    for f in 0..img.frames as usize {
        for r in 0..usize::from(area.height) {
            let src = f * fin + (usize::from(area.y) + r) * row_in + usize::from(area.x) * px;
            let dst = f * fout + r * row_out;
            if let (Some(from), Some(to)) = (
                img.data.get(src..src + row_out),
                part.data.get_mut(dst..dst + row_out),
            ) {
                to.copy_from_slice(from);
            }
        }
    }
    part
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// Cleans the pixels of `obj` (read in `ts`; its pixel data in the object or carried `raw`)
/// and puts the cleaned pixel data element into `obj`. On success the raw element must no
/// longer be written. `identifiers` (kind, value) are the original object's own, for the OCR
/// check (see [`identifiers_for_ocr`]).
pub fn clean(
    obj: &mut FileDicomObject<InMemDicomObject>,
    raw: Option<&RawPixelData>,
    ts: &str,
    cleaner: &Cleaner,
    identifiers: &[(&'static str, String)],
) -> Result<Cleaned, String> {
    let (mut img, geometry) = decode(obj, raw, ts)?;
    // Palette colour: text is found in the colours the palette gives, and filled in the
    // indices with the palette's darkest entry, so the image stays palette colour.
    let palette = match img.photometric {
        Photometric::PaletteColor => Some(Palette::read(obj)?),
        _ => None,
    };
    let mut view = palette.as_ref().map(|p| p.to_rgb(&img));
    let palette_black = palette.as_ref().map(|p| vec![p.darkest()]);
    let fill = |img: &mut Image, view: &mut Option<Image>, frame, rects: &[Rect]| {
        match &palette_black {
            Some(b) => redact::fill_with(img, frame, rects, cleaner.padding, b),
            None => redact::fill(img, frame, rects, cleaner.padding),
        }
        if let Some(v) = view.as_mut() {
            redact::fill(v, frame, rects, cleaner.padding);
        }
    };

    // Regions: known ones by rule, then what the detector finds.
    let meta = obj.meta().clone();
    let attr = |keyword: &str| -> Option<String> {
        let from_meta = match keyword {
            "TransferSyntaxUID" => Some(meta.transfer_syntax().to_owned()),
            "MediaStorageSOPClassUID" => Some(meta.media_storage_sop_class_uid().to_owned()),
            "ImplementationClassUID" => Some(meta.implementation_class_uid().to_owned()),
            "ImplementationVersionName" => meta.implementation_version_name.clone(),
            "SourceApplicationEntityTitle" => meta.source_application_entity_title.clone(),
            _ => None,
        };
        if let Some(v) = from_meta {
            return Some(v.trim_end_matches(['\0', ' ']).to_owned());
        }
        let tag = StandardDataDictionary.by_name(keyword)?.tag_range().inner();
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_owned())
    };
    let by_rule = cleaner.rules.regions(&attr, img.rows, img.columns);
    let rule_names: Vec<String> = by_rule.iter().map(|(n, _)| n.clone()).collect();
    let rule_boxes: Vec<Rect> = by_rule.into_iter().map(|(_, r)| r).collect();
    // First look: fill what the rules and the detector find in the image as it is. Second
    // look, around each line the detector found: a line's next word can stand out only once its
    // neighbours are gone; what it finds there is filled too. With the rules only, the
    // detector's one look is the check, anywhere in the image: text the rules do not cover
    // holds the object back.
    let mut filled: Vec<Rect> = Vec::new();
    let frames: Vec<Option<u32>> = if cleaner.per_frame {
        (0..img.frames).map(Some).collect()
    } else {
        vec![None]
    };
    // Pixels from a lossy syntax: compression spreads the levels of small text, and the
    // detector tolerates it (more boxes on texture: fail closed).
    let params = if lossy_pixels(obj, ts) {
        cleaner.detect.to_lossy()
    } else {
        cleaner.detect.clone()
    };
    let detect_in = |img: &Image, frame: Option<u32>| match frame {
        Some(f) => detect::find_text(img, f, &params),
        None => detect::find_text_all_frames(img, &params),
    };
    let mut detected: Vec<Rect> = Vec::new();
    for &frame in &frames {
        let mut found = if cleaner.detect_text {
            detect_in(view.as_ref().unwrap_or(&img), frame)
        } else {
            Vec::new()
        };
        detected.extend(found.iter().copied());
        found.extend(rule_boxes.iter().copied());
        let found = redact::union(&found);
        fill(&mut img, &mut view, frame, &found);
        filled.extend(found);
    }
    if cleaner.detect_text && !detected.is_empty() {
        let padded: Vec<Rect> = filled
            .iter()
            .map(|r| redact::pad(*r, cleaner.padding))
            .collect();
        let around: Vec<Rect> = detected
            .iter()
            .map(|b| neighbourhood(b, img.rows, img.columns))
            .collect();
        for area in redact::union(&around) {
            let part = crop(view.as_ref().unwrap_or(&img), area);
            for &frame in &frames {
                let more: Vec<Rect> = detect_in(&part, frame)
                    .into_iter()
                    .map(|b| Rect {
                        x: b.x + area.x,
                        y: b.y + area.y,
                        ..b
                    })
                    .filter(|b| !inside_any(b, &padded))
                    .collect();
                fill(&mut img, &mut view, frame, &more);
                filled.extend(more);
            }
        }
    } else if !cleaner.detect_text && cleaner.check_after {
        let padded: Vec<Rect> = filled
            .iter()
            .map(|r| redact::pad(*r, cleaner.padding))
            .collect();
        if let Some(b) = frames
            .iter()
            .flat_map(|&f| detect_in(view.as_ref().unwrap_or(&img), f))
            .find(|b| !inside_any(b, &padded))
        {
            return Err(format!(
                "text the rules do not cover is found, at x {} y {} ({}x{})",
                b.x, b.y, b.width, b.height
            ));
        }
    }
    let boxes = redact::union(&filled).len();

    if let Some(program) = &cleaner.ocr {
        if let Some(kind) = ocr_finds(program, view.as_ref().unwrap_or(&img), identifiers)? {
            return Err(format!(
                "OCR (tesseract) still reads the {kind} in the cleaned pixels"
            ));
        }
    }

    let new_ts = put_pixels(obj, &img, &geometry, ts)?;
    Ok(Cleaned {
        boxes,
        rules: rule_names,
        transfer_syntax: new_ts,
    })
}

/// Whether the pixels of `obj` (read in `ts`) went through lossy compression: JPEG baseline or
/// extended, JPEG-LS near-lossless, JPEG 2000 (.91) unless the data set says Lossy Image
/// Compression 00, or any syntax when it says 01.
fn lossy_pixels(obj: &FileDicomObject<InMemDicomObject>, ts: &str) -> bool {
    let said = obj
        .element(tags::LOSSY_IMAGE_COMPRESSION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim().to_owned());
    match ts {
        codec::JPEG_BASELINE | codec::JPEG_EXTENDED | codec::JPEG_LS_NEAR_LOSSLESS => true,
        codec::JPEG_2000 => said.as_deref() != Some("00"),
        _ => said.as_deref() == Some("01"),
    }
}

/// Puts `img` (native pixels, as [`decode`] gives them, changed by the caller) back into
/// `obj` as its pixel data, encoded for `ts`, the syntax the object was read in: native stays
/// native; RLE and JPEG lossless are encoded again in their own syntax; JPEG 2000 and JPEG-LS
/// lossless become JPEG lossless SV1 (monochrome) or RLE (colour); lossy input becomes Explicit
/// VR Little Endian (never compressed lossily a second time; Lossy Image Compression 01).
/// Photometric Interpretation and Planar Configuration follow the decoded pixels; the meta
/// group's transfer syntax is updated. Returns the transfer syntax the object is in now.
pub fn put_pixels(
    obj: &mut FileDicomObject<InMemDicomObject>,
    img: &Image,
    geometry: &Image,
    ts: &str,
) -> Result<String, String> {
    let (new_ts, element) = match ts {
        EXPLICIT_LE | IMPLICIT_LE | DEFLATED | EXPLICIT_BE => {
            (ts.to_owned(), native_element(img, ts))
        }
        codec::RLE_LOSSLESS => (ts.to_owned(), encapsulated(img, Codec::RleLossless)?),
        codec::JPEG_LOSSLESS | codec::JPEG_LOSSLESS_SV1 => {
            (ts.to_owned(), encapsulated(img, Codec::JpegLossless)?)
        }
        codec::JPEG_2000_LOSSLESS | codec::JPEG_LS_LOSSLESS => {
            // lossless input with no encoder here: JPEG lossless SV1 (monochrome) or RLE
            // (colour), both lossless
            let codec = if img.samples == 1 {
                Codec::JpegLossless
            } else {
                Codec::RleLossless
            };
            (
                codec.transfer_syntax().to_owned(),
                encapsulated(img, codec)?,
            )
        }
        codec::JPEG_BASELINE
        | codec::JPEG_EXTENDED
        | codec::JPEG_2000
        | codec::JPEG_LS_NEAR_LOSSLESS => {
            // lossy input: decoded and kept as it is now, never compressed lossily again. JPEG
            // 2000 (.91) may hold a reversible code stream: a data set that says so (Lossy
            // Image Compression 00) keeps its word.
            let said_lossless = ts == codec::JPEG_2000
                && obj
                    .element(tags::LOSSY_IMAGE_COMPRESSION)
                    .ok()
                    .and_then(|e| e.to_str().ok())
                    .is_some_and(|v| v.trim() == "00");
            if !said_lossless {
                let ds = &mut **obj;
                ds.put(DataElement::new(
                    tags::LOSSY_IMAGE_COMPRESSION,
                    VR::CS,
                    PrimitiveValue::from("01"),
                ));
            }
            (EXPLICIT_LE.to_owned(), native_element(img, EXPLICIT_LE))
        }
        other => {
            return Err(format!(
                "pixel data in transfer syntax {other} cannot be encoded again by this build"
            ));
        }
    };
    // YBR_ICT and YBR_RCT (JPEG 2000) decode to RGB; colour JPEG baseline to RGB
    let declared = obj
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_owned());
    if img.photometric != geometry.photometric
        || declared.as_deref() != Some(img.photometric.as_str())
    {
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(img.photometric.as_str()),
        ));
    }
    if img.samples > 1 {
        obj.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    obj.put(element);
    if new_ts != ts {
        obj.meta_mut().transfer_syntax = new_ts.clone();
        obj.meta_mut().update_information_group_length();
    }
    Ok(new_ts)
}

/// Decodes the pixel data of `obj` (read in `ts`; the element in the object or carried `raw`)
/// into native interleaved pixels; also returns the geometry the data set declares.
pub fn decode(
    obj: &InMemDicomObject,
    raw: Option<&RawPixelData>,
    ts: &str,
) -> Result<(Image, Image), String> {
    if obj.get(tags::FLOAT_PIXEL_DATA).is_some() || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
    {
        return Err("float pixel data cannot be cleaned".into());
    }
    // which syntaxes decode depends on umbra-pixels' features (JPEG 2000, JPEG-LS)
    if !codec::can_decode(ts) {
        return Err(format!(
            "pixel data in {} cannot be decoded by this build",
            syntax_name(ts)
        ));
    }
    let geometry = geometry(obj, ts)?;
    if geometry.photometric == Photometric::PaletteColor {
        // cleaning needs the tables: refused here when they cannot be read
        Palette::read(obj)?;
    }
    let value = match raw {
        Some(r) => {
            let bytes = r
                .to_vec()
                .map_err(|e| format!("cannot read the pixel data: {e}"))?;
            parse_element(&bytes, ts)?
        }
        None => from_object(obj)?,
    };
    let planar = int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) == 1;
    let img = match &value {
        Pixels::Native(bytes) => {
            let mut bytes = bytes.clone();
            if ts == EXPLICIT_BE && geometry.bits_allocated == 16 {
                for w in bytes.chunks_exact_mut(2) {
                    w.swap(0, 1);
                }
            }
            let need = geometry
                .frame_len()
                .checked_mul(geometry.frames as usize)
                .ok_or("image size out of range")?;
            if bytes.len() < need {
                return Err(format!(
                    "pixel data holds {} bytes where the image needs {need}",
                    bytes.len()
                ));
            }
            bytes.truncate(need);
            if planar && geometry.samples > 1 {
                bytes = planar_to_interleaved(&bytes, &geometry);
            }
            codec::decode(EXPLICIT_LE, &[&bytes], &geometry).map_err(|e| e.to_string())?
        }
        Pixels::Fragments { offsets, fragments } => {
            let frames = group_frames(offsets, fragments, geometry.frames)?;
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            codec::decode(ts, &refs, &geometry).map_err(|e| match e {
                codec::CodecError::Unsupported(what) => format!(
                    "pixel data in {} cannot be decoded by this build ({what})",
                    syntax_name(ts)
                ),
                e => format!("pixel data cannot be decoded: {e}"),
            })?
        }
    };

    Ok((img, geometry))
}

/// Text the detector still finds in the pixels of `obj` (for `umbra scan` and for checking a
/// cleaned object): boxes in any frame.
pub fn residual_text(
    obj: &InMemDicomObject,
    raw: Option<&RawPixelData>,
    ts: &str,
    params: &detect::Params,
) -> Result<Vec<Rect>, String> {
    let (img, _) = decode(obj, raw, ts)?;
    let img = match img.photometric {
        Photometric::PaletteColor => Palette::read(obj)?.to_rgb(&img),
        _ => img,
    };
    Ok(detect::find_text_all_frames(&img, params))
}

/// The original object's identifiers an OCR check looks for: (kind, value).
pub fn identifiers_for_ocr(obj: &InMemDicomObject) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for (tag, kind) in [
        (tags::PATIENT_NAME, "patient name"),
        (tags::PATIENT_ID, "patient ID"),
        (Tag(0x0010, 0x1000), "other patient ID"),
        (tags::PATIENT_BIRTH_DATE, "birth date"),
        (tags::ACCESSION_NUMBER, "accession number"),
        (tags::INSTITUTION_NAME, "institution"),
        (tags::STUDY_DATE, "study date"),
    ] {
        if let Some(s) = obj.element(tag).ok().and_then(|e| e.to_str().ok()) {
            let s = s.trim().to_owned();
            if !s.is_empty() {
                v.push((kind, s));
            }
        }
    }
    v
}

/// Runs tesseract on every frame's luminance and returns the kind of the first identifier whose
/// words it reads (names by their parts of four letters or more, numbers and dates whole, dates
/// also as MM/DD/YYYY and DD.MM.YYYY).
fn ocr_finds(
    program: &std::path::Path,
    img: &Image,
    identifiers: &[(&'static str, String)],
) -> Result<Option<&'static str>, String> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let mut needles: Vec<(&'static str, String)> = Vec::new();
    for (kind, value) in identifiers {
        let is_date = value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit());
        if is_date {
            let (y, m, d) = (&value[0..4], &value[4..6], &value[6..8]);
            for form in [value.clone(), format!("{m}{d}{y}"), format!("{d}{m}{y}")] {
                needles.push((kind, form));
            }
        } else if *kind == "patient name" {
            for part in value.split(['^', '=', ' ', ',']) {
                let p = squash(part);
                if p.len() >= 4 {
                    needles.push((kind, p));
                }
            }
        } else {
            let p = squash(value);
            if p.len() >= 4 {
                needles.push((kind, p));
            }
        }
    }
    if needles.is_empty() {
        return Ok(None);
    }
    for frame in 0..img.frames {
        let pgm = luminance_pgm(img, frame);
        let mut file = tempfile::Builder::new()
            .suffix(".pgm")
            .tempfile()
            .map_err(|e| format!("OCR: cannot write a temporary image: {e}"))?;
        std::io::Write::write_all(&mut file, &pgm)
            .map_err(|e| format!("OCR: cannot write a temporary image: {e}"))?;
        let out = std::process::Command::new(program)
            .arg(file.path())
            .args(["stdout", "--psm", "11"])
            .stderr(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("OCR: cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!("OCR: {} failed", program.display()));
        }
        let text = squash(&String::from_utf8_lossy(&out.stdout));
        if let Some((kind, _)) = needles.iter().find(|(_, n)| text.contains(n.as_str())) {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

/// One frame as an 8-bit greyscale PGM (RGB to luma, MONOCHROME1 inverted, more than 8 bits
/// scaled down), for OCR.
fn luminance_pgm(img: &Image, frame: u32) -> Vec<u8> {
    let mut out = format!("P5\n{} {}\n255\n", img.columns, img.rows).into_bytes();
    let max = if img.bits_allocated == 8 {
        255.0
    } else {
        f64::from((1u32 << img.bits_stored.min(16)) - 1)
    };
    for r in 0..img.rows {
        for c in 0..img.columns {
            let v = if img.samples >= 3 {
                let (rr, g, b) = (
                    f64::from(img.get(frame, r, c, 0)),
                    f64::from(img.get(frame, r, c, 1)),
                    f64::from(img.get(frame, r, c, 2)),
                );
                0.299 * rr + 0.587 * g + 0.114 * b
            } else {
                f64::from(img.get(frame, r, c, 0))
            };
            let mut y = (v / max * 255.0).clamp(0.0, 255.0);
            if img.photometric == Photometric::Monochrome1 {
                y = 255.0 - y;
            }
            out.push(y as u8);
        }
    }
    out
}

/// A transfer syntax's name for messages.
fn syntax_name(ts: &str) -> String {
    let name = match ts {
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (12-bit)",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "JPEG-LS",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "HTJ2K"
        }
        "1.2.840.10008.1.2.4.100"
        | "1.2.840.10008.1.2.4.101"
        | "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.106"
        | "1.2.840.10008.1.2.4.107"
        | "1.2.840.10008.1.2.4.108" => "MPEG video",
        _ => "transfer syntax",
    };
    format!("{name} ({ts})")
}

enum Pixels {
    Native(Vec<u8>),
    Fragments {
        offsets: Vec<u32>,
        fragments: Vec<Vec<u8>>,
    },
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.element(tag).ok()?.to_int::<u32>().ok()
}

/// The image geometry the data set declares.
/// The geometry the data set declares, for pixel data in `ts`. YBR_ICT and YBR_RCT (colour
/// JPEG 2000) count as RGB, what they decode to.
fn geometry(obj: &InMemDicomObject, ts: &str) -> Result<Image, String> {
    let need = |tag: Tag, name: &str| int(obj, tag).ok_or_else(|| format!("no valid {name}"));
    let rows = need(tags::ROWS, "Rows")?;
    let columns = need(tags::COLUMNS, "Columns")?;
    let bits_allocated = need(tags::BITS_ALLOCATED, "Bits Allocated")?;
    let samples = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let frames = obj
        .element(tags::NUMBER_OF_FRAMES)
        .ok()
        .and_then(|e| e.to_str().ok())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1);
    let photometric = obj
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    // (palette colour: the indices are cleaned; see `Palette`)
    let j2k = [codec::JPEG_2000_LOSSLESS, codec::JPEG_2000].contains(&ts);
    let parsed = match photometric.as_str() {
        "YBR_ICT" | "YBR_RCT" if j2k => Some(Photometric::Rgb),
        other => Photometric::parse(other),
    };
    let photometric = parsed
        .filter(|p| *p != Photometric::PaletteColor || samples == 1)
        .ok_or_else(|| {
            format!("Photometric Interpretation {photometric:?} cannot be cleaned by this build")
        })?;
    if !(bits_allocated == 8 || bits_allocated == 16) || !(samples == 1 || samples == 3) {
        return Err(format!(
            "{bits_allocated}-bit pixels with {samples} samples cannot be cleaned by this build"
        ));
    }
    if rows == 0 || columns == 0 || rows > 65535 || columns > 65535 || frames == 0 {
        return Err("image size out of range".into());
    }
    Ok(Image {
        rows: rows as u16,
        columns: columns as u16,
        samples: samples as u16,
        bits_allocated: bits_allocated as u16,
        bits_stored: bits_stored.clamp(1, bits_allocated) as u16,
        signed,
        photometric,
        frames,
        data: Vec::new(),
    })
}

/// The pixel data of an object read whole.
fn from_object(obj: &InMemDicomObject) -> Result<Pixels, String> {
    let e = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| "no pixel data".to_owned())?;
    Ok(match e.value() {
        Value::PixelSequence(s) => Pixels::Fragments {
            offsets: s.offset_table().to_vec(),
            fragments: s.fragments().to_vec(),
        },
        Value::Primitive(PrimitiveValue::U16(w)) => {
            Pixels::Native(w.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        Value::Primitive(p) => Pixels::Native(p.to_bytes().into_owned()),
        Value::Sequence(_) => return Err("pixel data is a sequence".into()),
    })
}

/// Parses the raw pixel data element (tag, VR, length, value or items) as the file holds it.
fn parse_element(b: &[u8], ts: &str) -> Result<Pixels, String> {
    let big = ts == EXPLICIT_BE;
    let u16_at = |i: usize| -> Option<u16> {
        let s: [u8; 2] = b.get(i..i + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    };
    let u32_at = |i: usize, big: bool| -> Option<u32> {
        let s: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        })
    };
    let bad = || "pixel data element is malformed".to_owned();
    if (u16_at(0), u16_at(2)) != (Some(0x7FE0), Some(0x0010)) {
        return Err(bad());
    }
    let (len, mut at): (u32, usize) = if ts == IMPLICIT_LE {
        (u32_at(4, false).ok_or_else(bad)?, 8)
    } else {
        (u32_at(8, big).ok_or_else(bad)?, 12)
    };
    if len != u32::MAX {
        let end = at.checked_add(len as usize).ok_or_else(bad)?;
        return Ok(Pixels::Native(b.get(at..end).ok_or_else(bad)?.to_vec()));
    }
    // encapsulated: items (FFFE,E000), then the sequence delimiter (FFFE,E0DD); always little
    // endian
    let mut items: Vec<Vec<u8>> = Vec::new();
    loop {
        let g = u32_at(at, false).ok_or_else(bad)?;
        let l = u32_at(at + 4, false).ok_or_else(bad)? as usize;
        at += 8;
        match g {
            0xE000_FFFE => {
                let end = at.checked_add(l).ok_or_else(bad)?;
                items.push(b.get(at..end).ok_or_else(bad)?.to_vec());
                at = end;
            }
            0xE0DD_FFFE => break,
            _ => return Err(bad()),
        }
    }
    if items.is_empty() {
        return Err(bad());
    }
    let bot = items.remove(0);
    let offsets = bot
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Pixels::Fragments {
        offsets,
        fragments: items,
    })
}

/// The encoded frames of encapsulated pixel data: one fragment per frame, all fragments of a
/// single frame, or fragments grouped by the basic offset table.
fn group_frames(
    offsets: &[u32],
    fragments: &[Vec<u8>],
    frames: u32,
) -> Result<Vec<Vec<u8>>, String> {
    if fragments.len() == frames as usize {
        return Ok(fragments.to_vec());
    }
    if frames == 1 {
        return Ok(vec![fragments.concat()]);
    }
    if offsets.len() == frames as usize {
        // offsets count item bytes (8-byte headers included) from the first fragment
        let mut starts = Vec::new();
        let mut pos = 0u64;
        for f in fragments {
            starts.push(pos);
            pos += 8 + f.len() as u64;
        }
        let mut out = Vec::new();
        for (k, &o) in offsets.iter().enumerate() {
            let end = offsets.get(k + 1).map_or(u64::MAX, |&e| u64::from(e));
            let frame: Vec<u8> = fragments
                .iter()
                .zip(&starts)
                .filter(|(_, s)| **s >= u64::from(o) && **s < end)
                .flat_map(|(f, _)| f.iter().copied())
                .collect();
            if frame.is_empty() {
                return Err("the basic offset table does not match the fragments".into());
            }
            out.push(frame);
        }
        return Ok(out);
    }
    Err(format!(
        "{} fragments for {frames} frames and no offset table to group them",
        fragments.len()
    ))
}

fn planar_to_interleaved(bytes: &[u8], g: &Image) -> Vec<u8> {
    let bps = usize::from(g.bits_allocated / 8);
    let plane = usize::from(g.rows) * usize::from(g.columns) * bps;
    let frame = plane * usize::from(g.samples);
    let mut out = vec![0u8; bytes.len()];
    for (f, chunk) in bytes.chunks(frame).enumerate() {
        for p in 0..usize::from(g.rows) * usize::from(g.columns) {
            for s in 0..usize::from(g.samples) {
                let src = s * plane + p * bps;
                let dst = f * frame + (p * usize::from(g.samples) + s) * bps;
                if src + bps <= chunk.len() && dst + bps <= out.len() {
                    out[dst..dst + bps].copy_from_slice(&chunk[src..src + bps]);
                }
            }
        }
    }
    out
}

/// A native Pixel Data element for `img` in `ts` (words for big endian, which dicom-rs swaps).
fn native_element(img: &Image, ts: &str) -> DataElement<InMemDicomObject> {
    let mut data = img.data.clone();
    if data.len() % 2 == 1 {
        data.push(0);
    }
    if img.bits_allocated == 16 {
        if ts == EXPLICIT_BE {
            let words: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            return DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()));
        }
        return DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U8(data.into()));
    }
    DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(data.into()))
}

fn encapsulated(img: &Image, codec: Codec) -> Result<DataElement<InMemDicomObject>, String> {
    let enc =
        codec::encode(img, codec).map_err(|e| format!("cannot encode the cleaned pixels: {e}"))?;
    Ok(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PixelFragmentSequence::new(Vec::<u32>::new(), enc.fragments),
    ))
}

/// A palette colour image's lookup tables, as 8-bit RGB per index.
struct Palette {
    /// The first index the tables map (values below it take the first entry).
    first: i64,
    /// One colour per entry.
    colours: Vec<[u8; 3]>,
}

impl Palette {
    /// Reads the red, green and blue Palette Color Lookup Tables (descriptor and data).
    /// Segmented palettes are refused.
    fn read(obj: &InMemDicomObject) -> Result<Palette, String> {
        if obj.get(Tag(0x0028, 0x1221)).is_some() {
            return Err("a segmented palette cannot be cleaned by this build".into());
        }
        let mut channels: Vec<Vec<u8>> = Vec::new();
        let mut first = 0i64;
        for (descriptor, data) in [
            (Tag(0x0028, 0x1101), Tag(0x0028, 0x1201)),
            (Tag(0x0028, 0x1102), Tag(0x0028, 0x1202)),
            (Tag(0x0028, 0x1103), Tag(0x0028, 0x1203)),
        ] {
            let d = obj
                .element(descriptor)
                .map_err(|_| "palette colour without its lookup table descriptors".to_string())?;
            let v: Vec<i64> = d
                .to_multi_int::<i32>()
                .map_err(|_| "a palette descriptor that is not three numbers".to_string())?
                .into_iter()
                .map(i64::from)
                .collect();
            let [entries, f, bits] = v[..] else {
                return Err("a palette descriptor that is not three numbers".into());
            };
            // 0 entries means 65536; the first mapped value is unsigned when read as negative
            let entries = if entries == 0 {
                65536
            } else {
                entries & 0xFFFF
            } as usize;
            first = f & 0xFFFF;
            let bytes = obj
                .element(data)
                .map_err(|_| "palette colour without its lookup table data".to_string())?
                .to_bytes()
                .map_err(|_| "palette lookup table data cannot be read".to_string())?;
            let wide = bits > 8 || bytes.len() >= 2 * entries;
            let mut values = Vec::with_capacity(entries);
            for i in 0..entries {
                let v = if wide {
                    let b = bytes
                        .get(2 * i..2 * i + 2)
                        .ok_or("palette lookup table data is shorter than its descriptor")?;
                    let w = u16::from_le_bytes([b[0], b[1]]);
                    if bits > 8 { (w >> 8) as u8 } else { w as u8 }
                } else {
                    *bytes
                        .get(i)
                        .ok_or("palette lookup table data is shorter than its descriptor")?
                };
                values.push(v);
            }
            channels.push(values);
        }
        let n = channels.iter().map(Vec::len).min().unwrap_or(0);
        if n == 0 {
            return Err("an empty palette".into());
        }
        let colours = (0..n)
            .map(|i| [channels[0][i], channels[1][i], channels[2][i]])
            .collect();
        Ok(Palette { first, colours })
    }

    /// The colour of index value `v`.
    fn colour(&self, v: u32) -> [u8; 3] {
        let i = (i64::from(v) - self.first).clamp(0, self.colours.len() as i64 - 1) as usize;
        self.colours[i]
    }

    /// The index value whose colour is darkest.
    fn darkest(&self) -> u32 {
        let luma =
            |c: &[u8; 3]| 299 * u32::from(c[0]) + 587 * u32::from(c[1]) + 114 * u32::from(c[2]);
        let i = (0..self.colours.len())
            .min_by_key(|&i| luma(&self.colours[i]))
            .unwrap_or(0);
        (self.first + i as i64) as u32
    }

    /// The image as 8-bit RGB through the palette.
    fn to_rgb(&self, img: &Image) -> Image {
        let mut out = Image::new(
            img.rows,
            img.columns,
            3,
            8,
            8,
            false,
            Photometric::Rgb,
            img.frames,
        );
        let n = usize::from(img.rows) * usize::from(img.columns);
        for f in 0..img.frames {
            for i in 0..n {
                let (row, col) = (
                    (i / usize::from(img.columns)) as u16,
                    (i % usize::from(img.columns)) as u16,
                );
                let c = self.colour(img.get(f, row, col, 0));
                let at = (f as usize * n + i) * 3;
                if let Some(px) = out.data.get_mut(at..at + 3) {
                    px.copy_from_slice(&c);
                }
            }
        }
        out
    }
}
