//! The per-number daily limit (seed 000 `call_limit`): calls to a number are counted over all
//! of a tenant's tasks per local day; a number at its task's limit waits for the next local
//! midnight, and is never called more often than the limit allows that day.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use waihu_e2e::*;
use waihu_events::pb;
use waihu_provider::sim::Outcome;

/// The task's contacts that wait, with when they are next due.
async fn waiting(cluster: &Cluster, task_id: &str) -> Vec<DateTime<Utc>> {
    sqlx::query_scalar(
        "SELECT next_at FROM dialer.dialer_contacts WHERE task_id = $1::uuid AND state = 0",
    )
    .bind(task_id)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("contacts")
}

/// The next midnight in Asia/Shanghai (the default tenant's zone), from the database's clock.
async fn next_midnight(cluster: &Cluster) -> DateTime<Utc> {
    sqlx::query_scalar(
        "SELECT (((now() AT TIME ZONE 'Asia/Shanghai')::date + 1)::timestamp
                 AT TIME ZONE 'Asia/Shanghai')",
    )
    .fetch_one(&cluster.env.pool)
    .await
    .expect("midnight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_at_its_daily_limit_waits_for_the_next_local_day() {
    let sim = fast_sim(777);
    let cluster = Cluster::start(sim.clone(), one_line(100)).await;
    let mut tasks = cluster.tasks().await;
    let numbers = phones(60, 6);

    // Task A, no limit: every number once (no recalls).
    let a = create_with_contacts(&mut tasks, spec("a", 0, 0), &numbers).await;
    run_to_completion(&mut tasks, &a, Duration::from_secs(60)).await;
    assert!(calls_per_number(&cluster, &a)
        .await
        .values()
        .all(|n| *n == 1));

    // Task B, the same numbers with a limit of 1 a day: none is called today; every contact
    // waits for Shanghai's next midnight, and B stays running.
    let b = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            daily_call_limit: 1,
            ..spec("b", 0, 0)
        },
        &numbers,
    )
    .await;
    start(&mut tasks, &b).await;
    let midnight = next_midnight(&cluster).await;
    waihu_testkit::eventually(Duration::from_secs(30), "B's contacts deferred", || {
        let (c, b) = (&cluster, b.clone());
        async move {
            let w = waiting(c, &b).await;
            (w.len() == 60 && w.iter().all(|t| *t == midnight)).then_some(())
        }
    })
    .await;
    assert!(
        calls_per_number(&cluster, &b).await.is_empty(),
        "B called nothing"
    );

    // Task C, other numbers, limit 2 a day with up to 5 recalls: no number gets a third call
    // today; those still unfinished after two wait for tomorrow.
    let others = phones(80, 1);
    let c_spec = pb::TaskSpec {
        daily_call_limit: 2,
        ..spec("c", 5, 0)
    };
    let c = create_with_contacts(&mut tasks, c_spec, &others).await;
    start(&mut tasks, &c).await;
    // What the simulator's outcomes say: a number finishes within its first two calls, or waits.
    let want = expected(&sim, &e164(&others), 5);
    let waits = want.attempts.values().filter(|n| **n > 2).count();
    assert!(waits > 0, "some numbers need a third call");
    waihu_testkit::eventually(Duration::from_secs(60), "C's day to be done", || {
        let (cl, c) = (&cluster, c.clone());
        async move {
            let w = waiting(cl, &c).await;
            (w.len() == waits && w.iter().all(|t| *t == midnight)).then_some(())
        }
    })
    .await;
    let got = calls_per_number(&cluster, &c).await;
    let capped: BTreeMap<String, u32> = want
        .attempts
        .iter()
        .map(|(p, n)| (p.clone(), (*n).min(2)))
        .collect();
    assert_eq!(got, capped);
    // A number whose first call was answered was called once.
    assert!(got
        .iter()
        .any(|(p, n)| *n == 1 && matches!(sim.outcome(p, 1), Outcome::Answered { .. })));
    cluster.shutdown().await;
}
