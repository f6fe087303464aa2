//! The scanner's own list of identity-bearing attributes.
//!
//! Kept here, by keyword, independently of the de-identification tables: the verifier must not
//! share the engine's blind spots. Every Person Name (PN) value is identity-bearing too,
//! whatever its attribute. Free-text attributes (comments, descriptions) are not listed: the
//! text detectors look at every text value instead.

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;
use std::sync::LazyLock;

/// What kind of identifier an attribute carries. Its name is the `category` of findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A person's name.
    Name,
    /// A record number, ID, accession or order number.
    Id,
    /// A birth (or death) date or time.
    BirthDate,
    /// A postal address or place of residence.
    Address,
    /// A phone number or other contact detail.
    Phone,
    /// An institution, department or organisation.
    Institution,
    /// A device: station name, serial number, device IDs, AE titles of stations.
    Device,
    /// Other personal characteristics that identify (military rank, religion, ...).
    Personal,
}

impl Kind {
    /// The category name used in findings.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Name => "name",
            Kind::Id => "id",
            Kind::BirthDate => "birth-date",
            Kind::Address => "address",
            Kind::Phone => "phone",
            Kind::Institution => "institution",
            Kind::Device => "device",
            Kind::Personal => "personal",
        }
    }
}

/// Identity-bearing attributes by keyword (PS3.6 names). Person names are covered by their VR
/// and need no entry; those listed here are the non-PN ones.
pub const IDENTITY_ATTRIBUTES: &[(&str, Kind)] = &[
    // record numbers and IDs
    ("PatientID", Kind::Id),
    ("OtherPatientIDs", Kind::Id),
    ("MedicalRecordLocator", Kind::Id),
    ("AccessionNumber", Kind::Id),
    ("StudyID", Kind::Id),
    ("AdmissionID", Kind::Id),
    ("ServiceEpisodeID", Kind::Id),
    ("RequestedProcedureID", Kind::Id),
    ("ScheduledProcedureStepID", Kind::Id),
    ("PerformedProcedureStepID", Kind::Id),
    ("PlacerOrderNumberImagingServiceRequest", Kind::Id),
    ("FillerOrderNumberImagingServiceRequest", Kind::Id),
    ("PlacerOrderNumberImagingServiceRequestRetired", Kind::Id),
    ("FillerOrderNumberImagingServiceRequestRetired", Kind::Id),
    ("PlacerOrderNumberProcedure", Kind::Id),
    ("FillerOrderNumberProcedure", Kind::Id),
    ("InsurancePlanIdentification", Kind::Id),
    ("PatientInsurancePlanCodeSequence", Kind::Id),
    ("ClinicalTrialSubjectID", Kind::Id),
    ("ClinicalTrialSubjectReadingID", Kind::Id),
    ("IssuerOfPatientID", Kind::Institution),
    ("IssuerOfAdmissionID", Kind::Institution),
    ("IssuerOfServiceEpisodeID", Kind::Institution),
    // dates of birth and death
    ("PatientBirthDate", Kind::BirthDate),
    ("PatientBirthTime", Kind::BirthDate),
    ("PatientBirthDateInAlternativeCalendar", Kind::BirthDate),
    ("PatientDeathDateInAlternativeCalendar", Kind::BirthDate),
    // addresses and contact details
    ("PatientAddress", Kind::Address),
    ("CountryOfResidence", Kind::Address),
    ("RegionOfResidence", Kind::Address),
    ("PersonAddress", Kind::Address),
    ("ReferringPhysicianAddress", Kind::Address),
    ("InstitutionAddress", Kind::Institution),
    ("PatientTelephoneNumbers", Kind::Phone),
    ("PatientTelecomInformation", Kind::Phone),
    ("PersonTelephoneNumbers", Kind::Phone),
    ("PersonTelecomInformation", Kind::Phone),
    ("ReferringPhysicianTelephoneNumbers", Kind::Phone),
    // institutions
    ("InstitutionName", Kind::Institution),
    ("InstitutionalDepartmentName", Kind::Institution),
    ("ResponsibleOrganization", Kind::Institution),
    ("PatientInstitutionResidence", Kind::Institution),
    ("CurrentPatientLocation", Kind::Institution),
    // devices
    ("StationName", Kind::Device),
    ("DeviceSerialNumber", Kind::Device),
    ("DeviceID", Kind::Device),
    ("DetectorID", Kind::Device),
    ("GantryID", Kind::Device),
    ("CassetteID", Kind::Device),
    ("PlateID", Kind::Device),
    ("GeneratorID", Kind::Device),
    ("SourceSerialNumber", Kind::Device),
    ("ScheduledStationName", Kind::Device),
    ("PerformedStationName", Kind::Device),
    ("ScheduledStationAETitle", Kind::Device),
    ("PerformedStationAETitle", Kind::Device),
    ("StationAETitle", Kind::Device),
    ("UniqueDeviceIdentifier", Kind::Device),
    ("SourceApplicationEntityTitle", Kind::Device),
    ("SendingApplicationEntityTitle", Kind::Device),
    ("ReceivingApplicationEntityTitle", Kind::Device),
    // personal characteristics
    ("MilitaryRank", Kind::Personal),
    ("BranchOfService", Kind::Personal),
    ("PatientReligiousPreference", Kind::Personal),
    ("Occupation", Kind::Personal),
];

