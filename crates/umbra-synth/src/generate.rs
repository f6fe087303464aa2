//! The generator: patients → studies → series → objects, with identity planted and recorded.
//!
//! Each patient is made from its own random stream (seed and patient number), so patients are
//! made in parallel and a corpus is the same byte for byte for a seed whatever the thread count.
//! Files go to a caller-supplied sink as they are made; the key comes back at the end.

use crate::key::{
    self, BurnedBox, DicomFacts, Expect, File, FileKind, Generator, Hipaa, Identifier, Key,
    Location, Patient, Pixels,
};
use crate::node::{IdRef, Node, PendingPlant, tag_path};
use crate::people::{self, Person, Script, Site};
use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::meta::FileMetaTableBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use umbra_pixels::background::Background;
use umbra_pixels::codec::Codec;
use umbra_pixels::{Image, Photometric, font};

/// The organisation root of every original UID (fictitious: a private enterprise number no
/// vendor uses in these files).
pub const ORG_ROOT: &str = "1.3.6.1.4.1.99999.7";

const IMPLEMENTATION_CLASS_UID: &str = "1.3.6.1.4.1.99999.7.0.1";

/// What kind of corpus to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Small images of every kind, every transfer syntax, every hazard: the correctness corpus.
    Small,
    /// One CT series of 512×512 16-bit slices per patient, identity in the headers: the
    /// throughput corpus.
    Ct512 {
        /// Slices per patient.
        slices: usize,
    },
    /// Ultrasound at 640×480 with the name, MRN and birth date burned in (no Burned In
    /// Annotation): single frames in native, JPEG baseline and RLE, and one multi-frame clip
    /// per patient of `frames` frames: the pixel-cleaning speed corpus.
    Us640 {
        /// Frames of each patient's clip.
        frames: u32,
    },
}

impl Profile {
    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Small => "small",
            Profile::Ct512 { .. } => "ct512",
            Profile::Us640 { .. } => "us640",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of patients.
    pub patients: usize,
    /// The seed.
    pub seed: u64,
    /// The profile.
    pub profile: Profile,
    /// The version written into the key.
    pub version: String,
}

/// Why generation stopped.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The sink could not take a file.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The relative path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An object could not be encoded (a bug: everything generated is encodable).
    #[error("cannot encode {path}: {message}")]
    Encode {
        /// The relative path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Where generated files go: called with the path relative to the corpus root (`/`-separated)
/// and the file's bytes, from several threads at once.
pub type Sink<'a> = dyn Fn(&str, &[u8]) -> std::io::Result<()> + Sync + 'a;

/// Transfer syntaxes the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    ExplicitLe,
    ImplicitLe,
    ExplicitBe,
    Deflated,
    Rle,
    JpegBaseline,
    JpegLossless,
    JpegLs,
    Jpeg2000,
}

impl Syntax {
    fn uid(self) -> &'static str {
        match self {
            Syntax::ExplicitLe => "1.2.840.10008.1.2.1",
            Syntax::ImplicitLe => "1.2.840.10008.1.2",
            Syntax::ExplicitBe => "1.2.840.10008.1.2.2",
            Syntax::Deflated => "1.2.840.10008.1.2.1.99",
            Syntax::Rle => "1.2.840.10008.1.2.5",
            Syntax::JpegBaseline => "1.2.840.10008.1.2.4.50",
            Syntax::JpegLossless => "1.2.840.10008.1.2.4.70",
            Syntax::JpegLs => "1.2.840.10008.1.2.4.80",
            Syntax::Jpeg2000 => "1.2.840.10008.1.2.4.90",
        }
    }

    fn codec(self) -> Codec {
        match self {
            Syntax::Rle => Codec::RleLossless,
            Syntax::JpegBaseline => Codec::JpegBaseline { quality: 90 },
            Syntax::JpegLossless => Codec::JpegLossless,
            _ => Codec::Native,
        }
    }
}

/// A generated file before it is numbered into the corpus.
struct Made {
    path: String,
    kind: FileKind,
    expect: Expect,
    reason: Option<String>,
    dicom: Option<DicomFacts>,
    plants: Vec<PendingPlant>,
    uids: Vec<key::UidUse>,
    refs: Vec<(String, usize)>,
    pixels: Option<Pixels>,
    burned: Vec<(IdRef, BurnedBox)>,
    sha256: String,
}

/// One patient's output.
struct PatientOut {
    person: Person,
    identifiers: Vec<Identifier>,
    files: Vec<Made>,
    /// (patient-name, patient-id, birth-date) identifiers, for the DICOMDIR.
    main_ids: [IdRef; 3],
}

/// The site identifiers, by their global index. ([`IdRef::Site`] is a global index: the
/// DICOMDIR, made once every patient is numbered, names patients' identifiers that way too.)
struct SiteIds {
    institution: IdRef,
    address: IdRef,
    station: IdRef,
    serial: IdRef,
    physicians: Vec<IdRef>,
    operator: IdRef,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Date forms a checker searches for: `YYYYMMDD`, `YYYY-MM-DD`, `MM/DD/YYYY`, `DD.MM.YYYY`.
pub fn date_forms(d: &str) -> Vec<String> {
    let (y, m, dd) = (&d[0..4], &d[4..6], &d[6..8]);
    vec![
        d.to_owned(),
        format!("{y}-{m}-{dd}"),
        format!("{m}/{dd}/{y}"),
        format!("{dd}.{m}.{y}"),
    ]
}

/// Makes the corpus, handing each file to `sink`, and returns its key.
pub fn generate(opts: &Options, sink: &Sink<'_>) -> Result<Key, GenerateError> {
    let mut site_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5173_5173);
    let sites: Vec<Site> = (0..2).map(|i| people::site(&mut site_rng, i)).collect();
    let mut identifiers: Vec<Identifier> = Vec::new();
    let mut site_ids = Vec::new();
    for s in &sites {
        let mut add = |hipaa, kind: &str, value: &str| {
            identifiers.push(Identifier {
                patient: None,
                hipaa,
                kind: kind.into(),
                value: value.into(),
                forms: vec![value.into()],
            });
            IdRef::Site(identifiers.len() - 1)
        };
        let ids = SiteIds {
            institution: add(Hipaa::R, "institution", &s.institution),
            address: add(Hipaa::B, "institution-address", &s.address),
            station: add(Hipaa::R, "station", &s.station),
            serial: add(Hipaa::M, "device-serial", &s.serial),
            physicians: s
                .physicians
                .iter()
                .map(|p| add(Hipaa::A, "physician", p))
                .collect(),
            operator: add(Hipaa::A, "operator", &s.operator),
        };
        // person names are searched by their parts
        for r in ids.physicians.iter().chain([&ids.operator]) {
            if let IdRef::Site(i) = r {
                let v = identifiers[*i].value.clone();
                identifiers[*i].forms = v.split('^').map(str::to_owned).collect();
            }
        }
        site_ids.push(ids);
    }

    let outs: Vec<PatientOut> = (0..opts.patients)
        .into_par_iter()
        .map(|i| make_patient(opts, i, &sites, &site_ids, sink))
        .collect::<Result<_, _>>()?;

    // Number everything for the whole corpus.
    let site_count = identifiers.len();
    let mut offsets = Vec::with_capacity(outs.len());
    let mut patients = Vec::with_capacity(outs.len());
    for (pi, out) in outs.iter().enumerate() {
        offsets.push(identifiers.len());
        for id in &out.identifiers {
            let mut id = id.clone();
            id.patient = Some(pi);
            identifiers.push(id);
        }
        patients.push(Patient {
            patient_id: out.person.mrn.clone(),
            name: out.person.dicom_name(),
            charset: out.person.script.charset().into(),
            files: Vec::new(),
        });
    }
    debug_assert!(site_count <= offsets.first().copied().unwrap_or(site_count));
    let made_dir = if opts.profile == Profile::Small && !outs.is_empty() {
        Some(make_dicomdir(opts, &outs, &offsets, sink)?)
    } else {
        None
    };
    let number = |patient: Option<usize>| {
        let offsets = &offsets;
        move |r: IdRef| match r {
            IdRef::Site(i) => i,
            // only the DICOMDIR has no patient, and it names identifiers by their global index
            IdRef::Local(i) => offsets[patient.expect("a local identifier has a patient")] + i,
        }
    };
    // (patient, local file number) for every file, then sorted by path
    let mut all: Vec<(Option<usize>, usize, Made)> = Vec::new();
    for (pi, out) in outs.into_iter().enumerate() {
        for (fi, m) in out.files.into_iter().enumerate() {
            all.push((Some(pi), fi, m));
        }
    }
    if let Some(d) = made_dir {
        all.push((None, 0, d));
    }
    all.sort_by(|a, b| a.2.path.cmp(&b.2.path));
    let mut global: HashMap<(usize, usize), usize> = HashMap::new();
    for (gi, (p, fi, _)) in all.iter().enumerate() {
        if let Some(p) = p {
            global.insert((*p, *fi), gi);
            patients[*p].files.push(gi);
        }
    }
    let files = all
        .into_iter()
        .map(|(p, _, m)| {
            let num = number(p);
            File {
                path: m.path,
                kind: m.kind,
                expect: m.expect,
                reason: m.reason,
                patient: p,
                dicom: m.dicom,
                plants: m.plants.into_iter().map(|pl| pl.finish(num)).collect(),
                uids: m.uids,
                references: m
                    .refs
                    .into_iter()
                    .map(|(path, t)| key::Reference {
                        path,
                        target: global[&(p.expect("references are within a patient"), t)],
                    })
                    .collect(),
                pixels: m.pixels,
                burned_in: m
                    .burned
                    .into_iter()
                    .map(|(r, mut b)| {
                        b.identifier = num(r);
                        b
                    })
                    .collect(),
                sha256: m.sha256,
            }
        })
        .collect();
    Ok(Key {
        format: key::FORMAT.into(),
        generator: Generator {
            version: opts.version.clone(),
            seed: opts.seed,
            profile: opts.profile.name().into(),
            patients: opts.patients,
        },
        org_root: ORG_ROOT.into(),
        patients,
        identifiers,
        files,
    })
}

