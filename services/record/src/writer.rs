//! The store writer: the one ordered writer of the event store. It reads the events stream from
//! its own checkpoint with an ordered consumer (so a crash can never let a later event overtake an
//! earlier one), and in one transaction appends the batch (idempotent on event id) and moves the
//! checkpoint. It then hands the batch to the projector ([`crate::projector`]), which applies
//! the events that were new to the projections on its own connection, in parallel.
//!
//! No input can stop it. A malformed envelope is dead-lettered at decoding. An event the database
//! refuses for its data (a NUL in a string, a number out of range) is isolated by splitting the
//! batch, dead-lettered with the reason, and passed. Other database trouble is retried. An
//! envelope of a type or schema version this build does not know is stored and counted, and the
//! projections skip it. A stream that was recreated, lost its tail or expired events the store
//! never read halts the writer (NOT_SERVING, with the reason) until an operator re-bases it.

use std::{ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use waihu_bus::{Bus, DeadLetter, OrderedReader, RawEvent};
use waihu_events::{Decoded, RecordedEvent};
use waihu_runtime::Health;
use waihu_store::{StoreError, StoredEvent};

use crate::{
    projection,
    projector::{self, Handoff, Projector},
    stream::{self, Halt},
};

pub const CHECKPOINT: &str = "store";
pub const DLQ_CONSUMER: &str = "store-writer";
const LEADER_LOCK: &str = "waihu-store-writer";
/// The health part the writer reports as.
pub const PART: &str = "store-writer";

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Events per transaction at most. Under load batches fill to this; 4000 stored 10-13 %
    /// more events a second than 2000 in paired runs of `make bench`'s store ingest, and 8000 no
    /// more than 4000 (7 December 2026). A quiet stream's batches are bounded by `fill` instead.
    pub batch: usize,
    /// How long to wait for the first event of a batch before checking for shutdown.
    pub linger: Duration,
    /// How long to keep filling a batch once it has its first event.
    pub fill: Duration,
    /// Whether each append waits for PostgreSQL to flush it to disk before the next. Off by
    /// default: a PostgreSQL crash can then lose the last appends (a fraction of a second at
    /// most), and with them the checkpoint that covers them, so the writer reads them again from
    /// JetStream and stores them at the same positions. The projector's commits, which wait,
    /// flush every append before them anyway, so nothing the projections show can be lost.
    pub synchronous_commit: bool,
    /// The least time between two projection transactions while events keep coming: the
    /// projector applies what the writer handed over meanwhile in one (a call's record and a
    /// task's counters are then written once for several batches). A quiet store's first events
    /// are projected at once. Zero by default: each step applies what is queued, so the
    /// projections follow the store as closely as they can. In the 1M campaign of `make bench`
    /// (100 tasks), 100 ms took the projections from 893 to 301 transactions in 40 s, the call
    /// records written 1.4 times a call instead of 2.3 and the counters 4.3 rows an attempt
    /// instead of 6.0 (7 December 2026), at the price of call records and statistics up to
    /// 100 ms later than the calls' other services show them.
    pub projection_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch: 4000,
            linger: Duration::from_millis(100),
            fill: Duration::from_millis(20),
            synchronous_commit: false,
            projection_interval: Duration::ZERO,
        }
    }
}

/// What the writer needs, shared by its terms.
#[derive(Clone)]
pub struct Writer {
    pub pool: PgPool,
    pub database_url: String,
    pub bus: Bus,
    pub config: WriterConfig,
    pub health: Health,
}

/// A decoded event with what is needed to dead-letter it: its subject and stream sequence (its
/// bytes are the stored envelope).
struct Item {
    stored: StoredEvent,
    subject: async_nats::Subject,
    seq: u64,
}

/// A batch read from the stream, decoded, with the store positions it follows and ends at and
/// how many of its events were dead-lettered at decoding.
pub struct ReadBatch {
    events: Vec<Item>,
    after: u64,
    last: u64,
    dropped: i64,
}

impl projector::Events for ReadBatch {
    fn event(&self, i: usize) -> (u64, Option<&RecordedEvent>) {
        let s = &self.events[i].stored;
        (s.position, s.event.known())
    }
}

