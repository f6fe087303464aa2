//! The scorer: reads a key and any de-identifier's output folder and counts, action by action,
//! what the tool did right. MIDI-B style: the score is correct actions over required actions.
//!
//! Required actions:
//! - **remove-identity**: every plant (an identifier at a place in a file) and every box of
//!   burned-in text; correct when the identifier is no longer at that place in the file's
//!   copy (or the file was not released). A copy that holds an identifier somewhere it was not
//!   planted (moved, copied into another attribute) fails one extra action per identifier.
//! - **release**: every file the key says to write; correct when a copy is in the output.
//! - **hold-back**: every file the key says to hold back; correct when no copy is in the output
//!   or (burned-in text, DICOMDIR) the copy carries none of its identifiers.
//! - **uid-consistent**: every original UID seen in the output; correct when all its uses map to
//!   one new UID that no other original UID maps to.
//! - **reference-kept**: every reference between two released objects; correct when it points
//!   at the target's new SOP Instance UID.
//! - **patient-consistent**: every patient with released objects; correct when they all carry
//!   one Patient ID that no other patient's objects carry.
//! - **pixels-kept**: every released image without burned-in text; correct when its pixel data
//!   is unchanged (same stored bytes, or lossless data that decodes to the same pixels).
//!
//! A copy is found by SOP Class UID, Series Number and Instance Number (unique in a generated
//! corpus, identifying no one, and kept by de-identifiers), else by identical content, else by
//! the same relative path (a tool that mirrors the input tree).

use crate::key::{Expect, File, FileKind, Hipaa, Key, Location};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Why checking could not start.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The key cannot be read or is not a key.
    #[error("{0}")]
    Key(String),
    /// The output folder cannot be listed.
    #[error("{0}")]
    Output(String),
}

/// The actions a de-identifier is scored on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Remove or replace an identifier at one place.
    RemoveIdentity,
    /// Release a file that should be released.
    Release,
    /// Hold back a file that should not be released as it is.
    HoldBack,
    /// Map every use of an original UID to one new UID.
    UidConsistent,
    /// Keep a reference pointing at its target.
    ReferenceKept,
    /// Give each patient one pseudonym of their own.
    PatientConsistent,
    /// Keep pixel data unchanged.
    PixelsKept,
}

impl Action {
    /// All actions, in report order.
    pub const ALL: [Action; 7] = [
        Action::RemoveIdentity,
        Action::Release,
        Action::HoldBack,
        Action::UidConsistent,
        Action::ReferenceKept,
        Action::PatientConsistent,
        Action::PixelsKept,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Action::RemoveIdentity => "remove-identity",
            Action::Release => "release",
            Action::HoldBack => "hold-back",
            Action::UidConsistent => "uid-consistent",
            Action::ReferenceKept => "reference-kept",
            Action::PatientConsistent => "patient-consistent",
            Action::PixelsKept => "pixels-kept",
        }
    }
}

/// Required and correct counts.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    /// Actions required.
    pub required: usize,
    /// Actions done right.
    pub correct: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.required += 1;
        self.correct += usize::from(ok);
    }

    /// Correct over required, as a percentage (100 when nothing was required).
    pub fn percent(&self) -> f64 {
        if self.required == 0 {
            100.0
        } else {
            100.0 * self.correct as f64 / self.required as f64
        }
    }
}

/// One action done wrong. Names kinds, places and files; never an identifier's value.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The action.
    pub action: Action,
    /// The key's file (path in the corpus), when the action concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The output file, when one is involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The place (`private-unknown`, ...), for identity left behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The attribute path or file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The identifier's kind (`patient-name`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The identifier's HIPAA class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hipaa: Option<Hipaa>,
    /// What was wrong.
    pub detail: String,
}

/// The scorer's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// All actions together: the score.
    pub score: Tally,
    /// By action.
    pub actions: BTreeMap<Action, Tally>,
    /// remove-identity by HIPAA class: required = planted, correct = removed.
    pub hipaa: BTreeMap<Hipaa, Tally>,
    /// remove-identity by place.
    pub locations: BTreeMap<Location, Tally>,
    /// Files in the output folder.
    pub output_files: usize,
    /// Output files that are no copy of any corpus file.
    pub unmatched_outputs: usize,
    /// Every action done wrong.
    pub failures: Vec<Failure>,
}

impl Report {
    /// True when every required action was done right.
    pub fn perfect(&self) -> bool {
        self.score.correct == self.score.required
    }
}

