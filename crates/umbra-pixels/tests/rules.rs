//! The rule sets: the built-in set against the upstream files it was made from, hand-checked
//! rules of each upstream, user TOML, errors and clipping.

use umbra_pixels::Rect;
use umbra_pixels::rules::{RuleError, RuleSet};

const DEID: &str = include_str!("../data/rules/upstream/deid.dicom");
const CTP: &str = include_str!("../data/rules/upstream/DicomPixelAnonymizer.script");
const PROVENANCE: &str = include_str!("../data/rules/PROVENANCE.md");

fn rect(x: u16, y: u16, width: u16, height: u16) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

/// An object as keyword → value pairs.
fn object<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

/// The regions the named rule gave.
fn from_rule(got: &[(String, Rect)], name: &str) -> Vec<Rect> {
    got.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, r)| *r)
        .collect()
}

/// LABEL lines inside `%filter` sections of deid.dicom, counted as deid's `load_deid` does.
fn deid_labels() -> usize {
    let mut in_filter = false;
    let mut n = 0;
    for line in DEID.lines().map(str::trim) {
        if line.starts_with('%') {
            in_filter = line.starts_with("%filter");
        } else if in_filter && line.to_uppercase().starts_with("LABEL") {
            n += 1;
        }
    }
    n
}

/// Signatures of the CTP script: each is one `{ ... }` (PixelScript's `\{[^\}]*\}`).
fn ctp_signatures() -> usize {
    let opens = CTP.matches('{').count();
    assert_eq!(opens, CTP.matches('}').count());
    opens
}

/// Rows of PROVENANCE.md's table of skipped rules naming `file`.
fn skipped(file: &str) -> usize {
    PROVENANCE
        .lines()
        .filter(|l| l.starts_with(&format!("| `{file}:")))
        .count()
}

#[test]
fn builtin_has_every_upstream_rule_but_the_listed_skipped_ones() {
    let set = RuleSet::builtin();
    let (labels, signatures) = (deid_labels(), ctp_signatures());
    let (skip_deid, skip_ctp) = (
        skipped("deid.dicom"),
        skipped("DicomPixelAnonymizer.script"),
    );
    assert_eq!(set.len(), labels - skip_deid + signatures - skip_ctp);
    // the figures of this release, so that a change to the upstream files or the importer is seen
    assert_eq!((labels, skip_deid), (118, 14));
    assert_eq!((signatures, skip_ctp), (52, 0));
    assert_eq!(set.len(), 156);
    assert!(!set.is_empty());

    // every rule's source points at the upstream line that starts it, and no rule is listed as
    // skipped and imported at once
    let deid_lines: Vec<&str> = DEID.lines().collect();
    let ctp_lines: Vec<&str> = CTP.lines().collect();
    let (mut from_deid, mut from_ctp) = (0, 0);
    for (name, source) in set.rules() {
        let (file, rest) = source.split_once(':').expect("source is file:line");
        let line: usize = rest
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .expect("line number");
        match file {
            "deid.dicom" => {
                from_deid += 1;
                assert!(
                    deid_lines[line - 1].starts_with("LABEL"),
                    "{name}: {source}"
                );
            }
            "DicomPixelAnonymizer.script" => {
                from_ctp += 1;
                assert!(ctp_lines[line - 1].contains('{'), "{name}: {source}");
            }
            other => panic!("unexpected source file {other}"),
        }
        assert!(
            !PROVENANCE.contains(&format!("| `{source}")),
            "{source} is both imported and skipped"
        );
    }
    assert_eq!(from_deid, labels - skip_deid);
    assert_eq!(from_ctp, signatures - skip_ctp);
}

