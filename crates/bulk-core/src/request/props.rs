//! Property tests of the parent module: whatever the client sends, `parse`
//! answers without panicking, accepts exactly what the README documents, and
//! never echoes input it should not.
//!
//! The model below knows each generated value's meaning from a labelled
//! table (it does not parse), and applies the documented rules in the
//! documented order: the caller's level, then each parameter (query before
//! body), then the checks across parameters.

use proptest::prelude::*;

use super::*;

mod model;

use model::*;

/// Longest diagnostic we accept: the client's echo is capped at 64 characters.
const MAX_MESSAGE_CHARS: usize = 300;

fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::sample::select(vec![
            ',', ' ', '\t', '\n', '\r', '\0', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}',
            '\u{2028}', '\u{202e}', '\u{feff}', '%', '&', '=', '+', '/', '?', '\'', '"', '\\', 'é', '患',
        ]),
        3 => prop::char::range('A', 'z'),
    ]
}

fn nasty_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..max).prop_map(String::from_iter)
}

fn type_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => prop::sample::select(POOL.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(POOL.to_vec()).prop_map(|t| format!(" {t}\t")),
        1 => prop::sample::select(vec!["patient", "Condition", "Patient/1", "*", ""]).prop_map(str::to_owned),
    ]
}

fn gen() -> impl Strategy<Value = Gen> {
    let some_of = |n: usize| prop::collection::vec(prop::option::weighted(0.9, 0..n), 1..4);
    prop_oneof![
        4 => prop::collection::vec(type_entry(), 1..4).prop_map(Gen::Types),
        1 => prop::sample::select(vec!["ndjson", "application/ndjson", "application/fhir+ndjson", "text/csv", ""])
            .prop_map(|f| Gen::Format(f.into())),
        1 => (0..INSTANTS.len()).prop_map(Gen::Since),
        1 => (0..INSTANTS.len()).prop_map(Gen::Until),
        2 => prop::collection::vec(0..QUERIES.len(), 1..3).prop_map(Gen::Filters),
        1 => some_of(ELEMENTS.len()).prop_map(Gen::Elements),
        1 => (0..PATIENTS.len()).prop_map(Gen::Patient),
        1 => some_of(ASSOCIATED.len()).prop_map(Gen::Associated),
        1 => (prop::sample::select(vec!["_count", "_TYPE", "type", "_foo"]), nasty_string(10))
            .prop_map(|(n, v)| Gen::Other(n.into(), v)),
    ]
}

fn level() -> impl Strategy<Value = ExportLevel> {
    prop_oneof![Just(ExportLevel::System), Just(ExportLevel::Patient), Just(ExportLevel::Group("g1".into()))]
}

fn principal() -> impl Strategy<Value = Principal> {
    let granted = prop::option::weighted(0.3, prop::sample::subsequence(POOL.to_vec(), 0..=POOL.len()))
        .prop_map(|g| g.map(|names| names.into_iter().map(rt).collect::<Vec<_>>()));
    prop_oneof![
        4 => granted.prop_map(|granted_types| Principal { granted_types, ..Principal::admin("admin") }),
        2 => Just(Principal::patient("user-p1", "p1")),
        1 => Just(Principal { patient_id: None, ..Principal::patient("nobody", "") }),
    ]
}

fn exportable() -> impl Strategy<Value = Vec<ResourceType>> {
    prop::sample::subsequence(POOL.to_vec(), 1..=POOL.len()).prop_map(|v| v.into_iter().map(rt).collect())
}

fn assert_clean_message(err: &RequestError) -> Result<(), TestCaseError> {
    let msg = err.to_string();
    prop_assert!(!msg.chars().any(char::is_control), "control character in {msg:?}");
    prop_assert!(msg.chars().count() <= MAX_MESSAGE_CHARS, "{} chars: {msg:?}", msg.chars().count());
    prop_assert!(!msg.is_empty());
    Ok(())
}

