//! A local Tencent Cloud Contact Center (CCC, API 2020-02-10): the API host (`POST /`, the
//! action in `X-TC-Action`) with `CreateAutoCalloutTask`, `DescribeAutoCalloutTask`,
//! `DescribeAutoCalloutTasks`, `PauseAutoCalloutTask`, `ResumeAutoCalloutTask`,
//! `StopAutoCalloutTask` and `DescribeTelCdr`, every request's
//! TC3-HMAC-SHA256 signature checked here with the `hmac`/`sha2` crates (not the code under
//! test) and refused as CCC refuses (`Response.Error`, HTTP 200); and the data push: each call's
//! CDR POSTed as JSON to the application's push URL with `?action=cdr&version=1` under HTTP
//! basic auth, pushed again (up to 3 times) unless the reply is `{"ErrCode":0}`, plus a
//! recording push (`?action=record&version=1`) for some answered calls.
//!
//! What happens to each call is decided from its number and how often it was called. Some CDRs
//! are pushed twice (those without the numeric `EndStatus`, as the push doc lists only
//! `EndStatusString`), some late, some before the task's state says the call is over, and some
//! not at all, so only polling (the task, then `DescribeTelCdr`) finds their end; a CDR shows in
//! `DescribeTelCdr` a little after the callee's state turns final. Every decision is logged.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use base64::Engine;
use hmac::Mac;
use serde_json::{json, Value};
use sha2::Digest;

use super::{bind, deliver, digit, next_try, serve};

/// The API version the fake speaks.
pub const VERSION: &str = "2020-02-10";
/// How far a request's timestamp may be from now, as CCC allows.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// What the fake decided for one call, with the `EndStatus` it ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Rang `ring_s` seconds, answered, talked `talk_s` seconds: 1 `ok`.
    Answered { ring_s: u64, talk_s: u64 },
    /// Rang out: 202 `notAnswer`.
    NotAnswer,
    /// 206 `busy`, without ringing.
    Busy,
    /// 204 `powerOff`, without ringing.
    PowerOff,
    /// 205 `numberNotExist`, without ringing.
    NumberNotExist,
    /// Rang, then the callee rejected it: 203 `userReject`.
    UserReject,
    /// 208 `operatorError`, without ringing.
    OperatorError,
}

impl Fate {
    /// The CDR's `EndStatus` and `EndStatusString`.
    pub fn end_status(&self) -> (i64, &'static str) {
        match self {
            Fate::Answered { .. } => (1, "ok"),
            Fate::NotAnswer => (202, "notAnswer"),
            Fate::Busy => (206, "busy"),
            Fate::PowerOff => (204, "powerOff"),
            Fate::NumberNotExist => (205, "numberNotExist"),
            Fate::UserReject => (203, "userReject"),
            Fate::OperatorError => (208, "operatorError"),
        }
    }

    fn rings(&self) -> bool {
        matches!(
            self,
            Fate::Answered { .. } | Fate::NotAnswer | Fate::UserReject
        )
    }
}

/// How a call's CDR is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Once, when the call is over.
    InOrder,
    /// Twice (same `X-TCCC-PUSH-UUID`), and without the numeric `EndStatus`.
    Twice,
    /// Once, well after the call is over (polling has usually found it by then).
    Late,
    /// Once, before the task's state says the call is over.
    Early,
    /// Never: only polling learns the outcome.
    Silent,
}

/// One callee of one task the fake ran.
#[derive(Debug, Clone)]
pub struct Placed {
    pub task_id: u64,
    pub session_id: String,
    /// As CCC writes numbers (`0086…`).
    pub callee: String,
    pub caller: String,
    /// The `UUI` dialing set for this callee.
    pub uui: String,
    pub fate: Fate,
    pub delivery: Delivery,
    /// The callee's state: 0 initial, 1 answered, 2 not answered, 3 calling.
    pub state: u64,
    /// The task's state: 0 initial, 1 running, 2 completed, 4 terminated.
    pub task_state: u64,
    pub not_before: i64,
    pub not_after: Option<i64>,
    pub ivr_id: Option<i64>,
    pub ai_agent_id: Option<i64>,
    pub name: String,
    /// The call's CDR once it is over, and from when `DescribeTelCdr` shows it.
    pub cdr: Option<Value>,
    cdr_from: Option<Instant>,
    pub hung_up: bool,
}