/// Sorted by tag: a binary search per element is cheaper than hashing.
static BY_TAG: LazyLock<Vec<(Tag, Kind)>> = LazyLock::new(|| {
    let mut v: Vec<(Tag, Kind)> = IDENTITY_ATTRIBUTES
        .iter()
        .filter_map(|(kw, kind)| Some((StandardDataDictionary.by_name(kw)?.tag(), *kind)))
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v.dedup_by_key(|(t, _)| *t);
    v
});

/// The kind of identifier `tag` carries, if it is identity-bearing (PN values aside).
pub fn identity_kind(tag: Tag) -> Option<Kind> {
    BY_TAG
        .binary_search_by_key(&tag, |(t, _)| *t)
        .ok()
        .map(|i| BY_TAG[i].1)
}

/// The keyword of a standard attribute, for messages.
pub fn keyword(tag: Tag) -> Option<&'static str> {
    StandardDataDictionary.by_tag(tag).map(|e| e.alias())
}

/// UI attributes that name a class, a syntax, a coding scheme or an implementation, not an
/// instance: a vendor's root there names the vendor, not the institution, so they are not
/// judged by their root.
pub fn is_class_uid(tag: Tag) -> bool {
    let Some(kw) = keyword(tag) else {
        return false;
    };
    kw.ends_with("ClassUID")
        || kw.ends_with("TransferSyntaxUID")
        || kw.ends_with("CodingSchemeUID")
        || kw == "ImplementationClassUID"
        || kw == "MappingResourceUID"
        || kw == "ContextGroupExtensionCreatorUID"
        || kw == "PrivateInformationCreatorUID"
        || kw == "CodingSchemeUIDs"
        || kw == "LongCodeValue"
        || kw == "URNCodeValue"
        || kw == "ContextUID"
        || kw == "TemplateExtensionCreatorUID"
        || kw == "TemplateExtensionOrganizationUID"
        || kw == "TemplateVersion"
        || kw == "SpecificCharacterSet"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_is_a_standard_attribute() {
        let missing: Vec<&str> = IDENTITY_ATTRIBUTES
            .iter()
            .map(|(kw, _)| *kw)
            .filter(|kw| StandardDataDictionary.by_name(kw).is_none())
            .collect();
        assert!(missing.is_empty(), "unknown keywords: {missing:?}");
        assert_eq!(
            BY_TAG.len(),
            IDENTITY_ATTRIBUTES.len(),
            "duplicate keywords"
        );
    }

    #[test]
    fn no_identity_attribute_is_a_code_or_number_and_the_only_time_is_birth_time() {
        // the walk skips CS, DS, IS and TM values (but Patient's Birth Time) on this promise
        use dicom_core::VR;
        use dicom_core::dictionary::VirtualVr;
        for (kw, _) in IDENTITY_ATTRIBUTES {
            let e = StandardDataDictionary.by_name(kw).unwrap();
            if let VirtualVr::Exact(vr) = e.vr() {
                assert!(!matches!(vr, VR::CS | VR::DS | VR::IS), "{kw}");
                assert!(vr != VR::TM || *kw == "PatientBirthTime", "{kw}");
            }
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(identity_kind(Tag(0x0010, 0x0020)), Some(Kind::Id));
        assert_eq!(identity_kind(Tag(0x0008, 0x0080)), Some(Kind::Institution));
        assert_eq!(identity_kind(Tag(0x0018, 0x1000)), Some(Kind::Device));
        assert_eq!(identity_kind(Tag(0x0028, 0x0010)), None);
        assert!(is_class_uid(Tag(0x0008, 0x0016)));
        assert!(is_class_uid(Tag(0x0008, 0x1150)));
        assert!(!is_class_uid(Tag(0x0008, 0x0018)));
        assert!(!is_class_uid(Tag(0x0020, 0x000D)));
    }
}
