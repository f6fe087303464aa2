//! The voxel grid and its place in DICOM patient coordinates (LPS: +x Left, +y Posterior,
//! +z Superior; so anterior is -y).

use crate::Error;

/// LPS direction pointing to the patient's left.
pub const LEFT: [f64; 3] = [1.0, 0.0, 0.0];
/// LPS direction pointing anterior (LPS +y is posterior).
pub const ANTERIOR: [f64; 3] = [0.0, -1.0, 0.0];
/// LPS direction pointing superior.
pub const SUPERIOR: [f64; 3] = [0.0, 0.0, 1.0];

/// A voxel axis (0 = i, 1 = j, 2 = k) and the sign of index steps along a patient direction:
/// `sign = 1` means increasing the index moves that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AxisDir {
    /// Voxel axis: 0 (i, fastest), 1 (j) or 2 (k).
    pub axis: usize,
    /// +1 or -1.
    pub sign: i8,
}

/// The patient directions resolved onto voxel axes, one distinct axis each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orientation {
    /// The axis pointing to the patient's left.
    pub left: AxisDir,
    /// The axis pointing anterior.
    pub anterior: AxisDir,
    /// The axis pointing superior.
    pub superior: AxisDir,
}

/// A 3-D scalar volume: voxel values (Hounsfield units for CT, intensities for MR) on a grid
/// placed in patient coordinates (LPS, millimetres).
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    dims: [usize; 3],
    voxels: Vec<f32>,
    spacing: [f64; 3],
    origin: [f64; 3],
    directions: [[f64; 3]; 3],
    inverse: [[f64; 3]; 3],
}

