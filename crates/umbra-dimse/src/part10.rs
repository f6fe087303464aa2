//! The Part 10 file wrapper: writing a preamble and meta group in front of a data set received
//! over the network, and finding the SOP class, instance, transfer syntax and data set offset of
//! a file to send.

use crate::error::Error;

/// Implementation Class UID written in meta groups and association requests (Umbra's; the same
/// value as `umbra_core::IMPLEMENTATION_CLASS_UID`).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.211435303413202689488341865374591224182";
/// Implementation Version Name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("UMBRA_", env!("CARGO_PKG_VERSION"));

/// Bytes read from the start of a file to find its meta group.
pub(crate) const META_PREFIX: usize = 64 * 1024;

/// What the meta group of a Part 10 file says, and where its data set starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part10Meta {
    /// Media Storage SOP Class UID (0002,0002).
    pub sop_class_uid: String,
    /// Media Storage SOP Instance UID (0002,0003).
    pub sop_instance_uid: String,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax_uid: String,
    /// Byte offset of the data set: preamble, `DICM` and the meta group come before it.
    pub data_set_offset: u64,
}

/// Writes a 128-byte zero preamble, `DICM` and a file meta group (explicit VR little endian)
/// for a data set in `transfer_syntax_uid`; `source_ae` becomes Source Application Entity
/// Title (0002,0016) when not empty. The data set bytes as received follow it unchanged.
pub fn part10_header(
    sop_class_uid: &str,
    sop_instance_uid: &str,
    transfer_syntax_uid: &str,
    source_ae: &str,
) -> Vec<u8> {
    let mut group = Vec::with_capacity(256);
    // (0002,0001) File Meta Information Version, OB
    group.extend_from_slice(&[2, 0, 1, 0, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1]);
    put_short(&mut group, 0x0002, b"UI", sop_class_uid, 0);
    put_short(&mut group, 0x0003, b"UI", sop_instance_uid, 0);
    put_short(&mut group, 0x0010, b"UI", transfer_syntax_uid, 0);
    put_short(&mut group, 0x0012, b"UI", IMPLEMENTATION_CLASS_UID, 0);
    put_short(&mut group, 0x0013, b"SH", IMPLEMENTATION_VERSION_NAME, b' ');
    let source_ae = source_ae.trim();
    if !source_ae.is_empty() {
        put_short(&mut group, 0x0016, b"AE", source_ae, b' ');
    }
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(&[2, 0, 0, 0, b'U', b'L', 4, 0]);
    out.extend_from_slice(&(group.len() as u32).to_le_bytes());
    out.extend_from_slice(&group);
    out
}

fn put_short(out: &mut Vec<u8>, element: u16, vr: &[u8; 2], value: &str, pad: u8) {
    let odd = value.len() % 2;
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&((value.len() + odd) as u16).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
    if odd == 1 {
        out.push(pad);
    }
}

/// Parses the preamble and meta group at the start of a Part 10 file (`prefix` holds at least
/// the whole meta group, or the whole file if it is shorter).
pub fn parse_part10_meta(prefix: &[u8]) -> Result<Part10Meta, Error> {
    let bad = |why: &str| Error::Part10(why.to_string());
    if prefix.get(128..132) != Some(b"DICM") {
        return Err(bad("no DICM prefix after the preamble"));
    }
    let mut pos = 132usize;
    let (mut class, mut instance, mut ts) = (None, None, None);
    loop {
        let Some(h) = prefix.get(pos..pos + 8) else {
            if pos == prefix.len() {
                break; // a file of meta group only
            }
            return Err(bad("meta group truncated"));
        };
        let group = u16::from_le_bytes([h[0], h[1]]);
        if group != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([h[2], h[3]]);
        let vr = [h[4], h[5]];
        let (len, start) = if matches!(
            &vr,
            b"OB"
                | b"OW"
                | b"OF"
                | b"SQ"
                | b"UT"
                | b"UN"
                | b"UC"
                | b"UR"
                | b"OD"
                | b"OL"
                | b"OV"
                | b"SV"
                | b"UV"
        ) {
            let l = prefix
                .get(pos + 8..pos + 12)
                .ok_or_else(|| bad("meta group truncated"))?;
            (
                u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize,
                pos + 12,
            )
        } else {
            (u16::from_le_bytes([h[6], h[7]]) as usize, pos + 8)
        };
        let value = start
            .checked_add(len)
            .and_then(|end| prefix.get(start..end))
            .ok_or_else(|| bad("meta element runs past the meta group"))?;
        let text = || {
            std::str::from_utf8(value)
                .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
                .map_err(|_| bad("meta UID is not text"))
        };
        match element {
            0x0002 => class = Some(text()?),
            0x0003 => instance = Some(text()?),
            0x0010 => ts = Some(text()?),
            _ => {}
        }
        pos = start + len;
    }
    let need = |v: Option<String>, what: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| bad(&format!("meta group lacks {what}")))
    };
    Ok(Part10Meta {
        sop_class_uid: need(class, "Media Storage SOP Class UID")?,
        sop_instance_uid: need(instance, "Media Storage SOP Instance UID")?,
        transfer_syntax_uid: need(ts, "Transfer Syntax UID")?,
        data_set_offset: pos as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = part10_header(
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.3",
            "1.2.840.10008.1.2.1",
            "CT1",
        );
        let mut file = h.clone();
        file.extend_from_slice(&[8, 0, 0x16, 0, b'U', b'I', 2, 0, b'1', 0]);
        let meta = parse_part10_meta(&file).unwrap();
        assert_eq!(meta.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(meta.sop_instance_uid, "1.2.3");
        assert_eq!(meta.transfer_syntax_uid, "1.2.840.10008.1.2.1");
        assert_eq!(meta.data_set_offset, h.len() as u64);
        for cut in 0..h.len() {
            let _ = parse_part10_meta(&h[..cut]);
        }
        assert!(parse_part10_meta(&h[..150]).is_err());
    }
}
