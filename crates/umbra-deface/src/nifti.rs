//! NIfTI-1 single-file volumes (`.nii`, and `.nii.gz` detected by the gzip magic).
//!
//! Reading: datatypes uint8, int16, uint16, int32, float32, float64; `scl_slope`/`scl_inter`;
//! either byte order; the sform when its code is set, else the qform (quaternion), else the
//! voxel sizes alone. NIfTI's world is RAS+, the volume's is DICOM LPS: x and y change sign.
//! Only the first 3-D volume of a 4-D+ file is read. Every declared size is checked against the
//! bytes present before anything is allocated from it.
//!
//! Writing: int16 when every value is an integer in range, float32 otherwise; sform and qform
//! both set (qform only when the directions are orthonormal).

use crate::volume::{Volume, dot};
use std::io::Read;

/// Header size of NIfTI-1.
const HEADER: usize = 348;
/// Offset of the voxel data in files this module writes (header + 4-byte extension flag).
const DATA_OFFSET: usize = 352;
/// Largest voxel data accepted from a gzip stream (a bound against decompression bombs).
const MAX_GZ_BYTES: u64 = 1 << 31;

/// Why a NIfTI file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NiftiError {
    /// Fewer bytes than the header or the declared voxel data need.
    #[error("truncated: {0}")]
    Truncated(String),
    /// `sizeof_hdr` is not 348 in either byte order (not NIfTI-1).
    #[error("not a NIfTI-1 header (sizeof_hdr {0})")]
    NotNifti(i32),
    /// The magic is not `n+1` (a two-file `ni1` pair or another format).
    #[error("unsupported magic {0:?} (only single-file n+1)")]
    Magic([u8; 4]),
    /// Dimensions missing, zero, negative or too large.
    #[error("bad dimensions: {0}")]
    Dims(String),
    /// A datatype this reader does not handle.
    #[error("unsupported datatype {0}")]
    Datatype(i16),
    /// The affine cannot place voxels (zero or non-finite columns).
    #[error("bad geometry: {0}")]
    Geometry(String),
    /// The gzip stream is damaged.
    #[error("gzip: {0}")]
    Gzip(String),
}

/// Reads a NIfTI-1 volume from the bytes of a `.nii` or `.nii.gz` file.
pub fn read(bytes: &[u8]) -> Result<Volume, NiftiError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::read::MultiGzDecoder::new(bytes);
        let mut head = vec![0u8; DATA_OFFSET];
        let got = read_up_to(&mut dec, &mut head)?;
        head.truncate(got);
        let header = Header::parse(&head)?;
        let need = header.data_end()?;
        if need > MAX_GZ_BYTES {
            return Err(NiftiError::Dims(format!(
                "{need} bytes of voxel data declared"
            )));
        }
        let mut all = head;
        if need > all.len() as u64 {
            let rest = need - all.len() as u64;
            dec.by_ref()
                .take(rest)
                .read_to_end(&mut all)
                .map_err(|e| NiftiError::Gzip(e.to_string()))?;
        }
        decode(&header, &all)
    } else {
        let header = Header::parse(bytes)?;
        decode(&header, bytes)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, NiftiError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NiftiError::Gzip(e.to_string())),
        }
    }
    Ok(got)
}

/// The header fields this module uses.
#[derive(Debug)]
struct Header {
    big_endian: bool,
    dims: [usize; 3],
    datatype: i16,
    pixdim: [f32; 8],
    vox_offset: usize,
    slope: f32,
    inter: f32,
    qform_code: i16,
    sform_code: i16,
    quatern: [f32; 6],
    srow: [[f32; 4]; 3],
}

