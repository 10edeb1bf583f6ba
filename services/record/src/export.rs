//! Server-streaming reads for analysts: the event export and the replay verification. Both page
//! through the store and hand results over a bounded channel, so memory stays flat whatever the
//! size of the store, and both stop when the client goes away.

use prost::Message;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use waihu_events::timestamp;
use waihu_proto::v1 as pb;
use waihu_store::EventQuery;

use crate::{grpc::RecordError, replay, writer::CHECKPOINT};

pub type EventStream = ReceiverStream<Result<pb::ExportedEvent, Status>>;
pub type VerifyStream = ReceiverStream<Result<pb::VerifyReplayUpdate, Status>>;

const PAGE: u32 = 2000;

/// Streams the events `q` selects, up to `limit` (0 = all), ending at the store's position as of
/// the call when `q.to_position` is None.
pub async fn export(pool: PgPool, mut q: EventQuery, limit: u64) -> Result<EventStream, Status> {
    if q.to_position.is_none() {
        let head = waihu_store::checkpoint(&pool, CHECKPOINT)
            .await
            .map_err(RecordError::from)?;
        q.to_position = Some(head);
    }
    q.limit = PAGE;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            let page = match waihu_store::read(&pool, &q).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(Status::from(RecordError::from(e)))).await;
                    return;
                }
            };
            let Some(last) = page.last().map(|e| e.position) else {
                return;
            };
            for e in page {
                let envelope = match pb::Envelope::decode(e.envelope.as_ref()) {
                    Ok(env) => env,
                    Err(err) => {
                        let reason = format!("stored envelope at {} is corrupt: {err}", e.position);
                        let _ = tx.send(Err(Status::internal(reason))).await;
                        return;
                    }
                };
                let item = pb::ExportedEvent {
                    position: e.position,
                    known: e.event.known().is_some(),
                    envelope: Some(envelope),
                    recorded_at: e.recorded_at.map(timestamp),
                };
                if tx.send(Ok(item)).await.is_err() {
                    return; // the client went away
                }
                sent += 1;
                if limit > 0 && sent >= limit {
                    return;
                }
            }
            q.after_position = last;
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Runs the replay verification, streaming progress (at most every 10,000 events) and then the
/// report.
pub fn verify(pool: PgPool) -> VerifyStream {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let mut replayed = 0u64;
        let mut last_sent = 0u64;
        let result = replay::verify(&pool, |at, head| {
            replayed = at;
            if at - last_sent >= 10_000 || at == head {
                last_sent = at;
                let update = pb::VerifyReplayUpdate {
                    update: Some(pb::verify_replay_update::Update::Progress(
                        pb::VerifyReplayProgress {
                            position: at,
                            head,
                            events_replayed: replayed,
                        },
                    )),
                };
                // Progress is best effort: a slow client misses some, never the report.
                let _ = progress_tx.try_send(Ok(update));
            }
        })
        .await;
        let msg = match result {
            Ok(r) => Ok(pb::VerifyReplayUpdate {
                update: Some(pb::verify_replay_update::Update::Report(
                    pb::VerifyReplayReport {
                        position: r.position,
                        events_replayed: r.events_replayed,
                        counters: r.counters as u64,
                        tasks: r.tasks as u64,
                        events_skipped: r.events_skipped,
                        identical: r.identical(),
                        differences: r.differences,
                    },
                )),
            }),
            Err(e) => Err(Status::from(RecordError::from(e))),
        };
        let _ = tx.send(msg).await;
    });
    ReceiverStream::new(rx)
}
