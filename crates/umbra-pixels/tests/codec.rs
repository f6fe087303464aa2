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
fn twelve_bit_jpeg_extended_is_unsupported_not_invalid() {
    let fragments = fragments_of("pydicom/JPGExtended.dcm");
    let refs: Vec<&[u8]> = fragments.iter().map(Vec::as_slice).collect();
    let g = Image::new(1024, 256, 1, 16, 12, false, Photometric::Monochrome2, 1);
    match decode("1.2.840.10008.1.2.4.51", &refs, &g) {
        Err(CodecError::Unsupported(s)) => {
            assert!(s.starts_with("1.2.840.10008.1.2.4.51: "), "{s}")
        }
        other => panic!("{other:?}"),
    }
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

// JPEG 2000 (feature `jpeg2000`, on by default) and JPEG-LS (feature `charls`).

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
    assert_eq!(
        can_decode("1.2.840.10008.1.2.4.80"),
        cfg!(feature = "charls")
    );
    assert_eq!(
        can_decode("1.2.840.10008.1.2.4.81"),
        cfg!(feature = "charls")
    );
    assert!(!can_decode("1.2.840.10008.1.2.4.201"));
    assert!(!can_decode("1.2.840.10008.1.2.4.100"));
    for ts in ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80"] {
        if !can_decode(ts) {
            let g = umbra_pixels::templates::mr_small();
            assert!(matches!(
                decode(ts, &[&[0xFF, 0xD8][..]], &g),
                Err(CodecError::Unsupported(_))
            ));
        }
    }
}

#[cfg(feature = "charls")]
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
