//! Tests of the parent module.

use super::*;

#[test]
fn a_valid_line_is_stored_byte_for_byte() {
    let line = br#"{"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}]}"#;
    let (r, via) = parse_line(line).expect("valid").expect("not blank");
    assert_eq!(r.json.as_bytes(), line);
    assert_eq!(r.patient_ids, ["p1"]);
    assert!(via.is_none());
}

#[test]
fn malformed_lines_are_rejected_with_a_reason_that_does_not_echo_content() {
    for (line, why) in [
        (&b"{\"resourceType\":\"Patient\""[..], "JSON"),
        (b"[1,2]", "object"),
        (b"{\"id\":\"x\"}", "resourceType"),
        (b"{\"resourceType\":\"Patient\"}", "id"),
        (b"{\"resourceType\":\"Patient\",\"id\":\"a/b\"}", "id"),
        (b"{\"resourceType\":\"patient!\",\"id\":\"a\"}", "resourceType"),
        (b"{\"resourceType\":\"Patients\",\"id\":\"a\"}", "R4"),
        (b"{\"resourceType\":\"DeviceUsage\",\"id\":\"a\"}", "R4"),
        (b"\xff\xfe", "UTF-8"),
    ] {
        let err = parse_line(line).expect_err("invalid");
        assert!(err.contains(why), "{err} should mention {why}");
    }
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_resource_and_a_bare_carriage_return_is_refused() {
    let (r, _) =
        parse_line("\u{feff}{\"resourceType\":\"Patient\",\"id\":\"a\"}".as_bytes()).expect("ok").expect("row");
    assert!(r.json.starts_with('{'));
    let err = parse_line(b"{\"resourceType\":\"Patient\",\r\"id\":\"a\"}").expect_err("refused");
    assert!(err.contains("carriage return"), "{err}");
}

#[test]
fn blank_lines_and_crlf_endings_are_tolerated() {
    assert!(parse_line(b"   ").expect("blank ok").is_none());
    let (r, _) = parse_line(b"{\"resourceType\":\"Consent\",\"id\":\"c\"}\r").expect("ok").expect("row");
    assert!(!r.json.ends_with('\r'));
}

#[test]
fn checksum_lists_are_told_apart_from_data_files() {
    assert!(is_checksum_list("SHA256SUMS.ndjson"));
    assert!(is_checksum_list("MD5SUMS.ndjson.gz"));
    assert!(!is_checksum_list("Patient.ndjson"));
    assert!(!is_checksum_list("1.Observation.ndjson.gz"));
}

/// Property tests: no input line makes the loader panic, a loaded line is
/// stored exactly as given (trimmed), and a refused line's reason never
/// echoes its content.
mod props {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use proptest::prelude::*;
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::{ResourceQuery, StoredResource};

    /// Every reason `parse_line` gives but the JSON one, which names a column.
    const REASONS: [&str; 7] = [
        "not valid UTF-8",
        "contains a carriage return",
        "not a JSON object",
        "no resourceType",
        "resourceType is not a FHIR R4 resource type",
        "no id",
        "id is not a valid FHIR id",
    ];

    fn assert_known_reason(message: &str) -> Result<(), TestCaseError> {
        let json_column = message
            .strip_prefix("not valid JSON (column ")
            .and_then(|rest| rest.strip_suffix(')'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        prop_assert!(json_column || REASONS.contains(&message), "unexpected reason {message:?}");
        Ok(())
    }

    /// R4 resource types (bulk-core's list) and ids as the FHIR spec defines them.
    fn valid_type(s: &str) -> bool {
        bulk_core::ResourceType::all_r4().any(|t| t.as_str() == s)
    }

    fn valid_id(s: &str) -> bool {
        (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    }

    fn nasty_string() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                3 => any::<char>(),
                1 => prop::sample::select(vec!['"', '\\', '\n', '\r', '\0', '\u{2028}', '\u{feff}', '{', '}']),
            ],
            0..40,
        )
        .prop_map(String::from_iter)
    }

    fn type_name() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => prop::sample::select(vec!["Patient", "DocumentReference", "Consent", "Provenance", "Observation"])
                .prop_map(Value::from),
            1 => prop::sample::select(vec!["Organization", "Group", "Encounter", "Practitioner", "Device"])
                .prop_map(Value::from),
            2 => "[A-Za-z]{0,70}".prop_map(Value::from),
            1 => prop::sample::select(vec!["patient", "Patient1", "Pat ient", "Patient\u{0}", "Pätient", ""])
                .prop_map(Value::from),
            1 => nasty_string().prop_map(Value::from),
            1 => prop_oneof![Just(json!(42)), Just(json!(null)), Just(json!(["Patient"])), Just(json!({}))],
        ]
    }

    fn id() -> impl Strategy<Value = Value> {
        prop_oneof![
            5 => "[A-Za-z0-9.-]{1,64}".prop_map(Value::from),
            1 => "[A-Za-z0-9.-]{65,80}".prop_map(Value::from),
            1 => prop::sample::select(vec!["", "a/b", "a b", "../../etc/passwd", "p1\n", "é"]).prop_map(Value::from),
            1 => nasty_string().prop_map(Value::from),
            1 => prop_oneof![Just(json!(7)), Just(json!(null)), Just(json!(true))],
        ]
    }

    fn reference() -> impl Strategy<Value = Value> {
        prop_oneof![
            "(Patient|Group|Device|DocumentReference)/[A-Za-z0-9.-]{1,10}".prop_map(|r| json!({ "reference": r })),
            nasty_string().prop_map(|r| json!({ "reference": r })),
            Just(json!({ "reference": 5 })),
            Just(json!("Patient/x")),
        ]
    }

    /// A JSON object shaped like a resource, often valid, often subtly not.
    fn resource() -> impl Strategy<Value = Value> {
        (
            prop::option::weighted(0.95, type_name()),
            prop::option::weighted(0.95, id()),
            prop::option::of(reference()),
            prop::option::of(prop::collection::vec(reference(), 0..3)),
            prop::collection::vec((nasty_string(), nasty_string()), 0..3),
        )
            .prop_map(|(ty, id, subject, targets, extra)| {
                let mut obj = serde_json::Map::new();
                for (k, v) in extra {
                    obj.insert(k, Value::from(v));
                }
                if let Some(t) = ty {
                    obj.insert("resourceType".into(), t);
                }
                if let Some(i) = id {
                    obj.insert("id".into(), i);
                }
                if let Some(s) = subject {
                    obj.insert("subject".into(), s.clone());
                    obj.insert("patient".into(), s);
                }
                if let Some(t) = targets {
                    obj.insert("target".into(), Value::from(t));
                }
                Value::Object(obj)
            })
    }

    /// Whitespace a line may be padded with: all of it trimmed, none of it JSON's business.
    fn padding() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec![' ', '\t', '\u{a0}', '\u{3000}', '\u{85}']), 0..3)
            .prop_map(String::from_iter)
    }

    /// One line as a loader sees it (no `\n` inside), padded, maybe CRLF-terminated.
    fn resource_line() -> impl Strategy<Value = (Value, String)> {
        (resource(), padding(), padding(), any::<bool>()).prop_map(|(v, pre, post, crlf)| {
            let line = format!("{pre}{v}{post}{}", if crlf { "\r" } else { "" });
            (v, line)
        })
    }

    /// A valid line with a few bytes overwritten, inserted or removed.
    fn mutated_line() -> impl Strategy<Value = Vec<u8>> {
        (resource_line(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)).prop_map(
            |((_, line), edits)| {
                let mut bytes = line.into_bytes();
                for (at, byte, op) in edits {
                    if bytes.is_empty() {
                        bytes.push(byte);
                        continue;
                    }
                    let i = at.index(bytes.len());
                    match op {
                        0 => bytes[i] = byte,
                        1 => bytes.insert(i, byte),
                        _ => {
                            bytes.remove(i);
                        }
                    }
                }
                bytes
            },
        )
    }

    fn any_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => resource_line().prop_map(|(_, l)| l.into_bytes()),
            3 => mutated_line(),
            2 => prop::collection::vec(any::<u8>(), 0..200),
            1 => prop::collection::vec(prop::sample::select(b" \t\r{}[]\":,0-e".to_vec()), 0..50),
            1 => (1usize..40).prop_map(|n| format!("{}{}", "[".repeat(n * 100), "]".repeat(n * 100)).into_bytes()),
        ]
    }

    fn stored_text(bytes: &[u8]) -> Option<&str> {
        std::str::from_utf8(bytes).ok().map(|t| t.trim_start_matches('\u{feff}').trim_end_matches('\r').trim())
    }

    /// A resource store that only remembers what was upserted.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<NewResource>>);

    #[async_trait]
    impl ResourceStore for Recorder {
        async fn migrate(&self) -> Result<(), ResourceError> {
            Ok(())
        }
        async fn upsert(&self, batch: &[NewResource]) -> Result<u64, ResourceError> {
            self.0.lock().expect("not poisoned").extend_from_slice(batch);
            Ok(batch.len() as u64)
        }
        async fn delete(&self, _: &[(String, String)]) -> Result<u64, ResourceError> {
            Ok(0)
        }
        async fn patients_of(&self, _: &[(String, String)]) -> Result<Vec<String>, ResourceError> {
            Ok(Vec::new())
        }
        async fn get(&self, _: &str, _: &str) -> Result<Option<String>, ResourceError> {
            Ok(None)
        }
        async fn now(&self) -> Result<OffsetDateTime, ResourceError> {
            Ok(OffsetDateTime::UNIX_EPOCH)
        }
        async fn count(&self, _: &ResourceQuery) -> Result<u64, ResourceError> {
            Ok(0)
        }
        async fn page(&self, _: &ResourceQuery, _: Option<&str>, _: u32) -> Result<Vec<StoredResource>, ResourceError> {
            Ok(Vec::new())
        }
        async fn deleted_page(&self, _: &ResourceQuery, _: Option<&str>, _: u32) -> Result<Vec<String>, ResourceError> {
            Ok(Vec::new())
        }
        async fn existing(&self, _: &str, _: &[String]) -> Result<Vec<String>, ResourceError> {
            Ok(Vec::new())
        }
        async fn health_check(&self) -> Result<(), ResourceError> {
            Ok(())
        }
    }

    proptest! {
        #[test]
        fn no_line_makes_the_parser_panic_and_every_reason_is_generic(line in any_line()) {
            match parse_line(&line) {
                Ok(None) => prop_assert!(stored_text(&line).is_some_and(str::is_empty)),
                Ok(Some((r, _))) => {
                    prop_assert_eq!(Some(r.json.as_str()), stored_text(&line));
                    prop_assert!(valid_type(&r.resource_type), "{:?}", r.resource_type);
                    prop_assert!(valid_id(&r.id), "{:?}", r.id);
                }
                Err(message) => assert_known_reason(&message)?,
            }
        }

        #[test]
        fn a_resource_line_is_loaded_exactly_when_its_type_and_id_are_valid_and_round_trips(
            (value, line) in resource_line(),
        ) {
            let ty = value.get("resourceType").and_then(Value::as_str);
            let id = value.get("id").and_then(Value::as_str);
            let loadable = ty.is_some_and(valid_type) && id.is_some_and(valid_id);
            match parse_line(line.as_bytes()) {
                Ok(Some((r, via))) => {
                    prop_assert!(loadable, "loaded {line:?}");
                    prop_assert_eq!(r.json.as_str(), line.trim_end_matches('\r').trim());
                    let reparsed: Value = serde_json::from_str(&r.json).expect("stored JSON parses");
                    prop_assert_eq!(&reparsed, &value);
                    prop_assert_eq!(Some(r.resource_type.as_str()), ty);
                    prop_assert_eq!(Some(r.id.as_str()), id);
                    if r.resource_type == "Patient" {
                        prop_assert!(r.patient_ids.iter().any(|p| Some(p.as_str()) == id));
                    }
                    if !bulk_core::ResourceType::all_r4().any(|t| t.as_str() == r.resource_type && t.in_patient_compartment()) {
                        prop_assert!(r.patient_ids.is_empty(), "{} placed in {:?}", r.resource_type, r.patient_ids);
                    }
                    if via.is_some() {
                        prop_assert_eq!(r.resource_type.as_str(), "Provenance");
                        prop_assert!(r.patient_ids.is_empty());
                    }
                }
                Ok(None) => prop_assert!(false, "a resource line is not blank: {line:?}"),
                Err(message) => {
                    prop_assert!(!loadable, "refused {line:?}: {message}");
                    assert_known_reason(&message)?;
                }
            }
        }

        #[test]
        fn load_lines_stores_each_good_line_as_given_and_reports_each_bad_one_by_number(
            lines in prop::collection::vec(any_line(), 0..40),
        ) {
            // The loader splits on `\n`, so a line with one inside is several lines.
            let lines: Vec<Vec<u8>> =
                lines.iter().flat_map(|l| l.split(|b| *b == b'\n').map(<[u8]>::to_vec)).collect();
            let input = lines.join(&b'\n');
            let store = Recorder::default();
            let mut report = LoadReport::default();
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            rt.block_on(load_lines(&store, "props.ndjson", input.as_slice(), &mut report)).expect("fake store never fails");
            let stored = store.0.into_inner().expect("not poisoned");

            let mut want_stored = Vec::new();
            let mut want_errors = Vec::new();
            for (n, line) in lines.iter().enumerate() {
                match parse_line(line) {
                    Ok(Some(_)) => want_stored.push(stored_text(line).expect("UTF-8").to_owned()),
                    Ok(None) => {}
                    Err(_) => want_errors.push(n as u64 + 1),
                }
            }
            prop_assert_eq!(report.loaded, stored.len() as u64);
            prop_assert_eq!(stored.iter().map(|r| r.json.clone()).collect::<Vec<_>>(), want_stored);
            prop_assert_eq!(report.errors.iter().map(|e| e.line).collect::<Vec<_>>(), want_errors);
            for r in &stored {
                prop_assert!(!r.json.contains('\n'), "a stored resource spans lines: {:?}", r.json);
            }
            for e in &report.errors {
                prop_assert_eq!(e.file.as_str(), "props.ndjson");
                assert_known_reason(&e.message)?;
            }
        }
    }
}
