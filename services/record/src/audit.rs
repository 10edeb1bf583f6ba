//! Audit records of the record service's commands (webhooks, dead letters, the store). They go
//! onto the bus like every event, so the store keeps them with the rest of the trail. The
//! change they tell of is already made when they are published: a publish that fails three
//! times is logged in full at error level instead.

use std::time::Duration;

use tracing::error;
use waihu_bus::{Bus, Expect};

/// Publishes the audit record of `action` on `target` by `actor` in `tenant`.
pub async fn record(
    bus: Option<&Bus>,
    tenant: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) {
    let event = waihu_events::audit(tenant, actor, action, target, detail);
    let Some(bus) = bus else {
        return;
    };
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        match bus.publish(&event, Expect::Any).await {
            Ok(_) => return,
            Err(e) => last = e.to_string(),
        }
    }
    error!(event_id = %event.meta.event_id, tenant, actor, action, target, detail,
        error = %last, "audit record not published");
}
