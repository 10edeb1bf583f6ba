//! A whole campaign through all four services, checked against the simulator's own outcomes.

use std::time::Duration;

use waihu_dialer::Line;
use waihu_e2e::*;
use waihu_events::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_of_1200_contacts_ends_with_exactly_the_simulated_statistics() {
    let sim = fast_sim(20261121);
    let cluster = Cluster::start(
        sim.clone(),
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 300,
        }],
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let recall = 2;
    let phones = phones(1200, 1);
    let task_id = create_with_contacts(&mut tasks, spec("e2e", recall, 0), &phones).await;
    tasks
        .start_task(pb::TaskRef {
            task_id: task_id.clone(),
        })
        .await
        .expect("start");

    let done = wait_status(
        &mut tasks,
        &task_id,
        pb::TaskStatus::Completed,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!((done.contacts_total, done.contacts_finished), (1200, 1200));
    let stats = wait_stats_settled(&cluster, &task_id, 1200, Duration::from_secs(60)).await;
    let want = expected(&sim, &e164(&phones), recall);
    assert!(want.max_attempts <= recall + 1);
    assert!(
        want.calls_placed > 1200,
        "some contacts were recalled: {want:?}"
    );
    eprintln!("expected {want:?}\nprojected {stats:?}");
    assert_stats_match(&stats, &want);

    // Every contact was dialed at most recall + 1 times, and per-contact attempts agree.
    let attempts: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT contact_no, count(*) FROM call_records WHERE task_id = $1::uuid GROUP BY contact_no",
    )
    .bind(&task_id)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("call records");
    assert_eq!(attempts.len(), 1200);
    assert!(attempts.iter().all(|(_, n)| *n as u32 <= recall + 1));

    let report = waihu_record::replay::verify(&cluster.env.pool, |_, _| {})
        .await
        .expect("replay");
    assert!(
        report.identical(),
        "replay differs: {:?}",
        report.differences
    );
    assert!(report.events_replayed > 0);
    cluster.shutdown().await;
}
