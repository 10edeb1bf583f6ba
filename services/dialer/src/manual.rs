//! Click-to-dial: one call to one number, outside any task, under the campaign rules
//! (do-not-call, the tenant's limits, line slots, daily caps and pace, the calling window).
//! A manual call is a row of `dialer_manual_calls` holding its line slot until the call is
//! released, committed with its `CallRequested` (outbox) like a round's calls; dial rounds and
//! manual dials take one transaction lock ([`lock_lines`]) before they read the counts, so
//! neither can overfill a line the other just counted.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};

use crate::{
    db::{
        add_tenant_usage, count_number_days, line_zone, tenant_limits, Db, DialerError, LineRow,
        Paces, RoundRules,
    },
    planner::{plan_task, tenant_allowance, DueContact, DueTask},
};

/// The transaction lock dial rounds and manual dials share (`pg_advisory_xact_lock`).
const LINES_LOCK: i64 = 0x7761_6968_754c_4e53;

/// Takes the lines' transaction lock: until `tx` ends, no other round or manual dial counts
/// free slots.
pub(crate) async fn lock_lines(tx: &mut waihu_store::Tx<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LINES_LOCK)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// A manual call to place, checked.
pub struct ManualDial<'a> {
    pub tenant: &'a str,
    /// E.164.
    pub phone: &'a str,
    /// Empty = the nearest of the tenant's lines.
    pub line_id: &'a str,
    pub customer_id: &'a str,
    pub customer_name: &'a str,
    pub order_id: &'a str,
    pub requested_by: &'a str,
    /// The caller may dial outside the calling window.
    pub anytime: bool,
}

/// Why a manual call was not placed.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A rule forbids it now (do-not-call, window, a disabled line): FAILED_PRECONDITION.
    #[error("{0}")]
    Rule(String),
    /// No capacity now (line full, cap, pace, tenant limit): RESOURCE_EXHAUSTED.
    #[error("{0}")]
    Busy(String),
    /// No such line of the tenant.
    #[error("{0}")]
    NoLine(String),
    #[error(transparent)]
    Db(#[from] DialerError),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Refused::Db(e.into())
    }
}

/// A placed manual call: its id and line.
pub struct Placed {
    pub call_id: Uuid,
    pub line_id: String,
}