impl Header {
    fn parse(b: &[u8]) -> Result<Header, NiftiError> {
        if b.len() < HEADER {
            return Err(NiftiError::Truncated(format!(
                "{} bytes, the header needs {HEADER}",
                b.len()
            )));
        }
        let le = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let big_endian = match le {
            348 => false,
            _ if i32::from_be_bytes([b[0], b[1], b[2], b[3]]) == 348 => true,
            other => return Err(NiftiError::NotNifti(other)),
        };
        let r = Fields { b, big_endian };
        let magic = [b[344], b[345], b[346], b[347]];
        if &magic != b"n+1\0" {
            return Err(NiftiError::Magic(magic));
        }
        let dim: [i16; 8] = std::array::from_fn(|i| r.i16(40 + 2 * i));
        if !(1..=7).contains(&dim[0]) {
            return Err(NiftiError::Dims(format!("dim[0] = {}", dim[0])));
        }
        let mut dims = [1usize; 3];
        for (a, d) in dims.iter_mut().enumerate() {
            if (a as i16) < dim[0] {
                let v = dim[a + 1];
                if v < 1 {
                    return Err(NiftiError::Dims(format!("dim[{}] = {v}", a + 1)));
                }
                *d = v as usize;
            }
        }
        let vox = r.f32(108);
        if !vox.is_finite() || vox < HEADER as f32 || vox > 1e9 {
            return Err(NiftiError::Truncated(format!("vox_offset {vox}")));
        }
        Ok(Header {
            big_endian,
            dims,
            datatype: r.i16(70),
            pixdim: std::array::from_fn(|i| r.f32(76 + 4 * i)),
            vox_offset: vox as usize,
            slope: r.f32(112),
            inter: r.f32(116),
            qform_code: r.i16(252),
            sform_code: r.i16(254),
            quatern: std::array::from_fn(|i| r.f32(256 + 4 * i)),
            srow: std::array::from_fn(|row| std::array::from_fn(|c| r.f32(280 + 16 * row + 4 * c))),
        })
    }

    fn bytes_per_voxel(&self) -> Result<usize, NiftiError> {
        Ok(match self.datatype {
            2 => 1,
            4 | 512 => 2,
            8 | 16 => 4,
            64 => 8,
            other => return Err(NiftiError::Datatype(other)),
        })
    }

    fn voxel_count(&self) -> Result<usize, NiftiError> {
        self.dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| NiftiError::Dims(format!("{:?} overflows", self.dims)))
    }

    /// Byte offset just past the first 3-D volume's data.
    fn data_end(&self) -> Result<u64, NiftiError> {
        let n = self.voxel_count()? as u64;
        let bytes = n
            .checked_mul(self.bytes_per_voxel()? as u64)
            .and_then(|x| x.checked_add(self.vox_offset as u64))
            .ok_or_else(|| NiftiError::Dims(format!("{:?} overflows", self.dims)))?;
        Ok(bytes)
    }

    /// Index → RAS affine (3×4).
    fn affine(&self) -> [[f64; 4]; 3] {
        let pd = |i: usize| {
            let v = self.pixdim[i] as f64;
            if v.is_finite() && v > 0.0 { v } else { 1.0 }
        };
        if self.sform_code > 0 {
            return std::array::from_fn(|r| std::array::from_fn(|c| self.srow[r][c] as f64));
        }
        if self.qform_code > 0 {
            let [b, c, d, x, y, z] = self.quatern.map(|v| v as f64);
            let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
            let rot = quat_to_matrix(a, b, c, d);
            let qfac = if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
            let scale = [pd(1), pd(2), qfac * pd(3)];
            let off = [x, y, z];
            return std::array::from_fn(|r| {
                std::array::from_fn(|col| {
                    if col < 3 {
                        rot[r][col] * scale[col]
                    } else {
                        off[r]
                    }
                })
            });
        }
        let s = [pd(1), pd(2), pd(3)];
        std::array::from_fn(|r| std::array::from_fn(|c| if c == r { s[r] } else { 0.0 }))
    }
}

