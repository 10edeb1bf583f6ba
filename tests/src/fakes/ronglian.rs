//! A local Ronglian (容联云, REST 2013-12-26): voice notifications (`Calls/LandingCalls`, main
//! account), two-way callbacks (`SubAccounts/{sub}/Calls/Callback`) and their cancel
//! (`Calls/CallCancel`, sub-account), the call result query (`CallResult`) and the account
//! query (`AccountInfo`). Every request must carry `?sig=UPPER(MD5(sid + token + batch))` and
//! `Authorization: Base64(sid:batch)` with a batch (Beijing time `yyyyMMddHHmmss`) under 50
//! minutes old, checked here with the `md-5` crate, not the code under test; a bad one gets
//! the provider's error `statusCode` (HTTP 200, as the official SDK reads it).
//!
//! What happens to each call is decided from its number and how often it was called. Its end
//! is notified as Ronglian does, XML posted to the URL given when dialing (`respUrl`:
//! `action=SellingCall` with `state`; `hangupCdrUrl`: `action=Hangup` with `byetype`), with no
//! signature of its own: once, twice, late, before the dial request's reply (named then only
//! by the `userData` we were given), or not at all, so only `CallResult` finds the end. Some
//! first requests get "system busy" (100699) and some numbers are refused (100006). Every
//! decision is logged.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use base64::Engine;
use md5::Digest;
use serde_json::{json, Value};

use super::{bind, deliver, digit, next_try, serve};

/// What the fake decided for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Answered, talked this many seconds.
    Answered {
        talk_s: u64,
    },
    NoAnswer,
    Failed,
    /// Refused at the request: an invalid number (100006), no call placed.
    Refused,
}

impl Fate {
    /// The voice notification's (and the call result's) `state`.
    pub fn state(&self) -> &'static str {
        match self {
            Fate::Answered { .. } => "0",
            Fate::NoAnswer | Fate::Refused => "1",
            Fate::Failed => "2",
        }
    }

    /// The callback hangup CDR's `byetype` (codes whose Q.850 agrees with the state's, so a
    /// call's cause does not hang on whether a poll or its notification told it first).
    pub fn byetype(&self) -> &'static str {
        match self {
            Fate::Answered { talk_s } if talk_s % 2 == 0 => "4",
            Fate::Answered { .. } => "3",
            Fate::NoAnswer | Fate::Refused => "-2",
            Fate::Failed => "-1",
        }
    }

    pub fn talk_s(&self) -> u64 {
        match self {
            Fate::Answered { talk_s } => *talk_s,
            _ => 0,
        }
    }
}

/// How a call's end is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    InOrder,
    /// The notification twice.
    Twice,
    /// Before the dial request's reply (the callSid not known to the caller yet), and again
    /// after.
    BeforeReply,
    /// Long after the call ended (polling has usually found the end by then).
    Late,
    /// None: only the call result query learns the end.
    Silent,
}

/// What a call was placed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Notify,
    Callback,
}

/// One call request the fake accepted or refused (a "system busy" reply is not one).
#[derive(Debug, Clone)]
pub struct Placed {
    /// None when refused.
    pub call_sid: Option<String>,
    pub kind: Kind,
    /// As sent (national).
    pub to: String,
    pub from: String,
    pub user_data: String,
    /// `respUrl` or `hangupCdrUrl`.
    pub url: String,
    pub fate: Fate,
    pub delivery: Delivery,
    pub ended: bool,
    pub cancelled: bool,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Placed>,
    by_sid: HashMap<String, usize>,
    tries: HashMap<String, u32>,
    busied: HashSet<String>,
    refused_auth: u64,
    busy_replies: u64,
    notifications_sent: u64,
    notifications_acked: u64,
    polls: u64,
    cancels: Vec<String>,
}

/// The decision rule: from the number's last digits and the how-many-th call to it.
pub type Decide = fn(&str, u32) -> (Fate, Delivery);

