//! The dialer's state in PostgreSQL: tasks and contacts as told by events, and its own decisions
//! (dial, recall, finish) committed together with the events announcing them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_store::{Outbox, StoreError, Tx};

use crate::{
    planner::{
        capacity, plan_task, tenant_allowance, DueContact, DueTask, LineSlots, TenantLimits,
    },
    rules::{after_release, Next, RetryPolicy},
};

/// How often each key occurs, in key order (so concurrent transactions lock rows alike).
fn tally<'a>(keys: impl IntoIterator<Item = &'a str>) -> (Vec<&'a str>, Vec<i32>) {
    let mut per: std::collections::BTreeMap<&str, i32> = std::collections::BTreeMap::new();
    for k in keys {
        *per.entry(k).or_default() += 1;
    }
    per.into_iter().unzip()
}

/// The time zone of a tenant's day when its entitlements name none.
const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// Adds `sign` (1 or -1) per call to each tenant's calls out; a dial (`sign` 1) also counts
/// towards the tenant's calls today (its local day). Tenants in name order, so concurrent
/// rounds and releases lock the rows alike (after the lines').
async fn add_tenant_usage(tx: &mut Tx<'_>, tenants: &[&str], sign: i32) -> Result<(), DialerError> {
    let (ids, counts) = tally(tenants.iter().copied());
    if ids.is_empty() {
        return Ok(());
    }
    if sign > 0 {
        sqlx::query(
            "INSERT INTO dialer_tenant_usage AS u (tenant_id, in_flight, day, day_calls)
             SELECT x.tenant, x.n, (now() AT TIME ZONE coalesce(t.time_zone, $3))::date, x.n
             FROM UNNEST($1::text[], $2::int[]) AS x(tenant, n)
             LEFT JOIN dialer_tenants t ON t.tenant_id = x.tenant
             ORDER BY x.tenant
             ON CONFLICT (tenant_id) DO UPDATE SET
                 in_flight = u.in_flight + excluded.in_flight,
                 day_calls = CASE WHEN u.day = excluded.day THEN u.day_calls + excluded.day_calls
                                  ELSE excluded.day_calls END,
                 day = excluded.day",
        )
        .bind(&ids)
        .bind(&counts)
        .bind(DEFAULT_TIME_ZONE)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE dialer_tenant_usage u SET in_flight = GREATEST(u.in_flight - x.n, 0)
             FROM UNNEST($1::text[], $2::int[]) AS x(tenant, n) WHERE u.tenant_id = x.tenant",
        )
        .bind(&ids)
        .bind(&counts)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What each of `tenants` may still place now (absent = no limit).
/// The tenant's local date (its entitlements' time zone, else Asia/Shanghai), in SQL.
const TENANT_TODAY: &str = "(now() AT TIME ZONE coalesce((SELECT time_zone FROM dialer_tenants \
     WHERE tenant_id = $1), 'Asia/Shanghai'))::date";

/// The due contacts of a task with a per-number daily limit that may still be called today:
/// a number that got `limit` calls today (over all the tenant's tasks, this round's plans
/// included) waits until the tenant's next local midnight.
async fn within_daily_limit(
    tx: &mut Tx<'_>,
    task_id: Uuid,
    tenant_id: &str,
    limit: i32,
    contacts: Vec<DueContact>,
    planned_now: &HashMap<(String, String), i32>,
) -> Result<Vec<DueContact>, DialerError> {
    if contacts.is_empty() {
        return Ok(contacts);
    }
    let phones: Vec<&str> = contacts.iter().map(|c| c.phone.as_str()).collect();
    let today: HashMap<String, i32> = sqlx::query_as::<_, (String, i32)>(&format!(
        "SELECT phone, calls FROM dialer_number_days
         WHERE tenant_id = $1 AND day = {TENANT_TODAY} AND phone = ANY($2)"
    ))
    .bind(tenant_id)
    .bind(&phones)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let calls = |phone: &str| {
        today.get(phone).copied().unwrap_or(0)
            + planned_now
                .get(&(tenant_id.to_string(), phone.to_string()))
                .copied()
                .unwrap_or(0)
    };
    let (ok, full): (Vec<DueContact>, Vec<DueContact>) =
        contacts.into_iter().partition(|c| calls(&c.phone) < limit);
    if !full.is_empty() {
        let nos: Vec<i32> = full.iter().map(|c| c.contact_no).collect();
        sqlx::query(&format!(
            "UPDATE dialer_contacts SET next_at = (({TENANT_TODAY} + 1)::timestamp AT TIME ZONE
                 coalesce((SELECT time_zone FROM dialer_tenants WHERE tenant_id = $1),
                          'Asia/Shanghai'))
             WHERE task_id = $2 AND contact_no = ANY($3) AND state = 0"
        ))
        .bind(tenant_id)
        .bind(task_id)
        .bind(&nos)
        .execute(&mut **tx)
        .await?;
    }
    Ok(ok)
}

