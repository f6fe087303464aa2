//! Which images can show a face: the header rule behind holding back head CT and MR.
//!
//! A face can be rendered from a stack of thin CT slices or a 3D MR acquisition of the head
//! (Schwarz et al., NEJM 2019, matched 83% of volunteers to their photos from research MRIs).
//! Without `clean-recognizable-visual-features`, such images are held back; with it, the caller
//! removes the face from the whole series first (see `umbra-files`) and tells the engine so.
//! Head images too coarse to render a face are released with a note.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// The rule, with its thresholds (documented in README.md, "Faces").
#[derive(Debug, Clone, PartialEq)]
pub struct FacePolicy {
    /// Hold back head images from which a face can be rendered (when the face was not
    /// removed). Off: they are released with a note.
    pub hold_back: bool,
    /// CT slices this thin or thinner (mm) stack into a renderable face.
    pub ct_max_slice_mm: f64,
    /// MR slices this thin or thinner (mm), when the acquisition type is not given, stack into
    /// a renderable face; a 3D MR acquisition always does.
    pub mr_max_slice_mm: f64,
}

impl Default for FacePolicy {
    fn default() -> Self {
        FacePolicy {
            hold_back: true,
            ct_max_slice_mm: 3.0,
            mr_max_slice_mm: 2.0,
        }
    }
}

/// What the header says about a face in one image.
#[derive(Debug, Clone, PartialEq)]
pub enum FaceRisk {
    /// Not a CT or MR image of the head (as far as the header says).
    None,
    /// A head image whose series can render a face: why.
    Renderable(String),
    /// A head image too coarse to render a face: why (a note for the report).
    Coarse(String),
}

/// Beginnings of words in Body Part Examined and descriptions that name the head (upper
/// case): `CRANI` matches `CRANIAL`.
const HEAD_PREFIXES: &[&str] = &[
    "HEAD", "BRAIN", "SKULL", "CRANI", "CEREBR", "NEURO", "FACIAL", "ORBIT", "SINUS", "MAXILL",
    "MANDIB", "DENTAL", "PITUIT", "PETROUS", "STROKE", "KOPF", "SCHAEDEL", "SCHADEL", "SCHÄDEL",
    "HIRN", "CABEZA", "CRANEO", "CERVEAU",
];

/// Whole words that name the head (short ones, which begin unrelated words too: `FACE` and
/// `FACET`, `EAR` and `EARLY`).
const HEAD_WORDS: &[&str] = &[
    "FACE", "ENT", "EAR", "EARS", "EYE", "EYES", "NOSE", "JAW", "TMJ", "IAC", "SELLA", "TEMPORAL",
    "CRANE", "TETE", "TÊTE",
];

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches(['\0', ' ']).to_uppercase())
        .unwrap_or_default()
}

/// Shortest stack (mm) that can show a face: the nose alone is about 50 mm, eyes to chin about
/// 110 mm.
pub const MIN_FACE_EXTENT_MM: f64 = 50.0;

/// A value of the Pixel Measures Sequence in the Shared Functional Groups Sequence
/// (enhanced multi-frame objects keep slice thickness and spacing there).
fn shared_measure(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    let shared = obj
        .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)?
        .items()?
        .first()?;
    let measures = shared
        .get(tags::PIXEL_MEASURES_SEQUENCE)?
        .items()?
        .first()?;
    let v = measures.get(tag)?.to_str().ok()?;
    v.split('\\').next()?.trim().parse().ok()
}

fn number(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .and_then(|s| s.split('\\').next().and_then(|v| v.trim().parse().ok()))
}

/// Whether the header names the head: Body Part Examined, or a word of the study, series,
/// protocol or procedure descriptions.
pub fn names_the_head(obj: &InMemDicomObject) -> bool {
    let fields = [
        tags::BODY_PART_EXAMINED,
        tags::STUDY_DESCRIPTION,
        tags::SERIES_DESCRIPTION,
        tags::PROTOCOL_NAME,
        tags::REQUESTED_PROCEDURE_DESCRIPTION,
        tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
    ];
    fields.into_iter().any(|t| {
        let v = text(obj, t);
        v.split(|c: char| !c.is_alphanumeric()).any(|w| {
            !w.is_empty()
                && (HEAD_WORDS.contains(&w) || HEAD_PREFIXES.iter().any(|h| w.starts_with(h)))
        })
    })
}

