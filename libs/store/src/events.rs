use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, QueryBuilder, Row};
use uuid::Uuid;
use waihu_events::{Decoded, RecordedEvent};

use crate::{StoreError, Tx};

/// One event as the store holds it: every well-formed envelope, including those whose payload
/// this build cannot read (they are kept for a newer build, and skipped by projections).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Global position: the JetStream stream sequence (plus the store's base after a re-base).
    pub position: u64,
    pub event: Decoded,
    /// The exact bytes that travelled on the bus (shared, not copied, from the message read).
    pub envelope: bytes::Bytes,
    /// When the store wrote it (None before it is stored).
    pub recorded_at: Option<DateTime<Utc>>,
}

impl StoredEvent {
    /// A known event to be stored at `position`, with the envelope it travels in.
    pub fn known(position: u64, event: RecordedEvent) -> StoredEvent {
        StoredEvent {
            position,
            envelope: event.encode().into(),
            event: Decoded::Known(event),
            recorded_at: None,
        }
    }
}

/// Appends events idempotently (a known event id is skipped) and returns, per input, whether it
/// was new. Positions must be unique; the caller is the single ordered writer. A different event
/// at a stored position is an error, never a silent skip.
///
/// The usual batch is all new: it goes in by binary `COPY`, the cheapest way into PostgreSQL. A
/// batch holding an event id the store has already seen (a copy republished after JetStream's
/// duplicate window) or holding one twice is written row by row with `ON CONFLICT DO NOTHING`.
/// The new events' postings (one row per task and one per tenant) are written with them, with no
/// check of where the postings end: for a store no writer of [`append_posting_later`] appends to
/// meanwhile (tests and tools), or rows could be listed below the postings' end and go unread.
pub async fn append(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
    let new = append_unposted(tx, batch).await?;
    let mut postings = Postings::default();
    postings.add(batch, &new);
    postings.write(tx).await?;
    Ok(new)
}

/// [`append`] for the store writer, which writes the postings of several batches at once: the
/// postings of this batch join those `postings` holds, and are written once they span
/// [`POSTINGS_SPAN`] positions. The reads of the store find the events not posted yet by their
/// positions (see [`read`]). Call [`Postings::committed`] once the transaction committed; until
/// then `postings` is unsure of what is posted, and its next append posts whatever the store
/// holds beyond its postings, from the events table (as after a crash, which loses what a
/// writer held: the next writer term posts that tail when it starts, [`post_unposted`]).
pub async fn append_posting_later(
    tx: &mut Tx<'_>,
    batch: &[&StoredEvent],
    postings: &mut Postings,
) -> Result<Vec<bool>, StoreError> {
    let unsure = std::mem::replace(&mut postings.unsure, true);
    let new = append_unposted(tx, batch).await?;
    if !unsure {
        postings.add(batch, &new);
        if postings.span() < POSTINGS_SPAN {
            return Ok(new);
        }
    }
    // Postings are written by one transaction at a time, each seeing where the others ended: a
    // writer that lost its lock without knowing it yet (it finds out within seconds) may still
    // commit, while the next term posts the tail it holds from the table.
    lock_postings(tx).await?;
    let posted: i64 = sqlx::query_scalar(POSTED_TO).fetch_one(&mut **tx).await?;
    match postings.first {
        Some(first) if !unsure && posted < first => postings.write(tx).await?,
        _ => {
            // Everything beyond the postings, this batch included, from the table.
            postings.clear();
            sqlx::query(POST_UNPOSTED).execute(&mut **tx).await?;
        }
    }
    Ok(new)
}

/// Makes the transaction the only one writing postings until it ends: a transaction-scoped
/// advisory lock of this database (a table lock would also stop autovacuum; readers take none).
async fn lock_postings(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('waihu-event-postings'))")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Positions a store writer's postings rows span at least (unless it stops first): 100 tasks
/// dialing at once put 100 task rows into every writer transaction, a row for every few events
/// when the stream is busy but batches are short; gathered over 2,000 positions, a task's row
/// lists its positions of many transactions. A read by task or tenant scans at most the
/// positions not posted yet (this, plus a writer batch) in the events table.
pub const POSTINGS_SPAN: i64 = 2000;

