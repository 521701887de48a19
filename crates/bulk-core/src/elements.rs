//! `_elements`: which root elements of exported resources to keep.
//!
//! Names are checked for form only (`element` or `Type.element`, root
//! elements only); we carry no R4 schema, so a well-formed name a type does
//! not have simply keeps nothing extra. The projector always keeps the
//! mandatory elements: `resourceType`, `id`, `meta`, and the type's root
//! elements of minimum cardinality 1 ([`mandatory`]), and tags what it cut
//! with `SUBSETTED` so nobody mistakes it for a whole resource.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::ResourceType;

/// System of the `SUBSETTED` tag.
pub const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// One requested element: `name` for every type, or `Type.name` for one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementSpec {
    /// The type it applies to; `None` for every type.
    pub resource_type: Option<ResourceType>,
    /// Root element name (a choice element by its base name: `value` keeps `valueQuantity`).
    pub name: String,
}

/// Why an `_elements` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidElement(pub String);

impl FromStr for ElementSpec {
    type Err = InvalidElement;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = crate::request::printable;
        let (resource_type, name) = match s.split_once('.') {
            Some((t, rest)) if t.starts_with(|c: char| c.is_ascii_uppercase()) => {
                let t: ResourceType = t
                    .parse()
                    .map_err(|_| InvalidElement(format!("_elements names an unknown resource type '{}'", p(t))))?;
                (Some(t), rest)
            }
            Some(_) => return Err(InvalidElement(format!("_elements '{}': only root elements are allowed", p(s)))),
            None => (None, s),
        };
        let name = name.strip_suffix("[x]").unwrap_or(name);
        if name.contains('.') {
            return Err(InvalidElement(format!("_elements '{}': only root elements are allowed", p(s))));
        }
        let well_formed = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_alphanumeric());
        if !well_formed {
            return Err(InvalidElement(format!("_elements '{}' is not an element name", p(s))));
        }
        Ok(ElementSpec { resource_type, name: name.to_owned() })
    }
}

