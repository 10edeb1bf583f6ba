//! Campaigns on Aliyun CCC lines, against a local server speaking CCC's RPC API
//! (`waihu_e2e::fakes::aliyun`): the statistics come out exactly as the fake decided, on a line
//! signing with RPC V1 and one signing with ACS3 alike, though callbacks come twice, late, out of
//! order, naming the call only by its tags, or not at all; throttled requests are sent again
//! without placing a call twice; bad callbacks are refused; the line test signs a real read and
//! fails, without the secret, on a wrong one; a hang-up reaches ReleaseCall.

use std::{collections::HashMap, time::Duration};

use serde_json::json;
use waihu_e2e::{
    fakes::aliyun::{default_decide, Delivery, FakeAliyun, Fate, Scheme},
    *,
};
use waihu_events::pb;
use waihu_provider::sim::Simulator;
use waihu_telephony::hangup::{sip_to_q850, RETRYABLE_Q850};

/// An Aliyun line on the fake, as `ProviderService.CreateLine` takes it.
fn aliyun_line(
    fake: &FakeAliyun,
    id: &str,
    max_concurrent: u32,
    signature: &str,
    secret: &str,
) -> pb::CreateLineRequest {
    pb::CreateLineRequest {
        line: Some(pb::Line {
            line_id: id.into(),
            name: "Aliyun CCC test line".into(),
            provider: "aliyun".into(),
            caller_number: "+862161234567".into(),
            max_concurrent,
            provider_config: [
                ("instance_id", fake.instance_id.clone()),
                ("access_key_id", fake.access_key_id.clone()),
                ("base_url", fake.base_url()),
                ("signature", signature.to_string()),
                ("timeout_seconds", "45".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..Default::default()
        }),
        credentials: [
            ("access_key_secret".to_string(), secret.to_string()),
            ("webhook_token".to_string(), fake.webhook_token.clone()),
        ]
        .into(),
    }
}

/// The status callback URL the operator configures on the CCC instance.
fn callback_url(cluster: &Cluster, token: &str) -> String {
    format!(
        "http://{}/api/v1/calls/webhook/aliyun/status?token={token}",
        cluster.provider_http
    )
}

/// The Q.850 cause each fate must end with, restated from the SIP table (not the crate under
/// test): a reason without a SIP code is 16 when answered and 31 when not; a callee MakeCall
/// refuses is INVALID_NUMBER_FORMAT.
fn q850_of(fate: &Fate) -> u32 {
    match fate {
        Fate::Refused => 28,
        Fate::NoReason => 31,
        f => match f
            .release_reason()
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
        {
            Some(sip) => sip_to_q850(sip),
            None if f.answered() => 16,
            None => 31,
        },
    }
}

/// What the statistics must be, from the fake's log of what it decided. Polling
/// (GetCallDetailRecord) and callbacks say the same of every call here, so delivery does not
/// change the expectation.
fn expected_from(fake: &FakeAliyun, contacts: u64) -> Expected {
    let ends = fake.calls().into_iter().map(|c| CallEnd {
        q850: q850_of(&c.fate),
        talk_s: c.fate.answered().then(|| c.fate.talk_s()),
        number: c.callee,
    });
    expected_from_calls(contacts, ends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_on_aliyun_lines_ends_with_the_statistics_ccc_decided() {
    let fake = FakeAliyun::start(default_decide).await;
    fake.throttle_every(37);
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    fake.set_callback_url(&callback_url(&cluster, &fake.webhook_token));
    let secret = fake.access_key_secret.clone();
    for (id, signature) in [("aliyun-v1", "v1"), ("aliyun-acs3", "acs3")] {
        let line = cluster
            .create_line(aliyun_line(&fake, id, 60, signature, &secret))
            .await;
        assert_eq!(
            line.credential_names,
            vec!["access_key_secret".to_string(), "webhook_token".to_string()]
        );
        let tested = cluster.test_line(id).await;
        assert!(tested.success, "{id}: {}", tested.message);
    }
    assert_eq!(fake.action_count("ListCallDetailRecords"), 2);

    let contacts = 500;
    let list = phones(contacts, 6);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("aliyun", 1, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(300)).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let x = expected_from(&fake, contacts as u64);
    assert_stats_match(&stats, &x);

    // Each number got what the recall rules allow for the cause its first call ended with:
    // one call, or two when the first was retryable.
    let mut per_callee: HashMap<String, Vec<u32>> = HashMap::new();
    for c in fake.calls() {
        per_callee
            .entry(c.callee.clone())
            .or_default()
            .push(q850_of(&c.fate));
    }
    assert_eq!(per_callee.len(), contacts);
    for (callee, causes) in &per_callee {
        let want = if RETRYABLE_Q850.contains(&causes[0]) {
            2
        } else {
            1
        };
        assert_eq!(causes.len(), want, "{callee}: {causes:?}");
    }
    let per_number = calls_per_number(&cluster, &task).await;
    assert!(per_number.values().all(|n| *n <= 2), "{per_number:?}");

    // The fake's mix reached every kind of fate and delivery, both signatures and throttling.
    let calls = fake.calls();
    assert!(x.causes.len() >= 8, "{:?}", x.causes);
    for d in [
        Delivery::Silent,
        Delivery::Twice,
        Delivery::FinalFirst,
        Delivery::Late,
        Delivery::TagsOnly,
        Delivery::InOrder,
    ] {
        assert!(calls.iter().any(|c| c.delivery == d), "{d:?}");
    }
    for s in [Scheme::V1, Scheme::Acs3] {
        assert!(calls.iter().any(|c| c.scheme == s), "{s:?} calls");
        assert!(fake.verified(s) > 0, "{s:?} requests");
    }
    assert!(
        fake.throttled() > 0,
        "some MakeCall requests were throttled"
    );
    assert!(fake.action_count("GetCallDetailRecord") > 0, "polled");
    // Every accepted call carried our call id in its tags, the callee in CCC's spelling and the
    // line's number as its caller.
    for c in &calls {
        assert!(c.tags.starts_with("waihu-call:"), "{c:?}");
        assert_eq!(c.caller, "02161234567");
        assert_eq!(c.callee.len(), 11);
    }
    assert_eq!(fake.refused_auth(), 0, "every request was signed right");
    assert_eq!(fake.callbacks_failed(), 0, "every callback was taken");
    assert_eq!(
        fake.bad_replies(),
        0,
        "every reply was {{\"success\":true}}"
    );

    // Each call's lifecycle events came out once each, in order, whatever order the callbacks
    // came in; a call MakeCall refused was released without dialing.
    let refused = calls.iter().filter(|c| c.fate == Fate::Refused).count();
    assert!(refused > 0);
    assert_eq!(assert_lifecycles(&cluster).await, refused);
    // Both ways of learning an end were used: some releases quote a Released callback, others a
    // call detail record.
    let (by_callback, by_record): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE position(convert_to('\"event\":\"Released\"', 'UTF8') IN envelope) > 0),
                count(*) FILTER (WHERE position(convert_to('\"ContactId\":', 'UTF8') IN envelope) > 0)
         FROM events WHERE event_type = 'CallReleased'",
    )
    .fetch_one(&cluster.env.pool)
    .await
    .expect("store");
    assert!(
        by_callback > 0 && by_record > 0,
        "{by_callback} {by_record}"
    );
    assert!(fake.callbacks_sent() > 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aliyun_callbacks_are_authenticated_tests_sign_and_hang_ups_reach_release_call() {
    let fake = FakeAliyun::start(|_, _| (Fate::Held, Delivery::Silent)).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let secret = fake.access_key_secret.clone();
    cluster
        .create_line(aliyun_line(&fake, "aliyun-1", 10, "v1", &secret))
        .await;

    // TestLine signs a real read, and fails on a wrong secret or key without showing either.
    let ok = cluster.test_line("aliyun-1").await;
    assert!(ok.success, "{}", ok.message);
    let wrong_secret = "not-the-secret-0123456789";
    cluster
        .create_line(aliyun_line(&fake, "aliyun-bad", 1, "acs3", wrong_secret))
        .await;
    let bad = cluster.test_line("aliyun-bad").await;
    assert!(!bad.success);
    assert!(
        bad.message.contains("SignatureDoesNotMatch"),
        "{}",
        bad.message
    );
    assert!(!bad.message.contains(wrong_secret) && !bad.message.contains(&secret));
    let mut other_key = aliyun_line(&fake, "aliyun-key", 1, "v1", &secret);
    if let Some(l) = other_key.line.as_mut() {
        l.provider_config
            .insert("access_key_id".into(), "LTAI-unknown".into());
    }
    cluster.create_line(other_key).await;
    let bad = cluster.test_line("aliyun-key").await;
    assert!(!bad.success);
    assert!(
        bad.message.contains("InvalidAccessKeyId"),
        "{}",
        bad.message
    );
    assert_eq!(fake.refused_auth(), 2);

    // A manual call: CCC answers and holds it; no callback comes by itself.
    let placed = cluster
        .dialer()
        .await
        .dial(pb::DialRequest {
            phone: "13900000007".into(),
            line_id: "aliyun-1".into(),
            ..Default::default()
        })
        .await
        .expect("dial")
        .into_inner();
    let job = waihu_testkit::eventually(Duration::from_secs(30), "MakeCall", || {
        let fake = &fake;
        async move { fake.calls().first().map(|c| c.job_id.clone()) }
    })
    .await;
    let status_url = callback_url(&cluster, &fake.webhook_token);
    let http = reqwest::Client::new();
    let post = |url: String, body: String| {
        let http = &http;
        async move { post_callback(http, &url, "application/json", None, body).await }
    };
    let answered = json!({
        "instanceId": fake.instance_id, "callId": job, "jobId": job, "event": "Answered",
        "eventTime": "2024-05-06T07:08:09.000Z", "caller": "02161234567",
        "callee": "13900000007", "agentId": "", "tags": ""
    })
    .to_string();
    // Without the token, with another token, with a token for another URL parameter: 401.
    let base = format!(
        "http://{}/api/v1/calls/webhook/aliyun/status",
        cluster.provider_http
    );
    // The adapter records CCC's job id just after MakeCall returns (the fake has seen the
    // request a moment before): until then a callback names a call it does not know, 404.
    waihu_testkit::eventually(
        Duration::from_secs(30),
        "the adapter to know the job",
        || {
            let (url, body) = (base.clone(), answered.clone());
            let post = &post;
            async move { (post(url, body).await.0 != 404).then_some(()) }
        },
    )
    .await;
    for url in [
        base.clone(),
        format!("{base}?token=wrong"),
        format!("{base}?tok={}", fake.webhook_token),
        format!("{base}?token={}x", fake.webhook_token),
    ] {
        assert_eq!(post(url.clone(), answered.clone()).await.0, 401, "{url}");
    }
    // The token given: taken, with seed 003's reply; the call is connected.
    let (status, reply) = post(status_url.clone(), answered.clone()).await;
    assert_eq!((status, reply.as_str()), (200, r#"{"success":true}"#));
    let connected = waihu_testkit::eventually(Duration::from_secs(30), "connected", || {
        let cluster = &cluster;
        let call = placed.call_id.clone();
        async move {
            let s = cluster
                .dialer()
                .await
                .get_call_status(pb::GetCallStatusRequest { call_id: call })
                .await
                .ok()?
                .into_inner();
            (s.status == "connected").then_some(s)
        }
    })
    .await;
    assert!(connected.answered_at.is_some());
    // A call we never placed: 404; not CCC's shape: 400; too big: 413.
    let unknown = answered.replace(&job, "job-0000");
    assert_eq!(post(status_url.clone(), unknown).await.0, 404);
    for body in [
        "not json",
        "[]",
        r#"{"jobId":"x"}"#,
        r#"{"event":"Released"}"#,
    ] {
        assert_eq!(post(status_url.clone(), body.into()).await.0, 400, "{body}");
    }
    let huge = format!(
        r#"{{"jobId":"{job}","event":"Ringing","pad":"{}"}}"#,
        "x".repeat(100_000)
    );
    assert_eq!(post(status_url.clone(), huge).await.0, 413);
    // The recording callback: authenticated, acknowledged, nothing recorded.
    let recording_url = status_url.replacen("/status", "/recording", 1);
    let recording = json!({
        "instanceId": fake.instance_id, "callId": job,
        "recordingUrl": "https://x/r.wav", "recordingDuration": 3,
        "recordingSize": 48000, "recordingTime": "2024-05-06T07:09:00.000Z"
    })
    .to_string();
    let (status, reply) = post(recording_url.clone(), recording.clone()).await;
    assert_eq!((status, reply.as_str()), (200, r#"{"success":true}"#));
    assert_eq!(
        post(
            recording_url.replacen(&fake.webhook_token, "nope", 1),
            recording.clone()
        )
        .await
        .0,
        401
    );
    let unknown_recording = recording.replace(&job, "job-0000");
    assert_eq!(post(recording_url, unknown_recording).await.0, 404);

    // Hanging up reaches CCC as a signed ReleaseCall for the call's JobId.
    let ended = cluster
        .dialer()
        .await
        .hangup(pb::HangupRequest {
            call_id: placed.call_id.clone(),
        })
        .await
        .expect("hangup")
        .into_inner();
    assert!(ended.ended);
    waihu_testkit::eventually(Duration::from_secs(30), "ReleaseCall", || {
        let (fake, job) = (&fake, &job);
        async move { fake.releases().contains(job).then_some(()) }
    })
    .await;
    assert_eq!(
        fake.refused_auth(),
        2,
        "only the two bad lines were refused"
    );
    cluster.shutdown().await;
}
