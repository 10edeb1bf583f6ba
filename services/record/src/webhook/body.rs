//! What a delivery's body says: one JSON object per event,
//! `{delivery_id, event, event_id, tenant_id, occurred_at, data}`, with snake_case fields as the
//! seed 000 business side reads them. The body is built once, when the delivery is made, and
//! every attempt sends the same bytes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;
use waihu_events::{Event, RecordedEvent};
use waihu_proto::v1 as pb;

/// A call ended (answered or not), with its record: every attempt of every contact.
pub const CALL_RELEASED: &str = "call.released";
/// A contact is done with: its final outcome after every allowed attempt.
pub const CONTACT_FINISHED: &str = "contact.finished";
/// A task started, paused, resumed, was cancelled or completed.
pub const TASK_STATUS: &str = "task.status";
/// A conversation's analysis completed (the analysis service; again after a reanalysis).
pub const ANALYSIS_COMPLETED: &str = "analysis.completed";
/// The body `TestWebhook` sends.
pub const TEST: &str = "webhook.test";

/// The stored event types a webhook can be made from.
pub const STORE_TYPES: &[&str] = &[
    "CallReleased",
    "ContactFinished",
    "TaskStarted",
    "TaskPaused",
    "TaskResumed",
    "TaskCancelled",
    "TaskCompleted",
    "AnalysisCompleted",
];

/// The webhook event type an event makes, if any.
pub fn kind(e: &Event) -> Option<&'static str> {
    Some(match e {
        Event::CallReleased(_) => CALL_RELEASED,
        Event::ContactFinished(_) => CONTACT_FINISHED,
        Event::TaskStarted(_)
        | Event::TaskPaused(_)
        | Event::TaskResumed(_)
        | Event::TaskCancelled(_)
        | Event::TaskCompleted(_) => TASK_STATUS,
        Event::AnalysisCompleted(_) => ANALYSIS_COMPLETED,
        _ => return None,
    })
}

/// What the call's record adds to a call or contact body.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct CallFacts {
    pub call_id: Uuid,
    pub record_no: Option<i64>,
    pub phone: Option<String>,
    pub attempt: Option<i32>,
    pub line_id: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
}

/// The call a body needs the record of, if any.
pub fn call_of(e: &Event) -> Option<Uuid> {
    match e {
        Event::CallReleased(r) => r.call_id.parse().ok(),
        Event::ContactFinished(f) => f.last_call_id.parse().ok(),
        Event::AnalysisCompleted(a) => a.call_id.parse().ok(),
        _ => None,
    }
}

fn time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

/// `CONTACT_OUTCOME_ANSWERED` → `answered`.
fn outcome_name(o: i32) -> String {
    pb::ContactOutcome::try_from(o)
        .unwrap_or(pb::ContactOutcome::Unspecified)
        .as_str_name()
        .trim_start_matches("CONTACT_OUTCOME_")
        .to_ascii_lowercase()
}

/// The body of the delivery `delivery_id` of `e`; None for an event no webhook is made from.
pub fn body(delivery_id: Uuid, e: &RecordedEvent, call: Option<&CallFacts>) -> Option<String> {
    let kind = kind(&e.event)?;
    let data = match &e.event {
        Event::CallReleased(r) => {
            let cause = r.cause.clone().unwrap_or_default();
            json!({
                "call_id": r.call_id,
                "record_no": call.and_then(|c| c.record_no),
                "task_id": r.task_id,
                "contact_no": r.contact_no,
                "phone": call.and_then(|c| c.phone.clone()),
                "attempt": call.and_then(|c| c.attempt),
                "line_id": call.and_then(|c| c.line_id.clone()),
                "answered": r.answered,
                "ring_seconds": r.ring_ms as f64 / 1000.0,
                "talk_seconds": r.talk_ms as f64 / 1000.0,
                "requested_at": time(call.and_then(|c| c.requested_at)),
                "answered_at": time(call.and_then(|c| c.answered_at)),
                "released_at": time(Some(e.meta.occurred_at)),
                "hangup_cause": {"q850": cause.q850, "name": cause.name, "raw": cause.raw},
            })
        }
        Event::ContactFinished(f) => json!({
            "task_id": f.task_id,
            "contact_no": f.contact_no,
            "phone": call.and_then(|c| c.phone.clone()),
            "outcome": outcome_name(f.outcome),
            "attempts": f.attempts,
            "last_call_id": (!f.last_call_id.is_empty()).then_some(&f.last_call_id),
        }),
        Event::AnalysisCompleted(a) => json!({
            "call_id": a.call_id,
            "record_no": call.and_then(|c| c.record_no),
            "task_id": (!a.task_id.is_empty()).then_some(&a.task_id),
            "contact_no": a.contact_no,
            "phone": call.and_then(|c| c.phone.clone()),
            "intent": a.intent,
            "grade": a.grade,
            "sentiment": a.sentiment,
            "keywords": a.keywords,
            "summary": a.summary,
            "language": a.language,
            "analyzer": a.analyzer,
            "transcript_source": a.transcript_source,
        }),
        Event::TaskStarted(t) => task(&t.task_id, "started", "running", None),
        Event::TaskPaused(t) => task(&t.task_id, "paused", "paused", Some(&t.reason)),
        Event::TaskResumed(t) => task(&t.task_id, "resumed", "running", None),
        Event::TaskCancelled(t) => task(&t.task_id, "cancelled", "cancelled", Some(&t.reason)),
        Event::TaskCompleted(t) => {
            let mut v = task(&t.task_id, "completed", "completed", None);
            v["contacts_total"] = json!(t.contacts_total);
            v
        }
        _ => return None,
    };
    Some(envelope(
        delivery_id,
        kind,
        Some(e.meta.event_id),
        &e.meta.tenant_id,
        e.meta.occurred_at,
        data,
    ))
}

