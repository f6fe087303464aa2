//! Reading one input file into a data set and its transfer syntax.

use crate::guard::{Encoding, Walk, check_dataset, check_meta, check_prefix};
use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTable, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// Why an input could not be read as DICOM.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a DICOM file (no `DICM` magic and no plausible raw data set).
    #[error("not a DICOM file")]
    NotDicom,
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(String),
    /// A DICOM file that does not parse (truncated, malformed, unsupported transfer syntax).
    #[error("cannot parse DICOM: {0}")]
    Parse(String),
}

/// An error and its causes on one line: dicom-rs's top-level messages ("Could not read data set
/// token") only say where, their sources say what.
fn one_line(e: impl std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a whole DICOM file: Part 10 with or without preamble, or a bare data set without file
/// meta group (implicit or explicit VR little endian). Returns the data set and the UID of the
/// transfer syntax it is encoded in.
pub fn read_object(path: &Path) -> Result<(InMemDicomObject, String), ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::Io(one_line(e)))?;
    parse_bytes(&bytes)
}

/// [`read_object`] on bytes already in memory.
pub fn parse_bytes(bytes: &[u8]) -> Result<(InMemDicomObject, String), ReadError> {
    if let Some(at) = magic_at(bytes) {
        precheck_part10(&bytes[at + 4..])?;
        let (object, ts, _) = parse_part10(&bytes[at..])?;
        return Ok((object, ts));
    }
    read_bare_dataset(bytes)
}

/// Where the `DICM` magic of a Part 10 file is: after the 128-byte preamble, or at the very
/// start when a writer left the preamble out.
fn magic_at(bytes: &[u8]) -> Option<usize> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(128)
    } else if bytes.starts_with(b"DICM") {
        Some(0)
    } else {
        None
    }
}

/// Parses a Part 10 file from its `DICM` magic on (the structural check already passed).
fn parse_part10(from: &[u8]) -> Result<(InMemDicomObject, String, FileMetaTable), ReadError> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(from)
        .map_err(|e| ReadError::Parse(one_line(e)))?;
    let meta = obj.meta().clone();
    let ts = meta
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_owned();
    Ok((obj.into_inner(), ts, meta))
}

/// An input ready for the engine.
#[derive(Debug)]
pub struct Input {
    /// The data set. When [`Input::raw_pixel_data`] is set, its Pixel Data element is an empty
    /// placeholder (so the engine knows the object is an image): take it out before writing
    /// and write the raw element instead.
    pub object: InMemDicomObject,
    /// Transfer syntax UID the data set is encoded in (and is written in).
    pub transfer_syntax: String,
    /// The file's own Pixel Data element, when it ends the file.
    pub raw_pixel_data: Option<RawPixelData>,
    /// The file meta group as read (none for a bare data set): what the sender recorded about
    /// the object (SOP class, source AE title), for callers that route on it.
    pub meta: Option<FileMetaTable>,
}

/// The encoded Pixel Data element (header and value) as it stands in the input file: carried to
/// the output byte for byte, never decoded.
#[derive(Debug)]
pub enum RawPixelData {
    /// In memory, from `at` to the end of the file's bytes.
    InMemory {
        /// The file's bytes (after other bytes, when read by [`input_from_bytes_at`]).
        file: Vec<u8>,
        /// Where the element starts.
        at: usize,
    },
    /// Still in the input file: `len` bytes from `offset`, to the end of the object. Never
    /// read into memory; copied file to file (by the kernel where it can).
    InFile {
        /// The input file.
        path: PathBuf,
        /// Where the element starts.
        offset: u64,
        /// Its length, to the end of the file.
        len: u64,
    },
}

