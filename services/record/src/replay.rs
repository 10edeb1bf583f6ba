//! Rebuilds the statistics from the store, from position 0, into fresh tables with the same
//! projection code, and compares them with the live projection as of the same position (the
//! projections' checkpoint).

use std::collections::BTreeMap;

use sqlx::{Acquire, PgPool};
use uuid::Uuid;
use waihu_store::{EventQuery, StoreError};

use crate::projection::{self, CHECKPOINT};

#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Store position both sides are as of.
    pub position: u64,
    pub events_replayed: u64,
    pub counters: usize,
    pub tasks: usize,
    /// Events the projections skipped: this build cannot read their payload.
    pub events_skipped: u64,
    /// One line per differing (task, key).
    pub differences: Vec<String>,
}

impl VerifyReport {
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

type Counters = BTreeMap<(Uuid, String), i64>;

/// Replays the whole store; `progress` is called with (position reached, head position).
pub async fn verify(
    pool: &PgPool,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    let mut conn = pool.acquire().await?;
    let live_tables = projection::Tables::live();
    // The live numbers and the position they are as of, read in one snapshot.
    let (position, live) = {
        let mut tx = conn.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let position = waihu_store::checkpoint(&mut *tx, CHECKPOINT).await?;
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(&format!(
            "SELECT task_id, key, value FROM {}",
            live_tables.counters
        ))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        (
            position,
            rows.into_iter()
                .map(|(t, k, v)| ((t, k), v))
                .collect::<Counters>(),
        )
    };

    let suffix = Uuid::new_v4().simple().to_string();
    let tables = projection::Tables {
        call_records: format!("replay_calls_{suffix}"),
        counters: format!("replay_counters_{suffix}"),
        tasks: format!("replay_tasks_{suffix}"),
    };
    for (fresh, like) in [
        (&tables.call_records, &live_tables.call_records),
        (&tables.counters, &live_tables.counters),
        (&tables.tasks, &live_tables.tasks),
    ] {
        sqlx::query(&format!(
            "CREATE TEMP TABLE {fresh} (LIKE {like} INCLUDING ALL) ON COMMIT PRESERVE ROWS"
        ))
        .execute(&mut *conn)
        .await?;
    }

    let mut report = VerifyReport {
        position,
        ..Default::default()
    };
    let mut after = 0;
    loop {
        let page = waihu_store::read(
            pool,
            &EventQuery {
                after_position: after,
                to_position: Some(position),
                limit: 5000,
                ..Default::default()
            },
        )
        .await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        let events: Vec<_> = page
            .iter()
            .filter_map(|e| Some((e.position, e.event.known()?)))
            .collect();
        report.events_skipped += (page.len() - events.len()) as u64;
        let mut tx = conn.begin().await?;
        projection::apply(&mut tx, &tables, &events).await?;
        tx.commit().await?;
        report.events_replayed += page.len() as u64;
        after = last;
        progress(after, position);
    }

    let rebuilt: Counters = sqlx::query_as::<_, (Uuid, String, i64)>(&format!(
        "SELECT task_id, key, value FROM {}",
        tables.counters
    ))
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(t, k, v)| ((t, k), v))
    .collect();
    for t in [&tables.call_records, &tables.counters, &tables.tasks] {
        sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
            .execute(&mut *conn)
            .await?;
    }

    report.counters = live.len();
    report.tasks = live
        .keys()
        .map(|(t, _)| *t)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    for key in live
        .keys()
        .chain(rebuilt.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (live.get(key), rebuilt.get(key));
        if a != b {
            report.differences.push(format!(
                "task {} {}: live {} rebuilt {}",
                key.0,
                key.1,
                a.map_or("absent".into(), |v| v.to_string()),
                b.map_or("absent".into(), |v| v.to_string())
            ));
        }
    }
    Ok(report)
}
