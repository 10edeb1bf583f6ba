//! The dialer's tables are analyzed once their size moved by half, without waiting for
//! autovacuum (off on some servers, a minute apart by default): a plan cached while
//! `dialer_contacts` was empty is replanned once it holds a campaign.

mod common;

use std::time::Duration;

use waihu_runtime::statistics;
use waihu_testkit::{eventually, TestEnv};

async fn last_analyzed(pool: &sqlx::PgPool) -> Option<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar(
        "SELECT greatest(last_analyze, last_autoanalyze) FROM pg_stat_user_tables
         WHERE schemaname = 'dialer' AND relname = 'dialer_contacts'",
    )
    .fetch_one(pool)
    .await
    .expect("table statistics")
}

async fn insert_contacts(pool: &sqlx::PgPool, task: uuid::Uuid, n: i32) {
    sqlx::query(
        "INSERT INTO dialer_contacts (task_id, contact_no, phone, state, next_at)
         SELECT $1, g, '+86138' || lpad(g::text, 8, '0'), 0, now() FROM generate_series(1, $2) g",
    )
    .bind(task)
    .bind(n)
    .execute(pool)
    .await
    .expect("contacts");
}

/// Waits until `dialer_contacts` is stale (a backend reports its changes within a second or so
/// of committing).
async fn becomes_stale(pool: &sqlx::PgPool, what: &str) {
    eventually(Duration::from_secs(20), what, || {
        let pool = pool.clone();
        async move {
            statistics::stale_tables(&pool, waihu_dialer::SCHEMA)
                .await
                .expect("stale")
                .contains(&"dialer_contacts".to_string())
                .then_some(())
        }
    })
    .await;
}

/// Checks that no table is stale once the changes made so far have been reported.
async fn stays_fresh(pool: &sqlx::PgPool, why: &str) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stale = statistics::stale_tables(pool, waihu_dialer::SCHEMA)
        .await
        .expect("stale");
    assert!(stale.is_empty(), "{why}: {stale:?}");
}

#[tokio::test]
async fn a_table_that_grew_by_half_is_analyzed_and_then_left_alone() {
    let env = TestEnv::new().await;
    let pool = common::dialer_pool(&env).await;
    assert_eq!(
        last_analyzed(&pool).await,
        None,
        "a new table is unanalyzed"
    );
    // Where the server runs autovacuum, it must not analyze the table before the test does.
    sqlx::query("ALTER TABLE dialer_contacts SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await
        .expect("autovacuum off for the table");

    // 10 rows, then 5,000 (5,010 changes): stale. A backend reports its changes within a
    // second or so of committing.
    insert_contacts(&pool, uuid::Uuid::now_v7(), 10).await;
    insert_contacts(&pool, uuid::Uuid::now_v7(), 5000).await;
    let analyzed = eventually(Duration::from_secs(20), "dialer_contacts analyzed", || {
        let pool = pool.clone();
        async move {
            let t = statistics::refresh(&pool, waihu_dialer::SCHEMA)
                .await
                .expect("refresh");
            t.contains(&"dialer_contacts".to_string()).then_some(t)
        }
    })
    .await;
    assert!(
        !analyzed.contains(&"dialer_tasks".to_string()),
        "an unchanged table is not analyzed: {analyzed:?}"
    );
    assert!(last_analyzed(&pool).await.is_some());
    let reltuples: f32 = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = 'dialer.dialer_contacts'::regclass",
    )
    .fetch_one(&pool)
    .await
    .expect("reltuples");
    assert_eq!(reltuples, 5010.0, "the planner now knows the table's size");

    // Just analyzed: not stale. 400 more rows are under the minimum.
    assert!(statistics::stale_tables(&pool, waihu_dialer::SCHEMA)
        .await
        .expect("stale")
        .is_empty());
    insert_contacts(&pool, uuid::Uuid::now_v7(), 400).await;
    stays_fresh(&pool, "400 changes are under the minimum").await;
    // 1,600 more (2,000 rows more than at the analysis, over the minimum but under half of
    // 5,010): still not stale.
    insert_contacts(&pool, uuid::Uuid::now_v7(), 1600).await;
    stays_fresh(&pool, "2,000 rows more is under half of 5,010").await;
    // 600 more (2,600 rows more, over half of 5,010): stale again.
    insert_contacts(&pool, uuid::Uuid::now_v7(), 600).await;
    becomes_stale(&pool, "dialer_contacts stale again").await;

    // Analyzed at 7,610 rows; then every row updated once, the size unchanged: stale again.
    statistics::refresh(&pool, waihu_dialer::SCHEMA)
        .await
        .expect("refresh");
    sqlx::query("UPDATE dialer_contacts SET attempts = attempts + 1 WHERE contact_no <= 3000")
        .execute(&pool)
        .await
        .expect("updated");
    stays_fresh(&pool, "5,610 of 7,610 rows changed is not all of them").await;
    sqlx::query("UPDATE dialer_contacts SET attempts = attempts + 1 WHERE contact_no > 3000")
        .execute(&pool)
        .await
        .expect("updated");
    becomes_stale(&pool, "dialer_contacts stale after every row changed").await;
    pool.close().await;
    env.cleanup().await;
}