/// The patient's identifiers, registered as they are first used.
struct Ids {
    list: Vec<Identifier>,
    index: HashMap<(String, String), usize>,
}

impl Ids {
    fn add(&mut self, hipaa: Hipaa, kind: &str, value: &str, forms: Vec<String>) -> IdRef {
        let k = (kind.to_owned(), value.to_owned());
        if let Some(&i) = self.index.get(&k) {
            return IdRef::Local(i);
        }
        self.list.push(Identifier {
            patient: None,
            hipaa,
            kind: kind.into(),
            value: value.into(),
            forms,
        });
        self.index.insert(k, self.list.len() - 1);
        IdRef::Local(self.list.len() - 1)
    }

    fn one(&mut self, hipaa: Hipaa, kind: &str, value: &str) -> IdRef {
        self.add(hipaa, kind, value, vec![value.to_owned()])
    }
}

/// The patient's personal identifiers.
struct PatientRefs {
    name: IdRef,
    mrn: IdRef,
    birth: IdRef,
    street: IdRef,
    city: IdRef,
    zip: IdRef,
    phone: IdRef,
    fax: IdRef,
    email: IdRef,
    ssn: IdRef,
    plan: IdRef,
    account: IdRef,
    license: IdRef,
    plate: IdRef,
    url: IdRef,
    ip: IdRef,
    age: Option<IdRef>,
}

struct Study {
    uid: String,
    uid_ref: IdRef,
    date: String,
    date_ref: IdRef,
    accession: String,
    accession_ref: IdRef,
    study_id: String,
    study_id_ref: IdRef,
}

struct Series {
    uid: String,
    uid_ref: IdRef,
    number: i32,
    for_uid: String,
    for_ref: IdRef,
}

/// What one object is.
struct ObjectSpec {
    sop_class: &'static str,
    modality: &'static str,
    syntax: Syntax,
    instance: i32,
    /// Write the patient's name and MRN into the 128-byte preamble.
    preamble: bool,
}

struct Ctx<'a> {
    opts: &'a Options,
    index: usize,
    rng: ChaCha8Rng,
    person: Person,
    site: &'a Site,
    site_ids: &'a SiteIds,
    ids: Ids,
    me: PatientRefs,
    /// Local file number → (SOP Instance UID, its identifier, SOP Class)
    objects: Vec<(String, IdRef, &'static str)>,
    files: Vec<Made>,
    folder: String,
    folder_ids: Vec<IdRef>,
    study_folder_ids: Vec<IdRef>,
    series_count: i32,
    sink: &'a Sink<'a>,
}

fn make_patient(
    opts: &Options,
    index: usize,
    sites: &[Site],
    site_ids: &[SiteIds],
    sink: &Sink<'_>,
) -> Result<PatientOut, GenerateError> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(opts.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64);
    let script = match (opts.profile, index % 4) {
        (Profile::Ct512 { .. } | Profile::Us640 { .. }, _) => Script::Ascii,
        (_, 0) => Script::Ascii,
        (_, 1) => Script::Latin1,
        (_, 2) => Script::Utf8,
        _ => Script::Japanese,
    };
    let old = index % 5 == 4;
    let person = people::person(&mut rng, index, script, old);
    let mut ids = Ids {
        list: Vec::new(),
        index: HashMap::new(),
    };
    let me = PatientRefs {
        name: ids.add(
            Hipaa::A,
            "patient-name",
            &person.dicom_name(),
            person.name_forms(),
        ),
        mrn: ids.one(Hipaa::H, "patient-id", &person.mrn),
        birth: ids.add(
            Hipaa::C,
            "birth-date",
            &person.birth_date,
            date_forms(&person.birth_date),
        ),
        street: ids.one(Hipaa::B, "street", &person.street),
        city: ids.one(Hipaa::B, "city", &person.city),
        zip: ids.one(Hipaa::B, "zip", &person.zip),
        phone: ids.add(
            Hipaa::D,
            "phone",
            &person.phone,
            vec![person.phone.clone(), person.phone.replace('-', "")],
        ),
        fax: ids.one(Hipaa::E, "fax", &person.fax),
        email: ids.one(Hipaa::F, "email", &person.email),
        ssn: ids.one(Hipaa::G, "ssn", &person.ssn),
        plan: ids.one(Hipaa::I, "health-plan", &person.plan),
        account: ids.one(Hipaa::J, "account", &person.account),
        license: ids.one(Hipaa::K, "license", &person.license),
        plate: ids.one(Hipaa::L, "vehicle", &person.plate),
        url: ids.one(Hipaa::N, "url", &person.url),
        ip: ids.one(Hipaa::O, "ip-address", &person.ip),
        age: None,
    };
    let site = &sites[index % sites.len()];
    let folder_family = fold_for_path(&person.family);
    let folder = format!(
        "{}_{}_{}",
        folder_family,
        fold_for_path(&person.given),
        person.mrn
    );
    // (romaji for Japanese patients: the name's forms include them)
    let folder_ids = vec![me.name, me.mrn];
    let mut ctx = Ctx {
        opts,
        index,
        rng,
        person,
        site,
        site_ids: &site_ids[index % site_ids.len()],
        ids,
        me,
        objects: Vec::new(),
        files: Vec::new(),
        folder,
        folder_ids,
        study_folder_ids: Vec::new(),
        series_count: 0,
        sink,
    };
    match opts.profile {
        Profile::Small => small_patient(&mut ctx)?,
        Profile::Ct512 { slices } => ct512_patient(&mut ctx, slices)?,
        Profile::Us640 { frames } => us640_patient(&mut ctx, frames)?,
    }
    let main_ids = [ctx.me.name, ctx.me.mrn, ctx.me.birth];
    Ok(PatientOut {
        person: ctx.person,
        identifiers: ctx.ids.list,
        files: ctx.files,
        main_ids,
    })
}

/// A name as it goes into a folder name: letters kept (accented ones too), others dropped.
fn fold_for_path(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).collect()
}

