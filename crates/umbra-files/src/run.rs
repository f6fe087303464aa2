//! One de-identification run over files: inputs in, outputs written atomically, one record per input.

use crate::face::FileFace;
use crate::gate::Gate;
use crate::read::{Input, RawPixelData, ReadError, read_input};
use dicom_core::DataElement;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use umbra_core::{Deidentifier, Face, HoldBack, HoldKind};

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// De-identified and written.
    Written,
    /// A DICOM object kept back because releasing it could disclose identity.
    HeldBack,
    /// A DICOM object that could not be processed (unreadable, truncated, malformed).
    Failed,
    /// Not an object to release: not DICOM, or a DICOMDIR. Never copied.
    Skipped,
}

/// The record of one input, as written to `--report` (one JSON object per line).
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The input path.
    pub input: PathBuf,
    /// What happened.
    pub outcome: Outcome,
    /// Why, when it was not simply written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The output path relative to `--out`, when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// Under `clean-pixel-data`, for an object whose pixels were cleaned: boxes filled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_boxes: Option<usize>,
    /// ... and the pixel rules that matched it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pixel_rules: Vec<String>,
    /// Under `clean-recognizable-visual-features`: the face was removed from its series.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub face_removed: bool,
    /// A note on a written object (e.g. a head image released because no face can be
    /// rendered from its series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Settings of a run that concern files.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Worker threads.
    pub jobs: usize,
    /// Check every object with the independent scanner before writing it (the release gate).
    pub verify: bool,
    /// How pixels are cleaned under `clean-pixel-data` (objects to clean are held back
    /// without it).
    pub pixels: Option<std::sync::Arc<crate::pixels::Cleaner>>,
}

/// Records of every input, in input order.
#[derive(Debug, Default)]
pub struct Summary {
    /// One record per input.
    pub records: Vec<Record>,
}

impl Summary {
    /// How many inputs had this outcome.
    pub fn count(&self, o: Outcome) -> usize {
        self.records.iter().filter(|r| r.outcome == o).count()
    }

