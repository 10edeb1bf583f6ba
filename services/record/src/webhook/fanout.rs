//! The fan-out: follows the store behind the projections and turns each event that a
//! subscription asks for into a delivery, moving its checkpoint in the same transaction.
//!
//! Why no event is missed or doubled:
//! - the head it reads up to is taken before the subscriptions are read, and a subscription
//!   only covers events after the store's position at its creation, which is at least that head,
//!   so a subscription made mid-step has nothing in the step;
//! - the checkpoint moves only from where this step read it (`advance_checkpoint`), and a
//!   delivery's id is derived from (subscription, event), so a repeated step inserts nothing.

use std::{collections::HashMap, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;
use waihu_store::{EventQuery, StoreError};

use super::{body, delivery_id, CHECKPOINT};
use crate::{projection, writer};

/// Events read per step.
const PAGE: u32 = 1000;
/// The advisory lock that makes one record service instance the fan-out.
pub const LEADER_LOCK: &str = "waihu-record-webhook-fanout";

#[derive(sqlx::FromRow)]
struct Subscription {
    webhook_id: Uuid,
    tenant_id: String,
    event_types: Vec<String>,
    from_position: i64,
}

/// One delivery to insert.
struct NewDelivery {
    delivery_id: Uuid,
    webhook_id: Uuid,
    tenant_id: String,
    event_id: Uuid,
    event_type: &'static str,
    position: i64,
    body: String,
}

#[derive(Clone)]
pub struct Fanout {
    pub pool: PgPool,
    pub poll: Duration,
    /// Woken when deliveries were added.
    pub sender: Arc<Notify>,
}

impl Fanout {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let idle = match self.step().await {
                Ok(made) => {
                    if made > 0 {
                        self.sender.notify_one();
                    }
                    made == 0
                }
                Err(e) => {
                    warn!(error = %e, "webhook fan-out failed; retrying");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.poll) => {}
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Fans out one page past the checkpoint. Returns the deliveries made; Ok(0) also when
    /// there was nothing to read.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let at = waihu_store::checkpoint(&self.pool, CHECKPOINT).await?;
        let head = waihu_store::checkpoint(&self.pool, writer::CHECKPOINT)
            .await?
            .min(waihu_store::checkpoint(&self.pool, projection::CHECKPOINT).await?);
        if head <= at {
            return Ok(0);
        }
        let subs: Vec<Subscription> = sqlx::query_as(
            "SELECT webhook_id, tenant_id, event_types, from_position FROM webhook_subscriptions",
        )
        .fetch_all(&self.pool)
        .await?;
        // Nothing before the oldest subscription's start can make a delivery.
        let start = subs
            .iter()
            .map(|s| s.from_position.max(0) as u64)
            .min()
            .unwrap_or(head)
            .max(at);
        let (last, page) = if start >= head {
            (head, Vec::new())
        } else {
            let page = waihu_store::read(
                &self.pool,
                &EventQuery {
                    after_position: start,
                    to_position: Some(head),
                    event_types: body::STORE_TYPES.iter().map(|t| t.to_string()).collect(),
                    limit: PAGE,
                    ..Default::default()
                },
            )
            .await?;
            let last = match page.last() {
                Some(e) if page.len() == PAGE as usize => e.position,
                _ => head,
            };
            (last, page)
        };

        let mut by_tenant: HashMap<&str, Vec<&Subscription>> = HashMap::new();
        for s in &subs {
            by_tenant.entry(&s.tenant_id).or_default().push(s);
        }
        let wanted: Vec<_> = page
            .iter()
            .filter_map(|stored| {
                let e = stored.event.known()?;
                let kind = body::kind(&e.event)?;
                let subs: Vec<&Subscription> = by_tenant
                    .get(e.meta.tenant_id.as_str())?
                    .iter()
                    .copied()
                    .filter(|s| {
                        stored.position as i64 > s.from_position
                            && s.event_types.iter().any(|t| t == kind)
                    })
                    .collect();
                (!subs.is_empty())
                    .then(|| (stored.position, e, kind, body::call_of(&e.event), subs))
            })
            .collect();

        // The records of the calls the bodies tell of (complete: the head is behind the
        // projections).
        let call_ids: Vec<Uuid> = wanted.iter().filter_map(|w| w.3).collect();
        let calls: HashMap<Uuid, body::CallFacts> = if call_ids.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<_, body::CallFacts>(
                "SELECT call_id, record_no, phone, attempt, line_id, requested_at, answered_at, \
                 released_at FROM call_records WHERE call_id = ANY($1)",
            )
            .bind(&call_ids)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|c| (c.call_id, c))
            .collect()
        };

        let mut rows = Vec::new();
        for (position, e, kind, call, subs) in &wanted {
            let call = call.and_then(|c| calls.get(&c));
            for s in subs {
                let id = delivery_id(s.webhook_id, e.meta.event_id);
                let Some(text) = body::body(id, e, call) else {
                    continue;
                };
                rows.push(NewDelivery {
                    delivery_id: id,
                    webhook_id: s.webhook_id,
                    tenant_id: e.meta.tenant_id.clone(),
                    event_id: e.meta.event_id,
                    event_type: kind,
                    position: *position as i64,
                    body: text,
                });
            }
        }

        let mut tx = self.pool.begin().await?;
        if !waihu_store::advance_checkpoint(&mut tx, CHECKPOINT, at, last).await? {
            debug!("the webhook checkpoint moved under this fan-out");
            return Ok(0);
        }
        let made = insert(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(made)
    }
}

/// Inserts the deliveries not made before (a subscription deleted meanwhile makes none).
async fn insert(tx: &mut waihu_store::Tx<'_>, rows: &[NewDelivery]) -> Result<usize, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&NewDelivery) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries
             (delivery_id, webhook_id, tenant_id, event_id, event_type, position, body)
         SELECT d.* FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[],
                                $6::bigint[], $7::text[])
              AS d(delivery_id, webhook_id, tenant_id, event_id, event_type, position, body)
         JOIN webhook_subscriptions s ON s.webhook_id = d.webhook_id
         ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.webhook_id).collect::<Vec<_>>())
    .bind(col(|r| r.tenant_id.clone()))
    .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(col(|r| r.event_type.to_string()))
    .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
    .bind(col(|r| r.body.clone()))
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() as usize)
}
