//! `fhir-bulk dev` (what `make run` runs): the whole service in one process on
//! the embedded backends, with a development key, demo data, and a printed
//! curl flow. Nothing else to install: no Redis, PostgreSQL or IPFS daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bulk_core::settings::Settings;
use bulk_core::Role;
use bulk_resources::{PatientFilter, ResourceQuery, ResourceStore, SeedSpec};
use tokio_util::sync::CancellationToken;

use super::serve;
use super::token::mint;

/// Arguments of `dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// Where the database, the blobs and the development key live; reused by the next run.
    #[arg(long, default_value = bulk_core::settings::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Worker tasks beside the API.
    #[arg(long, default_value_t = 2)]
    pub workers: u16,
    /// Synthetic patients to seed into an empty store.
    #[arg(long, default_value_t = 20)]
    pub patients: u32,
    /// Directory of `*.ndjson.gz` sample data also loaded into an empty store, if present.
    #[arg(long, default_value = "../shared/data/synthea-100-r4")]
    pub sample_dir: PathBuf,
}

/// The development key is generated once and kept in the data directory; it
/// is used only by `dev`, never by `serve` or the split binaries.
const DEV_SECRET_FILE: &str = "dev-jwt-secret";

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let secret = dev_secret(&args.data_dir)?;
    let settings = dev_settings(&args.data_dir, &secret)?;

    let store = bulk_resources::open(&settings.resources).await.context("opening the resource store")?;
    seed_if_empty(store.as_ref(), &args).await?;

    let shutdown = CancellationToken::new();
    serve::cancel_on_signal(shutdown.clone());
    let running = serve::start(&settings, args.workers, shutdown).await?;
    print_banner(&settings, running.port)?;
    running.done.await??;
    eprintln!("fhir-bulk dev: stopped; data kept in {}", args.data_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Reads the development secret, creating it (32 random bytes, hex) on first run.
fn dev_secret(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(DEV_SECRET_FILE);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        if s.len() >= 32 {
            return Ok(s);
        }
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret)?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Embedded backends under `dir` and the development key, unless the
/// environment (or `BULK_CONFIG`) says otherwise.
fn dev_settings(dir: &Path, secret: &str) -> anyhow::Result<Settings> {
    let file = std::env::var_os("BULK_CONFIG").map(PathBuf::from);
    dev_settings_from(dir, secret, std::env::vars().collect(), file)
}

fn dev_settings_from(
    dir: &Path,
    secret: &str,
    env: Vec<(String, String)>,
    file: Option<PathBuf>,
) -> anyhow::Result<Settings> {
    let set = |section: &str| env.iter().any(|(k, _)| k.starts_with(&format!("BULK__{section}__")));
    let db = dir.join("fhir-bulk.db").display().to_string();
    let mut layered: Vec<(String, String)> = Vec::new();
    let mut default = |k: &str, v: &str| layered.push((k.to_owned(), v.to_owned()));
    if !set("QUEUE") {
        default("BULK__QUEUE__KIND", "sqlite");
        default("BULK__QUEUE__PATH", &db);
    }
    if !set("RESOURCES") {
        default("BULK__RESOURCES__KIND", "sqlite");
        default("BULK__RESOURCES__PATH", &db);
    }
    if !set("CONTENT") {
        default("BULK__CONTENT__KIND", "local");
        default("BULK__CONTENT__DIR", &dir.join("blobs").display().to_string());
    }
    if !set("AUTH") {
        default("BULK__AUTH__HS256_SECRET", secret);
    }
    layered.extend(env);
    Ok(Settings::load_from(file, layered)?)
}

async fn seed_if_empty(store: &dyn ResourceStore, args: &DevArgs) -> anyhow::Result<()> {
    let any_patient = ResourceQuery {
        resource_type: "Patient".into(),
        patients: PatientFilter::All,
        since: None,
        until: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    };
    if store.count(&any_patient).await? > 0 {
        eprintln!("fhir-bulk dev: reusing the data already in {}", args.data_dir.display());
        return Ok(());
    }
    let n = bulk_resources::seed(store, SeedSpec { patients: args.patients, documents_per_patient: 3 }).await?;
    eprintln!("fhir-bulk dev: seeded {} synthetic patients ({n} resources)", args.patients);
    if let Ok(entries) = std::fs::read_dir(&args.sample_dir) {
        let files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".ndjson.gz")))
            .collect();
        let report = bulk_resources::load_files(store, &files).await?;
        eprintln!(
            "fhir-bulk dev: loaded {} sample resources from {} ({} lines rejected)",
            report.loaded,
            args.sample_dir.display(),
            report.errors.len()
        );
    }
    Ok(())
}

