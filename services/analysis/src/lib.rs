//! The analysis service: what each answered call's conversation says.
//!
//! It follows the transcripts of answered calls (`TranscriptAvailable`: the provider's own, or
//! the simulator's dialogue) and their stored recordings (`RecordingStored`), queues the work in
//! its own table (`analysis.analysis_calls`), gets a transcript where there is none from an ASR
//! backend (an OpenAI-compatible `/audio/transcriptions`), analyses it with the tenant's
//! analyzer (the local `waihu-analyzer`, or an OpenAI-compatible chat endpoint answering in a
//! JSON schema) and publishes `AnalysisCompleted` (or `AnalysisFailed`, retried with backoff up
//! to `analysis.max_attempts`) on the call's analysis stream (`analysis-<call>`) through its
//! outbox. The record service projects them into the call record, the task statistics (intents,
//! grades, seed 001's categories, seed 002's intendedCustomers) and `replay --verify`.
//! `AnalysisService` answers where an analysis stands and analyses a call again.

pub mod backends;
pub mod config;
pub mod grpc;
pub mod intake;
pub mod work;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use waihu_analyzer::Analyzer;
use waihu_bus::{Bus, ConsumerSpec, Runner};
use waihu_proto::v1::analysis_service_server::AnalysisServiceServer;
use waihu_runtime::{ServiceHandle, StartError, Workers};
use waihu_store::Outbox;

pub use config::{AnalysisConfig, Choice};
pub use work::{LOCAL_ANALYZER, MAX_TRANSCRIPT_BYTES};

/// The service's PostgreSQL schema.
pub const SCHEMA: &str = "analysis";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
/// The outbox producer of its events.
const PRODUCER: &str = "analysis";

/// Connects and serves until `shutdown`.
pub async fn start(
    config: AnalysisConfig,
    shutdown: CancellationToken,
) -> Result<ServiceHandle, StartError> {
    let c = config.common.clone();
    let pool = c.open_database(SCHEMA, &MIGRATOR).await?;
    let bus = Bus::connect(&c.bus()).await?;
    let analyzer = Arc::new(tokio::task::spawn_blocking(Analyzer::new).await?);
    // The recordings storage is read only to transcribe: opened when there is an ASR backend.
    let recordings = match config.asr {
        Some(_) => Some(config.recordings.open().map_err(|e| e.to_string())?),
        None => None,
    };
    let client = backends::Client::new().map_err(|e| format!("analysis HTTP client: {e}"))?;
    let config = Arc::new(config);
    let wake = Arc::new(tokio::sync::Notify::new());
    let outbox = Outbox::new(PRODUCER);
    let mut workers = Workers::new();
    workers.keep_statistics(pool.clone(), SCHEMA);

    let relay = (outbox.clone(), pool.clone(), bus.clone());
    let stop = workers.stop_token();
    workers.supervise("analysis-outbox", move || {
        let (outbox, pool, bus, stop) = (
            relay.0.clone(),
            relay.1.clone(),
            relay.2.clone(),
            stop.clone(),
        );
        async move {
            outbox.relay(pool, bus).run(stop).await;
            Ok(())
        }
    });

    let intake = intake::Intake {
        pool: pool.clone(),
        asr: config.asr.is_some(),
        asr_grace: config.asr_grace,
        wake: wake.clone(),
    };
    for (name, kind, types) in [
        ("analysis-transcripts", "call", &["TranscriptAvailable"][..]),
        ("analysis-recordings", "recording", &["RecordingStored"][..]),
    ] {
        let (bus, intake, stop) = (bus.clone(), intake.clone(), workers.stop_token());
        workers.supervise(name, move || {
            let (bus, intake, stop) = (bus.clone(), intake.clone(), stop.clone());
            async move {
                let spec = ConsumerSpec::new(name, kind).types(types).patient();
                let runner = Runner::new(&bus, spec, 2_000)
                    .await
                    .map_err(|e| e.to_string())?;
                runner
                    .run_batched(intake, stop)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
    }

    let worker = work::Worker {
        pool: pool.clone(),
        config: config.clone(),
        analyzer,
        client,
        recordings,
        outbox,
        wake: wake.clone(),
    };
    let stop = workers.stop_token();
    workers.supervise("analysis-worker", move || {
        let (w, stop) = (worker.clone(), stop.clone());
        async move {
            w.run(stop).await;
            Ok(())
        }
    });

    let api = grpc::AnalysisApi {
        pool,
        config: config.clone(),
        wake,
    };
    waihu_runtime::serve(&c, workers, shutdown, |r| {
        r.add_service(AnalysisServiceServer::new(api))
    })
    .await
}