/// An output file as the scorer sees it, once read: its pixel data judged and dropped, so that
/// memory holds headers, not images.
struct Out {
    rel: String,
    /// The bytes, kept only when the file is not DICOM that parses (searched whole).
    bytes: Vec<u8>,
    obj: Option<Parsed>,
    /// The corpus file it is a copy of.
    matched: Option<usize>,
    /// Identifiers of the matched file found in the copy, by path (`""` for unparsed bytes).
    found: HashMap<String, HashSet<usize>>,
    /// Identifiers found in the copy's folder path and in its file name.
    in_dir: HashSet<usize>,
    in_name: HashSet<usize>,
    /// For an image to be kept: whether its pixels are the original's.
    pixels_kept: Option<bool>,
    /// Per burned-in box of the matched file: whether its text is still there (or why that
    /// cannot be told).
    residual: Vec<Result<bool, &'static str>>,
}

/// How copies are found.
struct Matcher<'k> {
    by_number: HashMap<(&'k str, i32, i32), usize>,
    by_sha: HashMap<&'k str, usize>,
    by_path: HashMap<&'k str, usize>,
    dicomdir: Option<usize>,
}

impl<'k> Matcher<'k> {
    fn new(key: &'k Key) -> Self {
        let mut m = Matcher {
            by_number: HashMap::new(),
            by_sha: HashMap::new(),
            by_path: HashMap::new(),
            dicomdir: None,
        };
        for (i, f) in key.files.iter().enumerate() {
            if let Some(d) = &f.dicom {
                m.by_number.insert(
                    (d.sop_class.as_str(), d.series_number, d.instance_number),
                    i,
                );
            }
            m.by_sha.insert(f.sha256.as_str(), i);
            m.by_path.insert(f.path.as_str(), i);
            if f.kind == FileKind::Dicomdir {
                m.dicomdir = Some(i);
            }
        }
        m
    }

    fn find(&self, obj: Option<&Parsed>, sha256: &str, rel: &str) -> Option<usize> {
        let by_num = obj.and_then(|p| {
            let k = (p.sop_class.as_str(), p.series_number?, p.instance_number?);
            self.by_number.get(&k).copied()
        });
        by_num
            .or_else(|| self.by_sha.get(sha256).copied())
            .or_else(|| {
                obj.filter(|p| p.sop_class == "1.2.840.10008.1.3.10")
                    .and(self.dicomdir)
            })
            // a tool that mirrors the input tree but drops the numbers
            .or_else(|| self.by_path.get(rel).copied())
    }
}

/// Reads one output and gathers everything the score needs from it.
fn read_output(key: &Key, matcher: &Matcher<'_>, root: &Path, p: &Path) -> Out {
    let bytes = std::fs::read(p).unwrap_or_default();
    let rel = p
        .strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/");
    let mut obj = parse(&bytes);
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let matched = matcher.find(obj.as_ref(), &sha256, &rel);
    let mut out = Out {
        rel,
        bytes: Vec::new(),
        obj: None,
        matched,
        found: HashMap::new(),
        in_dir: HashSet::new(),
        in_name: HashSet::new(),
        pixels_kept: None,
        residual: Vec::new(),
    };
    if let Some(fi) = matched {
        let f = &key.files[fi];
        let mut ids: Vec<usize> = f.plants.iter().map(|p| p.identifier).collect();
        ids.extend(f.burned_in.iter().map(|b| b.identifier));
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            let sr = Searcher::new(key, &ids);
            match &obj {
                Some(parsed) => {
                    for (path, value) in &parsed.values {
                        let mut hits = HashSet::new();
                        sr.find(value, &mut hits);
                        if !hits.is_empty() {
                            out.found.entry(path.clone()).or_default().extend(hits);
                        }
                    }
                }
                None => {
                    let mut hits = HashSet::new();
                    sr.find(&bytes, &mut hits);
                    out.found.insert(String::new(), hits);
                }
            }
            let (dir, name) = out.rel.rsplit_once('/').unwrap_or(("", out.rel.as_str()));
            sr.find(dir.as_bytes(), &mut out.in_dir);
            sr.find(name.as_bytes(), &mut out.in_name);
        }
        if let Some(parsed) = &obj {
            out.residual = f
                .burned_in
                .iter()
                .map(|b| residual_text(f, parsed, b))
                .collect();
            if f.expect == Expect::Write && f.burned_in.is_empty() {
                out.pixels_kept = f.pixels.as_ref().map(|px| pixels_kept(px, parsed));
            }
        } else {
            out.residual =
                vec![Err("the copy cannot be read to check its pixels"); f.burned_in.len()];
            out.pixels_kept = f.pixels.as_ref().map(|_| false);
        }
    }
    match &mut obj {
        Some(parsed) => parsed.pixels = None,
        None => out.bytes = bytes,
    }
    out.obj = obj;
    out
}

