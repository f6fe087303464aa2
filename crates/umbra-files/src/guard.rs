//! A structural check of a data set's bytes before dicom-rs parses them.
//!
//! dicom-rs (0.10) allocates and zero-fills a value's *declared* length before reading it, so a
//! few hostile bytes declaring a 4 GiB value cost 4 GiB, or abort the process (found by the fuzz
//! target, `fuzz/regressions/*-huge-declared-length.bin`). It also recurses once per nesting
//! level. This walk over the element headers refuses, before any allocation, every declared
//! length that runs past the end of its container and nesting deeper than [`MAX_DEPTH`].
//! It never interprets values.

use dicom_core::VR;
use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;

/// Deepest nesting of sequences accepted (real objects rarely exceed 6).
pub const MAX_DEPTH: usize = 64;

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// How the data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Implicit VR little endian.
    ImplicitLe,
    /// Explicit VR little endian (also every encapsulated transfer syntax).
    ExplicitLe,
    /// Explicit VR big endian.
    ExplicitBe,
}

impl Encoding {
    /// The encoding of a transfer syntax's data set (after any deflate).
    pub fn of(ts: &str) -> Self {
        match ts.trim_end_matches(['\0', ' ']) {
            "1.2.840.10008.1.2" => Encoding::ImplicitLe,
            "1.2.840.10008.1.2.2" => Encoding::ExplicitBe,
            _ => Encoding::ExplicitLe,
        }
    }
}

/// Where a data set's structure does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// What the container being walked is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A sequence: holds items.
    Sequence,
    /// An item of a sequence: holds elements.
    Item,
    /// Encapsulated pixel data: holds fragments (items whose content is opaque).
    Fragments,
}

struct Frame {
    kind: Kind,
    /// Absolute end offset for a defined length, `None` until its delimiter otherwise.
    end: Option<usize>,
    /// Encoding of what the container holds: a UN sequence holds implicit VR little endian
    /// items whatever the file's transfer syntax (PS3.5 6.2.2).
    enc: Encoding,
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let x = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

/// Explicit VRs whose header has two reserved bytes and a 4-byte length (PS3.5 7.1.2).
fn has_long_header(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

fn dictionary_vr(group: u16, element: u16) -> Option<VR> {
    StandardDataDictionary
        .by_tag(dicom_core::Tag(group, element))
        .map(|e| e.vr.relaxed())
}

/// What the check learned of a data set's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Offset of the top-level Pixel Data (7FE0,0010) element's header when it is the last
    /// top-level element: everything from there to the end is the pixel data, and can be
    /// carried to the output as bytes.
    pub trailing_pixel_data: Option<usize>,
}

/// Checks the element structure of `bytes` (a data set, no preamble or meta group).
pub fn check_dataset(bytes: &[u8], base: Encoding) -> Result<Layout, Malformed> {
    match walk(bytes, bytes.len(), base, false)? {
        Walk::Complete(layout) => Ok(layout),
        // `total` is the length of `bytes` and no early stop was asked for
        Walk::NeedMore | Walk::NativePixelDataAt(_) => unreachable!("whole data set given"),
    }
}

/// How far a walk over the first bytes of a data set got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The whole data set was walked.
    Complete(Layout),
    /// A top-level native (defined-length) Pixel Data element starts here and ends the data set;
    /// everything before it was checked.
    NativePixelDataAt(usize),
    /// More bytes are needed to get to the pixel data.
    NeedMore,
}

/// Walks the first bytes of a data set of `total` bytes (`prefix` may be shorter), stopping at
/// a top-level native Pixel Data element that ends the data set. What lies before it is checked
/// as [`check_dataset`] checks it; the pixel data's value only has to fit.
pub fn check_prefix(prefix: &[u8], total: usize, base: Encoding) -> Result<Walk, Malformed> {
    walk(prefix, total.max(prefix.len()), base, true)
}