impl FacePolicy {
    /// What the header says about a face in `obj`.
    pub fn risk(&self, obj: &InMemDicomObject) -> FaceRisk {
        let modality = text(obj, tags::MODALITY);
        if modality != "CT" && modality != "MR" {
            return FaceRisk::None;
        }
        if obj.get(tags::PIXEL_DATA).is_none() || !names_the_head(obj) {
            return FaceRisk::None;
        }
        let frames = number(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1.0);
        if frames > 1.0 {
            // one object holds the whole stack: its extent is known
            let step = [tags::SPACING_BETWEEN_SLICES, tags::SLICE_THICKNESS]
                .into_iter()
                .find_map(|t| number(obj, t).or_else(|| shared_measure(obj, t)))
                .filter(|s| *s > 0.0);
            return match step.map(|s| s * frames) {
                Some(mm) if mm < MIN_FACE_EXTENT_MM => FaceRisk::Coarse(format!(
                    "a multi-frame {modality} of the head stacking {mm:.0} mm (under \
                     {MIN_FACE_EXTENT_MM:.0} mm): a face cannot be rendered"
                )),
                _ => FaceRisk::Renderable(format!("a multi-frame {modality} volume of the head")),
            };
        }
        let thickness = number(obj, tags::SLICE_THICKNESS);
        if modality == "CT" {
            return match thickness {
                Some(t) if t > self.ct_max_slice_mm => FaceRisk::Coarse(format!(
                    "CT of the head with {t} mm slices (over {} mm): a face cannot be rendered",
                    self.ct_max_slice_mm
                )),
                Some(t) => FaceRisk::Renderable(format!("CT of the head with {t} mm slices")),
                None => FaceRisk::Renderable(
                    "CT of the head without Slice Thickness (thin slices cannot be ruled out)"
                        .into(),
                ),
            };
        }
        let acquisition = text(obj, tags::MR_ACQUISITION_TYPE);
        if acquisition == "3D" {
            return FaceRisk::Renderable("3D MR acquisition of the head".into());
        }
        match (acquisition.as_str(), thickness) {
            ("2D", Some(t)) | ("", Some(t)) if t > self.mr_max_slice_mm => FaceRisk::Coarse(
                format!("2D MR of the head with {t} mm slices: a face cannot be rendered"),
            ),
            ("2D", None) => FaceRisk::Coarse("2D MR of the head".into()),
            (_, Some(t)) => FaceRisk::Renderable(format!("MR of the head with {t} mm slices")),
            (_, None) => FaceRisk::Renderable(
                "MR of the head without acquisition type or slice thickness".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};

    fn image(fields: &[(Tag, VR, &str)]) -> InMemDicomObject {
        let mut o = InMemDicomObject::from_element_iter([DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U8(vec![0; 4].into()),
        )]);
        for (t, vr, v) in fields {
            o.put(DataElement::new(*t, *vr, PrimitiveValue::from(*v)));
        }
        o
    }

    #[test]
    fn thin_head_ct_and_3d_head_mr_can_render_a_face() {
        let p = FacePolicy::default();
        let ct = |thick: &str, part: &str| {
            image(&[
                (tags::MODALITY, VR::CS, "CT"),
                (tags::BODY_PART_EXAMINED, VR::CS, part),
                (tags::SLICE_THICKNESS, VR::DS, thick),
            ])
        };
        assert!(matches!(
            p.risk(&ct("0.625", "HEAD")),
            FaceRisk::Renderable(_)
        ));
        assert!(matches!(p.risk(&ct("5", "HEAD")), FaceRisk::Coarse(_)));
        assert_eq!(p.risk(&ct("0.625", "CHEST")), FaceRisk::None);
        let described = image(&[
            (tags::MODALITY, VR::CS, "CT"),
            (tags::STUDY_DESCRIPTION, VR::LO, "CT Cranial w/o contrast"),
        ]);
        assert!(matches!(p.risk(&described), FaceRisk::Renderable(_)));
        // words that only begin like head words do not count
        for other in [
            "CARDIAC HEART",
            "LUMBAR FACET",
            "EARLY PHASE ABDOMEN",
            "ENTEROGRAPHY",
        ] {
            let o = image(&[
                (tags::MODALITY, VR::CS, "CT"),
                (tags::STUDY_DESCRIPTION, VR::LO, other),
            ]);
            assert_eq!(p.risk(&o), FaceRisk::None, "{other}");
        }
        let mr = |acq: &str, thick: &str| {
            image(&[
                (tags::MODALITY, VR::CS, "MR"),
                (tags::BODY_PART_EXAMINED, VR::CS, "BRAIN"),
                (tags::MR_ACQUISITION_TYPE, VR::CS, acq),
                (tags::SLICE_THICKNESS, VR::DS, thick),
            ])
        };
        assert!(matches!(p.risk(&mr("3D", "1")), FaceRisk::Renderable(_)));
        assert!(matches!(p.risk(&mr("2D", "5")), FaceRisk::Coarse(_)));
        let us = image(&[
            (tags::MODALITY, VR::CS, "US"),
            (tags::BODY_PART_EXAMINED, VR::CS, "HEAD"),
        ]);
        assert_eq!(p.risk(&us), FaceRisk::None);
    }
}
