//! The record service: the append-only event store writer, the call-record and task-statistics
//! projections, and the gRPC reads over them.

pub mod admin;
pub mod audit;
pub mod export;
pub mod followup;
pub mod grpc;
pub mod projection;
pub mod projector;
pub mod recording;
pub mod records;
pub mod replay;
pub mod report;
pub mod sheet;
pub mod stream;
pub mod watch;
pub mod webhook;
pub mod writer;

use tokio_util::sync::CancellationToken;
use waihu_bus::Bus;
use waihu_proto::v1::{
    admin_service_server::AdminServiceServer, record_service_server::RecordServiceServer,
    stats_service_server::StatsServiceServer, webhook_service_server::WebhookServiceServer,
};
use waihu_runtime::{
    config::Layers, CommonConfig, ConfigError, ServiceHandle, StartError, Workers,
};

#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub common: CommonConfig,
    pub writer: writer::WriterConfig,
    pub webhooks: webhook::WebhookConfig,
    /// `[recordings]`: storage, signed URLs, retention.
    pub recordings: recording::RecordingConfig,
}

/// The `[record]` settings as written.
#[derive(serde::Deserialize)]
#[serde(default)]
struct RecordSection {
    batch: usize,
    fill_ms: u64,
    synchronous_commit: bool,
    projection_ms: u64,
}

impl Default for RecordSection {
    fn default() -> Self {
        let d = writer::WriterConfig::default();
        RecordSection {
            batch: d.batch,
            fill_ms: d.fill.as_millis() as u64,
            synchronous_commit: d.synchronous_commit,
            projection_ms: d.projection_interval.as_millis() as u64,
        }
    }
}

impl RecordConfig {
    pub const DEFAULT_PORT: u16 = 50054;

    /// `[record] batch` (`WAIHU_RECORD__BATCH`, 4000), `fill_ms` (20), `synchronous_commit`
    /// (false) and `projection_ms` (0), and the common settings.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process()?)
    }

    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let r: RecordSection = layers.section("record")?;
        if r.batch == 0 || r.batch > 50_000 {
            return Err(ConfigError::invalid("record.batch", "must be 1 to 50000"));
        }
        if r.projection_ms > 10_000 {
            return Err(ConfigError::invalid(
                "record.projection_ms",
                "must be 0 to 10000",
            ));
        }
        let d = writer::WriterConfig::default();
        Ok(RecordConfig {
            common: CommonConfig::from_layers(layers, Self::DEFAULT_PORT)?,
            writer: writer::WriterConfig {
                batch: r.batch,
                linger: d.linger,
                fill: std::time::Duration::from_millis(r.fill_ms),
                synchronous_commit: r.synchronous_commit,
                projection_interval: std::time::Duration::from_millis(r.projection_ms),
            },
            webhooks: webhook::WebhookConfig::from_layers(layers)?,
            recordings: recording::RecordingConfig::from_layers(layers)?,
        })
    }

    pub fn new(common: CommonConfig) -> Self {
        RecordConfig {
            common,
            writer: writer::WriterConfig::default(),
            webhooks: webhook::WebhookConfig::default(),
            // Embedded (tests, tools, several to a machine): no HTTP endpoint of its own, and
            // storage in the temporary directory.
            recordings: recording::RecordingConfig {
                storage: recording::Storage::Local(
                    std::env::temp_dir().join("waihu-recordings-store"),
                ),
                http_addr: None,
                ..Default::default()
            },
        }
    }
}

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "record";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool on the record service's schema, migrated (tests and tools).
pub async fn open_pool(url: &str, max_connections: u32) -> Result<sqlx::PgPool, StartError> {
    Ok(waihu_store::open_service(url, max_connections, SCHEMA, &MIGRATOR).await?)
}

