//! A rolling restart by SIGTERM, as a Kubernetes rolling update does it: every service runs as
//! its own process (the binaries cargo builds beside this test), the dialer and the record
//! service two of each (one leads by a PostgreSQL advisory lock, one stands by). During a
//! campaign each service in turn is sent SIGTERM and replaced: the task service, the provider
//! adapter, the dialer leader and then the other dialer, the record service leading the store
//! writer and then the other. Each must drain and exit cleanly within its grace period, a
//! stand-by must take over where there is one, the campaign must keep moving after each
//! restart, and nothing may be lost or doubled: the task completes with statistics exactly as
//! the simulator's outcomes say, every call requested was released once, and `VerifyReplay`
//! finds the live projections identical to a replay of the store.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use prost::Message;
use tokio_stream::StreamExt;
use waihu_e2e::{procs::Launcher, *};
use waihu_events::pb;
use waihu_testkit::TestEnv;

/// Each process' `WAIHU_SHUTDOWN_GRACE_SECONDS`.
const GRACE: Duration = Duration::from_secs(10);
const SEED: u64 = 20261206;
/// Simulated time runs this much faster than wall time: calls last up to about a second, so a
/// SIGTERM finds the provider adapter with calls in flight, which it must finish in its drain.
const TIME_SCALE: f64 = 200.0;
const CONTACTS: usize = 2500;
const RECALLS: u32 = 1;
/// The line's pace: the campaign lasts at least its calls / CPS seconds however fast the machine,
/// so that it is still running through every restart.
const CPS: f64 = 100.0;
/// The store writer's leader lock (`waihu-record`) and the dialer's (`waihu-dialer`).
const WRITER_LOCK: &str = "waihu-store-writer";
const DIALER_LOCK: &str = "waihu-dialer";

/// The simulator of the provider adapter: real outcome, ring and talk distributions, time
/// compressed by [`TIME_SCALE`].
fn simulator() -> waihu_provider::sim::Simulator {
    waihu_provider::sim::Simulator {
        time_scale: TIME_SCALE,
        ..fast_sim(SEED)
    }
}

/// The task's statistics from the record service at `record`.
async fn stats(record: &str, task: &str) -> Option<pb::TaskStats> {
    let mut c = StatsServiceClient::connect(record.to_string()).await.ok()?;
    c.get_task_stats(pb::GetTaskStatsRequest {
        task_id: task.into(),
    })
    .await
    .ok()
    .map(tonic::Response::into_inner)
}