/// A parsed output: its elements flattened with paths.
struct Parsed {
    /// (path, value bytes as found) for every element with a value, pixel data aside.
    values: Vec<(String, Vec<u8>)>,
    sop_class: String,
    sop_instance: String,
    series_number: Option<i32>,
    instance_number: Option<i32>,
    patient_id: Option<String>,
    transfer_syntax: String,
    pixels: Option<PixelValue>,
}

enum PixelValue {
    Native(Vec<u8>),
    Fragments(Vec<Vec<u8>>),
}

/// Scores the output folder `out` against `key`.
pub fn check(key: &Key, out: &Path) -> Result<Report, CheckError> {
    let files = list(out)?;
    let matcher = Matcher::new(key);
    let outs: Vec<Out> = files
        .par_iter()
        .map(|p| read_output(key, &matcher, out, p))
        .collect();
    Ok(score(key, &outs))
}

/// Reads and checks a key file.
pub fn read_key(path: &Path) -> Result<Key, CheckError> {
    let text = std::fs::read(path)
        .map_err(|e| CheckError::Key(format!("cannot read {}: {e}", path.display())))?;
    let key: Key = serde_json::from_slice(&text)
        .map_err(|e| CheckError::Key(format!("{} is not a synth key: {e}", path.display())))?;
    if key.format != crate::key::FORMAT {
        return Err(CheckError::Key(format!(
            "{} has format {:?}; this scorer reads {:?}",
            path.display(),
            key.format,
            crate::key::FORMAT
        )));
    }
    Ok(key)
}

fn list(out: &Path) -> Result<Vec<PathBuf>, CheckError> {
    if !out.is_dir() {
        return Err(CheckError::Output(format!(
            "{} is not a folder",
            out.display()
        )));
    }
    let mut v = Vec::new();
    for e in walkdir::WalkDir::new(out).sort_by_file_name() {
        let e = e.map_err(|e| CheckError::Output(format!("cannot list {}: {e}", out.display())))?;
        if e.file_type().is_file() {
            v.push(e.into_path());
        }
    }
    Ok(v)
}

fn tag_path(tag: Tag) -> String {
    format!("({:04X},{:04X})", tag.0, tag.1)
}

/// Reads an output as DICOM (Part 10, or a bare implicit VR little endian data set).
fn parse(bytes: &[u8]) -> Option<Parsed> {
    let (meta_values, ts, obj) = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        let f = dicom_object::OpenFileOptions::new()
            .from_reader(&bytes[128..])
            .ok()?;
        let meta = f.meta();
        let mut mv = vec![(
            "meta.(0002,0016)".to_owned(),
            meta.source_application_entity_title
                .clone()
                .unwrap_or_default()
                .into_bytes(),
        )];
        mv.push(("preamble".to_owned(), bytes[..128].to_vec()));
        let ts = meta.transfer_syntax().trim_end_matches('\0').to_owned();
        (mv, ts, f.into_inner())
    } else {
        use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
        if !looks_like_bare_dataset(bytes) {
            return None;
        }
        let obj =
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .ok()?;
        // a bare data set must at least look like one
        obj.element(Tag(0x0008, 0x0016)).ok()?;
        (Vec::new(), "1.2.840.10008.1.2".to_owned(), obj)
    };
    let mut values = meta_values;
    let mut pixels = None;
    walk(&obj, "", &mut values, &mut pixels);
    let s = |t: Tag| {
        obj.element(t)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_owned())
    };
    let int = |t: Tag| s(t).and_then(|v| v.parse::<i32>().ok());
    Some(Parsed {
        values,
        sop_class: s(Tag(0x0008, 0x0016)).unwrap_or_default(),
        sop_instance: s(Tag(0x0008, 0x0018)).unwrap_or_default(),
        series_number: int(Tag(0x0020, 0x0011)),
        instance_number: int(Tag(0x0020, 0x0013)),
        patient_id: s(Tag(0x0010, 0x0020)),
        transfer_syntax: ts,
        pixels,
    })
}

/// Whether `bytes` could be a bare implicit VR little endian data set: top-level element
/// headers in ascending tag order whose lengths stay inside the file, up to the first undefined
/// length. (dicom-rs allocates a declared length before reading it; text read as a data set
/// declares gigabytes.)
fn looks_like_bare_dataset(bytes: &[u8]) -> bool {
    let mut at = 0usize;
    let mut last = 0u32;
    let mut elements = 0;
    while at + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let element = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
        let tag = (u32::from(group) << 16) | u32::from(element);
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if tag < last || group < 0x0008 && elements == 0 {
            return false;
        }
        last = tag;
        elements += 1;
        if len == u32::MAX {
            return true;
        }
        at = match (at + 8).checked_add(len as usize) {
            Some(next) if next <= bytes.len() => next,
            _ => return false,
        };
    }
    elements > 0 && at == bytes.len()
}

