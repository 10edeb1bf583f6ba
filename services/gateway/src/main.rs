use std::process::ExitCode;

use waihu_gateway::{start, GatewayConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = waihu_runtime::start_process("waihu-gateway");
    let config = match GatewayConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            return ExitCode::from(2);
        }
    };
    tracing::info!(?config, "waihu-gateway starting");
    waihu_metrics::metrics().build("waihu-gateway", env!("CARGO_PKG_VERSION"));
    let shutdown = waihu_runtime::shutdown_on_signal();
    match start(config, shutdown).await {
        Ok(handle) => {
            tracing::info!(addr = %handle.addr, "waihu-gateway serving HTTP");
            match handle.wait().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "waihu-gateway stopped");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "waihu-gateway failed to start");
            ExitCode::FAILURE
        }
    }
}
