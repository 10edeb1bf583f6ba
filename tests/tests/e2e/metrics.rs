//! `/metrics` (issue 13): every service serves the Prometheus text exposition, and during a
//! campaign the series operators watch move: events published and consumed, consumer lag and
//! dead letters, outbox depth, the store's position and the projections' lag, calls in flight
//! and placed per line, dial decisions by reason, gRPC and HTTP requests with their latency, and
//! which build runs. A service binary run as its own process says so too.

use std::{collections::BTreeMap, time::Duration};

use bytes::Bytes;
use waihu_e2e::*;
use waihu_events::pb;

/// One scrape: every sample as (name with labels) → value.
async fn scrape(addr: std::net::SocketAddr) -> BTreeMap<String, f64> {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap_or_else(|e| panic!("scrape {addr}: {e}"));
    assert!(resp.status().is_success(), "{addr}: {}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = resp.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "the exposition ends with # EOF");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples whose name (with labels) starts with `prefix` and contains every
/// one of `having`.
fn sum(samples: &BTreeMap<String, f64>, prefix: &str, having: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && having.iter().all(|h| k.contains(h)))
        .map(|(_, v)| v)
        .sum()
}

fn has(samples: &BTreeMap<String, f64>, prefix: &str) -> bool {
    samples.keys().any(|k| k.starts_with(prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_metrics_that_move_during_a_campaign() {
    let cluster = Cluster::start_analysed(fast_sim(5150), one_line(20)).await;
    let addrs = cluster.metrics_addrs();
    assert_eq!(addrs.len(), 5, "{addrs:?}");
    // The services run in this one process and share its registry: every endpoint answers,
    // and the samples are compared before and after.
    let mut before = BTreeMap::new();
    for (name, addr) in &addrs {
        let s = scrape(*addr).await;
        assert!(!s.is_empty(), "{name}");
        before = s;
    }

    let phones = phones(60, 3);
    cluster
        .dialer()
        .await
        .add_do_not_call(pb::DoNotCallRequest {
            phones: vec![phones[0].clone(), phones[1].clone()],
            reason: "metrics".into(),
        })
        .await
        .expect("do-not-call");
    let mut tasks = cluster.tasks().await;
    let task = create_with_contacts(&mut tasks, spec("metrics", 0, 0), &phones).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    let stats = wait_stats_settled(&cluster, &task, 60, Duration::from_secs(30)).await;
    // A request that fails: NOT_FOUND counted under its code.
    let missing = tasks
        .get_task(pb::TaskRef {
            task_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("no such task");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // An HTTP request to the recordings endpoint with no signature: 403, counted by route.
    let rec = reqwest::get(format!(
        "{}/recordings/{}.wav",
        cluster.recording.public_url,
        uuid::Uuid::now_v7()
    ))
    .await
    .expect("recordings endpoint");
    assert_eq!(rec.status().as_u16(), 403);
    // A message no consumer can read: dead-lettered.
    let bus = &cluster.env.bus;
    let subject = bus.subject(&waihu_events::Aggregate::Task(
        task.parse().expect("task uuid"),
    ));
    bus.publish_raw(
        subject,
        async_nats::HeaderMap::new(),
        Bytes::from_static(b"not an envelope"),
    )
    .await
    .expect("poison published");

    let after = waihu_testkit::eventually(Duration::from_secs(20), "the metrics to move", || {
        let addr = addrs[0].1;
        async move {
            let s = scrape(addr).await;
            let ok = sum(&s, "waihu_dead_letters_total", &[]) >= 1.0
                && sum(&s, "waihu_projection_lag_events", &[]) == 0.0
                && has(&s, "waihu_outbox_depth");
            ok.then_some(s)
        }
    })
    .await;
    let moved = |prefix: &str, having: &[&str]| {
        let (b, a) = (sum(&before, prefix, having), sum(&after, prefix, having));
        assert!(a > b, "{prefix} {having:?}: {b} -> {a}");
    };
    moved("waihu_events_published_total", &["type=\"CallRequested\""]);
    moved("waihu_events_published_total", &["type=\"CallReleased\""]);
    moved("waihu_events_consumed_total", &["type=\"CallReleased\""]);
    moved("waihu_store_position", &[]);
    moved("waihu_calls_placed_total", &["line=\"default/"]);
    moved(
        "waihu_dial_decisions_total",
        &["decision=\"dial\"", "reason=\"ok\""],
    );
    moved("waihu_dial_decisions_total", &["reason=\"do_not_call\""]);
    moved(
        "waihu_grpc_requests_total",
        &["method=\"/waihu.v1.TaskService/CreateTask\"", "code=\"0\""],
    );
    moved(
        "waihu_grpc_requests_total",
        &["method=\"/waihu.v1.TaskService/GetTask\"", "code=\"5\""],
    );
    moved(
        "waihu_grpc_request_duration_seconds_count",
        &["method=\"/waihu.v1.TaskService/AddContacts\""],
    );
    moved(
        "waihu_http_requests_total",
        &["route=\"/recordings/{file}\"", "status=\"403\""],
    );
    moved(
        "waihu_http_request_duration_seconds_count",
        &["route=\"/recordings/{file}\""],
    );
    moved("waihu_dead_letters_total", &[]);
    moved(
        "waihu_events_published_total",
        &["type=\"AnalysisCompleted\""],
    );
    // Placed calls add up to what the statistics say (other tests do not share this process'
    // line label: the line's tenant and id are this cluster's).
    assert!(
        sum(&after, "waihu_calls_placed_total", &["line=\"default/"])
            - sum(&before, "waihu_calls_placed_total", &["line=\"default/"])
            >= stats.calls_placed as f64
    );
    for series in [
        "waihu_consumer_pending",
        "waihu_outbox_depth",
        "waihu_outbox_oldest_seconds",
        "waihu_calls_in_flight",
        "waihu_projection_lag_events",
    ] {
        assert!(has(&after, series), "{series}");
    }
    cluster.shutdown().await;
}

/// The analysis binary as its own process: its `/metrics` names it and counts the health checks
/// it served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_process_says_which_build_it_runs() {
    let env = waihu_testkit::TestEnv::new().await;
    let bin = service_binary("waihu-analysis");
    let (grpc, metrics) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(bin)
        .env("WAIHU_NATS_URL", waihu_testkit::nats_url())
        .env("WAIHU_DATABASE_URL", &env.database_url)
        .env("WAIHU_PREFIX", &env.prefix)
        .env("WAIHU_GRPC_ADDR", grpc.to_string())
        .env("WAIHU_METRICS_ADDR", metrics.to_string())
        .env("WAIHU_AUTH__DEV_MODE", "true")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("analysis process");
    let url = format!("http://{grpc}");
    waihu_testkit::eventually(Duration::from_secs(30), "the process serving", || {
        let url = url.clone();
        async move { waihu_runtime::is_serving(&url).await.then_some(()) }
    })
    .await;
    let s = scrape(metrics).await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        s.get(&format!(
            "waihu_build_info{{service=\"waihu-analysis\",version=\"{version}\"}}"
        )),
        Some(&1.0),
        "{s:?}"
    );
    assert!(
        sum(
            &s,
            "waihu_grpc_requests_total",
            &["method=\"/grpc.health.v1.Health/Check\""]
        ) >= 1.0,
        "{s:?}"
    );
    // Nothing of the test process' own services: the process has its own registry.
    assert_eq!(sum(&s, "waihu_calls_placed_total", &[]), 0.0);
    child.kill().await.expect("stopped");
    env.cleanup().await;
}
