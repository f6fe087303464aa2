//! Template-free face removal.
//!
//! 1. The head is assessed ([`crate::head::assess_with`]); no face, no change.
//! 2. The brain is found ([`crate::brain::brain_mask`]) or supplied.
//! 3. A cut plane in the quickshear manner: the brain's outline is projected onto the sagittal
//!    plane, its convex hull taken, and the hull edge facing anterior-inferior that is closest to
//!    `plane_angle_deg` below the anterior direction chosen; the plane is that edge moved
//!    `margin_mm` away from the brain. Voxels beyond it are candidates.
//! 4. Rays cast from the anterior side find the skin in every column; the front of the face is
//!    a high percentile of the first hits over the central columns on the candidate side. Every
//!    head voxel that is a candidate, lies within `half_width_mm` of the head's midline and in
//!    front of its column's back is removed; the back is the coronal plane `depth_mm` behind
//!    that face front, or `skin_depth_mm` below the column's own skin where that is shallower.
//!    Toward the chin (160 to 185 mm below the head's top) the depth below the skin grows to
//!    `skin_depth_low_mm` and, within 30 mm of the midline, the coronal cut deepens by as much.
//! 5. A generic plate replaces the removed face: in the same region, from `plate_drop_mm` below
//!    the head's top upward, every voxel (air included) behind a plane of fixed lean
//!    (`plate_slope` anterior mm per superior mm) in the head's own frame (centroid and principal
//!    axes, taken again with the plate in place) is set to a tissue value; the plane lies
//!    `plate_mm` in front of the deepest back it covers. The new face surface is that plane, the
//!    same in the head's frame for every subject: the cut's shape, which follows the face, stays
//!    hidden behind it, and nothing left behind the cut (MR bone, opened cavities) shows through.
//!    The lean, a sideways tilt and the standoff vary within `plate_jitter_deg` (and 3 mm) from
//!    volume to volume, drawn from a hash of the voxels: the plate's voxel staircase then differs
//!    between two scans of one head, and the same input always gives the same output.
//! 6. The brain dilated by `margin_mm` is subtracted: no brain voxel ever changes.
//! 7. In CT, very dense voxels (> 3000 HU) within 10 mm of the skin are reported (jewellery).

use crate::brain;
use crate::eval::HeadFrame;
use crate::head::{self, Assessment, Frame};
use crate::morph;
use crate::rng::Rng;
use crate::volume::{Mask, Volume, dot};
use crate::{Error, Modality};

/// Heights below the top of the head (mm) over which the removal below the skin deepens from
/// `skin_depth_mm` to `skin_depth_low_mm`.
const LOW_FACE_MM: (f64, f64) = (160.0, 185.0);

/// Half width around the midline over which the coronal cut deepens with the removal below the
/// skin toward the chin, mm.
const CHIN_HALF_WIDTH_MM: f64 = 30.0;

/// Settings of [`deface`].
#[derive(Clone, Debug)]
pub struct DefaceOptions {
    /// Distance kept between the brain and any change (cut plane offset and brain dilation), mm.
    pub margin_mm: f64,
    /// Depth of the cut behind the face's front, mm.
    pub depth_mm: f64,
    /// Half width of the cut around the head's midline, mm.
    pub half_width_mm: f64,
    /// Preferred tilt of the cut plane's normal below the anterior direction, degrees.
    pub plane_angle_deg: f64,
    /// A brain mask to use instead of the estimate (same dimensions as the volume).
    pub brain_mask: Option<Mask>,
    /// Removal depth below each column's own skin, mm, where that is shallower than `depth_mm`
    /// behind the face's front.
    pub skin_depth_mm: f64,
    /// The same in the lower face (chin), reached over a ramp from 160 to 185 mm below the top
    /// of the head.
    pub skin_depth_low_mm: f64,
    /// Thickness of the generic surface plate at its thinnest, mm (0: no plate, removal only).
    pub plate_mm: f64,
    /// Forward lean of the plate's front per mm of height, as a slope (anterior mm per superior
    /// mm).
    pub plate_slope: f64,
    /// How far below the top of the head the plate reaches, mm.
    pub plate_drop_mm: f64,
    /// Largest change of the plate's lean and sideways tilt from one volume to the next,
    /// degrees (0: the same plate for every volume).
    pub plate_jitter_deg: f64,
}

