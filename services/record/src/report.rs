//! Figures computed from the call records projection: a task's per-hour series and per-line
//! figures, and a tenant's day (the dashboard). Each is read in one snapshot with the position
//! it is as of.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waihu_events::timestamp;
use waihu_proto::v1 as pb;
use waihu_telephony::zone::Tz;

use crate::{
    grpc::RecordError,
    projection::{task_state, CHECKPOINT},
};

fn rate(answered: i64, released: i64) -> f64 {
    if released > 0 {
        answered as f64 / released as f64
    } else {
        0.0
    }
}

fn average_seconds(talk_ms: i64, answered: i64) -> f64 {
    if answered > 0 {
        talk_ms as f64 / 1000.0 / answered as f64
    } else {
        0.0
    }
}

/// (group, calls, released, answered, talk ms of the answered).
type Group<T> = (T, i64, i64, i64, i64);

const FIGURES: &str = "count(*), count(released_at), count(*) FILTER (WHERE answered), \
    COALESCE(sum(talk_ms) FILTER (WHERE answered), 0)::bigint";

/// A task's calls by the hour they were requested in (UTC) and by line.
pub async fn task_report(pool: &PgPool, task: Uuid) -> Result<pb::TaskReport, RecordError> {
    let mut tx = pool.begin().await?;
    waihu_store::read_only_snapshot(&mut tx).await?;
    let position = waihu_store::checkpoint(&mut *tx, CHECKPOINT).await?;
    let hours: Vec<Group<DateTime<Utc>>> = sqlx::query_as(&format!(
        "SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, {FIGURES}
         FROM call_records WHERE task_id = $1 GROUP BY 1 ORDER BY 1"
    ))
    .bind(task)
    .fetch_all(&mut *tx)
    .await?;
    let lines: Vec<Group<Option<String>>> = sqlx::query_as(&format!(
        "SELECT line_id, {FIGURES} FROM call_records WHERE task_id = $1 GROUP BY 1 ORDER BY 1"
    ))
    .bind(task)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pb::TaskReport {
        task_id: task.to_string(),
        hours: hours
            .into_iter()
            .map(|(hour, calls, released, answered, talk)| pb::HourFigures {
                hour: Some(timestamp(hour)),
                calls: calls as u64,
                answered: answered as u64,
                connect_rate: rate(answered, released),
                average_talk_seconds: average_seconds(talk, answered),
            })
            .collect(),
        lines: lines
            .into_iter()
            .map(|(line, calls, released, answered, talk)| pb::LineFigures {
                line_id: line.unwrap_or_default(),
                calls: calls as u64,
                answered: answered as u64,
                connect_rate: rate(answered, released),
                average_talk_seconds: average_seconds(talk, answered),
                total_talk_seconds: (talk / 1000) as u64,
            })
            .collect(),
        as_of_position: position,
    })
}

/// Midnight of `now`'s day in `zone`, as a UTC instant (the first instant of a day that starts
/// in a gap).
pub fn day_start(zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let day = now.with_timezone(&zone).date_naive();
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| zone.from_utc_datetime(&midnight).with_timezone(&Utc))
}

/// The tenant's day so far in `zone`.
pub async fn dashboard(
    pool: &PgPool,
    tenant: &str,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<pb::Dashboard, RecordError> {
    let start = day_start(zone, now);
    let mut tx = pool.begin().await?;
    waihu_store::read_only_snapshot(&mut tx).await?;
    let position = waihu_store::checkpoint(&mut *tx, CHECKPOINT).await?;
    let (calls, released, answered, talk): (i64, i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT {FIGURES} FROM call_records WHERE tenant_id = $1 AND started_at >= $2"
    ))
    .bind(tenant)
    .bind(start)
    .fetch_one(&mut *tx)
    .await?;
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM record_tasks WHERE tenant_id = $1 AND state = $2")
            .bind(tenant)
            .bind(task_state::RUNNING)
            .fetch_one(&mut *tx)
            .await?;
    // The end of the local day: the next midnight (23 to 25 hours later).
    let next = day_start(zone, start + Duration::hours(25));
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM follow_ups WHERE tenant_id = $1 AND next_at >= $2 AND next_at < $3",
    )
    .bind(tenant)
    .bind(start)
    .bind(next)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pb::Dashboard {
        day_start: Some(timestamp(start)),
        calls_today: calls as u64,
        answered_today: answered as u64,
        connect_rate_today: rate(answered, released),
        talk_seconds_today: (talk / 1000) as u64,
        running_tasks: running as u64,
        follow_ups_due_today: due as u64,
        as_of_position: position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_local_midnight() {
        let zone: Tz = "Asia/Shanghai".parse().expect("zone");
        let now = DateTime::parse_from_rfc3339("2026-12-06T17:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        // 01:30 on the 7th in Shanghai: the day began at 16:00 UTC on the 6th.
        assert_eq!(
            day_start(zone, now).to_rfc3339(),
            "2026-12-06T16:00:00+00:00"
        );
        let next = day_start(zone, day_start(zone, now) + Duration::hours(25));
        assert_eq!(next.to_rfc3339(), "2026-12-07T16:00:00+00:00");
    }
}