#[test]
fn deid_philips_iu22_600_rows() {
    // deid.dicom: LABEL Philips IU22 (Rows 600) ... ctpcoordinates 0,0,800,59
    // CTP: { ManufacturerModelName.containsIgnoreCase("iU22") * Rows.equals("600") } (0,0,800,59)
    let set = RuleSet::builtin();
    let us = [
        ("Modality", "US"),
        ("Manufacturer", "Philips Medical Systems"),
        ("ManufacturerModelName", "iU22"),
        ("Rows", "600"),
        ("Columns", "800"),
    ];
    let got = set.regions(&object(&us), 600, 800);
    assert_eq!(
        from_rule(&got, "deid graylist: Philips IU22"),
        vec![rect(0, 0, 800, 59)]
    );
    assert_eq!(
        from_rule(&got, "CTP US Philips: IU22"),
        vec![rect(0, 0, 800, 59)]
    );

    // the 480-row variant gives its own region, not this one
    let mut other = us;
    other[3] = ("Rows", "480");
    let got = set.regions(&object(&other), 480, 640);
    assert_eq!(
        from_rule(&got, "deid graylist: Philips IU22"),
        vec![rect(0, 0, 640, 47)]
    );
    assert_eq!(
        from_rule(&got, "CTP US Philips: IU22"),
        vec![rect(0, 0, 640, 47)]
    );

    // a CT from the same maker matches no IU22 rule
    let ct = [
        ("Modality", "CT"),
        ("Manufacturer", "Philips"),
        ("ManufacturerModelName", "Brilliance 64"),
        ("Rows", "512"),
        ("Columns", "512"),
    ];
    let got = set.regions(&object(&ct), 512, 512);
    assert!(from_rule(&got, "deid graylist: Philips IU22").is_empty());
    assert!(got.iter().all(|(n, _)| !n.contains("IU22")), "{got:?}");
}

#[test]
fn deid_corner_coordinates_and_or_lines() {
    // LABEL LightSpeed Dose Report: contains ManufacturerModelName LightSpeed VCT + contains
    // Modality CT + contains ImageType SCREEN SAVE || contains SeriesDescription Dose;
    // coordinates 0,0,512,121 (xmin,ymin,xmax,ymax)
    let set = RuleSet::builtin();
    let name = "deid graylist: LightSpeed Dose Report";
    let by_type = [
        ("Modality", "CT"),
        ("Manufacturer", "GE MEDICAL SYSTEMS"),
        ("ManufacturerModelName", "LightSpeed VCT"),
        ("ImageType", "DERIVED\\SECONDARY\\SCREEN SAVE"),
    ];
    let got = set.regions(&object(&by_type), 512, 512);
    assert_eq!(from_rule(&got, name), vec![rect(0, 0, 512, 121)]);
    let by_description = [
        ("Modality", "CT"),
        ("ManufacturerModelName", "LightSpeed VCT"),
        ("ImageType", "ORIGINAL\\PRIMARY\\AXIAL"),
        ("SeriesDescription", "dose info"),
    ];
    let got = set.regions(&object(&by_description), 512, 512);
    assert_eq!(from_rule(&got, name), vec![rect(0, 0, 512, 121)]);
    let neither = [
        ("Modality", "CT"),
        ("ManufacturerModelName", "LightSpeed VCT"),
        ("ImageType", "ORIGINAL\\PRIMARY\\AXIAL"),
        ("SeriesDescription", "Chest"),
    ];
    assert!(from_rule(&set.regions(&object(&neither), 512, 512), name).is_empty());

    // LABEL 3D Lab reconstructions: coordinates 450,0,672, 85 -> x 450, width 222, height 85;
    // its model condition is the regular expression "SOMATOM Definition AS+"
    let recon = [
        ("Modality", "CT"),
        ("ManufacturerModelName", "SOMATOM Definition AS+"),
        ("SeriesDescription", "3D VRT"),
    ];
    let got = set.regions(&object(&recon), 1024, 1024);
    assert_eq!(
        from_rule(&got, "deid graylist: 3D Lab reconstructions"),
        vec![rect(450, 0, 222, 85)]
    );
}

#[test]
fn deid_regex_alternatives() {
    // LABEL Logiq US (LOGIQE9 or V830): contains ManufacturerModelName LOGIQE9|V830,
    // ctpcoordinates 0,0,960,70
    let set = RuleSet::builtin();
    let name = "deid graylist: Logiq US (LOGIQE9 or V830)";
    for model in ["LOGIQE9", "v830"] {
        let o = [
            ("Modality", "US"),
            ("Manufacturer", "GE Healthcare"),
            ("ManufacturerModelName", model),
        ];
        let got = set.regions(&object(&o), 720, 960);
        assert_eq!(from_rule(&got, name), vec![rect(0, 0, 960, 70)], "{model}");
    }
    let o = [
        ("Modality", "US"),
        ("Manufacturer", "GE Healthcare"),
        ("ManufacturerModelName", "LOGIQ P5"),
    ];
    assert!(from_rule(&set.regions(&object(&o), 720, 960), name).is_empty());
}