fn walk(
    obj: &InMemDicomObject,
    prefix: &str,
    out: &mut Vec<(String, Vec<u8>)>,
    pixels: &mut Option<PixelValue>,
) {
    for e in obj {
        let tag = e.tag();
        let path = format!("{prefix}{}", tag_path(tag));
        match e.value() {
            Value::Sequence(seq) => {
                for (i, item) in seq.items().iter().enumerate() {
                    walk(item, &format!("{path}[{i}]."), out, pixels);
                }
            }
            Value::PixelSequence(seq) => {
                if prefix.is_empty() && tag == Tag(0x7FE0, 0x0010) {
                    *pixels = Some(PixelValue::Fragments(seq.fragments().to_vec()));
                }
            }
            Value::Primitive(p) => {
                if prefix.is_empty() && tag == Tag(0x7FE0, 0x0010) {
                    *pixels = Some(PixelValue::Native(native_bytes(p)));
                    continue;
                }
                let bytes = match p {
                    PrimitiveValue::Str(s) => s.as_bytes().to_vec(),
                    PrimitiveValue::Strs(v) => v.join("\\").into_bytes(),
                    PrimitiveValue::U16(_) if e.vr() == VR::OW => native_bytes(p),
                    other => other.to_bytes().into_owned(),
                };
                out.push((path, bytes));
            }
        }
    }
}

/// Little-endian bytes of a primitive value (words from big endian files come back as words).
fn native_bytes(p: &PrimitiveValue) -> Vec<u8> {
    match p {
        PrimitiveValue::U16(w) => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
        PrimitiveValue::I16(w) => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
        other => other.to_bytes().into_owned(),
    }
}

/// One identifier's search patterns, in every encoding the corpus uses.
struct Searcher {
    ac: AhoCorasick,
    /// Pattern index → (identifier index, needs word boundaries).
    owner: Vec<(usize, bool)>,
}

impl Searcher {
    fn new(key: &Key, ids: &[usize]) -> Searcher {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut owner = Vec::new();
        for &id in ids {
            let mut seen = HashSet::new();
            for form in &key.identifiers[id].forms {
                for variant in [
                    form.clone(),
                    form.to_uppercase(),
                    form.to_lowercase(),
                    title(form),
                ] {
                    for bytes in encodings(&variant) {
                        if bytes.len() >= 3 && seen.insert(bytes.clone()) {
                            let boundary = bytes[0] != 0x1B;
                            patterns.push(bytes);
                            owner.push((id, boundary));
                        }
                    }
                }
            }
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .expect("patterns are plain bytes");
        Searcher { ac, owner }
    }

    /// Identifiers found in `hay` as whole words or numbers.
    fn find(&self, hay: &[u8], found: &mut HashSet<usize>) {
        for m in self.ac.find_overlapping_iter(hay) {
            let (id, boundary) = self.owner[m.pattern().as_usize()];
            if found.contains(&id) {
                continue;
            }
            if boundary {
                let word = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
                let before = m.start().checked_sub(1).map(|i| hay[i]);
                let after = hay.get(m.end()).copied();
                // a boundary is needed only on a side where the pattern itself is a word
                // character (`MRN 123` inside `XMRN 1234` is not a match; `.123` is)
                let first = hay[m.start()];
                let last = hay[m.end() - 1];
                if (word(first) && before.is_some_and(word))
                    || (word(last) && after.is_some_and(word))
                {
                    continue;
                }
            }
            found.insert(id);
        }
    }
}

fn title(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// `s` in UTF-8, Latin-1 (when it can be) and ISO 2022 Japanese (when it needs it; the
/// trailing return to ASCII left off so the text may continue in JIS X 0208).
fn encodings(s: &str) -> Vec<Vec<u8>> {
    let mut v = vec![s.as_bytes().to_vec()];
    if !s.is_ascii() {
        if s.chars().all(|c| (c as u32) < 0x100) {
            v.push(s.chars().map(|c| c as u8).collect());
        }
        let (jp, _, bad) = encoding_rs::ISO_2022_JP.encode(s);
        if !bad {
            let mut jp = jp.into_owned();
            if jp.ends_with(b"\x1b(B") {
                jp.truncate(jp.len() - 3);
            }
            v.push(jp);
        }
    }
    v
}

struct Scorer<'k> {
    key: &'k Key,
    report: Report,
}

impl Scorer<'_> {
    fn tally(&mut self, action: Action, ok: bool) {
        self.report.score.add(ok);
        self.report.actions.entry(action).or_default().add(ok);
    }

