//! The dialer's state in PostgreSQL: tasks and contacts as told by events, and its own decisions
//! (dial, recall, finish) committed together with the events announcing them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_store::{Outbox, StoreError, Tx};
use waihu_telephony::window::Window;

use crate::{
    planner::{
        caller_lines, cap_left, capacity, fair_quotas, local_day, pace_after, pace_allowance,
        plan_task, tenant_allowance, Contender, DueContact, DueTask, LineSlots, TaskPlan,
        TenantLimits,
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
const DEFAULT_TIME_ZONE: &str = waihu_telephony::zone::DEFAULT;

/// Adds `sign` (1 or -1) per call to each tenant's calls out; a dial (`sign` 1) also counts
/// towards the tenant's calls today (its local day). Tenants in name order, so concurrent
/// rounds and releases lock the rows alike (after the lines').
pub(crate) async fn add_tenant_usage(
    tx: &mut Tx<'_>,
    tenants: &[&str],
    sign: i32,
) -> Result<(), DialerError> {
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
pub(crate) const TENANT_TODAY: &str =
    "(now() AT TIME ZONE coalesce((SELECT time_zone FROM dialer_tenants \
     WHERE tenant_id = $1), 'Asia/Shanghai'))::date";

/// Passes task `task` over until `until` (its calling window's next opening).
pub(crate) async fn close_until(
    tx: &mut Tx<'_>,
    task: Uuid,
    until: DateTime<Utc>,
) -> Result<(), DialerError> {
    sqlx::query("UPDATE dialer_tasks SET closed_until = $2 WHERE task_id = $1")
        .bind(task)
        .bind(until)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Today's calls (each tenant's local day) of these (tenant, number) pairs.
pub(crate) async fn calls_today(
    tx: &mut Tx<'_>,
    tenants: &[&str],
    phones: &[&str],
) -> Result<HashMap<(String, String), i32>, DialerError> {
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    // One primary-key probe per number (the LIMIT keeps the planner from turning the lookups
    // into a scan of the whole table, which it did on statistics taken while the table was
    // small: a cost growing with every number called today).
    Ok(sqlx::query_as::<_, (String, String, i32)>(
        "WITH d AS MATERIALIZED (
             SELECT u.tenant_id,
                    (now() AT TIME ZONE coalesce(dt.time_zone, 'Asia/Shanghai'))::date AS day
             FROM (SELECT DISTINCT unnest($1::text[]) AS tenant_id) u
             LEFT JOIN dialer_tenants dt USING (tenant_id))
         SELECT x.t, x.p, n.calls
         FROM UNNEST($1::text[], $2::text[]) AS x(t, p)
         JOIN d ON d.tenant_id = x.t
         CROSS JOIN LATERAL (SELECT calls FROM dialer_number_days
                             WHERE tenant_id = x.t AND phone = x.p AND day = d.day
                             LIMIT 1) n",
    )
    .bind(tenants)
    .bind(phones)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(t, p, n)| ((t, p), n))
    .collect())
}

/// Applies a round's deferrals in one statement each: contacts due again at a time, contacts
/// due at their tenant's next local midnight (the per-number limit), and contacts finished
/// without a call (do-not-call).
pub(crate) async fn defer(
    tx: &mut Tx<'_>,
    later: &[(Uuid, i32, DateTime<Utc>)],
    to_midnight: &[(Uuid, i32)],
    stopped: &[(Uuid, i32)],
) -> Result<(), DialerError> {
    if !later.is_empty() {
        let (t, n, at): (Vec<Uuid>, Vec<i32>, Vec<DateTime<Utc>>) =
            later
                .iter()
                .copied()
                .fold((vec![], vec![], vec![]), |mut v, (t, n, at)| {
                    v.0.push(t);
                    v.1.push(n);
                    v.2.push(at);
                    v
                });
        sqlx::query(
            "UPDATE dialer_contacts c SET next_at = u.at
             FROM UNNEST($1::uuid[], $2::int[], $3::timestamptz[]) AS u(t, n, at)
             WHERE c.task_id = u.t AND c.contact_no = u.n AND c.state = 0",
        )
        .bind(&t)
        .bind(&n)
        .bind(&at)
        .execute(&mut **tx)
        .await?;
    }
    if !to_midnight.is_empty() {
        let (t, n): (Vec<Uuid>, Vec<i32>) = to_midnight.iter().copied().unzip();
        sqlx::query(
            "UPDATE dialer_contacts c
             SET next_at = (((now() AT TIME ZONE z.tz)::date + 1)::timestamp AT TIME ZONE z.tz)
             FROM UNNEST($1::uuid[], $2::int[]) AS u(t, n)
             JOIN dialer_tasks dt ON dt.task_id = u.t
             CROSS JOIN LATERAL (SELECT coalesce((SELECT time_zone FROM dialer_tenants
                                                  WHERE tenant_id = dt.tenant_id),
                                                 'Asia/Shanghai') AS tz) z
             WHERE c.task_id = u.t AND c.contact_no = u.n AND c.state = 0",
        )
        .bind(&t)
        .bind(&n)
        .execute(&mut **tx)
        .await?;
    }
    if !stopped.is_empty() {
        let (t, n): (Vec<Uuid>, Vec<i32>) = stopped.iter().copied().unzip();
        sqlx::query(
            "UPDATE dialer_contacts c SET state = 2
             FROM UNNEST($1::uuid[], $2::int[]) AS u(t, n)
             WHERE c.task_id = u.t AND c.contact_no = u.n AND c.state = 0",
        )
        .bind(&t)
        .bind(&n)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Counts the round's calls per (tenant, number) on the tenant's local day.
pub(crate) async fn count_number_days(
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

/// One tenant's entitlements and usage (None when the dialer was never told of them: no limit).
pub(crate) async fn tenant_limits(
    tx: &mut Tx<'_>,
    tenant: &str,
) -> Result<Option<TenantLimits>, DialerError> {
    Ok(tenants_limits(tx, &[tenant]).await?.pop().map(|(_, l)| l))
}

pub(crate) async fn tenant_allowances(
    tx: &mut Tx<'_>,
    tenants: &[&str],
) -> Result<HashMap<String, u32>, DialerError> {
    let now = Utc::now();
    Ok(tenants_limits(tx, tenants)
        .await?
        .into_iter()
        .filter_map(|(t, limits)| tenant_allowance(&limits, now).map(|a| (t, a)))
        .collect())
}

async fn tenants_limits(
    tx: &mut Tx<'_>,
    tenants: &[&str],
) -> Result<Vec<(String, TenantLimits)>, DialerError> {
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
    Ok(rows
        .into_iter()
        .map(|r| {
            let limits = TenantLimits {
                bot_enabled: r.bot_enabled,
                bot_expire_at: r.bot_expire_at,
                max_concurrent_calls: r.max_concurrent_calls.max(0) as u32,
                daily_calls: r.daily_calls.max(0) as u32,
                in_flight: r.in_flight.max(0) as u32,
                today_calls: r.today_calls.max(0) as u32,
            };
            (r.tenant_id, limits)
        })
        .collect())
}

/// Takes one call per occurrence of each (tenant, line) off its calls out (a release). Rows
/// are locked in key order first, so concurrent rounds and releases lock them alike.
async fn release_lines(tx: &mut Tx<'_>, lines: &[(String, String)]) -> Result<(), DialerError> {
    let mut per: std::collections::BTreeMap<(&str, &str), i32> = Default::default();
    for (t, l) in lines {
        *per.entry((t.as_str(), l.as_str())).or_default() += 1;
    }
    if per.is_empty() {
        return Ok(());
    }
    let (keys, counts): (Vec<(&str, &str)>, Vec<i32>) = per.into_iter().unzip();
    let (tenants, ids): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
    sqlx::query(
        "WITH x AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[]) AS x(t, l, n)),
              lk AS MATERIALIZED (
                  SELECT d.tenant_id, d.line_id FROM dialer_lines d
                  JOIN x ON d.tenant_id = x.t AND d.line_id = x.l
                  ORDER BY 1, 2 FOR UPDATE OF d)
         UPDATE dialer_lines d SET in_flight = GREATEST(d.in_flight - x.n, 0)
         FROM x JOIN lk ON lk.tenant_id = x.t AND lk.line_id = x.l
         WHERE d.tenant_id = x.t AND d.line_id = x.l",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&counts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A line as a metrics label: `<tenant>/<line>` (line ids are the tenant's own).
fn line_label(tenant: &str, line: &str) -> waihu_metrics::LineLabel {
    waihu_metrics::LineLabel {
        line: format!("{tenant}/{line}"),
    }
}

/// What one dial round did with the due contacts it looked at, for
/// `waihu_dial_decisions_total`: counted once the round has committed.
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    pub(crate) dialed: u64,
    pub(crate) handed_over: u64,
    pub(crate) window: u64,
    pub(crate) do_not_call: u64,
    pub(crate) invalid_number: u64,
    pub(crate) daily_limit: u64,
    no_line_in_city: u64,
    line_busy: u64,
    stopped_meanwhile: u64,
}

impl Decisions {
    /// A due contact finished without a call: do-not-call, or a number screened invalid.
    pub(crate) fn finished_without_call(&mut self, outcome: pb::ContactOutcome) {
        if outcome == pb::ContactOutcome::DoNotCall {
            self.do_not_call += 1;
        } else {
            self.invalid_number += 1;
        }
    }

    pub(crate) fn record(&self) {
        let m = waihu_metrics::metrics();
        for (decision, reason, n) in [
            ("dial", "ok", self.dialed),
            ("hand_over", "campaign", self.handed_over),
            ("defer", "window", self.window),
            ("finish", "do_not_call", self.do_not_call),
            ("finish", "invalid_number", self.invalid_number),
            ("defer", "daily_limit", self.daily_limit),
            ("defer", "no_line_in_city", self.no_line_in_city),
            ("wait", "line_capacity", self.line_busy),
            ("drop", "task_stopped", self.stopped_meanwhile),
        ] {
            if n > 0 {
                m.dial_decisions
                    .get_or_create(&waihu_metrics::DecisionLabel {
                        decision: decision.into(),
                        reason: reason.into(),
                    })
                    .inc_by(n);
            }
        }
    }
}

/// A line the dialer may dial on now, with its counts.
#[derive(sqlx::FromRow)]
pub(crate) struct LineRow {
    pub(crate) tenant_id: String,
    pub(crate) line_id: String,
    in_flight: i32,
    max_concurrent: i32,
    pub(crate) cps: f64,
    pub(crate) pace_at: Option<DateTime<Utc>>,
    daily_cap: i32,
    time_zone: String,
    day: Option<NaiveDate>,
    day_calls: i32,
    pub(crate) province: String,
    pub(crate) city: String,
    pub(crate) enabled: bool,
    pub(crate) caller_number: String,
}

impl LineRow {
    /// The line as a round plans on it (its free slots now), with its pace and day noted in
    /// `paces` so the round can move them on; and which limit binds when nothing is free.
    pub(crate) fn slots(
        &self,
        now: DateTime<Utc>,
        burst: std::time::Duration,
        paces: &mut Paces,
    ) -> (LineSlots, &'static str) {
        let (free, today, why) = self.free(now, burst);
        paces.insert(
            (self.tenant_id.clone(), self.line_id.clone()),
            (self.cps, self.pace_at, today),
        );
        let slots = LineSlots {
            tenant_id: self.tenant_id.clone(),
            id: self.line_id.clone(),
            free,
            province: self.province.clone(),
            city: self.city.clone(),
            caller_number: self.caller_number.clone(),
        };
        (slots, why)
    }

    /// The calls the line may start now (what its concurrency, daily cap and pace leave), its
    /// local date, and which of the three binds when none is left.
    pub(crate) fn free(
        &self,
        now: DateTime<Utc>,
        burst: std::time::Duration,
    ) -> (u32, NaiveDate, &'static str) {
        let today = local_day(now, line_zone(&self.time_zone));
        let mut free =
            (self.max_concurrent.max(0) as u32).saturating_sub(self.in_flight.max(0) as u32);
        let mut why = "all its calls are out";
        let capped = cap_left(
            self.daily_cap.max(0) as u32,
            self.day,
            self.day_calls.max(0) as u32,
            today,
        );
        if let Some(left) = capped {
            if left < free || left == 0 {
                why = "its daily cap is reached";
            }
            free = free.min(left);
        }
        if let Some(left) = pace_allowance(self.cps, self.pace_at, now, burst) {
            if left < free {
                why = "it is at its calls-per-second pace";
            }
            free = free.min(left);
        }
        (free, today, why)
    }
}

/// A running task with something due, as a round reads it.
#[derive(sqlx::FromRow)]
struct RoundTask {
    task_id: Uuid,
    tenant_id: String,
    priority: i16,
    caller_line: String,
    daily_call_limit: i32,
    window_spec: Option<Vec<u8>>,
    window_zone: String,
    zones: Vec<String>,
    number_city_limit: bool,
}

impl RoundTask {
    fn window(&self, default: &Window) -> Window {
        task_window(self.window_spec.as_deref(), default)
    }
}

/// A task's calling window from its stored spec (`default` when it set none; a window that
/// does not decode, which the task service never lets through, counts as the default too).
pub(crate) fn task_window(spec: Option<&[u8]>, default: &Window) -> Window {
    spec.and_then(|b| pb::CallingWindow::decode(b).ok())
        .and_then(|w| Window::parse(&w).ok())
        .unwrap_or_else(|| default.clone())
}

/// Per (tenant, line): its pace (cps, next call due) and its local date, as a round found them.
pub(crate) type Paces = HashMap<(String, String), (f64, Option<DateTime<Utc>>, NaiveDate)>;

/// The zone a line's day is counted in (an unknown name, which the provider adapter never
/// sends, counts as Asia/Shanghai).
pub(crate) fn line_zone(name: &str) -> chrono_tz::Tz {
    waihu_telephony::zone::parse(name).unwrap_or(chrono_tz::Asia::Shanghai)
}

pub const PRODUCER: &str = "dialer";

// Task status codes as in pb::TaskStatus.
const PENDING: i16 = pb::TaskStatus::Pending as i16;
pub(crate) const RUNNING: i16 = pb::TaskStatus::Running as i16;
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

/// A released call, as the dialer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    /// None for a click-to-dial call.
    pub task: Option<Uuid>,
    pub contact_no: i32,
    pub call: Uuid,
    pub q850: u32,
    pub answered: bool,
    /// The provider never placed it (a provider campaign stopped at its window's end, or
    /// closed before the call came): called again without charging an attempt.
    pub not_placed: bool,
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
    unplaced: i16,
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
    /// Per running task with calls due: the service it got (calls / weight), for sharing lines
    /// by priority. Kept in memory by the dialing leader; a new leader starts everyone equal.
    passes: std::sync::Arc<std::sync::Mutex<HashMap<Uuid, f64>>>,
    /// Running tasks whose share the last round that fetched for them filled: the next round
    /// takes them as due without probing the due index again. Only a hint: one found empty gets
    /// no contacts and leaves the set, and a task not in it is probed as ever.
    known_due: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
}

/// What a dialing round applies beside the tasks' own settings.
#[derive(Debug, Clone)]
pub struct RoundRules {
    /// How far ahead a paced line may start calls in one round (the dial loop's tick).
    pub burst: std::time::Duration,
    /// The calling window of tasks that set none.
    pub default_window: Window,
    /// Weights of priorities 0, 1 and 2 when tasks compete for lines.
    pub weights: [u32; 3],
}

/// A call's `CallRequested` in the trace of its task's start: built inside a `dial` span whose
/// parent is the task's trace context (`(traceparent, tracestate)`), so the provider's handling
/// of the call continues it. Without a context (tracing off) the event carries none.
pub(crate) fn in_task_trace(
    (parent, state): &(String, String),
    call: &Uuid,
    meta: EventMeta,
    event: Event,
) -> RecordedEvent {
    if parent.is_empty() {
        return RecordedEvent::new(meta, event);
    }
    let span = tracing::info_span!("dial", call_id = %call, task_id = tracing::field::Empty);
    if let Some(task) = meta.task_id {
        span.record("task_id", tracing::field::display(task));
    }
    waihu_events::trace::set_parent(&span, parent, state);
    span.in_scope(|| RecordedEvent::new(meta, event))
}

fn parse_uuid(s: &str) -> Result<Uuid, DialerError> {
    Uuid::parse_str(s).map_err(|_| DialerError::Bad(format!("{s:?} is not a UUID")))
}

pub(crate) fn finished_event(
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
            passes: Default::default(),
            known_due: Default::default(),
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
                             daily_call_limit, window_spec, window_zone, number_city_limit,
                             campaign_size)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
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
                    .bind(spec.window.as_ref().map(|w| w.encode_to_vec()))
                    .bind(
                        line_zone(spec.window.as_ref().map_or("", |w| w.time_zone.as_str())).name(),
                    )
                    .bind(spec.number_city_limit)
                    .bind(spec.campaign_size.min(i32::MAX as u32) as i32)
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
            // A start or resume brings the trace the task's calls continue.
            let trace = matches!(e.event, Event::TaskStarted(_) | Event::TaskResumed(_))
                .then_some((e.traceparent.as_str(), e.tracestate.as_str()));
            let updated = sqlx::query(
                "UPDATE dialer_tasks SET status = $2, version = $3,
                     traceparent = COALESCE($4, traceparent), tracestate = COALESCE($5, tracestate)
                 WHERE task_id = $1 AND version < $3",
            )
            .bind(task)
            .bind(status)
            .bind(version)
            .bind(trace.map(|t| t.0))
            .bind(trace.map(|t| t.1))
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
            // A zone the task service let through is valid; any other counts as the default,
            // so one tenant's bad setting cannot stop the rounds of every tenant.
            let zone = line_zone(&x.time_zone).name();
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
        let row: Option<(i16, String)> = sqlx::query_as(
            "SELECT status, window_zone FROM dialer_tasks WHERE task_id = $1 FOR UPDATE",
        )
        .bind(task)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((status, task_zone)) = row else {
            return Err(DialerError::NotYet(format!(
                "contacts for task {task} before the task"
            )));
        };
        let nos: Vec<i32> = contacts.iter().map(|c| c.contact_no as i32).collect();
        let phones: Vec<&str> = contacts.iter().map(|c| c.phone.as_str()).collect();
        // The zone each number tells, when it is not the task's own.
        let zones: Vec<Option<&str>> = phones
            .iter()
            .map(|p| waihu_telephony::tzmap::zone_of(p).filter(|z| *z != task_zone))
            .collect();
        let mut distinct: Vec<&str> = zones.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        sqlx::query(
            "INSERT INTO dialer_contacts (task_id, contact_no, phone, state, next_at, zone)
             SELECT $1, n, p, 0, now(), z FROM UNNEST($2::int[], $3::text[], $4::text[]) AS u(n, p, z)
             ON CONFLICT DO NOTHING",
        )
        .bind(task)
        .bind(&nos)
        .bind(&phones)
        .bind(&zones)
        .execute(&mut **tx)
        .await?;
        // New contacts may be in a zone whose window is open: the task is looked at again.
        sqlx::query(
            "UPDATE dialer_tasks SET closed_until = NULL,
                 zones = ARRAY(SELECT DISTINCT unnest(zones || $2::text[]) ORDER BY 1)
             WHERE task_id = $1",
        )
        .bind(task)
        .bind(&distinct)
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
        let manual: Vec<Uuid> = releases
            .iter()
            .filter(|r| r.task.is_none())
            .map(|r| r.call)
            .collect();
        let releases: Vec<&Release> = releases.iter().filter(|r| r.task.is_some()).collect();
        let tasks: Vec<Uuid> = releases.iter().filter_map(|r| r.task).collect();
        let nos: Vec<i32> = releases.iter().map(|r| r.contact_no).collect();
        let calls: Vec<Uuid> = releases.iter().map(|r| r.call).collect();
        // Found by primary key alone. The contact must still be active (state 1), which its
        // active call id implies and the loop below checks: written into the query, that
        // condition lets the planner AND in a partial index over every call in flight, for each
        // release (a cost that grows with the calls out, measured at 30-60 ms a batch).
        let rows: Vec<ActiveContact> = sqlx::query_as(
            "SELECT c.task_id, c.contact_no, c.state AS contact_state, c.attempts, c.active_call_id,
                    t.status, t.recall_count, t.recall_interval_s, t.retry_policy, t.tenant_id,
                    c.line_id, c.unplaced
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
        let by_call: HashMap<Uuid, &Release> = releases.iter().map(|r| (r.call, *r)).collect();
        let now = Utc::now();
        let (mut u_task, mut u_no, mut u_state, mut u_at) = (vec![], vec![], vec![], vec![]);
        let mut u_refund: Vec<(Uuid, i32)> = Vec::new();
        // Manual calls hold a line slot and a tenant call each, like a contact's.
        let mut freed: Vec<(String, String)> = self.release_manual(&mut tx, &manual).await?;
        let manual_done = freed.len();
        let manual_tenants: Vec<String> = freed.iter().map(|(t, _)| t.clone()).collect();
        let mut freed_by: Vec<&str> = manual_tenants.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for row in &rows {
            let Some(r) = by_call.get(&row.active_call_id) else {
                continue;
            };
            if row.contact_state != C_ACTIVE {
                continue;
            }
            if let Some(line) = &row.line_id {
                freed.push((row.tenant_id.clone(), line.clone()));
            }
            freed_by.push(&row.tenant_id);
            let (task, no, call) = (row.task_id, row.contact_no, row.active_call_id);
            let (attempts, tenant) = (row.attempts, row.tenant_id.as_str());
            let cancelled = row.status == CANCELLED;
            let refund = r.not_placed && !cancelled && row.unplaced < crate::campaign::MAX_UNPLACED;
            let next = if refund {
                // Never placed: due again at once, the attempt given back.
                u_refund.push((task, no));
                Next::Recall(std::time::Duration::ZERO)
            } else {
                after_release(
                    r.q850,
                    r.answered,
                    attempts as u32,
                    &row.policy(),
                    cancelled,
                )
            };
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
                "UPDATE dialer_contacts c SET state = u.s, next_at = u.at, active_call_id = NULL,
                        campaign_id = NULL
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
        if !u_refund.is_empty() {
            let (t, n): (Vec<Uuid>, Vec<i32>) = u_refund.into_iter().unzip();
            sqlx::query(
                "UPDATE dialer_contacts c SET attempts = GREATEST(c.attempts - 1, 0),
                        unplaced = c.unplaced + 1
                 FROM UNNEST($1::uuid[], $2::int[]) AS u(t, n)
                 WHERE c.task_id = u.t AND c.contact_no = u.n",
            )
            .bind(&t)
            .bind(&n)
            .execute(&mut *tx)
            .await?;
        }
        release_lines(&mut tx, &freed).await?;
        add_tenant_usage(&mut tx, &freed_by, -1).await?;
        self.outbox.push(&mut tx, &out).await?;
        tx.commit().await?;
        if !out.is_empty() {
            self.outbox.wake();
        }
        Ok(n + manual_done)
    }

    /// Drops per-number day counts older than two days (no time zone is that far behind).
    pub async fn prune_number_days(&self) -> Result<u64, DialerError> {
        let done = sqlx::query("DELETE FROM dialer_number_days WHERE day < current_date - 2")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Counts a round's calls on their lines: calls out, the line's local day, its pace, and the
    /// per-second tally its recent pace is read from. Lines in key order.
    pub(crate) async fn lines_dialed(
        &self,
        tx: &mut Tx<'_>,
        dialed: &[(&str, &str)],
        paces: &Paces,
        now: DateTime<Utc>,
    ) -> Result<(), DialerError> {
        let mut per: std::collections::BTreeMap<(&str, &str), u32> = Default::default();
        for k in dialed {
            *per.entry(*k).or_default() += 1;
        }
        let n = per.len();
        let (mut tenants, mut ids, mut counts) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut pace_at, mut days) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for ((t, l), count) in per {
            let (cps, at, today) = paces
                .get(&(t.to_string(), l.to_string()))
                .copied()
                .unwrap_or((0.0, None, local_day(now, chrono_tz::Asia::Shanghai)));
            tenants.push(t);
            ids.push(l);
            counts.push(count as i32);
            pace_at.push(pace_after(cps, at, now, count));
            days.push(today);
        }
        sqlx::query(
            "WITH x AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::timestamptz[],
                                           $5::date[]) AS x(t, l, n, pace, day)),
                  lk AS MATERIALIZED (
                      SELECT d.tenant_id, d.line_id FROM dialer_lines d
                      JOIN x ON d.tenant_id = x.t AND d.line_id = x.l
                      ORDER BY 1, 2 FOR UPDATE OF d)
             UPDATE dialer_lines d SET in_flight = d.in_flight + x.n, pace_at = x.pace,
                 day_calls = CASE WHEN d.day = x.day THEN d.day_calls + x.n ELSE x.n END,
                 day = x.day
             FROM x JOIN lk ON lk.tenant_id = x.t AND lk.line_id = x.l
             WHERE d.tenant_id = x.t AND d.line_id = x.l",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&counts)
        .bind(&pace_at)
        .bind(&days)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO dialer_line_seconds AS s (tenant_id, line_id, second, calls)
             SELECT t, l, $4, n FROM UNNEST($1::text[], $2::text[], $3::int[]) AS x(t, l, n)
             ON CONFLICT (tenant_id, line_id, second) DO UPDATE SET calls = s.calls + excluded.calls",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&counts)
        .bind(now.timestamp())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Applies line events (created, updated, disabled, enabled: each carries the whole line);
    /// a redelivered or older version changes nothing.
    pub async fn apply_line_events(&self, events: &[&RecordedEvent]) -> Result<(), DialerError> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            let line = match &e.event {
                Event::LineCreated(x) => x.line.as_ref(),
                Event::LineUpdated(x) => x.line.as_ref(),
                Event::LineDisabled(x) => x.line.as_ref(),
                Event::LineEnabled(x) => x.line.as_ref(),
                _ => continue,
            };
            let Some(line) = line else {
                return Err(DialerError::Bad(format!(
                    "{} without a line",
                    e.type_name()
                )));
            };
            if line.line_id.is_empty() {
                return Err(DialerError::Bad(format!(
                    "{} without a line id",
                    e.type_name()
                )));
            }
            sqlx::query(
                "INSERT INTO dialer_lines AS d (tenant_id, line_id, in_flight, known, enabled,
                     max_concurrent, cps, daily_cap, time_zone, caller_number, version, province,
                     city)
                 VALUES ($1, $2, 0, true, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (tenant_id, line_id) DO UPDATE SET known = true,
                     enabled = excluded.enabled, max_concurrent = excluded.max_concurrent,
                     cps = excluded.cps, daily_cap = excluded.daily_cap,
                     time_zone = excluded.time_zone, caller_number = excluded.caller_number,
                     version = excluded.version, province = excluded.province,
                     city = excluded.city
                 WHERE d.version < excluded.version",
            )
            .bind(&e.meta.tenant_id)
            .bind(&line.line_id)
            .bind(line.enabled)
            .bind(line.max_concurrent.min(i32::MAX as u32) as i32)
            .bind(if line.cps.is_finite() {
                line.cps.max(0.0)
            } else {
                0.0
            })
            .bind(line.daily_cap.min(i32::MAX as u32) as i32)
            .bind(line_zone(&line.time_zone).name())
            .bind(&line.caller_number)
            .bind(line.version.min(i64::MAX as u64) as i64)
            .bind(line.region.as_ref().map_or("", |r| r.province.as_str()))
            .bind(line.region.as_ref().map_or("", |r| r.city.as_str()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's lines as the dialer counts them (`ids` empty = all it knows).
    pub async fn line_usage(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<pb::LineUsage>, DialerError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            line_id: String,
            in_flight: i32,
            time_zone: String,
            day: Option<NaiveDate>,
            day_calls: i32,
            recent: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT d.line_id, d.in_flight, d.time_zone, d.day, d.day_calls,
                    coalesce((SELECT sum(s.calls) FROM dialer_line_seconds s
                              WHERE s.tenant_id = d.tenant_id AND s.line_id = d.line_id
                                AND s.second > extract(epoch FROM now())::bigint - 10), 0)::bigint
                        AS recent
             FROM dialer_lines d
             WHERE d.tenant_id = $1 AND (cardinality($2::text[]) = 0 OR d.line_id = ANY($2))
             ORDER BY d.line_id",
        )
        .bind(tenant)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|r| {
                let today = local_day(now, line_zone(&r.time_zone));
                pb::LineUsage {
                    line_id: r.line_id,
                    in_flight: r.in_flight.max(0) as u32,
                    today_calls: if r.day == Some(today) {
                        r.day_calls.max(0) as u32
                    } else {
                        0
                    },
                    cps_10s: r.recent.max(0) as f64 / 10.0,
                }
            })
            .collect())
    }

    /// Drops per-line second counts older than a minute.
    pub async fn prune_line_seconds(&self) -> Result<u64, DialerError> {
        let done = sqlx::query(
            "DELETE FROM dialer_line_seconds WHERE second < extract(epoch FROM now())::bigint - 60",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// One dialing round: finishes due contacts on a do-not-call list and fills every line's
    /// free slots with due contacts of running tasks, higher priority first. Returns the number
    /// of contacts it acted on (calls requested and contacts finished).
    ///
    /// Its cost is O(lines + running tasks with something due + dials): in-flight counts are
    /// kept per line, tasks with nothing due are passed over inside one query, and each task's
    /// due contacts are read from an index in dialing order. The tasks a round dials for are
    /// share-locked before it commits and must still be running, so no call of a round goes out
    /// after a pause or cancel the dialer has applied.
    pub async fn dial_round(&self, rules: &RoundRules) -> Result<usize, DialerError> {
        let (burst, default_window) = (rules.burst, &rules.default_window);
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        // Manual dials count the same lines.
        crate::manual::lock_lines(&mut tx).await?;
        let rows: Vec<LineRow> = sqlx::query_as(
            "SELECT tenant_id, line_id, in_flight, max_concurrent, cps, pace_at, daily_cap,
                    time_zone, day, day_calls, province, city, enabled, caller_number
             FROM dialer_lines WHERE known AND enabled ORDER BY tenant_id, line_id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let m = waihu_metrics::metrics();
        for r in &rows {
            m.calls_in_flight
                .get_or_create(&line_label(&r.tenant_id, &r.line_id))
                .set(r.in_flight.max(0) as i64);
        }
        // Per line: what its pace and day were, to move them on by what the round places.
        let mut paces: Paces = HashMap::with_capacity(rows.len());
        let mut slots: Vec<LineSlots> = rows
            .iter()
            .map(|r| r.slots(now, burst, &mut paces).0)
            .collect();
        let total = |slots: &[LineSlots]| slots.iter().map(|l| l.free).sum::<u32>();
        if total(&slots) == 0 {
            return Ok(0);
        }
        let mut open: Vec<&str> = slots
            .iter()
            .filter(|l| l.free > 0)
            .map(|l| l.tenant_id.as_str())
            .collect();
        open.dedup();
        let known: Vec<Uuid> = self
            .known_due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        // One probe of the due index per running task not known to have contacts due, whatever
        // the statistics say: a lateral subquery with a limit is never turned into a join (as
        // `EXISTS` it was, and a plan made while the table was empty then read every due contact
        // of every task each round), and its order is the index's (without it, a task among
        // others' many contacts was looked for by reading the table until one of its rows came
        // up). A task known due ends the subquery at its first branch, so the index is not read.
        let tasks: Vec<RoundTask> = sqlx::query_as(
            "SELECT t.task_id, t.tenant_id, t.priority, t.caller_line, t.daily_call_limit,
                    t.window_spec, t.window_zone, t.zones, t.number_city_limit
             FROM dialer_tasks t
             CROSS JOIN LATERAL (SELECT 1 WHERE t.task_id = ANY($3::uuid[])
                                 UNION ALL
                                 (SELECT 1 FROM dialer_contacts c
                                  WHERE c.task_id = t.task_id AND c.state = 0
                                    AND c.next_at <= now()
                                  ORDER BY c.next_at, c.contact_no LIMIT 1)
                                 LIMIT 1) due
             WHERE t.status = $1 AND (t.not_before IS NULL OR t.not_before <= now())
               AND (t.closed_until IS NULL OR t.closed_until <= now())
               AND t.tenant_id = ANY($2) AND t.campaign_size = 0
             ORDER BY t.priority DESC, random()",
        )
        .bind(RUNNING)
        .bind(&open)
        .bind(&known)
        .fetch_all(&mut *tx)
        .await?;
        // Tasks no longer running (or whose tenant has no free line) leave the hint.
        if !known.is_empty() {
            let running: std::collections::HashSet<Uuid> =
                tasks.iter().map(|t| t.task_id).collect();
            self.known_due
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|id| running.contains(id));
        }
        let mut tenants: Vec<&str> = tasks.iter().map(|t| t.tenant_id.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut allowance = tenant_allowances(&mut tx, &tenants).await?;
        let mut dials = Vec::new();
        // Calls this round plans per (tenant, number), for the per-number daily limit.
        let mut planned_now: HashMap<(String, String), i32> = HashMap::new();
        // Contacts finished without a call (do-not-call), announced with the round.
        let mut finished: Vec<(RecordedEvent, Expect)> = Vec::new();
        // Tasks whose window is closed wherever their contacts are wait for its opening; the
        // rest share the lines by priority.
        let mut open = Vec::with_capacity(tasks.len());
        for t in tasks {
            let window = t.window(default_window);
            let task_zone = line_zone(&t.window_zone);
            let zones: Vec<chrono_tz::Tz> = std::iter::once(task_zone)
                .chain(t.zones.iter().map(|z| line_zone(z)))
                .collect();
            if zones.iter().any(|z| window.is_open(now, *z)) {
                open.push((t, window, task_zone));
            } else {
                // Closed wherever its contacts are: passed over until the first opening.
                let until = zones
                    .iter()
                    .filter_map(|z| window.next_open(now, *z))
                    .min()
                    .unwrap_or(now + chrono::Duration::days(1));
                close_until(&mut tx, t.task_id, until).await?;
            }
        }
        let weight = |p: i16| rules.weights[(p.clamp(0, 2)) as usize].max(1);
        let quotas = {
            let mut passes = self.passes.lock().unwrap_or_else(|e| e.into_inner());
            // Only tasks competing now keep their service; one joining starts level with the
            // least served, so it neither waits for the others nor takes over.
            passes.retain(|id, _| open.iter().any(|(t, _, _)| t.task_id == *id));
            let floor = passes.values().copied().fold(f64::INFINITY, f64::min);
            let floor = if floor.is_finite() { floor } else { 0.0 };
            let contenders: Vec<Contender> = open
                .iter()
                .map(|(t, _, _)| Contender {
                    tenant_id: t.tenant_id.clone(),
                    caller_lines: caller_lines(&t.caller_line),
                    weight: weight(t.priority),
                    pass: *passes.entry(t.task_id).or_insert(floor),
                })
                .collect();
            fair_quotas(&slots, &contenders, &allowance)
        };
        // Each open task's share, fetched for all tasks at once (the shares already fit the
        // free slots and the tenants' allowances together).
        let caps: Vec<u32> = open
            .iter()
            .zip(&quotas)
            .map(|((t, _, _), quota)| {
                let mut cap =
                    capacity(&slots, &t.tenant_id, &caller_lines(&t.caller_line)).min(*quota);
                if let Some(left) = allowance.get(&t.tenant_id) {
                    cap = cap.min(*left);
                }
                cap
            })
            .collect();
        let (want_task, want_n): (Vec<Uuid>, Vec<i64>) = open
            .iter()
            .zip(&caps)
            .filter(|(_, cap)| **cap > 0)
            .map(|((t, _, _), cap)| (t.task_id, *cap as i64))
            .unzip();
        let fetched: Vec<(Uuid, i32, String, i32, Option<String>)> = if want_task.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT q.task_id, c.contact_no, c.phone, c.attempts, c.zone
                 FROM UNNEST($1::uuid[], $2::bigint[]) WITH ORDINALITY AS q(task_id, n, i)
                 CROSS JOIN LATERAL (
                     SELECT contact_no, phone, attempts, zone, next_at FROM dialer_contacts
                     WHERE task_id = q.task_id AND state = 0 AND next_at <= now()
                     ORDER BY next_at, contact_no LIMIT q.n FOR UPDATE SKIP LOCKED) c
                 ORDER BY q.i, c.next_at, c.contact_no",
            )
            .bind(&want_task)
            .bind(&want_n)
            .fetch_all(&mut *tx)
            .await?
        };
        let mut due: HashMap<Uuid, Vec<(DueContact, Option<String>)>> = HashMap::new();
        for (task_id, contact_no, phone, attempts, zone) in fetched {
            due.entry(task_id).or_default().push((
                DueContact {
                    contact_no,
                    phone,
                    attempts,
                },
                zone,
            ));
        }
        // A task that filled its share is taken to have more due (one that had not gets its
        // share once more and, finding none, is probed again); one that did not fill it is
        // probed next time.
        {
            let mut known = self.known_due.lock().unwrap_or_else(|e| e.into_inner());
            for (task_id, n) in want_task.iter().zip(&want_n) {
                if due.get(task_id).map_or(0, Vec::len) as i64 >= *n {
                    known.insert(*task_id);
                } else {
                    known.remove(task_id);
                }
            }
        }
        // Numbers on a do-not-call list, over every task of the round in one query.
        let (dnc_t, dnc_p): (Vec<&str>, Vec<&str>) = open
            .iter()
            .flat_map(|(t, _, _)| {
                due.get(&t.task_id)
                    .into_iter()
                    .flatten()
                    .map(|(c, _)| (t.tenant_id.as_str(), c.phone.as_str()))
            })
            .unzip();
        // Numbers on a do-not-call list or screened invalid (seed 004), in one query.
        let blocked = crate::validity::not_to_call(&mut tx, &dnc_t, &dnc_p).await?;
        // Today's calls of the numbers whose task has a per-number limit.
        let (day_t, day_p): (Vec<&str>, Vec<&str>) = open
            .iter()
            .filter(|(t, _, _)| t.daily_call_limit > 0)
            .flat_map(|(t, _, _)| {
                due.get(&t.task_id)
                    .into_iter()
                    .flatten()
                    .map(|(c, _)| (t.tenant_id.as_str(), c.phone.as_str()))
            })
            .unzip();
        let today = calls_today(&mut tx, &day_t, &day_p).await?;
        // What the round defers: (task, contact, until); None = the tenant's next midnight.
        let mut decisions = Decisions::default();
        let mut later: Vec<(Uuid, i32, DateTime<Utc>)> = Vec::new();
        let mut to_midnight: Vec<(Uuid, i32)> = Vec::new();
        let mut stopped: Vec<(Uuid, i32)> = Vec::new();
        for (t, window, task_zone) in open {
            let Some(contacts) = due.remove(&t.task_id) else {
                continue;
            };
            let (task_id, tenant_id, daily_limit) =
                (t.task_id, t.tenant_id.clone(), t.daily_call_limit);
            let mut go = Vec::with_capacity(contacts.len());
            for (c, zone) in contacts {
                // A contact whose own clock is outside the window waits for its next opening.
                let zone = zone.as_deref().map_or(task_zone, line_zone);
                if !window.is_open(now, zone) {
                    let at = window
                        .next_open(now, zone)
                        .unwrap_or(now + chrono::Duration::days(1));
                    later.push((task_id, c.contact_no, at));
                    decisions.window += 1;
                    continue;
                }
                // Numbers on the tenant's or the global do-not-call list are not called
                // (again); numbers screened invalid are not called either, their contact
                // finishing as INVALID_NUMBER as a call to an unallocated number would have.
                if let Some(outcome) = (!blocked.is_empty())
                    .then(|| blocked.get(&(tenant_id.clone(), c.phone.clone())))
                    .flatten()
                {
                    stopped.push((task_id, c.contact_no));
                    finished.push(finished_event(
                        &tenant_id,
                        task_id,
                        c.contact_no,
                        *outcome,
                        c.attempts,
                        None,
                    ));
                    decisions.finished_without_call(*outcome);
                    continue;
                }
                // A number that got its task's limit today (over all the tenant's tasks, this
                // round's plans included) waits for the tenant's next local midnight.
                if daily_limit > 0 {
                    let key = (tenant_id.clone(), c.phone.clone());
                    let calls = today.get(&key).copied().unwrap_or(0)
                        + planned_now.get(&key).copied().unwrap_or(0);
                    if calls >= daily_limit {
                        to_midnight.push((task_id, c.contact_no));
                        decisions.daily_limit += 1;
                        continue;
                    }
                }
                go.push(c);
            }
            let go_len = go.len();
            let task = DueTask {
                task_id,
                tenant_id,
                caller_lines: caller_lines(&t.caller_line),
                number_city_limit: t.number_city_limit,
                contacts: go,
            };
            let TaskPlan {
                dials: planned,
                no_line_in_city,
            } = plan_task(&mut slots, &task);
            // No line of the task is in their city: looked at again in a while (a line there
            // may be added).
            decisions.no_line_in_city += no_line_in_city.len() as u64;
            decisions.line_busy +=
                go_len.saturating_sub(planned.len() + no_line_in_city.len()) as u64;
            let in_a_while = now + chrono::Duration::minutes(10);
            later.extend(
                no_line_in_city
                    .into_iter()
                    .map(|no| (task_id, no, in_a_while)),
            );
            for d in &planned {
                *planned_now
                    .entry((d.tenant_id.clone(), d.phone.clone()))
                    .or_default() += 1;
            }
            if let Some(left) = allowance.get_mut(&task.tenant_id) {
                *left = left.saturating_sub(planned.len() as u32);
            }
            if !planned.is_empty() {
                let mut passes = self.passes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = passes.get_mut(&task_id) {
                    *p += planned.len() as f64 / weight(t.priority) as f64;
                }
            }
            dials.extend(planned);
        }
        defer(&mut tx, &later, &to_midnight, &stopped).await?;
        if dials.is_empty() {
            // Contacts deferred by the per-number daily limit or their window keep their new
            // time, tasks found closed their opening, and do-not-call contacts are finished.
            self.commit_round(tx, &finished).await?;
            decisions.record();
            return Ok(finished.len());
        }
        let planned_total = dials.len();
        // Only the tasks this round dials for are share-locked, and only those still running
        // keep their calls: a pause or cancel committed meanwhile drops them (their contacts stay
        // pending), and one committed later waits for this round.
        let mut dialed: Vec<Uuid> = dials.iter().map(|d| d.task_id).collect();
        dialed.sort();
        dialed.dedup();
        let running: HashMap<Uuid, (String, String)> = sqlx::query_as(
            "SELECT task_id, traceparent, tracestate FROM dialer_tasks
             WHERE task_id = ANY($1) AND status = $2 ORDER BY task_id FOR SHARE",
        )
        .bind(&dialed)
        .bind(RUNNING)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(task, parent, state): (Uuid, String, String)| (task, (parent, state)))
        .collect();
        dials.retain(|d| running.contains_key(&d.task_id));
        let n = dials.len();
        decisions.stopped_meanwhile = (planned_total - n) as u64;
        if n == 0 {
            self.commit_round(tx, &finished).await?;
            decisions.record();
            return Ok(finished.len());
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
                caller_number: d.caller_number,
                ..Default::default()
            });
            // A new call's subject must be empty.
            out.push((
                in_task_trace(&running[&d.task_id], &call, meta, e),
                Expect::LastSubjectSeq(0),
            ));
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
        let u_line_tenant: Vec<(&str, &str)> = u_tenant
            .iter()
            .copied()
            .zip(u_line.iter().map(String::as_str))
            .collect();
        self.lines_dialed(&mut tx, &u_line_tenant, &paces, now)
            .await?;
        add_tenant_usage(&mut tx, &u_tenant, 1).await?;
        count_number_days(&mut tx, &u_tenant, &u_phone).await?;
        out.extend(finished.iter().cloned());
        self.outbox.push(&mut tx, &out).await?;
        tx.commit().await?;
        self.outbox.wake();
        decisions.dialed = n as u64;
        decisions.record();
        for (tenant, line) in &u_line_tenant {
            m.calls_placed
                .get_or_create(&line_label(tenant, line))
                .inc();
        }
        Ok(n + finished.len())
    }

    /// Commits a round that placed no call, with the contacts it finished.
    async fn commit_round(
        &self,
        mut tx: Tx<'_>,
        finished: &[(RecordedEvent, Expect)],
    ) -> Result<(), DialerError> {
        self.outbox.push(&mut tx, finished).await?;
        tx.commit().await?;
        if !finished.is_empty() {
            self.outbox.wake();
        }
        Ok(())
    }

    /// Calls out for longer than `older_than`: (call id, tenant, task; None for a manual call).
    pub async fn calls_out_since(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<(Uuid, String, Option<Uuid>)>, DialerError> {
        let rows: Vec<(Uuid, String, Option<Uuid>, DateTime<Utc>)> = sqlx::query_as(
            "(SELECT c.active_call_id, t.tenant_id, c.task_id, c.dialed_at FROM dialer_contacts c
              JOIN dialer_tasks t ON t.task_id = c.task_id
              WHERE c.state = 1 AND c.active_call_id IS NOT NULL
                AND c.dialed_at < now() - make_interval(secs => CASE WHEN c.campaign_id IS NULL
                                                       THEN $1 ELSE $2 END)
              ORDER BY c.dialed_at LIMIT 500)
             UNION ALL
             (SELECT call_id, tenant_id, NULL::uuid, requested_at FROM dialer_manual_calls
              WHERE state = 1 AND requested_at < now() - make_interval(secs => $1)
              ORDER BY requested_at LIMIT 500)",
        )
        .bind(older_than.as_secs_f64())
        .bind(
            older_than
                .max(crate::campaign::CAMPAIGN_CALL_TIMEOUT)
                .as_secs_f64(),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(c, t, k, _)| (c, t, k)).collect())
    }
}

/// Reads a `CallReleased` (None for other events).
pub fn release_of(e: &RecordedEvent) -> Result<Option<Release>, DialerError> {
    let Event::CallReleased(r) = &e.event else {
        return Ok(None);
    };
    Ok(Some(Release {
        task: if r.task_id.is_empty() {
            None
        } else {
            Some(parse_uuid(&r.task_id)?)
        },
        contact_no: r.contact_no as i32,
        call: parse_uuid(&r.call_id)?,
        q850: r.cause.as_ref().map(|c| c.q850).unwrap_or(0),
        answered: r.answered,
        not_placed: !r.answered
            && r.cause
                .as_ref()
                .is_some_and(|c| c.raw.starts_with(waihu_telephony::hangup::NOT_PLACED)),
    }))
}
