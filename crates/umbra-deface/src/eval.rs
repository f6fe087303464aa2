//! Evaluation on phantoms: what was removed, what was spared, and whether scans can still be
//! linked to each other by the shape of the face (and of the rest of the head).
//!
//! Definitions:
//! - *face features*: the ground truth nose, lips, eyes (globes with lids) and chin;
//! - *face region*: the face features dilated by [`FACE_REGION_MARGIN_MM`];
//! - *outside changes*: changed voxels of the head outside the face region, as a fraction of
//!   the head's voxels outside it;
//! - *linkage*: every subject is scanned twice (small rigid motion, fresh noise); each second
//!   scan is compared with every first scan, rank-1 is the share of second scans whose most
//!   similar first scan is their own, AUC is the probability that a genuine pair is more similar
//!   than an impostor pair.
//!
//! Attacks: a depth map of the face (distance from a plane in front of the face to the first
//! head voxel, on a 3 mm grid in a frame from the head's centroid and principal axes, compared
//! by normalised correlation), the same with each map's best-fitting plane removed first (which
//! discounts pose and any flat replacement surface), the same of the back of the head, and the
//! head's outline dimensions (extent along the three principal axes, compared by Euclidean
//! distance).

use crate::Modality;
use crate::face::{DefaceOptions, deface};
use crate::head::body_mask;
use crate::morph;
use crate::phantom::{self, Subject};
use crate::volume::{Mask, Volume};

/// Margin around the face features that defines the face region, mm.
pub const FACE_REGION_MARGIN_MM: f64 = 30.0;

/// A tighter margin, reported alongside for comparison, mm.
pub const TIGHT_MARGIN_MM: f64 = 15.0;

/// A subject's head expressed in a frame of its own: centroid and principal axes, each axis
/// matched to the nearest patient axis (left, posterior, superior) and pointing its way.
#[derive(Clone, Debug)]
pub struct HeadFrame {
    /// Centroid, LPS mm.
    pub centre: [f64; 3],
    /// Unit axes: left, posterior, superior.
    pub axes: [[f64; 3]; 3],
    /// Head extent along each axis, mm.
    pub extent: [f64; 3],
}

impl HeadFrame {
    /// The frame of the head in `body` (a mask of `vol`).
    pub fn of(vol: &Volume, body: &Mask) -> Option<HeadFrame> {
        let mut pts = Vec::new();
        for (idx, &b) in body.as_slice().iter().enumerate() {
            if b {
                pts.push(vol.world_of(vol.coords(idx)));
            }
        }
        if pts.len() < 100 {
            return None;
        }
        let n = pts.len() as f64;
        let c: [f64; 3] = std::array::from_fn(|a| pts.iter().map(|p| p[a]).sum::<f64>() / n);
        let mut cov = [[0.0; 3]; 3];
        for p in &pts {
            for i in 0..3 {
                for j in 0..3 {
                    cov[i][j] += (p[i] - c[i]) * (p[j] - c[j]) / n;
                }
            }
        }
        let vecs = jacobi_eigenvectors(cov);
        // Match eigenvectors to patient axes greedily by alignment.
        let mut axes = [[0.0; 3]; 3];
        let mut used = [false; 3];
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (e, v) in vecs.iter().enumerate() {
            for (a, _) in axes.iter().enumerate() {
                pairs.push((v[a].abs(), e, a));
            }
        }
        pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
        let mut done = [false; 3];
        for (_, e, a) in pairs {
            if used[e] || done[a] {
                continue;
            }
            used[e] = true;
            done[a] = true;
            let v = vecs[e];
            axes[a] = if v[a] < 0.0 { v.map(|x| -x) } else { v };
        }
        let mut extent = [0.0; 3];
        for (a, ax) in axes.iter().enumerate() {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for p in &pts {
                let t = (0..3).map(|i| (p[i] - c[i]) * ax[i]).sum::<f64>();
                lo = lo.min(t);
                hi = hi.max(t);
            }
            extent[a] = hi - lo;
        }
        Some(HeadFrame {
            centre: c,
            axes,
            extent,
        })
    }

    fn point(&self, lat: f64, post: f64, sup: f64) -> [f64; 3] {
        std::array::from_fn(|i| {
            self.centre[i] + lat * self.axes[0][i] + post * self.axes[1][i] + sup * self.axes[2][i]
        })
    }
}

