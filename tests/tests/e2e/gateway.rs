//! The HTTP gateway answers seed 002's routes with the seed's shapes: every response's JSON
//! field set is compared with the seed's examples, status codes with the seed's list (201, 400,
//! 401, 403, 404, 409, 422, 501), through a real HTTP client against the gateway in front of
//! the running services.

use std::{collections::BTreeSet, time::Duration};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use waihu_e2e::*;
use waihu_events::pb;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// The seed's examples (002 §2.1-2.8), field for field.
const CREATED: &[&str] = &["taskId", "name", "status", "createTime"];
const LISTED_TASK: &[&str] = &[
    "taskId",
    "name",
    "description",
    "status",
    "scheduledTime",
    "createTime",
    "completedTime",
    "totalCalls",
    "successfulCalls",
    "intendedCustomers",
];
const DETAIL_EXTRA: &[&str] = &[
    "phoneNumbers",
    "callScript",
    "callerId",
    "deviceIds",
    "callRecords",
];
const DETAIL_RECORD: &[&str] = &[
    "recordId",
    "phoneNumber",
    "startTime",
    "duration",
    "analysisStatus",
];
const RECORD: &[&str] = &[
    "recordId",
    "taskId",
    "phoneNumber",
    "startTime",
    "endTime",
    "duration",
    "recordingUrl",
    "analysisStatus",
    "analysisResult",
];
const PAGE: &[&str] = &["records", "total", "size", "current", "pages"];
const STATUS: &[&str] = &["taskId", "status"];

