//! Mask operations: Euclidean distance transforms (in mm, honouring anisotropic spacing),
//! dilation and erosion by a radius in mm, 6-connected components, hole filling, Otsu's threshold.

use crate::volume::{Mask, coords, index};

/// Squared Euclidean distance in mm² from every voxel to the nearest set voxel of `mask`
/// (0 on set voxels, `f32::INFINITY` everywhere when the mask is empty). Exact, separable
/// (Felzenszwalb and Huttenlocher), linear in the number of voxels.
pub fn distance_sq(mask: &Mask, spacing: [f64; 3]) -> Vec<f32> {
    let dims = mask.dims();
    let mut f: Vec<f64> = mask
        .as_slice()
        .iter()
        .map(|&b| if b { 0.0 } else { f64::INFINITY })
        .collect();
    let maxn = dims.iter().copied().max().unwrap_or(0);
    let mut line = vec![0.0f64; maxn];
    let mut out = vec![0.0f64; maxn];
    let mut v = vec![0usize; maxn];
    let mut z = vec![0.0f64; maxn + 1];
    for axis in 0..3 {
        let n = dims[axis];
        let stride = match axis {
            0 => 1,
            1 => dims[0],
            _ => dims[0] * dims[1],
        };
        let s = spacing[axis];
        let (o1, o2) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for b in 0..dims[o2] {
            for a in 0..dims[o1] {
                let mut start = [0usize; 3];
                start[o1] = a;
                start[o2] = b;
                let base = index(dims, start);
                for (i, l) in line.iter_mut().take(n).enumerate() {
                    *l = f[base + i * stride];
                }
                edt_1d(&line[..n], s, &mut out[..n], &mut v, &mut z);
                for (i, o) in out.iter().take(n).enumerate() {
                    f[base + i * stride] = *o;
                }
            }
        }
    }
    f.into_iter().map(|x| x as f32).collect()
}

