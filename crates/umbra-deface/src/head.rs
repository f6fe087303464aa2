//! Does a volume show a head with a face, and which side is anterior?
//!
//! The decision reads the volume's geometry (which voxel axes point anterior and superior) and
//! checks it against anatomy: the object must end inside the field of view at the top (a dome),
//! have a head-sized, elliptical cross-section below the top, in CT a bone shell at the rim of
//! that cross-section, reach far enough down to include the face, and show a narrow protrusion
//! (the nose) at one end of the anterior-posterior axis. That end is anterior, whatever the
//! geometry says; a disagreement is reported.

use crate::Modality;
use crate::morph;
use crate::volume::{AxisDir, Mask, Volume};

/// The outcome of [`assess`].
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// True when the volume shows a head with a face in the field of view.
    pub is_head_with_face: bool,
    /// The voxel axis and sign pointing anterior (from anatomy when it was decisive, else from
    /// the geometry).
    pub anterior: AxisDir,
    /// The voxel axis and sign pointing superior (from the geometry).
    pub superior: AxisDir,
    /// False when anatomy found the face on the side the geometry calls posterior.
    pub geometry_agrees: bool,
    /// Why the decision was taken, for reports.
    pub reason: String,
}

/// The voxel axes resolved to patient directions, and positions along them in mm.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub lat: AxisDir,
    pub ant: AxisDir,
    pub sup: AxisDir,
    pub spacing: [f64; 3],
}

impl Frame {
    pub(crate) fn new(vol: &Volume, anterior: AxisDir, superior: AxisDir) -> Frame {
        let lat_axis = 3 - anterior.axis - superior.axis;
        let lat_sign = vol.orientation().left;
        let sign = if lat_sign.axis == lat_axis {
            lat_sign.sign
        } else {
            1
        };
        Frame {
            lat: AxisDir {
                axis: lat_axis,
                sign,
            },
            ant: anterior,
            sup: superior,
            spacing: vol.spacing(),
        }
    }
    /// Position along an axis direction, mm.
    pub(crate) fn pos(&self, d: AxisDir, v: [usize; 3]) -> f64 {
        d.sign as f64 * v[d.axis] as f64 * self.spacing[d.axis]
    }
    /// (lateral, anterior, superior) positions of a voxel, mm.
    pub(crate) fn mm(&self, v: [usize; 3]) -> [f64; 3] {
        [
            self.pos(self.lat, v),
            self.pos(self.ant, v),
            self.pos(self.sup, v),
        ]
    }
}

/// The head (or body) as a mask: tissue above an air threshold, largest component, holes
/// filled in 3-D and slice by slice.
pub fn body_mask(vol: &Volume, modality: Modality) -> Mask {
    let t = air_threshold(vol, modality);
    let fg = Mask::threshold(vol, |v| v > t);
    let body = morph::largest_component(&fg);
    let filled = morph::fill_holes(&body);
    morph::fill_holes_2d(&filled, vol.superior().axis)
}

/// The value separating air from tissue.
pub fn air_threshold(vol: &Volume, modality: Modality) -> f32 {
    match modality {
        Modality::Ct => -500.0,
        Modality::Mr => morph::otsu(vol.voxels().iter().copied()).map_or(0.0, |t| 0.4 * t),
    }
}

/// Decides whether `vol` shows a head with a face and which side is anterior.
pub fn assess(vol: &Volume, modality: Modality) -> Assessment {
    assess_with(vol, modality, &body_mask(vol, modality))
}