fn task(task_id: &str, change: &str, status: &str, reason: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("task_id".into(), json!(task_id));
    m.insert("change".into(), json!(change));
    m.insert("status".into(), json!(status));
    m.insert(
        "reason".into(),
        reason
            .filter(|r| !r.is_empty())
            .map_or(Value::Null, |r| json!(r)),
    );
    Value::Object(m)
}

/// The body `TestWebhook` sends.
pub fn test_body(delivery_id: Uuid, tenant: &str, webhook_id: Uuid) -> String {
    envelope(
        delivery_id,
        TEST,
        None,
        tenant,
        Utc::now(),
        json!({"webhook_id": webhook_id}),
    )
}

fn envelope(
    delivery_id: Uuid,
    kind: &str,
    event_id: Option<Uuid>,
    tenant: &str,
    at: DateTime<Utc>,
    data: Value,
) -> String {
    json!({
        "delivery_id": delivery_id,
        "event": kind,
        "event_id": event_id,
        "tenant_id": tenant,
        "occurred_at": time(Some(at)),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_events::{Aggregate, EventMeta};

    fn event(e: Event) -> RecordedEvent {
        RecordedEvent::new(
            EventMeta::new("acme", Aggregate::Task(Uuid::new_v4()), 1),
            e,
        )
    }

    #[test]
    fn a_released_call_carries_its_record_and_cause() {
        let call = Uuid::new_v4();
        let e = event(Event::CallReleased(pb::CallReleased {
            call_id: call.to_string(),
            task_id: "t".into(),
            contact_no: 7,
            cause: Some(pb::HangupCause {
                q850: 17,
                name: "USER_BUSY".into(),
                raw: "sip:486".into(),
            }),
            answered: false,
            ring_ms: 4500,
            talk_ms: 0,
            ..Default::default()
        }));
        let facts = CallFacts {
            call_id: call,
            record_no: Some(42),
            phone: Some("+8613800000001".into()),
            attempt: Some(2),
            ..Default::default()
        };
        let id = Uuid::new_v4();
        let v: Value =
            serde_json::from_str(&body(id, &e, Some(&facts)).expect("a body")).expect("JSON");
        assert_eq!(v["delivery_id"], id.to_string());
        assert_eq!(v["event"], CALL_RELEASED);
        assert_eq!(v["event_id"], e.meta.event_id.to_string());
        assert_eq!(v["tenant_id"], "acme");
        let d = &v["data"];
        assert_eq!(d["record_no"], 42);
        assert_eq!(d["phone"], "+8613800000001");
        assert_eq!(d["attempt"], 2);
        assert_eq!(d["ring_seconds"], 4.5);
        assert_eq!(d["hangup_cause"]["q850"], 17);
        assert_eq!(d["hangup_cause"]["raw"], "sip:486");
    }

    #[test]
    fn an_analysis_carries_what_the_conversation_said() {
        let e = event(Event::AnalysisCompleted(pb::AnalysisCompleted {
            call_id: "0191c3a0-0000-7000-8000-000000000001".into(),
            task_id: String::new(),
            contact_no: 3,
            intent: "interested".into(),
            grade: "A".into(),
            sentiment: "positive".into(),
            keywords: vec!["面试".into()],
            summary: "客户愿意周六面试。".into(),
            language: "zh".into(),
            transcript: "坐席：您好\n客户：可以".into(),
            analyzer: "local-rules-v1".into(),
            transcript_source: "sim".into(),
        }));
        assert_eq!(kind(&e.event), Some(ANALYSIS_COMPLETED));
        assert!(call_of(&e.event).is_some());
        let v: Value =
            serde_json::from_str(&body(Uuid::nil(), &e, None).expect("body")).expect("json");
        assert_eq!(v["event"], ANALYSIS_COMPLETED);
        assert_eq!(v["data"]["intent"], "interested");
        assert_eq!(v["data"]["grade"], "A");
        assert_eq!(v["data"]["task_id"], Value::Null);
        assert_eq!(v["data"]["keywords"][0], "面试");
        // The transcript stays out of the body.
        assert!(v["data"].get("transcript").is_none());
    }

    #[test]
    fn task_changes_and_contact_outcomes_are_named() {
        let e = event(Event::TaskPaused(pb::TaskPaused {
            task_id: "t".into(),
            reason: "bot expired".into(),
        }));
        let v: Value =
            serde_json::from_str(&body(Uuid::new_v4(), &e, None).expect("body")).expect("JSON");
        assert_eq!(v["event"], TASK_STATUS);
        assert_eq!(v["data"]["status"], "paused");
        assert_eq!(v["data"]["reason"], "bot expired");
        let e = event(Event::ContactFinished(pb::ContactFinished {
            task_id: "t".into(),
            contact_no: 3,
            outcome: pb::ContactOutcome::InvalidNumber as i32,
            attempts: 1,
            last_call_id: String::new(),
        }));
        let v: Value =
            serde_json::from_str(&body(Uuid::new_v4(), &e, None).expect("body")).expect("JSON");
        assert_eq!(v["data"]["outcome"], "invalid_number");
        assert_eq!(v["data"]["last_call_id"], Value::Null);
        let e = event(Event::TaskStarted(pb::TaskStarted {
            task_id: "t".into(),
        }));
        assert_eq!(kind(&e.event), Some(TASK_STATUS));
        assert!(STORE_TYPES.contains(&e.event.type_name()));
    }
}