/// Hand-overs waiting for the projector; when it is this far behind, the writer waits for room
/// (up to [`HANDOFF_WAIT`]), then drops the hand-over and the projector reads what it missed back
/// from the store. The writer holds at most 15 batches: 4 read ahead, 1 waiting to join them,
/// 1 being stored, these 4, and up to [`projector::FOLD_HANDOFFS`] being projected.
const HANDOFF_QUEUE: usize = 4;

/// How long the writer waits for room among the hand-overs before it drops one. While the
/// projector keeps up, waiting costs nothing; when it is behind (a backlog), the writer storing
/// at the projector's pace is cheaper than the projector reading every dropped batch back from
/// the store: in paired runs of the ingest bench, dropping cost a fifth more CPU per event and
/// a quarter fewer events per second. Only a projector that stopped (failing, or slower than
/// this per batch) makes the writer drop batches and go on alone.
const HANDOFF_WAIT: Duration = Duration::from_secs(2);

/// Envelope bytes at which a batch ends, whatever its count (the message that reaches them is
/// its last, so a batch holds at most this plus one message): ordinary events are a few hundred
/// bytes (4000 of them, 1-2 MiB), but an event may be up to 512 KiB
/// ([`waihu_events::MAX_EVENT_BYTES`]; the stream admits up to 1 MiB), and 4000 of those would be
/// 2 GiB. The 15 batches above then hold at most about 130 MiB of envelopes and their decoded
/// events; beyond that, the NATS client buffers up to 500 messages ahead and the projector's
/// catch-up reads pages of 5000 events from the store.
pub const BATCH_BYTES: usize = 8 << 20;

/// Why the writer stops storing in this term.
enum Stop {
    /// The stream must be looked at by an operator (the writer reports NOT_SERVING).
    Halt(Halt),
    /// The checkpoint is not where this writer left it.
    Moved,
}

/// The writer's side of the hand-overs: the queue, and the signal that one was dropped.
struct Handovers {
    tx: tokio::sync::mpsc::Sender<Handoff<ReadBatch>>,
    missed: Arc<tokio::sync::Notify>,
    /// The last hand-over was dropped after the wait: until the projector makes room again the
    /// writer does not wait (a stopped projector costs the store one wait, not one per batch).
    dropping: std::sync::atomic::AtomicBool,
}

impl Handovers {
    fn new(tx: tokio::sync::mpsc::Sender<Handoff<ReadBatch>>) -> Handovers {
        Handovers {
            tx,
            missed: Arc::default(),
            dropping: Default::default(),
        }
    }

    /// Hands `h` over to the projector, waiting up to [`HANDOFF_WAIT`] for room unless the
    /// last one was dropped. False when this one is dropped (no room in time, the projector
    /// gone, or shutdown): the projector is told it missed one and reads it back from the store.
    async fn hand_over(&self, h: Handoff<ReadBatch>, shutdown: &CancellationToken) -> bool {
        let last = h.last;
        let sent = self.send(h, shutdown).await;
        if !sent {
            tracing::debug!(
                last,
                "projector busy; it will read this batch back from the store"
            );
            self.missed.notify_one();
        }
        sent
    }

    /// [`Self::hand_over`] without telling the projector of a drop.
    async fn send(&self, h: Handoff<ReadBatch>, shutdown: &CancellationToken) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        use tokio::sync::mpsc::error::TrySendError;
        let h = match self.tx.try_send(h) {
            Ok(()) => {
                self.dropping.store(false, Relaxed);
                return true;
            }
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(_)) if self.dropping.load(Relaxed) => return false,
            Err(TrySendError::Full(h)) => h,
        };
        let sent = tokio::select! {
            _ = shutdown.cancelled() => false,
            sent = tokio::time::timeout(HANDOFF_WAIT, self.tx.send(h)) => matches!(sent, Ok(Ok(()))),
        };
        self.dropping.store(!sent, Relaxed);
        sent
    }
}

