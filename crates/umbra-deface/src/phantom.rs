//! Synthetic head phantoms with per-subject facial geometry, and non-head phantoms.
//!
//! A subject is drawn from `(seed, index)`: head and face sizes, tissue thicknesses, the brain's
//! floor, eyes (spacing, protrusion), nose (height, width, projection), lips, chin, optional ears
//! and an optional metal stud. Geometry is analytic in a head frame (LPS axes, mm, origin at the
//! head's centre: +x left, +y posterior, +z superior); rendering samples it at each voxel's
//! position, so the second scan of a subject is the same anatomy under a small rigid motion with
//! fresh noise. Ground truth masks come with every rendering.

use crate::Modality;
use crate::morph;
use crate::rng::Rng;
use crate::volume::{Mask, Volume};

/// Field of view of head phantoms along each axis, mm.
pub const HEAD_FOV_MM: f64 = 256.0;

/// One synthetic subject's anatomy (head frame, mm).
#[derive(Clone, Debug)]
pub struct Subject {
    /// The seed the subject was drawn from.
    pub seed: u64,
    /// The subject's number within the seed.
    pub index: u32,
    /// Cranium ellipsoid semi-axes (left-right, anterior-posterior, superior-inferior).
    pub cranium: [f64; 3],
    /// Cranium ellipsoid centre.
    pub cranium_centre: [f64; 3],
    /// Lower face ellipsoid semi-axes.
    pub face: [f64; 3],
    /// Lower face ellipsoid centre.
    pub face_centre: [f64; 3],
    /// Neck cylinder radius.
    pub neck_radius: f64,
    /// Skin thickness.
    pub skin_mm: f64,
    /// Subcutaneous fat thickness.
    pub fat_mm: f64,
    /// Skull thickness.
    pub skull_mm: f64,
    /// Height of the brain's floor at y = 0; it rises anteriorly with slope `floor_slope`.
    pub brain_floor: f64,
    /// Rise of the brain floor per mm toward anterior.
    pub floor_slope: f64,
    /// Half the distance between the eyes' centres.
    pub eye_half_spacing: f64,
    /// Height of the eyes' centres.
    pub eye_z: f64,
    /// Eye globe radius.
    pub eye_radius: f64,
    /// How far the globe stands out of the face surface.
    pub eye_protrusion: f64,
    /// Nose: nasion to base.
    pub nose_height: f64,
    /// Nose width at the base.
    pub nose_width: f64,
    /// Nose projection from the face surface.
    pub nose_projection: f64,
    /// Mouth height.
    pub lip_z: f64,
    /// Lip width.
    pub lip_width: f64,
    /// Lip projection.
    pub lip_projection: f64,
    /// Chin height.
    pub chin_z: f64,
    /// Chin width.
    pub chin_width: f64,
    /// Chin projection.
    pub chin_projection: f64,
    /// Ears drawn or not.
    pub ears: bool,
    /// A metal stud on the skin (CT: very dense), with its centre.
    pub stud: Option<[f64; 3]>,
    /// Skull density (CT, HU).
    pub bone_hu: f64,
    /// MR intensity scale.
    pub mr_scale: f64,
}

/// Ground truth of a rendering, on the volume's grid.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    /// Everything inside the skin.
    pub head: Mask,
    /// Brain tissue including the ventricles.
    pub brain: Mask,
    /// Union of nose, lips, eyes and chin.
    pub face: Mask,
    /// The nose (the part standing out of the face).
    pub nose: Mask,
    /// Both lips (the part standing out of the face).
    pub lips: Mask,
    /// Eye globes with their lids.
    pub eyes: Mask,
    /// The chin (the part standing out of the face).
    pub chin: Mask,
}