/// Eigenvectors of a symmetric 3×3 matrix (cyclic Jacobi).
fn jacobi_eigenvectors(mut a: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..50 {
        let off = a[0][1].abs() + a[0][2].abs() + a[1][2].abs();
        if off < 1e-12 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q].abs() < 1e-15 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            let mut na = a;
            for k in 0..3 {
                na[k][p] = c * a[k][p] - s * a[k][q];
                na[k][q] = s * a[k][p] + c * a[k][q];
            }
            let b = na;
            for k in 0..3 {
                na[p][k] = c * b[p][k] - s * b[q][k];
                na[q][k] = s * b[p][k] + c * b[q][k];
            }
            a = na;
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    // Columns of v are the eigenvectors.
    std::array::from_fn(|e| [v[0][e], v[1][e], v[2][e]])
}

/// Which surface a depth map looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The face: rays from anterior, lateral ±45 mm, superior -85..0 mm around the centroid.
    Face,
    /// The back of the head: rays from posterior, lateral ±45 mm, superior -30..+60 mm.
    Back,
}

/// A depth map: distance (mm) from a plane 150 mm in front of (or behind) the centroid to the
/// first head voxel, on a 3 mm grid; 300 where a ray meets nothing.
pub fn depth_map(vol: &Volume, body: &Mask, frame: &HeadFrame, side: Side) -> Vec<f32> {
    let (dir, vrange) = match side {
        Side::Face => (1.0, (-85.0, 0.0)),
        Side::Back => (-1.0, (-30.0, 60.0)),
    };
    let mut out = Vec::new();
    let mut v = vrange.0;
    while v <= vrange.1 {
        let mut u = -45.0;
        while u <= 45.0 {
            let mut depth = 300.0f32;
            let mut t = 0.0;
            while t < 300.0 {
                let p = frame.point(u, dir * (t - 150.0), v);
                let c = vol.voxel_of(p);
                let inside =
                    (0..3).all(|a| c[a].round() >= 0.0 && c[a].round() < vol.dims()[a] as f64);
                if inside {
                    let idx = vol.index([
                        c[0].round() as usize,
                        c[1].round() as usize,
                        c[2].round() as usize,
                    ]);
                    if body.get(idx) {
                        depth = t as f32;
                        break;
                    }
                }
                t += 1.0;
            }
            out.push(depth);
            u += 3.0;
        }
        v += 3.0;
    }
    out
}

/// Columns of a face depth map (lateral -45..45 mm every 3 mm).
pub const FACE_MAP_WIDTH: usize = 31;

/// A depth map (`width` values a row) minus its least-squares plane over (column, row).
pub fn detrend(map: &[f32], width: usize) -> Vec<f32> {
    if map.is_empty() || width == 0 {
        return map.to_vec();
    }
    // Normal equations for z ≈ a + b·u + c·v over centred u, v.
    let n = map.len() as f64;
    let uv = |i: usize| ((i % width) as f64, (i / width) as f64);
    let (mut su, mut sv) = (0.0, 0.0);
    for i in 0..map.len() {
        let (u, v) = uv(i);
        su += u;
        sv += v;
    }
    let (mu, mv) = (su / n, sv / n);
    let (mut suu, mut svv, mut suv, mut szu, mut szv, mut sz) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &z) in map.iter().enumerate() {
        let (u, v) = uv(i);
        let (u, v, z) = (u - mu, v - mv, z as f64);
        suu += u * u;
        svv += v * v;
        suv += u * v;
        szu += z * u;
        szv += z * v;
        sz += z;
    }
    let det = suu * svv - suv * suv;
    let (b, c) = if det.abs() > 1e-12 {
        ((szu * svv - szv * suv) / det, (szv * suu - szu * suv) / det)
    } else {
        (0.0, 0.0)
    };
    let a = sz / n;
    map.iter()
        .enumerate()
        .map(|(i, &z)| {
            let (u, v) = uv(i);
            (z as f64 - a - b * (u - mu) - c * (v - mv)) as f32
        })
        .collect()
}

