//! Faces in head CT and MR: series → volume, the face removed by `umbra-deface`, the slices'
//! pixels written back.
//!
//! Runs before the per-object trip, over a run's whole input, because a face is a property of
//! a series, not of one slice. The result is a [`FacePlan`]: for each file of a head series,
//! whether its face was removed (with its new pixels) or it must be held back (with the
//! reason). Files not in the plan go the usual way, where the engine's face policy holds back
//! head images that can show a face. A short stack of head slices is not cleared here: whether
//! a series is complete cannot be known (the rest may come in another run, or through the
//! gateway one object at a time).

use crate::read::{Input, read_input};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use umbra_core::{Deidentifier, FaceRisk, ProfileOption};
use umbra_deface::{DefaceOptions, Modality, Volume};
use umbra_pixels::Image;

/// What the face step decided for one file.
#[derive(Debug, Clone)]
pub enum FileFace {
    /// The face was removed from its series: these are the slice's new pixels (native, as
    /// `pixels::decode` gives them) with the geometry the data set declares.
    Removed(Arc<(Image, Image)>),
    /// Hold it back: why.
    HeldBack(String),
}

/// The face step's decisions, by input path.
#[derive(Debug, Default)]
pub struct FacePlan {
    files: HashMap<PathBuf, FileFace>,
}

impl FacePlan {
    /// The decision for `path`, if its series was looked at.
    pub fn get(&self, path: &Path) -> Option<&FileFace> {
        self.files.get(path)
    }

    /// Series defaced, files defaced.
    pub fn removed(&self) -> usize {
        self.files
            .values()
            .filter(|f| matches!(f, FileFace::Removed(_)))
            .count()
    }
}

/// One slice as the plan sees it.
#[derive(Debug, Clone)]
struct Slice {
    path: PathBuf,
    /// The frame of a multi-frame object this slice is (0 for single-frame objects).
    frame: u32,
    risk: bool,
    modality: String,
    frames: u32,
    position: Option<[f64; 3]>,
    orientation: Option<[f64; 6]>,
    spacing: Option<[f64; 2]>,
    thickness: Option<f64>,
}

fn numbers(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let s = obj.get(tag)?.to_str().ok()?;
    s.split('\\')
        .map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_uppercase())
        .unwrap_or_default()
}