/// Postings of appended events that a store writer has not written yet, per task and tenant.
#[derive(Debug)]
pub struct Postings {
    tasks: BTreeMap<Uuid, Vec<i64>>,
    tenants: BTreeMap<String, Vec<i64>>,
    /// The least and greatest position held.
    first: Option<i64>,
    last: i64,
    /// Whether what is held may not be all the store holds unposted: a new writer term, or a
    /// transaction not known to have committed since it took this.
    unsure: bool,
}

impl Default for Postings {
    /// Nothing held, and unsure: the first append posts the tail the table holds.
    fn default() -> Self {
        Postings {
            tasks: BTreeMap::new(),
            tenants: BTreeMap::new(),
            first: None,
            last: 0,
            unsure: true,
        }
    }
}

impl Postings {
    /// The transaction of the last [`append_posting_later`] committed.
    pub fn committed(&mut self) {
        self.unsure = false;
    }

    /// Whether it holds nothing and knows it.
    pub fn is_empty(&self) -> bool {
        !self.unsure && self.first.is_none()
    }

    /// Positions from the first held to the last (0 when none is).
    fn span(&self) -> i64 {
        self.first.map_or(0, |f| self.last - f + 1)
    }

    fn clear(&mut self) {
        self.tasks.clear();
        self.tenants.clear();
        self.first = None;
    }

    /// Adds the events of `batch` that were `new` (in position order, after those held).
    fn add(&mut self, batch: &[&StoredEvent], new: &[bool]) {
        for (e, _) in batch.iter().zip(new).filter(|(_, new)| **new) {
            let m = e.event.meta();
            let p = e.position as i64;
            if let Some(t) = m.task_id {
                extend_ranges(self.tasks.entry(t).or_default(), p);
            }
            match self.tenants.get_mut(m.tenant_id.as_str()) {
                Some(r) => extend_ranges(r, p),
                None => {
                    self.tenants.insert(m.tenant_id.clone(), vec![p, p]);
                }
            }
            self.first.get_or_insert(p);
            self.last = p;
        }
    }

    /// Writes one row per task and one per tenant held, by binary `COPY`, and holds nothing
    /// more. A row's key is its greatest position, unique in the store, so these rows never
    /// clash (a clash would be reported as a unique violation, which the writer would take for
    /// a refused event).
    async fn write(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if !self.tasks.is_empty() {
            let rows = self.tasks.iter().map(|(t, r)| (t.as_bytes().as_slice(), r));
            copy_postings(
                tx,
                "event_task_postings (task_id, last_position, ranges)",
                rows,
            )
            .await?;
        }
        if !self.tenants.is_empty() {
            let rows = self.tenants.iter().map(|(t, r)| (t.as_bytes(), r));
            copy_postings(
                tx,
                "event_tenant_postings (tenant_id, last_position, ranges)",
                rows,
            )
            .await?;
        }
        self.clear();
        Ok(())
    }
}