fn print_banner(settings: &Settings, port: u16) -> anyhow::Result<()> {
    let base = settings.server.public_base_url.clone();
    let admin = mint(&settings.auth, "dev-admin", Role::Admin, None, 24 * 3600)?;
    let patient = mint(&settings.auth, "dev-patient", Role::Patient, Some("seed-p0000000"), 24 * 3600)?;
    let types = settings.export.types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",");
    println!(
        r#"
fhir-bulk is running (embedded mode: SQLite + local content store), API on port {port}.
  base URL       {base}
  admin token    {admin}
  patient token  {patient}   (patient seed-p0000000)
Development tokens, signed with the key in the data directory; valid 24 h. Ctrl-C stops.
Exportable types: {types}. Resources of every R4 type are loaded; to export
others too (the Synthea sample has Observation, Encounter, Condition, ...),
list them in BULK__EXPORT__TYPES, e.g. BULK__EXPORT__TYPES=Patient,Observation,Encounter make run

Copy-paste export flow:

BASE={base}
TOKEN={admin}
LOC=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $TOKEN" \
  "$BASE/fhir/r4/Patient/\$export?_type=Patient,DocumentReference,Consent,Provenance" \
  | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ocation: //p'); echo "$LOC"
until [ "$(curl -s -o /tmp/manifest.json -w '%{{http_code}}' -H "Authorization: Bearer $TOKEN" "$LOC")" = 200 ]; do sleep 1; done
cat /tmp/manifest.json; echo
for cid in $(grep -o 'ipfs://[A-Za-z0-9]*' /tmp/manifest.json | cut -c8-); do
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/ipfs/$cid" -o "$cid.ndjson"
  cargo run -q --release -p bulk-cli -- cid "$cid.ndjson"   # prints the same CID: the bytes are the file the manifest names
done
"#
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use bulk_core::settings::{ContentSettings, QueueSettings, ResourceSettings};
    use secrecy::ExposeSecret;

    use super::*;

    const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn dev_mode_puts_every_embedded_backend_in_the_data_dir_and_signs_with_the_dev_key() {
        let s = dev_settings_from(Path::new("/tmp/d"), SECRET, vec![], None).expect("settings");
        assert!(matches!(s.queue, QueueSettings::Sqlite { ref path } if path == Path::new("/tmp/d/fhir-bulk.db")));
        assert!(
            matches!(s.resources, ResourceSettings::Sqlite { ref path } if path == Path::new("/tmp/d/fhir-bulk.db"))
        );
        assert!(matches!(s.content, ContentSettings::Local { ref dir } if dir == Path::new("/tmp/d/blobs")));
        assert_eq!(s.auth.hs256_secret.as_ref().map(|x| x.expose_secret().to_owned()).as_deref(), Some(SECRET));
    }

    #[test]
    fn configured_backends_and_keys_win_over_the_dev_defaults() {
        let env = vec![
            ("BULK__QUEUE__KIND".to_owned(), "redis".to_owned()),
            ("BULK__QUEUE__URL".to_owned(), "redis://127.0.0.1:1/".to_owned()),
            ("BULK__AUTH__ISSUER".to_owned(), "https://idp".to_owned()),
        ];
        let s = dev_settings_from(Path::new("/tmp/d"), SECRET, env, None).expect("settings");
        assert!(matches!(s.queue, QueueSettings::Redis { .. }));
        assert!(s.auth.hs256_secret.is_none(), "the dev key must not be added to a configured auth section");
    }

    #[test]
    fn the_dev_key_is_created_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("dev-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let first = dev_secret(&dir).expect("created");
        assert_eq!(first.len(), 64);
        assert_eq!(dev_secret(&dir).expect("read"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DEV_SECRET_FILE)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "dev key readable by others");
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
