//! The template code streams are what the data README says they are.

mod common;

use common::{fragments_of, native_of, sha256};
use umbra_pixels::{Photometric, templates};

#[test]
fn mr_small_native_is_the_corpus_file_pixels() {
    let img = templates::mr_small();
    assert_eq!((img.rows, img.columns, img.samples), (64, 64, 1));
    assert_eq!(
        (img.bits_allocated, img.bits_stored, img.signed),
        (16, 16, true)
    );
    assert_eq!(img.photometric, Photometric::Monochrome2);
    assert_eq!(img.data, native_of("pydicom/MR_small.dcm"));
    assert_eq!(
        sha256(&img.data),
        "88617aaa46138fb1b6e2a951e762d962382354d69f47f8c04d4abff2f6a6a63e"
    );
}

#[test]
fn jpeg_ls_stream_is_the_corpus_fragment() {
    let jls = templates::mr_small_jpeg_ls();
    // SOI, then SOF55 (JPEG-LS) with precision 16, 64 lines, 64 columns, 1 component.
    assert_eq!(&jls[..4], &[0xFF, 0xD8, 0xFF, 0xF7]);
    assert_eq!(&jls[6..12], &[16, 0, 64, 0, 64, 1]);
    assert_eq!(&jls[jls.len() - 2..], &[0xFF, 0xD9]);
    assert_eq!(
        fragments_of("pydicom/MR_small_jpeg_ls_lossless.dcm"),
        vec![jls.to_vec()]
    );
    assert_eq!(
        sha256(jls),
        "cf77b7f0a30db2471c23c11f2412af133f7e7c645e037dc1937d00d7a5e0ad91"
    );
}

#[test]
fn jpeg_2000_stream_is_the_corpus_fragment() {
    let j2k = templates::mr_small_jpeg_2000();
    // SOC, SIZ; the SIZ image size is 64x64.
    assert_eq!(&j2k[..4], &[0xFF, 0x4F, 0xFF, 0x51]);
    assert_eq!(&j2k[8..16], &[0, 0, 0, 64, 0, 0, 0, 64]);
    assert_eq!(&j2k[j2k.len() - 2..], &[0xFF, 0xD9]);
    assert_eq!(
        fragments_of("pydicom/MR_small_jp2klossless.dcm"),
        vec![j2k.to_vec()]
    );
    assert_eq!(
        sha256(j2k),
        "aa53e2ba8f6abfd621c67d30f414a5db87685dfa47ea560b1445558749ba1059"
    );
}

#[test]
fn template_syntaxes_decode_exactly_or_are_refused() {
    // JPEG 2000 is decoded with the jpeg2000 feature (on by default), JPEG-LS always
    use umbra_pixels::codec::{CodecError, can_decode, decode};
    let g = templates::mr_small();
    for (ts, stream) in [
        (templates::JPEG_LS_LOSSLESS, templates::mr_small_jpeg_ls()),
        (
            templates::JPEG_2000_LOSSLESS,
            templates::mr_small_jpeg_2000(),
        ),
    ] {
        match decode(ts, &[stream], &g) {
            Ok(img) if can_decode(ts) => assert_eq!(img.data, g.data, "{ts}"),
            Err(CodecError::Unsupported(s)) if !can_decode(ts) => assert_eq!(s, ts),
            other => panic!("{ts}: {other:?}"),
        }
    }
}
