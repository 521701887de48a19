//! `fhir-bulk seed --patients N`: deterministic synthetic data.

use std::process::ExitCode;

use anyhow::Context;
use bulk_core::settings::Settings;
use bulk_resources::SeedSpec;

/// Arguments of `seed`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Patients get the ids seed-p0000000, seed-p0000001, ...; each has the given number of
DocumentReferences, one Consent and one Provenance, all in its compartment. The same
arguments always write the same resources, and they are upserted by (type, id), so
seeding again rewrites rather than duplicates them.")]
pub(crate) struct SeedArgs {
    /// Number of patients to write.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    patients: u32,
    /// DocumentReferences per patient.
    #[arg(long, value_name = "D", default_value_t = SeedSpec::default().documents_per_patient)]
    documents_per_patient: u32,
}

/// Writes the synthetic resources and says how many.
pub(crate) async fn run(args: SeedArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let spec = SeedSpec { patients: args.patients, documents_per_patient: args.documents_per_patient };
    let store = bulk_resources::open(&settings.resources).await.context("opening the resource store")?;
    let written = bulk_resources::seed(store.as_ref(), spec).await.context("seeding resources")?;
    println!("seeded {} patients: {written} resources written", spec.patients);
    Ok(ExitCode::SUCCESS)
}