/// [`assess`] with the body mask already computed.
pub fn assess_with(vol: &Volume, modality: Modality, body: &Mask) -> Assessment {
    let o = vol.orientation();
    let no = |reason: String| Assessment {
        is_head_with_face: false,
        anterior: o.anterior,
        superior: o.superior,
        geometry_agrees: true,
        reason,
    };
    let f = Frame::new(vol, o.anterior, o.superior);
    let dims = vol.dims();
    let s = f.sup.axis;
    let ns = dims[s];
    let slice_area = vol.spacing()[f.lat.axis] * vol.spacing()[f.ant.axis];
    // Slices ordered from the most superior down.
    let order: Vec<usize> = if f.sup.sign > 0 {
        (0..ns).rev().collect()
    } else {
        (0..ns).collect()
    };
    let mut area = vec![0.0f64; ns];
    for (idx, &b) in body.as_slice().iter().enumerate() {
        if b {
            area[vol.coords(idx)[s]] += slice_area;
        }
    }
    let max_area = area.iter().copied().fold(0.0, f64::max);
    if max_area <= 0.0 {
        return no("no tissue above the air threshold".into());
    }
    let Some(top_pos) = order.iter().position(|&k| area[k] > 0.0) else {
        return no("no tissue".into());
    };
    if top_pos == 0 && area[order[0]] > 0.3 * max_area {
        return no(format!(
            "the object runs through the superior end of the field of view ({:.0} cm² there): no head top",
            area[order[0]] / 100.0
        ));
    }
    let bottom_pos = order
        .iter()
        .rposition(|&k| area[k] > 0.0)
        .unwrap_or(top_pos);
    let sp_s = vol.spacing()[s];
    let height = (bottom_pos - top_pos + 1) as f64 * sp_s;
    let at_depth = |mm: f64| order.get(top_pos + (mm / sp_s).round() as usize).copied();

    // The cranium, 50 mm below the top.
    let Some(ref_slice) = at_depth(50.0) else {
        return no(format!("object only {height:.0} mm tall"));
    };
    let pts: Vec<(f64, f64, usize)> = slice_points(vol, body, &f, ref_slice);
    let Some(fit) = EllipseFit::of(&pts, slice_area) else {
        return no("empty cross-section 50 mm below the top".into());
    };
    if !(55.0..=105.0).contains(&fit.minor) || !(65.0..=125.0).contains(&fit.major) {
        return no(format!(
            "cross-section 50 mm below the top is {:.0} × {:.0} mm (semi-axes): not head-sized",
            fit.major, fit.minor
        ));
    }
    if fit.major / fit.minor > 1.6 || fit.fill < 0.85 {
        return no(format!(
            "cross-section 50 mm below the top is not elliptical (axis ratio {:.2}, fill {:.2})",
            fit.major / fit.minor,
            fit.fill
        ));
    }
    if modality == Modality::Ct {
        let bone: Vec<&(f64, f64, usize)> =
            pts.iter().filter(|p| vol.voxels()[p.2] > 300.0).collect();
        let rim = bone.iter().filter(|p| fit.radius(p.0, p.1) > 0.6).count();
        let bone_frac = bone.len() as f64 / pts.len().max(1) as f64;
        if bone_frac < 0.03 || (rim as f64) < 0.8 * bone.len() as f64 {
            return no(format!(
                "no skull shell 50 mm below the top (bone {:.0}% of the section, {:.0}% of it at the rim)",
                100.0 * bone_frac,
                100.0 * rim as f64 / bone.len().max(1) as f64
            ));
        }
    }
    if height < 140.0 {
        return no(format!(
            "the field of view ends {height:.0} mm below the head's top: no face"
        ));
    }

    // The face: the end of the AP axis with a narrow protrusion between 80 and 180 mm below the top.
    let mut narrowest = [f64::INFINITY; 2]; // [toward +ant, toward -ant]
    let mut mm = 80.0;
    while mm <= 180.0 {
        if let Some(k) = at_depth(mm) {
            let pts = slice_points(vol, body, &f, k);
            if pts.len() > 10 {
                for (e, dir) in [1.0, -1.0].iter().enumerate() {
                    let ext = pts.iter().map(|p| dir * p.1).fold(f64::MIN, f64::max);
                    let near: Vec<f64> = pts
                        .iter()
                        .filter(|p| dir * p.1 >= ext - 10.0)
                        .map(|p| p.0)
                        .collect();
                    let lo = near.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = near.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let w = hi - lo + vol.spacing()[f.lat.axis];
                    narrowest[e] = narrowest[e].min(w);
                }
            }
        }
        mm += sp_s.max(2.0);
    }
    let (front, back) = if narrowest[0] <= narrowest[1] {
        (0, 1)
    } else {
        (1, 0)
    };
    if narrowest[front] > 0.65 * narrowest[back]
        || narrowest[front] > 50.0
        || narrowest[front].is_nan()
    {
        return no(format!(
            "no nose-like protrusion at either end of the anterior-posterior axis (narrowest {:.0} mm and {:.0} mm)",
            narrowest[0], narrowest[1]
        ));
    }
    let geometry_agrees = front == 0;
    let anterior = if geometry_agrees {
        o.anterior
    } else {
        AxisDir {
            axis: o.anterior.axis,
            sign: -o.anterior.sign,
        }
    };
    let mut reason = format!(
        "head: top inside the field of view, {:.0} × {:.0} mm cranium section, {height:.0} mm tall, protrusion {:.0} mm wide on the anterior side vs {:.0} mm posterior",
        2.0 * fit.major,
        2.0 * fit.minor,
        narrowest[front],
        narrowest[back]
    );
    if !geometry_agrees {
        reason.push_str("; the face is on the side the geometry calls posterior: anatomy wins");
    }
    Assessment {
        is_head_with_face: true,
        anterior,
        superior: o.superior,
        geometry_agrees,
        reason,
    }
}

