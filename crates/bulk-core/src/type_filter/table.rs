//! The search parameters `_typeFilter` supports, per resource type, and the
//! elements each one searches. A deliberately small subset of R4 search,
//! evaluated in memory by the worker; anything not listed here is refused at
//! kick-off (or, with `Prefer: handling=lenient`, dropped and reported).
//!
//! | Parameter | Kind | Types | Elements searched |
//! |---|---|---|---|
//! | `_id` | id | every type | `id` |
//! | `_lastUpdated` | date | every type | `meta.lastUpdated` |
//! | `status` | token | types with a `status` code (see [`STATUS_TYPES`]) | `status` |
//! | `clinical-status` | token | Condition, AllergyIntolerance | `clinicalStatus` |
//! | `intent` | token | MedicationRequest, ServiceRequest, CarePlan, DeviceRequest, NutritionOrder | `intent` |
//! | `gender` | token | Patient, Practitioner, RelatedPerson, Person | `gender` |
//! | `category` | token | see [`CATEGORY_TYPES`] | `category` |
//! | `type` | token | see [`TYPE_TYPES`] | `type` |
//! | `code` | token | see [`code_elements`] | `code` (`vaccineCode`, `medicationCodeableConcept`) |
//! | `date` and friends | date | see [`date_elements`] | per type, e.g. Observation `effective[x]` |
//! | `patient` | reference | types whose compartment link is `patient` or `subject` | `patient`, `subject` |
//! | `subject` | reference | types with a `subject` compartment link | `subject` |
//!
//! Tokens: `code`, `system|code`, `|code` (no system), `system|` (any code of
//! that system); a `code`-typed element has an implicit system, so only its
//! code is compared. Dates: prefixes `eq` (default), `ne`, `gt`, `lt`, `ge`,
//! `le`, at any precision from a year to a fraction of a second; a `Period`
//! is compared as its span. References: `Patient/123`, or a bare id. A comma
//! in a value means OR; `&` between parameters means AND; several filters of
//! one type mean OR. Modifiers (`status:not`) and the prefixes `sa`, `eb`,
//! `ap` are not supported.

use crate::compartment::patient_reference_paths;

/// How a parameter's values are compared with a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `_id`: the resource's id equals one of the values.
    Id,
    /// A token (`code`, `Coding` or `CodeableConcept`) in one of these elements.
    Token(&'static [&'static str]),
    /// A date, dateTime, instant or Period in one of these elements (a trailing
    /// `[x]` names a choice element: `effective[x]` is `effectiveDateTime`, `effectivePeriod`, …).
    Date(&'static [&'static str]),
    /// A `Reference` in one of these elements.
    Reference(&'static [&'static str]),
}

/// Types with a `status` element searched by the R4 `status` parameter.
pub const STATUS_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Appointment",
    "CarePlan",
    "CareTeam",
    "Claim",
    "Communication",
    "Composition",
    "Consent",
    "Coverage",
    "DetectedIssue",
    "Device",
    "DeviceRequest",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "EpisodeOfCare",
    "ExplanationOfBenefit",
    "Goal",
    "ImagingStudy",
    "Immunization",
    "Location",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationRequest",
    "MedicationStatement",
    "NutritionOrder",
    "Observation",
    "Procedure",
    "QuestionnaireResponse",
    "ServiceRequest",
    "Specimen",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
];

/// Types with a `category` element searched by the R4 `category` parameter.
pub const CATEGORY_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "CarePlan",
    "CareTeam",
    "Communication",
    "Composition",
    "Condition",
    "Consent",
    "DiagnosticReport",
    "DocumentReference",
    "Goal",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
    "ServiceRequest",
];

/// Types with a `type` element searched by the R4 `type` parameter.
pub const TYPE_TYPES: &[&str] = &[
    "Account",
    "AllergyIntolerance",
    "Claim",
    "Composition",
    "Coverage",
    "DocumentReference",
    "Encounter",
    "EpisodeOfCare",
    "Group",
    "Location",
    "Organization",
    "Specimen",
];

/// The elements the R4 `code` parameter searches, per type.
pub fn code_elements(resource_type: &str) -> Option<&'static [&'static str]> {
    Some(match resource_type {
        "AllergyIntolerance" | "Condition" | "DiagnosticReport" | "Medication" | "Observation" | "Procedure"
        | "ServiceRequest" => &["code"],
        "Immunization" => &["vaccineCode"],
        "MedicationAdministration" | "MedicationDispense" | "MedicationRequest" | "MedicationStatement" => {
            &["medicationCodeableConcept"]
        }
        _ => return None,
    })
}

