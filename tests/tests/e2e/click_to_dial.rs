//! Click-to-dial (seed 003 /calls/dial, /calls/hangup, /calls/:id/status): one call outside any
//! task, through the real dialer, provider adapter (simulator) and record service, under the
//! same rules as a campaign's.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};
use waihu_e2e::*;
use waihu_events::pb;
use waihu_provider::sim::{Mix, MsRange, Simulator};

/// Every call answered after a short ring, then talks for ten minutes: long enough to watch
/// and hang up.
fn long_calls() -> Simulator {
    Simulator {
        seed: 5,
        mix: "answered=1".parse::<Mix>().expect("mix"),
        ring_ms: MsRange(100, 200),
        talk_ms: MsRange(600_000, 600_001),
        setup_ms: MsRange(20, 50),
        time_scale: 1.0,
        ..Simulator::default()
    }
}

fn dial(phone: &str, line: &str) -> pb::DialRequest {
    pb::DialRequest {
        phone: phone.into(),
        line_id: line.into(),
        customer_id: "c-42".into(),
        customer_name: "张三".into(),
        order_id: "o-7".into(),
    }
}

/// A request carrying a token with these permissions (for the `default` tenant unless said).
fn with_token<T>(tenant: &str, perms: &[&str], msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    let t = token(tenant, "agent-1", perms);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {t}").parse().expect("header"),
    );
    r
}

async fn status(cluster: &Cluster, call: &str) -> pb::CallStatus {
    cluster
        .dialer()
        .await
        .get_call_status(pb::GetCallStatusRequest {
            call_id: call.into(),
        })
        .await
        .expect("status")
        .into_inner()
}

async fn wait_state(cluster: &Cluster, call: &str, state: &str) -> pb::CallStatus {
    waihu_testkit::eventually(Duration::from_secs(30), state, || async move {
        let s = status(cluster, call).await;
        (s.status == state).then_some(s)
    })
    .await
}

