//! What the fuzz targets check, shared with `replay` so a crash file can be
//! re-run without libFuzzer. Each function panics (a fuzzer "crash") when the
//! code under test panics or breaks one of its promises.

use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bulk_core::{
    ExportLevel, ExportRequest, ParseOptions, Principal, RequestError, ResourceType, Role, NDJSON_FORMATS,
};
use bulk_resources::{
    load_lines, LoadReport, NewResource, ResourceError, ResourceQuery, ResourceStore, StoredResource,
};
use serde_json::Value;
use time::OffsetDateTime;

/// Longest diagnostic a refusal may carry (client input is echoed at most 64 characters).
const MAX_MESSAGE_CHARS: usize = 300;

/// `data` is a query string: split into `name=value&…` pairs as the API does,
/// then parsed for every level, kind of caller and handling. When `data` is
/// also a JSON document it is tried as a POST `Parameters` body.
pub fn kickoff_parser(data: &[u8]) {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    let body = match bulk_core::parse_parameters(data) {
        Ok(pairs) => Some(pairs),
        Err(e) => {
            check_message(&e.to_string());
            None
        }
    };
    let callers = [Principal::admin("admin"), Principal::patient("user-p1", "p1")];
    let levels = [ExportLevel::System, ExportLevel::Patient, ExportLevel::Group("g1".into())];
    for who in &callers {
        for level in &levels {
            for lenient in [false, true] {
                let opts = ParseOptions { lenient, ..ParseOptions::default() };
                let url = "http://x/fhir/r4/$export".to_owned();
                let mut inputs = vec![(params.clone(), Vec::new())];
                if let Some(body) = &body {
                    inputs.push((Vec::new(), body.clone()));
                }
                for (query, body) in inputs {
                    let result = ExportRequest::parse(level.clone(), &query, &body, who, url.clone(), &opts);
                    if who.role == Role::Patient && *level != ExportLevel::Patient {
                        assert_eq!(result, Err(RequestError::Forbidden), "patient {level:?} export not forbidden");
                        continue;
                    }
                    match result {
                        Ok(r) => check_accepted(&r, query.iter().chain(&body), lenient),
                        Err(e) => check_message(&e.to_string()),
                    }
                }
            }
        }
    }
}

/// The parameters the README documents.
const KNOWN: [&str; 8] =
    ["_type", "_outputFormat", "_since", "_until", "_typeFilter", "_elements", "patient", "includeAssociatedData"];

fn check_accepted<'a>(r: &ExportRequest, params: impl Iterator<Item = &'a (String, String)>, lenient: bool) {
    for (name, value) in params {
        assert!(lenient || KNOWN.contains(&name.as_str()), "accepted parameter {name:?}");
        match name.as_str() {
            "_type" if !lenient => {
                for entry in value.split(',') {
                    let t = entry.trim().parse::<ResourceType>();
                    assert!(t.is_ok_and(|t| ResourceType::DEFAULT_EXPORTABLE.contains(&t)), "accepted {entry:?}");
                }
            }
            "_outputFormat" => assert!(NDJSON_FORMATS.contains(&value.as_str()), "accepted format {value:?}"),
            _ => {}
        }
    }
    assert!(lenient || r.ignored.is_empty(), "strict handling ignored something");
    assert!(!r.types.is_empty(), "no types");
    for (i, t) in r.types.iter().enumerate() {
        assert!(ResourceType::DEFAULT_EXPORTABLE.contains(t), "type {t} is not exportable");
        assert!(!r.types[..i].contains(t), "duplicate type {t}");
    }
    for line in &r.ignored {
        check_message(line.strip_prefix("Ignored: ").unwrap_or(line));
    }
    let json = serde_json::to_string(r).expect("a request serialises");
    assert_eq!(&serde_json::from_str::<ExportRequest>(&json).expect("and loads back"), r, "job record round trip");
}

fn check_message(msg: &str) {
    assert!(!msg.is_empty(), "empty diagnostic");
    assert!(!msg.chars().any(char::is_control), "control character in {msg:?}");
    assert!(msg.chars().count() <= MAX_MESSAGE_CHARS, "diagnostic too long: {} chars", msg.chars().count());
}

/// `data` is NDJSON input (usually one line): loaded into a store that only
/// records what it is given.
pub fn ndjson_line(data: &[u8]) {
    let store = Recorder::default();
    let mut report = LoadReport::default();
    block_on(load_lines(&store, "fuzz.ndjson", data, &mut report)).expect("the recording store never fails");
    let stored = store.0.into_inner().expect("not poisoned");
    assert_eq!(report.loaded, stored.len() as u64, "loaded count");

    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    // `split` yields one empty piece after a final `\n`; the loader sees no such line.
    let line_count = if data.ends_with(b"\n") { lines.len() - 1 } else { lines.len() };
    let mut errors = report.errors.iter().peekable();
    let mut stored_iter = stored.iter();
    for (i, line) in lines.iter().take(line_count).enumerate() {
        let n = i as u64 + 1;
        if errors.peek().is_some_and(|e| e.line == n) {
            let e = errors.next().expect("peeked");
            assert_eq!(e.file, "fuzz.ndjson");
            check_reason(&e.message);
            continue;
        }
        let text = std::str::from_utf8(line).expect("a line that is not UTF-8 is reported");
        let text = text.trim_start_matches('\u{feff}').trim_end_matches('\r').trim();
        if text.is_empty() {
            continue;
        }
        let r = stored_iter.next().expect("a line neither blank nor reported is stored");
        assert_eq!(r.json, text, "stored JSON is not the trimmed line {n}");
        let value: Value = serde_json::from_str(&r.json).expect("stored JSON parses");
        assert_eq!(value.get("resourceType").and_then(Value::as_str), Some(r.resource_type.as_str()));
        assert_eq!(value.get("id").and_then(Value::as_str), Some(r.id.as_str()));
        assert!(is_type_name(&r.resource_type), "bad type stored: {:?}", r.resource_type);
        assert!(is_fhir_id(&r.id), "bad id stored: {:?}", r.id);
    }
    assert!(errors.next().is_none(), "an error names a line that does not exist");
    assert!(stored_iter.next().is_none(), "more stored than lines");
}

/// A refusal names the problem, never the line's content (it may be patient data).
fn check_reason(message: &str) {
    const REASONS: [&str; 7] = [
        "contains a carriage return",
        "not valid UTF-8",
        "not a JSON object",
        "no resourceType",
        "resourceType is not a FHIR type name",
        "no id",
        "id is not a valid FHIR id",
    ];
    let json_column = message
        .strip_prefix("not valid JSON (column ")
        .and_then(|rest| rest.strip_suffix(')'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    assert!(json_column || REASONS.contains(&message), "unexpected reason {message:?}");
}

fn is_type_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len()) && b[0].is_ascii_uppercase() && b.iter().all(u8::is_ascii_alphabetic)
}

fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Drives a future that never waits (the recording store answers at once).
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the loader waited on something other than the recording store");
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