/// Normalised (Pearson) correlation; 0 when either side is constant.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let ma = a[..n].iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let mb = b[..n].iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] as f64 - ma, b[i] as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa <= 1e-9 || sbb <= 1e-9 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Rank-1 rate and ROC AUC of a similarity matrix `sim[probe][gallery]` whose diagonal holds the
/// genuine pairs. Ties count half, so a constant matrix scores rank-1 = 1/N in expectation is
/// not claimed: ties for the top are broken against the genuine match.
pub fn rank1_auc(sim: &[Vec<f64>]) -> (f64, f64) {
    let n = sim.len();
    if n == 0 {
        return (0.0, 0.5);
    }
    let mut hits = 0usize;
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (i, row) in sim.iter().enumerate() {
        let g = row[i];
        if row.iter().enumerate().all(|(j, &s)| j == i || s < g) {
            hits += 1;
        }
        for (j, &s) in row.iter().enumerate() {
            if i == j {
                genuine.push(s)
            } else {
                impostor.push(s)
            }
        }
    }
    let mut wins = 0.0;
    for &g in &genuine {
        for &s in &impostor {
            wins += if g > s {
                1.0
            } else if g == s {
                0.5
            } else {
                0.0
            };
        }
    }
    let auc = if impostor.is_empty() {
        0.5
    } else {
        wins / (genuine.len() * impostor.len()) as f64
    };
    (hits as f64 / n as f64, auc)
}

/// What one scan's defacing did, against its ground truth.
#[derive(Clone, Debug, Default)]
pub struct ScanMetrics {
    /// Face feature voxels.
    pub face: usize,
    /// Of those, changed.
    pub face_removed: usize,
    /// Brain voxels changed (must be 0).
    pub brain_changed: usize,
    /// Head voxels outside the face region.
    pub outside: usize,
    /// Of those, changed.
    pub outside_changed: usize,
    /// Head voxels outside the tighter region ([`TIGHT_MARGIN_MM`]).
    pub outside_tight: usize,
    /// Of those, changed.
    pub outside_tight_changed: usize,
    /// True when the engine declined (not a head, no brain).
    pub declined: bool,
    /// Dense objects reported.
    pub dense: usize,
}

/// Per-scan features for the linkage attacks.
#[derive(Clone, Debug, Default)]
pub struct Features {
    /// Face depth map.
    pub face: Vec<f32>,
    /// Back-of-head depth map.
    pub back: Vec<f32>,
    /// Outline extents (mm).
    pub outline: [f64; 3],
}

fn features(vol: &Volume, modality: Modality) -> Features {
    let body = body_mask(vol, modality);
    let Some(frame) = HeadFrame::of(vol, &body) else {
        return Features::default();
    };
    Features {
        face: depth_map(vol, &body, &frame, Side::Face),
        back: depth_map(vol, &body, &frame, Side::Back),
        outline: frame.extent,
    }
}

/// Everything measured for one scan: metrics and features before and after.
#[derive(Clone, Debug, Default)]
pub struct ScanResult {
    /// Removal metrics.
    pub metrics: ScanMetrics,
    /// Attack features of the original.
    pub before: Features,
    /// Attack features of the defaced volume.
    pub after: Features,
}

/// Renders, defaces and measures scan `scan` of a subject.
pub fn run_scan(
    subject: &Subject,
    modality: Modality,
    scan: u8,
    dims: [usize; 3],
    opts: &DefaceOptions,
) -> ScanResult {
    let (vol, gt) = phantom::render(subject, modality, scan, dims);
    let before = features(&vol, modality);
    let region = morph::dilate(&gt.face, vol.spacing(), FACE_REGION_MARGIN_MM);
    let mut outside = gt.head.clone();
    outside.subtract(&region);
    let mut outside_tight = gt.head.clone();
    outside_tight.subtract(&morph::dilate(&gt.face, vol.spacing(), TIGHT_MARGIN_MM));
    let mut m = ScanMetrics {
        face: gt.face.count(),
        outside: outside.count(),
        outside_tight: outside_tight.count(),
        ..ScanMetrics::default()
    };
    let after_vol = match deface(&vol, modality, opts) {
        Ok(d) => {
            m.face_removed = d.changed.count_and(&gt.face);
            m.brain_changed = d.changed.count_and(&gt.brain);
            m.outside_changed = d.changed.count_and(&outside);
            m.outside_tight_changed = d.changed.count_and(&outside_tight);
            m.dense = d.dense_surface.len();
            d.apply(&vol)
        }
        Err(_) => {
            m.declined = true;
            vol.clone()
        }
    };
    let after = features(&after_vol, modality);
    ScanResult {
        metrics: m,
        before,
        after,
    }
}

