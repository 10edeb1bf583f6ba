//! The analysis queue (`analysis_calls`) and the worker that drains it.
//!
//! The intake (see `intake`) writes what there is to analyse: a transcript (due at once) or a
//! stored recording (due after `asr_grace` when an ASR backend is configured, so that a
//! provider's own transcript wins when it comes). The worker leases due rows, gets the text (the
//! transcript, or the ASR backend's transcription of the recording), analyses it with the
//! tenant's analyzer and, in one transaction, writes the outcome to the row and its event to the
//! outbox: `AnalysisCompleted`, or `AnalysisFailed` with the attempt, the reason and whether it
//! gave up. A failed attempt that may succeed later is due again after a backoff; a lease that
//! outlives a crashed worker makes the row due again. A result computed for an older generation
//! of the row (a new transcript or a reanalysis came meanwhile) is dropped.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::{path::Path as ObjectPath, ObjectStore};
use prost::Message;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use waihu_analyzer::Analyzer;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_store::{Outbox, StoreError};

use crate::{
    backends::{BackendError, Client},
    config::{AnalysisConfig, Choice},
};

/// Row states.
pub mod state {
    /// A recording and no transcript, and no ASR backend to make one: nothing to do yet.
    pub const WAITING: i16 = 0;
    pub const PENDING: i16 = 1;
    pub const COMPLETED: i16 = 2;
    /// Given up (after `max_attempts`, or a failure no retry can change).
    pub const FAILED: i16 = 3;
}

/// Which analyzer made a local analysis.
pub const LOCAL_ANALYZER: &str = "local-rules-v1";

/// Longest transcript analysed and carried by an analysis (bytes): the event stays well under
/// the bus's limit whatever a provider or the ASR backend sent.
pub const MAX_TRANSCRIPT_BYTES: usize = 100_000;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn bounded(s: &str, max: usize) -> String {
    s[..s.floor_char_boundary(max)].to_string()
}

/// One row of `analysis_calls`, as the worker and the API read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub call_id: Uuid,
    pub tenant_id: String,
    pub task_id: Option<Uuid>,
    pub contact_no: i32,
    pub transcript: Option<String>,
    pub transcript_source: String,
    pub language: String,
    pub transcript_event: Option<Uuid>,
    pub recording_key: Option<String>,
    pub recording_format: String,
    pub recording_content_type: String,
    pub recording_bytes: i64,
    pub state: i16,
    pub generation: i32,
    pub attempts: i32,
    pub next_at: Option<DateTime<Utc>>,
    pub analyzer_override: Option<String>,
    pub retranscribe: bool,
    pub analyzer: String,
    pub result: Option<Vec<u8>>,
    pub failure: String,
    pub events: i32,
    pub correlation_id: String,
    pub updated_at: DateTime<Utc>,
}

impl Row {
    /// The last completed analysis, decoded.
    pub fn completed(&self) -> Option<pb::AnalysisCompleted> {
        self.result
            .as_deref()
            .and_then(|b| pb::AnalysisCompleted::decode(b).ok())
    }
}

/// What one attempt came to.
enum Outcome {
    Completed {
        analysis: Box<pb::AnalysisCompleted>,
        /// The ASR backend's transcript, kept on the row for later reanalyses.
        transcribed: Option<String>,
    },
    Failed {
        reason: String,
        permanent: bool,
    },
}

/// Drains the queue.
#[derive(Clone)]
pub struct Worker {
    pub pool: PgPool,
    pub config: Arc<AnalysisConfig>,
    pub analyzer: Arc<Analyzer>,
    pub client: Client,
    /// The recordings storage (with an ASR backend only).
    pub recordings: Option<Arc<dyn ObjectStore>>,
    pub outbox: Outbox,
    pub wake: Arc<Notify>,
}

impl Worker {
    /// How long a leased row stays away from other workers: longer than one attempt can take.
    fn lease(&self) -> Duration {
        let backend = [self.config.llm.as_ref(), self.config.asr.as_ref()]
            .into_iter()
            .flatten()
            .map(|b| b.timeout)
            .sum::<Duration>();
        backend + Duration::from_secs(10)
    }

