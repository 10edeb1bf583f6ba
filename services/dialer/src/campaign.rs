//! Provider-campaign mode (seed 001): a task with `campaign_size` N > 0 is not dialed call by
//! call. Each round, a running such task with contacts due and no campaign out hands over up
//! to N of them (in due order, after the do-not-call and screened-invalid check, the
//! per-number daily limit and the calling window, as for any call) as one campaign: a
//! `CallRequested` per contact carrying the campaign's id and size, on the task's caller line
//! (its first, or the tenant's first line). The tenant's entitlements cap a campaign as they
//! cap calls (a campaign's calls count as the tenant's calls out until released). The provider adapter creates the campaign at the
//! provider and syncs its results back as the calls' events; each release comes back through
//! `apply_released` like any call's (recall or finish). Once every call of a campaign is
//! released, the next round hands over the next one: the roll-over. A contact is handed over
//! only from state 0 to 1 under its row lock, so never twice.

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_telephony::window::Window;

use crate::db::{
    add_tenant_usage, calls_today, close_until, count_number_days, defer, finished_event,
    in_task_trace, line_zone, task_window, tenant_allowances, Db, Decisions, DialerError, RUNNING,
};
use crate::planner::caller_lines;

/// Tasks looked at per round at most.
const TASKS_PER_ROUND: i64 = 20;

/// No campaign is handed over less than this before its calling window closes.
const MIN_CAMPAIGN_WINDOW: chrono::Duration = chrono::Duration::seconds(15);

/// Releases of a contact's calls as never placed given back as attempts at most; later ones
/// are charged, so a provider that never reaches a number cannot loop forever.
pub const MAX_UNPLACED: i16 = 3;

/// How long a call handed over in a campaign may stay out before the dialer's watchdog
/// settles it (released as lost, so its contact is not held forever by a campaign that went
/// missing): the provider paces a campaign, so its calls may wait hours for their turn.
pub const CAMPAIGN_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3 * 86_400);

#[derive(sqlx::FromRow)]
struct CampaignTask {
    task_id: Uuid,
    tenant_id: String,
    caller_line: String,
    daily_call_limit: i32,
    window_spec: Option<Vec<u8>>,
    window_zone: String,
    campaign_size: i32,
    traceparent: String,
    tracestate: String,
}

