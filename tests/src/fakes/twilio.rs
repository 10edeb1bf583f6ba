//! A local Twilio: the `Calls.json` resource (create, fetch, hang up) and the account resource,
//! behind HTTP basic auth with the account's SID and auth token, and status callbacks sent to
//! each call's `StatusCallback` the way Twilio sends them (form bodies signed with
//! `X-Twilio-Signature`, computed here with the `hmac`/`sha1` crates, not the code under test).
//! What happens to each call is decided from its number and how often it was called; some
//! callbacks come twice, some late and out of order ("completed" before "ringing"), and some
//! calls get no callback at all, so only polling finds their end. Every decision is logged.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use base64::Engine;
use hmac::Mac;
use waihu_events::pb;

use super::{bind, deliver, digit, next_try, serve};

/// What the fake decided for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Answered, talked this many seconds, then completed.
    Answered {
        talk_s: u64,
    },
    Busy,
    NoAnswer,
    /// Failed with this SIP response code.
    Failed {
        sip: u16,
    },
}

impl Fate {
    /// The final status Twilio reports.
    pub fn status(&self) -> &'static str {
        match self {
            Fate::Answered { .. } => "completed",
            Fate::Busy => "busy",
            Fate::NoAnswer => "no-answer",
            Fate::Failed { .. } => "failed",
        }
    }
}

/// How a call's callbacks are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    InOrder,
    /// Every callback twice.
    Twice,
    /// The final one first, then the rest (late).
    FinalFirst,
    /// None: only polling learns the outcome.
    Silent,
}

/// One call the fake placed.
#[derive(Debug, Clone)]
pub struct Placed {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub fate: Fate,
    pub delivery: Delivery,
    /// Its current status (what a fetch returns).
    pub status: String,
    pub hung_up: bool,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Placed>,
    by_sid: HashMap<String, usize>,
    tries: HashMap<String, u32>,
    refused_auth: u64,
    callbacks_sent: u64,
}

/// The decision rule: from the number's last digit and the how-many-th call to it.
pub type Decide = fn(&str, u32) -> (Fate, Delivery);

/// The default mix: half answered, busy, no answer, a 404, a 486 that clears on the second
/// try; a tenth of calls silent, a tenth with callbacks twice, a tenth final-first.
pub fn default_decide(to: &str, nth: u32) -> (Fate, Delivery) {
    let (d, d2) = (digit(to, 0), digit(to, 1));
    let fate = match (d, nth) {
        (0..=3, _) => Fate::Answered {
            talk_s: 5 + (d * 7 + d2 * 3) % 50,
        },
        (4, 1) => Fate::Busy,
        (4, _) => Fate::Answered { talk_s: 9 },
        (5, _) => Fate::Busy,
        (6, _) => Fate::NoAnswer,
        (7, _) => Fate::Failed { sip: 404 },
        (8, _) => Fate::Failed { sip: 486 },
        _ => Fate::Answered { talk_s: 30 + d2 },
    };
    let delivery = match d2 {
        0 => Delivery::Silent,
        1 => Delivery::Twice,
        2 => Delivery::FinalFirst,
        _ => Delivery::InOrder,
    };
    (fate, delivery)
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub account_sid: String,
    pub auth_token: String,
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    decide: Decide,
    /// Delay before a call's first callback.
    pub delay: Duration,
}

