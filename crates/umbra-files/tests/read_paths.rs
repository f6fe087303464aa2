//! The header-first read (pixel data left in the file) and the whole-file read agree on every
//! file of the public corpus: same data set, same transfer syntax, same pixel bytes.

use std::path::Path;
use umbra_files::{RawPixelData, read_input_with};

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn header_first_and_whole_file_reads_agree() {
    let mut all = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public"),
        &mut all,
    );
    let mut header_first = 0;
    for p in &all {
        let whole = read_input_with(p, u64::MAX, 0);
        // every file goes header first, starting from a 256-byte prefix that has to grow
        let first = read_input_with(p, 0, 256);
        match (whole, first) {
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{}", p.display()),
            (Ok(a), Ok(b)) => {
                assert_eq!(a.transfer_syntax, b.transfer_syntax, "{}", p.display());
                // (dicom-rs's Length never equals itself when undefined: compare encodings)
                let encoded = |o: &dicom_object::InMemDicomObject| {
                    let mut v = Vec::new();
                    let ts =
                        dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased();
                    o.write_dataset_with_ts(&mut v, &ts).unwrap();
                    v
                };
                assert!(
                    encoded(&a.object) == encoded(&b.object),
                    "{}: data sets differ",
                    p.display()
                );
                let bytes = |r: &Option<RawPixelData>| r.as_ref().map(|r| r.to_vec().unwrap());
                assert_eq!(
                    bytes(&a.raw_pixel_data),
                    bytes(&b.raw_pixel_data),
                    "{}",
                    p.display()
                );
                if matches!(b.raw_pixel_data, Some(RawPixelData::InFile { .. })) {
                    header_first += 1;
                }
            }
            (a, b) => panic!("{}: {a:?} vs {b:?}", p.display()),
        }
    }
    assert!(
        header_first >= 20,
        "only {header_first} files took the header-first path"
    );
}