impl Volume {
    /// A volume of `dims = [nx, ny, nz]` voxels (x fastest), `spacing` in mm along i, j, k,
    /// `origin` = LPS position of voxel (0, 0, 0), `directions[a]` = LPS unit vector of axis `a`
    /// (normalised here). Fails when counts, spacing or directions are unusable.
    pub fn new(
        dims: [usize; 3],
        voxels: Vec<f32>,
        spacing: [f64; 3],
        origin: [f64; 3],
        directions: [[f64; 3]; 3],
    ) -> Result<Volume, Error> {
        let n = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::InvalidVolume("dimensions overflow".into()))?;
        if dims.contains(&0) {
            return Err(Error::InvalidVolume(format!("empty dimension in {dims:?}")));
        }
        if voxels.len() != n {
            return Err(Error::InvalidVolume(format!(
                "{} voxels for dimensions {dims:?} ({n})",
                voxels.len()
            )));
        }
        if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(Error::InvalidVolume(format!("spacing {spacing:?}")));
        }
        if origin.iter().any(|o| !o.is_finite()) {
            return Err(Error::InvalidVolume(format!("origin {origin:?}")));
        }
        let mut dirs = directions;
        for d in &mut dirs {
            let norm = dot(*d, *d).sqrt();
            if !norm.is_finite() || norm < 1e-6 {
                return Err(Error::InvalidVolume(format!("direction {d:?}")));
            }
            for c in d.iter_mut() {
                *c /= norm;
            }
        }
        // Columns of the index -> world matrix are spacing[a] * dirs[a].
        let m = std::array::from_fn(|r| std::array::from_fn(|c| dirs[c][r] * spacing[c]));
        let inverse = invert3(m)
            .ok_or_else(|| Error::InvalidVolume("directions are not independent".into()))?;
        Ok(Volume {
            dims,
            voxels,
            spacing,
            origin,
            directions: dirs,
            inverse,
        })
    }

    /// The same geometry with other voxel values.
    pub fn with_voxels(&self, voxels: Vec<f32>) -> Result<Volume, Error> {
        Volume::new(
            self.dims,
            voxels,
            self.spacing,
            self.origin,
            self.directions,
        )
    }

    /// `[nx, ny, nz]`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    /// Voxel values, x fastest.
    pub fn voxels(&self) -> &[f32] {
        &self.voxels
    }
    /// Voxel values, mutable.
    pub fn voxels_mut(&mut self) -> &mut [f32] {
        &mut self.voxels
    }
    /// Voxel spacing in mm along i, j, k.
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }
    /// LPS position of voxel (0, 0, 0), mm.
    pub fn origin(&self) -> [f64; 3] {
        self.origin
    }
    /// LPS unit vectors of the i, j, k axes.
    pub fn directions(&self) -> [[f64; 3]; 3] {
        self.directions
    }
    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.voxels.len()
    }
    /// Never true for a constructed volume; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.voxels.is_empty()
    }
    /// Volume of one voxel in mm³.
    pub fn voxel_volume(&self) -> f64 {
        self.spacing.iter().product()
    }

    /// Linear index of voxel `[i, j, k]`.
    pub fn index(&self, v: [usize; 3]) -> usize {
        index(self.dims, v)
    }
    /// Voxel coordinates of a linear index.
    pub fn coords(&self, idx: usize) -> [usize; 3] {
        coords(self.dims, idx)
    }
    /// Value at `[i, j, k]`, or `None` outside the grid.
    pub fn get(&self, v: [usize; 3]) -> Option<f32> {
        if v[0] < self.dims[0] && v[1] < self.dims[1] && v[2] < self.dims[2] {
            self.voxels.get(self.index(v)).copied()
        } else {
            None
        }
    }

    /// LPS position (mm) of a continuous voxel position.
    pub fn world(&self, v: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|r| {
            self.origin[r]
                + (0..3)
                    .map(|a| v[a] * self.spacing[a] * self.directions[a][r])
                    .sum::<f64>()
        })
    }
    /// LPS position (mm) of voxel `[i, j, k]`.
    pub fn world_of(&self, v: [usize; 3]) -> [f64; 3] {
        self.world([v[0] as f64, v[1] as f64, v[2] as f64])
    }
    /// Continuous voxel position of an LPS point.
    pub fn voxel_of(&self, p: [f64; 3]) -> [f64; 3] {
        let d = [
            p[0] - self.origin[0],
            p[1] - self.origin[1],
            p[2] - self.origin[2],
        ];
        std::array::from_fn(|r| (0..3).map(|c| self.inverse[r][c] * d[c]).sum())
    }
    /// Value at the voxel nearest to an LPS point, or `None` outside the grid.
    pub fn sample_nearest(&self, p: [f64; 3]) -> Option<f32> {
        let v = self.voxel_of(p);
        let mut idx = [0usize; 3];
        for a in 0..3 {
            let r = v[a].round();
            if !(r >= 0.0 && r < self.dims[a] as f64) {
                return None;
            }
            idx[a] = r as usize;
        }
        self.get(idx)
    }

    /// The voxel axis most nearly parallel to an LPS direction, and the sign of that alignment.
    pub fn axis_toward(&self, d: [f64; 3]) -> AxisDir {
        let mut best = AxisDir { axis: 0, sign: 1 };
        let mut best_dot = -1.0;
        for (a, dir) in self.directions.iter().enumerate() {
            let p = dot(*dir, d);
            if p.abs() > best_dot {
                best_dot = p.abs();
                best = AxisDir {
                    axis: a,
                    sign: if p >= 0.0 { 1 } else { -1 },
                };
            }
        }
        best
    }

    /// Left, anterior and superior resolved onto three distinct voxel axes (the assignment that
    /// best matches the direction cosines, so oblique volumes never map two directions to one
    /// axis).
    pub fn orientation(&self) -> Orientation {
        let targets = [LEFT, ANTERIOR, SUPERIOR];
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let mut best = perms[0];
        let mut best_score = f64::MIN;
        for p in perms {
            let score: f64 = (0..3)
                .map(|t| dot(self.directions[p[t]], targets[t]).abs())
                .sum();
            if score > best_score {
                best_score = score;
                best = p;
            }
        }
        let ad = |t: usize| {
            let a = best[t];
            AxisDir {
                axis: a,
                sign: if dot(self.directions[a], targets[t]) >= 0.0 {
                    1
                } else {
                    -1
                },
            }
        };
        Orientation {
            left: ad(0),
            anterior: ad(1),
            superior: ad(2),
        }
    }

    /// The voxel axis and sign pointing anterior (LPS -y).
    pub fn anterior(&self) -> AxisDir {
        self.orientation().anterior
    }
    /// The voxel axis and sign pointing superior (LPS +z).
    pub fn superior(&self) -> AxisDir {
        self.orientation().superior
    }

    /// The same physical content stored differently: new axis `a` is old axis `perm[a]`,
    /// reversed when `flip[a]`. Geometry is updated so every voxel keeps its LPS position.
    pub fn reorient(&self, perm: [usize; 3], flip: [bool; 3]) -> Result<Volume, Error> {
        check_perm(perm)?;
        let (dims, map) = reorient_map(self.dims, perm, flip);
        let voxels = map.iter().map(|&old| self.voxels[old]).collect();
        let spacing = std::array::from_fn(|a| self.spacing[perm[a]]);
        let directions: [[f64; 3]; 3] = std::array::from_fn(|a| {
            let d = self.directions[perm[a]];
            if flip[a] { [-d[0], -d[1], -d[2]] } else { d }
        });
        let mut first = [0.0; 3];
        for a in 0..3 {
            if flip[a] {
                first[perm[a]] = (self.dims[perm[a]] - 1) as f64;
            }
        }
        Volume::new(dims, voxels, spacing, self.world(first), directions)
    }
}

