//! `WebhookService`: a tenant's subscriptions and their deliveries. Every call acts within the
//! caller's tenant: another tenant's subscription is NOT_FOUND.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use waihu_events::timestamp;
use waihu_proto::v1::{self as pb, webhook_service_server::WebhookService};
use waihu_runtime::{page_token, parse_uuid, tenant, ApiError};

use super::{body, sender::Poster, EVENT_TYPES};
use crate::writer;

/// Subscriptions one tenant may have.
pub const MAX_WEBHOOKS: i64 = 100;
const MAX_URL: usize = 2000;

pub struct WebhookApi {
    pub pool: PgPool,
    pub poster: Poster,
    /// Wakes the sender after a redelivery.
    pub wake: Arc<Notify>,
    /// Where audit records go (None in tests of the API alone).
    pub bus: Option<waihu_bus::Bus>,
}

#[derive(sqlx::FromRow)]
struct SubRow {
    webhook_id: Uuid,
    url: String,
    event_types: Vec<String>,
    created_at: DateTime<Utc>,
    pending: i64,
    delivered: i64,
    dead: i64,
}

impl SubRow {
    fn to_pb(&self) -> pb::Webhook {
        pb::Webhook {
            webhook_id: self.webhook_id.to_string(),
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            created_at: Some(timestamp(self.created_at)),
            secret: String::new(),
            pending: self.pending.max(0) as u64,
            delivered: self.delivered.max(0) as u64,
            dead: self.dead.max(0) as u64,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    delivery_id: Uuid,
    webhook_id: Uuid,
    event_type: String,
    event_id: Uuid,
    state: i16,
    attempts: i32,
    last_status: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryRow {
    fn to_pb(&self) -> pb::WebhookDelivery {
        let state = match self.state {
            1 => pb::DeliveryState::Pending,
            2 => pb::DeliveryState::Delivered,
            3 => pb::DeliveryState::Dead,
            _ => pb::DeliveryState::Unspecified,
        };
        pb::WebhookDelivery {
            delivery_id: self.delivery_id.to_string(),
            webhook_id: self.webhook_id.to_string(),
            event_type: self.event_type.clone(),
            event_id: self.event_id.to_string(),
            state: state as i32,
            attempts: self.attempts.max(0) as u32,
            last_status: self.last_status.unwrap_or(0).max(0) as u32,
            last_error: self.last_error.clone().unwrap_or_default(),
            created_at: Some(timestamp(self.created_at)),
            next_attempt_at: (state == pb::DeliveryState::Pending)
                .then(|| timestamp(self.next_attempt_at)),
            delivered_at: self.delivered_at.map(timestamp),
        }
    }
}

/// An http or https URL with a host, at most [`MAX_URL`] bytes.
pub fn check_url(s: &str) -> Result<(), ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid("url", "is required"));
    }
    if s.len() > MAX_URL {
        return Err(ApiError::invalid("url", format!("at most {MAX_URL} bytes")));
    }
    let u = url::Url::parse(s).map_err(|e| ApiError::invalid("url", format!("{e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(ApiError::invalid("url", "must be http or https"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ApiError::invalid(
            "url",
            "must not carry credentials (deliveries are signed with the secret)",
        ));
    }
    Ok(())
}

