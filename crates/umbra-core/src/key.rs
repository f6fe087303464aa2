//! The secret key and everything derived from it: keyed UIDs, pseudonyms and date offsets.
//!
//! Every derivation is HMAC-SHA-256 under the key with a distinct domain label, so a value is
//! never hashed bare (an unkeyed hash of an MRN or a birth date is reversible by guessing) and
//! the outputs of different derivations cannot be correlated with each other.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A secret de-identification key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not 64 hexadecimal digits.
    #[error("a key is {} hexadecimal digits (found {found} characters)", KEY_LEN * 2)]
    BadLength {
        /// number of characters found
        found: usize,
    },
    /// A character is not hexadecimal.
    #[error("a key is hexadecimal digits only")]
    NotHex,
    /// The operating system's random source failed.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

impl Key {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Key(k))
    }

    /// Builds a key from raw bytes (tests and embedding).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Key(bytes)
    }

    /// Parses the key file format: 64 hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        if t.len() != KEY_LEN * 2 {
            return Err(KeyError::BadLength {
                found: t.chars().count(),
            });
        }
        let mut k = [0u8; KEY_LEN];
        hex::decode_to_slice(t, &mut k).map_err(|_| KeyError::NotHex)?;
        Ok(Key(k))
    }

    /// The key file format: 64 lower-case hex digits and a newline.
    pub fn to_hex_line(&self) -> String {
        format!("{}\n", hex::encode(self.0))
    }
}

/// Keyed derivations. Cheap to clone; one per worker is fine.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: HmacSha256,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<keyed>)")
    }
}

/// Crockford's base32 alphabet: no I, L, O, U, so pseudonyms are easy to read aloud.
const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Number of base32 characters in an identifier pseudonym (60 bits; fits SH's 16 characters).
pub const PSEUDONYM_LEN: usize = 12;

impl Pseudonymizer {
    /// Keys the derivations.
    pub fn new(key: &Key) -> Self {
        Pseudonymizer {
            mac: HmacSha256::new_from_slice(&key.0).expect("HMAC takes any key length"),
        }
    }

    fn digest(&self, domain: &str, parts: &[&str]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(domain.as_bytes());
        for p in parts {
            // Length-prefix each part so ("ab","c") and ("a","bc") differ.
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p.as_bytes());
        }
        m.finalize().into_bytes().into()
    }

    /// The keyed replacement of a UID: `2.25.` and the decimal value of a 128-bit UUID whose
    /// version (8, "custom") and variant bits are set, as PS3.5 B.2 describes for `2.25` UIDs.
    /// The same UID always maps to the same replacement under the same key.
    pub fn uid(&self, uid: &str) -> String {
        let d = self.digest("umbra/uid/v1", &[uid.trim_end_matches(['\0', ' '])]);
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0F) | 0x80; // version 8
        b[8] = (b[8] & 0x3F) | 0x80; // RFC 4122/9562 variant
        format!("2.25.{}", u128::from_be_bytes(b))
    }

    /// A short stable pseudonym for an identifier value within a domain (e.g. the attribute):
    /// [`PSEUDONYM_LEN`] Crockford base32 characters, a digit first and a letter second. That
    /// shape can never read as a name, a word or a record number (`A7765432`, `12345678AB`), so
    /// a verifier can tell a pseudonym from identity by its shape alone.
    pub fn id(&self, domain: &str, value: &str) -> String {
        let d = self.digest("umbra/id/v1", &[domain, value]);
        let mut p = base32(&d, PSEUDONYM_LEN).into_bytes();
        // base32 used the first 60 bits of the digest; later bytes pick the first two.
        p[0] = BASE32[(d[20] % 10) as usize];
        p[1] = BASE32[10 + (d[21] % 22) as usize];
        String::from_utf8(p).expect("base32 is ASCII")
    }

    /// The pseudonym of a patient, from the patient's key (see [`PatientKey`]).
    pub fn patient(&self, patient: &PatientKey) -> String {
        self.id("PatientID", &patient.0)
    }

    /// The patient's date offset in days: negative (dates move into the past), never zero,
    /// between 365 and 3652 days (1 to 10 years), the same for every object of the patient.
    pub fn day_offset(&self, patient: &PatientKey) -> i64 {
        let d = self.digest("umbra/date-shift/v1", &[&patient.0]);
        let n = u64::from_be_bytes(d[..8].try_into().unwrap());
        -(365 + (n % (3652 - 365 + 1)) as i64)
    }
}

