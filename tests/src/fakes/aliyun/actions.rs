//! The fake CCC's actions behind the gateway: MakeCall, GetCallDetailRecord,
//! ListCallDetailRecords and ReleaseCall, answered in CCC's envelope.

use std::sync::atomic::Ordering;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{gateway, FakeAliyun, Fate, Placed, Scheme};

/// Now, in Unix milliseconds.
fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// A refusal by CCC itself: its envelope, the HTTP status repeated in the body.
fn ccc_error(status: StatusCode, code: &str, message: &str, params: &[&str]) -> Response {
    (
        status,
        [("content-type", "application/json;charset=utf-8")],
        json!({
            "RequestId": gateway::request_id(), "HttpStatusCode": status.as_u16(),
            "Code": code, "Message": message, "Params": params
        })
        .to_string(),
    )
        .into_response()
}

fn ccc_ok(data: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        json!({
            "RequestId": gateway::request_id(), "HttpStatusCode": 200, "Code": "OK",
            "Message": "", "Params": [], "Data": data
        })
        .to_string(),
    )
        .into_response()
}

/// A number as CCC takes it here: a mainland mobile or a landline with its trunk 0.
fn national_number(n: &str) -> bool {
    let b = n.as_bytes();
    let digits = b.iter().all(u8::is_ascii_digit);
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    let landline = b.first() == Some(&b'0') && (10..=12).contains(&b.len());
    digits && (mobile || landline)
}

pub(super) async fn rpc(
    State(fake): State<FakeAliyun>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = gateway::Request {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
    };
    let gateway::Checked {
        action,
        params,
        scheme,
        ..
    } = match fake.authenticate(&req) {
        Ok(c) => c,
        Err(refusal) => return refusal.response(),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let instance = get("InstanceId");
    if instance.is_empty() {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Blank",
            "The parameter InstanceId must not be null or empty.",
            &["InstanceId"],
        );
    }
    if instance != fake.instance_id {
        return ccc_error(
            StatusCode::NOT_FOUND,
            "NotExists.InstanceId",
            &format!("The specified instance {instance} does not exist."),
            &[&instance],
        );
    }
    *fake.lock().actions.entry(action.clone()).or_default() += 1;
    match action.as_str() {
        "MakeCall" => make_call(fake, &get, scheme),
        "GetCallDetailRecord" => get_cdr(&fake, &get("ContactId")),
        "ListCallDetailRecords" => list_cdrs(&fake, &get),
        "ReleaseCall" => release_call(&fake, &get("JobId")),
        _ => gateway::error(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        ),
    }
}

fn make_call(fake: FakeAliyun, get: &dyn Fn(&str) -> String, scheme: Scheme) -> Response {
    let (callee, caller, device, tags) =
        (get("Callee"), get("Caller"), get("DeviceId"), get("Tags"));
    for (name, value) in [
        ("Callee", &callee),
        ("Caller", &caller),
        ("DeviceId", &device),
    ] {
        if value.is_empty() {
            return ccc_error(
                StatusCode::BAD_REQUEST,
                "Parameter.Blank",
                &format!("The parameter {name} must not be null or empty."),
                &[name],
            );
        }
    }
    if !national_number(&callee) {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Invalid",
            &format!("The parameter Callee {callee} is invalid."),
            &["Callee"],
        );
    }
    if caller != fake.caller {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Invalid",
            &format!("The parameter Caller {caller} is invalid."),
            &["Caller"],
        );
    }
    if !get("TimeoutSeconds")
        .parse::<u32>()
        .is_ok_and(|t| (1..=300).contains(&t))
    {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Invalid",
            "The parameter TimeoutSeconds is invalid.",
            &["TimeoutSeconds"],
        );
    }
    if tags.len() > 128 {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Invalid",
            "The parameter Tags is longer than 128 bytes.",
            &["Tags"],
        );
    }
    let (idx, job) = {
        let mut g = fake.lock();
        g.make_call_requests += 1;
        let every = fake.throttle_every.load(Ordering::Relaxed);
        if every > 0 && g.make_call_requests.is_multiple_of(every) {
            g.throttled += 1;
            drop(g);
            return gateway::error(
                StatusCode::BAD_REQUEST,
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
        }
        let nth = crate::fakes::next_try(&mut g.tries, &callee);
        let (fate, delivery) = (fake.decide)(&callee, nth);
        let idx = g.calls.len();
        let job = if fate == Fate::Refused {
            String::new()
        } else {
            format!("job-{}", 6_570_007_401_392_000u64 + idx as u64)
        };
        let start_ms = now_ms();
        let ring_ms = if fate.rings() { 4_000 } else { 800 };
        let established_ms = if fate.answered() {
            start_ms + ring_ms
        } else {
            0
        };
        let release_ms = start_ms + ring_ms + fate.talk_s() * 1000;
        g.calls.push(Placed {
            job_id: job.clone(),
            callee: callee.clone(),
            caller: caller.clone(),
            tags: tags.clone(),
            scheme,
            fate: fate.clone(),
            delivery,
            nth,
            start_ms,
            established_ms,
            release_ms,
            cdr_ready: false,
            hung_up: false,
        });
        if !job.is_empty() {
            g.by_job.insert(job.clone(), idx);
        }
        (idx, job)
    };
    if job.is_empty() {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Invalid",
            &format!("The parameter Callee {callee} is invalid."),
            &["Callee"],
        );
    }
    tokio::spawn(fake.clone().play(idx));
    let channel = format!("ch-{}", uuid::Uuid::new_v4().simple());
    ccc_ok(json!({
        "ContextId": 1_000_000 + idx as u64,
        "CallContext": {
            "CallType": "OUTBOUND", "CallVariables": "", "InstanceId": fake.instance_id,
            "JobId": job,
            "ChannelContexts": [{
                "CallType": "OUTBOUND", "ChannelFlags": "", "ChannelId": channel,
                "ChannelState": "CREATED", "Destination": callee, "JobId": job,
                "MediaType": "AUDIO", "Originator": caller, "ReleaseInitiator": "",
                "ReleaseReason": "", "Timestamp": now_ms(), "UserExtension": "", "UserId": ""
            }]
        },
        "UserContext": {
            "BreakCode": "", "DeviceId": get("DeviceId"), "Extension": "",
            "InstanceId": fake.instance_id, "JobId": job, "OutboundScenario": true,
            "SignedSkillGroupIdList": [], "UserId": get("UserId"), "UserState": "TALKING",
            "WorkMode": "ON_SITE"
        }
    }))
}