    /// One remove-identity action, counted by HIPAA class and, for a planted place, by place.
    fn identity(&mut self, hipaa: Hipaa, location: Option<Location>, ok: bool) {
        self.tally(Action::RemoveIdentity, ok);
        self.report.hipaa.entry(hipaa).or_default().add(ok);
        if let Some(l) = location {
            self.report.locations.entry(l).or_default().add(ok);
        }
    }

    fn fail(&mut self, f: Failure) {
        self.report.failures.push(f);
    }
}

fn failure(
    action: Action,
    file: Option<&File>,
    output: Option<&Out>,
    detail: impl Into<String>,
) -> Failure {
    Failure {
        action,
        file: file.map(|f| f.path.clone()),
        output: output.map(|o| o.rel.clone()),
        location: None,
        path: None,
        kind: None,
        hipaa: None,
        detail: detail.into(),
    }
}

/// Scores already-read outputs.
fn score(key: &Key, outs: &[Out]) -> Report {
    let mut s = Scorer {
        key,
        report: Report {
            score: Tally::default(),
            actions: BTreeMap::new(),
            hipaa: BTreeMap::new(),
            locations: BTreeMap::new(),
            output_files: outs.len(),
            unmatched_outputs: 0,
            failures: Vec::new(),
        },
    };
    let mut copies: Vec<Vec<usize>> = vec![Vec::new(); key.files.len()];
    let mut unmatched = Vec::new();
    for (oi, o) in outs.iter().enumerate() {
        match o.matched {
            Some(fi) => copies[fi].push(oi),
            None => unmatched.push(oi),
        }
    }
    s.report.unmatched_outputs = unmatched.len();

    // identity, release, hold-back, pixels: file by file
    for (fi, f) in key.files.iter().enumerate() {
        let mine: Vec<&Out> = copies[fi].iter().map(|&i| &outs[i]).collect();
        let mut leaked_any = false;
        let found: Vec<&HashMap<String, HashSet<usize>>> = mine.iter().map(|o| &o.found).collect();
        let planted_paths: HashSet<&str> = f.plants.iter().map(|p| p.path.as_str()).collect();
        for plant in &f.plants {
            let ident = &key.identifiers[plant.identifier];
            let mut leak_in: Option<&Out> = None;
            for (k, o) in mine.iter().enumerate() {
                let leaked = match plant.location {
                    Location::FolderName => o.in_dir.contains(&plant.identifier),
                    Location::FileName => o.in_name.contains(&plant.identifier),
                    // a copy that cannot be parsed (or is no DICOM at all) has no paths: an
                    // identifier anywhere in it is left at every place it was planted
                    _ if o.obj.is_none() => {
                        found[k].values().any(|h| h.contains(&plant.identifier))
                    }
                    Location::NonDicom => false,
                    _ if plant.sha256.is_some() => o.obj.as_ref().is_some_and(|p| {
                        p.values.iter().any(|(path, bytes)| {
                            *path == plant.path
                                && plant.sha256.as_deref()
                                    == Some(&hex::encode(Sha256::digest(bytes)))
                        })
                    }),
                    _ => found[k]
                        .get(&plant.path)
                        .is_some_and(|h| h.contains(&plant.identifier)),
                };
                if leaked {
                    leak_in = Some(o);
                    break;
                }
            }
            let ok = leak_in.is_none();
            leaked_any |= !ok;
            s.identity(ident.hipaa, Some(plant.location), ok);
            if let Some(o) = leak_in {
                s.fail(Failure {
                    location: Some(plant.location),
                    path: Some(plant.path.clone()),
                    kind: Some(ident.kind.clone()),
                    hipaa: Some(ident.hipaa),
                    ..failure(
                        Action::RemoveIdentity,
                        Some(f),
                        Some(o),
                        "identifier left in place",
                    )
                });
            }
        }
        // identity found where nothing was planted
        for (k, o) in mine.iter().enumerate().filter(|(_, o)| o.obj.is_some()) {
            let mut extra: BTreeMap<usize, String> = BTreeMap::new();
            for (path, hits) in found[k] {
                if planted_paths.contains(path.as_str()) {
                    continue;
                }
                for &id in hits {
                    extra.entry(id).or_insert_with(|| path.clone());
                }
            }
            for (id, path) in extra {
                let ident = &key.identifiers[id];
                leaked_any = true;
                s.identity(ident.hipaa, None, false);
                s.fail(Failure {
                    path: Some(path),
                    kind: Some(ident.kind.clone()),
                    hipaa: Some(ident.hipaa),
                    ..failure(
                        Action::RemoveIdentity,
                        Some(f),
                        Some(o),
                        "identifier copied to a place it was not planted",
                    )
                });
            }
        }
        // burned-in text
        for (bi, b) in f.burned_in.iter().enumerate() {
            let ident = &key.identifiers[b.identifier];
            let mut left: Option<(&Out, &str)> = None;
            for o in &mine {
                match o.residual.get(bi).copied().unwrap_or(Ok(false)) {
                    Ok(false) => {}
                    Ok(true) => left = Some((o, "burned-in text still in the pixels")),
                    Err(why) => left = Some((o, why)),
                }
                if left.is_some() {
                    break;
                }
            }
            let ok = left.is_none();
            leaked_any |= !ok;
            s.identity(ident.hipaa, Some(Location::Pixels), ok);
            if let Some((o, why)) = left {
                s.fail(Failure {
                    location: Some(Location::Pixels),
                    path: Some(format!("box {}x{}+{}+{}", b.width, b.height, b.x, b.y)),
                    kind: Some(ident.kind.clone()),
                    hipaa: Some(ident.hipaa),
                    ..failure(Action::RemoveIdentity, Some(f), Some(o), why)
                });
            }
        }
        match f.expect {
            Expect::Write => {
                let ok = !mine.is_empty();
                s.tally(Action::Release, ok);
                if !ok {
                    s.fail(failure(Action::Release, Some(f), None, "not in the output"));
                }
            }
            Expect::HoldBack => {
                // absent, or present with none of its identity (cleaned burned-in text, a
                // rebuilt DICOMDIR); a truncated or non-DICOM file must stay out whole
                let strict = matches!(f.kind, FileKind::Truncated | FileKind::NotDicom);
                let ok = mine.is_empty() || (!strict && !leaked_any);
                s.tally(Action::HoldBack, ok);
                if !ok {
                    let why = f.reason.as_deref().unwrap_or("to be held back");
                    s.fail(failure(
                        Action::HoldBack,
                        Some(f),
                        mine.first().copied(),
                        format!("released ({why})"),
                    ));
                }
            }
        }
        if f.expect == Expect::Write && f.burned_in.is_empty() && f.pixels.is_some() {
            for o in &mine {
                let ok = o.pixels_kept.unwrap_or(false);
                s.tally(Action::PixelsKept, ok);
                if !ok {
                    s.fail(failure(
                        Action::PixelsKept,
                        Some(f),
                        Some(o),
                        "pixel data changed",
                    ));
                }
            }
        }
    }
    consistency(&mut s, outs, &copies);
    // outputs that are no copy of anything: any identifier in them is a leak
    if !unmatched.is_empty() {
        let all: Vec<usize> = (0..key.identifiers.len()).collect();
        let sr = Searcher::new(key, &all);
        for &oi in &unmatched {
            let o = &outs[oi];
            let mut hits = HashSet::new();
            match &o.obj {
                Some(p) => p.values.iter().for_each(|(_, b)| sr.find(b, &mut hits)),
                None => sr.find(&o.bytes, &mut hits),
            }
            let mut hits: Vec<usize> = hits.into_iter().collect();
            hits.sort_unstable();
            for id in hits {
                let ident = &key.identifiers[id];
                s.identity(ident.hipaa, None, false);
                s.fail(Failure {
                    kind: Some(ident.kind.clone()),
                    hipaa: Some(ident.hipaa),
                    ..failure(
                        Action::RemoveIdentity,
                        None,
                        Some(o),
                        "identifier in an output that is no copy of any corpus file",
                    )
                });
            }
        }
    }
    s.report
}

