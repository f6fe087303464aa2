//! NIfTI-1 reading and writing: round trips, nibabel interoperability, bad input.
#![allow(clippy::needless_range_loop)]

use proptest::prelude::*;
use std::process::Command;
use umbra_deface::Volume;
use umbra_deface::nifti::{self, NiftiError};

/// A small volume with an oblique, left-handed-in-RAS geometry.
fn sample(integral: bool) -> Volume {
    let dims = [7, 5, 4];
    let n = 7 * 5 * 4;
    let voxels = (0..n)
        .map(|i| {
            let v = (i as f32 * 37.0) % 400.0 - 120.0;
            if integral { v.round() } else { v + 0.25 }
        })
        .collect();
    let (c, s) = (0.3f64.cos(), 0.3f64.sin());
    Volume::new(
        dims,
        voxels,
        [0.8, 1.1, 2.5],
        [-12.5, 30.25, 7.0],
        [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
    )
    .expect("valid sample")
}

fn assert_same_geometry(a: &Volume, b: &Volume) {
    assert_eq!(a.dims(), b.dims());
    for i in 0..3 {
        assert!(
            (a.spacing()[i] - b.spacing()[i]).abs() < 1e-4,
            "spacing {i}"
        );
        assert!((a.origin()[i] - b.origin()[i]).abs() < 1e-3, "origin {i}");
        for j in 0..3 {
            assert!(
                (a.directions()[i][j] - b.directions()[i][j]).abs() < 1e-5,
                "direction {i} {j}: {:?} vs {:?}",
                a.directions(),
                b.directions()
            );
        }
    }
}

#[test]
fn round_trip_int16_and_float32_plain_and_gz() {
    for integral in [true, false] {
        let v = sample(integral);
        for gz in [false, true] {
            let bytes = nifti::write(&v, gz).expect("writes");
            assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), gz);
            let back = nifti::read(&bytes).expect("reads back");
            assert_same_geometry(&v, &back);
            assert_eq!(v.voxels(), back.voxels());
        }
    }
}

#[test]
fn reversed_axes_round_trip() {
    let v = sample(true)
        .reorient([2, 0, 1], [true, false, true])
        .expect("reorients");
    let back = nifti::read(&nifti::write(&v, false).expect("writes")).expect("reads");
    assert_same_geometry(&v, &back);
    assert_eq!(v.voxels(), back.voxels());
}

fn python_with_nibabel() -> bool {
    match Command::new("python3")
        .args(["-c", "import nibabel, numpy"])
        .output()
    {
        Ok(o) if o.status.success() => true,
        _ => {
            println!("SKIPPED: python3 with nibabel (pip install nibabel) is not available");
            false
        }
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("umbra-deface-{}-{name}", std::process::id()))
}

#[test]
fn reads_files_written_by_nibabel() {
    if !python_with_nibabel() {
        return;
    }
    for (name, dtype, gz) in [
        ("i16.nii.gz", "int16", true),
        ("u8.nii", "uint8", false),
        ("f64.nii", "float64", false),
        ("u16.nii.gz", "uint16", true),
        ("i32.nii", "int32", false),
        ("f32be.nii", ">f4", false),
    ] {
        let path = temp_path(name);
        let script = format!(
            r#"
import numpy as np, nibabel as nib
data = (np.arange(6*5*4).reshape((6,5,4), order='F') % 97).astype('{dtype}')
aff = np.array([[0.0, -1.2, 0.3, 10.0], [0.9, 0.0, 0.0, -20.5], [0.0, 0.1, 2.0, 33.0], [0, 0, 0, 1]])
img = nib.Nifti1Image(data, aff)
img.header.set_qform(aff, code=1)
img.header.set_sform(aff, code=2)
if '{dtype}' == 'int16':
    img.header.set_slope_inter(0.5, -3.0)
nib.save(img, r'{path}')
"#,
            path = path.display()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("runs python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&path).expect("reads file");
        let _ = std::fs::remove_file(&path);
        assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), gz, "{name}");
        let v = nifti::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.dims(), [6, 5, 4]);
        // Data: x fastest, values as numpy wrote them, scaled for the int16 case.
        for (i, &x) in v.voxels().iter().enumerate() {
            let raw = (i % 97) as f32;
            let want = if dtype == "int16" {
                raw * 0.5 - 3.0
            } else {
                raw
            };
            assert_eq!(x, want, "{name} voxel {i}");
        }
        // Affine: RAS columns -> LPS (x and y negated).
        let ras = [
            [0.0, -1.2, 0.3, 10.0],
            [0.9, 0.0, 0.0, -20.5],
            [0.0, 0.1, 2.0, 33.0],
        ];
        for a in 0..3 {
            let col: Vec<f64> = (0..3)
                .map(|r| ras[r][a] * if r < 2 { -1.0 } else { 1.0 })
                .collect();
            let norm = col.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((v.spacing()[a] - norm).abs() < 1e-5, "{name} spacing {a}");
            for r in 0..3 {
                assert!(
                    (v.directions()[a][r] - col[r] / norm).abs() < 1e-5,
                    "{name} dir {a} {r}"
                );
            }
        }
        assert!((v.origin()[0] + 10.0).abs() < 1e-4 && (v.origin()[1] - 20.5).abs() < 1e-4);
        assert!((v.origin()[2] - 33.0).abs() < 1e-4);
    }
}

