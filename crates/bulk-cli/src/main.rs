#![doc = include_str!("../README.md")]

mod commands;
mod logging;

use std::process::ExitCode;

use bulk_core::settings::Settings;
use clap::Parser;

use crate::commands::Cli;

/// Exit status of anything that stops a command (usage, settings, store,
/// I/O); `2` is reserved for `load`'s "some lines were rejected".
const FAILURE: u8 = 1;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 1, not clap's 2, so a 2 from `load` always
            // means "loaded, but some lines were rejected".
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(FAILURE) } else { ExitCode::SUCCESS };
        }
    };
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fhir-bulk: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    if cli.command.is_server() {
        bulk_core::telemetry::init(&settings.telemetry.format);
    } else {
        logging::init(&settings.telemetry.format);
    }
    match cli.command.run(&settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fhir-bulk: error: {e:#}");
            ExitCode::from(FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use bulk_core::settings::Settings;

    /// `config/example.toml` documents the defaults; this keeps it honest.
    #[test]
    fn the_example_config_loads_and_matches_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
        let example = Settings::load_from(Some(path), Vec::new()).expect("config/example.toml loads");
        assert_eq!(format!("{example:?}"), format!("{:?}", Settings::default()));
    }
}
