//! Synthetic people and sites: names in several scripts, record numbers, dates, addresses and
//! the other identifiers the generator plants. Every value is made from the seed alone; none
//! is a real person's, but each has the shape real ones have.

use rand::Rng;
use rand::seq::IndexedRandom;

/// The character set a patient's text is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// The default repertoire (ASCII); no Specific Character Set.
    Ascii,
    /// ISO 8859-1 (`ISO_IR 100`).
    Latin1,
    /// UTF-8 (`ISO_IR 192`).
    Utf8,
    /// Japanese: ISO 2022 with JIS X 0208 (`\ISO 2022 IR 87`), names with ideographic and
    /// phonetic groups.
    Japanese,
}

impl Script {
    /// The Specific Character Set value, empty for the default repertoire.
    pub fn charset(self) -> &'static str {
        match self {
            Script::Ascii => "",
            Script::Latin1 => "ISO_IR 100",
            Script::Utf8 => "ISO_IR 192",
            Script::Japanese => "\\ISO 2022 IR 87",
        }
    }
}

// Name pools. Every entry has at least four letters so that a checker matching whole words does
// not trip over short common words, and none is a DICOM term.
const FAMILY_ASCII: &[&str] = &[
    "HARTWELL",
    "PEMBERTON",
    "CALLOWAY",
    "DRUMMOND",
    "FAIRBANKS",
    "GALLAGHER",
    "HOLLISTER",
    "KINCAID",
    "LANCASTER",
    "MERRIWEATHER",
    "NORTHCOTT",
    "OSBORNE",
    "PRESCOTT",
    "RADCLIFFE",
    "SINCLAIR",
    "THORNBURY",
    "WHITAKER",
    "ABERNATHY",
    "BLACKWOOD",
    "CARMICHAEL",
];
const GIVEN_ASCII: &[&str] = &[
    "AGATHA",
    "BARNABY",
    "CORDELIA",
    "DESMOND",
    "EUGENIA",
    "FLETCHER",
    "GWENDOLYN",
    "HORATIO",
    "ISADORA",
    "JASPER",
    "LEOPOLD",
    "MATILDA",
    "NATHANIEL",
    "OPHELIA",
    "PERCIVAL",
    "ROSALIND",
];
const FAMILY_LATIN1: &[&str] = &[
    "MÜLLER",
    "GONÇALVES",
    "SØRENSEN",
    "JÄRVINEN",
    "BÖHLER",
    "NÚÑEZ",
    "LEFÈVRE",
    "GRÜNBERG",
    "ÅSTRÖM",
    "DURÃO",
];
const GIVEN_LATIN1: &[&str] = &[
    "JÜRGEN",
    "FRANÇOISE",
    "BJØRN",
    "SØREN",
    "INÊS",
    "JOSÉ",
    "HÉLÈNE",
    "MAÏTÉ",
    "GÖRAN",
    "RENÉE",
];
const FAMILY_UTF8: &[&str] = &[
    "ŠTĚPÁNEK",
    "WOŹNIAK",
    "DVOŘÁK",
    "KOWALCZYK",
    "ŁUKASIEWICZ",
    "NOVOTNÝ",
    "ŻELAZNY",
    "ŘEZNÍČEK",
];
const GIVEN_UTF8: &[&str] = &[
    "JIŘÍ",
    "MAŁGORZATA",
    "ŁUKASZ",
    "ZDEŇKA",
    "BOŻENA",
    "KATEŘINA",
];
/// (romaji, kanji, kana) family names.
const FAMILY_JA: &[(&str, &str, &str)] = &[
    ("YAMADA", "山田", "やまだ"),
    ("TAKAHASHI", "高橋", "たかはし"),
    ("WATANABE", "渡辺", "わたなべ"),
    ("NAKAMURA", "中村", "なかむら"),
    ("KOBAYASHI", "小林", "こばやし"),
];
/// (romaji, kanji, kana) given names.
const GIVEN_JA: &[(&str, &str, &str)] = &[
    ("TAROU", "太郎", "たろう"),
    ("HANAKO", "花子", "はなこ"),
    ("KENJI", "健二", "けんじ"),
    ("YUKIKO", "雪子", "ゆきこ"),
];
const STREETS: &[&str] = &[
    "Juniper Lane",
    "Quarry Road",
    "Larkspur Avenue",
    "Tanglewood Drive",
    "Bramble Court",
    "Heronsgate Street",
    "Millbrook Way",
    "Foxglove Terrace",
];
const CITIES: &[&str] = &[
    "Ravenholt",
    "Oakhurst",
    "Thistledown",
    "Wexbridge",
    "Marlowvale",
    "Dunmoreton",
];
const STATES: &[&str] = &["MA", "OH", "CA", "NY", "TX", "WA"];

