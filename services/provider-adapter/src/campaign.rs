//! Provider campaigns (seed 001, AI寻访员): calls a task hands over in a batch, dialed by a
//! provider with a campaign API (the simulator's, [`SimCampaigns`]; Tencent CCC's auto-callout
//! tasks) instead of one by one.
//!
//! - **Collect**: the dialer hands a campaign over as one `CallRequested` per call, each naming
//!   the campaign and its size ([`Campaigns::collect`]); every call is stored with its request.
//! - **Create** (seed 001 开始任务): once all are in (or after `collect_wait`), the intent is
//!   committed (CREATING, an event) before the provider is asked; a restart finds a campaign
//!   created meanwhile by its name (the campaign id) instead of creating a second one.
//! - **Pause, resume, stop**: the adapter follows the task's events and brings the provider's
//!   campaign to the task's state (paused, running; stopped when the task is cancelled).
//! - **Sync** (seed 001 定时同步脚本, every `sync` — half an hour by default): each open
//!   campaign is described; every result not yet synced becomes the call's events through the
//!   call ledger (deterministic ids, so a sync repeated after a crash announces nothing twice);
//!   a campaign the provider finished is DONE once every call is synced, and the dialer, seeing
//!   the last release, hands over the next one (roll-over) or the task completes.
//!
//! Every step is a `ProviderCampaignChanged` event on `campaign.<id>`, committed with the
//! state change through the outbox. Campaigns are taken with `FOR UPDATE SKIP LOCKED`, so
//! replicas share them.

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
use waihu_store::{Outbox, Tx};

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

/// How campaigns are kept (`[provider] campaign_sync_ms`, `campaign_collect_wait_ms`).
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    /// How often a running campaign's results are fetched (seed 001: every half hour).
    pub sync: Duration,
    /// How long a campaign waits for its last handed-over calls before it is created with
    /// those that came (a call arriving later is released, and the dialer calls it again).
    pub collect_wait: Duration,
    /// How often the worker looks for work when nothing wakes it.
    pub tick: Duration,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            sync: Duration::from_secs(1800),
            collect_wait: Duration::from_secs(60),
            tick: Duration::from_secs(1),
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

#[derive(sqlx::FromRow, Debug, Clone)]
struct CampaignRow {
    campaign_id: Uuid,
    tenant_id: String,
    task_id: Uuid,
    line_id: String,
    calls: i32,
    state: i16,
    provider_ref: String,
    version: i64,
    synced: i32,
    attempts: i32,
    next_sync_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Debug, Clone)]
struct CallRow {
    call_id: Uuid,
    phone: String,
    attempt: i32,
    caller_number: String,
    request: Vec<u8>,
    request_seq: i64,
    synced: bool,
}

