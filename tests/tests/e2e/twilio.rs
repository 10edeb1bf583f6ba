//! Campaigns on a Twilio line, against a local server speaking Twilio's wire format
//! (`waihu_e2e::fakes::twilio`): the statistics come out exactly as the fake decided, though its
//! callbacks come twice, late, out of order or not at all; bad callbacks are refused; the line's
//! credentials never show.

use std::time::Duration;

use waihu_e2e::{
    fakes::twilio::{default_decide, twilio_signature, Delivery, FakeTwilio, Fate},
    *,
};
use waihu_events::pb;
use waihu_provider::sim::Simulator;

/// How Twilio posts its status callbacks.
const FORM: &str = "application/x-www-form-urlencoded";

/// What the statistics must be, from the fake's log of what it decided.
fn expected_from(fake: &FakeTwilio, contacts: u64) -> Expected {
    let ends = fake.calls().into_iter().map(|c| {
        let q850 = match &c.fate {
            Fate::Answered { .. } => 16,
            Fate::Busy => 17,
            Fate::NoAnswer => 19,
            // Twilio's call resource has no SIP code: a failed call heard of only by polling
            // is a plain "failed" (41); its callback carries SipResponseCode.
            Fate::Failed { .. } if c.delivery == Delivery::Silent => 41,
            Fate::Failed { sip } => waihu_telephony::hangup::sip_to_q850(*sip),
        };
        let talk_s = match c.fate {
            Fate::Answered { talk_s } => Some(talk_s),
            _ => None,
        };
        CallEnd {
            number: c.to,
            q850,
            talk_s,
        }
    });
    expected_from_calls(contacts, ends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_on_a_twilio_line_ends_with_the_statistics_the_provider_decided() {
    let fake = FakeTwilio::start(default_decide).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let line = cluster.create_line(fake.line("twilio-1", 120)).await;
    assert_eq!(line.credential_names, vec!["auth_token".to_string()]);
    let tested = cluster.test_line("twilio-1").await;
    assert!(tested.success, "{}", tested.message);

    let contacts = 500;
    let list = phones(contacts, 3);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("twilio", 1, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(240)).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let x = expected_from(&fake, contacts as u64);
    assert_stats_match(&stats, &x);
    // The fake's mix reached every kind of delivery and outcome; every call was retried at most
    // once (recall 1) and nothing was placed twice for one attempt.
    assert!(x.causes.len() >= 4, "{:?}", x.causes);
    assert!(x.calls_placed > contacts as u64, "some recalls");
    let per_number = calls_per_number(&cluster, &task).await;
    assert!(per_number.values().all(|n| *n <= 2), "{per_number:?}");
    assert_eq!(fake.refused_auth(), 0);
    // Each call's lifecycle events came out once each, in order, whatever order the callbacks
    // came in; every call was dialed.
    assert_eq!(assert_lifecycles(&cluster).await, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_unknown_oversized_and_malformed_callbacks_are_refused() {
    let fake = FakeTwilio::start(|_, _| (Fate::Answered { talk_s: 3 }, Delivery::Silent)).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    cluster.create_line(fake.line("twilio-1", 10)).await;
    let list = phones(1, 4);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("hooks", 0, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let sid = fake.calls()[0].sid.clone();
    let url = format!(
        "http://{}/api/v1/calls/webhook/twilio/status",
        cluster.provider_http
    );
    let http = reqwest::Client::new();
    let post = |body: String, sig: Option<String>| {
        let (http, url) = (&http, &url);
        async move {
            let sig = sig.as_deref().map(|s| ("x-twilio-signature", s));
            post_callback(http, url, FORM, sig, body).await.0
        }
    };
    let params = |sid: &str| {
        vec![
            ("CallSid".to_string(), sid.to_string()),
            ("CallStatus".to_string(), "completed".to_string()),
        ]
    };
    let body = |p: &[(String, String)]| {
        p.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    // Signed right: accepted (the call is over; nothing changes).
    let good = twilio_signature(&fake.auth_token, &url, &params(&sid));
    assert_eq!(post(body(&params(&sid)), Some(good.clone())).await, 200);
    // Signed with another token, signed for another body, unsigned: 401.
    let forged = twilio_signature("not-the-token", &url, &params(&sid));
    assert_eq!(post(body(&params(&sid)), Some(forged)).await, 401);
    let mut other = params(&sid);
    other[1].1 = "busy".into();
    assert_eq!(post(body(&other), Some(good.clone())).await, 401);
    assert_eq!(post(body(&params(&sid)), None).await, 401);
    // A call we never placed: 404; not the provider's format: 400; too big: 413.
    let unknown = params("CA0000");
    let sig = twilio_signature(&fake.auth_token, &url, &unknown);
    assert_eq!(post(body(&unknown), Some(sig)).await, 404);
    assert_eq!(
        post("CallStatus=completed".into(), Some(good.clone())).await,
        400
    );
    let huge = format!("CallSid={sid}&Pad={}", "x".repeat(200_000));
    assert_eq!(post(huge, Some(good)).await, 413);
    // An unknown provider: 404.
    let r = http
        .post(format!(
            "http://{}/api/v1/calls/webhook/nope",
            cluster.provider_http
        ))
        .body("x")
        .send()
        .await
        .expect("reachable");
    assert_eq!(r.status().as_u16(), 404);
    // The campaign itself was unaffected: one answered call.
    let stats = wait_stats_settled(&cluster, &task, 1, Duration::from_secs(30)).await;
    assert_eq!((stats.calls_placed, stats.calls_answered), (1, 1));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_line_secret_shows_in_no_log_line_reply_or_event() {
    let capture = Capture::install(
        "debug,h2=info,hyper=info,tower=info,sqlx=info,async_nats=info,reqwest=info,hyper_util=info",
    );
    let fake = FakeTwilio::start(default_decide).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let created = cluster.create_line(fake.line("twilio-1", 20)).await;
    // A second line with a wrong token: the provider refuses its calls and its test.
    let wrong_token = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let mut bad = fake.line("twilio-bad", 5);
    bad.credentials = [("auth_token".to_string(), wrong_token.clone())].into();
    cluster.create_line(bad).await;
    let t = cluster.test_line("twilio-bad").await;
    assert!(!t.success, "{t:?}");
    let mut p = cluster.providers().await;
    let replies = format!(
        "{created:?} {:?} {:?} {t:?}",
        p.list_lines(pb::ListLinesRequest {})
            .await
            .expect("list")
            .into_inner(),
        p.get_line(pb::LineRequest {
            line_id: "twilio-1".into()
        })
        .await
        .expect("get")
        .into_inner()
    );
    let list = phones(40, 5);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("secrets", 0, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    // A forged callback, logged as refused.
    let url = format!(
        "http://{}/api/v1/calls/webhook/twilio/status",
        cluster.provider_http
    );
    let sid = fake.calls()[0].sid.clone();
    let (status, _) = post_callback(
        &reqwest::Client::new(),
        &url,
        FORM,
        Some(("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl")),
        format!("CallSid={sid}&CallStatus=completed"),
    )
    .await;
    assert_eq!(status, 401);
    wait_stats_settled(&cluster, &task, 40, Duration::from_secs(60)).await;
    let envelopes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT envelope FROM events")
        .fetch_all(&cluster.env.pool)
        .await
        .expect("store");
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM provider.provider_line_credentials")
            .fetch_all(&cluster.env.pool)
            .await
            .expect("credentials");
    cluster.shutdown().await;

    let logs = capture.text();
    assert!(
        logs.contains("authentication failed"),
        "the forged callback is logged"
    );
    assert!(
        logs.contains("line misconfigured"),
        "the bad line's refusals are logged"
    );
    for secret in [fake.auth_token.as_str(), wrong_token.as_str()] {
        assert!(!logs.contains(secret), "a secret in the logs");
        assert!(!replies.contains(secret), "a secret in a reply");
        for e in envelopes.iter().chain(&sealed) {
            assert!(
                !e.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret in an event or stored in clear"
            );
        }
    }
    assert!(
        replies.contains("auth_token"),
        "the credential's name is shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_key_reseals_the_credentials_and_the_line_keeps_working() {
    let fake = FakeTwilio::start(default_decide).await;
    let mut cluster = Cluster::start(Simulator::default(), vec![]).await;
    cluster.create_line(fake.line("twilio-1", 10)).await;
    let key_ids = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT key_id FROM provider.provider_line_credentials")
            .fetch_all(&pool)
            .await
            .expect("credentials")
    };
    let before = key_ids(cluster.env.pool.clone()).await;
    assert_eq!(before.len(), 1);
    // Rotate: a new key, the old one kept to open what it sealed.
    let old = cluster.credentials_key.clone();
    cluster.credentials_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    cluster.credentials_old_keys = vec![old];
    cluster.restart_provider().await;
    let after = key_ids(cluster.env.pool.clone()).await;
    assert_ne!(after, before, "re-sealed under the new key at start-up");
    // The old key can go now: the line still opens and dials.
    cluster.credentials_old_keys.clear();
    cluster.restart_provider().await;
    let t = cluster.test_line("twilio-1").await;
    assert!(t.success, "{t:?}");
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("rotated", 0, 0), &phones(20, 6)).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let stats = wait_stats_settled(&cluster, &task, 20, Duration::from_secs(60)).await;
    assert_eq!(stats.calls_placed, fake.calls().len() as u64);
    cluster.shutdown().await;
}
