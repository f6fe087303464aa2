//! The generator's promises about pixels: stored images decode to the pixels the key names,
//! burned-in text is there to find (through lossy JPEG too), and generation does not depend on
//! the number of threads.

use dicom_core::Tag;
use dicom_core::value::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;
use umbra_synth::key::{FileKind, Key};
use umbra_synth::{Options, Profile, generate};

fn make(patients: usize, seed: u64, profile: Profile) -> (Key, BTreeMap<String, Vec<u8>>) {
    let files = Mutex::new(BTreeMap::new());
    let sink = |rel: &str, bytes: &[u8]| -> std::io::Result<()> {
        files.lock().unwrap().insert(rel.to_owned(), bytes.to_vec());
        Ok(())
    };
    let opts = Options {
        patients,
        seed,
        profile,
        version: "test".into(),
    };
    let key = generate(&opts, &sink).unwrap();
    (key, files.into_inner().unwrap())
}

/// The stored pixel data of a Part 10 file, decoded.
fn decode(bytes: &[u8], px: &umbra_synth::key::Pixels) -> Option<umbra_pixels::Image> {
    let obj = dicom_object::OpenFileOptions::new()
        .from_reader(&bytes[128..])
        .unwrap();
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    let e = obj.element(Tag(0x7FE0, 0x0010)).unwrap();
    let geometry = umbra_pixels::Image {
        rows: px.rows,
        columns: px.columns,
        samples: px.samples,
        bits_allocated: px.bits_allocated,
        bits_stored: px.bits_allocated,
        signed: false,
        photometric: umbra_pixels::Photometric::parse(&px.photometric).unwrap(),
        frames: px.frames,
        data: Vec::new(),
    };
    let native;
    let frags: Vec<&[u8]> = match e.value() {
        Value::PixelSequence(s) => s.fragments().iter().map(Vec::as_slice).collect(),
        Value::Primitive(p) => {
            native = match p {
                dicom_core::PrimitiveValue::U16(w) => {
                    w.iter().flat_map(|x| x.to_le_bytes()).collect()
                }
                other => other.to_bytes().into_owned(),
            };
            return umbra_pixels::codec::decode("1.2.840.10008.1.2.1", &[&native], &geometry).ok();
        }
        Value::Sequence(_) => return None,
    };
    umbra_pixels::codec::decode(&ts, &frags, &geometry).ok()
}

#[test]
fn stored_pixels_decode_to_what_the_key_says_and_burned_text_is_there() {
    let (key, files) = make(8, 21, Profile::Small);
    let (mut checked, mut boxes, mut lossy_boxes) = (0, 0, 0);
    for f in key.files.iter().filter(|f| f.kind == FileKind::Dicom) {
        let Some(px) = &f.pixels else { continue };
        let bytes = &files[&f.path];
        let ts = f.dicom.as_ref().unwrap().transfer_syntax.as_str();
        let Some(img) = decode(bytes, px) else {
            // no pure-Rust decoder: only the vendored JPEG-LS and JPEG 2000 streams
            assert!(
                ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"].contains(&ts),
                "{} ({ts}) does not decode",
                f.path
            );
            continue;
        };
        if let Some(native) = &px.native_sha256 {
            assert_eq!(
                &hex::encode(Sha256::digest(&img.data)),
                native,
                "{}",
                f.path
            );
            checked += 1;
        }
        for b in &f.burned_in {
            boxes += 1;
            lossy_boxes += usize::from(px.lossy);
            assert!(
                b.ink_pixels > b.background_pixels + 20,
                "{}: text drawn",
                f.path
            );
            let floor = b.ink.saturating_sub(32);
            let frames: Vec<u32> = b.frame.map_or((0..img.frames).collect(), |k| vec![k]);
            for fr in frames {
                let mut n = 0;
                for row in b.y..b.y + b.height {
                    for col in b.x..b.x + b.width {
                        if (0..img.samples).all(|s| img.get(fr, row, col, s) >= floor) {
                            n += 1;
                        }
                    }
                }
                // what the scorer calls "still there": at least half the ink
                assert!(
                    n >= b.background_pixels + (b.ink_pixels - b.background_pixels) / 2,
                    "{} frame {fr}: {n} of {} ink pixels after decoding",
                    f.path,
                    b.ink_pixels
                );
            }
        }
    }
    assert!(checked > 40, "{checked}");
    assert!(
        boxes >= 48 && lossy_boxes >= 12,
        "{boxes} boxes, {lossy_boxes} lossy"
    );
}

#[test]
fn generation_is_the_same_on_one_thread_and_many() {
    let (k1, f1) = make(5, 3, Profile::Small);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (k2, f2) = pool.install(|| make(5, 3, Profile::Small));
    assert_eq!(f1, f2);
    assert_eq!(
        serde_json::to_string(&k1).unwrap(),
        serde_json::to_string(&k2).unwrap()
    );
}

#[test]
fn the_throughput_profile_makes_512_by_512_ct_slices() {
    let (key, files) = make(2, 1, Profile::Ct512 { slices: 3 });
    assert_eq!(key.files.len(), 6);
    for f in &key.files {
        let px = f.pixels.as_ref().unwrap();
        assert_eq!((px.rows, px.columns, px.bits_allocated), (512, 512, 16));
        assert!(files[&f.path].len() > 512 * 512 * 2);
        assert!(!f.plants.is_empty());
    }
}

#[test]
fn the_ultrasound_profile_makes_640_by_480_frames_with_text_and_no_flag() {
    let (key, files) = make(2, 1, Profile::Us640 { frames: 4 });
    assert_eq!(key.files.len(), 8);
    let mut frames = 0;
    for f in &key.files {
        let px = f.pixels.as_ref().unwrap();
        assert_eq!((px.rows, px.columns, px.samples), (480, 640, 3));
        frames += px.frames;
        assert_eq!(f.burned_in.len(), 3, "name, MRN and birth date");
        assert_eq!(f.expect, umbra_synth::key::Expect::HoldBack);
        let obj = dicom_object::OpenFileOptions::new()
            .from_reader(&files[&f.path][128..])
            .unwrap();
        assert!(
            obj.element(Tag(0x0028, 0x0301)).is_err(),
            "no Burned In Annotation"
        );
    }
    assert_eq!(frames, 2 * (3 + 4));
}
