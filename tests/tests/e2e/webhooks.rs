//! Webhooks (seed 000's caller:sync): call results, contact outcomes and task changes reach a
//! real HTTP receiver signed with the subscription's secret, survive a receiver that fails
//! twice, carry one delivery id across attempts, are dead-lettered after the limit, and can be
//! sent again.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use tonic::Code;
use waihu_e2e::*;
use waihu_events::pb;

const SECRET: &str = "a-test-secret-0123456789";

/// What the receiver saw of one delivery id.
#[derive(Debug, Default, Clone)]
struct Seen {
    attempts: u32,
    bodies: Vec<String>,
    accepted: bool,
}

#[derive(Default)]
struct Receiver {
    /// Per route, per delivery id.
    seen: Mutex<HashMap<String, BTreeMap<String, Seen>>>,
    bad_signatures: Mutex<Vec<String>>,
    /// `/down` answers 503 while this is set.
    down: Mutex<bool>,
}

/// `/flaky`: 500 on a delivery's first two attempts, 200 after. `/down`: 503 while down.
async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, ts, sig) = (
        h("x-waihu-delivery"),
        h("x-waihu-timestamp"),
        h("x-waihu-signature"),
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let valid = sig
        .strip_prefix("sha256=")
        .and_then(|hexed| hex::decode(hexed).ok())
        .is_some_and(|tag| {
            ring::hmac::verify(&key, format!("{ts}.{body}").as_bytes(), &tag).is_ok()
        });
    if !valid || h("x-waihu-event").is_empty() {
        r.bad_signatures.lock().expect("lock").push(id.clone());
        return StatusCode::UNAUTHORIZED;
    }
    let down = *r.down.lock().expect("lock");
    let mut seen = r.seen.lock().expect("lock");
    let s = seen
        .entry(route.clone())
        .or_default()
        .entry(id)
        .or_default();
    s.attempts += 1;
    s.bodies.push(body);
    let ok = match route.as_str() {
        "flaky" => s.attempts > 2,
        "down" => !down,
        _ => false,
    };
    s.accepted |= ok;
    if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

async fn start_receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hooks/{route}", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hooks"))
}

