//! Tests of the parent module.

use super::*;

fn admin() -> Principal {
    Principal::admin("admin")
}

fn patient(id: &str) -> Principal {
    Principal::patient(format!("user-{id}"), id)
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn parse(level: ExportLevel, pairs: &[(&str, &str)], who: &Principal) -> Result<ExportRequest, RequestError> {
    ExportRequest::parse(level, &q(pairs), who, "http://x/fhir/r4/Patient/$export".into())
}

#[test]
fn no_type_parameter_means_every_supported_type() {
    let r = parse(ExportLevel::Patient, &[], &admin()).expect("valid");
    assert_eq!(r.types, ResourceType::DEFAULT_EXPORTABLE.to_vec());
}

#[test]
fn repeated_and_comma_separated_types_are_merged_without_duplicates() {
    let r = parse(
        ExportLevel::Patient,
        &[("_type", "Consent,Patient"), ("_type", "Patient"), ("_type", "Provenance")],
        &admin(),
    )
    .expect("valid");
    assert_eq!(r.types, vec![ResourceType::CONSENT, ResourceType::PATIENT, ResourceType::PROVENANCE]);
}

#[test]
fn an_unknown_type_is_invalid_and_named_in_the_message() {
    let err = parse(ExportLevel::System, &[("_type", "Patient,Observation")], &admin()).expect_err("invalid");
    assert!(matches!(&err, RequestError::Invalid(m) if m.contains("Observation")), "{err:?}");
}

#[test]
fn empty_type_entries_are_invalid() {
    assert!(parse(ExportLevel::System, &[("_type", "Patient,,Consent")], &admin()).is_err());
    assert!(parse(ExportLevel::System, &[("_type", "")], &admin()).is_err());
}

#[test]
fn an_unknown_parameter_is_not_silently_ignored() {
    let err = parse(ExportLevel::System, &[("_foo", "1")], &admin()).expect_err("refused");
    assert!(matches!(err, RequestError::NotSupported(m) if m.contains("_foo")));
}

#[test]
fn the_three_ndjson_output_format_spellings_are_accepted_and_others_refused() {
    for f in NDJSON_FORMATS {
        assert!(parse(ExportLevel::System, &[("_outputFormat", f)], &admin()).is_ok(), "{f}");
    }
    assert!(parse(ExportLevel::System, &[("_outputFormat", "text/csv")], &admin()).is_err());
}

#[test]
fn a_patient_user_is_scoped_to_their_own_compartment() {
    let r = parse(ExportLevel::Patient, &[], &patient("p7")).expect("valid");
    assert_eq!(r.patient_scope.as_deref(), Some("p7"));
}

#[test]
fn a_patient_user_may_not_start_a_system_export() {
    assert_eq!(parse(ExportLevel::System, &[], &patient("p7")), Err(RequestError::Forbidden));
}

#[test]
fn control_characters_in_input_are_not_echoed() {
    let err = parse(ExportLevel::System, &[("_type", "Pat\u{1b}[31mient")], &admin()).expect_err("invalid");
    assert!(!format!("{err}").contains('\u{1b}'));
}

/// Property tests: whatever the client sends, `parse` answers without
/// panicking, accepts exactly what the README documents, and never echoes
/// input it should not.
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Longest diagnostic we accept: the client's echo is capped at 64 characters.
    const MAX_MESSAGE_CHARS: usize = 300;

    /// Characters that stress the parser: separators, whitespace, controls,
    /// bidi overrides, non-ASCII letters, and anything at all.
    fn nasty_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => any::<char>(),
            2 => prop::sample::select(vec![
                ',', ' ', '\t', '\n', '\r', '\0', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}',
                '\u{2028}', '\u{202e}', '\u{feff}', '%', '&', '=', '+', '/', '\'', '"', '\\', 'é', '患',
            ]),
            3 => prop::char::range('A', 'z'),
        ]
    }

    fn nasty_string(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(nasty_char(), 0..max).prop_map(String::from_iter)
    }

    /// One `_type` entry: a supported name (maybe padded), a near miss, or junk.
    fn type_entry() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(ResourceType::DEFAULT_EXPORTABLE.to_vec()).prop_map(|t| t.as_str().to_owned()),
            1 => prop::sample::select(ResourceType::DEFAULT_EXPORTABLE.to_vec()).prop_map(|t| format!(" {t}\t")),
            1 => prop::sample::select(vec![
                "patient", "PATIENT", "Observation", "Patient\0", "Pat ient", "Patient/1", "*", "Group", "",
            ])
            .prop_map(str::to_owned),
            1 => nasty_string(12),
        ]
    }

    /// A `_type` value: a comma-separated list, free text, or something very long.
    fn type_value() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::collection::vec(type_entry(), 0..6).prop_map(|v| v.join(",")),
            2 => nasty_string(40),
            1 => (1usize..1500, prop::sample::select(ResourceType::DEFAULT_EXPORTABLE.to_vec()))
                .prop_map(|(n, t)| vec![t.as_str(); n].join(",")),
            1 => (4000usize..9000).prop_map(|n| "\u{1b}A,".repeat(n / 3)),
        ]
    }

    fn output_format() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(NDJSON_FORMATS.to_vec()).prop_map(str::to_owned),
            1 => prop::sample::select(vec![
                "application/fhir ndjson", "NDJSON", "text/csv", "application/fhir+ndjson ", "",
            ])
            .prop_map(str::to_owned),
            1 => nasty_string(30),
        ]
    }

    fn param() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            5 => type_value().prop_map(|v| ("_type".to_owned(), v)),
            2 => output_format().prop_map(|v| ("_outputFormat".to_owned(), v)),
            1 => (
                prop::sample::select(vec![
                    "_since", "_typeFilter", "_elements", "patient", "_TYPE", "_type ", " _type", "type", "",
                    "_outputformat", "_type\0",
                ]),
                nasty_string(20),
            )
                .prop_map(|(n, v)| (n.to_owned(), v)),
            1 => (nasty_string(100), nasty_string(100)),
            1 => (3000usize..8000).prop_map(|n| ("\u{1b}".repeat(n), "x".repeat(n))),
        ]
    }

    fn params() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(param(), 0..6)
    }

    fn level() -> impl Strategy<Value = ExportLevel> {
        prop_oneof![1 => Just(ExportLevel::System), 2 => Just(ExportLevel::Patient)]
    }

    fn principal() -> impl Strategy<Value = Principal> {
        prop_oneof![
            4 => Just(Principal::admin("admin")),
            3 => nasty_string(20).prop_map(|p| Principal::patient(format!("user-{p}"), p)),
            1 => Just(Principal { patient_id: None, ..Principal::patient("nobody", "") }),
        ]
    }

    /// What the README promises, written independently of the parser:
    /// `Ok(types)` or the kind of refusal for the first bad parameter.
    #[derive(Debug, PartialEq, Eq)]
    enum Expected {
        Types(Vec<ResourceType>),
        Invalid,
        NotSupported,
    }

    fn expected(params: &[(String, String)]) -> Expected {
        let mut types = Vec::new();
        let mut saw_type = false;
        for (name, value) in params {
            if name == "_type" {
                saw_type = true;
                if value.len() > MAX_TYPE_PARAM_LEN {
                    return Expected::Invalid;
                }
                for entry in value.split(',') {
                    match ResourceType::DEFAULT_EXPORTABLE.into_iter().find(|t| t.as_str() == entry.trim()) {
                        Some(t) if !types.contains(&t) => types.push(t),
                        Some(_) => {}
                        None => return Expected::Invalid,
                    }
                }
            } else if name == "_outputFormat" {
                if !NDJSON_FORMATS.contains(&value.as_str()) {
                    return Expected::Invalid;
                }
            } else {
                return Expected::NotSupported;
            }
        }
        Expected::Types(if saw_type { types } else { ResourceType::DEFAULT_EXPORTABLE.to_vec() })
    }

    fn assert_clean_message(err: &RequestError) -> Result<(), TestCaseError> {
        let msg = err.to_string();
        prop_assert!(!msg.chars().any(char::is_control), "control character in {msg:?}");
        prop_assert!(msg.chars().count() <= MAX_MESSAGE_CHARS, "{} chars: {msg:?}", msg.chars().count());
        prop_assert!(!msg.is_empty());
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_exactly_the_documented_parameters(
            level in level(),
            params in params(),
            who in principal(),
        ) {
            let url = "http://x/fhir/r4/$export".to_owned();
            let result = ExportRequest::parse(level.clone(), &params, &who, url.clone());
            match (&who.role, &level, &who.patient_id) {
                (Role::Patient, ExportLevel::System, _) | (Role::Patient, _, None) => {
                    prop_assert_eq!(&result, &Err(RequestError::Forbidden));
                }
                _ => {
                    match (&result, expected(&params)) {
                        (Ok(r), Expected::Types(types)) => {
                            prop_assert_eq!(&r.types, &types);
                            prop_assert_eq!(&r.level, &level);
                            prop_assert_eq!(&r.request_url, &url);
                            let scope = match who.role {
                                Role::Admin => None,
                                Role::Patient => who.patient_id.clone(),
                            };
                            prop_assert_eq!(&r.patient_scope, &scope);
                        }
                        (Err(RequestError::Invalid(_)), Expected::Invalid)
                        | (Err(RequestError::NotSupported(_)), Expected::NotSupported) => {}
                        (got, want) => prop_assert!(false, "got {got:?}, expected {want:?} for {params:?}"),
                    }
                }
            }
            match &result {
                Ok(r) => {
                    // Ok only if every parameter is one of the two we support, with an allowed value.
                    for (name, value) in &params {
                        prop_assert!(name == "_type" || name == "_outputFormat", "accepted {name:?}");
                        if name == "_outputFormat" {
                            prop_assert!(NDJSON_FORMATS.contains(&value.as_str()), "accepted format {value:?}");
                        } else {
                            for entry in value.split(',') {
                                prop_assert!(entry.trim().parse::<ResourceType>().is_ok(), "accepted {entry:?}");
                            }
                        }
                    }
                    // Types are supported and without duplicates.
                    prop_assert!(!r.types.is_empty());
                    for (i, t) in r.types.iter().enumerate() {
                        prop_assert!(ResourceType::DEFAULT_EXPORTABLE.contains(t));
                        prop_assert!(!r.types[..i].contains(t), "duplicate {t} in {:?}", r.types);
                    }
                }
                Err(e) => assert_clean_message(e)?,
            }
        }

        #[test]
        fn well_formed_requests_are_accepted_with_types_merged_in_first_seen_order(
            lists in prop::collection::vec(
                prop::collection::vec(prop::sample::select(ResourceType::DEFAULT_EXPORTABLE.to_vec()), 1..6),
                0..5,
            ),
            formats in prop::collection::vec(prop::sample::select(NDJSON_FORMATS.to_vec()), 0..3),
        ) {
            let mut params: Vec<(String, String)> = formats
                .iter()
                .map(|f| ("_outputFormat".to_owned(), (*f).to_owned()))
                .collect();
            let mut want: Vec<ResourceType> = Vec::new();
            for list in &lists {
                let names: Vec<&str> = list.iter().map(|t| t.as_str()).collect();
                params.push(("_type".to_owned(), names.join(",")));
                for t in list {
                    if !want.contains(t) {
                        want.push(*t);
                    }
                }
            }
            if lists.is_empty() {
                want = ResourceType::DEFAULT_EXPORTABLE.to_vec();
            }
            let admin = Principal::admin("admin");
            let r = ExportRequest::parse(ExportLevel::Patient, &params, &admin, String::new());
            prop_assert_eq!(r.map(|r| r.types), Ok(want));
        }

        #[test]
        fn a_patient_user_is_always_forbidden_a_system_export(
            params in params(),
            patient_id in prop::option::of(nasty_string(20)),
        ) {
            let who = Principal { patient_id, ..Principal::patient("u", "") };
            let result = ExportRequest::parse(ExportLevel::System, &params, &who, String::new());
            prop_assert_eq!(result, Err(RequestError::Forbidden));
        }

        #[test]
        fn refusals_of_arbitrary_names_and_values_are_bounded_and_printable(
            name in nasty_string(5000),
            value in nasty_string(5000),
        ) {
            let admin = Principal::admin("admin");
            for p in [
                vec![(name.clone(), value.clone())],
                vec![("_type".to_owned(), value.clone())],
                vec![("_outputFormat".to_owned(), value.clone())],
                vec![("_type".to_owned(), format!("Patient,{value}"))],
            ] {
                if let Err(e) = ExportRequest::parse(ExportLevel::Patient, &p, &admin, String::new()) {
                    assert_clean_message(&e)?;
                }
            }
        }
    }

    #[test]
    fn thousands_of_repeated_type_parameters_are_merged_into_the_four_types() {
        let params: Vec<(String, String)> = ResourceType::DEFAULT_EXPORTABLE
            .iter()
            .cycle()
            .take(5000)
            .map(|t| ("_type".to_owned(), t.to_string()))
            .collect();
        let admin = Principal::admin("admin");
        let r = ExportRequest::parse(ExportLevel::System, &params, &admin, String::new()).expect("valid");
        assert_eq!(r.types, ResourceType::DEFAULT_EXPORTABLE.to_vec());
    }

    #[test]
    fn a_type_list_over_the_length_cap_is_invalid_even_if_every_entry_is_supported() {
        let value = vec!["Patient"; MAX_TYPE_PARAM_LEN / 8 + 1].join(",");
        assert!(value.len() > MAX_TYPE_PARAM_LEN);
        let admin = Principal::admin("admin");
        let err = ExportRequest::parse(ExportLevel::System, &[("_type".to_owned(), value)], &admin, String::new())
            .expect_err("too long");
        assert!(matches!(err, RequestError::Invalid(m) if m.contains("too long")));
    }
}
