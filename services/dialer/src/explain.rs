//! `ExplainContact`: why a contact is not being called now, from the same state and rules the
//! dial round uses. The rules are checked in the order a round applies them, so the reason given
//! is the first one holding the contact back.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waihu_events::{pb, timestamp};

use crate::{
    db::{
        line_zone, task_window, tenant_allowances, Db, DialerError, LineRow, RoundRules,
        TENANT_TODAY,
    },
    planner::caller_lines,
};

#[derive(sqlx::FromRow)]
struct Row {
    state: i16,
    attempts: i32,
    next_at: DateTime<Utc>,
    phone: String,
    zone: Option<String>,
    active_call_id: Option<Uuid>,
    dialed_at: Option<DateTime<Utc>>,
    tenant_id: String,
    status: i16,
    not_before: Option<DateTime<Utc>>,
    window_spec: Option<Vec<u8>>,
    window_zone: String,
    daily_call_limit: i32,
    caller_line: String,
    number_city_limit: bool,
}

struct Why {
    state: &'static str,
    reason: &'static str,
    detail: String,
    until: Option<DateTime<Utc>>,
}

fn why(state: &'static str, reason: &'static str, detail: String) -> Why {
    Why {
        state,
        reason,
        detail,
        until: None,
    }
}

impl Db {
    /// Why contact `no` of `task` (of `tenant`) is where it is; None when the tenant has no
    /// such contact.
    pub async fn explain(
        &self,
        tenant: &str,
        task: Uuid,
        no: i32,
        rules: &RoundRules,
    ) -> Result<Option<pb::ContactExplanation>, DialerError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT c.state, c.attempts, c.next_at, c.phone, c.zone, c.active_call_id, c.dialed_at,
                    t.tenant_id, t.status, t.not_before, t.window_spec, t.window_zone,
                    t.daily_call_limit, t.caller_line, t.number_city_limit
             FROM dialer_contacts c JOIN dialer_tasks t USING (task_id)
             WHERE c.task_id = $1 AND c.contact_no = $2 AND t.tenant_id = $3",
        )
        .bind(task)
        .bind(no)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let now = Utc::now();
        let w = self.why(&mut tx, &r, task, no, now, rules).await?;
        tx.commit().await?;
        Ok(Some(pb::ContactExplanation {
            task_id: task.to_string(),
            contact_no: no as u32,
            state: w.state.into(),
            reason: w.reason.into(),
            detail: w.detail,
            until: w.until.map(timestamp),
            attempts: r.attempts.max(0) as u32,
        }))
    }

    async fn why(
        &self,
        tx: &mut waihu_store::Tx<'_>,
        r: &Row,
        task: Uuid,
        no: i32,
        now: DateTime<Utc>,
        rules: &RoundRules,
    ) -> Result<Why, DialerError> {
        if r.state == 2 {
            return Ok(why(
                "finished",
                "FINISHED",
                format!("finished after {} calls", r.attempts),
            ));
        }
        if r.state == 1 {
            let since = r.dialed_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            return Ok(why(
                "calling",
                "CALL_OUT",
                format!(
                    "call {} is out since {since}",
                    r.active_call_id.map(|c| c.to_string()).unwrap_or_default()
                ),
            ));
        }
        let due = r.next_at <= now;
        let state = if due { "due" } else { "waiting" };
        let running = pb::TaskStatus::Running as i16;
        if r.status != running {
            let status = pb::TaskStatus::try_from(r.status as i32)
                .map(|s| s.as_str_name())
                .unwrap_or("unknown");
            return Ok(why(
                state,
                "TASK_NOT_RUNNING",
                format!("its task is {status}: only running tasks dial"),
            ));
        }
        if let Some(at) = r.not_before.filter(|at| *at > now) {
            let mut w = why(
                state,
                "NOT_STARTED_YET",
                format!("its task is scheduled to start at {}", at.to_rfc3339()),
            );
            w.until = Some(at);
            return Ok(w);
        }
        let allowance = tenant_allowances(tx, &[r.tenant_id.as_str()]).await?;
        if allowance.get(&r.tenant_id) == Some(&0) {
            return Ok(why(
                state,
                "TENANT_LIMIT",
                format!(
                    "tenant {}'s entitlements allow no more calls now (automatic dialing off or \
                     expired, or its concurrent or daily calls used up)",
                    r.tenant_id
                ),
            ));
        }
        let held =
            crate::validity::not_to_call(tx, &[r.tenant_id.as_str()], &[r.phone.as_str()]).await?;
        match held.values().next() {
            Some(pb::ContactOutcome::DoNotCall) => {
                return Ok(why(
                    state,
                    "DO_NOT_CALL",
                    "the number is on a do-not-call list: it finishes as DO_NOT_CALL when next \
                     due"
                    .into(),
                ))
            }
            Some(_) => {
                return Ok(why(
                    state,
                    "SCREENED_INVALID",
                    "the number was screened invalid (or marked so): it finishes as \
                     INVALID_NUMBER when next due"
                        .into(),
                ))
            }
            None => {}
        }
        let window = task_window(r.window_spec.as_deref(), &rules.default_window);
        let zone = r
            .zone
            .as_deref()
            .map_or_else(|| line_zone(&r.window_zone), line_zone);
        if !window.is_open(now, zone) {
            let mut w = why(
                state,
                "WINDOW_CLOSED",
                format!(
                    "its calling window is closed on the callee's clock ({})",
                    zone.name()
                ),
            );
            w.until = window.next_open(now, zone);
            return Ok(w);
        }
        if r.daily_call_limit > 0 {
            let today: i32 = sqlx::query_scalar(&format!(
                "SELECT coalesce((SELECT calls FROM dialer_number_days
                     WHERE tenant_id = $1 AND phone = $2 AND day = {TENANT_TODAY}), 0)"
            ))
            .bind(&r.tenant_id)
            .bind(&r.phone)
            .fetch_one(&mut **tx)
            .await?;
            if today >= r.daily_call_limit {
                let mut w = why(
                    state,
                    "DAILY_LIMIT",
                    format!(
                        "the number got {today} calls today, its task's daily limit is {}",
                        r.daily_call_limit
                    ),
                );
                w.until = Some(r.next_at.max(now));
                return Ok(w);
            }
        }
        if !due {
            let mut w = why(
                state,
                if r.attempts > 0 {
                    "RETRY_LATER"
                } else {
                    "NOT_STARTED_YET"
                },
                if r.attempts > 0 {
                    format!(
                        "call {} is due at {}",
                        r.attempts + 1,
                        r.next_at.to_rfc3339()
                    )
                } else {
                    format!("due at {}", r.next_at.to_rfc3339())
                },
            );
            w.until = Some(r.next_at);
            return Ok(w);
        }
        // Due now: is there a line for it?
        let wanted = caller_lines(&r.caller_line);
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT tenant_id, line_id, in_flight, max_concurrent, cps, pace_at, daily_cap,
                    time_zone, day, day_calls, province, city, enabled, caller_number
             FROM dialer_lines WHERE tenant_id = $1 AND known AND enabled ORDER BY line_id",
        )
        .bind(&r.tenant_id)
        .fetch_all(&mut **tx)
        .await?;
        let usable: Vec<&LineRow> = lines
            .iter()
            .filter(|l| wanted.is_empty() || wanted.contains(&l.line_id))
            .collect();
        if usable.is_empty() {
            return Ok(why(
                state,
                "NO_LINE",
                if wanted.is_empty() {
                    format!("tenant {} has no enabled line", r.tenant_id)
                } else {
                    format!(
                        "none of its task's lines ({}) is enabled",
                        wanted.join(", ")
                    )
                },
            ));
        }
        let usable: Vec<&LineRow> = if r.number_city_limit {
            let city = waihu_telephony::region::region_of(&r.phone).map(|g| g.city);
            let near: Vec<&LineRow> = usable
                .into_iter()
                .filter(|l| !l.city.is_empty() && Some(l.city.as_str()) == city)
                .collect();
            if near.is_empty() {
                return Ok(why(
                    state,
                    "NO_LINE_IN_CITY",
                    format!(
                        "its task dials only numbers in a line's city and none of its lines is in \
                         {}",
                        city.unwrap_or("the number's city (unknown)")
                    ),
                ));
            }
            near
        } else {
            usable
        };
        let busy: Vec<String> = usable
            .iter()
            .filter_map(|l| {
                let (free, _, held) = l.free(now, rules.burst);
                (free == 0).then(|| format!("line {}: {held}", l.line_id))
            })
            .collect();
        if busy.len() == usable.len() {
            return Ok(why(state, "LINES_BUSY", busy.join("; ")));
        }
        let ahead: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dialer_contacts
             WHERE task_id = $1 AND state = 0 AND next_at <= now()
               AND (next_at, contact_no) < ($2, $3)",
        )
        .bind(task)
        .bind(r.next_at)
        .bind(no)
        .fetch_one(&mut **tx)
        .await?;
        Ok(why(
            state,
            "NEXT_IN_LINE",
            format!(
                "due and a line is free: {ahead} of its task's contacts are due before it; tasks \
                 share lines by priority"
            ),
        ))
    }
}