/// Waits until the record service has projected the end of the (only) task of the default
/// tenant, so its statistics and records are final.
async fn record_projection_ended(cluster: &Cluster) {
    let tasks = cluster
        .tasks()
        .await
        .list_tasks(as_tenant("default", pb::ListTasksRequest::default()))
        .await
        .expect("list tasks")
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let mut watch = cluster
        .stats()
        .await
        .watch_task_stats(as_tenant(
            "default",
            pb::GetTaskStatsRequest {
                task_id: tasks[0].task_id.clone(),
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(s) = watch.message().await.expect("watch stream") {
            if s.ended {
                return;
            }
        }
        panic!("the watch closed before the task ended");
    })
    .await
    .expect("the record service to project the end of the task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002_routes_answer_in_the_seeds_shapes_and_codes() {
    let cluster = Cluster::start(fast_sim(17), one_line(20)).await;
    let stop = CancellationToken::new();
    let gateway = start_gateway(&cluster, stop.clone()).await;
    let api = HttpApi::new(format!("http://{}/api/v1/lead-generation", gateway.addr));
    let token = waihu_e2e::token("default", "crm", waihu_auth::ALL_PERMISSIONS);

    // 2.1 create: 201, and the task dials its numbers.
    let phones = ["13800000001", "13800000002", "13900000003", "02161234567"];
    let body = json!({
        "name": "新产品推广外呼任务",
        "description": "针对潜在客户进行新产品推广",
        "phoneNumbers": phones,
        "callScript": "您好，这里是存客宝，...",
        "callerId": "0592-1234567",
        "deviceIds": [1, 2],
        "tags": ["高意向", "新客"],
        "source": "电话外呼"
    })
    .to_string();
    let (code, v) = api
        .call("POST", "/call-tasks", Some(&body), Some(&token))
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(keys(&v["data"]), set(CREATED), "{v}");
    let task = v["data"]["taskId"].as_u64().expect("numeric taskId");

    waihu_testkit::eventually(Duration::from_secs(60), "the task to complete", || {
        let api = &api;
        let token = &token;
        async move {
            let (_, v) = api
                .call("GET", &format!("/call-tasks/{task}"), None, Some(token))
                .await;
            (v["data"]["status"] == "COMPLETED" && v["data"]["totalCalls"].as_u64() >= Some(4))
                .then_some(v)
        }
    })
    .await;
    // The task service says COMPLETED from its own view; the figures come from the record
    // service's projection, which may still be applying the last calls. Its end of the task
    // comes after every call event of it in the store.
    record_projection_ended(&cluster).await;
    let (code, detail) = api
        .call("GET", &format!("/call-tasks/{task}"), None, Some(&token))
        .await;
    assert_eq!(code, 200, "{detail}");
    // 2.3 detail.
    let d = &detail["data"];
    let want: BTreeSet<String> = set(LISTED_TASK)
        .union(&set(DETAIL_EXTRA))
        .cloned()
        .collect();
    assert_eq!(keys(d), want, "{detail}");
    assert_eq!(d["phoneNumbers"], json!(phones));
    assert_eq!(d["callScript"], "您好，这里是存客宝，...");
    assert_eq!(d["deviceIds"], json!([1, 2]));
    let calls = d["callRecords"].as_array().expect("callRecords");
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| keys(c) == set(DETAIL_RECORD)),
        "{detail}"
    );

    // 2.2 list.
    let (code, v) = api
        .call(
            "GET",
            "/call-tasks?page=1&size=10&name=推广&sort=createTime&order=desc",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(keys(&v["data"]), set(PAGE));
    assert_eq!(v["data"]["total"], 1);
    assert_eq!(keys(&v["data"]["records"][0]), set(LISTED_TASK), "{v}");

    // 2.4 / 2.5 call records.
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records?taskId={task}&page=1&size=2"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(keys(&v["data"]), set(PAGE));
    assert_eq!(v["data"]["total"], d["totalCalls"]);
    let first = &v["data"]["records"][0];
    assert_eq!(keys(first), set(RECORD), "{v}");
    assert_eq!(first["taskId"], json!(task));
    let record = first["recordId"].as_u64().expect("numeric recordId");
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records/{record}"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(keys(&v["data"]), set(RECORD));
    // 2.4's filters and sorts: analysis status (every answered call waits for its analysis,
    // no call has one yet), duration descending.
    let answered = d["successfulCalls"].as_u64().expect("successfulCalls");
    for (status, want) in [("PENDING", answered), ("COMPLETED", 0), ("failed", 0)] {
        let (code, v) = api
            .call(
                "GET",
                &format!("/call-records?taskId={task}&analysisStatus={status}&size=500"),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["data"]["total"], json!(want), "{status}: {v}");
        if status == "PENDING" {
            let records = v["data"]["records"].as_array().expect("records");
            assert!(
                records.iter().all(|r| r["analysisStatus"] == "PENDING"),
                "{v}"
            );
        }
    }
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records?taskId={task}&sort=duration&order=desc&size=500"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let durations: Vec<u64> = v["data"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["duration"].as_u64().expect("duration"))
        .collect();
    assert!(durations.windows(2).all(|w| w[0] >= w[1]), "{durations:?}");
    for bad in ["analysisStatus=DONE", "sort=phone", "order=up"] {
        let (code, v) = api
            .call(
                "GET",
                &format!("/call-records?taskId={task}&{bad}"),
                None,
                Some(&token),
            )
            .await;
        assert_eq!(code, 400, "{bad}: {v}");
    }
    // 2.6: this cluster's simulator keeps no recordings: no recording to give.
    let (code, v) = api
        .call(
            "GET",
            &format!("/call-records/{record}/recording"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("no stored recording"),
        "{v}"
    );

    // 2.7 / 2.8 on a finished task: 409.
    let start = json!({"action": "START"}).to_string();
    let (code, _) = api
        .call(
            "PUT",
            &format!("/call-tasks/{task}/status"),
            Some(&start),
            Some(&token),
        )
        .await;
    assert_eq!(code, 409);
    let (code, _) = api
        .call(
            "PUT",
            &format!("/call-tasks/{task}/cancel"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 409);

    // A scheduled task: stop, start, cancel.
    let later = json!({
        "name": "later",
        "phoneNumbers": ["13700000001"],
        "callScript": "hi",
        "scheduledTime": "2099-01-01T00:00:00Z"
    })
    .to_string();
    let (code, v) = api
        .call("POST", "/call-tasks", Some(&later), Some(&token))
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["data"]["status"], "SCHEDULED");
    let later = v["data"]["taskId"].as_u64().expect("taskId");
    let stop_it = json!({"action": "STOP"}).to_string();
    let (code, v) = api
        .call(
            "PUT",
            &format!("/call-tasks/{later}/status"),
            Some(&stop_it),
            Some(&token),
        )
        .await;
    assert_eq!((code, keys(&v["data"])), (200, set(STATUS)), "{v}");
    assert_eq!(v["data"]["status"], "STOPPED");
    let (code, v) = api
        .call(
            "PUT",
            &format!("/call-tasks/{later}/status"),
            Some(&start),
            Some(&token),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["status"], "SCHEDULED");
    let (code, v) = api
        .call(
            "PUT",
            &format!("/call-tasks/{later}/cancel"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(
        (code, v["data"]["status"].clone()),
        (200, json!("CANCELLED")),
        "{v}"
    );

    // Refusals. The token is checked before the request is read: no token, or one without the
    // route's permission, is refused whatever the body.
    let (code, _) = api
        .call("POST", "/call-tasks", Some("{not json"), None)
        .await;
    assert_eq!(code, 401);
    let (code, v) = api.call("GET", "/call-tasks?status=NOPE", None, None).await;
    assert_eq!(code, 401, "{v}");
    let (code, _) = api
        .call("POST", "/call-tasks", Some("{not json"), Some(&token))
        .await;
    assert_eq!(code, 400);
    let (code, v) = api
        .call(
            "POST",
            "/call-tasks",
            Some(r#"{"phoneNumbers":["13800000001"],"callScript":"x"}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 422);
    assert!(v["message"].as_str().unwrap_or("").contains("name"), "{v}");
    let (code, v) = api
        .call(
            "POST",
            "/call-tasks",
            Some(r#"{"name":"n","phoneNumbers":["13800000001","12"],"callScript":"x"}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 422);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("phoneNumbers[1]"),
        "{v}"
    );
    let (code, _) = api
        .call(
            "PUT",
            &format!("/call-tasks/{task}/status"),
            Some(r#"{"action":"JUMP"}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 422);
    let (code, _) = api
        .call("GET", "/call-tasks/999999999", None, Some(&token))
        .await;
    assert_eq!(code, 404);
    let (code, _) = api
        .call("GET", "/call-tasks?status=NOPE", None, Some(&token))
        .await;
    assert_eq!(code, 400);
    let forged = format!("{token}x");
    let (code, _) = api.call("GET", "/call-tasks", None, Some(&forged)).await;
    assert_eq!(code, 401);
    let viewer = waihu_e2e::token("default", "crm", &["lead:call:view"]);
    let (code, v) = api
        .call("POST", "/call-tasks", Some("{}"), Some(&viewer))
        .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("lead:call:create"),
        "{v}"
    );
    // Another tenant sees none of it.
    let other = waihu_e2e::token("beta", "crm", waihu_auth::ALL_PERMISSIONS);
    let (code, _) = api
        .call("GET", &format!("/call-tasks/{task}"), None, Some(&other))
        .await;
    assert_eq!(code, 404);
    let (code, _) = api
        .call(
            "GET",
            &format!("/call-records/{record}"),
            None,
            Some(&other),
        )
        .await;
    assert_eq!(code, 404);
    let (_, v) = api.call("GET", "/call-tasks", None, Some(&other)).await;
    assert_eq!(v["data"]["total"], 0);

    stop.cancel();
    gateway.wait().await.expect("gateway stopped");
    cluster.shutdown().await;
}

// Seed 000's examples (§2.1-2.4), field for field.
const CALLER_TASK: &[&str] = &[
    "id",
    "tid",
    "user_id",
    "group_id",
    "task_name",
    "talking_id",
    "recall_num",
    "recall_interval",
    "call_limit",
    "number_city_code",
    "number_city_limit",
    "priority",
    "status",
    "created_at",
    "updated_at",
];
const CALLER_NUMBER: &[&str] = &[
    "id",
    "user_id",
    "task_id",
    "resume_id",
    "name",
    "phone",
    "status",
    "is_deleted",
    "call_begin_time",
    "call_time",
    "call_result",
    "call_voice_url",
    "created_at",
    "updated_at",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_routes_answer_in_the_seeds_shapes_and_codes() {
    let cluster = Cluster::start(fast_sim(23), one_line(20)).await;
    cluster.add_lines("1001").await;
    let stop = CancellationToken::new();
    let gateway = start_gateway(&cluster, stop.clone()).await;
    let api = HttpApi::new(format!("http://{}/api/caller", gateway.addr));
    let token = waihu_e2e::token("1001", "42", waihu_auth::ALL_PERMISSIONS);

    // 1. addTask, as the seed's example sends it (plus a third number given as a JSON number).
    let body = json!({
        "task_name": "任务名称",
        "talking_id": 1,
        "list": [
            {"resume_id": 1, "name": "张三", "phone": "13899990000"},
            {"resume_id": 2, "name": "李四", "phone": "13899990001"},
            {"resume_id": 3, "name": "王五", "phone": 13899990002u64}
        ],
        "priority": 0
    })
    .to_string();
    let (code, v) = api.call_caller("/addTask", Some(&body), Some(&token)).await;
    assert_eq!(code, 200, "{v}");
    let task = v["results"].as_u64().expect("the task's number");

    // 2. listTask with no body at all, as the seed calls it.
    let (code, v) = api.call_caller("/listTask", None, Some(&token)).await;
    assert_eq!(code, 200, "{v}");
    let listed = v["results"].as_array().expect("an array");
    let t = listed
        .iter()
        .find(|t| t["id"] == task)
        .expect("the new task is listed");
    assert_eq!(keys(t), set(CALLER_TASK), "{t}");
    assert_eq!(
        t["tid"], 1001,
        "a numeric tenant id is the seed's integer tid"
    );
    assert_eq!(t["user_id"], 42, "the creating user");
    assert_eq!(t["task_name"], "任务名称");
    assert_eq!(t["talking_id"], 1);

    // 3. getTaskDetail once every number is called.
    let detail = waihu_testkit::eventually(Duration::from_secs(60), "the task to complete", || {
        let (api, token) = (&api, &token);
        async move {
            let body = json!({ "task_id": task }).to_string();
            let (_, v) = api
                .call_caller("/getTaskDetail", Some(&body), Some(token))
                .await;
            (v["results"]["status"] == 4).then_some(v)
        }
    })
    .await;
    let d = &detail["results"];
    let mut want = set(CALLER_TASK);
    want.insert("list".into());
    assert_eq!(keys(d), want, "{detail}");
    let list = d["list"].as_array().expect("list");
    assert_eq!(list.len(), 3);
    for n in list {
        assert_eq!(keys(n), set(CALLER_NUMBER), "{n}");
        assert_eq!(n["status"], 3, "called: {n}");
        assert_eq!(n["task_id"], task);
        assert!(n["call_result"]
            .as_u64()
            .is_some_and(|r| (1..=5).contains(&r)));
        let begin = n["call_begin_time"].as_str().expect("time");
        assert!(
            begin.len() == 19 && !begin.starts_with("0000"),
            "a called number has its call time: {n}"
        );
    }
    assert_eq!(list[0]["name"], "张三");
    assert_eq!(list[0]["resume_id"], 1);
    assert_eq!(list[2]["phone"], "13899990002");

    // 4. getCallerDetail: the calls of one number (its phone as a JSON number, as in the seed).
    let body = json!({ "task_id": task, "phone": 13899990001u64 }).to_string();
    let (code, v) = api
        .call_caller("/getCallerDetail", Some(&body), Some(&token))
        .await;
    assert_eq!(code, 200, "{v}");
    let calls = v["results"].as_array().expect("an array");
    assert!(!calls.is_empty(), "{v}");
    assert!(calls.iter().all(|c| c["phone"] == "13899990001"), "{v}");

    // Errors in the seed's envelope: a missing token, a bad field named, an unknown task.
    let (code, v) = api.call_caller("/listTask", None, None).await;
    assert_eq!(code, 401, "{v}");
    assert!(!v["err_msg"].as_str().unwrap_or("").is_empty());
    let (code, v) = api
        .call_caller(
            "/addTask",
            Some(r#"{"task_name":"x","list":[{"phone":"12345"}]}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["err_msg"]
            .as_str()
            .unwrap_or("")
            .contains("list[0].phone"),
        "{v}"
    );
    let (code, v) = api
        .call_caller(
            "/getTaskDetail",
            Some(r#"{"task_id": 999999}"#),
            Some(&token),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    let (code, v) = api
        .call_caller("/getTaskDetail", Some("not json"), Some(&token))
        .await;
    assert_eq!(code, 400, "{v}");
    let viewer = waihu_e2e::token("1001", "42", &["lead:call:view"]);
    let (code, v) = api
        .call_caller("/addTask", Some(&body), Some(&viewer))
        .await;
    assert_eq!(code, 403, "{v}");

    stop.cancel();
    gateway.wait().await.expect("gateway stops");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_call_status_is_built_and_the_rest_says_501_after_auth() {
    let cluster = Cluster::start(fast_sim(31), one_line(20)).await;
    let stop = CancellationToken::new();
    let gateway = start_gateway(&cluster, stop.clone()).await;
    let root = format!("http://{}", gateway.addr);
    let calls = HttpApi::new(format!("{root}/api/v1/calls"));
    let lead = HttpApi::new(format!("{root}/api/v1/lead-generation"));
    let token = waihu_e2e::token("default", "crm", waihu_auth::ALL_PERMISSIONS);

    let body =
        json!({"name": "status", "phoneNumbers": ["13800000011"], "callScript": "hi"}).to_string();
    let (code, v) = lead
        .call("POST", "/call-tasks", Some(&body), Some(&token))
        .await;
    assert_eq!(code, 201, "{v}");
    let task = v["data"]["taskId"].as_u64().expect("task");
    let record = waihu_testkit::eventually(Duration::from_secs(60), "a released call", || {
        let (lead, token) = (&lead, &token);
        async move {
            let (_, v) = lead
                .call(
                    "GET",
                    &format!("/call-records?taskId={task}"),
                    None,
                    Some(token),
                )
                .await;
            v["data"]["records"]
                .as_array()?
                .iter()
                .find(|r| !r["endTime"].is_null())
                .and_then(|r| r["recordId"].as_u64())
        }
    })
    .await;

    // By record number, then by the UUID it answers with: the seed's four fields.
    let (code, v) = calls
        .call_raw("GET", &format!("/{record}/status"), None, Some(&token))
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        keys(&v),
        set(&["callId", "status", "duration", "startTime"]),
        "{v}"
    );
    assert_eq!(v["status"], "ended");
    let uuid = v["callId"].as_str().expect("callId").to_string();
    let (code, again) = calls
        .call_raw("GET", &format!("/{uuid}/status"), None, Some(&token))
        .await;
    assert_eq!((code, &again), (200, &v));
    let (code, v) = calls
        .call_raw(
            "GET",
            "/00000000-0000-0000-0000-000000000000/status",
            None,
            Some(&token),
        )
        .await;
    assert_eq!(code, 404, "{v}");
    assert_eq!(keys(&v), set(&["success", "message"]), "{v}");
    let (code, v) = calls
        .call_raw("GET", "/not-a-call/status", None, Some(&token))
        .await;
    assert_eq!(code, 400, "{v}");

    // Not built: 401 without a token, 403 without the permission, then 501 saying what is
    // missing; never a fake success.
    // (Dialing and hang-up are built: tests/tests/e2e/click_to_dial.rs.)
    for (method, path, body) in [("GET", "/lines", ""), ("POST", "/lines/7/test", "")] {
        let (code, v) = calls.call_raw(method, path, Some(body), None).await;
        assert_eq!(code, 401, "{method} {path}: {v}");
        let viewer = waihu_e2e::token("default", "crm", &["lead:call:view"]);
        let (code, v) = calls
            .call_raw(method, path, Some(body), Some(&viewer))
            .await;
        assert_eq!(code, 403, "{method} {path}: {v}");
        let (code, v) = calls.call_raw(method, path, Some(body), Some(&token)).await;
        assert_eq!(code, 501, "{method} {path}: {v}");
        assert_eq!(v["success"], false);
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("not built")),
            "{v}"
        );
    }

    stop.cancel();
    gateway.wait().await.expect("gateway stops");
    cluster.shutdown().await;
}
