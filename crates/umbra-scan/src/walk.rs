//! The walk: every element at every depth, each value judged by the detectors.

use crate::attributes::{Kind, identity_kind, is_class_uid, keyword};
use crate::mask::{mask, uid_root};
use crate::{Against, Finding, Policy, Rule, Severity, shape, text, un};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::{FileMetaTable, InMemDicomObject};
use std::collections::BTreeSet;

/// Raw bytes of an object, as read from its file or about to be written, without the value of
/// its pixel data: searched for identifiers of the originals that no parsed value accounts for
/// (the preamble, bytes a parser skipped, values it could not read).
#[derive(Debug, Clone, Copy)]
pub struct RawRegion<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Offset of `bytes[0]` in the file (for `raw@0x..` paths).
    pub offset: u64,
}

/// Deepest nesting walked (the readers refuse deeper objects).
const MAX_DEPTH: usize = 64;

/// VRs whose values dicom-rs holds as text.
pub(crate) fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::ST
            | VR::TM
            | VR::UC
            | VR::UI
            | VR::UR
            | VR::UT
    )
}

/// Text VRs the pattern detectors read: free and short text (not codes, numbers, UIDs).
fn is_free_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::LO | VR::LT | VR::SH | VR::ST | VR::UC | VR::UR | VR::UT
    )
}

/// Text VRs in which an identifier of the originals counts as a leak. Codes (CS) and numbers
/// are only counted as "seen" (so the raw search does not report them again): a name part such
/// as `HEAD` matching Body Part Examined is vocabulary, not identity.
fn is_leak_vr(vr: VR) -> bool {
    !matches!(vr, VR::CS | VR::DS | VR::IS | VR::TM | VR::AS)
}

/// Whether the object's Specific Character Set uses ISO 2022 Japanese code extensions.
pub(crate) fn is_iso2022_jp(obj: &InMemDicomObject) -> bool {
    charsets(obj)
        .iter()
        .any(|t| matches!(t.as_str(), "ISO 2022 IR 87" | "ISO 2022 IR 159"))
}

fn charsets(obj: &InMemDicomObject) -> Vec<String> {
    obj.get(Tag(0x0008, 0x0005))
        .and_then(|e| e.value().to_multi_str().ok().map(|v| v.to_vec()))
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.split('\\'))
        .map(|s| s.trim_matches([' ', '\0']).to_owned())
        .collect()
}

/// The real text of a string dicom-rs decoded: under ISO 2022 Japanese, dicom-rs reads bytes
/// as ISO 8859-1 and leaves escape sequences in; decode those.
pub(crate) fn real_text(s: &str, jp: bool) -> std::borrow::Cow<'_, str> {
    if !jp || !s.contains('\u{1b}') || s.chars().any(|c| c as u32 > 0xFF) {
        return s.into();
    }
    let bytes: Vec<u8> = s.chars().map(|c| c as u8).collect();
    let (text, _, _) = encoding_rs::ISO_2022_JP.decode(&bytes);
    text.into_owned().into()
}

/// An attribute's keyword for messages, looked up only when a message is written.
#[derive(Clone, Copy)]
struct AttrName(Tag);

impl std::fmt::Display for AttrName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(keyword(self.0).unwrap_or(if self.0.group() % 2 == 1 {
            "private attribute"
        } else {
            "unknown attribute"
        }))
    }
}

/// Where an element is: its parent's path and its tag. Rendered only when a finding needs it
/// (most elements have none, and formatting every path was a measurable share of the gate).
#[derive(Clone, Copy)]
struct Loc<'a> {
    prefix: &'a str,
    tag: Tag,
}

impl std::fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}({:04X},{:04X})",
            self.prefix,
            self.tag.group(),
            self.tag.element()
        )
    }
}

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.value().to_str().ok().map(|s| s.into_owned()))
        .map(|s| s.trim_matches([' ', '\0']).to_owned())
}

