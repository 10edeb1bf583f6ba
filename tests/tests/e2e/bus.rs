//! Poison messages reach the dead-letter subject with their reason, and consumers keep going.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use waihu_bus::{
    BatchHandler, ConsumerSpec, Delivery, Expect, HandlerError, Runner, HEADER_DLQ_REASON,
};
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_testkit::TestEnv;

fn started(task: uuid::Uuid) -> RecordedEvent {
    RecordedEvent::new(
        EventMeta::new("default", Aggregate::Task(task), 1).with_task(task),
        Event::TaskStarted(pb::TaskStarted {
            task_id: task.to_string(),
        }),
    )
}

/// Records what it handled; refuses tasks in `refuse` (permanently or not).
struct Recorder {
    seen: Arc<Mutex<Vec<uuid::Uuid>>>,
    refuse: Vec<uuid::Uuid>,
    permanent: bool,
}

impl BatchHandler for Recorder {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        for d in batch {
            let t = d.event.meta.task_id.unwrap_or_default();
            if self.refuse.contains(&t) {
                let reason = format!("task {t} is refused");
                return Err(if self.permanent {
                    HandlerError::Permanent(reason)
                } else {
                    HandlerError::Transient(reason)
                });
            }
        }
        self.seen
            .lock()
            .expect("lock")
            .extend(batch.iter().filter_map(|d| d.event.meta.task_id));
        Ok(())
    }
}

async fn dead_letters(
    env: &TestEnv,
    consumer: &str,
    n: usize,
) -> Vec<async_nats::jetstream::Message> {
    let stream = env
        .bus
        .jetstream()
        .get_stream(env.bus.dlq_stream())
        .await
        .expect("dlq stream");
    let c = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: env.bus.dlq_subject(consumer),
            ..Default::default()
        })
        .await
        .expect("dlq consumer");
    let mut msgs = c.messages().await.expect("messages");
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), msgs.next()).await {
            Ok(Some(Ok(m))) => out.push(m),
            other => panic!(
                "expected {n} dead letters, got {} ({:?})",
                out.len(),
                other.map(|o| o.is_some())
            ),
        }
    }
    out
}