/// One line of the lower-envelope distance transform with sample spacing `s`.
fn edt_1d(f: &[f64], s: f64, out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let finite: Vec<usize> = (0..n).filter(|&q| f[q].is_finite()).collect();
    if finite.is_empty() {
        out.iter_mut().for_each(|o| *o = f64::INFINITY);
        return;
    }
    let pos = |q: usize| q as f64 * s;
    let mut k = 0usize;
    v[0] = finite[0];
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for &q in &finite[1..] {
        loop {
            let p = v[k];
            let sect =
                ((f[q] + pos(q) * pos(q)) - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            if sect <= z[k] && k > 0 {
                k -= 1;
            } else if sect <= z[k] {
                // k == 0 and the new parabola dominates from -inf.
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            } else {
                k += 1;
                v[k] = q;
                z[k] = sect;
                z[k + 1] = f64::INFINITY;
                break;
            }
        }
    }
    k = 0;
    for (q, o) in out.iter_mut().enumerate().take(n) {
        while z[k + 1] < pos(q) {
            k += 1;
        }
        let d = pos(q) - pos(v[k]);
        *o = d * d + f[v[k]];
    }
}

/// Voxels within `radius_mm` of the mask (the mask included).
pub fn dilate(mask: &Mask, spacing: [f64; 3], radius_mm: f64) -> Mask {
    if radius_mm <= 0.0 {
        return mask.clone();
    }
    let d = distance_sq(mask, spacing);
    let r2 = (radius_mm * radius_mm) as f32;
    let bits = d.iter().map(|&x| x <= r2).collect();
    Mask::from_vec(mask.dims(), bits).unwrap_or_else(|_| mask.clone())
}

/// Voxels of the mask farther than `radius_mm` from every unset voxel of the grid (the space
/// beyond the grid's border does not erode).
pub fn erode(mask: &Mask, spacing: [f64; 3], radius_mm: f64) -> Mask {
    if radius_mm <= 0.0 {
        return mask.clone();
    }
    let outside = mask.not();
    let d = distance_sq(&outside, spacing);
    let r2 = (radius_mm * radius_mm) as f32;
    let bits = mask
        .as_slice()
        .iter()
        .zip(&d)
        .map(|(&b, &x)| b && x > r2)
        .collect();
    Mask::from_vec(mask.dims(), bits).unwrap_or_else(|_| mask.clone())
}

/// Dilation then erosion by the same radius.
pub fn close(mask: &Mask, spacing: [f64; 3], radius_mm: f64) -> Mask {
    erode(&dilate(mask, spacing, radius_mm), spacing, radius_mm)
}

/// Erosion then dilation by the same radius.
pub fn open(mask: &Mask, spacing: [f64; 3], radius_mm: f64) -> Mask {
    dilate(&erode(mask, spacing, radius_mm), spacing, radius_mm)
}

/// 6-connected components: a label per voxel (0 = not in the mask, 1.. = component) and the
/// size of each component (index 0 unused).
pub fn components(mask: &Mask) -> (Vec<u32>, Vec<usize>) {
    let dims = mask.dims();
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = vec![0usize];
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask.get(start) || labels[start] != 0 {
            continue;
        }
        let label = sizes.len() as u32;
        let mut size = 0usize;
        labels[start] = label;
        stack.push(start);
        while let Some(idx) = stack.pop() {
            size += 1;
            for nb in neighbours(dims, idx) {
                if mask.get(nb) && labels[nb] == 0 {
                    labels[nb] = label;
                    stack.push(nb);
                }
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}

/// The largest 6-connected component (empty when the mask is).
pub fn largest_component(mask: &Mask) -> Mask {
    let (labels, sizes) = components(mask);
    let best = sizes
        .iter()
        .enumerate()
        .skip(1)
        .max_by_key(|&(_, s)| *s)
        .map(|(l, _)| l as u32);
    let bits = labels.iter().map(|&l| Some(l) == best && l != 0).collect();
    Mask::from_vec(mask.dims(), bits).unwrap_or_else(|_| Mask::new(mask.dims()))
}

/// The mask with every cavity not connected (6-connectivity) to the grid border filled.
pub fn fill_holes(mask: &Mask) -> Mask {
    let dims = mask.dims();
    let mut outside = vec![false; mask.len()];
    let mut stack = Vec::new();
    for idx in 0..mask.len() {
        let v = coords(dims, idx);
        let border = (0..3).any(|a| v[a] == 0 || v[a] + 1 == dims[a]);
        if border && !mask.get(idx) {
            outside[idx] = true;
            stack.push(idx);
        }
    }
    while let Some(idx) = stack.pop() {
        for nb in neighbours(dims, idx) {
            if !mask.get(nb) && !outside[nb] {
                outside[nb] = true;
                stack.push(nb);
            }
        }
    }
    let bits = outside.iter().map(|&o| !o).collect();
    Mask::from_vec(dims, bits).unwrap_or_else(|_| mask.clone())
}

/// Hole filling in each 2-D slice perpendicular to `axis` (for cavities open at one end, such
/// as a skull seen slice by slice).
pub fn fill_holes_2d(mask: &Mask, axis: usize) -> Mask {
    let dims = mask.dims();
    let (a1, a2) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let mut out = mask.clone();
    let (n1, n2) = (dims[a1], dims[a2]);
    let mut outside = vec![false; n1 * n2];
    let mut stack = Vec::new();
    for s in 0..dims[axis] {
        let at = |p: usize, q: usize| {
            let mut v = [0usize; 3];
            v[axis] = s;
            v[a1] = p;
            v[a2] = q;
            index(dims, v)
        };
        outside.iter_mut().for_each(|o| *o = false);
        for q in 0..n2 {
            for p in 0..n1 {
                if (p == 0 || q == 0 || p + 1 == n1 || q + 1 == n2) && !mask.get(at(p, q)) {
                    outside[p + n1 * q] = true;
                    stack.push((p, q));
                }
            }
        }
        while let Some((p, q)) = stack.pop() {
            let mut push = |p2: usize, q2: usize| {
                if !mask.get(at(p2, q2)) && !outside[p2 + n1 * q2] {
                    outside[p2 + n1 * q2] = true;
                    stack.push((p2, q2));
                }
            };
            if p > 0 {
                push(p - 1, q);
            }
            if p + 1 < n1 {
                push(p + 1, q);
            }
            if q > 0 {
                push(p, q - 1);
            }
            if q + 1 < n2 {
                push(p, q + 1);
            }
        }
        for q in 0..n2 {
            for p in 0..n1 {
                if !outside[p + n1 * q] {
                    out.set(at(p, q), true);
                }
            }
        }
    }
    out
}

/// The 6 face neighbours of a voxel inside the grid.
pub fn neighbours(dims: [usize; 3], idx: usize) -> impl Iterator<Item = usize> {
    let v = coords(dims, idx);
    let sx = 1;
    let sy = dims[0];
    let sz = dims[0] * dims[1];
    let cand = [
        (v[0] > 0).then(|| idx - sx),
        (v[0] + 1 < dims[0]).then(|| idx + sx),
        (v[1] > 0).then(|| idx - sy),
        (v[1] + 1 < dims[1]).then(|| idx + sy),
        (v[2] > 0).then(|| idx - sz),
        (v[2] + 1 < dims[2]).then(|| idx + sz),
    ];
    cand.into_iter().flatten()
}

/// Otsu's threshold of the values (256-bin histogram between min and max); `None` when there
/// are no finite values or they are all equal.
pub fn otsu(values: impl Iterator<Item = f32> + Clone) -> Option<f32> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for v in values.clone().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    const BINS: usize = 256;
    let mut hist = [0f64; BINS];
    let width = (hi - lo) / BINS as f32;
    for v in values.filter(|v| v.is_finite()) {
        let b = (((v - lo) / width) as usize).min(BINS - 1);
        hist[b] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, h)| i as f64 * h).sum();
    let (mut w0, mut sum0) = (0.0, 0.0);
    let mut best = (0usize, -1.0f64);
    for (i, h) in hist.iter().enumerate() {
        w0 += h;
        sum0 += i as f64 * h;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let m0 = sum0 / w0;
        let m1 = (sum_all - sum0) / w1;
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best.1 {
            best = (i, between);
        }
    }
    Some(lo + width * (best.0 as f32 + 1.0))
}
