//! The dialer: decides who is called when. It follows task events (contacts, start, pause,
//! resume, cancel) and call releases, and fills each line's free slots with due contacts of
//! running tasks. Every decision commits together with its events (outbox), and a contact is
//! only dialed from the pending state under a row lock, so a crash or restart never dials a
//! contact twice at once and never forgets a call. One instance dials at a time (leader lock);
//! others stand by.

mod calls;
mod campaign;
pub mod db;
pub mod dnc;
mod explain;
mod grpc;
pub mod manual;
pub mod planner;
pub mod rules;
pub mod validity;
mod watchdog;

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use waihu_bus::{BatchHandler, Bus, ConsumerSpec, Delivery, HandlerError, Runner};
use waihu_proto::v1::dialer_service_server::DialerServiceServer;
use waihu_runtime::{
    config::Layers, CommonConfig, ConfigError, ServiceHandle, StartError, Workers,
};

use db::{Db, DialerError, RoundRules};
use waihu_telephony::window::Window;

#[derive(Debug, Clone)]
pub struct DialerConfig {
    pub common: CommonConfig,
    /// How often to look for due contacts when nothing wakes the dialer; also how far ahead a
    /// paced line may start calls in one round.
    pub tick: Duration,
    /// A call out longer than this is looked into by the watchdog (and declared released if
    /// its provider never said so).
    pub call_timeout: Duration,
    /// The calling window of tasks that set none.
    pub default_window: Window,
    /// Weights of priorities 0, 1 and 2 when tasks compete for lines.
    pub priority_weights: [u32; 3],
}

/// The `[dialer]` settings as written.
#[derive(serde::Deserialize)]
#[serde(default)]
struct DialerSection {
    /// Gone: lines are managed through `ProviderService` (`waihu line create`).
    lines: Option<String>,
    tick_ms: u64,
    call_timeout_seconds: u64,
    /// Daily ranges, comma-separated: "09:00-12:00,14:00-20:00".
    default_window: String,
    /// "1,2,4": weights of priorities 0, 1, 2.
    priority_weights: String,
}

impl Default for DialerSection {
    fn default() -> Self {
        DialerSection {
            lines: None,
            tick_ms: 100,
            call_timeout_seconds: 7200,
            default_window: "09:00-20:00".into(),
            priority_weights: "1,2,4".into(),
        }
    }
}

impl DialerConfig {
    pub const DEFAULT_PORT: u16 = 50052;

    /// The rules a dial round applies beside the tasks' own.
    pub fn rules(&self) -> RoundRules {
        RoundRules {
            burst: self.tick,
            default_window: self.default_window.clone(),
            weights: self.priority_weights,
        }
    }

    /// `[dialer] tick_ms` (100), `call_timeout_seconds` (7200), `default_window`
    /// ("09:00-20:00": the calling hours, every day, of tasks that set no window; several ranges
    /// comma-separated), and the common settings.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process()?)
    }

    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let d: DialerSection = layers.section("dialer")?;
        if d.lines.is_some() {
            return Err(ConfigError::invalid(
                "dialer.lines",
                "is gone: lines are created through ProviderService (`waihu line create`), \
                 per tenant",
            ));
        }
        if d.tick_ms == 0 {
            return Err(ConfigError::invalid("dialer.tick_ms", "must be at least 1"));
        }
        if d.call_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "dialer.call_timeout_seconds",
                "must be at least 1",
            ));
        }
        let ranges: Vec<String> = d
            .default_window
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        let default_window = Window::parse_hours(&ranges).map_err(|e| {
            ConfigError::invalid(
                "dialer.default_window",
                format!("{}: {}", e.field, e.reason),
            )
        })?;
        let weights: Vec<u32> = d
            .priority_weights
            .split(',')
            .map(|w| w.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .ok()
            .filter(|w: &Vec<u32>| w.len() == 3 && w.iter().all(|x| (1..=1000).contains(x)))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "dialer.priority_weights",
                    "three weights 1-1000 for priorities 0, 1, 2, e.g. \"1,2,4\"",
                )
            })?;
        Ok(DialerConfig {
            common: CommonConfig::from_layers(layers, Self::DEFAULT_PORT)?,
            tick: Duration::from_millis(d.tick_ms),
            call_timeout: Duration::from_secs(d.call_timeout_seconds),
            default_window,
            priority_weights: [weights[0], weights[1], weights[2]],
        })
    }

    pub fn new(common: CommonConfig) -> Self {
        DialerConfig {
            common,
            tick: Duration::from_millis(50),
            call_timeout: Duration::from_secs(7200),
            default_window: Window::default(),
            priority_weights: [1, 2, 4],
        }
    }
}

