//! The projector follows the store on its own connection: it catches up from the store on
//! start, applies what the writer hands over, reads back what a dropped hand-over missed, and
//! never applies the same events twice.

mod common;

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waihu_events::RecordedEvent;
use waihu_record::{
    projection::{self, keys},
    projector::{Events, Handoff, Projector},
};

use common::{calls, projected, store, wait_projected};

struct Batch(Vec<(u64, RecordedEvent)>);

impl Events for Batch {
    fn event(&self, i: usize) -> (u64, Option<&RecordedEvent>) {
        (self.0[i].0, Some(&self.0[i].1))
    }
}

async fn placed(pool: &PgPool, task: Uuid) -> i64 {
    counter(pool, task, keys::CALLS_PLACED).await
}

async fn counter(pool: &PgPool, task: Uuid, key: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(value), 0)::bigint FROM task_stat_counters WHERE task_id = $1 AND key = $2",
    )
    .bind(task)
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("counter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_catches_up_follows_hand_overs_and_never_counts_twice() {
    let env = waihu_testkit::TestEnv::new().await;
    let pool = waihu_record::open_pool(&env.database_url, 4)
        .await
        .expect("record schema");
    let task = Uuid::now_v7();

    // Stored before any projector ran: it catches up from the store on start.
    let first = calls("acme", task, 1, 3);
    store(&pool, &first).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let stop = CancellationToken::new();
    let projector = tokio::spawn(
        Projector {
            pool: pool.clone(),
            missed: Default::default(),
            interval: waihu_record::writer::WriterConfig::default().projection_interval,
            counters: Default::default(),
        }
        .run(rx, stop.clone()),
    );
    wait_projected(&pool, 15).await;
    assert_eq!(placed(&pool, task).await, 3);

    // A hand-over of the next write.
    let second = calls("acme", task, 16, 1);
    store(&pool, &second).await;
    let n = second.len();
    tx.send(Handoff {
        batch: Arc::new(Batch(second)),
        range: 0..n,
        fresh: vec![true; n],
        after: 15,
        last: 20,
    })
    .await
    .expect("sent");
    wait_projected(&pool, 20).await;
    assert_eq!(placed(&pool, task).await, 4);

    // A write whose hand-over was dropped (21..=30), then one handed over (31..=35): the gap
    // is read back from the store first. An event the store already had (fresh = false) and a
    // hand-over already covered are skipped.
    store(&pool, &calls("acme", task, 21, 2)).await;
    let third = calls("acme", task, 31, 1);
    store(&pool, &third).await;
    let mut fresh = vec![true; third.len()];
    fresh[0] = false;
    let batch = Arc::new(Batch(third));
    for after in [30, 30] {
        tx.send(Handoff {
            batch: batch.clone(),
            range: 0..fresh.len(),
            fresh: fresh.clone(),
            after,
            last: 35,
        })
        .await
        .expect("sent");
    }
    wait_projected(&pool, 35).await;
    // 3 + 1 + 2, and the third write's CallRequested was marked not new; its release counts
    // once although it was handed over twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(placed(&pool, task).await, 6);
    assert_eq!(counter(&pool, task, keys::CALLS_RELEASED).await, 7);

    // Hand-overs sent back to back, which the projector may take together (how it gathers is
    // the unit tests' part), with a dropped write between them: 36..=40 and 41..=45 handed over,
    // 46..=55 dropped (read back from the store), 56..=60 handed over. The counts stay exact
    // however they are split into transactions.
    let mut handoffs = Vec::new();
    for (at, n) in [(36u64, 1u32), (41, 1), (46, 2), (56, 1)] {
        let write = calls("acme", task, at, n);
        store(&pool, &write).await;
        let len = write.len();
        if at != 46 {
            handoffs.push(Handoff {
                batch: Arc::new(Batch(write)),
                range: 0..len,
                fresh: vec![true; len],
                after: at - 1,
                last: at - 1 + len as u64,
            });
        }
    }
    for h in handoffs {
        tx.send(h).await.expect("sent");
    }
    wait_projected(&pool, 60).await;
    assert_eq!(placed(&pool, task).await, 11);
    assert_eq!(counter(&pool, task, keys::CALLS_RELEASED).await, 12);

    // A projector whose idea of the checkpoint is stale changes nothing.
    assert!(!projection::commit(&pool, 20, 40, &[], 0)
        .await
        .expect("commit"));
    assert_eq!(projected(&pool).await, 60);

    stop.cancel();
    projector.await.expect("projector stopped");
    pool.close().await;
    env.cleanup().await;
}
