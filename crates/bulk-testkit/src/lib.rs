#![doc = include_str!("../README.md")]

pub mod keys;
mod proxy;
mod redis_server;

pub use proxy::TcpProxy;

/// Unpadded base64url, as JWT segments use: for hand-built (hostile) tokens in tests.
pub fn base64url(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
pub use redis_server::OwnRedis;
use tokio_postgres::NoTls;

/// The services `make test` started.
#[derive(Clone, Debug)]
pub struct TestServices {
    /// `redis://127.0.0.1:PORT/`
    pub redis_url: String,
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (the admin database).
    pub postgres_url: String,
    /// `http://127.0.0.1:PORT`, a node speaking the Kubo RPC API.
    pub ipfs_url: String,
}

impl TestServices {
    /// Reads the service addresses; panics with instructions when absent,
    /// because a test that silently skips proves nothing.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests with `make test`, which starts Redis, PostgreSQL and IPFS")
            })
        };
        TestServices {
            redis_url: var("BULK_TEST_REDIS_URL"),
            postgres_url: var("BULK_TEST_POSTGRES_URL"),
            ipfs_url: var("BULK_TEST_IPFS_URL"),
        }
    }

    /// A Redis key prefix no other test uses.
    pub fn unique_prefix(&self) -> String {
        format!("test-{}", uuid::Uuid::new_v4().simple())
    }
}

/// A PostgreSQL database of one's own, dropped on `Drop`.
pub struct TestDb {
    admin_url: String,
    name: String,
    /// Connection URL of the new database.
    pub url: String,
}

impl TestDb {
    /// Creates an empty database named after a fresh UUID.
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let client = connect(admin_url).await;
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE");
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
        TestDb { admin_url: admin_url.to_owned(), url: format!("{base}/{name}"), name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop is synchronous and may run inside a runtime: use a thread with its own.
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, NoTls).await.ok()?;
                tokio::spawn(conn);
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect to test PostgreSQL");
    tokio::spawn(conn);
    client
}
