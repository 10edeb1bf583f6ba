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
    let (position, live, live_sums) = {
        let mut tx = conn.begin().await?;
        waihu_store::read_only_snapshot(&mut tx).await?;
        let position = waihu_store::checkpoint(&mut *tx, CHECKPOINT).await?;
        let rows: Vec<(Uuid, String, i64)> =
            sqlx::query_as(&projection::counter_rows(&live_tables.counters))
                .fetch_all(&mut *tx)
                .await?;
        // The other projections (call records, task states, analyses, follow-ups), summed up
        // in the same snapshot.
        let sums = table_sums(&mut tx, &live_tables).await?;
        tx.commit().await?;
        (
            position,
            rows.into_iter()
                .map(|(t, k, v)| ((t, k), v))
                .collect::<Counters>(),
            sums,
        )
    };

    let suffix = Uuid::new_v4().simple().to_string();
    let tables = projection::Tables::rebuilt(&suffix);
    for ((fresh, _), (like, _)) in tables.all().into_iter().zip(live_tables.all()) {
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

    let rebuilt: Counters =
        sqlx::query_as::<_, (Uuid, String, i64)>(&projection::counter_rows(&tables.counters))
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|(t, k, v)| ((t, k), v))
            .collect();
    let rebuilt_sums = {
        let mut tx = conn.begin().await?;
        let sums = table_sums(&mut tx, &tables).await?;
        tx.commit().await?;
        sums
    };
    for (t, _) in tables.all() {
        sqlx::query(&format!("DROP TABLE IF EXISTS {t}"))
            .execute(&mut *conn)
            .await?;
    }
    for ((name, live), (_, rebuilt)) in live_sums.iter().zip(&rebuilt_sums) {
        if live != rebuilt {
            report.differences.push(format!(
                "{name}: live {} rows (sum {}), rebuilt {} rows (sum {})",
                live.0, live.1, rebuilt.0, rebuilt.1
            ));
        }
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
        // A counter that went back to 0 (an analysis replaced by one of another intent, applied
        // in another batch than the rebuild's) is the same as one never written.
        if a.copied().unwrap_or(0) != b.copied().unwrap_or(0) {
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

/// Row count and an order-independent checksum of every projection table but the counters
/// (compared one by one): the sum of a 60-bit hash of each row's text.
async fn table_sums(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tables: &projection::Tables,
) -> Result<Vec<(&'static str, (i64, String))>, StoreError> {
    let mut out = Vec::new();
    for (table, what) in tables.all().into_iter().skip(1) {
        let (rows, sum): (i64, String) = sqlx::query_as(&format!(
            "SELECT count(*), COALESCE(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text
             FROM {table} t"
        ))
        .fetch_one(&mut **tx)
        .await?;
        out.push((what, (rows, sum)));
    }
    Ok(out)
}
