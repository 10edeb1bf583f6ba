//! Campaigns on Ronglian (容联云) lines, against a local server speaking Ronglian's wire format
//! (`waihu_e2e::fakes::ronglian`): voice notifications and two-way callbacks end with exactly
//! the statistics the fake decided, though its notifications come twice, late, before the dial
//! request's reply or not at all (then only `CallResult` polls find the end), some requests
//! are answered "system busy" and some numbers refused; a hung-up callback is cancelled at the
//! provider; forged, unknown, malformed and oversized notifications are refused; a line's test
//! passes with its credentials and fails, without showing them, with wrong ones.

use std::time::Duration;

use waihu_e2e::{
    fakes::ronglian::{default_decide, Delivery, FakeRonglian, Fate, Kind, Options},
    *,
};
use waihu_events::pb;
use waihu_provider::sim::Simulator;

const WEBHOOK_TOKEN: &str = "notify-secret/42+&=";
const HOOK_REPLY: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><statuscode>000000</statuscode></Response>";

/// A Ronglian line on the fake, as `ProviderService.CreateLine` takes it.
fn ronglian_line(
    fake: &FakeRonglian,
    id: &str,
    mode: &str,
    max_concurrent: u32,
) -> pb::CreateLineRequest {
    let base_url = fake.base_url();
    pb::CreateLineRequest {
        line: Some(pb::Line {
            line_id: id.into(),
            name: "Ronglian test line".into(),
            provider: "ronglian".into(),
            caller_number: "+862161234567".into(),
            max_concurrent,
            provider_config: [
                ("account_sid", fake.account_sid.as_str()),
                ("app_id", fake.app_id.as_str()),
                ("base_url", base_url.as_str()),
                ("mode", mode),
                ("media_txt", "您好，您的订单已发货"),
                ("agent_number", "+8613900000001"),
                ("sub_account_sid", fake.sub_account_sid.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        }),
        credentials: [
            ("auth_token", fake.auth_token.as_str()),
            ("webhook_token", WEBHOOK_TOKEN),
            ("sub_account_token", fake.sub_account_token.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

/// What the statistics must be, from the fake's log of what it decided. A call result
/// (`CallResult`) has only the three voice notification states; the fake's callback byetypes
/// are chosen to agree with them (see `Fate::byetype`), so a call's cause is the same whether
/// its poll or its notification told it first.
fn expected_from(fake: &FakeRonglian, contacts: u64) -> Expected {
    let ends = fake.calls().into_iter().map(|c| {
        let q850 = match &c.fate {
            Fate::Answered { .. } => 16,
            Fate::NoAnswer => 19,
            Fate::Failed => 41,
            // 100006, an invalid number: released at once with INVALID_NUMBER_FORMAT.
            Fate::Refused => 28,
        };
        CallEnd {
            number: c.to,
            q850,
            talk_s: match c.fate {
                Fate::Answered { talk_s } => Some(talk_s),
                _ => None,
            },
        }
    });
    expected_from_calls(contacts, ends)
}

/// The notifications the fake must have had acknowledged once it is done: one per call, two
/// for those notified twice or before the dial reply, none for silent ones.
fn acks_due(fake: &FakeRonglian) -> u64 {
    fake.calls()
        .iter()
        .filter(|c| c.call_sid.is_some())
        .map(|c| match c.delivery {
            Delivery::Silent => 0,
            Delivery::InOrder | Delivery::Late => 1,
            Delivery::Twice | Delivery::BeforeReply => 2,
        })
        .sum()
}

/// Runs a campaign of `contacts` on a fresh line in `mode` and checks it against the fake.
async fn campaign(mode: &str, contacts: usize, salt: u32) {
    let fake = FakeRonglian::start(default_decide).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let line = cluster
        .create_line(ronglian_line(&fake, "rl-1", mode, 120))
        .await;
    assert_eq!(
        line.credential_names,
        vec!["auth_token", "sub_account_token", "webhook_token"]
    );
    let tested = cluster.test_line("rl-1").await;
    assert!(tested.success, "{}", tested.message);

    let list = phones(contacts, salt);
    let mut tasks = cluster.tasks().await;
    let task =
        create_with_contacts(&mut tasks, spec(&format!("ronglian {mode}"), 1, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(240)).await;
    let stats = wait_stats_settled(&cluster, &task, contacts as u64, Duration::from_secs(60)).await;
    let x = expected_from(&fake, contacts as u64);
    assert_stats_match(&stats, &x);

    // The mix reached every kind of outcome and delivery; recall 1 means at most two calls a
    // number, and nothing was placed twice for one attempt ("system busy" was tried again).
    assert_eq!(
        x.causes.keys().copied().collect::<Vec<_>>(),
        [16, 19, 28, 41]
    );
    assert!(x.calls_placed > contacts as u64, "some recalls");
    let per_number = calls_per_number(&cluster, &task).await;
    assert!(per_number.values().all(|n| *n <= 2), "{per_number:?}");
    assert!(fake.busy_replies() > 0, "some requests met system busy");
    assert_eq!(fake.refused_auth(), 0, "every request was signed right");
    let calls = fake.calls();
    let want = if mode == "callback" {
        Kind::Callback
    } else {
        Kind::Notify
    };
    for c in &calls {
        assert_eq!(c.kind, want);
        assert!(
            uuid::Uuid::parse_str(&c.user_data).is_ok(),
            "userData is our call id: {c:?}"
        );
        assert!(
            c.url.starts_with(&format!(
                "http://{}/api/v1/calls/webhook/ronglian/status?token=",
                cluster.provider_http
            )),
            "{}",
            c.url
        );
        if want == Kind::Callback {
            assert_eq!(c.from, "13900000001", "the agent is rung first");
        } else {
            assert_eq!(c.from, "02161234567", "the line's number is shown");
        }
    }
    for d in [
        Delivery::Silent,
        Delivery::Twice,
        Delivery::BeforeReply,
        Delivery::Late,
        Delivery::InOrder,
    ] {
        assert!(
            calls
                .iter()
                .any(|c| c.delivery == d && c.call_sid.is_some()),
            "{d:?}"
        );
    }
    // Silent calls were found by polling.
    assert!(fake.polls() > 0);
    // Every notification was acknowledged as Ronglian wants it, the late ones (for calls
    // already settled) and those sent before the dial reply (named by our userData) too.
    let due = acks_due(&fake);
    waihu_testkit::eventually(
        Duration::from_secs(20),
        "notifications acknowledged",
        || {
            let fake = &fake;
            async move { (fake.notifications().1 == due).then_some(()) }
        },
    )
    .await;
    let refused = calls.iter().filter(|c| c.fate == Fate::Refused).count();
    assert_eq!(assert_lifecycles(&cluster).await, refused);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voice_notification_campaign_ends_with_the_statistics_ronglian_decided() {
    campaign("notify", 500, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_way_callback_campaign_ends_with_the_statistics_ronglian_decided() {
    campaign("callback", 200, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_up_a_two_way_callback_cancels_it_at_ronglian() {
    let fake = FakeRonglian::start_with(
        |_, _| (Fate::Answered { talk_s: 600 }, Delivery::InOrder),
        Options {
            hold: Duration::from_secs(600),
            busy: |_| false,
            ..Options::default()
        },
    )
    .await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    cluster
        .create_line(ronglian_line(&fake, "rl-cb", "callback", 2))
        .await;
    // The dialer hears of the new line shortly.
    let placed =
        waihu_testkit::eventually(Duration::from_secs(30), "the line dialable", || async {
            match cluster
                .dialer()
                .await
                .dial(pb::DialRequest {
                    phone: "13800000042".into(),
                    line_id: "rl-cb".into(),
                    ..Default::default()
                })
                .await
            {
                Ok(r) => Some(r.into_inner()),
                Err(e) if e.code() == tonic::Code::NotFound => None,
                Err(e) => panic!("dial: {e:?}"),
            }
        })
        .await;
    let mut dialer = cluster.dialer().await;
    let sid = waihu_testkit::eventually(Duration::from_secs(30), "placed at ronglian", || {
        let fake = &fake;
        async move { fake.calls().first().and_then(|c| c.call_sid.clone()) }
    })
    .await;
    // The callback is out (no end yet) and its dialing recorded; the agent hangs up. (A
    // hang-up between Ronglian's accepting the request and the adapter's recording the dialing
    // is not sent to the provider: see the report on CloudPlayer::play.)
    let stream = format!("call-{}", placed.call_id);
    waihu_testkit::eventually(Duration::from_secs(30), "dialing recorded", || {
        let (pool, stream) = (&cluster.env.pool, &stream);
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'CallDialing'",
            )
            .bind(stream)
            .fetch_one(pool)
            .await
            .expect("store");
            (n == 1).then_some(())
        }
    })
    .await;
    let ended = dialer
        .hangup(pb::HangupRequest {
            call_id: placed.call_id.clone(),
        })
        .await
        .expect("hangup")
        .into_inner();
    assert!(ended.ended);
    waihu_testkit::eventually(Duration::from_secs(30), "cancelled at ronglian", || {
        let fake = &fake;
        let sid = sid.clone();
        async move { (fake.cancels() == vec![sid]).then_some(()) }
    })
    .await;
    let c = fake.calls().remove(0);
    assert!(c.cancelled && c.ended, "{c:?}");
    assert_eq!(c.user_data, placed.call_id);
    // Its cancel CDR (byetype -14) came after the call was settled: acknowledged, no change.
    waihu_testkit::eventually(Duration::from_secs(20), "cancel CDR acknowledged", || {
        let fake = &fake;
        async move { (fake.notifications().1 == 1).then_some(()) }
    })
    .await;
    assert_eq!(fake.refused_auth(), 0);
    assert_eq!(assert_lifecycles(&cluster).await, 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_unknown_oversized_and_malformed_notifications_are_refused() {
    let fake = FakeRonglian::start_with(
        |_, _| (Fate::Answered { talk_s: 3 }, Delivery::Silent),
        Options {
            busy: |_| false,
            ..Options::default()
        },
    )
    .await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    cluster
        .create_line(ronglian_line(&fake, "rl-1", "notify", 10))
        .await;
    let list = phones(1, 4);
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("hooks", 0, 0), &list).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let call = fake.calls().remove(0);
    let sid = call.call_sid.clone().expect("placed");

    let base = format!(
        "http://{}/api/v1/calls/webhook/ronglian/status",
        cluster.provider_http
    );
    let good_url = call.url.clone();
    assert!(good_url.starts_with(&base), "{good_url}");
    let http = reqwest::Client::new();
    let post = |url: String, body: String| {
        let http = &http;
        async move {
            post_callback(http, &url, "application/xml", None, body)
                .await
                .0
        }
    };
    let selling = |sid: &str, user_data: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request><action>SellingCall</action>\
             <callSid>{sid}</callSid><number>{}</number><state>0</state><duration>3</duration>\
             <userData>{user_data}</userData></Request>",
            call.to
        )
    };
    // With the line's token: accepted, with exactly the reply Ronglian wants (the call is over;
    // nothing changes). By callSid, and by our userData alone.
    let r = http
        .post(good_url.clone())
        .header("content-type", "application/xml")
        .body(selling(&sid, ""))
        .send()
        .await
        .expect("reachable");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/xml")));
    assert_eq!(r.text().await.expect("body"), HOOK_REPLY);
    assert_eq!(
        post(good_url.clone(), selling("", &call.user_data)).await,
        200
    );
    // A wrong token, none, or the token elsewhere: 401.
    assert_eq!(
        post(format!("{base}?token=not-it"), selling(&sid, "")).await,
        401
    );
    assert_eq!(post(base.clone(), selling(&sid, "")).await, 401);
    assert_eq!(
        post(format!("{base}?tok=notify-secret"), selling(&sid, "")).await,
        401
    );
    // A call we never placed, by callSid or by a call id that is not ours: 404.
    assert_eq!(
        post(good_url.clone(), selling("ff8080813d2d5ee5", "")).await,
        404
    );
    let stranger = uuid::Uuid::new_v4().to_string();
    assert_eq!(post(good_url.clone(), selling("", &stranger)).await, 404);
    // Not Ronglian's format: 400; too big: 413.
    for body in [
        "not xml".to_string(),
        "<Request><action>SellingCall</action><state>0</state></Request>".to_string(),
        format!("<Request><action>SellingCall</action><callSid>{sid}</callSid></Request>"),
        format!("<Response><action>SellingCall</action><callSid>{sid}</callSid><state>0</state></Response>"),
    ] {
        assert_eq!(post(good_url.clone(), body.clone()).await, 400, "{body}");
    }
    let huge = selling(&sid, &"x".repeat(200_000));
    assert_eq!(post(good_url.clone(), huge).await, 413);
    // The campaign itself was unaffected: one answered call, its end found by polling.
    let stats = wait_stats_settled(&cluster, &task, 1, Duration::from_secs(30)).await;
    assert_eq!((stats.calls_placed, stats.calls_answered), (1, 1));
    assert_eq!(stats.total_talk_seconds, 3);

    // TestLine: with the line's credentials it passes; with a wrong token it fails, saying
    // why without the token; a callback line without its sub-account token fails naming it.
    let ok = cluster.test_line("rl-1").await;
    assert!(ok.success, "{}", ok.message);
    assert!(ok.message.contains("waihu test"), "{}", ok.message);
    let wrong_token = "0badc0ffee0badc0ffee0badc0ffee00";
    let mut wrong = ronglian_line(&fake, "rl-wrong", "notify", 1);
    wrong
        .credentials
        .insert("auth_token".into(), wrong_token.into());
    cluster.create_line(wrong).await;
    let refused_before = fake.refused_auth();
    let bad = cluster.test_line("rl-wrong").await;
    assert!(!bad.success, "{}", bad.message);
    assert!(bad.message.contains("101115"), "{}", bad.message);
    assert!(!bad.message.contains(wrong_token), "{}", bad.message);
    assert_eq!(fake.refused_auth(), refused_before + 1);
    let mut no_sub = ronglian_line(&fake, "rl-nosub", "callback", 1);
    no_sub.credentials.remove("sub_account_token");
    cluster.create_line(no_sub).await;
    let bad = cluster.test_line("rl-nosub").await;
    assert!(!bad.success, "{}", bad.message);
    assert!(bad.message.contains("sub_account_token"), "{}", bad.message);
    cluster.shutdown().await;
}