/// The independent signature: Base64(HMAC-SHA1(token, url + sorted name+value)).
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("any key");
    mac.update(url.as_bytes());
    for (k, v) in &sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl FakeTwilio {
    pub async fn start(decide: Decide) -> FakeTwilio {
        let (listener, addr) = bind().await;
        let fake = FakeTwilio {
            account_sid: format!("AC{}", uuid::Uuid::new_v4().simple()),
            auth_token: format!("{}", uuid::Uuid::new_v4().simple()),
            addr,
            inner: Arc::default(),
            http: reqwest::Client::new(),
            decide,
            delay: Duration::from_millis(30),
        };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Calls.json", post(create))
            .route(
                "/2010-04-01/Accounts/{sid}/Calls/{call}",
                get(fetch).post(update),
            )
            .route("/2010-04-01/Accounts/{sid}", get(account))
            .with_state(fake.clone());
        serve(listener, app);
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A Twilio line on this fake, as `ProviderService.CreateLine` takes it.
    pub fn line(&self, id: &str, max_concurrent: u32) -> pb::CreateLineRequest {
        pb::CreateLineRequest {
            line: Some(pb::Line {
                line_id: id.into(),
                name: "Twilio test line".into(),
                provider: "twilio".into(),
                caller_number: "+14155550100".into(),
                max_concurrent,
                provider_config: [
                    ("account_sid".to_string(), self.account_sid.clone()),
                    ("base_url".to_string(), self.base_url()),
                ]
                .into(),
                ..Default::default()
            }),
            credentials: [("auth_token".to_string(), self.auth_token.clone())].into(),
        }
    }

    /// Every call placed, in order.
    pub fn calls(&self) -> Vec<Placed> {
        self.lock().calls.clone()
    }

    pub fn refused_auth(&self) -> u64 {
        self.lock().refused_auth
    }

    pub fn callbacks_sent(&self) -> u64 {
        self.lock().callbacks_sent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn authorised(&self, sid: &str, headers: &HeaderMap) -> bool {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.account_sid, self.auth_token))
        );
        let ok = sid == self.account_sid
            && headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == want);
        if !ok {
            self.lock().refused_auth += 1;
        }
        ok
    }

    /// Sends one status callback, signed, retrying a few times on failure (as a provider would
    /// when the receiver is briefly away).
    async fn callback(&self, url: &str, params: Vec<(String, String)>) {
        let sig = twilio_signature(&self.auth_token, url, &params);
        let body = {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                ser.append_pair(k, v);
            }
            ser.finish()
        };
        let request = || {
            self.http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", &sig)
                .body(body.clone())
        };
        deliver(
            5,
            |_| Duration::from_millis(200),
            request,
            |status, _| {
                self.lock().callbacks_sent += 1;
                (200..300).contains(&status)
            },
        )
        .await;
    }

    /// Plays a placed call: its statuses over time, and their callbacks as its delivery says.
    async fn play(self, idx: usize, callback_url: String) {
        let (sid, to, from, fate, delivery) = {
            let g = self.lock();
            let c = &g.calls[idx];
            (
                c.sid.clone(),
                c.to.clone(),
                c.from.clone(),
                c.fate.clone(),
                c.delivery,
            )
        };
        let params = |status: &str, extra: &[(&str, String)]| {
            let mut p = vec![
                ("AccountSid".to_string(), self.account_sid.clone()),
                ("ApiVersion".to_string(), "2010-04-01".to_string()),
                ("CallSid".to_string(), sid.clone()),
                ("CallStatus".to_string(), status.to_string()),
                ("Direction".to_string(), "outbound-api".to_string()),
                ("From".to_string(), from.clone()),
                ("To".to_string(), to.clone()),
                (
                    "CallbackSource".to_string(),
                    "call-progress-events".to_string(),
                ),
            ];
            for (k, v) in extra {
                p.push((k.to_string(), v.clone()));
            }
            p
        };
        let mut steps: Vec<(String, Vec<(String, String)>)> =
            vec![("initiated".into(), params("initiated", &[]))];
        if !matches!(fate, Fate::Failed { .. }) {
            steps.push(("ringing".into(), params("ringing", &[])));
        }
        if matches!(fate, Fate::Answered { .. }) {
            steps.push(("in-progress".into(), params("in-progress", &[])));
        }
        let final_extra = match &fate {
            Fate::Answered { talk_s } => vec![("CallDuration", talk_s.to_string())],
            Fate::Failed { sip } => vec![
                ("SipResponseCode", sip.to_string()),
                ("CallDuration", "0".into()),
            ],
            _ => vec![("CallDuration", "0".into())],
        };
        steps.push((fate.status().into(), params(fate.status(), &final_extra)));
        for (i, seq) in steps.iter_mut().enumerate() {
            seq.1.push(("SequenceNumber".into(), i.to_string()));
        }
        tokio::time::sleep(self.delay).await;
        // The resource moves through the statuses as Twilio calls back about them: a fetch sees
        // a status once its callback was delivered (at once when no callback is sent), so a
        // poll never learns of an end before the callback telling more about it (a failed
        // call's SipResponseCode) was taken. It never moves backwards.
        let last = steps.len() - 1;
        // Which steps are called back, in order, and how many times each.
        let plan: Vec<(usize, usize)> = match delivery {
            Delivery::Silent => vec![],
            Delivery::InOrder => (0..=last).map(|i| (i, 1)).collect(),
            Delivery::Twice => (0..=last).map(|i| (i, 2)).collect(),
            Delivery::FinalFirst => std::iter::once((last, 1))
                .chain((0..last).map(|i| (i, 1)))
                .chain(std::iter::once((last, 1)))
                .collect(),
        };
        if plan.is_empty() {
            self.show(idx, &steps[last].0);
        }
        let mut shown = 0;
        for (i, times) in plan {
            for _ in 0..times {
                self.callback(&callback_url, steps[i].1.clone()).await;
            }
            if i >= shown {
                shown = i;
                self.show(idx, &steps[i].0);
            }
        }
    }

    /// What a fetch of call `idx` returns from now on (unless it was hung up).
    fn show(&self, idx: usize, status: &str) {
        if let Some(c) = self.lock().calls.get_mut(idx) {
            if !c.hung_up {
                c.status = status.to_string();
            }
        }
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({"code": code, "message": message, "status": status.as_u16()})
            .to_string(),
    )
        .into_response()
}