impl Default for DefaceOptions {
    fn default() -> Self {
        DefaceOptions {
            margin_mm: 4.0,
            depth_mm: 40.0,
            half_width_mm: 55.0,
            plane_angle_deg: 65.0,
            brain_mask: None,
            skin_depth_mm: 30.0,
            skin_depth_low_mm: 40.0,
            plate_mm: 4.0,
            plate_slope: 0.27,
            plate_drop_mm: 225.0,
            plate_jitter_deg: 10.0,
        }
    }
}

/// Figures about one defacing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DefaceStats {
    /// Voxels in the head mask.
    pub head_voxels: usize,
    /// Voxels in the brain mask used.
    pub brain_voxels: usize,
    /// Voxels changed.
    pub changed_voxels: usize,
    /// Cut plane in (anterior, superior) mm: normal.
    pub plane_normal: [f64; 2],
    /// Cut plane offset: voxels with `normal · (anterior, superior) > offset` are candidates.
    pub plane_offset: f64,
    /// Anterior position of the face's front, mm along the anterior axis.
    pub face_front_mm: f64,
}

/// The result of [`deface`]: which voxels to set to which value.
#[derive(Clone, Debug)]
pub struct Defaced {
    /// Voxels to overwrite: the removed head voxels and the plate (which also covers air in
    /// front of the cut). Use [`Defaced::value`] or [`Defaced::apply`] for the new values.
    pub changed: Mask,
    /// The value to write there (real-world units: CT -1000 HU, MR the volume's minimum), except
    /// in `plate`.
    pub fill: f32,
    /// Voxels of `changed` that take `plate_fill` instead of `fill`: a generic tissue plate,
    /// identical in the head's frame for every subject, laid over the cut so that the new face
    /// surface carries no individual relief and nothing behind the cut shows through.
    pub plate: Mask,
    /// The plate's value (CT 40 HU, MR the median of the head's voxels).
    pub plate_fill: f32,
    /// Very dense voxels near the skin (CT > 3000 HU), one position per object.
    pub dense_surface: Vec<[usize; 3]>,
    /// The head decision the cut was based on.
    pub assessment: Assessment,
    /// Figures.
    pub stats: DefaceStats,
}

impl Defaced {
    /// The new value of voxel `idx`, or `None` when it is unchanged.
    pub fn value(&self, idx: usize) -> Option<f32> {
        if !self.changed.get(idx) {
            None
        } else if self.plate.get(idx) {
            Some(self.plate_fill)
        } else {
            Some(self.fill)
        }
    }

    /// The volume with the changed voxels set to their new values.
    pub fn apply(&self, vol: &Volume) -> Volume {
        let mut out = vol.clone();
        for (idx, v) in out.voxels_mut().iter_mut().enumerate() {
            if let Some(x) = self.value(idx) {
                *v = x;
            }
        }
        out
    }
}