/// A boolean voxel mask with the dimensions of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    dims: [usize; 3],
    bits: Vec<bool>,
}

impl Mask {
    /// An all-false mask.
    pub fn new(dims: [usize; 3]) -> Mask {
        let n = dims.iter().product();
        Mask {
            dims,
            bits: vec![false; n],
        }
    }
    /// A mask from per-voxel values; fails when the count does not match `dims`.
    pub fn from_vec(dims: [usize; 3], bits: Vec<bool>) -> Result<Mask, Error> {
        let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if n != Some(bits.len()) {
            return Err(Error::InvalidVolume(format!(
                "{} mask values for dimensions {dims:?}",
                bits.len()
            )));
        }
        Ok(Mask { dims, bits })
    }
    /// A mask set where `f(value)` holds.
    pub fn threshold(vol: &Volume, f: impl Fn(f32) -> bool) -> Mask {
        Mask {
            dims: vol.dims(),
            bits: vol.voxels().iter().map(|&v| f(v)).collect(),
        }
    }
    /// `[nx, ny, nz]`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    /// Number of voxels (set or not).
    pub fn len(&self) -> usize {
        self.bits.len()
    }
    /// True when the mask has no voxels at all.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }
    /// The value at a linear index (false outside).
    pub fn get(&self, idx: usize) -> bool {
        self.bits.get(idx).copied().unwrap_or(false)
    }
    /// The value at `[i, j, k]` (false outside).
    pub fn at(&self, v: [usize; 3]) -> bool {
        v[0] < self.dims[0]
            && v[1] < self.dims[1]
            && v[2] < self.dims[2]
            && self.get(index(self.dims, v))
    }
    /// Sets the value at a linear index (ignored outside).
    pub fn set(&mut self, idx: usize, value: bool) {
        if let Some(b) = self.bits.get_mut(idx) {
            *b = value;
        }
    }
    /// Per-voxel values.
    pub fn as_slice(&self) -> &[bool] {
        &self.bits
    }
    /// Per-voxel values, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [bool] {
        &mut self.bits
    }
    /// Number of set voxels.
    pub fn count(&self) -> usize {
        self.bits.iter().filter(|&&b| b).count()
    }
    /// True when no voxel is set.
    pub fn none(&self) -> bool {
        !self.bits.iter().any(|&b| b)
    }
    /// Number of voxels set in both masks.
    pub fn count_and(&self, other: &Mask) -> usize {
        self.bits
            .iter()
            .zip(&other.bits)
            .filter(|&(&a, &b)| a && b)
            .count()
    }
    /// Sets every voxel set in `other`.
    pub fn union_with(&mut self, other: &Mask) {
        for (a, &b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
    }
    /// Keeps only voxels also set in `other`.
    pub fn intersect_with(&mut self, other: &Mask) {
        for (a, &b) in self.bits.iter_mut().zip(&other.bits) {
            *a &= b;
        }
    }
    /// Clears every voxel set in `other`.
    pub fn subtract(&mut self, other: &Mask) {
        for (a, &b) in self.bits.iter_mut().zip(&other.bits) {
            *a &= !b;
        }
    }
    /// The complement.
    pub fn not(&self) -> Mask {
        Mask {
            dims: self.dims,
            bits: self.bits.iter().map(|&b| !b).collect(),
        }
    }
    /// The same mask stored like [`Volume::reorient`] stores a volume.
    pub fn reorient(&self, perm: [usize; 3], flip: [bool; 3]) -> Result<Mask, Error> {
        check_perm(perm)?;
        let (dims, map) = reorient_map(self.dims, perm, flip);
        Ok(Mask {
            dims,
            bits: map.iter().map(|&old| self.bits[old]).collect(),
        })
    }
}

