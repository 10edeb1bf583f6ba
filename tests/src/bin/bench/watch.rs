//! `watch_stats_lag`: how soon a WatchTaskStats client sees a change. Call lifecycles are
//! published at 1,000 calls/s (4-5 events each) for one task while a client watches it; for
//! every release, the lag is the time from its publish to the first snapshot that counts it.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use waihu_bus::Expect;
use waihu_e2e::as_tenant;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_proto::v1::stats_service_client::StatsServiceClient;
use waihu_testkit::TestEnv;

const TENANT: &str = "bench";

/// p50 and p99 lag in milliseconds, the achieved rate in calls/s, and the calls published.
pub async fn run(env: &TestEnv, calls: usize) -> Result<(f64, f64, f64, usize), String> {
    let stop = CancellationToken::new();
    let handle = waihu_record::start(waihu_record::RecordConfig::new(env.config()), stop.clone())
        .await
        .map_err(|e| format!("record service: {e}"))?;
    let result = measure(env, &format!("http://{}", handle.addr), calls).await;
    stop.cancel();
    handle.wait().await;
    result
}

async fn measure(
    env: &TestEnv,
    addr: &str,
    calls: usize,
) -> Result<(f64, f64, f64, usize), String> {
    let task = uuid::Uuid::now_v7();
    let created = RecordedEvent::new(
        EventMeta::new(TENANT, Aggregate::Task(task), 1).with_task(task),
        Event::TaskCreated(pb::TaskCreated {
            task_id: task.to_string(),
            spec: Some(pb::TaskSpec {
                name: "watch bench".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    );
    env.bus
        .publish(&created, Expect::Any)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = StatsServiceClient::connect(addr.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let request = || {
        as_tenant(
            TENANT,
            pb::GetTaskStatsRequest {
                task_id: task.to_string(),
            },
        )
    };
    // The task is known once its creation is projected.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match client.watch_task_stats(request()).await {
            Ok(s) => break s.into_inner(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => return Err(format!("watch: {e}")),
        }
    };
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<(Instant, u64)> = Vec::new();
        while let Ok(Some(s)) = stream.message().await {
            seen.push((Instant::now(), s.calls_released));
            if s.calls_released as usize >= calls {
                break;
            }
        }
        seen
    });

    // 10 calls every 10 ms: 1,000 calls/s, each call's five events at once.
    let mut released_at = Vec::with_capacity(calls);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut no = 0u32;
    while (no as usize) < calls {
        tick.tick().await;
        let in_batch = 10.min(calls - no as usize);
        let batch: Vec<(RecordedEvent, Expect)> = (0..in_batch)
            .flat_map(|_| {
                no += 1;
                waihu_testkit::call_lifecycle(
                    TENANT,
                    task,
                    uuid::Uuid::now_v7(),
                    no,
                    1,
                    no.is_multiple_of(2),
                    3000,
                    20_000,
                )
            })
            .map(|e| (e, Expect::Any))
            .collect();
        let t = Instant::now();
        for r in env.bus.publish_all(&batch, 100).await {
            r.map_err(|e| e.to_string())?;
        }
        released_at.extend(std::iter::repeat_n(t, in_batch));
    }
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    let seen = tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .map_err(|_| "the watch did not see every release within 120 s".to_string())?
        .map_err(|e| e.to_string())?;
    // For the i-th release: the first snapshot counting at least i releases.
    let mut lags = Vec::with_capacity(calls);
    let mut s = 0;
    for (i, t) in released_at.iter().enumerate() {
        while s < seen.len() && (seen[s].1 as usize) < i + 1 {
            s += 1;
        }
        let Some((at, _)) = seen.get(s) else {
            return Err(format!("no snapshot counted release {}", i + 1));
        };
        lags.push(at.saturating_duration_since(*t).as_secs_f64() * 1000.0);
    }
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    Ok((at(0.50), at(0.99), rate, calls))
}
