//! Recordings (issue 9): the simulator records answered calls; the record service moves each
//! into storage (a local directory, or a local S3-compatible server: moto) and records
//! RecordingStored; a signed URL plays it (200 audio/wav, range requests 206, 416), an expired
//! or altered URL gets 403; the retention sweeper deletes what is due, per tenant, and nothing
//! else; the replay rebuilds the recordings identically.

use std::{
    collections::BTreeMap,
    process::Stdio,
    time::{Duration, SystemTime},
};

use object_store::{path::Path as Key, ObjectStore};
use sha2::Digest;
use waihu_bus::Expect;
use waihu_e2e::*;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_record::recording::Storage;

type Records =
    waihu_proto::v1::record_service_client::RecordServiceClient<tonic::transport::Channel>;

/// Every record of the task, with its recording.
async fn all_records(records: &mut Records, task: &str) -> Vec<pb::CallRecord> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = records
            .list_call_records(pb::ListCallRecordsRequest {
                task_id: task.into(),
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        out.extend(page.records);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

fn state_of(r: &pb::CallRecord) -> pb::RecordingState {
    r.recording
        .as_ref()
        .map(|x| x.state())
        .unwrap_or(pb::RecordingState::Unspecified)
}

/// Runs a campaign whose answered calls are recorded, and waits until every recording is
/// stored; the answered records.
async fn recorded_campaign(cluster: &Cluster, contacts: usize) -> (String, Vec<pb::CallRecord>) {
    let mut tasks = cluster.tasks().await;
    let task =
        create_with_contacts(&mut tasks, spec("recorded", 0, 0), &phones(contacts, 91)).await;
    run_to_completion(&mut tasks, &task, Duration::from_secs(60)).await;
    wait_stats_settled(cluster, &task, contacts as u64, Duration::from_secs(30)).await;
    let mut records = cluster.records().await;
    let answered = waihu_testkit::eventually(
        Duration::from_secs(60),
        "every answered call's recording stored",
        || {
            let mut r = records.clone();
            let task = task.clone();
            async move {
                let all = all_records(&mut r, &task).await;
                let answered: Vec<_> = all.into_iter().filter(|r| r.answered).collect();
                answered
                    .iter()
                    .all(|r| state_of(r) == pb::RecordingState::Stored)
                    .then_some(answered)
            }
        },
    )
    .await;
    assert!(
        answered.len() >= 3,
        "a few answered calls: {}",
        answered.len()
    );
    records
        .get_call_record(pb::GetCallRecordRequest {
            call_id: answered[0].call_id.clone(),
        })
        .await
        .expect("record");
    (task, answered)
}

/// What a URL answers: status, headers and body.
async fn get(
    http: &reqwest::Client,
    url: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = http.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.expect("the recordings endpoint answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

async fn url_of(records: &mut Records, call: &str, ttl: u32) -> pb::RecordingUrl {
    records
        .get_recording_url(pb::GetRecordingUrlRequest {
            call_id: call.into(),
            ttl_seconds: ttl,
        })
        .await
        .expect("a URL")
        .into_inner()
}

/// The stored object of a key.
async fn object(store: &dyn ObjectStore, key: &str) -> Option<Vec<u8>> {
    match store.get(&Key::from(key)).await {
        Ok(g) => Some(g.bytes().await.expect("object bytes").to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("storage: {e}"),
    }
}

/// A recording announced for a call placed long ago (by hand: a file in the provider's
/// directory and its RecordingAvailable, dated `days_ago`).
async fn announce_old(cluster: &Cluster, tenant: &str, days_ago: i64) -> uuid::Uuid {
    let call = uuid::Uuid::new_v4();
    std::fs::create_dir_all(&cluster.recordings).expect("recordings dir");
    let path = cluster.recordings.join(format!("{call}.wav"));
    let bytes = waihu_provider_sim::write_wav(&path, 400, 7).expect("wav written");
    let recording = pb::RecordingAvailable {
        uri: format!("file://{}", path.display()),
        content_type: "audio/wav".into(),
        duration_ms: 400,
        bytes,
        codec: "L16".into(),
        ..Default::default()
    };
    publish_announcement(cluster, tenant, call, days_ago, recording).await;
    call
}

/// Publishes `r` as the `RecordingAvailable` of `call` (no task) of `tenant`, dated
/// `days_ago`.
async fn publish_announcement(
    cluster: &Cluster,
    tenant: &str,
    call: uuid::Uuid,
    days_ago: i64,
    r: pb::RecordingAvailable,
) {
    let mut meta = EventMeta::new(tenant, Aggregate::Call(call), 1);
    meta.occurred_at = chrono::Utc::now() - chrono::Duration::days(days_ago);
    let event = Event::RecordingAvailable(pb::RecordingAvailable {
        call_id: call.to_string(),
        source: "test".into(),
        ..r
    });
    cluster
        .env
        .bus
        .publish(&RecordedEvent::new(meta, event), Expect::Any)
        .await
        .expect("published");
}

/// The recording row's state of a call, as the records show it.
async fn recording_state(cluster: &Cluster, tenant: &str, call: uuid::Uuid) -> i16 {
    let rows: Vec<(i16,)> =
        sqlx::query_as("SELECT state FROM record.recordings WHERE call_id = $1 AND tenant_id = $2")
            .bind(call)
            .bind(tenant)
            .fetch_all(&cluster.env.pool)
            .await
            .expect("recordings row");
    rows.first().map(|r| r.0).unwrap_or(0)
}

/// The whole path, against whatever storage the cluster has.
async fn recordings_round_trip(cluster: &Cluster, store: &dyn ObjectStore) {
    let (_task, answered) = recorded_campaign(cluster, 40).await;
    let mut records = cluster.records().await;
    let http = reqwest::Client::new();
    let today = chrono::Utc::now();

    for r in &answered {
        let rec = r.recording.clone().expect("recording");
        // Seed 003 §8.5's key, dated today (UTC; a run across midnight may see yesterday).
        let dated = |t: chrono::DateTime<chrono::Utc>| {
            format!("recordings/{}/{}.wav", t.format("%Y/%m/%d"), r.call_id)
        };
        assert!(
            rec.key == dated(today) || rec.key == dated(today - chrono::Duration::days(1)),
            "{}",
            rec.key
        );
        assert_eq!(
            (rec.format.as_str(), rec.content_type.as_str()),
            ("wav", "audio/wav")
        );
        let stored = object(store, &rec.key).await.expect("the object is stored");
        assert_eq!(stored.len() as u64, rec.bytes);
        assert_eq!(hex::encode(sha2::Sha256::digest(&stored)), rec.sha256);
        assert_eq!(&stored[..4], b"RIFF");
        // The length follows the talk time, scaled down (60x, at most 3 s, at least 0.2 s).
        let want = ((r.talk_seconds * 1000.0) as u64 / 60).clamp(200, 3000);
        assert!(
            rec.duration_ms.abs_diff(want) <= 1,
            "{} ms for {} s of talk",
            rec.duration_ms,
            r.talk_seconds
        );
        // Moved: the provider's file is gone.
        let source = cluster.recordings.join(format!("{}.wav", r.call_id));
        assert!(!source.exists(), "{} still there", source.display());
    }

    // The timeline tells of it.
    let full = records
        .get_call_record(pb::GetCallRecordRequest {
            call_id: answered[0].call_id.clone(),
        })
        .await
        .expect("record")
        .into_inner();
    let kinds: Vec<&str> = full
        .timeline
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(
        kinds.ends_with(&["RecordingAvailable", "RecordingStored"]),
        "{kinds:?}"
    );

    // A signed URL plays it, whole or by range.
    let r = &answered[0];
    let rec = r.recording.clone().expect("recording");
    let stored = object(store, &rec.key).await.expect("stored");
    let u = url_of(&mut records, &r.call_id, 0).await;
    let expires = u.expires_at.as_ref().expect("expiry").seconds;
    let ttl = expires - chrono::Utc::now().timestamp();
    assert!((890..=901).contains(&ttl), "15 minutes by default: {ttl}");
    assert_eq!((u.content_type.as_str(), u.bytes), ("audio/wav", rec.bytes));
    let (status, headers, body) = get(&http, &u.url, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(body, stored);
    let (status, headers, body) = get(&http, &u.url, Some("bytes=0-99")).await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"],
        format!("bytes 0-99/{}", stored.len()).as_str()
    );
    assert_eq!(body, &stored[..100]);
    let (status, _, body) = get(&http, &u.url, Some("bytes=-10")).await;
    assert_eq!(status, 206);
    assert_eq!(body, &stored[stored.len() - 10..]);
    let (status, headers, _) = get(&http, &u.url, Some(&format!("bytes={}-", stored.len()))).await;
    assert_eq!(status, 416);
    assert_eq!(
        headers["content-range"],
        format!("bytes */{}", stored.len()).as_str()
    );
    let head = http.head(&u.url).send().await.expect("HEAD");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"],
        stored.len().to_string().as_str()
    );

    // Altered in any part, or expired: 403.
    let sig_at = u.url.rfind("signature=").expect("signed") + "signature=".len();
    let mut flipped = u.url.clone().into_bytes();
    flipped[sig_at] = if flipped[sig_at] == b'0' { b'1' } else { b'0' };
    let altered = [
        String::from_utf8(flipped).expect("ascii"),
        u.url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        u.url.replace("tenant=default", "tenant=other"),
        u.url.replace(&answered[0].call_id, &answered[1].call_id),
        u.url[..u.url.find('?').expect("query")].to_string(),
    ];
    for url in &altered {
        assert_ne!(url, &u.url);
        let (status, _, body) = get(&http, url, None).await;
        assert_eq!(status, 403, "{url}: {}", String::from_utf8_lossy(&body));
    }
    let short = url_of(&mut records, &r.call_id, 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = get(&http, &short.url, None).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("expired"));

    // Bad requests name their field; a call without a recording is NOT_FOUND; another tenant
    // sees nothing.
    let e = records
        .get_recording_url(pb::GetRecordingUrlRequest {
            call_id: r.call_id.clone(),
            ttl_seconds: 8 * 24 * 3600,
        })
        .await
        .expect_err("too long");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("ttl_seconds"), "{}", e.message());
    let unanswered = all_records(&mut records, &r.task_id)
        .await
        .into_iter()
        .find(|c| !c.answered)
        .expect("an unanswered call");
    let e = records
        .get_recording_url(pb::GetRecordingUrlRequest {
            call_id: unanswered.call_id.clone(),
            ttl_seconds: 0,
        })
        .await
        .expect_err("no recording");
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = records
        .get_recording_url(as_tenant(
            "other",
            pb::GetRecordingUrlRequest {
                call_id: r.call_id.clone(),
                ttl_seconds: 0,
            },
        ))
        .await
        .expect_err("another tenant's call");
    assert_eq!(e.code(), tonic::Code::NotFound);

    // Through the gateway (seed 002): the list points at 2.6, the detail and 2.6 give the
    // signed URL, and it plays.
    let stop = tokio_util::sync::CancellationToken::new();
    let gateway = start_gateway(cluster, stop.clone()).await;
    let api = HttpApi::new(format!("http://{}/api/v1/lead-generation", gateway.addr));
    let token = waihu_e2e::token("default", "crm", waihu_auth::ALL_PERMISSIONS);
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records/{}", r.number),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let signed = v["data"]["recordingUrl"]
        .as_str()
        .expect("a URL")
        .to_string();
    assert!(signed.contains("signature="), "{signed}");
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records/{}/recording", r.number),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (status, _, body) = get(
        &http,
        v["data"]["recordingUrl"].as_str().expect("url"),
        None,
    )
    .await;
    assert_eq!((status, body.len()), (200, stored.len()));
    let (code, v) = api
        .call("GET", "/call-records?size=500", None, Some(&token))
        .await;
    assert_eq!(code, 200, "{v}");
    let listed = v["data"]["records"].as_array().expect("records");
    let with = listed
        .iter()
        .find(|x| x["recordId"] == r.number)
        .expect("the record is listed");
    assert_eq!(
        with["recordingUrl"],
        format!(
            "/api/v1/lead-generation/call-records/{}/recording",
            r.number
        )
        .as_str()
    );
    // Without the download permission the detail gives the route, not the URL.
    let viewer = waihu_e2e::token(
        "default",
        "viewer",
        &[waihu_auth::perms::RECORD_VIEW, waihu_auth::perms::CALL_VIEW],
    );
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records/{}", r.number),
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["recordingUrl"], with["recordingUrl"]);
    // Each number with its calls (no recalls here: one call each): ListContactCalls, and seed
    // 000's getTaskDetail built on it.
    let summaries = records
        .list_contact_calls(pb::ListContactCallsRequest {
            task_id: r.task_id.clone(),
            contact_nos: answered.iter().map(|a| a.contact_no).collect(),
        })
        .await
        .expect("contact calls")
        .into_inner()
        .contacts;
    assert_eq!(summaries.len(), answered.len());
    for a in &answered {
        let c = summaries
            .iter()
            .find(|c| c.contact_no == a.contact_no)
            .expect("each answered contact");
        assert_eq!((c.calls, c.answered, c.in_call), (1, true, false));
        assert_eq!(c.phone, a.phone);
        assert_eq!(
            (c.recording_call_id.as_str(), c.recording_call_number),
            (a.call_id.as_str(), a.number)
        );
        assert!((c.talk_seconds - a.talk_seconds).abs() < 0.001);
        assert_eq!(c.first_call_at, a.requested_at);
    }
    let e = records
        .list_contact_calls(pb::ListContactCallsRequest {
            task_id: r.task_id.clone(),
            contact_nos: vec![],
        })
        .await
        .expect_err("no contacts asked");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("contact_nos"), "{}", e.message());
    let caller = HttpApi::new(format!("http://{}/api/caller", gateway.addr));
    let task_number = cluster
        .tasks()
        .await
        .get_task(pb::TaskRef {
            task_id: r.task_id.clone(),
        })
        .await
        .expect("task")
        .into_inner()
        .number;
    let body = serde_json::json!({ "task_id": task_number }).to_string();
    let (_, v) = caller
        .call_caller("/getTaskDetail", Some(&body), Some(&token))
        .await;
    let list = v["results"]["list"].as_array().expect("list");
    let row = list
        .iter()
        .find(|x| x["id"] == r.contact_no)
        .expect("the answered number");
    assert_eq!(row["call_voice_url"], with["recordingUrl"], "{row}");
    assert_eq!(row["call_time"], r.talk_seconds.round() as u64);
    let unanswered_no = unanswered.contact_no;
    let row = list
        .iter()
        .find(|x| x["id"] == unanswered_no)
        .expect("an unanswered number");
    assert_eq!(row["call_voice_url"], "", "{row}");
    stop.cancel();

    // Retention: 90 days by default, 200 for tenant "keep" (the cluster's setting). Recordings
    // of 100 days ago: the default tenant's is deleted, "keep"'s stays, and so do today's.
    let old = announce_old(cluster, "default", 100).await;
    let kept = announce_old(cluster, "keep", 100).await;
    waihu_testkit::eventually(
        Duration::from_secs(30),
        "the old recording stored, then swept",
        || async {
            (recording_state(cluster, "default", old).await == 4
                && recording_state(cluster, "keep", kept).await == 2)
                .then_some(())
        },
    )
    .await;
    let old_key: (String,) = sqlx::query_as("SELECT key FROM record.recordings WHERE call_id = $1")
        .bind(old)
        .fetch_one(&cluster.env.pool)
        .await
        .expect("key");
    let hundred_days_ago = chrono::Utc::now() - chrono::Duration::days(100);
    assert!(
        old_key
            .0
            .starts_with(&format!("recordings/{}", hundred_days_ago.format("%Y/%m"))),
        "{}",
        old_key.0
    );
    assert!(
        object(store, &old_key.0).await.is_none(),
        "the old audio is gone"
    );
    let kept_key: (String,) =
        sqlx::query_as("SELECT key FROM record.recordings WHERE call_id = $1")
            .bind(kept)
            .fetch_one(&cluster.env.pool)
            .await
            .expect("key");
    assert!(object(store, &kept_key.0).await.is_some(), "keep's stays");
    // A second sweep later changes nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for r in &answered {
        let rec = r.recording.as_ref().expect("recording");
        assert!(object(store, &rec.key).await.is_some(), "today's stay");
    }
    let deletions: Vec<(i64,)> =
        sqlx::query_as("SELECT count(*) FROM events WHERE event_type = 'RecordingDeleted'")
            .fetch_all(&cluster.env.pool)
            .await
            .expect("count");
    assert_eq!(deletions[0].0, 1, "one deletion, once");
    // The deleted recording's call keeps its record; its URL is gone.
    let e = records
        .get_recording_url(pb::GetRecordingUrlRequest {
            call_id: old.to_string(),
            ttl_seconds: 0,
        })
        .await
        .expect_err("deleted");
    assert_eq!(e.code(), tonic::Code::NotFound);

    assert_replay_identical(cluster).await;
}

