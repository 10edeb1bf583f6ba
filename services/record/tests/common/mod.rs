//! Helpers the record service's integration tests share: events written straight into the
//! store, and waiting for the projections.

// Each test file uses some of these.
#![allow(dead_code)]

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;
use waihu_events::RecordedEvent;
use waihu_record::{projection, writer};
use waihu_store::StoredEvent;

/// `n` answered calls of `task` in `tenant`, five events each, at positions from `first`.
pub fn calls(tenant: &str, task: Uuid, first: u64, n: u32) -> Vec<(u64, RecordedEvent)> {
    (0..n)
        .flat_map(|i| {
            waihu_testkit::call_lifecycle(tenant, task, Uuid::now_v7(), i + 1, 1, true, 10, 20)
        })
        .enumerate()
        .map(|(i, e)| (first + i as u64, e))
        .collect()
}

/// Appends to the store (and moves its checkpoint) without projecting; every event is new.
pub async fn store(pool: &PgPool, events: &[(u64, RecordedEvent)]) {
    let stored: Vec<StoredEvent> = events
        .iter()
        .map(|(p, e)| StoredEvent::known(*p, e.clone()))
        .collect();
    let refs: Vec<&StoredEvent> = stored.iter().collect();
    let last = events.last().map(|(p, _)| *p).expect("events");
    let after = waihu_store::checkpoint(pool, writer::CHECKPOINT)
        .await
        .expect("checkpoint");
    let fresh = writer::write_events(pool, &refs, after, last, 0)
        .await
        .expect("stored")
        .expect("the checkpoint where the last write left it");
    assert!(fresh.iter().all(|f| *f));
}

/// The projections' checkpoint.
pub async fn projected(pool: &PgPool) -> u64 {
    waihu_store::checkpoint(pool, projection::CHECKPOINT)
        .await
        .expect("checkpoint")
}

/// Waits until the projections have reached `position`.
pub async fn wait_projected(pool: &PgPool, position: u64) {
    waihu_testkit::eventually(Duration::from_secs(20), "the projections", || async move {
        (projected(pool).await >= position).then_some(())
    })
    .await;
}