fn walk(
    bytes: &[u8],
    total: usize,
    base: Encoding,
    stop_at_pixels: bool,
) -> Result<Walk, Malformed> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0usize;
    let mut pixel_data_at = None;
    let err = |pos: usize, what: &str| Malformed(format!("{what} at byte {pos}"));
    loop {
        // Close every defined-length container that ends here.
        while let Some(f) = stack.last() {
            match f.end {
                Some(end) if pos == end => {
                    stack.pop();
                }
                Some(end) if pos > end => {
                    return Err(err(
                        pos,
                        "element runs past the end of its sequence or item",
                    ));
                }
                _ => break,
            }
        }
        let limit = stack.iter().filter_map(|f| f.end).min().unwrap_or(total);
        let enc = stack.last().map_or(base, |f| f.enc);
        let be = enc == Encoding::ExplicitBe;
        if pos == total {
            return if stack.iter().any(|f| f.end.is_none()) {
                Err(err(pos, "file ends inside an undefined-length sequence"))
            } else {
                Ok(Walk::Complete(Layout {
                    trailing_pixel_data: pixel_data_at,
                }))
            };
        }
        if pos + 8 > limit {
            return Err(err(pos, "truncated element header"));
        }
        // The longest header is 12 bytes; past the prefix, ask for more.
        if bytes.len() < total && pos + 12 > bytes.len() {
            return Ok(Walk::NeedMore);
        }
        let group = u16_at(bytes, pos, be);
        let element = u16_at(bytes, pos + 2, be);
        let in_kind = stack.last().map(|f| f.kind);

        if group == 0xFFFE {
            let len = u32_at(bytes, pos + 4, be);
            pos += 8;
            match element {
                0xE000 => {
                    let kind = if in_kind == Some(Kind::Fragments) {
                        Kind::Fragments
                    } else {
                        Kind::Item
                    };
                    if !matches!(in_kind, Some(Kind::Sequence | Kind::Fragments)) {
                        return Err(err(pos - 8, "item outside a sequence"));
                    }
                    if len == UNDEFINED {
                        if kind == Kind::Fragments {
                            return Err(err(pos - 8, "fragment of undefined length"));
                        }
                        stack.push(Frame {
                            kind: Kind::Item,
                            end: None,
                            enc,
                        });
                    } else {
                        let end = pos.checked_add(len as usize).filter(|&e| e <= limit);
                        let Some(end) = end else {
                            return Err(err(pos - 8, "item length runs past the end of the data"));
                        };
                        if kind == Kind::Fragments {
                            pos = end; // opaque compressed bytes
                        } else {
                            stack.push(Frame {
                                kind: Kind::Item,
                                end: Some(end),
                                enc,
                            });
                        }
                    }
                }
                0xE00D => {
                    if !matches!(
                        stack.last(),
                        Some(Frame {
                            kind: Kind::Item,
                            end: None,
                            ..
                        })
                    ) {
                        return Err(err(
                            pos - 8,
                            "item delimiter outside an undefined-length item",
                        ));
                    }
                    stack.pop();
                }
                0xE0DD => {
                    if !matches!(
                        stack.last(),
                        Some(Frame {
                            kind: Kind::Sequence | Kind::Fragments,
                            end: None,
                            ..
                        })
                    ) {
                        return Err(err(
                            pos - 8,
                            "sequence delimiter outside an undefined-length sequence",
                        ));
                    }
                    stack.pop();
                }
                _ => return Err(err(pos - 8, "unknown item tag")),
            }
            continue;
        }
        if matches!(in_kind, Some(Kind::Sequence | Kind::Fragments)) {
            return Err(err(
                pos,
                "data element directly inside a sequence (no item)",
            ));
        }
        let header_at = pos;
        if stack.is_empty() {
            pixel_data_at = ((group, element) == (0x7FE0, 0x0010)).then_some(pos);
        }

        let (vr, len, header) = if enc == Encoding::ImplicitLe {
            let vr = dictionary_vr(group, element).unwrap_or(VR::UN);
            (vr, u32_at(bytes, pos + 4, false), 8)
        } else {
            let Some(vr) = VR::from_binary([bytes[pos + 4], bytes[pos + 5]]) else {
                return Err(err(pos, "invalid value representation"));
            };
            let long = has_long_header(vr);
            if long {
                if pos + 12 > limit {
                    return Err(err(pos, "truncated element header"));
                }
                (vr, u32_at(bytes, pos + 8, be), 12)
            } else {
                (vr, u16_at(bytes, pos + 6, be) as u32, 8)
            }
        };
        pos += header;
        if len == UNDEFINED {
            // Undefined length: a sequence, a UN sequence, or encapsulated pixel data.
            let kind = match vr {
                VR::OB | VR::OW => Kind::Fragments,
                _ => Kind::Sequence,
            };
            if vr == VR::UN && enc != Encoding::ImplicitLe {
                // A sequence that went through an implicit-VR hop and came back as UN. PS3.5
                // 6.2.2 says its items are implicit VR, but dicom-rs 0.10 reads them as explicit,
                // takes item tags for lengths and allocates gigabytes (pydicom's UN_sequence.dcm:
                // 3.6 GB for 674 bytes). Refused here, before it is parsed.
                return Err(err(
                    pos - header,
                    "sequence encoded as UN with undefined length (not readable safely)",
                ));
            }
            let inner = enc;
            stack.push(Frame {
                kind,
                end: None,
                enc: inner,
            });
        } else {
            let Some(end) = pos.checked_add(len as usize).filter(|&e| e <= limit) else {
                return Err(err(
                    pos - header,
                    "value length runs past the end of the data",
                ));
            };
            // A binary value whose length is not a whole number of its units is read short by
            // dicom-rs, which then takes value bytes for the next header (found by the fuzz
            // target: a stray byte led to a multi-gigabyte length).
            let unit = match vr {
                VR::US | VR::SS | VR::OW => 2,
                VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => 4,
                VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => 8,
                _ => 1,
            };
            if !(len as usize).is_multiple_of(unit) {
                return Err(err(
                    pos - header,
                    "value length is not a whole number of its binary units",
                ));
            }
            // (a Pixel Data element with another VR, a sequence say, is walked like any other:
            // it is malformed, and both read paths must say so)
            if stop_at_pixels
                && pixel_data_at == Some(header_at)
                && end == total
                && matches!(vr, VR::OB | VR::OW | VR::UN)
            {
                return Ok(Walk::NativePixelDataAt(header_at));
            }
            if vr == VR::SQ {
                stack.push(Frame {
                    kind: Kind::Sequence,
                    end: Some(end),
                    enc,
                });
            } else if vr == VR::UN && dictionary_vr(group, element) == Some(VR::SQ) {
                // A sequence that came as UN: the engine re-reads it as implicit VR little
                // endian, so its content is checked as such now.
                stack.push(Frame {
                    kind: Kind::Sequence,
                    end: Some(end),
                    enc: Encoding::ImplicitLe,
                });
            } else {
                pos = end;
            }
        }
        if stack.len() > MAX_DEPTH * 2 {
            return Err(err(pos, "sequences nested too deeply"));
        }
    }
}

