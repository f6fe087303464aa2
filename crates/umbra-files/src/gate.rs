//! The release gate: every de-identified object is checked by the independent scanner
//! ([`umbra_scan`]) before it is written, against the identifiers of its own original.
//!
//! The engine's options say what the output may keep (dates, UIDs, device and institution
//! identity, safe private attributes, patient characteristics); they become the scanner's
//! [`Allow`] list here, and nothing else of the engine reaches the scanner. An object with an
//! error-level finding is held back; the finding is its reason.

use dicom_object::{FileDicomObject, InMemDicomObject};
use umbra_core::{Config, OptionSet, ProfileOption};
use umbra_scan::{Against, AgainstBuilder, Allow, Policy, Scanner, Severity};

/// What objects de-identified with `options` may keep, in the scanner's terms.
pub fn allow_for(options: &OptionSet) -> Allow {
    let o = options;
    Allow {
        dates: o.contains(ProfileOption::RetainLongitudinalFullDates),
        uids: o.contains(ProfileOption::RetainUids),
        device: o.contains(ProfileOption::RetainDeviceIdentity),
        institution: o.contains(ProfileOption::RetainInstitutionIdentity),
        private: o.contains(ProfileOption::RetainSafePrivate),
        patient_characteristics: o.contains(ProfileOption::RetainPatientCharacteristics),
    }
}

/// The scanner set up for one run's options.
#[derive(Debug, Clone)]
pub struct Gate {
    scanner: Scanner,
}

impl Gate {
    /// The gate for a de-identification configuration.
    pub fn for_config(config: &Config) -> Self {
        let policy = Policy {
            allow: allow_for(&config.options),
            uid_roots: Vec::new(),
            at_risk_modalities: config.at_risk_modalities.clone(),
        };
        Gate {
            scanner: Scanner::new(policy, None),
        }
    }

    /// The identifiers of an original, collected before the engine transforms it.
    pub fn harvest(&self, original: &InMemDicomObject) -> Against {
        let mut b = AgainstBuilder::new(&self.scanner.policy().allow);
        b.harvest(original);
        b.build()
    }

    /// Checks a de-identified object: `Err` with a one-line reason (rule, path, what; never a
    /// value) when the scanner finds anything at error level.
    pub fn check(
        &self,
        original: &Against,
        object: &FileDicomObject<InMemDicomObject>,
    ) -> Result<(), String> {
        let findings = self
            .scanner
            .scan_against(original, object, Some(object.meta()), None);
        let errors: Vec<_> = umbra_scan::at_least(&findings, Severity::Error).collect();
        let Some(first) = errors.first() else {
            return Ok(());
        };
        let more = match errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Err(format!(
            "verification: {} at {}: {}{more}",
            first.rule.name(),
            first.path,
            first.message
        ))
    }
}
