//! Work phones (seed 003, 方案一), with a real WebSocket client playing the phone's app: bound
//! from a QR token, online, dial commands received and reported on (over the WebSocket and over
//! HTTP), a recording uploaded, heartbeats missed and the phone back, a dial waiting for an
//! offline phone, never a command executed twice after a reconnect, and unbinding.

use std::time::Duration;

use serde_json::json;
use waihu_e2e::*;
use waihu_events::{pb, Decoded, Event};
use waihu_provider::sim::Simulator;

const WAIT: Duration = Duration::from_secs(15);

/// Every stored event of a call, in order.
async fn call_events(cluster: &Cluster, call: &str) -> Vec<waihu_events::RecordedEvent> {
    let rows: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT envelope FROM events WHERE stream_id = $1 ORDER BY position")
            .bind(format!("call-{call}"))
            .fetch_all(&cluster.env.pool)
            .await
            .expect("store");
    rows.iter()
        .map(|(e,)| {
            Decoded::decode(e)
                .expect("decodes")
                .known()
                .expect("known")
                .clone()
        })
        .collect()
}

async fn events_until(
    cluster: &Cluster,
    call: &str,
    last: &'static str,
) -> Vec<waihu_events::RecordedEvent> {
    waihu_testkit::eventually(WAIT, last, || async {
        let e = call_events(cluster, call).await;
        e.iter().any(|e| e.type_name() == last).then_some(e)
    })
    .await
}

fn shape(events: &[waihu_events::RecordedEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.type_name()).collect()
}

