//! Provider-campaign mode (seed 001) on the simulator's campaign API: a 2,000-contact task
//! handed over in campaigns of 800 runs a pause, a resume, a kill of the provider adapter in
//! the middle of a sync, roll-overs and completion, and ends with exactly the statistics the
//! simulator's outcomes and the recall rules give, no contact handed over twice and no
//! campaign created twice at the "provider".

use std::time::Duration;

use waihu_e2e::{campaigns::*, *};
use waihu_events::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_task_on_the_simulator_pauses_survives_a_crash_mid_sync_and_rolls_over() {
    let sim = fast_sim(1207);
    let mut cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        sim.clone(),
        one_line(5),
        true,
        Duration::from_secs(7200),
        |c| {
            c.campaigns.sync = Duration::from_secs(1);
            c.sim_campaign_rate = 250.0;
        },
    )
    .await;
    let contacts = 2000;
    let list = phones(contacts, 3);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 800,
            caller_line: "sim-1".into(),
            ..spec("provider campaign", 1, 1)
        },
        &list,
    )
    .await;
    // Ten numbers on the tenant's do-not-call list are checked at hand-over: they finish as
    // DO_NOT_CALL and are never handed over.
    let listed: Vec<String> = e164(&list).into_iter().step_by(200).collect();
    cluster
        .dialer()
        .await
        .add_do_not_call(pb::DoNotCallRequest {
            phones: listed.clone(),
            reason: "asked not to be called".into(),
        })
        .await
        .expect("do-not-call");
    let driven = drive(&mut cluster, &task, 800).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let called: Vec<String> = e164(&list)
        .into_iter()
        .filter(|p| !listed.contains(p))
        .collect();
    let x = expected(&sim, &called, 1);
    let mut outcomes = x.outcomes.clone();
    outcomes.insert(pb::ContactOutcome::DoNotCall as i32, listed.len() as u64);
    assert_eq!(
        (stats.contacts_total, stats.contacts_finished),
        (contacts as u64, contacts as u64)
    );
    assert_eq!(
        (
            stats.calls_placed,
            stats.calls_released,
            stats.calls_answered
        ),
        (x.calls_placed, x.calls_placed, x.calls_answered)
    );
    assert_eq!(stats.total_talk_seconds, x.talk_ms / 1000);
    let causes: std::collections::BTreeMap<u32, u64> = stats
        .hangup_causes
        .iter()
        .map(|c| (c.q850, c.count))
        .collect();
    assert_eq!(causes, x.causes, "hangup causes");
    let got: std::collections::BTreeMap<i32, u64> = stats
        .outcomes
        .iter()
        .map(|o| (o.outcome, o.count))
        .collect();
    assert_eq!(got, outcomes, "contact outcomes");
    // Each listed contact finished without a call.
    let by_phone = contact_outcomes(&cluster, &task).await;
    for p in &listed {
        assert_eq!(
            by_phone.get(p.as_str()).copied(),
            Some(pb::ContactOutcome::DoNotCall as i32),
            "{p}"
        );
    }
    assert_handed_over_once(&cluster, &task, &driven, &x.attempts, x.calls_placed).await;
    assert!(
        driven.published_unmarked > 0,
        "the kill came in the middle of a sync"
    );
    // The line's own slots (5) did not limit the campaign (the provider paces it): the first
    // was the first 800 due, less the listed numbers among them.
    let listed_first = listed
        .iter()
        .filter(|p| e164(&list)[..800].contains(p))
        .count();
    assert_eq!(
        driven.campaigns[0].2 as usize,
        800 - listed_first,
        "{:?}",
        driven.campaigns
    );
    // One campaign at the "provider" per campaign here: none created twice after the crash.
    let at_provider: i64 =
        sqlx::query_scalar("SELECT count(*) FROM provider.sim_campaigns WHERE name = ANY($1)")
            .bind(
                driven
                    .campaigns
                    .iter()
                    .map(|c| c.0.to_string())
                    .collect::<Vec<_>>(),
            )
            .fetch_one(&cluster.env.pool)
            .await
            .expect("sim campaigns");
    assert_eq!(at_provider as usize, driven.campaigns.len());
    // Every step of every campaign is an event on its own stream, and the calls' events came
    // out once each in lifecycle order.
    // Creating, running, done for each; paused and running again for the first; running once
    // more for the campaign found by name after the crash (the last reach the store through
    // the outbox after the task completed).
    let want = 3 * driven.campaigns.len() as i64 + 3;
    let steps =
        waihu_testkit::eventually(Duration::from_secs(20), "campaign events stored", || {
            let (pool, task) = (cluster.env.pool.clone(), task.clone());
            async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM events WHERE event_type = 'ProviderCampaignChanged'
                   AND task_id = $1::uuid",
                )
                .bind(&task)
                .fetch_one(&pool)
                .await
                .ok()?;
                (n >= want).then_some(n)
            }
        })
        .await;
    assert_eq!(steps, want);
    assert_eq!(assert_lifecycles(&cluster).await, 0);
    assert_replay_identical(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn campaign_size_is_checked() {
    let cluster = Cluster::start(fast_sim(5), one_line(5)).await;
    let mut tasks = cluster.tasks().await;
    let e = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(pb::TaskSpec {
                campaign_size: 10_001,
                ..spec("too big", 0, 0)
            }),
        })
        .await
        .expect_err("too big");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("spec.campaign_size"), "{e:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_campaign_task_stops_its_campaign_and_releases_what_was_not_called() {
    let sim = fast_sim(1208);
    let cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        sim,
        one_line(5),
        true,
        Duration::from_secs(7200),
        |c| c.sim_campaign_rate = 100.0,
    )
    .await;
    let contacts = 600;
    let list = phones(contacts, 4);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 500,
            ..spec("cancelled campaign", 2, 1)
        },
        &list,
    )
    .await;
    start(&mut tasks, &task).await;
    wait_stats(
        &cluster,
        &task,
        "some results",
        Duration::from_secs(60),
        |s| s.calls_released >= 20,
    )
    .await;
    tasks
        .cancel_task(pb::CancelTaskRequest {
            task_id: task.clone(),
            reason: "enough".into(),
        })
        .await
        .expect("cancel");
    // The campaign is stopped at the "provider"; every call handed over is released (those
    // never called as not placed), every contact finishes, and nothing more is handed over.
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let c = campaigns_of(&cluster, &task).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!((c[0].1, c[0].3), (pb::CampaignState::Done as i16, 500));
    assert_eq!(stats.calls_placed, 500);
    assert!(stats.calls_answered < 500);
    let state: i16 = sqlx::query_scalar("SELECT state FROM provider.sim_campaigns WHERE name = $1")
        .bind(c[0].0.to_string())
        .fetch_one(&cluster.env.pool)
        .await
        .expect("sim campaign");
    assert_eq!(state, 4, "stopped at the provider");
    let outcomes = contact_outcomes(&cluster, &task).await;
    let cancelled = outcomes
        .values()
        .filter(|o| **o == pb::ContactOutcome::Cancelled as i32)
        .count();
    assert!(
        cancelled >= 100,
        "the 100 never handed over and those not called: {cancelled}"
    );
    let steps: Vec<i32> = waihu_testkit::eventually(
        Duration::from_secs(20),
        "campaign events stored",
        || async {
            let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT envelope FROM events WHERE event_type = 'ProviderCampaignChanged'
                   AND task_id = $1::uuid ORDER BY stream_version",
            )
            .bind(&task)
            .fetch_all(&cluster.env.pool)
            .await
            .ok()?;
            let states: Vec<i32> = rows
                .iter()
                .filter_map(|b| waihu_events::RecordedEvent::decode(b).ok())
                .filter_map(|e| match e.event {
                    waihu_events::Event::ProviderCampaignChanged(c) => Some(c.state),
                    _ => None,
                })
                .collect();
            (states.len() >= 4).then_some(states)
        },
    )
    .await;
    use pb::CampaignState as S;
    assert_eq!(
        steps,
        vec![
            S::Creating as i32,
            S::Running as i32,
            S::Stopped as i32,
            S::Done as i32
        ]
    );
    assert_replay_identical(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_on_a_line_without_a_campaign_api_fails_naming_why_and_its_calls_are_released() {
    let cluster = Cluster::start(fast_sim(9), vec![]).await;
    cluster
        .create_line(pb::CreateLineRequest {
            line: Some(pb::Line {
                line_id: "sip-1".into(),
                name: "a SIP trunk".into(),
                provider: "sip".into(),
                caller_number: "+865925550100".into(),
                max_concurrent: 1,
                provider_config: [("trunk".to_string(), "127.0.0.1:5999".to_string())].into(),
                ..Default::default()
            }),
            credentials: Default::default(),
        })
        .await;
    let list = phones(10, 5);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 10,
            caller_line: "sip-1".into(),
            ..spec("no campaign API", 0, 0)
        },
        &list,
    )
    .await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let stats = wait_stats_settled(&cluster, &task, 10, Duration::from_secs(30)).await;
    assert_eq!((stats.calls_placed, stats.calls_answered), (10, 0));
    let causes: Vec<(u32, u64)> = stats
        .hangup_causes
        .iter()
        .map(|c| (c.q850, c.count))
        .collect();
    assert_eq!(causes, vec![(41, 10)]);
    let c = campaigns_of(&cluster, &task).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, pb::CampaignState::Failed as i16);
    let why: String = sqlx::query_scalar(
        "SELECT last_error FROM provider.provider_campaigns WHERE campaign_id = $1",
    )
    .bind(c[0].0)
    .fetch_one(&cluster.env.pool)
    .await
    .expect("campaign");
    assert!(
        why.contains("sip") && why.contains("no campaign API"),
        "{why}"
    );
    assert_eq!(assert_lifecycles(&cluster).await, 10, "none was dialed");
    cluster.shutdown().await;
}