    pub async fn run(self, stop: CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            let claimed = match self.claim().await {
                Ok(rows) => rows,
                Err(e) => {
                    warn!(error = %e, "analysis queue unreadable; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
                continue;
            }
            let results: Vec<Result<(), StoreError>> = futures::stream::iter(claimed)
                .map(|row| {
                    let w = self.clone();
                    async move { w.attempt(row).await }
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
            // A row whose outcome could not be written stays leased and comes back when the
            // lease ends; say so once per round.
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                warn!(error = %e, "an analysis outcome was not written; it will be retried");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            self.outbox.wake();
        }
    }

    /// Leases up to a round of due rows.
    async fn claim(&self) -> Result<Vec<Row>, StoreError> {
        let n = (self.config.concurrency * 4).max(16) as i64;
        let rows = sqlx::query_as::<_, Row>(&format!(
            "UPDATE analysis_calls a SET next_at = now() + make_interval(secs => $1)
             FROM (SELECT call_id FROM analysis_calls
                   WHERE state = {} AND next_at <= now()
                   ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED) d
             WHERE a.call_id = d.call_id
             RETURNING a.*",
            state::PENDING,
        ))
        .bind(self.lease().as_secs_f64())
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// One attempt at one row, and its outcome written.
    async fn attempt(&self, row: Row) -> Result<(), StoreError> {
        let choice = row
            .analyzer_override
            .as_deref()
            .and_then(Choice::parse)
            .unwrap_or_else(|| self.config.choice_of(&row.tenant_id));
        let outcome = self.analyse(&row, choice).await;
        self.write(&row, choice, outcome).await
    }

    async fn analyse(&self, row: &Row, choice: Choice) -> Outcome {
        let failed = |e: BackendError| Outcome::Failed {
            permanent: e.is_permanent(),
            reason: e.to_string(),
        };
        // The text: the transcript, or the recording's transcription.
        let (text, source, transcribed) = match (&row.transcript, row.retranscribe) {
            (Some(t), false) => (t.clone(), row.transcript_source.clone(), None),
            _ => match self.transcribe(row).await {
                Ok(t) => (t.clone(), "asr".to_string(), Some(t)),
                Err(e) => return failed(e),
            },
        };
        let (analysis, analyzer) = match choice {
            Choice::Local => {
                let a = self.analyzer.clone();
                let t = text.clone();
                let done = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| a.analyze(&t)))
                })
                .await;
                match done {
                    Ok(Ok(a)) => (
                        (
                            a.intent,
                            a.sentiment,
                            a.keywords,
                            a.summary,
                            a.language.to_string(),
                        ),
                        LOCAL_ANALYZER.to_string(),
                    ),
                    _ => {
                        return Outcome::Failed {
                            reason: "the local analyzer stopped on this transcript".into(),
                            permanent: true,
                        }
                    }
                }
            }
            Choice::Llm => {
                let Some(b) = &self.config.llm else {
                    return Outcome::Failed {
                        reason: "no chat endpoint is configured (analysis.llm.base_url)".into(),
                        permanent: true,
                    };
                };
                match self.client.chat(b, &text).await {
                    Ok(c) => {
                        let language = if c.language.is_empty() {
                            waihu_analyzer::language(&text).to_string()
                        } else {
                            c.language
                        };
                        (
                            (c.intent, c.sentiment, c.keywords, c.summary, language),
                            format!("llm:{}", b.model),
                        )
                    }
                    Err(e) => return failed(e),
                }
            }
        };
        let (intent, sentiment, keywords, summary, language) = analysis;
        Outcome::Completed {
            analysis: Box::new(pb::AnalysisCompleted {
                call_id: row.call_id.to_string(),
                task_id: row.task_id.map(|t| t.to_string()).unwrap_or_default(),
                contact_no: row.contact_no.max(0) as u32,
                intent: intent.name().into(),
                grade: intent.grade().into(),
                sentiment: sentiment.name().into(),
                keywords,
                summary,
                language,
                transcript: bounded(&text, MAX_TRANSCRIPT_BYTES),
                analyzer,
                transcript_source: source,
            }),
            transcribed,
        }
    }

