//! Provider campaigns (seed 001, AI寻访员): calls a task hands over in a batch, dialed by a
//! provider with a campaign API (the simulator's, [`SimCampaigns`]; Tencent CCC's auto-callout
//! tasks) instead of one by one.
//!
//! - **Collect**: the dialer hands a campaign over as one `CallRequested` per call, each naming
//!   the campaign and its size ([`Campaigns::collect`]); every call is stored with its request.
//! - **Create** (seed 001 开始任务): once all are in (or after `collect_wait`), the intent is
//!   committed (CREATING, an event), and before the provider is first asked the adapter records
//!   that it asks; a restart after that finds the campaign by its name (the campaign id)
//!   instead of creating a second one.
//! - **Pause, resume, stop**: the adapter follows the task's events and brings the provider's
//!   campaign to the task's state (paused, running; stopped when the task is cancelled).
//! - **Sync** (seed 001 定时同步脚本, every `sync`: half an hour by default): each open
//!   campaign is described; every result not yet synced becomes the call's events through the
//!   call ledger (deterministic ids, so a sync repeated after a crash announces nothing twice);
//!   a campaign the provider finished is DONE once every call is synced (a result the provider
//!   still cannot show `result_wait` after it finished is released as unknown), and the dialer,
//!   seeing the last release, hands over the next one (roll-over) or the task completes.
//!
//! Every step is a `ProviderCampaignChanged` event on `campaign.<id>`, committed with the
//! state change through the outbox. A worker takes a campaign with a lease (a column, not a
//! held row lock, so nothing waits on it while the provider is asked); every write checks the
//! lease is still its own, so replicas share campaigns and a killed worker's are taken over
//! once its lease expires.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;
use waihu_bus::{Bus, Delivery, Expect, HandlerError, MessageHandler};
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_provider_core::{
    cloud::BoxFuture, ApiError, CallLedger, CallResult, CampaignAction, CampaignApi, CampaignCall,
    CampaignStatus, CampaignView, LineConfig, Signal,
};
use waihu_provider_sim::Simulator;
use waihu_store::Outbox;
use waihu_telephony::hangup::NOT_PLACED;

use crate::lines::LineCache;

/// Campaign states as stored: 0 collecting, then `pb::CampaignState`.
const COLLECTING: i16 = 0;
const CREATING: i16 = pb::CampaignState::Creating as i16;
const RUNNING: i16 = pb::CampaignState::Running as i16;
const PAUSED: i16 = pb::CampaignState::Paused as i16;
const STOPPED: i16 = pb::CampaignState::Stopped as i16;
const DONE: i16 = pb::CampaignState::Done as i16;
const FAILED: i16 = pb::CampaignState::Failed as i16;

const TASK_RUNNING: i16 = pb::TaskStatus::Running as i16;
const TASK_PAUSED: i16 = pb::TaskStatus::Paused as i16;
const TASK_CANCELLED: i16 = pb::TaskStatus::Cancelled as i16;

/// Results published at once in a sync.
const SYNC_CONCURRENCY: usize = 16;
/// Results published between two renewals of the lease.
const SYNC_CHUNK: usize = 500;
/// Results published in one step at most (the rest at the next, a few seconds later).
const SYNC_BATCH: usize = 5000;

/// How campaigns are kept (`[provider] campaign_sync_ms`, `campaign_collect_wait_ms`,
/// `campaign_result_wait_s`).
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// How often a running campaign's results are fetched (seed 001: every half hour).
    pub sync: Duration,
    /// How long a campaign waits for its last handed-over calls before it is created with
    /// those that came (a call arriving later is released, and the dialer calls it again).
    pub collect_wait: Duration,
    /// How often the worker looks for work when nothing wakes it.
    pub tick: Duration,
    /// How long a worker holds a campaign it took (renewed while it works on it); a killed
    /// worker's campaigns are taken over after this.
    pub lease: Duration,
    /// How long after the provider finished a campaign results it cannot show yet are waited
    /// for; then those calls are released as unknown.
    pub result_wait: Duration,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            sync: Duration::from_secs(1800),
            collect_wait: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(120),
            result_wait: Duration::from_secs(3600),
        }
    }
}

/// The campaign worker and its collector.
#[derive(Clone)]
pub struct Campaigns {
    pub pool: PgPool,
    pub bus: Bus,
    pub outbox: Outbox,
    pub lines: LineCache,
    pub sim: SimCampaigns,
    pub tencent: Arc<waihu_provider_tencent::Tencent>,
    pub config: CampaignConfig,
    pub wake: Arc<Notify>,
}

const CAMPAIGN_COLUMNS: &str = "campaign_id, tenant_id, task_id, line_id, calls, state, provider,
    provider_ref, version, synced, attempts, create_sent, over_since, next_sync_at, created_at,
    place_until";