#[test]
fn nibabel_reads_what_we_write() {
    if !python_with_nibabel() {
        return;
    }
    for (integral, gz) in [(true, true), (false, false)] {
        let v = sample(integral);
        let path = temp_path(if gz { "w.nii.gz" } else { "w.nii" });
        std::fs::write(&path, nifti::write(&v, gz).expect("writes")).expect("writes file");
        let script = format!(
            r#"
import json, numpy as np, nibabel as nib
img = nib.load(r'{path}')
d = np.asarray(img.dataobj, dtype=np.float64)
q = img.get_qform(); s = img.get_sform()
print(json.dumps({{"shape": list(d.shape), "data": d.flatten(order='F').tolist(),
  "sform": s.tolist(), "qform": q.tolist(), "dtype": str(img.get_data_dtype())}}))
"#,
            path = path.display()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("runs python");
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |key: &str| -> Vec<f64> {
            let start = text.find(&format!("\"{key}\": ")).expect("key") + key.len() + 4;
            let mut depth = 0;
            let mut end = start;
            for (i, ch) in text[start..].char_indices() {
                match ch {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            end = start + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            text[start..end]
                .split(|c: char| c == ',' || c == '[' || c == ']' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<f64>().expect("number"))
                .collect()
        };
        assert_eq!(field("shape"), vec![7.0, 5.0, 4.0]);
        assert!(text.contains(if integral { "\"int16\"" } else { "\"float32\"" }));
        let data = field("data");
        for (a, b) in data.iter().zip(v.voxels()) {
            assert!((a - *b as f64).abs() < 1e-6);
        }
        for key in ["sform", "qform"] {
            let m = field(key);
            for r in 0..3 {
                let sgn = if r < 2 { -1.0 } else { 1.0 };
                for c in 0..3 {
                    let want = sgn * v.directions()[c][r] * v.spacing()[c];
                    assert!(
                        (m[4 * r + c] - want).abs() < 1e-4,
                        "{key} [{r}][{c}] {} vs {want}",
                        m[4 * r + c]
                    );
                }
                assert!(
                    (m[4 * r + 3] - sgn * v.origin()[r]).abs() < 1e-3,
                    "{key} offset {r}"
                );
            }
        }
    }
}

fn valid_header_bytes() -> Vec<u8> {
    nifti::write(&sample(true), false).expect("writes")
}

#[test]
fn truncated_and_malformed_inputs_are_errors() {
    let good = valid_header_bytes();
    assert!(matches!(
        nifti::read(&good[..100]),
        Err(NiftiError::Truncated(_))
    ));
    assert!(matches!(
        nifti::read(&good[..good.len() - 1]),
        Err(NiftiError::Truncated(_))
    ));
    let mut bad = good.clone();
    bad[0..4].copy_from_slice(&349i32.to_le_bytes());
    assert!(matches!(nifti::read(&bad), Err(NiftiError::NotNifti(349))));
    let mut bad = good.clone();
    bad[344..348].copy_from_slice(b"ni1\0");
    assert!(matches!(nifti::read(&bad), Err(NiftiError::Magic(_))));
    let mut bad = good.clone();
    bad[70..72].copy_from_slice(&128i16.to_le_bytes()); // RGB24
    assert!(matches!(nifti::read(&bad), Err(NiftiError::Datatype(128))));
    let mut bad = good.clone();
    bad[42..44].copy_from_slice(&(-3i16).to_le_bytes());
    assert!(matches!(nifti::read(&bad), Err(NiftiError::Dims(_))));
}

#[test]
fn huge_declared_dimensions_fail_without_allocating() {
    let mut huge = valid_header_bytes();
    huge.truncate(352 + 16);
    for i in 1..=7 {
        huge[40 + 2 * i..42 + 2 * i].copy_from_slice(&i16::MAX.to_le_bytes());
    }
    huge[40..42].copy_from_slice(&7i16.to_le_bytes());
    huge[70..72].copy_from_slice(&64i16.to_le_bytes());
    assert!(nifti::read(&huge).is_err());
    // The same header gzip-compressed: refused before any voxel data is inflated.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &huge).expect("compresses");
    let gz = enc.finish().expect("compresses");
    assert!(nifti::read(&gz).is_err());
    // Three large dimensions: 32767³ × 8 bytes is 281 TB, refused as too large.
    huge[40..42].copy_from_slice(&3i16.to_le_bytes());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &huge).expect("compresses");
    assert!(matches!(
        nifti::read(&enc.finish().expect("compresses")),
        Err(NiftiError::Dims(_))
    ));
    // Damaged gzip.
    assert!(nifti::read(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = nifti::read(&bytes);
    }

    #[test]
    fn mutated_headers_never_panic(edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..12)) {
        let mut bytes = valid_header_bytes();
        for (at, v) in edits {
            if at < bytes.len() {
                bytes[at] = v;
            }
        }
        let _ = nifti::read(&bytes);
    }
}