/// The default mix: most answered, no answer and failures (retried), a refused number, a
/// failure that clears on the second try; a tenth of calls silent, a tenth notified twice, a
/// tenth before the dial reply, a tenth late.
pub fn default_decide(to: &str, nth: u32) -> (Fate, Delivery) {
    let (d, d2) = (digit(to, 0), digit(to, 1));
    let fate = match (d, nth) {
        (0..=3, _) => Fate::Answered {
            talk_s: 5 + (d * 7 + d2 * 3) % 50,
        },
        (4, 1) => Fate::NoAnswer,
        (4, _) => Fate::Answered { talk_s: 9 },
        (5, _) => Fate::NoAnswer,
        (6, _) => Fate::Failed,
        (7, _) => Fate::Refused,
        (8, 1) => Fate::Failed,
        (8, _) => Fate::Answered { talk_s: 12 },
        _ => Fate::Answered { talk_s: 30 + d2 },
    };
    let delivery = match d2 {
        0 => Delivery::Silent,
        1 => Delivery::Twice,
        2 => Delivery::BeforeReply,
        3 => Delivery::Late,
        _ => Delivery::InOrder,
    };
    (fate, delivery)
}

/// The default "system busy" rule: the first request for a number ending in 49.
pub fn default_busy(to: &str) -> bool {
    to.ends_with("49")
}

/// How the fake behaves beyond its decisions.
#[derive(Clone, Copy)]
pub struct Options {
    /// From a call's placing to its end.
    pub hold: Duration,
    /// Numbers whose first request gets "system busy".
    pub busy: fn(&str) -> bool,
    /// How long a call request's reply takes once the call is placed (a slow provider).
    pub reply_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hold: Duration::from_millis(30),
            busy: default_busy,
            reply_delay: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
pub struct FakeRonglian {
    pub account_sid: String,
    pub auth_token: String,
    pub sub_account_sid: String,
    pub sub_account_token: String,
    pub app_id: String,
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    decide: Decide,
    options: Options,
}

/// The independent `sig`: uppercase hex MD5 of sid + token + batch.
pub fn ronglian_sig(sid: &str, token: &str, batch: &str) -> String {
    hex::encode_upper(md5::Md5::digest(format!("{sid}{token}{batch}").as_bytes()))
}

/// The reply Ronglian's notifications want.
pub const ACK: &str = "<statuscode>000000</statuscode>";

/// Escapes text for an XML element.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The notification of a call's end, as Ronglian posts it: the voice notification result or
/// the callback hangup CDR.
pub fn notification(c: &Placed, fate: &Fate) -> String {
    let sid = c.call_sid.as_deref().unwrap_or_default();
    match c.kind {
        Kind::Notify => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request><action>SellingCall</action>\
             <callSid>{}</callSid><number>{}</number><state>{}</state><duration>{}</duration>\
             <userData>{}</userData></Request>",
            esc(sid),
            esc(&c.to),
            fate.state(),
            fate.talk_s(),
            esc(&c.user_data)
        ),
        Kind::Callback => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request><action>Hangup</action>\
             <callSid>{}</callSid><caller>{}</caller><called>{}</called><byetype>{}</byetype>\
             <talkDuration>{}</talkDuration><recordurl></recordurl><userData>{}</userData>\
             </Request>",
            esc(sid),
            esc(&c.from),
            esc(&c.to),
            if c.cancelled { "-14" } else { fate.byetype() },
            if c.cancelled { 0 } else { fate.talk_s() },
            esc(&c.user_data)
        ),
    }
}

fn reply(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json;charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn error(code: &str, msg: &str) -> Response {
    reply(json!({"statusCode": code, "statusMsg": msg}))
}

fn now_beijing() -> chrono::NaiveDateTime {
    (chrono::Utc::now() + chrono::Duration::hours(8)).naive_utc()
}

/// Whose account a path is under.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Under {
    Main,
    Sub,
}

impl FakeRonglian {
    pub async fn start(decide: Decide) -> FakeRonglian {
        Self::start_with(decide, Options::default()).await
    }

