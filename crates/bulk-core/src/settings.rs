//! Typed, layered configuration: defaults in code, then an optional TOML file
//! (`BULK_CONFIG=path`), then environment variables `BULK__SECTION__KEY`
//! (for example `BULK__REDIS__URL`). Loading has no side effects.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

mod auth;
pub use auth::{AuthSettings, BackendClient};

/// Everything the binaries can be configured with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// HTTP listener and public URL.
    pub server: ServerSettings,
    /// Token verification.
    pub auth: AuthSettings,
    /// Queue and job records.
    pub queue: QueueSettings,
    /// Where resources are read from.
    pub resources: ResourceSettings,
    /// Where export files are written.
    pub content: ContentSettings,
    /// Export job processing.
    pub worker: WorkerSettings,
    /// Log output.
    pub telemetry: TelemetrySettings,
    /// What is exported and how files are cut.
    pub export: ExportSettings,
    /// Where the usage document and the Bulk Data IG disagree, which one the
    /// service follows (`BULK__CONFORMANCE`).
    pub conformance: Conformance,
}

/// The two documented behaviours where the usage document and the Bulk Data IG v2 differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Conformance {
    /// The usage document: cancel answers `204`, output `url`s are `ipfs://{CID}`.
    #[default]
    #[serde(rename = "usage")]
    Usage,
    /// The IG: cancel answers `202`, output `url`s are absolute URLs of the file endpoint.
    #[serde(rename = "ig-v2")]
    IgV2,
}

/// What an export covers and how its files are split.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSettings {
    /// Resource types this deployment exports (R4 names); the default when `_type` is absent.
    pub types: Vec<crate::ResourceType>,
    /// Most resources in one output file; a type with more gets more files.
    pub max_file_resources: u64,
    /// Most bytes (of NDJSON) in one output file.
    pub max_file_bytes: u64,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            types: crate::ResourceType::DEFAULT_EXPORTABLE.to_vec(),
            max_file_resources: 1_000_000,
            max_file_bytes: 1 << 30,
        }
    }
}

/// The API's listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind, e.g. `0.0.0.0:3000`.
    pub listen: String,
    /// Base URL clients reach the service at (no trailing slash); absolute
    /// status URLs in `Content-Location` are built from it.
    pub public_base_url: String,
    /// Most exports one client (token `sub`) may have queued or running at
    /// once; a kick-off beyond it is `429`. `0` disables the limit.
    pub max_active_exports_per_client: u32,
    /// Status polls of one job by one client allowed in a burst (a token
    /// bucket per API replica); beyond it, `429`. `0` disables the limit.
    pub poll_burst: u32,
    /// The bucket regains one poll every this many milliseconds.
    pub poll_refill_ms: u64,
}

/// The queue and job-record backend.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum QueueSettings {
    /// Redis lists and hashes (production; shared by many processes).
    Redis {
        /// `redis://host:port/db`; may carry a password, so it is secret.
        url: SecretString,
        /// Prefix of every key; lets several deployments share one Redis.
        #[serde(default = "default_key_prefix")]
        key_prefix: String,
        /// Connection pool size.
        #[serde(default = "default_redis_pool")]
        pool_size: usize,
    },
    /// A SQLite file (embedded default; one machine).
    Sqlite {
        /// Database file; may be the resource store's file.
        path: PathBuf,
    },
}

/// The resource store backend.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ResourceSettings {
    /// PostgreSQL (production).
    Postgres {
        /// `postgres://user:pass@host:port/db`; secret because of the password.
        url: SecretString,
        /// Connection pool size.
        #[serde(default = "default_pg_pool")]
        pool_size: usize,
    },
    /// A SQLite file (embedded default).
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
}

/// The content store backend.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ContentSettings {
    /// A Kubo node's RPC API.
    Kubo {
        /// e.g. `http://127.0.0.1:5001`.
        api_url: String,
        /// Timeout of one RPC call that is not a streamed add, in seconds.
        #[serde(default = "default_kubo_timeout")]
        timeout_secs: u64,
    },
    /// A local directory, content-addressed with Kubo's CIDs.
    Local {
        /// Directory holding the blobs.
        dir: PathBuf,
    },
}