impl Writer {
    /// Runs until `shutdown`. Only one writer per database writes at a time (advisory lock);
    /// others wait as hot standbys.
    pub async fn run(self, shutdown: CancellationToken) {
        let url = self.database_url.clone();
        waihu_store::while_leader(&url, LEADER_LOCK, &shutdown, |term| self.clone().term(term))
            .await
    }

    /// One leadership term.
    async fn term(self, shutdown: CancellationToken) {
        let Some((position, followed)) = self.wait_until_consistent(&shutdown).await else {
            return;
        };
        match waihu_store::post_unposted(&self.pool).await {
            Ok(0) => {}
            Ok(n) => info!(
                events = n,
                "posted the events a store writer of an earlier release appended"
            ),
            Err(e) => {
                warn!(error = %e, "cannot bring the store's postings up to date; the term restarts");
                return;
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ReadBatch>(4);
        let reader =
            tokio::spawn(
                self.clone()
                    .read_ahead(position, followed, tx, shutdown.clone()),
            );
        let (tx, handed) = tokio::sync::mpsc::channel(HANDOFF_QUEUE);
        let handoff = Handovers::new(tx);
        let projections = shutdown.child_token();
        let projector = tokio::spawn(
            Projector {
                pool: self.pool.clone(),
                missed: handoff.missed.clone(),
                interval: self.config.projection_interval,
                counters: Default::default(),
            }
            .run(handed, projections.clone()),
        );
        // The postings of what this term appends, written every few thousand positions.
        let mut postings = waihu_store::Postings::default();
        while let Some(batch) = tokio::select! {
            _ = shutdown.cancelled() => None,
            b = rx.recv() => b,
        } {
            match self
                .store(Arc::new(batch), &handoff, &mut postings, &shutdown)
                .await
            {
                Ok(()) => {}
                Err(Stop::Halt(halt)) => {
                    self.health.down(PART, &halt.0);
                    break;
                }
                Err(Stop::Moved) => {
                    warn!(
                        "the store's checkpoint is not where this writer left it (appends lost \
                         in a PostgreSQL crash, or another writer); reading on from the checkpoint"
                    );
                    break;
                }
            }
        }
        reader.abort();
        projections.cancel();
        // What this term held unposted, posted now so the store does not depend on the next
        // term for it (a crash leaves it to that term). Safe beside another writer's term: each
        // postings write sees where the others ended.
        if !postings.is_empty() {
            match tokio::time::timeout(
                Duration::from_secs(5),
                waihu_store::post_unposted(&self.pool),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot post the events this term appended; the next term posts them")
                }
                Err(_) => warn!(
                    "posting the events this term appended timed out; the next term posts them"
                ),
            }
        }
        let _ = projector.await;
    }

    /// Reads the checkpoint and checks the stream is the one the store follows; while it is not,
    /// reports why (NOT_SERVING) and checks again every few seconds (an operator's re-base ends
    /// the wait). None on shutdown.
    async fn wait_until_consistent(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<(u64, stream::Followed)> {
        loop {
            let checked = async {
                let position = waihu_store::checkpoint(&self.pool, CHECKPOINT).await?;
                let followed = stream::check_followed(&self.pool, &self.bus, position).await?;
                Ok::<_, stream::CheckError>((position, followed))
            }
            .await;
            match checked {
                Ok(ok) => {
                    self.health.up(PART);
                    return Some(ok);
                }
                Err(stream::CheckError::Halt(h)) => self.health.down(PART, &h.0),
                Err(stream::CheckError::Other(e)) => {
                    warn!(error = %e, "cannot check the events stream yet; retrying")
                }
            }
            if sleep_or_stop(shutdown, Duration::from_secs(3)).await {
                return None;
            }
        }
    }

    /// Reads the stream in order from `position`, decodes, and hands batches to the writer.
    async fn read_ahead(
        self,
        mut position: u64,
        followed: stream::Followed,
        out: tokio::sync::mpsc::Sender<ReadBatch>,
        shutdown: CancellationToken,
    ) {
        let base = followed.base;
        while !shutdown.is_cancelled() {
            let mut reader = match OrderedReader::open(&self.bus, position - base).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "cannot open the events stream; retrying");
                    if sleep_or_stop(&shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let mut last_check = tokio::time::Instant::now();
            loop {
                let c = &self.config;
                let batch = match reader
                    .next_batch(c.batch, BATCH_BYTES, c.linger, c.fill)
                    .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(error = %e, position, "events stream interrupted; reopening");
                        break;
                    }
                };
                if batch.is_empty() && last_check.elapsed() < Duration::from_secs(2) {
                    continue;
                }
                last_check = tokio::time::Instant::now();
                // Every batch, and an idle stream every few seconds, is checked against the stream the store follows before it is
                // handed on: an ordered consumer silently resumes on a recreated stream, and what
                // it reads there must not be stored under the old numbering.
                match stream::check_against(&self.bus, followed, position).await {
                    Ok(()) => {}
                    Err(stream::CheckError::Halt(_)) => {
                        warn!("the events stream changed under the store writer; restarting");
                        return;
                    }
                    Err(stream::CheckError::Other(e)) => {
                        warn!(error = %e, "cannot check the events stream; reopening");
                        if sleep_or_stop(&shutdown, Duration::from_secs(1)).await {
                            return;
                        }
                        break;
                    }
                }
                let batch: Vec<RawEvent> = batch
                    .into_iter()
                    .filter(|m| m.stream_seq + base > position)
                    .collect();
                let Some(last) = batch.last().map(|m| m.stream_seq + base) else {
                    continue;
                };
                let read = batch.len();
                let events = self.decode(batch, base).await;
                let dropped = (read - events.len()) as i64;
                let batch = ReadBatch {
                    events,
                    after: position,
                    last,
                    dropped,
                };
                if out.send(batch).await.is_err() {
                    return;
                }
                position = last;
            }
        }
    }

