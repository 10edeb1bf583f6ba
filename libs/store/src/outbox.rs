use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use waihu_bus::DeadLetter;
use waihu_bus::{Bus, BusError, Expect};
use waihu_events::{RecordedEvent, MAX_EVENT_BYTES};

use crate::{StoreError, Tx};

/// Writes a producer's events into the outbox, inside the transaction of the decision.
#[derive(Clone)]
pub struct Outbox {
    producer: String,
    notify: Arc<Notify>,
}

impl Outbox {
    pub fn new(producer: impl Into<String>) -> Self {
        Outbox {
            producer: producer.into(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Queues events for publishing once `tx` commits; call [`Outbox::wake`] after the commit.
    pub async fn push(
        &self,
        tx: &mut Tx<'_>,
        events: &[(RecordedEvent, Expect)],
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(events.len());
        let mut expects: Vec<Option<i64>> = Vec::with_capacity(events.len());
        let mut envelopes = Vec::with_capacity(events.len());
        for (e, expect) in events {
            e.check_header()
                .map_err(|err| StoreError::BadEvent(err.to_string()))?;
            let envelope = e.encode();
            // Refused here, where the producer can still answer for it, never found by the relay.
            if envelope.len() > MAX_EVENT_BYTES {
                return Err(StoreError::EventTooLarge {
                    event_type: e.type_name().to_string(),
                    size: envelope.len(),
                    max: MAX_EVENT_BYTES,
                });
            }
            ids.push(e.meta.event_id);
            expects.push(match expect {
                Expect::Any => None,
                Expect::LastSubjectSeq(s) => Some(*s as i64),
            });
            envelopes.push(envelope);
        }
        sqlx::query(
            "INSERT INTO outbox (producer, event_id, expect_last_seq, envelope)
             SELECT $1, * FROM UNNEST($2::uuid[], $3::bigint[], $4::bytea[])",
        )
        .bind(&self.producer)
        .bind(&ids)
        .bind(&expects)
        .bind(&envelopes)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Tells the relay there is something to publish.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    pub fn relay(&self, pool: PgPool, bus: Bus) -> OutboxRelay {
        OutboxRelay {
            pool,
            bus,
            producer: self.producer.clone(),
            notify: self.notify.clone(),
        }
    }
}

/// Publishes a producer's outbox in order. Several instances may run; an advisory lock lets one
/// drain at a time so that events of one aggregate keep their order.
pub struct OutboxRelay {
    pool: PgPool,
    bus: Bus,
    producer: String,
    notify: Arc<Notify>,
}

const RELAY_BATCH: i64 = 1000;

/// An outbox row waiting to go out: its id, event and publish condition.
type Pending = (i64, RecordedEvent, Expect);

impl OutboxRelay {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut measured = tokio::time::Instant::now() - Duration::from_secs(60);
        loop {
            // Its depth and age for /metrics, at most once a second.
            if measured.elapsed() >= Duration::from_secs(1) {
                measured = tokio::time::Instant::now();
                if let Err(e) = self.measure().await {
                    tracing::debug!(producer = %self.producer, error = %e, "outbox not measured");
                }
            }
            match self.drain_once().await {
                Ok(n) if n as i64 >= RELAY_BATCH => continue,
                Ok(_) => {}
                Err(e) => {
                    warn!(producer = %self.producer, error = %e, "outbox relay failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // One last pass so what was committed before the signal goes out now.
                    let _ = self.drain_once().await;
                    return;
                }
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Sets the outbox's depth (counted up to 1,000,000) and the age of its oldest row.
    async fn measure(&self) -> Result<(), StoreError> {
        let (depth, age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE producer = $1 LIMIT 1000000) d),
                    (SELECT EXTRACT(EPOCH FROM now() - created_at)::float8 FROM outbox
                     WHERE producer = $1 ORDER BY id LIMIT 1)",
        )
        .bind(&self.producer)
        .fetch_one(&self.pool)
        .await?;
        let m = waihu_metrics::metrics();
        let label = waihu_metrics::ProducerLabel {
            producer: self.producer.clone(),
        };
        m.outbox_depth.get_or_create(&label).set(depth);
        m.outbox_oldest_seconds
            .get_or_create(&label)
            .set(age.unwrap_or(0.0).max(0.0));
        Ok(())
    }

    /// Publishes up to one batch; returns how many rows it handled.
    pub async fn drain_once(&self) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(format!("waihu-outbox:{}", self.producer))
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let rows: Vec<(i64, Option<i64>, Vec<u8>)> = sqlx::query_as(
            "SELECT id, expect_last_seq, envelope FROM outbox WHERE producer = $1
             ORDER BY id LIMIT $2",
        )
        .bind(&self.producer)
        .bind(RELAY_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut batch = Vec::with_capacity(rows.len());
        let mut done: Vec<i64> = Vec::with_capacity(rows.len());
        // Room for the publish headers under the server's limit.
        let max = self.bus.max_payload().saturating_sub(4096);
        for (id, expect, env) in &rows {
            let refused = match RecordedEvent::decode(env) {
                Ok(_) if env.len() > max => Some(format!(
                    "{} bytes is over the server's max_payload ({max} bytes with headers)",
                    env.len()
                )),
                Ok(e) => {
                    batch.push((
                        *id,
                        e,
                        expect
                            .map(|s| Expect::LastSubjectSeq(s as u64))
                            .unwrap_or(Expect::Any),
                    ));
                    None
                }
                Err(err) => Some(format!("the outbox row is not a valid event: {err}")),
            };
            if let Some(reason) = refused {
                // It can never be published: out of the way, kept as a dead letter, and loud,
                // so the events behind it on its subject are not held up.
                self.dead_letter(*id, env, &reason).await?;
                done.push(*id);
            }
        }
        // Rounds: round k publishes the k-th pending event of every subject at once, so within
        // one subject nothing is sent before its predecessor is acknowledged. A subject whose
        // publish fails stops for this pass (its rows stay); other subjects go on.
        let mut queues: Vec<(String, VecDeque<Pending>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (id, event, expect) in batch {
            let subject = self.bus.subject(&event.meta.aggregate);
            let i = *index.entry(subject.clone()).or_insert_with(|| {
                queues.push((subject, VecDeque::new()));
                queues.len() - 1
            });
            queues[i].1.push_back((id, event, expect));
        }
        let mut first_error = None;
        loop {
            let round: Vec<(usize, i64, RecordedEvent, Expect)> = queues
                .iter_mut()
                .enumerate()
                .filter_map(|(q, (_, queue))| queue.pop_front().map(|(id, e, x)| (q, id, e, x)))
                .collect();
            if round.is_empty() {
                break;
            }
            let to_publish: Vec<_> = round.iter().map(|(_, _, e, x)| (e.clone(), *x)).collect();
            let results = self.bus.publish_all(&to_publish, 1000).await;
            for ((q, id, event, _), res) in round.into_iter().zip(results) {
                match res {
                    Ok(_) => done.push(id),
                    Err(BusError::WrongLastSequence { subject, expected }) => {
                        // Published before a crash and now past the duplicate window (the subject
                        // has moved on since), or a genuine conflict: either way it must not go
                        // out again. The subject's last message is logged for the record.
                        let last = self.bus.last_on_subject(&subject).await?;
                        let ours = last.as_ref().map(|(_, id)| id.as_str())
                            == Some(&event.meta.event_id.to_string());
                        if !ours {
                            warn!(producer = %self.producer, %subject, expected, ?last,
                                  event_id = %event.meta.event_id,
                                  "subject already past the expected sequence; not republished");
                        }
                        done.push(id);
                    }
                    Err(BusError::Publish { reason, .. }) if is_permanent(&reason) => {
                        let reason = format!("JetStream refused it for good: {reason}");
                        self.dead_letter(id, &event.encode(), &reason).await?;
                        done.push(id);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        queues[q].1.clear();
                    }
                }
            }
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&done)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(rows.len()),
        }
    }
}

/// Publish failures that no retry can cure.
fn is_permanent(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("maximum payload") || r.contains("payload size limit") || r.contains("max_payload")
}

impl OutboxRelay {
    async fn dead_letter(&self, id: i64, envelope: &[u8], reason: &str) -> Result<(), StoreError> {
        error!(producer = %self.producer, id, %reason, "outbox event cannot be published; dead-lettered");
        let consumer = format!("outbox-{}", self.producer);
        let letter = DeadLetter {
            consumer: &consumer,
            subject: "",
            stream_seq: 0,
            deliveries: 0,
            reason,
        };
        self.bus
            .dead_letter(letter, None, Bytes::copy_from_slice(envelope))
            .await?;
        Ok(())
    }
}
