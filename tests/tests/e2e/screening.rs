//! Batch number screening (seed 004) through the real services: 25,000 numbers in batches of
//! 1,000 through the three jobs with the adapter killed in the middle, the results as JSON and
//! as an XLSX a real reader (openpyxl) opens, the events in the store, and a later task that
//! finishes the numbers found invalid as INVALID_NUMBER without calling them (except one an
//! operator marked valid again).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tokio_stream::StreamExt;
use tonic::Code;
use waihu_e2e::*;
use waihu_events::pb;
use waihu_provider::screening::validity_of;
use waihu_testkit::{eventually, TestEnv};

fn expected(sim: &waihu_provider::sim::Simulator, e164s: &[String]) -> BTreeMap<String, i32> {
    e164s
        .iter()
        .map(|p| {
            let c = sim.screen(p);
            (p.clone(), validity_of(c.cause.q850, c.answered) as i32)
        })
        .collect()
}

async fn get(cluster: &Cluster, id: &str) -> pb::Screening {
    cluster
        .screening()
        .await
        .get_screening(pb::GetScreeningRequest {
            screening_id: id.into(),
        })
        .await
        .expect("GetScreening")
        .into_inner()
}

async fn download(cluster: &Cluster, id: &str, format: &str) -> (Vec<u8>, u64, String) {
    let mut s = cluster
        .screening()
        .await
        .download_screening_results(pb::DownloadScreeningResultsRequest {
            screening_id: id.into(),
            format: format.into(),
        })
        .await
        .expect("download")
        .into_inner();
    let (mut bytes, mut records, mut name) = (Vec::new(), 0, String::new());
    while let Some(c) = s.next().await {
        let c = c.expect("chunk");
        if name.is_empty() {
            name = c.file_name.clone();
        }
        bytes.extend_from_slice(&c.data);
        records = c.records;
    }
    (bytes, records, name)
}

