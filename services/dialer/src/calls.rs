//! A call's live state and hang-up, read from and written to the call's own subject (its
//! lifecycle events on JetStream), so they are exact the moment a provider reports.
//!
//! Hang-up publishes the call's `CallReleased` (Q.850 16, raw `waihu:hangup`) with the
//! subject's last sequence expected, the way the watchdog declares a lost call released: a
//! provider that reports later cannot add to the call, and its own ledger stops at that
//! release. The provider adapters are also told on `<prefix>.ctl.hangup.<call>` (core NATS)
//! so the one playing the call drops it at once.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waihu_bus::{Bus, BusError, Expect};
use waihu_events::{pb, timestamp as to_timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_proto::v1 as api;
use waihu_telephony::hangup;

use crate::db::Db;

/// Events a call's subject holds at most (requested, dialing, ringing, answered, released).
const HISTORY: usize = 16;

/// What the subject says about a call.
#[derive(Default)]
struct Seen {
    tenant: String,
    task: Option<Uuid>,
    contact_no: u32,
    phone: String,
    line_id: String,
    customer_id: String,
    order_id: String,
    caller_number: String,
    requested: Option<DateTime<Utc>>,
    ringing: bool,
    answered: Option<DateTime<Utc>>,
    released: Option<(DateTime<Utc>, pb::CallReleased)>,
    last: Option<RecordedEvent>,
    last_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("call {0} not found")]
    NotFound(Uuid),
    #[error("{0}")]
    Bus(#[from] BusError),
    #[error("{0}")]
    Unreadable(String),
    #[error("call {0} keeps moving; try again")]
    Busy(Uuid),
}

/// A call the dialer placed whose request is not on the bus yet (still in its outbox): what
/// the dialer itself knows of it.
async fn placed(db: &Db, tenant: &str, call: Uuid) -> Result<Option<Seen>, CallError> {
    type Row = (String, String, DateTime<Utc>, Option<Uuid>, i32);
    let row: Option<Row> = sqlx::query_as(
        "SELECT phone, line_id, requested_at, NULL::uuid, 0 FROM dialer_manual_calls
         WHERE call_id = $1 AND tenant_id = $2
         UNION ALL
         SELECT c.phone, coalesce(c.line_id, ''), coalesce(c.dialed_at, now()), c.task_id,
                c.contact_no
         FROM dialer_contacts c JOIN dialer_tasks t USING (task_id)
         WHERE c.active_call_id = $1 AND c.state = 1 AND t.tenant_id = $2",
    )
    .bind(call)
    .bind(tenant)
    .fetch_optional(&db.pool)
    .await
    .map_err(|e| CallError::Unreadable(e.to_string()))?;
    Ok(row.map(|(phone, line_id, at, task, no)| Seen {
        tenant: tenant.to_string(),
        task,
        contact_no: no.max(0) as u32,
        phone,
        line_id,
        requested: Some(at),
        ..Seen::default()
    }))
}

/// The call's subject, or (while its request waits in the outbox) what the dialer knows.
async fn read_or_placed(db: &Db, bus: &Bus, call: Uuid, tenant: &str) -> Result<Seen, CallError> {
    match read(bus, call, tenant).await {
        Err(CallError::NotFound(_)) => placed(db, tenant, call)
            .await?
            .ok_or(CallError::NotFound(call)),
        other => other,
    }
}

async fn read(bus: &Bus, call: Uuid, tenant: &str) -> Result<Seen, CallError> {
    let subject = bus.subject(&Aggregate::Call(call));
    let mut seen = Seen::default();
    for (seq, e) in bus.events_on_subject(&subject, HISTORY).await? {
        let e = e.map_err(|e| CallError::Unreadable(format!("{subject}: {e}")))?;
        seen.tenant = e.meta.tenant_id.clone();
        seen.task = e.meta.task_id;
        let at = e.meta.occurred_at;
        match &e.event {
            Event::CallRequested(r) => {
                seen.requested = Some(at);
                seen.contact_no = r.contact_no;
                seen.phone = r.phone.clone();
                seen.line_id = r.line_id.clone();
                seen.customer_id = r.customer_id.clone();
                seen.order_id = r.order_id.clone();
                seen.caller_number = r.caller_number.clone();
            }
            Event::CallRinging(_) => seen.ringing = true,
            Event::CallAnswered(_) => seen.answered = Some(at),
            Event::CallReleased(r) if seen.released.is_none() => {
                seen.released = Some((at, r.clone()));
            }
            _ => {}
        }
        seen.last_seq = seq;
        seen.last = Some(e);
    }
    // Another tenant's call is as absent as one never made.
    if seen.last.is_none() || seen.tenant != tenant {
        return Err(CallError::NotFound(call));
    }
    Ok(seen)
}

/// Where `call` of `tenant` is now.
pub async fn status(
    db: &Db,
    bus: &Bus,
    tenant: &str,
    call: Uuid,
) -> Result<api::CallStatus, CallError> {
    let s = read_or_placed(db, bus, call, tenant).await?;
    let now = Utc::now();
    let (state, duration) = match (&s.released, s.answered) {
        (Some((_, r)), _) => ("ended", r.talk_ms.saturating_add(500) / 1000),
        (None, Some(at)) => ("connected", (now - at).num_seconds().max(0) as u64),
        (None, None) if s.ringing => ("ringing", 0),
        _ => ("calling", 0),
    };
    let cause = s.released.as_ref().and_then(|(_, r)| r.cause.clone());
    Ok(api::CallStatus {
        call_id: call.to_string(),
        status: state.into(),
        duration_seconds: duration.min(u32::MAX as u64) as u32,
        start_time: s.requested.map(to_timestamp),
        answered_at: s.answered.map(to_timestamp),
        ended_at: s.released.as_ref().map(|(at, _)| to_timestamp(*at)),
        phone: s.phone,
        line_id: s.line_id,
        task_id: s.task.map(|t| t.to_string()).unwrap_or_default(),
        contact_no: s.contact_no,
        cause_q850: cause.as_ref().map_or(0, |c| c.q850),
        cause_name: cause.map(|c| c.name).unwrap_or_default(),
        customer_id: s.customer_id,
        order_id: s.order_id,
        caller_number: s.caller_number,
    })
}

/// The subject provider adapters hear hang-ups on.
pub fn hangup_subject(bus: &Bus, call: Uuid) -> String {
    format!("{}.ctl.hangup.{call}", bus.prefix())
}

/// Ends `call` of `tenant` now; false when it had already ended.
pub async fn hang_up(
    db: &Db,
    bus: &Bus,
    tenant: &str,
    call: Uuid,
    actor: &str,
) -> Result<bool, CallError> {
    for _ in 0..50 {
        let s = read_or_placed(db, bus, call, tenant).await?;
        if s.released.is_some() {
            return Ok(false);
        }
        let Some(last) = s.last else {
            // Placed, its request not yet relayed (milliseconds): the release must follow it.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let now = Utc::now();
        let talk_ms = s
            .answered
            .map_or(0, |at| (now - at).num_milliseconds().max(0) as u64);
        let mut meta = EventMeta::new(tenant, Aggregate::Call(call), last.meta.stream_version + 1)
            .with_deterministic_id(&format!("call/{call}/hangup"))
            .caused_by(&last);
        if let Some(task) = s.task {
            meta = meta.with_task(task);
        }
        let event = RecordedEvent::new(
            meta,
            Event::CallReleased(pb::CallReleased {
                call_id: call.to_string(),
                task_id: s.task.map(|t| t.to_string()).unwrap_or_default(),
                contact_no: s.contact_no,
                cause: Some(hangup::cause(16, format!("waihu:hangup by {actor}"))),
                answered: s.answered.is_some(),
                ring_ms: 0,
                talk_ms,
                ..Default::default()
            }),
        );
        match bus
            .publish(&event, Expect::LastSubjectSeq(s.last_seq))
            .await
        {
            Ok(_) => {
                // Best effort: the release already stands; the adapter playing the call stops
                // at its next report if this is lost.
                let _ = bus
                    .client()
                    .publish(hangup_subject(bus, call), call.to_string().into())
                    .await;
                tracing::info!(%call, %actor, "call hung up");
                return Ok(true);
            }
            // The call moved on meanwhile: look again.
            Err(BusError::WrongLastSequence { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CallError::Busy(call))
}