impl Ctx<'_> {
    /// An empty data set in the patient's character set.
    fn node(&self) -> Node {
        Node::new(self.person.script == Script::Japanese)
    }

    fn uid(&self, parts: &[u64]) -> String {
        let mut s = format!("{ORG_ROOT}.{}.{}", self.opts.seed, self.index + 1);
        for p in parts {
            s.push_str(&format!(".{p}"));
        }
        s
    }

    fn study(&mut self, n: u64, year_from: u32) -> Study {
        let uid = self.uid(&[n]);
        let date = people::date(&mut self.rng, year_from, 2025);
        let accession = format!("A{}{:04}", self.rng.random_range(100_000..999_999u32), n);
        let study_id = format!("S{}", self.rng.random_range(10_000..99_999u32));
        Study {
            uid_ref: self.ids.one(Hipaa::R, "study-uid", &uid),
            uid,
            date_ref: self
                .ids
                .add(Hipaa::C, "study-date", &date, date_forms(&date)),
            date,
            accession_ref: self.ids.one(Hipaa::R, "accession", &accession),
            accession,
            study_id_ref: self.ids.one(Hipaa::R, "study-id", &study_id),
            study_id,
        }
    }

    fn series(&mut self, study: &Study, n: u64) -> Series {
        self.series_count += 1;
        let uid = format!("{}.{n}", study.uid);
        let for_uid = format!("{}.{n}.9", study.uid);
        Series {
            uid_ref: self.ids.one(Hipaa::R, "series-uid", &uid),
            uid,
            // unique in the corpus: with Instance Number, it finds a file's copy
            number: (self.index as i32) * 100 + self.series_count,
            for_ref: self.ids.one(Hipaa::R, "frame-of-reference-uid", &for_uid),
            for_uid,
        }
    }

    fn age_ref(&mut self, study: &Study) -> (String, Option<IdRef>) {
        let by: u32 = self.person.birth_date[0..4].parse().unwrap_or(1950);
        let sy: u32 = study.date[0..4].parse().unwrap_or(2020);
        let age = sy.saturating_sub(by);
        let s = format!("{age:03}Y");
        if age > 89 {
            let r = self.ids.one(Hipaa::C, "age-over-89", &s);
            self.me.age = Some(r);
            (s, Some(r))
        } else {
            (s, None)
        }
    }

    /// The patient, study, series, equipment and general modules, with identity planted in
    /// standard attributes, sequences, private blocks and free text.
    fn base(
        &mut self,
        node: &mut Node,
        study: &Study,
        series: &Series,
        spec: &ObjectSpec,
        heavy: bool,
    ) -> (String, IdRef) {
        let p = self.person.clone();
        let charset = p.script.charset();
        if !charset.is_empty() {
            node.put(Tag(0x0008, 0x0005), VR::CS, charset);
        }
        let sop_uid = format!("{}.{}", series.uid, spec.instance);
        let sop_ref = self.ids.one(Hipaa::R, "sop-instance-uid", &sop_uid);
        node.put(Tag(0x0008, 0x0016), VR::UI, spec.sop_class);
        node.uid(Tag(0x0008, 0x0018), &sop_uid, sop_ref);
        node.plant(
            Tag(0x0008, 0x0020),
            VR::DA,
            &study.date,
            study.date_ref,
            Location::Standard,
        );
        node.plant(
            Tag(0x0008, 0x0021),
            VR::DA,
            &study.date,
            study.date_ref,
            Location::Standard,
        );
        node.plant(
            Tag(0x0008, 0x0023),
            VR::DA,
            &study.date,
            study.date_ref,
            Location::Standard,
        );
        node.put(Tag(0x0008, 0x0030), VR::TM, "101530");
        node.plant(
            Tag(0x0008, 0x0050),
            VR::SH,
            &study.accession,
            study.accession_ref,
            Location::Standard,
        );
        node.put(Tag(0x0008, 0x0060), VR::CS, spec.modality);
        node.put(Tag(0x0008, 0x0070), VR::LO, "UMBRA SYNTH");
        node.plant(
            Tag(0x0008, 0x0080),
            VR::LO,
            &self.site.institution,
            self.site_ids.institution,
            Location::Standard,
        );
        node.plant(
            Tag(0x0008, 0x0081),
            VR::ST,
            &self.site.address,
            self.site_ids.address,
            Location::Standard,
        );
        let doc = self.rng.random_range(0..self.site.physicians.len());
        node.plant(
            Tag(0x0008, 0x0090),
            VR::PN,
            &self.site.physicians[doc],
            self.site_ids.physicians[doc],
            Location::Standard,
        );
        node.plant(
            Tag(0x0008, 0x1010),
            VR::SH,
            &self.site.station,
            self.site_ids.station,
            Location::Standard,
        );
        let text_name = p.text_name();
        let desc = format!("{} {} for {}", spec.modality, "exam", text_name);
        node.plant_text(Tag(0x0008, 0x1030), VR::LO, &desc, &[self.me.name]);
        let series_desc = format!("Series {} MRN {}", series.number, p.mrn);
        node.plant_text(Tag(0x0008, 0x103E), VR::LO, &series_desc, &[self.me.mrn]);
        node.plant(
            Tag(0x0008, 0x1070),
            VR::PN,
            &self.site.operator,
            self.site_ids.operator,
            Location::Standard,
        );
        // patient module
        node.plant(
            Tag(0x0010, 0x0010),
            VR::PN,
            &p.dicom_name(),
            self.me.name,
            Location::Standard,
        );
        node.plant(
            Tag(0x0010, 0x0020),
            VR::LO,
            &p.mrn,
            self.me.mrn,
            Location::Standard,
        );
        node.plant(
            Tag(0x0010, 0x0030),
            VR::DA,
            &p.birth_date,
            self.me.birth,
            Location::Standard,
        );
        node.put(Tag(0x0010, 0x0040), VR::CS, p.sex);
        let (age, age_ref) = self.age_ref(study);
        match age_ref {
            Some(r) => node.plant(Tag(0x0010, 0x1010), VR::AS, &age, r, Location::Standard),
            None => node.put(Tag(0x0010, 0x1010), VR::AS, &age),
        }
        node.plant(
            Tag(0x0018, 0x1000),
            VR::LO,
            &self.site.serial,
            self.site_ids.serial,
            Location::Standard,
        );
        node.put(Tag(0x0018, 0x1020), VR::LO, "1.0");
        node.uid(Tag(0x0020, 0x000D), &study.uid, study.uid_ref);
        node.uid(Tag(0x0020, 0x000E), &series.uid, series.uid_ref);
        node.plant(
            Tag(0x0020, 0x0010),
            VR::SH,
            &study.study_id,
            study.study_id_ref,
            Location::Standard,
        );
        node.put(Tag(0x0020, 0x0011), VR::IS, &series.number.to_string());
        node.put(Tag(0x0020, 0x0013), VR::IS, &spec.instance.to_string());
        if heavy {
            self.heavy(node, study, &p);
        }
        (sop_uid, sop_ref)
    }

    /// The rest of the identity: addresses, numbers, nested sequences, private blocks, the
    /// long free text.
    fn heavy(&mut self, node: &mut Node, study: &Study, p: &Person) {
        let address = format!("{}, {}, {} {}", p.street, p.city, p.state, p.zip);
        node.put(Tag(0x0010, 0x1040), VR::LO, &address);
        for r in [self.me.street, self.me.city, self.me.zip] {
            node.record(tag_path(Tag(0x0010, 0x1040)), r, Location::Standard);
        }
        node.plant(
            Tag(0x0010, 0x2154),
            VR::SH,
            &p.phone,
            self.me.phone,
            Location::Standard,
        );
        node.plant(
            Tag(0x0010, 0x1000),
            VR::LO,
            &p.ssn,
            self.me.ssn,
            Location::Standard,
        );
        node.plant(
            Tag(0x0010, 0x1050),
            VR::LO,
            &p.plan,
            self.me.plan,
            Location::Standard,
        );
        node.plant(
            Tag(0x0038, 0x0010),
            VR::LO,
            &p.account,
            self.me.account,
            Location::Standard,
        );
        // Other Patient IDs Sequence: the MRN again, one deep
        let mut item = node.child();
        item.plant(
            Tag(0x0010, 0x0020),
            VR::LO,
            &p.mrn,
            self.me.mrn,
            Location::Standard,
        );
        item.put(Tag(0x0010, 0x0022), VR::CS, "TEXT");
        node.seq(Tag(0x0010, 0x1002), vec![item]);
        // Request Attributes Sequence: accession and procedure ID, one deep; the requesting
        // physician's e-mail two deep
        let mut req = node.child();
        req.plant(
            Tag(0x0008, 0x0050),
            VR::SH,
            &study.accession,
            study.accession_ref,
            Location::Standard,
        );
        req.plant(
            Tag(0x0040, 0x1001),
            VR::SH,
            &study.accession,
            study.accession_ref,
            Location::Standard,
        );
        let mut who = req.child();
        who.plant(
            Tag(0x0040, 0x1104),
            VR::LT,
            &p.email,
            self.me.email,
            Location::Standard,
        );
        req.seq(Tag(0x0008, 0x0096), vec![who]);
        node.seq(Tag(0x0040, 0x0275), vec![req]);
        // Contributing Equipment Sequence: the institution in a code meaning, two deep
        let mut eq = node.child();
        eq.plant(
            Tag(0x0008, 0x0080),
            VR::LO,
            &self.site.institution,
            self.site_ids.institution,
            Location::Standard,
        );
        eq.plant(
            Tag(0x0018, 0x1000),
            VR::LO,
            &self.site.serial,
            self.site_ids.serial,
            Location::Standard,
        );
        let mut code = eq.child();
        code.put(Tag(0x0008, 0x0100), VR::SH, "INST01");
        code.put(Tag(0x0008, 0x0102), VR::SH, "99SYNTH");
        code.plant(
            Tag(0x0008, 0x0104),
            VR::LO,
            &self.site.institution,
            self.site_ids.institution,
            Location::Standard,
        );
        eq.seq(Tag(0x0008, 0x0082), vec![code]);
        node.seq(Tag(0x0018, 0xA001), vec![eq]);
        // free text with every kind of identifier
        let comments = format!(
            "Pt {} DOB {} MRN {}. Lives at {}, {} {}. Tel {}, fax {}, {}. SSN {}. Plan {}. \
             Acct {}. DL {}. Car {}. Portal {} from {}.",
            p.text_name(),
            slash_date(&p.birth_date),
            p.mrn,
            p.street,
            p.city,
            p.zip,
            p.phone,
            p.fax,
            p.email,
            p.ssn,
            p.plan,
            p.account,
            p.license,
            p.plate,
            p.url,
            p.ip
        );
        let m = &self.me;
        node.plant_text(
            Tag(0x0010, 0x4000),
            VR::LT,
            &comments,
            &[
                m.name, m.birth, m.mrn, m.street, m.city, m.zip, m.phone, m.fax, m.email, m.ssn,
                m.plan, m.account, m.license, m.plate, m.url, m.ip,
            ],
        );
        let img_comment = format!("Seen {} with {}", iso_date(&study.date), p.text_name());
        node.plant_text(
            Tag(0x0020, 0x4000),
            VR::LT,
            &img_comment,
            &[study.date_ref, self.me.name],
        );
        self.private_blocks(node, p);
    }

    /// A safe-listed private element holding identity, and an unknown creator's block with
    /// text, a date, UN bytes and a private sequence.
    fn private_blocks(&mut self, node: &mut Node, p: &Person) {
        // GEMS_ACQU_01 (0019,xx9E) Internal Pulse Sequence Name is on PS3.15's safe list; a
        // technologist's typing puts the MRN in it here.
        node.put(Tag(0x0019, 0x0010), VR::LO, "GEMS_ACQU_01");
        node.plant(
            Tag(0x0019, 0x109E),
            VR::LO,
            &format!("FSE {}", p.mrn),
            self.me.mrn,
            Location::PrivateSafe,
        );
        node.put(Tag(0x0029, 0x0010), VR::LO, "GREYFRIARS RIS 2.1");
        node.plant(
            Tag(0x0029, 0x1010),
            VR::LO,
            &p.dicom_name(),
            self.me.name,
            Location::PrivateUnknown,
        );
        node.plant(
            Tag(0x0029, 0x1011),
            VR::LO,
            &p.mrn,
            self.me.mrn,
            Location::PrivateUnknown,
        );
        node.plant(
            Tag(0x0029, 0x1012),
            VR::DA,
            &p.birth_date,
            self.me.birth,
            Location::PrivateUnknown,
        );
        // UN: an implicit VR little endian (0010,0020) Patient ID element, as a private
        // dictionary-less copy would carry it
        let mut un = Vec::new();
        let v = even(p.mrn.as_bytes().to_vec(), b' ');
        un.extend_from_slice(&[0x10, 0x00, 0x20, 0x00]);
        un.extend_from_slice(&(v.len() as u32).to_le_bytes());
        un.extend_from_slice(&v);
        node.put_value(Tag(0x0029, 0x1020), VR::UN, PrimitiveValue::U8(un.into()));
        node.record(
            tag_path(Tag(0x0029, 0x1020)),
            self.me.mrn,
            Location::PrivateUnknown,
        );
        let mut item = node.child();
        item.plant(
            Tag(0x0010, 0x0010),
            VR::PN,
            &p.dicom_name(),
            self.me.name,
            Location::PrivateUnknown,
        );
        item.plant(
            Tag(0x0010, 0x2154),
            VR::SH,
            &p.phone,
            self.me.phone,
            Location::PrivateUnknown,
        );
        node.seq(Tag(0x0029, 0x1030), vec![item]);
    }

    /// Encodes and writes one object; records the file.
    #[allow(clippy::too_many_arguments)]
    fn write_object(
        &mut self,
        mut node: Node,
        rel: String,
        spec: &ObjectSpec,
        study: &Study,
        series: &Series,
        image: Option<(Image, Vec<(IdRef, BurnedBox)>)>,
        sop: (String, IdRef),
        kind: FileKind,
        expect: (Expect, Option<String>),
    ) -> Result<(), GenerateError> {
        let enc_err = |m: String| GenerateError::Encode {
            path: rel.clone(),
            message: m,
        };
        let mut pixels = None;
        let mut burned = Vec::new();
        if let Some((img, boxes)) = image {
            let (stored, photometric, lossy, native_sha) = match spec.syntax {
                Syntax::JpegLs | Syntax::Jpeg2000 => {
                    let stream = if spec.syntax == Syntax::JpegLs {
                        umbra_pixels::templates::mr_small_jpeg_ls()
                    } else {
                        umbra_pixels::templates::mr_small_jpeg_2000()
                    };
                    let frag = even(stream.to_vec(), 0);
                    (
                        Stored::Fragments(vec![frag]),
                        img.photometric,
                        false,
                        Some(sha256_hex(&img.data)),
                    )
                }
                s => {
                    let enc = umbra_pixels::codec::encode(&img, s.codec())
                        .map_err(|e| enc_err(e.to_string()))?;
                    let lossy = s.codec().is_lossy();
                    let native = (!lossy).then(|| sha256_hex(&img.data));
                    if matches!(s.codec(), Codec::Native) {
                        (
                            Stored::Native(img.data.clone()),
                            enc.photometric,
                            false,
                            native,
                        )
                    } else {
                        let frags = enc.fragments.into_iter().map(|f| even(f, 0)).collect();
                        (Stored::Fragments(frags), enc.photometric, lossy, native)
                    }
                }
            };
            pixel_module(&mut node, &img, photometric);
            let stored_sha = match &stored {
                Stored::Native(d) => sha256_hex(d),
                Stored::Fragments(f) => {
                    let mut h = Sha256::new();
                    for x in f {
                        h.update(x);
                    }
                    hex::encode(h.finalize())
                }
            };
            match stored {
                Stored::Native(d) => {
                    let value = if img.bits_allocated == 16 {
                        let words: Vec<u16> = d
                            .chunks_exact(2)
                            .map(|c| u16::from_le_bytes([c[0], c[1]]))
                            .collect();
                        PrimitiveValue::U16(words.into())
                    } else {
                        PrimitiveValue::U8(d.into())
                    };
                    let vr = if img.bits_allocated == 16 {
                        VR::OW
                    } else {
                        VR::OB
                    };
                    node.put_value(Tag(0x7FE0, 0x0010), vr, value);
                }
                Stored::Fragments(f) => {
                    node.obj.put(DataElement::new(
                        Tag(0x7FE0, 0x0010),
                        VR::OB,
                        PixelFragmentSequence::new(Vec::<u32>::new(), f),
                    ));
                }
            }
            if lossy {
                node.put(Tag(0x0028, 0x2110), VR::CS, "01");
            }
            pixels = Some(Pixels {
                rows: img.rows,
                columns: img.columns,
                frames: img.frames,
                samples: img.samples,
                bits_allocated: img.bits_allocated,
                photometric: photometric.as_str().into(),
                lossy,
                stored_sha256: stored_sha,
                native_sha256: native_sha,
            });
            burned = boxes;
        }
        let preamble = spec.preamble.then(|| {
            for r in [self.me.name, self.me.mrn] {
                node.record("preamble".into(), r, Location::Meta);
            }
            format!("{} {}", self.person.family, self.person.mrn).into_bytes()
        });
        if kind != FileKind::NoPreamble {
            node.record(
                "meta.(0002,0016)".into(),
                self.site_ids.station,
                Location::Meta,
            );
        }
        let mut truncate = None;
        if kind == FileKind::Truncated {
            truncate = pixels.as_ref().map(|p| {
                (p.rows as usize
                    * p.columns as usize
                    * p.samples as usize
                    * p.bits_allocated as usize
                    / 8)
                    / 2
            });
        }
        let mut bytes = encode_file(
            node.obj,
            spec,
            &sop.0,
            &self.site.station,
            kind,
            preamble.as_deref(),
        )
        .map_err(enc_err)?;
        if let Some(cut) = truncate {
            // cut inside the pixel data: the header, and every identifier in it, survives
            bytes.truncate(bytes.len() - cut.max(1));
        }
        self.emit(
            rel,
            bytes,
            kind,
            expect,
            Some(DicomFacts {
                modality: spec.modality.into(),
                sop_class: spec.sop_class.into(),
                sop_instance_uid: sop.0.clone(),
                study_uid: study.uid.clone(),
                series_uid: series.uid.clone(),
                transfer_syntax: if kind == FileKind::NoPreamble {
                    Syntax::ImplicitLe.uid().into()
                } else {
                    spec.syntax.uid().into()
                },
                series_number: series.number,
                instance_number: spec.instance,
                charset: self.person.script.charset().into(),
            }),
            node.plants,
            node.uids,
            node.refs,
            pixels,
            burned,
        )?;
        self.objects.push((sop.0, sop.1, spec.sop_class));
        Ok(())
    }

    /// Hands a file to the sink and records it, with the plants of its folder's name.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        rel: String,
        bytes: Vec<u8>,
        kind: FileKind,
        expect: (Expect, Option<String>),
        dicom: Option<DicomFacts>,
        mut plants: Vec<PendingPlant>,
        uids: Vec<key::UidUse>,
        refs: Vec<(String, usize)>,
        pixels: Option<Pixels>,
        burned: Vec<(IdRef, BurnedBox)>,
    ) -> Result<(), GenerateError> {
        let dir = rel
            .rsplit_once('/')
            .map(|(d, _)| d.to_owned())
            .unwrap_or_default();
        for &r in self.folder_ids.iter().chain(&self.study_folder_ids) {
            plants.push(PendingPlant {
                id: r,
                location: Location::FolderName,
                path: dir.clone(),
                depth: 0,
                sha256: None,
            });
        }
        // a file named after the patient (as report exports often are)
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if name.contains(&fold_for_path(&self.person.family)) {
            plants.push(PendingPlant {
                id: self.me.name,
                location: Location::FileName,
                path: rel.clone(),
                depth: 0,
                sha256: None,
            });
        }
        (self.sink)(&rel, &bytes).map_err(|e| GenerateError::Write {
            path: rel.clone(),
            source: e,
        })?;
        self.files.push(Made {
            sha256: sha256_hex(&bytes),
            path: rel,
            kind,
            expect: expect.0,
            reason: expect.1,
            dicom,
            plants,
            uids,
            refs,
            pixels,
            burned,
        });
        Ok(())
    }
}

