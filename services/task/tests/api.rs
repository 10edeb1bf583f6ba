//! The task service's gRPC API against real PostgreSQL and NATS.

use tokio_util::sync::CancellationToken;
use tonic::{transport::Channel, Code, Request};
use waihu_proto::v1::{self as pb, task_service_client::TaskServiceClient};
use waihu_testkit::TestEnv;

struct App {
    env: TestEnv,
    stop: CancellationToken,
    handle: waihu_runtime::ServiceHandle,
    client: TaskServiceClient<Channel>,
}

async fn spawn_app() -> App {
    let env = TestEnv::new().await;
    let stop = CancellationToken::new();
    let handle = waihu_task::start(
        waihu_task::TaskConfig {
            common: env.config(),
        },
        stop.clone(),
    )
    .await
    .expect("starts");
    let client = TaskServiceClient::connect(format!("http://{}", handle.addr))
        .await
        .expect("connects");
    App {
        env,
        stop,
        handle,
        client,
    }
}

impl App {
    async fn stop(self) {
        self.stop.cancel();
        self.handle.wait().await;
        self.env.cleanup().await;
    }
}

fn spec(name: &str) -> pb::TaskSpec {
    pb::TaskSpec {
        name: name.into(),
        ..Default::default()
    }
}

async fn create(c: &mut TaskServiceClient<Channel>, name: &str) -> pb::Task {
    c.create_task(pb::CreateTaskRequest {
        spec: Some(spec(name)),
    })
    .await
    .expect("create")
    .into_inner()
}

fn rows(phones: &[&str]) -> Vec<pb::ContactRow> {
    phones
        .iter()
        .map(|p| pb::ContactRow {
            phone: p.to_string(),
            ..Default::default()
        })
        .collect()
}