struct Ctx<'s> {
    policy: &'s Policy,
    against: Option<&'s Against>,
    findings: Vec<Finding>,
    /// identifiers of the originals seen in some parsed value (index into the Against set)
    seen: Vec<bool>,
    jp: bool,
    dates_modified: bool,
    /// A raw search follows the walk: every parsed value must be seen first.
    raw_follows: bool,
}

impl Ctx<'_> {
    fn push(
        &mut self,
        path: impl std::fmt::Display,
        rule: Rule,
        severity: Severity,
        category: &'static str,
        excerpt: String,
        message: String,
    ) {
        self.findings.push(Finding {
            path: path.to_string(),
            rule,
            severity,
            category,
            excerpt,
            message,
        });
    }
}

pub(crate) fn scan(
    policy: &Policy,
    against: Option<&Against>,
    dataset: &InMemDicomObject,
    meta: Option<&FileMetaTable>,
    raw: Option<RawRegion<'_>>,
) -> Vec<Finding> {
    let cs = charsets(dataset);
    let mut ctx = Ctx {
        policy,
        against,
        findings: Vec::new(),
        seen: vec![false; against.map_or(0, |a| a.len())],
        raw_follows: raw.is_some() && against.is_some(),
        jp: is_iso2022_jp(dataset),
        dates_modified: get_str(dataset, Tag(0x0028, 0x0303)).is_some_and(|v| v == "MODIFIED"),
    };
    if cs.len() > 1 && cs.iter().any(|t| t.starts_with("ISO 2022")) && !ctx.jp {
        ctx.push(
            "(0008,0005)",
            Rule::UnsupportedCharset,
            Severity::Warn,
            "",
            cs.join("\\"),
            "ISO 2022 code extensions other than Japanese are not decoded: text matches may be missed".into(),
        );
    }
    if let Some(meta) = meta {
        for e in meta.to_element_iter() {
            if let Value::Primitive(p) = e.value() {
                primitive(&mut ctx, "meta.", e.tag(), e.vr(), p);
            }
        }
    }
    walk_dataset(&mut ctx, dataset, "", 0);
    object_checks(&mut ctx, dataset);
    if let (Some(raw), Some(against)) = (raw, against) {
        raw_search(&mut ctx, against, raw);
    }
    ctx.findings
}

/// The identifiers of the originals in the raw bytes: anything in the preamble (which no
/// reader shows), and elsewhere whatever no parsed value accounts for.
fn raw_search(ctx: &mut Ctx<'_>, against: &Against, raw: RawRegion<'_>) {
    let bytes = raw.bytes;
    let preamble = if bytes.get(128..132) == Some(b"DICM") {
        128
    } else {
        0
    };
    let hits = against
        .find_raw(&bytes[..preamble])
        .into_iter()
        .map(|(i, r)| (i, r, true))
        .chain(
            against
                .find_raw(&bytes[preamble..])
                .into_iter()
                .map(|(i, r)| (i, r.start + preamble..r.end + preamble, false)),
        );
    for (i, range, in_preamble) in hits {
        if ctx.seen[i] && !in_preamble {
            continue;
        }
        ctx.seen[i] = true;
        let excerpt = mask(&String::from_utf8_lossy(&bytes[range.clone()]));
        let place = if in_preamble {
            "in the preamble"
        } else {
            "in the raw bytes, outside any value read"
        };
        let message = format!(
            "an identifier of the originals ({} from {}) is {place}",
            against.category(i),
            against.source(i)
        );
        let path = format!("raw@0x{:x}", raw.offset + range.start as u64);
        ctx.push(
            &path,
            Rule::AgainstRaw,
            Severity::Error,
            against.category(i),
            excerpt,
            message,
        );
    }
}