struct Fields<'a> {
    b: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn i16(&self, at: usize) -> i16 {
        let x = [self.b[at], self.b[at + 1]];
        if self.big_endian {
            i16::from_be_bytes(x)
        } else {
            i16::from_le_bytes(x)
        }
    }
    fn f32(&self, at: usize) -> f32 {
        let x = [self.b[at], self.b[at + 1], self.b[at + 2], self.b[at + 3]];
        if self.big_endian {
            f32::from_be_bytes(x)
        } else {
            f32::from_le_bytes(x)
        }
    }
}

fn decode(h: &Header, bytes: &[u8]) -> Result<Volume, NiftiError> {
    let end = h.data_end()?;
    if (bytes.len() as u64) < end {
        return Err(NiftiError::Truncated(format!(
            "{} bytes, the voxel data needs {end}",
            bytes.len()
        )));
    }
    let n = h.voxel_count()?;
    let bpv = h.bytes_per_voxel()?;
    let data = &bytes[h.vox_offset..h.vox_offset + n * bpv];
    let be = h.big_endian;
    let raw: Vec<f64> = match h.datatype {
        2 => data.iter().map(|&v| v as f64).collect(),
        4 => data
            .chunks_exact(2)
            .map(|c| {
                let x = [c[0], c[1]];
                (if be {
                    i16::from_be_bytes(x)
                } else {
                    i16::from_le_bytes(x)
                }) as f64
            })
            .collect(),
        512 => data
            .chunks_exact(2)
            .map(|c| {
                let x = [c[0], c[1]];
                (if be {
                    u16::from_be_bytes(x)
                } else {
                    u16::from_le_bytes(x)
                }) as f64
            })
            .collect(),
        8 => data
            .chunks_exact(4)
            .map(|c| {
                let x = [c[0], c[1], c[2], c[3]];
                (if be {
                    i32::from_be_bytes(x)
                } else {
                    i32::from_le_bytes(x)
                }) as f64
            })
            .collect(),
        16 => data
            .chunks_exact(4)
            .map(|c| {
                let x = [c[0], c[1], c[2], c[3]];
                (if be {
                    f32::from_be_bytes(x)
                } else {
                    f32::from_le_bytes(x)
                }) as f64
            })
            .collect(),
        64 => data
            .chunks_exact(8)
            .map(|c| {
                let x = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
                if be {
                    f64::from_be_bytes(x)
                } else {
                    f64::from_le_bytes(x)
                }
            })
            .collect(),
        other => return Err(NiftiError::Datatype(other)),
    };
    let (slope, inter) = if h.slope.is_finite() && h.slope != 0.0 {
        (
            h.slope as f64,
            if h.inter.is_finite() {
                h.inter as f64
            } else {
                0.0
            },
        )
    } else {
        (1.0, 0.0)
    };
    let voxels = raw
        .into_iter()
        .map(|v| (v * slope + inter) as f32)
        .collect();

    // RAS affine -> LPS: negate the x and y rows.
    let m = h.affine();
    let lps: [[f64; 4]; 3] = std::array::from_fn(|r| {
        let s = if r < 2 { -1.0 } else { 1.0 };
        m[r].map(|v| v * s)
    });
    let mut spacing = [0.0; 3];
    let mut directions = [[0.0; 3]; 3];
    for a in 0..3 {
        let col = [lps[0][a], lps[1][a], lps[2][a]];
        let norm = dot(col, col).sqrt();
        if !norm.is_finite() || norm <= 0.0 {
            return Err(NiftiError::Geometry(format!("axis {a} has length {norm}")));
        }
        spacing[a] = norm;
        directions[a] = col.map(|v| v / norm);
    }
    let origin = [lps[0][3], lps[1][3], lps[2][3]];
    Volume::new(h.dims, voxels, spacing, origin, directions)
        .map_err(|e| NiftiError::Geometry(e.to_string()))
}

