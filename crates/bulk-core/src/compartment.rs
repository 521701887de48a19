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
///
/// Checked against the R4 (4.0.1) `CompartmentDefinition/patient`
/// (<http://hl7.org/fhir/R4/compartmentdefinition-patient.html>): one row per
/// type that has inclusion parameters there, and only those. Each parameter is
/// mapped to the element(s) its R4 `SearchParameter` expression searches;
/// where the name differs from the element, the comment says
/// `param → element`. Parameters such as `patient` that search
/// `subject.where(resolve() is Patient)` map to `subject`: only `Patient/…`
/// references place a resource, so the `where` is implied.
pub const PATIENT_COMPARTMENT: &[(&str, &[&str])] = &[
    ("Account", &["subject"]),
    ("AdverseEvent", &["subject"]),
    ("AllergyIntolerance", &["patient", "recorder", "asserter"]),
    // actor → participant.actor
    ("Appointment", &["participant.actor"]),
    ("AppointmentResponse", &["actor"]),
    // patient → agent.who | entity.what
    ("AuditEvent", &["agent.who", "entity.what"]),
    // patient → subject
    ("Basic", &["subject", "author"]),
    ("BodyStructure", &["patient"]),
    // patient → subject; performer → activity.detail.performer
    ("CarePlan", &["subject", "activity.detail.performer"]),
    // patient → subject; participant → participant.member
    ("CareTeam", &["subject", "participant.member"]),
    ("ChargeItem", &["subject"]),
    // payee → payee.party
    ("Claim", &["patient", "payee.party"]),
    ("ClaimResponse", &["patient"]),
    ("ClinicalImpression", &["subject"]),
    ("Communication", &["subject", "sender", "recipient"]),
    ("CommunicationRequest", &["subject", "sender", "recipient", "requester"]),
    // attester → attester.party
    ("Composition", &["subject", "author", "attester.party"]),
    // patient → subject
    ("Condition", &["subject", "asserter"]),
    ("Consent", &["patient"]),
    // policy-holder → policyHolder
    ("Coverage", &["policyHolder", "subscriber", "beneficiary", "payor"]),
    ("CoverageEligibilityRequest", &["patient"]),
    ("CoverageEligibilityResponse", &["patient"]),
    ("DetectedIssue", &["patient"]),
    ("DeviceRequest", &["subject", "performer"]),
    ("DeviceUseStatement", &["subject"]),
    ("DiagnosticReport", &["subject"]),
    ("DocumentManifest", &["subject", "author", "recipient"]),
    ("DocumentReference", &["subject", "author"]),
    // patient → subject
    ("Encounter", &["subject"]),
    // subject → candidate
    ("EnrollmentRequest", &["candidate"]),
    ("EpisodeOfCare", &["patient"]),
    // payee → payee.party
    ("ExplanationOfBenefit", &["patient", "payee.party"]),
    ("FamilyMemberHistory", &["patient"]),
    // patient → subject
    ("Flag", &["subject"]),
    // patient → subject
    ("Goal", &["subject"]),
    // member → member.entity
    ("Group", &["member.entity"]),
    // patient → subject
    ("ImagingStudy", &["subject"]),
    ("Immunization", &["patient"]),
    ("ImmunizationEvaluation", &["patient"]),
    ("ImmunizationRecommendation", &["patient"]),
    // subject, patient → subject
    ("Invoice", &["subject", "recipient"]),
    ("List", &["subject", "source"]),
    // patient → subject
    ("MeasureReport", &["subject"]),
    ("Media", &["subject"]),
    // patient, subject → subject; performer → performer.actor
    ("MedicationAdministration", &["subject", "performer.actor"]),
    // subject, patient → subject
    ("MedicationDispense", &["subject", "receiver"]),
    ("MedicationRequest", &["subject"]),
    ("MedicationStatement", &["subject"]),
    ("MolecularSequence", &["patient"]),
    ("NutritionOrder", &["patient"]),
    ("Observation", &["subject", "performer"]),
    // link → link.other (and the patient itself, by id: see the loader)
    ("Patient", &["link.other"]),
    // patient → link.target
    ("Person", &["link.target"]),
    // patient → subject; performer → performer.actor
    ("Procedure", &["subject", "performer.actor"]),
    // patient → target (the loader also follows non-patient targets)
    ("Provenance", &["target"]),
    ("QuestionnaireResponse", &["subject", "author"]),
    ("RelatedPerson", &["patient"]),
    // participant → action.participant
    ("RequestGroup", &["subject", "action.participant"]),
    ("ResearchSubject", &["individual"]),
    ("RiskAssessment", &["subject"]),
    ("Schedule", &["actor"]),
    ("ServiceRequest", &["subject", "performer"]),
    ("Specimen", &["subject"]),
    ("SupplyDelivery", &["patient"]),
    // subject → deliverTo (R4's SupplyRequest-subject is "the destination of the supply")
    ("SupplyRequest", &["deliverTo"]),
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
        // R4 has a Device compartment, but Device itself is not in the Patient one.
        assert!(patient_reference_paths("Device").is_none());
    }

    #[test]
    fn parameters_whose_name_differs_from_the_element_map_to_the_element_they_search() {
        assert_eq!(patient_reference_paths("Encounter"), Some(&["subject"][..]));
        assert_eq!(patient_reference_paths("SupplyRequest"), Some(&["deliverTo"][..]));
        assert_eq!(patient_reference_paths("EnrollmentRequest"), Some(&["candidate"][..]));
        assert_eq!(patient_reference_paths("Claim"), Some(&["patient", "payee.party"][..]));
    }

    #[test]
    fn the_table_has_the_sixty_six_types_of_the_r4_definition() {
        assert_eq!(PATIENT_COMPARTMENT.len(), 66);
    }
}