fn call_json(c: &Placed, account: &str) -> String {
    let duration = match (&c.fate, c.status.as_str()) {
        (Fate::Answered { talk_s }, "completed") => serde_json::json!(talk_s.to_string()),
        (_, "busy" | "no-answer" | "failed" | "completed") => serde_json::json!("0"),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "sid": c.sid, "account_sid": account, "to": c.to, "from": c.from,
        "status": c.status, "duration": duration, "api_version": "2010-04-01",
        "direction": "outbound-api"
    })
    .to_string()
}

async fn create(
    State(fake): State<FakeTwilio>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !fake.authorised(&sid, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (to, from, callback) = (get("To"), get("From"), get("StatusCallback"));
    if !to.starts_with('+') || to.len() < 8 || !to[1..].bytes().all(|b| b.is_ascii_digit()) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("Invalid 'To' Phone Number: {to}"),
        );
    }
    if from.is_empty() || (get("Twiml").is_empty() && get("Url").is_empty()) {
        return twilio_error(StatusCode::BAD_REQUEST, 21205, "Url or Twiml is required");
    }
    let events: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .map(|(_, v)| v.as_str())
        .collect();
    if callback.is_empty() || events.len() < 4 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21609,
            "StatusCallback events missing",
        );
    }
    let (idx, reply) = {
        let mut g = fake.lock();
        let nth = next_try(&mut g.tries, &to);
        let (fate, delivery) = (fake.decide)(&to, nth);
        let call = Placed {
            sid: format!("CA{}", uuid::Uuid::new_v4().simple()),
            to,
            from,
            fate,
            delivery,
            status: "queued".into(),
            hung_up: false,
        };
        let reply = call_json(&call, &fake.account_sid);
        let idx = g.calls.len();
        g.by_sid.insert(call.sid.clone(), idx);
        g.calls.push(call);
        (idx, reply)
    };
    tokio::spawn(fake.clone().play(idx, callback));
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        reply,
    )
        .into_response()
}

fn call_sid(file: &str) -> &str {
    file.strip_suffix(".json").unwrap_or(file)
}

async fn fetch(
    State(fake): State<FakeTwilio>,
    Path((sid, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !fake.authorised(&sid, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let g = fake.lock();
    match g.by_sid.get(call_sid(&call)).map(|i| &g.calls[*i]) {
        Some(c) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            call_json(c, &fake.account_sid),
        )
            .into_response(),
        None => twilio_error(StatusCode::NOT_FOUND, 20404, "not found"),
    }
}

async fn update(
    State(fake): State<FakeTwilio>,
    Path((sid, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !fake.authorised(&sid, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let status = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "Status")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut g = fake.lock();
    let Some(i) = g.by_sid.get(call_sid(&call)).copied() else {
        return twilio_error(StatusCode::NOT_FOUND, 20404, "not found");
    };
    let c = &mut g.calls[i];
    if status == "completed" || status == "canceled" {
        c.hung_up = true;
        c.status = "completed".into();
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        call_json(c, &fake.account_sid),
    )
        .into_response()
}

async fn account(
    State(fake): State<FakeTwilio>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let sid = call_sid(&file).to_string();
    if !fake.authorised(&sid, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({"sid": sid, "friendly_name": "waihu test", "status": "active"})
            .to_string(),
    )
        .into_response()
}
