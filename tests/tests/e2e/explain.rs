//! `ExplainContact` through the real services: the rule holding a contact back, in the order a
//! dial round applies them, with when it lifts.

use std::time::Duration;

use chrono::{Datelike, Utc};
use tonic::Code;
use waihu_e2e::*;
use waihu_events::pb;
use waihu_telephony::window::Window;

async fn explain(cluster: &Cluster, task: &str, no: u32) -> pb::ContactExplanation {
    cluster.explain(task, no).await.expect("explained")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_holding_a_contact_back_is_named_with_when_it_lifts() {
    let cluster = Cluster::start(fast_sim(91), one_line(5)).await;
    let mut tasks = cluster.tasks().await;
    let sh = waihu_telephony::zone::parse("Asia/Shanghai").expect("zone");

    // A window open only on the weekday two days from now.
    let later = (Utc::now().with_timezone(&sh) + chrono::Duration::days(2)).weekday();
    let window = pb::CallingWindow {
        hours: vec!["00:00-24:00".into()],
        weekdays: vec![later.number_from_monday()],
        ..Default::default()
    };
    let a = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            window: Some(window.clone()),
            ..spec("closed", 0, 0)
        },
        &phones(3, 41),
    )
    .await;
    start(&mut tasks, &a).await;
    // Once the dialer has seen the task start.
    let e = waihu_testkit::eventually(Duration::from_secs(20), "the task running", || {
        let (c, t) = (&cluster, a.clone());
        async move {
            let e = c.explain(&t, 1).await.ok()?;
            (e.reason != "TASK_NOT_RUNNING").then_some(e)
        }
    })
    .await;
    assert_eq!(
        (e.state.as_str(), e.reason.as_str()),
        ("due", "WINDOW_CLOSED"),
        "{e:?}"
    );
    let opening = Window::parse(&window)
        .expect("window")
        .next_open(Utc::now(), sh)
        .map(waihu_events::timestamp);
    assert_eq!(e.until, opening);

    // The line switched off; one number of the next task on the do-not-call list.
    let mut providers = cluster.providers().await;
    providers
        .disable_line(pb::DisableLineRequest {
            line_id: "sim-1".into(),
            reason: "test".into(),
        })
        .await
        .expect("disabled");
    let numbers = phones(3, 42);
    cluster
        .dialer()
        .await
        .add_do_not_call(pb::DoNotCallRequest {
            phones: vec![numbers[1].clone()],
            reason: String::new(),
        })
        .await
        .expect("listed");
    let b = create_with_contacts(&mut tasks, spec("no line", 0, 0), &numbers).await;
    start(&mut tasks, &b).await;
    let e = waihu_testkit::eventually(Duration::from_secs(20), "the task running", || {
        let (c, t) = (&cluster, b.clone());
        async move {
            let e = c.explain(&t, 1).await.ok()?;
            (e.reason != "TASK_NOT_RUNNING").then_some(e)
        }
    })
    .await;
    assert_eq!(e.reason, "NO_LINE", "{e:?}");
    assert!(e.detail.contains("no enabled line"), "{}", e.detail);
    assert_eq!(explain(&cluster, &b, 2).await.reason, "DO_NOT_CALL");

    // Paused: the task is what holds it.
    tasks
        .pause_task(pb::TaskRef { task_id: b.clone() })
        .await
        .expect("paused");
    waihu_testkit::eventually(Duration::from_secs(20), "the pause applied", || {
        let (c, b) = (&cluster, b.clone());
        async move { (explain(c, &b, 1).await.reason == "TASK_NOT_RUNNING").then_some(()) }
    })
    .await;

    // Line on, task resumed: it finishes; each contact says so.
    providers
        .enable_line(pb::LineRequest {
            line_id: "sim-1".into(),
        })
        .await
        .expect("enabled");
    tasks
        .resume_task(pb::TaskRef { task_id: b.clone() })
        .await
        .expect("resumed");
    wait_status(
        &mut tasks,
        &b,
        pb::TaskStatus::Completed,
        Duration::from_secs(60),
    )
    .await;
    let e = explain(&cluster, &b, 1).await;
    assert_eq!(
        (e.state.as_str(), e.reason.as_str()),
        ("finished", "FINISHED")
    );
    assert!(e.attempts >= 1);
    assert_eq!(
        explain(&cluster, &b, 2).await.attempts,
        0,
        "the listed number"
    );

    // Another tenant's contact does not exist for this one; a bad request names its field.
    let e = cluster
        .dialer()
        .await
        .explain_contact(as_tenant(
            "other",
            pb::ExplainContactRequest {
                task_id: b.clone(),
                contact_no: 1,
            },
        ))
        .await
        .expect_err("hidden");
    assert_eq!(e.code(), Code::NotFound);
    let e = cluster.explain("nope", 1).await.expect_err("bad id");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("task_id"), "{}", e.message());
    cluster.shutdown().await;
}
