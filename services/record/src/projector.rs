//! The projector: keeps the call records and task statistics exact as of its own checkpoint, on
//! its own connection, beside the store writer rather than inside its transaction (the two run
//! in parallel, so the store's append is the only work on the ingest path).
//!
//! The writer hands over each batch it committed. The projector applies the events that were
//! new to the store and moves its checkpoint in the same transaction, guarded so the same
//! events are never counted twice (even by a projector of an earlier term finishing late). While
//! it is busy the writer waits a while for room among the hand-overs (so a backlog is stored at
//! the projector's pace); when it falls further behind (a hand-over dropped after that wait, a
//! restart, a failure) it reads what it missed back from the store, which holds everything the
//! writer committed: at once when the writer says it dropped a hand-over, else within
//! [`IDLE_CHECK`].

use std::{ops::Range, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use waihu_events::RecordedEvent;
use waihu_store::{EventQuery, StoreError};

use crate::{projection, writer};

/// One committed store write: the events of `batch.events[range]` whose `fresh` flag is set
/// were new to the store, and the store moved from `after` to `last`.
pub struct Handoff<B> {
    pub batch: Arc<B>,
    pub range: Range<usize>,
    pub fresh: Vec<bool>,
    pub after: u64,
    pub last: u64,
}

/// What a hand-over carries: events in store order with their positions.
pub trait Events: Send + Sync + 'static {
    fn event(&self, i: usize) -> (u64, Option<&RecordedEvent>);
}

/// How long the projector waits for a hand-over before checking the store for what it missed.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Events read back from the store per transaction when catching up.
const CATCH_UP_PAGE: u32 = 5000;

pub struct Projector {
    pub pool: PgPool,
    /// Notified by the writer when it dropped a hand-over (the projector was busy): the
    /// projector then reads what it missed from the store without waiting for [`IDLE_CHECK`].
    pub missed: Arc<tokio::sync::Notify>,
}

impl Projector {
    /// Runs until `shutdown` (the end of the writer's term).
    pub async fn run<B: Events>(
        self,
        mut rx: mpsc::Receiver<Handoff<B>>,
        shutdown: CancellationToken,
    ) {
        let mut done: Option<u64> = None;
        loop {
            // None: a hand-over was dropped, or none came for a while; the step reads the store.
            let handoff = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.missed.notified() => None,
                h = tokio::time::timeout(IDLE_CHECK, rx.recv()) => match h {
                    Ok(Some(h)) => Some(h),
                    Ok(None) => return,
                    Err(_) => None,
                },
            };
            if let Err(e) = self.step(&mut done, handoff).await {
                error!(error = %e, "projections failed; retrying from their checkpoint");
                done = None;
                if sleep_or_stop(&shutdown, Duration::from_millis(500)).await {
                    return;
                }
            }
        }
    }

    /// Applies one hand-over (or, with none, whatever the store holds beyond the checkpoint),
    /// and says how far behind the store the projections are.
    async fn step<B: Events>(
        &self,
        done: &mut Option<u64>,
        handoff: Option<Handoff<B>>,
    ) -> Result<(), StoreError> {
        let r = self.step_inner(done, handoff).await;
        if let Some(at) = *done {
            let m = waihu_metrics::metrics();
            m.projection_lag
                .get_or_create(&waihu_metrics::ProjectionLabel {
                    projection: projection::CHECKPOINT.to_string(),
                })
                .set((m.store_position.get() - at.min(i64::MAX as u64) as i64).max(0));
        }
        r
    }

    async fn step_inner<B: Events>(
        &self,
        done: &mut Option<u64>,
        handoff: Option<Handoff<B>>,
    ) -> Result<(), StoreError> {
        let mut at = match *done {
            Some(p) => p,
            None => waihu_store::checkpoint(&self.pool, projection::CHECKPOINT).await?,
        };
        *done = Some(at);
        let Some(h) = handoff else {
            let head = waihu_store::checkpoint(&self.pool, writer::CHECKPOINT).await?;
            self.catch_up(done, head).await?;
            return Ok(());
        };
        if h.last <= at {
            return Ok(());
        }
        if h.after > at {
            self.catch_up(done, h.after).await?;
            at = h.after;
        }
        let events: Vec<(u64, &RecordedEvent)> = h
            .range
            .clone()
            .zip(&h.fresh)
            .filter(|(_, fresh)| **fresh)
            .filter_map(|(i, _)| match h.batch.event(i) {
                (position, Some(e)) if position > at => Some((position, e)),
                _ => None,
            })
            .collect();
        self.apply(done, at, h.last, &events).await
    }

    /// Reads the store from the checkpoint up to `head` and applies it, a page per transaction.
    async fn catch_up(&self, done: &mut Option<u64>, head: u64) -> Result<(), StoreError> {
        loop {
            let at = done.unwrap_or(0);
            if at >= head {
                return Ok(());
            }
            let page = waihu_store::read(
                &self.pool,
                &EventQuery {
                    after_position: at,
                    to_position: Some(head),
                    limit: CATCH_UP_PAGE,
                    ..Default::default()
                },
            )
            .await?;
            // A short page is the rest up to the head (positions the store skipped, dead
            // letters, are covered by moving the checkpoint to the head itself).
            let last = match page.last() {
                Some(e) if page.len() == CATCH_UP_PAGE as usize => e.position,
                _ => head,
            };
            let events: Vec<(u64, &RecordedEvent)> = page
                .iter()
                .filter_map(|e| Some((e.position, e.event.known()?)))
                .collect();
            self.apply(done, at, last, &events).await?;
        }
    }

    /// Commits `events` as the move from `at` to `last`. A refusal by the database for one
    /// event's data is isolated (the batch is applied one event at a time) and that event is
    /// skipped and counted; a checkpoint moved by someone else makes the projector re-read it.
    async fn apply(
        &self,
        done: &mut Option<u64>,
        at: u64,
        last: u64,
        events: &[(u64, &RecordedEvent)],
    ) -> Result<(), StoreError> {
        let moved = match projection::commit(&self.pool, at, last, events, 0).await {
            Err(e) if e.is_data_error() => {
                warn!(error = %e, events = events.len(), "projections refused a batch; isolating the event");
                self.isolate(at, last, events).await?
            }
            other => other?,
        };
        if moved {
            *done = Some(last);
        } else {
            warn!(
                at,
                "the projections checkpoint moved under this projector; re-reading it"
            );
            *done = None;
        }
        Ok(())
    }

    /// Applies `events` one per transaction, each moving the checkpoint to its position; one the
    /// database refuses is skipped, logged and counted in the same transaction. False when the
    /// checkpoint moved under the projector.
    async fn isolate(
        &self,
        mut at: u64,
        last: u64,
        events: &[(u64, &RecordedEvent)],
    ) -> Result<bool, StoreError> {
        for (i, (position, e)) in events.iter().enumerate() {
            let to = if i + 1 == events.len() {
                last
            } else {
                *position
            };
            let moved = match projection::commit(&self.pool, at, to, &[(*position, *e)], 0).await {
                Err(err) if err.is_data_error() => {
                    error!(event_id = %e.meta.event_id, position, error = %err,
                        "projections skip an event the database refuses");
                    projection::commit(&self.pool, at, to, &[], 1).await?
                }
                other => other?,
            };
            if !moved {
                return Ok(false);
            }
            at = to;
        }
        if at < last {
            return projection::commit(&self.pool, at, last, &[], 0).await;
        }
        Ok(true)
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
