//! Tenants' entitlements (seed 001's 猎企添加BOT权限 plus call limits): kept by the task
//! service, announced as `TenantEntitlementsSet` events (the dialer follows them), and enforced
//! here when a task is created, started or resumed, and by a watch that pauses the running
//! tasks of a tenant whose automatic dialing was switched off or expired.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{info, warn};
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{from_timestamp, pb, timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_runtime::ApiError;
use waihu_store::Tx;

use crate::{
    db::Db,
    domain::{Command, Status as TaskStatus},
    TaskError,
};

/// The time zone of a tenant's day when none is set.
pub const DEFAULT_TIME_ZONE: &str = waihu_telephony::zone::DEFAULT;

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: String,
    bot_enabled: bool,
    bot_expire_at: Option<DateTime<Utc>>,
    max_tasks: i32,
    max_concurrent_calls: i32,
    daily_calls: i32,
    time_zone: String,
}

const COLUMNS: &str =
    "tenant_id, bot_enabled, bot_expire_at, max_tasks, max_concurrent_calls, daily_calls, time_zone";

impl Row {
    fn to_pb(&self) -> pb::Entitlements {
        pb::Entitlements {
            tenant_id: self.tenant_id.clone(),
            bot_enabled: self.bot_enabled,
            bot_expire_at: self.bot_expire_at.map(timestamp),
            max_tasks: self.max_tasks as u32,
            max_concurrent_calls: self.max_concurrent_calls as u32,
            daily_calls: self.daily_calls as u32,
            time_zone: self.time_zone.clone(),
        }
    }

    /// Why automatic dialing is closed to the tenant at `now`, if it is.
    fn closed(&self, now: DateTime<Utc>) -> Option<String> {
        closed(&self.tenant_id, self.bot_enabled, self.bot_expire_at, now)
    }
}

/// Why automatic dialing is closed to `tenant` at `now` with these entitlements, if it is.
fn closed(
    tenant: &str,
    bot_enabled: bool,
    bot_expire_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<String> {
    if !bot_enabled {
        return Some(format!(
            "automatic dialing is not enabled for tenant {tenant} (entitlement bot_enabled)"
        ));
    }
    match bot_expire_at {
        Some(at) if at <= now => Some(format!(
            "tenant {tenant}'s automatic dialing expired at {} (entitlement bot_expire_at)",
            at.to_rfc3339()
        )),
        _ => None,
    }
}

/// What a tenant nobody has set entitlements for may do: everything.
fn unrestricted(tenant: &str) -> pb::Entitlements {
    pb::Entitlements {
        tenant_id: tenant.to_string(),
        bot_enabled: true,
        time_zone: DEFAULT_TIME_ZONE.into(),
        ..Default::default()
    }
}

/// The tenant's row, locked for the rest of `tx` (so concurrent creations count one another).
async fn lock(tx: &mut Tx<'_>, tenant: &str) -> Result<Option<Row>, TaskError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM task_tenants WHERE tenant_id = $1 FOR UPDATE"
    ))
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Refuses a new task when the tenant's automatic dialing is closed or its open tasks reach
/// `max_tasks`. In the creating transaction.
pub async fn check_create(tx: &mut Tx<'_>, tenant: &str) -> Result<(), TaskError> {
    let Some(row) = lock(tx, tenant).await? else {
        return Ok(());
    };
    if let Some(why) = row.closed(Utc::now()) {
        return Err(ApiError::PermissionDenied(why));
    }
    if row.max_tasks > 0 {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM task_tasks WHERE tenant_id = $1 AND status IN ($2, $3, $4)",
        )
        .bind(tenant)
        .bind(TaskStatus::Pending.code())
        .bind(TaskStatus::Running.code())
        .bind(TaskStatus::Paused.code())
        .fetch_one(&mut **tx)
        .await?;
        if open >= row.max_tasks as i64 {
            return Err(ApiError::ResourceExhausted(format!(
                "tenant {tenant} has {open} open tasks (pending, running or paused); entitlement \
                 max_tasks is {}",
                row.max_tasks
            )));
        }
    }
    Ok(())
}