/// Linear index of `v` in a grid of `dims` (x fastest).
pub fn index(dims: [usize; 3], v: [usize; 3]) -> usize {
    v[0] + dims[0] * (v[1] + dims[1] * v[2])
}

/// Voxel coordinates of a linear index in a grid of `dims`.
pub fn coords(dims: [usize; 3], idx: usize) -> [usize; 3] {
    let i = idx % dims[0];
    let rest = idx / dims[0];
    [i, rest % dims[1], rest / dims[1]]
}

/// Dot product.
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn check_perm(perm: [usize; 3]) -> Result<(), Error> {
    let mut seen = [false; 3];
    for &p in &perm {
        if p > 2 || seen[p] {
            return Err(Error::InvalidVolume(format!("axis permutation {perm:?}")));
        }
        seen[p] = true;
    }
    Ok(())
}

/// New dims and, for each new linear index, the old linear index.
fn reorient_map(old: [usize; 3], perm: [usize; 3], flip: [bool; 3]) -> ([usize; 3], Vec<usize>) {
    let dims: [usize; 3] = std::array::from_fn(|a| old[perm[a]]);
    let n = dims.iter().product();
    let mut map = Vec::with_capacity(n);
    for idx in 0..n {
        let v = coords(dims, idx);
        let mut o = [0usize; 3];
        for a in 0..3 {
            o[perm[a]] = if flip[a] { dims[a] - 1 - v[a] } else { v[a] };
        }
        map.push(index(old, o));
    }
    (dims, map)
}

/// Inverse of a 3×3 matrix, `None` when (nearly) singular.
pub(crate) fn invert3(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let scale: f64 = m.iter().flatten().map(|x| x.abs()).fold(0.0, f64::max);
    if !det.is_finite() || det.abs() <= 1e-12 * scale.powi(3).max(1e-300) {
        return None;
    }
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    Some([
        [
            c(1, 1, 2, 2) / det,
            -c(0, 1, 2, 2) / det,
            c(0, 1, 1, 2) / det,
        ],
        [
            -c(1, 0, 2, 2) / det,
            c(0, 0, 2, 2) / det,
            -c(0, 0, 1, 2) / det,
        ],
        [
            c(1, 0, 2, 1) / det,
            -c(0, 0, 2, 1) / det,
            c(0, 0, 1, 1) / det,
        ],
    ])
}