enum Stored {
    Native(Vec<u8>),
    Fragments(Vec<Vec<u8>>),
}

fn even(mut v: Vec<u8>, pad: u8) -> Vec<u8> {
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

fn slash_date(d: &str) -> String {
    format!("{}/{}/{}", &d[4..6], &d[6..8], &d[0..4])
}

fn iso_date(d: &str) -> String {
    format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8])
}

/// The Image Pixel module for `img` as stored with `photometric`.
fn pixel_module(node: &mut Node, img: &Image, photometric: Photometric) {
    let us = |v: u16| PrimitiveValue::from(v);
    node.put_value(Tag(0x0028, 0x0002), VR::US, us(img.samples));
    node.put(Tag(0x0028, 0x0004), VR::CS, photometric.as_str());
    if img.samples > 1 {
        node.put_value(Tag(0x0028, 0x0006), VR::US, us(0));
    }
    if img.frames > 1 {
        node.put(Tag(0x0028, 0x0008), VR::IS, &img.frames.to_string());
    }
    node.put_value(Tag(0x0028, 0x0010), VR::US, us(img.rows));
    node.put_value(Tag(0x0028, 0x0011), VR::US, us(img.columns));
    node.put_value(Tag(0x0028, 0x0100), VR::US, us(img.bits_allocated));
    node.put_value(Tag(0x0028, 0x0101), VR::US, us(img.bits_stored));
    node.put_value(Tag(0x0028, 0x0102), VR::US, us(img.bits_stored - 1));
    node.put_value(Tag(0x0028, 0x0103), VR::US, us(u16::from(img.signed)));
}