#[test]
fn ctp_two_regions_case_sensitive_equals() {
    // ATL: { Modality.equals("US") * Manufacturer.containsIgnoreCase("ATL") *
    //        ManufacturerModelName.containsIgnoreCase("HDI 5000") * Rows.equals("476") *
    //        Columns.equals("640") } (40,0,200,40) (240,0,190,16)
    let set = RuleSet::builtin();
    let mut o = [
        ("Modality", "US"),
        ("Manufacturer", "atl ultrasound"),
        ("ManufacturerModelName", "HDI 5000 SonoCT"),
        ("Rows", "476"),
        ("Columns", "640"),
    ];
    let got = set.regions(&object(&o), 476, 640);
    assert_eq!(
        from_rule(&got, "CTP US ATL"),
        vec![rect(40, 0, 200, 40), rect(240, 0, 190, 16)]
    );
    // CTP's equals is case-sensitive (deid's is not)
    o[0] = ("Modality", "us");
    let got = set.regions(&object(&o), 476, 640);
    assert!(from_rule(&got, "CTP US ATL").is_empty());
    assert_eq!(
        from_rule(&got, "deid graylist: ATL HDI 5000"),
        vec![rect(40, 0, 200, 40), rect(240, 0, 190, 16)]
    );
}

#[test]
fn ctp_first_signature_wins_and_tags_are_keywords() {
    // ADAC: the plain signature comes before the "DUAL DETEC" one, so CTP never reaches the
    // second; (0,762,1024,80) on 832 rows is clipped to 70 rows.
    let set = RuleSet::builtin();
    let o = [
        ("Manufacturer", "ADAC"),
        ("Rows", "832"),
        ("Columns", "1024"),
        ("ProtocolName", "DUAL DETECTOR"),
    ];
    let got = set.regions(&object(&o), 832, 1024);
    let ctp: Vec<&(String, Rect)> = got.iter().filter(|(n, _)| n.starts_with("CTP")).collect();
    assert_eq!(
        ctp,
        vec![
            &("CTP OTHER ADAC".to_string(), rect(0, 0, 1024, 80)),
            &("CTP OTHER ADAC".to_string(), rect(0, 762, 1024, 70)),
        ]
    );

    // Philips PT: [0028,0010].equals("446") * [0028,0011].equals("245") -> Rows, Columns
    let pt = [
        ("Modality", "PT"),
        ("Manufacturer", "Philips Medical Systems"),
        ("ManufacturerModelName", "GEMINI TF"),
        ("Rows", "446"),
        ("Columns", "245"),
    ];
    let got = set.regions(&object(&pt), 446, 245);
    assert_eq!(
        from_rule(&got, "CTP PET/CT Philips"),
        vec![rect(0, 0, 125, 50)]
    );
    let mut small = pt;
    small[3] = ("Rows", "445");
    let got = set.regions(&object(&small), 445, 245);
    assert!(from_rule(&got, "CTP PET/CT Philips").is_empty(), "{got:?}");
}

#[test]
fn a_plain_ct_gets_no_region() {
    let set = RuleSet::builtin();
    let o = [
        ("Modality", "CT"),
        ("Manufacturer", "Canon"),
        ("ManufacturerModelName", "Aquilion Prime"),
        ("ImageType", "ORIGINAL\\PRIMARY\\AXIAL"),
        ("Rows", "512"),
        ("Columns", "512"),
    ];
    assert_eq!(set.regions(&object(&o), 512, 512), vec![]);
    assert_eq!(set.regions(&|_: &str| None, 512, 512), vec![]);
}

