//! The resource types this service exports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A resource type the export supports.
///
/// The usage document names four; adding one means adding a variant here and
/// its patient-compartment rule in `bulk-resources`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    /// The patient themself.
    Patient,
    /// Clinical documents; in the compartment of `subject`.
    DocumentReference,
    /// Consents; in the compartment of `patient`.
    Consent,
    /// Provenance; in the compartment of the patient its target belongs to.
    Provenance,
}

impl ResourceType {
    /// Every supported type, in the order a default export writes them.
    pub const ALL: [ResourceType; 4] =
        [ResourceType::Patient, ResourceType::DocumentReference, ResourceType::Consent, ResourceType::Provenance];

    /// The FHIR name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Patient => "Patient",
            ResourceType::DocumentReference => "DocumentReference",
            ResourceType::Consent => "Consent",
            ResourceType::Provenance => "Provenance",
        }
    }
}

/// The name is not one of the supported resource types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported resource type")]
pub struct UnsupportedType;

impl FromStr for ResourceType {
    type Err = UnsupportedType;
    /// Case-sensitive, as FHIR type names are.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == s).ok_or(UnsupportedType)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_round_trips_by_name() {
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>(), Ok(t));
        }
    }

    #[test]
    fn type_names_are_case_sensitive_and_unknown_names_fail() {
        assert!("patient".parse::<ResourceType>().is_err());
        assert!("Observation".parse::<ResourceType>().is_err());
    }
}