/// Encodes a data set as a Part 10 file in the spec's transfer syntax (or as a bare implicit VR
/// little endian data set for [`FileKind::NoPreamble`]), with `preamble` bytes at the start.
fn encode_file(
    obj: dicom_object::InMemDicomObject,
    spec: &ObjectSpec,
    sop_uid: &str,
    source_ae: &str,
    kind: FileKind,
    preamble: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if kind == FileKind::NoPreamble {
        use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
        obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| e.to_string())?;
        return Ok(out);
    }
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(spec.syntax.uid())
                .media_storage_sop_class_uid(spec.sop_class)
                .media_storage_sop_instance_uid(sop_uid)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name("UMBRA_SYNTH")
                .source_application_entity_title(source_ae),
        )
        .map_err(|e| e.to_string())?;
    file.write_all(&mut out).map_err(|e| e.to_string())?;
    if let Some(p) = preamble {
        let n = p.len().min(128);
        out[..n].copy_from_slice(&p[..n]);
    }
    Ok(out)
}

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const ENHANCED_CT: &str = "1.2.840.10008.5.1.4.1.1.2.1";
const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const CR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
const DX_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1";
const US_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";
const US_MULTIFRAME: &str = "1.2.840.10008.5.1.4.1.1.3.1";
const SC_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
const COMPREHENSIVE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.33";
const RT_STRUCT: &str = "1.2.840.10008.5.1.4.1.1.481.3";
const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";
const STUDY_COMPONENT_MGMT: &str = "1.2.840.10008.3.1.2.3.2";

const BURNED_REASON: &str = "burned-in text in the pixels";

fn write_expect() -> (Expect, Option<String>) {
    (Expect::Write, None)
}

fn hold(reason: &str) -> (Expect, Option<String>) {
    (Expect::HoldBack, Some(reason.into()))
}

/// Counts the pixels of `rect` in `frame` whose every sample is at least `ink - 32`.
fn count_ink(img: &Image, frame: u32, rect: umbra_pixels::Rect, ink: u32) -> u32 {
    let floor = ink.saturating_sub(32);
    let mut n = 0;
    for row in rect.y..rect.y + rect.height {
        for col in rect.x..rect.x + rect.width {
            if (0..img.samples).all(|s| img.get(frame, row, col, s) >= floor) {
                n += 1;
            }
        }
    }
    n
}

/// Draws `lines` (identifier, text) from the top-left corner and records a box per line.
fn burn(
    img: &mut Image,
    frame: Option<u32>,
    lines: &[(IdRef, String)],
    scale: u16,
) -> Vec<(IdRef, BurnedBox)> {
    let ink = if img.bits_allocated == 8 {
        255
    } else {
        (1u32 << img.bits_stored) - 1
    };
    let mut boxes = Vec::new();
    let mut y = 2u16;
    for (r, text) in lines {
        let (w, h) = font::text_size(text, scale);
        let probe = umbra_pixels::Rect {
            x: 2,
            y,
            width: w.min(img.columns.saturating_sub(2)),
            height: h.min(img.rows.saturating_sub(y)),
        };
        let f0 = frame.unwrap_or(0);
        let before = count_ink(img, f0, probe, ink);
        let rect = font::draw_text(img, frame, 2, y, scale, text, ink);
        let after = count_ink(img, f0, rect, ink);
        boxes.push((
            *r,
            BurnedBox {
                identifier: 0,
                frame,
                x: rect.x,
                y: rect.y,
                width: rect.width,
                height: rect.height,
                ink,
                ink_pixels: after,
                background_pixels: before,
            },
        ));
        y += h + 2;
    }
    boxes
}

/// ASCII letters for text drawn with the bitmap font.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect::<String>()
        .replace('?', "")
}

impl Ctx<'_> {
    fn seed_for(&self, n: u64) -> u64 {
        self.opts.seed ^ ((self.index as u64) << 20) ^ n
    }

    fn image_position(node: &mut Node, series: &Series, z: f64) {
        node.put(Tag(0x0020, 0x0032), VR::DS, &format!("-120\\-120\\{z:.1}"));
        node.put(Tag(0x0020, 0x0037), VR::DS, "1\\0\\0\\0\\1\\0");
        node.uid(Tag(0x0020, 0x0052), &series.for_uid, series.for_ref);
        node.put(Tag(0x0020, 0x1040), VR::LO, "");
        node.put(Tag(0x0028, 0x0030), VR::DS, "0.5\\0.5");
        node.put(Tag(0x0018, 0x0050), VR::DS, "2.5");
    }

    #[allow(clippy::too_many_arguments)]
    fn ct_slice(
        &mut self,
        study: &Study,
        series: &Series,
        k: usize,
        syntax: Syntax,
        size: u16,
        kind: FileKind,
        expect: (Expect, Option<String>),
        rel: String,
    ) -> Result<(), GenerateError> {
        let spec = ObjectSpec {
            sop_class: CT_IMAGE,
            modality: "CT",
            syntax,
            instance: k as i32 + 1,
            preamble: false,
        };
        let mut node = self.node();
        let sop = self.base(&mut node, study, series, &spec, true);
        node.put(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\PRIMARY\\AXIAL");
        Self::image_position(&mut node, series, k as f64 * 2.5);
        node.put(Tag(0x0018, 0x0060), VR::DS, "120");
        node.put(Tag(0x0028, 0x1050), VR::DS, "40");
        node.put(Tag(0x0028, 0x1051), VR::DS, "400");
        node.put(Tag(0x0028, 0x1052), VR::DS, "-1024");
        node.put(Tag(0x0028, 0x1053), VR::DS, "1");
        let mut img = Image::new(size, size, 1, 16, 16, true, Photometric::Monochrome2, 1);
        umbra_pixels::background::fill(
            &mut img,
            Background::Ct,
            self.seed_for(series.number as u64 * 1000 + k as u64),
        );
        self.write_object(
            node,
            rel,
            &spec,
            study,
            series,
            Some((img, Vec::new())),
            sop,
            kind,
            expect,
        )
    }
}

fn small_patient(ctx: &mut Ctx<'_>) -> Result<(), GenerateError> {
    let i = ctx.index;
    let base = ctx.folder.clone();
    // Study 1: CT, enhanced CT, a report and a structure set that refer to the slices.
    let st = ctx.study(1, 2012);
    ctx.study_folder_ids = vec![st.date_ref];
    let dir = format!("{base}/{}_CT", st.date);
    let ct = ctx.series(&st, 1);
    const CT_SYNTAXES: [Syntax; 6] = [
        Syntax::ExplicitLe,
        Syntax::ImplicitLe,
        Syntax::JpegLossless,
        Syntax::Rle,
        Syntax::ExplicitBe,
        Syntax::Deflated,
    ];
    let first_ct = ctx.objects.len();
    for k in 0..3 {
        let syntax = CT_SYNTAXES[(i + k) % CT_SYNTAXES.len()];
        ctx.ct_slice(
            &st,
            &ct,
            k,
            syntax,
            64,
            FileKind::Dicom,
            write_expect(),
            format!("{dir}/IM{:04}.dcm", k + 1),
        )?;
    }
    let cts: Vec<usize> = (first_ct..ctx.objects.len()).collect();
    if i.is_multiple_of(3) {
        // a slice written as a bare data set, as older systems export them
        ctx.ct_slice(
            &st,
            &ct,
            3,
            Syntax::ExplicitLe,
            64,
            FileKind::NoPreamble,
            write_expect(),
            format!("{dir}/IM0004"),
        )?;
    }
    if i.is_multiple_of(2) {
        ctx.ct_slice(
            &st,
            &ct,
            98,
            Syntax::ExplicitLe,
            64,
            FileKind::Truncated,
            hold("truncated file"),
            format!("{dir}/IM0099.dcm"),
        )?;
    }
    enhanced_ct(ctx, &st, &format!("{dir}/ENH0001.dcm"))?;
    sr_report(
        ctx,
        &st,
        &ct,
        &cts,
        &format!("{dir}/report_{}.dcm", fold_for_path(&ctx.person.family)),
    )?;
    rt_struct(ctx, &st, &ct, &cts, &format!("{dir}/RS0001.dcm"))?;
    if i % 2 == 1 {
        let p = &ctx.person;
        let text = format!(
            "Patient: {}\nMRN: {}\nPhone: {}\nPlease call before the follow-up.\n",
            p.dicom_name(),
            p.mrn,
            p.phone
        );
        let mut plants = Vec::new();
        for r in [ctx.me.name, ctx.me.mrn, ctx.me.phone] {
            plants.push(PendingPlant {
                id: r,
                location: Location::NonDicom,
                path: String::new(),
                depth: 0,
                sha256: None,
            });
        }
        ctx.emit(
            format!("{dir}/notes.txt"),
            text.into_bytes(),
            FileKind::NotDicom,
            hold("not DICOM"),
            None,
            plants,
            Vec::new(),
            Vec::new(),
            None,
            Vec::new(),
        )?;
    }

    // Study 2: MR, in the syntaxes only vendored code streams give (JPEG-LS, JPEG 2000), and
    // one more.
    let st2 = ctx.study(2, 2016);
    ctx.study_folder_ids = vec![st2.date_ref];
    let dir2 = format!("{base}/{}_MR", st2.date);
    let mr = ctx.series(&st2, 1);
    let template = if i.is_multiple_of(2) {
        Syntax::JpegLs
    } else {
        Syntax::Jpeg2000
    };
    mr_image(ctx, &st2, &mr, 1, template, &format!("{dir2}/IM0001.dcm"))?;
    let other = if i.is_multiple_of(2) {
        Syntax::JpegLossless
    } else {
        Syntax::ExplicitLe
    };
    mr_image(ctx, &st2, &mr, 2, other, &format!("{dir2}/IM0002.dcm"))?;

    // Study 3: a radiograph with an overlay, ultrasound and a screen capture with burned-in text.
    let st3 = ctx.study(3, 2019);
    ctx.study_folder_ids = vec![st3.date_ref];
    let dir3 = format!("{base}/{}_MIXED", st3.date);
    radiograph(ctx, &st3, &format!("{dir3}/CR0001.dcm"))?;
    let i = ctx.index;
    ultrasound(
        ctx,
        &st3,
        UsShape::small(i, false),
        &format!("{dir3}/US0001.dcm"),
    )?;
    ultrasound(
        ctx,
        &st3,
        UsShape::small(i, true),
        &format!("{dir3}/US0002.dcm"),
    )?;
    screen_capture(ctx, &st3, &format!("{dir3}/SC0001.dcm"))?;
    Ok(())
}