/// UIDs, references and patient pseudonyms across files.
fn consistency(s: &mut Scorer<'_>, outs: &[Out], copies: &[Vec<usize>]) {
    let key = s.key;
    let value_at = |o: &Out, path: &str| -> Option<String> {
        o.obj
            .as_ref()?
            .values
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| {
                String::from_utf8_lossy(b)
                    .trim_end_matches(['\0', ' '])
                    .to_owned()
            })
    };
    // original UID → new values seen
    let mut seen: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for (fi, f) in key.files.iter().enumerate() {
        for &oi in &copies[fi] {
            for u in &f.uids {
                if let Some(v) = value_at(&outs[oi], &u.path) {
                    seen.entry(u.value.as_str()).or_default().insert(v);
                }
            }
        }
    }
    let mut owners: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (orig, news) in &seen {
        for n in news {
            owners.entry(n.as_str()).or_default().insert(orig);
        }
    }
    for (orig, news) in &seen {
        let one = news.len() == 1;
        let own = news.iter().all(|n| owners[n.as_str()].len() == 1);
        let ok = one && own;
        s.tally(Action::UidConsistent, ok);
        if !ok {
            let detail = if !one {
                format!("one original UID became {} different UIDs", news.len())
            } else {
                "two original UIDs became the same UID".to_owned()
            };
            let file = key
                .files
                .iter()
                .find(|f| f.uids.iter().any(|u| u.value == *orig));
            s.fail(failure(Action::UidConsistent, file, None, detail));
        }
    }
    // references between released objects
    for (fi, f) in key.files.iter().enumerate() {
        for r in &f.references {
            for &oi in &copies[fi] {
                let Some(&ti) = copies[r.target].first() else {
                    continue;
                };
                let target_uid = outs[ti].obj.as_ref().map(|p| p.sop_instance.clone());
                let ok = value_at(&outs[oi], &r.path).is_some_and(|v| Some(v) == target_uid);
                s.tally(Action::ReferenceKept, ok);
                if !ok {
                    s.fail(Failure {
                        path: Some(r.path.clone()),
                        ..failure(
                            Action::ReferenceKept,
                            Some(f),
                            Some(&outs[oi]),
                            "reference does not point at its target's copy",
                        )
                    });
                }
            }
        }
    }
    // one pseudonym per patient, none shared
    let mut ids_of: Vec<HashSet<String>> = vec![HashSet::new(); key.patients.len()];
    for (fi, f) in key.files.iter().enumerate() {
        let (Some(p), Some(_)) = (f.patient, &f.dicom) else {
            continue;
        };
        for &oi in &copies[fi] {
            if let Some(parsed) = &outs[oi].obj {
                ids_of[p].insert(parsed.patient_id.clone().unwrap_or_default());
            }
        }
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for ids in &ids_of {
        for id in ids {
            *count.entry(id.as_str()).or_default() += 1;
        }
    }
    for (pi, ids) in ids_of.iter().enumerate() {
        if ids.is_empty() {
            continue;
        }
        let one = ids.len() == 1;
        let own = ids
            .iter()
            .all(|id| !id.is_empty() && count[id.as_str()] == 1);
        let ok = one && own;
        s.tally(Action::PatientConsistent, ok);
        if !ok {
            let detail = if !one {
                format!(
                    "the patient's objects carry {} different Patient IDs",
                    ids.len()
                )
            } else {
                "the patient's Patient ID is empty or shared with another patient".to_owned()
            };
            let file = key.patients[pi].files.first().map(|&i| &key.files[i]);
            s.fail(failure(Action::PatientConsistent, file, None, detail));
        }
    }
}

