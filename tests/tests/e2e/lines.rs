//! Lines as managed entities: made, changed, switched off and on through `ProviderService`, and
//! followed by the dialer, which keeps each line's concurrency, pace (calls per second) and
//! daily cap.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_stream::StreamExt;
use tonic::Code;
use waihu_e2e::*;
use waihu_events::pb;

fn line(id: &str, max_concurrent: u32) -> pb::Line {
    Line {
        id: id.into(),
        max_concurrent,
    }
    .to_pb()
}

async fn create(cluster: &Cluster, l: pb::Line) -> Result<pb::Line, tonic::Status> {
    cluster
        .providers()
        .await
        .create_line(pb::CreateLineRequest {
            line: Some(l),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn status_of(cluster: &Cluster, id: &str) -> pb::LineStatus {
    cluster
        .providers()
        .await
        .get_line_status(pb::LineRequest { line_id: id.into() })
        .await
        .expect("line status")
        .into_inner()
}

/// Waits until the dialer explains contact `no` of `task` as held by `reason`.
async fn held_by(cluster: &Cluster, task: &str, no: u32, reason: &str) -> pb::ContactExplanation {
    waihu_testkit::eventually(Duration::from_secs(30), reason, || async move {
        let e = cluster.explain(task, no).await.ok()?;
        (e.reason == reason).then_some(e)
    })
    .await
}

/// When each of the task's calls was requested, in order.
async fn requested_at(cluster: &Cluster, task_id: &str) -> Vec<DateTime<Utc>> {
    let mut stream = cluster
        .records()
        .await
        .export_events(pb::ExportEventsRequest {
            task_id: task_id.into(),
            event_types: vec!["CallRequested".into()],
            ..Default::default()
        })
        .await
        .expect("export")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        let env = e.expect("event").envelope.expect("envelope");
        out.push(waihu_events::from_timestamp(&env.occurred_at.expect("time")).expect("time"));
    }
    out.sort();
    out
}

/// The lines the task's calls went out on.
async fn lines_used(cluster: &Cluster, task_id: &str) -> std::collections::BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT DISTINCT line_id FROM dialer.dialer_contacts WHERE task_id = $1::uuid
         AND line_id IS NOT NULL",
    )
    .bind(task_id)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("lines")
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_checked_versioned_and_a_disabled_line_places_nothing() {
    let cluster = Cluster::start(fast_sim(5), one_line(5)).await;
    let mut p = cluster.providers().await;

    // Bad input is refused naming the field; ids are unique per tenant.
    let mut bad = line("x", 1);
    bad.time_zone = "Asia/Atlantis".into();
    let e = create(&cluster, bad).await.expect_err("bad zone");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("line.time_zone"), "{}", e.message());
    let e = create(&cluster, line("sim-1", 1)).await.expect_err("taken");
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = p
        .get_line(pb::LineRequest {
            line_id: "nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound);

    // A second line, switched off, with a task that may use only it: nothing is dialed.
    let made = create(&cluster, line("spare", 3)).await.expect("spare");
    assert_eq!((made.version, made.enabled), (1, true));
    let off = p
        .disable_line(pb::DisableLineRequest {
            line_id: "spare".into(),
            reason: "maintenance".into(),
        })
        .await
        .expect("disabled")
        .into_inner();
    assert_eq!((off.version, off.enabled), (2, false));
    // A stale write is refused.
    let mut stale = off.clone();
    stale.max_concurrent = 9;
    let e = p
        .update_line(pb::UpdateLineRequest {
            line: Some(stale),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .expect_err("stale");
    assert_eq!(e.code(), Code::FailedPrecondition);

    let mut tasks = cluster.tasks().await;
    let numbers = phones(30, 3);
    let pinned = pb::TaskSpec {
        caller_line: "spare".into(),
        ..spec("pinned", 0, 0)
    };
    let t = create_with_contacts(&mut tasks, pinned, &numbers).await;
    start(&mut tasks, &t).await;
    // Once the dialer has the task running, it says the task has no line to dial on.
    held_by(&cluster, &t, 1, "NO_LINE").await;
    assert!(
        calls_per_number(&cluster, &t).await.is_empty(),
        "a task pinned to a disabled line places nothing"
    );

    // Switched on: the task runs to the end, on that line only, never over its 3 calls.
    p.enable_line(pb::LineRequest {
        line_id: "spare".into(),
    })
    .await
    .expect("enabled");
    wait_status(
        &mut tasks,
        &t,
        pb::TaskStatus::Completed,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(lines_used(&cluster, &t).await, ["spare".to_string()].into());
    let s = status_of(&cluster, "spare").await;
    assert_eq!((s.in_flight, s.today_calls), (0, 30));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_keeps_its_pace_and_stops_at_its_daily_cap_until_raised() {
    let cluster = Cluster::start(fast_sim(8), one_line(50)).await;
    let mut paced = line("paced", 50);
    paced.cps = 25.0;
    paced.daily_cap = 60;
    create(&cluster, paced.clone()).await.expect("paced line");

    let mut tasks = cluster.tasks().await;
    let numbers = phones(100, 9);
    let t = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            caller_line: "paced".into(),
            ..spec("paced", 0, 0)
        },
        &numbers,
    )
    .await;
    start(&mut tasks, &t).await;

    // The cap: 60 calls today, then the line stops and the rest wait.
    waihu_testkit::eventually(Duration::from_secs(60), "the cap reached", || {
        let c = &cluster;
        async move {
            let s = status_of(c, "paced").await;
            (s.today_calls == 60 && s.in_flight == 0).then_some(())
        }
    })
    .await;
    let e = held_by(&cluster, &t, 100, "LINES_BUSY").await;
    assert!(e.detail.contains("daily cap"), "{}", e.detail);
    assert_eq!(calls_per_number(&cluster, &t).await.len(), 60);

    // The pace: in no second more than 25 × (1 + the 50 ms tick) + 1 calls started.
    let at = requested_at(&cluster, &t).await;
    assert_eq!(at.len(), 60);
    for (i, t0) in at.iter().enumerate() {
        let n = at[i..]
            .iter()
            .take_while(|t| **t <= *t0 + chrono::Duration::seconds(1))
            .count();
        assert!(n <= 27, "{n} calls within a second of {t0}");
    }
    // And it really was paced: 60 calls at 25 a second take more than two seconds.
    let span = *at.last().expect("last") - at[0];
    assert!(span >= chrono::Duration::milliseconds(2000), "{span:?}");

    // The cap raised (and the pace lifted): the rest go out and the task completes.
    let mut raised = status_of(&cluster, "paced").await.line.expect("line");
    raised.daily_cap = 0;
    raised.cps = 0.0;
    cluster
        .providers()
        .await
        .update_line(pb::UpdateLineRequest {
            line: Some(raised),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .expect("raised");
    wait_status(
        &mut tasks,
        &t,
        pb::TaskStatus::Completed,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(calls_per_number(&cluster, &t).await.len(), 100);
    assert_eq!(status_of(&cluster, "paced").await.today_calls, 100);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_out_from_the_nearest_caller_number_and_city_limits_hold() {
    let cluster = Cluster::start(fast_sim(13), one_line(10)).await;
    let mut sh = line("shanghai", 10);
    sh.caller_number = "021-61230000".into();
    let mut bj = line("beijing", 10);
    bj.caller_number = "010-81230000".into();
    let made = create(&cluster, sh).await.expect("shanghai line");
    let region = made.region.expect("a Shanghai number's region");
    assert_eq!(region.city, "上海市");
    assert_eq!(region.area_code, "21");
    create(&cluster, bj).await.expect("beijing line");

    let shanghai: Vec<String> = (0..8).map(|i| format!("+8621612{i:05}")).collect();
    let beijing: Vec<String> = (0..8).map(|i| format!("+8610812{i:05}")).collect();
    let shenzhen: Vec<String> = (0..4).map(|i| format!("+86755812{i:05}")).collect();
    let all: Vec<String> = shanghai
        .iter()
        .chain(&beijing)
        .chain(&shenzhen)
        .cloned()
        .collect();
    let mut tasks = cluster.tasks().await;
    let t = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            caller_line: "shanghai,beijing".into(),
            number_city_limit: true,
            ..spec("cities", 0, 0)
        },
        &all,
    )
    .await;
    start(&mut tasks, &t).await;
    // Each city's numbers on its own line; Shenzhen's, with no line there, wait.
    let by_line = waihu_testkit::eventually(Duration::from_secs(60), "the two cities", || {
        let (c, t) = (&cluster, t.clone());
        async move {
            let rows: Vec<(String, Option<String>, i16)> = sqlx::query_as(
                "SELECT phone, line_id, state FROM dialer.dialer_contacts
                 WHERE task_id = $1::uuid ORDER BY contact_no",
            )
            .bind(&t)
            .fetch_all(&c.env.pool)
            .await
            .ok()?;
            let done = rows.iter().filter(|r| r.2 == 2).count();
            (done == 16).then_some(rows)
        }
    })
    .await;
    for (phone, line, state) in &by_line {
        let want = if shanghai.contains(phone) {
            Some("shanghai")
        } else if beijing.contains(phone) {
            Some("beijing")
        } else {
            None
        };
        assert_eq!(line.as_deref(), want, "{phone}");
        if want.is_none() {
            assert_eq!(*state, 0, "{phone} waits for a line in its city");
        }
    }
    // Each call carries the number its callee saw: its line's caller number (read once the
    // store has every request).
    let requests = waihu_testkit::eventually(Duration::from_secs(30), "16 requests stored", || {
        let (c, t) = (&cluster, t.clone());
        async move {
            let mut stream = c
                .records()
                .await
                .export_events(pb::ExportEventsRequest {
                    task_id: t,
                    event_types: vec!["CallRequested".into()],
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            let mut out = Vec::new();
            while let Some(e) = stream.next().await {
                let env = e.ok()?.envelope?;
                let e = waihu_events::RecordedEvent::from_envelope(env).expect("decodes");
                if let waihu_events::Event::CallRequested(r) = e.event {
                    out.push(r);
                }
            }
            (out.len() >= 16).then_some(out)
        }
    })
    .await;
    for r in &requests {
        let want = match r.line_id.as_str() {
            "shanghai" => "+862161230000",
            "beijing" => "+861081230000",
            other => panic!("call on {other}"),
        };
        assert_eq!(r.caller_number, want, "{}", r.phone);
    }
    let task = tasks
        .get_task(pb::TaskRef { task_id: t.clone() })
        .await
        .expect("task")
        .into_inner();
    assert_eq!(task.status, pb::TaskStatus::Running as i32);
    cluster.shutdown().await;
}