fn handler_error(e: DialerError) -> HandlerError {
    match e {
        DialerError::Bad(m) => HandlerError::Permanent(m),
        DialerError::Store(s) if !s.is_transient() => HandlerError::Permanent(s.to_string()),
        other => HandlerError::Transient(other.to_string()),
    }
}

/// Which state a consumer of events keeps for the dialer.
#[derive(Clone, Copy)]
enum Follows {
    Tasks,
    Tenants,
    Lines,
    Screening,
}

/// Applies task or tenant events to the dialer's state, then wakes the dial loop.
struct Follower {
    db: Db,
    wake: Arc<Notify>,
    follows: Follows,
}

impl BatchHandler for Follower {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let events: Vec<_> = batch.iter().map(|d| &d.event).collect();
        match self.follows {
            Follows::Tasks => self.db.apply_task_events(&events).await,
            Follows::Tenants => self.db.apply_tenant_events(&events).await,
            Follows::Lines => self.db.apply_line_events(&events).await,
            Follows::Screening => self.db.apply_screening_events(&events).await,
        }
        .map_err(handler_error)?;
        self.wake.notify_one();
        Ok(())
    }
}

struct Releases {
    db: Db,
    wake: Arc<Notify>,
}

impl BatchHandler for Releases {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut releases = Vec::with_capacity(batch.len());
        for d in batch {
            if let Some(r) = db::release_of(&d.event).map_err(handler_error)? {
                releases.push(r);
            }
        }
        if self
            .db
            .apply_released(&releases)
            .await
            .map_err(handler_error)?
            > 0
        {
            self.wake.notify_one();
        }
        Ok(())
    }
}

