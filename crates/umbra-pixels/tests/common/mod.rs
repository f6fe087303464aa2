//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// A file of the public test corpus, `tests/corpus/public/<rel>` at the workspace root.
pub fn corpus(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The value of the top-level Pixel Data element of an explicit VR little-endian Part 10 file:
/// the native value, or the encapsulated fragments without the basic offset table. A test
/// helper for known corpus files, not a DICOM parser.
pub enum PixelValue {
    Native(Vec<u8>),
    Fragments(Vec<Vec<u8>>),
}

pub fn pixel_data(file: &[u8]) -> PixelValue {
    let tag = [0xE0, 0x7F, 0x10, 0x00];
    let at = file
        .windows(8)
        .rposition(|w| w[..4] == tag && (&w[4..6] == b"OB" || &w[4..6] == b"OW"))
        .expect("no Pixel Data element");
    let len = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap());
    let mut i = at + 12;
    if len != u32::MAX {
        return PixelValue::Native(file[i..i + len as usize].to_vec());
    }
    let mut items = Vec::new();
    loop {
        let group = u16::from_le_bytes([file[i], file[i + 1]]);
        let element = u16::from_le_bytes([file[i + 2], file[i + 3]]);
        let len = u32::from_le_bytes(file[i + 4..i + 8].try_into().unwrap()) as usize;
        i += 8;
        assert_eq!(group, 0xFFFE);
        if element == 0xE0DD {
            break;
        }
        assert_eq!(element, 0xE000);
        items.push(file[i..i + len].to_vec());
        i += len;
    }
    items.remove(0); // basic offset table
    PixelValue::Fragments(items)
}

pub fn fragments_of(rel: &str) -> Vec<Vec<u8>> {
    match pixel_data(&corpus(rel)) {
        PixelValue::Fragments(f) => f,
        PixelValue::Native(_) => panic!("{rel}: native pixel data"),
    }
}

pub fn native_of(rel: &str) -> Vec<u8> {
    match pixel_data(&corpus(rel)) {
        PixelValue::Native(v) => v,
        PixelValue::Fragments(_) => panic!("{rel}: encapsulated pixel data"),
    }
}