/// One push the fake sent and the reply it got.
#[derive(Debug, Clone)]
pub struct PushReply {
    pub action: &'static str,
    pub session_id: String,
    /// 0 when the request failed.
    pub status: u16,
    pub body: String,
}

/// How one task runs: its callees start one after another, `pace` apart in running time (a
/// pause stops that clock; calls already started go on, as CCC documents).
#[derive(Debug, Clone)]
struct TaskRun {
    created: Instant,
    paused_since: Option<Instant>,
    paused_total: Duration,
    stopped: bool,
}

impl TaskRun {
    fn elapsed(&self, now: Instant) -> Duration {
        let paused = self.paused_total + self.paused_since.map_or(Duration::ZERO, |p| now - p);
        (now - self.created).saturating_sub(paused)
    }
}

#[derive(Default)]
struct Inner {
    runs: HashMap<u64, TaskRun>,
    /// Running time between two callees of a task starting (0: all at once).
    pace: Duration,
    /// How long after a call ends its CDR shows in `DescribeTelCdr`, when set (else
    /// `cdr_lag`).
    cdr_lag: Option<Duration>,
    calls: Vec<Placed>,
    by_task: HashMap<u64, Vec<usize>>,
    tries: HashMap<String, u32>,
    next_task: u64,
    refused: Vec<(String, String)>,
    requests: HashMap<String, u64>,
    pushes: Vec<PushReply>,
    push_url: Option<String>,
}

/// The decision rule: from the callee (as CCC writes it) and the how-many-th call to it.
pub type Decide = fn(&str, u32) -> (Fate, Delivery);

/// The default mix: four tenths answered; busy then answered; not answered; switched off;
/// number does not exist; rejected; a carrier error that clears on the second try. A tenth of
/// calls is never pushed, a tenth pushed twice, a tenth late, a tenth early.
pub fn default_decide(callee: &str, nth: u32) -> (Fate, Delivery) {
    let (d, d2) = (digit(callee, 0), digit(callee, 1));
    let fate = match (d, nth) {
        (0..=3, _) => Fate::Answered {
            ring_s: 1 + d2 % 4,
            talk_s: 5 + (d * 7 + d2 * 3) % 50,
        },
        (4, 1) => Fate::Busy,
        (4, _) => Fate::Answered {
            ring_s: 2,
            talk_s: 9,
        },
        (5, _) => Fate::NotAnswer,
        (6, _) => Fate::PowerOff,
        (7, _) => Fate::NumberNotExist,
        (8, _) => Fate::UserReject,
        (_, 1) => Fate::OperatorError,
        _ => Fate::Answered {
            ring_s: 3,
            talk_s: 30 + d2,
        },
    };
    let delivery = match d2 {
        0 => Delivery::Silent,
        1 => Delivery::Twice,
        2 => Delivery::Late,
        3 => Delivery::Early,
        _ => Delivery::InOrder,
    };
    (fate, delivery)
}

#[derive(Clone)]
pub struct FakeTencent {
    pub secret_id: String,
    pub secret_key: String,
    pub sdk_app_id: u64,
    /// The application's numbers (`Callers` must be among them), as CCC writes them.
    pub numbers: Vec<String>,
    /// The data push's basic auth.
    pub webhook_user: String,
    pub webhook_password: String,
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    decide: Decide,
    /// From a task's creation to its call being over.
    pub delay: Duration,
    /// From a call being over to its CDR showing in `DescribeTelCdr`.
    pub cdr_lag: Duration,
    /// How late a `Late` push comes.
    pub late: Duration,
}

