//! No input can stop the platform: poison envelopes on the subjects of every consumer are
//! dead-lettered with a reason or stored and skipped, every service keeps serving, and a campaign
//! started afterwards completes with exact statistics.

use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use waihu_e2e::*;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent, HEADER_EVENT_TYPE};

/// A well-formed `CallReleased` envelope for a call nobody placed.
fn released(task: uuid::Uuid, call: uuid::Uuid, cause_name: &str, ring_ms: u64) -> pb::Envelope {
    let meta = EventMeta::new("default", Aggregate::Call(call), 5).with_task(task);
    RecordedEvent::new(
        meta,
        Event::CallReleased(pb::CallReleased {
            call_id: call.to_string(),
            task_id: task.to_string(),
            contact_no: 1,
            cause: Some(pb::HangupCause {
                q850: 17,
                name: cause_name.into(),
                raw: "sip:486".into(),
            }),
            answered: false,
            ring_ms,
            talk_ms: 0,
            ..Default::default()
        }),
    )
    .to_envelope()
}

/// The poison kinds, each as (name, envelope bytes, event-type header).
fn poisons(
    task: uuid::Uuid,
    stream_id: &str,
    header: &str,
) -> Vec<(&'static str, Vec<u8>, String)> {
    let base = || {
        let mut e = released(task, uuid::Uuid::new_v4(), "USER_BUSY", 1000);
        e.stream_id = stream_id.to_string();
        e
    };
    let mut newline_id = base();
    newline_id.event_id = "\n".into();
    let mut unknown_type = base();
    unknown_type.event_type = "CallTranscribed".into();
    unknown_type.payload = b"\x0a\x03abc".to_vec().into();
    let mut version_2 = base();
    version_2.schema_version = 2;
    let mut nul = base();
    nul.event_id = uuid::Uuid::new_v4().to_string();
    nul.payload = released(task, uuid::Uuid::new_v4(), "USER\0BUSY", 1000).payload;
    let mut overflow = base();
    overflow.payload = released(task, uuid::Uuid::new_v4(), "USER_BUSY", u64::MAX).payload;
    let mut huge = base();
    huge.event_type = "CallTranscribed".into();
    huge.payload = vec![b'x'; 1024 * 1024 - 4 * 1024].into();
    let mut out = Vec::new();
    for (name, e) in [
        ("newline-id", newline_id),
        ("unknown-type", unknown_type),
        ("schema-version-2", version_2),
        ("nul-in-string", nul),
        ("ring-ms-overflow", overflow),
        ("near-1MiB", huge),
    ] {
        out.push((name, e.encode_to_vec(), header.to_string()));
    }
    out.push(("garbage", b"\xff\xfe not protobuf".to_vec(), header.into()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_envelopes_on_every_subject_stop_nothing_and_a_later_campaign_is_exact() {
    let cluster = Cluster::start(fast_sim(7), one_line(200)).await;
    let bus = &cluster.env.bus;
    let task = uuid::Uuid::new_v4();
    let call = uuid::Uuid::new_v4();
    // The subjects every consumer follows: task events (dialer), contact events (task
    // completion), call events (dialer releases, the simulator), screening results (dialer).
    // The event-type header each consumer of the subject reads.
    let subjects = [
        (
            bus.subject(&Aggregate::Task(task)),
            format!("task-{task}"),
            "TaskStarted",
        ),
        (
            bus.subject(&Aggregate::Contact(task, 1)),
            format!("contact-{task}-1"),
            "ContactFinished",
        ),
        (
            bus.subject(&Aggregate::Call(call)),
            format!("call-{call}"),
            "CallReleased",
        ),
        (
            bus.subject(&Aggregate::Screening(call)),
            format!("screening-{call}"),
            "NumbersScreened",
        ),
    ];
    let n = subjects.len() as u64;
    let mut sent = cluster.setup_events;
    for (subject, stream_id, header) in &subjects {
        for (_, bytes, event_type) in poisons(task, stream_id, header) {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_EVENT_TYPE, event_type.as_str());
            bus.publish_raw(subject.clone(), headers, Bytes::from(bytes))
                .await
                .expect("poison published");
            sent += 1;
        }
    }
    // Per subject: 4 refused by the store writer (newline id, NUL, overflow, garbage), 3 kept
    // unread (unknown type, version 2, near 1 MiB of an unknown type).
    let status = cluster
        .wait_store_status(
            "the store writer to pass every poison envelope",
            Duration::from_secs(30),
            |s| s.position == sent && s.unknown_events == 3 * n && s.dead_lettered == 4 * n,
        )
        .await;
    let mut admin = cluster.admin().await;
    assert!(status.halted.is_empty(), "halted: {}", status.halted);
    assert_eq!(
        status.position, sent,
        "the store read past every poison envelope"
    );

    let letters = admin
        .list_dead_letters(pb::ListDeadLettersRequest {
            consumer: "store-writer".into(),
            ..Default::default()
        })
        .await
        .expect("dead letters")
        .into_inner()
        .dead_letters;
    assert_eq!(
        letters.len() as u64,
        4 * n,
        "newline id, NUL, overflow and garbage on every subject"
    );
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    for needle in ["event_id", "ring_ms", "protobuf", "0x00"] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "a reason names {needle:?}: {reasons:#?}"
        );
    }
    for (service, problems) in cluster.problems() {
        assert!(
            problems.is_empty(),
            "{service} is not serving: {problems:?}"
        );
    }

    // A campaign afterwards: exact statistics, and the task completes.
    let phones = phones(300, 3);
    let mut tasks = cluster.tasks().await;
    let task_id = create_with_contacts(&mut tasks, spec("after-poison", 2, 0), &phones).await;
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(120)).await;
    let x = expected(&cluster.sim, &e164(&phones), 2);
    let stats = wait_stats_settled(&cluster, &task_id, x.contacts, Duration::from_secs(60)).await;
    assert_stats_match(&stats, &x);
    let report = assert_replay_identical(&cluster).await;
    assert_eq!(report.events_skipped, 3 * n);
    for (service, problems) in cluster.problems() {
        assert!(
            problems.is_empty(),
            "{service} is not serving: {problems:?}"
        );
    }
    // Consumers dead-lettered what they could not read, with a reason naming it.
    // Paged: a page ends before 3 MiB (the near-1 MiB poisons are dead-lettered whole).
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = admin
            .list_dead_letters(pb::ListDeadLettersRequest {
                page_size: 1000,
                after_sequence: after,
                ..Default::default()
            })
            .await
            .expect("dead letters")
            .into_inner();
        all.extend(page.dead_letters);
        if page.next_after_sequence == 0 {
            break;
        }
        after = page.next_after_sequence;
    }
    assert!(all.iter().all(|l| !l.reason.is_empty()));
    assert!(
        all.iter().any(|l| l.consumer == "task-completion"),
        "the completion consumer dead-lettered the contact subject's poison"
    );
    cluster.shutdown().await;
}