/// Dials `number` on the phone's line. The dialer learns of a new line from its event, a moment
/// after the phone was bound: until then it answers NOT_FOUND for the line (seen once in a
/// loaded run), which a client retries.
async fn dial(cluster: &Cluster, phone: &Phone, number: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let reply = cluster
            .dialer()
            .await
            .dial(pb::DialRequest {
                phone: number.into(),
                line_id: phone.line_id.clone(),
                customer_name: "张三".into(),
                customer_id: "cust_001".into(),
                ..Default::default()
            })
            .await;
        match reply {
            Ok(r) => return r.into_inner().call_id,
            Err(s) if s.code() == tonic::Code::NotFound && started.elapsed() < WAIT => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(s) => panic!("dial: {s:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bound_phone_dials_reports_and_uploads_and_the_call_comes_out_whole() {
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    // The QR code: the seed's payload.
    let binding = cluster.device_binding("user_001").await;
    let qr: serde_json::Value = serde_json::from_str(&binding.qr_payload).expect("QR JSON");
    assert_eq!(qr["action"], "bind_device");
    assert_eq!(qr["userId"], "user_001");
    assert_eq!(qr["token"], binding.token.as_str());
    assert!(qr["serverUrl"]
        .as_str()
        .expect("serverUrl")
        .starts_with("ws://"));
    assert!(qr["timestamp"].as_i64().expect("timestamp") > 0);

    let phone = cluster
        .bind_phone("user_001", "android-abc", "13912345678", "android")
        .await;
    // The line of the phone: one call at a time, its number as caller number.
    let line = cluster
        .providers()
        .await
        .get_line(pb::LineRequest {
            line_id: phone.line_id.clone(),
        })
        .await
        .expect("line")
        .into_inner();
    assert_eq!((line.provider.as_str(), line.max_concurrent), ("mobile", 1));
    assert_eq!(line.caller_number, "+8613912345678");

    let mut app = phone.connect().await.expect("connects");
    app.send("DEVICE_ONLINE", "m-1", json!({})).await;
    app.send("HEARTBEAT", "m-2", json!({})).await;
    let ack = app.expect("HEARTBEAT_ACK", WAIT).await;
    assert_eq!(ack["messageId"], "m-2");
    assert!(cluster.device(phone.id).await.online);

    let call = dial(&cluster, &phone, "13800000001").await;
    let cmd = app.expect("DIAL_COMMAND", WAIT).await;
    assert_eq!(cmd["data"]["callId"], call.as_str());
    assert_eq!(cmd["data"]["customerPhone"], "13800000001");
    assert_eq!(cmd["data"]["customerName"], "张三");
    assert_eq!(cmd["data"]["customerId"], "cust_001");
    assert!(cmd["messageId"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(cmd["timestamp"].as_i64().is_some());

    app.send(
        "CALL_STATUS",
        "m-3",
        json!({"callId": call, "status": "ringing"}),
    )
    .await;
    // A recording before the call is over is refused (the release must come first).
    events_until(&cluster, &call, "CallRinging").await;
    let (status, reply) = phone.upload(&call, &[1u8; 16]).await;
    assert_eq!(status, 409, "{reply}");
    app.send(
        "CALL_STATUS",
        "m-4",
        json!({"callId": call, "status": "connected"}),
    )
    .await;
    // The app says it again after a hiccup: taken once.
    app.send(
        "CALL_STATUS",
        "m-4",
        json!({"callId": call, "status": "connected"}),
    )
    .await;
    app.send(
        "CALL_END",
        "m-5",
        json!({"callId": call, "status": "connected", "duration": 42, "hasRecording": true,
               "startTime": "2026-11-22T10:30:00.000Z", "endTime": "2026-11-22T10:30:42.000Z"}),
    )
    .await;
    let events = events_until(&cluster, &call, "CallReleased").await;
    assert_eq!(
        shape(&events),
        vec![
            "CallRequested",
            "CallDialing",
            "CallRinging",
            "CallAnswered",
            "CallReleased"
        ]
    );
    let Event::CallReleased(r) = &events[4].event else {
        unreachable!()
    };
    assert!(r.answered);
    assert_eq!(r.talk_ms, 42_000);
    assert_eq!(r.cause.as_ref().map(|c| c.q850), Some(16));

    // The recording, uploaded as the seed's multipart form.
    let audio = vec![7u8; 4096];
    let (status, reply) = phone.upload(&call, &audio).await;
    assert_eq!(status, 200, "{reply}");
    let events = events_until(&cluster, &call, "RecordingAvailable").await;
    let Some(Event::RecordingAvailable(rec)) = events.last().map(|e| &e.event) else {
        unreachable!()
    };
    assert_eq!(rec.bytes, 4096);
    assert_eq!(rec.source, "mobile");
    let path = rec.uri.strip_prefix("file://").expect("file uri");
    assert_eq!(std::fs::read(path).expect("kept"), audio);
    assert_eq!(reply["recordingUrl"], rec.uri.as_str());

    // Reports of a call that is not the phone's are refused; without the token, 401.
    let other = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        phone
            .post("end", json!({"callId": other, "status": "busy"}))
            .await
            .0,
        404
    );
    let mut stranger = phone.clone();
    stranger.token = "not-a-token".into();
    assert_eq!(
        stranger
            .post("end", json!({"callId": call, "status": "busy"}))
            .await
            .0,
        401
    );
    assert_eq!(stranger.connect().await.err(), Some(401));
    // A QR token binds once; bad fields are named.
    let bind = |token: &str, os: &str| json!({"token": token, "deviceId": "x", "phoneNumber": "13912340001", "osType": os});
    let (status, reply) = cluster
        .bind_phone_raw(bind(&binding.token, "symbian"))
        .await;
    assert_eq!(status, 400);
    assert!(
        reply["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("osType")),
        "{reply}"
    );
    let (status, reply) = cluster
        .bind_phone_raw(bind(&binding.token, "android"))
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = cluster
        .bind_phone_raw(bind(&binding.token, "android"))
        .await;
    assert_eq!(status, 401);
    // Once only.
    assert_eq!(phone.upload(&call, &audio).await.0, 409);

    // The same phone bound again: the earlier binding ends (its socket told, its token dead),
    // the new one has its own line.
    let again = cluster
        .bind_phone("user_001", "android-abc", "13912345678", "android")
        .await;
    assert_ne!(again.id, phone.id);
    app.expect("DEVICE_UNBIND", WAIT).await;
    assert_eq!(phone.connect().await.err(), Some(401));
    let mut app = again.connect().await.expect("the new binding connects");
    app.send("HEARTBEAT", "m-9", json!({})).await;
    app.expect("HEARTBEAT_ACK", WAIT).await;
    app.close().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_on_a_phone_line_places_one_call_at_a_time_with_exact_statistics() {
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let phone = cluster
        .bind_phone("user_002", "android-camp", "13912340000", "android")
        .await;
    let mut app = phone.connect().await.expect("connects");
    let list = phones(6, 5);
    let mut tasks = cluster.tasks().await;
    let mut s = spec("phone-campaign", 0, 0);
    s.caller_line = phone.line_id.clone();
    let task = create_with_contacts(&mut tasks, s, &list).await;
    start(&mut tasks, &task).await;
    // The app answers each command in turn, over HTTP this time; never two at once.
    let outcomes = [
        "connected",
        "busy",
        "missed",
        "rejected",
        "connected",
        "busy",
    ];
    for (i, outcome) in outcomes.iter().enumerate() {
        let cmd = app.expect("DIAL_COMMAND", WAIT).await;
        let call = cmd["data"]["callId"].as_str().expect("callId").to_string();
        assert!(
            app.quiet(Duration::from_millis(300)).await,
            "a second command while one is out"
        );
        let (st, _) = phone
            .post("status", json!({"callId": call, "status": "ringing"}))
            .await;
        assert_eq!(st, 200);
        let duration = if *outcome == "connected" {
            30 + i as u64
        } else {
            0
        };
        let (st, body) = phone
            .post(
                "end",
                json!({"callId": call, "status": outcome, "duration": duration}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    let stats = wait_stats_settled(&cluster, &task, 6, Duration::from_secs(60)).await;
    assert_eq!(stats.calls_placed, 6);
    assert_eq!(stats.calls_answered, 2);
    assert_eq!(stats.total_talk_seconds, 30 + 34);
    let causes: std::collections::BTreeMap<u32, u64> = stats
        .hangup_causes
        .iter()
        .map(|c| (c.q850, c.count))
        .collect();
    assert_eq!(causes, [(16, 2), (17, 2), (19, 1), (21, 1)].into());
    app.close().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offline_phone_gets_its_command_when_back_never_twice_and_one_that_stays_away_releases_the_call(
) {
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let phone = cluster
        .bind_phone("user_003", "android-off", "13912341111", "android")
        .await;
    assert!(!cluster.device(phone.id).await.online);
    // Dialed while offline: the command waits.
    let call = dial(&cluster, &phone, "13800000002").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut app = phone.connect().await.expect("connects");
    let first = app.expect("DIAL_COMMAND", WAIT).await;
    assert_eq!(first["data"]["callId"], call.as_str());
    // The connection drops before the app reports: on reconnect the same command comes again,
    // with the same messageId (the app drops it as seen), and only that one.
    app.close().await;
    let mut app = phone.connect().await.expect("reconnects");
    let again = app.expect("DIAL_COMMAND", WAIT).await;
    assert_eq!(again["messageId"], first["messageId"]);
    assert!(app.quiet(Duration::from_millis(500)).await);
    app.send("CALL_END", "e-1", json!({"callId": call, "status": "busy"}))
        .await;
    let events = events_until(&cluster, &call, "CallReleased").await;
    assert_eq!(
        shape(&events),
        vec!["CallRequested", "CallDialing", "CallReleased"]
    );
    // Reported on: not sent again on the next reconnect.
    app.close().await;
    let mut app = phone.connect().await.expect("reconnects");
    assert!(app.quiet(Duration::from_millis(800)).await);
    app.close().await;

    // A phone that never comes back within device_dial_wait (4 s here): released, 41.
    let call = dial(&cluster, &phone, "13800000003").await;
    let events = events_until(&cluster, &call, "CallReleased").await;
    let Event::CallReleased(r) = &events.last().expect("events").event else {
        unreachable!()
    };
    let cause = r.cause.clone().expect("cause");
    assert_eq!(
        (cause.q850, cause.raw.as_str()),
        (41, "mobile:device-offline")
    );
    // And the withdrawn command is not delivered when it does come back.
    let mut app = phone.connect().await.expect("connects");
    assert!(app.quiet(Duration::from_millis(800)).await);
    app.close().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missed_heartbeats_make_a_phone_offline_then_disconnected_and_unbinding_ends_it() {
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let phone = cluster
        .bind_phone("user_004", "ios-1", "13912342222", "ios")
        .await;
    let mut app = phone.connect().await.expect("connects");
    app.send("HEARTBEAT", "h-1", json!({})).await;
    app.expect("HEARTBEAT_ACK", WAIT).await;
    assert!(cluster.device(phone.id).await.online);
    // No heartbeat: offline after 2 s (device_offline_s here), the socket closed after 3 s.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let d = cluster.device(phone.id).await;
    assert!(!d.online, "offline after the offline time");
    assert!(d.last_heartbeat.is_some());
    assert!(
        app.recv(Duration::from_secs(5)).await.is_none(),
        "disconnected"
    );
    // Back: online again; an iOS phone's dial says the user must confirm it.
    let mut app = phone.connect().await.expect("reconnects");
    app.send("HEARTBEAT", "h-2", json!({})).await;
    app.expect("HEARTBEAT_ACK", WAIT).await;
    assert!(cluster.device(phone.id).await.online);
    let call = dial(&cluster, &phone, "13800000004").await;
    app.expect("DIAL_COMMAND", WAIT).await;
    let events = events_until(&cluster, &call, "CallDialing").await;
    let Event::CallDialing(d) = &events[1].event else {
        unreachable!()
    };
    assert!(d.provider_report.contains("iOS"), "{}", d.provider_report);
    // Hung up from the PC while it rings: the phone is told CANCEL_DIAL.
    cluster
        .dialer()
        .await
        .hangup(pb::HangupRequest {
            call_id: call.clone(),
        })
        .await
        .expect("hangup");
    let cancel = app.expect("CANCEL_DIAL", WAIT).await;
    assert_eq!(cancel["data"]["callId"], call.as_str());

    // Unbound: told DEVICE_UNBIND and closed; its token is dead; its line disabled; logged.
    let listed = cluster
        .providers()
        .await
        .list_devices(pb::ListDevicesRequest {
            user_id: "user_004".into(),
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.devices.len(), 1);
    cluster
        .providers()
        .await
        .unbind_device(pb::DeviceRequest { id: phone.id })
        .await
        .expect("unbind");
    app.expect("DEVICE_UNBIND", WAIT).await;
    assert!(app.recv(WAIT).await.is_none());
    assert_eq!(phone.connect().await.err(), Some(401));
    let line = cluster
        .providers()
        .await
        .get_line(pb::LineRequest {
            line_id: phone.line_id.clone(),
        })
        .await
        .expect("line")
        .into_inner();
    assert!(!line.enabled);
    let logged: Vec<(String,)> = waihu_testkit::eventually(WAIT, "bind log", || async {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT event_type FROM events WHERE stream_id LIKE 'device-%' ORDER BY position",
        )
        .fetch_all(&cluster.env.pool)
        .await
        .ok()?;
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(
        logged,
        vec![("DeviceBound".into(),), ("DeviceUnbound".into(),)]
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_serves_the_seeds_device_routes_and_sends_the_app_on_to_the_adapter() {
    let cluster = Cluster::start(Simulator::default(), vec![]).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let gateway = start_gateway(&cluster, stop.clone()).await;
    let calls = HttpApi::new(format!("http://{}/api/v1/calls", gateway.addr));
    // The gateway's tenant is the token's: the phone is bound to "default", as the cluster's.
    let token = waihu_e2e::token("default", "pc-user", &["admin:devices"]);

    let (code, qr) = calls
        .call_raw(
            "POST",
            "/device/bindQRCode",
            Some(r#"{"userId":"user_009"}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{qr}");
    assert!(qr["qrCodeUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("data:image/png;base64,")));
    let payload: serde_json::Value =
        serde_json::from_str(qr["qrCodeData"].as_str().expect("qrCodeData")).expect("JSON");
    assert_eq!(payload["userId"], "user_009");

    // The app posts its bind to the gateway, which sends it on (308) to the adapter.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/calls/device/bind", gateway.addr))
        .header("content-type", "application/json")
        .body(
            json!({"token": payload["token"], "deviceId": "gw-phone", "phoneNumber": "13912347777",
                   "osType": "android", "deviceName": "前台"})
            .to_string(),
        )
        .send()
        .await
        .expect("reachable");
    assert_eq!(r.status().as_u16(), 200);
    let bound: serde_json::Value =
        serde_json::from_str(&r.text().await.expect("body")).expect("JSON");
    let id = bound["id"].as_u64().expect("id");

    let (code, list) = calls
        .call_raw("GET", "/device/list?userId=user_009", None, Some(&token))
        .await;
    assert_eq!(code, 200, "{list}");
    let devices = list["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["id"].as_u64(), Some(id));
    assert_eq!(devices[0]["onlineStatus"], "offline");
    assert_eq!(devices[0]["osType"], "android");

    let phone = Phone {
        id,
        device_id: "gw-phone".into(),
        token: bound["authToken"].as_str().expect("authToken").into(),
        line_id: bound["lineId"].as_str().expect("lineId").into(),
        websocket_url: bound["websocketUrl"].as_str().expect("websocketUrl").into(),
        http: format!("http://{}", cluster.provider_http),
    };
    let mut app = phone.connect().await.expect("connects");
    app.send("HEARTBEAT", "g-1", json!({})).await;
    app.expect("HEARTBEAT_ACK", WAIT).await;
    let (code, st) = calls
        .call_raw("GET", &format!("/device/{id}/status"), None, Some(&token))
        .await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["online"], true);
    assert!(st["lastHeartbeat"].is_string());

    // Click-to-dial through the phone (seed 003 /calls/dial, callMethod mobile).
    let dialer = waihu_e2e::token("default", "pc-user", &["lead:call:dial"]);
    let (code, d) = calls
        .call_raw(
            "POST",
            "/dial",
            Some(
                &json!({"customerPhone": "13800000009", "callMethod": "mobile", "deviceId": id})
                    .to_string(),
            ),
            Some(&dialer),
        )
        .await;
    assert_eq!(code, 200, "{d}");
    let cmd = app.expect("DIAL_COMMAND", WAIT).await;
    assert_eq!(cmd["data"]["callId"], d["callId"]);

    let (code, v) = calls
        .call_raw("DELETE", &format!("/device/{id}"), None, Some(&token))
        .await;
    assert_eq!((code, v["success"].clone()), (200, json!(true)), "{v}");
    app.expect("DEVICE_UNBIND", WAIT).await;
    let (code, list) = calls
        .call_raw("GET", "/device/list", None, Some(&token))
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["devices"], json!([]));
    stop.cancel();
    let _ = gateway.wait().await;
    cluster.shutdown().await;
}