/// Connects, migrates, runs the store writer, and serves until `shutdown`.
pub async fn start(
    config: RecordConfig,
    shutdown: CancellationToken,
) -> Result<ServiceHandle, StartError> {
    let c = &config.common;
    let pool = c.open_database(SCHEMA, &MIGRATOR).await?;
    let bus = Bus::connect(&c.bus()).await?;

    let mut workers = Workers::new();
    workers.keep_statistics(pool.clone(), SCHEMA);
    let writer = writer::Writer {
        pool: pool.clone(),
        database_url: c.database_url.expose().to_string(),
        bus: bus.clone(),
        config: config.writer.clone(),
        health: workers.health(),
    };
    let stop = workers.stop_token();
    workers.supervise(writer::PART, move || {
        let (w, stop) = (writer.clone(), stop.clone());
        async move {
            w.run(stop).await;
            Ok(())
        }
    });
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let poster = webhook::sender::Poster::new(&config.webhooks)?;
    let sender = webhook::sender::Sender {
        pool: pool.clone(),
        config: config.webhooks.clone(),
        poster: poster.clone(),
        wake: wake.clone(),
    };
    let stop = workers.stop_token();
    workers.supervise("webhook-sender", move || {
        let (s, stop) = (sender.clone(), stop.clone());
        async move {
            s.run(stop).await;
            Ok(())
        }
    });
    let fanout = webhook::fanout::Fanout {
        pool: pool.clone(),
        poll: config.webhooks.poll,
        sender: wake.clone(),
    };
    let (url, stop) = (c.database_url.expose().to_string(), workers.stop_token());
    workers.spawn(async move {
        waihu_store::while_leader(&url, webhook::fanout::LEADER_LOCK, &stop, |term| {
            fanout.clone().run(term)
        })
        .await
    });
    let webhooks = webhook::api::WebhookApi {
        pool: pool.clone(),
        poster,
        wake,
        bus: Some(bus.clone()),
    };
    let admin = admin::AdminApi {
        pool: pool.clone(),
        bus: bus.clone(),
        health: workers.health(),
    };

    // Recordings: the keeper and the retention sweeper (one instance each, by leader lock),
    // and the endpoint serving signed URLs (every instance).
    let rec = std::sync::Arc::new(config.recordings.clone());
    let store = rec.open().map_err(|e| e.to_string())?;
    let signer = rec.signer();
    let keeper =
        recording::keeper::Keeper::new(pool.clone(), bus.clone(), store.clone(), rec.clone())
            .map_err(|e| format!("recordings HTTP client: {e}"))?;
    let (url, stop) = (c.database_url.expose().to_string(), workers.stop_token());
    workers.spawn(async move {
        waihu_store::while_leader(&url, recording::keeper::LEADER_LOCK, &stop, |term| {
            keeper.clone().run(term)
        })
        .await
    });
    let sweeper = recording::sweep::Sweeper {
        pool: pool.clone(),
        bus: bus.clone(),
        store: store.clone(),
        config: rec.clone(),
    };
    let (url, stop) = (c.database_url.expose().to_string(), workers.stop_token());
    workers.spawn(async move {
        waihu_store::while_leader(&url, recording::sweep::LEADER_LOCK, &stop, |term| {
            sweeper.clone().run(term)
        })
        .await
    });
    if let Some(addr) = rec.http_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!(
                "cannot listen on {addr} (recordings.http_addr, WAIHU_RECORDINGS__HTTP_ADDR): {e}"
            )
        })?;
        let app = recording::http::router(recording::http::Endpoint {
            pool: pool.clone(),
            store: store.clone(),
            signer: signer.clone(),
        })
        .layer(axum::middleware::from_fn(waihu_runtime::metrics::http));
        let stop = workers.stop_token();
        workers.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            {
                tracing::error!(error = %e, "recordings endpoint stopped");
            }
        });
    }
    let urls = grpc::RecordingUrls {
        signer,
        ttl: rec.url_ttl,
    };

    let changes = watch::Changes::default();
    let (listener, listen_pool, stop) = (changes.clone(), pool.clone(), workers.stop_token());
    workers.supervise("stats-listener", move || {
        let (l, p, stop) = (listener.clone(), listen_pool.clone(), stop.clone());
        async move {
            l.listen(p, stop).await;
            Ok(())
        }
    });
    let api = || grpc::RecordApi {
        pool: pool.clone(),
        bus: Some(bus.clone()),
        changes: changes.clone(),
        recordings: Some(urls.clone()),
    };
    let (stats_api, record_api) = (api(), api());
    waihu_runtime::serve(c, workers, shutdown, |r| {
        r.add_service(StatsServiceServer::new(stats_api))
            .add_service(RecordServiceServer::new(record_api))
            .add_service(AdminServiceServer::new(admin))
            .add_service(WebhookServiceServer::new(webhooks))
    })
    .await
}

#[cfg(test)]
mod tests {
    use waihu_runtime::config::Layers;

    use super::RecordConfig;

    fn with(key: &str, value: &str) -> Result<RecordConfig, String> {
        let layers =
            Layers::from_vars([(key.to_string(), value.to_string())]).map_err(|e| e.to_string())?;
        RecordConfig::from_layers(&layers).map_err(|e| e.to_string())
    }

    #[test]
    fn the_projection_interval_is_read_in_milliseconds_and_bounded() {
        let c = with("WAIHU_RECORD__PROJECTION_MS", "250").expect("250 ms");
        assert_eq!(
            c.writer.projection_interval,
            std::time::Duration::from_millis(250)
        );
        let e = with("WAIHU_RECORD__PROJECTION_MS", "20000").expect_err("too long");
        assert!(e.contains("record.projection_ms"), "{e}");
        let e = with("WAIHU_RECORD__PROJECTION_MS", "soon").expect_err("not a number");
        assert!(e.contains("projection_ms"), "{e}");
    }
}