fn sha_of(p: &PixelValue) -> String {
    let mut h = Sha256::new();
    match p {
        PixelValue::Native(d) => h.update(d),
        PixelValue::Fragments(f) => f.iter().for_each(|x| h.update(x)),
    }
    hex::encode(h.finalize())
}

/// The geometry the key records for an image, as a decoding template.
fn geometry(px: &crate::key::Pixels) -> umbra_pixels::Image {
    umbra_pixels::Image {
        rows: px.rows,
        columns: px.columns,
        samples: px.samples,
        bits_allocated: px.bits_allocated,
        bits_stored: px.bits_allocated,
        signed: false,
        photometric: umbra_pixels::Photometric::parse(&px.photometric)
            .unwrap_or(umbra_pixels::Photometric::Monochrome2),
        frames: px.frames,
        data: Vec::new(),
    }
}

/// Decodes a copy's pixel data (native data from any byte order is little endian by now).
fn decode(
    px: &crate::key::Pixels,
    parsed: &Parsed,
) -> Result<Option<umbra_pixels::Image>, &'static str> {
    let Some(value) = &parsed.pixels else {
        return Ok(None);
    };
    let (ts, frags): (&str, Vec<&[u8]>) = match value {
        PixelValue::Native(d) => ("1.2.840.10008.1.2.1", vec![d.as_slice()]),
        PixelValue::Fragments(f) => (
            parsed.transfer_syntax.as_str(),
            f.iter().map(Vec::as_slice).collect(),
        ),
    };
    umbra_pixels::codec::decode(ts, &frags, &geometry(px))
        .map(Some)
        .map_err(|_| "the copy's pixels cannot be decoded to check them")
}

