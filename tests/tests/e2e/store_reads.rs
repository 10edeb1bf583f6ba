//! Reading the event store by task and by tenant goes through the postings the store writer adds
//! (one row per task and per tenant, for a batch or for the batches of a few thousand positions)
//! and, after them, the events not posted yet: pages come back full, in position order, with
//! every filter applied, across many batches, and a batch re-appending events already stored
//! lists only the new ones.

use uuid::Uuid;
use waihu_events::RecordedEvent;
use waihu_store::{EventQuery, Postings, StoredEvent};

/// Appends one batch through the store writer's transaction; returns which events were new.
async fn append(pool: &sqlx::PgPool, events: &[(u64, RecordedEvent)]) -> Vec<bool> {
    let stored: Vec<StoredEvent> = events
        .iter()
        .map(|(p, e)| StoredEvent::known(*p, e.clone()))
        .collect();
    let refs: Vec<&StoredEvent> = stored.iter().collect();
    let last = events.last().map(|(p, _)| *p).expect("a batch");
    let after = waihu_store::checkpoint(pool, waihu_record::writer::CHECKPOINT)
        .await
        .expect("checkpoint");
    waihu_record::writer::write_events(pool, &refs, after, last, 0)
        .await
        .expect("stored")
        .expect("the checkpoint where the last write left it")
}

