//! Head phantoms as DICOM series (`umbra synth --profile heads`): per subject a thin-slice head
//! CT, a 3D head MR, a second scan of each (small rigid motion, fresh noise), the first MR
//! again as one enhanced multi-frame object, and a chest CT that must pass untouched; beside
//! them the ground truth (face features, brain) as NIfTI.
//!
//! The phantoms come from `umbra-deface` (per-subject nose, eyes, lips and chin; skull, brain
//! and ventricles). Each slice is a classic CT or MR Image Storage object with the geometry a
//! scanner writes (Image Position and Orientation, Pixel Spacing, Slice Thickness), so the
//! series read back as the volume they came from.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde::Serialize;
use umbra_deface::phantom::{self, Body, Subject};
use umbra_deface::{Modality, Volume};

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
/// Fictitious organisation root of the synthetic UIDs.
const ROOT: &str = "1.3.6.1.4.1.99999.8";

/// What one series is, for the writer.
#[derive(Debug, Clone)]
pub struct SeriesSpec<'a> {
    /// CT or MR.
    pub modality: Modality,
    /// Body Part Examined.
    pub body_part: &'a str,
    /// Series Description.
    pub description: &'a str,
    /// Patient's Name and Patient ID (synthetic).
    pub patient: (&'a str, &'a str),
    /// Study Instance UID, Series Instance UID, Frame of Reference UID (all synthetic).
    pub uids: (&'a str, &'a str, &'a str),
}

/// The slices of `vol` (one per index along its third axis) as Part 10 files, in order.
pub fn series_files(vol: &Volume, spec: &SeriesSpec<'_>) -> Vec<Vec<u8>> {
    let [nx, ny, nz] = vol.dims();
    let sp = vol.spacing();
    let d = vol.directions();
    let (class, modality) = match spec.modality {
        Modality::Ct => (CT_IMAGE, "CT"),
        Modality::Mr => (MR_IMAGE, "MR"),
    };
    let ds = |v: f64| format!("{v:.6}");
    (0..nz)
        .map(|k| {
            let sop = format!("{}.{}", spec.uids.1, k + 1);
            let p = vol.world_of([0, 0, k]);
            let mut o = InMemDicomObject::new_empty();
            let mut put = |tag: Tag, vr: VR, v: &str| {
                o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
            };
            put(tags::SOP_CLASS_UID, VR::UI, class);
            put(tags::SOP_INSTANCE_UID, VR::UI, &sop);
            put(tags::STUDY_INSTANCE_UID, VR::UI, spec.uids.0);
            put(tags::SERIES_INSTANCE_UID, VR::UI, spec.uids.1);
            put(tags::FRAME_OF_REFERENCE_UID, VR::UI, spec.uids.2);
            put(tags::MODALITY, VR::CS, modality);
            put(tags::PATIENT_NAME, VR::PN, spec.patient.0);
            put(tags::PATIENT_ID, VR::LO, spec.patient.1);
            put(tags::PATIENT_BIRTH_DATE, VR::DA, "19700101");
            put(tags::STUDY_DATE, VR::DA, "20240102");
            put(tags::BODY_PART_EXAMINED, VR::CS, spec.body_part);
            put(tags::SERIES_DESCRIPTION, VR::LO, spec.description);
            put(tags::SERIES_NUMBER, VR::IS, "1");
            put(tags::INSTANCE_NUMBER, VR::IS, &(k + 1).to_string());
            put(tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
            put(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                &format!("{}\\{}\\{}", ds(p[0]), ds(p[1]), ds(p[2])),
            );
            put(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                &[d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2]]
                    .map(ds)
                    .join("\\"),
            );
            put(
                tags::PIXEL_SPACING,
                VR::DS,
                &format!("{}\\{}", ds(sp[1]), ds(sp[0])),
            );
            put(tags::SLICE_THICKNESS, VR::DS, &ds(sp[2]));
            put(tags::SPACING_BETWEEN_SLICES, VR::DS, &ds(sp[2]));
            if spec.modality == Modality::Mr {
                put(tags::MR_ACQUISITION_TYPE, VR::CS, "3D");
            }
            put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
            put(tags::RESCALE_INTERCEPT, VR::DS, "0");
            put(tags::RESCALE_SLOPE, VR::DS, "1");
            for (tag, v) in [
                (tags::SAMPLES_PER_PIXEL, 1u16),
                (tags::ROWS, ny as u16),
                (tags::COLUMNS, nx as u16),
                (tags::BITS_ALLOCATED, 16),
                (tags::BITS_STORED, 16),
                (tags::HIGH_BIT, 15),
                (tags::PIXEL_REPRESENTATION, 1),
            ] {
                o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
            }
            let mut bytes = Vec::with_capacity(nx * ny * 2);
            for j in 0..ny {
                for i in 0..nx {
                    let v = vol.get([i, j, k]).unwrap_or(0.0).round();
                    let v = v.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            o.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::U8(bytes.into()),
            ));
            let meta = FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(class)
                .media_storage_sop_instance_uid(sop.as_str())
                .transfer_syntax(EXPLICIT_LE)
                .build()
                .expect("meta group of a generated object");
            let mut out = Vec::new();
            o.with_exact_meta(meta)
                .write_all(&mut out)
                .expect("a generated object encodes");
            out
        })
        .collect()
}