impl Subject {
    /// Draws subject `index` of `seed`.
    pub fn new(seed: u64, index: u32) -> Subject {
        let mut r = Rng::new(&[seed, index as u64, 0x5EAD]);
        let cranium = [
            r.range(68.0, 80.0),
            r.range(86.0, 100.0),
            r.range(78.0, 90.0),
        ];
        let cranium_centre = [0.0, r.range(-3.0, 3.0), 20.0];
        let face = [
            r.range(56.0, 66.0),
            cranium[1] - r.range(8.0, 16.0),
            r.range(60.0, 68.0),
        ];
        let face_centre = [0.0, -8.0, -45.0];
        let eye_z = r.range(-8.0, -3.0);
        let nose_height = r.range(40.0, 52.0);
        let lip_z = eye_z + 3.0 - nose_height - r.range(12.0, 17.0);
        let chin_z = lip_z - r.range(24.0, 30.0);
        let mut s = Subject {
            seed,
            index,
            cranium,
            cranium_centre,
            face,
            face_centre,
            neck_radius: r.range(44.0, 54.0),
            skin_mm: r.range(2.0, 3.0),
            fat_mm: r.range(2.0, 5.0),
            skull_mm: r.range(5.0, 8.0),
            brain_floor: r.range(0.0, 4.0),
            floor_slope: r.range(0.25, 0.35),
            eye_half_spacing: r.range(29.0, 35.0),
            eye_z,
            eye_radius: r.range(11.0, 12.5),
            eye_protrusion: r.range(1.0, 5.0),
            nose_height,
            nose_width: r.range(26.0, 40.0),
            nose_projection: r.range(16.0, 28.0),
            lip_z,
            lip_width: r.range(40.0, 55.0),
            lip_projection: r.range(5.0, 11.0),
            chin_z,
            chin_width: r.range(30.0, 46.0),
            chin_projection: r.range(5.0, 13.0),
            ears: r.unit() < 0.6,
            stud: None,
            bone_hu: r.range(1000.0, 1400.0),
            mr_scale: r.range(0.9, 1.1),
        };
        if r.unit() < 0.2 {
            // A stud on the side of the nose.
            let z = s.nose_top() - 0.8 * s.nose_height;
            let t = 0.8;
            let w = s.nose_width / 2.0 * (0.35 + 0.65 * t) * 0.75;
            let base = s.front_y(0.0, z).unwrap_or(-90.0);
            let p = s.nose_projection * (0.3 + 0.7 * t) * (1.0 - 0.75 * 0.75);
            s.stud = Some([w, base - p, z]);
        }
        s
    }

    fn nose_top(&self) -> f64 {
        self.eye_z + 3.0
    }