/// Lowercase hex SHA-256.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The independent TC3-HMAC-SHA256 signature of a POST to `/` over `headers` (lowercase
/// name, value as sent; signed in the order given, values trimmed and lowercased).
pub fn tc3_signature(
    secret_key: &str,
    service: &str,
    timestamp: i64,
    headers: &[(String, String)],
    payload: &[u8],
) -> String {
    let date = chrono::DateTime::from_timestamp(timestamp, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim().to_lowercase()))
        .collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        sha256_hex(payload)
    );
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac256(&k_date, service.as_bytes());
    let k_signing = hmac256(&k_service, b"tc3_request");
    hex::encode(hmac256(&k_signing, to_sign.as_bytes()))
}

/// An API failure: `Response.Error`.
type Failure = (&'static str, String);

fn envelope(mut response: Value) -> Response {
    response["RequestId"] = json!(uuid::Uuid::new_v4().to_string());
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({ "Response": response }).to_string(),
    )
        .into_response()
}

fn failure((code, message): Failure) -> Response {
    envelope(json!({"Error": {"Code": code, "Message": message}}))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn int(body: &Value, name: &str) -> Option<i64> {
    body.get(name).and_then(Value::as_i64)
}

fn need_int(body: &Value, name: &str) -> Result<i64, Failure> {
    match body.get(name) {
        None | Some(Value::Null) => Err((
            "MissingParameter",
            format!("The request is missing a required parameter `{name}`."),
        )),
        Some(v) => v.as_i64().ok_or((
            "InvalidParameter",
            format!("The parameter `{name}` is not an integer."),
        )),
    }
}

fn strings(body: &Value, name: &str) -> Result<Vec<String>, Failure> {
    let list = body
        .get(name)
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or((
            "MissingParameter",
            format!("The request is missing a required parameter `{name}`."),
        ))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or(("InvalidParameter", format!("`{name}` holds a non-string")))
        })
        .collect()
}

/// CCC refuses parameters an action does not have.
fn only(body: &Value, allowed: &[&str]) -> Result<(), Failure> {
    let Some(obj) = body.as_object() else {
        return Err(("InvalidParameter", "the body is not a JSON object".into()));
    };
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err((
            "UnknownParameter",
            format!("The parameter `{k}` is not recognized."),
        )),
        None => Ok(()),
    }
}

fn ccc_number_ok(n: &str) -> bool {
    n.len() >= 9 && n.len() <= 20 && n.starts_with("00") && n.bytes().all(|b| b.is_ascii_digit())
}