    /// Distinct reasons with their counts, most frequent first, for one outcome. Reasons that
    /// differ only in numbers (byte offsets, sizes) count as one, with each number written `N`;
    /// the run records keep the numbers.
    pub fn reasons(&self, o: Outcome) -> Vec<(String, usize)> {
        let mut m: HashMap<String, usize> = HashMap::new();
        for r in self.records.iter().filter(|r| r.outcome == o) {
            *m.entry(numbers_as_n(r.reason.as_deref().unwrap_or("")))
                .or_default() += 1;
        }
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// `at byte 2072` → `at byte N`; digits inside words (`ISO_IR 100`, `(0008,0018)`, UIDs) stay.
fn numbers_as_n(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for (i, word) in reason.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let digits = word.trim_end_matches([',', ';', ':', ')']);
        // (a name such as "JPEG 2000" keeps its number)
        let named = i > 0 && reason.split(' ').nth(i - 1) == Some("JPEG");
        if !named && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            out.push('N');
            out.push_str(&word[digits.len()..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

/// A problem with the command line's paths.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// An input does not exist.
    #[error("input {0} does not exist")]
    MissingInput(PathBuf),
    /// An input is inside the output folder.
    #[error("{0}")]
    Overlap(String),
    /// An input folder cannot be listed.
    #[error("{0}")]
    Unreadable(String),
}

const TMP_PREFIX: &str = ".umbra-tmp-";

/// Expands the inputs (files and folders, recursively, following symbolic links as a user who
/// names them expects; a link loop is an error) into a sorted list of files, leaving out
/// anything under the output folder and Umbra's own temporary files.
pub fn collect_inputs(inputs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>, UsageError> {
    collect(inputs, Some(out))
}

/// Expands files and folders (recursively, following symbolic links) into a sorted list of
/// files, leaving out Umbra's own temporary files: what `umbra scan` reads.
pub fn list_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, UsageError> {
    collect(inputs, None)
}

fn collect(inputs: &[PathBuf], out: Option<&Path>) -> Result<Vec<PathBuf>, UsageError> {
    let out_canon = out.map(|out| {
        let out_abs = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
        std::fs::canonicalize(&out_abs).unwrap_or(out_abs)
    });
    let under_out = |p: &Path| out_canon.as_ref().is_some_and(|o| p.starts_with(o));
    let mut files = Vec::new();
    for input in inputs {
        if !input.exists() {
            return Err(UsageError::MissingInput(input.clone()));
        }
        let abs = std::fs::canonicalize(input).unwrap_or_else(|_| input.clone());
        if let Some(out) = out.filter(|_| under_out(&abs)) {
            return Err(UsageError::Overlap(format!(
                "input {} is inside the output folder {}",
                input.display(),
                out.display()
            )));
        }
        for entry in walkdir::WalkDir::new(input)
            .follow_links(true)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| {
                UsageError::Unreadable(format!("cannot list {}: {e}", input.display()))
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let p = entry.path();
            let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            if under_out(&canon)
                || p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX))
            {
                continue;
            }
            files.push(p.to_path_buf());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Who owns each output path in this run, to settle two inputs with the same SOP Instance UID.
struct Claims {
    owners: Mutex<HashMap<PathBuf, usize>>,
    displaced: Mutex<Vec<(usize, String)>>,
}

/// De-identifies `files` with `engine`, writing under `opts.out`. `progress` is called once per
/// input as it completes (from worker threads). Memory holds at most `jobs` objects at a time.
pub fn run(
    files: &[PathBuf],
    engine: &Deidentifier,
    opts: &RunOptions,
    progress: &(dyn Fn(&Record) + Sync),
) -> Summary {
    let claims = Claims {
        owners: Mutex::new(HashMap::new()),
        displaced: Mutex::new(Vec::new()),
    };
    let gate = opts.verify.then(|| Gate::for_config(engine.config()));
    // faces are a property of series: decided over the whole input first
    let faces = crate::face::plan(files, engine);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build();
    let work = || {
        files
            .par_iter()
            .enumerate()
            .map(|(i, f)| {
                let r = process_one(
                    i,
                    f,
                    files,
                    engine,
                    gate.as_ref(),
                    opts.pixels.as_deref(),
                    faces.get(f),
                    &opts.out,
                    &claims,
                );
                progress(&r);
                r
            })
            .collect::<Vec<_>>()
    };
    let mut records = match pool {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    };
    for (i, reason) in claims.displaced.into_inner().unwrap_or_default() {
        records[i].outcome = Outcome::HeldBack;
        records[i].reason = Some(reason);
        records[i].output = None;
    }
    Summary { records }
}

fn record(
    input: &Path,
    outcome: Outcome,
    reason: Option<String>,
    output: Option<PathBuf>,
) -> Record {
    Record {
        input: input.to_path_buf(),
        outcome,
        reason,
        output,
        pixel_boxes: None,
        pixel_rules: Vec::new(),
        face_removed: false,
        note: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn process_one(
    index: usize,
    input: &Path,
    files: &[PathBuf],
    engine: &Deidentifier,
    gate: Option<&Gate>,
    cleaner: Option<&crate::pixels::Cleaner>,
    face: Option<&FileFace>,
    out: &Path,
    claims: &Claims,
) -> Record {
    let done = match deidentify_file_with(input, engine, gate, cleaner, face) {
        Ok(d) => d,
        Err(refused) => return record(input, refused.outcome, Some(refused.reason), None),
    };
    let failed = |reason: String| record(input, Outcome::Failed, Some(reason), None);
    let rel = done.rel.clone();
    let dest = out.join(&rel);
    let tmp = match write_temp(&dest, &done.object, done.raw_pixels.as_ref()) {
        Ok(t) => t,
        Err(Step::Encode(e)) => return failed(format!("cannot encode output: {e}")),
        Err(Step::Io(e)) => return failed(format!("cannot write output: {e}")),
    };
    let (pixel_boxes, pixel_rules) = (done.pixel_boxes, done.pixel_rules.clone());
    let (face_removed, note) = (done.face_removed, done.note.clone());
    drop(done);
    // Check once: what is about to be placed must read back (its header at least: the pixel
    // data is the input's own bytes). Never place a file nobody can open.
    if let Err(e) = crate::read::parse_header_file(tmp.path()) {
        return failed(format!("output does not read back: {e}"));
    }
    match place(index, files, &dest, &rel, tmp, claims) {
        Ok(None) => {
            let mut r = record(input, Outcome::Written, None, Some(rel));
            r.pixel_boxes = pixel_boxes;
            r.pixel_rules = pixel_rules;
            r.face_removed = face_removed;
            r.note = note;
            r
        }
        Ok(Some(reason)) => record(input, Outcome::HeldBack, Some(reason), None),
        Err(e) => failed(format!("cannot write output: {e}")),
    }
}

/// Why an input produced no output.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Held back, failed or skipped (never `Written`).
    pub outcome: Outcome,
    /// The reason, naming no identifier.
    pub reason: String,
}

/// A de-identified object, checked and ready to write: everything but the bytes on disk.
pub struct Produced {
    /// The de-identified object with its new meta group.
    pub object: FileDicomObject<InMemDicomObject>,
    /// The input's own pixel data element, when it is carried as bytes (it follows the header).
    raw_pixels: Option<RawPixelData>,
    /// Where it goes under an output folder: PATIENT/STUDY/SERIES/INSTANCE.dcm (pseudonymous).
    pub rel: PathBuf,
    /// Under `clean-pixel-data`, when the pixels were cleaned: boxes filled.
    pub pixel_boxes: Option<usize>,
    /// ... and the pixel rules that matched.
    pub pixel_rules: Vec<String>,
    /// The face was removed from its series.
    pub face_removed: bool,
    /// A note for the report.
    pub note: Option<String>,
}

impl Produced {
    /// Writes the whole Part 10 file (header, then the pixel data carried as bytes, if any).
    pub fn write_to(&self, file: &std::fs::File) -> Result<(), String> {
        write_object(file, &self.object, self.raw_pixels.as_ref()).map_err(Step::into_message)
    }

    /// The Part 10 file for sending, byte for byte what [`Self::write_to`] writes: the encoded
    /// header in memory, then the input's own pixel data streamed from where it is (memory or
    /// the input file), so that a copy to send is never written to disk first.
    pub fn encode(&self) -> Result<Encoded<'_>, String> {
        let mut head = Vec::new();
        self.object
            .write_all(&mut head)
            .map_err(|e| Step::Encode(e.to_string()).into_message())?;
        let pixels_len = match &self.raw_pixels {
            Some(RawPixelData::InMemory { file, at }) => (file.len() - at) as u64,
            Some(RawPixelData::InFile { len, .. }) => *len,
            None => 0,
        };
        let pad = needs_deflate_pad(&self.object, head.len() as u64 + pixels_len);
        Ok(Encoded {
            head,
            pixels: self.raw_pixels.as_ref(),
            pixels_len,
            pad,
        })
    }
}

/// A produced object encoded for sending (see [`Produced::encode`]).
pub struct Encoded<'a> {
    head: Vec<u8>,
    pixels: Option<&'a RawPixelData>,
    pixels_len: u64,
    pad: bool,
}

impl Encoded<'_> {
    /// The start of the file: preamble, meta group and the data set up to its pixel data (the
    /// whole file when the pixel data is not carried as bytes).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Length of the whole file.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.pixels_len + u64::from(self.pad)
    }

    /// Whether the file is empty (it never is: there is always a meta group).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole file as slices of memory, when it is all in memory (the pixel data not left
    /// in the input file): head, pixel data element, deflate pad byte.
    pub fn parts(&self) -> Option<[&[u8]; 3]> {
        let pad: &[u8] = if self.pad { &[0] } else { &[] };
        match self.pixels {
            None => Some([&self.head, &[], pad]),
            Some(RawPixelData::InMemory { file, at }) => Some([&self.head, &file[*at..], pad]),
            Some(RawPixelData::InFile { .. }) => None,
        }
    }

    /// What follows [`Self::head`], to the end of the file: the pixel data element, then the
    /// deflate pad byte. Fails (`UnexpectedEof`) if the input file no longer holds it all.
    pub fn rest(&self) -> std::io::Result<Box<dyn Read + Send + '_>> {
        let pad: &[u8] = if self.pad { &[0] } else { &[] };
        Ok(match self.pixels {
            None => Box::new(pad),
            Some(RawPixelData::InMemory { file, at }) => Box::new((&file[*at..]).chain(pad)),
            Some(RawPixelData::InFile { path, offset, len }) => {
                let mut f = std::fs::File::open(path)?;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(*offset))?;
                Box::new(
                    Exactly {
                        inner: f.take(*len),
                        left: *len,
                    }
                    .chain(pad),
                )
            }
        })
    }
}

/// A reader of exactly `left` more bytes: an early end is an error, not a short object.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the input file changed while it was being read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads, de-identifies, cleans pixels (when asked) and checks one input file: the whole trip
/// but the write. `gate` is the release gate (the independent scanner); `None` skips it.
pub fn deidentify_file(
    input: &Path,
    engine: &Deidentifier,
    gate: Option<&Gate>,
    cleaner: Option<&crate::pixels::Cleaner>,
) -> Result<Produced, Refused> {
    deidentify_file_with(input, engine, gate, cleaner, None)
}

/// [`deidentify_file`] with the face step's decision for this file (see [`crate::face`]).
pub fn deidentify_file_with(
    input: &Path,
    engine: &Deidentifier,
    gate: Option<&Gate>,
    cleaner: Option<&crate::pixels::Cleaner>,
    face: Option<&FileFace>,
) -> Result<Produced, Refused> {
    if let Some(FileFace::HeldBack(why)) = face {
        return Err(Refused {
            outcome: Outcome::HeldBack,
            reason: why.clone(),
        });
    }
    deidentify_input(read_input(input), engine, gate, cleaner, face)
}

/// [`deidentify_file`] on an input already read (by [`crate::input_from_bytes`] or
/// [`crate::read_input_at`]: the gateway reads its received objects from its own log).
pub fn deidentify_input(
    read: Result<Input, ReadError>,
    engine: &Deidentifier,
    gate: Option<&Gate>,
    cleaner: Option<&crate::pixels::Cleaner>,
    face: Option<&FileFace>,
) -> Result<Produced, Refused> {
    let refuse = |outcome, reason: String| Refused { outcome, reason };
    let (face_state, mut note): (Face, Option<String>) = match face {
        Some(FileFace::HeldBack(why)) => return Err(refuse(Outcome::HeldBack, why.clone())),
        Some(FileFace::Removed(_)) => (Face::Removed, None),
        None => (Face::Unchecked, None),
    };
    let read = match read {
        Ok(x) => x,
        Err(ReadError::NotDicom) => {
            return Err(refuse(Outcome::Skipped, "not a DICOM file".into()));
        }
        Err(e) => return Err(refuse(Outcome::Failed, e.to_string())),
    };
    let Input {
        object,
        transfer_syntax,
        mut raw_pixel_data,
        ..
    } = read;
    let ts = transfer_syntax.as_str();
    let refused = |h: HoldBack| {
        let outcome = match h.kind {
            HoldKind::Skipped => Outcome::Skipped,
            HoldKind::HeldBack => Outcome::HeldBack,
            HoldKind::Failed => Outcome::Failed,
        };
        refuse(outcome, h.reason)
    };
    // The release gate needs the original's identifiers, collected before the engine consumes
    // the object; not for objects the engine refuses anyway.
    let original = match gate {
        Some(g) => match engine.admit_with(&object, face_state) {
            Ok(()) => Some(g.harvest(&object)),
            Err(h) => return Err(refused(h)),
        },
        None => None,
    };
    let ocr_identifiers = match cleaner {
        Some(c) if c.ocr.is_some() => crate::pixels::identifiers_for_ocr(&object),
        _ => Vec::new(),
    };
    let mut done = engine
        .deidentify_with(object, ts, face_state)
        .map_err(refused)?;
    note = note.or(done.note.take());
    // The face removed from the series: these slice's new pixels replace the old.
    let mut defaced_ts = None;
    if let Some(FileFace::Removed(pixels)) = face {
        let (img, geometry) = pixels.as_ref();
        match crate::pixels::put_pixels(&mut done.object, img, geometry, ts) {
            Ok(new_ts) => {
                raw_pixel_data = None;
                defaced_ts = Some(new_ts);
            }
            Err(e) => {
                return Err(refuse(
                    Outcome::HeldBack,
                    format!("the defaced pixels cannot be written: {e}"),
                ));
            }
        }
    }
    let ts = defaced_ts.as_deref().unwrap_or(ts);
    // Pixels that may show burned-in text: cleaned here, or the object is held back.
    let mut cleaned = None;
    if done.clean_pixels {
        let Some(cleaner) = cleaner else {
            return Err(refuse(
                Outcome::HeldBack,
                "burned-in text: pixel cleaning is not configured".into(),
            ));
        };
        match crate::pixels::clean(
            &mut done.object,
            raw_pixel_data.as_ref(),
            ts,
            cleaner,
            &ocr_identifiers,
        ) {
            Ok(c) => {
                raw_pixel_data = None;
                cleaned = Some(c);
            }
            Err(e) => {
                return Err(refuse(
                    Outcome::HeldBack,
                    format!("burned-in text could not be cleaned: {e}"),
                ));
            }
        }
    }
    let ts = cleaned.as_ref().map_or(ts, |c| c.transfer_syntax.as_str());
    // Check once, before anything is written: the independent scanner, against this object's
    // own original identifiers.
    if let (Some(gate), Some(original)) = (gate, original.as_ref()) {
        if let Err(reason) = gate.check(original, &done.object) {
            return Err(refuse(Outcome::HeldBack, reason));
        }
    }
    if raw_pixel_data.is_some() {
        // the engine saw a placeholder; the file's own pixel data element goes out instead
        done.object.remove_element(tags::PIXEL_DATA);
    } else {
        pack_pixel_words(&mut done.object, ts);
    }
    let study = if done.study_uid.is_empty() {
        "no-study"
    } else {
        &done.study_uid
    };
    let series = if done.series_uid.is_empty() {
        "no-series"
    } else {
        &done.series_uid
    };
    let rel: PathBuf = [
        done.patient.as_str(),
        study,
        series,
        &format!("{}.dcm", done.sop_instance_uid),
    ]
    .iter()
    .collect();
    let (pixel_boxes, pixel_rules) = match cleaned {
        Some(c) => (Some(c.boxes), c.rules),
        None => (None, Vec::new()),
    };
    Ok(Produced {
        object: done.object,
        raw_pixels: raw_pixel_data,
        rel,
        pixel_boxes,
        pixel_rules,
        face_removed: face_state == Face::Removed,
        note,
    })
}

enum Step {
    Encode(String),
    Io(std::io::Error),
}

impl Step {
    fn into_message(self) -> String {
        match self {
            Step::Encode(e) => format!("cannot encode output: {e}"),
            Step::Io(e) => format!("cannot write output: {e}"),
        }
    }
}

/// Encodes the object straight into a temporary file beside its destination, followed by the
/// input's own pixel data element when it is carried raw.
fn write_temp(
    dest: &Path,
    obj: &FileDicomObject<InMemDicomObject>,
    raw_pixels: Option<&RawPixelData>,
) -> Result<tempfile::NamedTempFile, Step> {
    let dir = dest.parent().expect("output path has a parent");
    std::fs::create_dir_all(dir).map_err(Step::Io)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(TMP_PREFIX);
    // Outputs are for sharing: ordinary file permissions (less the umask), not the 0600 of a
    // temporary file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let tmp = builder.tempfile_in(dir).map_err(Step::Io)?;
    write_object(tmp.as_file(), obj, raw_pixels)?;
    Ok(tmp)
}

/// The object's header, then the input's own pixel data element when it is carried raw.
fn write_object(
    file: &std::fs::File,
    obj: &FileDicomObject<InMemDicomObject>,
    raw_pixels: Option<&RawPixelData>,
) -> Result<(), Step> {
    let mut w = std::io::BufWriter::with_capacity(256 << 10, file);
    obj.write_all(&mut w)
        .map_err(|e| Step::Encode(e.to_string()))?;
    w.flush().map_err(Step::Io)?;
    drop(w);
    if let Some(raw) = raw_pixels {
        raw.copy_to(file).map_err(Step::Io)?;
    }
    if needs_deflate_pad(obj, file.metadata().map_err(Step::Io)?.len()) {
        let mut f = file;
        f.write_all(&[0]).map_err(Step::Io)?;
    }
    Ok(())
}

/// PS3.5 A.5: a deflated data set of odd length takes one zero byte of padding (the meta group
/// before it is always of even length, so the file's length `len` tells).
fn needs_deflate_pad(obj: &FileDicomObject<InMemDicomObject>, len: u64) -> bool {
    const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
    obj.meta().transfer_syntax().trim_end_matches('\0') == DEFLATED && len % 2 == 1
}

/// dicom-rs reads native OW pixel data as 16-bit words and encodes them back one at a time; in a
/// little-endian transfer syntax the very same bytes go out in one copy when handed over as
/// bytes. (Big endian keeps the words, so they are swapped back on the way out.)
fn pack_pixel_words(obj: &mut FileDicomObject<InMemDicomObject>, ts: &str) {
    const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
    if ts == EXPLICIT_VR_BIG_ENDIAN {
        return;
    }
    let Some(e) = obj.get(tags::PIXEL_DATA) else {
        return;
    };
    let Value::Primitive(PrimitiveValue::U16(words)) = e.value() else {
        return;
    };
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let vr = e.vr();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::U8(bytes.into()),
    ));
}

