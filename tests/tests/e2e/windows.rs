//! Calling windows through the real services: nothing is dialed outside a task's window, read on
//! the callee's clock where the number tells its zone; a contact due outside waits for exactly
//! the next opening.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use waihu_e2e::*;
use waihu_events::pb;
use waihu_telephony::{window::Window, zone::Tz};

fn zone(name: &str) -> Tz {
    waihu_telephony::zone::parse(name).expect("zone")
}

/// The task's waiting contacts: (phone, next due).
async fn waiting(cluster: &Cluster, task_id: &str) -> Vec<(String, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT phone, next_at FROM dialer.dialer_contacts WHERE task_id = $1::uuid AND state = 0
         ORDER BY contact_no",
    )
    .bind(task_id)
    .fetch_all(&cluster.env.pool)
    .await
    .expect("contacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_dials_nothing_and_the_task_waits_for_its_opening() {
    let cluster = Cluster::start(fast_sim(41), one_line(20)).await;
    let mut tasks = cluster.tasks().await;
    let sh = zone("Asia/Shanghai");
    // Open all day, but only on the weekday two days from now (Shanghai's calendar).
    let later = (Utc::now().with_timezone(&sh) + chrono::Duration::days(2)).weekday();
    let window = pb::CallingWindow {
        hours: vec!["00:00-24:00".into()],
        weekdays: vec![later.number_from_monday()],
        ..Default::default()
    };
    let numbers = phones(20, 12);
    let t = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            window: Some(window.clone()),
            ..spec("closed", 0, 0)
        },
        &numbers,
    )
    .await;
    start(&mut tasks, &t).await;
    let opening = Window::parse(&window)
        .expect("window")
        .next_open(Utc::now(), sh)
        .expect("opens");
    let until: Option<DateTime<Utc>> = waihu_testkit::eventually(
        Duration::from_secs(30),
        "the task passed over until its opening",
        || {
            let (c, t) = (&cluster, t.clone());
            async move {
                let until: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT closed_until FROM dialer.dialer_tasks WHERE task_id = $1::uuid",
                )
                .bind(&t)
                .fetch_one(&c.env.pool)
                .await
                .ok()?;
                until.is_some().then_some(until)
            }
        },
    )
    .await;
    assert_eq!(
        until,
        Some(opening),
        "the next local midnight of that weekday"
    );
    assert!(calls_per_number(&cluster, &t).await.is_empty());

    // A bad window is refused naming its field.
    let e = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(pb::TaskSpec {
                window: Some(pb::CallingWindow {
                    hours: vec!["09:00-12:00".into(), "11:00-13:00".into()],
                    ..Default::default()
                }),
                ..spec("bad", 0, 0)
            }),
        })
        .await
        .expect_err("overlapping hours");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("spec.window.hours"), "{}", e.message());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_callee_is_called_in_the_window_of_its_own_clock() {
    let cluster = Cluster::start(fast_sim(43), one_line(20)).await;
    let mut tasks = cluster.tasks().await;
    let (sh, ny) = (zone("Asia/Shanghai"), zone("America/New_York"));
    // Open the hour either side of Shanghai's time now: New York, 12-13 hours behind, is
    // closed.
    let window = pb::CallingWindow {
        hours: hours_around(Utc::now(), sh, 60),
        ..Default::default()
    };
    let mainland = phones(10, 14);
    let new_york: Vec<String> = (0..10).map(|i| format!("+1212555{:04}", 100 + i)).collect();
    let all: Vec<String> = mainland.iter().chain(&new_york).cloned().collect();
    let t = create_with_contacts(
        &mut tasks,
        pb::TaskSpec {
            window: Some(window.clone()),
            ..spec("two clocks", 0, 0)
        },
        &all,
    )
    .await;
    start(&mut tasks, &t).await;
    let opening = Window::parse(&window)
        .expect("window")
        .next_open(Utc::now(), ny)
        .expect("opens");
    // The mainland numbers are called; the New York ones wait for their own opening.
    let waits = waihu_testkit::eventually(Duration::from_secs(60), "the day's calls", || {
        let (c, t) = (&cluster, t.clone());
        async move {
            let w = waiting(c, &t).await;
            (w.len() == 10 && w.iter().all(|(_, at)| *at == opening)).then_some(w)
        }
    })
    .await;
    let waiting_phones: Vec<String> = waits.into_iter().map(|(p, _)| p).collect();
    assert_eq!(waiting_phones, new_york);
    let called = waihu_testkit::eventually(Duration::from_secs(30), "the calls recorded", || {
        let (c, t) = (&cluster, t.clone());
        async move {
            let called = calls_per_number(c, &t).await;
            (called.len() >= 10).then_some(called)
        }
    })
    .await;
    assert_eq!(
        called.keys().cloned().collect::<Vec<_>>(),
        {
            let mut m = e164(&mainland);
            m.sort();
            m
        },
        "only the mainland numbers were called"
    );
    let task = tasks
        .get_task(pb::TaskRef { task_id: t.clone() })
        .await
        .expect("task")
        .into_inner();
    assert_eq!(task.status, pb::TaskStatus::Running as i32, "still waiting");
    cluster.shutdown().await;
}