/// Counts the round's calls per (tenant, number) on the tenant's local day.
async fn count_number_days(
    tx: &mut Tx<'_>,
    tenants: &[&str],
    phones: &[String],
) -> Result<(), DialerError> {
    sqlx::query(
        "INSERT INTO dialer_number_days (tenant_id, phone, day, calls)
         SELECT u.t, u.p,
                (now() AT TIME ZONE coalesce(dt.time_zone, 'Asia/Shanghai'))::date, count(*)
         FROM UNNEST($1::text[], $2::text[]) AS u(t, p)
         LEFT JOIN dialer_tenants dt ON dt.tenant_id = u.t
         GROUP BY 1, 2, 3 ORDER BY 1, 2
         ON CONFLICT (tenant_id, phone, day)
         DO UPDATE SET calls = dialer_number_days.calls + excluded.calls",
    )
    .bind(tenants)
    .bind(phones)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn tenant_allowances(
    tx: &mut Tx<'_>,
    tenants: &[&str],
) -> Result<HashMap<String, u32>, DialerError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        tenant_id: String,
        bot_enabled: bool,
        bot_expire_at: Option<DateTime<Utc>>,
        max_concurrent_calls: i32,
        daily_calls: i32,
        in_flight: i32,
        today_calls: i32,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT t.tenant_id, t.bot_enabled, t.bot_expire_at, t.max_concurrent_calls, t.daily_calls,
                coalesce(u.in_flight, 0) AS in_flight,
                CASE WHEN u.day = (now() AT TIME ZONE t.time_zone)::date THEN u.day_calls ELSE 0 END
                    AS today_calls
         FROM dialer_tenants t LEFT JOIN dialer_tenant_usage u USING (tenant_id)
         WHERE t.tenant_id = ANY($1)",
    )
    .bind(tenants)
    .fetch_all(&mut **tx)
    .await?;
    let now = Utc::now();
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let limits = TenantLimits {
                bot_enabled: r.bot_enabled,
                bot_expire_at: r.bot_expire_at,
                max_concurrent_calls: r.max_concurrent_calls.max(0) as u32,
                daily_calls: r.daily_calls.max(0) as u32,
                in_flight: r.in_flight.max(0) as u32,
                today_calls: r.today_calls.max(0) as u32,
            };
            tenant_allowance(&limits, now).map(|a| (r.tenant_id, a))
        })
        .collect())
}

/// Adds `sign` (1 or -1) per occurrence of each line to its in-flight count, in line order so
/// concurrent rounds and releases lock the rows alike.
async fn add_in_flight(tx: &mut Tx<'_>, lines: &[String], sign: i32) -> Result<(), DialerError> {
    let (ids, counts) = tally(lines.iter().map(String::as_str));
    if ids.is_empty() {
        return Ok(());
    }
    let deltas: Vec<i32> = counts.iter().map(|n| n * sign).collect();
    sqlx::query(
        "INSERT INTO dialer_lines AS l (line_id, in_flight)
         SELECT * FROM UNNEST($1::text[], $2::int[])
         ON CONFLICT (line_id) DO UPDATE SET in_flight = GREATEST(l.in_flight + excluded.in_flight, 0)",
    )
    .bind(&ids)
    .bind(&deltas)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub const PRODUCER: &str = "dialer";

// Task status codes as in pb::TaskStatus.
const PENDING: i16 = pb::TaskStatus::Pending as i16;
const RUNNING: i16 = pb::TaskStatus::Running as i16;
const CANCELLED: i16 = pb::TaskStatus::Cancelled as i16;

// Contact states (dialer_contacts.state): 0 pending, 1 active (a call is out), 2 finished.
const C_PENDING: i16 = 0;
const C_ACTIVE: i16 = 1;
const C_FINISHED: i16 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// An event arrived before the one it depends on (e.g. contacts before the task).
    #[error("{0}")]
    NotYet(String),
    #[error("bad event: {0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DialerError {
    fn from(e: sqlx::Error) -> Self {
        DialerError::Store(e.into())
    }
}

