//! Tenants' entitlements (seed 001's BOT switch, expiry and task count, plus call limits) are
//! enforced when a task is created, started and resumed, and while dialing; an expired tenant's
//! running task is paused with the reason.

use std::time::Duration;

use chrono::Utc;
use tokio_stream::StreamExt;
use tonic::Code;
use waihu_e2e::*;
use waihu_events::{from_timestamp, pb, timestamp};

/// The cluster's token-less development tenant, whose entitlements the tests set.
const TENANT: &str = "default";

async fn set(cluster: &Cluster, e: pb::Entitlements) -> pb::Entitlements {
    cluster
        .tenant_admin()
        .await
        .set_entitlements(pb::SetEntitlementsRequest {
            entitlements: Some(pb::Entitlements {
                tenant_id: TENANT.into(),
                ..e
            }),
        })
        .await
        .expect("entitlements set")
        .into_inner()
        .entitlements
        .expect("entitlements")
}

fn open() -> pb::Entitlements {
    pb::Entitlements {
        bot_enabled: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_and_starting_tasks_respect_the_bot_switch_expiry_and_task_count() {
    let cluster = Cluster::start(fast_sim(3), one_line(10)).await;
    let mut tasks = cluster.tasks().await;
    let mut admin = cluster.tenant_admin().await;

    // Nobody set any: everything is allowed, and reading says so.
    let got = admin
        .get_entitlements(pb::GetEntitlementsRequest {
            tenant_id: TENANT.into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert!(!got.configured);
    assert!(got.entitlements.expect("defaults").bot_enabled);

    // Bad input names the field.
    let bad = admin
        .set_entitlements(pb::SetEntitlementsRequest {
            entitlements: Some(pb::Entitlements {
                tenant_id: TENANT.into(),
                time_zone: "Mars/Olympus".into(),
                ..open()
            }),
        })
        .await
        .expect_err("unknown zone");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("entitlements.time_zone"),
        "{}",
        bad.message()
    );

    let set_back = set(
        &cluster,
        pb::Entitlements {
            max_tasks: 2,
            ..open()
        },
    )
    .await;
    assert_eq!(set_back.time_zone, "Asia/Shanghai");
    let first = create_with_contacts(&mut tasks, spec("one", 0, 0), &phones(3, 1)).await;
    let _second = create_with_contacts(&mut tasks, spec("two", 0, 0), &phones(3, 2)).await;
    let third = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(spec("three", 0, 0)),
        })
        .await
        .expect_err("over max_tasks");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(
        third.message().contains("max_tasks is 2"),
        "{}",
        third.message()
    );
    // A finished task no longer counts.
    run_to_completion(&mut tasks, &first, Duration::from_secs(60)).await;
    let third = create_with_contacts(&mut tasks, spec("three", 0, 0), &phones(3, 3)).await;

    // Automatic dialing switched off: no new task, no start.
    set(
        &cluster,
        pb::Entitlements {
            bot_enabled: false,
            ..Default::default()
        },
    )
    .await;
    let refused = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(spec("four", 0, 0)),
        })
        .await
        .expect_err("bot off");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("bot_enabled"),
        "{}",
        refused.message()
    );
    let refused = tasks
        .start_task(pb::TaskRef {
            task_id: third.clone(),
        })
        .await
        .expect_err("bot off");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Expired: the same, naming the expiry.
    set(
        &cluster,
        pb::Entitlements {
            bot_expire_at: Some(timestamp(Utc::now() - chrono::Duration::seconds(60))),
            ..open()
        },
    )
    .await;
    let refused = tasks
        .start_task(pb::TaskRef { task_id: third })
        .await
        .expect_err("expired");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("bot_expire_at"),
        "{}",
        refused.message()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_keeps_to_the_tenants_concurrency_and_daily_limits() {
    // Calls of about a second, on a line that could carry fifty at once.
    let sim = waihu_provider::sim::Simulator {
        seed: 5,
        time_scale: 60.0,
        ..Default::default()
    };
    let cluster = Cluster::start(sim, one_line(50)).await;
    set(
        &cluster,
        pb::Entitlements {
            max_concurrent_calls: 3,
            daily_calls: 12,
            ..open()
        },
    )
    .await;
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("limited", 0, 0), &phones(30, 5)).await;
    // The dialer applies the entitlements from their event (set before the import, which
    // takes longer than that); a moment more before starting.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    start(&mut tasks, &task).await;
    let stats = wait_stats(
        &cluster,
        &task,
        "the day's 12 calls",
        Duration::from_secs(120),
        |s| s.calls_released >= 12,
    )
    .await;
    assert_eq!(stats.calls_placed, 12, "daily_calls is 12");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = wait_stats(&cluster, &task, "stats", Duration::from_secs(5), |_| true).await;
    assert_eq!(stats.calls_placed, 12, "no call past the day's limit");

    // No moment had more than 3 calls out: sweep the calls' [requested, released] spans.
    let records = cluster
        .records()
        .await
        .list_call_records(pb::ListCallRecordsRequest {
            task_id: task.clone(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("records")
        .into_inner()
        .records;
    assert_eq!(records.len(), 12);
    let mut edges: Vec<(chrono::DateTime<Utc>, i32)> = Vec::new();
    for r in &records {
        let requested = r.requested_at.as_ref().and_then(from_timestamp);
        let released = r.released_at.as_ref().and_then(from_timestamp);
        edges.push((requested.expect("requested"), 1));
        edges.push((released.expect("released"), -1));
    }
    // A release at the same instant as a request frees its slot first.
    edges.sort();
    let (mut out, mut most) = (0, 0);
    for (_, d) in edges {
        out += d;
        most = most.max(out);
    }
    assert!(
        most <= 3,
        "{most} calls were out at once; max_concurrent_calls is 3"
    );
    assert!(
        most >= 2,
        "calls overlapped ({most}): the limit, not the simulator, held them"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_pauses_with_the_reason_when_its_tenants_bot_expires() {
    let sim = waihu_provider::sim::Simulator {
        seed: 8,
        time_scale: 20.0,
        ..Default::default()
    };
    let cluster = Cluster::start(sim, one_line(2)).await;
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("expiring", 0, 0), &phones(200, 8)).await;
    start(&mut tasks, &task).await;
    set(
        &cluster,
        pb::Entitlements {
            bot_expire_at: Some(timestamp(Utc::now() + chrono::Duration::seconds(1))),
            ..open()
        },
    )
    .await;
    wait_status(
        &mut tasks,
        &task,
        pb::TaskStatus::Paused,
        Duration::from_secs(30),
    )
    .await;
    // The pause says why, in its event.
    let records = cluster.records().await;
    let reason = waihu_testkit::eventually(Duration::from_secs(10), "the TaskPaused event", || {
        let mut records = records.clone();
        let task_id = task.clone();
        async move {
            let mut stream = records
                .export_events(pb::ExportEventsRequest {
                    task_id,
                    event_types: vec!["TaskPaused".into()],
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            let env = stream.next().await?.ok()?.envelope?;
            let paused = <pb::TaskPaused as prost::Message>::decode(env.payload.as_ref()).ok()?;
            Some(paused.reason)
        }
    })
    .await;
    assert!(reason.contains("bot_expire_at"), "{reason}");
    cluster.shutdown().await;
}
