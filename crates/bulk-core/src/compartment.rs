//! The R4 Patient `CompartmentDefinition`: which elements of a resource, when
//! they reference a `Patient`, put the resource in that patient's compartment.
//!
//! The definition names search parameters; this table names the elements
//! those parameters search (dotted paths, through arrays), so the loader can
//! place a resource without a search engine. `Patient` is in its own
//! compartment by id (and its `link.other`).

/// The reference elements that tie a resource of `resource_type` to a
/// patient; `None` for types outside the Patient compartment.
pub fn patient_reference_paths(resource_type: &str) -> Option<&'static [&'static str]> {
    PATIENT_COMPARTMENT.binary_search_by(|(t, _)| t.cmp(&resource_type)).ok().map(|i| PATIENT_COMPARTMENT[i].1)
}

/// Every type in the Patient compartment, sorted, with its reference elements.
pub const PATIENT_COMPARTMENT: &[(&str, &[&str])] = &[
    ("Account", &["subject"]),
    ("AdverseEvent", &["subject"]),
    ("AllergyIntolerance", &["patient", "recorder", "asserter"]),
    ("Appointment", &["participant.actor"]),
    ("AppointmentResponse", &["actor"]),
    ("AuditEvent", &["agent.who", "entity.what"]),
    ("Basic", &["subject", "author"]),
    ("BodyStructure", &["patient"]),
    ("CarePlan", &["subject", "activity.detail.performer"]),
    ("CareTeam", &["subject", "participant.member"]),
    ("ChargeItem", &["subject"]),
    ("Claim", &["patient", "payee.party"]),
    ("ClaimResponse", &["patient"]),
    ("ClinicalImpression", &["subject"]),
    ("Communication", &["subject", "sender", "recipient"]),
    ("CommunicationRequest", &["subject", "sender", "recipient", "requester"]),
    ("Composition", &["subject", "author", "attester.party"]),
    ("Condition", &["subject", "asserter"]),
    ("Consent", &["patient"]),
    ("Coverage", &["policyHolder", "subscriber", "beneficiary", "payor"]),
    ("CoverageEligibilityRequest", &["patient"]),
    ("CoverageEligibilityResponse", &["patient"]),
    ("DetectedIssue", &["patient"]),
    ("DeviceRequest", &["subject", "performer"]),
    ("DeviceUseStatement", &["subject"]),
    ("DiagnosticReport", &["subject"]),
    ("DocumentManifest", &["subject", "author", "recipient"]),
    ("DocumentReference", &["subject", "author"]),
    ("Encounter", &["subject"]),
    ("EnrollmentRequest", &["candidate"]),
    ("EpisodeOfCare", &["patient"]),
    ("ExplanationOfBenefit", &["patient", "payee.party"]),
    ("FamilyMemberHistory", &["patient"]),
    ("Flag", &["subject"]),
    ("Goal", &["subject"]),
    ("Group", &["member.entity"]),
    ("ImagingStudy", &["subject"]),
    ("Immunization", &["patient"]),
    ("ImmunizationEvaluation", &["patient"]),
    ("ImmunizationRecommendation", &["patient"]),
    ("Invoice", &["subject", "recipient"]),
    ("List", &["subject", "source"]),
    ("MeasureReport", &["subject"]),
    ("Media", &["subject"]),
    ("MedicationAdministration", &["subject", "performer.actor"]),
    ("MedicationDispense", &["subject", "receiver"]),
    ("MedicationRequest", &["subject"]),
    ("MedicationStatement", &["subject"]),
    ("MolecularSequence", &["patient"]),
    ("NutritionOrder", &["patient"]),
    ("Observation", &["subject", "performer"]),
    ("Patient", &["link.other"]),
    ("Person", &["link.target"]),
    ("Procedure", &["subject", "performer.actor"]),
    ("Provenance", &["target"]),
    ("QuestionnaireResponse", &["subject", "author"]),
    ("RelatedPerson", &["patient"]),
    ("RequestGroup", &["subject", "action.participant"]),
    ("ResearchSubject", &["individual"]),
    ("RiskAssessment", &["subject"]),
    ("Schedule", &["actor"]),
    ("ServiceRequest", &["subject", "performer"]),
    ("Specimen", &["subject"]),
    ("SupplyDelivery", &["patient"]),
    ("SupplyRequest", &["requester"]),
    ("VisionPrescription", &["patient"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compartment_table_is_sorted_and_names_only_r4_types() {
        assert!(PATIENT_COMPARTMENT.windows(2).all(|w| w[0].0 < w[1].0));
        for (t, paths) in PATIENT_COMPARTMENT {
            assert!(t.parse::<crate::ResourceType>().is_ok(), "{t}");
            assert!(!paths.is_empty(), "{t}");
        }
    }

    #[test]
    fn clinical_types_are_in_the_compartment_and_definitional_ones_are_not() {
        assert_eq!(patient_reference_paths("Observation"), Some(&["subject", "performer"][..]));
        assert!(patient_reference_paths("Organization").is_none());
        assert!(patient_reference_paths("Practitioner").is_none());
        assert!(patient_reference_paths("Medication").is_none());
    }
}
