//! `fhir-bulk cid FILE...`: the CID Kubo would give each file, computed locally.

use std::process::ExitCode;

use anyhow::Context;
use bulk_content::CidBuilder;
use tokio::io::AsyncReadExt;

/// Arguments of `cid`.
#[derive(Debug, clap::Args)]
pub(crate) struct CidArgs {
    /// Files to hash.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

/// Prints `CID  FILE` for each file, reading each in 256 KiB pieces.
pub(crate) async fn run(args: CidArgs) -> anyhow::Result<ExitCode> {
    for path in &args.files {
        let mut file = tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?;
        let mut cid = CidBuilder::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await.with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            cid.update(&buf[..n]);
        }
        println!("{}  {}", cid.finish(), path.display());
    }
    Ok(ExitCode::SUCCESS)
}