/// Checks on the object as a whole: flags and de-identification markers.
fn object_checks(ctx: &mut Ctx<'_>, obj: &InMemDicomObject) {
    let has_pixels = [
        Tag(0x7FE0, 0x0010),
        Tag(0x7FE0, 0x0008),
        Tag(0x7FE0, 0x0009),
    ]
    .iter()
    .any(|t| obj.get(*t).is_some());
    let modality = get_str(obj, Tag(0x0008, 0x0060)).unwrap_or_default();
    match get_str(obj, Tag(0x0028, 0x0301)).as_deref() {
        Some("YES") => ctx.push(
            "(0028,0301)",
            Rule::BurnedInAnnotation,
            Severity::Error,
            "",
            "YES".into(),
            "Burned In Annotation is YES: the pixels carry text".into(),
        ),
        Some("NO") => {}
        _ if has_pixels
            && ctx.policy.at_risk_modalities.contains(&modality) =>
        {
            ctx.push(
                "(0028,0301)",
                Rule::BurnedInAnnotation,
                Severity::Error,
                "",
                modality.clone(),
                format!("Burned In Annotation is not NO on a {modality} image, a modality that commonly burns text into pixels"),
            )
        }
        _ => {}
    }
    if get_str(obj, Tag(0x0028, 0x0302)).as_deref() == Some("YES") {
        ctx.push(
            "(0028,0302)",
            Rule::RecognizableVisualFeatures,
            Severity::Error,
            "",
            "YES".into(),
            "Recognizable Visual Features is YES: the image shows the person".into(),
        );
    }
    if get_str(obj, Tag(0x0012, 0x0062)).as_deref() != Some("YES") {
        ctx.push(
            "(0012,0062)",
            Rule::IdentityRemovedMissing,
            Severity::Warn,
            "",
            String::new(),
            "Patient Identity Removed is not YES: the object does not say it was de-identified"
                .into(),
        );
    }
    let method_codes = obj
        .get(Tag(0x0012, 0x0064))
        .and_then(|e| e.items().map(|i| i.len()))
        .unwrap_or(0);
    if method_codes == 0 {
        ctx.push(
            "(0012,0064)",
            Rule::MethodCodeMissing,
            Severity::Warn,
            "",
            String::new(),
            "De-identification Method Code Sequence is missing: the object does not say how it was de-identified".into(),
        );
    }
}

fn walk_dataset(ctx: &mut Ctx<'_>, obj: &InMemDicomObject, prefix: &str, depth: usize) {
    if depth > MAX_DEPTH {
        ctx.push(
            prefix.trim_end_matches('.'),
            Rule::Unreadable,
            Severity::Error,
            "",
            String::new(),
            format!("nested deeper than {MAX_DEPTH} levels: not verified"),
        );
        return;
    }
    private_blocks(
        ctx,
        obj.iter().map(|e| e.tag()),
        |t| {
            obj.get(t)
                .and_then(|e| e.value().to_str().ok().map(|s| s.into_owned()))
        },
        prefix,
    );
    let mut overlay_groups = BTreeSet::new();
    for e in obj.iter() {
        let tag = e.tag();
        if tag.element() == 0 {
            continue; // group lengths
        }
        groups_of_note(ctx, tag, prefix, &mut overlay_groups);
        match e.value() {
            Value::Sequence(seq) => {
                let loc = Loc { prefix, tag };
                for (i, item) in seq.items().iter().enumerate() {
                    walk_dataset(ctx, item, &format!("{loc}[{i}]."), depth + 1);
                }
            }
            Value::Primitive(p) => primitive(ctx, prefix, tag, e.vr(), p),
            // encapsulated pixel data: pixels are for the pixel checks
            Value::PixelSequence(_) => {}
        }
    }
}