impl RawPixelData {
    /// The element's bytes, read into memory (for checks and tests; writing uses [`Self::copy_to`]).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        match self {
            RawPixelData::InMemory { file, at } => Ok(file[*at..].to_vec()),
            RawPixelData::InFile { path, offset, len } => {
                let mut from = std::fs::File::open(path)?;
                from.seek(std::io::SeekFrom::Start(*offset))?;
                let mut v = Vec::with_capacity(*len as usize);
                from.take(*len).read_to_end(&mut v)?;
                Ok(v)
            }
        }
    }

    /// Writes the element to `to`; fails if the input file no longer holds all of it.
    pub fn copy_to(&self, mut to: &std::fs::File) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        match self {
            RawPixelData::InMemory { file, at } => to.write_all(&file[*at..]),
            RawPixelData::InFile { path, offset, len } => {
                let mut from = std::fs::File::open(path)?;
                from.seek(SeekFrom::Start(*offset))?;
                let copied = std::io::copy(&mut from.take(*len), &mut to)?;
                if copied != *len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the input file changed while it was being read",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// An object read for verification: its data set, its file meta group, and the file's own
/// bytes up to its pixel data (for the raw search).
#[derive(Debug)]
pub struct ScanInput {
    /// The data set (Pixel Data, when it ends the file, is an empty placeholder).
    pub object: InMemDicomObject,
    /// The file meta group, when the file has one.
    pub meta: Option<dicom_object::FileMetaTable>,
    /// The file's bytes before its Pixel Data value (the whole file when the pixel data does
    /// not end it, or when there is none).
    pub head: Vec<u8>,
    /// The Pixel Data element when it ends the file (then `object` holds a placeholder).
    pub raw_pixel_data: Option<RawPixelData>,
    /// The transfer syntax the data set was read in.
    pub transfer_syntax: String,
}

/// Reads a file for `umbra scan`: like [`read_input`] (structural check first; large files
/// header first, pixel data never read), keeping the meta group and the raw header bytes.
pub fn read_for_scan(path: &Path) -> Result<ScanInput, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(one_line(e));
    let input = read_input(path)?;
    let head = match &input.raw_pixel_data {
        Some(RawPixelData::InMemory { file, at }) => file[..*at].to_vec(),
        Some(RawPixelData::InFile { path, offset, .. }) => {
            let mut f = std::fs::File::open(path).map_err(io)?;
            let mut head = vec![0u8; *offset as usize];
            f.read_exact(&mut head).map_err(io)?;
            head
        }
        None => std::fs::read(path).map_err(io)?,
    };
    let meta =
        magic_at(&head).and_then(|at| dicom_object::FileMetaTable::from_reader(&head[at..]).ok());
    Ok(ScanInput {
        object: input.object,
        meta,
        head,
        raw_pixel_data: input.raw_pixel_data,
        transfer_syntax: input.transfer_syntax.to_string(),
    })
}

/// Inputs at least this large are read header first: when their pixel data ends the file and
/// is native (defined length), it is never read into memory.
pub const HEADER_FIRST_FROM: u64 = 2 << 20;
const FIRST_PREFIX: usize = 256 << 10;
const MAX_PREFIX: usize = 64 << 20;

/// Reads an input for de-identification: like [`read_object`], but when the Pixel Data
/// element ends the file (the usual case), the data set is parsed only up to it and the pixel
/// data is carried as the file's own bytes, never decoded. Large files with native pixel data
/// are read header first, so their pixels never enter memory.
pub fn read_input(path: &Path) -> Result<Input, ReadError> {
    read_input_with(path, HEADER_FIRST_FROM, FIRST_PREFIX)
}

/// [`read_input`] with explicit thresholds (tests use them to force the header-first path).
#[doc(hidden)]
pub fn read_input_with(
    path: &Path,
    header_first_from: u64,
    first_prefix: usize,
) -> Result<Input, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(one_line(e));
    let size = std::fs::metadata(path).map_err(io)?.len();
    read_range(path, 0, size, header_first_from, first_prefix)
}

/// [`read_input`] on a whole Part 10 file stored as `len` bytes from `offset` inside a larger
/// file (a log of received objects): large ones are read header first, their pixel data left
/// in place.
pub fn read_input_at(path: &Path, offset: u64, len: u64) -> Result<Input, ReadError> {
    read_range(path, offset, len, HEADER_FIRST_FROM, FIRST_PREFIX)
}

