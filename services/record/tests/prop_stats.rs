//! The statistics are identical under any permutation and duplication of a campaign's events:
//! the store writer's own transaction (append idempotently, project what was new) is fed the
//! same events in shuffled order with repeats, against the real PostgreSQL, and must end with the
//! counters and call records that the events in order give.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use sqlx::PgPool;
use uuid::Uuid;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_record::projection;
use waihu_store::StoredEvent;

/// A small campaign: one task, its contacts, and for each contact 1-3 calls with every
/// lifecycle event, the last one possibly answered, then the contact's finish.
fn campaign(task: Uuid, outcomes: &[(u8, bool, u16, u16)]) -> Vec<RecordedEvent> {
    let t = task.to_string();
    let mut out = vec![RecordedEvent::new(
        EventMeta::new("acme", Aggregate::Task(task), 2).with_task(task),
        Event::ContactsAdded(pb::ContactsAdded {
            task_id: t.clone(),
            contacts: (1..=outcomes.len() as u32)
                .map(|no| pb::Contact {
                    contact_no: no,
                    phone: format!("+86138{no:08}"),
                    ..Default::default()
                })
                .collect(),
        }),
    )];
    for (i, (calls, answered, ring, talk)) in outcomes.iter().enumerate() {
        let no = i as u32 + 1;
        let calls = 1 + (*calls as u32) % 3;
        for attempt in 1..=calls {
            let answered = attempt == calls && *answered;
            out.extend(waihu_testkit::call_lifecycle(
                "acme",
                task,
                Uuid::new_v4(),
                no,
                attempt,
                answered,
                *ring as u64,
                if answered { *talk as u64 } else { 0 },
            ));
        }
        out.push(RecordedEvent::new(
            EventMeta::new("acme", Aggregate::Contact(task, no), 1).with_task(task),
            Event::ContactFinished(pb::ContactFinished {
                task_id: t.clone(),
                contact_no: no,
                outcome: if *answered { 1 } else { 2 },
                attempts: calls,
                last_call_id: String::new(),
            }),
        ));
    }
    out
}

/// Store positions are unique across the whole database the cases share.
static POSITION: AtomicU64 = AtomicU64::new(0);

/// Feeds `events` through the writer's transaction in batches of `batch`.
async fn write(pool: &PgPool, events: &[RecordedEvent], batch: usize) {
    let stored: Vec<StoredEvent> = events
        .iter()
        .map(|e| StoredEvent::known(POSITION.fetch_add(1, Ordering::SeqCst) + 1, e.clone()))
        .collect();
    for chunk in stored.chunks(batch.max(1)) {
        let refs: Vec<&StoredEvent> = chunk.iter().collect();
        let last = chunk.last().map_or(0, |e| e.position);
        let after = waihu_store::checkpoint(pool, waihu_record::writer::CHECKPOINT)
            .await
            .expect("checkpoint");
        let fresh = waihu_record::writer::write_events(pool, &refs, after, last, 0)
            .await
            .expect("written")
            .expect("the checkpoint where the last write left it");
        // Then the projector's transaction, with the events that were new to the store.
        let new: Vec<(u64, &RecordedEvent)> = chunk
            .iter()
            .zip(fresh)
            .filter(|(_, f)| *f)
            .filter_map(|(e, _)| Some((e.position, e.event.known()?)))
            .collect();
        let at = waihu_store::checkpoint(pool, projection::CHECKPOINT)
            .await
            .expect("checkpoint");
        assert!(projection::commit(pool, at, last, &new, 0)
            .await
            .expect("projected"));
    }
}

type Snapshot = (Vec<(String, i64)>, Vec<String>);

async fn snapshot(pool: &PgPool, task: Uuid) -> Snapshot {
    let counters = sqlx::query_as(
        "SELECT key, value FROM record.task_stat_counters WHERE task_id = $1 ORDER BY key",
    )
    .bind(task)
    .fetch_all(pool)
    .await
    .expect("counters");
    // A call record's columns that do not depend on when the test wrote it.
    let calls = sqlx::query_scalar(
        "SELECT concat_ws('|', attempt, phone, answered, ring_ms, talk_ms, cause_q850,
                requested_at IS NOT NULL, released_at IS NOT NULL, answered_at IS NOT NULL)
         FROM record.call_records WHERE task_id = $1 ORDER BY 1",
    )
    .bind(task)
    .fetch_all(pool)
    .await
    .expect("calls");
    (counters, calls)
}

#[test]
fn statistics_are_identical_under_any_permutation_and_duplication_of_the_events() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let env = rt.block_on(waihu_testkit::TestEnv::new());
    let pool = rt
        .block_on(waihu_record::open_pool(&env.database_url, 4))
        .expect("record schema");
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        outcomes in proptest::collection::vec(
            (any::<u8>(), any::<bool>(), 0u16..60_000, 0u16..60_000), 1..12),
        shuffle_seed in any::<u64>(),
        repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        batch in 1usize..40,
    )| {
        let (in_order, shuffled) = (Uuid::new_v4(), Uuid::new_v4());
        // The same campaign under two task ids: once in order, once shuffled with repeats.
        let a = campaign(in_order, &outcomes);
        let mut b = campaign(shuffled, &outcomes);
        for r in &repeats {
            let e = r.get(&b).clone();
            b.push(e);
        }
        // Fisher-Yates with a seeded LCG: the permutation is part of the case.
        let mut state = shuffle_seed | 1;
        for i in (1..b.len()).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b.swap(i, (state >> 33) as usize % (i + 1));
        }
        rt.block_on(write(&pool, &a, 1000));
        rt.block_on(write(&pool, &b, batch));
        let (ca, ra) = rt.block_on(snapshot(&pool, in_order));
        let (cb, rb) = rt.block_on(snapshot(&pool, shuffled));
        prop_assert!(!ca.is_empty());
        prop_assert_eq!(ca, cb);
        prop_assert_eq!(ra, rb);
    });
    rt.block_on(env.cleanup());
}
