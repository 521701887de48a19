//! `fhir-bulk load PATH...`: FHIR NDJSON into the resource store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bulk_core::settings::Settings;
use bulk_resources::{LineError, LoadReport};

/// Exit status when some lines were rejected and the rest loaded.
const SOME_REJECTED: u8 = 2;

/// Arguments of `load`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each line must be one FHIR resource with a resourceType and a valid id; resources
are upserted by (type, id), so loading the same files again is harmless. A
malformed line is reported as FILE:LINE: message on stderr (never its content)
and the rest still loads. Any FHIR R4 type loads; each resource is placed in the
compartments of the patients it references (R4 Patient CompartmentDefinition).
Files whose name starts with Provenance load last, so a Provenance can be placed
in the compartments of the patients its targets belong to.

Exit status: 0 all lines loaded; 2 some lines rejected (the rest loaded);
1 fatal error (resources written before it stay written).")]
pub(crate) struct LoadArgs {
    /// `.ndjson` or `.ndjson.gz` files, or directories whose `*.ndjson` and
    /// `*.ndjson.gz` files are loaded (not recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Loads the files and reports what was loaded and what was rejected.
pub(crate) async fn run(args: LoadArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    // Checked up front so a mistyped path fails before anything is written,
    // rather than after the files before it were loaded.
    if let Some(missing) = args.paths.iter().find(|p| !p.exists()) {
        anyhow::bail!("{}: no such file or directory", missing.display());
    }
    let store = bulk_resources::open(&settings.resources).await.context("opening the resource store")?;
    let report = bulk_resources::load_files(store.as_ref(), &args.paths).await.context("loading resources")?;
    for e in &report.errors {
        eprintln!("{}", line_error(e));
    }
    println!("loaded {} resources", report.loaded);
    let status = exit_status(&report);
    if status != 0 {
        eprintln!("{} lines rejected", report.errors.len());
    }
    Ok(ExitCode::from(status))
}

/// `FILE:LINE: message`, the form editors and CI logs link to.
fn line_error(e: &LineError) -> String {
    format!("{}:{}: {}", e.file, e.line, e.message)
}

/// `0` when every line loaded, else `SOME_REJECTED`.
fn exit_status(report: &LoadReport) -> u8 {
    if report.errors.is_empty() {
        0
    } else {
        SOME_REJECTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(line: u64) -> LineError {
        LineError { file: "data/Patient.ndjson".into(), line, message: "no id".into() }
    }

    #[test]
    fn a_rejected_line_is_reported_as_file_colon_line_colon_message() {
        assert_eq!(line_error(&rejected(7)), "data/Patient.ndjson:7: no id");
    }

    #[test]
    fn a_clean_load_exits_0_and_a_load_with_rejected_lines_exits_2() {
        assert_eq!(exit_status(&LoadReport { loaded: 10, errors: vec![] }), 0);
        assert_eq!(exit_status(&LoadReport { loaded: 10, errors: vec![rejected(3)] }), 2);
        assert_eq!(exit_status(&LoadReport { loaded: 0, errors: vec![rejected(1), rejected(2)] }), 2);
    }
}