fn tuned(cluster: &mut Cluster, storage: Option<Storage>) {
    cluster.sim_recordings = Some((60, 3000));
    cluster.recording.move_local = true;
    cluster.recording.retention_by_tenant = BTreeMap::from([("keep".to_string(), 200)]);
    if let Some(s) = storage {
        cluster.recording.storage = s;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_stored_locally_plays_by_signed_url_and_is_swept_when_due() {
    let cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        fast_sim(2026),
        one_line(20),
        true,
        Duration::from_secs(7200),
        |c| tuned(c, None),
    )
    .await;
    let store = cluster.recording.open().expect("storage opens");
    recordings_round_trip(&cluster, store.as_ref()).await;
    cluster.shutdown().await;
}

/// Announces a recording of a new call at `uri` (tenant "default", no task).
async fn announce(cluster: &Cluster, uri: &str, content_type: &str) -> uuid::Uuid {
    let call = uuid::Uuid::new_v4();
    let recording = pb::RecordingAvailable {
        uri: uri.into(),
        content_type: content_type.into(),
        duration_ms: 1234,
        ..Default::default()
    };
    publish_announcement(cluster, "default", call, 0, recording).await;
    call
}

/// An HTTP server: `/ok.wav` a WAV of 0.5 s, `/ok.mp3` some bytes as audio/mpeg, anything else
/// 404.
async fn provider_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = std::env::temp_dir().join(format!("waihu-prov-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    waihu_provider_sim::write_wav(&dir.join("ok.wav"), 500, 3).expect("wav");
    let wav = std::fs::read(dir.join("ok.wav")).expect("wav bytes");
    let _ = std::fs::remove_dir_all(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let wav = wav.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, ct, body): (&str, &str, Vec<u8>) = if req.starts_with("GET /ok.wav ") {
                    ("200 OK", "audio/wav", wav)
                } else if req.starts_with("GET /ok.mp3 ") || req.starts_with("GET /ok.mp3?") {
                    (
                        "200 OK",
                        "audio/mpeg",
                        b"ID3\x04 not really an mp3".to_vec(),
                    )
                } else {
                    ("404 Not Found", "text/plain", b"no".to_vec())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    addr
}

/// A recording row: call, state, reason, format, duration.
type Settled = (uuid::Uuid, i16, Option<String>, Option<String>, Option<i64>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_urls_are_fetched_and_bad_sources_fail_with_their_reason() {
    let cluster = Cluster::start(fast_sim(7), one_line(5)).await;
    let store = cluster.recording.open().expect("storage");
    let base = provider_server().await;
    let wav = announce(&cluster, &format!("{base}/ok.wav"), "audio/x-wav").await;
    let mp3 = announce(&cluster, &format!("{base}/ok.mp3?token=1"), "").await;
    let missing = announce(&cluster, &format!("{base}/gone.wav"), "audio/wav").await;
    let outside = announce(&cluster, "file:///etc/hostname", "audio/wav").await;
    let not_audio = announce(&cluster, &format!("{base}/ok.wav"), "text/html").await;
    let bad_wav = announce(&cluster, &format!("{base}/ok.mp3"), "audio/wav").await;
    let rows =
        waihu_testkit::eventually(Duration::from_secs(30), "every source settled", || async {
            let rows: Vec<Settled> = sqlx::query_as(
                "SELECT call_id, state, reason, format, duration_ms FROM record.recordings",
            )
            .fetch_all(&cluster.env.pool)
            .await
            .expect("rows");
            (rows.len() == 6 && rows.iter().all(|r| r.1 == 2 || r.1 == 3)).then_some(rows)
        })
        .await;
    let row = |c: uuid::Uuid| rows.iter().find(|r| r.0 == c).expect("row").clone();
    // Fetched: the WAV's duration from its header, the MP3's as announced.
    assert_eq!(row(wav).1, 2);
    assert_eq!(
        (row(wav).3.as_deref(), row(wav).4),
        (Some("wav"), Some(500))
    );
    assert_eq!(row(mp3).1, 2);
    assert_eq!(
        (row(mp3).3.as_deref(), row(mp3).4),
        (Some("mp3"), Some(1234))
    );
    let key: (String, i64) =
        sqlx::query_as("SELECT key, bytes FROM record.recordings WHERE call_id = $1")
            .bind(wav)
            .fetch_one(&cluster.env.pool)
            .await
            .expect("key");
    assert_eq!(
        object(store.as_ref(), &key.0).await.map(|b| b.len() as i64),
        Some(key.1)
    );
    for (call, why) in [
        (missing, "404"),
        (outside, "outside the recordings source directories"),
        (not_audio, "is not audio this service keeps"),
        (bad_wav, "not a WAV file"),
    ] {
        let r = row(call);
        assert_eq!(r.1, 3, "{why}");
        assert!(
            r.2.as_deref().unwrap_or("").contains(why),
            "{why}: {:?}",
            r.2
        );
    }
    // A refused WAV leaves nothing in storage.
    let listed: Vec<_> = {
        use futures::StreamExt;
        store.list(None).collect::<Vec<_>>().await
    };
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_replay_identical(&cluster).await;
    cluster.shutdown().await;
}

/// A local S3-compatible server (moto), on a free port, until dropped.
struct Moto {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn moto_server() -> String {
    if let Ok(p) = std::env::var("WAIHU_MOTO_SERVER") {
        return p;
    }
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.tools/venv/bin/moto_server"
    )
    .to_string()
}

impl Moto {
    async fn start() -> Moto {
        let bin = moto_server();
        assert!(
            std::path::Path::new(&bin).exists(),
            "moto_server is installed by scripts/ensure-tools.sh (make test runs it): {bin}"
        );
        let port = free_port().port();
        let child = tokio::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("moto_server starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = SystemTime::now();
        loop {
            if http.get(&url).send().await.is_ok() {
                break;
            }
            assert!(
                started.elapsed().unwrap_or_default() < Duration::from_secs(30),
                "moto_server did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Moto { child, url }
    }

    /// Creates a bucket (moto accepts unsigned requests).
    async fn bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.url))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "{}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_path_holds_against_an_s3_compatible_server() {
    let moto = Moto::start().await;
    moto.bucket("waihu-recordings").await;
    let storage = Storage::S3 {
        bucket: "waihu-recordings".into(),
        endpoint: moto.url.clone(),
        region: "us-east-1".into(),
        access_key_id: "test".into(),
        secret_access_key: waihu_runtime::config::Secret::new("test"),
        allow_http: true,
    };
    let cluster = Cluster::start_tuned(
        waihu_testkit::TestEnv::new().await,
        fast_sim(2027),
        one_line(20),
        true,
        Duration::from_secs(7200),
        |c| tuned(c, Some(storage)),
    )
    .await;
    let store = cluster.recording.open().expect("storage opens");
    recordings_round_trip(&cluster, store.as_ref()).await;
    cluster.shutdown().await;
    drop(moto);
}
