//! Seeing the real text of an object whatever its Specific Character Set.
//!
//! dicom-rs decodes string values with the *first* value of Specific Character Set (0008,0005)
//! and falls back to ISO 8859-1 (a byte-for-byte mapping) when that value is empty or unknown.
//! That round-trips bytes exactly, but for ISO 2022 code extensions (e.g. Japanese
//! `\ISO 2022 IR 87`) the decoded string still holds escape sequences, so a name written in
//! kanji would not be found by a text search. [`TextView`] undoes that: it maps dicom-rs's
//! strings to the real text for matching and scrubbing, and maps scrubbed text back.

use dicom_encoding::text::SpecificCharacterSet;

/// How to get from dicom-rs's decoded string to the real text of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextView {
    /// dicom-rs decoded the text properly: its strings are the real text.
    Direct,
    /// dicom-rs decoded bytes as ISO 8859-1, but they are ISO 2022 with escape sequences
    /// (Japanese: JIS X 0201, JIS X 0208); decode those for the real text.
    Iso2022Jp,
}

/// The Specific Character Set could not be understood: text cannot be checked, fail closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedCharset(pub String);

impl TextView {
    /// The view for the values of Specific Character Set (0008,0005) (empty when absent).
    pub fn for_charsets(values: &[String]) -> Result<Self, UnsupportedCharset> {
        let terms: Vec<&str> = values.iter().map(|v| v.trim_matches([' ', '\0'])).collect();
        let first = terms.first().copied().unwrap_or("");
        for t in &terms {
            if !t.is_empty() && SpecificCharacterSet::from_code(t).is_none() {
                return Err(UnsupportedCharset(values.join("\\")));
            }
        }
        let extensions = terms.iter().skip(1).any(|t| !t.is_empty());
        let japanese = terms
            .iter()
            .any(|t| matches!(*t, "ISO 2022 IR 87" | "ISO 2022 IR 13" | "ISO 2022 IR 159"));
        match (first, extensions) {
            (_, false) => Ok(TextView::Direct),
            ("" | "ISO 2022 IR 6" | "ISO 2022 IR 13" | "ISO 2022 IR 87", true) if japanese => {
                Ok(TextView::Iso2022Jp)
            }
            // Other code extensions (e.g. Korean IR 149, Chinese IR 58 with escapes) would leave
            // escape sequences in the text that this build cannot decode: refuse, fail closed.
            _ => Err(UnsupportedCharset(values.join("\\"))),
        }
    }

    /// The real text of a string as dicom-rs decoded it.
    pub fn real<'a>(self, decoded: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            TextView::Direct => decoded.into(),
            TextView::Iso2022Jp => {
                if !decoded.contains('\u{1b}') {
                    return decoded.into();
                }
                let Some(bytes) = latin1_bytes(decoded) else {
                    return decoded.into();
                };
                let (text, _, _) = encoding_rs::ISO_2022_JP.decode(&bytes);
                text.into_owned().into()
            }
        }
    }

    /// The string to hand back to dicom-rs for real text produced by scrubbing.
    /// `None` if the text cannot be encoded in the object's character set.
    pub fn back(self, real: &str) -> Option<String> {
        match self {
            TextView::Direct => Some(real.to_owned()),
            TextView::Iso2022Jp => {
                if real.is_ascii() {
                    return Some(real.to_owned());
                }
                let (bytes, _, unmappable) = encoding_rs::ISO_2022_JP.encode(real);
                if unmappable {
                    return None;
                }
                Some(bytes.iter().map(|&b| b as char).collect())
            }
        }
    }
}

fn latin1_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(c as u32).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn recognises_views() {
        assert_eq!(TextView::for_charsets(&[]).unwrap(), TextView::Direct);
        assert_eq!(
            TextView::for_charsets(&v(&["ISO_IR 192"])).unwrap(),
            TextView::Direct
        );
        assert_eq!(
            TextView::for_charsets(&v(&["", "ISO 2022 IR 87"])).unwrap(),
            TextView::Iso2022Jp
        );
        assert_eq!(
            TextView::for_charsets(&v(&["ISO 2022 IR 13", "ISO 2022 IR 87"])).unwrap(),
            TextView::Iso2022Jp
        );
        assert!(TextView::for_charsets(&v(&["ISO_IR 999"])).is_err());
        assert!(TextView::for_charsets(&v(&["", "ISO 2022 IR 149"])).is_err());
    }

    #[test]
    fn japanese_round_trip() {
        // PS3.5 H.3.1 example: Yamada^Tarou=山田^太郎=やまだ^たろう
        let raw: &[u8] =
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        let as_dicom_rs: String = raw.iter().map(|&b| b as char).collect();
        let view = TextView::Iso2022Jp;
        let real = view.real(&as_dicom_rs);
        assert_eq!(real, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        let back = view.back(&real).unwrap();
        assert_eq!(view.real(&back), real);
    }
}