fn slice_of(path: &Path, obj: &InMemDicomObject, risk: bool) -> Slice {
    Slice {
        path: path.to_path_buf(),
        frame: 0,
        risk,
        modality: text(obj, tags::MODALITY),
        frames: numbers(obj, tags::NUMBER_OF_FRAMES)
            .and_then(|v| v.first().copied())
            .map_or(1, |f| f.max(1.0) as u32),
        position: numbers(obj, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .map(|v| [v[0], v[1], v[2]]),
        orientation: numbers(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() == 6)
            .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]),
        spacing: numbers(obj, tags::PIXEL_SPACING)
            .filter(|v| v.len() == 2 && v[0] > 0.0 && v[1] > 0.0)
            .map(|v| [v[0], v[1]]),
        thickness: numbers(obj, tags::SLICE_THICKNESS).and_then(|v| v.first().copied()),
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Under `clean-recognizable-visual-features`, decides for every CT and MR series among
/// `files` what happens to its face; without the option, nothing (an empty plan).
pub fn plan(files: &[PathBuf], engine: &Deidentifier) -> FacePlan {
    let defacing = engine
        .config()
        .options
        .contains(ProfileOption::CleanRecognizableVisualFeatures);
    if !defacing {
        // without the option the engine's header rule decides alone, object by object: no
        // second pass over the inputs
        return FacePlan::default();
    }
    let policy = &engine.config().face;
    // headers, in parallel: which files belong to which series, and which are at risk
    let slices: Vec<(String, Slice)> = files
        .par_iter()
        .filter_map(|p| {
            let Input { object, .. } = read_input(p).ok()?;
            let risk = matches!(policy.risk(&object), FaceRisk::Renderable(_));
            let modality = text(&object, tags::MODALITY);
            let candidate = risk
                || ((modality == "CT" || modality == "MR")
                    && object.get(tags::PIXEL_DATA).is_some());
            if !candidate {
                return None;
            }
            let series = text(&object, tags::SERIES_INSTANCE_UID);
            Some((series, slice_of(p, &object, risk)))
        })
        .collect();
    // a series is looked at per orientation: slices in different planes (a localizer's three,
    // scattered single slices) are separate stacks
    let mut series: HashMap<(String, Option<[i64; 6]>), Vec<Slice>> = HashMap::new();
    for (uid, s) in slices {
        let plane = s
            .orientation
            .map(|o| o.map(|v| (v * 1000.0).round() as i64));
        series.entry((uid, plane)).or_default().push(s);
    }
    let decisions: Vec<Vec<(PathBuf, FileFace)>> = series
        .into_par_iter()
        .map(|(_, slices)| decide(slices))
        .collect();
    FacePlan {
        files: decisions.into_iter().flatten().collect(),
    }
}

/// The decision for one series.
fn decide(mut slices: Vec<Slice>) -> Vec<(PathBuf, FileFace)> {
    let head = slices.iter().any(|s| s.risk);
    let all = |f: FileFace, slices: &[Slice]| -> Vec<(PathBuf, FileFace)> {
        slices.iter().map(|s| (s.path.clone(), f.clone())).collect()
    };
    // only held back or cleared when the header says head; other series go their usual way
    let fail = |why: String, slices: &[Slice]| {
        if head {
            all(FileFace::HeldBack(why), slices)
        } else {
            Vec::new()
        }
    };
    if slices.iter().any(|s| s.frames > 1) {
        // one object per volume: its frames are the slices
        let [one] = &slices[..] else {
            return fail(
                "a series of several multi-frame objects: its face cannot be removed by this \
                 build"
                    .into(),
                &slices,
            );
        };
        return match deface_multiframe(one) {
            Ok(img) => vec![(one.path.clone(), FileFace::Removed(Arc::new(img)))],
            Err(Declined::NoFace(why)) if head => all(
                FileFace::HeldBack(format!(
                    "the header names the head but no face was found in the volume ({why}): \
                     held back"
                )),
                &slices,
            ),
            Err(Declined::NoFace(_)) => Vec::new(),
            Err(Declined::Error(why)) => fail(why, &slices),
        };
    }
    let geometry = match stack(&mut slices) {
        Ok(g) => g,
        Err(why) => return fail(why, &slices),
    };
    match deface_series(&slices, &geometry) {
        Ok(images) => slices
            .iter()
            .zip(images)
            .map(|(s, img)| (s.path.clone(), FileFace::Removed(Arc::new(img))))
            .collect(),
        Err(Declined::NoFace(why)) if head => all(
            FileFace::HeldBack(format!(
                "the header names the head but no face was found in the volume ({why}): held back"
            )),
            &slices,
        ),
        Err(Declined::NoFace(_)) => Vec::new(),
        Err(Declined::Error(why)) => fail(why, &slices),
    }
}

/// A sorted stack of parallel slices.
struct Geometry {
    /// Distance between neighbouring slices.
    step_mm: f64,
    normal: [f64; 3],
}

/// Sorts the slices along their normal and checks they make a regular stack: one orientation,
/// positions along the normal (no gantry tilt), no duplicates, even spacing (within 10%).
fn stack(slices: &mut [Slice]) -> Result<Geometry, String> {
    let first = slices.first().ok_or("empty series")?;
    let thickness = first.thickness.unwrap_or(0.0).max(0.0);
    let o = first
        .orientation
        .ok_or("a slice without Image Orientation (Patient): its geometry is unknown")?;
    let (row, col) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let normal = cross(row, col);
    if dot(normal, normal) < 0.5 {
        return Err("Image Orientation (Patient) is not two unit vectors".into());
    }
    for s in slices.iter() {
        let so = s
            .orientation
            .ok_or("a slice without Image Orientation (Patient): its geometry is unknown")?;
        if so.iter().zip(o.iter()).any(|(a, b)| (a - b).abs() > 1e-3) {
            return Err("slices of the series have different orientations".into());
        }
        if s.position.is_none() {
            return Err("a slice without Image Position (Patient): its place is unknown".into());
        }
    }
    let at = |s: &Slice| s.position.map_or(0.0, |p| dot(p, normal));
    slices.sort_by(|a, b| at(a).total_cmp(&at(b)));
    if slices.len() == 1 {
        return Ok(Geometry {
            step_mm: thickness,
            normal,
        });
    }
    let mut steps = Vec::new();
    for w in slices.windows(2) {
        let (Some(a), Some(b)) = (w[0].position, w[1].position) else {
            return Err("a slice without Image Position (Patient)".into());
        };
        let d = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let along = dot(d, normal);
        let across = (dot(d, d) - along * along).max(0.0).sqrt();
        if along.abs() < 1e-3 {
            return Err("two slices at the same position".into());
        }
        if across > 0.05 * along.abs().max(1.0) {
            return Err(
                "slices do not stack along their normal (gantry tilt or scattered slices)".into(),
            );
        }
        steps.push(along);
    }
    let mean = steps.iter().sum::<f64>() / steps.len() as f64;
    // uneven spacing (over 10% from the mean): a stack, but not a regular grid
    let even = steps.iter().all(|s| (s - mean).abs() <= 0.1 * mean);
    Ok(Geometry {
        step_mm: if even { mean } else { f64::NAN },
        normal,
    })
}

enum Declined {
    NoFace(String),
    Error(String),
}

/// One decoded slice: stored values and rescale.
struct Decoded {
    geometry: Image,
    image: Image,
    slope: f64,
    intercept: f64,
}

fn stored(img: &Image, i: usize) -> i64 {
    let bytes = img.bytes_per_sample();
    let raw = if bytes == 2 {
        u16::from_le_bytes([img.data[2 * i], img.data[2 * i + 1]]) as u64
    } else {
        img.data[i] as u64
    };
    let bits = u32::from(img.bits_stored.clamp(1, 16));
    let v = raw & ((1u64 << bits) - 1);
    if img.signed && v & (1 << (bits - 1)) != 0 {
        v as i64 - (1i64 << bits)
    } else {
        v as i64
    }
}

fn put_stored(img: &mut Image, i: usize, v: i64) {
    if img.bytes_per_sample() == 2 {
        let b = (v as i16 as u16).to_le_bytes();
        img.data[2 * i] = b[0];
        img.data[2 * i + 1] = b[1];
    } else {
        img.data[i] = v as u8;
    }
}

fn decode_slice(path: &Path) -> Result<Decoded, String> {
    let Input {
        object,
        transfer_syntax,
        raw_pixel_data,
        ..
    } = read_input(path).map_err(|e| e.to_string())?;
    let (image, geometry) =
        crate::pixels::decode(&object, raw_pixel_data.as_ref(), &transfer_syntax)?;
    if image.samples != 1 {
        return Err("a colour CT or MR slice".into());
    }
    let one = |tag| numbers(&object, tag).and_then(|v| v.first().copied());
    Ok(Decoded {
        geometry,
        image,
        slope: one(tags::RESCALE_SLOPE)
            .filter(|s| *s != 0.0)
            .unwrap_or(1.0),
        intercept: one(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    })
}

/// Builds the volume, removes the face, and gives each slice its new pixels (in `slices`'
/// sorted order).
fn deface_series(slices: &[Slice], g: &Geometry) -> Result<Vec<(Image, Image)>, Declined> {
    let decoded: Vec<Decoded> = slices
        .iter()
        .map(|s| decode_slice(&s.path))
        .collect::<Result<_, _>>()
        .map_err(|e| Declined::Error(format!("a slice cannot be decoded: {e}")))?;
    deface_decoded(slices, g, decoded)
}

/// A value of a functional group: in frame `k`'s item of the Per-frame Functional Groups
/// Sequence, else in the Shared Functional Groups Sequence; `group` is the functional group's
/// sequence (e.g. Plane Position Sequence), `tag` the attribute inside its first item.
fn functional(obj: &InMemDicomObject, k: usize, group: Tag, tag: Tag) -> Option<Vec<f64>> {
    let within = |item: &InMemDicomObject| -> Option<Vec<f64>> {
        let g = item.get(group)?.items()?.first()?;
        numbers(g, tag)
    };
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.get(k))
        .and_then(within);
    per_frame.or_else(|| {
        obj.get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|items| items.first())
            .and_then(within)
    })
}