    pub async fn start_with(decide: Decide, options: Options) -> FakeRonglian {
        let (listener, addr) = bind().await;
        let hex = || uuid::Uuid::new_v4().simple().to_string();
        let fake = FakeRonglian {
            account_sid: hex(),
            auth_token: hex(),
            sub_account_sid: hex(),
            sub_account_token: hex(),
            app_id: hex(),
            addr,
            inner: Arc::default(),
            http: reqwest::Client::new(),
            decide,
            options,
        };
        let app = Router::new()
            .route(
                "/2013-12-26/Accounts/{sid}/Calls/LandingCalls",
                post(landing),
            )
            .route(
                "/2013-12-26/SubAccounts/{sid}/Calls/Callback",
                post(callback),
            )
            .route(
                "/2013-12-26/SubAccounts/{sid}/Calls/CallCancel",
                post(cancel),
            )
            .route("/2013-12-26/Accounts/{sid}/CallResult", get(call_result))
            .route("/2013-12-26/Accounts/{sid}/AccountInfo", get(account_info))
            .with_state(fake.clone());
        serve(listener, app);
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call request accepted or refused, in order.
    pub fn calls(&self) -> Vec<Placed> {
        self.lock().calls.clone()
    }

    /// Requests refused for their signature or authorization.
    pub fn refused_auth(&self) -> u64 {
        self.lock().refused_auth
    }

    /// "System busy" replies given.
    pub fn busy_replies(&self) -> u64 {
        self.lock().busy_replies
    }

    /// Notification deliveries tried, and those acknowledged with `statuscode 000000`.
    pub fn notifications(&self) -> (u64, u64) {
        let g = self.lock();
        (g.notifications_sent, g.notifications_acked)
    }

    /// Call result queries answered.
    pub fn polls(&self) -> u64 {
        self.lock().polls
    }

    /// The callSids cancelled.
    pub fn cancels(&self) -> Vec<String> {
        self.lock().cancels.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a request's signature as Ronglian does; the error code to reply with if bad.
    fn check(
        &self,
        under: Under,
        path_sid: &str,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), (&'static str, &'static str)> {
        let (sid, token) = match under {
            Under::Main => (&self.account_sid, &self.auth_token),
            Under::Sub => (&self.sub_account_sid, &self.sub_account_token),
        };
        let result = (|| {
            if path_sid != sid {
                return Err(("101111", "主账户不存在"));
            }
            if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
                return Err(("101104", "Accept must be application/json"));
            }
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .ok_or(("101100", "请求包头Authorization参数为空"))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| ("101101", "Authorization参数Base64解码失败"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| ("101104", "格式有误"))?;
            let (account, batch) = decoded.split_once(':').ok_or(("101104", "格式有误"))?;
            if account != path_sid {
                return Err(("101113", "Authorization账户ID跟请求地址中的账户ID不一致"));
            }
            let at = chrono::NaiveDateTime::parse_from_str(batch, "%Y%m%d%H%M%S")
                .map_err(|_| ("101103", "时间戳为空或有误"))?;
            let age = now_beijing() - at;
            if age > chrono::Duration::minutes(50) || age < chrono::Duration::minutes(-5) {
                return Err(("101106", "时间戳过期"));
            }
            let given = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "sig")
                .map(|(_, v)| v.into_owned())
                .ok_or(("101114", "请求地址Sig参数为空"))?;
            if given != ronglian_sig(sid, token, batch) {
                return Err(("101115", "请求token校验失败"));
            }
            Ok(())
        })();
        if result.is_err() {
            self.lock().refused_auth += 1;
        }
        result
    }

    /// Sends one notification, retrying a few times until it is acknowledged.
    async fn notify(&self, url: &str, body: String) {
        let request = || {
            self.http
                .post(url)
                .header("content-type", "application/xml;charset=utf-8")
                .body(body.clone())
        };
        deliver(
            5,
            |_| Duration::from_millis(200),
            request,
            |status, reply| {
                let mut g = self.lock();
                g.notifications_sent += 1;
                let acked = status == 200 && reply.contains(ACK);
                if acked {
                    g.notifications_acked += 1;
                }
                acked
            },
        )
        .await;
    }