async fn run_case(permanent: bool) {
    let env = TestEnv::new().await;
    let (a, poison, b) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    // Garbage on an events subject, a message the handler refuses, and good ones around them.
    env.bus.publish(&started(a), Expect::Any).await.expect("a");
    env.bus
        .publish_raw(
            format!("{}.evt.task.garbage", env.prefix),
            async_nats::HeaderMap::new(),
            "not protobuf".into(),
        )
        .await
        .expect("garbage");
    env.bus
        .publish(&started(poison), Expect::Any)
        .await
        .expect("poison");
    env.bus.publish(&started(b), Expect::Any).await.expect("b");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut spec = ConsumerSpec::new("dlq-test", "task");
    spec.max_deliver = 3;
    spec.backoff = Duration::from_millis(50);
    let runner = Runner::new(&env.bus, spec, 100).await.expect("consumer");
    let stop = CancellationToken::new();
    let handler = Recorder {
        seen: seen.clone(),
        refuse: vec![poison],
        permanent,
    };
    let task = tokio::spawn(runner.run_batched(handler, stop.clone()));

    let letters = dead_letters(&env, "dlq-test", 2).await;
    let reasons: Vec<String> = letters
        .iter()
        .map(|m| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(HEADER_DLQ_REASON))
                .map(|v| v.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert!(reasons[0].contains("not valid protobuf"), "{reasons:?}");
    assert!(
        reasons[1].contains(&format!("task {poison} is refused")),
        "{reasons:?}"
    );
    if !permanent {
        assert!(
            reasons[1].starts_with("gave up after 3 deliveries"),
            "{reasons:?}"
        );
    }
    assert_eq!(
        RecordedEvent::decode(&letters[1].payload)
            .expect("original payload")
            .meta
            .task_id,
        Some(poison)
    );
    waihu_testkit::eventually(Duration::from_secs(20), "the good messages", || {
        let seen = seen.clone();
        async move {
            let s = seen.lock().expect("lock").clone();
            (s.contains(&a) && s.contains(&b)).then_some(())
        }
    })
    .await;
    assert!(!seen.lock().expect("lock").contains(&poison));
    stop.cancel();
    task.await.expect("joins").expect("runs");
    env.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_the_consumer_keeps_going() {
    run_case(true).await;
}

#[tokio::test]
async fn a_message_failing_every_delivery_is_dead_lettered_at_the_bound() {
    run_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_writer_dead_letters_garbage_and_stores_what_follows() {
    let env = TestEnv::new().await;
    let stop = CancellationToken::new();
    let handle = waihu_record::start(waihu_record::RecordConfig::new(env.config()), stop.clone())
        .await
        .expect("record");
    env.bus
        .publish_raw(
            format!("{}.evt.call.garbage", env.prefix),
            async_nats::HeaderMap::new(),
            "\u{1}junk".into(),
        )
        .await
        .expect("garbage");
    let good = started(uuid::Uuid::new_v4());
    let seq = env
        .bus
        .publish(&good, Expect::Any)
        .await
        .expect("good")
        .sequence();
    let letters = dead_letters(&env, "store-writer", 1).await;
    assert!(letters[0]
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_DLQ_REASON))
        .is_some());
    let pool = &env.pool;
    waihu_testkit::eventually(
        Duration::from_secs(20),
        "the good event stored",
        || async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position = $1")
                .bind(seq as i64)
                .fetch_one(pool)
                .await
                .ok()?;
            (n == 1).then_some(())
        },
    )
    .await;
    stop.cancel();
    handle.wait().await;
    env.cleanup().await;
}

/// The store writer's reader ends a batch at its byte bound whatever its count (events may be
/// up to 512 KiB each), and a batch always holds at least one message.
#[tokio::test]
async fn ordered_batches_end_at_their_byte_bound() {
    let env = TestEnv::new().await;
    let subject = env.bus.subject(&Aggregate::Task(uuid::Uuid::now_v7()));
    let before = env.bus.last_sequence().await.expect("last sequence");
    for _ in 0..10 {
        env.bus
            .publish_raw(
                subject.clone(),
                async_nats::HeaderMap::new(),
                bytes::Bytes::from(vec![b'x'; 100 * 1024]),
            )
            .await
            .expect("published");
    }
    let (wait, fill) = (Duration::from_secs(5), Duration::from_millis(500));
    let mut reader = waihu_bus::OrderedReader::open(&env.bus, before)
        .await
        .expect("reader");
    let mut sizes = Vec::new();
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let batch = reader
            .next_batch(1000, 250 * 1024, wait, fill)
            .await
            .expect("batch");
        assert!(!batch.is_empty(), "the stream holds more");
        sizes.push(batch.len());
        seqs.extend(batch.iter().map(|m| m.stream_seq));
    }
    // 100 KiB messages, 250 KiB a batch: three at most (a slow delivery may end one sooner).
    assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
    assert!(
        sizes.contains(&3),
        "the bound, not the count, ends batches: {sizes:?}"
    );
    assert_eq!(
        seqs,
        (before + 1..=before + 10).collect::<Vec<u64>>(),
        "in order, none lost"
    );
    // A bound below one message still moves on, a message a batch.
    let mut reader = waihu_bus::OrderedReader::open(&env.bus, before + 7)
        .await
        .expect("reader");
    for seq in before + 8..=before + 10 {
        let batch = reader.next_batch(1000, 1, wait, fill).await.expect("batch");
        assert_eq!(
            batch.iter().map(|m| m.stream_seq).collect::<Vec<_>>(),
            [seq]
        );
    }
    env.cleanup().await;
}
