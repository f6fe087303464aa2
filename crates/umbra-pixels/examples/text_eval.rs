//! Evaluates `umbra_pixels::detect` on a generated set with exact ground truth, then on the
//! public ultrasound samples, writing previews with the detected boxes outlined to /tmp.
//!
//! `cargo run --release -p umbra-pixels --example text_eval -- [--n 400] [--seed 1] [--pad 2]
//! [--dump 10] [--only i] [--lossy] [--jpeg Q]` (`--lossy`: the detector's parameters for
//! pixels from a lossy syntax, [`detect::Params::lossy`]; `--jpeg Q`: each generated 8-bit image
//! is JPEG baseline compressed at quality Q and decoded before detection; `--dump k`: also write the first k generated images with a miss or
//! a false box to /tmp/text_eval_*.ppm; `--only i`: evaluate and write image i alone).

#[path = "../tests/textgen/mod.rs"]
mod textgen;

use std::collections::BTreeMap;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use umbra_pixels::{Image, Photometric, Rect, codec, detect};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 8-bit RGB preview of frame `frame` (percentile-free: a straight scale of the stored range).
fn preview(img: &Image, frame: u32) -> Vec<u8> {
    let (w, h) = (usize::from(img.columns), usize::from(img.rows));
    let mut out = vec![0u8; w * h * 3];
    let mut lo = u32::MAX;
    let mut hi = 0;
    let signed = |v: u32| {
        if img.signed && img.bits_allocated == 16 {
            (v as u16 as i16 as i32 + 32768) as u32
        } else {
            v
        }
    };
    for y in 0..img.rows {
        for x in 0..img.columns {
            let v = signed(img.get(frame, y, x, 0));
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let span = (hi - lo).max(1) as f32;
    for y in 0..h {
        for x in 0..w {
            let px = &mut out[(y * w + x) * 3..(y * w + x) * 3 + 3];
            if img.samples >= 3 && img.bits_allocated == 8 {
                let s: Vec<u32> = (0..3)
                    .map(|s| img.get(frame, y as u16, x as u16, s))
                    .collect();
                if img.photometric.is_ybr() {
                    let (yy, cb, cr) = (s[0] as f32, s[1] as f32 - 128.0, s[2] as f32 - 128.0);
                    px[0] = (yy + 1.402 * cr).clamp(0.0, 255.0) as u8;
                    px[1] = (yy - 0.344 * cb - 0.714 * cr).clamp(0.0, 255.0) as u8;
                    px[2] = (yy + 1.772 * cb).clamp(0.0, 255.0) as u8;
                } else {
                    px.copy_from_slice(&[s[0] as u8, s[1] as u8, s[2] as u8]);
                }
            } else {
                let v = signed(img.get(frame, y as u16, x as u16, 0));
                let mut l = ((v.saturating_sub(lo)) as f32 / span * 255.0) as u8;
                if img.photometric == Photometric::Monochrome1 {
                    l = 255 - l;
                }
                px.fill(l);
            }
        }
    }
    out
}

fn outline(buf: &mut [u8], w: usize, h: usize, r: Rect, rgb: [u8; 3]) {
    let (x0, y0) = (usize::from(r.x), usize::from(r.y));
    let x1 = (x0 + usize::from(r.width)).min(w).saturating_sub(1);
    let y1 = (y0 + usize::from(r.height)).min(h).saturating_sub(1);
    let mut set = |x: usize, y: usize| {
        if x < w && y < h {
            buf[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb);
        }
    };
    for x in x0..=x1 {
        set(x, y0);
        set(x, y1);
    }
    for y in y0..=y1 {
        set(x0, y);
        set(x1, y);
    }
}

fn write_ppm(path: &Path, buf: &[u8], w: usize, h: usize) {
    let mut out = format!("P6\n{w} {h}\n255\n").into_bytes();
    out.extend_from_slice(buf);
    std::fs::write(path, out).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn read_dicom(path: &Path) -> Result<Image, String> {
    let obj = OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| e.to_string())?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    let int = |tag| -> Result<u32, String> {
        obj.element(tag)
            .map_err(|e| e.to_string())?
            .to_int::<u32>()
            .map_err(|e| e.to_string())
    };
    let frames = obj
        .element(tags::NUMBER_OF_FRAMES)
        .ok()
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let photometric = obj
        .element(tags::PHOTOMETRIC_INTERPRETATION)
        .map_err(|e| e.to_string())?
        .to_str()
        .map_err(|e| e.to_string())?;
    let geometry = Image {
        rows: int(tags::ROWS)? as u16,
        columns: int(tags::COLUMNS)? as u16,
        samples: int(tags::SAMPLES_PER_PIXEL)? as u16,
        bits_allocated: int(tags::BITS_ALLOCATED)? as u16,
        bits_stored: int(tags::BITS_STORED)? as u16,
        signed: int(tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1,
        // JPEG 2000 with a component transform decodes to RGB.
        photometric: match photometric.trim_end_matches([' ', '\0']) {
            "YBR_ICT" | "YBR_RCT" => Photometric::Rgb,
            p => Photometric::parse(p).ok_or("photometric")?,
        },
        frames,
        data: Vec::new(),
    };
    let pixel = obj.element(tags::PIXEL_DATA).map_err(|e| e.to_string())?;
    let (native, frags);
    let list: Vec<&[u8]> = match pixel.value() {
        dicom_core::value::Value::PixelSequence(s) => {
            frags = s.fragments().to_vec();
            frags.iter().map(Vec::as_slice).collect()
        }
        dicom_core::value::Value::Primitive(dicom_core::PrimitiveValue::U16(w)) => {
            native = w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            vec![&native[..]]
        }
        v => {
            native = v.to_bytes().map_err(|e| e.to_string())?.into_owned();
            vec![&native[..]]
        }
    };
    let ts = match ts.as_str() {
        codec::JPEG_BASELINE
        | codec::JPEG_EXTENDED
        | codec::JPEG_LOSSLESS
        | codec::RLE_LOSSLESS
        | codec::JPEG_LOSSLESS_SV1
        | codec::JPEG_2000_LOSSLESS
        | codec::JPEG_2000 => ts,
        _ => codec::EXPLICIT_VR_LITTLE_ENDIAN.to_owned(),
    };
    codec::decode(&ts, &list, &geometry).map_err(|e| e.to_string())
}

/// `img` compressed with JPEG baseline at `quality` and decoded (None for 16-bit images: no
/// lossy encoder for them here).
fn jpeg_copy(img: &Image, quality: u8) -> Option<Image> {
    if img.bits_allocated != 8 {
        return None;
    }
    let enc = codec::encode(img, codec::Codec::JpegBaseline { quality }).ok()?;
    let refs: Vec<&[u8]> = enc.fragments.iter().map(Vec::as_slice).collect();
    let mut geometry = img.clone();
    geometry.photometric = enc.photometric;
    geometry.data = Vec::new();
    codec::decode(codec::JPEG_BASELINE, &refs, &geometry).ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--n", 400);
    let seed = arg(&args, "--seed", 1);
    let pad = arg(&args, "--pad", 3) as u16;
    let mut dump = arg(&args, "--dump", 0);
    let only = args
        .iter()
        .any(|a| a == "--only")
        .then(|| arg(&args, "--only", 0));
    if only.is_some() {
        dump = 1;
    }
    // `--lossy`: the detector as it runs on pixels from a lossy syntax; `--jpeg Q`: the
    // generated 8-bit images are JPEG baseline compressed at quality Q (and decoded) first.
    let lossy = args.iter().any(|a| a == "--lossy");
    let jpeg = args
        .iter()
        .any(|a| a == "--jpeg")
        .then(|| arg(&args, "--jpeg", 75) as u8);
    let mut params = if lossy {
        detect::Params::lossy()
    } else {
        detect::Params::default()
    };
    // `--set name=value` overrides a detector parameter (for tuning).
    for (i, a) in args.iter().enumerate() {
        if a != "--set" {
            continue;
        }
        let Some((k, v)) = args.get(i + 1).and_then(|s| s.split_once('=')) else {
            continue;
        };
        let f: f32 = v.parse().expect("a number");
        let p = &mut params;
        match k {
            "min_height" => p.min_height = f as u16,
            "max_height" => p.max_height = f as u16,
            "window" => p.window = f as u16,
            "tophat_min" => p.tophat_min = f as u8,
            "tophat_margin" => p.tophat_margin = f as u8,
            "tophat_cap" => p.tophat_cap = f as u8,
            "texture" => p.texture = f,
            "bright" => p.bright = f as u8,
            "chroma" => p.chroma = f as u8,
            "dark_text" => p.dark_text = f != 0.0,
            "min_fill" => p.min_fill = f,
            "max_fill" => p.max_fill = f,
            "max_stroke" => p.max_stroke = f,
            "max_roughness" => p.max_roughness = f,
            "max_roughness_flat" => p.max_roughness_flat = f,
            "flat_ring" => p.flat_ring = f,
            "min_modal" => p.min_modal = f,
            "ink_tol" => p.ink_tol = f as u8,
            "pure" => p.pure = f,
            "ink_tol_contrast" => p.ink_tol_contrast = f,
            "ink_tol_max" => p.ink_tol_max = f as u8,
            "dark_contrast" => p.dark_contrast = f as u8,
            "rule_len" => p.rule_len = f as u16,
            "line_margin" => p.line_margin = f,
            "max_aspect" => p.max_aspect = f,
            "max_height_ratio" => p.max_height_ratio = f,
            "line_gap" => p.line_gap = f,
            "min_single_aspect" => p.min_single_aspect = f,
            "min_across" => p.min_across = f,
            "min_cover" => p.min_cover = f,
            "extend_gap" => p.extend_gap = f,
            "flat_diff" => p.flat_diff = f as u8,
            "extreme_max" => p.extreme_max = f,
            _ => panic!("unknown parameter {k}"),
        }
    }

    let mut all = textgen::Stats::default();
    let mut by_kind: BTreeMap<textgen::Kind, textgen::Stats> = BTreeMap::new();
    for i in 0..n {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let mut s = textgen::sample(seed, i);
        if let Some(q) = jpeg
            && let Some(img) = jpeg_copy(&s.img, q)
        {
            s.img = img;
        }
        let st = by_kind.entry(s.kind).or_default();
        let before = (st.boxes_hit, st.boxes, st.empty_area);
        let (found, residual) = textgen::score(&s, &params, pad, st);
        let (w, h) = (usize::from(s.img.columns), usize::from(s.img.rows));
        let false_box = s.truth.is_empty() && !found.is_empty();
        if residual {
            println!(
                "  miss #{i} {:?}: {}/{} boxes",
                s.kind,
                st.boxes_hit - before.0,
                st.boxes - before.1,
            );
            for (t, c) in s.truth.iter().zip(textgen::coverage(&s, &found, pad)) {
                if c < 0.9 {
                    println!(
                        "      {:5.1}% {:?} x{} {:?}{} at {:?}: {:?}",
                        100.0 * c,
                        t.style,
                        t.scale,
                        t.rgb,
                        if t.dark { " dark" } else { "" },
                        (t.rect.x, t.rect.y, t.rect.width, t.rect.height),
                        t.text
                    );
                }
            }
        }
        if false_box {
            println!("  false #{i} {:?}: {found:?}", s.kind);
        }
        if dump > 0 && (residual || false_box || only.is_some()) {
            dump -= 1;
            let mut buf = preview(&s.img, 0);
            for t in &s.truth {
                outline(&mut buf, w, h, t.rect, [0, 255, 0]);
            }
            for r in &found {
                outline(
                    &mut buf,
                    w,
                    h,
                    umbra_pixels::redact::pad(*r, pad),
                    [255, 0, 0],
                );
            }
            write_ppm(Path::new(&format!("/tmp/text_eval_{i}.ppm")), &buf, w, h);
        }
    }
    println!(
        "kind        images boxes  box-recall pixel-recall ink-recall  over-redaction(mean/max, no text) flagged-empty extra-area residual-images  ms/frame"
    );
    for (k, st) in &by_kind {
        line(&format!("{k:?}"), st);
        all.images += st.images;
        all.boxes += st.boxes;
        all.boxes_hit += st.boxes_hit;
        all.box_px += st.box_px;
        all.box_px_covered += st.box_px_covered;
        all.ink_px += st.ink_px;
        all.ink_px_covered += st.ink_px_covered;
        all.empty_images += st.empty_images;
        all.empty_area += st.empty_area;
        all.empty_area_max = all.empty_area_max.max(st.empty_area_max);
        all.empty_flagged += st.empty_flagged;
        all.extra_area += st.extra_area;
        all.residual_images += st.residual_images;
        all.seconds += st.seconds;
    }
    line("all", &all);
    if let Some(us) = by_kind.get(&textgen::Kind::UsRgb) {
        println!(
            "ultrasound RGB 640x480: {:.0} frames/s on one core (detection only)",
            f64::from(us.images) / us.seconds
        );
    }
    // A pure speed run: 200 ultrasound frames.
    let mut img = Image::new(480, 640, 3, 8, 8, false, Photometric::Rgb, 1);
    umbra_pixels::background::fill(
        &mut img,
        umbra_pixels::background::Background::Ultrasound,
        9,
    );
    umbra_pixels::font::draw_text(&mut img, None, 10, 10, 2, "DOE^JANE 0123456", 255);
    let t = std::time::Instant::now();
    let mut count = 0;
    for _ in 0..200 {
        count += detect::find_text(&img, 0, &params).len();
    }
    println!(
        "speed: {:.0} frames/s (640x480 RGB ultrasound, 200 frames, one thread; {count} boxes)",
        200.0 / t.elapsed().as_secs_f64()
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    for (rel, frame) in [
        ("deid-data/us_RGB_IMAGE.dcm", 0),
        ("deid-data/us_GREYSCALE_IMAGE.dcm", 0),
        ("pydicom-data/gdcm-US-ALOKA-16.dcm", 0),
        ("pydicom/examples_ybr_color.dcm", 0),
        ("pydicom/examples_jpeg2k.dcm", 0),
    ] {
        let img = match read_dicom(&root.join(rel)) {
            Ok(i) => i,
            Err(e) => {
                println!("{rel}: cannot read: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        let found = detect::find_text(&img, frame, &params);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!(
            "{rel}: {}x{} {:?} {}-bit, frame {frame}: {} boxes in {ms:.1} ms",
            img.columns,
            img.rows,
            img.photometric,
            img.bits_allocated,
            found.len()
        );
        for r in &found {
            println!(
                "    x {:4} y {:4} w {:4} h {:3}",
                r.x, r.y, r.width, r.height
            );
        }
        let (w, h) = (usize::from(img.columns), usize::from(img.rows));
        let mut buf = preview(&img, frame);
        for r in &found {
            outline(
                &mut buf,
                w,
                h,
                umbra_pixels::redact::pad(*r, pad),
                [255, 0, 0],
            );
        }
        let name = Path::new(rel)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let out = Path::new("/tmp").join(format!("text_eval_{name}.ppm"));
        write_ppm(&out, &buf, w, h);
        println!("    preview: {}", out.display());
    }
}

fn line(name: &str, st: &textgen::Stats) {
    println!(
        "{name:<11} {:>6} {:>5}  {:>9.2}% {:>11.2}% {:>9.2}%  {:>8.3}% / {:>6.2}%                  {:>4}/{:<4}   {:>8.3}% {:>15}  {:>8.2}",
        st.images,
        st.boxes,
        100.0 * st.box_recall(),
        100.0 * st.pixel_recall(),
        100.0 * st.ink_recall(),
        100.0 * st.over_redaction(),
        100.0 * st.empty_area_max,
        st.empty_flagged,
        st.empty_images,
        100.0 * st.extra_area / f64::from((st.images - st.empty_images).max(1)),
        st.residual_images,
        1000.0 * st.seconds / f64::from(st.images.max(1)),
    );
}