/// The whole of `vol` as one Enhanced MR Image Storage object: frames along the third axis,
/// placed by the Per-frame Functional Groups (Plane Position) with orientation, pixel measures
/// and rescale shared.
pub fn enhanced_mr_file(vol: &Volume, spec: &SeriesSpec<'_>) -> Vec<u8> {
    const ENHANCED_MR: &str = "1.2.840.10008.5.1.4.1.1.4.1";
    let [nx, ny, nz] = vol.dims();
    let sp = vol.spacing();
    let d = vol.directions();
    let ds = |v: f64| format!("{v:.6}");
    let sop = format!("{}.1", spec.uids.1);
    let item = |pairs: Vec<(Tag, VR, String)>| {
        InMemDicomObject::from_element_iter(
            pairs
                .into_iter()
                .map(|(t, vr, v)| DataElement::new(t, vr, PrimitiveValue::from(v))),
        )
    };
    let seq = |tag: Tag, items: Vec<InMemDicomObject>| {
        DataElement::new(
            tag,
            VR::SQ,
            dicom_core::value::DataSetSequence::new(items, dicom_core::Length::UNDEFINED),
        )
    };
    let mut o = InMemDicomObject::new_empty();
    for (tag, vr, v) in [
        (tags::SOP_CLASS_UID, VR::UI, ENHANCED_MR.to_string()),
        (tags::SOP_INSTANCE_UID, VR::UI, sop.clone()),
        (tags::STUDY_INSTANCE_UID, VR::UI, spec.uids.0.to_string()),
        (tags::SERIES_INSTANCE_UID, VR::UI, spec.uids.1.to_string()),
        (
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            spec.uids.2.to_string(),
        ),
        (tags::MODALITY, VR::CS, "MR".into()),
        (tags::PATIENT_NAME, VR::PN, spec.patient.0.to_string()),
        (tags::PATIENT_ID, VR::LO, spec.patient.1.to_string()),
        (tags::BODY_PART_EXAMINED, VR::CS, spec.body_part.to_string()),
        (
            tags::SERIES_DESCRIPTION,
            VR::LO,
            spec.description.to_string(),
        ),
        (tags::MR_ACQUISITION_TYPE, VR::CS, "3D".into()),
        (tags::INSTANCE_NUMBER, VR::IS, "1".into()),
        (tags::BURNED_IN_ANNOTATION, VR::CS, "NO".into()),
        (tags::NUMBER_OF_FRAMES, VR::IS, nz.to_string()),
        (
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        ),
    ] {
        o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    }
    for (tag, v) in [
        (tags::SAMPLES_PER_PIXEL, 1u16),
        (tags::ROWS, ny as u16),
        (tags::COLUMNS, nx as u16),
        (tags::BITS_ALLOCATED, 16),
        (tags::BITS_STORED, 16),
        (tags::HIGH_BIT, 15),
        (tags::PIXEL_REPRESENTATION, 1),
    ] {
        o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
    }
    let shared = InMemDicomObject::from_element_iter([
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                [d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2]]
                    .map(ds)
                    .join("\\"),
            )])],
        ),
        seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(vec![
                (
                    tags::PIXEL_SPACING,
                    VR::DS,
                    format!("{}\\{}", ds(sp[1]), ds(sp[0])),
                ),
                (tags::SLICE_THICKNESS, VR::DS, ds(sp[2])),
            ])],
        ),
        seq(
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            vec![item(vec![
                (tags::RESCALE_INTERCEPT, VR::DS, "0".into()),
                (tags::RESCALE_SLOPE, VR::DS, "1".into()),
            ])],
        ),
    ]);
    o.put(seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));
    // frames stored in reverse order of position: the reader must place them by their groups
    let per_frame: Vec<InMemDicomObject> = (0..nz)
        .rev()
        .map(|k| {
            let p = vol.world_of([0, 0, k]);
            InMemDicomObject::from_element_iter([seq(
                tags::PLANE_POSITION_SEQUENCE,
                vec![item(vec![(
                    tags::IMAGE_POSITION_PATIENT,
                    VR::DS,
                    format!("{}\\{}\\{}", ds(p[0]), ds(p[1]), ds(p[2])),
                )])],
            )])
        })
        .collect();
    o.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
    let mut bytes = Vec::with_capacity(nx * ny * nz * 2);
    for k in (0..nz).rev() {
        for j in 0..ny {
            for i in 0..nx {
                let v = vol.get([i, j, k]).unwrap_or(0.0).round();
                let v = v.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(bytes.into()),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(ENHANCED_MR)
        .media_storage_sop_instance_uid(sop.as_str())
        .transfer_syntax(EXPLICIT_LE)
        .build()
        .expect("meta group of a generated object");
    let mut out = Vec::new();
    o.with_exact_meta(meta)
        .write_all(&mut out)
        .expect("a generated object encodes");
    out
}

/// One series of the heads corpus in its key.
#[derive(Debug, Clone, Serialize)]
pub struct HeadSeries {
    /// Subject number.
    pub subject: u32,
    /// `ct` or `mr`, `chest-ct`.
    pub kind: String,
    /// 0 first scan, 1 second scan (moved, fresh noise).
    pub scan: u8,
    /// Folder of its slices, relative to the corpus.
    pub folder: String,
    /// Slices.
    pub slices: usize,
    /// Ground-truth masks (NIfTI, relative to the output folder; none for the chest).
    pub truth: Vec<String>,
    /// What a de-identifier should do: remove the face (`deface`) or pass it (`release`).
    pub expect: String,
}

/// Study, series and frame-of-reference UIDs of subject `s`'s series `n` (under the fictitious
/// root; all series of a subject share one study).
fn series_uids(seed: u64, s: u32, n: u64) -> (String, String, String) {
    (
        format!("{ROOT}.{seed}.{}.1", s + 1),
        format!("{ROOT}.{seed}.{}.{n}.2", s + 1),
        format!("{ROOT}.{seed}.{}.{n}.3", s + 1),
    )
}

/// Writes the face and brain masks of `truth`, on `vol`'s grid, as `truth/{stem}-face.nii.gz`
/// and `truth/{stem}-brain.nii.gz`; returns their paths.
fn write_truth(
    vol: &Volume,
    truth: &phantom::GroundTruth,
    stem: &str,
    sink: &mut dyn FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<Vec<String>> {
    let mut paths = Vec::new();
    for (name, mask) in [("face", &truth.face), ("brain", &truth.brain)] {
        let values: Vec<f32> = mask
            .as_slice()
            .iter()
            .map(|&b| f32::from(u8::from(b)))
            .collect();
        let m = vol.with_voxels(values).map_err(std::io::Error::other)?;
        let bytes = umbra_deface::nifti::write(&m, true).map_err(std::io::Error::other)?;
        let rel = format!("truth/{stem}-{name}.nii.gz");
        sink(&rel, &bytes)?;
        paths.push(rel);
    }
    Ok(paths)
}

/// Writes the heads corpus: `sink(relative path, bytes)` for every file (the corpus under
/// `corpus/`, the ground truth under `truth/`); returns the key's series list.
pub fn generate(
    seed: u64,
    subjects: u32,
    dims: usize,
    sink: &mut dyn FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<Vec<HeadSeries>> {
    let mut key = Vec::new();
    for s in 0..subjects {
        let subject = Subject::new(seed, s);
        let patient_name = format!("HEADPHANTOM^SUBJECT{:03}", s + 1);
        let patient_id = format!("HP{seed}{:05}", s + 1);
        for (modality, kind, part, description) in [
            (Modality::Ct, "ct", "HEAD", "CT HEAD 2MM"),
            (Modality::Mr, "mr", "BRAIN", "T1 3D BRAIN"),
        ] {
            for scan in 0..2u8 {
                let (vol, truth) = phantom::render(&subject, modality, scan, [dims; 3]);
                let n =
                    u64::from(s) * 10 + u64::from(scan) * 2 + u64::from(modality == Modality::Mr);
                let uids = series_uids(seed, s, n);
                let folder = format!("corpus/S{:03}/{kind}{}", s + 1, scan + 1);
                let files = series_files(
                    &vol,
                    &SeriesSpec {
                        modality,
                        body_part: part,
                        description,
                        patient: (&patient_name, &patient_id),
                        uids: (&uids.0, &uids.1, &uids.2),
                    },
                );
                for (k, f) in files.iter().enumerate() {
                    sink(&format!("{folder}/IM{:04}.dcm", k + 1), f)?;
                }
                let truth_files = write_truth(
                    &vol,
                    &truth,
                    &format!("S{:03}/{kind}{}", s + 1, scan + 1),
                    sink,
                )?;
                key.push(HeadSeries {
                    subject: s + 1,
                    kind: kind.into(),
                    scan,
                    folder: folder.trim_start_matches("corpus/").into(),
                    slices: files.len(),
                    truth: truth_files,
                    expect: "deface".into(),
                });
            }
        }
        // the first MR scan again as one enhanced multi-frame object, frames in reverse order
        {
            let (vol, truth) = phantom::render(&subject, Modality::Mr, 0, [dims; 3]);
            let n = u64::from(s) * 10 + 7;
            let uids = series_uids(seed, s, n);
            let folder = format!("corpus/S{:03}/mr-enhanced", s + 1);
            let file = enhanced_mr_file(
                &vol,
                &SeriesSpec {
                    modality: Modality::Mr,
                    body_part: "BRAIN",
                    description: "T1 3D BRAIN ENHANCED",
                    patient: (&patient_name, &patient_id),
                    uids: (&uids.0, &uids.1, &uids.2),
                },
            );
            sink(&format!("{folder}/EMR0001.dcm"), &file)?;
            let truth_files =
                write_truth(&vol, &truth, &format!("S{:03}/mr-enhanced", s + 1), sink)?;
            key.push(HeadSeries {
                subject: s + 1,
                kind: "mr-enhanced".into(),
                scan: 0,
                folder: folder.trim_start_matches("corpus/").into(),
                slices: vol.dims()[2],
                truth: truth_files,
                expect: "deface".into(),
            });
        }
        // a chest CT of the same subject: no face, passes unchanged
        let chest = phantom::render_body(Body::Chest, seed + u64::from(s), Modality::Ct, [dims; 3]);
        let n = u64::from(s) * 10 + 9;
        let uids = series_uids(seed, s, n);
        let folder = format!("corpus/S{:03}/chest", s + 1);
        let files = series_files(
            &chest,
            &SeriesSpec {
                modality: Modality::Ct,
                body_part: "CHEST",
                description: "CT CHEST 2MM",
                patient: (&patient_name, &patient_id),
                uids: (&uids.0, &uids.1, &uids.2),
            },
        );
        for (k, f) in files.iter().enumerate() {
            sink(&format!("{folder}/IM{:04}.dcm", k + 1), f)?;
        }
        key.push(HeadSeries {
            subject: s + 1,
            kind: "chest-ct".into(),
            scan: 0,
            folder: folder.trim_start_matches("corpus/").into(),
            slices: files.len(),
            truth: Vec::new(),
            expect: "release".into(),
        });
    }
    Ok(key)
}