/// Linkage figures of one attack.
#[derive(Clone, Copy, Debug, Default)]
pub struct Linkage {
    /// Rank-1 before defacing.
    pub rank1_before: f64,
    /// AUC before defacing.
    pub auc_before: f64,
    /// Rank-1 after defacing.
    pub rank1_after: f64,
    /// AUC after defacing.
    pub auc_after: f64,
}

/// The evaluation of one modality over `subjects` subjects.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// CT or MR.
    pub modality: Option<Modality>,
    /// Number of subjects (each scanned twice).
    pub subjects: usize,
    /// Grid.
    pub dims: [usize; 3],
    /// Face feature voxels removed, pooled over all scans.
    pub face_removed: f64,
    /// Worst scan's face feature removal.
    pub face_removed_worst: f64,
    /// Brain voxels changed, all scans.
    pub brain_changed: usize,
    /// Outside changes pooled over all scans.
    pub outside_changed: f64,
    /// Worst scan's outside changes.
    pub outside_changed_worst: f64,
    /// Outside changes with the tighter margin, pooled.
    pub outside_tight_changed: f64,
    /// Scans the engine declined.
    pub declined: usize,
    /// Face depth-map attack.
    pub face: Linkage,
    /// The same with each map's best-fitting plane removed first (a stronger attacker that
    /// discounts the head's pose and any flat replacement surface).
    pub face_detrended: Linkage,
    /// Back-of-head depth-map attack.
    pub back: Linkage,
    /// Outline-dimension attack.
    pub outline: Linkage,
}

/// Runs the evaluation: `subjects` subjects of `seed`, two scans each, on `threads` threads.
pub fn evaluate(
    seed: u64,
    subjects: usize,
    modality: Modality,
    dims: [usize; 3],
    opts: &DefaceOptions,
    threads: usize,
) -> Report {
    let threads = threads.max(1);
    let mut results: Vec<Option<[ScanResult; 2]>> = vec![None; subjects];
    std::thread::scope(|s| {
        let chunks: Vec<&mut [Option<[ScanResult; 2]>]> = {
            let per = subjects.div_ceil(threads).max(1);
            results.chunks_mut(per).collect()
        };
        let per = subjects.div_ceil(threads).max(1);
        for (c, chunk) in chunks.into_iter().enumerate() {
            s.spawn(move || {
                for (k, slot) in chunk.iter_mut().enumerate() {
                    let subject = Subject::new(seed, (c * per + k) as u32);
                    *slot = Some([
                        run_scan(&subject, modality, 0, dims, opts),
                        run_scan(&subject, modality, 1, dims, opts),
                    ]);
                }
            });
        }
    });
    let results: Vec<[ScanResult; 2]> = results.into_iter().flatten().collect();
    summarise(&results, modality, dims)
}