/// Appends events idempotently without their postings; returns, per input, whether it was new.
async fn append_unposted(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    if distinct_ids(batch) {
        sqlx::query("SAVEPOINT append").execute(&mut **tx).await?;
        match copy(tx, batch).await {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT append")
                    .execute(&mut **tx)
                    .await?;
                return Ok(vec![true; batch.len()]);
            }
            Err(e) if e.is_known_event_id() => {
                sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut **tx)
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    insert_new(tx, batch).await
}

/// Whether no event id occurs twice in `batch`. Ids made by `Uuid::now_v7` mostly arrive in
/// increasing order, which settles it without sorting.
fn distinct_ids(batch: &[&StoredEvent]) -> bool {
    let id = |e: &&StoredEvent| e.event.meta().event_id;
    if batch.windows(2).all(|w| id(&w[0]) < id(&w[1])) {
        return true;
    }
    let mut ids: Vec<Uuid> = batch.iter().map(id).collect();
    ids.sort_unstable();
    ids.windows(2).all(|w| w[0] != w[1])
}

/// Posts what the store holds beyond its postings: events a store writer of an earlier release
/// appended (it wrote no postings). The store writer runs it when its term starts, before it
/// appends. Returns how many events were posted.
pub async fn post_unposted(pool: &PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_postings(&mut tx).await?;
    let posted: i64 = sqlx::query_scalar(POST_UNPOSTED)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(posted.max(0) as u64)
}

/// Posts the events beyond the postings (every event has a tenant posting, so the greatest tenant
/// posting is where postings end); returns how many it posted.
const POST_UNPOSTED: &str =
    "SELECT events_post_after(coalesce((SELECT max(last_position) FROM event_tenant_postings), 0))";

/// Where the postings end: every event up to it is posted, none after it is.
const POSTED_TO: &str = "SELECT coalesce(max(last_position), 0) FROM event_tenant_postings";

/// Adds `position` (greater than any before it) to inclusive ranges `{first, last, ...}`.
fn extend_ranges(ranges: &mut Vec<i64>, position: i64) {
    match ranges.last_mut() {
        Some(last) if *last + 1 == position => *last = position,
        _ => ranges.extend([position, position]),
    }
}

/// The positions inclusive ranges `{first, last, ...}` cover, in order (a malformed tail, which
/// the writer never makes, is ignored).
fn expand_ranges(ranges: &[i64]) -> impl Iterator<Item = i64> + '_ {
    ranges.chunks_exact(2).flat_map(|r| r[0]..=r[1])
}

/// Writes postings rows (key bytes, ranges) into `target` by binary `COPY`.
async fn copy_postings<'a>(
    tx: &mut Tx<'_>,
    target: &str,
    rows: impl Iterator<Item = (&'a [u8], &'a Vec<i64>)>,
) -> Result<(), StoreError> {
    /// PostgreSQL's type id of int8, as a binary array names its elements'.
    const INT8_OID: i32 = 20;
    let mut buf = copy_buffer(4096);
    for (key, ranges) in rows {
        buf.extend_from_slice(&3i16.to_be_bytes());
        field(&mut buf, key);
        let last = ranges.last().copied().unwrap_or_default();
        field(&mut buf, &last.to_be_bytes());
        // A one-dimensional int8 array without nulls: its header, then each element.
        buf.extend_from_slice(&((20 + 12 * ranges.len()) as i32).to_be_bytes());
        for v in [1, 0, INT8_OID, ranges.len() as i32, 1] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        for v in ranges {
            field(&mut buf, &v.to_be_bytes());
        }
    }
    send_copy(tx, target, buf).await
}

/// A binary `COPY` buffer with its header, for rows to follow.
fn copy_buffer(capacity: usize) -> Vec<u8> {
    let mut buf: Vec<u8> = Vec::with_capacity(19 + 2 + capacity);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    buf
}