/// Overlays and curves, reported once per group.
fn groups_of_note(ctx: &mut Ctx<'_>, tag: Tag, prefix: &str, seen: &mut BTreeSet<u16>) {
    let g = tag.group();
    let (rule, severity, what) = match g {
        0x6000..=0x60FF if g.is_multiple_of(2) => (
            Rule::Overlay,
            Severity::Warn,
            "an overlay plane: its bitmap can carry burned-in text",
        ),
        0x5000..=0x50FF if g.is_multiple_of(2) => (
            Rule::Curve,
            Severity::Info,
            "a curve (retired): its data and labels are not image content",
        ),
        _ => return,
    };
    if seen.insert(g) {
        ctx.push(
            format!("{prefix}({g:04X},xxxx)"),
            rule,
            severity,
            "",
            String::new(),
            format!("group {g:04X} is {what}"),
        );
    }
}

/// One finding per private block (creator) and per private group without a creator.
fn private_blocks(
    ctx: &mut Ctx<'_>,
    tags: impl Iterator<Item = Tag>,
    creator_of: impl Fn(Tag) -> Option<String>,
    prefix: &str,
) {
    let tags: Vec<Tag> = tags.filter(|t| t.group() % 2 == 1).collect();
    if tags.is_empty() {
        return;
    }
    let severity = if ctx.policy.allow.private {
        Severity::Info
    } else {
        Severity::Error
    };
    let creators: std::collections::HashSet<Tag> = tags
        .iter()
        .copied()
        .filter(|t| (0x0010..=0x00FF).contains(&t.element()))
        .collect();
    let mut per_block: std::collections::HashMap<Tag, usize> = std::collections::HashMap::new();
    let mut orphans = BTreeSet::new();
    for t in &tags {
        let (g, e) = (t.group(), t.element());
        if e >= 0x0100 {
            let block = Tag(g, e >> 8);
            if creators.contains(&block) {
                *per_block.entry(block).or_default() += 1;
            } else {
                orphans.insert(g);
            }
        } else if e > 0 && e < 0x0010 {
            orphans.insert(g);
        }
    }
    for t in tags.iter().filter(|t| creators.contains(t)) {
        let creator = creator_of(*t).unwrap_or_default();
        let creator = creator.trim_matches([' ', '\0']);
        let n = per_block.get(t).copied().unwrap_or(0);
        ctx.push(
            Loc { prefix, tag: *t },
            Rule::PrivateAttribute,
            severity,
            "",
            creator.to_owned(),
            // the creator goes in the excerpt only: messages end up in deid's hold-back
            // reasons, which never carry a value of the object
            format!(
                "a private block (creator in the excerpt) with {n} attribute{}",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
    for g in orphans {
        ctx.push(
            format!("{prefix}({g:04X},xxxx)"),
            Rule::PrivateAttribute,
            severity,
            "",
            String::new(),
            format!("private attributes in group {g:04X} without a private creator"),
        );
    }
}

/// Elements whose values are pixels, waveforms or overlay bits: not searched as bytes.
fn is_sample_data(tag: Tag) -> bool {
    let g = tag.group();
    matches!(
        (g, tag.element()),
        (0x7FE0, 0x0008..=0x0010) | (0x5400, 0x1010) | (0x5600, _)
    ) || ((0x6000..=0x60FF).contains(&g) && tag.element() == 0x3000)
        || ((0x5000..=0x50FF).contains(&g) && tag.element() == 0x3000)
}

fn primitive(ctx: &mut Ctx<'_>, prefix: &str, tag: Tag, vr: VR, value: &PrimitiveValue) {
    if tag.element() == 0 {
        return;
    }
    let path = Loc { prefix, tag };
    if is_text_vr(vr) {
        // Codes, numbers and times carry nothing a check looks at, unless the attribute is
        // identity-bearing or the raw search needs to know what parsed values hold.
        // (No identity-bearing attribute is CS, DS or IS; the one TM is Patient's Birth Time.)
        let skip = match vr {
            VR::CS | VR::DS | VR::IS => true,
            VR::TM => tag != Tag(0x0010, 0x0032),
            _ => false,
        };
        if skip && !ctx.raw_follows {
            return;
        }
        let strs = value.to_multi_str();
        if ctx.jp {
            let values: Vec<std::borrow::Cow<'_, str>> =
                strs.iter().map(|s| real_text(s, true)).collect();
            text_values(ctx, path, tag, vr, &values);
        } else {
            text_values(ctx, path, tag, vr, &strs);
        }
        return;
    }
    if is_sample_data(tag) {
        return;
    }
    let bytes = value.to_bytes();
    binary(ctx, path, tag, vr, &bytes, 0);
}

/// Binary values: encapsulated documents, UN values (read as implicit VR where they parse),
/// other byte values searched as opaque data.
fn binary(ctx: &mut Ctx<'_>, path: Loc<'_>, tag: Tag, vr: VR, bytes: &[u8], depth: usize) {
    if bytes.is_empty() {
        return;
    }
    if tag == Tag(0x0042, 0x0011) {
        ctx.push(
            path,
            Rule::EncapsulatedDocument,
            Severity::Error,
            "",
            format!("{} bytes", bytes.len()),
            "an encapsulated document: its content (often compressed) cannot be verified".into(),
        );
    }
    if vr == VR::UN {
        // A standard attribute written as UN: read its value by the dictionary's VR.
        match dictionary_vr(tag) {
            Some(text_vr) if is_text_vr(text_vr) => {
                let values = decode_text(ctx, text_vr, bytes);
                return text_values(ctx, path, tag, text_vr, &values);
            }
            _ => {}
        }
    }
    if matches!(vr, VR::UN | VR::OB) && depth < 8 {
        match un::parse(bytes) {
            Some(un::Parsed::Elements(elements)) => {
                return un_elements(ctx, &format!("{path}."), &elements, depth + 1);
            }
            Some(un::Parsed::Items(items)) => {
                for (i, item) in items.iter().enumerate() {
                    un_elements(ctx, &format!("{path}[{i}]."), item, depth + 1);
                }
                return;
            }
            None => {}
        }
    }
    opaque(ctx, path, vr, bytes);
}

/// Bytes nobody can read as elements: the identifiers of the originals are sought in them,
/// and printable runs go through the text detectors (as warnings: context is unknown).
fn opaque(ctx: &mut Ctx<'_>, path: Loc<'_>, vr: VR, bytes: &[u8]) {
    if let Some(against) = ctx.against {
        for (i, range) in against.find_raw(bytes) {
            ctx.seen[i] = true;
            let excerpt = mask(&String::from_utf8_lossy(&bytes[range]));
            let message = format!(
                "an identifier of the originals ({} from {}) is in the bytes of this value",
                against.category(i),
                against.source(i)
            );
            ctx.push(
                path,
                Rule::AgainstRaw,
                Severity::Error,
                against.category(i),
                excerpt,
                message,
            );
        }
    }
    if !matches!(vr, VR::OB | VR::UN) {
        return;
    }
    let runs = printable_runs(bytes);
    for h in text::find(&runs) {
        let m = &runs[h.span.clone()];
        ctx.push(
            path,
            h.rule,
            h.severity.min(Severity::Warn),
            "",
            mask(m),
            format!(
                "{} in the printable bytes of a binary value",
                describe(h.rule)
            ),
        );
    }
}

/// Runs of at least four printable ASCII characters, one per line.
fn printable_runs(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for &b in bytes.iter().chain(std::iter::once(&0u8)) {
        if (0x20..0x7F).contains(&b) {
            run.push(b as char);
        } else {
            if run.len() >= 4 {
                out.push_str(&run);
                out.push('\n');
            }
            run.clear();
        }
    }
    out
}

fn un_elements(ctx: &mut Ctx<'_>, prefix: &str, elements: &[un::Element<'_>], depth: usize) {
    private_blocks(
        ctx,
        elements.iter().map(|e| e.tag),
        |t| {
            elements
                .iter()
                .find(|e| e.tag == t)
                .and_then(|e| match e.value {
                    un::Value::Bytes(b) => Some(latin1_or_utf8(b)),
                    un::Value::Items(_) => None,
                })
        },
        prefix,
    );
    for e in elements {
        let path = Loc { prefix, tag: e.tag };
        match &e.value {
            un::Value::Items(items) => {
                for (i, item) in items.iter().enumerate() {
                    un_elements(ctx, &format!("{path}[{i}]."), item, depth + 1);
                }
            }
            un::Value::Bytes(b) => {
                if !is_sample_data(e.tag) {
                    binary(ctx, path, e.tag, VR::UN, b, depth);
                }
            }
        }
    }
}

/// The VR the data dictionary gives a standard attribute (`None` for private and unknown ones,
/// and for those whose VR depends on context).
fn dictionary_vr(tag: Tag) -> Option<VR> {
    if tag.group() % 2 == 1 {
        return None;
    }
    match StandardDataDictionary.by_tag(tag).map(|d| d.vr()) {
        Some(VirtualVr::Exact(vr)) => Some(vr),
        _ => None,
    }
}

/// The values of a text element read from raw bytes (a UN value): multi-valued VRs split at
/// backslashes, padding trimmed.
fn decode_text(ctx: &Ctx<'_>, vr: VR, bytes: &[u8]) -> Vec<String> {
    let text = latin1_or_utf8(bytes);
    let text = real_text(&text, ctx.jp);
    if matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR) {
        vec![text.trim_end_matches([' ', '\0']).to_owned()]
    } else {
        text.split('\\')
            .map(|s| s.trim_matches([' ', '\0']).to_owned())
            .collect()
    }
}

fn latin1_or_utf8(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::TextPersonName => "a person-name shape",
        Rule::TextDate => "a date",
        Rule::TextPhone => "a phone number",
        Rule::TextEmail => "an e-mail address",
        Rule::TextAddress => "a postal address",
        Rule::TextIdentifier => "a record-number shape",
        Rule::TextNationalId => "a national identifier shape",
        _ => "identity",
    }
}