/// Waits until the statistics (from the record service at `record`) satisfy `done`.
async fn wait_stats(
    record: &str,
    task: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&pb::TaskStats) -> bool,
) -> pb::TaskStats {
    waihu_testkit::eventually(timeout, what, || async {
        stats(record, task).await.filter(|s| done(s))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_by_sigterm_of_every_service_loses_nothing() {
    let env = Arc::new(TestEnv::new().await);
    let dir = std::env::temp_dir().join(format!("waihu-rolling-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    // The campaign in a task of its own: whatever it ends with (a failed assertion too), its
    // processes are killed (dropped) and the database and streams removed.
    let outcome = tokio::spawn(campaign(Launcher::new(env.clone(), dir.clone(), GRACE))).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(env) = Arc::try_unwrap(env) {
        env.cleanup().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn campaign(mut launch: Launcher) {
    let began = Instant::now();
    let sim = simulator();

    // Two record services (the first leads the store writer), the task service, two dialers
    // (the first leads), the provider adapter.
    let mut records = vec![launch.record().await];
    records[0]
        .wait_logged("leading", WRITER_LOCK, Duration::from_secs(30))
        .await;
    records.push(launch.record().await);
    records[1]
        .wait_logged(
            "another instance leads; standing by",
            WRITER_LOCK,
            Duration::from_secs(30),
        )
        .await;
    let mut task = launch.task().await;
    let mut dialers = vec![launch.dialer().await];
    dialers[0]
        .wait_logged("leading", DIALER_LOCK, Duration::from_secs(30))
        .await;
    dialers.push(launch.dialer().await);
    dialers[1]
        .wait_logged(
            "another instance leads; standing by",
            DIALER_LOCK,
            Duration::from_secs(30),
        )
        .await;
    let mut provider = launch.provider(&dialers[0].url, &sim).await;

    // The line, paced, through ProviderService; the task.
    let mut line = one_line(80)[0].to_pb();
    line.cps = CPS;
    ProviderServiceClient::connect(provider.url.clone())
        .await
        .expect("provider adapter reachable")
        .create_line(as_tenant(
            "default",
            pb::CreateLineRequest {
                line: Some(line),
                ..Default::default()
            },
        ))
        .await
        .expect("line created");
    let list = phones(CONTACTS, 5);
    let x = expected(&sim, &e164(&list), RECALLS);
    eprintln!(
        "{} contacts, {} calls expected; set up in {:?}",
        CONTACTS,
        x.calls_placed,
        began.elapsed()
    );
    let mut tasks = TaskServiceClient::connect(task.url.clone())
        .await
        .expect("task service reachable");
    let t = create_with_contacts(&mut tasks, spec("rolling", RECALLS, 0), &list).await;
    start(&mut tasks, &t).await;
    let started = Instant::now();

    // The rolling restart: six steps, each once the campaign has placed its share of the calls.
    let steps = [
        "task",
        "provider",
        "dialer leader",
        "dialer (the new leader)",
        "record (writer leader)",
        "record (the new writer leader)",
    ];
    for (i, step) in steps.iter().enumerate() {
        let at = x.calls_placed * (i as u64 + 1) / (steps.len() as u64 + 2);
        let s = wait_stats(
            &records[0].url,
            &t,
            &format!("{at} calls placed before restarting the {step}"),
            Duration::from_secs(90),
            |s| s.calls_placed >= at,
        )
        .await;
        assert!(
            s.contacts_finished < CONTACTS as u64,
            "the campaign ended before the {step} was restarted: {s:?}"
        );
        eprintln!(
            "{:?} into the campaign, {} calls placed: restarting the {step}",
            started.elapsed(),
            s.calls_placed
        );
        match i {
            0 => {
                task.terminate().await;
                task = launch.task().await;
                tasks = TaskServiceClient::connect(task.url.clone())
                    .await
                    .expect("task service reachable");
            }
            1 => {
                provider.terminate().await;
                provider = launch.provider(&dialers[0].url, &sim).await;
            }
            2 | 3 => {
                // The leader is dialers[0]: it goes, the stand-by takes over, the replacement
                // stands by (and leads at the next step).
                let leader = dialers.remove(0);
                leader.terminate().await;
                let took = dialers[0]
                    .wait_logged("leading", DIALER_LOCK, Duration::from_secs(30))
                    .await;
                eprintln!("{} took over {took:?} later", dialers[0].name);
                let replacement = launch.dialer().await;
                replacement
                    .wait_logged(
                        "another instance leads; standing by",
                        DIALER_LOCK,
                        Duration::from_secs(30),
                    )
                    .await;
                dialers.push(replacement);
            }
            _ => {
                let leader = records.remove(0);
                leader.terminate().await;
                let took = records[0]
                    .wait_logged("leading", WRITER_LOCK, Duration::from_secs(30))
                    .await;
                eprintln!("{} took over {took:?} later", records[0].name);
                let replacement = launch.record().await;
                replacement
                    .wait_logged(
                        "another instance leads; standing by",
                        WRITER_LOCK,
                        Duration::from_secs(30),
                    )
                    .await;
                records.push(replacement);
            }
        }
        // The campaign moves on with the replacement in place: calls are placed, and more calls
        // are released than had been placed by now (so some placed from now on, which only the
        // services running now can have done).
        let now = stats(&records[0].url, &t)
            .await
            .expect("statistics after the restart");
        let placed = now.calls_placed;
        wait_stats(
            &records[0].url,
            &t,
            &format!("calls placed and released after restarting the {step}"),
            Duration::from_secs(60),
            |s| s.calls_placed > placed && s.calls_released > placed,
        )
        .await;
    }

    // The task completes, with statistics exactly as the simulator's outcomes say.
    wait_status(
        &mut tasks,
        &t,
        pb::TaskStatus::Completed,
        Duration::from_secs(120),
    )
    .await;
    eprintln!("the campaign completed in {:?}", started.elapsed());
    let stats = wait_stats(
        &records[0].url,
        &t,
        "statistics to settle",
        Duration::from_secs(60),
        |s| s.contacts_finished == x.contacts && s.calls_released == s.calls_placed,
    )
    .await;
    assert_stats_match(&stats, &x);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT phone, count(*) FROM record.call_records WHERE task_id = $1::uuid GROUP BY phone",
    )
    .bind(&t)
    .fetch_all(&launch.env.pool)
    .await
    .expect("call records");
    let calls: BTreeMap<String, u32> = rows.into_iter().map(|(p, n)| (p, n as u32)).collect();
    assert_eq!(calls, x.attempts, "calls per number");

    // From the store: no call requested twice, each contact's calls are attempts 1..n, every
    // call requested released.
    let mut events = RecordServiceClient::connect(records[0].url.clone())
        .await
        .expect("record service reachable")
        .export_events(pb::ExportEventsRequest {
            task_id: t.clone(),
            event_types: vec!["CallRequested".into(), "CallReleased".into()],
            ..Default::default()
        })
        .await
        .expect("export")
        .into_inner();
    let mut requested: HashMap<String, (u32, u32)> = HashMap::new();
    let mut released: HashSet<String> = HashSet::new();
    while let Some(e) = events.next().await {
        let env = e.expect("event").envelope.expect("envelope");
        if env.event_type == "CallRequested" {
            let r = pb::CallRequested::decode(env.payload.as_ref()).expect("payload");
            assert!(
                requested
                    .insert(r.call_id.clone(), (r.contact_no, r.attempt))
                    .is_none(),
                "call {} requested twice",
                r.call_id
            );
        } else {
            let r = pb::CallReleased::decode(env.payload.as_ref()).expect("payload");
            assert!(
                released.insert(r.call_id.clone()),
                "call {} released twice",
                r.call_id
            );
        }
    }
    assert_eq!(requested.len() as u64, x.calls_placed, "calls requested");
    let open: Vec<&String> = requested
        .keys()
        .filter(|c| !released.contains(*c))
        .collect();
    assert!(open.is_empty(), "calls left open: {open:?}");
    assert_eq!(released.len(), requested.len(), "calls released");
    let mut attempts: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (no, attempt) in requested.values() {
        attempts.entry(*no).or_default().push(*attempt);
    }
    for (no, mut a) in attempts {
        a.sort_unstable();
        assert_eq!(
            a,
            (1..=a.len() as u32).collect::<Vec<_>>(),
            "contact {no}: attempts"
        );
    }

    // The store is whole (nothing dead-lettered, the writer not halted, the projections caught
    // up), and a replay of it equals the live projections.
    let admin = AdminServiceClient::connect(records[0].url.clone())
        .await
        .expect("record service reachable");
    let operator = waihu_auth::keys::DEFAULT_OPERATOR_TENANT;
    let status = waihu_testkit::eventually(
        Duration::from_secs(30),
        "the projections to catch up with the store",
        || {
            let mut a = admin.clone();
            async move {
                let s = a
                    .get_store_status(as_tenant(operator, pb::GetStoreStatusRequest {}))
                    .await
                    .ok()?
                    .into_inner();
                (s.projected_position == s.position).then_some(s)
            }
        },
    )
    .await;
    assert_eq!(status.dead_lettered, 0, "dead letters: {status:?}");
    assert!(status.halted.is_empty(), "writer halted: {status:?}");
    let mut verify = RecordServiceClient::connect(records[0].url.clone())
        .await
        .expect("record service reachable")
        .verify_replay(as_tenant(operator, pb::VerifyReplayRequest {}))
        .await
        .expect("VerifyReplay")
        .into_inner();
    let mut report = None;
    while let Some(u) = verify.next().await {
        if let Some(pb::verify_replay_update::Update::Report(r)) = u.expect("update").update {
            report = Some(r);
        }
    }
    let report = report.expect("a report");
    assert!(
        report.identical && report.differences.is_empty(),
        "replay differs: {:?}",
        report.differences
    );
    assert!(report.events_replayed > 2 * x.calls_placed, "{report:?}");

    // Everything stops cleanly too, idle.
    for p in [task, provider].into_iter().chain(dialers).chain(records) {
        p.terminate().await;
    }
    eprintln!("done in {:?}", began.elapsed());
}
