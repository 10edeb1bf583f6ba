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
use tokio::{sync::mpsc, time::Instant};
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
/// Events of the hand-overs applied in one transaction at most.
const FOLD_EVENTS: usize = 20_000;
/// Hand-overs applied in one transaction at most (each holds up to the writer's batch bound,
/// [`writer::BATCH_BYTES`] of envelopes; at 2,000 calls a second a busy store hands over about
/// 5 batches in 100 ms).
pub(crate) const FOLD_HANDOFFS: usize = 5;
/// Events read back from the store per transaction when catching up.
const CATCH_UP_PAGE: u32 = 5000;

pub struct Projector {
    pub pool: PgPool,
    /// Notified by the writer when it dropped a hand-over (the projector was busy): the
    /// projector then reads what it missed from the store without waiting for [`IDLE_CHECK`].
    pub missed: Arc<tokio::sync::Notify>,
    /// The least time between the starts of two steps while hand-overs keep coming.
    pub interval: Duration,
    /// The task counters rows this projector last committed ([`projection::Counters`]).
    pub counters: std::sync::Mutex<projection::Counters>,
}

impl Projector {
    /// Runs until `shutdown` (the end of the writer's term).
    pub async fn run<B: Events>(
        self,
        mut rx: mpsc::Receiver<Handoff<B>>,
        shutdown: CancellationToken,
    ) {
        let mut done: Option<u64> = None;
        // When the last step began: the next applies no sooner than `interval` after it.
        let mut began: Option<Instant> = None;
        loop {
            // Empty: a hand-over was dropped, or none came for a while; the step reads the store.
            let handoffs = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.missed.notified() => Vec::new(),
                h = tokio::time::timeout(IDLE_CHECK, rx.recv()) => match h {
                    Ok(Some(h)) => match self.gather(h, &mut rx, began, &shutdown).await {
                        Some(handoffs) => handoffs,
                        None => return,
                    },
                    Ok(None) => return,
                    Err(_) => Vec::new(),
                },
            };
            began = Some(Instant::now());
            if let Err(e) = self.step(&mut done, handoffs).await {
                error!(error = %e, "projections failed; retrying from their checkpoint");
                done = None;
                if sleep_or_stop(&shutdown, Duration::from_millis(500)).await {
                    return;
                }
            }
        }
    }

    /// The hand-overs to apply together, from `first`: those queued behind it, and under a
    /// steady flow those that come until `interval` after the last step began (so a busy store
    /// projects in a few transactions a second, a call's record and a task's counters written
    /// once for all of them, and a quiet one at once), up to [`FOLD_EVENTS`] events and
    /// [`FOLD_HANDOFFS`] hand-overs. None when `shutdown` came meanwhile.
    async fn gather<B: Events>(
        &self,
        first: Handoff<B>,
        rx: &mut mpsc::Receiver<Handoff<B>>,
        began: Option<Instant>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Handoff<B>>> {
        let deadline = began.map(|b| b + self.interval);
        let mut events = first.range.len();
        let mut handoffs = vec![first];
        while events < FOLD_EVENTS && handoffs.len() < FOLD_HANDOFFS {
            let next = match rx.try_recv() {
                Ok(h) => Some(h),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => match deadline {
                    Some(d) if d > Instant::now() => tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        h = tokio::time::timeout_at(d, rx.recv()) => h.ok().flatten(),
                    },
                    _ => None,
                },
            };
            let Some(h) = next else { break };
            events += h.range.len();
            handoffs.push(h);
        }
        Some(handoffs)
    }

    /// Applies hand-overs (or, with none, whatever the store holds beyond the checkpoint),
    /// and says how far behind the store the projections are.
    async fn step<B: Events>(
        &self,
        done: &mut Option<u64>,
        handoffs: Vec<Handoff<B>>,
    ) -> Result<(), StoreError> {
        let r = self.step_inner(done, handoffs).await;
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
        handoffs: Vec<Handoff<B>>,
    ) -> Result<(), StoreError> {
        let mut at = match *done {
            Some(p) => p,
            None => waihu_store::checkpoint(&self.pool, projection::CHECKPOINT).await?,
        };
        *done = Some(at);
        if handoffs.is_empty() {
            let head = waihu_store::checkpoint(&self.pool, writer::CHECKPOINT).await?;
            self.catch_up(done, head).await?;
            return Ok(());
        }
        // Each run of hand-overs that follow one another is applied in one transaction.
        let mut rest = handoffs.as_slice();
        while !rest.is_empty() {
            let len = 1 + rest
                .windows(2)
                .take_while(|w| w[1].after == w[0].last)
                .count();
            let (run, next) = rest.split_at(len);
            rest = next;
            let (after, last) = (run[0].after, run[len - 1].last);
            if last <= at {
                continue;
            }
            if after > at {
                self.catch_up(done, after).await?;
                at = after;
            }
            let events: Vec<(u64, &RecordedEvent)> = run
                .iter()
                .flat_map(|h| {
                    h.range
                        .clone()
                        .zip(&h.fresh)
                        .filter(|(_, fresh)| **fresh)
                        .filter_map(|(i, _)| match h.batch.event(i) {
                            (position, Some(e)) if position > at => Some((position, e)),
                            _ => None,
                        })
                })
                .collect();
            self.apply(done, at, last, &events).await?;
            match *done {
                Some(p) => at = p,
                // The checkpoint moved under the projector: the next step re-reads it.
                None => return Ok(()),
            }
        }
        Ok(())
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
        let moved = match self.commit(at, last, events, 0).await {
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
            let moved = match self.commit(at, to, &[(*position, *e)], 0).await {
                Err(err) if err.is_data_error() => {
                    error!(event_id = %e.meta.event_id, position, error = %err,
                        "projections skip an event the database refuses");
                    self.commit(at, to, &[], 1).await?
                }
                other => other?,
            };
            if !moved {
                return Ok(false);
            }
            at = to;
        }
        if at < last {
            return self.commit(at, last, &[], 0).await;
        }
        Ok(true)
    }

    /// [`projection::commit_cached`] with this projector's counters.
    async fn commit(
        &self,
        at: u64,
        to: u64,
        events: &[(u64, &RecordedEvent)],
        refused: i64,
    ) -> Result<bool, StoreError> {
        let lock = || self.counters.lock().unwrap_or_else(|e| e.into_inner());
        // Steps run one after another: the counters are taken for the commit and put back.
        let mut counters = std::mem::take(&mut *lock());
        let r = projection::commit_cached(&self.pool, at, to, events, refused, &mut counters).await;
        *lock() = counters;
        r
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of events none of which this build knows (only the counts matter here).
    struct Blank;

    impl Events for Blank {
        fn event(&self, i: usize) -> (u64, Option<&RecordedEvent>) {
            (i as u64 + 1, None)
        }
    }

    fn handoff(after: u64, n: usize) -> Handoff<Blank> {
        Handoff {
            batch: Arc::new(Blank),
            range: 0..n,
            fresh: vec![true; n],
            after,
            last: after + n as u64,
        }
    }

    fn projector(interval: Duration) -> Projector {
        Projector {
            // Never connected: gathering does not touch the database.
            pool: sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://nobody@127.0.0.1:1/none")
                .expect("lazy pool"),
            missed: Arc::default(),
            interval,
            counters: Default::default(),
        }
    }

    async fn gather(
        p: &Projector,
        first: Handoff<Blank>,
        rx: &mut mpsc::Receiver<Handoff<Blank>>,
        began: Option<Instant>,
    ) -> Vec<Handoff<Blank>> {
        p.gather(first, rx, began, &CancellationToken::new())
            .await
            .expect("not shut down")
    }

    fn lasts(h: &[Handoff<Blank>]) -> Vec<u64> {
        h.iter().map(|h| h.last).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_store_is_projected_at_once_with_whatever_is_already_queued() {
        let p = projector(Duration::from_millis(100));
        let (tx, mut rx) = mpsc::channel(8);
        tx.send(handoff(10, 10)).await.expect("queued");
        tx.send(handoff(20, 10)).await.expect("queued");
        let t = Instant::now();
        // No step began lately: nothing is waited for.
        let got = gather(&p, handoff(0, 10), &mut rx, None).await;
        assert_eq!(lasts(&got), vec![10, 20, 30]);
        assert_eq!(t.elapsed(), Duration::ZERO);
        // A step long ago: the same.
        tx.send(handoff(40, 10)).await.expect("queued");
        let got = gather(
            &p,
            handoff(30, 10),
            &mut rx,
            Some(t - Duration::from_secs(1)),
        )
        .await;
        assert_eq!(lasts(&got), vec![40, 50]);
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn under_a_steady_flow_hand_overs_are_gathered_until_the_interval_is_up() {
        let p = projector(Duration::from_millis(100));
        let (tx, mut rx) = mpsc::channel(8);
        let began = Instant::now();
        let sender = tokio::spawn(async move {
            for (i, at) in [20u64, 50, 90, 130].into_iter().enumerate() {
                tokio::time::sleep_until(began + Duration::from_millis(at)).await;
                tx.send(handoff(10 + 10 * i as u64, 10))
                    .await
                    .expect("queued");
            }
            tx
        });
        let got = gather(&p, handoff(0, 10), &mut rx, Some(began)).await;
        // Those sent at 20, 50 and 90 ms, not the one at 130.
        assert_eq!(lasts(&got), vec![10, 20, 30, 40]);
        assert_eq!(began.elapsed(), Duration::from_millis(100));
        let _tx = sender.await.expect("sender");
        let got = gather(&p, handoff(40, 0), &mut rx, None).await;
        assert_eq!(lasts(&got), vec![40, 50]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gathering_stops_at_its_bounds() {
        let p = projector(Duration::from_secs(5));
        let (tx, mut rx) = mpsc::channel(16);
        for i in 0..10 {
            tx.send(handoff(1 + i, 1)).await.expect("queued");
        }
        let got = gather(&p, handoff(0, 1), &mut rx, Some(Instant::now())).await;
        assert_eq!(got.len(), FOLD_HANDOFFS, "hand-overs at most");
        let (tx, mut rx) = mpsc::channel(16);
        tx.send(handoff(FOLD_EVENTS as u64 - 1, 1))
            .await
            .expect("queued");
        tx.send(handoff(FOLD_EVENTS as u64, 1))
            .await
            .expect("queued");
        let got = gather(
            &p,
            handoff(0, FOLD_EVENTS - 1),
            &mut rx,
            Some(Instant::now()),
        )
        .await;
        assert_eq!(got.len(), 2, "events at most");
        // A closed channel ends the wait at once.
        drop(tx);
        let t = Instant::now();
        let got = gather(&p, handoff(0, 1), &mut rx, Some(t)).await;
        assert_eq!(lasts(&got), vec![1, FOLD_EVENTS as u64 + 1]);
        assert_eq!(t.elapsed(), Duration::ZERO);
        // The end of the term ends the wait, and nothing is applied.
        let (_tx, mut rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let t = Instant::now();
        let later = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                stop.cancel();
            })
        };
        assert!(p
            .gather(handoff(0, 1), &mut rx, Some(t), &stop)
            .await
            .is_none());
        assert_eq!(t.elapsed(), Duration::from_millis(30));
        later.await.expect("cancelled");
    }
}