/// How workers process jobs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Resources read per page (keyset pagination); also how often progress
    /// is written and cancellation checked.
    pub page_size: u32,
    /// How long an idle worker waits before asking the queue again, in ms.
    pub poll_interval_ms: u64,
    /// How long a finished (completed, failed, cancelled) job record lives, in seconds. 24 h by default.
    pub record_ttl_secs: u64,
    /// TTL of a record that has not finished; only a backstop so no key lives
    /// forever, it must exceed the longest queue wait plus export.
    pub active_record_ttl_secs: u64,
    /// Lease length; a worker renews it every `lease_secs / 3` seconds, so two
    /// renewals can be missed before the job is handed to another worker.
    pub lease_secs: u64,
    /// Claims after which a job whose lease keeps expiring is failed rather than re-queued.
    pub max_attempts: u32,
    /// On SIGTERM a worker stops claiming and gives its running export this
    /// long to finish; then it gives the job back to the queue at once.
    /// Kubernetes' `terminationGracePeriodSeconds` must be longer.
    pub drain_secs: u64,
    /// Where `bulk-worker` serves `/healthz`, `/readyz` and `/metrics`; empty to disable.
    pub admin_listen: String,
    /// Retries of a step that failed for a transient reason (a backend
    /// unreachable or timing out) before the job fails.
    pub retry_max: u32,
    /// First retry delay in ms; doubles each retry, with full jitter.
    pub retry_base_ms: u64,
    /// Longest retry delay in ms.
    pub retry_cap_ms: u64,
    /// Encrypt every export file (AES-256-GCM, a random key per file) before
    /// it reaches the content store; the key is returned only in the
    /// authenticated manifest, and the API's file endpoints decrypt.
    pub encrypt_files: bool,
}

/// Log format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `text` or `json`.
    pub format: String,
}

fn default_key_prefix() -> String {
    "fhir-bulk".into()
}

fn default_redis_pool() -> usize {
    16
}

/// Where the embedded backends keep their files unless configured otherwise.
pub const DEFAULT_DATA_DIR: &str = "fhir-bulk-data";

fn default_pg_pool() -> usize {
    8
}