/// Whether a box's text is still readable in a copy: its stored pixels unchanged, or at least
/// half of the text's ink still there once decoded (which survives lossy re-encoding).
fn residual_text(
    f: &File,
    parsed: &Parsed,
    b: &crate::key::BurnedBox,
) -> Result<bool, &'static str> {
    let px = f.pixels.as_ref().ok_or("no pixel facts")?;
    if parsed
        .pixels
        .as_ref()
        .is_some_and(|v| sha_of(v) == px.stored_sha256)
    {
        return Ok(true);
    }
    let Some(img) = decode(px, parsed)? else {
        return Ok(false);
    };
    let frames: Vec<u32> = match b.frame {
        Some(k) => vec![k],
        None => (0..img.frames).collect(),
    };
    let floor = b.ink.saturating_sub(32);
    let needed =
        b.background_pixels + (b.ink_pixels.saturating_sub(b.background_pixels)).div_ceil(2);
    for fr in frames.into_iter().filter(|&fr| fr < img.frames) {
        let mut n = 0u32;
        for row in b.y..(b.y + b.height).min(img.rows) {
            for col in b.x..(b.x + b.width).min(img.columns) {
                if (0..img.samples).all(|s| img.get(fr, row, col, s) >= floor) {
                    n += 1;
                }
            }
        }
        if b.ink_pixels > b.background_pixels && n >= needed {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a copy's pixel data is the original's: the same stored bytes, or (lossless
/// originals) data that decodes to the same pixels.
fn pixels_kept(px: &crate::key::Pixels, parsed: &Parsed) -> bool {
    let Some(value) = &parsed.pixels else {
        return false;
    };
    if sha_of(value) == px.stored_sha256 {
        return true;
    }
    let Some(native) = &px.native_sha256 else {
        return false;
    };
    decode(px, parsed)
        .is_ok_and(|img| img.is_some_and(|img| hex::encode(Sha256::digest(&img.data)) == *native))
}

/// The report as text: the score, then tables by action, HIPAA class and place, then the
/// failures (at most `max_failures`).
pub fn render_text(r: &Report, max_failures: usize) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "score: {:.2}% ({} of {} required actions correct)",
        r.score.percent(),
        r.score.correct,
        r.score.required
    );
    let _ = writeln!(
        s,
        "output: {} files, {} not a copy of any corpus file\n",
        r.output_files, r.unmatched_outputs
    );
    let _ = writeln!(
        s,
        "{:<20} {:>9} {:>9} {:>8}",
        "action", "required", "correct", "score"
    );
    for a in Action::ALL {
        if let Some(t) = r.actions.get(&a) {
            let _ = writeln!(
                s,
                "{:<20} {:>9} {:>9} {:>7.2}%",
                a.name(),
                t.required,
                t.correct,
                t.percent()
            );
        }
    }
    let _ = writeln!(
        s,
        "\n{:<6} {:<58} {:>8} {:>7}",
        "HIPAA", "identifiers", "planted", "leaked"
    );
    for (h, t) in &r.hipaa {
        let _ = writeln!(
            s,
            "({h:?})    {:<58} {:>8} {:>7}",
            h.description(),
            t.required,
            t.required - t.correct
        );
    }
    let _ = writeln!(s, "\n{:<17} {:>8} {:>7}", "place", "planted", "leaked");
    for (l, t) in &r.locations {
        let _ = writeln!(
            s,
            "{:<17} {:>8} {:>7}",
            l.name(),
            t.required,
            t.required - t.correct
        );
    }
    if !r.failures.is_empty() {
        let _ = writeln!(s, "\nfailures ({}):", r.failures.len());
        for f in r.failures.iter().take(max_failures) {
            let mut line = format!("  {}", f.action.name());
            if let Some(k) = &f.kind {
                let _ = write!(line, " {k}");
            }
            if let Some(h) = f.hipaa {
                let _ = write!(line, " ({h:?})");
            }
            if let Some(l) = f.location {
                let _ = write!(line, " [{}]", l.name());
            }
            if let Some(p) = &f.path {
                let _ = write!(line, " at {p}");
            }
            if let Some(file) = &f.file {
                let _ = write!(line, " in {file}");
            }
            if let Some(o) = &f.output {
                let _ = write!(line, " -> {o}");
            }
            let _ = write!(line, ": {}", f.detail);
            let _ = writeln!(s, "{line}");
        }
        if r.failures.len() > max_failures {
            let _ = writeln!(
                s,
                "  ... {} more (--format json lists all)",
                r.failures.len() - max_failures
            );
        }
    }
    s
}