/// Rotation matrix of the unit quaternion (a, b, c, d).
fn quat_to_matrix(a: f64, b: f64, c: f64, d: f64) -> [[f64; 3]; 3] {
    [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ]
}

/// Quaternion (b, c, d) and qfac of a rotation-or-reflection matrix with orthonormal columns.
fn matrix_to_quat(m: [[f64; 3]; 3]) -> ([f64; 3], f64) {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let mut r = m;
    let qfac = if det < 0.0 {
        for row in &mut r {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let trace = r11 + r22 + r33 + 1.0;
    let (a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        // The quaternion's scalar part must be non-negative: flip the whole quaternion.
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    ([b, c, d], qfac)
}

/// Writes a volume as NIfTI-1 (`n+1`), gzip-compressed when `gz`. Values are stored as int16
/// when all are integers within its range, else as float32. Fails only when a dimension
/// exceeds NIfTI-1's 32767.
pub fn write(vol: &Volume, gz: bool) -> Result<Vec<u8>, NiftiError> {
    let as_i16 = vol
        .voxels()
        .iter()
        .all(|&v| v.fract() == 0.0 && (i16::MIN as f32..=i16::MAX as f32).contains(&v));
    let dims = vol.dims();
    if dims.iter().any(|&d| d > i16::MAX as usize) {
        return Err(NiftiError::Dims(format!(
            "{dims:?} exceeds NIfTI-1's 32767"
        )));
    }
    let mut h = vec![0u8; DATA_OFFSET];
    let put_i16 =
        |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 =
        |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let dim = [
        3i16,
        dims[0] as i16,
        dims[1] as i16,
        dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    let (datatype, bitpix) = if as_i16 { (4i16, 16i16) } else { (16, 32) };
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, bitpix);

    // LPS index -> world columns, converted to RAS.
    let sp = vol.spacing();
    let dirs = vol.directions();
    let org = vol.origin();
    let ras = |r: usize, v: f64| if r < 2 { -v } else { v };
    let rot: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| ras(r, dirs[c][r])));
    let orthonormal = (0..3).all(|a| {
        (0..3).all(|b| {
            let d = dot(dirs[a], dirs[b]);
            (d - if a == b { 1.0 } else { 0.0 }).abs() < 1e-4
        })
    });
    let (quat, qfac) = matrix_to_quat(rot);
    let pixdim = [
        qfac as f32,
        sp[0] as f32,
        sp[1] as f32,
        sp[2] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p);
    }
    put_f32(&mut h, 108, DATA_OFFSET as f32);
    put_f32(&mut h, 112, 1.0);
    put_f32(&mut h, 116, 0.0);
    h[123] = 2; // xyzt_units: millimetres
    let descrip = b"umbra-deface";
    h[148..148 + descrip.len()].copy_from_slice(descrip);
    if orthonormal {
        put_i16(&mut h, 252, 1); // qform_code: scanner
        for (i, q) in quat.iter().enumerate() {
            put_f32(&mut h, 256 + 4 * i, *q as f32);
        }
        for r in 0..3 {
            put_f32(&mut h, 268 + 4 * r, ras(r, org[r]) as f32);
        }
    }
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for r in 0..3 {
        for c in 0..3 {
            put_f32(&mut h, 280 + 16 * r + 4 * c, (rot[r][c] * sp[c]) as f32);
        }
        put_f32(&mut h, 280 + 16 * r + 12, ras(r, org[r]) as f32);
    }
    h[344..348].copy_from_slice(b"n+1\0");

    let mut out = h;
    out.reserve(vol.len() * if as_i16 { 2 } else { 4 });
    for &v in vol.voxels() {
        if as_i16 {
            out.extend_from_slice(&(v as i16).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    if !gz {
        return Ok(out);
    }
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&out)
        .map_err(|e| NiftiError::Gzip(e.to_string()))?;
    enc.finish().map_err(|e| NiftiError::Gzip(e.to_string()))
}