fn ct512_patient(ctx: &mut Ctx<'_>, slices: usize) -> Result<(), GenerateError> {
    let st = ctx.study(1, 2015);
    ctx.study_folder_ids = vec![st.date_ref];
    let ct = ctx.series(&st, 1);
    let dir = format!("{}/CT", ctx.folder);
    for k in 0..slices {
        ctx.ct_slice(
            &st,
            &ct,
            k,
            Syntax::ExplicitLe,
            512,
            FileKind::Dicom,
            write_expect(),
            format!("{dir}/IM{:05}.dcm", k + 1),
        )?;
    }
    Ok(())
}

fn us640_patient(ctx: &mut Ctx<'_>, frames: u32) -> Result<(), GenerateError> {
    let st = ctx.study(1, 2018);
    ctx.study_folder_ids = vec![st.date_ref];
    let dir = format!("{}/US", ctx.folder);
    for (k, syntax) in [Syntax::ExplicitLe, Syntax::JpegBaseline, Syntax::Rle]
        .into_iter()
        .enumerate()
    {
        let shape = UsShape {
            rows: 480,
            columns: 640,
            frames: 1,
            syntax,
            flagged: false,
            scale: 2,
            series: 1 + k as u64,
        };
        ultrasound(ctx, &st, shape, &format!("{dir}/US{:04}.dcm", k + 1))?;
    }
    let clip = UsShape {
        rows: 480,
        columns: 640,
        frames,
        syntax: Syntax::ExplicitLe,
        flagged: false,
        scale: 2,
        series: 4,
    };
    ultrasound(ctx, &st, clip, &format!("{dir}/CLIP0001.dcm"))
}

fn enhanced_ct(ctx: &mut Ctx<'_>, st: &Study, rel: &str) -> Result<(), GenerateError> {
    let series = ctx.series(st, 2);
    let syntax = if ctx.index.is_multiple_of(2) {
        Syntax::ExplicitLe
    } else {
        Syntax::Deflated
    };
    let spec = ObjectSpec {
        sop_class: ENHANCED_CT,
        modality: "CT",
        syntax,
        instance: 1,
        preamble: false,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, &series, &spec, false);
    node.put(
        Tag(0x0008, 0x0008),
        VR::CS,
        "ORIGINAL\\PRIMARY\\AXIAL\\NONE",
    );
    node.uid(Tag(0x0020, 0x0052), &series.for_uid, series.for_ref);
    let dt = format!("{}101530.000000", st.date);
    let dt_ref = ctx.ids.one(Hipaa::C, "acquisition-datetime", &dt);
    node.plant(Tag(0x0008, 0x002A), VR::DT, &dt, dt_ref, Location::Standard);
    let frames = 3u32;
    let mut shared = node.child();
    let mut measures = shared.child();
    measures.put(Tag(0x0028, 0x0030), VR::DS, "0.5\\0.5");
    measures.put(Tag(0x0018, 0x0050), VR::DS, "2.5");
    shared.seq(Tag(0x0028, 0x9110), vec![measures]);
    node.seq(Tag(0x5200, 0x9229), vec![shared]);
    let mut per_frame = Vec::new();
    for f in 0..frames {
        let mut item = node.child();
        let mut content = item.child();
        content.plant(Tag(0x0018, 0x9074), VR::DT, &dt, dt_ref, Location::Standard);
        content.plant(Tag(0x0018, 0x9151), VR::DT, &dt, dt_ref, Location::Standard);
        content.put_value(Tag(0x0020, 0x9157), VR::UL, PrimitiveValue::from(f + 1));
        item.seq(Tag(0x0020, 0x9111), vec![content]);
        let mut pos = item.child();
        pos.put(
            Tag(0x0020, 0x0032),
            VR::DS,
            &format!("-120\\-120\\{:.1}", f as f64 * 2.5),
        );
        item.seq(Tag(0x0020, 0x9113), vec![pos]);
        per_frame.push(item);
    }
    node.seq(Tag(0x5200, 0x9230), per_frame);
    let mut img = Image::new(64, 64, 1, 16, 16, true, Photometric::Monochrome2, frames);
    umbra_pixels::background::fill(&mut img, Background::Ct, ctx.seed_for(7));
    node.put(Tag(0x0028, 0x1052), VR::DS, "-1024");
    node.put(Tag(0x0028, 0x1053), VR::DS, "1");
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        &series,
        Some((img, Vec::new())),
        sop,
        FileKind::Dicom,
        write_expect(),
    )
}

fn sr_text(node: &Node, concept: &str, text: &str, ids: &[IdRef]) -> Node {
    let mut item = node.child();
    item.put(Tag(0x0040, 0xA010), VR::CS, "CONTAINS");
    item.put(Tag(0x0040, 0xA040), VR::CS, "TEXT");
    item.seq(
        Tag(0x0040, 0xA043),
        vec![code(node, "121071", "DCM", concept)],
    );
    item.plant_text(Tag(0x0040, 0xA160), VR::UT, text, ids);
    item
}

fn code(node: &Node, value: &str, scheme: &str, meaning: &str) -> Node {
    let mut c = node.child();
    c.put(Tag(0x0008, 0x0100), VR::SH, value);
    c.put(Tag(0x0008, 0x0102), VR::SH, scheme);
    c.put(Tag(0x0008, 0x0104), VR::LO, meaning);
    c
}

fn sr_report(
    ctx: &mut Ctx<'_>,
    st: &Study,
    ct: &Series,
    cts: &[usize],
    rel: &str,
) -> Result<(), GenerateError> {
    let series = ctx.series(st, 3);
    let syntax = if ctx.index.is_multiple_of(2) {
        Syntax::ExplicitLe
    } else {
        Syntax::ImplicitLe
    };
    let spec = ObjectSpec {
        sop_class: COMPREHENSIVE_SR,
        modality: "SR",
        syntax,
        instance: 1,
        preamble: false,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, &series, &spec, false);
    let p = ctx.person.clone();
    let m = ctx.me.mrn;
    let doc = ctx.site.physicians[0].clone();
    let doc_ref = ctx.site_ids.physicians[0];
    node.put(Tag(0x0040, 0xA040), VR::CS, "CONTAINER");
    node.seq(
        Tag(0x0040, 0xA043),
        vec![code(&node, "18748-4", "LN", "Diagnostic Imaging Report")],
    );
    node.put(Tag(0x0040, 0xA050), VR::CS, "SEPARATE");
    node.put(Tag(0x0040, 0xA491), VR::CS, "COMPLETE");
    node.put(Tag(0x0040, 0xA493), VR::CS, "VERIFIED");
    let mut observer = node.child();
    observer.plant(
        Tag(0x0040, 0xA075),
        VR::PN,
        &doc,
        doc_ref,
        Location::Standard,
    );
    observer.plant(
        Tag(0x0040, 0xA027),
        VR::LO,
        &ctx.site.institution,
        ctx.site_ids.institution,
        Location::Standard,
    );
    let vdt = format!("{}120000", st.date);
    let vdt_ref = ctx.ids.one(Hipaa::C, "verification-datetime", &vdt);
    observer.plant(
        Tag(0x0040, 0xA030),
        VR::DT,
        &vdt,
        vdt_ref,
        Location::Standard,
    );
    node.seq(Tag(0x0040, 0xA073), vec![observer]);
    // the content tree: findings at depth 1, a note at depth 2, an addendum at depth 3
    let findings = sr_text(
        &node,
        "Findings",
        &format!(
            "{} (MRN {}) scanned {}. No acute findings.",
            p.text_name(),
            p.mrn,
            slash_date(&st.date)
        ),
        &[ctx.me.name, m, st.date_ref],
    );
    let addendum = sr_text(
        &node,
        "Addendum",
        &format!(
            "Patient {} called from {} on {}.",
            p.text_name(),
            p.phone,
            iso_date(&st.date)
        ),
        &[ctx.me.name, ctx.me.phone, st.date_ref],
    );
    let mut inner = node.child();
    inner.put(Tag(0x0040, 0xA010), VR::CS, "CONTAINS");
    inner.put(Tag(0x0040, 0xA040), VR::CS, "CONTAINER");
    inner.put(Tag(0x0040, 0xA050), VR::CS, "SEPARATE");
    inner.seq(Tag(0x0040, 0xA730), vec![addendum]);
    let note = sr_text(
        &node,
        "Comment",
        &format!("Discussed with Dr. {} by phone.", doc.replace('^', " ")),
        &[doc_ref],
    );
    let mut section = node.child();
    section.put(Tag(0x0040, 0xA010), VR::CS, "CONTAINS");
    section.put(Tag(0x0040, 0xA040), VR::CS, "CONTAINER");
    section.put(Tag(0x0040, 0xA050), VR::CS, "SEPARATE");
    section.seq(Tag(0x0040, 0xA730), vec![note, inner]);
    // an IMAGE item referring to the first slice
    let (first_uid, first_ref, first_class) = ctx.objects[cts[0]].clone();
    let mut image = node.child();
    image.put(Tag(0x0040, 0xA010), VR::CS, "CONTAINS");
    image.put(Tag(0x0040, 0xA040), VR::CS, "IMAGE");
    let mut r = node.child();
    r.put(Tag(0x0008, 0x1150), VR::UI, first_class);
    r.reference(Tag(0x0008, 0x1155), &first_uid, first_ref, cts[0]);
    image.seq(Tag(0x0008, 0x1199), vec![r]);
    node.seq(Tag(0x0040, 0xA730), vec![findings, section, image]);
    // the evidence: every slice
    let mut ev = node.child();
    ev.uid(Tag(0x0020, 0x000D), &st.uid, st.uid_ref);
    let mut ser = ev.child();
    ser.uid(Tag(0x0020, 0x000E), &ct.uid, ct.uid_ref);
    let mut items = Vec::new();
    for &c in cts {
        let (uid, r, class) = ctx.objects[c].clone();
        let mut it = ser.child();
        it.put(Tag(0x0008, 0x1150), VR::UI, class);
        it.reference(Tag(0x0008, 0x1155), &uid, r, c);
        items.push(it);
    }
    ser.seq(Tag(0x0008, 0x1199), items);
    ev.seq(Tag(0x0008, 0x1115), vec![ser]);
    node.seq(Tag(0x0040, 0xA375), vec![ev]);
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        &series,
        None,
        sop,
        FileKind::Dicom,
        write_expect(),
    )
}