/// One synthetic patient's identity.
#[derive(Debug, Clone)]
pub struct Person {
    /// How text is written.
    pub script: Script,
    /// Family name (upper case, in the script).
    pub family: String,
    /// Given name.
    pub given: String,
    /// For Japanese: (kanji family, kanji given, kana family, kana given).
    pub ideographic: Option<[String; 4]>,
    /// Patient ID (medical record number).
    pub mrn: String,
    /// Birth date, `YYYYMMDD`.
    pub birth_date: String,
    /// Sex, `M`/`F`.
    pub sex: &'static str,
    /// Street line.
    pub street: String,
    /// City.
    pub city: String,
    /// ZIP code (5 digits).
    pub zip: String,
    /// State.
    pub state: &'static str,
    /// Phone, `NNN-NNN-NNNN`.
    pub phone: String,
    /// Fax.
    pub fax: String,
    /// E-mail.
    pub email: String,
    /// US social security number, `NNN-NN-NNNN`.
    pub ssn: String,
    /// Health plan member number.
    pub plan: String,
    /// Account (admission) number.
    pub account: String,
    /// Driver's license.
    pub license: String,
    /// Vehicle plate.
    pub plate: String,
    /// A patient-portal URL.
    pub url: String,
    /// The IP address of the patient's home device in a portal log.
    pub ip: String,
}

impl Person {
    /// The Patient's Name value as written in the objects.
    pub fn dicom_name(&self) -> String {
        match &self.ideographic {
            Some([kf, kg, hf, hg]) => format!("{}^{}={kf}^{kg}={hf}^{hg}", self.family, self.given),
            None => format!("{}^{}", self.family, self.given),
        }
    }

    /// How a person writes the name in free text: `Given Family`, in the name's own script
    /// (kanji for Japanese).
    pub fn text_name(&self) -> String {
        match &self.ideographic {
            Some([kf, kg, ..]) => format!("{kf}{kg}"),
            None => format!("{} {}", title_case(&self.given), title_case(&self.family)),
        }
    }

    /// Name parts a checker searches for.
    pub fn name_forms(&self) -> Vec<String> {
        let mut v = vec![self.family.clone(), self.given.clone()];
        if let Some(ide) = &self.ideographic {
            v.extend(ide.iter().cloned());
        }
        v
    }
}

/// `MÜLLER` → `Müller`.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if i == 0 {
            out.push(c);
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn digits(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|i| {
            let lo = if i == 0 { b'1' } else { b'0' };
            rng.random_range(lo..=b'9') as char
        })
        .collect()
}

fn letters(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.random_range(b'A'..=b'Z') as char)
        .collect()
}

/// A random date `YYYYMMDD` in years `from..=to`.
pub fn date(rng: &mut impl Rng, from: u32, to: u32) -> String {
    let y = rng.random_range(from..=to);
    let m = rng.random_range(1..=12u32);
    let d = rng.random_range(1..=28u32);
    format!("{y:04}{m:02}{d:02}")
}