#[derive(sqlx::FromRow, Debug, Clone)]
struct CampaignRow {
    campaign_id: Uuid,
    tenant_id: String,
    task_id: Uuid,
    line_id: String,
    calls: i32,
    state: i16,
    provider: String,
    provider_ref: String,
    version: i64,
    synced: i32,
    attempts: i32,
    create_sent: bool,
    over_since: Option<DateTime<Utc>>,
    next_sync_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    place_until: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
struct CallRow {
    call_id: Uuid,
    seq: i32,
    phone: String,
    attempt: i32,
    caller_number: String,
    synced: bool,
}

impl CallRow {
    fn campaign_call(&self) -> CampaignCall {
        CampaignCall {
            call_id: self.call_id,
            position: self.seq.max(0) as u32,
            phone: self.phone.clone(),
            attempt: self.attempt.max(0) as u32,
            caller_number: self.caller_number.clone(),
            synced: self.synced,
        }
    }
}

fn permanent(what: impl std::fmt::Display) -> HandlerError {
    HandlerError::Permanent(what.to_string())
}

fn transient(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Transient(e.to_string())
}

fn db(e: sqlx::Error) -> String {
    e.to_string()
}

/// A release for a call the provider never placed (or never told the end of).
fn not_placed(raw: &str) -> Signal {
    Signal::unanswered(waihu_telephony::hangup::cause(41, raw.to_string()))
}

/// The retry delay after `attempts` failures: 2 s doubling, at most 5 minutes.
fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempts.clamp(1, 16) as u32).min(300))
}

/// What a worker does with a campaign it leased.
struct Lease {
    token: Uuid,
}

impl Campaigns {
    /// The campaign API of lines of `provider`.
    fn api(&self, provider: &str) -> Option<&dyn CampaignApi> {
        match provider {
            "sim" => Some(&self.sim),
            "tencent" => Some(self.tencent.as_ref()),
            _ => None,
        }
    }

