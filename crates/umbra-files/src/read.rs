//! Reading one input file into a data set and its transfer syntax.

use crate::guard::{Encoding, check_dataset, check_meta};
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use std::io::Read;
use std::path::Path;

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

fn one_line(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    let part10 = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(&bytes[128..])
    } else if bytes.starts_with(b"DICM") {
        Some(bytes)
    } else {
        None
    };
    if let Some(from) = part10 {
        precheck_part10(&from[4..])?;
        return parse_part10(from);
    }
    read_bare_dataset(bytes)
}

/// Parses a Part 10 file from its `DICM` magic on (the structural check already passed).
fn parse_part10(from: &[u8]) -> Result<(InMemDicomObject, String), ReadError> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(from)
        .map_err(|e| ReadError::Parse(one_line(e)))?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_owned();
    Ok((obj.into_inner(), ts))
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
}

/// The encoded Pixel Data element (header and value) as it stands in the input file: carried to
/// the output byte for byte, never decoded.
#[derive(Debug)]
pub struct RawPixelData {
    file: Vec<u8>,
    at: usize,
}

impl RawPixelData {
    /// The element's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.file[self.at..]
    }
}

/// Reads an input for de-identification: like [`read_object`], but when the Pixel Data
/// element ends the file (the usual case), the data set is parsed only up to it and the pixel
/// data is kept as the file's own bytes, neither decoded nor copied.
pub fn read_input(path: &Path) -> Result<Input, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::Io(one_line(e)))?;
    input_from_bytes(bytes)
}

/// [`read_input`] on a file's bytes already in memory.
pub fn input_from_bytes(bytes: Vec<u8>) -> Result<Input, ReadError> {
    let magic_at = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(128)
    } else if bytes.starts_with(b"DICM") {
        Some(0)
    } else {
        None
    };
    let Some(magic_at) = magic_at else {
        let (object, transfer_syntax) = read_bare_dataset(&bytes)?;
        return Ok(Input {
            object,
            transfer_syntax,
            raw_pixel_data: None,
        });
    };
    let check = precheck_part10(&bytes[magic_at + 4..])?;
    let Some(at) = check.pixel_data_at.map(|off| magic_at + 4 + off) else {
        let (object, transfer_syntax) = parse_part10(&bytes[magic_at..])?;
        return Ok(Input {
            object,
            transfer_syntax,
            raw_pixel_data: None,
        });
    };
    let (mut object, transfer_syntax) = parse_part10(&bytes[magic_at..at])?;
    object.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::PIXEL_DATA,
        dicom_core::VR::OB,
        dicom_core::PrimitiveValue::Empty,
    ));
    Ok(Input {
        object,
        transfer_syntax,
        raw_pixel_data: Some(RawPixelData { file: bytes, at }),
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
const MAX_INFLATED: u64 = 4 << 30;

/// The structural check of [`crate::guard`] on a Part 10 file after `DICM`: meta group, then
/// the data set in its transfer syntax (inflated first when deflated, within a bound).
fn precheck_part10(after_magic: &[u8]) -> Result<Precheck, ReadError> {
    let (ts, start) = check_meta(after_magic).map_err(|m| ReadError::Parse(m.0))?;
    let dataset = &after_magic[start..];
    if ts == "1.2.840.10008.1.2.1.99" || ts == "1.2.840.10008.1.2.4.95" {
        let mut inflated = Vec::new();
        let mut reader = flate2::read::DeflateDecoder::new(dataset).take(MAX_INFLATED + 1);
        reader
            .read_to_end(&mut inflated)
            .map_err(|e| ReadError::Parse(format!("cannot inflate data set: {}", one_line(e))))?;
        if inflated.len() as u64 > MAX_INFLATED {
            return Err(ReadError::Parse(
                "deflated data set inflates beyond 4 GiB".into(),
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