async fn add(
    c: &mut TaskServiceClient<Channel>,
    task_id: &str,
    chunks: Vec<Vec<pb::ContactRow>>,
) -> Result<pb::AddContactsResponse, tonic::Status> {
    let msgs: Vec<_> = chunks
        .into_iter()
        .map(|rows| pb::AddContactsRequest {
            task_id: task_id.into(),
            rows,
        })
        .collect();
    c.add_contacts(tokio_stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn bad_contact_rows_are_reported_row_by_row_and_good_rows_kept() {
    let mut app = spawn_app().await;
    let t = create(&mut app.client, "import").await;
    let reply = add(
        &mut app.client,
        &t.task_id,
        vec![
            rows(&["13800000001", "12345", "138 0000 0002", "010-12345678"]),
            rows(&["+8613800000001", "", "+14155550123", "abc", "13800000002"]),
            vec![pb::ContactRow {
                phone: "13800000004".into(),
                name: "nul\0".into(),
                ..Default::default()
            }],
        ],
    )
    .await
    .expect("import");
    assert_eq!(reply.received, 10);
    assert_eq!(reply.accepted, 4, "{reply:?}");
    assert_eq!(
        reply.duplicates, 2,
        "the +86 spelling and the repeated 13800000002"
    );
    assert_eq!(reply.rejected_total, 4);
    let rejected: Vec<(u64, &str)> = reply
        .rejected
        .iter()
        .map(|r| (r.row, r.phone.as_str()))
        .collect();
    assert_eq!(
        rejected,
        vec![(2, "12345"), (6, ""), (8, "abc"), (10, "13800000004")]
    );
    assert!(reply.rejected.iter().all(|r| !r.reason.is_empty()));
    assert_eq!(reply.contacts_total, 4);

    // A second import of the same numbers adds nothing.
    let again = add(
        &mut app.client,
        &t.task_id,
        vec![rows(&["13800000001", "13800000003"])],
    )
    .await
    .expect("again");
    assert_eq!(
        (again.accepted, again.duplicates, again.contacts_total),
        (1, 1, 5)
    );
    app.stop().await;
}

#[tokio::test]
async fn illegal_transitions_are_failed_precondition_naming_the_state() {
    let mut app = spawn_app().await;
    let c = &mut app.client;
    let t = create(c, "lifecycle").await;
    let r = pb::TaskRef {
        task_id: t.task_id.clone(),
    };
    let empty = c.start_task(r.clone()).await.expect_err("no contacts");
    assert_eq!(empty.code(), Code::FailedPrecondition);
    add(c, &t.task_id, vec![rows(&["13800000001"])])
        .await
        .expect("import");
    assert_eq!(
        c.pause_task(r.clone())
            .await
            .expect_err("pending")
            .message(),
        "task is PENDING; it cannot be paused"
    );
    assert_eq!(
        c.start_task(r.clone())
            .await
            .expect("start")
            .into_inner()
            .status,
        pb::TaskStatus::Running as i32
    );
    let twice = c.start_task(r.clone()).await.expect_err("twice");
    assert_eq!(
        (twice.code(), twice.message()),
        (
            Code::FailedPrecondition,
            "task is RUNNING; it cannot be started"
        )
    );
    c.pause_task(r.clone()).await.expect("pause");
    c.resume_task(r.clone()).await.expect("resume");
    c.cancel_task(pb::CancelTaskRequest {
        task_id: t.task_id.clone(),
        reason: "done".into(),
    })
    .await
    .expect("cancel");
    for e in [
        c.start_task(r.clone()).await.expect_err("start"),
        c.pause_task(r.clone()).await.expect_err("pause"),
        c.resume_task(r.clone()).await.expect_err("resume"),
        c.cancel_task(pb::CancelTaskRequest {
            task_id: t.task_id.clone(),
            reason: String::new(),
        })
        .await
        .expect_err("cancel"),
    ] {
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("CANCELLED"), "{}", e.message());
    }
    let late = add(c, &t.task_id, vec![rows(&["13800000009"])])
        .await
        .expect_err("closed");
    assert_eq!(late.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let mut app = spawn_app().await;
    let c = &mut app.client;
    let cases = [
        (
            pb::TaskSpec {
                name: "  ".into(),
                ..Default::default()
            },
            "spec.name",
        ),
        (
            pb::TaskSpec {
                name: "x".into(),
                priority: 3,
                ..Default::default()
            },
            "spec.priority",
        ),
        (
            pb::TaskSpec {
                name: "x".into(),
                recall_count: 99,
                ..Default::default()
            },
            "spec.recall_count",
        ),
        (
            pb::TaskSpec {
                name: "n".repeat(101),
                ..Default::default()
            },
            "spec.name",
        ),
        (
            pb::TaskSpec {
                name: "x".into(),
                caller_line: "line\0".into(),
                ..Default::default()
            },
            "spec.caller_line",
        ),
        (
            pb::TaskSpec {
                name: "bell\u{7}".into(),
                ..Default::default()
            },
            "spec.name",
        ),
    ];
    for (s, field) in cases {
        let e = c
            .create_task(pb::CreateTaskRequest { spec: Some(s) })
            .await
            .expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().starts_with(field),
            "{} should name {field}",
            e.message()
        );
    }
    let e = c
        .get_task(pb::TaskRef {
            task_id: "nope".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(
        (e.code(), e.message().starts_with("task_id")),
        (Code::InvalidArgument, true)
    );
    let e = c
        .get_task(pb::TaskRef {
            task_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .list_tasks(pb::ListTasksRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .expect_err("token");
    assert_eq!(
        (e.code(), e.message().starts_with("page_token")),
        (Code::InvalidArgument, true)
    );
    app.stop().await;
}

#[tokio::test]
async fn tasks_list_newest_first_by_page_and_tenants_see_only_their_own() {
    let mut app = spawn_app().await;
    let c = &mut app.client;
    for i in 0..5 {
        create(c, &format!("campaign {i}")).await;
    }
    create(c, "other thing").await;
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_tasks(pb::ListTasksRequest {
                name_contains: "CAMPAIGN".into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        names.extend(
            page.tasks
                .iter()
                .map(|t| t.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        names,
        vec![
            "campaign 4",
            "campaign 3",
            "campaign 2",
            "campaign 1",
            "campaign 0"
        ]
    );

    let mut other = Request::new(pb::ListTasksRequest::default());
    other
        .metadata_mut()
        .insert("x-tenant-id", "acme".parse().expect("ascii"));
    assert!(c
        .list_tasks(other)
        .await
        .expect("list")
        .into_inner()
        .tasks
        .is_empty());
    let some = c
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .expect("list")
        .into_inner()
        .tasks[0]
        .clone();
    let mut peek = Request::new(pb::TaskRef {
        task_id: some.task_id.clone(),
    });
    peek.metadata_mut()
        .insert("x-tenant-id", "acme".parse().expect("ascii"));
    assert_eq!(
        c.get_task(peek).await.expect_err("other tenant").code(),
        Code::NotFound
    );
    let mut start = Request::new(pb::TaskRef {
        task_id: some.task_id,
    });
    start
        .metadata_mut()
        .insert("x-tenant-id", "acme".parse().expect("ascii"));
    assert_eq!(
        c.start_task(start).await.expect_err("other tenant").code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn tasks_list_by_page_number_with_a_total_time_range_and_order_and_by_number() {
    let mut app = spawn_app().await;
    let c = &mut app.client;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(create(c, &format!("numbered {i}")).await);
    }
    // Numbers follow creation order, and name a task wherever its UUID does.
    assert!(made.windows(2).all(|w| w[0].number < w[1].number));
    let by_number = c
        .get_task(pb::TaskRef {
            task_id: made[2].number.to_string(),
        })
        .await
        .expect("by number")
        .into_inner();
    assert_eq!(by_number.task_id, made[2].task_id);
    let missing = c
        .get_task(pb::TaskRef {
            task_id: "999999999".into(),
        })
        .await
        .expect_err("no such number");
    assert_eq!(missing.code(), Code::NotFound);

    let names = |r: &pb::ListTasksResponse| -> Vec<String> {
        r.tasks
            .iter()
            .map(|t| t.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default())
            .collect()
    };
    let page = |n: u32, oldest_first: bool| pb::ListTasksRequest {
        name_contains: "numbered".into(),
        page_size: 2,
        page_number: n,
        oldest_first,
        ..Default::default()
    };
    let second = c
        .list_tasks(page(2, false))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(names(&second), ["numbered 2", "numbered 1"]);
    assert_eq!(second.total, 5);
    assert!(second.next_page_token.is_empty());
    let third = c
        .list_tasks(page(3, false))
        .await
        .expect("page 3")
        .into_inner();
    assert_eq!(names(&third), ["numbered 0"]);
    let first_oldest = c
        .list_tasks(page(1, true))
        .await
        .expect("oldest")
        .into_inner();
    assert_eq!(names(&first_oldest), ["numbered 0", "numbered 1"]);
    let beyond = c
        .list_tasks(page(9, false))
        .await
        .expect("beyond")
        .into_inner();
    assert!(beyond.tasks.is_empty());
    assert_eq!(beyond.total, 5);

    // Created from the third task on.
    let from = c
        .list_tasks(pb::ListTasksRequest {
            name_contains: "numbered".into(),
            created_from: made[2].created_at,
            page_number: 1,
            ..Default::default()
        })
        .await
        .expect("from")
        .into_inner();
    assert_eq!(from.total, 3);

    let both = c
        .list_tasks(pb::ListTasksRequest {
            page_number: 1,
            page_token: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("both ways");
    assert_eq!(both.code(), Code::InvalidArgument);
    assert!(both.message().contains("page_number"), "{}", both.message());
    app.stop().await;
}

#[tokio::test]
async fn contacts_list_in_number_order_a_page_at_a_time() {
    let mut app = spawn_app().await;
    let c = &mut app.client;
    let task = create(c, "listed").await;
    let phones: Vec<String> = (0..7).map(|i| format!("1390000000{i}")).collect();
    let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
    add(c, &task.task_id, vec![rows(&refs)])
        .await
        .expect("added");
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .list_contacts(pb::ListContactsRequest {
                task_id: task.number.to_string(),
                page_size: 3,
                after_contact_no: after,
            })
            .await
            .expect("page")
            .into_inner();
        all.extend(
            page.contacts
                .iter()
                .map(|c| (c.contact_no, c.phone.clone())),
        );
        if page.next_after_contact_no == 0 {
            break;
        }
        after = page.next_after_contact_no;
    }
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], (1, "+8613900000000".to_string()));
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let big = c
        .list_contacts(pb::ListContactsRequest {
            task_id: task.task_id.clone(),
            page_size: 5000,
            ..Default::default()
        })
        .await
        .expect_err("page too big");
    assert_eq!(big.code(), Code::InvalidArgument);
    app.stop().await;
}