/// (lateral mm, anterior mm, linear index) of the body's voxels in one slice across `sup`.
fn slice_points(vol: &Volume, body: &Mask, f: &Frame, k: usize) -> Vec<(f64, f64, usize)> {
    let dims = vol.dims();
    let mut out = Vec::new();
    for b in 0..dims[f.ant.axis] {
        for a in 0..dims[f.lat.axis] {
            let mut v = [0usize; 3];
            v[f.sup.axis] = k;
            v[f.ant.axis] = b;
            v[f.lat.axis] = a;
            let idx = vol.index(v);
            if body.get(idx) {
                out.push((f.pos(f.lat, v), f.pos(f.ant, v), idx));
            }
        }
    }
    out
}

/// An ellipse fitted to a 2-D point set by its second moments.
struct EllipseFit {
    c: (f64, f64),
    major: f64,
    minor: f64,
    /// Point area over the fitted ellipse's area.
    fill: f64,
    /// Major axis direction.
    dir: (f64, f64),
}

impl EllipseFit {
    fn of(pts: &[(f64, f64, usize)], cell: f64) -> Option<EllipseFit> {
        if pts.len() < 10 {
            return None;
        }
        let n = pts.len() as f64;
        let cx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let cy = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for p in pts {
            let (dx, dy) = (p.0 - cx, p.1 - cy);
            sxx += dx * dx;
            syy += dy * dy;
            sxy += dx * dy;
        }
        sxx /= n;
        syy /= n;
        sxy /= n;
        let tr = sxx + syy;
        let det = sxx * syy - sxy * sxy;
        let disc = (tr * tr / 4.0 - det).max(0.0).sqrt();
        let l1 = tr / 2.0 + disc;
        let l2 = (tr / 2.0 - disc).max(1e-9);
        let dir = if sxy.abs() > 1e-12 {
            let (x, y) = (l1 - syy, sxy);
            let norm = (x * x + y * y).sqrt();
            (x / norm, y / norm)
        } else if sxx >= syy {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        let major = 2.0 * l1.sqrt();
        let minor = 2.0 * l2.sqrt();
        let fill = n * cell / (std::f64::consts::PI * major * minor);
        Some(EllipseFit {
            c: (cx, cy),
            major,
            minor,
            fill,
            dir,
        })
    }

    /// Normalised elliptical radius of a point (1 on the fitted ellipse).
    fn radius(&self, x: f64, y: f64) -> f64 {
        let (dx, dy) = (x - self.c.0, y - self.c.1);
        let u = dx * self.dir.0 + dy * self.dir.1;
        let v = -dx * self.dir.1 + dy * self.dir.0;
        ((u / self.major).powi(2) + (v / self.minor).powi(2)).sqrt()
    }
}
