//! The command line: one file per subcommand.

mod cid;
mod delete;
mod dev;
mod jobs;
mod load;
mod seed;
mod serve;
mod token;

use std::process::ExitCode;

use bulk_core::settings::Settings;
use clap::{Parser, Subcommand};

/// `fhir-bulk`: run the service in one process, load data, mint development tokens.
#[derive(Debug, Parser)]
#[command(
    name = "fhir-bulk",
    version,
    about = "Operator tool for fhir-bulk, a FHIR R4 Bulk Data $export service",
    after_help = "\
Settings come from built-in defaults, then the TOML file named by BULK_CONFIG,
then BULK__SECTION__KEY environment variables (e.g. BULK__RESOURCES__KIND=postgres
BULK__RESOURCES__URL=postgres://...). Logs go to stderr (RUST_LOG, default warn).

Exit status: 0 success; 1 error; 2 `load` rejected some lines (the rest loaded)."
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Load FHIR NDJSON files into the resource store.
    Load(load::LoadArgs),
    /// Mark resources deleted (tombstones that exports with _since report).
    Delete(delete::DeleteArgs),
    /// Write deterministic synthetic patients into the resource store.
    Seed(seed::SeedArgs),
    /// Print a signed HS256 bearer token (development and demos only).
    ///
    /// The token is a JWT signed with HS256 and the configured shared secret,
    /// auth.hs256_secret (BULK__AUTH__HS256_SECRET).
    ///
    /// For development and demos only: whoever holds the shared secret can mint a
    /// token for any user, patient or admin. In production, tokens come from your
    /// identity provider, signed with its private key, and the services are given
    /// only its public key (auth.public_key_pem or auth.public_key_file).
    Token(token::TokenArgs),
    /// Run the API and workers in one process on the configured backends.
    Serve(serve::ServeArgs),
    /// Run the whole service on embedded backends with demo data and a development key (`make run`).
    Dev(dev::DevArgs),
    /// Operator commands on jobs: list, show, cancel, dead letters, re-queue.
    Jobs(jobs::JobsArgs),
    /// Print the CID Kubo would give each file (CIDv0, 256 KiB chunks), computed locally.
    Cid(cid::CidArgs),
}

impl Command {
    /// Long-running commands log at `info` to stdout like the other binaries;
    /// the rest log warnings to stderr so their stdout is only their result.
    pub(crate) fn is_server(&self) -> bool {
        matches!(self, Command::Serve(_) | Command::Dev(_))
    }

    /// Runs the subcommand; `Err` means exit status 1.
    pub(crate) async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        match self {
            Command::Load(args) => load::run(args, settings).await,
            Command::Seed(args) => seed::run(args, settings).await,
            Command::Delete(args) => delete::run(args, settings).await,
            Command::Token(args) => token::run(&args, settings),
            Command::Serve(args) => serve::run(args, settings).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Cid(args) => cid::run(args).await,
            Command::Jobs(args) => jobs::run(args, settings).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