/// Ends the rows of `buf` and copies them into `target` (a table and its columns).
async fn send_copy(tx: &mut Tx<'_>, target: &str, mut buf: Vec<u8>) -> Result<(), StoreError> {
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    let mut copy = tx
        .copy_in_raw(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
        .await?;
    if let Err(e) = copy.send(buf).await {
        // The connection is unusable after a failed send; the abort tidies what it can.
        let _ = copy.abort("send failed").await;
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

const COLUMNS: &str = "position, event_id, event_type, schema_version, tenant_id, stream_id, \
                       stream_version, task_id, occurred_at, correlation_id, causation_id, envelope";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Writes the batch with binary `COPY`; fails as a whole on any conflict.
async fn copy(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<(), StoreError> {
    let mut buf = copy_buffer(batch.iter().map(|e| e.envelope.len() + 256).sum());
    for e in batch {
        let m = e.event.meta();
        buf.extend_from_slice(&12i16.to_be_bytes());
        field(&mut buf, &(e.position as i64).to_be_bytes());
        field(&mut buf, m.event_id.as_bytes());
        field(&mut buf, e.event.event_type().as_bytes());
        field(&mut buf, &(e.event.schema_version() as i32).to_be_bytes());
        field(&mut buf, m.tenant_id.as_bytes());
        field(&mut buf, m.aggregate.stream_id().as_bytes());
        field(&mut buf, &(m.stream_version as i64).to_be_bytes());
        match m.task_id {
            Some(t) => field(&mut buf, t.as_bytes()),
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        let micros = m.occurred_at.timestamp_micros() - PG_EPOCH_MICROS;
        field(&mut buf, &micros.to_be_bytes());
        field(&mut buf, m.correlation_id.as_bytes());
        field(&mut buf, m.causation_id.as_bytes());
        field(&mut buf, &e.envelope);
    }
    send_copy(tx, &format!("events ({COLUMNS})"), buf).await
}

/// One binary `COPY` field: its length, then its bytes.
fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// Writes the batch skipping event ids already stored; returns which inputs were new.
async fn insert_new(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
    let n = batch.len();
    let mut position = Vec::with_capacity(n);
    let mut event_id = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut schema_version = Vec::with_capacity(n);
    let mut tenant = Vec::with_capacity(n);
    let mut stream_id = Vec::with_capacity(n);
    let mut stream_version = Vec::with_capacity(n);
    let mut task_id: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut occurred: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut correlation = Vec::with_capacity(n);
    let mut causation = Vec::with_capacity(n);
    let mut envelope: Vec<&[u8]> = Vec::with_capacity(n);
    for e in batch {
        let m = e.event.meta();
        position.push(e.position as i64);
        event_id.push(m.event_id);
        event_type.push(e.event.event_type());
        schema_version.push(e.event.schema_version() as i32);
        tenant.push(m.tenant_id.as_str());
        stream_id.push(m.aggregate.stream_id());
        stream_version.push(m.stream_version as i64);
        task_id.push(m.task_id);
        occurred.push(m.occurred_at);
        correlation.push(m.correlation_id.as_str());
        causation.push(m.causation_id.as_str());
        envelope.push(e.envelope.as_ref());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(&format!(
        "INSERT INTO events ({COLUMNS})
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[],
                              $6::text[], $7::bigint[], $8::uuid[], $9::timestamptz[], $10::text[],
                              $11::text[], $12::bytea[])
         ON CONFLICT (event_id) DO NOTHING
         RETURNING event_id"
    ))
    .bind(&position)
    .bind(&event_id)
    .bind(&event_type)
    .bind(&schema_version)
    .bind(&tenant)
    .bind(&stream_id)
    .bind(&stream_version)
    .bind(&task_id)
    .bind(&occurred)
    .bind(&correlation)
    .bind(&causation)
    .bind(&envelope)
    .fetch_all(&mut **tx)
    .await?;
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    // A batch may carry the same event id twice (republished past the duplicate window): only
    // the first occurrence counts as new.
    let mut seen = std::collections::HashSet::with_capacity(n);
    Ok(batch
        .iter()
        .map(|e| {
            let id = e.event.meta().event_id;
            inserted.contains(&id) && seen.insert(id)
        })
        .collect())
}

/// A read of the store, in position order. Every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Positions strictly greater than this.
    pub after_position: u64,
    /// Positions up to and including this (None = the end).
    pub to_position: Option<u64>,
    pub task_id: Option<Uuid>,
    pub tenant_id: Option<String>,
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_to: Option<DateTime<Utc>>,
    pub event_types: Vec<String>,
    pub limit: u32,
}

/// Postings rows read in a read's first round. A row lists its key's positions of one writer
/// transaction or of those of [`POSTINGS_SPAN`] positions and more; each later round reads as
/// many rows as the page still needs at the positions per row of the round before, from this
/// many up to [`POSTINGS_ROUND_MAX`].
const POSTINGS_ROUND: i64 = 4;
/// The most postings rows a round reads.
const POSTINGS_ROUND_MAX: i64 = 256;

/// Reads one page of events; call again with `after_position` = the last position returned. A
/// page shorter than the limit means nothing further matched.
///
/// A read for one task or one tenant walks its postings in position order and fetches the
/// positions they list (with the other filters), round after round until the page is full, then
/// scans the events after the postings' end (those the store writer has not posted yet).
pub async fn read(pool: &PgPool, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
    let limit = if q.limit == 0 {
        1000
    } else {
        q.limit.min(10_000)
    } as usize;
    let (postings, key) = match (&q.task_id, &q.tenant_id) {
        (Some(t), _) => (
            "event_task_postings WHERE task_id = $1::uuid",
            t.to_string(),
        ),
        (None, Some(t)) => ("event_tenant_postings WHERE tenant_id = $1", t.clone()),
        (None, None) => return read_events(pool, q, None, limit).await,
    };
    let to = q
        .to_position
        .map_or(i64::MAX, |t| t.min(i64::MAX as u64) as i64);
    let after = q.after_position.min(i64::MAX as u64) as i64;
    // Where the postings end, read first: the rows up to it are walked, and the events after it
    // (those the store writer has not posted yet, at most a few thousand positions) are scanned.
    let posted: i64 = sqlx::query_scalar(POSTED_TO).fetch_one(pool).await?;
    // The rows to read end with the first that reaches `to` (rows list ascending positions and
    // never overlap), so the walk stops there rather than filtering every later row.
    let upper: i64 = if q.to_position.is_none() {
        i64::MAX
    } else {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT last_position FROM {postings} AND last_position >= $2
             ORDER BY last_position LIMIT 1"
        ))
        .bind(&key)
        .bind(to)
        .fetch_optional(pool)
        .await?
        .unwrap_or(i64::MAX)
    }
    .min(posted);
    let sql = format!(
        "SELECT last_position, ranges FROM {postings}
         AND last_position > $2 AND last_position <= $3
         ORDER BY last_position LIMIT $4"
    );
    let mut out = Vec::new();
    let mut cursor = after;
    let mut round = POSTINGS_ROUND;
    while cursor < upper {
        let rows: Vec<(i64, Vec<i64>)> = sqlx::query_as(&sql)
            .bind(&key)
            .bind(cursor)
            .bind(upper)
            .bind(round)
            .fetch_all(pool)
            .await?;
        let positions: Vec<i64> = rows
            .iter()
            .flat_map(|(_, r)| expand_ranges(r))
            .filter(|p| *p > after && *p <= to)
            .collect();
        // Looked up a page's worth at a time: the other filters may pass few of them.
        let mut rest = positions.as_slice();
        while !rest.is_empty() && out.len() < limit {
            let (chunk, tail) = rest.split_at(rest.len().min((limit - out.len()).max(1000)));
            out.extend(read_events(pool, q, Some(chunk), limit - out.len()).await?);
            rest = tail;
        }
        match rows.last() {
            Some((last, _)) if out.len() < limit && rows.len() as i64 == round => {
                cursor = *last;
                let per_row = (positions.len() / rows.len()).max(1);
                round = ((limit - out.len()).div_ceil(per_row) as i64)
                    .clamp(POSTINGS_ROUND, POSTINGS_ROUND_MAX);
            }
            _ => break,
        }
    }
    let from = after.max(posted);
    if out.len() < limit && from < to {
        let tail = EventQuery {
            after_position: from as u64,
            ..q.clone()
        };
        out.extend(read_events(pool, &tail, None, limit - out.len()).await?);
    }
    Ok(out)
}

/// One query of the events table: the positions listed (when given) that pass every filter.
async fn read_events(
    pool: &PgPool,
    q: &EventQuery,
    positions: Option<&[i64]>,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut b = QueryBuilder::new("SELECT position, envelope, recorded_at FROM events WHERE ");
    match positions {
        // Already within the range asked for.
        Some(p) => b.push("position = ANY(").push_bind(p).push(")"),
        None => {
            b.push("position > ")
                .push_bind(q.after_position.min(i64::MAX as u64) as i64);
            if let Some(to) = q.to_position {
                b.push(" AND position <= ")
                    .push_bind(to.min(i64::MAX as u64) as i64);
            }
            &mut b
        }
    };
    if let Some(t) = q.task_id {
        b.push(" AND task_id = ").push_bind(t);
    }
    if let Some(t) = &q.tenant_id {
        b.push(" AND tenant_id = ").push_bind(t.clone());
    }
    if let Some(f) = q.occurred_from {
        b.push(" AND occurred_at >= ").push_bind(f);
    }
    if let Some(t) = q.occurred_to {
        b.push(" AND occurred_at < ").push_bind(t);
    }
    if !q.event_types.is_empty() {
        b.push(" AND event_type = ANY(")
            .push_bind(q.event_types.clone())
            .push(")");
    }
    b.push(" ORDER BY position LIMIT ").push_bind(limit as i64);
    let rows = b.build().fetch_all(pool).await?;
    rows.into_iter()
        .map(|r| {
            let position: i64 = r.try_get("position")?;
            let envelope: Vec<u8> = r.try_get("envelope")?;
            let recorded_at: DateTime<Utc> = r.try_get("recorded_at")?;
            let event = Decoded::decode(&envelope).map_err(|e| StoreError::Corrupt {
                position,
                reason: e.to_string(),
            })?;
            Ok(StoredEvent {
                position: position as u64,
                event,
                envelope: envelope.into(),
                recorded_at: Some(recorded_at),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_ranges_list_exactly_the_positions_added() {
        for positions in [
            vec![],
            vec![7],
            vec![1, 2, 3, 4],
            vec![1, 3, 5],
            vec![10, 11, 13, 14, 15, 40, 41, 99],
        ] {
            let mut ranges = Vec::new();
            for p in &positions {
                extend_ranges(&mut ranges, *p);
            }
            assert_eq!(expand_ranges(&ranges).collect::<Vec<_>>(), positions);
            assert_eq!(
                ranges.last(),
                positions.last(),
                "the last position closes the ranges"
            );
        }
        let mut ranges = Vec::new();
        for p in [10, 11, 12, 20, 21, 30] {
            extend_ranges(&mut ranges, p);
        }
        assert_eq!(ranges, [10, 12, 20, 21, 30, 30]);
    }

    #[test]
    fn distinct_ids_finds_a_repeated_id_in_any_order() {
        use waihu_events::{pb, Aggregate, Event, EventMeta};
        let events: Vec<StoredEvent> = (0..6u64)
            .map(|i| {
                let task = Uuid::now_v7();
                let meta = EventMeta::new("t", Aggregate::Task(task), 1);
                StoredEvent::known(
                    i + 1,
                    RecordedEvent::new(meta, Event::TaskStarted(pb::TaskStarted::default())),
                )
            })
            .collect();
        let refs =
            |order: &[usize]| -> Vec<&StoredEvent> { order.iter().map(|&i| &events[i]).collect() };
        assert!(distinct_ids(&refs(&[0, 1, 2, 3, 4, 5])), "increasing");
        assert!(distinct_ids(&refs(&[5, 3, 1, 0, 2, 4])), "shuffled");
        assert!(distinct_ids(&refs(&[])) && distinct_ids(&refs(&[2])));
        assert!(!distinct_ids(&refs(&[0, 1, 2, 1])), "a later repeat");
        assert!(!distinct_ids(&refs(&[4, 0, 4])), "a repeat out of order");
        assert!(!distinct_ids(&refs(&[3, 3])), "adjacent");
    }
}