    /// The most anterior y of the head ellipsoids at (x, z), if any covers it.
    fn front_y(&self, x: f64, z: f64) -> Option<f64> {
        let f = |c: [f64; 3], s: [f64; 3]| {
            let k = 1.0 - ((x - c[0]) / s[0]).powi(2) - ((z - c[2]) / s[2]).powi(2);
            (k >= 0.0).then(|| c[1] - s[1] * k.sqrt())
        };
        match (
            f(self.cranium_centre, self.cranium),
            f(self.face_centre, self.face),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn brain_floor_at(&self, y: f64) -> f64 {
        self.brain_floor - self.floor_slope * y
    }

    fn eye_centres(&self) -> [[f64; 3]; 2] {
        let c = |x: f64| {
            let y = self.front_y(x, self.eye_z).unwrap_or(-80.0) + self.eye_radius
                - self.eye_protrusion;
            [x, y, self.eye_z]
        };
        [c(-self.eye_half_spacing), c(self.eye_half_spacing)]
    }

    fn in_nose(&self, q: [f64; 3]) -> bool {
        let top = self.nose_top();
        let t = (top - q[2]) / self.nose_height;
        if !(0.0..=1.0).contains(&t) {
            return false;
        }
        let w = self.nose_width / 2.0 * (0.35 + 0.65 * t);
        if q[0].abs() > w {
            return false;
        }
        let p = if t <= 0.85 {
            self.nose_projection * (0.3 + 0.7 * t)
        } else {
            self.nose_projection * (0.3 + 0.7 * 0.85) * (1.0 - (t - 0.85) / 0.15 * 0.5)
        };
        let Some(base) = self.front_y(0.0, q[2]) else {
            return false;
        };
        let r = q[0] / w;
        q[1] >= base - p * (1.0 - r * r) && q[1] <= base + 12.0
    }

    fn in_lips(&self, q: [f64; 3]) -> bool {
        let lip = |zc: f64, scale: f64| {
            let Some(base) = self.front_y(0.0, zc) else {
                return false;
            };
            ell(
                q,
                [0.0, base, zc],
                [
                    self.lip_width / 2.0 * scale,
                    self.lip_projection * scale,
                    6.0,
                ],
            ) <= 1.0
        };
        lip(self.lip_z + 5.0, 1.0) || lip(self.lip_z - 5.0, 0.9)
    }

    fn in_chin(&self, q: [f64; 3]) -> bool {
        let Some(base) = self.front_y(0.0, self.chin_z) else {
            return false;
        };
        ell(
            q,
            [0.0, base + 6.0, self.chin_z],
            [self.chin_width / 2.0, self.chin_projection + 6.0, 15.0],
        ) <= 1.0
    }

    fn in_eye_region(&self, q: [f64; 3]) -> bool {
        let r = self.eye_radius + 1.5;
        self.eye_centres().iter().any(|c| dist2(q, *c) <= r * r)
    }

    fn in_globe(&self, q: [f64; 3]) -> bool {
        let r = self.eye_radius;
        self.eye_centres().iter().any(|c| dist2(q, *c) <= r * r)
    }

    fn in_ears(&self, q: [f64; 3]) -> bool {
        if !self.ears {
            return false;
        }
        let c = self.cranium;
        let z = self.eye_z;
        let k = 1.0 - ((z - self.cranium_centre[2]) / c[2]).powi(2) - (5.0 / c[1]).powi(2);
        let side = c[0] * k.max(0.0).sqrt();
        [-1.0, 1.0]
            .iter()
            .any(|s| ell(q, [s * (side + 3.0), 5.0, z], [8.0, 14.0, 28.0]) <= 1.0)
    }

    fn in_stud(&self, q: [f64; 3]) -> bool {
        self.stud.is_some_and(|c| dist2(q, c) <= 2.0 * 2.0)
    }

    /// Inside the skin: cranium, lower face, neck, features.
    fn in_head(&self, q: [f64; 3]) -> bool {
        ell(q, self.cranium_centre, self.cranium) <= 1.0
            || ell(q, self.face_centre, self.face) <= 1.0
            || (q[2] < -55.0 && q[0].powi(2) + (q[1] - 15.0).powi(2) <= self.neck_radius.powi(2))
            || self.in_nose(q)
            || self.in_lips(q)
            || self.in_chin(q)
            || self.in_eye_region(q)
            || self.in_ears(q)
            || self.in_stud(q)
    }

    /// Tissue below the skin and fat layers.
    fn deep_tissue(&self, q: [f64; 3], depth: f64) -> Tissue {
        if self.in_globe(q) {
            return Tissue::Eye;
        }
        let d1 = self.skin_mm + self.fat_mm;
        let d2 = d1 + self.skull_mm;
        let in_cr = |d: f64| ell_shrunk(q, self.cranium_centre, self.cranium, d) <= 1.0;
        if in_cr(d1) && !in_cr(d2) {
            return Tissue::Bone;
        }
        if in_cr(d2) {
            let floor = self.brain_floor_at(q[1]);
            if q[2] > floor + 2.0 {
                if !in_cr(d2 + 2.0) {
                    return Tissue::Csf;
                }
                let vent = [-1.0, 1.0].iter().any(|s| {
                    ell(
                        q,
                        [s * 8.0, self.cranium_centre[1] + 5.0, 30.0],
                        [5.0, 20.0, 9.0],
                    ) <= 1.0
                });
                if vent {
                    return Tissue::Ventricle;
                }
                return if in_cr(d2 + 14.0) {
                    Tissue::White
                } else {
                    Tissue::Grey
                };
            }
            if q[2] > floor - self.skull_mm {
                return if q[2] > floor {
                    Tissue::Csf
                } else {
                    Tissue::Bone
                };
            }
            return Tissue::Soft;
        }
        if (10.0..16.0).contains(&depth) && q[1] < -20.0 && q[2] < self.eye_z - 14.0 {
            return Tissue::Bone;
        }
        Tissue::Soft
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tissue {
    Air,
    Skin,
    Fat,
    Soft,
    Bone,
    Grey,
    White,
    Csf,
    Ventricle,
    Eye,
    Metal,
    Lung,
}

impl Tissue {
    fn ct(self, bone: f64) -> f64 {
        match self {
            Tissue::Air => -1000.0,
            Tissue::Skin => 40.0,
            Tissue::Fat => -90.0,
            Tissue::Soft => 50.0,
            Tissue::Bone => bone,
            Tissue::Grey => 38.0,
            Tissue::White => 28.0,
            Tissue::Csf | Tissue::Ventricle => 6.0,
            Tissue::Eye => 12.0,
            Tissue::Metal => 6000.0,
            Tissue::Lung => -850.0,
        }
    }
    fn mr(self) -> f64 {
        match self {
            Tissue::Air | Tissue::Metal => 0.0,
            Tissue::Skin => 320.0,
            Tissue::Fat => 850.0,
            Tissue::Soft => 380.0,
            Tissue::Bone => 40.0,
            Tissue::Grey => 480.0,
            Tissue::White => 620.0,
            Tissue::Csf | Tissue::Ventricle => 140.0,
            Tissue::Eye => 90.0,
            Tissue::Lung => 20.0,
        }
    }
}

/// `sum ((q - c) / s)²`: ≤ 1 inside the ellipsoid.
fn ell(q: [f64; 3], c: [f64; 3], s: [f64; 3]) -> f64 {
    (0..3).map(|a| ((q[a] - c[a]) / s[a]).powi(2)).sum()
}

/// Like [`ell`] with every semi-axis shortened by `d` (an inner surface at about depth `d`).
fn ell_shrunk(q: [f64; 3], c: [f64; 3], s: [f64; 3], d: f64) -> f64 {
    ell(q, c, [s[0] - d, s[1] - d, s[2] - d])
}

fn dist2(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]).powi(2)).sum()
}

/// A rigid motion: head frame → patient (LPS) coordinates, `p = R q + t`.
#[derive(Clone, Copy, Debug)]
struct Pose {
    r: [[f64; 3]; 3],
    t: [f64; 3],
}

impl Pose {
    fn identity() -> Pose {
        Pose {
            r: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            t: [0.0; 3],
        }
    }
    /// Rotation by small angles (degrees) about x, y, z, then translation (mm).
    fn new(deg: [f64; 3], t: [f64; 3]) -> Pose {
        let [a, b, c] = deg.map(f64::to_radians);
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, a.cos(), -a.sin()],
            [0.0, a.sin(), a.cos()],
        ];
        let ry = [
            [b.cos(), 0.0, b.sin()],
            [0.0, 1.0, 0.0],
            [-b.sin(), 0.0, b.cos()],
        ];
        let rz = [
            [c.cos(), -c.sin(), 0.0],
            [c.sin(), c.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        Pose {
            r: matmul(rz, matmul(ry, rx)),
            t,
        }
    }
    /// Head-frame coordinates of a patient point: `q = Rᵀ (p - t)`.
    fn head_of(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [p[0] - self.t[0], p[1] - self.t[1], p[2] - self.t[2]];
        std::array::from_fn(|i| (0..3).map(|k| self.r[k][i] * d[k]).sum())
    }
}

fn matmul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// The motion of scan `scan` of a subject: none for the first, a few degrees and mm after.
fn pose(subject: &Subject, scan: u8) -> Pose {
    if scan == 0 {
        return Pose::identity();
    }
    let mut r = Rng::new(&[subject.seed, subject.index as u64, 0x9053, scan as u64]);
    let deg = [r.range(-4.0, 4.0), r.range(-3.0, 3.0), r.range(-3.0, 3.0)];
    let t = [r.range(-3.0, 3.0), r.range(-3.0, 3.0), r.range(-3.0, 3.0)];
    Pose::new(deg, t)
}

/// An axis-aligned LPS grid of `dims` voxels covering `fov_mm` per axis, centred on 0.
fn grid(dims: [usize; 3], fov_mm: f64) -> ([usize; 3], [f64; 3], [f64; 3]) {
    let dims = dims.map(|d| d.max(8));
    let spacing = dims.map(|d| fov_mm / d as f64);
    let origin = std::array::from_fn(|a| -((dims[a] - 1) as f64) / 2.0 * spacing[a]);
    (dims, spacing, origin)
}

const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

fn noisy(t: Tissue, modality: Modality, subject_bone: f64, mr_scale: f64, r: &mut Rng) -> f32 {
    match modality {
        Modality::Ct => (t.ct(subject_bone) + 12.0 * r.normal()) as f32,
        Modality::Mr => {
            let v = t.mr() * mr_scale + 15.0 * r.normal();
            v.abs() as f32
        }
    }
}

/// Renders scan `scan` (0 = first, 1 = second: small rigid motion, fresh noise) of a subject
/// on an axis-aligned grid of `dims` voxels over a 256 mm field of view (dimensions below 8
/// are raised to 8). Returns the volume and its ground truth.
pub fn render(
    subject: &Subject,
    modality: Modality,
    scan: u8,
    dims: [usize; 3],
) -> (Volume, GroundTruth) {
    let (dims, spacing, origin) = grid(dims, HEAD_FOV_MM);
    let n: usize = dims.iter().product();
    let pose = pose(subject, scan);
    let at = |idx: usize| {
        let v = crate::volume::coords(dims, idx);
        let p = std::array::from_fn(|a| origin[a] + v[a] as f64 * spacing[a]);
        pose.head_of(p)
    };
    let mut head = Mask::new(dims);
    for idx in 0..n {
        if subject.in_head(at(idx)) {
            head.set(idx, true);
        }
    }
    let depth2 = morph::distance_sq(&head.not(), spacing);
    let mut rng = Rng::new(&[
        subject.seed,
        subject.index as u64,
        0x401E,
        scan as u64,
        modality as u64,
    ]);
    let mut voxels = Vec::with_capacity(n);
    let empty = Mask::new(dims);
    let mut gt = GroundTruth {
        head: head.clone(),
        brain: empty.clone(),
        face: empty.clone(),
        nose: empty.clone(),
        lips: empty.clone(),
        eyes: empty.clone(),
        chin: empty,
    };
    for idx in 0..n {
        let q = at(idx);
        let tissue = if !head.get(idx) {
            Tissue::Air
        } else {
            let depth = (depth2[idx] as f64).sqrt();
            let t = if subject.in_stud(q) {
                Tissue::Metal
            } else if depth <= subject.skin_mm {
                Tissue::Skin
            } else if depth <= subject.skin_mm + subject.fat_mm {
                Tissue::Fat
            } else {
                subject.deep_tissue(q, depth)
            };
            let front = subject.front_y(q[0], q[2]);
            let protrudes = front.is_none_or(|f| q[1] < f);
            if matches!(t, Tissue::Grey | Tissue::White | Tissue::Ventricle) {
                gt.brain.set(idx, true);
            }
            let nose = protrudes && subject.in_nose(q);
            let lips = protrudes && subject.in_lips(q);
            let chin = protrudes && subject.in_chin(q);
            let eyes = subject.in_eye_region(q);
            gt.nose.set(idx, nose);
            gt.lips.set(idx, lips);
            gt.chin.set(idx, chin);
            gt.eyes.set(idx, eyes);
            gt.face.set(idx, nose || lips || chin || eyes);
            t
        };
        voxels.push(noisy(
            tissue,
            modality,
            subject.bone_hu,
            subject.mr_scale,
            &mut rng,
        ));
    }
    let vol = Volume::new(dims, voxels, spacing, origin, IDENTITY)
        .expect("phantom grids are valid by construction");
    (vol, gt)
}

/// Non-head phantoms for the "no face" decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A chest: an elliptic cylinder with two lungs, a spine and ribs, through the whole field.
    Chest,
    /// A knee: a limb cylinder with femur and tibia and a kneecap, through the whole field.
    Knee,
}