fn summarise(results: &[[ScanResult; 2]], modality: Modality, dims: [usize; 3]) -> Report {
    let mut r = Report {
        modality: Some(modality),
        subjects: results.len(),
        dims,
        face_removed_worst: 1.0,
        ..Report::default()
    };
    let (mut face, mut removed, mut outside, mut out_changed) = (0usize, 0usize, 0usize, 0usize);
    let (mut tight, mut tight_changed) = (0usize, 0usize);
    for pair in results {
        for s in pair {
            let m = &s.metrics;
            face += m.face;
            removed += m.face_removed;
            outside += m.outside;
            out_changed += m.outside_changed;
            tight += m.outside_tight;
            tight_changed += m.outside_tight_changed;
            r.brain_changed += m.brain_changed;
            r.declined += m.declined as usize;
            r.face_removed_worst = r
                .face_removed_worst
                .min(m.face_removed as f64 / m.face.max(1) as f64);
            r.outside_changed_worst = r
                .outside_changed_worst
                .max(m.outside_changed as f64 / m.outside.max(1) as f64);
        }
    }
    r.face_removed = removed as f64 / face.max(1) as f64;
    r.outside_changed = out_changed as f64 / outside.max(1) as f64;
    r.outside_tight_changed = tight_changed as f64 / tight.max(1) as f64;
    let attack = |get: &dyn Fn(&Features) -> Similar, after: bool| {
        let sim: Vec<Vec<f64>> = results
            .iter()
            .map(|probe| {
                let p = if after {
                    &probe[1].after
                } else {
                    &probe[1].before
                };
                results
                    .iter()
                    .map(|gallery| {
                        let g = if after {
                            &gallery[0].after
                        } else {
                            &gallery[0].before
                        };
                        get(p).compare(&get(g))
                    })
                    .collect()
            })
            .collect();
        rank1_auc(&sim)
    };
    let link = |get: &dyn Fn(&Features) -> Similar| {
        let (rank1_before, auc_before) = attack(get, false);
        let (rank1_after, auc_after) = attack(get, true);
        Linkage {
            rank1_before,
            auc_before,
            rank1_after,
            auc_after,
        }
    };
    r.face = link(&|f| Similar::Map(f.face.clone()));
    r.face_detrended = link(&|f| Similar::Map(detrend(&f.face, FACE_MAP_WIDTH)));
    r.back = link(&|f| Similar::Map(f.back.clone()));
    r.outline = link(&|f| Similar::Dims(f.outline));
    r
}

enum Similar {
    Map(Vec<f32>),
    Dims([f64; 3]),
}

impl Similar {
    fn compare(&self, other: &Similar) -> f64 {
        match (self, other) {
            (Similar::Map(a), Similar::Map(b)) => correlation(a, b),
            (Similar::Dims(a), Similar::Dims(b)) => {
                -(0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt()
            }
            _ => 0.0,
        }
    }
}

impl Report {
    /// The report as a markdown table.
    pub fn markdown(&self) -> String {
        let m = match self.modality {
            Some(Modality::Mr) => "MR",
            _ => "CT",
        };
        let n = self.subjects.max(1) as f64;
        let pct = |x: f64| format!("{:.2}%", 100.0 * x);
        let mut s = String::new();
        s.push_str(&format!(
            "{m}: {} subjects × 2 scans, grid {}×{}×{}, face region = features dilated by {FACE_REGION_MARGIN_MM} mm, chance rank-1 = {:.3}\n\n",
            self.subjects, self.dims[0], self.dims[1], self.dims[2], 1.0 / n
        ));
        s.push_str("| metric | target | result |\n|---|---|---|\n");
        s.push_str(&format!(
            "| face-feature voxels removed (pooled / worst scan) | ≥ 99% | {} / {} |\n",
            pct(self.face_removed),
            pct(self.face_removed_worst)
        ));
        s.push_str(&format!(
            "| brain voxels changed | 0 | {} |\n",
            self.brain_changed
        ));
        s.push_str(&format!("| head voxels outside the face region changed (pooled / worst scan) | ≤ 1% | {} / {} |\n", pct(self.outside_changed), pct(self.outside_changed_worst)));
        s.push_str(&format!(
            "| same with a {TIGHT_MARGIN_MM} mm margin (pooled) | (for comparison) | {} |\n",
            pct(self.outside_tight_changed)
        ));
        s.push_str(&format!(
            "| scans declined (not a head) | 0 | {} |\n",
            self.declined
        ));
        let row = |name: &str, l: &Linkage, target: &str| {
            format!(
                "| {name}: rank-1 before → after | {target} | {:.3} → {:.3} |\n| {name}: AUC before → after | | {:.3} → {:.3} |\n",
                l.rank1_before, l.rank1_after, l.auc_before, l.auc_after
            )
        };
        s.push_str(&row(
            "face depth map",
            &self.face,
            "after ≤ chance + 0.05, AUC ≈ 0.5",
        ));
        s.push_str(&row(
            "face depth map, best-fitting plane removed",
            &self.face_detrended,
            "(stronger attacker)",
        ));
        s.push_str(&row(
            "back-of-head depth map (kept on purpose)",
            &self.back,
            "(what stays linkable)",
        ));
        s.push_str(&row(
            "head outline dimensions",
            &self.outline,
            "(what stays linkable)",
        ));
        s
    }
}