fn default_kubo_timeout() -> u64 {
    30
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings::default(),
            auth: AuthSettings::default(),
            // Embedded backends by default: one file and one directory, no servers.
            queue: QueueSettings::Sqlite { path: PathBuf::from(DEFAULT_DATA_DIR).join("fhir-bulk.db") },
            resources: ResourceSettings::Sqlite { path: PathBuf::from(DEFAULT_DATA_DIR).join("fhir-bulk.db") },
            content: ContentSettings::Local { dir: PathBuf::from(DEFAULT_DATA_DIR).join("blobs") },
            worker: WorkerSettings::default(),
            telemetry: TelemetrySettings::default(),
            export: ExportSettings::default(),
            conformance: Conformance::default(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:3000".into(),
            public_base_url: "http://localhost:3000".into(),
            max_active_exports_per_client: 5,
            poll_burst: 10,
            poll_refill_ms: 1000,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            page_size: 1000,
            poll_interval_ms: 200,
            record_ttl_secs: 24 * 3600,
            active_record_ttl_secs: 7 * 24 * 3600,
            lease_secs: 30,
            max_attempts: 5,
            drain_secs: 60,
            admin_listen: "127.0.0.1:9090".into(),
            retry_max: 5,
            retry_base_ms: 200,
            retry_cap_ms: 10_000,
            encrypt_files: false,
        }
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings { format: "text".into() }
    }
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads defaults, then the TOML file named by `BULK_CONFIG` (if any), then
    /// `BULK__*` environment variables.
    pub fn load() -> Result<Settings, SettingsError> {
        let file = std::env::var_os("BULK_CONFIG").map(PathBuf::from);
        Self::load_from(file, std::env::vars())
    }

    /// `load` with the file and environment given explicitly (for tests).
    pub fn load_from(
        file: Option<PathBuf>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        let env: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("BULK__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("BULK")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("export.types")
                .source(Some(env)),
        );
        let raw = builder.build().map_err(|e| SettingsError(e.to_string()))?;
        let settings: Settings = raw.try_deserialize().map_err(|e| SettingsError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.worker.page_size == 0 {
            return Err(SettingsError("worker.page_size must be at least 1".into()));
        }
        if self.worker.lease_secs < 3 {
            return Err(SettingsError("worker.lease_secs must be at least 3".into()));
        }
        if self.server.public_base_url.ends_with('/') {
            return Err(SettingsError("server.public_base_url must not end with '/'".into()));
        }
        if self.server.poll_refill_ms == 0 {
            return Err(SettingsError("server.poll_refill_ms must be at least 1".into()));
        }
        if self.export.types.is_empty() {
            return Err(SettingsError("export.types must name at least one resource type".into()));
        }
        if self.export.max_file_resources == 0 || self.export.max_file_bytes == 0 {
            return Err(SettingsError("export.max_file_resources and export.max_file_bytes must be at least 1".into()));
        }
        if self.auth.token_ttl_secs == 0 {
            return Err(SettingsError("auth.token_ttl_secs must be at least 1".into()));
        }
        if !matches!(self.telemetry.format.as_str(), "text" | "json") {
            return Err(SettingsError("telemetry.format must be 'text' or 'json'".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn environment_overrides_defaults_and_selects_backends() {
        let s = Settings::load_from(
            None,
            env(&[
                ("BULK__WORKER__PAGE_SIZE", "50"),
                ("BULK__CONTENT__KIND", "local"),
                ("BULK__CONTENT__DIR", "/tmp/blobs"),
                ("BULK__QUEUE__KIND", "redis"),
                ("BULK__QUEUE__URL", "redis://127.0.0.1:7000/"),
                ("BULK__QUEUE__KEY_PREFIX", "t1"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.worker.page_size, 50);
        assert!(matches!(s.queue, QueueSettings::Redis { ref key_prefix, .. } if key_prefix == "t1"));
        assert!(matches!(s.content, ContentSettings::Local { ref dir } if dir.to_str() == Some("/tmp/blobs")));
    }

    #[test]
    fn secrets_are_redacted_from_debug_output() {
        let s = Settings::load_from(
            None,
            env(&[
                ("BULK__AUTH__HS256_SECRET", "hunter2hunter2"),
                ("BULK__QUEUE__KIND", "redis"),
                ("BULK__QUEUE__URL", "redis://:pw0rd@h:1/"),
            ]),
        )
        .expect("loads");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2hunter2") && !dbg.contains("pw0rd"), "{dbg}");
        assert_eq!(
            s.auth.hs256_secret.as_ref().map(|x| x.expose_secret().to_owned()).as_deref(),
            Some("hunter2hunter2")
        );
    }

    #[test]
    fn the_defaults_are_the_embedded_backends() {
        let s = Settings::load_from(None, env(&[])).expect("loads");
        assert!(matches!(s.queue, QueueSettings::Sqlite { .. }));
        assert!(matches!(s.resources, ResourceSettings::Sqlite { .. }));
        assert!(matches!(s.content, ContentSettings::Local { .. }));
    }

    #[test]
    fn conformance_and_exportable_types_come_from_the_environment() {
        let s = Settings::load_from(None, env(&[("BULK__CONFORMANCE", "ig-v2")])).expect("loads");
        assert_eq!(s.conformance, Conformance::IgV2);
        assert_eq!(Settings::load_from(None, env(&[])).expect("loads").conformance, Conformance::Usage);
        assert!(Settings::load_from(None, env(&[("BULK__CONFORMANCE", "strict")])).is_err());
        let s = Settings::load_from(None, env(&[("BULK__EXPORT__TYPES", "Patient,Observation")])).expect("loads");
        assert_eq!(s.export.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["Patient", "Observation"]);
        assert!(Settings::load_from(None, env(&[("BULK__EXPORT__TYPES", "Patient,Nope")])).is_err());
    }

    #[test]
    fn the_kubernetes_config_maps_load_as_the_api_and_the_worker_see_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/base/config");
        let read = |name: &str| -> Vec<(String, String)> {
            let text = std::fs::read_to_string(dir.join(name)).expect("config file");
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).expect("KEY=VALUE"))
                .collect()
        };
        // What the Secret adds.
        let secrets = env(&[("BULK__QUEUE__URL", "redis://r:6379/"), ("BULK__RESOURCES__URL", "postgres://u@db/fhir")]);
        for role in ["api.env", "worker.env"] {
            let all: Vec<_> = read("common.env").into_iter().chain(read(role)).chain(secrets.clone()).collect();
            let s = Settings::load_from(None, all).unwrap_or_else(|e| panic!("{role}: {e}"));
            assert!(matches!(s.queue, QueueSettings::Redis { .. }), "{role}");
            // The API checks Groups in the same store the workers read.
            assert!(matches!(s.resources, ResourceSettings::Postgres { .. }), "{role}");
            assert_eq!(s.export.types, crate::ResourceType::DEFAULT_EXPORTABLE.to_vec(), "{role}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Settings::load_from(None, env(&[("BULK__WORKER__PAGE_SIZE", "0")])).is_err());
        assert!(Settings::load_from(None, env(&[("BULK__WORKER__NO_SUCH_KEY", "1")])).is_err());
        assert!(Settings::load_from(None, env(&[("BULK__CONTENT__KIND", "s3")])).is_err());
    }
}