/// A line (trunk) and how many calls it may carry at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: String,
    pub max_concurrent: u32,
}

/// A released call, as the dialer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    pub task: Uuid,
    pub contact_no: i32,
    pub call: Uuid,
    pub q850: u32,
    pub answered: bool,
}

/// A contact whose call was out, with its task's recall settings.
#[derive(sqlx::FromRow)]
struct ActiveContact {
    task_id: Uuid,
    contact_no: i32,
    contact_state: i16,
    attempts: i32,
    active_call_id: Uuid,
    status: i16,
    recall_count: i32,
    recall_interval_s: i32,
    retry_policy: Option<Vec<u8>>,
    tenant_id: String,
    line_id: Option<String>,
}

impl ActiveContact {
    /// The task's recall rules (a policy that does not decode counts as none: the task service
    /// validated it, and the defaults still recall).
    fn policy(&self) -> RetryPolicy {
        let retry = self
            .retry_policy
            .as_deref()
            .and_then(|b| pb::RetryPolicy::decode(b).ok());
        RetryPolicy::new(
            self.recall_count.max(0) as u32,
            self.recall_interval_s.max(0) as u32,
            retry.as_ref(),
        )
    }
}

#[derive(Clone)]
pub struct Db {
    pub pool: PgPool,
    pub outbox: Outbox,
}

fn parse_uuid(s: &str) -> Result<Uuid, DialerError> {
    Uuid::parse_str(s).map_err(|_| DialerError::Bad(format!("{s:?} is not a UUID")))
}

