//! FHIR R4 resource type names, and which of them this deployment exports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A FHIR R4 resource type, by its (case-sensitive) name.
///
/// Any R4 type parses; which ones a deployment exports is configuration
/// (`export.types`), and patient-compartment membership is in
/// [`crate::compartment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(&'static str);

impl ResourceType {
    /// `Patient`.
    pub const PATIENT: ResourceType = ResourceType("Patient");
    /// `DocumentReference`.
    pub const DOCUMENT_REFERENCE: ResourceType = ResourceType("DocumentReference");
    /// `Consent`.
    pub const CONSENT: ResourceType = ResourceType("Consent");
    /// `Provenance`.
    pub const PROVENANCE: ResourceType = ResourceType("Provenance");
    /// `Group`.
    pub const GROUP: ResourceType = ResourceType("Group");

    /// The usage document's four types: what a deployment exports unless configured otherwise.
    pub const DEFAULT_EXPORTABLE: [ResourceType; 4] =
        [ResourceType::PATIENT, ResourceType::DOCUMENT_REFERENCE, ResourceType::CONSENT, ResourceType::PROVENANCE];

    /// The FHIR name of the type.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Every R4 resource type.
    pub fn all_r4() -> impl Iterator<Item = ResourceType> {
        R4_TYPES.iter().map(|t| ResourceType(t))
    }

    /// Whether resources of this type can be in a patient's compartment
    /// (R4 Patient `CompartmentDefinition`); other types are exported only at system level.
    pub fn in_patient_compartment(self) -> bool {
        crate::compartment::patient_reference_paths(self.0).is_some()
    }
}

/// The name is not an R4 resource type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a FHIR R4 resource type")]
pub struct UnsupportedType;

impl FromStr for ResourceType {
    type Err = UnsupportedType;
    /// Case-sensitive, as FHIR type names are.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        R4_TYPES.binary_search(&s).map(|i| ResourceType(R4_TYPES[i])).map_err(|_| UnsupportedType)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for ResourceType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(|_| serde::de::Error::custom(format!("unknown resource type {name:?}")))
    }
}

/// The R4 (4.0.1) resource types, sorted for binary search.
const R4_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_table_is_sorted_and_has_every_r4_type_once() {
        assert!(R4_TYPES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(R4_TYPES.len(), 146);
    }

    #[test]
    fn every_r4_type_round_trips_by_name() {
        for t in ResourceType::all_r4() {
            assert_eq!(t.as_str().parse::<ResourceType>(), Ok(t));
        }
    }

    #[test]
    fn type_names_are_case_sensitive_and_unknown_names_fail() {
        assert!("patient".parse::<ResourceType>().is_err());
        assert!("Observation".parse::<ResourceType>().is_ok());
        assert!("Resource".parse::<ResourceType>().is_err());
        assert!("DomainResource".parse::<ResourceType>().is_err());
    }

    #[test]
    fn types_serialise_as_their_names() {
        let json = serde_json::to_string(&ResourceType::CONSENT).expect("serialises");
        assert_eq!(json, "\"Consent\"");
        assert_eq!(serde_json::from_str::<ResourceType>(&json).ok(), Some(ResourceType::CONSENT));
        assert!(serde_json::from_str::<ResourceType>("\"Nope\"").is_err());
    }
}