/// Refuses starting or resuming a task when the tenant's automatic dialing is closed.
pub async fn check_dialing(tx: &mut Tx<'_>, tenant: &str) -> Result<(), TaskError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM task_tenants WHERE tenant_id = $1 FOR SHARE"
    ))
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?;
    match row.and_then(|r| r.closed(Utc::now())) {
        Some(why) => Err(ApiError::PermissionDenied(why)),
        None => Ok(()),
    }
}

/// Checks entitlements as given: INVALID_ARGUMENT naming the field.
fn validate(e: &pb::Entitlements) -> Result<(), TaskError> {
    if !waihu_auth::keys::valid_tenant(&e.tenant_id) {
        return Err(ApiError::invalid(
            "entitlements.tenant_id",
            "1-64 characters of A-Z a-z 0-9 - _",
        ));
    }
    for (field, v) in [
        ("entitlements.max_tasks", e.max_tasks),
        ("entitlements.max_concurrent_calls", e.max_concurrent_calls),
        ("entitlements.daily_calls", e.daily_calls),
    ] {
        if v > i32::MAX as u32 {
            return Err(ApiError::invalid(field, format!("at most {}", i32::MAX)));
        }
    }
    if let Some(t) = &e.bot_expire_at {
        if from_timestamp(t).is_none() {
            return Err(ApiError::invalid(
                "entitlements.bot_expire_at",
                "is not a valid time",
            ));
        }
    }
    if e.time_zone.len() > 64 {
        return Err(ApiError::invalid("entitlements.time_zone", "too long"));
    }
    // The dialer counts the tenant's day in this zone: a name PostgreSQL does not know would
    // stop its rounds.
    waihu_telephony::zone::parse(&e.time_zone)
        .map_err(|reason| ApiError::invalid("entitlements.time_zone", reason))?;
    Ok(())
}

impl Db {
    pub async fn entitlements(&self, tenant: &str) -> Result<pb::TenantEntitlements, TaskError> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM task_tenants WHERE tenant_id = $1"
        ))
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => pb::TenantEntitlements {
                entitlements: Some(r.to_pb()),
                configured: true,
            },
            None => pb::TenantEntitlements {
                entitlements: Some(unrestricted(tenant)),
                configured: false,
            },
        })
    }

    /// Replaces a tenant's entitlements and announces them, in one transaction.
    pub async fn set_entitlements(
        &self,
        mut e: pb::Entitlements,
        audit: RecordedEvent,
    ) -> Result<pb::TenantEntitlements, TaskError> {
        validate(&e)?;
        if e.time_zone.is_empty() {
            e.time_zone = DEFAULT_TIME_ZONE.into();
        }
        let mut tx = self.pool.begin().await?;
        // PostgreSQL knows the IANA zones: an unknown one is the caller's mistake.
        if sqlx::query("SELECT now() AT TIME ZONE $1")
            .bind(&e.time_zone)
            .execute(&mut *tx)
            .await
            .is_err()
        {
            return Err(ApiError::invalid(
                "entitlements.time_zone",
                format!("{:?} is not a known IANA time zone", e.time_zone),
            ));
        }
        let expire = e.bot_expire_at.as_ref().and_then(from_timestamp);
        #[derive(sqlx::FromRow)]
        struct Set {
            #[sqlx(flatten)]
            row: Row,
            version: i64,
        }
        let Set { row, version }: Set = sqlx::query_as(&format!(
            "INSERT INTO task_tenants AS t (tenant_id, bot_enabled, bot_expire_at, max_tasks,
                 max_concurrent_calls, daily_calls, time_zone, version, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, now())
             ON CONFLICT (tenant_id) DO UPDATE SET bot_enabled = excluded.bot_enabled,
                 bot_expire_at = excluded.bot_expire_at, max_tasks = excluded.max_tasks,
                 max_concurrent_calls = excluded.max_concurrent_calls,
                 daily_calls = excluded.daily_calls, time_zone = excluded.time_zone,
                 version = t.version + 1, updated_at = now()
             RETURNING {COLUMNS}, version"
        ))
        .bind(&e.tenant_id)
        .bind(e.bot_enabled)
        .bind(expire)
        .bind(e.max_tasks as i32)
        .bind(e.max_concurrent_calls as i32)
        .bind(e.daily_calls as i32)
        .bind(&e.time_zone)
        .fetch_one(&mut *tx)
        .await?;
        let event = tenant_event(&row, version);
        self.outbox
            .push(&mut tx, &[event, (audit, Expect::Any)])
            .await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(pb::TenantEntitlements {
            entitlements: Some(row.to_pb()),
            configured: true,
        })
    }

    /// Running tasks of tenants whose automatic dialing is closed now: (tenant, task, why).
    async fn closed_running(&self) -> Result<Vec<(String, Uuid, String)>, TaskError> {
        let rows: Vec<(String, Uuid, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT t.tenant_id, k.task_id, t.bot_enabled, t.bot_expire_at
             FROM task_tenants t JOIN task_tasks k ON k.tenant_id = t.tenant_id AND k.status = $1
             WHERE NOT t.bot_enabled OR t.bot_expire_at <= now()
             LIMIT 1000",
        )
        .bind(TaskStatus::Running.code())
        .fetch_all(&self.pool)
        .await?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .filter_map(|(tenant, task, enabled, expire)| {
                closed(&tenant, enabled, expire, now).map(|why| (tenant, task, why))
            })
            .collect())
    }
}

