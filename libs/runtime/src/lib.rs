//! What every waihu binary needs around its service: typed configuration from `WAIHU_*`
//! environment variables, tracing with optional OTLP export, SIGTERM handling, and a gRPC server
//! with health reporting that drains on shutdown.

pub mod config;
mod serve;
pub mod telemetry;

pub use config::{CommonConfig, ConfigError};
pub use serve::{bind, health, shutdown_on_signal, GrpcServer};