impl FakeTencent {
    pub async fn start(decide: Decide) -> FakeTencent {
        let (listener, addr) = bind().await;
        let fake = FakeTencent {
            secret_id: format!("AKID{}", uuid::Uuid::new_v4().simple()),
            secret_key: format!("{}", uuid::Uuid::new_v4().simple()),
            sdk_app_id: 1_400_000_000 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]),
            numbers: vec!["00862066668888".into()],
            webhook_user: "tccc-push".into(),
            webhook_password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
            addr,
            inner: Arc::new(Mutex::new(Inner {
                next_task: 3000,
                ..Default::default()
            })),
            http: reqwest::Client::new(),
            decide,
            delay: Duration::from_millis(40),
            cdr_lag: Duration::from_millis(250),
            late: Duration::from_millis(1500),
        };
        let app = Router::new().route("/", post(api)).with_state(fake.clone());
        serve(listener, app);
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Turns the data push on, to `url` (as set in the CCC console; CCC adds the query).
    pub fn push_to(&self, url: &str) {
        self.lock().push_url = Some(url.to_string());
    }

    /// Every callee called, in order.
    pub fn calls(&self) -> Vec<Placed> {
        self.lock().calls.clone()
    }

    /// Requests refused for their signature or credentials: (error code, message).
    pub fn refused(&self) -> Vec<(String, String)> {
        self.lock().refused.clone()
    }

    /// How many requests of each action were answered.
    pub fn requests(&self, action: &str) -> u64 {
        self.lock().requests.get(action).copied().unwrap_or(0)
    }

    /// Every push sent, with its reply.
    pub fn pushes(&self) -> Vec<PushReply> {
        self.lock().pushes.clone()
    }

    /// Callees of a task start `pace` apart in its running time (a campaign of many callees
    /// takes a while, so it can be paused midway); 0, the default, starts them all at once.
    pub fn set_pace(&self, pace: Duration) {
        self.lock().pace = pace;
    }

    /// CDRs show in `DescribeTelCdr` this long after their call ends (a CCC that lags).
    pub fn set_cdr_lag(&self, lag: Duration) {
        self.lock().cdr_lag = Some(lag);
    }

    /// Tasks created, by name: (task id, callees).
    pub fn tasks(&self) -> Vec<(u64, String, usize)> {
        let g = self.lock();
        let mut out: Vec<(u64, String, usize)> = g
            .by_task
            .iter()
            .map(|(id, idx)| (*id, g.calls[idx[0]].name.clone(), idx.len()))
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a request as CCC does: version, timestamp, credential scope and signature.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Failure> {
        let auth = header(headers, "authorization").unwrap_or_default();
        let fail = |m: &str| -> Failure { ("AuthFailure.SignatureFailure", m.to_string()) };
        let rest = auth
            .strip_prefix("TC3-HMAC-SHA256 ")
            .ok_or_else(|| fail("the Authorization header is not TC3-HMAC-SHA256"))?;
        let mut parts: HashMap<&str, &str> = HashMap::new();
        for part in rest.split(", ") {
            if let Some((k, v)) = part.split_once('=') {
                parts.insert(k, v);
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) = (
            parts.get("Credential"),
            parts.get("SignedHeaders"),
            parts.get("Signature"),
        ) else {
            return Err(fail("the Authorization header lacks a part"));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [id, date, service, "tc3_request"] = scope[..] else {
            return Err(fail("the credential scope is malformed"));
        };
        if id != self.secret_id {
            return Err((
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.".into(),
            ));
        }
        let timestamp: i64 = header(headers, "x-tc-timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or(("MissingParameter", "X-TC-Timestamp is missing".to_string()))?;
        if (chrono::Utc::now().timestamp() - timestamp).abs() > MAX_SKEW_SECONDS {
            return Err((
                "AuthFailure.SignatureExpire",
                "Signature expired. Timestamp is too far from the server time.".into(),
            ));
        }
        let want_date = chrono::DateTime::from_timestamp(timestamp, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        if date != want_date || service != "ccc" {
            return Err(fail("the credential scope does not match the request"));
        }
        let names: Vec<&str> = signed_headers.split(';').collect();
        if !names.contains(&"content-type") || !names.contains(&"host") {
            return Err(fail("content-type and host must be signed"));
        }
        let mut signed = Vec::new();
        for name in names {
            let value = header(headers, name)
                .ok_or_else(|| fail(&format!("signed header {name} is missing")))?;
            signed.push((name.to_string(), value.to_string()));
        }
        let want = tc3_signature(&self.secret_key, "ccc", timestamp, &signed, body);
        if !subtle_eq(want.as_bytes(), signature.as_bytes()) {
            return Err(fail(
                "The provided credentials could not be validated. Please check your signature is correct.",
            ));
        }
        Ok(())
    }

    fn create(&self, body: &Value) -> Result<Value, Failure> {
        only(
            body,
            &[
                "SdkAppId",
                "NotBefore",
                "Callees",
                "Callers",
                "IvrId",
                "Name",
                "Description",
                "NotAfter",
                "Tries",
                "Variables",
                "UUI",
                "CalleeAttributes",
                "TimeZone",
                "AvailableTime",
                "AIAgentId",
                "RetryInterval",
                "MaxRingTimeoutSecond",
            ],
        )?;
        self.app(body)?;
        let not_before = need_int(body, "NotBefore")?;
        let callees = strings(body, "Callees")?;
        let callers = strings(body, "Callers")?;
        let (ivr_id, ai_agent_id) = (int(body, "IvrId"), int(body, "AIAgentId"));
        if ivr_id.is_none() && ai_agent_id.is_none() {
            return Err(("MissingParameter", "IvrId or AIAgentId is required".into()));
        }
        if let Some(t) = body.get("Tries") {
            if !t.as_i64().is_some_and(|t| (1..=3).contains(&t)) {
                return Err(("InvalidParameterValue", "Tries must be 1 to 3".into()));
            }
        }
        if let Some(c) = callees.iter().find(|c| !ccc_number_ok(c)) {
            return Err((
                "InvalidParameter.InvalidPhoneNumber",
                format!("callee {c} is not a valid phone number"),
            ));
        }
        if let Some(c) = callers.iter().find(|c| !self.numbers.contains(c)) {
            return Err((
                "FailedOperation.NoCallOutNumber",
                format!("caller {c} is not a number of this application"),
            ));
        }
        let task_uui = body.get("UUI").and_then(Value::as_str).unwrap_or_default();
        let attributes = body
            .get("CalleeAttributes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut g = self.lock();
        g.next_task += 1;
        let task_id = g.next_task;
        g.runs.insert(
            task_id,
            TaskRun {
                created: Instant::now(),
                paused_since: None,
                paused_total: Duration::ZERO,
                stopped: false,
            },
        );
        let mut spawned = Vec::new();
        for callee in callees {
            let uui = attributes
                .iter()
                .find(|a| a.get("Callee").and_then(Value::as_str) == Some(callee.as_str()))
                .and_then(|a| a.get("UUI").and_then(Value::as_str))
                .unwrap_or(task_uui)
                .to_string();
            let nth = next_try(&mut g.tries, &callee);
            let (fate, delivery) = (self.decide)(&callee, nth);
            let idx = g.calls.len();
            g.calls.push(Placed {
                task_id,
                session_id: uuid::Uuid::new_v4().to_string(),
                callee,
                caller: callers[0].clone(),
                uui,
                fate,
                delivery,
                state: 0,
                task_state: 0,
                not_before,
                not_after: int(body, "NotAfter"),
                ivr_id,
                ai_agent_id,
                name: body
                    .get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                cdr: None,
                cdr_from: None,
                hung_up: false,
            });
            g.by_task.entry(task_id).or_default().push(idx);
            spawned.push(idx);
        }
        let pace = g.pace;
        drop(g);
        for (pos, idx) in spawned.into_iter().enumerate() {
            tokio::spawn(self.clone().play(idx, task_id, pace * pos as u32));
        }
        Ok(json!({ "TaskId": task_id }))
    }

    fn app(&self, body: &Value) -> Result<(), Failure> {
        let app = need_int(body, "SdkAppId")?;
        if u64::try_from(app).ok() != Some(self.sdk_app_id) {
            return Err((
                "InvalidParameter.InstanceNotExist",
                format!("SdkAppId {app} does not exist"),
            ));
        }
        Ok(())
    }

    fn task_indices(&self, body: &Value) -> Result<Vec<usize>, Failure> {
        let task = need_int(body, "TaskId")?;
        u64::try_from(task)
            .ok()
            .and_then(|t| self.lock().by_task.get(&t).cloned())
            .ok_or((
                "InvalidParameterValue",
                format!("TaskId {task} does not exist"),
            ))
    }

    fn describe(&self, body: &Value) -> Result<Value, Failure> {
        only(body, &["SdkAppId", "TaskId"])?;
        self.app(body)?;
        let idx = self.task_indices(body)?;
        let g = self.lock();
        let first = &g.calls[idx[0]];
        let callees: Vec<Value> = idx
            .iter()
            .map(|i| {
                let c = &g.calls[*i];
                let sessions: Vec<&str> = if c.state == 0 {
                    vec![]
                } else {
                    vec![c.session_id.as_str()]
                };
                json!({"Callee": c.callee, "State": c.state, "Sessions": sessions})
            })
            .collect();
        let state = task_state(&g, first.task_id);
        Ok(json!({
            "Name": first.name, "Description": "", "NotBefore": first.not_before,
            "NotAfter": first.not_after, "Callers": [first.caller], "Callees": callees,
            "IvrId": first.ivr_id, "State": state,
        }))
    }

    fn list(&self, body: &Value) -> Result<Value, Failure> {
        only(body, &["SdkAppId", "PageSize", "PageNumber"])?;
        self.app(body)?;
        let size = need_int(body, "PageSize")?.clamp(0, 100) as usize;
        let page = need_int(body, "PageNumber")?.max(0) as usize;
        let g = self.lock();
        let mut tasks: Vec<(&u64, &Vec<usize>)> = g.by_task.iter().collect();
        tasks.sort();
        let shown: Vec<Value> = tasks
            .iter()
            .skip(page * size)
            .take(size)
            .map(|(id, idx)| {
                let c = &g.calls[idx[0]];
                json!({"TaskId": id, "Name": c.name, "CalleeCount": idx.len(),
                       "Callers": [c.caller], "NotBefore": c.not_before,
                       "NotAfter": c.not_after, "IvrId": c.ivr_id,
                       "State": task_state(&g, **id)})
            })
            .collect();
        Ok(json!({"TotalCount": tasks.len(), "Tasks": shown}))
    }

    fn stop(&self, body: &Value) -> Result<Value, Failure> {
        only(body, &["SdkAppId", "TaskId"])?;
        self.app(body)?;
        let idx = self.task_indices(body)?;
        let mut g = self.lock();
        let task = g.calls[idx[0]].task_id;
        if matches!(task_state(&g, task), 2 | 4) {
            return Err((
                "FailedOperation.CurStateNotAllowModify",
                "the task is over".into(),
            ));
        }
        if let Some(run) = g.runs.get_mut(&task) {
            run.stopped = true;
        }
        for i in idx {
            let c = &mut g.calls[i];
            if c.state == 1 || c.state == 2 {
                continue;
            }
            c.hung_up = true;
            c.task_state = 4;
            if c.state != 1 && c.state != 2 {
                // Stopped before it was over: the caller cancelled.
                c.state = 2;
                let mut cdr = cdr_of(c, self.sdk_app_id);
                cdr["EndStatus"] = json!(209);
                cdr["EndStatusString"] = json!("callerCancel");
                cdr["AcceptTimestamp"] = json!(0);
                cdr["Duration"] = json!(0);
                c.cdr = Some(cdr);
                c.cdr_from = Some(Instant::now());
            }
        }
        Ok(json!({}))
    }

    /// `PauseAutoCalloutTask` (`pause`) or `ResumeAutoCalloutTask`.
    fn pause(&self, body: &Value, pause: bool) -> Result<Value, Failure> {
        only(body, &["SdkAppId", "TaskId"])?;
        self.app(body)?;
        let idx = self.task_indices(body)?;
        let mut g = self.lock();
        let task = g.calls[idx[0]].task_id;
        let state = task_state(&g, task);
        let now = Instant::now();
        let run = g.runs.get_mut(&task).expect("every task has its run");
        match (pause, state) {
            (true, 0 | 1) => run.paused_since = Some(now),
            (false, 5) => {
                if let Some(p) = run.paused_since.take() {
                    run.paused_total += now - p;
                }
            }
            _ => {
                return Err((
                    "FailedOperation.CurStateNotAllowModify",
                    format!("the task's state is {state}"),
                ))
            }
        }
        Ok(json!({}))
    }

    fn cdrs(&self, body: &Value) -> Result<Value, Failure> {
        only(
            body,
            &[
                "StartTimeStamp",
                "EndTimeStamp",
                "SdkAppId",
                "PageSize",
                "PageNumber",
                "Phones",
                "SessionIds",
            ],
        )?;
        self.app(body)?;
        let start = need_int(body, "StartTimeStamp")?;
        let end = need_int(body, "EndTimeStamp")?;
        let size = need_int(body, "PageSize")?;
        let page = need_int(body, "PageNumber")?;
        if !(1..=100).contains(&size) || page < 0 {
            return Err(("InvalidParameterValue", "PageSize is 1 to 100".into()));
        }
        if end < start || end - start >= 90 * 86_400 {
            return Err((
                "InvalidParameterValue",
                "the time range must be under 90 days".into(),
            ));
        }
        let sessions: Option<Vec<String>> =
            body.get("SessionIds").and_then(Value::as_array).map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
        let now = Instant::now();
        let g = self.lock();
        let found: Vec<Value> = g
            .calls
            .iter()
            .filter(|c| c.cdr_from.is_some_and(|t| t <= now))
            .filter(|c| sessions.as_ref().is_none_or(|s| s.contains(&c.session_id)))
            .filter(|c| (start..=end).contains(&c.not_before))
            .filter_map(|c| c.cdr.clone())
            .collect();
        let shown: Vec<Value> = found
            .iter()
            .skip((page * size) as usize)
            .take(size as usize)
            .cloned()
            .collect();
        Ok(json!({"TotalCount": found.len(), "TelCdrList": shown, "TelCdrs": shown}))
    }

    /// Sends one push to the application's URL as CCC does, again (up to 3 times) until the
    /// reply is `{"ErrCode":0}`. Nothing when the push is off.
    async fn push(&self, action: &'static str, body: Value) {
        let Some(url) = self.lock().push_url.clone() else {
            return;
        };
        let session = body["SessionId"].as_str().unwrap_or_default().to_string();
        let push_id = uuid::Uuid::new_v4().to_string();
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.webhook_user, self.webhook_password))
        );
        let request = || {
            self.http
                .post(format!("{url}?action={action}&version=1"))
                .header("content-type", "application/json;charset=utf8")
                .header("authorization", &auth)
                .header("x-tccc-push-uuid", &push_id)
                .body(body.to_string())
        };
        deliver(
            4,
            |_| Duration::from_millis(200),
            request,
            |status, reply| {
                self.lock().pushes.push(PushReply {
                    action,
                    session_id: session.clone(),
                    status,
                    body: reply.to_string(),
                });
                serde_json::from_str::<Value>(reply)
                    .ok()
                    .is_some_and(|v| v.get("ErrCode").and_then(Value::as_i64) == Some(0))
            },
        )
        .await;
    }

    /// Runs one callee: once `after` of its task's running time has passed, calling, then over
    /// with its CDR, pushed as its delivery says.
    async fn play(self, idx: usize, task: u64, after: Duration) {
        loop {
            let ready = {
                let g = self.lock();
                if g.calls[idx].hung_up {
                    return;
                }
                let run = &g.runs[&task];
                run.paused_since.is_none() && run.elapsed(Instant::now()) >= after
            };
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(self.delay / 2).await;
        {
            let mut g = self.lock();
            let c = &mut g.calls[idx];
            if c.hung_up {
                return;
            }
            c.state = 3;
            c.task_state = 1;
        }
        tokio::time::sleep(self.delay / 2).await;
        let (cdr, delivery, answered) = {
            let g = self.lock();
            let c = &g.calls[idx];
            if c.hung_up {
                return;
            }
            (
                cdr_of(c, self.sdk_app_id),
                c.delivery,
                matches!(c.fate, Fate::Answered { .. }),
            )
        };
        let mut pushed = cdr.clone();
        if delivery == Delivery::Twice {
            // As the push doc lists it: the string only.
            pushed
                .as_object_mut()
                .expect("a CDR is an object")
                .remove("EndStatus");
        }
        if delivery == Delivery::Early {
            self.push("cdr", pushed.clone()).await;
        }
        {
            let mut g = self.lock();
            let lag = g.cdr_lag.unwrap_or(self.cdr_lag);
            let c = &mut g.calls[idx];
            if c.hung_up {
                return;
            }
            c.state = if answered { 1 } else { 2 };
            c.task_state = 2;
            c.cdr = Some(cdr.clone());
            c.cdr_from = Some(Instant::now() + lag);
        }
        match delivery {
            Delivery::Silent | Delivery::Early => {}
            Delivery::InOrder => {
                self.push("cdr", pushed).await;
                if answered {
                    self.push("record", record_of(&cdr)).await;
                }
            }
            Delivery::Twice => {
                self.push("cdr", pushed.clone()).await;
                self.push("cdr", pushed).await;
            }
            Delivery::Late => {
                tokio::time::sleep(self.late).await;
                self.push("cdr", pushed).await;
            }
        }
    }
}

/// A task's state: 0 initial, 1 running, 2 completed, 4 terminated, 5 paused.
fn task_state(g: &Inner, task: u64) -> u64 {
    let run = &g.runs[&task];
    if run.stopped {
        return 4;
    }
    if run.paused_since.is_some() {
        return 5;
    }
    let idx = &g.by_task[&task];
    if idx.iter().all(|i| matches!(g.calls[*i].state, 1 | 2)) {
        2
    } else if idx.iter().any(|i| g.calls[*i].state != 0) {
        1
    } else {
        0
    }
}

/// A constant-time comparison, for the signature.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CDR (`TelCdrInfo`) of a call over as its fate says.
fn cdr_of(c: &Placed, app: u64) -> Value {
    let (end_status, end_string) = c.fate.end_status();
    let start = c.not_before;
    let ring = if c.fate.rings() { start + 1 } else { 0 };
    let (accept, talk, ended) = match c.fate {
        Fate::Answered { ring_s, talk_s } => {
            let accept = ring + ring_s as i64;
            (accept, talk_s as i64, accept + talk_s as i64)
        }
        Fate::NotAnswer => (0, 0, ring + 30),
        Fate::UserReject => (0, 0, ring + 4),
        _ => (0, 0, start + 1),
    };
    json!({
        "SdkAppId": app,
        "SessionId": c.session_id,
        "Caller": c.caller,
        "Callee": c.callee,
        "Direction": 1,
        "CallType": 1,
        "Duration": talk,
        "StartTimestamp": start,
        "RingTimestamp": ring,
        "AcceptTimestamp": accept,
        "EndedTimestamp": ended,
        "EndStatus": end_status,
        "EndStatusString": end_string,
        "HungUpSide": if accept > 0 { "user" } else { "system" },
        "IVRDuration": 0,
        "RecordURL": "",
        "ServeParticipants": [],
        "UUI": c.uui,
    })
}

/// The recording push of an answered call (callee side).
fn record_of(cdr: &Value) -> Value {
    json!({
        "SdkAppId": cdr["SdkAppId"],
        "RecordId": uuid::Uuid::new_v4().simple().to_string(),
        "SessionId": cdr["SessionId"],
        "Timestamp": cdr["EndedTimestamp"],
        "EndpointUser": cdr["Callee"],
        "RecordURL": format!("http://recorder.example/{}.mp3", cdr["SessionId"].as_str().unwrap_or("x")),
    })
}

async fn api(State(fake): State<FakeTencent>, headers: HeaderMap, body: Bytes) -> Response {
    let action = header(&headers, "x-tc-action")
        .unwrap_or_default()
        .to_string();
    if let Err(f) = fake.authenticate(&headers, &body) {
        fake.lock().refused.push((f.0.to_string(), f.1.clone()));
        return failure(f);
    }
    if header(&headers, "x-tc-version") != Some(VERSION) {
        return failure(("NoSuchVersion", "The API version does not exist.".into()));
    }
    if !header(&headers, "content-type").is_some_and(|c| c.starts_with("application/json")) {
        return failure(("InvalidParameter", "Content-Type must be JSON".into()));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return failure(("InvalidParameter", "the body is not JSON".into()));
    };
    let result = match action.as_str() {
        "CreateAutoCalloutTask" => fake.create(&body),
        "DescribeAutoCalloutTask" => fake.describe(&body),
        "DescribeAutoCalloutTasks" => fake.list(&body),
        "StopAutoCalloutTask" => fake.stop(&body),
        "PauseAutoCalloutTask" => fake.pause(&body, true),
        "ResumeAutoCalloutTask" => fake.pause(&body, false),
        "DescribeTelCdr" => fake.cdrs(&body),
        _ => Err((
            "InvalidAction",
            format!("The action `{action}` is not found."),
        )),
    };
    *fake.lock().requests.entry(action).or_default() += 1;
    match result {
        Ok(v) => envelope(v),
        Err(f) => failure(f),
    }
}