impl Db {
    /// Hands over the next campaign of every running campaign-mode task that has contacts due
    /// and none out: the calls handed over plus the contacts finished without a call.
    pub async fn campaign_round(&self, default_window: &Window) -> Result<usize, DialerError> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        // Locked against a pause or cancel committed meanwhile: one waits for this round, and
        // a task whose status changed first is not picked.
        let tasks: Vec<CampaignTask> = sqlx::query_as(
            "SELECT t.task_id, t.tenant_id, t.caller_line, t.daily_call_limit, t.window_spec,
                    t.window_zone, t.campaign_size, t.traceparent, t.tracestate
             FROM dialer_tasks t
             -- One probe of the due index per task, as in the dial round (see there).
             CROSS JOIN LATERAL (SELECT 1 FROM dialer_contacts c
                                 WHERE c.task_id = t.task_id AND c.state = 0 AND c.next_at <= now()
                                 ORDER BY c.next_at, c.contact_no LIMIT 1) due
             WHERE t.status = $1 AND t.campaign_size > 0
               AND (t.not_before IS NULL OR t.not_before <= now())
               AND (t.closed_until IS NULL OR t.closed_until <= now())
               AND NOT EXISTS (SELECT 1 FROM dialer_contacts c
                               WHERE c.task_id = t.task_id AND c.state = 1
                                 AND c.campaign_id IS NOT NULL)
             ORDER BY t.priority DESC, random()
             LIMIT $2 FOR SHARE OF t SKIP LOCKED",
        )
        .bind(RUNNING)
        .bind(TASKS_PER_ROUND)
        .fetch_all(&mut *tx)
        .await?;
        if tasks.is_empty() {
            return Ok(0);
        }
        let mut out: Vec<(RecordedEvent, Expect)> = Vec::new();
        let mut handed = 0usize;
        let mut planned_now: HashMap<(String, String), i32> = HashMap::new();
        let mut decisions = Decisions::default();
        // The tenants' entitlements hold for campaigns too: automatic dialing on and not
        // expired, and the calls they may still place now (a campaign's calls count as the
        // tenant's calls out until released, and towards its calls today).
        let mut tenants: Vec<&str> = tasks.iter().map(|t| t.tenant_id.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let mut allowance = tenant_allowances(&mut tx, &tenants).await?;
        for t in tasks {
            let window: Window = task_window(t.window_spec.as_deref(), default_window);
            let zone = line_zone(&t.window_zone);
            if !window.is_open(now, zone) {
                // Passed over until its next opening (as the dial round does).
                let until = window
                    .next_open(now, zone)
                    .unwrap_or(now + chrono::Duration::days(1));
                close_until(&mut tx, t.task_id, until).await?;
                continue;
            }
            // A window about to close is left for its next opening: a campaign needs time.
            let until = window.closes_after(now, zone);
            if let Some(u) = until.filter(|u| *u - now < MIN_CAMPAIGN_WINDOW) {
                close_until(&mut tx, t.task_id, u).await?;
                continue;
            }
            let size = match allowance.get(&t.tenant_id) {
                Some(0) => continue,
                Some(left) => (*left).min(t.campaign_size.max(1) as u32),
                None => t.campaign_size.max(1) as u32,
            };
            // The task's caller line, else the tenant's first line.
            let named = caller_lines(&t.caller_line);
            let line: Option<(String, String)> = sqlx::query_as(
                "SELECT line_id, caller_number FROM dialer_lines
                 WHERE tenant_id = $1 AND known AND enabled
                   AND (cardinality($2::text[]) = 0 OR line_id = ANY($2))
                 ORDER BY array_position($2::text[], line_id), line_id LIMIT 1",
            )
            .bind(&t.tenant_id)
            .bind(&named)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((line_id, caller_number)) = line else {
                tracing::debug!(task = %t.task_id, "campaign task without an enabled line: waits");
                continue;
            };
            let due: Vec<(i32, String, i32)> = sqlx::query_as(
                "SELECT contact_no, phone, attempts FROM dialer_contacts
                 WHERE task_id = $1 AND state = 0 AND next_at <= now()
                 ORDER BY next_at, contact_no LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(t.task_id)
            .bind(size as i64)
            .fetch_all(&mut *tx)
            .await?;
            let (bt, bp): (Vec<&str>, Vec<&str>) = due
                .iter()
                .map(|(_, p, _)| (t.tenant_id.as_str(), p.as_str()))
                .unzip();
            let blocked = crate::validity::not_to_call(&mut tx, &bt, &bp).await?;
            let today = if t.daily_call_limit > 0 {
                calls_today(&mut tx, &bt, &bp).await?
            } else {
                HashMap::new()
            };
            let mut stopped = Vec::new();
            let mut to_midnight = Vec::new();
            let mut go = Vec::with_capacity(due.len());
            for (no, phone, attempts) in due {
                let key = (t.tenant_id.clone(), phone);
                if let Some(outcome) = blocked.get(&key) {
                    stopped.push((t.task_id, no));
                    out.push(finished_event(
                        &t.tenant_id,
                        t.task_id,
                        no,
                        *outcome,
                        attempts,
                        None,
                    ));
                    decisions.finished_without_call(*outcome);
                    continue;
                }
                if t.daily_call_limit > 0 {
                    let calls = today.get(&key).copied().unwrap_or(0)
                        + planned_now.get(&key).copied().unwrap_or(0);
                    if calls >= t.daily_call_limit {
                        to_midnight.push((t.task_id, no));
                        decisions.daily_limit += 1;
                        continue;
                    }
                }
                *planned_now.entry(key.clone()).or_default() += 1;
                go.push((no, key.1, attempts));
            }
            defer(&mut tx, &[], &to_midnight, &stopped).await?;
            if go.is_empty() {
                continue;
            }
            let campaign = Uuid::now_v7();
            let size = go.len() as u32;
            // The provider places the campaign's calls only while its window is open.
            let until = until.map(waihu_events::timestamp);
            let (mut u_no, mut u_call, mut u_phone) = (vec![], vec![], vec![]);
            let trace = (t.traceparent.clone(), t.tracestate.clone());
            for (no, phone, attempts) in go {
                let call = Uuid::now_v7();
                let meta = EventMeta::new(&t.tenant_id, Aggregate::Call(call), 1)
                    .with_deterministic_id(&format!("call/{call}/requested"))
                    .with_task(t.task_id);
                let e = Event::CallRequested(pb::CallRequested {
                    call_id: call.to_string(),
                    task_id: t.task_id.to_string(),
                    contact_no: no as u32,
                    phone: phone.clone(),
                    line_id: line_id.clone(),
                    attempt: attempts as u32 + 1,
                    caller_number: caller_number.clone(),
                    campaign_id: campaign.to_string(),
                    campaign_calls: size,
                    campaign_until: until,
                    ..Default::default()
                });
                out.push((
                    in_task_trace(&trace, &call, meta, e),
                    Expect::LastSubjectSeq(0),
                ));
                u_no.push(no);
                u_call.push(call);
                u_phone.push(phone);
            }
            sqlx::query(
                "UPDATE dialer_contacts c SET state = 1, attempts = c.attempts + 1,
                        active_call_id = u.call, line_id = NULL, campaign_id = $2,
                        dialed_at = now()
                 FROM UNNEST($3::int[], $4::uuid[]) AS u(n, call)
                 WHERE c.task_id = $1 AND c.contact_no = u.n",
            )
            .bind(t.task_id)
            .bind(campaign)
            .bind(&u_no)
            .bind(&u_call)
            .execute(&mut *tx)
            .await?;
            let tenants: Vec<&str> = vec![t.tenant_id.as_str(); u_phone.len()];
            count_number_days(&mut tx, &tenants, &u_phone).await?;
            add_tenant_usage(&mut tx, &tenants, 1).await?;
            if let Some(left) = allowance.get_mut(&t.tenant_id) {
                *left = left.saturating_sub(u_no.len() as u32);
            }
            handed += u_no.len();
            tracing::info!(task = %t.task_id, %campaign, calls = size, line = %line_id,
                           "campaign handed over");
        }
        let n = out.len();
        self.outbox.push(&mut tx, &out).await?;
        tx.commit().await?;
        if n > 0 {
            self.outbox.wake();
        }
        decisions.handed_over = handed as u64;
        decisions.record();
        Ok(n)
    }
}