fn read_range(
    path: &Path,
    base: u64,
    size: u64,
    header_first_from: u64,
    first_prefix: usize,
) -> Result<Input, ReadError> {
    let io = |e: std::io::Error| ReadError::Io(one_line(e));
    let mut file = std::fs::File::open(path).map_err(io)?;
    if size >= header_first_from {
        if let Some(input) = header_first(&mut file, path, base, size, first_prefix) {
            return Ok(input);
        }
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.seek(std::io::SeekFrom::Start(base)).map_err(io)?;
    file.take(size).read_to_end(&mut bytes).map_err(io)?;
    if (bytes.len() as u64) < size {
        return Err(ReadError::Io("the file is shorter than expected".into()));
    }
    input_from_bytes(bytes)
}

/// The header-first path: reads growing prefixes until the structural check reaches a native
/// Pixel Data element that ends the file. Any doubt (no magic, deflate, encapsulated pixels,
/// anything odd) returns `None`, and the caller reads the whole file, which settles the case
/// and gives the proper error.
fn header_first(
    file: &mut std::fs::File,
    path: &Path,
    base: u64,
    size: u64,
    first_prefix: usize,
) -> Option<Input> {
    let size_us = usize::try_from(size).ok()?;
    let mut n = first_prefix.max(256).min(size_us);
    loop {
        let mut prefix = vec![0u8; n];
        file.seek(std::io::SeekFrom::Start(base)).ok()?;
        file.read_exact(&mut prefix).ok()?;
        let magic_at = magic_at(&prefix)?;
        let after = &prefix[magic_at + 4..];
        // A meta group cut short by the prefix looks malformed: read more before judging.
        let walked = match check_meta(after) {
            Ok((ts, start)) if start < after.len() => {
                if is_deflated(&ts) {
                    return None;
                }
                let total = size_us - (magic_at + 4 + start);
                (
                    check_prefix(&after[start..], total, Encoding::of(&ts)).ok()?,
                    start,
                )
            }
            _ => (Walk::NeedMore, 0),
        };
        match walked {
            (Walk::NativePixelDataAt(off), start) => {
                let at = magic_at + 4 + start + off;
                let (mut object, transfer_syntax, meta) =
                    parse_part10(&prefix[magic_at..at]).ok()?;
                object.put(pixel_placeholder());
                return Some(Input {
                    object,
                    transfer_syntax,
                    meta: Some(meta),
                    raw_pixel_data: Some(RawPixelData::InFile {
                        path: path.to_path_buf(),
                        offset: base + at as u64,
                        len: size - at as u64,
                    }),
                });
            }
            (Walk::NeedMore, _) if n < size_us && n < MAX_PREFIX => {
                n = (n * 4).min(size_us).min(MAX_PREFIX)
            }
            _ => return None,
        }
    }
}

/// Stands in for the pixel data while the engine works: the object is an image.
fn pixel_placeholder() -> dicom_core::DataElement<InMemDicomObject> {
    dicom_core::DataElement::new(
        dicom_dictionary_std::tags::PIXEL_DATA,
        dicom_core::VR::OB,
        dicom_core::PrimitiveValue::Empty,
    )
}

fn is_deflated(ts: &str) -> bool {
    ts == "1.2.840.10008.1.2.1.99" || ts == "1.2.840.10008.1.2.4.95"
}

/// [`read_input`] on a file's bytes already in memory.
pub fn input_from_bytes(bytes: Vec<u8>) -> Result<Input, ReadError> {
    input_from_bytes_at(bytes, 0)
}

/// [`input_from_bytes`] for an object that starts `start` bytes into `bytes` (what lies before
/// is ignored): bytes received into a buffer with room before them are read where they are,
/// without a copy. `start` past the end reads as an empty object.
pub fn input_from_bytes_at(bytes: Vec<u8>, start: usize) -> Result<Input, ReadError> {
    let object = bytes.get(start..).unwrap_or_default();
    let Some(magic_at) = magic_at(object).map(|m| m + start) else {
        let (object, transfer_syntax) = read_bare_dataset(object)?;
        return Ok(Input {
            object,
            transfer_syntax,
            raw_pixel_data: None,
            meta: None,
        });
    };
    let check = precheck_part10(&bytes[magic_at + 4..])?;
    let Some(at) = check.pixel_data_at.map(|off| magic_at + 4 + off) else {
        let (object, transfer_syntax, meta) = parse_part10(&bytes[magic_at..])?;
        return Ok(Input {
            object,
            transfer_syntax,
            raw_pixel_data: None,
            meta: Some(meta),
        });
    };
    let (mut object, transfer_syntax, meta) = parse_part10(&bytes[magic_at..at])?;
    object.put(pixel_placeholder());
    Ok(Input {
        object,
        transfer_syntax,
        meta: Some(meta),
        raw_pixel_data: Some(RawPixelData::InMemory { file: bytes, at }),
    })
}

/// Parses a Part 10 file's meta group and data set up to the pixel data: the cheap check that
/// an output reads back.
pub(crate) fn parse_header_file(path: &Path) -> Result<(), ReadError> {
    OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .map(|_| ())
        .map_err(|e| ReadError::Parse(one_line(e)))
}

/// Largest inflated data set accepted from a deflated transfer syntax.
const MAX_INFLATED: u64 = 1 << 30;

/// The structural check of [`crate::guard`] on a Part 10 file after `DICM`: meta group, then
/// the data set in its transfer syntax (inflated first when deflated, within a bound).
fn precheck_part10(after_magic: &[u8]) -> Result<Precheck, ReadError> {
    let (ts, start) = check_meta(after_magic).map_err(|m| ReadError::Parse(m.0))?;
    let dataset = &after_magic[start..];
    if is_deflated(&ts) {
        let mut inflated = Vec::new();
        let mut reader = flate2::read::DeflateDecoder::new(dataset).take(MAX_INFLATED + 1);
        reader
            .read_to_end(&mut inflated)
            .map_err(|e| ReadError::Parse(format!("cannot inflate data set: {}", one_line(e))))?;
        if inflated.len() as u64 > MAX_INFLATED {
            return Err(ReadError::Parse(
                "deflated data set inflates beyond 1 GiB".into(),
            ));
        }
        check_dataset(&inflated, Encoding::ExplicitLe).map_err(|m| ReadError::Parse(m.0))?;
        // A deflated stream cannot be cut at the pixel data: no raw carry.
        return Ok(Precheck {
            pixel_data_at: None,
        });
    }
    let layout = check_dataset(dataset, Encoding::of(&ts)).map_err(|m| ReadError::Parse(m.0))?;
    Ok(Precheck {
        pixel_data_at: layout.trailing_pixel_data.map(|off| start + off),
    })
}

/// What the structural check of a Part 10 file found.
struct Precheck {
    /// Offset, from just after `DICM`, of the top-level Pixel Data element when it ends the file.
    pixel_data_at: Option<usize>,
}

/// A data set without preamble or meta group, as older systems and some exports write them.
/// Only accepted when it starts like one: an even group no higher than 0x0010 (command, meta,
/// directory, identifying or patient groups), and it carries a SOP Class UID.
fn read_bare_dataset(bytes: &[u8]) -> Result<(InMemDicomObject, String), ReadError> {
    if bytes.len() < 8 {
        return Err(ReadError::NotDicom);
    }
    let group = u16::from_le_bytes([bytes[0], bytes[1]]);
    if group & 1 == 1 || group > 0x0010 {
        return Err(ReadError::NotDicom);
    }
    let vr_chars = &bytes[4..6];
    let explicit = vr_chars.iter().all(u8::is_ascii_uppercase)
        && dicom_core::VR::from_binary([vr_chars[0], vr_chars[1]]).is_some();
    let ts = if explicit {
        EXPLICIT_VR_LITTLE_ENDIAN.erased()
    } else {
        IMPLICIT_VR_LITTLE_ENDIAN.erased()
    };
    let enc = if explicit {
        Encoding::ExplicitLe
    } else {
        Encoding::ImplicitLe
    };
    check_dataset(bytes, enc).map_err(|m| ReadError::Parse(m.0))?;
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(|e| {
        // Something that does not parse and never looked like DICOM is not DICOM.
        ReadError::Parse(one_line(e))
    })?;
    if obj.get(dicom_dictionary_std::tags::SOP_CLASS_UID).is_none() {
        return Err(ReadError::NotDicom);
    }
    Ok((obj, ts.uid().to_owned()))
}
