//! `fhir-bulk delete Type/id...`: tombstone resources in the resource store.

use std::process::ExitCode;

use anyhow::Context;
use bulk_core::settings::Settings;
use bulk_core::ResourceType;

/// Arguments of `delete`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A deleted resource is no longer exported, but its row stays as a tombstone
(with the time of deletion) so that an export with _since lists it in the
manifest's `deleted` array. Loading the resource again brings it back. Deleting
an absent or already deleted resource changes nothing.")]
pub(crate) struct DeleteArgs {
    /// Resources to delete, as `Type/id` (e.g. `Observation/obs-1`).
    #[arg(required = true, value_name = "TYPE/ID", value_parser = parse_ref)]
    resources: Vec<(String, String)>,
}

/// `Type/id` with an R4 type and a valid FHIR id.
fn parse_ref(s: &str) -> Result<(String, String), String> {
    let (t, id) = s.split_once('/').ok_or("expected Type/id")?;
    t.parse::<ResourceType>().map_err(|_| format!("{t:?} is not a FHIR R4 resource type"))?;
    let valid_id =
        (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid_id {
        return Err(format!("{id:?} is not a valid FHIR id"));
    }
    Ok((t.to_owned(), id.to_owned()))
}

/// Marks the resources deleted and says how many were.
pub(crate) async fn run(args: DeleteArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = bulk_resources::open(&settings.resources).await.context("opening the resource store")?;
    let n = store.delete(&args.resources).await.context("deleting resources")?;
    let skipped = (args.resources.len() as u64).saturating_sub(n);
    println!("deleted {n} resources");
    if skipped > 0 {
        eprintln!("{skipped} were absent or already deleted");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_needs_an_r4_type_and_a_valid_id() {
        assert_eq!(parse_ref("Observation/o-1.2"), Ok(("Observation".into(), "o-1.2".into())));
        assert!(parse_ref("Observation").is_err());
        assert!(parse_ref("Observations/o1").is_err());
        assert!(parse_ref("Observation/").is_err());
        assert!(parse_ref("Observation/a/b").is_err());
        assert!(parse_ref("Observation/a b").is_err());
    }
}