fn tenant_event(row: &Row, version: i64) -> (RecordedEvent, Expect) {
    let tenant = &row.tenant_id;
    let meta = EventMeta::new(tenant, Aggregate::tenant(tenant), version as u64)
        .with_deterministic_id(&format!("tenant/{tenant}/{version}"));
    let event = Event::TenantEntitlementsSet(pb::TenantEntitlementsSet {
        entitlements: Some(row.to_pb()),
    });
    (RecordedEvent::new(meta, event), Expect::Any)
}

/// Pauses, every `every`, the running tasks of tenants whose automatic dialing was switched off
/// or has expired; each `TaskPaused` carries the reason.
pub async fn watch(db: Db, every: Duration, stop: CancellationToken) -> Result<(), String> {
    loop {
        match db.closed_running().await {
            Ok(tasks) => {
                for (tenant, task, why) in tasks {
                    let cmd = Command::Suspend {
                        reason: why.clone(),
                    };
                    match db.transition(&tenant, task, cmd, None).await {
                        Ok(_) => {
                            info!(%tenant, task_id = %task, reason = %why, "task paused by its entitlements")
                        }
                        // Paused or finished meanwhile: nothing to do.
                        Err(ApiError::FailedPrecondition(_)) => {}
                        Err(e) => {
                            warn!(%tenant, task_id = %task, error = %e, "cannot pause a task of a closed tenant")
                        }
                    }
                }
            }
            Err(e) => warn!(error = %e, "entitlement watch failed; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// `TenantService`: operators read and set tenants' entitlements.
pub struct TenantApi {
    pub db: Db,
}

#[tonic::async_trait]
impl pb::tenant_service_server::TenantService for TenantApi {
    async fn get_entitlements(
        &self,
        req: Request<pb::GetEntitlementsRequest>,
    ) -> Result<Response<pb::TenantEntitlements>, Status> {
        let tenant = &req.get_ref().tenant_id;
        if !waihu_auth::keys::valid_tenant(tenant) {
            return Err(
                ApiError::invalid("tenant_id", "1-64 characters of A-Z a-z 0-9 - _").into(),
            );
        }
        Ok(Response::new(self.db.entitlements(tenant).await?))
    }

    async fn set_entitlements(
        &self,
        req: Request<pb::SetEntitlementsRequest>,
    ) -> Result<Response<pb::TenantEntitlements>, Status> {
        let operator = waihu_runtime::tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let e = req
            .into_inner()
            .entitlements
            .ok_or_else(|| ApiError::invalid("entitlements", "is required"))?;
        let audit = waihu_events::audit(
            &operator,
            &actor,
            "TenantService/SetEntitlements",
            &format!("tenant {}", e.tenant_id),
            "",
        );
        let set = self.db.set_entitlements(e, audit).await?;
        if let Some(e) = &set.entitlements {
            info!(tenant = %e.tenant_id, bot_enabled = e.bot_enabled, max_tasks = e.max_tasks,
                max_concurrent_calls = e.max_concurrent_calls, daily_calls = e.daily_calls,
                "entitlements set");
        }
        Ok(Response::new(set))
    }
}
