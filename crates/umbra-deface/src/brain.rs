//! Brain masks: CT from Hounsfield ranges inside the skull, MR from Otsu's threshold.

use crate::Modality;
use crate::head::Frame;
use crate::morph;
use crate::volume::{Mask, Volume};

/// Smallest cranial cavity taken as closed in 3-D, mm³; below it the skull is filled slice by
/// slice instead.
const MIN_CAVITY_MM3: f64 = 300_000.0;

/// Estimates the brain of a head volume (`body` from [`crate::head::body_mask`]).
pub fn brain_mask(vol: &Volume, modality: Modality, body: &Mask) -> Mask {
    let o = vol.orientation();
    let frame = Frame::new(vol, o.anterior, o.superior);
    match modality {
        Modality::Ct => ct_brain(vol, body, &frame),
        Modality::Mr => mr_brain(vol, body, &frame),
    }
}

/// CT: bone above 250 HU; the cavity it encloses (in 3-D, else slice by slice); within it the
/// largest component of brain-range voxels (-15..100 HU), holes filled, closed by 2 mm.
fn ct_brain(vol: &Volume, body: &Mask, frame: &Frame) -> Mask {
    let sp = vol.spacing();
    let mut bone = Mask::threshold(vol, |v| v > 250.0);
    bone.intersect_with(body);
    let mut cavity = morph::fill_holes(&bone);
    cavity.subtract(&bone);
    if (cavity.count() as f64) * vol.voxel_volume() < MIN_CAVITY_MM3 {
        cavity = morph::fill_holes_2d(&bone, frame.sup.axis);
        cavity.subtract(&bone);
    }
    let mut soft = Mask::threshold(vol, |v| (-15.0..=100.0).contains(&v));
    soft.intersect_with(&cavity);
    let soft = morph::open(&soft, sp, 2.0);
    let brain = morph::largest_component(&soft);
    let mut brain = morph::close(&morph::fill_holes(&brain), sp, 2.0);
    brain.intersect_with(&cavity);
    brain
}

/// MR: Otsu's threshold; tissue above it inside the head, eroded by 3 mm to cut thin bridges;
/// the component with the most voxels deep (> 15 mm) in the head and above the head's centroid;
/// dilated back, holes filled, closed by 2 mm.
fn mr_brain(vol: &Volume, body: &Mask, frame: &Frame) -> Mask {
    let f = frame;
    let sp = vol.spacing();
    let Some(t) = morph::otsu(vol.voxels().iter().copied()) else {
        return Mask::new(vol.dims());
    };
    let mut tissue = Mask::threshold(vol, |v| v > t);
    tissue.intersect_with(body);
    let core = morph::erode(&tissue, sp, 3.0);
    let depth = morph::distance_sq(&body.not(), sp);
    let (mut sum, mut n) = (0.0, 0usize);
    for (idx, &b) in body.as_slice().iter().enumerate() {
        if b {
            sum += f.pos(f.sup, vol.coords(idx));
            n += 1;
        }
    }
    let centre = if n > 0 { sum / n as f64 } else { 0.0 };
    let (labels, sizes) = morph::components(&core);
    let mut score = vec![0usize; sizes.len()];
    for (idx, &l) in labels.iter().enumerate() {
        if l != 0 && depth[idx] > 225.0 && f.pos(f.sup, vol.coords(idx)) > centre {
            score[l as usize] += 1;
        }
    }
    let Some(best) = (1..sizes.len()).max_by_key(|&l| score[l]) else {
        return Mask::new(vol.dims());
    };
    let bits = labels.iter().map(|&l| l as usize == best).collect();
    let Ok(chosen) = Mask::from_vec(vol.dims(), bits) else {
        return Mask::new(vol.dims());
    };
    let mut brain = morph::dilate(&chosen, sp, 3.0);
    brain.intersect_with(&tissue);
    let mut brain = morph::close(&morph::fill_holes(&brain), sp, 2.0);
    brain.intersect_with(body);
    brain
}