/// The date parameters and the elements they search, per type (R4 names).
pub fn date_elements(resource_type: &str, param: &str) -> Option<&'static [&'static str]> {
    Some(match (resource_type, param) {
        ("Observation" | "DiagnosticReport", "date") => &["effective[x]"],
        ("Encounter" | "CarePlan" | "EpisodeOfCare", "date") => &["period"],
        ("Procedure", "date") => &["performed[x]"],
        ("Immunization", "date") => &["occurrence[x]"],
        ("AllergyIntolerance", "date") => &["recordedDate"],
        ("DocumentReference" | "Composition", "date") => &["date"],
        ("Consent", "date") => &["dateTime"],
        ("Condition", "onset-date") => &["onset[x]"],
        ("Condition", "recorded-date") => &["recordedDate"],
        ("MedicationRequest", "authoredon") => &["authoredOn"],
        ("Provenance", "recorded") => &["recorded"],
        ("Patient", "birthdate") => &["birthDate"],
        ("Claim" | "ExplanationOfBenefit", "created") => &["created"],
        _ => return None,
    })
}

/// Search result parameters the IG forbids in `_typeFilter` (they shape a
/// search's result, not which resources match).
pub const RESULT_PARAMETERS: &[&str] =
    &["_include", "_revinclude", "_sort", "_count", "_elements", "_summary", "_total", "_contained", "_containedType"];

/// How `param` is searched on `resource_type`, or `None` when this service does not support it.
pub fn lookup(resource_type: &str, param: &str) -> Option<Kind> {
    let links = patient_reference_paths(resource_type).unwrap_or(&[]);
    let on = |types: &[&str]| types.contains(&resource_type);
    Some(match param {
        "_id" => Kind::Id,
        "_lastUpdated" => Kind::Date(&["meta.lastUpdated"]),
        "status" if on(STATUS_TYPES) => Kind::Token(&["status"]),
        "clinical-status" if on(&["Condition", "AllergyIntolerance"]) => Kind::Token(&["clinicalStatus"]),
        "intent" if on(&["MedicationRequest", "ServiceRequest", "CarePlan", "DeviceRequest", "NutritionOrder"]) => {
            Kind::Token(&["intent"])
        }
        "gender" if on(&["Patient", "Practitioner", "RelatedPerson", "Person"]) => Kind::Token(&["gender"]),
        "category" if on(CATEGORY_TYPES) => Kind::Token(&["category"]),
        "type" if on(TYPE_TYPES) => Kind::Token(&["type"]),
        "code" => Kind::Token(code_elements(resource_type)?),
        "patient" if links.contains(&"patient") => Kind::Reference(&["patient"]),
        "patient" if links.contains(&"subject") => Kind::Reference(&["subject"]),
        "subject" if links.contains(&"subject") => Kind::Reference(&["subject"]),
        other => Kind::Date(date_elements(resource_type, other)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_named_in_the_table_is_an_r4_type() {
        for t in STATUS_TYPES.iter().chain(CATEGORY_TYPES).chain(TYPE_TYPES) {
            assert!(t.parse::<crate::ResourceType>().is_ok(), "{t}");
        }
    }

    #[test]
    fn common_parameters_resolve_to_the_elements_they_search() {
        assert_eq!(lookup("Observation", "status"), Some(Kind::Token(&["status"])));
        assert_eq!(lookup("Observation", "date"), Some(Kind::Date(&["effective[x]"])));
        assert_eq!(lookup("Observation", "patient"), Some(Kind::Reference(&["subject"])));
        assert_eq!(lookup("Consent", "patient"), Some(Kind::Reference(&["patient"])));
        assert_eq!(lookup("Immunization", "code"), Some(Kind::Token(&["vaccineCode"])));
        assert_eq!(lookup("Patient", "_lastUpdated"), Some(Kind::Date(&["meta.lastUpdated"])));
    }

    #[test]
    fn parameters_a_type_does_not_have_are_unsupported() {
        assert_eq!(lookup("Patient", "status"), None);
        assert_eq!(lookup("Patient", "subject"), None);
        assert_eq!(lookup("Organization", "patient"), None);
        assert_eq!(lookup("Condition", "date"), None);
        assert_eq!(lookup("Observation", "name"), None);
        assert_eq!(lookup("Observation", "_sort"), None);
    }
}
