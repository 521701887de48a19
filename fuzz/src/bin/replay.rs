//! Runs a fuzz target's checks over files, without libFuzzer:
//! `replay TARGET PATH...` (files, or directories of files). Used by
//! scripts/fuzz.sh when no nightly toolchain is available, and to re-run a crash.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let target: fn(&[u8]) = match args.next().as_deref() {
        Some("kickoff_parser") => fhir_bulk_fuzz::kickoff_parser,
        Some("ndjson_line") => fhir_bulk_fuzz::ndjson_line,
        _ => {
            eprintln!("usage: replay kickoff_parser|ndjson_line PATH...");
            return ExitCode::from(2);
        }
    };
    let mut files = Vec::new();
    for arg in args {
        collect(Path::new(&arg), &mut files);
    }
    files.sort();
    for file in &files {
        match std::fs::read(file) {
            Ok(data) => {
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    eprintln!("replay: CRASH on {}", file.display());
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("replay: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("replay: {} inputs, no crash", files.len());
    ExitCode::SUCCESS
}

fn collect(path: &Path, into: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for e in entries.flatten() {
                collect(&e.path(), into);
            }
        }
        Err(_) if path.is_file() => into.push(path.to_owned()),
        Err(_) => {}
    }
}