/// Makes patient number `index` of the corpus. `old` makes the patient older than 89 (an age
/// Safe Harbor counts as an identifier).
pub fn person(rng: &mut impl Rng, index: usize, script: Script, old: bool) -> Person {
    let (family, given, ideographic) = match script {
        Script::Ascii => (
            FAMILY_ASCII.choose(rng).unwrap().to_string(),
            GIVEN_ASCII.choose(rng).unwrap().to_string(),
            None,
        ),
        Script::Latin1 => (
            FAMILY_LATIN1.choose(rng).unwrap().to_string(),
            GIVEN_LATIN1.choose(rng).unwrap().to_string(),
            None,
        ),
        Script::Utf8 => (
            FAMILY_UTF8.choose(rng).unwrap().to_string(),
            GIVEN_UTF8.choose(rng).unwrap().to_string(),
            None,
        ),
        Script::Japanese => {
            let f = FAMILY_JA.choose(rng).unwrap();
            let g = GIVEN_JA.choose(rng).unwrap();
            (
                f.0.to_string(),
                g.0.to_string(),
                Some([f.1.into(), g.1.into(), f.2.into(), g.2.into()]),
            )
        }
    };
    let birth_date = if old {
        date(rng, 1925, 1931)
    } else {
        date(rng, 1940, 2010)
    };
    let area = rng.random_range(201..=989u32);
    let phone = format!("{area}-{}-{}", digits(rng, 3), digits(rng, 4));
    let fax = format!("{area}-{}-{}", digits(rng, 3), digits(rng, 4));
    let email_user = format!(
        "{}.{}{}",
        ascii_fold(&given).to_lowercase(),
        ascii_fold(&family).to_lowercase(),
        rng.random_range(10..99u32)
    );
    Person {
        script,
        mrn: format!("{}{:03}", digits(rng, 5), index % 1000),
        birth_date,
        sex: if rng.random_bool(0.5) { "F" } else { "M" },
        street: format!(
            "{} {}",
            rng.random_range(2..990u32),
            STREETS.choose(rng).unwrap()
        ),
        city: CITIES.choose(rng).unwrap().to_string(),
        zip: format!("{:05}", rng.random_range(10000..99999u32)),
        state: STATES.choose(rng).unwrap(),
        phone,
        fax,
        email: format!("{email_user}@mailbox.example"),
        ssn: format!(
            "{}-{}-{}",
            rng.random_range(101..=665u32),
            rng.random_range(10..=99u32),
            digits(rng, 4)
        ),
        plan: format!("HP{}", digits(rng, 9)),
        account: format!("AC{}", digits(rng, 8)),
        license: format!("D{}", digits(rng, 7)),
        plate: format!("{}{}{}", digits(rng, 1), letters(rng, 3), digits(rng, 3)),
        url: format!(
            "https://portal.mychart-records.example/chart/{}",
            letters(rng, 2).to_lowercase() + &digits(rng, 6)
        ),
        ip: format!(
            "10.{}.{}.{}",
            rng.random_range(1..=254u32),
            rng.random_range(1..=254u32),
            rng.random_range(1..=254u32)
        ),
        family,
        given,
        ideographic,
    }
}

/// Accents and strokes dropped, for e-mail addresses.
fn ascii_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'Ä' | 'Å' | 'Á' | 'Ã' => 'A',
            'Ç' => 'C',
            'È' | 'É' | 'Ê' | 'Ě' => 'E',
            'Í' | 'Ï' => 'I',
            'Ł' => 'L',
            'Ñ' | 'Ň' => 'N',
            'Ö' | 'Ø' | 'Ó' => 'O',
            'Ř' => 'R',
            'Š' => 'S',
            'Ü' | 'Ú' => 'U',
            'Ý' => 'Y',
            'Ź' | 'Ż' => 'Z',
            c if c.is_ascii_alphanumeric() => c,
            _ => 'x',
        })
        .collect()
}

/// A site: the hospital and its equipment.
#[derive(Debug, Clone)]
pub struct Site {
    /// Institution Name.
    pub institution: String,
    /// Institution Address.
    pub address: String,
    /// Station names, one per modality kind.
    pub station: String,
    /// Device serial numbers.
    pub serial: String,
    /// Physicians (`FAMILY^GIVEN`).
    pub physicians: Vec<String>,
    /// The operator.
    pub operator: String,
}

const HOSPITALS: &[&str] = &[
    "GREYFRIARS GENERAL HOSPITAL",
    "LINDENHALL MEDICAL CENTER",
    "QUILLMOOR CHILDRENS CLINIC",
];
/// Site cities: apart from patients' cities, so that one never reads as the other.
const SITE_CITIES: &[&str] = &["Ashcombe", "Pellingford", "Strathmore"];

/// Makes site number `index`.
pub fn site(rng: &mut impl Rng, index: usize) -> Site {
    let name = |rng: &mut _| {
        format!(
            "{}^{}",
            FAMILY_ASCII.choose(rng).unwrap(),
            GIVEN_ASCII.choose(rng).unwrap()
        )
    };
    Site {
        institution: HOSPITALS[index % HOSPITALS.len()].to_string(),
        address: format!(
            "{} {}, {}",
            rng.random_range(100..990u32),
            STREETS.choose(rng).unwrap(),
            SITE_CITIES[index % SITE_CITIES.len()]
        ),
        station: format!("RVH{}SCAN{}", letters(rng, 2), digits(rng, 2)),
        serial: format!("SN{}", digits(rng, 8)),
        physicians: (0..3).map(|_| name(rng)).collect(),
        operator: name(rng),
    }
}
