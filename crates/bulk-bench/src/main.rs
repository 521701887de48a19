#![doc = include_str!("../README.md")]

mod cpu;
mod export;
mod load;
mod procfs;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `bulk-bench`: the measuring half of `make bench`; `scripts/bench.sh` runs the processes.
#[derive(Debug, Parser)]
#[command(name = "bulk-bench", version, about = "Benchmark driver for fhir-bulk (used by scripts/bench.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time N concurrent system-level exports, kick-off to the last file downloaded.
    Export(export::ExportArgs),
    /// Run a load generator (wrk) while sampling a process's memory.
    Load(load::LoadArgs),
    /// Print the table and write the results JSON from a steps file.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Export(args) => export::run(args),
        Command::Load(args) => load::run(args),
        Command::Report(args) => report::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bulk-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