fn opts(exportable: &[ResourceType], lenient: bool) -> ParseOptions<'_> {
    ParseOptions { exportable, lenient, now: OffsetDateTime::now_utc() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_answers_what_the_documented_rules_say(
        level in level(),
        query in prop::collection::vec(gen(), 0..6),
        body in prop::collection::vec(gen(), 0..3),
        who in principal(),
        exportable in exportable(),
        lenient in any::<bool>(),
    ) {
        let pairs = |g: &[Gen]| g.iter().map(Gen::pair).collect::<Vec<_>>();
        let url = "http://x/fhir/r4/$export".to_owned();
        let result = ExportRequest::parse(level.clone(), &pairs(&query), &pairs(&body), &who, url.clone(), &opts(&exportable, lenient));
        let want = model(&level, &query, &body, &who, &exportable, lenient);
        match &result {
            Ok(r) => {
                prop_assert_eq!(summary(r), want, "query {:?} body {:?}", query, body);
                prop_assert_eq!(&r.level, &level);
                prop_assert_eq!(&r.request_url, &url);
                let scope = (who.role == Role::Patient).then(|| who.patient_id.clone()).flatten();
                prop_assert_eq!(&r.patient_scope, &scope);
                prop_assert!(r.types.iter().all(|t| exportable.contains(t) && who.may_read(*t)));
                prop_assert!(level == ExportLevel::System || r.types.iter().all(|t| t.in_patient_compartment()));
                prop_assert!(lenient || r.ignored.is_empty());
                let json = serde_json::to_string(r).expect("serialise");
                prop_assert_eq!(&serde_json::from_str::<ExportRequest>(&json).expect("deserialise"), r);
            }
            Err(e) => {
                prop_assert_eq!(kind(e), want, "query {:?} body {:?}", query, body);
                assert_clean_message(e)?;
            }
        }
    }

    #[test]
    fn arbitrary_names_and_values_never_panic_and_refusals_stay_printable(
        level in level(),
        params in prop::collection::vec((nasty_string(40), nasty_string(200)), 0..6),
        known in prop::sample::select(vec![
            "_type", "_outputFormat", "_since", "_until", "_typeFilter", "_elements", "patient", "includeAssociatedData",
        ]),
        value in nasty_string(5000),
        lenient in any::<bool>(),
    ) {
        let admin = Principal::admin("admin");
        let o = opts(&ResourceType::DEFAULT_EXPORTABLE, lenient);
        let mut with_known = params.clone();
        with_known.push((known.to_owned(), value.clone()));
        for (query, body) in [(params.clone(), vec![]), (with_known.clone(), vec![]), (vec![], with_known)] {
            match ExportRequest::parse(level.clone(), &query, &body, &admin, String::new(), &o) {
                Err(e) => assert_clean_message(&e)?,
                Ok(r) => {
                    prop_assert!(!r.types.is_empty());
                    for line in &r.ignored {
                        prop_assert!(!line.chars().any(char::is_control) && line.chars().count() <= MAX_MESSAGE_CHARS + 9);
                    }
                }
            }
        }
    }

    #[test]
    fn a_patient_user_is_always_forbidden_a_system_or_group_export(
        params in prop::collection::vec((nasty_string(20), nasty_string(20)), 0..6),
        patient_id in prop::option::of(nasty_string(20)),
        group in any::<bool>(),
    ) {
        let who = Principal { patient_id, ..Principal::patient("u", "") };
        let level = if group { ExportLevel::Group("g".into()) } else { ExportLevel::System };
        let result = ExportRequest::parse(level, &params, &params, &who, String::new(), &ParseOptions::default());
        prop_assert_eq!(result, Err(RequestError::Forbidden));
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
    let r = ExportRequest::parse(ExportLevel::System, &params, &[], &admin, String::new(), &ParseOptions::default())
        .expect("valid");
    assert_eq!(r.types, ResourceType::DEFAULT_EXPORTABLE.to_vec());
}

#[test]
fn a_type_list_over_the_length_cap_is_invalid_even_if_every_entry_is_supported() {
    let value = vec!["Patient"; params::MAX_LIST_PARAM_LEN / 8 + 1].join(",");
    assert!(value.len() > params::MAX_LIST_PARAM_LEN);
    let admin = Principal::admin("admin");
    let q = [("_type".to_owned(), value)];
    let err = ExportRequest::parse(ExportLevel::System, &q, &[], &admin, String::new(), &ParseOptions::default())
        .expect_err("too long");
    assert!(matches!(err, RequestError::Invalid(m) if m.contains("too long")));
}