/// A campaign is handed over with the end of its calling window: the adapter stops it there,
/// the calls it did not reach are released as not placed, given their attempt back and left
/// pending for the next opening, and nothing more is handed over while the window is shut.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_stops_at_the_end_of_its_calling_window_and_what_it_did_not_reach_waits() {
    use chrono::Timelike;
    // A window closing at a minute boundary 25-85 s from now, in a zone not near midnight.
    let now = chrono::Utc::now();
    let shanghai = waihu_telephony::zone::parse("Asia/Shanghai").expect("zone");
    let zone = if (8..=22).contains(&now.with_timezone(&shanghai).hour()) {
        "Asia/Shanghai"
    } else {
        "UTC"
    };
    let tz = waihu_telephony::zone::parse(zone).expect("zone");
    let local = now.with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    let end = minute + if local.second() < 35 { 1 } else { 2 };
    let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    let hours = format!("{}-{}", hm(end.saturating_sub(120)), hm(end));
    let whole_second = now - chrono::Duration::nanoseconds(now.timestamp_subsec_nanos() as i64);
    let closes = whole_second
        + chrono::Duration::seconds((end * 60) as i64 - (minute * 60 + local.second()) as i64);

    let cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        fast_sim(1209),
        one_line(5),
        true,
        Duration::from_secs(7200),
        |c| c.sim_campaign_rate = 5.0,
    )
    .await;
    let contacts = 500;
    let list = phones(contacts, 6);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 500,
            window: Some(pb::CallingWindow {
                hours: vec![hours],
                time_zone: zone.into(),
                ..Default::default()
            }),
            ..spec("windowed campaign", 1, 1)
        },
        &list,
    )
    .await;
    start(&mut tasks, &task).await;
    let done = waihu_testkit::eventually(
        Duration::from_secs(150),
        "the campaign stopped and done",
        || async {
            let c = campaigns_of(&cluster, &task).await;
            (c.len() == 1 && c[0].1 == pb::CampaignState::Done as i16).then_some(c)
        },
    )
    .await;
    assert_eq!(done[0].2, 500, "all 500 handed over at once");
    // Stopped at the window's end (the worker's tick and a sync late at most).
    let stopped_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT occurred_at FROM events WHERE stream_id = $1 ORDER BY stream_version",
    )
    .bind(format!("campaign-{}", done[0].0))
    .fetch_all(&cluster.env.pool)
    .await
    .expect("campaign events")
    .get(2)
    .copied()
    .expect("a third step: stopped");
    assert!(
        stopped_at >= closes && stopped_at <= closes + chrono::Duration::seconds(5),
        "stopped at {stopped_at}, the window closed at {closes}"
    );
    // The calls it reached have their outcome; the rest are pending again, attempt given back.
    let rows: Vec<(i16, i32, i64)> = sqlx::query_as(
        "SELECT state, attempts, count(*) FROM dialer.dialer_contacts WHERE task_id = $1::uuid
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(&task)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("contacts");
    let waiting: i64 = rows
        .iter()
        .filter(|(state, attempts, _)| *state == 0 && *attempts == 0)
        .map(|r| r.2)
        .sum();
    assert!(waiting > 0 && waiting < 500, "{rows:?}");
    let stats = wait_stats(
        &cluster,
        &task,
        "every handed-over call released",
        Duration::from_secs(30),
        |s| s.calls_released == 500,
    )
    .await;
    assert!(stats.contacts_finished < 500);
    // Nothing more is handed over while the window is shut.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(campaigns_of(&cluster, &task).await.len(), 1);
    let t = tasks
        .get_task(pb::TaskRef {
            task_id: task.clone(),
        })
        .await
        .expect("task")
        .into_inner();
    assert_eq!(t.status, pb::TaskStatus::Running as i32);
    cluster.shutdown().await;
}
