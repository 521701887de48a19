//! Spawning the API and workers per test, each in its own namespace.

use std::sync::Arc;
use std::time::Duration;

use bulk_api::{AppState, Application};
use bulk_content::{ContentStore, KuboStore};
use bulk_core::settings::Settings;
use bulk_queue::{JobQueue, QueueConfig};
use bulk_resources::{ResourceStore, SeedSpec};
use bulk_testkit::{TestDb, TestServices};
use bulk_worker::{Worker, WorkerConfig};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Shared secret of test tokens.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";
/// Extra setting that spawns an app in Bulk Data IG v2 mode (`spawn_in(mode, &[IG_V2])`).
pub const IG_V2: (&str, &str) = ("BULK__CONFORMANCE", "ig-v2");
/// What the API believes its public URL is (it sits "behind a proxy").
pub const PUBLIC_BASE: &str = "https://bulk.example.org";

/// Which backends a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redis, PostgreSQL and the IPFS node `make test` started.
    Production,
    /// SQLite and the local content-addressed store, in a temporary directory.
    Embedded,
}

/// Runs the scenario `async fn NAME(mode: Mode)` once per mode, as tests `NAME::production` and `NAME::embedded`.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn production() {
                super::$name($crate::helpers::Mode::Production).await
            }
            #[tokio::test]
            async fn embedded() {
                super::$name($crate::helpers::Mode::Embedded).await
            }
        }
    )*};
}
pub(crate) use both_modes;

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("fhir-bulk-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// One API server and its backends, in a namespace of its own.
pub struct TestApp {
    /// Where the server really listens.
    pub address: String,
    pub client: reqwest::Client,
    pub mode: Mode,
    pub queue: Arc<dyn JobQueue>,
    pub resources: Arc<dyn ResourceStore>,
    pub content: Arc<dyn ContentStore>,
    pub settings: Settings,
    shutdown: CancellationToken,
    pub db: Option<TestDb>,
    _dir: Option<TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for a test: `backends` pairs naming its own namespace, plus `extra` `BULK__*` pairs.
pub fn test_settings(backends: Vec<(String, String)>, extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("BULK__SERVER__LISTEN".into(), "127.0.0.1:0".into()),
        ("BULK__SERVER__PUBLIC_BASE_URL".into(), PUBLIC_BASE.into()),
        ("BULK__AUTH__HS256_SECRET".into(), SECRET.into()),
        ("BULK__WORKER__PAGE_SIZE".into(), "7".into()),
        // Quick retries: the tests check the policy, not the waiting.
        ("BULK__WORKER__RETRY_BASE_MS".into(), "5".into()),
        ("BULK__WORKER__RETRY_CAP_MS".into(), "20".into()),
    ];
    env.extend(backends);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_from(None, env).expect("test settings load")
}

impl TestApp {
    /// A production-mode app with default test settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_in(Mode::Production, &[]).await
    }

    /// A production-mode app with extra `BULK__*` settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        Self::spawn_in(Mode::Production, extra).await
    }

    /// An app on `mode`'s backends with extra `BULK__*` settings.
    pub async fn spawn_in(mode: Mode, extra: &[(&str, &str)]) -> TestApp {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let (backends, db, dir) = match mode {
            Mode::Production => {
                let services = TestServices::from_env();
                let db = TestDb::create(&services.postgres_url).await;
                let backends = vec![
                    pair("BULK__QUEUE__KIND", "redis"),
                    pair("BULK__QUEUE__URL", &services.redis_url),
                    pair("BULK__QUEUE__KEY_PREFIX", &services.unique_prefix()),
                    pair("BULK__RESOURCES__KIND", "postgres"),
                    pair("BULK__RESOURCES__URL", &db.url),
                    pair("BULK__RESOURCES__POOL_SIZE", "4"),
                    pair("BULK__CONTENT__KIND", "kubo"),
                    pair("BULK__CONTENT__API_URL", &services.ipfs_url),
                ];
                (backends, Some(db), None)
            }
            Mode::Embedded => {
                let dir = TempDir::new();
                let db = dir.0.join("fhir-bulk.db").display().to_string();
                let backends = vec![
                    pair("BULK__QUEUE__KIND", "sqlite"),
                    pair("BULK__QUEUE__PATH", &db),
                    pair("BULK__RESOURCES__KIND", "sqlite"),
                    pair("BULK__RESOURCES__PATH", &db),
                    pair("BULK__CONTENT__KIND", "local"),
                    pair("BULK__CONTENT__DIR", &dir.0.join("blobs").display().to_string()),
                ];
                (backends, None, Some(dir))
            }
        };
        let settings = test_settings(backends, extra);
        let queue =
            bulk_queue::open(&settings.queue, QueueConfig::from_settings(&settings.worker)).await.expect("queue");
        let resources = bulk_resources::open(&settings.resources).await.expect("resource store");
        let content = bulk_content::open(&settings.content).await.expect("content store");
        // Built from the settings, as `bulk-api` does (conformance mode, throttle limits, …).
        let state = AppState::new(&settings, queue.clone(), content.clone(), resources.clone()).expect("app state");
        let app = Application::build(&settings.server.listen, state).expect("bind");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let client = bulk_api::http_client().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        TestApp { address, client, mode, queue, resources, content, settings, shutdown, db, _dir: dir }
    }

    /// Seeds `patients` synthetic patients with `docs` documents each.
    pub async fn seed(&self, patients: u32, docs: u32) {
        bulk_resources::seed(self.resources.as_ref(), SeedSpec { patients, documents_per_patient: docs })
            .await
            .expect("seed");
    }

    /// Adds a patient with a random id and one Document Reference and Consent,
    /// so that this test's export files have CIDs no other test's files have
    /// (tests share one IPFS node, and unpinning is by CID).
    pub async fn add_unique_patient(&self) {
        let p = format!("u-{}", uuid::Uuid::new_v4().simple());
        let row = |ty: &str, id: String, json: String| bulk_resources::NewResource {
            resource_type: ty.into(),
            id,
            patient_ids: vec![p.clone()],
            json,
        };
        let rows = vec![
            row("Patient", p.clone(), format!(r#"{{"resourceType":"Patient","id":"{p}"}}"#)),
            row(
                "DocumentReference",
                format!("{p}-d"),
                format!(
                    r#"{{"resourceType":"DocumentReference","id":"{p}-d","subject":{{"reference":"Patient/{p}"}}}}"#
                ),
            ),
            row(
                "Consent",
                format!("{p}-c"),
                format!(r#"{{"resourceType":"Consent","id":"{p}-c","patient":{{"reference":"Patient/{p}"}}}}"#),
            ),
        ];
        self.resources.upsert(&rows).await.expect("upsert");
    }

    /// A worker on this app's backends.
    pub fn worker(&self) -> Worker {
        Worker::new(
            self.queue.clone(),
            self.resources.clone(),
            self.content.clone(),
            WorkerConfig::from_settings(&self.settings),
        )
    }

    /// A worker whose content store is a Kubo API nobody listens on.
    pub fn worker_with_dead_ipfs(&self) -> Worker {
        let dead: Arc<dyn ContentStore> = Arc::new(KuboStore::new("http://127.0.0.1:9", 2).expect("client"));
        Worker::new(self.queue.clone(), self.resources.clone(), dead, WorkerConfig::from_settings(&self.settings))
    }

    /// Runs one worker until the queue is empty.
    pub async fn run_worker(&self) -> u32 {
        self.worker().run_until_empty().await.expect("worker ran")
    }

    /// `GET {path}` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// `DELETE {path}` with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.delete(format!("{}{}", self.address, path)).bearer_auth(token).send().await.expect("sent")
    }

    /// Kicks off an export and returns the status path (relative to the real address).
    pub async fn kick_off(&self, path: &str, token: &str) -> String {
        let res = self.get(path, Some(token)).await;
        assert_eq!(res.status(), 202, "kick-off of {path}: {:?}", res.text().await);
        let location = res.headers()["content-location"].to_str().expect("ascii").to_owned();
        location.strip_prefix(PUBLIC_BASE).expect("absolute URL under the public base").to_owned()
    }

    /// Polls a finished job once (after the worker ran) and returns the manifest.
    pub async fn manifest(&self, status_path: &str, token: &str) -> Value {
        let res = self.get(status_path, Some(token)).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        res.json().await.expect("manifest JSON")
    }

    /// Fetches a manifest output's bytes back from IPFS by CID.
    pub async fn fetch_ipfs(&self, url: &str) -> Vec<u8> {
        let cid: bulk_content::Cid = url.strip_prefix("ipfs://").expect("ipfs URL").parse().expect("CID");
        fetch(self.content.as_ref(), &cid).await
    }

    /// Waits (bounded) until `cond` holds for the job record.
    pub async fn wait_for_record(&self, status_path: &str, cond: impl Fn(&bulk_queue::JobRecord) -> bool) {
        let id = status_path.rsplit('/').next().expect("id").parse().expect("job id");
        for _ in 0..500 {
            if let Some(r) = self.queue.get(&id).await.expect("record") {
                if cond(&r) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job record never reached the expected state");
    }
}

/// Reads a whole file from a content store.
pub async fn fetch(content: &dyn ContentStore, cid: &bulk_content::Cid) -> Vec<u8> {
    use futures_util::TryStreamExt;
    let chunks: Vec<_> = content.get(cid).await.expect("get").try_collect().await.expect("stream");
    chunks.concat()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

/// An HS256 token with these claims.
pub fn token_with(claims: Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign")
}

/// A valid admin token.
pub fn admin() -> String {
    token_with(json!({"sub": "admin-1", "role": "admin", "exp": now() + 600}))
}

/// A valid patient token for `patient` (user `user-{patient}`).
pub fn patient(patient: &str) -> String {
    token_with(json!({"sub": format!("user-{patient}"), "role": "patient", "patient": patient, "exp": now() + 600}))
}

/// Asserts a response is an OperationOutcome with this status and issue code; returns its diagnostics.
pub async fn assert_outcome(res: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/fhir+json");
    let body: Value = res.json().await.expect("JSON body");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"][0]["severity"], "error", "{body}");
    assert_eq!(body["issue"][0]["code"], code, "{body}");
    body["issue"][0]["diagnostics"].as_str().expect("diagnostics").to_owned()
}

/// Parses NDJSON bytes into values, asserting each line is one JSON object.
pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    assert!(text.is_empty() || text.ends_with('\n'), "file does not end with a newline");
    text.lines().map(|l| serde_json::from_str(l).expect("one JSON resource per line")).collect()
}

/// The real store, with a count of the pages read through it: lets a test see
/// how far a worker got.
pub struct PageCounter {
    pub inner: Arc<dyn ResourceStore>,
    pub pages: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl ResourceStore for PageCounter {
    async fn migrate(&self) -> Result<(), bulk_resources::ResourceError> {
        self.inner.migrate().await
    }
    async fn upsert(&self, batch: &[bulk_resources::NewResource]) -> Result<u64, bulk_resources::ResourceError> {
        self.inner.upsert(batch).await
    }
    async fn delete(&self, refs: &[(String, String)]) -> Result<u64, bulk_resources::ResourceError> {
        self.inner.delete(refs).await
    }
    async fn patients_of(&self, refs: &[(String, String)]) -> Result<Vec<String>, bulk_resources::ResourceError> {
        self.inner.patients_of(refs).await
    }
    async fn get(&self, t: &str, id: &str) -> Result<Option<String>, bulk_resources::ResourceError> {
        self.inner.get(t, id).await
    }
    async fn now(&self) -> Result<time::OffsetDateTime, bulk_resources::ResourceError> {
        self.inner.now().await
    }
    async fn count(&self, q: &bulk_resources::ResourceQuery) -> Result<u64, bulk_resources::ResourceError> {
        self.inner.count(q).await
    }
    async fn page(
        &self,
        q: &bulk_resources::ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<bulk_resources::StoredResource>, bulk_resources::ResourceError> {
        self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.page(q, after, limit).await
    }
    async fn deleted_page(
        &self,
        q: &bulk_resources::ResourceQuery,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, bulk_resources::ResourceError> {
        self.inner.deleted_page(q, after, limit).await
    }
    async fn existing(&self, t: &str, ids: &[String]) -> Result<Vec<String>, bulk_resources::ResourceError> {
        self.inner.existing(t, ids).await
    }
    async fn health_check(&self) -> Result<(), bulk_resources::ResourceError> {
        self.inner.health_check().await
    }
}

impl TestApp {
    /// A worker reading through a `PageCounter`.
    pub fn counted_worker(&self) -> (Worker, Arc<PageCounter>) {
        let counter = Arc::new(PageCounter { inner: self.resources.clone(), pages: Default::default() });
        let worker = Worker::new(
            self.queue.clone(),
            counter.clone(),
            self.content.clone(),
            WorkerConfig::from_settings(&self.settings),
        );
        (worker, counter)
    }
}

/// The real content store with faults injected into `put`: the first
/// `fail_first` puts fail as if the store were unreachable, and puts from
/// number `hang_from` (0-based) on never finish, as with a stalled node.
pub struct FaultyContent {
    pub inner: Arc<dyn ContentStore>,
    pub fail_first: u32,
    pub hang_from: Option<u32>,
    pub puts: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl ContentStore for FaultyContent {
    async fn put(
        &self,
        reader: bulk_content::ContentReader,
    ) -> Result<bulk_content::Stored, bulk_content::ContentError> {
        let n = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < self.fail_first {
            return Err(bulk_content::ContentError::Unavailable("injected fault".into()));
        }
        if self.hang_from.is_some_and(|h| n >= h) {
            std::future::pending::<()>().await;
        }
        self.inner.put(reader).await
    }
    async fn get(&self, cid: &bulk_content::Cid) -> Result<bulk_content::ByteStream, bulk_content::ContentError> {
        self.inner.get(cid).await
    }
    async fn unpin(&self, cid: &bulk_content::Cid) -> Result<(), bulk_content::ContentError> {
        self.inner.unpin(cid).await
    }
    async fn health_check(&self) -> Result<(), bulk_content::ContentError> {
        self.inner.health_check().await
    }
}

impl TestApp {
    /// A worker whose content store has faults injected.
    pub fn faulty_worker(&self, fail_first: u32, hang_from: Option<u32>) -> Worker {
        let content =
            Arc::new(FaultyContent { inner: self.content.clone(), fail_first, hang_from, puts: Default::default() });
        Worker::new(self.queue.clone(), self.resources.clone(), content, WorkerConfig::from_settings(&self.settings))
    }
}

/// Workers running in the background until stopped.
pub struct BackgroundWorkers {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BackgroundWorkers {
    /// Stops the workers and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.expect("worker task");
        }
    }
}

impl TestApp {
    /// `n` workers polling the queue in the background, as deployed workers do.
    pub fn spawn_workers(&self, n: usize) -> BackgroundWorkers {
        let shutdown = CancellationToken::new();
        let tasks = (0..n)
            .map(|_| {
                let worker = self.worker();
                let stop = shutdown.clone();
                tokio::spawn(async move { worker.run(stop).await })
            })
            .collect();
        BackgroundWorkers { shutdown, tasks }
    }

    /// Loads the 12-patient Synthea fixture (`tests/data/synthea-12`).
    pub async fn load_fixture(&self) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/synthea-12");
        let report = bulk_resources::load_files(self.resources.as_ref(), &[dir]).await.expect("fixture loads");
        assert!(report.errors.is_empty(), "fixture lines refused: {:?}", report.errors);
        assert_eq!(report.loaded, 5065);
    }
}