/// Computes which voxels to blank to remove the face of a head volume. Fails with
/// [`Error::NotAHead`] when no head with a face is found, with [`Error::MaskDims`] when a
/// supplied brain mask does not fit, and with [`Error::InvalidVolume`] when no brain is found.
pub fn deface(vol: &Volume, modality: Modality, opts: &DefaceOptions) -> Result<Defaced, Error> {
    let body = head::body_mask(vol, modality);
    let assessment = head::assess_with(vol, modality, &body);
    if !assessment.is_head_with_face {
        return Err(Error::NotAHead(Box::new(assessment)));
    }
    let brain = match &opts.brain_mask {
        Some(m) if m.dims() != vol.dims() => {
            return Err(Error::MaskDims {
                mask: m.dims(),
                volume: vol.dims(),
            });
        }
        Some(m) => m.clone(),
        None => brain::brain_mask(vol, modality, &body),
    };
    let brain_mm3 = brain.count() as f64 * vol.voxel_volume();
    if brain_mm3 < 200_000.0 {
        return Err(Error::InvalidVolume(format!(
            "brain not found (mask of {:.0} cm³)",
            brain_mm3 / 1000.0
        )));
    }
    let f = Frame::new(vol, assessment.anterior, assessment.superior);
    let (normal, support) = cut_plane(vol, &brain, &f, opts.plane_angle_deg);
    let offset = support + opts.margin_mm;
    let candidate = |p: [f64; 3]| normal[0] * p[1] + normal[1] * p[2] > offset;

    // Head midline (lateral centroid).
    let (mut sum, mut n) = (0.0, 0usize);
    for (idx, &b) in body.as_slice().iter().enumerate() {
        if b {
            sum += f.pos(f.lat, vol.coords(idx));
            n += 1;
        }
    }
    let mid = if n > 0 { sum / n as f64 } else { 0.0 };

    // First hits from the anterior side, per (lateral, superior) column.
    let dims = vol.dims();
    let na = dims[f.ant.axis];
    let nl = dims[f.lat.axis];
    let mut skin = vec![f64::NEG_INFINITY; nl * dims[f.sup.axis]];
    let mut hits = Vec::new();
    for k in 0..dims[f.sup.axis] {
        for l in 0..dims[f.lat.axis] {
            let mut v = [0usize; 3];
            v[f.sup.axis] = k;
            v[f.lat.axis] = l;
            let steps: Box<dyn Iterator<Item = usize>> = if f.ant.sign > 0 {
                Box::new((0..na).rev())
            } else {
                Box::new(0..na)
            };
            for a in steps {
                v[f.ant.axis] = a;
                if body.get(vol.index(v)) {
                    let p = f.mm(v);
                    skin[l + nl * k] = p[1];
                    if candidate(p) && (p[0] - mid).abs() <= 40.0 {
                        hits.push(p[1]);
                    }
                    break;
                }
            }
        }
    }
    if hits.is_empty() {
        return Err(Error::NotAHead(Box::new(Assessment {
            is_head_with_face: false,
            reason: "no skin found in front of the cut plane".into(),
            ..assessment
        })));
    }
    hits.sort_by(|a, b| a.total_cmp(b));
    let front = hits[((hits.len() - 1) as f64 * 0.7).round() as usize];
    let cut = front - opts.depth_mm;

    // The top of the head, from which the plate's lower end is measured.
    let top = body
        .as_slice()
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(idx, _)| f.pos(f.sup, vol.coords(idx)))
        .fold(f64::NEG_INFINITY, f64::max);
    let plate_bottom = top - opts.plate_drop_mm;

    // The back of the removal per column: `depth_mm` behind the face's front, or
    // `skin_depth_mm` below the column's own skin when that is shallower. The plate hides the
    // shape of this surface, so it may follow the face.
    let back = |v: [usize; 3]| {
        // Deeper toward the chin, whose back lies furthest below its skin.
        let below_top = top - f.pos(f.sup, v);
        let t = ((below_top - LOW_FACE_MM.0) / (LOW_FACE_MM.1 - LOW_FACE_MM.0)).clamp(0.0, 1.0);
        let depth = opts.skin_depth_mm + t * (opts.skin_depth_low_mm - opts.skin_depth_mm);
        let central = (f.pos(f.lat, v) - mid).abs() <= CHIN_HALF_WIDTH_MM;
        let coronal = if central {
            cut - t * (opts.skin_depth_low_mm - opts.skin_depth_mm)
        } else {
            cut
        };
        coronal.max(skin[v[f.lat.axis] + nl * v[f.sup.axis]] - depth)
    };
    let protect = morph::dilate(
        &brain,
        vol.spacing(),
        opts.margin_mm
            .max(vol.spacing().iter().copied().fold(0.0, f64::max)),
    );
    // The region changed: candidates within the half width, in front of each column's back.
    let in_region = |v: [usize; 3]| {
        let p = f.mm(v);
        p[1] >= back(v) && (p[0] - mid).abs() <= opts.half_width_mm && candidate(p)
    };
    // The plate's lean, tilt and standoff vary by a few degrees and millimetres from volume to
    // volume (drawn from a hash of the voxels, so the same input always gives the same
    // output): its voxelised staircase then differs between two scans of the same head and
    // cannot link them.
    let (slope, side_slope, extra_mm) = {
        let mut h = 0xCBF2_9CE4_8422_2325u64;
        for v in vol.voxels() {
            h = (h ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01B3);
        }
        let mut r = Rng::new(&[h, 0x9_1A7E]);
        let j = opts.plate_jitter_deg.to_radians();
        (
            (opts.plate_slope.atan() + r.range(-j, j)).tan(),
            r.range(-j, j).tan(),
            r.range(0.0, 3.0) * (j > 0.0) as u8 as f64,
        )
    };
    // The plate's front is a plane of fixed lean in the head's own frame (centroid and principal
    // axes), placed `plate_mm` in front of the deepest point it must cover. The frame is taken
    // again once with the plate in place, as the plate itself moves the principal axes.
    let build = |frame: Option<&HeadFrame>| {
        let mut changed = Mask::new(dims);
        let mut plate = Mask::new(dims);
        let height = |x: [f64; 3], fr: &HeadFrame| {
            let d = [
                x[0] - fr.centre[0],
                x[1] - fr.centre[1],
                x[2] - fr.centre[2],
            ];
            -dot(d, fr.axes[1]) - slope * dot(d, fr.axes[2]) - side_slope * dot(d, fr.axes[0])
        };
        let mut offset = f64::NEG_INFINITY;
        if let Some(fr) = frame {
            let step = f.spacing[f.ant.axis];
            for idx in 0..vol.len() {
                let v = vol.coords(idx);
                let p = f.mm(v);
                if p[2] >= plate_bottom && p[1] < back(v) + step && in_region(v) {
                    offset = offset.max(height(vol.world_of(v), fr));
                }
            }
        }
        let offset = offset + opts.plate_mm + extra_mm;
        for idx in 0..vol.len() {
            let v = vol.coords(idx);
            if !in_region(v) || protect.get(idx) {
                continue;
            }
            let on_plate = frame.is_some_and(|fr| {
                f.mm(v)[2] >= plate_bottom && height(vol.world_of(v), fr) <= offset
            });
            if on_plate {
                plate.set(idx, true);
                changed.set(idx, true);
            } else if body.get(idx) {
                changed.set(idx, true);
            }
        }
        (changed, plate)
    };
    let (mut changed, mut plate) = (Mask::new(dims), Mask::new(dims));
    if opts.plate_mm > 0.0 {
        // The principal axes point the way the geometry names them; the anatomy decided which
        // side is anterior, so the frame's posterior and superior axes are turned to agree.
        let dirs = vol.directions();
        let toward = |d: crate::volume::AxisDir| dirs[d.axis].map(|x| x * d.sign as f64);
        let (ant_dir, sup_dir) = (toward(f.ant), toward(f.sup));
        let oriented = |mut fr: HeadFrame| {
            if dot(fr.axes[1], ant_dir) > 0.0 {
                fr.axes[1] = fr.axes[1].map(|x| -x);
            }
            if dot(fr.axes[2], sup_dir) < 0.0 {
                fr.axes[2] = fr.axes[2].map(|x| -x);
            }
            fr
        };
        let mut frame = HeadFrame::of(vol, &body).map(oriented);
        for _ in 0..2 {
            (changed, plate) = build(frame.as_ref());
            let mut after = body.clone();
            after.subtract(&changed);
            after.union_with(&plate);
            frame = HeadFrame::of(vol, &after).map(oriented);
        }
    } else {
        (changed, plate) = build(None);
    }

    let fill = match modality {
        Modality::Ct => -1000.0,
        Modality::Mr => vol
            .voxels()
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f32::INFINITY, f32::min),
    };
    let fill = if fill.is_finite() { fill } else { 0.0 };
    let plate_fill = match modality {
        Modality::Ct => 40.0,
        Modality::Mr => {
            let mut v: Vec<f32> = body
                .as_slice()
                .iter()
                .zip(vol.voxels())
                .filter(|(b, x)| **b && x.is_finite())
                .map(|(_, &x)| x)
                .collect();
            if v.is_empty() {
                fill
            } else {
                let mid = v.len() / 2;
                *v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1
            }
        }
    };
    let dense_surface = match modality {
        Modality::Ct => dense_near_skin(vol, &body),
        Modality::Mr => Vec::new(),
    };
    let stats = DefaceStats {
        head_voxels: body.count(),
        brain_voxels: brain.count(),
        changed_voxels: changed.count(),
        plane_normal: normal,
        plane_offset: offset,
        face_front_mm: front,
    };
    Ok(Defaced {
        changed,
        fill,
        plate,
        plate_fill,
        dense_surface,
        assessment,
        stats,
    })
}

