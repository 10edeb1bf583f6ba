//! The retention sweeper: deletes the audio of recordings older than their tenant's retention
//! (seed 003 §8.5: 90 days by default) and records `RecordingDeleted`; the call's events and
//! record stay. One record service instance sweeps (leader lock).

use std::sync::Arc;

use chrono::Utc;
use object_store::{path::Path as Key, ObjectStore};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use waihu_bus::{Bus, Expect};
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};

use super::{projection::state, RecordingConfig};

pub const LEADER_LOCK: &str = "waihu-record-retention";

/// Recordings deleted per tenant per query.
const BATCH: i64 = 500;

#[derive(Clone)]
pub struct Sweeper {
    pub pool: PgPool,
    pub bus: Bus,
    pub store: Arc<dyn ObjectStore>,
    pub config: Arc<RecordingConfig>,
}

#[derive(sqlx::FromRow)]
struct Due {
    call_id: Uuid,
    task_id: Option<Uuid>,
    contact_no: i32,
    key: String,
}

impl Sweeper {
    /// Sweeps now and then every `sweep_every` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => info!(recordings = n, "retention: recordings deleted"),
                Err(e) => warn!(error = %e, "retention sweep failed; trying again later"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.sweep_every) => {}
            }
        }
    }

    /// Deletes every recording past its tenant's retention; how many.
    pub async fn sweep(&self) -> Result<u64, String> {
        let tenants: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tenant_id FROM recordings WHERE state = $1")
                .bind(state::STORED)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
        let mut deleted = 0;
        for tenant in tenants {
            let days = self.config.retention_of(&tenant);
            let cutoff = Utc::now() - chrono::Duration::days(days as i64);
            // Rows already swept but not yet projected come back; skipped by key below.
            let mut done: std::collections::HashSet<Uuid> = Default::default();
            loop {
                // The state as a constant: the partial index on stored recordings applies.
                let due: Vec<Due> = sqlx::query_as(&format!(
                    "SELECT call_id, task_id, contact_no, key FROM recordings
                     WHERE tenant_id = $1 AND state = {} AND recorded_at < $2 AND key IS NOT NULL
                       AND NOT (call_id = ANY($3))
                     ORDER BY recorded_at LIMIT $4",
                    state::STORED
                ))
                .bind(&tenant)
                .bind(cutoff)
                .bind(done.iter().copied().collect::<Vec<_>>())
                .bind(BATCH)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
                if due.is_empty() {
                    break;
                }
                for d in due {
                    self.delete(&tenant, days, &d).await?;
                    done.insert(d.call_id);
                    deleted += 1;
                }
                if done.len() > 100_000 {
                    // Bounded: the rest waits for the next sweep, once these are projected.
                    break;
                }
            }
        }
        Ok(deleted)
    }

    async fn delete(&self, tenant: &str, days: u32, d: &Due) -> Result<(), String> {
        match self.store.delete(&Key::from(d.key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("{}: {e}", d.key)),
        }
        let mut meta = EventMeta::new(tenant, Aggregate::Recording(d.call_id), 2)
            .with_deterministic_id(&format!("recording/{}/deleted", d.call_id));
        if let Some(t) = d.task_id {
            meta = meta.with_task(t);
        }
        let event = RecordedEvent::new(
            meta,
            Event::RecordingDeleted(pb::RecordingDeleted {
                call_id: d.call_id.to_string(),
                task_id: d.task_id.map(|t| t.to_string()).unwrap_or_default(),
                contact_no: d.contact_no.max(0) as u32,
                key: d.key.clone(),
                reason: "retention".into(),
                retention_days: days,
            }),
        );
        self.bus
            .publish(&event, Expect::Any)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