impl Db {
    /// Places one manual call if every rule allows it now.
    pub async fn dial_manual(
        &self,
        d: &ManualDial<'_>,
        rules: &RoundRules,
    ) -> Result<Placed, Refused> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        if !crate::dnc::listed_many(&mut tx, &[d.tenant], &[d.phone])
            .await?
            .is_empty()
        {
            return Err(Refused::Rule(format!(
                "{} is on a do-not-call list (DialerService.CheckDoNotCall says which)",
                d.phone
            )));
        }
        if !d.anytime {
            // The callee's clock where the number tells it, else the tenant's.
            let zone = match waihu_telephony::tzmap::zone_of(d.phone) {
                Some(z) => line_zone(z),
                None => {
                    let tenant_zone: Option<String> = sqlx::query_scalar(
                        "SELECT time_zone FROM dialer_tenants WHERE tenant_id = $1",
                    )
                    .bind(d.tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
                    line_zone(
                        tenant_zone
                            .as_deref()
                            .unwrap_or(waihu_telephony::zone::DEFAULT),
                    )
                }
            };
            let window = &rules.default_window;
            if !window.is_open(now, zone) {
                let opens = window
                    .next_open(now, zone)
                    .map(|t| format!("; it opens at {}", rfc3339(t)))
                    .unwrap_or_default();
                return Err(Refused::Rule(format!(
                    "outside the calling window on the callee's clock ({}){opens} \
                     (lead:call:dial:anytime dials regardless)",
                    zone.name()
                )));
            }
        }
        // From here on the counts must not move under us: the tenant's calls out, the lines'.
        lock_lines(&mut tx).await?;
        if let Some(limits) = tenant_limits(&mut tx, d.tenant).await? {
            // Entitlements limit every call; whether automatic dialing is on does not concern
            // a person's own call.
            let limits = crate::planner::TenantLimits {
                bot_enabled: true,
                bot_expire_at: None,
                ..limits
            };
            if tenant_allowance(&limits, now) == Some(0) {
                return Err(Refused::Busy(format!(
                    "tenant {} is at its entitlements' limit ({} calls out of {}, {} today of {})",
                    d.tenant,
                    limits.in_flight,
                    limits.max_concurrent_calls,
                    limits.today_calls,
                    limits.daily_calls
                )));
            }
        }
        let rows: Vec<LineRow> = sqlx::query_as(
            "SELECT tenant_id, line_id, in_flight, max_concurrent, cps, pace_at, daily_cap,
                    time_zone, day, day_calls, province, city, enabled, caller_number
             FROM dialer_lines WHERE tenant_id = $1 AND known ORDER BY line_id",
        )
        .bind(d.tenant)
        .fetch_all(&mut *tx)
        .await?;
        if !d.line_id.is_empty() {
            match rows.iter().find(|r| r.line_id == d.line_id) {
                None => {
                    return Err(Refused::NoLine(format!(
                        "line {:?} of tenant {}",
                        d.line_id, d.tenant
                    )))
                }
                Some(r) if !r.enabled => {
                    return Err(Refused::Rule(format!("line {} is disabled", d.line_id)))
                }
                Some(_) => {}
            }
        } else if !rows.iter().any(|r| r.enabled) {
            return Err(Refused::Rule(format!(
                "tenant {} has no enabled line (ProviderService.CreateLine)",
                d.tenant
            )));
        }
        let mut paces: Paces = Paces::with_capacity(rows.len());
        let mut slots = Vec::with_capacity(rows.len());
        let mut full = Vec::new();
        for r in rows.iter().filter(|r| r.enabled) {
            if !d.line_id.is_empty() && r.line_id != d.line_id {
                continue;
            }
            let (slot, why) = r.slots(now, rules.burst, &mut paces);
            if slot.free == 0 {
                full.push(format!("line {}: {why}", r.line_id));
            }
            slots.push(slot);
        }
        let task = DueTask {
            task_id: Uuid::nil(),
            tenant_id: d.tenant.to_string(),
            caller_lines: Vec::new(),
            number_city_limit: false,
            contacts: vec![DueContact {
                contact_no: 0,
                phone: d.phone.to_string(),
                attempts: 0,
            }],
        };
        let Some(dial) = plan_task(&mut slots, &task).dials.pop() else {
            return Err(Refused::Busy(format!(
                "no free line now ({}); try again shortly",
                full.join("; ")
            )));
        };
        let call = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO dialer_manual_calls (call_id, tenant_id, phone, line_id, state, requested_at)
             VALUES ($1, $2, $3, $4, 1, now())",
        )
        .bind(call)
        .bind(d.tenant)
        .bind(d.phone)
        .bind(&dial.line_id)
        .execute(&mut *tx)
        .await?;
        self.lines_dialed(&mut tx, &[(d.tenant, dial.line_id.as_str())], &paces, now)
            .await?;
        add_tenant_usage(&mut tx, &[d.tenant], 1).await?;
        count_number_days(&mut tx, &[d.tenant], &[d.phone.to_string()]).await?;
        let meta = EventMeta::new(d.tenant, Aggregate::Call(call), 1)
            .with_deterministic_id(&format!("call/{call}/requested"));
        let e = Event::CallRequested(pb::CallRequested {
            call_id: call.to_string(),
            phone: d.phone.to_string(),
            line_id: dial.line_id.clone(),
            attempt: 1,
            customer_id: d.customer_id.to_string(),
            customer_name: d.customer_name.to_string(),
            order_id: d.order_id.to_string(),
            requested_by: d.requested_by.to_string(),
            caller_number: dial.caller_number.clone(),
            ..Default::default()
        });
        self.outbox
            .push(
                &mut tx,
                &[(RecordedEvent::new(meta, e), Expect::LastSubjectSeq(0))],
            )
            .await
            .map_err(DialerError::Store)?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(Placed {
            call_id: call,
            line_id: dial.line_id,
        })
    }

    /// Settles released manual calls: frees their line slot and tenant call. Returns how many
    /// were still out.
    pub(crate) async fn release_manual(
        &self,
        tx: &mut waihu_store::Tx<'_>,
        calls: &[Uuid],
    ) -> Result<Vec<(String, String)>, DialerError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "UPDATE dialer_manual_calls SET state = 2, released_at = now()
             WHERE call_id = ANY($1) AND state = 1 RETURNING tenant_id, line_id",
        )
        .bind(calls)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Drops manual calls released more than a day ago.
    pub async fn prune_manual_calls(&self) -> Result<u64, DialerError> {
        let done = sqlx::query(
            "DELETE FROM dialer_manual_calls WHERE state = 2 AND released_at < now() - interval '1 day'",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
