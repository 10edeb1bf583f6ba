//! Exactly-once effects over at-least-once delivery: duplicates, crashes, pause and resume.

use std::time::Duration;

use waihu_bus::{Expect, PublishOutcome};
use waihu_e2e::*;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};

async fn stats_of(cluster: &Cluster, task_id: &str) -> pb::TaskStats {
    cluster
        .stats()
        .await
        .get_task_stats(pb::GetTaskStatsRequest {
            task_id: task_id.into(),
        })
        .await
        .expect("stats")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_published_twice_is_stored_and_counted_once() {
    // No dialer or provider needed: only the store writer and the projections.
    let cluster = Cluster::start(
        fast_sim(1),
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 1,
        }],
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let task = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(spec("dup", 0, 0)),
        })
        .await
        .expect("create")
        .into_inner();
    let task_id = uuid::Uuid::parse_str(&task.task_id).expect("uuid");
    let call = uuid::Uuid::new_v4();
    let released = RecordedEvent::new(
        EventMeta::new("default", Aggregate::Call(call), 1)
            .with_deterministic_id("dup-test")
            .with_task(task_id),
        Event::CallReleased(pb::CallReleased {
            call_id: call.to_string(),
            task_id: task.task_id.clone(),
            contact_no: 1,
            cause: Some(waihu_telephony::hangup::from_sip(486)),
            answered: false,
            ring_ms: 0,
            talk_ms: 0,
            ..Default::default()
        }),
    );
    let bus = &cluster.env.bus;
    let first = bus.publish(&released, Expect::Any).await.expect("publish");
    assert!(matches!(first, PublishOutcome::Stored(_)));
    // Inside JetStream's duplicate window the bus itself drops the copy.
    let again = bus
        .publish(&released, Expect::Any)
        .await
        .expect("publish again");
    assert_eq!(again, PublishOutcome::Duplicate(first.sequence()));
    // Past the window (simulated: no Nats-Msg-Id) the copy reaches the store, which must drop it.
    let copy_seq = bus
        .publish_raw(
            bus.subject(&Aggregate::Call(call)),
            async_nats::HeaderMap::new(),
            released.encode().into(),
        )
        .await
        .expect("raw copy");
    assert!(copy_seq > first.sequence());

    // The store writer and the projections pass the copy (the stream's last event, or before).
    projected(&cluster).await;
    let pool = &cluster.env.pool;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = $1")
        .bind(released.meta.event_id)
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);
    let stats = stats_of(&cluster, &task.task_id).await;
    assert_eq!(stats.calls_released, 1);
    assert_eq!(stats.hangup_causes.iter().map(|c| c.count).sum::<u64>(), 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_record_service_mid_campaign_leaves_the_statistics_exact() {
    // Slow enough that the campaign is still running when the record service dies.
    let sim = waihu_provider::sim::Simulator {
        seed: 99,
        time_scale: 400.0,
        ..Default::default()
    };
    let mut cluster = Cluster::start(
        sim.clone(),
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 150,
        }],
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let phones = phones(1000, 2);
    let task_id = create_with_contacts(&mut tasks, spec("crash", 1, 0), &phones).await;
    start(&mut tasks, &task_id).await;

    let seen = wait_stats(
        &cluster,
        &task_id,
        "some calls released",
        Duration::from_secs(60),
        |s| s.calls_released >= 50,
    )
    .await;
    assert!(
        seen.contacts_finished < 1000,
        "still mid-campaign when the record service dies"
    );
    cluster.kill_record();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.start_record().await;

    wait_status(
        &mut tasks,
        &task_id,
        pb::TaskStatus::Completed,
        Duration::from_secs(180),
    )
    .await;
    let stats = wait_stats_settled(&cluster, &task_id, 1000, Duration::from_secs(60)).await;
    assert_stats_match(&stats, &expected(&sim, &e164(&phones), 1));
    assert_replay_identical(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_new_dials_and_resume_finishes_the_task() {
    let sim = waihu_provider::sim::Simulator {
        seed: 5,
        time_scale: 300.0,
        ..Default::default()
    };
    let cluster = Cluster::start(
        sim.clone(),
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 40,
        }],
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let phones = phones(400, 3);
    let task_id = create_with_contacts(&mut tasks, spec("pause", 1, 0), &phones).await;
    let r = pb::TaskRef {
        task_id: task_id.clone(),
    };
    tasks.start_task(r.clone()).await.expect("start");

    wait_stats(
        &cluster,
        &task_id,
        "dialing under way",
        Duration::from_secs(60),
        |s| s.calls_placed >= 60,
    )
    .await;
    let paused = tasks
        .pause_task(r.clone())
        .await
        .expect("pause")
        .into_inner();
    assert_eq!(paused.status, pb::TaskStatus::Paused as i32);

    // Calls in progress finish; then nothing new is placed while paused.
    let settled = wait_stats(
        &cluster,
        &task_id,
        "in-flight calls to finish",
        Duration::from_secs(60),
        |s| s.calls_released == s.calls_placed,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = stats_of(&cluster, &task_id).await;
    assert_eq!(
        later.calls_placed, settled.calls_placed,
        "no call placed while paused"
    );
    assert!(later.contacts_finished < 400, "work remained when paused");

    tasks.resume_task(r.clone()).await.expect("resume");
    wait_status(
        &mut tasks,
        &task_id,
        pb::TaskStatus::Completed,
        Duration::from_secs(180),
    )
    .await;
    let stats = wait_stats_settled(&cluster, &task_id, 400, Duration::from_secs(60)).await;
    assert_stats_match(&stats, &expected(&sim, &e164(&phones), 1));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_finishes_the_remaining_contacts_as_cancelled() {
    let sim = waihu_provider::sim::Simulator {
        seed: 6,
        time_scale: 300.0,
        ..Default::default()
    };
    let cluster = Cluster::start(
        sim,
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 20,
        }],
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let task_id = create_with_contacts(&mut tasks, spec("cancel", 3, 0), &phones(300, 4)).await;
    let r = pb::TaskRef {
        task_id: task_id.clone(),
    };
    tasks.start_task(r.clone()).await.expect("start");
    wait_stats(
        &cluster,
        &task_id,
        "dialing under way",
        Duration::from_secs(60),
        |s| s.calls_placed >= 20,
    )
    .await;
    let t = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: task_id.clone(),
            reason: "test".into(),
        })
        .await
        .expect("cancel");
    assert_eq!(t.into_inner().status, pb::TaskStatus::Cancelled as i32);
    let st = wait_stats_settled(&cluster, &task_id, 300, Duration::from_secs(60)).await;
    let cancelled = st
        .outcomes
        .iter()
        .find(|o| o.outcome == pb::ContactOutcome::Cancelled as i32)
        .map_or(0, |o| o.count);
    assert!(cancelled > 0 && st.contacts_dialed < 300, "{st:?}");
    // Cancelled contacts are never dialed later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stats_of(&cluster, &task_id).await.calls_placed,
        st.calls_placed
    );
    let again = tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id,
            reason: String::new(),
        })
        .await
        .expect_err("twice");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_no_provider_ever_releases_are_timed_out_and_the_task_still_completes() {
    // No provider at all: every call is lost. The dialer's watchdog must release them.
    let cluster = Cluster::start_with(
        fast_sim(8),
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 10,
        }],
        false,
        Duration::from_secs(1),
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let task_id = create_with_contacts(&mut tasks, spec("lost", 1, 0), &phones(5, 7)).await;
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(60)).await;
    let st = wait_stats_settled(&cluster, &task_id, 5, Duration::from_secs(30)).await;
    // Each contact: first call lost, recalled once, lost again, then unreached.
    assert_eq!(st.calls_placed, 10);
    let causes: Vec<(u32, u64)> = st.hangup_causes.iter().map(|c| (c.q850, c.count)).collect();
    assert_eq!(causes, vec![(102, 10)]);
    let outcomes: Vec<(i32, u64)> = st.outcomes.iter().map(|o| (o.outcome, o.count)).collect();
    assert_eq!(outcomes, vec![(pb::ContactOutcome::Unreached as i32, 5)]);
    cluster.shutdown().await;
}