impl fmt::Display for ElementSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resource_type {
            Some(t) => write!(f, "{t}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl Serialize for ElementSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ElementSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Root elements of minimum cardinality 1 in R4, for the common types (base
/// names for choice elements). Types not listed keep only the universal ones.
pub fn mandatory(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "AllergyIntolerance" => &["patient"],
        "CarePlan" => &["status", "intent", "subject"],
        "Claim" => &["status", "type", "use", "patient", "created", "provider", "priority", "insurance"],
        "Condition" => &["subject"],
        "Consent" => &["status", "scope", "category"],
        "Coverage" => &["status", "beneficiary", "payor"],
        "DiagnosticReport" => &["status", "code"],
        "DocumentReference" => &["status", "content"],
        "Encounter" => &["status", "class"],
        "ExplanationOfBenefit" => {
            &["status", "type", "use", "patient", "created", "insurer", "provider", "outcome", "insurance"]
        }
        "Goal" => &["lifecycleStatus", "description", "subject"],
        "Group" => &["type", "actual"],
        "ImagingStudy" => &["status", "subject"],
        "Immunization" => &["status", "vaccineCode", "patient", "occurrence"],
        "MedicationAdministration" => &["status", "medication", "subject", "effective"],
        "MedicationRequest" => &["status", "intent", "medication", "subject"],
        "MedicationStatement" => &["status", "medication", "subject"],
        "Observation" => &["status", "code"],
        "Procedure" => &["status", "subject"],
        "Provenance" => &["target", "recorded", "agent"],
        "ServiceRequest" => &["status", "intent", "subject"],
        _ => &[],
    }
}

/// Elements every resource keeps.
const ALWAYS: [&str; 3] = ["resourceType", "id", "meta"];

/// Keeps only the wanted root elements of `resource` (plus the mandatory
/// ones) and tags it `SUBSETTED` when anything was removed. Entries for other
/// types do not apply; when none applies to this resource's type it is left whole.
pub fn project(resource: &mut Value, wanted: &[ElementSpec]) {
    let Some(obj) = resource.as_object_mut() else { return };
    let Some(t) = obj.get("resourceType").and_then(Value::as_str).map(str::to_owned) else { return };
    let applicable: Vec<&str> =
        wanted.iter().filter(|w| w.resource_type.is_none_or(|rt| rt.as_str() == t)).map(|w| w.name.as_str()).collect();
    if applicable.is_empty() {
        return;
    }
    let keep = |key: &str| {
        let base = key.strip_prefix('_').unwrap_or(key);
        ALWAYS.contains(&base) || applicable.iter().chain(mandatory(&t)).any(|name| is_element(base, name))
    };
    let before = obj.len();
    obj.retain(|k, _| keep(k));
    if obj.len() < before {
        tag_subsetted(obj);
    }
}

/// Whether JSON property `key` is element `name`: the same, or a choice
/// element's typed form (`valueQuantity` for `value`, but not `statusReason` for `status`).
fn is_element(key: &str, name: &str) -> bool {
    key.strip_prefix(name).is_some_and(|rest| rest.is_empty() || CHOICE_TYPES.contains(&rest))
}

/// The R4 data types a choice element (`value[x]`) can take, as they appear in its JSON name.
const CHOICE_TYPES: &[&str] = &[
    "Base64Binary",
    "Boolean",
    "Canonical",
    "Code",
    "Date",
    "DateTime",
    "Decimal",
    "Id",
    "Instant",
    "Integer",
    "Markdown",
    "Oid",
    "PositiveInt",
    "String",
    "Time",
    "UnsignedInt",
    "Uri",
    "Url",
    "Uuid",
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
];

fn tag_subsetted(obj: &mut Map<String, Value>) {
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else { return };
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    let Some(tags) = tags.as_array_mut() else { return };
    let present = tags.iter().any(|t| t["system"] == SUBSETTED_SYSTEM && t["code"] == "SUBSETTED");
    if !present {
        tags.push(json!({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &str) -> Vec<ElementSpec> {
        list.split(',').map(|s| s.parse().expect("valid")).collect()
    }

    fn observation() -> Value {
        json!({
            "resourceType": "Observation", "id": "o1",
            "meta": {"lastUpdated": "2020-01-01T00:00:00Z"},
            "text": {"status": "generated"},
            "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 5}, "_status": {"extension": []},
            "effectiveDateTime": "2020-01-01"
        })
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn names_with_and_without_a_type_parse_and_print_back() {
        let s: ElementSpec = "Patient.birthDate".parse().expect("typed");
        assert_eq!(s, ElementSpec { resource_type: Some(ResourceType::PATIENT), name: "birthDate".into() });
        assert_eq!(s.to_string(), "Patient.birthDate");
        assert_eq!("value[x]".parse::<ElementSpec>().map(|s| s.name), Ok("value".into()));
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"Patient.birthDate\"");
    }

    #[test]
    fn nested_paths_bad_names_and_unknown_types_are_invalid() {
        for bad in ["Patient.name.given", "name.given", "Nope.id", "", "Patient.", "1abc", "na-me", "Name", "a b"] {
            assert!(bad.parse::<ElementSpec>().is_err(), "{bad}");
        }
        let err = "Patient.name.given".parse::<ElementSpec>().expect_err("nested");
        assert!(err.0.contains("root elements"));
    }

    #[test]
    fn projection_keeps_wanted_and_mandatory_elements_and_tags_subsetted() {
        let mut o = observation();
        project(&mut o, &specs("subject"));
        assert_eq!(keys(&o), ["_status", "code", "id", "meta", "resourceType", "status", "subject"]);
        assert_eq!(o["meta"]["tag"], json!([{"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}]));
        assert_eq!(o["meta"]["lastUpdated"], "2020-01-01T00:00:00Z");
    }

    #[test]
    fn a_choice_element_is_kept_by_its_base_name() {
        let mut o = observation();
        project(&mut o, &specs("Observation.value,effective"));
        assert!(o.get("valueQuantity").is_some() && o.get("effectiveDateTime").is_some());
        assert!(o.get("subject").is_none());
    }

    #[test]
    fn an_element_whose_name_extends_a_wanted_one_is_not_kept() {
        let mut m = json!({"resourceType": "MedicationRequest", "id": "m", "status": "active",
            "statusReason": {"text": "x"}, "intent": "order", "subject": {}, "medicationReference": {}});
        project(&mut m, &specs("id"));
        assert_eq!(keys(&m), ["id", "intent", "medicationReference", "meta", "resourceType", "status", "subject"]);
    }

    #[test]
    fn entries_for_other_types_leave_a_resource_whole() {
        let mut o = observation();
        let whole = o.clone();
        project(&mut o, &specs("Patient.birthDate"));
        assert_eq!(o, whole);
    }

    #[test]
    fn nothing_removed_means_no_tag_and_an_existing_tag_is_not_repeated() {
        let mut p = json!({"resourceType": "Patient", "id": "p"});
        project(&mut p, &specs("id"));
        assert_eq!(p, json!({"resourceType": "Patient", "id": "p"}));
        let mut q = json!({"resourceType": "Patient", "id": "p", "gender": "male",
            "meta": {"tag": [{"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}]}});
        project(&mut q, &specs("id"));
        assert_eq!(
            q,
            json!({"resourceType": "Patient", "id": "p",
            "meta": {"tag": [{"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}]}})
        );
    }

    #[test]
    fn a_patient_keeps_only_what_was_asked_since_it_has_no_mandatory_elements() {
        let mut p = json!({"resourceType": "Patient", "id": "p", "gender": "male", "birthDate": "1970", "name": []});
        project(&mut p, &specs("Patient.gender"));
        assert_eq!(keys(&p), ["gender", "id", "meta", "resourceType"]);
    }
}