/// Moves the finished temporary file to its destination (rename: atomic), so a killed run never
/// leaves a partial file and a re-run replaces outputs whole. (No fsync: this protects against
/// a killed process, not against power loss mid-run; re-run then.) When another input of this
/// run already produced the same path with different content, the input that sorts first keeps
/// the path, whatever order the workers ran in; the other is held back.
fn place(
    index: usize,
    files: &[PathBuf],
    dest: &Path,
    rel: &Path,
    tmp: tempfile::NamedTempFile,
    claims: &Claims,
) -> std::io::Result<Option<String>> {
    let mut owners = claims.owners.lock().unwrap_or_else(|e| e.into_inner());
    let Some(other) = owners.get(rel).copied() else {
        tmp.persist(dest).map_err(|e| e.error)?;
        owners.insert(rel.to_path_buf(), index);
        return Ok(None);
    };
    if std::fs::read(dest)? == std::fs::read(tmp.path())? {
        return Ok(None);
    }
    let clash = |a: usize| {
        format!(
            "same SOP Instance UID as {} but different content; that input was written",
            files[a].display()
        )
    };
    if index < other {
        tmp.persist(dest).map_err(|e| e.error)?;
        owners.insert(rel.to_path_buf(), index);
        claims
            .displaced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((other, clash(index)));
        Ok(None)
    } else {
        Ok(Some(clash(other)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reasons_that_differ_only_in_numbers_are_one_line_of_the_summary() {
        assert_eq!(
            super::numbers_as_n("value length runs past the end of the data at byte 2072"),
            "value length runs past the end of the data at byte N"
        );
        assert_eq!(
            super::numbers_as_n("element (0008,0018) holds 12 bytes: see 1.2.3"),
            "element (0008,0018) holds N bytes: see 1.2.3"
        );
        assert_eq!(
            super::numbers_as_n("pixel data in JPEG 2000 (1.2.840.10008.1.2.4.90)"),
            "pixel data in JPEG 2000 (1.2.840.10008.1.2.4.90)"
        );
    }
}
