//! Which abstract syntaxes the SCP accepts, and in which transfer syntax.

use dicom_core::dictionary::{UidDictionary, UidType};
use dicom_dictionary_std::StandardSopClassDictionary;
use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

/// Verification SOP Class.
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// Implicit VR Little Endian.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Whether `uid` names a SOP class a storage SCP should accept: a standard Storage SOP Class
/// (by the dictionary, or under the storage root 1.2.840.10008.5.1.4.1.1 when newer than the
/// dictionary), or a private (non-`1.2.840.10008`) class. Other standard SOP classes (query,
/// retrieve, worklist, print, storage commitment, Media Storage Directory) are refused: this
/// SCP performs only C-STORE and C-ECHO.
pub fn is_storage_sop_class(uid: &str) -> bool {
    if uid.is_empty() || uid.len() > 64 {
        return false;
    }
    if !uid.starts_with("1.2.840.10008.") {
        return true;
    }
    match StandardSopClassDictionary.by_uid(uid) {
        Some(entry) => {
            matches!(entry.r#type, UidType::SopClass)
                && entry.name.contains("Storage")
                && !entry.name.contains("Storage Commitment")
                && !entry.name.contains("Media Storage Directory")
        }
        None => uid.starts_with("1.2.840.10008.5.1.4.1.1."),
    }
}

/// Whether dicom-rs's transfer syntax registry knows `uid` (its data sets can then be read,
/// even if pixel data in it cannot be decoded).
pub fn is_known_transfer_syntax(uid: &str) -> bool {
    TransferSyntaxRegistry.get(uid).is_some()
}

/// The transfer syntax accepted for a proposed context: the first one offered that the
/// registry knows.
pub fn choose_transfer_syntax<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    offered
        .into_iter()
        .map(|ts| ts.trim_end_matches(['\0', ' ']))
        .find(|ts| is_known_transfer_syntax(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes() {
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2")); // CT
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.3.1")); // US multi-frame
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.9.1.1")); // 12-lead ECG
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.481.5")); // RT plan
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.999")); // future storage
        assert!(is_storage_sop_class("1.2.392.200036.9116.7.8.1.1.1")); // private
        assert!(!is_storage_sop_class("1.2.840.10008.5.1.4.1.2.1.1")); // patient root find
        assert!(!is_storage_sop_class("1.2.840.10008.1.20.1")); // storage commitment
        assert!(!is_storage_sop_class("1.2.840.10008.1.3.10")); // DICOMDIR
        assert!(!is_storage_sop_class(VERIFICATION));
    }

    #[test]
    fn transfer_syntaxes() {
        assert_eq!(
            choose_transfer_syntax(["1.2.3.4", "1.2.840.10008.1.2.4.50", IMPLICIT_VR_LE]),
            Some("1.2.840.10008.1.2.4.50")
        );
        assert_eq!(choose_transfer_syntax(["1.2.3.4"]), None);
        assert!(is_known_transfer_syntax("1.2.840.10008.1.2.1.99")); // deflated
        assert!(is_known_transfer_syntax("1.2.840.10008.1.2.4.80")); // JPEG-LS lossless
    }
}