/// Checks a file meta group (explicit VR little endian, group 0002) at the start of `bytes`
/// (just after `DICM`). Returns the transfer syntax UID and where the data set starts.
///
/// It reads the group the way dicom-rs does, so both agree on where the data set starts: File
/// Meta Information Group Length (0002,0000) first, then whole elements until that many bytes
/// are read (found by the fuzz target: a meta group whose elements and length disagreed made
/// the two readers start the data set at different bytes).
pub fn check_meta(bytes: &[u8]) -> Result<(String, usize), Malformed> {
    let bad = |what: &str| Malformed(format!("file meta group: {what}"));
    if bytes.len() < 12
        || u16_at(bytes, 0, false) != 0x0002
        || u16_at(bytes, 2, false) != 0x0000
        || u16_at(bytes, 6, false) != 4
    {
        return Err(bad("does not start with its group length (0002,0000)"));
    }
    let group_length = u32_at(bytes, 8, false) as usize;
    let mut pos = 12;
    let mut ts = None;
    while pos - 12 < group_length {
        if pos + 8 > bytes.len() {
            return Err(bad("truncated"));
        }
        if u16_at(bytes, pos, false) != 0x0002 {
            return Err(bad("holds an element of another group"));
        }
        let element = u16_at(bytes, pos + 2, false);
        let Some(vr) = VR::from_binary([bytes[pos + 4], bytes[pos + 5]]) else {
            return Err(bad("invalid value representation"));
        };
        let (len, header) = if has_long_header(vr) {
            if pos + 12 > bytes.len() {
                return Err(bad("truncated"));
            }
            (u32_at(bytes, pos + 8, false) as usize, 12)
        } else {
            (u16_at(bytes, pos + 6, false) as usize, 8)
        };
        let start = pos + header;
        let Some(end) = start.checked_add(len).filter(|&e| e <= bytes.len()) else {
            return Err(bad("a value length runs past the end of the file"));
        };
        if element == 0x0010 {
            ts = Some(
                String::from_utf8_lossy(&bytes[start..end])
                    .trim_end_matches(['\0', ' '])
                    .to_string(),
            );
        }
        pos = end;
    }
    if pos - 12 != group_length {
        return Err(bad("its group length does not end at an element boundary"));
    }
    let ts = ts.ok_or_else(|| bad("no Transfer Syntax UID"))?;
    Ok((ts, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(tag: (u16, u16), vr: &[u8; 2], val: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(vr);
        v.extend_from_slice(&(val.len() as u16).to_le_bytes());
        v.extend_from_slice(val);
        v
    }

    #[test]
    fn accepts_well_formed_and_refuses_oversized_lengths() {
        let ok = [
            el((0x0008, 0x0060), b"CS", b"CT"),
            el((0x0010, 0x0010), b"PN", b"DOE^J "),
        ]
        .concat();
        assert!(check_dataset(&ok, Encoding::ExplicitLe).is_ok());
        let mut bad = ok.clone();
        bad.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, b'L', b'O', 0xFF, 0x7F, b'x']);
        assert!(check_dataset(&bad, Encoding::ExplicitLe).is_err());
        // implicit VR: 4-byte length of 4 GiB - 16
        let implicit = [0x08, 0x00, 0x60, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, b'C', b'T'];
        assert!(check_dataset(&implicit, Encoding::ImplicitLe).is_err());
    }

    #[test]
    fn walks_nested_sequences_and_fragments() {
        // (0008,1140) SQ undefined { item undefined { (0008,1155) UI } delim } delim, then
        // encapsulated pixel data with an empty offset table and one fragment.
        let mut v = vec![
            0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        v.extend(el((0x0008, 0x1155), b"UI", b"1.2.3\0"));
        v.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        v.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0]);
        v.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        // the pixel data element starts after the sequence: 12 + 8 + 14 (UI) + 8 + 8 bytes
        assert_eq!(
            check_dataset(&v, Encoding::ExplicitLe),
            Ok(Layout {
                trailing_pixel_data: Some(12 + 8 + 14 + 8 + 8)
            })
        );
        // cut before the last delimiter: the file ends inside the pixel data
        assert!(check_dataset(&v[..v.len() - 8], Encoding::ExplicitLe).is_err());
    }

    #[test]
    fn prefix_walk_stops_at_native_pixel_data_or_asks_for_more() {
        let mut v = [
            el((0x0008, 0x0060), b"CS", b"CT"),
            el((0x0010, 0x0010), b"PN", b"DOE^J "),
        ]
        .concat();
        let pixel_at = v.len();
        v.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0x00, 0x10, 0, 0]);
        let total = v.len() + 0x1000; // the pixel value itself is never needed
        assert_eq!(
            check_prefix(&v, total, Encoding::ExplicitLe),
            Ok(Walk::NativePixelDataAt(pixel_at))
        );
        assert_eq!(
            check_prefix(&v[..10], total, Encoding::ExplicitLe),
            Ok(Walk::NeedMore)
        );
        // pixel data not ending the data set: no stop; the walk needs what follows it
        assert_eq!(
            check_prefix(&v, total + 16, Encoding::ExplicitLe),
            Ok(Walk::NeedMore)
        );
        // and two stray bytes after it cannot be an element
        assert!(check_prefix(&v, total + 2, Encoding::ExplicitLe).is_err());
        // a length running past the data set is still refused
        assert!(check_prefix(&v, total - 2, Encoding::ExplicitLe).is_err());
    }

    #[test]
    fn refuses_stray_delimiters_and_deep_nesting() {
        let stray = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        assert!(check_dataset(&stray, Encoding::ExplicitLe).is_err());
        let mut deep = Vec::new();
        for _ in 0..(MAX_DEPTH + 1) {
            deep.extend_from_slice(&[
                0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            deep.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        assert!(check_dataset(&deep, Encoding::ExplicitLe).is_err());
    }
}
