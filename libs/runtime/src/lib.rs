//! What every waihu binary needs around its service: typed configuration from `WAIHU_*`
//! environment variables, tracing with optional OTLP export, SIGTERM handling, and a gRPC server
//! with health reporting that drains on shutdown.

pub mod config;
mod serve;
pub mod telemetry;
mod tenant;

pub use config::{CommonConfig, ConfigError};
pub use serve::{bind, health, shutdown_on_signal, GrpcServer, ServiceHandle};
pub use tenant::tenant;

/// Error from assembling a service at start-up.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

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
    let _telemetry = telemetry::init(name);
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!(?config, "{name} starting");
    let shutdown = shutdown_on_signal();
    match start(config, shutdown).await {
        Ok(handle) => {
            tracing::info!(addr = %handle.addr, "{name} serving gRPC");
            handle.wait().await;
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "{name} failed to start");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves gRPC on `config.grpc_addr` with the health service plus whatever `routes` adds, and
/// runs `workers`, until `shutdown`; then drains (see [`ServiceHandle::wait`]).
pub async fn serve(
    config: &CommonConfig,
    workers: tokio::task::JoinSet<()>,
    shutdown: tokio_util::sync::CancellationToken,
    routes: impl FnOnce(tonic::transport::server::Router) -> tonic::transport::server::Router,
) -> Result<ServiceHandle, StartError> {
    let (reporter, health) = health();
    let router = routes(tonic::transport::Server::builder().add_service(health));
    let (listener, _) = bind(config.grpc_addr).await?;
    Ok(ServiceHandle::start(
        router,
        listener,
        reporter,
        workers,
        shutdown,
        config.shutdown_grace,
    )
    .await?)
}