    /// Ends call `idx` (unless it was cancelled) and returns its notification and URL.
    fn end(&self, idx: usize) -> Option<(String, String)> {
        let mut g = self.lock();
        let c = g.calls.get_mut(idx)?;
        if c.cancelled {
            return None;
        }
        c.ended = true;
        Some((c.url.clone(), notification(c, &c.fate)))
    }

    /// Plays a placed call: its end after the hold, notified as its delivery says.
    async fn play(self, idx: usize) {
        tokio::time::sleep(self.options.hold).await;
        let delivery = self.lock().calls[idx].delivery;
        let Some((url, body)) = self.end(idx) else {
            return;
        };
        match delivery {
            Delivery::Silent => {}
            Delivery::InOrder | Delivery::BeforeReply => self.notify(&url, body).await,
            Delivery::Twice => {
                self.notify(&url, body.clone()).await;
                self.notify(&url, body).await;
            }
            Delivery::Late => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                self.notify(&url, body).await;
            }
        }
    }

    /// Places (or refuses) a call request whose body has been checked.
    async fn place(
        &self,
        kind: Kind,
        to: String,
        from: String,
        user_data: String,
        url: String,
    ) -> Response {
        let (idx, fate, delivery) = {
            let mut g = self.lock();
            if (self.options.busy)(&to) && g.busied.insert(to.clone()) {
                g.busy_replies += 1;
                return error("100699", "系统内部错误");
            }
            let nth = next_try(&mut g.tries, &to);
            let (fate, delivery) = (self.decide)(&to, nth);
            let call_sid =
                (fate != Fate::Refused).then(|| uuid::Uuid::new_v4().simple().to_string());
            let idx = g.calls.len();
            if let Some(sid) = &call_sid {
                g.by_sid.insert(sid.clone(), idx);
            }
            g.calls.push(Placed {
                call_sid,
                kind,
                to,
                from,
                user_data,
                url,
                fate: fate.clone(),
                delivery,
                ended: false,
                cancelled: false,
            });
            (idx, fate, delivery)
        };
        if fate == Fate::Refused {
            return error("100006", "手机号不合法");
        }
        if delivery == Delivery::BeforeReply {
            // The call ends at once, and its notification comes before the reply that names
            // its callSid.
            if let Some((url, body)) = self.end(idx) {
                self.notify(&url, body).await;
            }
        }
        let (sid, created) = {
            let g = self.lock();
            (
                g.calls[idx].call_sid.clone().unwrap_or_default(),
                now_beijing().format("%Y-%m-%d %H:%M:%S").to_string(),
            )
        };
        tokio::spawn(self.clone().play(idx));
        tokio::time::sleep(self.options.reply_delay).await;
        let inner = json!({"callSid": sid, "dateCreated": created});
        reply(match kind {
            Kind::Notify => json!({"statusCode": "000000", "LandingCall": inner}),
            Kind::Callback => json!({"statusCode": "000000", "CallBack": inner}),
        })
    }
}

