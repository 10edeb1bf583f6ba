//! The task service: campaigns ("tasks") and their contact lists.
//!
//! Commands lock the task row, decide with [`domain::decide`], and commit the new state with its
//! events into the outbox; the relay publishes them. Tasks complete by themselves: the service
//! follows `ContactFinished` events and completes a running task when its last contact finishes.

pub mod db;
pub mod domain;
mod error;
pub mod grpc;
pub mod tenants;

use tokio_util::sync::CancellationToken;
use waihu_bus::{BatchHandler, Bus, ConsumerSpec, Delivery, HandlerError, Runner};
use waihu_events::Event;
use waihu_proto::v1::{
    task_service_server::TaskServiceServer, tenant_service_server::TenantServiceServer,
};

/// How often running tasks of tenants whose automatic dialing closed are looked for (and
/// paused).
const ENTITLEMENT_WATCH: std::time::Duration = std::time::Duration::from_secs(5);
use waihu_runtime::{CommonConfig, ConfigError, ServiceHandle, StartError, Workers};

pub use error::TaskError;

#[derive(Debug, Clone)]
pub struct TaskConfig {
    pub common: CommonConfig,
}

impl TaskConfig {
    pub const DEFAULT_PORT: u16 = 50051;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_layers(&waihu_runtime::config::Layers::from_process()?)
    }

    pub fn from_layers(layers: &waihu_runtime::config::Layers) -> Result<Self, ConfigError> {
        Ok(TaskConfig {
            common: CommonConfig::from_layers(layers, Self::DEFAULT_PORT)?,
        })
    }
}

/// Follows `ContactFinished` to count finished contacts and complete tasks.
struct Completion {
    db: db::Db,
}

impl BatchHandler for Completion {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut items = Vec::with_capacity(batch.len());
        for d in batch {
            if let Event::ContactFinished(f) = &d.event.event {
                let task = uuid::Uuid::parse_str(&f.task_id).map_err(|_| {
                    HandlerError::Permanent(format!("task_id {:?} is not a UUID", f.task_id))
                })?;
                items.push((task, f.contact_no, f.outcome as i16));
            }
        }
        self.db
            .contacts_finished(&items)
            .await
            .map_err(|e| match e {
                TaskError::Store(s) if !s.is_transient() => HandlerError::Permanent(s.to_string()),
                other => HandlerError::Transient(other.to_string()),
            })
    }
}

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "task";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates, and serves until `shutdown`.
pub async fn start(
    config: TaskConfig,
    shutdown: CancellationToken,
) -> Result<ServiceHandle, StartError> {
    let c = &config.common;
    let pool = c.open_database(SCHEMA, &MIGRATOR).await?;
    let bus = Bus::connect(&c.bus()).await?;
    let db = db::Db::new(pool.clone());

    let mut workers = Workers::new();
    workers.keep_statistics(pool.clone(), SCHEMA);
    let stop = workers.stop_token();
    workers.spawn(db.outbox.relay(pool, bus.clone()).run(stop.clone()));
    let completion = db.clone();
    workers.supervise("task-completion", move || {
        let (bus, db, stop) = (bus.clone(), completion.clone(), stop.clone());
        async move {
            let spec = ConsumerSpec::new("task-completion", "contact")
                .types(&["ContactFinished"])
                .patient();
            let runner = Runner::new(&bus, spec, 20_000)
                .await
                .map_err(|e| e.to_string())?;
            runner
                .run_batched(Completion { db }, stop)
                .await
                .map_err(|e| e.to_string())
        }
    });

    let watched = db.clone();
    let stop = workers.stop_token();
    workers.supervise("entitlement-watch", move || {
        let (db, stop) = (watched.clone(), stop.clone());
        tenants::watch(db, ENTITLEMENT_WATCH, stop)
    });

    waihu_runtime::serve(c, workers, shutdown, |r| {
        r.add_service(TaskServiceServer::new(grpc::TaskApi { db: db.clone() }))
            .add_service(TenantServiceServer::new(tenants::TenantApi { db }))
    })
    .await
}
