//! What every waihu binary needs around its service: typed configuration from `WAIHU_*`
//! environment variables, tracing with optional OTLP export, SIGTERM handling, and a gRPC server
//! with health reporting that drains on shutdown.

pub mod api;
pub mod config;
mod health;
pub mod memory;
pub mod metrics;
mod serve;
pub mod statistics;
pub mod telemetry;
mod tenant;

pub use api::{
    check_text, page_token, parse_id_or_number, parse_optional_uuid, parse_time, parse_uuid,
    ApiError, IdOrNumber,
};
pub use config::{CommonConfig, ConfigError};
pub use health::{supervise, Health};
pub use serve::{bind, health, is_serving, shutdown_on_signal, GrpcServer, Routes, ServiceHandle};
pub use tenant::{actor, tenant};

/// Error from assembling a service at start-up.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// What every service binary sets up first: transparent huge pages off for the process (see
/// [`memory`]; a failure is logged, not fatal), then telemetry. Keep the guard for the process's
/// life.
pub fn start_process(name: &'static str) -> telemetry::TelemetryGuard {
    let huge_pages = memory::no_transparent_huge_pages();
    let guard = telemetry::init(name);
    if let Err(e) = huge_pages {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off for this process");
    }
    guard
}

/// The whole `main` of a service binary: telemetry, config, start, serve until SIGTERM, drain.
pub async fn run_service<C, F, Fut>(
    name: &'static str,
    config: Result<C, ConfigError>,
    start: F,
) -> std::process::ExitCode
where
    C: std::fmt::Debug,
    F: FnOnce(C, tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<ServiceHandle, StartError>>,
{
    let _telemetry = start_process(name);
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!(?config, "{name} starting");
    waihu_metrics::metrics().build(name, env!("CARGO_PKG_VERSION"));
    let shutdown = shutdown_on_signal();
    match start(config, shutdown).await {
        Ok(handle) => {
            tracing::info!(addr = %handle.addr, metrics = ?handle.metrics_addr, "{name} serving gRPC");
            handle.wait().await;
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "{name} failed to start");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Background work of a service: started with a stop token that fires only after the gRPC
/// server has drained (so work that in-flight requests commit, such as outbox rows, still goes
/// out), supervised, and reported in health.
pub struct Workers {
    set: tokio::task::JoinSet<()>,
    stop: tokio_util::sync::CancellationToken,
    health: Health,
}

impl Default for Workers {
    fn default() -> Self {
        Workers::new()
    }
}

impl Workers {
    pub fn new() -> Self {
        Workers {
            set: tokio::task::JoinSet::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            health: Health::new(),
        }
    }

    /// Fires when the workers must stop (after the server has drained).
    pub fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Runs a future until it ends by itself (it should watch [`Workers::stop_token`]).
    pub fn spawn(&mut self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.set.spawn(work);
    }

    /// Keeps the planner's statistics of `schema`'s tables current ([`statistics::keep`]): best
    /// effort, so not a required worker.
    pub fn keep_statistics(&mut self, pool: sqlx::PgPool, schema: &'static str) {
        let stop = self.stop.clone();
        self.spawn(statistics::keep(pool, schema, stop));
    }

    /// Runs a required worker under [`supervise`]: restarted when it fails or panics, and the
    /// service NOT_SERVING meanwhile.
    pub fn supervise<F, Fut>(&mut self, part: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.set.spawn(supervise(
            part,
            self.health.clone(),
            self.stop.clone(),
            make,
        ));
    }
}

/// Serves gRPC on `config.grpc_addr` with health and reflection plus whatever `routes` adds, and
/// runs `workers`, until `shutdown`; then drains (see [`ServiceHandle::wait`]).
pub async fn serve(
    config: &CommonConfig,
    workers: Workers,
    shutdown: tokio_util::sync::CancellationToken,
    routes: impl FnOnce(Routes) -> Routes,
) -> Result<ServiceHandle, StartError> {
    let auth = waihu_auth::AuthLayer::from_config(&config.auth)?;
    let (reporter, health) = health();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(waihu_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(waihu_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let router = routes(
        tonic::transport::Server::builder()
            .layer(metrics::GrpcMetricsLayer)
            .layer(auth)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha),
    );
    let (listener, _) = bind(config.grpc_addr).await?;
    let mut workers = workers;
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_addr {
        let metrics_listener = metrics::bind(addr).await?;
        metrics_addr = metrics_listener.local_addr().ok();
        let stop = workers.stop_token();
        workers.spawn(metrics::serve(metrics_listener, stop));
    }
    let mut handle = ServiceHandle::start(
        router,
        listener,
        reporter,
        workers,
        shutdown,
        config.shutdown_grace,
    )
    .await?;
    handle.metrics_addr = metrics_addr;
    Ok(handle)
}