/// A JSON request body's string fields, if the headers say JSON and it is an object.
fn json_body(headers: &HeaderMap, body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let ct = headers.get("content-type")?.to_str().ok()?;
    if !ct.starts_with("application/json") {
        return None;
    }
    match serde_json::from_slice(body).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

impl FakeRonglian {
    /// The JSON body of a request to `path_sid`'s account, once its signature checked; else the
    /// error code to reply with.
    fn signed_body(
        &self,
        under: Under,
        path_sid: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<serde_json::Map<String, Value>, (&'static str, &'static str)> {
        self.check(under, path_sid, headers, query)?;
        json_body(headers, body).ok_or(("100003", "包体格式错误"))
    }
}

fn field(m: &serde_json::Map<String, Value>, name: &str) -> String {
    m.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

async fn landing(
    State(fake): State<FakeRonglian>,
    Path(sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let m = match fake.signed_body(Under::Main, &sid, query.as_deref(), &headers, &body) {
        Ok(m) => m,
        Err((code, msg)) => return error(code, msg),
    };
    let (to, url, user_data) = (field(&m, "to"), field(&m, "respUrl"), field(&m, "userData"));
    if field(&m, "appId") != fake.app_id {
        return error("100003", "appId错误");
    }
    if to.is_empty()
        || url.is_empty()
        || user_data.is_empty()
        || field(&m, "displayNum").is_empty()
        || (field(&m, "mediaName").is_empty() && field(&m, "mediaTxt").is_empty())
    {
        return error("100003", "不允许有空值");
    }
    fake.place(Kind::Notify, to, field(&m, "displayNum"), user_data, url)
        .await
}

async fn callback(
    State(fake): State<FakeRonglian>,
    Path(sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let m = match fake.signed_body(Under::Sub, &sid, query.as_deref(), &headers, &body) {
        Ok(m) => m,
        Err((code, msg)) => return error(code, msg),
    };
    let (from, to) = (field(&m, "from"), field(&m, "to"));
    let (url, user_data) = (field(&m, "hangupCdrUrl"), field(&m, "userData"));
    if from.is_empty() || to.is_empty() || url.is_empty() || user_data.is_empty() {
        return error("100003", "不允许有空值");
    }
    fake.place(Kind::Callback, to, from, user_data, url).await
}

async fn cancel(
    State(fake): State<FakeRonglian>,
    Path(sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let m = match fake.signed_body(Under::Sub, &sid, query.as_deref(), &headers, &body) {
        Ok(m) => m,
        Err((code, msg)) => return error(code, msg),
    };
    if field(&m, "appId") != fake.app_id {
        return error("100003", "appId错误");
    }
    let call_sid = field(&m, "callSid");
    let notice = {
        let mut g = fake.lock();
        let Some(idx) = g.by_sid.get(&call_sid).copied() else {
            return error("100104", "callId不存在");
        };
        let c = &mut g.calls[idx];
        if c.kind != Kind::Callback {
            return error("100108", "取消回拨失败");
        }
        let notice = (!c.ended && !c.cancelled).then(|| {
            c.cancelled = true;
            c.ended = true;
            (c.url.clone(), notification(c, &c.fate))
        });
        g.cancels.push(call_sid);
        notice
    };
    if let Some((url, body)) = notice {
        let fake = fake.clone();
        tokio::spawn(async move { fake.notify(&url, body).await });
    }
    reply(json!({"statusCode": "000000"}))
}

async fn call_result(
    State(fake): State<FakeRonglian>,
    Path(sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err((code, msg)) = fake.check(Under::Main, &sid, &headers, query.as_deref()) {
        return error(code, msg);
    }
    let call_sid = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "callsid")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let mut g = fake.lock();
    g.polls += 1;
    let Some(c) = g.by_sid.get(&call_sid).map(|i| &g.calls[*i]) else {
        return error("100007", "查无数据");
    };
    if !c.ended {
        return error("100007", "查无数据");
    }
    let fate = if c.cancelled {
        &Fate::NoAnswer
    } else {
        &c.fate
    };
    reply(json!({
        "statusCode": "000000",
        "CallResult": {
            "callSid": call_sid,
            "state": fate.state(),
            "callTime": now_beijing().format("%Y-%m-%d %H:%M:%S").to_string(),
            "duration": fate.talk_s().to_string(),
        }
    }))
}

async fn account_info(
    State(fake): State<FakeRonglian>,
    Path(sid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err((code, msg)) = fake.check(Under::Main, &sid, &headers, query.as_deref()) {
        return error(code, msg);
    }
    reply(json!({
        "statusCode": "000000",
        "Account": {
            "friendlyName": "waihu test",
            "type": "1",
            "status": "1",
            "dateCreated": "2024-01-01 12:00:00",
            "dateUpdated": "2024-01-01 12:00:00",
            "balance": "100.00",
        }
    }))
}
