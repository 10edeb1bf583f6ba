//! Calls whose release never came. A contact is active until its call is released; if the
//! provider lost the call (crashed past its redelivery budget, or the command was dead-lettered),
//! the contact would wait forever. After `call_timeout` the watchdog looks at the call's subject:
//! a `CallReleased` there that the dialer missed is applied; otherwise the dialer declares the
//! call dead with a `CallReleased` (Q.850 102, recovery on timer expiry) published with the
//! subject's last sequence expected, so a provider that wakes up later cannot add to it.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use waihu_bus::{Bus, BusError, Expect};
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_telephony::hangup;

use crate::db::{release_of, Db};

pub async fn run(
    db: Db,
    bus: Bus,
    call_timeout: Duration,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let every = (call_timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = db.prune_number_days().await {
            warn!(error = %e, "cannot prune the per-number day counts");
        }
        if let Err(e) = db.prune_manual_calls().await {
            warn!(error = %e, "cannot prune released manual calls");
        }
        if let Err(e) = db.prune_line_seconds().await {
            warn!(error = %e, "cannot prune the per-line second counts");
        }
        let stuck = match db.calls_out_since(call_timeout).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "watchdog cannot list calls");
                continue;
            }
        };
        for (call, tenant, task) in stuck {
            match settle(&db, &bus, call, &tenant, task).await {
                Ok(()) => wake.notify_one(),
                Err(e) => warn!(%call, error = %e, "watchdog could not settle a call; will retry"),
            }
        }
    }
}

async fn settle(
    db: &Db,
    bus: &Bus,
    call: Uuid,
    tenant: &str,
    task: Option<Uuid>,
) -> Result<(), String> {
    let subject = bus.subject(&Aggregate::Call(call));
    let Some((seq, last)) = bus
        .last_event_on_subject(&subject)
        .await
        .map_err(|e| e.to_string())?
    else {
        // The request itself is not on the bus yet (still in the outbox): nothing to judge.
        return Ok(());
    };
    let last = last.map_err(|e| format!("last event on {subject} is unreadable: {e}"))?;
    if let Some(release) = release_of(&last).map_err(|e| e.to_string())? {
        info!(%call, "watchdog applies a release the dialer missed");
        return db
            .apply_released(&[release])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let contact_no = match &last.event {
        Event::CallRequested(r) => r.contact_no,
        Event::CallDialing(r) => r.contact_no,
        Event::CallRinging(r) => r.contact_no,
        Event::CallAnswered(r) => r.contact_no,
        _ => return Err(format!("unexpected {} on {subject}", last.type_name())),
    };
    let answered = matches!(last.event, Event::CallAnswered(_));
    let mut meta = EventMeta::new(tenant, Aggregate::Call(call), last.meta.stream_version + 1)
        .with_deterministic_id(&format!("call/{call}/timeout"))
        .caused_by(&last);
    if let Some(task) = task {
        meta = meta.with_task(task);
    }
    let event = RecordedEvent::new(
        meta,
        Event::CallReleased(pb::CallReleased {
            call_id: call.to_string(),
            task_id: task.map(|t| t.to_string()).unwrap_or_default(),
            contact_no,
            cause: Some(hangup::cause(102, "waihu:call-timeout")),
            answered,
            ring_ms: 0,
            talk_ms: 0,
            ..Default::default()
        }),
    );
    warn!(%call, last = last.type_name(), "call out too long: declared released by the watchdog");
    match bus.publish(&event, Expect::LastSubjectSeq(seq)).await {
        // The dialer's own release consumer applies it like any other release.
        Ok(_) => Ok(()),
        // The call moved on meanwhile: the next round looks again.
        Err(BusError::WrongLastSequence { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