fn python() -> String {
    std::env::var("WAIHU_TOOLS_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/venv/bin/python").to_string()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_thousand_numbers_are_screened_through_a_crash_and_later_tasks_skip_the_invalid(
) {
    let sim = fast_sim(83);
    let mut cluster = Cluster::start_tuned(
        TestEnv::new().await,
        sim.clone(),
        one_line(50),
        true,
        Duration::from_secs(7200),
        // Results are ready 3 s after a batch is accepted: the crash below lands between
        // sending and querying.
        |c| c.sim_screening_delay = Duration::from_millis(3000),
    )
    .await;
    let list = phones(25_000, 44);
    let e164s = e164(&list);
    let want = expected(&sim, &e164s);
    let count = |v: pb::NumberValidity| want.values().filter(|x| **x == v as i32).count() as u32;
    let (valid, invalid, unknown) = (
        count(pb::NumberValidity::Valid),
        count(pb::NumberValidity::Invalid),
        count(pb::NumberValidity::Unknown),
    );
    assert!(
        invalid > 500 && valid > 15_000,
        "{valid} {invalid} {unknown}"
    );

    // Five messages of 5,000; the last adds a duplicate and a number that does not parse.
    let mut msgs: Vec<pb::CreateScreeningRequest> = list
        .chunks(5_000)
        .map(|c| pb::CreateScreeningRequest {
            phones: c.to_vec(),
            ..Default::default()
        })
        .collect();
    msgs[0].line_id = "sim-1".into();
    msgs[0].external_batch_id = "crm-batch-7".into();
    msgs[0].batch_size = 1_000;
    msgs[4].phones.extend(["12".to_string(), e164s[0].clone()]);
    let created = cluster
        .screening()
        .await
        .create_screening(tokio_stream::iter(msgs))
        .await
        .expect("CreateScreening")
        .into_inner();
    assert_eq!(
        (
            created.total,
            created.skipped,
            created.rejected_total,
            created.batch_size
        ),
        (25_000, 1, 1, 1_000)
    );
    assert_eq!(created.rejected[0].index, 25_000);
    assert_eq!(created.external_batch_id, "crm-batch-7");
    let id = created.screening_id.clone();

    // Kill the adapter once batches are out and no results are in yet.
    let at_crash = eventually(Duration::from_secs(60), "batches sent", || async {
        let s = get(&cluster, &id).await;
        (s.batches_sent > 0).then_some(s)
    })
    .await;
    cluster.kill_provider();
    assert_eq!(at_crash.batches, 25);
    assert_eq!(
        at_crash.batches_queried, 0,
        "the crash was meant to land before any results: {at_crash:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_provider().await;

    let done = eventually(Duration::from_secs(120), "screening done", || async {
        let s = get(&cluster, &id).await;
        (s.status == pb::ScreeningStatus::Done as i32).then_some(s)
    })
    .await;
    assert_eq!(
        (
            done.batches,
            done.batches_sent,
            done.batches_queried,
            done.numbers_queried
        ),
        (25, 25, 25, 25_000)
    );
    assert_eq!(
        (done.valid, done.invalid, done.unknown),
        (valid, invalid, unknown)
    );
    assert!(done.runbegintime.is_some() && done.runendtime.is_some());
    for b in &done.batch_log {
        assert_eq!(b.total, 1_000, "batch {}", b.order);
        assert_eq!(b.status, pb::ScreeningBatchStatus::Queried as i32);
        assert_eq!(
            (
                b.send_fromflag,
                b.send_recvflag,
                b.query_fromflag,
                b.query_recvflag
            ),
            (1, 1, 1, 1),
            "batch {}",
            b.order
        );
        assert!(
            b.query_ms >= 1_000,
            "results came 1.5 s after sending: {b:?}"
        );
        assert!(b.provider_ref.starts_with("sim:"), "{b:?}");
        assert!(b.query_res_suminfo.starts_with("valid "), "{b:?}");
    }

    // The files: per batch the instruction (JSON), its XLSX, the raw result and its XLSX.
    let dir = cluster.screening.dir.join(&id);
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("job directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 100, "{files:?}");
    assert!(files.contains("batch-00025-result.xlsx"), "{files:?}");

    // The store holds one NumbersScreened per batch (none twice after the crash) and the end
    // (the last ones reach it through the outbox shortly after the job shows done).
    let (batches, screened_numbers, completed) = eventually(
        Duration::from_secs(30),
        "the screening events stored",
        || async {
            let mut stream = cluster
                .records()
                .await
                .export_events(pb::ExportEventsRequest {
                    event_types: vec!["NumbersScreened".into(), "ScreeningCompleted".into()],
                    ..Default::default()
                })
                .await
                .expect("export")
                .into_inner();
            let (mut batches, mut completed) = (BTreeSet::new(), Vec::new());
            let mut screened_numbers = 0;
            while let Some(e) = stream.next().await {
                let env = e.expect("event").envelope.expect("envelope");
                use prost::Message;
                match env.event_type.as_str() {
                    "NumbersScreened" => {
                        let p = pb::NumbersScreened::decode(env.payload.as_ref()).expect("payload");
                        screened_numbers += p.numbers.len();
                        assert!(batches.insert(p.batch), "batch {} twice", p.batch);
                    }
                    _ => completed.push(
                        pb::ScreeningCompleted::decode(env.payload.as_ref()).expect("payload"),
                    ),
                }
            }
            (batches.len() == 25 && !completed.is_empty()).then_some((
                batches,
                screened_numbers,
                completed,
            ))
        },
    )
    .await;
    assert_eq!((batches.len(), screened_numbers), (25, 25_000));
    assert_eq!(completed.len(), 1);
    assert_eq!(
        (
            completed[0].valid,
            completed[0].invalid,
            completed[0].unknown
        ),
        (valid, invalid, unknown)
    );

    // JSON: every number with the validity its screening call gave.
    let (json, n, name) = download(&cluster, &id, "json").await;
    assert_eq!((n, name), (25_000, format!("screening-{id}.json")));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json).expect("a JSON array");
    assert_eq!(rows.len(), 25_000);
    let names = ["", "unknown", "valid", "invalid"];
    for r in &rows {
        let phone = r["phone"].as_str().expect("phone");
        assert_eq!(
            r["validity"].as_str(),
            Some(names[want[phone] as usize]),
            "{r}"
        );
    }
    // XLSX, read back by openpyxl.
    let (xlsx, n, _) = download(&cluster, &id, "xlsx").await;
    assert_eq!(n, 25_000);
    let path = std::env::temp_dir().join(format!("waihu-screen-{}.xlsx", uuid::Uuid::new_v4()));
    std::fs::write(&path, &xlsx).expect("write xlsx");
    let py = python();
    assert!(
        std::path::Path::new(&py).exists(),
        "openpyxl is installed by scripts/ensure-tools.sh (make test runs it): {py}"
    );
    let out = std::process::Command::new(&py)
        .arg("-c")
        .arg(
            "import sys, openpyxl\n\
             ws = openpyxl.load_workbook(sys.argv[1], read_only=True).active\n\
             rows = list(ws.iter_rows(values_only=True))\n\
             print(len(rows), ','.join(rows[0]), sum(1 for r in rows[1:] if r[2] == 'invalid'))\n",
        )
        .arg(&path)
        .output()
        .expect("python runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        format!(
            "25001 batch,phone,validity,call_status,billsec,call_start_time,answer_time,\
             call_end_time,wait_time,q850,cause,raw_cause {invalid}"
        )
    );

    // A later task of the first 400 numbers: the invalid ones finish without a call, except
    // one an operator marked valid again.
    let first: Vec<String> = list[..400].to_vec();
    let bad: Vec<String> = e164s[..400]
        .iter()
        .filter(|p| want[*p] == pb::NumberValidity::Invalid as i32)
        .cloned()
        .collect();
    assert!(bad.len() >= 5, "{}", bad.len());
    let mut screening = cluster.screening().await;
    let r = screening
        .set_number_validity(pb::SetNumberValidityRequest {
            phones: vec![bad[0].clone()],
            validity: pb::NumberValidity::Valid as i32,
            reason: "number reassigned".into(),
        })
        .await
        .expect("override")
        .into_inner();
    assert_eq!(r.changed, 1);
    let v = screening
        .get_number_validity(pb::GetNumberValidityRequest {
            phones: vec![bad[0].clone(), bad[1].clone()],
        })
        .await
        .expect("validity")
        .into_inner();
    assert_eq!(v.numbers[0].validity, pb::NumberValidity::Valid as i32);
    assert_eq!(v.numbers[0].source, "override");
    assert_eq!(v.numbers[1].validity, pb::NumberValidity::Invalid as i32);
    assert_eq!(v.numbers[1].source, format!("screening:{id}"));
    assert_eq!(v.numbers[1].cause.as_ref().map(|c| c.q850), Some(1));
    // The dialer has followed every result and the override.
    let pool = cluster.env.pool.clone();
    eventually(
        Duration::from_secs(30),
        "the dialer's invalid numbers",
        || {
            let pool = pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM dialer.dialer_invalid_numbers WHERE invalid",
                )
                .fetch_one(&pool)
                .await
                .ok()?;
                (n == invalid as i64 - 1).then_some(())
            }
        },
    )
    .await;

    let mut tasks = cluster.tasks().await;
    let task_id = create_with_contacts(&mut tasks, spec("after screening", 0, 1), &first).await;
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(120)).await;
    // The call records are a projection: read them once the statistics have settled.
    let stats = wait_stats_settled(&cluster, &task_id, 400, Duration::from_secs(60)).await;
    let called = calls_per_number(&cluster, &task_id).await;
    let skipped: BTreeSet<&String> = bad[1..].iter().collect();
    for p in &e164s[..400] {
        assert_eq!(
            called.contains_key(p),
            !skipped.contains(p),
            "{p}: called {:?}",
            called.get(p)
        );
    }
    let outcomes = contact_outcomes(&cluster, &task_id).await;
    for p in &bad[1..] {
        assert_eq!(outcomes[p], pb::ContactOutcome::InvalidNumber as i32, "{p}");
    }
    assert_eq!(stats.contacts_total, 400);
    assert_eq!(stats.calls_placed as usize, 400 - (bad.len() - 1));

    // Numbers known valid are left out of a new job when asked.
    let again = cluster
        .screening()
        .await
        .create_screening(tokio_stream::iter(vec![pb::CreateScreeningRequest {
            line_id: "sim-1".into(),
            skip_known_valid: true,
            phones: list[..100].to_vec(),
            ..Default::default()
        }]))
        .await
        .expect("second job")
        .into_inner();
    let known_valid = e164s[..100]
        .iter()
        .filter(|p| want[*p] == pb::NumberValidity::Valid as i32 || **p == bad[0])
        .count() as u32;
    assert_eq!(
        (again.total, again.skipped),
        (100 - known_valid, known_valid)
    );
    assert_replay_identical(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_screening_requests_name_their_field_and_jobs_are_the_tenants_own() {
    let cluster = Cluster::start(fast_sim(84), one_line(5)).await;
    let mut s = cluster.screening().await;
    let one = |m: pb::CreateScreeningRequest| tokio_stream::iter(vec![m]);
    let code = |r: Result<tonic::Response<pb::Screening>, tonic::Status>| {
        let e = r.expect_err("refused");
        (e.code(), e.message().to_string())
    };
    let (c, m) = code(
        s.create_screening(one(pb::CreateScreeningRequest {
            phones: vec!["13800000001".into()],
            ..Default::default()
        }))
        .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("line_id"), "{m}");
    let (c, m) = code(
        s.create_screening(one(pb::CreateScreeningRequest {
            line_id: "sim-1".into(),
            batch_size: 6_000,
            phones: vec!["13800000001".into()],
            ..Default::default()
        }))
        .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("batch_size"), "{m}");
    let (c, _) = code(
        s.create_screening(one(pb::CreateScreeningRequest {
            line_id: "nope".into(),
            phones: vec!["13800000001".into()],
            ..Default::default()
        }))
        .await,
    );
    assert_eq!(c, Code::NotFound);
    let (c, m) = code(
        s.create_screening(one(pb::CreateScreeningRequest {
            line_id: "sim-1".into(),
            phones: vec!["12".into(), "not a number".into()],
            ..Default::default()
        }))
        .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("phones"), "{m}");
    let (c, m) = code(
        s.create_screening(one(pb::CreateScreeningRequest {
            line_id: "sim-1".into(),
            phones: vec!["13800000001".into(); 10_001],
            ..Default::default()
        }))
        .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("10000"), "{m}");
    let e = s
        .download_screening_results(pb::DownloadScreeningResultsRequest {
            screening_id: uuid::Uuid::new_v4().to_string(),
            format: "pdf".into(),
        })
        .await
        .expect_err("bad format");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("format"), "{}", e.message());
    let e = s
        .get_screening(pb::GetScreeningRequest {
            screening_id: "x".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = s
        .set_number_validity(pb::SetNumberValidityRequest {
            phones: vec!["13800000001".into()],
            validity: 0,
            reason: String::new(),
        })
        .await
        .expect_err("no validity");
    assert!(e.message().contains("validity"), "{}", e.message());

    // A job of one tenant is not found by another; its results wait for a batch to be done.
    let job = s
        .create_screening(one(pb::CreateScreeningRequest {
            line_id: "sim-1".into(),
            phones: vec!["13800000001".into(), "13800000002".into()],
            ..Default::default()
        }))
        .await
        .expect("created")
        .into_inner();
    let e = s
        .get_screening(as_tenant(
            "other",
            pb::GetScreeningRequest {
                screening_id: job.screening_id.clone(),
            },
        ))
        .await
        .expect_err("another tenant's");
    assert_eq!(e.code(), Code::NotFound);
    let listed = s
        .list_screenings(as_tenant("other", pb::ListScreeningsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.screenings.is_empty());
    let mine = s
        .list_screenings(pb::ListScreeningsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(mine.screenings.len(), 1);

    // The CLI: a job from a CSV file, followed to its end, its results as XLSX.
    let dir = std::env::temp_dir().join(format!("waihu-screen-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let csv = dir.join("numbers.csv");
    std::fs::write(
        &csv,
        "phone,name\n13800000011,a\n13800000012,b\n13800000013,c\n12,bad\n",
    )
    .expect("csv");
    let cli = |args: Vec<String>| {
        let out = std::process::Command::new(service_binary("waihu"))
            .args(["--provider-addr", &cluster.provider_addr()])
            .args(["--task-addr", cluster.task_addr()])
            .args(args)
            .env_remove("WAIHU_TOKEN")
            .env(
                "WAIHU_AUTH__HS256_KEY",
                waihu_runtime::CommonConfig::TEST_KEY,
            )
            .output()
            .expect("waihu runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, said) = cli(vec![
        "screen".into(),
        "create".into(),
        "--line".into(),
        "sim-1".into(),
        "--file".into(),
        csv.display().to_string(),
        "--batch-size".into(),
        "2".into(),
        "--batch-id".into(),
        "crm-9".into(),
        "--watch".into(),
    ]);
    assert!(ok, "{said}");
    assert!(said.contains("3 to screen in batches of 2"), "{said}");
    assert!(said.contains("3/3 numbers"), "{said}");
    let id = said
        .split_whitespace()
        .nth(1)
        .expect("the job's id")
        .to_string();
    let out = dir.join("results.xlsx");
    let (ok, said) = cli(vec![
        "screen".into(),
        "results".into(),
        id.clone(),
        "--format".into(),
        "xlsx".into(),
        "--output".into(),
        out.display().to_string(),
    ]);
    assert!(ok, "{said}");
    assert!(said.contains("3 numbers written"), "{said}");
    assert_eq!(&std::fs::read(&out).expect("xlsx")[..2], b"PK");
    let (ok, said) = cli(vec!["screen".into(), "status".into(), id]);
    assert!(ok, "{said}");
    assert!(said.contains("crm-9") && said.contains("queried"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
    cluster.shutdown().await;
}