/// The checks on the values of one text element.
fn text_values<S: AsRef<str>>(ctx: &mut Ctx<'_>, path: Loc<'_>, tag: Tag, vr: VR, values: &[S]) {
    let name = AttrName(tag);
    let allow = &ctx.policy.allow;
    fn trim<S: AsRef<str>>(v: &S) -> &str {
        v.as_ref().trim_matches([' ', '\0'])
    }
    // most elements hold one value: no allocation for them
    let one: [&str; 1];
    let many: Vec<&str>;
    let values: &[&str] = if let [v] = values {
        one = [trim(v)];
        &one
    } else {
        many = values.iter().map(trim).collect();
        &many
    };
    // (empty values of a multi-valued attribute stay in the list: every check passes them)
    if values.iter().all(|v| v.is_empty()) {
        return;
    }
    let mut flagged = false;
    // identity-bearing attributes and person names
    let kind = if vr == VR::PN {
        Some(Kind::Name)
    } else {
        identity_kind(tag)
    };
    let allowed = match kind {
        Some(Kind::Device) => allow.device,
        Some(Kind::Institution) => allow.institution,
        _ => false,
    };
    if let Some(kind) = kind.filter(|_| !allowed) {
        let bad = values.iter().find(|v| match kind {
            Kind::BirthDate => !shape::is_dummy_date(v),
            // "1", "A2": too short to single anyone out (Study ID 1 is everywhere)
            Kind::Id if v.chars().count() <= 2 => false,
            _ => !shape::is_pseudonym_shaped(v),
        });
        if let Some(v) = bad {
            flagged = true;
            ctx.push(
                path,
                Rule::IdentityAttribute,
                Severity::Error,
                kind.name(),
                mask(v),
                format!("{name} holds a value that is not pseudonym-shaped"),
            );
        }
    }
    match vr {
        VR::UI if !allow.uids && !is_class_uid(tag) => {
            for v in values {
                if !v.is_empty() && !accepted_uid(ctx, v) {
                    ctx.push(
                        path,
                        Rule::UidRoot,
                        Severity::Error,
                        "uid",
                        uid_root(v, 5),
                        format!("{name} is a UID under an organisation's root"),
                    );
                    break;
                }
            }
        }
        VR::DA | VR::DT if !allow.dates && !ctx.dates_modified && kind.is_none() => {
            if let Some(v) = values.iter().find(|v| !shape::is_dummy_date(v)) {
                ctx.push(
                    path,
                    Rule::DateValue,
                    Severity::Warn,
                    "date",
                    mask(v),
                    format!(
                        "{name} holds a date and Longitudinal Temporal Information Modified is not MODIFIED"
                    ),
                );
            }
        }
        VR::AS if !allow.patient_characteristics => {
            if let Some(v) = values.iter().find(|v| age_years(v).is_some_and(|y| y > 90)) {
                ctx.push(
                    path,
                    Rule::AgeOver89,
                    Severity::Error,
                    "age",
                    (*v).to_owned(),
                    format!("{name} is above 90 years: ages over 89 identify and are shown as 90 or older"),
                );
            }
        }
        _ => {}
    }
    if is_free_text_vr(vr) && !flagged {
        for v in values {
            for h in text::find(v) {
                ctx.push(
                    path,
                    h.rule,
                    h.severity,
                    "",
                    mask(&v[h.span.clone()]),
                    format!("{} in {name}", describe(h.rule)),
                );
            }
        }
    }
    if let Some(against) = ctx.against {
        against_text(ctx, against, path, tag, vr, name, values);
    }
}