async fn in_flight(cluster: &Cluster, line: &str) -> u32 {
    cluster
        .dialer()
        .await
        .get_line_usage(pb::GetLineUsageRequest {
            line_ids: vec![line.into()],
        })
        .await
        .expect("usage")
        .into_inner()
        .lines
        .first()
        .map_or(0, |l| l.in_flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_call_rings_connects_and_hangs_up_and_its_line_is_freed() {
    let cluster = Cluster::start(long_calls(), one_line(1)).await;
    let mut dialer = cluster.dialer().await;

    let placed = dialer
        .dial(dial("138 0000 0001", ""))
        .await
        .expect("dial")
        .into_inner();
    assert_eq!(placed.line_id, "sim-1", "the tenant's only line");
    assert_eq!(placed.phone, "+8613800000001");
    let call = placed.call_id.clone();

    let connected = wait_state(&cluster, &call, "connected").await;
    assert_eq!(connected.task_id, "", "a manual call has no task");
    assert_eq!(connected.customer_id, "c-42");
    assert_eq!(connected.order_id, "o-7");
    assert_eq!(
        connected.caller_number, "+862161234567",
        "the line's caller number"
    );
    assert!(connected.start_time.is_some() && connected.answered_at.is_some());
    assert_eq!(in_flight(&cluster, "sim-1").await, 1);

    // The line carries one call: a second is refused while the first is out, naming the line.
    let busy = dialer
        .dial(dial("13800000002", "sim-1"))
        .await
        .expect_err("line full");
    assert_eq!(busy.code(), Code::ResourceExhausted, "{busy:?}");
    assert!(busy.message().contains("sim-1"), "{busy:?}");

    // Another tenant sees no such call, and cannot end it.
    let other = dialer
        .get_call_status(as_tenant(
            "other",
            pb::GetCallStatusRequest {
                call_id: call.clone(),
            },
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(other.code(), Code::NotFound);
    let other = dialer
        .hangup(as_tenant(
            "other",
            pb::HangupRequest {
                call_id: call.clone(),
            },
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(other.code(), Code::NotFound);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ended = dialer
        .hangup(pb::HangupRequest {
            call_id: call.clone(),
        })
        .await
        .expect("hangup")
        .into_inner();
    assert!(ended.ended);
    let s = wait_state(&cluster, &call, "ended").await;
    assert_eq!(s.cause_q850, 16, "normal clearing");
    assert!(s.duration_seconds >= 1, "{s:?}");
    // Hanging up again changes nothing.
    let again = dialer
        .hangup(pb::HangupRequest {
            call_id: call.clone(),
        })
        .await
        .expect("hangup")
        .into_inner();
    assert!(!again.ended);

    // The release frees the line: the next call goes out on it.
    waihu_testkit::eventually(Duration::from_secs(30), "line free", || async {
        (in_flight(&cluster, "sim-1").await == 0).then_some(())
    })
    .await;
    let next = dialer
        .dial(dial("13800000002", "sim-1"))
        .await
        .expect("dial again")
        .into_inner();
    wait_state(&cluster, &next.call_id, "connected").await;

    // The call's record: no task, released by the hang-up, and nothing after it (the
    // simulator, told to drop the call, adds no release of its own).
    let record = waihu_testkit::eventually(Duration::from_secs(30), "record", || {
        let (cluster, call) = (&cluster, &call);
        async move {
            let r = cluster
                .records()
                .await
                .get_call_record(pb::GetCallRecordRequest {
                    call_id: call.clone(),
                })
                .await
                .ok()?
                .into_inner();
            (r.state == "released").then_some(r)
        }
    })
    .await;
    assert_eq!(record.task_id, "");
    assert_eq!(record.phone, "+8613800000001");
    assert!(record
        .cause
        .as_ref()
        .is_some_and(|c| c.q850 == 16 && c.raw.starts_with("waihu:hangup")));
    let listed = cluster
        .records()
        .await
        .list_call_records(pb::ListCallRecordsRequest {
            phone: "13800000001".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.records.len(), 1, "{listed:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_calls_keep_the_rules_do_not_call_window_lines_and_input() {
    let mut cluster = Cluster::start(long_calls(), one_line(5)).await;
    let mut dialer = cluster.dialer().await;

    // Input: the field is named.
    for (req, field) in [
        (dial("", ""), "phone"),
        (dial("not a phone", ""), "phone"),
        (dial("13800000003", "bad line!"), "line_id"),
        (
            pb::DialRequest {
                customer_id: "x\u{0}y".into(),
                ..dial("13800000003", "")
            },
            "customer_id",
        ),
        (
            pb::DialRequest {
                order_id: "o".repeat(129),
                ..dial("13800000003", "")
            },
            "order_id",
        ),
    ] {
        let e = dialer.dial(req).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {e:?}");
    }
    let e = dialer
        .dial(dial("13800000003", "no-such-line"))
        .await
        .expect_err("unknown line");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    // A tenant without lines.
    let e = dialer
        .dial(as_tenant("lineless", dial("13800000003", "")))
        .await
        .expect_err("no line");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // Do-not-call: the tenant's list and the global one.
    dialer
        .add_do_not_call(pb::DoNotCallRequest {
            phones: vec!["13800000004".into()],
            reason: "asked".into(),
        })
        .await
        .expect("dnc");
    let e = dialer
        .dial(dial("13800000004", ""))
        .await
        .expect_err("listed");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("do-not-call"), "{e:?}");

    // A disabled line is refused by name.
    let mut providers = cluster.providers().await;
    providers
        .disable_line(pb::DisableLineRequest {
            line_id: "sim-1".into(),
            reason: "test".into(),
        })
        .await
        .expect("disable");
    let e = waihu_testkit::eventually(Duration::from_secs(30), "disabled", || {
        let mut dialer = dialer.clone();
        async move {
            let e = dialer.dial(dial("13800000005", "sim-1")).await.err()?;
            (e.code() == Code::FailedPrecondition).then_some(e)
        }
    })
    .await;
    assert!(e.message().contains("disabled"), "{e:?}");
    providers
        .enable_line(pb::LineRequest {
            line_id: "sim-1".into(),
        })
        .await
        .expect("enable");

    // The calling window: a dialer whose default window is closed now refuses a token without
    // lead:call:dial:anytime, saying when it opens, and lets one with it through.
    cluster.stop_dialer().await;
    cluster.default_window =
        waihu_telephony::window::Window::parse_hours(&closed_now()).expect("window");
    cluster.start_dialer().await;
    let mut dialer = cluster.dialer().await;
    let e = waihu_testkit::eventually(Duration::from_secs(30), "window refusal", || {
        let mut dialer = dialer.clone();
        async move {
            let e = dialer
                .dial(with_token(
                    "default",
                    &["lead:call:dial"],
                    dial("13800000005", ""),
                ))
                .await
                .err()?;
            (e.code() == Code::FailedPrecondition).then_some(e)
        }
    })
    .await;
    assert!(e.message().contains("calling window"), "{e:?}");
    assert!(e.message().contains("opens at"), "{e:?}");
    // (Once the dialer has followed the line's re-enabling.)
    let placed = waihu_testkit::eventually(Duration::from_secs(30), "anytime dial", || {
        let mut dialer = dialer.clone();
        async move {
            dialer
                .dial(with_token(
                    "default",
                    &["lead:call:dial", "lead:call:dial:anytime"],
                    dial("13800000005", ""),
                ))
                .await
                .ok()
                .map(|r| r.into_inner())
        }
    })
    .await;
    wait_state(&cluster, &placed.call_id, "connected").await;
    // Without lead:call:dial at all: refused before it is looked at.
    let e = dialer
        .dial(with_token(
            "default",
            &["lead:call:view"],
            dial("13800000005", ""),
        ))
        .await
        .expect_err("no permission");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    cluster.shutdown().await;
}

/// One daily range that excludes the current minute in Asia/Shanghai (the callee's zone for a
/// mainland mobile number).
fn closed_now() -> Vec<String> {
    use chrono::Timelike;
    // China Standard Time has no daylight saving: UTC+8 all year.
    let h = (chrono::Utc::now().hour() + 8) % 24;
    // Two hours starting three hours from now: never the current one.
    let (a, b) = ((h + 3) % 24, (h + 5) % 24);
    if a < b {
        vec![format!("{a:02}:00-{b:02}:00")]
    } else {
        vec![format!("{a:02}:00-23:59")]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_dial_and_hangup_over_http() {
    let cluster = Cluster::start(long_calls(), one_line(2)).await;
    let stop = CancellationToken::new();
    let gateway = start_gateway(&cluster, stop.clone()).await;
    let calls = HttpApi::new(format!("http://{}/api/v1/calls", gateway.addr));
    let token = token("default", "crm", &["lead:call:dial", "lead:call:view"]);

    let body = r#"{"customerId":"c-1","customerPhone":"13800000021","customerName":"李四","callMethod":"cloud","orderId":"o-1"}"#;
    let (code, v) = calls
        .call_raw("POST", "/dial", Some(body), Some(&token))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    let call = v["callId"].as_str().expect("callId").to_string();

    let connected = waihu_testkit::eventually(Duration::from_secs(30), "connected", || {
        let (calls, token, call) = (&calls, &token, &call);
        async move {
            let (_, v) = calls
                .call_raw("GET", &format!("/{call}/status"), None, Some(token))
                .await;
            (v["status"] == "connected").then_some(v)
        }
    })
    .await;
    assert_eq!(connected["callId"], call.as_str());

    // The seed's numeric line id names a line whose id is those digits: none here.
    let (code, v) = calls
        .call_raw(
            "POST",
            "/dial",
            Some(r#"{"customerPhone":"13800000022","callMethod":"cloud","lineId":1}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    let (code, v) = calls
        .call_raw(
            "POST",
            "/dial",
            Some(r#"{"customerPhone":"nope","callMethod":"cloud"}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("customerPhone")),
        "{v}"
    );
    let (code, v) = calls
        .call_raw(
            "POST",
            "/dial",
            Some(r#"{"customerPhone":"13800000022","callMethod":"mobile"}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("deviceId")),
        "{v}"
    );

    let (code, v) = calls
        .call_raw(
            "POST",
            "/hangup",
            Some(&format!(r#"{{"callId":"{call}"}}"#)),
            Some(&token),
        )
        .await;
    assert_eq!(
        (code, &v["success"]),
        (200, &serde_json::json!(true)),
        "{v}"
    );
    waihu_testkit::eventually(Duration::from_secs(30), "ended", || {
        let (calls, token, call) = (&calls, &token, &call);
        async move {
            let (_, v) = calls
                .call_raw("GET", &format!("/{call}/status"), None, Some(token))
                .await;
            (v["status"] == "ended").then_some(())
        }
    })
    .await;
    let (code, v) = calls
        .call_raw("POST", "/hangup", Some(r#"{"callId":"x"}"#), Some(&token))
        .await;
    assert_eq!(code, 422, "{v}");

    // Seed 002's call records list the manual call, with no task, and show its detail.
    let lead = HttpApi::new(format!("http://{}/api/v1/lead-generation", gateway.addr));
    let reader = waihu_e2e::token(
        "default",
        "crm",
        &["lead:call:record:list", "lead:call:record:view"],
    );
    let record = waihu_testkit::eventually(Duration::from_secs(30), "the record", || {
        let (lead, reader) = (&lead, &reader);
        async move {
            let (code, v) = lead
                .call(
                    "GET",
                    "/call-records?phoneNumber=13800000021",
                    None,
                    Some(reader),
                )
                .await;
            assert_eq!(code, 200, "{v}");
            let r = v["data"]["records"].as_array()?.first()?.clone();
            (!r["endTime"].is_null()).then_some(r)
        }
    })
    .await;
    assert!(record["taskId"].is_null(), "{record}");
    let (code, v) = lead
        .call(
            "GET",
            &format!("/call-records/{}", record["recordId"]),
            None,
            Some(&reader),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(v["data"]["taskId"].is_null(), "{v}");
    stop.cancel();
    cluster.shutdown().await;
}
