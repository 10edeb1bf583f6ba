//! The sender: leases due deliveries, POSTs them, and records what came back. Any number of
//! record service instances may run it: a delivery is leased (its next attempt moved past the
//! attempt's timeout) under `FOR UPDATE SKIP LOCKED`, so two instances never send it at once,
//! and a lease left by a crash simply expires.

use std::{sync::Arc, time::Instant};

use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use waihu_store::StoreError;

use super::{headers, signature, WebhookConfig};

/// Deliveries leased per round.
const BATCH: i64 = 200;
/// Longest error text kept per delivery.
const MAX_ERROR: usize = 300;

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, 0 when no response came.
    pub status: u16,
    pub error: Option<String>,
    pub latency_ms: u64,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Posts signed bodies.
#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
}

impl Poster {
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A receiver is answered where it was subscribed: a redirect would send tenant data
            // (and a valid signature) somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("waihu-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Poster { client })
    }

    /// POSTs `body` to `url`, signed with `secret` now.
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        delivery_id: Uuid,
        event: &str,
        body: &str,
    ) -> Attempt {
        let started = Instant::now();
        let ts = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(headers::DELIVERY, delivery_id.to_string())
            .header(headers::EVENT, event)
            .header(headers::TIMESTAMP, ts.to_string())
            .header(headers::SIGNATURE, signature(secret, ts, body))
            .body(body.to_string())
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match sent {
            Ok(r) => {
                let status = r.status();
                // The receiver's answer is not read beyond its status.
                drop(r);
                Attempt {
                    status: status.as_u16(),
                    error: (!status.is_success()).then(|| format!("HTTP {status}")),
                    latency_ms,
                }
            }
            Err(e) => Attempt {
                status: 0,
                error: Some(describe(&e)),
                latency_ms,
            },
        }
    }
}

/// A transport error with its causes, cut to [`MAX_ERROR`].
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    cut(text)
}

fn cut(mut s: String) -> String {
    s.truncate(s.floor_char_boundary(MAX_ERROR));
    s
}

#[derive(sqlx::FromRow)]
struct Leased {
    delivery_id: Uuid,
    event_type: String,
    body: String,
    attempts: i32,
    url: String,
    secret: String,
}

#[derive(Clone)]
pub struct Sender {
    pub pool: PgPool,
    pub config: WebhookConfig,
    pub poster: Poster,
    /// Woken by the fan-out and by redelivery.
    pub wake: Arc<Notify>,
}

impl Sender {
    /// Runs until `shutdown`; attempts in flight finish first.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let busy = match self.round().await {
                Ok(n) => n > 0,
                Err(e) => {
                    warn!(error = %e, "webhook sender failed; retrying");
                    false
                }
            };
            if shutdown.is_cancelled() {
                return;
            }
            if !busy {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    /// Leases what is due, sends it, records the outcomes. Returns the attempts made.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let lease = self.config.timeout + std::time::Duration::from_secs(30);
        let leased: Vec<Leased> = sqlx::query_as(
            "WITH due AS (
                 SELECT delivery_id FROM webhook_deliveries
                 WHERE state = 1 AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1
                 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries d
             SET next_attempt_at = now() + make_interval(secs => $2)
             FROM due, webhook_subscriptions s
             WHERE d.delivery_id = due.delivery_id AND s.webhook_id = d.webhook_id
             RETURNING d.delivery_id, d.event_type, d.body, d.attempts, s.url, s.secret",
        )
        .bind(BATCH)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let n = leased.len();
        if n == 0 {
            return Ok(0);
        }
        let outcomes: Vec<(Leased, Attempt)> = futures::stream::iter(leased)
            .map(|d| async move {
                let a = self
                    .poster
                    .post(&d.url, &d.secret, d.delivery_id, &d.event_type, &d.body)
                    .await;
                (d, a)
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        self.record(&outcomes).await?;
        Ok(n)
    }

    /// Writes the attempts' outcomes: delivered, dead after the last allowed attempt, or
    /// pending with the next attempt backed off.
    async fn record(&self, outcomes: &[(Leased, Attempt)]) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(outcomes.len());
        let mut states = Vec::with_capacity(outcomes.len());
        let mut statuses = Vec::with_capacity(outcomes.len());
        let mut errors = Vec::with_capacity(outcomes.len());
        let mut waits = Vec::with_capacity(outcomes.len());
        for (d, a) in outcomes {
            let attempts = d.attempts as u32 + 1;
            let state: i16 = if a.ok() {
                2
            } else if attempts >= self.config.max_attempts {
                warn!(delivery_id = %d.delivery_id, attempts, error = a.error.as_deref().unwrap_or(""),
                    "webhook delivery dead-lettered");
                3
            } else {
                1
            };
            if a.ok() && attempts > 1 {
                info!(delivery_id = %d.delivery_id, attempts, "webhook delivered after retrying");
            }
            ids.push(d.delivery_id);
            states.push(state);
            statuses.push(a.status as i32);
            errors.push(a.error.clone());
            waits.push(self.config.backoff(attempts).as_secs_f64());
        }
        sqlx::query(
            "UPDATE webhook_deliveries d
             SET state = u.state,
                 attempts = d.attempts + 1,
                 last_status = u.status,
                 last_error = u.error,
                 delivered_at = CASE WHEN u.state = 2 THEN now() END,
                 next_attempt_at = now() + make_interval(secs => u.wait)
             FROM UNNEST($1::uuid[], $2::smallint[], $3::int[], $4::text[], $5::float8[])
                  AS u(delivery_id, state, status, error, wait)
             WHERE d.delivery_id = u.delivery_id AND d.state = 1",
        )
        .bind(ids)
        .bind(states)
        .bind(statuses)
        .bind(errors)
        .bind(waits)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