/// Every position `q` selects, page by page (`q.limit` a page), checking each page but the last
/// is full and pages follow each other in order.
async fn read_all(pool: &sqlx::PgPool, mut q: EventQuery) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    loop {
        let page = waihu_store::read(pool, &q).await.expect("read");
        let positions: Vec<u64> = page.iter().map(|e| e.position).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "a page in position order: {positions:?}"
        );
        assert!(
            positions.first().is_none_or(|p| *p > q.after_position),
            "a page starts after the cursor"
        );
        out.extend(&positions);
        if positions.len() < q.limit as usize {
            return out;
        }
        q.after_position = *positions.last().expect("a full page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_by_task_and_tenant_follow_the_postings_across_batches_and_filters() {
    let env = waihu_testkit::TestEnv::new().await;
    let pool = waihu_record::open_pool(&env.database_url, 4)
        .await
        .expect("record schema");
    let (t1, t2, t3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let call = |tenant: &str, task: Uuid, no: u32| {
        waihu_testkit::call_lifecycle(tenant, task, Uuid::now_v7(), no, 1, true, 10, 20)
    };

    // 90 batches (more postings rows per key than several rounds read): task 1 and task 3 in
    // each, task 2 in every third; tasks 1 and 2 are tenant a's, task 3 tenant b's.
    let mut all: Vec<(u64, RecordedEvent)> = Vec::new();
    for b in 0..90u32 {
        let mut batch = call("a", t1, b + 1);
        batch.extend(call("b", t3, b + 1));
        if b % 3 == 0 {
            batch.extend(call("a", t2, b + 1));
        }
        let first = all.len() as u64 + 1;
        let batch: Vec<(u64, RecordedEvent)> = batch
            .into_iter()
            .enumerate()
            .map(|(i, e)| (first + i as u64, e))
            .collect();
        assert!(append(&pool, &batch).await.iter().all(|n| *n));
        all.extend(batch);
    }
    // A batch repeating events already stored (a copy republished after JetStream's duplicate
    // window) beside new ones: only the new ones are stored and listed.
    let next = all.len() as u64 + 1;
    let fresh: Vec<(u64, RecordedEvent)> = call("a", t1, 1000)
        .into_iter()
        .enumerate()
        .map(|(i, e)| (next + 2 + i as u64, e))
        .collect();
    let mut again = vec![(next, all[0].1.clone()), (next + 1, all[1].1.clone())];
    again.extend(fresh.iter().cloned());
    let new = append(&pool, &again).await;
    assert_eq!(new, [false, false, true, true, true, true, true]);
    all.extend(fresh);

    let expect = |f: &dyn Fn(&RecordedEvent) -> bool, after: u64, to: u64| -> Vec<u64> {
        all.iter()
            .filter(|(p, e)| *p > after && *p <= to && f(e))
            .map(|(p, _)| *p)
            .collect()
    };
    let q = |limit: u32| EventQuery {
        limit,
        ..Default::default()
    };

    // One task, small pages: 455 events, in order, none twice.
    let got = read_all(
        &pool,
        EventQuery {
            task_id: Some(t1),
            ..q(7)
        },
    )
    .await;
    assert_eq!(got, expect(&|e| e.meta.task_id == Some(t1), 0, u64::MAX));
    assert_eq!(got.len(), 91 * 5);

    // One tenant, with a type filter that passes one event in five, from the middle, up to a bound.
    let (after, to) = (all[200].0, all[900].0);
    let got = read_all(
        &pool,
        EventQuery {
            tenant_id: Some("b".into()),
            event_types: vec!["CallReleased".into()],
            after_position: after,
            to_position: Some(to),
            ..q(3)
        },
    )
    .await;
    let want = expect(
        &|e| e.meta.tenant_id == "b" && e.type_name() == "CallReleased",
        after,
        to,
    );
    assert!(want.len() > 50, "the filter leaves {} events", want.len());
    assert_eq!(got, want);

    // A tenant's read of its task 2, in one large page.
    let got = read_all(
        &pool,
        EventQuery {
            tenant_id: Some("a".into()),
            task_id: Some(t2),
            ..q(10_000)
        },
    )
    .await;
    assert_eq!(got, expect(&|e| e.meta.task_id == Some(t2), 0, u64::MAX));
    assert_eq!(got.len(), 30 * 5);

    // Another tenant's task, and a tenant with no events, read nothing.
    for (tenant, task) in [("a", Some(t3)), ("nobody", None)] {
        let got = read_all(
            &pool,
            EventQuery {
                tenant_id: Some(tenant.into()),
                task_id: task,
                ..q(100)
            },
        )
        .await;
        assert!(got.is_empty(), "{tenant} read {got:?}");
    }

    // The whole tenant a, against a read of the whole store filtered by hand.
    let got = read_all(
        &pool,
        EventQuery {
            tenant_id: Some("a".into()),
            ..q(1000)
        },
    )
    .await;
    assert_eq!(got, expect(&|e| e.meta.tenant_id == "a", 0, u64::MAX));
    let whole = read_all(&pool, q(1000)).await;
    assert_eq!(whole, expect(&|_| true, 0, u64::MAX));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_an_earlier_writer_appended_get_posted_and_a_moved_checkpoint_writes_nothing() {
    let env = waihu_testkit::TestEnv::new().await;
    let pool = waihu_record::open_pool(&env.database_url, 4)
        .await
        .expect("record schema");
    let task = Uuid::now_v7();
    let batch = |first: u64, no: u32| -> Vec<(u64, RecordedEvent)> {
        waihu_testkit::call_lifecycle("a", task, Uuid::now_v7(), no, 1, true, 10, 20)
            .into_iter()
            .enumerate()
            .map(|(i, e)| (first + i as u64, e))
            .collect()
    };
    let first = batch(1, 1);
    append(&pool, &first).await;

    // A store writer of the release before postings: its rows, and no postings.
    let old = batch(6, 2);
    for (p, e) in &old {
        sqlx::query(
            "INSERT INTO events (position, event_id, event_type, schema_version, tenant_id,
                 stream_id, stream_version, task_id, occurred_at, correlation_id, causation_id,
                 envelope)
             VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, '', '', $9)",
        )
        .bind(*p as i64)
        .bind(e.meta.event_id)
        .bind(e.type_name())
        .bind(&e.meta.tenant_id)
        .bind(e.meta.aggregate.stream_id())
        .bind(e.meta.stream_version as i64)
        .bind(e.meta.task_id)
        .bind(e.meta.occurred_at)
        .bind(e.encode())
        .execute(&pool)
        .await
        .expect("an earlier writer's append");
    }
    sqlx::query("UPDATE checkpoints SET position = 10 WHERE name = 'store'")
        .execute(&pool)
        .await
        .expect("its checkpoint");
    let by_task = EventQuery {
        task_id: Some(task),
        limit: 100,
        ..Default::default()
    };
    // Events after the postings are read from the table, by position.
    assert_eq!(
        read_all(&pool, by_task.clone()).await,
        (1..=10).collect::<Vec<_>>()
    );
    // The next writer term posts them first.
    assert_eq!(waihu_store::post_unposted(&pool).await.expect("posted"), 5);
    assert_eq!(waihu_store::post_unposted(&pool).await.expect("posted"), 0);
    append(&pool, &batch(11, 3)).await;
    assert_eq!(
        read_all(&pool, by_task.clone()).await,
        (1..=15).collect::<Vec<_>>()
    );

    // A write that expects the checkpoint where it is not (appends lost in a crash before it)
    // writes nothing.
    let stored: Vec<StoredEvent> = batch(21, 4)
        .into_iter()
        .map(|(p, e)| StoredEvent::known(p, e))
        .collect();
    let refs: Vec<&StoredEvent> = stored.iter().collect();
    let written = waihu_record::writer::write_events(&pool, &refs, 20, 25, 0)
        .await
        .expect("no database error");
    assert!(written.is_none(), "the checkpoint is at 15, not 20");
    assert_eq!(
        waihu_store::checkpoint(&pool, waihu_record::writer::CHECKPOINT)
            .await
            .expect("checkpoint"),
        15
    );
    assert_eq!(read_all(&pool, by_task).await, (1..=15).collect::<Vec<_>>());
    env.cleanup().await;
}