/// The identifiers of the originals in the values of one text element.
fn against_text(
    ctx: &mut Ctx<'_>,
    against: &Against,
    path: Loc<'_>,
    tag: Tag,
    vr: VR,
    name: AttrName,
    values: &[&str],
) {
    // Codes and numbers are vocabulary; retained UIDs were accepted with retain-uids.
    let counts = is_leak_vr(vr) && !(vr == VR::UI && ctx.policy.allow.uids);
    // A single part of a name in a short descriptive value of another file (a code meaning,
    // a model name, a beam name) is as likely vocabulary: a warning, unless the set is one
    // object's own (the release gate).
    let descriptive = matches!(vr, VR::LO | VR::SH | VR::UC)
        && tag.group().is_multiple_of(2)
        && identity_kind(tag).is_none();
    let mut reported = Vec::new();
    for v in values {
        let hits = against.find_text(v);
        let name_parts = hits
            .iter()
            .filter(|(i, _)| against.category(*i) == "name")
            .count();
        for (i, range) in hits {
            ctx.seen[i] = true;
            if !counts || reported.contains(&i) {
                continue;
            }
            reported.push(i);
            let category = against.category(i);
            let severity =
                if category == "name" && descriptive && name_parts < 2 && !against.is_own() {
                    Severity::Warn
                } else {
                    Severity::Error
                };
            let message = format!(
                "an identifier of the originals ({category} from {}) is in {name}",
                against.source(i)
            );
            ctx.push(
                path,
                Rule::AgainstText,
                severity,
                category,
                mask(&v[range]),
                message,
            );
        }
    }
}

fn accepted_uid(ctx: &Ctx<'_>, v: &str) -> bool {
    shape::is_generated_uid(v)
        || v.starts_with("1.2.840.10008.")
        || ctx.policy.uid_roots.iter().any(|r| {
            v == r
                || v.strip_prefix(r.as_str())
                    .is_some_and(|s| s.starts_with('.'))
        })
}

/// Years of an Age String (`065Y`); months, weeks and days are under a year.
fn age_years(v: &str) -> Option<u32> {
    // the unit is the last character, whatever its width (hostile values are not ASCII)
    let last = v.chars().last()?;
    let (n, unit) = v.split_at(v.len() - last.len_utf8());
    let n: u32 = n.parse().ok()?;
    match unit {
        "Y" => Some(n),
        "M" | "W" | "D" => Some(0),
        _ => None,
    }
}
