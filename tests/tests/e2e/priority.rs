//! Priorities share a line by weight (1:2:4 by default) through the real services: a
//! priority-2 task gets about four calls for each of a priority-0 task's, and the low one is
//! never starved.

use std::time::Duration;

use waihu_e2e::*;
use waihu_events::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_competing_for_a_line_share_it_by_priority_weight() {
    let cluster = Cluster::start(fast_sim(71), one_line(4)).await;
    let mut tasks = cluster.tasks().await;
    let low = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            priority: 0,
            ..spec("low", 0, 0)
        },
        &phones(400, 31),
    )
    .await;
    let high = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            priority: 2,
            ..spec("high", 0, 0)
        },
        &phones(400, 32),
    )
    .await;
    start(&mut tasks, &high).await;
    start(&mut tasks, &low).await;
    wait_status(
        &mut tasks,
        &high,
        pb::TaskStatus::Completed,
        Duration::from_secs(120),
    )
    .await;
    // Calls requested, from the dialer's own state (the records may lag).
    let placed = |task: String| {
        let pool = cluster.env.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(attempts), 0)::bigint FROM dialer.dialer_contacts
                 WHERE task_id = $1::uuid",
            )
            .bind(task)
            .fetch_one(&pool)
            .await
            .expect("attempts");
            n
        }
    };
    let (h, l) = (placed(high.clone()).await, placed(low.clone()).await);
    assert_eq!(h, 400);
    // A 1:4 share gives the low task about 100 calls while the high one places its 400; strict
    // priority would give it none.
    assert!(
        (50..=200).contains(&l),
        "the low-priority task placed {l} calls while the high one placed {h}"
    );
    wait_status(
        &mut tasks,
        &low,
        pb::TaskStatus::Completed,
        Duration::from_secs(120),
    )
    .await;
    cluster.shutdown().await;
}
