//! What there is to analyse, from the bus into the queue (`analysis_calls`):
//! - `TranscriptAvailable` (the provider's own transcript, or the simulator's dialogue): the
//!   call's transcript, due at once. A later transcript of the same call replaces an earlier one
//!   (and an ASR transcription) and is analysed again; a redelivered one changes nothing.
//! - `RecordingStored`: the call's recording. Without a transcript, and with an ASR backend, it
//!   is due after `asr_grace` (time for a provider's own transcript to arrive first).

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use waihu_bus::{BatchHandler, Delivery, HandlerError};
use waihu_events::{pb, Event, RecordedEvent};

use crate::work::{bounded, state, MAX_TRANSCRIPT_BYTES};

#[derive(Clone)]
pub struct Intake {
    pub pool: sqlx::PgPool,
    /// Whether an ASR backend is configured.
    pub asr: bool,
    pub asr_grace: Duration,
    pub wake: Arc<Notify>,
}

impl BatchHandler for Intake {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let transient = |e: sqlx::Error| HandlerError::Transient(format!("analysis queue: {e}"));
        let mut tx = self.pool.begin().await.map_err(transient)?;
        let mut due = false;
        for d in batch {
            let e = &d.event;
            match &e.event {
                Event::TranscriptAvailable(t) => {
                    due |= transcript(&mut tx, e, t).await.map_err(transient)?;
                }
                Event::RecordingStored(r) => {
                    due |= recording(&mut tx, e, r, self.asr, self.asr_grace)
                        .await
                        .map_err(transient)?;
                }
                _ => {}
            }
        }
        tx.commit().await.map_err(transient)?;
        if due {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// The call a payload names, when it is a UUID (anything else is not ours to analyse).
fn call_of(id: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(id).ok()
}

/// Text fit for a PostgreSQL text column: no NUL, bounded.
fn clean(s: &str, max: usize) -> String {
    bounded(&s.replace('\0', ""), max)
}

async fn transcript(
    tx: &mut sqlx::PgConnection,
    e: &RecordedEvent,
    t: &pb::TranscriptAvailable,
) -> Result<bool, sqlx::Error> {
    let Some(call) = call_of(&t.call_id) else {
        return Ok(false);
    };
    let done = sqlx::query(&format!(
        "INSERT INTO analysis_calls AS a (call_id, tenant_id, task_id, contact_no, transcript,
             transcript_source, language, transcript_event, state, next_at, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {p}, now(), $9)
         ON CONFLICT (call_id) DO UPDATE SET transcript = excluded.transcript,
             transcript_source = excluded.transcript_source, language = excluded.language,
             transcript_event = excluded.transcript_event, state = {p}, next_at = now(),
             generation = a.generation + 1, attempts = 0, retranscribe = false,
             analyzer_override = NULL, correlation_id = excluded.correlation_id,
             updated_at = now()
         WHERE a.tenant_id = excluded.tenant_id
           AND a.transcript_event IS DISTINCT FROM excluded.transcript_event",
        p = state::PENDING
    ))
    .bind(call)
    .bind(&e.meta.tenant_id)
    .bind(e.meta.task_id)
    .bind(t.contact_no.min(i32::MAX as u32) as i32)
    .bind(clean(&t.text, MAX_TRANSCRIPT_BYTES))
    .bind(clean(&t.source, 64))
    .bind(clean(&t.language, 16))
    .bind(e.meta.event_id)
    .bind(clean(&e.meta.correlation_id, 200))
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

async fn recording(
    tx: &mut sqlx::PgConnection,
    e: &RecordedEvent,
    r: &pb::RecordingStored,
    asr: bool,
    grace: Duration,
) -> Result<bool, sqlx::Error> {
    let Some(call) = call_of(&r.call_id) else {
        return Ok(false);
    };
    // A new row waits for the ASR backend after the grace (or, without one, for a transcript);
    // a row that exists keeps its state and learns where the recording is.
    let (state, after) = if asr {
        (state::PENDING, Some(grace.as_secs_f64()))
    } else {
        (state::WAITING, None)
    };
    let done = sqlx::query(
        "INSERT INTO analysis_calls AS a (call_id, tenant_id, task_id, contact_no, recording_key,
             recording_format, recording_content_type, recording_bytes, state, next_at,
             correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10), $11)
         ON CONFLICT (call_id) DO UPDATE SET recording_key = excluded.recording_key,
             recording_format = excluded.recording_format,
             recording_content_type = excluded.recording_content_type,
             recording_bytes = excluded.recording_bytes
         WHERE a.tenant_id = excluded.tenant_id
         RETURNING (xmax = 0) AS inserted",
    )
    .bind(call)
    .bind(&e.meta.tenant_id)
    .bind(e.meta.task_id)
    .bind(r.contact_no.min(i32::MAX as u32) as i32)
    .bind(clean(&r.key, 1024))
    .bind(clean(&r.format, 16))
    .bind(clean(&r.content_type, 128))
    .bind(r.bytes.min(i64::MAX as u64) as i64)
    .bind(state)
    .bind(after)
    .bind(clean(&e.meta.correlation_id, 200))
    .fetch_optional(&mut *tx)
    .await?;
    Ok(asr && done.is_some())
}