fn finished_event(
    tenant: &str,
    task: Uuid,
    no: i32,
    outcome: pb::ContactOutcome,
    attempts: i32,
    call: Option<Uuid>,
) -> (RecordedEvent, Expect) {
    let meta = EventMeta::new(tenant, Aggregate::Contact(task, no as u32), 1)
        .with_deterministic_id(&format!("contact/{task}/{no}/finished"))
        .with_task(task);
    let e = Event::ContactFinished(pb::ContactFinished {
        task_id: task.to_string(),
        contact_no: no as u32,
        outcome: outcome as i32,
        attempts: attempts as u32,
        last_call_id: call.map(|c| c.to_string()).unwrap_or_default(),
    });
    // The contact's subject must be empty: a contact finishes once.
    (RecordedEvent::new(meta, e), Expect::LastSubjectSeq(0))
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Db {
            pool,
            outbox: Outbox::new(PRODUCER),
        }
    }

    /// Applies task events in one transaction. Status changes apply only if newer than what
    /// the dialer has (redeliveries may come late).
    pub async fn apply_task_events(&self, events: &[&RecordedEvent]) -> Result<(), DialerError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::new();
        for e in events {
            let Some(task) = e.meta.task_id else { continue };
            let version = e.meta.stream_version as i64;
            let status = match &e.event {
                Event::TaskCreated(c) => {
                    let spec = c.spec.clone().unwrap_or_default();
                    let not_before = spec.scheduled_start.as_ref().and_then(|t| {
                        DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                    });
                    sqlx::query(
                        "INSERT INTO dialer_tasks (task_id, tenant_id, status, priority, recall_count,
                             recall_interval_s, not_before, caller_line, version, retry_policy,
                             daily_call_limit)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                         ON CONFLICT (task_id) DO NOTHING",
                    )
                    .bind(task)
                    .bind(&e.meta.tenant_id)
                    .bind(PENDING)
                    .bind(spec.priority as i16)
                    .bind(spec.recall_count as i32)
                    .bind(spec.recall_interval_seconds as i32)
                    .bind(not_before)
                    .bind(&spec.caller_line)
                    .bind(version)
                    .bind(spec.retry.as_ref().map(|r| r.encode_to_vec()))
                    .bind(spec.daily_call_limit.min(i32::MAX as u32) as i32)
                    .execute(&mut *tx)
                    .await?;
                    continue;
                }
                Event::ContactsAdded(c) => {
                    self.add_contacts(&mut tx, task, &e.meta.tenant_id, &c.contacts, &mut out)
                        .await?;
                    continue;
                }
                Event::TaskStarted(_) | Event::TaskResumed(_) => RUNNING,
                Event::TaskPaused(_) => pb::TaskStatus::Paused as i16,
                Event::TaskCompleted(_) => pb::TaskStatus::Completed as i16,
                Event::TaskCancelled(_) => CANCELLED,
                _ => continue,
            };
            let updated = sqlx::query("UPDATE dialer_tasks SET status = $2, version = $3 WHERE task_id = $1 AND version < $3")
                .bind(task)
                .bind(status)
                .bind(version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated == 0 {
                let known: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM dialer_tasks WHERE task_id = $1")
                        .bind(task)
                        .fetch_optional(&mut *tx)
                        .await?;
                if known.is_none() {
                    return Err(DialerError::NotYet(format!("task {task} not created yet")));
                }
            } else if status == CANCELLED {
                self.finish_pending_as_cancelled(&mut tx, task, &e.meta.tenant_id, &mut out)
                    .await?;
            }
        }
        self.outbox.push(&mut tx, &out).await?;
        tx.commit().await?;
        if !out.is_empty() {
            self.outbox.wake();
        }
        Ok(())
    }

    /// Applies tenants' entitlements; a redelivered or older version changes nothing.
    pub async fn apply_tenant_events(&self, events: &[&RecordedEvent]) -> Result<(), DialerError> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            let Event::TenantEntitlementsSet(set) = &e.event else {
                continue;
            };
            let Some(x) = &set.entitlements else {
                return Err(DialerError::Bad(
                    "TenantEntitlementsSet without entitlements".into(),
                ));
            };
            let expire = x
                .bot_expire_at
                .as_ref()
                .and_then(waihu_events::from_timestamp);
            let zone = if x.time_zone.is_empty() {
                DEFAULT_TIME_ZONE
            } else {
                x.time_zone.as_str()
            };
            sqlx::query(
                "INSERT INTO dialer_tenants AS t (tenant_id, bot_enabled, bot_expire_at,
                     max_concurrent_calls, daily_calls, time_zone, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant_id) DO UPDATE SET bot_enabled = excluded.bot_enabled,
                     bot_expire_at = excluded.bot_expire_at,
                     max_concurrent_calls = excluded.max_concurrent_calls,
                     daily_calls = excluded.daily_calls, time_zone = excluded.time_zone,
                     version = excluded.version
                 WHERE t.version < excluded.version",
            )
            .bind(&e.meta.tenant_id)
            .bind(x.bot_enabled)
            .bind(expire)
            .bind(x.max_concurrent_calls.min(i32::MAX as u32) as i32)
            .bind(x.daily_calls.min(i32::MAX as u32) as i32)
            .bind(zone)
            .bind(e.meta.stream_version as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_contacts(
        &self,
        tx: &mut Tx<'_>,
        task: Uuid,
        tenant: &str,
        contacts: &[pb::Contact],
        out: &mut Vec<(RecordedEvent, Expect)>,
    ) -> Result<(), DialerError> {
        let status: Option<i16> =
            sqlx::query_scalar("SELECT status FROM dialer_tasks WHERE task_id = $1 FOR UPDATE")
                .bind(task)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(status) = status else {
            return Err(DialerError::NotYet(format!(
                "contacts for task {task} before the task"
            )));
        };
        let nos: Vec<i32> = contacts.iter().map(|c| c.contact_no as i32).collect();
        let phones: Vec<&str> = contacts.iter().map(|c| c.phone.as_str()).collect();
        sqlx::query(
            "INSERT INTO dialer_contacts (task_id, contact_no, phone, state, next_at)
             SELECT $1, n, p, 0, now() FROM UNNEST($2::int[], $3::text[]) AS u(n, p)
             ON CONFLICT DO NOTHING",
        )
        .bind(task)
        .bind(&nos)
        .bind(&phones)
        .execute(&mut **tx)
        .await?;
        if status == CANCELLED {
            self.finish_pending_as_cancelled(tx, task, tenant, out)
                .await?;
        }
        Ok(())
    }

    async fn finish_pending_as_cancelled(
        &self,
        tx: &mut Tx<'_>,
        task: Uuid,
        tenant: &str,
        out: &mut Vec<(RecordedEvent, Expect)>,
    ) -> Result<(), DialerError> {
        let rows: Vec<(i32, i32)> = sqlx::query_as(
            "UPDATE dialer_contacts SET state = 2 WHERE task_id = $1 AND state = 0 RETURNING contact_no, attempts",
        )
        .bind(task)
        .fetch_all(&mut **tx)
        .await?;
        for (no, attempts) in rows {
            out.push(finished_event(
                tenant,
                task,
                no,
                pb::ContactOutcome::Cancelled,
                attempts,
                None,
            ));
        }
        Ok(())
    }

    /// Applies released calls: recall or finish each contact whose active call this was.
    /// Releases of calls the dialer no longer waits for (redeliveries) change nothing.
    pub async fn apply_released(&self, releases: &[Release]) -> Result<usize, DialerError> {
        let mut tx = self.pool.begin().await?;
        let tasks: Vec<Uuid> = releases.iter().map(|r| r.task).collect();
        let nos: Vec<i32> = releases.iter().map(|r| r.contact_no).collect();
        let calls: Vec<Uuid> = releases.iter().map(|r| r.call).collect();
        // Found by primary key alone. The contact must still be active (state 1), which its
        // active call id implies and the loop below checks: written into the query, that
        // condition lets the planner AND in a partial index over every call in flight, for each
        // release (a cost that grows with the calls out, measured at 30-60 ms a batch).
        let rows: Vec<ActiveContact> = sqlx::query_as(
            "SELECT c.task_id, c.contact_no, c.state AS contact_state, c.attempts, c.active_call_id,
                    t.status, t.recall_count, t.recall_interval_s, t.retry_policy, t.tenant_id,
                    c.line_id
             FROM UNNEST($1::uuid[], $2::int[], $3::uuid[]) AS u(t, n, call)
             JOIN dialer_contacts c ON c.task_id = u.t AND c.contact_no = u.n
             JOIN dialer_tasks t ON t.task_id = c.task_id
             WHERE c.active_call_id = u.call
             ORDER BY c.task_id, c.contact_no
             FOR UPDATE OF c FOR SHARE OF t",
        )
        .bind(&tasks)
        .bind(&nos)
        .bind(&calls)
        .fetch_all(&mut *tx)
        .await?;
        let by_call: HashMap<Uuid, &Release> = releases.iter().map(|r| (r.call, r)).collect();
        let now = Utc::now();
        let (mut u_task, mut u_no, mut u_state, mut u_at) = (vec![], vec![], vec![], vec![]);
        let mut freed: Vec<String> = Vec::new();
        let mut freed_by: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for row in &rows {
            let Some(r) = by_call.get(&row.active_call_id) else {
                continue;
            };
            if row.contact_state != C_ACTIVE {
                continue;
            }
            freed.extend(row.line_id.clone());
            freed_by.push(&row.tenant_id);
            let (task, no, call) = (row.task_id, row.contact_no, row.active_call_id);
            let (attempts, tenant) = (row.attempts, row.tenant_id.as_str());
            let cancelled = row.status == CANCELLED;
            let next = after_release(
                r.q850,
                r.answered,
                attempts as u32,
                &row.policy(),
                cancelled,
            );
            u_task.push(task);
            u_no.push(no);
            match next {
                Next::Recall(wait) => {
                    u_state.push(C_PENDING);
                    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                    u_at.push(now.checked_add_signed(wait).unwrap_or(now));
                }
                Next::Finish(outcome) => {
                    u_state.push(C_FINISHED);
                    u_at.push(now);
                    out.push(finished_event(
                        tenant,
                        task,
                        no,
                        outcome,
                        attempts,
                        Some(call),
                    ));
                }
            }
        }
        let n = u_task.len();
        if n > 0 {
            sqlx::query(
                "UPDATE dialer_contacts c SET state = u.s, next_at = u.at, active_call_id = NULL
                 FROM UNNEST($1::uuid[], $2::int[], $3::smallint[], $4::timestamptz[]) AS u(t, n, s, at)
                 WHERE c.task_id = u.t AND c.contact_no = u.n",
            )
            .bind(&u_task)
            .bind(&u_no)
            .bind(&u_state)
            .bind(&u_at)
            .execute(&mut *tx)
            .await?;
        }
        add_in_flight(&mut tx, &freed, -1).await?;
        add_tenant_usage(&mut tx, &freed_by, -1).await?;
        self.outbox.push(&mut tx, &out).await?;
        tx.commit().await?;
        if !out.is_empty() {
            self.outbox.wake();
        }
        Ok(n)
    }

    /// Drops per-number day counts older than two days (no time zone is that far behind).
    pub async fn prune_number_days(&self) -> Result<u64, DialerError> {
        let done = sqlx::query("DELETE FROM dialer_number_days WHERE day < current_date - 2")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// One dialing round: fills every line's free slots with due contacts of running tasks,
    /// higher priority first. Returns the number of calls requested.
    ///
    /// Its cost is O(lines + running tasks with something due + dials): in-flight counts are
    /// kept per line, tasks with nothing due are passed over inside one query, and each task's
    /// due contacts are read from an index in dialing order. The tasks a round dials for are
    /// share-locked before it commits and must still be running, so no call of a round goes out
    /// after a pause or cancel the dialer has applied.
    pub async fn dial_round(&self, lines: &[Line]) -> Result<usize, DialerError> {
        let mut tx = self.pool.begin().await?;
        let in_flight: HashMap<String, i32> =
            sqlx::query_as::<_, (String, i32)>("SELECT line_id, in_flight FROM dialer_lines")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        let mut slots: Vec<LineSlots> = lines
            .iter()
            .map(|l| LineSlots {
                id: l.id.clone(),
                free: l
                    .max_concurrent
                    .saturating_sub(in_flight.get(&l.id).copied().unwrap_or(0).max(0) as u32),
            })
            .collect();
        if capacity(&slots, None) == 0 {
            return Ok(0);
        }
        let tasks: Vec<(Uuid, String, String, i32)> = sqlx::query_as(
            "SELECT t.task_id, t.tenant_id, t.caller_line, t.daily_call_limit FROM dialer_tasks t
             WHERE t.status = $1 AND (t.not_before IS NULL OR t.not_before <= now())
               AND EXISTS (SELECT 1 FROM dialer_contacts c
                           WHERE c.task_id = t.task_id AND c.state = 0 AND c.next_at <= now())
             ORDER BY t.priority DESC, random()",
        )
        .bind(RUNNING)
        .fetch_all(&mut *tx)
        .await?;
        let mut tenants: Vec<&str> = tasks.iter().map(|(_, t, _, _)| t.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut allowance = tenant_allowances(&mut tx, &tenants).await?;
        let mut dials = Vec::new();
        // Calls this round plans per (tenant, number), for the per-number daily limit.
        let mut planned_now: HashMap<(String, String), i32> = HashMap::new();
        for (task_id, tenant_id, caller_line, daily_limit) in tasks {
            let caller_line = (!caller_line.is_empty()).then_some(caller_line);
            let mut cap = capacity(&slots, caller_line.as_deref());
            if let Some(left) = allowance.get(&tenant_id) {
                cap = cap.min(*left);
            }
            if cap == 0 {
                if capacity(&slots, None) == 0 {
                    break;
                }
                continue;
            }
            let contacts: Vec<DueContact> = sqlx::query_as::<_, (i32, String, i32)>(
                "SELECT contact_no, phone, attempts FROM dialer_contacts
                 WHERE task_id = $1 AND state = 0 AND next_at <= now()
                 ORDER BY next_at, contact_no LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(task_id)
            .bind(cap as i64)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(contact_no, phone, attempts)| DueContact {
                contact_no,
                phone,
                attempts,
            })
            .collect();
            let contacts = if daily_limit > 0 {
                within_daily_limit(
                    &mut tx,
                    task_id,
                    &tenant_id,
                    daily_limit,
                    contacts,
                    &planned_now,
                )
                .await?
            } else {
                contacts
            };
            let task = DueTask {
                task_id,
                tenant_id,
                caller_line,
                contacts,
            };
            let planned = plan_task(&mut slots, &task);
            for d in &planned {
                *planned_now
                    .entry((d.tenant_id.clone(), d.phone.clone()))
                    .or_default() += 1;
            }
            if let Some(left) = allowance.get_mut(&task.tenant_id) {
                *left = left.saturating_sub(planned.len() as u32);
            }
            dials.extend(planned);
        }
        if dials.is_empty() {
            // Contacts deferred by the per-number daily limit keep their new time.
            tx.commit().await?;
            return Ok(0);
        }
        // Only the tasks this round dials for are share-locked, and only those still running
        // keep their calls: a pause or cancel committed meanwhile drops them (their contacts stay
        // pending), and one committed later waits for this round.
        let mut dialed: Vec<Uuid> = dials.iter().map(|d| d.task_id).collect();
        dialed.sort();
        dialed.dedup();
        let running: std::collections::HashSet<Uuid> = sqlx::query_scalar(
            "SELECT task_id FROM dialer_tasks WHERE task_id = ANY($1) AND status = $2
             ORDER BY task_id FOR SHARE",
        )
        .bind(&dialed)
        .bind(RUNNING)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        dials.retain(|d| running.contains(&d.task_id));
        let n = dials.len();
        if n == 0 {
            tx.commit().await?;
            return Ok(0);
        }
        let (mut u_task, mut u_no, mut u_call, mut u_line) = (vec![], vec![], vec![], vec![]);
        let mut u_phone: Vec<String> = Vec::with_capacity(n);
        let tenants_of: Vec<String> = dials.iter().map(|d| d.tenant_id.clone()).collect();
        let u_tenant: Vec<&str> = tenants_of.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(n);
        for d in dials {
            let call = Uuid::now_v7();
            let meta = EventMeta::new(&d.tenant_id, Aggregate::Call(call), 1)
                .with_deterministic_id(&format!("call/{call}/requested"))
                .with_task(d.task_id);
            u_phone.push(d.phone.clone());
            let e = Event::CallRequested(pb::CallRequested {
                call_id: call.to_string(),
                task_id: d.task_id.to_string(),
                contact_no: d.contact_no as u32,
                phone: d.phone,
                line_id: d.line_id.clone(),
                attempt: d.attempt,
            });
            // A new call's subject must be empty.
            out.push((RecordedEvent::new(meta, e), Expect::LastSubjectSeq(0)));
            u_task.push(d.task_id);
            u_no.push(d.contact_no);
            u_call.push(call);
            u_line.push(d.line_id);
        }
        sqlx::query(
            "UPDATE dialer_contacts c SET state = 1, attempts = c.attempts + 1, active_call_id = u.call,
                    line_id = u.line, dialed_at = now()
             FROM UNNEST($1::uuid[], $2::int[], $3::uuid[], $4::text[]) AS u(t, n, call, line)
             WHERE c.task_id = u.t AND c.contact_no = u.n",
        )
        .bind(&u_task)
        .bind(&u_no)
        .bind(&u_call)
        .bind(&u_line)
        .execute(&mut *tx)
        .await?;
        add_in_flight(&mut tx, &u_line, 1).await?;
        add_tenant_usage(&mut tx, &u_tenant, 1).await?;
        count_number_days(&mut tx, &u_tenant, &u_phone).await?;
        self.outbox.push(&mut tx, &out).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(n)
    }

    /// Calls out for longer than `older_than`: (call id, tenant, task).
    pub async fn calls_out_since(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<(Uuid, String, Uuid)>, DialerError> {
        Ok(sqlx::query_as(
            "SELECT c.active_call_id, t.tenant_id, c.task_id FROM dialer_contacts c
             JOIN dialer_tasks t ON t.task_id = c.task_id
             WHERE c.state = 1 AND c.dialed_at < now() - make_interval(secs => $1)
               AND c.active_call_id IS NOT NULL
             ORDER BY c.dialed_at LIMIT 500",
        )
        .bind(older_than.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Reads a `CallReleased` (None for other events).
pub fn release_of(e: &RecordedEvent) -> Result<Option<Release>, DialerError> {
    let Event::CallReleased(r) = &e.event else {
        return Ok(None);
    };
    Ok(Some(Release {
        task: parse_uuid(&r.task_id)?,
        contact_no: r.contact_no as i32,
        call: parse_uuid(&r.call_id)?,
        q850: r.cause.as_ref().map(|c| c.q850).unwrap_or(0),
        answered: r.answered,
    }))
}
