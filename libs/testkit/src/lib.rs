//! Test support: every test gets its own PostgreSQL database and its own NATS prefix (so its own
//! streams and consumers), against the real servers, and leaves nothing behind.

mod fixtures;

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use waihu_bus::{Bus, BusConfig};
use waihu_runtime::CommonConfig;

pub use fixtures::call_lifecycle;

/// NATS URL of the server under test (`NATS_URL`, default local).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Any database on the server under test (`DATABASE_URL`, default local); tests create their own.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let stem = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{stem}/{db}?{q}"),
        None => format!("{stem}/{db}"),
    }
}

/// One test's isolated world.
pub struct TestEnv {
    pub id: String,
    pub database: String,
    pub database_url: String,
    pub prefix: String,
    pub pool: PgPool,
    pub bus: Bus,
    /// The NATS the environment's services use, and its streams' replicas.
    pub nats_url: String,
    pub replicas: usize,
    /// The PostgreSQL server the database is on (a URL to any database on it).
    pub server_url: String,
}

impl TestEnv {
    /// Creates the database (migrated) and the streams.
    pub async fn new() -> TestEnv {
        TestEnv::on_nats(&nats_url(), 1).await
    }

    /// [`TestEnv::new`] on the NATS at `url` (a comma-separated list for a cluster), with
    /// streams of `replicas` replicas.
    pub async fn on_nats(url: &str, replicas: usize) -> TestEnv {
        TestEnv::on_servers(url, replicas, &server_url()).await
    }

    /// [`TestEnv::on_nats`] with its database on the PostgreSQL server at `server`
    /// (any database's URL on it; e.g. a server a test runs itself) instead of `DATABASE_URL`'s.
    pub async fn on_servers(url: &str, replicas: usize, server: &str) -> TestEnv {
        init_logging();
        let id = Uuid::new_v4().simple().to_string()[..12].to_string();
        let database = format!("waihu_t_{id}");
        let admin_url = with_database(server, "postgres");
        let admin = waihu_store::connect(&admin_url, 1)
            .await
            .expect("PostgreSQL reachable (DATABASE_URL)");
        sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let database_url = with_database(server, &database);
        let pool = waihu_store::open(&database_url, 8)
            .await
            .expect("test database connects and migrates");
        let prefix = format!("t{id}");
        let bus = Bus::connect(&BusConfig {
            replicas,
            ..BusConfig::local(url, &prefix)
        })
        .await
        .expect("NATS JetStream reachable (NATS_URL)");
        TestEnv {
            id,
            database,
            database_url,
            prefix,
            pool,
            bus,
            nats_url: url.to_string(),
            replicas,
            server_url: server.to_string(),
        }
    }

    /// Service settings pointing at this environment.
    pub fn config(&self) -> CommonConfig {
        let mut c = CommonConfig::for_test(&self.nats_url, &self.database_url, &self.prefix);
        c.replicas = self.replicas;
        c
    }

    /// Drops the database and deletes the streams.
    pub async fn cleanup(self) {
        let _ = self.bus.delete_streams().await;
        self.pool.close().await;
        drop_database(&self.server_url, &self.database).await;
    }
}

async fn drop_database(server: &str, database: &str) {
    let admin_url = with_database(server, "postgres");
    if let Ok(admin) = waihu_store::connect(&admin_url, 1).await {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/x", "y"),
            "postgres://u@h:5432/y"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "y"),
            "postgres://u@h:5432/y"
        );
        assert_eq!(
            with_database("postgres://h/x?sslmode=disable", "y"),
            "postgres://h/y?sslmode=disable"
        );
    }
}