/// The cut plane's unit normal in (anterior, superior) mm and its support value (the largest
/// `normal · p` over the brain).
fn cut_plane(vol: &Volume, brain: &Mask, f: &Frame, angle_deg: f64) -> ([f64; 2], f64) {
    // Sagittal projection: occupied (anterior, superior) cells.
    let dims = vol.dims();
    let (na, ns) = (dims[f.ant.axis], dims[f.sup.axis]);
    let mut occupied = vec![false; na * ns];
    for (idx, &b) in brain.as_slice().iter().enumerate() {
        if b {
            let v = vol.coords(idx);
            occupied[v[f.ant.axis] + na * v[f.sup.axis]] = true;
        }
    }
    let mut pts = Vec::new();
    for s in 0..ns {
        for a in 0..na {
            if occupied[a + na * s] {
                let mut v = [0usize; 3];
                v[f.ant.axis] = a;
                v[f.sup.axis] = s;
                pts.push([f.pos(f.ant, v), f.pos(f.sup, v)]);
            }
        }
    }
    let hull = convex_hull(pts);
    let target = angle_deg.to_radians();
    let fallback = [target.cos(), -target.sin()];
    let mut best: Option<([f64; 2], f64)> = None;
    // Counter-clockwise hull: the outward normal of edge (p, q) is (dy, -dx) normalised.
    for i in 0..hull.len() {
        let p = hull[i];
        let q = hull[(i + 1) % hull.len()];
        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-9 {
            continue;
        }
        let nrm = [dy / len, -dx / len];
        if nrm[0] <= 0.0 || nrm[1] >= 0.0 {
            continue;
        }
        let ang = (-nrm[1]).atan2(nrm[0]);
        let err = (ang - target).abs();
        if best.is_none_or(|b| err < b.1) {
            best = Some((nrm, err));
        }
    }
    let normal = best.map_or(fallback, |b| b.0);
    let support = hull
        .iter()
        .map(|p| normal[0] * p[0] + normal[1] * p[1])
        .fold(f64::NEG_INFINITY, f64::max);
    (normal, support)
}