async fn dial_loop(
    db: Db,
    tick: Duration,
    rules: RoundRules,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let handed = match db.campaign_round(&rules.default_window).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "campaign round failed");
                0
            }
        };
        match db.dial_round(&rules).await {
            Ok(n) if n > 0 => continue,
            Ok(_) if handed > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "dial round failed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// Everything the leader runs for one term: consumers, the dial loop and the outbox relay.
async fn lead(
    config: DialerConfig,
    bus: Bus,
    db: Db,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let wake = Arc::new(Notify::new());
    let tasks = Runner::new(
        &bus,
        ConsumerSpec::new("dialer-tasks", "task").patient(),
        20_000,
    )
    .await?;
    let calls = Runner::new(
        &bus,
        ConsumerSpec::new("dialer-calls", "call")
            .types(&["CallReleased"])
            .patient(),
        20_000,
    )
    .await?;
    let tenants = Runner::new(
        &bus,
        ConsumerSpec::new("dialer-tenants", "tenant").patient(),
        1_000,
    )
    .await?;
    let lines = Runner::new(
        &bus,
        ConsumerSpec::new("dialer-lines", "line").patient(),
        1_000,
    )
    .await?;
    let screening = Runner::new(
        &bus,
        ConsumerSpec::new("dialer-screening", "screening")
            .types(&["NumbersScreened", "NumberValidityOverridden"])
            .patient(),
        1_000,
    )
    .await?;
    let mut set = tokio::task::JoinSet::new();
    let (h, s) = (
        Follower {
            db: db.clone(),
            wake: wake.clone(),
            follows: Follows::Screening,
        },
        shutdown.clone(),
    );
    set.spawn(async move {
        if let Err(e) = screening.run_batched(h, s).await {
            error!(error = %e, "screening-event consumer stopped");
        }
    });
    let (h, s) = (
        Follower {
            db: db.clone(),
            wake: wake.clone(),
            follows: Follows::Lines,
        },
        shutdown.clone(),
    );
    set.spawn(async move {
        if let Err(e) = lines.run_batched(h, s).await {
            error!(error = %e, "line-event consumer stopped");
        }
    });
    let (h, s) = (
        Follower {
            db: db.clone(),
            wake: wake.clone(),
            follows: Follows::Tenants,
        },
        shutdown.clone(),
    );
    set.spawn(async move {
        if let Err(e) = tenants.run_batched(h, s).await {
            error!(error = %e, "tenant-event consumer stopped");
        }
    });
    set.spawn(
        db.outbox
            .relay(db.pool.clone(), bus.clone())
            .run(shutdown.clone()),
    );
    let (h, s) = (
        Follower {
            db: db.clone(),
            wake: wake.clone(),
            follows: Follows::Tasks,
        },
        shutdown.clone(),
    );
    set.spawn(async move {
        if let Err(e) = tasks.run_batched(h, s).await {
            error!(error = %e, "task-event consumer stopped");
        }
    });
    let (h, s) = (
        Releases {
            db: db.clone(),
            wake: wake.clone(),
        },
        shutdown.clone(),
    );
    set.spawn(async move {
        if let Err(e) = calls.run_batched(h, s).await {
            error!(error = %e, "call-release consumer stopped");
        }
    });
    set.spawn(watchdog::run(
        db.clone(),
        bus.clone(),
        config.call_timeout,
        wake.clone(),
        shutdown.clone(),
    ));
    set.spawn(dial_loop(
        db,
        config.tick,
        config.rules(),
        wake,
        shutdown.clone(),
    ));
    // If any part stops, this term ends; `while_leader` starts a fresh one.
    set.join_next().await;
    shutdown.cancel();
    while set.join_next().await.is_some() {}
    Ok(())
}

/// Manual dials one replica works on at once (the rest queue in memory, not on connections).
const MANUAL_DIALS_AT_ONCE: usize = 2;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "dialer";
/// The dialer's migrations (its schema, [`SCHEMA`]).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, migrates, and dials until `shutdown`.
pub async fn start(
    config: DialerConfig,
    shutdown: CancellationToken,
) -> Result<ServiceHandle, StartError> {
    let c = &config.common;
    let pool = c.open_database(SCHEMA, &MIGRATOR).await?;
    let bus = Bus::connect(&c.bus()).await?;
    let db = Db::new(pool);
    let api = grpc::DialerApi {
        db: db.clone(),
        bus: bus.clone(),
        dial_gate: Arc::new(tokio::sync::Semaphore::new(MANUAL_DIALS_AT_ONCE)),
        rules: config.rules(),
    };
    let mut workers = Workers::new();
    workers.keep_statistics(db.pool.clone(), SCHEMA);
    let stop = workers.stop_token();
    let config = config.clone();
    workers.supervise("dialer", move || {
        let (cfg, bus, db, stop) = (config.clone(), bus.clone(), db.clone(), stop.clone());
        async move {
            let url = cfg.common.database_url.expose().to_string();
            waihu_store::while_leader(&url, "waihu-dialer", &stop, |term| {
                let (cfg, bus, db) = (cfg.clone(), bus.clone(), db.clone());
                async move {
                    if let Err(e) = lead(cfg, bus, db, term).await {
                        error!(error = %e, "dialer leadership term failed");
                    }
                }
            })
            .await;
            Ok(())
        }
    });
    waihu_runtime::serve(c, workers, shutdown, |r| {
        r.add_service(DialerServiceServer::new(api))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_loader_and_the_old_lines_variable_is_refused_by_name() {
        let layers = |pairs: &[(&str, &str)]| {
            Layers::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .expect("layers")
        };
        let c = DialerConfig::from_layers(&layers(&[])).expect("config");
        assert_eq!(c.tick, Duration::from_millis(100));
        let e = DialerConfig::from_layers(&layers(&[("WAIHU_DIALER__LINES", "a:2")]))
            .expect_err("gone");
        assert!(e.setting.contains("WAIHU_DIALER__LINES"), "{e}");
        assert_eq!(c.default_window, Window::default());
        assert_eq!(c.priority_weights, [1, 2, 4]);
        let e = DialerConfig::from_layers(&layers(&[("WAIHU_DIALER__PRIORITY_WEIGHTS", "1,2")]))
            .expect_err("two weights");
        assert!(e.setting.contains("WAIHU_DIALER__PRIORITY_WEIGHTS"), "{e}");
        let e = DialerConfig::from_layers(&layers(&[("WAIHU_DIALER__DEFAULT_WINDOW", "9-5")]))
            .expect_err("bad window");
        assert!(e.setting.contains("WAIHU_DIALER__DEFAULT_WINDOW"), "{e}");
        let e = DialerConfig::from_layers(&layers(&[("WAIHU_DIALER__TICK_MS", "soon")]))
            .expect_err("not a number");
        assert!(e.setting.contains("WAIHU_DIALER__TICK_MS"), "{e}");
    }
}
