//! Round trips through the encoders, decoding with this crate's RLE decoder and with
//! `jpeg-decoder` (an independent implementation) for JPEG; decoding files made by others.

mod common;

use common::{fragments_of, sha256};
use umbra_pixels::background::{Background, fill};
use umbra_pixels::codec::{Codec, CodecError, decode, encode};
use umbra_pixels::{Image, Photometric};

/// Deterministic pseudo-random values within `img`'s bits stored (sign-extended when signed),
/// mixed with flat runs so both PackBits run kinds and every JPEG category appear.
fn scribble(img: &mut Image, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bits = u32::from(img.bits_stored);
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    for f in 0..img.frames {
        for r in 0..img.rows {
            for c in 0..img.columns {
                for s in 0..img.samples {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let mut v = match (x >> 60) % 4 {
                        0 => 0,
                        1 => mask,
                        2 => (u32::from(r) * 7 + u32::from(c) * 3) & mask,
                        _ => (x >> 20) as u32 & mask,
                    };
                    if (c / 5) % 3 == 0 {
                        v = (u32::from(r) * 31) & mask; // flat runs along the row
                    }
                    if img.signed && v & (1 << (bits - 1)) != 0 {
                        v |= !mask;
                    }
                    img.set(f, r, c, s, v);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn image(
    rows: u16,
    cols: u16,
    samples: u16,
    ba: u16,
    bs: u16,
    signed: bool,
    frames: u32,
    seed: u64,
) -> Image {
    let p = if samples == 3 {
        Photometric::Rgb
    } else {
        Photometric::Monochrome2
    };
    let mut img = Image::new(rows, cols, samples, ba, bs, signed, p, frames);
    scribble(&mut img, seed);
    img
}

fn geometries() -> Vec<Image> {
    vec![
        image(1, 1, 1, 8, 8, false, 1, 1),
        image(1, 1, 1, 16, 16, true, 1, 2),
        image(17, 13, 1, 8, 8, false, 1, 3),
        image(9, 31, 1, 16, 12, false, 1, 4),
        image(9, 31, 1, 16, 12, true, 1, 5),
        image(20, 33, 1, 16, 16, true, 3, 6),
        image(20, 33, 1, 16, 16, false, 2, 7),
        image(5, 300, 1, 8, 8, false, 2, 8),
        image(11, 7, 3, 8, 8, false, 2, 9),
        image(3, 5, 1, 8, 6, false, 1, 10),
        image(64, 65, 1, 16, 15, true, 1, 11),
    ]
}

#[test]
fn rle_round_trips_exactly() {
    let mut extra = vec![image(6, 9, 3, 16, 16, false, 2, 20)];
    extra.extend(geometries());
    for img in extra {
        let enc = encode(&img, Codec::RleLossless).unwrap();
        assert_eq!(enc.fragments.len(), img.frames as usize);
        assert_eq!(enc.photometric, img.photometric);
        for f in &enc.fragments {
            assert_eq!(f.len() % 2, 0);
            let segments = u32::from_le_bytes(f[..4].try_into().unwrap());
            assert_eq!(
                segments as usize,
                usize::from(img.samples) * img.bytes_per_sample()
            );
        }
        let refs: Vec<&[u8]> = enc.fragments.iter().map(Vec::as_slice).collect();
        let back = decode(Codec::RleLossless.transfer_syntax(), &refs, &img).unwrap();
        assert_eq!(
            back, img,
            "{}x{}x{} {} bits",
            img.rows, img.columns, img.samples, img.bits_stored
        );
    }
}

#[test]
fn jpeg_lossless_round_trips_exactly_through_jpeg_decoder() {
    for img in geometries() {
        let enc = encode(&img, Codec::JpegLossless).unwrap();
        assert_eq!(enc.fragments.len(), img.frames as usize);
        for f in &enc.fragments {
            assert_eq!(&f[..4], &[0xFF, 0xD8, 0xFF, 0xC3], "SOI SOF3");
            assert_eq!(f[6], img.bits_stored as u8, "precision");
            assert_eq!(f.len() % 2, 0);
        }
        let refs: Vec<&[u8]> = enc.fragments.iter().map(Vec::as_slice).collect();
        let back = decode(Codec::JpegLossless.transfer_syntax(), &refs, &img).unwrap();
        assert_eq!(
            back, img,
            "{}x{}x{} {} bits",
            img.rows, img.columns, img.samples, img.bits_stored
        );
        // Also readable as generic process 14 (.4.57).
        let back = decode("1.2.840.10008.1.2.4.57", &refs, &img).unwrap();
        assert_eq!(back.data, img.data);
    }
}

#[test]
fn jpeg_lossless_stream_decodes_directly_with_jpeg_decoder() {
    // Straight to the independent decoder, bypassing this crate's decode.
    let img = image(40, 23, 1, 16, 16, false, 1, 42);
    let enc = encode(&img, Codec::JpegLossless).unwrap();
    let mut d = jpeg_decoder::Decoder::new(&enc.fragments[0][..]);
    let pixels = d.decode().unwrap();
    let info = d.info().unwrap();
    assert_eq!((info.width, info.height), (23, 40));
    assert_eq!(info.coding_process, jpeg_decoder::CodingProcess::Lossless);
    let values: Vec<u16> = pixels
        .chunks_exact(2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .collect();
    let expected: Vec<u16> = img
        .data
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(values, expected);
}

#[test]
fn jpeg_lossless_compresses_real_looking_images() {
    let mut img = Image::new(256, 256, 1, 16, 16, true, Photometric::Monochrome2, 1);
    fill(&mut img, Background::Ct, 3);
    let enc = encode(&img, Codec::JpegLossless).unwrap();
    assert!(
        enc.fragments[0].len() < img.data.len() * 3 / 4,
        "{}",
        enc.fragments[0].len()
    );
    let refs = [&enc.fragments[0][..]];
    assert_eq!(
        decode(Codec::JpegLossless.transfer_syntax(), &refs, &img).unwrap(),
        img
    );
}

#[test]
fn jpeg_baseline_round_trips_closely() {
    for (samples, photometric) in [(1, Photometric::Monochrome2), (3, Photometric::Rgb)] {
        let mut img = Image::new(48, 70, samples, 8, 8, false, photometric, 2);
        fill(&mut img, Background::Mr, 5);
        let enc = encode(&img, Codec::JpegBaseline { quality: 95 }).unwrap();
        assert!(Codec::JpegBaseline { quality: 95 }.is_lossy());
        let expected_photometric = if samples == 3 {
            Photometric::YbrFull422
        } else {
            photometric
        };
        assert_eq!(enc.photometric, expected_photometric);
        assert_eq!(enc.fragments.len(), 2);
        // As stored: the data set says YBR_FULL_422 for colour.
        let stored = Image {
            photometric: enc.photometric,
            ..img.clone()
        };
        let refs: Vec<&[u8]> = enc.fragments.iter().map(Vec::as_slice).collect();
        let back = decode(
            Codec::JpegBaseline { quality: 95 }.transfer_syntax(),
            &refs,
            &stored,
        )
        .unwrap();
        assert_eq!(back.photometric, photometric);
        assert_eq!(back.data.len(), img.data.len());
        let worst = back
            .data
            .iter()
            .zip(&img.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        let mean: f64 = back
            .data
            .iter()
            .zip(&img.data)
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / img.data.len() as f64;
        assert!(
            mean < 2.0 && worst < 40,
            "samples {samples}: mean {mean}, worst {worst}"
        );
    }
}

#[test]
fn jpeg_baseline_refuses_what_it_cannot_hold() {
    let img = Image::new(8, 8, 1, 16, 12, false, Photometric::Monochrome2, 1);
    assert!(matches!(
        encode(&img, Codec::JpegBaseline { quality: 90 }),
        Err(CodecError::Geometry(_))
    ));
    let img = Image::new(8, 8, 1, 8, 8, false, Photometric::PaletteColor, 1);
    assert!(matches!(
        encode(&img, Codec::JpegBaseline { quality: 90 }),
        Err(CodecError::Geometry(_))
    ));
}

#[test]
fn native_encodes_as_is_and_decodes_with_padding() {
    let img = image(3, 3, 1, 8, 8, false, 1, 77);
    let enc = encode(&img, Codec::Native).unwrap();
    assert_eq!(enc.fragments.len(), 1);
    assert_eq!(enc.fragments[0].len(), 10, "9 bytes padded to even");
    assert_eq!(enc.fragments[0][..9], img.data[..]);
    for ts in [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
    ] {
        assert_eq!(decode(ts, &[&enc.fragments[0]], &img).unwrap(), img);
    }
    assert!(matches!(
        decode("1.2.840.10008.1.2.1", &[&img.data[..8]], &img),
        Err(CodecError::Invalid(_))
    ));
}

#[test]
fn codec_transfer_syntaxes() {
    assert_eq!(Codec::Native.transfer_syntax(), "1.2.840.10008.1.2.1");
    assert_eq!(Codec::RleLossless.transfer_syntax(), "1.2.840.10008.1.2.5");
    assert_eq!(
        Codec::JpegBaseline { quality: 80 }.transfer_syntax(),
        "1.2.840.10008.1.2.4.50"
    );
    assert_eq!(
        Codec::JpegLossless.transfer_syntax(),
        "1.2.840.10008.1.2.4.70"
    );
    assert!(
        !Codec::RleLossless.is_lossy()
            && !Codec::JpegLossless.is_lossy()
            && !Codec::Native.is_lossy()
    );
}

#[test]
fn decode_checks_fragments_against_geometry() {
    let img = image(4, 4, 1, 8, 8, false, 2, 1);
    let enc = encode(&img, Codec::RleLossless).unwrap();
    let one = [&enc.fragments[0][..]];
    assert!(matches!(
        decode("1.2.840.10008.1.2.5", &one, &img),
        Err(CodecError::Invalid(_))
    ));
    // A JPEG whose frame header disagrees with the data set.
    let enc = encode(&img, Codec::JpegLossless).unwrap();
    let refs: Vec<&[u8]> = enc.fragments.iter().map(Vec::as_slice).collect();
    let wrong = Image {
        rows: 5,
        ..img.clone()
    };
    assert!(matches!(
        decode("1.2.840.10008.1.2.4.70", &refs, &wrong),
        Err(CodecError::Invalid(_))
    ));
    // Geometry nobody handles.
    let odd = Image {
        bits_allocated: 12,
        ..img.clone()
    };
    assert!(matches!(
        decode("1.2.840.10008.1.2.5", &refs, &odd),
        Err(CodecError::Geometry(_))
    ));
    // HTJ2K: no decoder in any build
    assert!(matches!(
        decode("1.2.840.10008.1.2.4.201", &refs, &img),
        Err(CodecError::Unsupported(_))
    ));
}

#[test]
fn single_frame_split_over_fragments_is_joined() {
    let img = image(10, 10, 1, 16, 16, false, 1, 5);
    let enc = encode(&img, Codec::JpegLossless).unwrap();
    let f = &enc.fragments[0];
    let (a, b) = f.split_at(f.len() / 2);
    assert_eq!(
        decode("1.2.840.10008.1.2.4.70", &[a, b], &img).unwrap(),
        img
    );
}

// Pixel data written by other software.

#[test]
fn decodes_pydicom_rle_to_the_native_pixels() {
    // MR_small_RLE.dcm decodes (GDCM, by hand) to MR_small.dcm's pixels.
    let fragments = fragments_of("pydicom/MR_small_RLE.dcm");
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = umbra_pixels::templates::mr_small();
    let back = decode("1.2.840.10008.1.2.5", &refs, &g).unwrap();
    assert_eq!(back.data, g.data);
}

#[test]
fn decodes_a_jpeg_lossless_sv1_file_like_dcmtk_and_gdcm() {
    // JPGLosslessP14SV1_1s_1f_8b.dcm: 1024x768, 8 bits. dcmdjpeg and gdcmconv --raw both
    // decode it to pixel data with this sha256 (checked by hand).
    let fragments = fragments_of("pydicom-data/JPGLosslessP14SV1_1s_1f_8b.dcm");
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = Image {
        data: Vec::new(),
        ..Image::new(768, 1024, 1, 8, 8, false, Photometric::Monochrome2, 1)
    };
    let back = decode("1.2.840.10008.1.2.4.70", &refs, &g).unwrap();
    assert_eq!(
        sha256(&back.data),
        "36e27e4f1e87a7d50407463323ddc3736736ecff35eb4e4a4c1b74646938835d"
    );
}

#[test]
fn decodes_a_colour_baseline_file() {
    // examples_ybr_color.dcm: 30 frames of 320x240 YBR_FULL_422 baseline JPEG.
    let fragments = fragments_of("pydicom/examples_ybr_color.dcm");
    assert_eq!(fragments.len(), 30);
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = Image::new(240, 320, 3, 8, 8, false, Photometric::YbrFull422, 30);
    let back = decode("1.2.840.10008.1.2.4.50", &refs, &g).unwrap();
    assert_eq!(back.photometric, Photometric::Rgb);
    assert_eq!(back.data.len(), 240 * 320 * 3 * 30);
    assert!(back.data.iter().any(|&b| b > 100));
}

// JPEG 2000 (feature `jpeg2000`, on by default) and JPEG-LS.

#[cfg(feature = "jpeg2000")]
#[test]
fn decodes_mr_small_jpeg_2000_lossless_bit_for_bit() {
    let g = umbra_pixels::templates::mr_small();
    // the vendored code stream, and the same from the DICOM file
    let vendored = umbra_pixels::templates::mr_small_jpeg_2000();
    let fragments = fragments_of("pydicom/MR_small_jp2klossless.dcm");
    assert_eq!(fragments, vec![vendored.to_vec()]);
    let back = decode("1.2.840.10008.1.2.4.90", &[vendored], &g).unwrap();
    assert_eq!(back.photometric, Photometric::Monochrome2);
    assert_eq!(back.data, g.data);
    // a JP2 file around the same code stream (some writers put one in DICOM)
    let mut jp2 = Vec::new();
    jp2.extend_from_slice(&[0, 0, 0, 12]);
    jp2.extend_from_slice(b"jP  \r\n\x87\n");
    jp2.extend_from_slice(&(8 + vendored.len() as u32).to_be_bytes());
    jp2.extend_from_slice(b"jp2c");
    jp2.extend_from_slice(vendored);
    let back = decode("1.2.840.10008.1.2.4.90", &[&jp2], &g).unwrap();
    assert_eq!(back.data, g.data);
}

#[cfg(feature = "jpeg2000")]
#[test]
fn jpeg_2000_header_must_match_the_data_set() {
    let stream = umbra_pixels::templates::mr_small_jpeg_2000();
    let g = umbra_pixels::templates::mr_small();
    let wrong_size = Image::new(64, 63, 1, 16, 16, true, Photometric::Monochrome2, 1);
    let wrong_samples = Image::new(64, 64, 3, 16, 16, true, Photometric::Rgb, 1);
    let too_narrow = Image::new(64, 64, 1, 8, 8, true, Photometric::Monochrome2, 1);
    for geometry in [wrong_size, wrong_samples, too_narrow] {
        assert!(
            matches!(
                decode("1.2.840.10008.1.2.4.90", &[stream], &geometry),
                Err(CodecError::Invalid(_))
            ),
            "{geometry:?}"
        );
    }
    // truncated, garbage, and a JPEG stream under a JPEG 2000 syntax: errors, never panics
    for bad in [
        &stream[..stream.len() / 2],
        &stream[..40],
        &[0xFF, 0x4F, 0xFF, 0x51, 0, 2][..],
        &[0u8; 64][..],
    ] {
        assert!(decode("1.2.840.10008.1.2.4.91", &[bad], &g).is_err());
    }
}

#[cfg(feature = "jpeg2000")]
#[test]
fn decodes_multi_frame_lossy_and_colour_jpeg_2000_files() {
    // emri_small_jpeg_2k_lossless.dcm: 10 frames of 64x64, 12 bits stored in 16, one code
    // stream per frame.
    let fragments = fragments_of("pydicom-data/emri_small_jpeg_2k_lossless.dcm");
    assert_eq!(fragments.len(), 10);
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = Image::new(64, 64, 1, 16, 12, false, Photometric::Monochrome2, 10);
    let back = decode("1.2.840.10008.1.2.4.90", &refs, &g).unwrap();
    assert_eq!(back.data.len(), 64 * 64 * 2 * 10);
    let samples: Vec<u16> = back
        .data
        .chunks_exact(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .collect();
    assert!(samples.iter().all(|&v| v < 4096));
    assert!(samples.iter().any(|&v| v > 100));
    // frames differ
    assert_ne!(back.data[..8192], back.data[8192 * 9..]);
    // GDCM 3.2.6 (`gdcmconv --raw`, checked by hand) gives pixel data with this sha256; so do
    // the other two below.
    assert_eq!(
        sha256(&back.data),
        "9719c5d0f62ce971a1039c9cd73a6785427f4f80a1d3b6969cb9ffc425fba054"
    );

    // RG1_J2KI.dcm: CR, 1955 rows x 1841 columns, 15 bits stored, lossy (.91).
    let fragments = fragments_of("pydicom-data/RG1_J2KI.dcm");
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = Image::new(1955, 1841, 1, 16, 15, false, Photometric::Monochrome1, 1);
    let back = decode("1.2.840.10008.1.2.4.91", &refs, &g).unwrap();
    assert_eq!(back.data.len(), 1955 * 1841 * 2);
    assert_eq!(back.photometric, Photometric::Monochrome1);
    assert_eq!(
        sha256(&back.data),
        "88aa9135b12d8582316d1db5c45b4c2c55dd1da74c3c52a80a7be49f145c7149"
    );

    // examples_jpeg2k.dcm: US, 480x640 colour, YBR_RCT (the code stream applies the
    // reversible component transform): decodes to RGB.
    let fragments = fragments_of("pydicom/examples_jpeg2k.dcm");
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = Image::new(480, 640, 3, 8, 8, false, Photometric::Rgb, 1);
    let back = decode("1.2.840.10008.1.2.4.90", &refs, &g).unwrap();
    assert_eq!(back.photometric, Photometric::Rgb);
    assert_eq!(back.data.len(), 480 * 640 * 3);
    // not grey: the channels differ somewhere
    assert!(
        back.data
            .chunks_exact(3)
            .any(|p| p[0] != p[1] || p[1] != p[2])
    );
    assert_eq!(
        sha256(&back.data),
        "e16892020c73095e42ff4cf7368de5206f11012e25feaed53cc2bc614602bb9a"
    );
}

#[test]
fn can_decode_follows_the_features() {
    use umbra_pixels::codec::can_decode;
    assert!(can_decode("1.2.840.10008.1.2.4.70"));
    assert!(can_decode("1.2.840.10008.1.2.1\0"));
    assert_eq!(
        can_decode("1.2.840.10008.1.2.4.90"),
        cfg!(feature = "jpeg2000")
    );
    assert_eq!(
        can_decode("1.2.840.10008.1.2.4.91"),
        cfg!(feature = "jpeg2000")
    );
    // JPEG-LS: pure Rust, in every build
    assert!(can_decode("1.2.840.10008.1.2.4.80"));
    assert!(can_decode("1.2.840.10008.1.2.4.81"));
    assert!(!can_decode("1.2.840.10008.1.2.4.201"));
    assert!(!can_decode("1.2.840.10008.1.2.4.100"));
    for ts in ["1.2.840.10008.1.2.4.90"] {
        if !can_decode(ts) {
            let g = umbra_pixels::templates::mr_small();
            assert!(matches!(
                decode(ts, &[&[0xFF, 0xD8][..]], &g),
                Err(CodecError::Unsupported(_))
            ));
        }
    }
}

#[test]
fn decodes_mr_small_jpeg_ls_lossless_bit_for_bit() {
    let g = umbra_pixels::templates::mr_small();
    let vendored = umbra_pixels::templates::mr_small_jpeg_ls();
    let fragments = fragments_of("pydicom/MR_small_jpeg_ls_lossless.dcm");
    assert_eq!(fragments, vec![vendored.to_vec()]);
    let back = decode("1.2.840.10008.1.2.4.80", &[vendored], &g).unwrap();
    assert_eq!(back.data, g.data);
    let wrong = Image::new(64, 63, 1, 16, 16, true, Photometric::Monochrome2, 1);
    assert!(matches!(
        decode("1.2.840.10008.1.2.4.80", &[vendored], &wrong),
        Err(CodecError::Invalid(_))
    ));
    for bad in [
        &vendored[..vendored.len() / 2],
        &vendored[..30],
        &[0u8; 64][..],
    ] {
        assert!(decode("1.2.840.10008.1.2.4.80", &[bad], &g).is_err());
    }
}

/// The geometry a Part 10 file declares (its `data` empty).
fn geometry_of(path: &std::path::Path) -> Image {
    let obj = dicom_object::open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let int = |name: &str| -> u32 {
        obj.element_by_name(name)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .unwrap_or(0)
    };
    let photometric = obj
        .element_by_name("PhotometricInterpretation")
        .unwrap()
        .to_str()
        .unwrap();
    let frames = int("NumberOfFrames").max(1);
    Image {
        data: Vec::new(),
        ..Image::new(
            int("Rows") as u16,
            int("Columns") as u16,
            int("SamplesPerPixel") as u16,
            int("BitsAllocated") as u16,
            int("BitsStored") as u16,
            int("PixelRepresentation") == 1,
            Photometric::parse(photometric.trim()).unwrap(),
            frames,
        )
    }
}

fn run_tool(tool: &str, args: &[&std::ffi::OsStr]) -> bool {
    match std::process::Command::new(tool).args(args).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("{tool} {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => false,
    }
}

/// A scratch folder of its own for a test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("umbra-codec-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Max absolute difference between two buffers of little-endian samples.
fn max_abs_diff(a: &[u8], b: &[u8], bytes: usize) -> u32 {
    assert_eq!(a.len(), b.len());
    a.chunks_exact(bytes)
        .zip(b.chunks_exact(bytes))
        .map(|(x, y)| {
            let v = |s: &[u8]| {
                if bytes == 1 {
                    i64::from(s[0])
                } else {
                    i64::from(u16::from_le_bytes([s[0], s[1]]))
                }
            };
            (v(x) - v(y)).unsigned_abs() as u32
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn jpeg_ls_decodes_like_dcmtk_in_every_mode() {
    // Corpus images encoded by DCMTK's dcmcjpls (CharLS inside) in every interleave mode,
    // lossless and near-lossless, with default and preset (LSE) parameters, and decoded by
    // dcmdjpls: our decoder gives the same pixels, bit for bit. Skipped when DCMTK is absent.
    let dir = scratch("jls-dcmtk");
    let corpus_dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let sources = [
        "pydicom/MR_small.dcm",
        "pydicom/CT_small.dcm",
        "deid-data/us_GREYSCALE_IMAGE.dcm",
        "deid-data/us_RGB_IMAGE.dcm",
        "pydicom-data/gdcm-US-ALOKA-16.dcm",
    ];
    let modes: &[&[&str]] = &[
        &["+el", "+il"],
        &["+el", "+is"],
        &["+el", "+in"],
        &["+en", "+md", "1", "+il"],
        &["+en", "+md", "3", "+is"],
        &["+en", "+md", "2", "+in"],
        &["+el", "+t1", "5", "+t2", "11", "+t3", "40", "+rs", "32"],
        &[
            "+en", "+md", "1", "+t1", "9", "+t2", "20", "+t3", "60", "+rs", "200",
        ],
    ];
    let mut checked = 0;
    let mut expected = 0;
    for src in sources {
        let input = corpus_dir.join(src);
        // dcmcjpls encodes neither signed nor palette pixels near-losslessly
        let g = geometry_of(&input);
        let signed = g.signed || g.photometric == Photometric::PaletteColor;
        for (m, mode) in modes.iter().enumerate() {
            if signed && mode[0] == "+en" {
                continue;
            }
            expected += 1;
            let enc = dir.join(format!("{}-{m}.enc.dcm", checked));
            let dec = dir.join(format!("{}-{m}.dec.dcm", checked));
            let mut args: Vec<&std::ffi::OsStr> = mode.iter().map(std::ffi::OsStr::new).collect();
            args.extend([input.as_os_str(), enc.as_os_str()]);
            if !run_tool("dcmcjpls", &args) {
                eprintln!("dcmcjpls not found: skipped");
                return;
            }
            assert!(run_tool("dcmdjpls", &[enc.as_os_str(), dec.as_os_str()]));
            let file = std::fs::read(&enc).unwrap();
            let common::PixelValue::Fragments(fragments) = common::pixel_data(&file) else {
                panic!("{src} {mode:?}: not encapsulated");
            };
            let reference = match common::pixel_data(&std::fs::read(&dec).unwrap()) {
                common::PixelValue::Native(v) => v,
                common::PixelValue::Fragments(_) => panic!("{src}: dcmdjpls left it encoded"),
            };
            let g = geometry_of(&enc);
            let ts = if mode[0] == "+el" {
                "1.2.840.10008.1.2.4.80"
            } else {
                "1.2.840.10008.1.2.4.81"
            };
            let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
            let back = decode(ts, &refs, &g).unwrap_or_else(|e| panic!("{src} {mode:?}: {e}"));
            assert_eq!(back.data.len(), g.frame_len() * g.frames as usize);
            assert!(
                back.data == reference[..back.data.len()],
                "{src} {mode:?}: differs from dcmdjpls (max {})",
                max_abs_diff(
                    &back.data,
                    &reference[..back.data.len()],
                    g.bytes_per_sample()
                )
            );
            checked += 1;
        }
    }
    assert_eq!(checked, expected);
    std::fs::remove_dir_all(&dir).ok();
}

/// pydicom's own test files folder, when pydicom is installed.
fn pydicom_test_files() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))",
        ])
        .output()
        .ok()?;
    let dir = std::path::PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}

/// Decodes `path` (encapsulated, transfer syntax `ts`) here and with GDCM's
/// `gdcmconv --raw`; returns the max absolute sample difference, or `None` when GDCM is absent.
fn compare_with_gdcm(path: &std::path::Path, ts: &str, dir: &std::path::Path) -> Option<u32> {
    let raw = dir.join(format!(
        "{}.raw.dcm",
        path.file_stem().unwrap().to_string_lossy()
    ));
    if !run_tool(
        "gdcmconv",
        &["--raw".as_ref(), path.as_os_str(), raw.as_os_str()],
    ) {
        return None;
    }
    let common::PixelValue::Fragments(fragments) =
        common::pixel_data(&std::fs::read(path).unwrap())
    else {
        panic!("{}: not encapsulated", path.display());
    };
    let common::PixelValue::Native(reference) = common::pixel_data(&std::fs::read(&raw).unwrap())
    else {
        panic!("{}: gdcmconv left it encoded", path.display());
    };
    let g = geometry_of(path);
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let back = decode(ts, &refs, &g).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = back.data.len();
    assert_eq!(n, g.frame_len() * g.frames as usize);
    Some(max_abs_diff(
        &back.data,
        &reference[..n],
        g.bytes_per_sample(),
    ))
}

#[test]
fn jpeg_ls_decodes_pydicom_files_like_gdcm() {
    // pydicom's JPEG-LS test files (near-lossless 8 and 16 bits, colour near-lossless in line
    // and sample interleave, lossless MR) decode exactly as GDCM 3.2.6 decodes them. Skipped
    // when pydicom or GDCM is absent.
    let Some(files) = pydicom_test_files() else {
        eprintln!("pydicom not found: skipped");
        return;
    };
    let dir = scratch("jls-gdcm");
    for (name, ts) in [
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"),
        ("JPEGLSNearLossless_08.dcm", "1.2.840.10008.1.2.4.81"),
        ("JPEGLSNearLossless_16.dcm", "1.2.840.10008.1.2.4.81"),
        ("SC_rgb_jls_lossy_line.dcm", "1.2.840.10008.1.2.4.81"),
        ("SC_rgb_jls_lossy_sample.dcm", "1.2.840.10008.1.2.4.81"),
    ] {
        let path = files.join(name);
        if !path.is_file() {
            eprintln!("{name} not found: skipped");
            continue;
        }
        match compare_with_gdcm(&path, ts, &dir) {
            Some(d) => assert_eq!(d, 0, "{name}: max difference {d} from gdcmconv --raw"),
            None => {
                eprintln!("gdcmconv not found: skipped");
                return;
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

mod jpeg_ls_garbage {
    use super::*;
    use proptest::prelude::*;

    /// A JPEG-LS header (SOI, SOF55, optional LSE, SOS) for a `w` x `h` image of `nf`
    /// components at `precision` bits, followed by `body` as the entropy-coded data.
    fn stream(w: u16, h: u16, nf: u8, precision: u8, near: u8, ilv: u8, body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, 0xD8, 0xFF, 0xF7];
        s.extend_from_slice(&(8 + 3 * u16::from(nf)).to_be_bytes());
        s.push(precision);
        s.extend_from_slice(&h.to_be_bytes());
        s.extend_from_slice(&w.to_be_bytes());
        s.push(nf);
        for c in 1..=nf {
            s.extend_from_slice(&[c, 0x11, 0]);
        }
        let ns = if ilv == 0 { 1 } else { nf };
        s.extend_from_slice(&[0xFF, 0xDA]);
        s.extend_from_slice(&(6 + 2 * u16::from(ns)).to_be_bytes());
        s.push(ns);
        for c in 1..=ns {
            s.extend_from_slice(&[c, 0]);
        }
        s.extend_from_slice(&[near, ilv, 0]);
        s.extend_from_slice(body);
        s.extend_from_slice(&[0xFF, 0xD9]);
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let g = Image::new(16, 16, 1, 8, 8, false, Photometric::Monochrome2, 1);
            let _ = decode("1.2.840.10008.1.2.4.80", &[&bytes], &g);
            let mut with_soi = vec![0xFF, 0xD8];
            with_soi.extend_from_slice(&bytes);
            let _ = decode("1.2.840.10008.1.2.4.81", &[&with_soi], &g);
        }

        #[test]
        fn random_scan_data_never_panics(
            w in 1u16..40,
            h in 1u16..40,
            three in any::<bool>(),
            precision in 2u8..=16,
            near in 0u8..4,
            ilv in 0u8..3,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let nf = if three { 3 } else { 1 };
            let ilv = if three { ilv } else { 0 };
            let s = stream(w, h, nf, precision, near, ilv, &body);
            let p = if three { Photometric::Rgb } else { Photometric::Monochrome2 };
            let ba = if precision > 8 { 16 } else { 8 };
            let g = Image::new(h, w, u16::from(nf), ba, u16::from(precision), false, p, 1);
            if let Ok(img) = decode("1.2.840.10008.1.2.4.81", &[&s], &g) {
                prop_assert_eq!(img.data.len(), g.frame_len());
            }
        }

        #[test]
        fn damaged_streams_never_panic(
            cuts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            truncate in any::<usize>(),
        ) {
            let g = umbra_pixels::templates::mr_small();
            let mut s = umbra_pixels::templates::mr_small_jpeg_ls().to_vec();
            for (at, v) in cuts {
                let at = at % s.len();
                s[at] = v;
            }
            s.truncate(truncate % (s.len() + 1));
            let _ = decode("1.2.840.10008.1.2.4.80", &[&s], &g);
        }
    }

    #[test]
    fn huge_declared_sizes_are_refused_before_allocating() {
        // 65535 x 65535 x 3 declared in a few bytes: refused by the size check, not attempted
        let s = stream(65535, 65535, 3, 16, 0, 1, &[0; 16]);
        let g = Image {
            rows: 65535,
            columns: 65535,
            samples: 3,
            bits_allocated: 16,
            bits_stored: 16,
            signed: false,
            photometric: Photometric::Rgb,
            frames: 1,
            data: Vec::new(),
        };
        assert!(matches!(
            decode("1.2.840.10008.1.2.4.80", &[&s], &g),
            Err(CodecError::Invalid(_))
        ));
        // a mapping table and a point transform are refused as unsupported
        let mut s = stream(4, 4, 1, 8, 0, 0, &[0; 16]);
        let sos = s.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        s[sos + 6] = 1; // Tm of the scan's component
        let g = Image::new(4, 4, 1, 8, 8, false, Photometric::Monochrome2, 1);
        match decode("1.2.840.10008.1.2.4.80", &[&s], &g) {
            Err(CodecError::Unsupported(m)) => assert!(m.contains("mapping"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(feature = "charls")]
mod jpeg_ls_against_charls {
    //! With the `charls` feature: images encoded by CharLS decode here as CharLS decodes them.
    use super::*;
    use proptest::prelude::*;
    use umbra_pixels::codec::decode_with_charls;

    /// Encodes `img` (one frame, unsigned) with CharLS.
    fn charls_encode(img: &Image, near: i32, mode: charls::InterleaveMode) -> Vec<u8> {
        let (h, w, nc) = (img.rows, img.columns, img.samples);
        let planar = mode == charls::InterleaveMode::None && nc > 1;
        let mut bytes = Vec::new();
        let mut push = |v: u32| {
            if img.bits_stored > 8 {
                bytes.extend_from_slice(&(v as u16).to_ne_bytes());
            } else {
                bytes.push(v as u8);
            }
        };
        if planar {
            for s in 0..nc {
                for r in 0..h {
                    for c in 0..w {
                        push(img.get(0, r, c, s));
                    }
                }
            }
        } else {
            for r in 0..h {
                for c in 0..w {
                    for s in 0..nc {
                        push(img.get(0, r, c, s));
                    }
                }
            }
        }
        let mut codec = charls::CharLS::default();
        if nc > 1 {
            codec.set_interleave_mode(mode).unwrap();
        }
        let info = charls::FrameInfo {
            width: u32::from(w),
            height: u32::from(h),
            bits_per_sample: i32::from(img.bits_stored),
            component_count: i32::from(nc),
        };
        codec.encode(info, near, &bytes).unwrap()
    }

    fn check(img: &Image, near: i32, mode: charls::InterleaveMode) -> Result<(), TestCaseError> {
        let ts = if near == 0 {
            "1.2.840.10008.1.2.4.80"
        } else {
            "1.2.840.10008.1.2.4.81"
        };
        let stream = charls_encode(img, near, mode);
        let ours = decode(ts, &[&stream], img).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let theirs = decode_with_charls(ts, &[&stream], img).unwrap();
        prop_assert!(ours.data == theirs.data, "differs from CharLS");
        let d = max_abs_diff(&ours.data, &img.data, img.bytes_per_sample());
        prop_assert!(d <= near as u32, "{} from the original, NEAR {}", d, near);
        Ok(())
    }

    fn modes() -> impl Strategy<Value = charls::InterleaveMode> {
        prop_oneof![
            Just(charls::InterleaveMode::None),
            Just(charls::InterleaveMode::Line),
            Just(charls::InterleaveMode::Sample),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn charls_streams_decode_like_charls(
            rows in 1u16..48,
            cols in 1u16..48,
            three in any::<bool>(),
            bits in 2u16..=16,
            near in 0i32..5,
            mode in modes(),
            seed in any::<u64>(),
            smooth in any::<bool>(),
        ) {
            let samples = if three { 3 } else { 1 };
            let ba = if bits > 8 { 16 } else { 8 };
            let near = near.min(((1i32 << bits) - 1) / 2);
            let mut img = image(rows, cols, samples, ba, bits, false, 1, seed);
            if smooth {
                // gentle gradients with flat stretches: run mode and small errors
                let max = (1u32 << bits) - 1;
                for r in 0..rows {
                    for c in 0..cols {
                        for s in 0..samples {
                            let v = (u32::from(r / 3) * 5 + u32::from(c / 7) * 3 + u32::from(s)) % (max + 1);
                            img.set(0, r, c, s, v);
                        }
                    }
                }
            }
            check(&img, near, mode)?;
        }
    }

    #[test]
    #[ignore = "a timing, not a check: cargo test --release --features charls -- --ignored"]
    fn jpeg_ls_speed_against_charls() {
        // the 16 MB DX of the corpus, encoded by dcmcjpls, decoded 5 times by each decoder
        let dir = scratch("jls-speed");
        let input = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/corpus/public/deid-data/animals_cat_DX.dcm");
        let enc = dir.join("dx.dcm");
        if !run_tool("dcmcjpls", &[input.as_os_str(), enc.as_os_str()]) {
            return;
        }
        let common::PixelValue::Fragments(fragments) =
            common::pixel_data(&std::fs::read(&enc).unwrap())
        else {
            panic!("not encapsulated");
        };
        let g = geometry_of(&enc);
        let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
        let ts = "1.2.840.10008.1.2.4.80";
        let time = |f: &dyn Fn() -> Image| {
            let t = std::time::Instant::now();
            let mut out = f();
            for _ in 0..4 {
                out = f();
            }
            (t.elapsed() / 5, out)
        };
        let (ours, a) = time(&|| decode(ts, &refs, &g).unwrap());
        let (theirs, b) = time(&|| decode_with_charls(ts, &refs, &g).unwrap());
        assert!(a.data == b.data);
        eprintln!(
            "{}x{} {} bits: pure Rust {ours:?}, CharLS {theirs:?}",
            g.columns, g.rows, g.bits_stored
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn restart_intervals_decode() {
        // A stream with a restart interval of `r` lines is the strips of `r` lines each coded
        // afresh (statistics and the line above reset at every RSTm): strips encoded by
        // CharLS, joined under one header with a DRI segment.
        for (samples, mode, r, bits) in [
            (1u16, charls::InterleaveMode::None, 5u16, 8u16),
            (1, charls::InterleaveMode::None, 1, 12),
            (3, charls::InterleaveMode::Line, 4, 8),
            (3, charls::InterleaveMode::Sample, 7, 16),
        ] {
            let (rows, cols) = (37u16, 29u16);
            let ba = if bits > 8 { 16 } else { 8 };
            let img = image(rows, cols, samples, ba, bits, false, 1, u64::from(r));
            let mut out = Vec::new();
            for (strip_no, top) in (0..rows).step_by(usize::from(r)).enumerate() {
                let h = r.min(rows - top);
                let mut strip = Image::new(h, cols, samples, ba, bits, false, img.photometric, 1);
                let row_len = img.frame_len() / usize::from(rows);
                strip.data =
                    img.data[usize::from(top) * row_len..usize::from(top + h) * row_len].to_vec();
                let s = charls_encode(&strip, 0, mode);
                let sos = s.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
                let sos_len = usize::from(u16::from_be_bytes([s[sos + 2], s[sos + 3]]));
                assert_eq!(&s[s.len() - 2..], &[0xFF, 0xD9]);
                let entropy = &s[sos + 2 + sos_len..s.len() - 2];
                if strip_no == 0 {
                    let mut head = s[..sos + 2 + sos_len].to_vec();
                    let sof = head.windows(2).position(|w| w == [0xFF, 0xF7]).unwrap();
                    head[sof + 5..sof + 7].copy_from_slice(&rows.to_be_bytes());
                    let mut dri = vec![0xFF, 0xDD, 0, 4];
                    dri.extend_from_slice(&r.to_be_bytes());
                    head.splice(sos..sos, dri);
                    out.extend_from_slice(&head);
                } else {
                    out.extend_from_slice(&[0xFF, 0xD0 + ((strip_no - 1) % 8) as u8]);
                }
                out.extend_from_slice(entropy);
            }
            out.extend_from_slice(&[0xFF, 0xD9]);
            let back = decode("1.2.840.10008.1.2.4.80", &[&out], &img)
                .unwrap_or_else(|e| panic!("{samples} samples, {mode:?}, r {r}: {e}"));
            assert!(back.data == img.data, "{samples} samples, {mode:?}, r {r}");
            // and CharLS agrees that this is the image
            let theirs = decode_with_charls("1.2.840.10008.1.2.4.80", &[&out], &img).unwrap();
            assert!(
                theirs.data == img.data,
                "CharLS: {samples} samples, {mode:?}, r {r}"
            );
        }
    }
}

/// Decodes `path` (encapsulated, transfer syntax `ts`) here and with DCMTK's `dcmdjpeg`;
/// returns the max absolute sample difference, or `None` when DCMTK is absent.
fn compare_with_dcmdjpeg(path: &std::path::Path, dir: &std::path::Path) -> Option<u32> {
    let raw = dir.join(format!(
        "{}.dcmdjpeg.dcm",
        path.file_stem().unwrap().to_string_lossy()
    ));
    if !run_tool("dcmdjpeg", &[path.as_os_str(), raw.as_os_str()]) {
        return None;
    }
    let common::PixelValue::Fragments(fragments) =
        common::pixel_data(&std::fs::read(path).unwrap())
    else {
        panic!("{}: not encapsulated", path.display());
    };
    let common::PixelValue::Native(reference) = common::pixel_data(&std::fs::read(&raw).unwrap())
    else {
        panic!("{}: dcmdjpeg left it encoded", path.display());
    };
    let g = geometry_of(path);
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let back = decode("1.2.840.10008.1.2.4.51", &refs, &g)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = back.data.len();
    assert_eq!(n, g.frame_len() * g.frames as usize);
    Some(max_abs_diff(
        &back.data,
        &reference[..n],
        g.bytes_per_sample(),
    ))
}

#[test]
fn twelve_bit_jpeg_extended_decodes_like_dcmtk_and_gdcm() {
    // 12-bit JPEG extended (process 4): pydicom's JPGExtended.dcm (NM, 1024x256) and
    // JPEG-lossy.dcm, and corpus images encoded by DCMTK's dcmcjpeg +ee (12-bit multi-frame
    // MR; 8-bit grey and colour forced to 12 bits, colour 4:4:4, 4:2:2 and 4:1:1), decoded
    // here and by dcmdjpeg and gdcmconv --raw (both libjpeg with its integer IDCT). Skipped
    // when the tools are absent.
    let dir = scratch("jpeg12");
    let corpus_dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut files = vec![corpus_dir.join("pydicom/JPGExtended.dcm")];
    if let Some(p) = pydicom_test_files() {
        files.push(p.join("JPEG-lossy.dcm"));
    }
    let emri = dir.join("emri_raw.dcm");
    if run_tool(
        "gdcmconv",
        &[
            "--raw".as_ref(),
            corpus_dir
                .join("pydicom-data/emri_small_jpeg_2k_lossless.dcm")
                .as_os_str(),
            emri.as_os_str(),
        ],
    ) {
        let grey = corpus_dir.join("deid-data/us_GREYSCALE_IMAGE.dcm");
        let rgb = corpus_dir.join("deid-data/us_RGB_IMAGE.dcm");
        for (name, src, opts) in [
            ("emri_ee", &emri, &["+ee"][..]),
            ("emri_ee_q50", &emri, &["+ee", "+q", "50"][..]),
            ("grey_ee", &grey, &["+ee", "+bt"][..]),
            ("rgb_ee_444", &rgb, &["+ee", "+bt", "+s4"][..]),
            ("rgb_ee_422", &rgb, &["+ee", "+bt", "+s2"][..]),
            ("rgb_ee_411", &rgb, &["+ee", "+bt", "+n1"][..]),
        ] {
            let out = dir.join(format!("{name}.dcm"));
            let mut args: Vec<&std::ffi::OsStr> = opts.iter().map(std::ffi::OsStr::new).collect();
            args.extend([src.as_os_str(), out.as_os_str()]);
            if run_tool("dcmcjpeg", &args) {
                files.push(out);
            }
        }
    }
    let mut seen = 0;
    for path in &files {
        if !path.is_file() {
            continue;
        }
        let g = geometry_of(path);
        let name = path.file_name().unwrap().to_string_lossy();
        if let Some(d) = compare_with_dcmdjpeg(path, &dir) {
            eprintln!("{name}: max difference from dcmdjpeg {d}");
            // IDCTs differ by one; colour adds the YCbCr to RGB conversion of three such
            // differences
            let tolerance = if g.samples == 3 { 3 } else { 1 };
            assert!(d <= tolerance, "{name}: {d} from dcmdjpeg");
            seen += 1;
        }
        if g.samples == 1 {
            if let Some(d) = compare_with_gdcm(path, "1.2.840.10008.1.2.4.51", &dir) {
                eprintln!("{name}: max difference from gdcmconv {d}");
                assert!(d <= 1, "{name}: {d} from gdcmconv");
            }
        }
    }
    eprintln!("{seen} files compared");
    if seen > 0 {
        assert!(seen >= 7, "{seen}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

mod jpeg12_garbage {
    use super::*;
    use proptest::prelude::*;

    fn stream() -> Vec<u8> {
        fragments_of("pydicom/JPGExtended.dcm").remove(0)
    }

    fn geometry() -> Image {
        Image::new(1024, 256, 1, 16, 12, false, Photometric::Monochrome2, 1)
    }

    #[test]
    fn header_must_match_and_damage_is_an_error() {
        let s = stream();
        let ok = decode("1.2.840.10008.1.2.4.51", &[&s], &geometry()).unwrap();
        assert!(
            ok.data
                .chunks_exact(2)
                .all(|w| u16::from_le_bytes([w[0], w[1]]) < 4096)
        );
        let wrong = Image::new(1024, 255, 1, 16, 12, false, Photometric::Monochrome2, 1);
        assert!(matches!(
            decode("1.2.840.10008.1.2.4.51", &[&s], &wrong),
            Err(CodecError::Invalid(_))
        ));
        let narrow = Image::new(1024, 256, 1, 8, 8, false, Photometric::Monochrome2, 1);
        assert!(decode("1.2.840.10008.1.2.4.51", &[&s], &narrow).is_err());
        for bad in [
            &s[..s.len() / 2],
            &s[..200],
            &[0xFF, 0xD8, 0xFF, 0xC1, 0, 2][..],
        ] {
            assert!(decode("1.2.840.10008.1.2.4.51", &[bad], &geometry()).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn damaged_streams_never_panic(
            cuts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            truncate in any::<usize>(),
        ) {
            let mut s = stream();
            // damage the headers more often than the scan data
            for (at, v) in cuts {
                let at = if at % 2 == 0 { at % 200 } else { at % s.len() };
                s[at] = v;
            }
            s.truncate(truncate % (s.len() + 1));
            let _ = decode("1.2.840.10008.1.2.4.51", &[&s], &geometry());
        }

        #[test]
        fn random_scan_data_never_panics(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let s = stream();
            let sos = s.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
            let len = usize::from(u16::from_be_bytes([s[sos + 2], s[sos + 3]]));
            let mut t = s[..sos + 2 + len].to_vec();
            t.extend_from_slice(&body);
            t.extend_from_slice(&[0xFF, 0xD9]);
            let _ = decode("1.2.840.10008.1.2.4.51", &[&t], &geometry());
        }
    }
}