fn rt_struct(
    ctx: &mut Ctx<'_>,
    st: &Study,
    ct: &Series,
    cts: &[usize],
    rel: &str,
) -> Result<(), GenerateError> {
    let series = ctx.series(st, 4);
    let spec = ObjectSpec {
        sop_class: RT_STRUCT,
        modality: "RTSTRUCT",
        syntax: Syntax::ExplicitLe,
        instance: 1,
        preamble: false,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, &series, &spec, false);
    let p = ctx.person.clone();
    node.put(Tag(0x3006, 0x0002), VR::SH, "RTSTRUCT");
    node.plant_text(
        Tag(0x3006, 0x0004),
        VR::LO,
        &format!("Plan {}", p.text_name()),
        &[ctx.me.name],
    );
    node.plant(
        Tag(0x3006, 0x0008),
        VR::DA,
        &st.date,
        st.date_ref,
        Location::Standard,
    );
    let contour_images = |parent: &Node, ctx: &Ctx<'_>, which: &[usize]| {
        which
            .iter()
            .map(|&c| {
                let (uid, r, class) = ctx.objects[c].clone();
                let mut it = parent.child();
                it.put(Tag(0x0008, 0x1150), VR::UI, class);
                it.reference(Tag(0x0008, 0x1155), &uid, r, c);
                it
            })
            .collect::<Vec<_>>()
    };
    // Referenced Frame of Reference > RT Referenced Study > RT Referenced Series > Contour Image
    let mut fr = node.child();
    fr.uid(Tag(0x0020, 0x0052), &ct.for_uid, ct.for_ref);
    let mut rs = fr.child();
    rs.put(Tag(0x0008, 0x1150), VR::UI, STUDY_COMPONENT_MGMT);
    rs.uid(Tag(0x0008, 0x1155), &st.uid, st.uid_ref);
    let mut rser = rs.child();
    rser.uid(Tag(0x0020, 0x000E), &ct.uid, ct.uid_ref);
    let imgs = contour_images(&rser, ctx, cts);
    rser.seq(Tag(0x3006, 0x0016), imgs);
    rs.seq(Tag(0x3006, 0x0014), vec![rser]);
    fr.seq(Tag(0x3006, 0x0012), vec![rs]);
    node.seq(Tag(0x3006, 0x0010), vec![fr]);
    let mut roi = node.child();
    roi.put(Tag(0x3006, 0x0022), VR::IS, "1");
    roi.uid(Tag(0x3006, 0x0024), &ct.for_uid, ct.for_ref);
    roi.put(Tag(0x3006, 0x0026), VR::LO, "GTV");
    node.seq(Tag(0x3006, 0x0020), vec![roi]);
    let mut rc = node.child();
    rc.put(Tag(0x3006, 0x0084), VR::IS, "1");
    let mut contour = rc.child();
    let imgs = contour_images(&contour, ctx, &cts[..1]);
    contour.seq(Tag(0x3006, 0x0016), imgs);
    contour.put(Tag(0x3006, 0x0042), VR::CS, "CLOSED_PLANAR");
    contour.put(Tag(0x3006, 0x0046), VR::IS, "3");
    contour.put(Tag(0x3006, 0x0050), VR::DS, "0\\0\\0\\10\\0\\0\\10\\10\\0");
    rc.seq(Tag(0x3006, 0x0040), vec![contour]);
    node.seq(Tag(0x3006, 0x0039), vec![rc]);
    let mut obs = node.child();
    obs.put(Tag(0x3006, 0x0082), VR::IS, "1");
    obs.put(Tag(0x3006, 0x0084), VR::IS, "1");
    obs.plant(
        Tag(0x3006, 0x00A6),
        VR::PN,
        &ctx.site.physicians[1],
        ctx.site_ids.physicians[1],
        Location::Standard,
    );
    node.seq(Tag(0x3006, 0x0080), vec![obs]);
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        &series,
        None,
        sop,
        FileKind::Dicom,
        write_expect(),
    )
}

fn mr_image(
    ctx: &mut Ctx<'_>,
    st: &Study,
    series: &Series,
    n: i32,
    syntax: Syntax,
    rel: &str,
) -> Result<(), GenerateError> {
    let spec = ObjectSpec {
        sop_class: MR_IMAGE,
        modality: "MR",
        syntax,
        instance: n,
        preamble: false,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, series, &spec, true);
    node.put(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\PRIMARY\\M\\ND");
    Ctx::image_position(&mut node, series, n as f64 * 5.0);
    node.put(Tag(0x0018, 0x0080), VR::DS, "500");
    let img = if matches!(syntax, Syntax::JpegLs | Syntax::Jpeg2000) {
        umbra_pixels::templates::mr_small()
    } else {
        let mut img = Image::new(64, 64, 1, 16, 12, false, Photometric::Monochrome2, 1);
        umbra_pixels::background::fill(
            &mut img,
            Background::Mr,
            ctx.seed_for(series.number as u64 * 1000 + n as u64),
        );
        img
    };
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        series,
        Some((img, Vec::new())),
        sop,
        FileKind::Dicom,
        write_expect(),
    )
}

/// A radiograph (CR or DX) with the MRN drawn in an overlay plane and the name in the preamble.
fn radiograph(ctx: &mut Ctx<'_>, st: &Study, rel: &str) -> Result<(), GenerateError> {
    let dx = ctx.index % 2 == 1;
    let series = ctx.series(st, 1);
    const SYNTAXES: [Syntax; 3] = [Syntax::ExplicitLe, Syntax::ImplicitLe, Syntax::ExplicitBe];
    let syntax = SYNTAXES[ctx.index % 3];
    let spec = ObjectSpec {
        sop_class: if dx { DX_IMAGE } else { CR_IMAGE },
        modality: if dx { "DX" } else { "CR" },
        syntax,
        instance: 1,
        preamble: true,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, &series, &spec, true);
    node.put(Tag(0x0018, 0x0015), VR::CS, "CHEST");
    if dx {
        node.put(Tag(0x0008, 0x0068), VR::CS, "FOR PRESENTATION");
        node.put(Tag(0x0028, 0x1040), VR::CS, "LIN");
    }
    let (rows, cols) = (80u16, 96u16);
    let mut img = Image::new(
        rows,
        cols,
        1,
        16,
        12,
        false,
        if dx {
            Photometric::Monochrome2
        } else {
            Photometric::Monochrome1
        },
        1,
    );
    umbra_pixels::background::fill(
        &mut img,
        Background::Radiograph,
        ctx.seed_for(series.number as u64),
    );
    // the overlay: the MRN drawn in a 1-bit plane
    let mut plane = Image::new(rows, cols, 1, 8, 8, false, Photometric::Monochrome2, 1);
    font::draw_text(
        &mut plane,
        None,
        4,
        4,
        1,
        &format!("MRN {}", ctx.person.mrn),
        1,
    );
    let mut bits = vec![0u8; (rows as usize * cols as usize).div_ceil(8)];
    for (k, &v) in plane.data.iter().enumerate() {
        if v != 0 {
            bits[k / 8] |= 1 << (k % 8);
        }
    }
    let bits = even(bits, 0);
    let us = |v: u16| PrimitiveValue::from(v);
    node.put_value(Tag(0x6000, 0x0010), VR::US, us(rows));
    node.put_value(Tag(0x6000, 0x0011), VR::US, us(cols));
    node.put(Tag(0x6000, 0x0040), VR::CS, "G");
    node.put_value(
        Tag(0x6000, 0x0050),
        VR::SS,
        PrimitiveValue::I16([1i16, 1].as_slice().into()),
    );
    node.put_value(Tag(0x6000, 0x0100), VR::US, us(1));
    node.put_value(Tag(0x6000, 0x0102), VR::US, us(0));
    node.plant(
        Tag(0x6000, 0x0022),
        VR::LO,
        &format!("Marker for {}", ctx.person.text_name()),
        ctx.me.name,
        Location::Overlay,
    );
    node.plant(
        Tag(0x6000, 0x1500),
        VR::LO,
        &format!("MRN {}", ctx.person.mrn),
        ctx.me.mrn,
        Location::Overlay,
    );
    let words: Vec<u16> = bits
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    node.put_value(
        Tag(0x6000, 0x3000),
        VR::OW,
        PrimitiveValue::U16(words.into()),
    );
    node.plants.push(PendingPlant {
        id: ctx.me.mrn,
        location: Location::Overlay,
        path: "(6000,3000)".into(),
        depth: 0,
        sha256: Some(sha256_hex(&bits)),
    });
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        &series,
        Some((img, Vec::new())),
        sop,
        FileKind::Dicom,
        write_expect(),
    )
}