const USER: &str = r#"
# our own ultrasound cart
[[rule]]
name = "Acme Sono header"
when = [
  { attribute = "Modality", op = "equals", value = "US" },
  { attribute = "Manufacturer", op = "contains", value = "acme", case-insensitive = true },
  { any = [
    { attribute = "Rows", op = "equals", value = "480" },
    { attribute = "Rows", op = "equals", value = "600" },
  ] },
]
regions = [
  { x = 0, y = 0, width = 640, height = 40 },
  { x = 600, y = 440, width = 100, height = 100 },
]
"#;

#[test]
fn a_user_rule_adds_regions_clipped() {
    let mut set = RuleSet::builtin();
    let before = set.len();
    set.extend(RuleSet::from_toml(USER, "site.toml").unwrap());
    assert_eq!(set.len(), before + 1);
    let (name, source) = set.rules().last().unwrap();
    assert_eq!((name, source), ("Acme Sono header", "site.toml:3"));
    let o = [
        ("Modality", "US"),
        ("Manufacturer", "ACME Imaging"),
        ("Rows", "480"),
    ];
    assert_eq!(
        set.regions(&object(&o), 480, 640),
        vec![
            ("Acme Sono header".to_string(), rect(0, 0, 640, 40)),
            // (600,440)+(100x100) clipped to 640 x 480
            ("Acme Sono header".to_string(), rect(600, 440, 40, 40)),
        ]
    );
    // on a smaller image the second region falls outside and is dropped, the first is cut
    assert_eq!(
        set.regions(&object(&o), 300, 400),
        vec![("Acme Sono header".to_string(), rect(0, 0, 400, 40))]
    );
    let other = [
        ("Modality", "US"),
        ("Manufacturer", "ACME Imaging"),
        ("Rows", "768"),
    ];
    assert_eq!(set.regions(&object(&other), 768, 1024), vec![]);
}

fn error(text: &str) -> RuleError {
    RuleSet::from_toml(text, "site.toml").expect_err("must be refused")
}

fn assert_one_line(e: &RuleError, starts: &str, contains: &str) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg:?}");
    assert!(
        msg.starts_with(starts),
        "{msg:?} should start with {starts:?}"
    );
    assert!(
        msg.contains(contains),
        "{msg:?} should contain {contains:?}"
    );
}

#[test]
fn errors_are_one_line_and_name_the_line() {
    let bad_op = "[[rule]]\nname = \"x\"\nwhen = [\n  { attribute = \"Rows\", op = \"equals\", value = \"1\" },\n  { attribute = \"Rows\", op = \"bigger\", value = \"1\" },\n]\nwhole = true\n";
    assert_one_line(
        &error(bad_op),
        "site.toml:5: rule \"x\"",
        "unknown op \"bigger\"",
    );

    let no_value = "\n[[rule]]\nname = \"y\"\nwhen = [{ attribute = \"Rows\", op = \"equals\" }]\nwhole = true\n";
    assert_one_line(&error(no_value), "site.toml:4:", "needs a `value`");

    let bad_regex = "[[rule]]\nname = \"z\"\nwhen = [{ attribute = \"A\", op = \"regex\", value = \"(\" }]\nwhole = true\n";
    assert_one_line(&error(bad_regex), "site.toml:3:", "bad regular expression");

    let no_region = "[[rule]]\nname = \"r\"\nwhen = []\n";
    assert_one_line(&error(no_region), "site.toml:1:", "no `regions`");

    let big =
        "[[rule]]\nname = \"b\"\nregions = [\n  { x = 70000, y = 0, width = 1, height = 1 },\n]\n";
    assert_one_line(&error(big), "site.toml:4:", "outside 0..=65535");

    let unknown_key = "[[rule]]\nname = \"u\"\nwhole = true\ncolour = \"red\"\n";
    assert_one_line(&error(unknown_key), "site.toml:4:", "colour");

    let not_toml = "[[rule]]\nname = \"n\"\nwhole = true\nregions = [ { x = 1, \n";
    let e = error(not_toml);
    assert!(matches!(e, RuleError::Syntax { line: 4, .. }), "{e:?}");
    assert_one_line(&e, "site.toml:4:", "");

    let bad_match = "match = \"some\"\n";
    assert_one_line(&error(bad_match), "site.toml:1:", "\"all\" or \"first\"");
}