    /// Stores a call handed over in a campaign (`req.campaign_id`). A call arriving after its
    /// campaign was created is released at once as not placed (the dialer calls it again).
    pub async fn collect(&self, d: &Delivery, req: &pb::CallRequested) -> Result<(), HandlerError> {
        let campaign = Uuid::parse_str(&req.campaign_id)
            .map_err(|_| permanent(format!("campaign_id {:?} is not a UUID", req.campaign_id)))?;
        let call = Uuid::parse_str(&req.call_id)
            .map_err(|_| permanent(format!("call_id {:?} is not a UUID", req.call_id)))?;
        let task = Uuid::parse_str(&req.task_id)
            .map_err(|_| permanent(format!("task_id {:?} is not a UUID", req.task_id)))?;
        if req.campaign_calls == 0 || req.campaign_calls > 100_000 {
            return Err(permanent(format!(
                "campaign_calls {} (1-100000)",
                req.campaign_calls
            )));
        }
        let mut tx = self.pool.begin().await.map_err(transient)?;
        sqlx::query(
            "INSERT INTO provider_campaigns (campaign_id, tenant_id, task_id, line_id, calls,
                 place_until)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (campaign_id) DO NOTHING",
        )
        .bind(campaign)
        .bind(&d.event.meta.tenant_id)
        .bind(task)
        .bind(&req.line_id)
        .bind(req.campaign_calls as i32)
        .bind(
            req.campaign_until
                .as_ref()
                .and_then(waihu_events::from_timestamp),
        )
        .execute(&mut *tx)
        .await
        .map_err(transient)?;
        // Shared with other collectors; the move to CREATING takes the row exclusively (a
        // short transaction), so a call is either counted in or sees the campaign closed.
        let (state, tenant): (i16, String) = sqlx::query_as(
            "SELECT state, tenant_id FROM provider_campaigns WHERE campaign_id = $1 FOR SHARE",
        )
        .bind(campaign)
        .fetch_one(&mut *tx)
        .await
        .map_err(transient)?;
        if tenant != d.event.meta.tenant_id {
            return Err(permanent(format!(
                "campaign {campaign} belongs to another tenant"
            )));
        }
        if state != COLLECTING {
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM provider_campaign_calls
                                WHERE campaign_id = $1 AND call_id = $2)",
            )
            .bind(campaign)
            .bind(call)
            .fetch_one(&mut *tx)
            .await
            .map_err(transient)?;
            drop(tx);
            if known {
                return Ok(());
            }
            warn!(%campaign, %call, "a call came after its campaign was created: released, to be called again");
            let mut ledger = CallLedger::open(&self.bus, d).await?;
            return ledger
                .record(not_placed(&format!("{NOT_PLACED}:campaign-closed")))
                .await;
        }
        sqlx::query(
            "INSERT INTO provider_campaign_calls (campaign_id, call_id, contact_no, phone, attempt,
                 caller_number, request, request_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(campaign)
        .bind(call)
        .bind(req.contact_no as i32)
        .bind(&req.phone)
        .bind(req.attempt as i32)
        .bind(&req.caller_number)
        .bind(d.event.encode())
        .bind(d.stream_seq as i64)
        .execute(&mut *tx)
        .await
        .map_err(transient)?;
        tx.commit().await.map_err(transient)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Runs the campaigns until `stop`.
    pub async fn run(self, stop: CancellationToken) -> Result<(), String> {
        loop {
            let busy = match self.step().await {
                Ok(n) => n > 0,
                Err(e) => {
                    warn!(error = %e, "campaign pass failed");
                    false
                }
            };
            if busy {
                // Something moved: look again soon (the next step may be due at once).
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
    }

    /// One pass over the campaigns with something to do: how many moved on.
    pub async fn step(&self) -> Result<usize, String> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT c.campaign_id FROM provider_campaigns c
             LEFT JOIN provider_campaign_tasks t ON t.task_id = c.task_id
             WHERE c.state IN (0, 1, 2, 3, 4)
               AND (c.lease_until IS NULL OR c.lease_until < now())
               AND (c.state = 0
                    OR (coalesce(c.retry_at, '-infinity') <= now()
                        AND (c.state = 1 OR c.next_sync_at <= now()
                             OR (t.status = $1 AND c.state = 2)
                             OR (t.status = $2 AND c.state = 3)
                             OR (t.status = $3 AND c.state IN (2, 3))
                             OR (c.state IN (2, 3) AND c.place_until <= now()))))
             ORDER BY c.created_at LIMIT 100",
        )
        .bind(TASK_PAUSED)
        .bind(TASK_RUNNING)
        .bind(TASK_CANCELLED)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut moved = 0;
        for id in ids {
            match self.advance(id).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => warn!(campaign = %id, error = %e, "campaign step failed"),
            }
        }
        Ok(moved)
    }

    /// Takes campaign `id` (unless another worker holds it) and moves it on as far as it goes
    /// now: whether it changed state.
    async fn advance(&self, id: Uuid) -> Result<bool, String> {
        let lease = Lease {
            token: Uuid::new_v4(),
        };
        let Some(mut row): Option<CampaignRow> = sqlx::query_as(&format!(
            "UPDATE provider_campaigns SET lease_until = now() + $3, lease_token = $2
             WHERE campaign_id = $1 AND (lease_until IS NULL OR lease_until < now())
               AND state IN (0, 1, 2, 3, 4) AND coalesce(retry_at, '-infinity') <= now()
             RETURNING {CAMPAIGN_COLUMNS}"
        ))
        .bind(id)
        .bind(lease.token)
        .bind(self.config.lease)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        else {
            return Ok(false);
        };
        let before = row.state;
        let mut done = self.advance_leased(&mut row, &lease).await;
        if let Err(e) = &done {
            // Backed off like any failed step (unless the lease went to another worker).
            if let Err(e2) = self.later(&mut row, &lease, e).await {
                done = Err(format!("{e}; {e2}"));
            }
        }
        sqlx::query(
            "UPDATE provider_campaigns SET lease_until = NULL
             WHERE campaign_id = $1 AND lease_token = $2",
        )
        .bind(id)
        .bind(lease.token)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        done.map(|_| before != row.state)
    }

    async fn advance_leased(&self, row: &mut CampaignRow, lease: &Lease) -> Result<(), String> {
        let id = row.campaign_id;
        let wanted: Option<i16> =
            sqlx::query_scalar("SELECT status FROM provider_campaign_tasks WHERE task_id = $1")
                .bind(row.task_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        if row.state == COLLECTING {
            return self.close_collection(row, lease).await;
        }
        let line = self
            .lines
            .get(&row.tenant_id, &row.line_id)
            .await
            .map_err(|e| format!("line {}: {e}", row.line_id))?;
        let api = line.as_ref().and_then(|l| self.api(&l.provider));
        let (Some(line), Some(api)) = (line.as_deref(), api) else {
            let why = match &line {
                Some(l) => format!(
                    "the {} provider of line {} has no campaign API (sim and tencent have)",
                    l.provider, row.line_id
                ),
                None => format!("line {} does not exist", row.line_id),
            };
            if row.state == CREATING && !row.create_sent {
                // Nothing was asked of any provider: the calls are released with the reason.
                return self.fail(row, lease, &why).await;
            }
            // Created at a provider (or maybe): its calls are not released while it may still
            // dial them; an operator restores the line.
            return self.later(row, lease, &why).await;
        };
        if row.state == CREATING {
            return self.create(row, lease, line, api, wanted).await;
        }
        // Bring the provider's campaign to the task's state; past the end of its calling
        // window it is stopped (what it did not reach is called again in the next window).
        let closed = row.place_until.is_some_and(|u| u <= Utc::now());
        let action = match (row.state, wanted) {
            (RUNNING | PAUSED, Some(TASK_CANCELLED)) => Some((CampaignAction::Stop, STOPPED)),
            (RUNNING | PAUSED, _) if closed => Some((CampaignAction::Stop, STOPPED)),
            (RUNNING, Some(TASK_PAUSED)) => Some((CampaignAction::Pause, PAUSED)),
            (PAUSED, Some(TASK_RUNNING)) => Some((CampaignAction::Resume, RUNNING)),
            _ => None,
        };
        let (mut sync_now, mut acted) = (false, true);
        if let Some((action, to)) = action {
            self.renew(row, lease).await?;
            match api.act(line, &row.provider_ref, action).await {
                Ok(()) => {
                    let why = if closed && wanted != Some(TASK_CANCELLED) {
                        "calling window closed"
                    } else {
                        ""
                    };
                    self.change(row, lease, to, why).await?;
                    info!(campaign = %id, ?action, "campaign brought to its task's state");
                    sync_now = to == STOPPED;
                }
                // Tried again after a backoff; the sync below still runs.
                Err(e) => {
                    acted = false;
                    self.later(row, lease, &format!("{action:?}: {e}")).await?
                }
            }
        }
        if sync_now || row.next_sync_at <= Utc::now() {
            self.sync(row, lease, line, api, acted).await?;
        }
        Ok(())
    }

    /// Closes a campaign's collection once all its calls are in (or `collect_wait` passed):
    /// numbers them in hand-over order and records the intent to create it (CREATING).
    async fn close_collection(&self, row: &mut CampaignRow, lease: &Lease) -> Result<(), String> {
        let id = row.campaign_id;
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Exclusively: a collector holding the row shared has its call counted in first.
        let mine: Option<i16> = sqlx::query_scalar(
            "SELECT state FROM provider_campaigns WHERE campaign_id = $1 AND lease_token = $2
             FOR UPDATE",
        )
        .bind(id)
        .bind(lease.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if mine != Some(COLLECTING) {
            return Ok(());
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM provider_campaign_calls WHERE campaign_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let waited = Utc::now() - row.created_at
            >= chrono::Duration::from_std(self.config.collect_wait)
                .unwrap_or(chrono::Duration::MAX);
        if n < row.calls as i64 && !waited {
            return Ok(());
        }
        if n < row.calls as i64 {
            warn!(campaign = %id, handed = row.calls, arrived = n,
                  "campaign created with the calls that came; later ones are released");
        }
        sqlx::query(
            "UPDATE provider_campaign_calls c SET seq = x.rn
             FROM (SELECT call_id, (row_number() OVER (ORDER BY call_id) - 1)::int AS rn
                   FROM provider_campaign_calls WHERE campaign_id = $1) x
             WHERE c.campaign_id = $1 AND c.call_id = x.call_id",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        row.calls = n as i32;
        self.write_state(&mut tx, row, lease, CREATING, "").await?;
        tx.commit().await.map_err(db)?;
        self.outbox.wake();
        Ok(())
    }

    /// Creates the campaign at the provider, or finds the one an earlier attempt created.
    async fn create(
        &self,
        row: &mut CampaignRow,
        lease: &Lease,
        line: &LineConfig,
        api: &dyn CampaignApi,
        wanted: Option<i16>,
    ) -> Result<(), String> {
        let id = row.campaign_id;
        let name = id.to_string();
        if !row.create_sent
            && row
                .place_until
                .is_some_and(|u| u <= Utc::now() + chrono::Duration::seconds(5))
        {
            // Its calling window closed before it could be created: nothing was placed.
            self.release_rest(row, lease, &format!("{NOT_PLACED}:window-closed"))
                .await?;
            return self
                .change(row, lease, DONE, "calling window closed before creation")
                .await;
        }
        // Only an earlier attempt that may have reached the provider needs a look-up.
        let found = if row.create_sent {
            self.renew(row, lease).await?;
            match api.find(line, &name).await {
                Ok(f) => f,
                Err(e) => return self.later(row, lease, &format!("find: {e}")).await,
            }
        } else {
            None
        };
        if let Some(reference) = &found {
            info!(campaign = %id, %reference, "campaign found at the provider by name");
        }
        if wanted == Some(TASK_CANCELLED) {
            match found {
                // Created before the crash: stopped there, its results synced as any.
                Some(reference) => {
                    if let Err(e) = api.act(line, &reference, CampaignAction::Stop).await {
                        return self.later(row, lease, &format!("Stop: {e}")).await;
                    }
                    row.provider_ref = reference;
                    row.provider = line.provider.clone();
                    row.next_sync_at = Utc::now();
                    return self
                        .change(row, lease, STOPPED, "task cancelled while creating")
                        .await;
                }
                None => {
                    // Never reached the provider: nothing was placed.
                    self.release_rest(row, lease, "waihu:campaign-cancelled")
                        .await?;
                    return self
                        .change(row, lease, DONE, "task cancelled before creation")
                        .await;
                }
            }
        }
        let reference = match found {
            Some(r) => r,
            None => {
                // Recorded before the request: a crash from here on finds it by name.
                self.renew_setting(row, lease, ", create_sent = true")
                    .await?;
                row.create_sent = true;
                let calls = self.calls(id, false).await?;
                let cases: Vec<CampaignCall> = calls.iter().map(CallRow::campaign_call).collect();
                let until = row.place_until.map(|u| u.timestamp());
                match api.create(line, &name, &cases, until).await {
                    Ok(r) => r,
                    Err(ApiError::Config(m)) | Err(ApiError::Refused { message: m, .. }) => {
                        return self.fail(row, lease, &m).await;
                    }
                    Err(e) => return self.later(row, lease, &format!("create: {e}")).await,
                }
            }
        };
        row.provider_ref = reference;
        row.provider = line.provider.clone();
        row.next_sync_at = Utc::now()
            + chrono::Duration::from_std(self.config.sync).unwrap_or(chrono::Duration::MAX);
        self.change(row, lease, RUNNING, "").await?;
        info!(campaign = %id, task = %row.task_id, calls = row.calls,
              reference = %row.provider_ref, "campaign created at the provider");
        Ok(())
    }

    /// Fetches the campaign's results and publishes those not yet synced; a campaign the
    /// provider finished is DONE once every call is.
    async fn sync(
        &self,
        row: &mut CampaignRow,
        lease: &Lease,
        line: &LineConfig,
        api: &dyn CampaignApi,
        acted: bool,
    ) -> Result<(), String> {
        let id = row.campaign_id;
        // Every call, so a provider matching callees by position or number stays aligned; only
        // those not yet synced are asked about and published.
        let all = self.calls(id, false).await?;
        let cases: Vec<CampaignCall> = all.iter().map(CallRow::campaign_call).collect();
        let pending: Vec<&CallRow> = all.iter().filter(|c| !c.synced).collect();
        self.renew(row, lease).await?;
        let view: CampaignView = match api.describe(line, &row.provider_ref, &cases).await {
            Ok(v) => v,
            Err(e) => return self.later(row, lease, &format!("describe: {e}")).await,
        };
        let over = view.status == CampaignStatus::Over;
        let now = Utc::now();
        let wanted: std::collections::HashSet<Uuid> = pending.iter().map(|c| c.call_id).collect();
        let mut results: Vec<(Uuid, CallResult)> = view
            .results
            .into_iter()
            .filter(|r| wanted.contains(&r.call_id))
            .map(|r| (r.call_id, r))
            .collect();
        results.sort_by_key(|(c, _)| *c);
        results.dedup_by_key(|(c, _)| *c);
        let mut over_since = row.over_since;
        if over {
            let since = *over_since.get_or_insert(now);
            let waited = now - since
                >= chrono::Duration::from_std(self.config.result_wait)
                    .unwrap_or(chrono::Duration::MAX);
            if waited {
                // The provider finished long ago and still shows no result for these: they
                // are released as unknown rather than held forever.
                let known: std::collections::HashSet<Uuid> =
                    results.iter().map(|(id, _)| *id).collect();
                for c in &pending {
                    if !known.contains(&c.call_id) {
                        results.push((
                            c.call_id,
                            CallResult {
                                call_id: c.call_id,
                                provider_call_id: String::new(),
                                signals: vec![not_placed("waihu:campaign-result-unknown")],
                                raw: String::new(),
                            },
                        ));
                    }
                }
            }
        }
        // At most SYNC_BATCH a step (the rest at the next, soon).
        let capped = results.len() > SYNC_BATCH;
        results.truncate(SYNC_BATCH);
        let failed = self.publish_results(row, lease, results).await?;
        row.synced = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM provider_campaign_calls WHERE campaign_id = $1 AND synced",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(db)? as i32;
        let finished = over && !capped && row.synced >= row.calls;
        // Looked at again soon while results are on their way; at the sync interval otherwise.
        let again = if row.state == STOPPED || view.lagging || failed > 0 || capped {
            Duration::from_secs(2)
        } else if over {
            Duration::from_secs(30)
        } else {
            self.config.sync
        }
        .min(self.config.sync);
        row.next_sync_at = now + chrono::Duration::from_std(again).unwrap_or(chrono::Duration::MAX);
        row.over_since = over_since;
        debug!(campaign = %id, failed, synced = row.synced, calls = row.calls, over, "campaign synced");
        if finished {
            self.change(row, lease, DONE, "").await?;
            info!(campaign = %id, task = %row.task_id, calls = row.calls, "campaign done");
            return Ok(());
        }
        sqlx::query(
            "UPDATE provider_campaigns SET synced = $3, next_sync_at = $4, over_since = $5,
                 retry_at = CASE WHEN $6 THEN NULL ELSE retry_at END,
                 attempts = CASE WHEN $6 THEN 0 ELSE attempts END, updated_at = now()
             WHERE campaign_id = $1 AND lease_token = $2",
        )
        .bind(id)
        .bind(lease.token)
        .bind(row.synced)
        .bind(row.next_sync_at)
        .bind(row.over_since)
        .bind(acted)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Publishes `results` through their calls' ledgers, SYNC_CHUNK at a time (their stored
    /// requests read in one query, the lease renewed per chunk), and marks synced those
    /// published and those that never can be (their request or subject is gone: given up, so
    /// the campaign can end; the dialer's watchdog settles the call). How many are left to try
    /// again.
    async fn publish_results(
        &self,
        row: &CampaignRow,
        lease: &Lease,
        mut results: Vec<(Uuid, CallResult)>,
    ) -> Result<usize, String> {
        let id = row.campaign_id;
        let mut failed = 0;
        while !results.is_empty() {
            let tail = results.split_off(results.len().min(SYNC_CHUNK));
            let chunk = std::mem::replace(&mut results, tail);
            self.renew(row, lease).await?;
            let ids: Vec<Uuid> = chunk.iter().map(|(c, _)| *c).collect();
            let stored: HashMap<Uuid, (Vec<u8>, i64)> = sqlx::query_as(
                "SELECT call_id, request, request_seq FROM provider_campaign_calls
                 WHERE campaign_id = $1 AND call_id = ANY($2)",
            )
            .bind(id)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .into_iter()
            .map(|(call, request, seq): (Uuid, Vec<u8>, i64)| (call, (request, seq)))
            .collect();
            let stored = &stored;
            let published: Vec<(Uuid, Result<(), HandlerError>)> = futures::stream::iter(chunk)
                .map(|(call, r)| async move {
                    let done = match stored.get(&call) {
                        Some((request, seq)) => self.publish(request, *seq, &r).await,
                        None => Err(permanent(format!("call {call} is not stored"))),
                    };
                    (call, done)
                })
                .buffer_unordered(SYNC_CONCURRENCY)
                .collect()
                .await;
            let mut done: Vec<Uuid> = Vec::with_capacity(published.len());
            for (call, r) in published {
                match r {
                    Ok(()) => done.push(call),
                    Err(HandlerError::Permanent(e)) => {
                        warn!(campaign = %id, %call, error = %e, "call result cannot be published: given up");
                        done.push(call);
                    }
                    Err(e) => {
                        failed += 1;
                        warn!(campaign = %id, %call, error = %e, "call result not published: tried again soon");
                    }
                }
            }
            sqlx::query(
                "UPDATE provider_campaign_calls SET synced = true
                 WHERE campaign_id = $1 AND call_id = ANY($2)",
            )
            .bind(id)
            .bind(&done)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        }
        Ok(failed)
    }

    /// Publishes one call's result through its ledger (nothing twice: the ledger's ids are
    /// deterministic and it resumes from the call's last event), after its stored request
    /// (`request` at stream sequence `seq`).
    async fn publish(&self, request: &[u8], seq: i64, r: &CallResult) -> Result<(), HandlerError> {
        let request = RecordedEvent::decode(request)
            .map_err(|e| permanent(format!("stored request: {e}")))?;
        let mut ledger = CallLedger::reopen(&self.bus, request, seq as u64).await?;
        let last = r.signals.len().saturating_sub(1);
        for (i, s) in r.signals.iter().enumerate() {
            if i == last {
                ledger.record_report(s.clone(), r.raw.clone()).await?;
            } else {
                ledger.record(s.clone()).await?;
            }
        }
        Ok(())
    }

    /// The campaign's calls in hand-over order (only those not yet synced, when `pending`).
    async fn calls(&self, id: Uuid, pending: bool) -> Result<Vec<CallRow>, String> {
        sqlx::query_as(
            "SELECT call_id, seq, phone, attempt, caller_number, synced
             FROM provider_campaign_calls
             WHERE campaign_id = $1 AND (NOT $2 OR NOT synced) ORDER BY seq, call_id",
        )
        .bind(id)
        .bind(pending)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    /// Releases every call not yet synced as not placed, with `why`.
    async fn release_rest(
        &self,
        row: &CampaignRow,
        lease: &Lease,
        why: &str,
    ) -> Result<(), String> {
        let results = self
            .calls(row.campaign_id, true)
            .await?
            .into_iter()
            .map(|c| {
                let r = CallResult {
                    call_id: c.call_id,
                    provider_call_id: String::new(),
                    signals: vec![not_placed(why)],
                    raw: String::new(),
                };
                (c.call_id, r)
            })
            .collect();
        match self.publish_results(row, lease, results).await? {
            0 => Ok(()),
            n => Err(format!("{n} releases not published yet")),
        }
    }

    /// The campaign can never be created (never asked of a provider, or refused for good):
    /// every call is released with the reason.
    async fn fail(&self, row: &mut CampaignRow, lease: &Lease, why: &str) -> Result<(), String> {
        warn!(campaign = %row.campaign_id, line = %row.line_id, reason = %why, "campaign failed: its calls are released");
        let raw = format!(
            "waihu:campaign-failed: {}",
            why.chars().take(200).collect::<String>()
        );
        self.release_rest(row, lease, &raw).await?;
        sqlx::query(
            "UPDATE provider_campaigns SET last_error = left($3, 1000)
             WHERE campaign_id = $1 AND lease_token = $2",
        )
        .bind(row.campaign_id)
        .bind(lease.token)
        .bind(why)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.change(row, lease, FAILED, why).await
    }

    /// A step that can be tried again: counted, retried after a backoff.
    async fn later(&self, row: &mut CampaignRow, lease: &Lease, why: &str) -> Result<(), String> {
        row.attempts += 1;
        warn!(campaign = %row.campaign_id, attempts = row.attempts, error = %why, "campaign step to be tried again");
        sqlx::query(
            "UPDATE provider_campaigns SET attempts = $3, last_error = left($4, 1000),
                 retry_at = now() + $5, updated_at = now()
             WHERE campaign_id = $1 AND lease_token = $2",
        )
        .bind(row.campaign_id)
        .bind(lease.token)
        .bind(row.attempts)
        .bind(why)
        .bind(backoff(row.attempts))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Extends the lease, which must still be this worker's and unexpired: a step that took
    /// long stops rather than act beside a worker that took the campaign over.
    async fn renew(&self, row: &CampaignRow, lease: &Lease) -> Result<(), String> {
        self.renew_setting(row, lease, "").await
    }

    /// [`Campaigns::renew`], setting `set` (`, column = value`) in the same statement.
    async fn renew_setting(
        &self,
        row: &CampaignRow,
        lease: &Lease,
        set: &str,
    ) -> Result<(), String> {
        let n = sqlx::query(&format!(
            "UPDATE provider_campaigns SET lease_until = now() + $3{set}
             WHERE campaign_id = $1 AND lease_token = $2 AND lease_until > now()"
        ))
        .bind(row.campaign_id)
        .bind(lease.token)
        .bind(self.config.lease)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err("lease lost: the campaign was taken over".into());
        }
        Ok(())
    }

    /// Records a new state with its event.
    async fn change(
        &self,
        row: &mut CampaignRow,
        lease: &Lease,
        state: i16,
        reason: &str,
    ) -> Result<(), String> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        self.write_state(&mut tx, row, lease, state, reason).await?;
        tx.commit().await.map_err(db)?;
        self.outbox.wake();
        Ok(())
    }

    /// Writes `state` (and the row's provider, reference, sync time) with its event in `tx`.
    async fn write_state(
        &self,
        tx: &mut waihu_store::Tx<'_>,
        row: &mut CampaignRow,
        lease: &Lease,
        state: i16,
        reason: &str,
    ) -> Result<(), String> {
        let updated = sqlx::query(
            "UPDATE provider_campaigns SET state = $3, version = version + 1, calls = $4,
                 provider = $5, provider_ref = $6, next_sync_at = $7, synced = $8,
                 retry_at = NULL, attempts = 0, updated_at = now()
             WHERE campaign_id = $1 AND lease_token = $2 AND version = $9",
        )
        .bind(row.campaign_id)
        .bind(lease.token)
        .bind(state)
        .bind(row.calls)
        .bind(&row.provider)
        .bind(&row.provider_ref)
        .bind(row.next_sync_at)
        .bind(row.synced)
        .bind(row.version)
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err("lease lost: the campaign was taken over".into());
        }
        row.state = state;
        row.version += 1;
        row.attempts = 0;
        let meta = EventMeta::new(
            &row.tenant_id,
            Aggregate::Campaign(row.campaign_id),
            row.version as u64,
        )
        .with_deterministic_id(&format!("campaign/{}/{}", row.campaign_id, row.version))
        .with_task(row.task_id);
        let event = Event::ProviderCampaignChanged(pb::ProviderCampaignChanged {
            campaign_id: row.campaign_id.to_string(),
            task_id: row.task_id.to_string(),
            line_id: row.line_id.clone(),
            state: state as i32,
            provider_ref: row.provider_ref.clone(),
            name: row.campaign_id.to_string(),
            calls: row.calls.max(0) as u32,
            synced: row.synced.max(0) as u32,
            reason: reason.chars().take(500).collect(),
        });
        self.outbox
            .push(tx, &[(RecordedEvent::new(meta, event), Expect::Any)])
            .await
            .map_err(|e| e.to_string())
    }

    /// Drops campaigns done or failed more than `older_than` ago, with their calls (and the
    /// simulator's own campaigns as old).
    pub async fn prune(&self, older_than: Duration) -> Result<u64, sqlx::Error> {
        let n = sqlx::query(
            "DELETE FROM provider_campaigns
             WHERE state IN (5, 6) AND updated_at < now() - $1",
        )
        .bind(older_than)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM sim_campaigns WHERE created_at < now() - $1")
            .bind(older_than)
            .execute(&self.pool)
            .await?;
        Ok(n)
    }
}

/// The campaign of the call a provider's push names (`waihu-call:<id>`), if it is one here:
/// (campaign, tenant, line).
pub async fn campaign_of(
    pool: &PgPool,
    provider_call_id: &str,
) -> Result<Option<(Uuid, String, String)>, sqlx::Error> {
    let Some(call) = provider_call_id
        .strip_prefix(waihu_provider_core::cloud::OUR_CALL_PREFIX)
        .and_then(|id| Uuid::parse_str(id).ok())
    else {
        return Ok(None);
    };
    sqlx::query_as(
        "SELECT p.campaign_id, p.tenant_id, p.line_id FROM provider_campaign_calls c
         JOIN provider_campaigns p USING (campaign_id) WHERE c.call_id = $1 LIMIT 1",
    )
    .bind(call)
    .fetch_optional(pool)
    .await
}

/// Brings campaign `campaign`'s sync forward (a provider pushed the end of one of its calls,
/// whose result the sync reads back from the provider): within 10 s, so a stream of pushes
/// costs one sync per 10 s at most.
pub async fn sync_soon(pool: &PgPool, wake: &Notify, campaign: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_campaigns SET next_sync_at = least(next_sync_at, now() + interval '10 seconds')
         WHERE campaign_id = $1 AND state IN (2, 3, 4)",
    )
    .bind(campaign)
    .execute(pool)
    .await?;
    wake.notify_one();
    Ok(())
}

/// Follows tasks' status (started, paused, resumed, cancelled, completed) for their campaigns.
pub struct TaskFollower {
    pub pool: PgPool,
    pub wake: Arc<Notify>,
}

impl MessageHandler for TaskFollower {
    async fn handle(&self, d: Delivery) -> Result<(), HandlerError> {
        let status = match &d.event.event {
            Event::TaskStarted(_) | Event::TaskResumed(_) => TASK_RUNNING,
            Event::TaskPaused(_) => TASK_PAUSED,
            Event::TaskCancelled(_) => TASK_CANCELLED,
            Event::TaskCompleted(_) => pb::TaskStatus::Completed as i16,
            _ => return Ok(()),
        };
        let Some(task) = d.event.meta.task_id else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO provider_campaign_tasks AS t (task_id, tenant_id, status, version)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, version = excluded.version
             WHERE t.version < excluded.version",
        )
        .bind(task)
        .bind(&d.event.meta.tenant_id)
        .bind(status)
        .bind(d.event.meta.stream_version as i64)
        .execute(&self.pool)
        .await
        .map_err(transient)?;
        self.wake.notify_one();
        Ok(())
    }
}

/// The simulator's campaign API: campaigns kept in the adapter's database as a provider keeps
/// them on its side (so they outlive an adapter crash), dialed at `rate` calls a second of
/// running time (a pause stops the clock), each call's outcome and timings those of the same
/// call placed one by one (`waihu_provider_sim::call_signals`).
#[derive(Clone)]
pub struct SimCampaigns {
    pub pool: PgPool,
    pub sim: Simulator,
    /// Calls started a second (`[simulator] campaign_rate`).
    pub rate: f64,
}

fn db_error(e: sqlx::Error) -> ApiError {
    ApiError::Transient(format!("simulator campaigns: {e}"))
}

impl SimCampaigns {
    /// When call `i` of a campaign starts, in ms of the campaign's running time.
    fn start_ms(&self, i: u32) -> f64 {
        i as f64 * 1000.0 / self.rate
    }
}

impl CampaignApi for SimCampaigns {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn create<'a>(
        &'a self,
        line: &'a LineConfig,
        name: &'a str,
        _calls: &'a [CampaignCall],
        _until: Option<i64>,
    ) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let r: i64 = sqlx::query_scalar(
                "INSERT INTO sim_campaigns (tenant_id, name, state, running_since)
                 VALUES ($1, $2, 1, now()) RETURNING ref",
            )
            .bind(&line.tenant_id)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(r.to_string())
        })
    }

    fn find<'a>(
        &'a self,
        line: &'a LineConfig,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ApiError>> {
        Box::pin(async move {
            let r: Option<i64> = sqlx::query_scalar(
                "SELECT ref FROM sim_campaigns WHERE tenant_id = $1 AND name = $2
                 ORDER BY ref LIMIT 1",
            )
            .bind(&line.tenant_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
            Ok(r.map(|r| r.to_string()))
        })
    }

    fn describe<'a>(
        &'a self,
        line: &'a LineConfig,
        reference: &'a str,
        calls: &'a [CampaignCall],
    ) -> BoxFuture<'a, Result<CampaignView, ApiError>> {
        Box::pin(async move {
            let r: i64 = reference.parse().map_err(|_| {
                ApiError::Config(format!("{reference:?} is not a simulator campaign"))
            })?;
            let Some((state, elapsed)): Option<(i16, f64)> = sqlx::query_as(
                "SELECT state, run_ms + coalesce(
                        extract(epoch FROM now() - running_since)::float8 * 1000, 0)::float8
                 FROM sim_campaigns WHERE ref = $1 AND tenant_id = $2",
            )
            .bind(r)
            .bind(&line.tenant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            else {
                return Err(ApiError::Config(format!(
                    "simulator campaign {reference} does not exist"
                )));
            };
            let stopped = state == 4;
            let mut results = Vec::with_capacity(calls.len());
            for c in calls.iter().filter(|c| !c.synced) {
                let id = c.call_id.to_string();
                let (ms, signals) =
                    waihu_provider_sim::call_signals(&self.sim, &c.phone, c.attempt, &id);
                let end = self.start_ms(c.position) + self.sim.wall(ms).as_secs_f64() * 1000.0;
                if end <= elapsed {
                    results.push(CallResult {
                        call_id: c.call_id,
                        provider_call_id: format!("sim-{id}"),
                        signals,
                        raw: String::new(),
                    });
                } else if stopped {
                    // Stopped before this call ended: cut if it had started, else never placed.
                    let why = if self.start_ms(c.position) <= elapsed {
                        "sim:campaign-stopped".to_string()
                    } else {
                        format!("{NOT_PLACED}:campaign-stopped")
                    };
                    results.push(CallResult {
                        call_id: c.call_id,
                        provider_call_id: String::new(),
                        signals: vec![not_placed(&why)],
                        raw: String::new(),
                    });
                }
            }
            let status = if stopped || results.len() == calls.iter().filter(|c| !c.synced).count() {
                CampaignStatus::Over
            } else if state == 5 {
                CampaignStatus::Paused
            } else {
                CampaignStatus::Running
            };
            Ok(CampaignView {
                status,
                results,
                lagging: false,
            })
        })
    }

    fn act<'a>(
        &'a self,
        line: &'a LineConfig,
        reference: &'a str,
        action: CampaignAction,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let r: i64 = reference.parse().map_err(|_| {
                ApiError::Config(format!("{reference:?} is not a simulator campaign"))
            })?;
            let clock = "run_ms = run_ms + coalesce(
                 (extract(epoch FROM now() - running_since) * 1000)::bigint, 0)";
            let sql = match action {
                CampaignAction::Pause => format!(
                    "UPDATE sim_campaigns SET {clock}, state = 5, running_since = NULL
                     WHERE ref = $1 AND tenant_id = $2 AND state = 1"
                ),
                CampaignAction::Resume => {
                    "UPDATE sim_campaigns SET state = 1, running_since = now()
                     WHERE ref = $1 AND tenant_id = $2 AND state = 5"
                        .to_string()
                }
                CampaignAction::Stop => format!(
                    "UPDATE sim_campaigns SET {clock}, state = 4, running_since = NULL
                     WHERE ref = $1 AND tenant_id = $2 AND state IN (1, 5)"
                ),
            };
            sqlx::query(&sql)
                .bind(r)
                .bind(&line.tenant_id)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }
}
