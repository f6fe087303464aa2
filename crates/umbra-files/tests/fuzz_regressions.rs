//! Inputs the fuzz target (`fuzz/`) found crashing or producing unreadable output, replayed
//! through the same steps: parse → scan → de-identify → gate → write → parse again. Byte 0 selects options
//! exactly as in `fuzz/fuzz_targets/deid.rs`.

use umbra_core::{Config, Deidentifier, Key, OptionSet, ProfileOption, Pseudonymizer};

fn options(b: u8) -> Option<OptionSet> {
    let bits = b as u16;
    let mask = bits | (((bits ^ (bits >> 2)) & 0b11) << 8);
    let set: OptionSet = ProfileOption::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, o)| *o)
        .collect();
    let both = set.contains(ProfileOption::RetainLongitudinalFullDates)
        && set.contains(ProfileOption::RetainLongitudinalModifiedDates);
    (!both).then_some(set)
}

#[test]
fn fuzz_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let (&first, file) = data.split_first().unwrap();
        let Some(opts) = options(first) else { continue };
        n += 1;
        let engine = || {
            Deidentifier::new(
                Config::new(opts),
                Pseudonymizer::new(&Key::from_bytes([7; 32])),
            )
        };
        let reparses = |out: &[u8]| {
            assert!(
                umbra_files::parse_bytes(out).is_ok(),
                "{}: output does not parse again",
                path.display()
            )
        };
        // the whole-object path
        if let Ok((obj, ts)) = umbra_files::parse_bytes(file) {
            if let Ok(d) = engine().deidentify(obj, &ts) {
                let mut out = Vec::new();
                if d.object.write_all(&mut out).is_ok() {
                    reparses(&out);
                }
            }
        }
        // the path `umbra deid` takes: header parsed, pixel data carried raw when it ends the file
        if let Ok(input) = umbra_files::input_from_bytes(file.to_vec()) {
            // the scanner on the input itself (as `umbra scan` runs it) and the release gate
            let gate = umbra_files::Gate::for_config(&Config::new(opts));
            let against = gate.harvest(&input.object);
            let raw = umbra_scan::RawRegion {
                bytes: file,
                offset: 0,
            };
            umbra_scan::Scanner::default().scan_against(&against, &input.object, None, Some(raw));
            let deidentified = engine().deidentify(input.object, &input.transfer_syntax);
            if let Ok(d) = &deidentified {
                let _ = gate.check(&against, &d.object);
            }
            if let Ok(mut d) = deidentified {
                let mut out = Vec::new();
                if let Some(raw) = &input.raw_pixel_data {
                    d.object
                        .remove_element(dicom_dictionary_std::tags::PIXEL_DATA);
                    if d.object.write_all(&mut out).is_ok() {
                        out.extend_from_slice(&raw.to_vec().unwrap());
                        reparses(&out);
                    }
                } else if d.object.write_all(&mut out).is_ok() {
                    reparses(&out);
                }
            }
        }
    }
    assert!(n >= 5, "regression inputs missing");
}

#[test]
fn huge_declared_lengths_are_refused_before_allocation() {
    // 9 bytes declaring a value of 4 GiB - 16 (implicit VR): refused by the structural check,
    // not by an allocation failure.
    let data = [0x08, 0x00, 0x16, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, b'1'];
    let err = umbra_files::parse_bytes(&data).unwrap_err();
    assert!(err.to_string().contains("length runs past"), "{err}");
}

#[test]
fn un_sequences_of_undefined_length_are_refused_before_parsing() {
    // pydicom's UN_sequence.dcm: dicom-rs would read its implicit-VR items as explicit VR and
    // allocate 3.6 GB for this 674-byte file. The structural check refuses it first.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public/pydicom/UN_sequence.dcm");
    let err = umbra_files::read_input(&path).unwrap_err();
    assert!(
        err.to_string().contains("UN with undefined length"),
        "{err}"
    );
}

#[test]
fn pixel_data_encoded_as_a_sequence_is_refused_by_both_read_paths() {
    // Found by the fuzz target: a Pixel Data element with VR SQ and a defined length that ends
    // the file. Read whole, the structural check walked into it and refused it; read header
    // first, it was taken for native pixel data and would have been carried raw into the
    // output. Both paths now refuse it.
    let data = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/pixel-data-as-sequence.bin"),
    )
    .unwrap();
    let file = &data[1..];
    let whole = umbra_files::input_from_bytes(file.to_vec());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.dcm");
    std::fs::write(&path, file).unwrap();
    let header_first = umbra_files::read_input_with(&path, 0, 256);
    let (Err(a), Err(b)) = (&whole, &header_first) else {
        panic!(
            "expected both to refuse: {:?} / {:?}",
            whole.as_ref().err(),
            header_first.as_ref().err()
        );
    };
    assert_eq!(a.to_string(), b.to_string());
}