/// Ultrasound with the name, MRN and birth date burned into the top-left corner. Every third
/// says so (Burned In Annotation YES); the others, like many real ones, do not.
/// The shape of one ultrasound object.
struct UsShape {
    rows: u16,
    columns: u16,
    frames: u32,
    syntax: Syntax,
    /// Burned In Annotation YES, or absent (as on many real ones).
    flagged: bool,
    /// Font scale of the burned-in text.
    scale: u16,
    /// Series number within the study.
    series: u64,
}

impl UsShape {
    /// The correctness corpus's small ultrasound: 160x120, single frame (JPEG baseline or RLE)
    /// or three frames (native); every third patient's say Burned In Annotation YES.
    fn small(index: usize, multiframe: bool) -> UsShape {
        UsShape {
            rows: 120,
            columns: 160,
            frames: if multiframe { 3 } else { 1 },
            syntax: if multiframe {
                Syntax::ExplicitLe
            } else if index.is_multiple_of(2) {
                Syntax::JpegBaseline
            } else {
                Syntax::Rle
            },
            flagged: index.is_multiple_of(3),
            scale: 1,
            series: if multiframe { 3 } else { 2 },
        }
    }
}

fn ultrasound(
    ctx: &mut Ctx<'_>,
    st: &Study,
    shape: UsShape,
    rel: &str,
) -> Result<(), GenerateError> {
    let series = ctx.series(st, shape.series);
    let spec = ObjectSpec {
        sop_class: if shape.frames > 1 {
            US_MULTIFRAME
        } else {
            US_IMAGE
        },
        modality: "US",
        syntax: shape.syntax,
        instance: 1,
        preamble: false,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, &series, &spec, true);
    node.put(Tag(0x0008, 0x0008), VR::CS, "ORIGINAL\\PRIMARY\\ABDOMINAL");
    if shape.flagged {
        node.put(Tag(0x0028, 0x0301), VR::CS, "YES");
    }
    let mut img = Image::new(
        shape.rows,
        shape.columns,
        3,
        8,
        8,
        false,
        Photometric::Rgb,
        shape.frames,
    );
    umbra_pixels::background::fill(
        &mut img,
        Background::Ultrasound,
        ctx.seed_for(series.number as u64),
    );
    let p = ctx.person.clone();
    let lines = [
        (
            ctx.me.name,
            ascii(
                &p.dicom_name()
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .replace('^', " "),
            ),
        ),
        (ctx.me.mrn, format!("ID {}", p.mrn)),
        (ctx.me.birth, format!("DOB {}", slash_date(&p.birth_date))),
    ];
    let boxes = burn(&mut img, None, &lines, shape.scale);
    if shape.frames > 1 {
        node.put(Tag(0x0018, 0x1063), VR::DS, "33.3");
    }
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        &series,
        Some((img, boxes)),
        sop,
        FileKind::Dicom,
        hold(BURNED_REASON),
    )
}

/// A screen capture (a dose report) with identity burned in, flagged.
fn screen_capture(ctx: &mut Ctx<'_>, st: &Study, rel: &str) -> Result<(), GenerateError> {
    let series = ctx.series(st, 4);
    let spec = ObjectSpec {
        sop_class: SC_IMAGE,
        modality: "OT",
        syntax: Syntax::ExplicitLe,
        instance: 1,
        preamble: false,
    };
    let mut node = ctx.node();
    let sop = ctx.base(&mut node, st, &series, &spec, false);
    node.put(Tag(0x0008, 0x0064), VR::CS, "WSD");
    node.put(Tag(0x0028, 0x0301), VR::CS, "YES");
    let mut img = Image::new(96, 160, 1, 8, 8, false, Photometric::Monochrome2, 1);
    umbra_pixels::background::fill(
        &mut img,
        Background::Screen,
        ctx.seed_for(series.number as u64),
    );
    let p = ctx.person.clone();
    let lines = [
        (ctx.me.name, format!("Name: {}", ascii(&p.family))),
        (ctx.me.mrn, format!("MRN: {}", p.mrn)),
        (st.date_ref, format!("Date: {}", slash_date(&st.date))),
    ];
    let boxes = burn(&mut img, None, &lines, 1);
    ctx.write_object(
        node,
        rel.into(),
        &spec,
        st,
        &series,
        Some((img, boxes)),
        sop,
        FileKind::Dicom,
        hold(BURNED_REASON),
    )
}

/// A DICOMDIR at the corpus root listing every patient (name, ID, birth date) in PATIENT
/// records, UTF-8. (Record offsets are not maintained: it is a hazard to recognise, not an index
/// to browse.)
fn make_dicomdir(
    opts: &Options,
    outs: &[PatientOut],
    offsets: &[usize],
    sink: &Sink<'_>,
) -> Result<Made, GenerateError> {
    let mut node = Node::new(false);
    node.put(Tag(0x0004, 0x1130), VR::CS, "UMBRA_SYNTH");
    node.put(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 192");
    node.put_value(Tag(0x0004, 0x1200), VR::UL, PrimitiveValue::from(0u32));
    node.put_value(Tag(0x0004, 0x1202), VR::UL, PrimitiveValue::from(0u32));
    node.put_value(Tag(0x0004, 0x1212), VR::US, PrimitiveValue::from(0u16));
    let mut records = Vec::new();
    for (pi, out) in outs.iter().enumerate() {
        let g = |r: IdRef| match r {
            IdRef::Local(i) => IdRef::Site(offsets[pi] + i),
            r => r,
        };
        let p = &out.person;
        let mut rec = node.child();
        rec.put_value(Tag(0x0004, 0x1400), VR::UL, PrimitiveValue::from(0u32));
        rec.put_value(Tag(0x0004, 0x1410), VR::US, PrimitiveValue::from(0xFFFFu16));
        rec.put_value(Tag(0x0004, 0x1420), VR::UL, PrimitiveValue::from(0u32));
        rec.put(Tag(0x0004, 0x1430), VR::CS, "PATIENT");
        // (the record sequence precedes the top level's character set: each record says its own)
        rec.put(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 192");
        rec.plant(
            Tag(0x0010, 0x0010),
            VR::PN,
            &p.dicom_name(),
            g(out.main_ids[0]),
            Location::Directory,
        );
        rec.plant(
            Tag(0x0010, 0x0020),
            VR::LO,
            &p.mrn,
            g(out.main_ids[1]),
            Location::Directory,
        );
        rec.plant(
            Tag(0x0010, 0x0030),
            VR::DA,
            &p.birth_date,
            g(out.main_ids[2]),
            Location::Directory,
        );
        records.push(rec);
    }
    node.seq(Tag(0x0004, 0x1220), records);
    let uid = format!("{ORG_ROOT}.{}.0", opts.seed);
    let file = node
        .obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(Syntax::ExplicitLe.uid())
                .media_storage_sop_class_uid(DICOMDIR_CLASS)
                .media_storage_sop_instance_uid(&uid)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name("UMBRA_SYNTH"),
        )
        .map_err(|e| GenerateError::Encode {
            path: "DICOMDIR".into(),
            message: e.to_string(),
        })?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| GenerateError::Encode {
            path: "DICOMDIR".into(),
            message: e.to_string(),
        })?;
    sink("DICOMDIR", &bytes).map_err(|e| GenerateError::Write {
        path: "DICOMDIR".into(),
        source: e,
    })?;
    Ok(Made {
        path: "DICOMDIR".into(),
        kind: FileKind::Dicomdir,
        expect: Expect::HoldBack,
        reason: Some("a DICOMDIR names every patient".into()),
        dicom: None,
        plants: node.plants,
        uids: Vec::new(),
        refs: Vec::new(),
        pixels: None,
        burned: Vec::new(),
        sha256: sha256_hex(&bytes),
    })
}
