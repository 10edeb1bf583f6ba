//! SIP call setup: calls/s a `sip` line sets up against sipp playing the trunk on loopback
//! (`tests/sipp/trunk.xml`), every call answered (INVITE, 100, 180, 200, ACK), talking
//! [`TALK_MS`] while RTP is recorded, then hung up by the trunk; up to `CONCURRENCY` at once.

use std::time::{Duration, Instant};

use waihu_e2e::{sipp::Sipp, *};
use waihu_provider::sim::Simulator;

/// How long each call talks (RTP recorded) before the trunk hangs up.
pub const TALK_MS: u64 = 200;

/// Calls up at once at most (the line's max_concurrent).
pub const CONCURRENCY: u32 = 300;

/// Returns (calls set up per second, calls).
pub async fn run(calls: usize) -> Result<(f64, usize), String> {
    if std::process::Command::new("sipp")
        .arg("-v")
        .output()
        .is_err()
    {
        return Err("sipp is not installed (scripts/ensure-tools.sh installs it)".into());
    }
    let trunk = Sipp::start("trunk.xml", TALK_MS).await;
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    cluster
        .providers()
        .await
        .create_line(trunk.line("sip-bench", CONCURRENCY, &[]))
        .await
        .map_err(|e| format!("line: {e}"))?;
    // Numbers ending in 0: the trunk answers each.
    let list: Vec<String> = (0..calls).map(|i| format!("138{i:07}0")).collect();
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("sip-bench", 0, 0), &list).await;
    let t = Instant::now();
    run_to_completion(&mut tasks, &task, Duration::from_secs(1800)).await;
    let secs = t.elapsed().as_secs_f64();
    let stats = wait_stats_settled(&cluster, &task, calls as u64, Duration::from_secs(120)).await;
    cluster.shutdown().await;
    if stats.calls_answered != calls as u64 {
        return Err(format!(
            "{} of {calls} calls answered: {}",
            stats.calls_answered,
            trunk.errors()
        ));
    }
    Ok((stats.calls_answered as f64 / secs, calls))
}
