//! A whole campaign through all four services, checked against the simulator's own outcomes.

use std::time::Duration;

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
    let done = run_to_completion(&mut tasks, &task_id, Duration::from_secs(120)).await;
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

    // Every contact was called exactly as often as the rules say: at most recall + 1 times,
    // busy/unanswered numbers again, unallocated numbers once.
    let actual = calls_per_number(&cluster, &task_id).await;
    assert_eq!(actual, want.attempts);
    assert!(actual.values().all(|n| *n <= recall + 1));
    let first_unallocated: Vec<&String> = want
        .attempts
        .keys()
        .filter(|p| sim.outcome(p, 1) == waihu_provider::sim::Outcome::Unallocated)
        .collect();
    assert!(!first_unallocated.is_empty());
    assert!(
        first_unallocated.iter().all(|p| actual[p.as_str()] == 1),
        "unallocated numbers are never recalled"
    );
    let first_busy = want
        .attempts
        .keys()
        .filter(|p| sim.outcome(p, 1) == waihu_provider::sim::Outcome::Busy);
    assert!(first_busy.clone().count() > 0);
    assert!(
        first_busy.into_iter().all(|p| actual[p.as_str()] >= 2),
        "busy numbers are recalled"
    );

    // Paging by number: pages of 500 cover every call once, oldest first, with the total.
    let mut records = cluster.records().await;
    let mut seen = std::collections::BTreeSet::new();
    let mut last_start = None;
    for page_number in 1.. {
        let page = records
            .list_call_records(pb::ListCallRecordsRequest {
                task_id: task_id.clone(),
                page_size: 500,
                page_number,
                oldest_first: true,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        assert_eq!(page.total, stats.calls_placed);
        if page.records.is_empty() {
            break;
        }
        for r in &page.records {
            assert!(seen.insert(r.number), "call {} listed twice", r.number);
            let start = r.requested_at.as_ref().map(|t| (t.seconds, t.nanos));
            assert!(start >= last_start, "oldest first");
            last_start = start;
        }
    }
    assert_eq!(seen.len() as u64, stats.calls_placed);

    let report = assert_replay_identical(&cluster).await;
    assert!(report.events_replayed > 0);
    cluster.shutdown().await;
}