/// An enhanced (multi-frame) CT or MR volume: its frames are the slices, placed by their
/// functional groups; the face is removed and the frames written back in their own order.
fn deface_multiframe(one: &Slice) -> Result<(Image, Image), Declined> {
    let err = |e: String| Declined::Error(e);
    let Input {
        object,
        transfer_syntax,
        raw_pixel_data,
        ..
    } = read_input(&one.path).map_err(|e| err(e.to_string()))?;
    let (image, geometry) =
        crate::pixels::decode(&object, raw_pixel_data.as_ref(), &transfer_syntax).map_err(err)?;
    if image.samples != 1 {
        return Err(err("a colour CT or MR volume".into()));
    }
    let n = image.frames as usize;
    let mut frames = Vec::with_capacity(n);
    let mut decoded = Vec::with_capacity(n);
    let flen = image.frame_len();
    for k in 0..n {
        let f = |group, tag| functional(&object, k, group, tag);
        let mut s = one.clone();
        s.frame = k as u32;
        s.frames = 1;
        s.position = f(tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .map(|v| [v[0], v[1], v[2]]);
        s.orientation = f(
            tags::PLANE_ORIENTATION_SEQUENCE,
            tags::IMAGE_ORIENTATION_PATIENT,
        )
        .filter(|v| v.len() == 6)
        .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
        s.spacing = f(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
            .filter(|v| v.len() == 2 && v[0] > 0.0 && v[1] > 0.0)
            .map(|v| [v[0], v[1]]);
        s.thickness = f(tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied());
        let rescale = |tag| {
            f(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, tag)
                .or_else(|| numbers(&object, tag))
                .and_then(|v| v.first().copied())
        };
        let mut frame = image.clone();
        frame.frames = 1;
        frame.data = image.data[k * flen..(k + 1) * flen].to_vec();
        let mut g1 = geometry.clone();
        g1.frames = 1;
        g1.data = Vec::new();
        decoded.push(Decoded {
            geometry: g1,
            image: frame,
            slope: rescale(tags::RESCALE_SLOPE)
                .filter(|s| *s != 0.0)
                .unwrap_or(1.0),
            intercept: rescale(tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        });
        frames.push(s);
    }
    // sort the frames along their normal, keeping each frame's pixels with it
    let mut order: Vec<usize> = (0..n).collect();
    let mut sorted: Vec<Slice> = frames.clone();
    let g = stack(&mut sorted).map_err(err)?;
    for (i, s) in sorted.iter().enumerate() {
        order[i] = s.frame as usize;
    }
    let mut by_frame: Vec<Option<Decoded>> = decoded.into_iter().map(Some).collect();
    let in_order: Vec<Decoded> = order
        .iter()
        .map(|&k| {
            by_frame[k]
                .take()
                .ok_or_else(|| err("a frame twice".into()))
        })
        .collect::<Result<_, _>>()?;
    let done = deface_decoded(&sorted, &g, in_order)?;
    let mut out = image;
    for (i, (img, _)) in done.into_iter().enumerate() {
        let k = order[i];
        out.data[k * flen..(k + 1) * flen].copy_from_slice(&img.data[..flen]);
    }
    Ok((out, geometry))
}

/// Builds the volume from decoded slices (in `slices`' sorted order), removes the face, and
/// gives each slice its new pixels.
fn deface_decoded(
    slices: &[Slice],
    g: &Geometry,
    decoded: Vec<Decoded>,
) -> Result<Vec<(Image, Image)>, Declined> {
    if !g.step_mm.is_finite() {
        return Err(Declined::Error(
            "uneven slice spacing: its face cannot be removed by this build".into(),
        ));
    }
    let modality = match slices[0].modality.as_str() {
        "CT" => Modality::Ct,
        "MR" => Modality::Mr,
        other => return Err(Declined::Error(format!("modality {other}"))),
    };
    let (rows, cols) = (decoded[0].image.rows, decoded[0].image.columns);
    if decoded
        .iter()
        .any(|d| d.image.rows != rows || d.image.columns != cols)
    {
        return Err(Declined::Error("slices of different sizes".into()));
    }
    let first = &slices[0];
    let (o, p0, ps) = match (first.orientation, first.position, first.spacing) {
        (Some(o), Some(p), Some(s)) => (o, p, s),
        _ => return Err(Declined::Error("no Pixel Spacing".into())),
    };
    let plane = usize::from(rows) * usize::from(cols);
    let mut voxels = Vec::with_capacity(plane * decoded.len());
    for d in &decoded {
        voxels.extend(
            (0..plane).map(|i| (stored(&d.image, i) as f64 * d.slope + d.intercept) as f32),
        );
    }
    // i runs along a row (direction o[0..3], spacing between columns = Pixel Spacing[1]),
    // j down the columns (o[3..6], Pixel Spacing[0]), k along the normal
    let vol = Volume::new(
        [usize::from(cols), usize::from(rows), decoded.len()],
        voxels,
        [ps[1], ps[0], g.step_mm],
        p0,
        [[o[0], o[1], o[2]], [o[3], o[4], o[5]], g.normal],
    )
    .map_err(|e| Declined::Error(e.to_string()))?;
    let done = match umbra_deface::deface(&vol, modality, &DefaceOptions::default()) {
        Ok(d) => d,
        Err(umbra_deface::Error::NotAHead(a)) => return Err(Declined::NoFace(a.reason)),
        Err(e) => return Err(Declined::Error(format!("the face cannot be removed: {e}"))),
    };
    if !done.dense_surface.is_empty() {
        tracing::warn!(
            objects = done.dense_surface.len(),
            "very dense objects at the skin (jewellery, piercings?): check the defaced series"
        );
    }
    Ok(decoded
        .into_iter()
        .enumerate()
        .map(|(k, mut d)| {
            let bits = u32::from(d.image.bits_stored.clamp(1, 16));
            let (lo, hi) = if d.image.signed {
                (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
            } else {
                (0, (1i64 << bits) - 1)
            };
            // real-world values back to this slice's stored values
            let to_stored =
                |v: f32| (((f64::from(v) - d.intercept) / d.slope).round() as i64).clamp(lo, hi);
            for i in 0..plane {
                if let Some(v) = done.value(k * plane + i) {
                    put_stored(&mut d.image, i, to_stored(v));
                }
            }
            (d.image, d.geometry)
        })
        .collect())
}
