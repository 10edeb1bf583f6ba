//! Webhooks: pushing results to the business side (seed 000's caller:sync).
//!
//! - The **fan-out** follows the event store behind the projections (so a call's record is
//!   complete when its delivery is made) and, in one transaction with its own checkpoint, adds
//!   a delivery per matching subscription. A delivery's id is derived from the subscription and
//!   the event, so the same event can never make two deliveries for one subscription.
//! - The **sender** leases due deliveries, POSTs each body signed with its subscription's secret
//!   (`X-Waihu-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`), and marks it
//!   delivered on a 2xx, or schedules the next attempt with exponential backoff, and after
//!   `max_attempts` marks it dead. A crash mid-send leaves the lease to expire, so a delivery is
//!   sent at least once; receivers drop repeats by `X-Waihu-Delivery`.
//! - The **API** (`WebhookService`) manages subscriptions, lists deliveries and sends dead ones
//!   again.

pub mod api;
pub mod body;
pub mod fanout;
pub mod sender;

use std::time::Duration;

use ring::hmac;
use uuid::Uuid;
use waihu_runtime::{config::Layers, ConfigError};

/// The checkpoint of the fan-out in the store's `checkpoints`.
pub const CHECKPOINT: &str = "webhooks";

/// The event types a subscription may ask for.
pub const EVENT_TYPES: &[&str] = &[
    body::CALL_RELEASED,
    body::CONTACT_FINISHED,
    body::TASK_STATUS,
    body::ANALYSIS_COMPLETED,
];

/// `[webhooks]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Attempts before a delivery is dead (`max_attempts`, default 10).
    pub max_attempts: u32,
    /// Wait after the first failure, doubled after each (`retry_base_ms`, default 2000).
    pub retry_base: Duration,
    /// Longest wait between attempts (`retry_cap_ms`, default 600000, ten minutes).
    pub retry_cap: Duration,
    /// How long one attempt may take, connection included (`timeout_ms`, default 10000).
    pub timeout: Duration,
    /// Attempts in flight at once per record service instance (`concurrency`, default 32).
    pub concurrency: usize,
    /// How often the fan-out and the sender look for work when idle (`poll_ms`, default 500).
    pub poll: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            max_attempts: 10,
            retry_base: Duration::from_millis(2000),
            retry_cap: Duration::from_millis(600_000),
            timeout: Duration::from_millis(10_000),
            concurrency: 32,
            poll: Duration::from_millis(500),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(default)]
struct Section {
    max_attempts: u32,
    retry_base_ms: u64,
    retry_cap_ms: u64,
    timeout_ms: u64,
    concurrency: usize,
    poll_ms: u64,
}

impl Default for Section {
    fn default() -> Self {
        let d = WebhookConfig::default();
        Section {
            max_attempts: d.max_attempts,
            retry_base_ms: d.retry_base.as_millis() as u64,
            retry_cap_ms: d.retry_cap.as_millis() as u64,
            timeout_ms: d.timeout.as_millis() as u64,
            concurrency: d.concurrency,
            poll_ms: d.poll.as_millis() as u64,
        }
    }
}

impl WebhookConfig {
    /// The `[webhooks]` section (`WAIHU_WEBHOOKS__MAX_ATTEMPTS`, ...).
    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let s: Section = layers.section("webhooks")?;
        let ranged = |key: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(ConfigError::invalid(key, format!("must be {lo} to {hi}")))
            } else {
                Ok(v)
            }
        };
        ranged("webhooks.max_attempts", s.max_attempts.into(), 1, 100)?;
        ranged("webhooks.retry_base_ms", s.retry_base_ms, 10, 3_600_000)?;
        ranged(
            "webhooks.retry_cap_ms",
            s.retry_cap_ms,
            s.retry_base_ms,
            86_400_000,
        )?;
        ranged("webhooks.timeout_ms", s.timeout_ms, 100, 300_000)?;
        ranged("webhooks.concurrency", s.concurrency as u64, 1, 1000)?;
        ranged("webhooks.poll_ms", s.poll_ms, 10, 60_000)?;
        Ok(WebhookConfig {
            max_attempts: s.max_attempts,
            retry_base: Duration::from_millis(s.retry_base_ms),
            retry_cap: Duration::from_millis(s.retry_cap_ms),
            timeout: Duration::from_millis(s.timeout_ms),
            concurrency: s.concurrency,
            poll: Duration::from_millis(s.poll_ms),
        })
    }

    /// The wait after the `attempts`-th failed attempt: base · 2^(attempts-1), at most the cap,
    /// less up to a fifth at random so receivers that failed together are not retried together.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let wait = doubled.min(self.retry_cap);
        let jitter = (Uuid::new_v4().as_u128() % 1000) as u32;
        wait - wait / 5 * jitter / 1000
    }
}

/// The delivery of event `event_id` to subscription `webhook_id`: the same pair always gives the
/// same id.
pub fn delivery_id(webhook_id: Uuid, event_id: Uuid) -> Uuid {
    Uuid::new_v5(&webhook_id, event_id.as_bytes())
}

/// The `X-Waihu-Signature` value of `body` sent at `timestamp` (Unix seconds):
/// `sha256=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body.as_bytes());
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// Header names of a delivery.
pub mod headers {
    pub const DELIVERY: &str = "x-waihu-delivery";
    pub const EVENT: &str = "x-waihu-event";
    pub const TIMESTAMP: &str = "x-waihu-timestamp";
    pub const SIGNATURE: &str = "x-waihu-signature";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The construction, against the primitive over the joined bytes.
        let s = signature("Jefe", 1_700_000_000, "{}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let want = hmac::sign(&key, b"1700000000.{}");
        assert_eq!(s, format!("sha256={}", hex::encode(want.as_ref())));
        // And the primitive itself against RFC 4231 test case 2.
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn delivery_ids_are_stable_per_pair() {
        let (w, e) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(delivery_id(w, e), delivery_id(w, e));
        assert_ne!(delivery_id(w, e), delivery_id(Uuid::new_v4(), e));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let c = WebhookConfig {
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(60),
            ..Default::default()
        };
        for (n, full) in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (40, 60)] {
            let w = c.backoff(n);
            let full = Duration::from_secs(full);
            assert!(w <= full && w >= full * 4 / 5, "attempt {n}: {w:?}");
        }
    }

    #[test]
    fn config_is_checked() {
        let layers =
            |k: &str, v: &str| Layers::from_vars([(k.to_string(), v.to_string())]).expect("layers");
        let e = WebhookConfig::from_layers(&layers("WAIHU_WEBHOOKS__MAX_ATTEMPTS", "0"))
            .expect_err("0 attempts");
        assert!(e.to_string().contains("webhooks.max_attempts"), "{e}");
        let c = WebhookConfig::from_layers(&layers("WAIHU_WEBHOOKS__RETRY_BASE_MS", "100"))
            .expect("valid");
        assert_eq!(c.retry_base, Duration::from_millis(100));
    }
}