/// The event types asked for: one or more known ones, each once.
fn check_types(types: &[String]) -> Result<Vec<String>, ApiError> {
    if types.is_empty() {
        return Err(ApiError::invalid(
            "event_types",
            format!("name one or more of {}", EVENT_TYPES.join(", ")),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in types {
        if !EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::invalid(
                "event_types",
                format!(
                    "{:?} is not one of {}",
                    t.chars().take(100).collect::<String>(),
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// The secret given (16-200 printable characters) or a new random one.
fn secret(given: &str) -> Result<String, ApiError> {
    if given.is_empty() {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| ApiError::Unavailable("no randomness for a secret; retry".into()))?;
        return Ok(format!("whsec_{}", hex::encode(key)));
    }
    let n = given.chars().count();
    if !(16..=200).contains(&n) {
        return Err(ApiError::invalid("secret", "16 to 200 characters"));
    }
    if given.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "secret",
            "must not hold control characters",
        ));
    }
    Ok(given.to_string())
}

impl WebhookApi {
    async fn audit(&self, tenant: &str, actor: &str, action: &str, id: Uuid, detail: &str) {
        crate::audit::record(
            self.bus.as_ref(),
            tenant,
            actor,
            action,
            &format!("webhook {id}"),
            detail,
        )
        .await;
    }

    /// The tenant's subscription `id`, with its URL and secret; NOT_FOUND otherwise.
    async fn subscription(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(Uuid, String, String), ApiError> {
        let webhook_id = parse_uuid("webhook_id", id)?;
        sqlx::query_as(
            "SELECT webhook_id, url, secret FROM webhook_subscriptions
             WHERE webhook_id = $1 AND tenant_id = $2",
        )
        .bind(webhook_id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {webhook_id}")))
    }
}

const SUB_COLUMNS: &str = "s.webhook_id, s.url, s.event_types, s.created_at,
    count(*) FILTER (WHERE d.state = 1) AS pending,
    count(*) FILTER (WHERE d.state = 2) AS delivered,
    count(*) FILTER (WHERE d.state = 3) AS dead";

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_webhook(
        &self,
        req: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let r = req.into_inner();
        check_url(&r.url)?;
        let types = check_types(&r.event_types)?;
        let secret = secret(&r.secret)?;
        let mut tx = self.pool.begin().await.map_err(ApiError::from)?;
        // One creation at a time per tenant, so the limit holds.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))")
            .bind(&tenant)
            .execute(&mut *tx)
            .await
            .map_err(ApiError::from)?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_subscriptions WHERE tenant_id = $1")
                .bind(&tenant)
                .fetch_one(&mut *tx)
                .await
                .map_err(ApiError::from)?;
        if count >= MAX_WEBHOOKS {
            return Err(ApiError::ResourceExhausted(format!(
                "a tenant may have at most {MAX_WEBHOOKS} webhooks"
            ))
            .into());
        }
        let from = waihu_store::checkpoint(&mut *tx, writer::CHECKPOINT)
            .await
            .map_err(ApiError::from)?;
        let id = Uuid::now_v7();
        let created_at: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO webhook_subscriptions
                 (webhook_id, tenant_id, url, secret, event_types, from_position)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at",
        )
        .bind(id)
        .bind(&tenant)
        .bind(&r.url)
        .bind(&secret)
        .bind(&types)
        .bind(from as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(ApiError::from)?;
        tx.commit().await.map_err(ApiError::from)?;
        tracing::info!(tenant = %tenant, webhook_id = %id, types = ?types, "webhook created");
        let detail = format!("event types: {}", types.join(", "));
        self.audit(&tenant, &actor, "WebhookService/CreateWebhook", id, &detail)
            .await;
        Ok(Response::new(pb::Webhook {
            webhook_id: id.to_string(),
            url: r.url,
            event_types: types,
            created_at: Some(timestamp(created_at)),
            secret,
            ..Default::default()
        }))
    }

    async fn list_webhooks(
        &self,
        req: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let rows: Vec<SubRow> = sqlx::query_as(&format!(
            "SELECT {SUB_COLUMNS} FROM webhook_subscriptions s
             LEFT JOIN webhook_deliveries d ON d.webhook_id = s.webhook_id
             WHERE s.tenant_id = $1
             GROUP BY s.webhook_id ORDER BY s.created_at, s.webhook_id"
        ))
        .bind(&tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks: rows.iter().map(SubRow::to_pb).collect(),
        }))
    }

    async fn delete_webhook(
        &self,
        req: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let id = parse_uuid("webhook_id", &req.get_ref().webhook_id)?;
        let done = sqlx::query(
            "DELETE FROM webhook_subscriptions WHERE webhook_id = $1 AND tenant_id = $2",
        )
        .bind(id)
        .bind(&tenant)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;
        if done.rows_affected() == 0 {
            return Err(ApiError::NotFound(format!("webhook {id}")).into());
        }
        tracing::info!(tenant = %tenant, webhook_id = %id, "webhook deleted");
        self.audit(&tenant, &actor, "WebhookService/DeleteWebhook", id, "")
            .await;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    async fn test_webhook(
        &self,
        req: Request<pb::TestWebhookRequest>,
    ) -> Result<Response<pb::TestWebhookResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let (id, url, secret) = self
            .subscription(&tenant, &req.get_ref().webhook_id)
            .await?;
        let delivery_id = Uuid::now_v7();
        let text = body::test_body(delivery_id, &tenant, id);
        let a = self
            .poster
            .post(&url, &secret, delivery_id, body::TEST, &text)
            .await;
        let detail = format!("HTTP {}", a.status);
        self.audit(&tenant, &actor, "WebhookService/TestWebhook", id, &detail)
            .await;
        Ok(Response::new(pb::TestWebhookResponse {
            ok: a.ok(),
            status: a.status.into(),
            latency_ms: a.latency_ms,
            error: a.error.unwrap_or_default(),
            delivery_id: delivery_id.to_string(),
        }))
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let (id, _, _) = self.subscription(&tenant, &r.webhook_id).await?;
        let size = match r.page_size {
            0 => 100,
            n @ 1..=1000 => n,
            _ => return Err(ApiError::invalid("page_size", "1 to 1000").into()),
        };
        let state = match pb::DeliveryState::try_from(r.state) {
            Ok(pb::DeliveryState::Unspecified) => None,
            Ok(s) => Some(s as i16),
            Err(_) => return Err(ApiError::invalid("state", "not a DeliveryState").into()),
        };
        let after = page_token::decode(&r.page_token)?;
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT delivery_id, webhook_id, event_type, event_id, state, attempts, last_status,
                    last_error, created_at, next_attempt_at, delivered_at
             FROM webhook_deliveries
             WHERE webhook_id = $1 AND tenant_id = $2
               AND ($3::smallint IS NULL OR state = $3)
               AND ($4::timestamptz IS NULL OR (created_at, delivery_id) < ($4, $5))
             ORDER BY created_at DESC, delivery_id DESC LIMIT $6",
        )
        .bind(id)
        .bind(&tenant)
        .bind(state)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(size as i64 + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(ApiError::from)?;
        let more = rows.len() > size as usize;
        let rows = &rows[..rows.len().min(size as usize)];
        let next_page_token = match rows.last() {
            Some(last) if more => page_token::encode(last.created_at, last.delivery_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: rows.iter().map(DeliveryRow::to_pb).collect(),
            next_page_token,
        }))
    }

    async fn redeliver_webhooks(
        &self,
        req: Request<pb::RedeliverWebhooksRequest>,
    ) -> Result<Response<pb::RedeliverWebhooksResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let r = req.into_inner();
        let (id, _, _) = self.subscription(&tenant, &r.webhook_id).await?;
        if r.delivery_ids.len() > 1000 {
            return Err(ApiError::invalid("delivery_ids", "at most 1000 per call").into());
        }
        let ids = r
            .delivery_ids
            .iter()
            .map(|d| parse_uuid("delivery_ids", d))
            .collect::<Result<Vec<_>, _>>()?;
        // Attempts start over, so the limit applies afresh.
        let done = sqlx::query(
            "UPDATE webhook_deliveries
             SET state = 1, attempts = 0, next_attempt_at = now(), delivered_at = NULL
             WHERE webhook_id = $1 AND tenant_id = $2
               AND (CASE WHEN cardinality($3::uuid[]) = 0 THEN state = 3
                         ELSE delivery_id = ANY($3) END)",
        )
        .bind(id)
        .bind(&tenant)
        .bind(&ids)
        .execute(&self.pool)
        .await
        .map_err(ApiError::from)?;
        self.wake.notify_one();
        tracing::info!(tenant = %tenant, webhook_id = %id, redelivered = done.rows_affected(),
            "webhook deliveries sent again");
        let detail = format!("deliveries queued again: {}", done.rows_affected());
        self.audit(
            &tenant,
            &actor,
            "WebhookService/RedeliverWebhooks",
            id,
            &detail,
        )
        .await;
        Ok(Response::new(pb::RedeliverWebhooksResponse {
            redelivered: done.rows_affected(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_types_and_secrets_are_checked_by_field() {
        for ok in ["http://127.0.0.1:9/x", "https://crm.example.com/hook?a=1"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://x/",
            "not a url",
            "http://user:pw@host/",
            "file:///etc/passwd",
        ] {
            let e = check_url(bad).expect_err(bad);
            assert!(e.to_string().contains("url"), "{bad}: {e}");
        }
        assert!(check_types(&[]).is_err());
        assert!(check_types(&["call.nope".into()]).is_err());
        assert_eq!(
            check_types(&["task.status".into(), "task.status".into()]).ok(),
            Some(vec!["task.status".to_string()])
        );
        assert!(secret("short").is_err());
        assert!(secret("a-long-enough-secret").is_ok());
        let made = secret("").expect("random");
        assert!(made.starts_with("whsec_") && made.len() == 6 + 64);
        assert_ne!(made, secret("").expect("random"));
    }
}