/// Counter-clockwise convex hull (Andrew's monotone chain).
fn convex_hull(mut pts: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut lower: Vec<[f64; 2]> = Vec::new();
    for &p in &pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<[f64; 2]> = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

/// CT voxels above 3000 HU within 10 mm of the skin, one position (the densest voxel) per
/// connected object.
pub fn dense_near_skin(vol: &Volume, body: &Mask) -> Vec<[usize; 3]> {
    let dense = Mask::threshold(vol, |v| v > 3000.0);
    if dense.none() {
        return Vec::new();
    }
    let depth = morph::distance_sq(&body.not(), vol.spacing());
    let mut near = dense.clone();
    for (idx, b) in near.as_mut_slice().iter_mut().enumerate() {
        *b = *b && depth[idx] <= 100.0;
    }
    let (labels, sizes) = morph::components(&near);
    let mut best: Vec<Option<(usize, f32)>> = vec![None; sizes.len()];
    for (idx, &l) in labels.iter().enumerate() {
        if l != 0 {
            let v = vol.voxels()[idx];
            let slot = &mut best[l as usize];
            if slot.is_none_or(|s| v > s.1) {
                *slot = Some((idx, v));
            }
        }
    }
    best.into_iter()
        .flatten()
        .map(|(idx, _)| vol.coords(idx))
        .collect()
}
