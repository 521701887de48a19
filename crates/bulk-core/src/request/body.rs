//! The FHIR `Parameters` body of a POST kick-off, flattened to the same
//! `(name, value)` pairs a GET query gives, so one parser handles both.

use serde_json::Value;

use super::{printable, RequestError};

/// Most parameters one body may carry (a `patient` list is the long one).
pub const MAX_BODY_PARAMETERS: usize = 10_000;

/// The primitive `value[x]` types a parameter may use; all are strings in JSON.
const STRING_VALUES: [&str; 9] = [
    "valueString",
    "valueCode",
    "valueId",
    "valueUri",
    "valueUrl",
    "valueCanonical",
    "valueInstant",
    "valueDateTime",
    "valueDate",
];

/// Flattens a `Parameters` resource. Each parameter needs a `name` and one
/// value: `patient` a `valueReference` (its `reference` is the value), every
/// other parameter a string-typed primitive. Unknown names pass through for
/// the request parser to refuse or, when lenient, report.
pub fn parse_parameters(body: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    let invalid = |m: String| RequestError::Invalid(m);
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        invalid(format!("The request body is not valid JSON (line {}, column {})", e.line(), e.column()))
    })?;
    if doc.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("The request body must be a FHIR Parameters resource".into()));
    }
    let list = match doc.get("parameter") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("Parameters.parameter must be an array".into())),
    };
    if list.len() > MAX_BODY_PARAMETERS {
        return Err(invalid(format!("More than {MAX_BODY_PARAMETERS} parameters in the request body")));
    }
    list.iter().map(parameter).collect()
}

fn parameter(p: &Value) -> Result<(String, String), RequestError> {
    let invalid = |m: String| RequestError::Invalid(m);
    let obj = p.as_object().ok_or_else(|| invalid("Each Parameters.parameter must be an object".into()))?;
    let name =
        obj.get("name").and_then(Value::as_str).ok_or_else(|| invalid("A Parameters.parameter has no name".into()))?;
    let shown = printable(name);
    if obj.contains_key("part") || obj.contains_key("resource") {
        return Err(invalid(format!("Parameter '{shown}' must have a simple value, not parts or a resource")));
    }
    let values: Vec<(&String, &Value)> = obj.iter().filter(|(k, _)| k.starts_with("value")).collect();
    let [(kind, value)] = values.as_slice() else {
        return Err(invalid(format!("Parameter '{shown}' must have exactly one value")));
    };
    let text = if name == "patient" {
        let reference = (kind.as_str() == "valueReference")
            .then(|| value.get("reference").and_then(Value::as_str))
            .flatten()
            .ok_or_else(|| invalid("Parameter 'patient' must be a valueReference with a reference".into()))?;
        reference.to_owned()
    } else {
        let text = STRING_VALUES
            .contains(&kind.as_str())
            .then(|| value.as_str())
            .flatten()
            .ok_or_else(|| invalid(format!("Parameter '{shown}' must have a string value (e.g. valueString)")))?;
        text.to_owned()
    };
    Ok((name.to_owned(), text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Vec<(String, String)>, RequestError> {
        parse_parameters(v.to_string().as_bytes())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn string_values_and_patient_references_are_flattened_in_order() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "_type", "valueString": "Patient,Observation"},
            {"name": "_since", "valueInstant": "2020-01-01T00:00:00Z"},
            {"name": "includeAssociatedData", "valueCode": "LatestProvenanceResources"},
            {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
            {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
            {"name": "_foo", "valueString": "x"},
        ]});
        assert_eq!(
            parse(body),
            Ok(pairs(&[
                ("_type", "Patient,Observation"),
                ("_since", "2020-01-01T00:00:00Z"),
                ("includeAssociatedData", "LatestProvenanceResources"),
                ("patient", "Patient/p1"),
                ("patient", "Patient/p2"),
                ("_foo", "x"),
            ]))
        );
        assert_eq!(parse(json!({"resourceType": "Parameters"})), Ok(vec![]));
    }

    #[test]
    fn malformed_bodies_are_invalid_and_say_why() {
        let cases = [
            (b"{".to_vec(), "not valid JSON"),
            (b"[]".to_vec(), "Parameters resource"),
            (json!({"resourceType": "Patient"}).to_string().into_bytes(), "Parameters resource"),
            (json!({"resourceType": "Parameters", "parameter": {}}).to_string().into_bytes(), "array"),
            (json!({"resourceType": "Parameters", "parameter": [1]}).to_string().into_bytes(), "object"),
            (
                json!({"resourceType": "Parameters", "parameter": [{"valueString": "x"}]}).to_string().into_bytes(),
                "no name",
            ),
        ];
        for (body, why) in cases {
            match parse_parameters(&body) {
                Err(RequestError::Invalid(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_parameter_with_the_wrong_value_type_is_invalid_and_named() {
        for p in [
            json!({"name": "_type", "valueBoolean": true}),
            json!({"name": "_type", "valueInteger": 1}),
            json!({"name": "_type", "valueReference": {"reference": "Patient/1"}}),
            json!({"name": "_type"}),
            json!({"name": "_type", "valueString": "Patient", "valueCode": "Patient"}),
            json!({"name": "_type", "part": [{"name": "x", "valueString": "y"}]}),
            json!({"name": "patient", "valueString": "Patient/1"}),
            json!({"name": "patient", "valueReference": {"display": "x"}}),
        ] {
            let name = p["name"].as_str().expect("name").to_owned();
            match parse(json!({"resourceType": "Parameters", "parameter": [p]})) {
                Err(RequestError::Invalid(m)) => assert!(m.contains(&name), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