/// Renders a non-head phantom (360 mm field of view for the chest, 200 mm for the knee).
pub fn render_body(body: Body, seed: u64, modality: Modality, dims: [usize; 3]) -> Volume {
    let fov = match body {
        Body::Chest => 360.0,
        Body::Knee => 200.0,
    };
    let (dims, spacing, origin) = grid(dims, fov);
    let mut r = Rng::new(&[seed, 0xB0D1, body as u64]);
    let scale = r.range(0.9, 1.1);
    let n: usize = dims.iter().product();
    let mut voxels = Vec::with_capacity(n);
    let mut noise = Rng::new(&[seed, 0xB0D2, body as u64, modality as u64]);
    for idx in 0..n {
        let v = crate::volume::coords(dims, idx);
        let q: [f64; 3] = std::array::from_fn(|a| origin[a] + v[a] as f64 * spacing[a]);
        let (x, y, z) = (q[0], q[1], q[2]);
        let t = match body {
            Body::Chest => {
                let outer = (x / (150.0 * scale)).powi(2) + (y / (100.0 * scale)).powi(2);
                if outer > 1.0 {
                    Tissue::Air
                } else if outer > 0.85 {
                    Tissue::Fat
                } else if [-1.0, 1.0]
                    .iter()
                    .any(|s| ((x - s * 65.0) / 48.0).powi(2) + ((y + 5.0) / 68.0).powi(2) <= 1.0)
                {
                    Tissue::Lung
                } else if x * x + (y - 70.0).powi(2) <= 15.0f64.powi(2)
                    || (outer > 0.72 && (z / 12.0).rem_euclid(2.0) < 0.6)
                {
                    Tissue::Bone
                } else {
                    Tissue::Soft
                }
            }
            Body::Knee => {
                let rad = 55.0 * scale + if z.abs() < 20.0 { 5.0 } else { 0.0 };
                let d2 = x * x + y * y;
                let patella = (x * x + (y + rad - 8.0).powi(2) + z * z) <= 16.0f64.powi(2);
                if patella {
                    Tissue::Bone
                } else if d2 > rad * rad {
                    Tissue::Air
                } else if d2 > (rad - 5.0).powi(2) {
                    Tissue::Fat
                } else if z.abs() > 4.0 && d2 <= 26.0f64.powi(2) {
                    Tissue::Bone
                } else {
                    Tissue::Soft
                }
            }
        };
        voxels.push(noisy(t, modality, 1200.0, scale, &mut noise));
    }
    Volume::new(dims, voxels, spacing, origin, IDENTITY)
        .expect("phantom grids are valid by construction")
}