/// What identifies a patient across objects: Issuer of Patient ID and Patient ID, or when there
/// is no Patient ID, the name and birth date, or failing those the study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientKey(String);

impl PatientKey {
    /// The key of a patient known by an ID (and its issuer, possibly empty).
    pub fn from_id(issuer: &str, id: &str) -> Self {
        PatientKey(format!("{}\u{1}{}", issuer.trim(), id.trim()))
    }

    /// The key of a patient without an ID.
    pub fn from_name(name: &str, birth_date: &str) -> Self {
        PatientKey(format!("\u{2}{}\u{1}{}", name.trim(), birth_date.trim()))
    }

    /// The key of an unknown patient: each study is its own patient.
    pub fn from_study(study_uid: &str) -> Self {
        PatientKey(format!("\u{3}{}", study_uid.trim_end_matches(['\0', ' '])))
    }
}

fn base32(bytes: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
            if out.len() == len {
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pz(byte: u8) -> Pseudonymizer {
        Pseudonymizer::new(&Key::from_bytes([byte; KEY_LEN]))
    }

    #[test]
    fn uid_is_keyed_stable_and_valid() {
        let a = pz(1).uid("1.2.3.4");
        assert_eq!(a, pz(1).uid("1.2.3.4"));
        assert_ne!(a, pz(2).uid("1.2.3.4"));
        assert_ne!(a, pz(1).uid("1.2.3.5"));
        assert!(a.starts_with("2.25."));
        assert!(a.len() <= 64);
        let digits = &a[5..];
        assert!(digits.bytes().all(|c| c.is_ascii_digit()));
        assert!(!digits.starts_with('0'));
        // trailing NUL padding is not part of the UID
        assert_eq!(a, pz(1).uid("1.2.3.4\0"));
        let v: u128 = digits.parse().unwrap();
        assert_eq!((v >> 76) & 0xF, 8, "UUID version 8");
        assert_eq!((v >> 62) & 0x3, 2, "RFC variant");
    }

    #[test]
    fn pseudonyms_depend_on_key_domain_and_value() {
        let p = pz(7);
        let a = p.id("AccessionNumber", "A123");
        assert_eq!(a.len(), PSEUDONYM_LEN);
        assert!(a.bytes().all(|c| BASE32.contains(&c)));
        assert_eq!(a, p.id("AccessionNumber", "A123"));
        assert_ne!(a, p.id("StudyID", "A123"));
        assert_ne!(a, p.id("AccessionNumber", "A124"));
        assert_ne!(a, pz(8).id("AccessionNumber", "A123"));
    }

    #[test]
    fn pseudonyms_start_with_a_digit_then_a_letter() {
        let p = pz(9);
        let mut firsts = std::collections::BTreeSet::new();
        for i in 0..20_000 {
            let a = p.id("PatientID", &i.to_string());
            assert_eq!(a.len(), PSEUDONYM_LEN);
            assert!(a.bytes().all(|c| BASE32.contains(&c)), "{a}");
            let b = a.as_bytes();
            assert!(b[0].is_ascii_digit() && b[1].is_ascii_uppercase(), "{a}");
            firsts.insert((b[0], b[1]));
        }
        // the two fixed positions still vary: 10 digits × 22 letters
        assert_eq!(firsts.len(), 220);
    }

    #[test]
    fn day_offset_is_never_zero_and_in_range() {
        let p = pz(3);
        for i in 0..2000 {
            let k = PatientKey::from_id("", &i.to_string());
            let d = p.day_offset(&k);
            assert!((-3652..=-365).contains(&d), "{d}");
            assert_eq!(d, p.day_offset(&k));
        }
    }

    #[test]
    fn key_hex_round_trip_and_errors() {
        let k = Key::generate().unwrap();
        let line = k.to_hex_line();
        let back = Key::from_hex(&line).unwrap();
        assert_eq!(back.0, k.0);
        assert!(matches!(
            Key::from_hex("abc"),
            Err(KeyError::BadLength { found: 3 })
        ));
        assert!(matches!(
            Key::from_hex(&"zz".repeat(32)),
            Err(KeyError::NotHex)
        ));
        assert_eq!(format!("{k:?}"), "Key(<secret>)");
    }
}
