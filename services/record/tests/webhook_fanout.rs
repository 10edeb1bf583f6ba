//! The webhook fan-out makes exactly one delivery per (subscription, event): fan-outs racing
//! each other, or one re-run from an old checkpoint, add nothing; other tenants' events and
//! events stored before a subscription was made are not delivered to it.

mod common;

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use uuid::Uuid;
use waihu_events::RecordedEvent;
use waihu_proto::v1::{self as pb, webhook_service_server::WebhookService};
use waihu_record::{
    projector::{Events, Handoff, Projector},
    webhook::{self, api::WebhookApi, fanout::Fanout},
    writer,
};

use common::{calls, store, wait_projected};

struct Nothing;

impl Events for Nothing {
    fn event(&self, _: usize) -> (u64, Option<&RecordedEvent>) {
        (0, None)
    }
}

async fn deliveries(pool: &PgPool, webhook_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1::uuid")
        .bind(webhook_id)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn subscribe(api: &WebhookApi, tenant: &str) -> String {
    let mut r = Request::new(pb::CreateWebhookRequest {
        url: "http://127.0.0.1:1/hook".into(),
        event_types: vec!["call.released".into()],
        secret: String::new(),
    });
    r.metadata_mut()
        .insert("x-tenant-id", tenant.parse().expect("ascii"));
    api.create_webhook(r)
        .await
        .expect("created")
        .into_inner()
        .webhook_id
}

/// Runs the fan-out until its checkpoint reaches the store's head, two steps racing each time.
async fn fan_out(f: &Fanout, pool: &PgPool) {
    waihu_testkit::eventually(Duration::from_secs(20), "the fan-out", || async move {
        let (a, b) = tokio::join!(f.step(), f.step());
        a.expect("step");
        b.expect("step");
        let at = waihu_store::checkpoint(pool, webhook::CHECKPOINT)
            .await
            .expect("checkpoint");
        let head = waihu_store::checkpoint(pool, writer::CHECKPOINT)
            .await
            .expect("head");
        (at == head).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_per_subscription_and_event_however_often_the_fan_out_runs() {
    let env = waihu_testkit::TestEnv::new().await;
    let pool = waihu_record::open_pool(&env.database_url, 6)
        .await
        .expect("record schema");
    let (_tx, rx) = tokio::sync::mpsc::channel::<Handoff<Nothing>>(1);
    let stop = CancellationToken::new();
    let projector = tokio::spawn(
        Projector {
            pool: pool.clone(),
            missed: Default::default(),
            interval: waihu_record::writer::WriterConfig::default().projection_interval,
            counters: Default::default(),
        }
        .run(rx, stop.clone()),
    );
    let config = webhook::WebhookConfig::default();
    let api = WebhookApi {
        pool: pool.clone(),
        poster: webhook::sender::Poster::new(&config).expect("client"),
        wake: Default::default(),
        bus: None,
    };
    let fanout = Fanout {
        pool: pool.clone(),
        poll: Duration::from_millis(10),
        sender: Default::default(),
    };

    let early = subscribe(&api, "acme").await;
    // acme: 3 calls, another tenant: 2 calls (10 events).
    store(&pool, &calls("acme", Uuid::now_v7(), 1, 3)).await;
    store(&pool, &calls("other", Uuid::now_v7(), 16, 2)).await;
    wait_projected(&pool, 25).await;
    fan_out(&fanout, &pool).await;
    assert_eq!(deliveries(&pool, &early).await, 3, "acme's three releases");

    // Made now: only what is stored from here on is its.
    let late = subscribe(&api, "acme").await;
    store(&pool, &calls("acme", Uuid::now_v7(), 26, 1)).await;
    wait_projected(&pool, 30).await;
    fan_out(&fanout, &pool).await;
    assert_eq!(deliveries(&pool, &early).await, 4);
    assert_eq!(deliveries(&pool, &late).await, 1);

    // Run again from the start (as after restoring an old checkpoint): nothing is added.
    sqlx::query("UPDATE checkpoints SET position = 0 WHERE name = $1")
        .bind(webhook::CHECKPOINT)
        .execute(&pool)
        .await
        .expect("reset");
    fan_out(&fanout, &pool).await;
    assert_eq!(deliveries(&pool, &early).await, 4);
    assert_eq!(deliveries(&pool, &late).await, 1);

    // Bodies carry the projected record: the phone of the call.
    let phones: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT (body::jsonb -> 'data' ->> 'phone') FROM webhook_deliveries WHERE webhook_id = $1::uuid",
    )
    .bind(&early)
    .fetch_all(&pool)
    .await
    .expect("bodies");
    assert!(
        phones
            .iter()
            .all(|p| p.as_deref().is_some_and(|p| p.starts_with('+'))),
        "{phones:?}"
    );

    stop.cancel();
    let _ = projector.await;
    drop(pool);
    env.cleanup().await;
}