    /// Decodes a batch; what is not a well-formed envelope is dead-lettered with the reason and
    /// skipped. Each event keeps its raw bytes and subject in case it must be dead-lettered later.
    async fn decode(&self, batch: Vec<RawEvent>, base: u64) -> Vec<Item> {
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            let decoded = Decoded::decode_shared(m.payload.clone())
                .map_err(|e| e.to_string())
                .and_then(|d| match d.known().and_then(projection::refusal) {
                    Some(reason) => Err(reason),
                    None => Ok(d),
                });
            match decoded {
                Ok(event) => out.push(Item {
                    stored: StoredEvent {
                        position: m.stream_seq + base,
                        event,
                        envelope: m.payload,
                        recorded_at: None,
                    },
                    subject: m.subject,
                    seq: m.stream_seq,
                }),
                Err(e) => {
                    let reason = format!("not a waihu event: {e}");
                    self.dead_letter(&m.subject, m.stream_seq, m.payload, &reason)
                        .await;
                }
            }
        }
        out
    }

    async fn dead_letter(&self, subject: &str, seq: u64, payload: Bytes, reason: &str) {
        error!(seq, %subject, %reason, "store writer dead-letters an event");
        let letter = DeadLetter {
            consumer: DLQ_CONSUMER,
            subject,
            stream_seq: seq,
            deliveries: 1,
            reason,
        };
        // The original stays in JetStream at its sequence, so a dead letter that cannot be
        // stored loses nothing; the log says where it is.
        if let Err(e) = self.bus.dead_letter(letter, None, payload).await {
            error!(seq, error = %e, "dead letter not stored; the event stays in the stream only");
        }
    }

    /// Stores a batch: transient failures are retried until they pass (or shutdown), and an
    /// event the database refuses for its data is isolated by splitting the batch, dead-lettered,
    /// and counted. Each committed write is handed to the projector. Err when the stream must be
    /// looked at by an operator, or when the checkpoint is not where this writer left it (the
    /// term then starts again from the checkpoint).
    async fn store(
        &self,
        batch: Arc<ReadBatch>,
        handoff: &Handovers,
        postings: &mut waihu_store::Postings,
        shutdown: &CancellationToken,
    ) -> Result<(), Stop> {
        let mut pending: Vec<Range<usize>> = Vec::with_capacity(4);
        pending.push(0..batch.events.len());
        let mut dead = batch.dropped;
        let mut after = batch.after;
        while let Some(part) = pending.pop() {
            let items = &batch.events[part.clone()];
            // Each event produced in a trace gets a span there for its write (closed when the
            // write is done, or dropped on a split).
            let _spans: Vec<tracing::Span> = items
                .iter()
                .filter_map(|i| Some((i.stored.position, i.stored.event.known()?)))
                .filter(|(_, e)| !e.traceparent.is_empty())
                .map(|(position, e)| {
                    let span = tracing::info_span!("store", event_type = e.type_name(), position);
                    waihu_events::trace::set_parent(&span, &e.traceparent, &e.tracestate);
                    span
                })
                .collect();
            // The batch's own last position covers events dropped at decoding after `part`.
            let last = match items.last() {
                Some(e) if !pending.is_empty() => e.stored.position,
                _ => batch.last,
            };
            loop {
                let sync = self.config.synchronous_commit;
                match write_batch(&self.pool, items, after, last, dead, sync, postings).await {
                    Ok(None) => return Err(Stop::Moved),
                    Ok(Some(fresh)) => {
                        dead = 0;
                        let h = Handoff {
                            batch: batch.clone(),
                            range: part.clone(),
                            fresh,
                            after,
                            last,
                        };
                        handoff.hand_over(h, shutdown).await;
                        after = last;
                        break;
                    }
                    Err(e) if e.is_position_clash() => {
                        return Err(Stop::Halt(Halt(format!(
                            "store position clash at or before {last}: the events stream went \
                             backwards under the writer ({e}); re-base the store (`waihu store rebase`)"
                        ))))
                    }
                    Err(e) if e.is_data_error() && part.len() > 1 => {
                        // Halves in order: the left half is stored before the right one.
                        let mid = part.start + part.len() / 2;
                        pending.push(mid..part.end);
                        pending.push(part.start..mid);
                        break;
                    }
                    Err(e) if e.is_data_error() => {
                        let item = &items[0];
                        let reason = format!("the event store refused it: {e}");
                        self.dead_letter(&item.subject, item.seq, item.stored.envelope.clone(), &reason)
                            .await;
                        // Counted and its position passed with the next write.
                        dead += 1;
                        if pending.is_empty() {
                            pending.push(part.end..part.end);
                        }
                        break;
                    }
                    Err(e) => {
                        error!(error = %e, last, "store write failed; retrying the batch");
                        if sleep_or_stop(shutdown, Duration::from_millis(500)).await {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Appends a batch's events, counts what was stored unread and what was dead-lettered, and
/// moves the checkpoint to `last`, in one transaction. Returns, per event, whether it was new.
async fn write_batch(
    pool: &PgPool,
    batch: &[Item],
    after: u64,
    last: u64,
    dead_lettered: i64,
    synchronous: bool,
    postings: &mut waihu_store::Postings,
) -> Result<Option<Vec<bool>>, StoreError> {
    let stored: Vec<&StoredEvent> = batch.iter().map(|e| &e.stored).collect();
    append_events(
        pool,
        &stored,
        after,
        last,
        dead_lettered,
        synchronous,
        Some(postings),
    )
    .await
}

/// The store writer's transaction: moves the checkpoint from `after` to `last`, appends `stored`
/// (idempotent on event id), and counts what was stored unread and what was dead-lettered.
/// Returns, per event, whether it was new to the store (only those are projected); None, with
/// nothing written, when the checkpoint was not at `after`. The commit waits for the flush to
/// disk.
pub async fn write_events(
    pool: &PgPool,
    stored: &[&StoredEvent],
    after: u64,
    last: u64,
    dead_lettered: i64,
) -> Result<Option<Vec<bool>>, StoreError> {
    append_events(pool, stored, after, last, dead_lettered, true, None).await
}

/// [`write_events`], with the commit waiting for the flush to disk only when `synchronous`, and
/// the postings written with the events or, given `postings`, once they span a few thousand
/// positions ([`waihu_store::append_posting_later`]).
///
/// The checkpoint is moved only from `after`: when appends the writer had committed without
/// waiting were lost in a PostgreSQL crash, the checkpoint went back with them, and the writer's
/// next batch must not pass over the gap (the term then reads on from the checkpoint).
async fn append_events(
    pool: &PgPool,
    stored: &[&StoredEvent],
    after: u64,
    last: u64,
    dead_lettered: i64,
    synchronous: bool,
    mut postings: Option<&mut waihu_store::Postings>,
) -> Result<Option<Vec<bool>>, StoreError> {
    let t0 = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    if !synchronous {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
    }
    if !waihu_store::advance_checkpoint(&mut tx, CHECKPOINT, after, last).await? {
        return Ok(None);
    }
    let new = match postings.as_deref_mut() {
        Some(p) => waihu_store::append_posting_later(&mut tx, stored, p).await?,
        None => waihu_store::append(&mut tx, stored).await?,
    };
    let t1 = t0.elapsed();
    let unknown = stored
        .iter()
        .zip(&new)
        .filter(|(e, n)| **n && e.event.known().is_none())
        .count() as i64;
    waihu_store::add_counters(
        &mut tx,
        &[
            (waihu_store::UNKNOWN_EVENTS, unknown),
            (waihu_store::DEAD_LETTERED, dead_lettered),
        ],
    )
    .await?;
    tx.commit().await?;
    if let Some(p) = postings {
        p.committed();
    }
    waihu_metrics::metrics()
        .store_position
        .set(last.min(i64::MAX as u64) as i64);
    tracing::debug!(
        events = stored.len(),
        append_us = t1.as_micros() as u64,
        total_us = t0.elapsed().as_micros() as u64,
        "store batch written"
    );
    if unknown > 0 {
        info!(
            unknown,
            "stored events this build cannot read; projections skip them"
        );
    }
    Ok(Some(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(last: u64) -> Handoff<ReadBatch> {
        Handoff {
            batch: Arc::new(ReadBatch {
                events: Vec::new(),
                after: last - 1,
                last,
                dropped: 0,
            }),
            range: 0..0,
            fresh: Vec::new(),
            after: last - 1,
            last,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_projector_is_waited_for_and_a_stopped_one_only_once() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let handovers = Handovers::new(tx);
        let stop = CancellationToken::new();
        assert!(handovers.hand_over(handoff(1), &stop).await);
        // Full: a projector taking the first one within the wait makes room for the second.
        let taker = tokio::spawn(async move {
            tokio::time::sleep(HANDOFF_WAIT / 2).await;
            let first = rx.recv().await.map(|h| h.last);
            (first, rx)
        });
        let t = tokio::time::Instant::now();
        assert!(handovers.hand_over(handoff(2), &stop).await);
        assert_eq!(t.elapsed(), HANDOFF_WAIT / 2);
        let (first, rx) = taker.await.expect("taker");
        assert_eq!(first, Some(1));
        // Nobody takes the second: the third is dropped after the whole wait, the fourth at
        // once.
        let t = tokio::time::Instant::now();
        assert!(!handovers.hand_over(handoff(3), &stop).await);
        assert_eq!(t.elapsed(), HANDOFF_WAIT);
        let t = tokio::time::Instant::now();
        assert!(!handovers.hand_over(handoff(4), &stop).await);
        assert_eq!(t.elapsed(), Duration::ZERO);
        // Once the projector made room, hand-overs go through (and are waited for) again.
        let mut rx = rx;
        assert_eq!(rx.recv().await.map(|h| h.last), Some(2));
        assert!(handovers.hand_over(handoff(5), &stop).await);
        assert!(!handovers
            .dropping
            .load(std::sync::atomic::Ordering::Relaxed));
        // Shutdown ends a wait.
        stop.cancel();
        assert!(!handovers.hand_over(handoff(6), &stop).await);
        drop(rx);
        assert!(
            !handovers
                .hand_over(handoff(7), &CancellationToken::new())
                .await
        );
    }
}
