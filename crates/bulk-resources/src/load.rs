//! Loading FHIR NDJSON (plain or gzip) into the store.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use bulk_core::ResourceType;
use serde_json::Value;

use crate::{compartment_of, Compartment, NewResource, ResourceError, ResourceStore};

/// A parsed resource, with the targets to resolve its compartment through (Provenance).
type Pending = (NewResource, Option<Vec<(String, String)>>);

/// Resources written per upsert statement.
const BATCH: usize = 1000;

/// A line that was not loaded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The file (or source name).
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it; never the line's content (it may be patient data).
    pub message: String,
}

/// What a load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Resources written.
    pub loaded: u64,
    /// Lines skipped, with reasons.
    pub errors: Vec<LineError>,
}

/// Loads every file in `paths` (directories are expanded to their
/// `*.ndjson` / `*.ndjson.gz` files, but for checksum lists). Provenance files go last, so the
/// resources they point at are already stored when their compartment is resolved.
pub async fn load_files(store: &dyn ResourceStore, paths: &[PathBuf]) -> Result<LoadReport, ResourceError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| input_err(p, e))?;
            for e in entries {
                let path = e.map_err(|e| input_err(p, e))?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ndjson = name.ends_with(".ndjson") || name.ends_with(".ndjson.gz");
                if ndjson && !is_checksum_list(name) {
                    files.push(path);
                }
            }
        } else {
            files.push(p.clone());
        }
    }
    files.sort_by_key(|p| {
        let provenance = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("Provenance"));
        (provenance, p.clone())
    });
    let mut report = LoadReport::default();
    for path in files {
        let file = File::open(&path).map_err(|e| input_err(&path, e))?;
        let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        load_lines(store, &path.display().to_string(), reader, &mut report).await?;
    }
    Ok(report)
}

/// A checksum list (`SHA256SUMS.ndjson`, `MD5SUMS.ndjson`, …), which by
/// convention sits next to the data files it checks and is not resources.
fn is_checksum_list(file_name: &str) -> bool {
    file_name.split('.').next().is_some_and(|stem| stem.ends_with("SUMS"))
}

fn input_err(path: &Path, source: std::io::Error) -> ResourceError {
    ResourceError::Input { path: path.display().to_string(), source }
}

/// Loads NDJSON lines from `reader`, reporting bad lines into `report` and
/// loading the rest. Fails only when the store fails or the input cannot be read.
pub async fn load_lines(
    store: &dyn ResourceStore,
    source: &str,
    reader: impl BufRead,
    report: &mut LoadReport,
) -> Result<(), ResourceError> {
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    for (n, line) in reader.split(b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let bytes = line.map_err(|e| ResourceError::Input { path: source.to_owned(), source: e })?;
        match parse_line(&bytes) {
            Ok(None) => {}
            Ok(Some(r)) => batch.push(r),
            Err(message) => report.errors.push(LineError { file: source.to_owned(), line: line_no, message }),
        }
        if batch.len() >= BATCH {
            report.loaded += flush(store, &mut batch).await?;
        }
    }
    report.loaded += flush(store, &mut batch).await?;
    Ok(())
}

/// Parses one line: `Ok(None)` for a blank line.
fn parse_line(bytes: &[u8]) -> Result<Option<Pending>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())?;
    // A byte-order mark (first line of some files) and a CRLF ending are not part of the resource.
    let text = text.trim_start_matches('\u{feff}').trim_end_matches('\r').trim();
    if text.is_empty() {
        return Ok(None);
    }
    // Stored byte for byte, the line becomes a line of an export file: a bare
    // carriage return inside it would split it for some NDJSON readers.
    if text.contains('\r') {
        return Err("contains a carriage return".into());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON (column {})", e.column()))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let resource_type = obj.get("resourceType").and_then(Value::as_str).ok_or("no resourceType")?;
    if resource_type.parse::<ResourceType>().is_err() {
        return Err("resourceType is not a FHIR R4 resource type".into());
    }
    let id = obj.get("id").and_then(Value::as_str).ok_or("no id")?;
    if !is_fhir_id(id) {
        return Err("id is not a valid FHIR id".into());
    }
    let (patient_ids, via) = match compartment_of(resource_type, &value) {
        Compartment::Patients(p) => (p, None),
        Compartment::ViaTargets(t) => (Vec::new(), Some(t)),
    };
    let resource =
        NewResource { resource_type: resource_type.to_owned(), id: id.to_owned(), patient_ids, json: text.to_owned() };
    Ok(Some((resource, via)))
}

/// Resolves compartments through targets (a target written earlier in the
/// batch by the batch, any other by the store) and writes the batch.
async fn flush(store: &dyn ResourceStore, batch: &mut Vec<Pending>) -> Result<u64, ResourceError> {
    if batch.is_empty() {
        return Ok(0);
    }
    // What the batch itself will write wins over what the store holds now.
    let local: HashMap<(String, String), Vec<String>> = batch
        .iter()
        .filter(|(_, via)| via.is_none())
        .map(|(r, _)| ((r.resource_type.clone(), r.id.clone()), r.patient_ids.clone()))
        .collect();
    let mut rows = Vec::with_capacity(batch.len());
    for (mut r, via) in batch.drain(..) {
        if let Some(targets) = via {
            let (known, unknown): (Vec<_>, Vec<_>) = targets.into_iter().partition(|t| local.contains_key(t));
            let mut patients: BTreeSet<String> = known.iter().filter_map(|t| local.get(t)).flatten().cloned().collect();
            if !unknown.is_empty() {
                patients.extend(store.patients_of(&unknown).await?);
            }
            r.patient_ids = patients.into_iter().collect();
        }
        rows.push(r);
    }
    store.upsert(&rows).await
}

/// FHIR `id`: `[A-Za-z0-9\-\.]{1,64}`.
fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests;
