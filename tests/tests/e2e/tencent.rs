//! Campaigns on a Tencent CCC line, against a local server speaking CCC's wire format
//! (`waihu_e2e::fakes::tencent`): the statistics come out exactly as the fake decided, though
//! its CDR pushes come twice, late, before the task says the call is over, or not at all; bad
//! pushes are refused; the line test signs a real read and fails, without the secret, on a
//! wrong key.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use waihu_e2e::{
    fakes::tencent::{default_decide, Delivery, FakeTencent, Fate},
    *,
};
use waihu_events::pb;
use waihu_provider::sim::Simulator;

/// A Tencent line on the fake, as `ProviderService.CreateLine` takes it.
fn tencent_line(
    fake: &FakeTencent,
    id: &str,
    max_concurrent: u32,
    secret_key: &str,
) -> pb::CreateLineRequest {
    pb::CreateLineRequest {
        line: Some(pb::Line {
            line_id: id.into(),
            name: "Tencent CCC test line".into(),
            provider: "tencent".into(),
            caller_number: "+862066668888".into(),
            max_concurrent,
            provider_config: [
                ("sdk_app_id", fake.sdk_app_id.to_string()),
                ("secret_id", fake.secret_id.clone()),
                ("ivr_id", "7".to_string()),
                ("webhook_user", fake.webhook_user.clone()),
                ("base_url", fake.base_url()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..Default::default()
        }),
        credentials: [
            ("secret_key".to_string(), secret_key.to_string()),
            (
                "webhook_password".to_string(),
                fake.webhook_password.clone(),
            ),
        ]
        .into(),
    }
}

/// The Q.850 cause each fate must end with: the EndStatus table restated here, not read from
/// the crate under test.
fn q850_of(fate: &Fate) -> u32 {
    match fate {
        Fate::Answered { .. } => 16,
        Fate::NotAnswer => 19,
        Fate::Busy => 17,
        Fate::PowerOff => 20,
        Fate::NumberNotExist => 1,
        Fate::UserReject => 21,
        Fate::OperatorError => 38,
    }
}

/// What the statistics must be, from the fake's log of what it decided. CCC's poll API reads
/// back the very CDR the push carries (`DescribeTelCdr`), so a call heard of only by polling
/// ends exactly as a pushed one does.
fn expected_from(fake: &FakeTencent, contacts: u64) -> Expected {
    let ends = fake.calls().into_iter().map(|c| CallEnd {
        q850: q850_of(&c.fate),
        talk_s: match c.fate {
            Fate::Answered { talk_s, .. } => Some(talk_s),
            _ => None,
        },
        number: c.callee,
    });
    expected_from_calls(contacts, ends)
}

/// The push URL as set in the CCC console.
fn push_url(cluster: &Cluster) -> String {
    format!(
        "http://{}/api/v1/calls/webhook/tencent",
        cluster.provider_http
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_on_a_tencent_line_ends_with_the_statistics_the_provider_decided() {
    let fake = FakeTencent::start(default_decide).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    fake.push_to(&push_url(&cluster));
    let line = cluster
        .create_line(tencent_line(&fake, "tencent-1", 120, &fake.secret_key))
        .await;
    assert_eq!(
        line.credential_names,
        vec!["secret_key".to_string(), "webhook_password".to_string()]
    );

    let contacts = 500;
    let list = phones(contacts, 5);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("tencent", 1, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(240)).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let x = expected_from(&fake, contacts as u64);
    assert_stats_match(&stats, &x);
    // The mix reached every fate and every delivery; every call was retried at most once
    // (recall 1) and nothing was placed twice for one attempt; every request was signed right.
    assert_eq!(x.causes.len(), 7, "{:?}", x.causes);
    let calls = fake.calls();
    for d in [
        Delivery::InOrder,
        Delivery::Twice,
        Delivery::Late,
        Delivery::Early,
        Delivery::Silent,
    ] {
        assert!(calls.iter().any(|c| c.delivery == d), "{d:?}");
    }
    assert!(x.calls_placed > contacts as u64, "some recalls");
    let per_number = calls_per_number(&cluster, &task).await;
    assert!(per_number.values().all(|n| *n <= 2), "{per_number:?}");
    assert_eq!(fake.refused(), vec![]);
    // Each task was one callee, tried once, carrying our reference.
    assert!(calls.iter().all(|c| c.uui.starts_with("waihu-call:")));
    let tasks_made: std::collections::BTreeSet<u64> = calls.iter().map(|c| c.task_id).collect();
    assert_eq!(tasks_made.len(), calls.len());
    // Silent calls were found by polling the task and reading the CDR back.
    assert!(fake.requests("DescribeAutoCalloutTask") > 0);
    assert!(fake.requests("DescribeTelCdr") > 0);
    // Every push was taken with CCC's expected reply, none refused (recording pushes name only
    // a session: authenticated by the application's lines and acknowledged).
    let pushes = fake.pushes();
    let cdr_pushes: Vec<_> = pushes.iter().filter(|p| p.action == "cdr").collect();
    assert!(!cdr_pushes.is_empty());
    for p in &cdr_pushes {
        assert_eq!(
            (p.status, p.body.as_str()),
            (200, r#"{"ErrCode":0}"#),
            "{p:?}"
        );
    }
    let records: Vec<_> = pushes.iter().filter(|p| p.action == "record").collect();
    assert!(!records.is_empty());
    assert!(records.iter().all(|p| p.status == 200), "{records:?}");
    // Each call's lifecycle events came out once each, in order, whatever order the pushes and
    // polls came in; every call was dialed.
    assert_eq!(assert_lifecycles(&cluster).await, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_unknown_oversized_and_malformed_pushes_are_refused_and_the_line_test_signs() {
    let fake = FakeTencent::start(|_, _| {
        (
            Fate::Answered {
                ring_s: 1,
                talk_s: 3,
            },
            Delivery::Silent,
        )
    })
    .await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    fake.push_to(&push_url(&cluster));
    cluster
        .create_line(tencent_line(&fake, "tencent-1", 10, &fake.secret_key))
        .await;
    // One call, heard of by polling alone.
    let list = phones(1, 4);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("hooks", 0, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let placed = fake.calls()[0].clone();
    assert!(placed.uui.starts_with("waihu-call:"));

    let http = reqwest::Client::new();
    let url = push_url(&cluster);
    let basic = |user: &str, pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let right = basic(&fake.webhook_user, &fake.webhook_password);
    let post = |query: &str, body: String, auth: Option<String>| {
        let (http, url) = (&http, format!("{url}{query}"));
        async move {
            let auth = auth.as_deref().map(|a| ("authorization", a));
            post_callback(http, &url, "application/json;charset=utf8", auth, body).await
        }
    };
    let cdr = |uui: &str| {
        json!({
            "SdkAppId": fake.sdk_app_id, "SessionId": placed.session_id, "Caller": placed.caller,
            "Callee": placed.callee, "Direction": 1, "CallType": 1, "Duration": 3,
            "StartTimestamp": placed.not_before, "RingTimestamp": placed.not_before + 1,
            "AcceptTimestamp": placed.not_before + 2, "EndedTimestamp": placed.not_before + 5,
            "EndStatusString": "ok", "HungUpSide": "user", "UUI": uui,
        })
        .to_string()
    };
    let cdr_query = "?action=cdr&version=1";
    // Authentic: taken with CCC's expected reply (the call is over; nothing changes).
    assert_eq!(
        post(cdr_query, cdr(&placed.uui), Some(right.clone())).await,
        (200, r#"{"ErrCode":0}"#.to_string())
    );
    // A wrong password, a wrong user, another scheme, none: 401.
    for auth in [
        Some(basic(&fake.webhook_user, "not-the-password")),
        Some(basic("someone", &fake.webhook_password)),
        Some(format!("Bearer {}", fake.webhook_password)),
        None,
    ] {
        assert_eq!(
            post(cdr_query, cdr(&placed.uui), auth.clone()).await.0,
            401,
            "{auth:?}"
        );
    }
    // A call we never placed, or a CDR naming only its session: 404.
    let stranger = format!("waihu-call:{}", uuid::Uuid::new_v4());
    assert_eq!(
        post(cdr_query, cdr(&stranger), Some(right.clone())).await.0,
        404
    );
    assert_eq!(post(cdr_query, cdr(""), Some(right.clone())).await.0, 404);
    // Not CCC's format: 400 (not JSON, no session, no end, no action, another version).
    for (query, body) in [
        (cdr_query, "not json".to_string()),
        (
            cdr_query,
            json!({"EndStatus": 1, "UUI": placed.uui}).to_string(),
        ),
        (
            cdr_query,
            json!({"SessionId": "s", "UUI": placed.uui}).to_string(),
        ),
        ("", cdr(&placed.uui)),
        ("?action=cdr&version=2", cdr(&placed.uui)),
    ] {
        assert_eq!(
            post(query, body.clone(), Some(right.clone())).await.0,
            400,
            "{query} {body}"
        );
    }
    // Too big: 413.
    let huge = json!({"SessionId": "s", "Pad": "x".repeat(200_000)}).to_string();
    assert_eq!(post(cdr_query, huge, Some(right.clone())).await.0, 413);
    // A recording push as documented names only its session and application: authenticated
    // against the application's lines, then acknowledged with nothing recorded (401 with
    // wrong credentials). One that names our call is authenticated the same way.
    let record = |uui: Option<&str>| {
        let mut v = json!({"SdkAppId": fake.sdk_app_id, "RecordId": "r1",
            "SessionId": placed.session_id, "Timestamp": placed.not_before + 5,
            "EndpointUser": placed.callee, "RecordURL": "http://recorder.example/r1.mp3"});
        if let Some(u) = uui {
            v["UUI"] = Value::from(u);
        }
        v.to_string()
    };
    let record_query = "?action=record&version=1";
    assert_eq!(
        post(record_query, record(None), Some(right.clone())).await,
        (200, r#"{"ErrCode":0}"#.to_string())
    );
    assert_eq!(post(record_query, record(None), None).await.0, 401);
    assert_eq!(
        post(record_query, record(Some(&placed.uui)), Some(right.clone())).await,
        (200, r#"{"ErrCode":0}"#.to_string())
    );
    assert_eq!(
        post(record_query, record(Some(&placed.uui)), None).await.0,
        401
    );
    // The campaign itself was unaffected: one answered call of 3 seconds.
    let stats = wait_stats_settled(&cluster, &task, 1, Duration::from_secs(30)).await;
    assert_eq!(
        (
            stats.calls_placed,
            stats.calls_answered,
            stats.total_talk_seconds
        ),
        (1, 1, 3)
    );
    // The line test: a signed read that passes, and one CCC refuses, never showing the key (a
    // line made only now: a campaign would use it too).
    let wrong_secret = "wrong-secret-key-1234567890";
    cluster
        .create_line(tencent_line(&fake, "tencent-bad", 10, wrong_secret))
        .await;
    let good = cluster.test_line("tencent-1").await;
    assert!(good.success, "{}", good.message);
    assert_eq!(fake.requests("DescribeAutoCalloutTasks"), 1);
    let bad = cluster.test_line("tencent-bad").await;
    assert!(!bad.success, "{}", bad.message);
    assert!(
        bad.message.contains("AuthFailure.SignatureFailure"),
        "{}",
        bad.message
    );
    assert!(!bad.message.contains(wrong_secret), "{}", bad.message);
    assert!(!bad.message.contains(&fake.secret_key), "{}", bad.message);
    assert_eq!(fake.refused().len(), 1);

    cluster.shutdown().await;
}

/// Provider-campaign mode (seed 001) on CCC auto-callout tasks: a 2,000-contact task handed
/// over in tasks of up to 800 callees, paused midway (`PauseAutoCalloutTask`), resumed, the
/// adapter killed in the middle of a sync, rolled over and completed, with the statistics the
/// fake decided, one CCC task per campaign and no contact handed over twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_campaign_on_tencent_pauses_survives_a_crash_mid_sync_and_rolls_over() {
    let fake = FakeTencent::start(default_decide).await;
    // 800 callees take about 3 s of the task's running time.
    fake.set_pace(Duration::from_millis(4));
    let mut cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        Simulator::default(),
        vec![],
        true,
        Duration::from_secs(7200),
        |c| c.campaigns.sync = Duration::from_secs(1),
    )
    .await;
    cluster
        .create_line(tencent_line(&fake, "tencent-1", 5, &fake.secret_key))
        .await;
    let contacts = 2000;
    let list = phones(contacts, 6);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 800,
            caller_line: "tencent-1".into(),
            ..spec("tencent campaign", 1, 1)
        },
        &list,
    )
    .await;
    let driven = waihu_e2e::campaigns::drive(&mut cluster, &task, 800).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let x = expected_from(&fake, contacts as u64);
    assert_stats_match(&stats, &x);
    let calls = fake.calls();
    let mut attempts = std::collections::BTreeMap::<String, u32>::new();
    for c in &calls {
        *attempts
            .entry(format!("+{}", c.callee.trim_start_matches("00")))
            .or_default() += 1;
    }
    waihu_e2e::campaigns::assert_handed_over_once(
        &cluster,
        &task,
        &driven,
        &attempts,
        x.calls_placed,
    )
    .await;
    assert!(
        driven.published_unmarked > 0,
        "the kill came in the middle of a sync"
    );
    // One CCC task per campaign, named by the campaign's id: none created twice after the
    // crash; every callee carries our call's reference; every request was signed right.
    let made: std::collections::BTreeSet<String> =
        fake.tasks().into_iter().map(|(_, name, _)| name).collect();
    let ours: std::collections::BTreeSet<String> =
        driven.campaigns.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(made, ours);
    assert_eq!(fake.tasks().len(), driven.campaigns.len());
    assert!(calls.iter().all(|c| c.uui.starts_with("waihu-call:")));
    assert_eq!(fake.refused(), vec![]);
    assert!(fake.requests("PauseAutoCalloutTask") >= 1);
    assert!(fake.requests("ResumeAutoCalloutTask") >= 1);
    assert!(fake.requests("DescribeTelCdr") > 0);
    assert_lifecycles(&cluster).await;
    assert_replay_identical(&cluster).await;
    cluster.shutdown().await;
}

/// A CDR pushed for a campaign's call is acknowledged as CCC expects and brings the campaign's
/// sync forward: with syncs an hour apart, the task still completes in seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_about_a_campaigns_calls_are_acknowledged_and_bring_its_sync_forward() {
    let fake = FakeTencent::start(|_, _| {
        (
            Fate::Answered {
                ring_s: 1,
                talk_s: 3,
            },
            Delivery::InOrder,
        )
    })
    .await;
    let cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        Simulator::default(),
        vec![],
        true,
        Duration::from_secs(7200),
        |c| c.campaigns.sync = Duration::from_secs(3600),
    )
    .await;
    fake.push_to(&push_url(&cluster));
    cluster
        .create_line(tencent_line(&fake, "tencent-1", 5, &fake.secret_key))
        .await;
    let list = phones(40, 7);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 40,
            caller_line: "tencent-1".into(),
            ..spec("pushed campaign", 0, 0)
        },
        &list,
    )
    .await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let stats = wait_stats_settled(&cluster, &task, 40, Duration::from_secs(30)).await;
    assert_eq!((stats.calls_placed, stats.calls_answered), (40, 40));
    let cdr_pushes: Vec<_> = fake
        .pushes()
        .into_iter()
        .filter(|p| p.action == "cdr")
        .collect();
    assert_eq!(cdr_pushes.len(), 40);
    for p in &cdr_pushes {
        assert_eq!(
            (p.status, p.body.as_str()),
            (200, r#"{"ErrCode":0}"#),
            "{p:?}"
        );
    }
    cluster.shutdown().await;
}

/// CCC finished a campaign but never shows its calls' CDRs: after `result_wait` the calls are
/// released as unknown, the campaign is done and the task completes instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_a_provider_never_shows_are_released_as_unknown_after_the_wait() {
    let fake = FakeTencent::start(default_decide).await;
    fake.set_cdr_lag(Duration::from_secs(3600));
    let cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        Simulator::default(),
        vec![],
        true,
        Duration::from_secs(7200),
        |c| c.campaigns.result_wait = Duration::from_secs(3),
    )
    .await;
    cluster
        .create_line(tencent_line(&fake, "tencent-1", 5, &fake.secret_key))
        .await;
    let list = phones(20, 8);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            campaign_size: 20,
            caller_line: "tencent-1".into(),
            ..spec("lagging CDRs", 0, 0)
        },
        &list,
    )
    .await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let stats = wait_stats_settled(&cluster, &task, 20, Duration::from_secs(30)).await;
    let causes: Vec<(u32, u64)> = stats
        .hangup_causes
        .iter()
        .map(|c| (c.q850, c.count))
        .collect();
    assert_eq!(causes, vec![(41, 20)]);
    let c = waihu_e2e::campaigns::campaigns_of(&cluster, &task).await;
    assert_eq!((c.len(), c[0].1), (1, pb::CampaignState::Done as i16));
    let unknown: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'CallReleased' AND task_id = $1::uuid",
    )
    .bind(&task)
    .fetch_one(&cluster.env.pool)
    .await
    .expect("releases");
    assert_eq!(unknown, 20);
    assert!(
        fake.requests("DescribeTelCdr") > 1,
        "asked again while lagging"
    );
    cluster.shutdown().await;
}