/// A call's detail record as GetCallDetailRecord gives it (`CallDuration` an int).
fn cdr_json(fake: &FakeAliyun, c: &Placed) -> Value {
    json!({
        "ContactId": c.job_id, "ContactType": "OUTBOUND",
        "ContactDisposition": if c.fate.answered() { "Success" } else { "NoAnswer" },
        "CallingNumber": c.caller, "CalledNumber": c.callee,
        "CallerLocation": "上海", "CalleeLocation": "",
        "InstanceId": fake.instance_id,
        "StartTime": c.start_ms,
        "EstablishedTime": if c.established_ms > 0 { json!(c.established_ms) } else { Value::Null },
        "ReleaseTime": c.release_ms,
        "CallDuration": c.fate.talk_s(),
        "ReleaseInitiator": "customer",
        "ReleaseReason": c.fate.release_reason(),
        "OutsideNumberReleaseReason": "",
        "EarlyMediaState": if c.fate.answered() { "" } else { "NoAnswer" },
        "RecordingReady": c.fate.answered(),
        "AgentIds": "", "SkillGroupIds": "",
        "AgentEvents": [], "CustomerEvents": [], "IvrEvents": [], "QueueEvents": []
    })
}

fn get_cdr(fake: &FakeAliyun, contact: &str) -> Response {
    let g = fake.lock();
    match g.by_job.get(contact).map(|i| &g.calls[*i]) {
        Some(c) if c.cdr_ready => ccc_ok(cdr_json(fake, c)),
        _ => ccc_error(
            StatusCode::NOT_FOUND,
            "NotExists.ContactId",
            &format!("The specified contact {contact} does not exist."),
            &[contact],
        ),
    }
}

fn list_cdrs(fake: &FakeAliyun, get: &dyn Fn(&str) -> String) -> Response {
    let (page, size) = (get("PageNumber"), get("PageSize"));
    let (Ok(page), Ok(size)) = (page.parse::<usize>(), size.parse::<usize>()) else {
        return ccc_error(
            StatusCode::BAD_REQUEST,
            "Parameter.Invalid",
            "The parameters PageNumber and PageSize must be numbers.",
            &["PageNumber", "PageSize"],
        );
    };
    let g = fake.lock();
    let ready: Vec<&Placed> = g.calls.iter().filter(|c| c.cdr_ready).collect();
    let list: Vec<Value> = ready
        .iter()
        .skip(page.saturating_sub(1) * size)
        .take(size.min(100))
        .map(|c| {
            let mut v = cdr_json(fake, c);
            // ListCallDetailRecords spells the duration as a string.
            v["CallDuration"] = json!(c.fate.talk_s().to_string());
            v["TalkTime"] = json!(c.fate.talk_s());
            v
        })
        .collect();
    ccc_ok(json!({
        "List": list, "PageNumber": page, "PageSize": size, "TotalCount": ready.len()
    }))
}

fn release_call(fake: &FakeAliyun, job: &str) -> Response {
    let mut g = fake.lock();
    let Some(i) = g.by_job.get(job).copied() else {
        return ccc_error(
            StatusCode::NOT_FOUND,
            "NotExists.JobId",
            &format!("The specified job {job} does not exist."),
            &[job],
        );
    };
    g.releases.push(job.to_string());
    let c = &mut g.calls[i];
    if !c.cdr_ready {
        c.hung_up = true;
        c.release_ms = now_ms().max(c.established_ms.max(c.start_ms) + 1);
        c.cdr_ready = true;
    }
    ccc_ok(json!({
        "CallContext": {"InstanceId": fake.instance_id, "JobId": job, "CallType": "OUTBOUND",
                        "ChannelContexts": []}
    }))
}
