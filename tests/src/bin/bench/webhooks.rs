//! Webhook ingestion: callbacks/s the provider adapter accepts (authenticated, kept, announced)
//! and turns into call events, measured on Twilio status callbacks against a local Twilio
//! (`waihu_e2e::fakes::twilio`) that places the calls and stays silent, so every event of the
//! measured stretch comes from the callbacks this bench sends.

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;
use waihu_e2e::{
    fakes::twilio::{twilio_signature, Delivery, FakeTwilio, Fate},
    *,
};
use waihu_provider::sim::Simulator;

/// Callbacks in flight at once.
pub const CONCURRENCY: usize = 32;

/// Returns (callbacks/s, callbacks sent).
pub async fn run(calls: usize) -> Result<(f64, usize), String> {
    let fake = FakeTwilio::start(|_, _| (Fate::Answered { talk_s: 1 }, Delivery::Silent)).await;
    let mut cluster = Cluster::start(Simulator::default(), vec![]).await;
    // Nobody polls while the callbacks are measured.
    cluster.polling = waihu_provider::cloud::Polling {
        initial: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
        give_up: Duration::from_secs(7200),
    };
    cluster.restart_provider().await;
    cluster
        .providers()
        .await
        .create_line(fake.line("twilio-bench", calls as u32))
        .await
        .map_err(|e| format!("line: {e}"))?;
    let mut tasks = cluster.tasks().await;
    let task =
        create_with_contacts(&mut tasks, spec("webhook-bench", 0, 0), &phones(calls, 2)).await;
    start(&mut tasks, &task).await;
    // Every call placed and its provider id kept: callbacks can find their call.
    let pool = cluster.env.pool.clone();
    waihu_testkit::eventually(Duration::from_secs(300), "every call placed", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM provider.provider_calls WHERE provider_call_id IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (n as usize == calls).then_some(())
        }
    })
    .await;
    let url = format!(
        "http://{}/api/v1/calls/webhook/twilio/status",
        cluster.provider_http
    );
    let http = reqwest::Client::new();
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let started = std::time::Instant::now();
    let mut sent = Vec::with_capacity(calls * 3);
    for c in fake.calls() {
        for (status, duration) in [("ringing", "0"), ("in-progress", "0"), ("completed", "1")] {
            let params = vec![
                ("AccountSid".to_string(), fake.account_sid.clone()),
                ("CallDuration".to_string(), duration.to_string()),
                ("CallSid".to_string(), c.sid.clone()),
                ("CallStatus".to_string(), status.to_string()),
                ("To".to_string(), c.to.clone()),
            ];
            let sig = twilio_signature(&fake.auth_token, &url, &params);
            let body: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            let permit = gate
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let req = http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(body);
            sent.push(tokio::spawn(async move {
                let r = req.send().await.map(|r| r.status().is_success());
                drop(permit);
                r
            }));
        }
    }
    let n = sent.len();
    for s in sent {
        match s.await {
            Ok(Ok(true)) => {}
            other => return Err(format!("a callback was not accepted: {other:?}")),
        }
    }
    wait_stats(
        &cluster,
        &task,
        "every call released",
        Duration::from_secs(300),
        |s| s.calls_released as usize == calls,
    )
    .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    cluster.shutdown().await;
    Ok((rate, n))
}