    /// The recording's text from the ASR backend.
    async fn transcribe(&self, row: &Row) -> Result<String, BackendError> {
        let (Some(asr), Some(recordings)) = (&self.config.asr, &self.recordings) else {
            return Err(BackendError::Permanent(
                "no transcript, and no ASR backend is configured (analysis.asr.base_url)".into(),
            ));
        };
        let Some(key) = &row.recording_key else {
            return Err(BackendError::Permanent(
                "no transcript and no stored recording".into(),
            ));
        };
        let max = self.config.asr_max_bytes;
        if row.recording_bytes.max(0) as u64 > max {
            return Err(BackendError::Permanent(format!(
                "the recording ({} bytes) is larger than analysis.asr.max_mb",
                row.recording_bytes
            )));
        }
        let path = ObjectPath::from(key.as_str());
        let got = recordings.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                BackendError::Permanent(format!("the recording {key} is no longer stored"))
            }
            e => BackendError::Retry(format!("reading the recording {key}: {e}")),
        })?;
        if got.meta.size > max {
            return Err(BackendError::Permanent(format!(
                "the recording ({} bytes) is larger than analysis.asr.max_mb",
                got.meta.size
            )));
        }
        let audio = got
            .bytes()
            .await
            .map_err(|e| BackendError::Retry(format!("reading the recording {key}: {e}")))?;
        let ext = if row.recording_format.is_empty() {
            "wav"
        } else {
            row.recording_format.as_str()
        };
        let content_type = match row.recording_content_type.as_str() {
            "" => "application/octet-stream",
            ct => ct,
        };
        let text = self
            .client
            .transcribe(
                asr,
                audio,
                &format!("{}.{ext}", row.call_id),
                content_type,
                &self.config.asr_language,
            )
            .await?;
        Ok(bounded(&text, MAX_TRANSCRIPT_BYTES))
    }

    /// Writes an attempt's outcome and its event, unless the row moved on meanwhile.
    async fn write(&self, row: &Row, choice: Choice, outcome: Outcome) -> Result<(), StoreError> {
        let attempt = row.attempts.max(0) as u32 + 1;
        let version = row.events.max(0) as u64 + 1;
        let mut meta = EventMeta::new(
            row.tenant_id.clone(),
            Aggregate::Analysis(row.call_id),
            version,
        )
        .with_deterministic_id(&format!(
            "analysis/{}/{}/{attempt}",
            row.call_id, row.generation
        ));
        if let Some(task) = row.task_id {
            meta = meta.with_task(task);
        }
        meta.correlation_id = row.correlation_id.clone();
        meta.causation_id = row
            .transcript_event
            .map(|e| e.to_string())
            .unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        let (event, updated) = match outcome {
            Outcome::Completed {
                analysis,
                transcribed,
            } => {
                let encoded = analysis.encode_to_vec();
                let updated = sqlx::query(&format!(
                    "UPDATE analysis_calls SET state = {}, attempts = $3, next_at = NULL,
                         analyzer = $4, result = $5, failure = '', events = events + 1,
                         transcript = COALESCE($6, transcript),
                         transcript_source = CASE WHEN $6 IS NULL THEN transcript_source ELSE 'asr' END,
                         retranscribe = false, updated_at = now()
                     WHERE call_id = $1 AND generation = $2",
                    state::COMPLETED
                ))
                .bind(row.call_id)
                .bind(row.generation)
                .bind(attempt as i32)
                .bind(choice.name())
                .bind(&encoded)
                .bind(transcribed)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                (Event::AnalysisCompleted(*analysis), updated)
            }
            Outcome::Failed { reason, permanent } => {
                let reason = bounded(&reason, 500);
                let gave_up = permanent || attempt >= self.config.max_attempts;
                let next = (!gave_up).then(|| self.config.backoff(attempt));
                let updated = sqlx::query(
                    "UPDATE analysis_calls SET state = $3, attempts = $4,
                         next_at = now() + make_interval(secs => $5), analyzer = $6,
                         failure = $7, events = events + 1, updated_at = now()
                     WHERE call_id = $1 AND generation = $2",
                )
                .bind(row.call_id)
                .bind(row.generation)
                .bind(if gave_up {
                    state::FAILED
                } else {
                    state::PENDING
                })
                .bind(attempt as i32)
                .bind(next.map(|d| d.as_secs_f64()))
                .bind(choice.name())
                .bind(&reason)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if gave_up {
                    info!(call = %row.call_id, attempt, %reason, "analysis given up");
                } else {
                    info!(call = %row.call_id, attempt, %reason, "analysis failed; will retry");
                }
                (
                    Event::AnalysisFailed(pb::AnalysisFailed {
                        call_id: row.call_id.to_string(),
                        task_id: row.task_id.map(|t| t.to_string()).unwrap_or_default(),
                        contact_no: row.contact_no.max(0) as u32,
                        reason,
                        attempt,
                        gave_up,
                    }),
                    updated,
                )
            }
        };
        if updated == 0 {
            // A newer generation is due: this outcome is stale.
            return Ok(());
        }
        self.outbox
            .push(&mut tx, &[(RecordedEvent::new(meta, event), Expect::Any)])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
