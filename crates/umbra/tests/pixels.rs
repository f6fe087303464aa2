//! `--option clean-pixel-data` end to end: the two real ultrasound samples come out with every
//! burned-in identity string filled and say so; without the option they are held back; a
//! synthetic corpus with text burned into its ultrasound and screen captures scores perfect.

mod common;

use common::{corpus, deid, fixed_key, read_report, umbra};
use dicom_dictionary_std::tags;

/// Identity text in the two samples, annotated by hand: each rectangle is the bounding box of
/// the text's bright pixels (found by thresholding each region marked on a rendering of the
/// image: luminance above 100 on the RGB image, above 90 on the grey header bar of the other).
/// (x0, y0, x1, y1), x1 and y1 exclusive.
const US_RGB: &[(&str, [u16; 4])] = &[
    ("patient name", [4, 8, 227, 26]),
    ("patient ID", [4, 36, 135, 51]),
    ("date and time", [504, 8, 715, 23]),
    ("accession number", [776, 8, 881, 23]),
    ("institution", [505, 36, 768, 51]),
    ("operator initials", [403, 8, 432, 23]),
];
const US_GREY: &[(&str, [u16; 4])] = &[
    ("patient name", [9, 6, 173, 19]),
    ("patient ID", [183, 6, 281, 19]),
    ("birth date", [392, 6, 515, 19]),
    ("sex and institution", [530, 6, 685, 19]),
    ("date and time", [823, 6, 1009, 19]),
];

fn clean_one(name: &str) -> (tempfile::TempDir, common::Rec, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus().join("deid-data").join(name);
    let out = tmp.path().join("out");
    let report = tmp.path().join("r.jsonl");
    let key = fixed_key(tmp.path());
    let o = deid(
        &input,
        &out,
        &key,
        &[
            "--quiet",
            "--option",
            "clean-pixel-data",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let rec = read_report(&report).remove(0);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: {:?} {}",
        rec.reason,
        String::from_utf8_lossy(&o.stderr)
    );
    let path = out.join(rec.output.clone().unwrap());
    (tmp, rec, path)
}

fn check_sample(name: &str, boxes: &[(&str, [u16; 4])]) {
    let (_tmp, _rec, path) = clean_one(name);
    let obj = dicom_object::open_file(&path).unwrap();
    let flag = obj
        .element(tags::BURNED_IN_ANNOTATION)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(flag.trim(), "NO");
    let codes: Vec<String> = obj
        .element(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|i| {
            i.element(tags::CODE_VALUE)
                .unwrap()
                .to_str()
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    assert!(codes.contains(&"113101".to_owned()), "{codes:?}");
    let input = umbra_files::read_input(&path).unwrap();
    let ts = input.transfer_syntax.to_string();
    let (img, _) =
        umbra_files::pixels::decode(&input.object, input.raw_pixel_data.as_ref(), &ts).unwrap();
    for (what, [x0, y0, x1, y1]) in boxes {
        let mut lit = 0;
        for r in *y0..*y1 {
            for c in *x0..*x1 {
                if (0..img.samples).any(|s| img.get(0, r, c, s) != 0) {
                    lit += 1;
                }
            }
        }
        assert_eq!(lit, 0, "{name}: {what} not filled ({lit} pixels left)");
    }
}

#[test]
fn the_rgb_ultrasound_sample_comes_out_with_its_identity_text_filled() {
    check_sample("us_RGB_IMAGE.dcm", US_RGB);
}

#[test]
fn the_greyscale_ultrasound_sample_comes_out_with_its_identity_text_filled() {
    check_sample("us_GREYSCALE_IMAGE.dcm", US_GREY);
}

#[test]
fn without_the_option_both_samples_are_held_back_with_the_way_out_named() {
    for name in ["us_RGB_IMAGE.dcm", "us_GREYSCALE_IMAGE.dcm"] {
        let tmp = tempfile::tempdir().unwrap();
        let report = tmp.path().join("r.jsonl");
        let o = deid(
            &corpus().join("deid-data").join(name),
            &tmp.path().join("out"),
            &fixed_key(tmp.path()),
            &["--quiet", "--report", report.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(1));
        let rec = read_report(&report).remove(0);
        assert_eq!(rec.outcome, "held_back");
        let reason = rec.reason.unwrap();
        assert!(
            reason.contains("US image") || reason.contains("clean-pixel-data"),
            "{reason}"
        );
    }
}

#[test]
fn umbra_scan_finds_the_text_before_cleaning_and_not_after() {
    let name = "us_RGB_IMAGE.dcm";
    let before = umbra(&[
        "scan",
        corpus().join("deid-data").join(name).to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(String::from_utf8_lossy(&before.stdout).contains("\"rule\":\"pixel-text\""));
    let (_tmp, _rec, path) = clean_one(name);
    let after = umbra(&["scan", path.to_str().unwrap(), "--format", "json"]);
    let text = String::from_utf8_lossy(&after.stdout);
    assert!(!text.contains("pixel-text"), "{text}");
    assert_eq!(after.status.code(), Some(0), "{text}");
}

#[test]
fn a_synthetic_corpus_with_burned_in_text_scores_perfect_once_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let syn = tmp.path().join("syn");
    let o = umbra(&[
        "synth",
        "--out",
        syn.to_str().unwrap(),
        "--patients",
        "8",
        "--seed",
        "9",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = tmp.path().join("out");
    let report = tmp.path().join("r.jsonl");
    let o = deid(
        &syn.join("corpus"),
        &out,
        &fixed_key(tmp.path()),
        &[
            "--quiet",
            "--option",
            "clean-pixel-data",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "the hazards are still held back");
    let recs = read_report(&report);
    let cleaned = recs.iter().filter(|r| {
        r.outcome == "written" && {
            let n = r.input.file_name().unwrap().to_string_lossy();
            n.starts_with("US") || n.starts_with("SC")
        }
    });
    assert_eq!(
        cleaned.count(),
        8 * 3,
        "every ultrasound and screen capture is cleaned and written"
    );
    let check = umbra(&[
        "synth",
        "check",
        syn.join("key.json").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