/// Appends one batch as the store writer does, its postings written later; commits (and tells
/// `postings`, and adds the events to `stored_so_far`) or rolls back.
async fn append_later(
    pool: &sqlx::PgPool,
    postings: &mut Postings,
    stored_so_far: &mut Vec<(u64, RecordedEvent)>,
    events: Vec<(u64, RecordedEvent)>,
    commit: bool,
) {
    let stored: Vec<StoredEvent> = events
        .iter()
        .map(|(p, e)| StoredEvent::known(*p, e.clone()))
        .collect();
    let refs: Vec<&StoredEvent> = stored.iter().collect();
    let mut tx = pool.begin().await.expect("transaction");
    let new = waihu_store::append_posting_later(&mut tx, &refs, postings)
        .await
        .expect("appended");
    assert!(new.iter().all(|n| *n), "every event is new");
    if commit {
        tx.commit().await.expect("committed");
        postings.committed();
        stored_so_far.extend(events);
    } else {
        tx.rollback().await.expect("rolled back");
    }
}

/// The greatest position postings list.
async fn posted_to(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(max(last_position), 0) FROM event_tenant_postings")
        .fetch_one(pool)
        .await
        .expect("postings")
}

/// Positions listed by postings rows, per table: (listed, distinct per key).
async fn listed(pool: &sqlx::PgPool) -> [(i64, i64); 2] {
    let mut out = [(0, 0); 2];
    for (i, (table, key)) in [
        ("event_task_postings", "task_id::text"),
        ("event_tenant_postings", "tenant_id"),
    ]
    .into_iter()
    .enumerate()
    {
        out[i] = sqlx::query_as(&format!(
            "SELECT count(*), count(DISTINCT (k, p)) FROM (
                 SELECT {key} AS k, generate_series(ranges[2 * i - 1], ranges[2 * i]) AS p
                 FROM {table}, generate_series(1, cardinality(ranges) / 2) AS i) x"
        ))
        .fetch_one(pool)
        .await
        .expect("postings rows");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postings_written_every_few_thousand_positions_leave_no_event_unread_or_listed_twice() {
    let env = waihu_testkit::TestEnv::new().await;
    let pool = waihu_record::open_pool(&env.database_url, 4)
        .await
        .expect("record schema");
    let (t1, t2) = (Uuid::now_v7(), Uuid::now_v7());
    let mut no = 0;
    // Two calls' events (task 1 of tenant a, task 2 of tenant b) at `first`, `first + step`, ...
    let mut batch = |first: u64, step: u64| -> Vec<(u64, RecordedEvent)> {
        no += 1;
        let mut events =
            waihu_testkit::call_lifecycle("a", t1, Uuid::now_v7(), no, 1, true, 10, 20);
        events.extend(waihu_testkit::call_lifecycle(
            "b",
            t2,
            Uuid::now_v7(),
            no,
            1,
            false,
            10,
            0,
        ));
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (first + i as u64 * step, e))
            .collect()
    };
    let mut all: Vec<(u64, RecordedEvent)> = Vec::new();
    let mut postings = Postings::default();
    let span = waihu_store::POSTINGS_SPAN as u64;

    // A new term's first append posts what the table holds beyond the postings, itself included.
    append_later(&pool, &mut postings, &mut all, batch(1, 1), true).await;
    assert_eq!(posted_to(&pool).await, all.last().expect("events").0 as i64);
    // Later batches are held until they span enough positions.
    let held_from = all.last().expect("events").0 + 1;
    for first in [held_from, held_from + span / 2] {
        append_later(&pool, &mut postings, &mut all, batch(first, 3), true).await;
    }
    assert_eq!(
        posted_to(&pool).await,
        held_from as i64 - 1,
        "held, not posted"
    );

    let reads_are_exact = |all: Vec<(u64, RecordedEvent)>| {
        let pool = pool.clone();
        async move {
            for (task, tenant) in [(Some(t1), None), (Some(t2), None), (None, Some("b"))] {
                for limit in [3, 7, 1000] {
                    let q = EventQuery {
                        task_id: task,
                        tenant_id: tenant.map(str::to_string),
                        limit,
                        ..Default::default()
                    };
                    let want: Vec<u64> = all
                        .iter()
                        .filter(|(_, e)| {
                            task.is_none_or(|t| e.meta.task_id == Some(t))
                                && tenant.is_none_or(|t| e.meta.tenant_id == t)
                        })
                        .map(|(p, _)| *p)
                        .collect();
                    assert_eq!(
                        read_all(&pool, q).await,
                        want,
                        "{task:?} {tenant:?} {limit}"
                    );
                }
            }
            // A bounded read ending among the events not posted yet.
            let to = all[all.len() - 4].0;
            let q = EventQuery {
                task_id: Some(t2),
                to_position: Some(to),
                limit: 4,
                ..Default::default()
            };
            let want: Vec<u64> = all
                .iter()
                .filter(|(p, e)| *p <= to && e.meta.task_id == Some(t2))
                .map(|(p, _)| *p)
                .collect();
            assert_eq!(read_all(&pool, q).await, want, "bounded");
        }
    };
    reads_are_exact(all.clone()).await;

    // The batch that makes them span enough writes them all, once.
    append_later(
        &pool,
        &mut postings,
        &mut all,
        batch(held_from + span, 1),
        true,
    )
    .await;
    assert_eq!(posted_to(&pool).await, all.last().expect("events").0 as i64);
    reads_are_exact(all.clone()).await;

    // A transaction that rolled back leaves the writer unsure of what it holds: its next append
    // posts the whole unposted tail from the table.
    let next = all.last().expect("events").0 + 1;
    append_later(&pool, &mut postings, &mut all, batch(next, 1), true).await;
    append_later(&pool, &mut postings, &mut all, batch(next + 100, 1), false).await;
    append_later(&pool, &mut postings, &mut all, batch(next + 200, 1), true).await;
    assert_eq!(posted_to(&pool).await, all.last().expect("events").0 as i64);
    reads_are_exact(all.clone()).await;

    // The next writer term posts what this one held (this one lost its lock without knowing
    // yet); this one's next write finds its events posted and lists only what is not.
    let next = all.last().expect("events").0 + 1;
    let b = batch(next, 1);
    let held = b.len() as u64;
    append_later(&pool, &mut postings, &mut all, b, true).await;
    assert_eq!(
        waihu_store::post_unposted(&pool).await.expect("posted"),
        held
    );
    append_later(&pool, &mut postings, &mut all, batch(next + span, 1), true).await;
    assert_eq!(posted_to(&pool).await, all.last().expect("events").0 as i64);
    reads_are_exact(all.clone()).await;

    // Every stored event is listed once under its task and once under its tenant.
    let [tasks, tenants] = listed(&pool).await;
    assert_eq!(tasks, (all.len() as i64, all.len() as i64));
    assert_eq!(tenants, (all.len() as i64, all.len() as i64));
    env.cleanup().await;
}