fn accepted(r: &Receiver, route: &str) -> BTreeMap<String, Seen> {
    r.seen
        .lock()
        .expect("lock")
        .get(route)
        .map(|m| {
            m.iter()
                .filter(|(_, s)| s.accepted)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

async fn deliveries(
    cluster: &Cluster,
    webhook_id: &str,
    state: pb::DeliveryState,
) -> Vec<pb::WebhookDelivery> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = cluster
            .webhooks()
            .await
            .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
                webhook_id: webhook_id.into(),
                state: state as i32,
                page_size: 7,
                page_token: token,
            })
            .await
            .expect("deliveries")
            .into_inner();
        out.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_arrive_signed_survive_two_failures_and_dead_ones_can_be_sent_again() {
    let cluster = Cluster::start(fast_sim(11), one_line(20)).await;
    let (receiver, base) = start_receiver().await;
    *receiver.down.lock().expect("lock") = true;
    let mut hooks = cluster.webhooks().await;

    // Bad input names the field; nothing is made.
    for (req, field) in [
        (
            pb::CreateWebhookRequest {
                url: "ftp://crm/hook".into(),
                event_types: vec!["task.status".into()],
                secret: String::new(),
            },
            "url",
        ),
        (
            pb::CreateWebhookRequest {
                url: format!("{base}/flaky"),
                event_types: vec!["call.ended".into()],
                secret: String::new(),
            },
            "event_types",
        ),
        (
            pb::CreateWebhookRequest {
                url: format!("{base}/flaky"),
                event_types: vec!["task.status".into()],
                secret: "short".into(),
            },
            "secret",
        ),
    ] {
        let e = hooks.create_webhook(req).await.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }

    let flaky = hooks
        .create_webhook(pb::CreateWebhookRequest {
            url: format!("{base}/flaky"),
            event_types: vec![
                "call.released".into(),
                "contact.finished".into(),
                "task.status".into(),
            ],
            secret: SECRET.into(),
        })
        .await
        .expect("created")
        .into_inner();
    assert_eq!(flaky.secret, SECRET, "the secret is shown on creation");
    let down = hooks
        .create_webhook(pb::CreateWebhookRequest {
            url: format!("{base}/down"),
            event_types: vec!["task.status".into()],
            secret: SECRET.into(),
        })
        .await
        .expect("created")
        .into_inner();
    let listed = hooks
        .list_webhooks(pb::ListWebhooksRequest {})
        .await
        .expect("list")
        .into_inner()
        .webhooks;
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|w| w.secret.is_empty()),
        "secrets are never listed"
    );

    // Another tenant sees none of them and cannot touch them.
    let mut other = tonic::Request::new(pb::DeleteWebhookRequest {
        webhook_id: flaky.webhook_id.clone(),
    });
    other
        .metadata_mut()
        .insert("x-tenant-id", "someone-else".parse().expect("ascii"));
    let e = hooks.delete_webhook(other).await.expect_err("not theirs");
    assert_eq!(e.code(), Code::NotFound);

    // A campaign: 24 contacts, one recall for the unreached.
    let phones = phones(24, 5);
    let x = expected(&cluster.sim, &e164(&phones), 1);
    let mut tasks = cluster.tasks().await;
    let task_id = create_with_contacts(&mut tasks, spec("webhooks", 1, 0), &phones).await;
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(60)).await;

    // Every released call, every finished contact, and the start and the completion.
    let want = x.calls_placed as usize + x.contacts as usize + 2;
    waihu_testkit::eventually(
        Duration::from_secs(60),
        "every delivery accepted by /flaky",
        || {
            let n = accepted(&receiver, "flaky").len();
            async move { (n >= want).then_some(()) }
        },
    )
    .await;
    assert!(
        receiver.bad_signatures.lock().expect("lock").is_empty(),
        "every delivery is signed with the secret"
    );
    let got = accepted(&receiver, "flaky");
    assert_eq!(got.len(), want, "one delivery per event, none doubled");
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut answered = 0;
    for (id, s) in &got {
        assert_eq!(s.attempts, 3, "{id}: two failures, then accepted");
        assert!(
            s.bodies.iter().all(|b| *b == s.bodies[0]),
            "{id}: every attempt sends the same body"
        );
        let v: serde_json::Value = serde_json::from_str(&s.bodies[0]).expect("JSON body");
        assert_eq!(v["delivery_id"], id.as_str(), "the body names its delivery");
        assert_eq!(v["tenant_id"], "default");
        let kind = v["event"].as_str().expect("event").to_string();
        let d = &v["data"];
        assert_eq!(d["task_id"], task_id.as_str());
        match kind.as_str() {
            "call.released" => {
                let phone = d["phone"].as_str().expect("the call's phone");
                assert!(phone.starts_with("+86"), "{phone}");
                assert!(d["record_no"].as_i64().expect("record number") > 0);
                assert!(d["hangup_cause"]["q850"].as_u64().is_some());
                answered += usize::from(d["answered"] == true);
            }
            "contact.finished" => {
                assert!(d["outcome"].as_str().is_some_and(|o| !o.is_empty()));
            }
            "task.status" => {
                assert!(["running", "completed"].contains(&d["status"].as_str().expect("status")));
            }
            other => panic!("unexpected {other}"),
        }
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(kinds["call.released"], x.calls_placed as usize);
    assert_eq!(kinds["contact.finished"], x.contacts as usize);
    assert_eq!(kinds["task.status"], 2);
    assert_eq!(answered, x.calls_answered as usize);

    // The service's own account agrees.
    let listed = deliveries(&cluster, &flaky.webhook_id, pb::DeliveryState::Delivered).await;
    assert_eq!(listed.len(), want);
    assert!(listed
        .iter()
        .all(|d| d.attempts == 3 && d.last_status == 200));

    // `/down` never answered: both deliveries are dead after the limit (4 attempts).
    waihu_testkit::eventually(Duration::from_secs(30), "dead deliveries", || {
        let c = &cluster;
        let id = down.webhook_id.clone();
        async move { (deliveries(c, &id, pb::DeliveryState::Dead).await.len() == 2).then_some(()) }
    })
    .await;
    let dead = deliveries(&cluster, &down.webhook_id, pb::DeliveryState::Dead).await;
    assert!(dead
        .iter()
        .all(|d| d.attempts == 4 && d.last_status == 500 && d.last_error.contains("500")));

    // It is back: the dead ones are sent again, with the same delivery ids.
    *receiver.down.lock().expect("lock") = false;
    let test = hooks
        .test_webhook(pb::TestWebhookRequest {
            webhook_id: down.webhook_id.clone(),
        })
        .await
        .expect("test")
        .into_inner();
    assert!(test.ok && test.status == 200, "{test:?}");
    let again = hooks
        .redeliver_webhooks(pb::RedeliverWebhooksRequest {
            webhook_id: down.webhook_id.clone(),
            delivery_ids: vec![],
        })
        .await
        .expect("redeliver")
        .into_inner();
    assert_eq!(again.redelivered, 2);
    waihu_testkit::eventually(Duration::from_secs(30), "redelivered", || {
        let n = accepted(&receiver, "down").len();
        async move { (n == 3).then_some(()) }
    })
    .await;
    let down_seen = accepted(&receiver, "down");
    for d in &dead {
        assert!(
            down_seen.contains_key(&d.delivery_id),
            "{} sent again under its id",
            d.delivery_id
        );
    }

    // Removed: nothing more is listed or sent.
    hooks
        .delete_webhook(pb::DeleteWebhookRequest {
            webhook_id: down.webhook_id.clone(),
        })
        .await
        .expect("deleted");
    let left = hooks
        .list_webhooks(pb::ListWebhooksRequest {})
        .await
        .expect("list")
        .into_inner()
        .webhooks;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].delivered, want as u64);
    cluster.shutdown().await;
}
