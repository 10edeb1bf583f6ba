//! The store writer: the one ordered writer of the event store. It reads the events stream from
//! its own checkpoint with an ordered consumer (so a crash can never let a later event overtake an
//! earlier one), and in one transaction appends the batch (idempotent on event id), applies the
//! projections for the events that were new, and moves the checkpoint.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use waihu_bus::{Bus, DeadLetter, OrderedReader, RawEvent};
use waihu_events::RecordedEvent;
use waihu_store::{StoreError, StoredEvent};

use crate::projection::{self, Tables};

pub const CHECKPOINT: &str = "store";
const LEADER_LOCK: &str = "waihu-store-writer";

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Events per transaction at most.
    pub batch: usize,
    /// How long to wait for the first event of a batch before checking for shutdown.
    pub linger: Duration,
    /// How long to keep filling a batch once it has its first event.
    pub fill: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch: 2000,
            linger: Duration::from_millis(100),
            fill: Duration::from_millis(20),
        }
    }
}

/// Runs until `shutdown`. Only one writer per database writes at a time (advisory lock); others
/// wait as hot standbys. Reading and decoding run in their own task, a few batches ahead of the
/// database writes.
pub async fn run(
    pool: PgPool,
    database_url: String,
    bus: Bus,
    config: WriterConfig,
    shutdown: CancellationToken,
) {
    waihu_store::while_leader(&database_url, LEADER_LOCK, &shutdown, |term| {
        write_term(pool.clone(), bus.clone(), config.clone(), term)
    })
    .await
}

/// One leadership term of the writer.
async fn write_term(pool: PgPool, bus: Bus, config: WriterConfig, shutdown: CancellationToken) {
    let position = loop {
        match waihu_store::checkpoint(&pool, CHECKPOINT).await {
            Ok(p) => break p,
            Err(e) => {
                warn!(error = %e, "cannot read checkpoint; retrying");
                if sleep_or_stop(&shutdown, Duration::from_secs(1)).await {
                    return;
                }
            }
        }
    };
    match bus.last_sequence().await {
        Ok(last) if last < position => error!(
            last,
            position,
            "the events stream ends before the store's checkpoint: it was recreated or purged; \
             events published there now are below the checkpoint and will not be stored until an \
             operator resolves it"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the events stream's state"),
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<StoredEvent>, u64)>(4);
    let reader = tokio::spawn(read_ahead(bus, position, config, tx, shutdown.clone()));
    while let Some((stored, last)) = tokio::select! {
        _ = shutdown.cancelled() => None,
        b = rx.recv() => b,
    } {
        // Never move past a batch that is not stored: retry it until it is, or we stop.
        loop {
            match write_batch(&pool, &stored, last).await {
                Ok(()) => break,
                Err(e) => {
                    error!(error = %e, last, "store write failed; retrying the batch");
                    if sleep_or_stop(&shutdown, Duration::from_millis(500)).await {
                        reader.abort();
                        return;
                    }
                }
            }
        }
    }
    reader.abort();
}

/// Reads the stream in order from `position`, decodes, and hands batches to the writer.
async fn read_ahead(
    bus: Bus,
    mut position: u64,
    config: WriterConfig,
    out: tokio::sync::mpsc::Sender<(Vec<StoredEvent>, u64)>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let mut reader = match OrderedReader::open(&bus, position).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot open the events stream; retrying");
                if sleep_or_stop(&shutdown, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let batch = match reader
                .next_batch(config.batch, config.linger, config.fill)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, position, "events stream interrupted; reopening");
                    break;
                }
            };
            let batch: Vec<RawEvent> = batch
                .into_iter()
                .filter(|m| m.stream_seq > position)
                .collect();
            let Some(last) = batch.last().map(|m| m.stream_seq) else {
                continue;
            };
            let stored = decode(&bus, batch).await;
            if out.send((stored, last)).await.is_err() {
                return;
            }
            position = last;
        }
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Decodes a batch; what cannot be decoded is dead-lettered with the reason and skipped.
async fn decode(bus: &Bus, batch: Vec<RawEvent>) -> Vec<StoredEvent> {
    let mut out = Vec::with_capacity(batch.len());
    for m in batch {
        match RecordedEvent::decode(&m.payload) {
            Ok(event) => out.push(StoredEvent {
                position: m.stream_seq,
                event,
                envelope: m.payload.to_vec(),
            }),
            Err(e) => {
                let reason = format!("not a waihu event: {e}");
                error!(seq = m.stream_seq, subject = %m.subject, %reason, "dead-lettering");
                let letter = DeadLetter {
                    consumer: "store-writer",
                    subject: &m.subject,
                    stream_seq: m.stream_seq,
                    deliveries: 1,
                    reason: &reason,
                };
                if let Err(e) = bus.dead_letter(letter, None, m.payload).await {
                    // The original stays in JetStream at its sequence; the log says where.
                    error!(seq = m.stream_seq, error = %e, "dead letter not stored");
                }
            }
        }
    }
    out
}

async fn write_batch(pool: &PgPool, batch: &[StoredEvent], last: u64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let new = waihu_store::append(&mut tx, batch).await?;
    let fresh: Vec<&RecordedEvent> = batch
        .iter()
        .zip(&new)
        .filter(|(_, n)| **n)
        .map(|(e, _)| &e.event)
        .collect();
    projection::apply(&mut tx, &Tables::live(), &fresh).await?;
    waihu_store::set_checkpoint(&mut tx, CHECKPOINT, last).await?;
    tx.commit().await?;
    Ok(())
}
