//! Events as the services produce them, for tests and benchmarks.

use uuid::Uuid;

/// One call as the dialer and a provider report it: `CallRequested`, `CallDialing`,
/// `CallRinging`, `CallAnswered` (when answered) and `CallReleased` (SIP 200 when answered, else
/// 486), with the deterministic ids the call ledger gives them.
#[allow(clippy::too_many_arguments)]
pub fn call_lifecycle(
    tenant: &str,
    task: Uuid,
    call: Uuid,
    contact_no: u32,
    attempt: u32,
    answered: bool,
    ring_ms: u64,
    talk_ms: u64,
) -> Vec<waihu_events::RecordedEvent> {
    use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
    let (c, t) = (call.to_string(), task.to_string());
    let mut events = vec![
        Event::CallRequested(pb::CallRequested {
            call_id: c.clone(),
            task_id: t.clone(),
            contact_no,
            phone: format!("+86138{contact_no:08}"),
            line_id: "sim-1".into(),
            attempt,
            ..Default::default()
        }),
        Event::CallDialing(pb::CallDialing {
            call_id: c.clone(),
            task_id: t.clone(),
            contact_no,
            provider_call_id: c.clone(),
            ..Default::default()
        }),
        Event::CallRinging(pb::CallRinging {
            call_id: c.clone(),
            task_id: t.clone(),
            contact_no,
            ..Default::default()
        }),
    ];
    if answered {
        events.push(Event::CallAnswered(pb::CallAnswered {
            call_id: c.clone(),
            task_id: t.clone(),
            contact_no,
            ..Default::default()
        }));
    }
    events.push(Event::CallReleased(pb::CallReleased {
        call_id: c,
        task_id: t,
        contact_no,
        cause: Some(waihu_telephony::hangup::from_sip(if answered {
            200
        } else {
            486
        })),
        answered,
        ring_ms,
        talk_ms,
        ..Default::default()
    }));
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let v = i as u64 + 1;
            let meta = EventMeta::new(tenant, Aggregate::Call(call), v)
                .with_deterministic_id(&format!("call/{call}/{v}"))
                .with_task(task);
            RecordedEvent::new(meta, e)
        })
        .collect()
}
