//! Every state-changing command leaves an audit record (actor, tenant, action, target) in the
//! event store, written with the change (task commands) or right after it (webhooks, dead
//! letters, the store), readable with `ExportEvents` / `waihu replay --type AuditRecorded`.

use std::{collections::BTreeSet, time::Duration};

use prost::Message;
use tokio_stream::StreamExt;
use tonic::Request;
use waihu_auth::ALL_PERMISSIONS;
use waihu_e2e::*;
use waihu_events::pb;

fn as_ann<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    r
}

/// The tenant's audit records so far: (actor, action, target, detail).
async fn audits(cluster: &Cluster) -> Vec<(String, String, String, String)> {
    let mut stream = cluster
        .records()
        .await
        .export_events(pb::ExportEventsRequest {
            event_types: vec!["AuditRecorded".into()],
            ..Default::default()
        })
        .await
        .expect("export")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        let env = e.expect("event").envelope.expect("envelope");
        assert_eq!(env.tenant_id, "default");
        assert!(env.stream_id.starts_with("audit-"), "{}", env.stream_id);
        let a = pb::AuditRecorded::decode(env.payload.as_ref()).expect("payload");
        out.push((a.actor, a.action, a.target, a.detail));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_command_leaves_an_audit_record() {
    let cluster = Cluster::start(fast_sim(37), one_line(10)).await;
    let token = waihu_e2e::token("default", "ann", ALL_PERMISSIONS);
    let mut tasks = cluster.tasks().await;
    let task = tasks
        .create_task(as_ann(
            &token,
            pb::CreateTaskRequest {
                spec: Some(spec("audited", 0, 0)),
            },
        ))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(task.created_by, "ann");
    let phones = phones(3, 2);
    let rows: Vec<pb::ContactRow> = phones.iter().map(pb::ContactRow::with_phone).collect();
    tasks
        .add_contacts(as_ann(
            &token,
            tokio_stream::iter(pb::AddContactsRequest::chunked(&task.task_id, &rows)),
        ))
        .await
        .expect("import");
    let r = || pb::TaskRef {
        task_id: task.task_id.clone(),
    };
    tasks.start_task(as_ann(&token, r())).await.expect("start");
    tasks
        .cancel_task(as_ann(
            &token,
            pb::CancelTaskRequest {
                task_id: task.task_id.clone(),
                reason: "enough".into(),
            },
        ))
        .await
        .expect("cancel");
    // A refused command changes nothing and records nothing.
    assert!(tasks.start_task(as_ann(&token, r())).await.is_err());
    let mut hooks = cluster.webhooks().await;
    let hook = hooks
        .create_webhook(as_ann(
            &token,
            pb::CreateWebhookRequest {
                url: "http://127.0.0.1:1/x".into(),
                event_types: vec!["task.status".into()],
                secret: String::new(),
            },
        ))
        .await
        .expect("webhook")
        .into_inner();
    hooks
        .delete_webhook(as_ann(
            &token,
            pb::DeleteWebhookRequest {
                webhook_id: hook.webhook_id.clone(),
            },
        ))
        .await
        .expect("deleted");

    let mut providers = cluster.providers().await;
    let mut line = Line {
        id: "ann-line".into(),
        max_concurrent: 3,
    }
    .to_pb();
    providers
        .create_line(as_ann(
            &token,
            pb::CreateLineRequest {
                line: Some(line.clone()),
                ..Default::default()
            },
        ))
        .await
        .expect("line");
    line.cps = 2.5;
    providers
        .update_line(as_ann(
            &token,
            pb::UpdateLineRequest {
                line: Some(line),
                expected_version: 1,
                ..Default::default()
            },
        ))
        .await
        .expect("line updated");
    providers
        .disable_line(as_ann(
            &token,
            pb::DisableLineRequest {
                line_id: "ann-line".into(),
                reason: "trunk down".into(),
            },
        ))
        .await
        .expect("line disabled");

    let target = format!("task {}", task.task_id);
    let want: BTreeSet<(String, String, String)> = [
        ("TaskService/CreateTask", target.clone()),
        ("TaskService/AddContacts", target.clone()),
        ("TaskService/StartTask", target.clone()),
        ("TaskService/CancelTask", target.clone()),
        (
            "WebhookService/CreateWebhook",
            format!("webhook {}", hook.webhook_id),
        ),
        (
            "WebhookService/DeleteWebhook",
            format!("webhook {}", hook.webhook_id),
        ),
        ("ProviderService/CreateLine", "line ann-line".into()),
        ("ProviderService/UpdateLine", "line ann-line".into()),
        ("ProviderService/DisableLine", "line ann-line".into()),
    ]
    .into_iter()
    .map(|(a, t)| ("ann".to_string(), a.to_string(), t))
    // The harness made the cluster's line without a token (development mode).
    .chain([(
        "dev".to_string(),
        "ProviderService/CreateLine".to_string(),
        "line sim-1".to_string(),
    )])
    .collect();
    let got = waihu_testkit::eventually(Duration::from_secs(30), "the audit records", || {
        let c = &cluster;
        let want = want.clone();
        async move {
            let got = audits(c).await;
            let seen: BTreeSet<(String, String, String)> = got
                .iter()
                .map(|(a, b, t, _)| (a.clone(), b.clone(), t.clone()))
                .collect();
            (seen == want).then_some(got)
        }
    })
    .await;
    assert_eq!(got.len(), want.len(), "one record per command: {got:?}");
    let added = got
        .iter()
        .find(|r| r.1 == "TaskService/AddContacts")
        .expect("import audited");
    assert_eq!(added.3, "contacts added: 3");
    for p in &phones {
        assert!(
            got.iter().all(|r| !format!("{r:?}").contains(&p[3..])),
            "no phone number in the audit trail"
        );
    }
    cluster.shutdown().await;
}
