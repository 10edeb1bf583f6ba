//! The provider adapter: hands dial commands to the provider of their line (`providers/`), whose
//! signals the call ledger turns into normalised call events. This build has the simulator provider; the SIP trunk and cloud
//! call centres (Aliyun, Tencent, Ronglian) come in later issues.

pub mod adapter;

pub use waihu_provider_sim as sim;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use waihu_bus::{Bus, ConsumerSpec, Runner};
use waihu_runtime::{
    config::env_or, CommonConfig, ConfigError, ServiceHandle, StartError, Workers,
};

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub common: CommonConfig,
    pub simulator: sim::Simulator,
    /// Calls played at once at most.
    pub max_in_flight: usize,
}

impl ProviderConfig {
    pub const DEFAULT_PORT: u16 = 50053;

    /// `WAIHU_SIMULATOR__{SEED,MIX,RING_MS,TALK_MS,NO_ANSWER_TIMEOUT_MS,SETUP_MS,TIME_SCALE}`,
    /// `WAIHU_PROVIDER__MAX_IN_FLIGHT`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = sim::Simulator::default();
        let time_scale: f64 = env_or("WAIHU_SIMULATOR__TIME_SCALE", &[], d.time_scale)?;
        if !(time_scale.is_finite() && time_scale >= 0.0) {
            return Err(ConfigError {
                var: "WAIHU_SIMULATOR__TIME_SCALE".into(),
                value: time_scale.to_string(),
                reason: "must be 0 (no waiting) or a positive speed-up".into(),
            });
        }
        Ok(ProviderConfig {
            common: CommonConfig::from_env(Self::DEFAULT_PORT)?,
            simulator: sim::Simulator {
                seed: env_or("WAIHU_SIMULATOR__SEED", &[], d.seed)?,
                mix: env_or("WAIHU_SIMULATOR__MIX", &[], d.mix)?,
                ring_ms: env_or("WAIHU_SIMULATOR__RING_MS", &[], d.ring_ms)?,
                talk_ms: env_or("WAIHU_SIMULATOR__TALK_MS", &[], d.talk_ms)?,
                no_answer_timeout_ms: env_or(
                    "WAIHU_SIMULATOR__NO_ANSWER_TIMEOUT_MS",
                    &[],
                    d.no_answer_timeout_ms,
                )?,
                setup_ms: env_or("WAIHU_SIMULATOR__SETUP_MS", &[], d.setup_ms)?,
                time_scale,
            },
            max_in_flight: env_or("WAIHU_PROVIDER__MAX_IN_FLIGHT", &[], 5000)?,
        })
    }

    pub fn new(common: CommonConfig, simulator: sim::Simulator) -> Self {
        ProviderConfig {
            common,
            simulator,
            max_in_flight: 5000,
        }
    }
}

/// Connects and plays dial commands until `shutdown`; calls in flight get the grace period to
/// finish, the rest are redelivered to another instance and resumed there.
pub async fn start(
    config: ProviderConfig,
    shutdown: CancellationToken,
) -> Result<ServiceHandle, StartError> {
    let c = &config.common;
    let bus = Bus::connect(&c.bus()).await?;
    let max = config.max_in_flight;
    let handler = Arc::new(adapter::Dispatcher {
        bus: bus.clone(),
        sim: waihu_provider_sim::SimProvider {
            sim: config.simulator.clone(),
        },
    });
    let mut workers = Workers::new();
    let (stop, grace) = (workers.stop_token(), c.shutdown_grace);
    workers.supervise("provider-simulator", move || {
        let (bus, handler, stop) = (bus.clone(), handler.clone(), stop.clone());
        async move {
            let spec = ConsumerSpec::new("provider-simulator", "call")
                .types(&["CallRequested"])
                .patient();
            let runner = Runner::new(&bus, spec, (max * 2) as i64)
                .await
                .map_err(|e| e.to_string())?;
            runner
                .run_concurrent(handler, max, stop, grace)
                .await
                .map_err(|e| e.to_string())
        }
    });
    waihu_runtime::serve(c, workers, shutdown, |r| r).await
}