impl CallRow {
    fn campaign_call(&self) -> CampaignCall {
        CampaignCall {
            call_id: self.call_id,
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

/// A release for a call the provider never placed (or never told the end of).
fn not_placed(raw: &str) -> Signal {
    Signal::unanswered(waihu_telephony::hangup::cause(41, raw.to_string()))
}

/// The retry delay after `attempts` failures: 2 s doubling, at most 5 minutes.
fn backoff(attempts: i32) -> chrono::Duration {
    let secs = 2u64.saturating_pow(attempts.clamp(1, 16) as u32).min(300);
    chrono::Duration::seconds(secs as i64)
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
            "INSERT INTO provider_campaigns (campaign_id, tenant_id, task_id, line_id, calls)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id) DO NOTHING",
        )
        .bind(campaign)
        .bind(&d.event.meta.tenant_id)
        .bind(task)
        .bind(&req.line_id)
        .bind(req.campaign_calls as i32)
        .execute(&mut *tx)
        .await
        .map_err(transient)?;
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
            return ledger.record(not_placed("waihu:campaign-closed")).await;
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
                // Something moved: look again soon (a collecting campaign may be complete).
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
               AND (c.next_at <= now() OR c.state = 0
                    OR (t.status = $1 AND c.state = 2) OR (t.status = $2 AND c.state = 3)
                    OR (t.status = $3 AND c.state IN (2, 3)))
             ORDER BY c.created_at LIMIT 100",
        )
        .bind(TASK_PAUSED)
        .bind(TASK_RUNNING)
        .bind(TASK_CANCELLED)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
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

    /// Moves campaign `id` on as far as it goes now: whether it changed state.
    async fn advance(&self, id: Uuid) -> Result<bool, String> {
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let Some(mut row): Option<CampaignRow> = sqlx::query_as(
            "SELECT campaign_id, tenant_id, task_id, line_id, calls, state, provider_ref, version,
                    synced, attempts, next_sync_at, created_at
             FROM provider_campaigns WHERE campaign_id = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| e.to_string())?
        else {
            // Another replica has it.
            return Ok(false);
        };
        let wanted: Option<i16> =
            sqlx::query_scalar("SELECT status FROM provider_campaign_tasks WHERE task_id = $1")
                .bind(row.task_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        let before = row.state;
        if row.state == COLLECTING {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM provider_campaign_calls WHERE campaign_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
            let waited = Utc::now() - row.created_at
                >= chrono::Duration::from_std(self.config.collect_wait)
                    .unwrap_or(chrono::Duration::MAX);
            if n < row.calls as i64 && !waited {
                return Ok(false);
            }
            if n < row.calls as i64 {
                warn!(campaign = %id, handed = row.calls, arrived = n,
                      "campaign created with the calls that came; later ones are released");
            }
            sqlx::query("UPDATE provider_campaigns SET calls = $2 WHERE campaign_id = $1")
                .bind(id)
                .bind(n as i32)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            row.calls = n as i32;
            self.change(&mut tx, &mut row, CREATING, "").await?;
            // The intent is committed before the provider is asked (the next pass asks).
            tx.commit().await.map_err(|e| e.to_string())?;
            return Ok(true);
        }
        let line = self
            .lines
            .get(&row.tenant_id, &row.line_id)
            .await
            .map_err(|e| format!("line {}: {e}", row.line_id))?;
        let line = match line {
            Some(l) => l,
            None => {
                let why = format!("line {} does not exist", row.line_id);
                self.fail(&mut tx, &mut row, &why).await?;
                tx.commit().await.map_err(|e| e.to_string())?;
                return Ok(true);
            }
        };
        let Some(api) = self.api(&line.provider) else {
            let why = format!(
                "the {} provider of line {} has no campaign API (sim and tencent have)",
                line.provider, row.line_id
            );
            self.fail(&mut tx, &mut row, &why).await?;
            tx.commit().await.map_err(|e| e.to_string())?;
            return Ok(true);
        };
        let mut sync_now = false;
        if row.state == CREATING {
            if wanted == Some(TASK_CANCELLED) {
                // Cancelled before it reached the provider: nothing was placed.
                self.release_rest(&mut tx, &row, "waihu:campaign-cancelled")
                    .await?;
                self.change(&mut tx, &mut row, DONE, "task cancelled before creation")
                    .await?;
                tx.commit().await.map_err(|e| e.to_string())?;
                return Ok(true);
            }
            let calls = self.calls(&mut tx, id).await?;
            let cases: Vec<CampaignCall> = calls.iter().map(CallRow::campaign_call).collect();
            let name = id.to_string();
            let created = match api.find(&line, &name).await {
                Ok(Some(r)) => {
                    info!(campaign = %id, reference = %r, "campaign found at the provider by name");
                    Ok(r)
                }
                Ok(None) => api.create(&line, &name, &cases).await,
                Err(e) => Err(e),
            };
            match created {
                Ok(reference) => {
                    row.provider_ref = reference;
                    sqlx::query(
                        "UPDATE provider_campaigns SET provider = $2, provider_ref = $3,
                             attempts = 0, last_error = '', next_sync_at = now() + $4
                         WHERE campaign_id = $1",
                    )
                    .bind(id)
                    .bind(&line.provider)
                    .bind(&row.provider_ref)
                    .bind(self.config.sync)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                    row.next_sync_at = Utc::now()
                        + chrono::Duration::from_std(self.config.sync)
                            .unwrap_or(chrono::Duration::MAX);
                    self.change(&mut tx, &mut row, RUNNING, "").await?;
                    info!(campaign = %id, task = %row.task_id, calls = row.calls,
                          reference = %row.provider_ref, "campaign created at the provider");
                }
                Err(ApiError::Config(m)) => {
                    self.fail(&mut tx, &mut row, &m).await?;
                    tx.commit().await.map_err(|e| e.to_string())?;
                    return Ok(true);
                }
                Err(ApiError::Refused { message, .. }) => {
                    self.fail(&mut tx, &mut row, &message).await?;
                    tx.commit().await.map_err(|e| e.to_string())?;
                    return Ok(true);
                }
                Err(e) => {
                    self.later(&mut tx, &row, &e.to_string()).await?;
                    tx.commit().await.map_err(|e| e.to_string())?;
                    return Ok(before != row.state);
                }
            }
        }
        // Bring the provider's campaign to the task's state.
        let action = match (row.state, wanted) {
            (RUNNING | PAUSED, Some(TASK_CANCELLED)) => Some((CampaignAction::Stop, STOPPED)),
            (RUNNING, Some(TASK_PAUSED)) => Some((CampaignAction::Pause, PAUSED)),
            (PAUSED, Some(TASK_RUNNING)) => Some((CampaignAction::Resume, RUNNING)),
            _ => None,
        };
        if let Some((action, to)) = action {
            match api.act(&line, &row.provider_ref, action).await {
                Ok(()) => {
                    self.change(&mut tx, &mut row, to, "").await?;
                    info!(campaign = %id, ?action, "campaign brought to its task's state");
                    sync_now = to == STOPPED;
                }
                Err(e) => {
                    self.later(&mut tx, &row, &format!("{action:?}: {e}"))
                        .await?;
                    tx.commit().await.map_err(|e| e.to_string())?;
                    return Ok(before != row.state);
                }
            }
        }
        if matches!(row.state, RUNNING | PAUSED | STOPPED)
            && (sync_now || row.next_sync_at <= Utc::now())
        {
            self.sync(&mut tx, &mut row, &line, api).await?;
        } else {
            sqlx::query(
                "UPDATE provider_campaigns SET next_at = next_sync_at WHERE campaign_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(before != row.state)
    }

    /// Fetches the campaign's results and publishes those not yet synced; a campaign the
    /// provider finished is DONE once every call is.
    async fn sync(
        &self,
        tx: &mut Tx<'_>,
        row: &mut CampaignRow,
        line: &LineConfig,
        api: &dyn CampaignApi,
    ) -> Result<(), String> {
        let calls = self.calls(tx, row.campaign_id).await?;
        let cases: Vec<CampaignCall> = calls.iter().map(CallRow::campaign_call).collect();
        let view: CampaignView = match api.describe(line, &row.provider_ref, &cases).await {
            Ok(v) => v,
            Err(e) => return self.later(tx, row, &format!("describe: {e}")).await,
        };
        let by_call: HashMap<Uuid, &CallRow> = calls.iter().map(|c| (c.call_id, c)).collect();
        let mut todo: Vec<(CallRow, CallResult)> = view
            .results
            .into_iter()
            .filter_map(|r| {
                by_call
                    .get(&r.call_id)
                    .filter(|c| !c.synced)
                    .map(|c| ((*c).clone(), r))
            })
            .collect();
        let over = view.status == CampaignStatus::Over;
        let lagging = view.lagging;
        if over {
            // Over: a call the provider has no result for was never placed.
            let known: std::collections::HashSet<Uuid> =
                todo.iter().map(|(c, _)| c.call_id).collect();
            for c in calls
                .iter()
                .filter(|c| !c.synced && !known.contains(&c.call_id))
            {
                todo.push((
                    c.clone(),
                    CallResult {
                        call_id: c.call_id,
                        provider_call_id: String::new(),
                        signals: vec![not_placed("waihu:campaign-over-without-result")],
                        raw: String::new(),
                    },
                ));
            }
        }
        let results: Vec<Result<Uuid, (Uuid, HandlerError)>> = futures::stream::iter(todo)
            .map(|(c, r)| async move {
                self.publish(&c, &r)
                    .await
                    .map(|_| c.call_id)
                    .map_err(|e| (c.call_id, e))
            })
            .buffer_unordered(SYNC_CONCURRENCY)
            .collect()
            .await;
        let mut done: Vec<Uuid> = Vec::with_capacity(results.len());
        let mut failed = 0;
        for r in results {
            match r {
                Ok(id) => done.push(id),
                Err((call, e)) => {
                    failed += 1;
                    warn!(campaign = %row.campaign_id, %call, error = %e, "call result not published: tried again at the next sync");
                }
            }
        }
        let synced: i64 = sqlx::query_scalar(
            "WITH u AS (UPDATE provider_campaign_calls SET synced = true
                        WHERE campaign_id = $1 AND call_id = ANY($2) AND NOT synced RETURNING 1)
             SELECT count(*) FROM u",
        )
        .bind(row.campaign_id)
        .bind(&done)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| e.to_string())?;
        row.synced = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM provider_campaign_calls WHERE campaign_id = $1 AND synced",
        )
        .bind(row.campaign_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| e.to_string())? as i32;
        // A stopped campaign is looked at again soon, until the provider says it is over; so
        // is one whose provider had results it could not show yet, or whose results did not
        // all publish.
        let again = if row.state == STOPPED || lagging || failed > 0 {
            Duration::from_secs(2).min(self.config.sync)
        } else {
            self.config.sync
        };
        sqlx::query(
            "UPDATE provider_campaigns SET synced = $2, next_sync_at = now() + $3,
                 next_at = now() + $3, updated_at = now() WHERE campaign_id = $1",
        )
        .bind(row.campaign_id)
        .bind(row.synced)
        .bind(again)
        .execute(&mut **tx)
        .await
        .map_err(|e| e.to_string())?;
        debug!(campaign = %row.campaign_id, synced, total = row.synced, calls = row.calls, over, "campaign synced");
        if over && failed == 0 && row.synced >= row.calls {
            self.change(tx, row, DONE, "").await?;
            info!(campaign = %row.campaign_id, task = %row.task_id, calls = row.calls, "campaign done");
        }
        Ok(())
    }

    /// Publishes one call's result through its ledger (nothing twice: the ledger's ids are
    /// deterministic and it resumes from the call's last event).
    async fn publish(&self, call: &CallRow, r: &CallResult) -> Result<(), HandlerError> {
        let request = RecordedEvent::decode(&call.request)
            .map_err(|e| permanent(format!("stored request: {e}")))?;
        let mut ledger = CallLedger::reopen(&self.bus, request, call.request_seq as u64).await?;
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

    async fn calls(&self, tx: &mut Tx<'_>, id: Uuid) -> Result<Vec<CallRow>, String> {
        sqlx::query_as(
            "SELECT call_id, phone, attempt, caller_number, request, request_seq, synced
             FROM provider_campaign_calls WHERE campaign_id = $1 ORDER BY call_id",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| e.to_string())
    }

    /// Releases every call not yet synced as not placed, with `why`.
    async fn release_rest(
        &self,
        tx: &mut Tx<'_>,
        row: &CampaignRow,
        why: &str,
    ) -> Result<(), String> {
        let calls = self.calls(tx, row.campaign_id).await?;
        let mut done = Vec::new();
        for c in calls.iter().filter(|c| !c.synced) {
            let r = CallResult {
                call_id: c.call_id,
                provider_call_id: String::new(),
                signals: vec![not_placed(why)],
                raw: String::new(),
            };
            self.publish(c, &r)
                .await
                .map_err(|e| format!("call {}: {e}", c.call_id))?;
            done.push(c.call_id);
        }
        sqlx::query(
            "UPDATE provider_campaign_calls SET synced = true
             WHERE campaign_id = $1 AND call_id = ANY($2)",
        )
        .bind(row.campaign_id)
        .bind(&done)
        .execute(&mut **tx)
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The provider refused the campaign for good: every call is released with the reason.
    async fn fail(&self, tx: &mut Tx<'_>, row: &mut CampaignRow, why: &str) -> Result<(), String> {
        warn!(campaign = %row.campaign_id, line = %row.line_id, reason = %why, "campaign failed: its calls are released");
        let raw = format!(
            "waihu:campaign-failed: {}",
            why.chars().take(200).collect::<String>()
        );
        self.release_rest(tx, row, &raw).await?;
        sqlx::query("UPDATE provider_campaigns SET last_error = $2 WHERE campaign_id = $1")
            .bind(row.campaign_id)
            .bind(why)
            .execute(&mut **tx)
            .await
            .map_err(|e| e.to_string())?;
        self.change(tx, row, FAILED, why).await
    }

    /// A step that can be tried again: counted, retried after a backoff.
    async fn later(&self, tx: &mut Tx<'_>, row: &CampaignRow, why: &str) -> Result<(), String> {
        let attempts = row.attempts + 1;
        warn!(campaign = %row.campaign_id, attempts, error = %why, "campaign step to be tried again");
        sqlx::query(
            "UPDATE provider_campaigns SET attempts = $2, last_error = $3, next_at = now() + $4,
                 updated_at = now() WHERE campaign_id = $1",
        )
        .bind(row.campaign_id)
        .bind(attempts)
        .bind(why)
        .bind(
            backoff(attempts)
                .to_std()
                .unwrap_or(Duration::from_secs(300)),
        )
        .execute(&mut **tx)
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Records a new state with its event, in `tx`.
    async fn change(
        &self,
        tx: &mut Tx<'_>,
        row: &mut CampaignRow,
        state: i16,
        reason: &str,
    ) -> Result<(), String> {
        row.state = state;
        row.version += 1;
        sqlx::query(
            "UPDATE provider_campaigns SET state = $2, version = $3, updated_at = now(),
                 next_at = CASE WHEN $2 IN (1, 2, 3, 4) THEN least(next_at, next_sync_at) ELSE next_at END
             WHERE campaign_id = $1",
        )
        .bind(row.campaign_id)
        .bind(state)
        .bind(row.version)
        .execute(&mut **tx)
        .await
        .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
        self.outbox.wake();
        Ok(())
    }
}

/// The campaign here of the call a provider's push names (`waihu-call:<id>`), if it is one.
pub async fn campaign_of(
    pool: &PgPool,
    provider_call_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let Some(call) = provider_call_id
        .strip_prefix(waihu_provider_core::cloud::OUR_CALL_PREFIX)
        .and_then(|id| Uuid::parse_str(id).ok())
    else {
        return Ok(None);
    };
    sqlx::query_scalar("SELECT campaign_id FROM provider_campaign_calls WHERE call_id = $1 LIMIT 1")
        .bind(call)
        .fetch_optional(pool)
        .await
}

/// Brings campaign `campaign`'s sync forward (a provider pushed the end of one of its calls,
/// whose result the sync reads back from the provider).
pub async fn sync_soon(pool: &PgPool, wake: &Notify, campaign: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_campaigns SET next_sync_at = least(next_sync_at, now()),
             next_at = least(next_at, now())
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
    fn start_ms(&self, i: usize) -> f64 {
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
            for (i, c) in calls.iter().enumerate() {
                let id = c.call_id.to_string();
                let (ms, signals) =
                    waihu_provider_sim::call_signals(&self.sim, &c.phone, c.attempt, &id);
                let end = self.start_ms(i) + self.sim.wall(ms).as_secs_f64() * 1000.0;
                if end <= elapsed {
                    results.push(CallResult {
                        call_id: c.call_id,
                        provider_call_id: format!("sim-{id}"),
                        signals,
                        raw: String::new(),
                    });
                } else if stopped {
                    // Stopped before this call ended (or started): the caller cancelled it.
                    results.push(CallResult {
                        call_id: c.call_id,
                        provider_call_id: String::new(),
                        signals: vec![not_placed("sim:campaign-stopped")],
                        raw: String::new(),
                    });
                }
            }
            let status = if stopped || results.len() == calls.len() {
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
