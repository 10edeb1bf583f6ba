//! The dialer as a real process, killed with SIGKILL twice in a 5,000-contact campaign with
//! every rule on (a calling window, a paced and capped line, a per-number daily limit,
//! priorities, a do-not-call list): the statistics come out exactly as the simulator's outcomes
//! say, no contact ever had two calls out, and no call is left open.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use chrono::{DateTime, Utc};
use prost::Message;
use tokio::process::{Child, Command};
use tokio_stream::StreamExt;
use waihu_e2e::*;
use waihu_events::pb;

fn spawn_dialer(cluster: &Cluster, port: u16) -> Child {
    Command::new(service_binary("waihu-dialer"))
        .env("WAIHU_NATS_URL", waihu_testkit::nats_url())
        .env("WAIHU_DATABASE_URL", &cluster.env.database_url)
        .env("WAIHU_PREFIX", &cluster.env.prefix)
        .env("WAIHU_GRPC_ADDR", format!("127.0.0.1:{port}"))
        // Its default metrics port (gRPC port + 1000) may be another process' (seen in a full
        // run: the dialer exited at start and the test waited for calls that never came).
        .env("WAIHU_METRICS_ADDR", "off")
        .env_remove("WAIHU_CONFIG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("WAIHU_AUTH__DEV_MODE", "true")
        .env("WAIHU_DIALER__TICK_MS", "50")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the dialer starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_dialer_twice_with_every_rule_on_leaves_everything_exact() {
    let sim = fast_sim(20261121);
    let mut cluster = Cluster::start(sim.clone(), one_line(200)).await;
    // The line paced and capped (both in force, neither binding the campaign's outcome).
    let mut line = one_line(200)[0].to_pb();
    line.cps = 400.0;
    line.daily_cap = 1_000_000;
    cluster
        .providers()
        .await
        .update_line(pb::UpdateLineRequest {
            line: Some(line),
            expected_version: 1,
            ..Default::default()
        })
        .await
        .expect("line paced");
    let list = phones(5000, 77);
    let numbers = e164(&list);
    // 100 numbers on the do-not-call list.
    let listed: Vec<String> = numbers.iter().step_by(50).cloned().collect();
    cluster
        .dialer()
        .await
        .add_do_not_call(pb::DoNotCallRequest {
            phones: listed.clone(),
            reason: "test".into(),
        })
        .await
        .expect("listed");
    cluster.stop_dialer().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut dialer = spawn_dialer(&cluster, port);

    let mut tasks = cluster.tasks().await;
    let t = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            priority: 1,
            daily_call_limit: 3,
            window: Some(pb::CallingWindow {
                hours: open_now(),
                holidays: vec!["2001-01-01".into()],
                ..Default::default()
            }),
            ..spec("sigkill", 2, 0)
        },
        &list,
    )
    .await;
    start(&mut tasks, &t).await;
    for at in [1500u64, 3500] {
        assert!(
            dialer.try_wait().expect("try_wait").is_none(),
            "the dialer process exited by itself (its stderr is in the test's output)"
        );
        wait_stats(
            &cluster,
            &t,
            "calls to kill at",
            Duration::from_secs(120),
            |s| s.calls_placed >= at,
        )
        .await;
        dialer.start_kill().expect("SIGKILL");
        dialer.wait().await.expect("reaped");
        dialer = spawn_dialer(&cluster, port);
    }
    wait_status(
        &mut tasks,
        &t,
        pb::TaskStatus::Completed,
        Duration::from_secs(180),
    )
    .await;

    // The simulator's outcomes for the numbers not listed, and DO_NOT_CALL for the listed.
    let dialable: Vec<String> = numbers
        .iter()
        .filter(|n| !listed.contains(n))
        .cloned()
        .collect();
    let x = expected(&sim, &dialable, 2);
    let stats = wait_stats(&cluster, &t, "settled", Duration::from_secs(120), |s| {
        s.contacts_finished == 5000 && s.calls_released == x.calls_placed
    })
    .await;
    assert_eq!(stats.calls_placed, x.calls_placed, "calls_placed");
    assert_eq!(stats.calls_answered, x.calls_answered, "calls_answered");
    assert_eq!(stats.total_talk_seconds, x.talk_ms / 1000, "talk");
    let causes: BTreeMap<u32, u64> = stats
        .hangup_causes
        .iter()
        .map(|c| (c.q850, c.count))
        .collect();
    assert_eq!(causes, x.causes, "hangup causes");
    let mut want = x.outcomes.clone();
    want.insert(pb::ContactOutcome::DoNotCall as i32, listed.len() as u64);
    let outcomes: BTreeMap<i32, u64> = stats
        .outcomes
        .iter()
        .map(|o| (o.outcome, o.count))
        .collect();
    assert_eq!(outcomes, want, "contact outcomes");
    let calls = calls_per_number(&cluster, &t).await;
    assert_eq!(calls, x.attempts, "calls per number");

    // From the store: each contact's calls are attempts 1..n, each released before the next
    // was requested; every call requested was released.
    let mut stream = cluster
        .records()
        .await
        .export_events(pb::ExportEventsRequest {
            task_id: t.clone(),
            event_types: vec!["CallRequested".into(), "CallReleased".into()],
            ..Default::default()
        })
        .await
        .expect("export")
        .into_inner();
    let mut requested: HashMap<String, (u32, u32, DateTime<Utc>)> = HashMap::new();
    let mut released: HashMap<String, DateTime<Utc>> = HashMap::new();
    while let Some(e) = stream.next().await {
        let env = e.expect("event").envelope.expect("envelope");
        let at = waihu_events::from_timestamp(&env.occurred_at.expect("time")).expect("time");
        if env.event_type == "CallRequested" {
            let r = pb::CallRequested::decode(env.payload.as_ref()).expect("payload");
            assert!(
                requested
                    .insert(r.call_id, (r.contact_no, r.attempt, at))
                    .is_none(),
                "a call requested twice"
            );
        } else {
            let r = pb::CallReleased::decode(env.payload.as_ref()).expect("payload");
            released.insert(r.call_id, at);
        }
    }
    assert_eq!(requested.len() as u64, x.calls_placed);
    let open: Vec<&String> = requested
        .keys()
        .filter(|c| !released.contains_key(*c))
        .collect();
    assert!(open.is_empty(), "calls left open: {open:?}");
    // Per contact: (attempt, requested at, released at) of each call.
    type Calls = Vec<(u32, DateTime<Utc>, DateTime<Utc>)>;
    let mut per_contact: BTreeMap<u32, Calls> = BTreeMap::new();
    for (call, (no, attempt, at)) in &requested {
        per_contact
            .entry(*no)
            .or_default()
            .push((*attempt, *at, released[call]));
    }
    for (no, mut calls) in per_contact {
        calls.sort();
        let attempts: Vec<u32> = calls.iter().map(|c| c.0).collect();
        assert_eq!(
            attempts,
            (1..=calls.len() as u32).collect::<Vec<_>>(),
            "contact {no}: attempts"
        );
        for pair in calls.windows(2) {
            assert!(
                pair[0].2 <= pair[1].1,
                "contact {no}: attempt {} requested before attempt {} was released",
                pair[1].0,
                pair[0].0
            );
        }
    }
    dialer.start_kill().ok();
    let _ = dialer.wait().await;
    cluster.shutdown().await;
}
