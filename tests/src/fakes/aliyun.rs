//! A local Alibaba Cloud Contact Center (CCC 2020-07-01): the RPC endpoint `POST /` answering
//! MakeCall, GetCallDetailRecord, ListCallDetailRecords and ReleaseCall as CCC does (`Code`,
//! `HttpStatusCode`, `Message`, `RequestId`, `Data`), behind Alibaba's two request signatures,
//! both checked here with the `hmac`/`sha1`/`sha2` crates and an encoder of its own (not the
//! code under test): RPC signature V1 (`Signature` over the query) and ACS3-HMAC-SHA256 (the
//! `Authorization` header), with the gateway's refusals (`InvalidAccessKeyId.NotFound`,
//! `SignatureDoesNotMatch`, `SignatureNonceUsed`, `InvalidTimeStamp.Expired`, ...).
//!
//! Each call's fate is decided from its number and how often it was called; a call's detail
//! record appears a little after it ends (until then GetCallDetailRecord says
//! `NotExists.ContactId`). Callbacks go to the one URL the operator set on the instance
//! ([`FakeAliyun::set_callback_url`]), in seed 003's JSON shape, in order, twice, final first,
//! late, naming the call only by its tags, or not at all (so only polling finds the end);
//! answered calls in order also get a recording callback. Some MakeCall requests are throttled
//! (`Throttling.User`). Every decision is logged.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{http::StatusCode, routing::post, Router};
use serde_json::{json, Value};

use super::{bind, deliver, digit, serve};

mod actions;
mod gateway;

pub use gateway::{acs3_signature, pct, v1_signature};

/// The API version the fake serves.
pub const VERSION: &str = "2020-07-01";

/// What the fake decided for one MakeCall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Answered, talked this many seconds; released with this reason ("" or a 200).
    Answered { talk_s: u64, reason: &'static str },
    /// `486-Busy Here`.
    Busy,
    /// `480-Temporarily Unavailable`.
    NoAnswer,
    /// `487-Request Terminated` (CCC gave up ringing).
    Cancelled,
    /// `404-Not Found`.
    Unallocated,
    /// `603-Decline`.
    Declined,
    /// `503-Service Unavailable`.
    Unavailable,
    /// Not answered, released with no reason at all.
    NoReason,
    /// MakeCall refused: `Parameter.Invalid` on `Callee`. No job, no callbacks.
    Refused,
    /// Answered and held until ReleaseCall.
    Held,
}

impl Fate {
    pub fn answered(&self) -> bool {
        matches!(self, Fate::Answered { .. } | Fate::Held)
    }

    pub fn talk_s(&self) -> u64 {
        match self {
            Fate::Answered { talk_s, .. } => *talk_s,
            _ => 0,
        }
    }

    /// The `ReleaseReason` of its detail record and of its Released callback.
    pub fn release_reason(&self) -> &'static str {
        match self {
            Fate::Answered { reason, .. } => reason,
            Fate::Busy => "486-Busy Here",
            Fate::NoAnswer => "480-Temporarily Unavailable",
            Fate::Cancelled | Fate::Held => "487-Request Terminated",
            Fate::Unallocated => "404-Not Found",
            Fate::Declined => "603-Decline",
            Fate::Unavailable => "503-Service Unavailable",
            Fate::NoReason | Fate::Refused => "",
        }
    }

    /// Whether the callee's phone rang (a Ringing callback).
    fn rings(&self) -> bool {
        !matches!(
            self,
            Fate::Busy | Fate::Unallocated | Fate::Unavailable | Fate::Refused
        )
    }
}

/// How a call's callbacks are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    InOrder,
    /// Every callback twice.
    Twice,
    /// Released first, then the rest, then Released again.
    FinalFirst,
    /// In order, but seconds later (after polling has most likely settled the call).
    Late,
    /// In order, without `jobId`/`callId`: only the tags (our call id) name the call.
    TagsOnly,
    /// None: only polling learns the outcome.
    Silent,
}

/// The request signature a call (or any request) was verified with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    V1,
    Acs3,
}

/// One MakeCall the fake accepted or refused.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Empty for a refused call.
    pub job_id: String,
    pub callee: String,
    pub caller: String,
    pub tags: String,
    pub scheme: Scheme,
    pub fate: Fate,
    pub delivery: Delivery,
    pub nth: u32,
    /// Synthetic call times (Unix ms) of its detail record.
    pub start_ms: u64,
    pub established_ms: u64,
    pub release_ms: u64,
    /// Its detail record can be read.
    pub cdr_ready: bool,
    pub hung_up: bool,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Placed>,
    by_job: HashMap<String, usize>,
    tries: HashMap<String, u32>,
    nonces: HashSet<String>,
    make_call_requests: u64,
    throttled: u64,
    refused_auth: u64,
    verified: HashMap<&'static str, u64>,
    actions: HashMap<String, u64>,
    releases: Vec<String>,
    callbacks_sent: u64,
    callbacks_failed: u64,
    bad_replies: u64,
}

/// The decision rule: from the callee and the how-many-th call to it.
pub type Decide = fn(&str, u32) -> (Fate, Delivery);

/// The default mix, from the callee's last two digits `d2 d` and the attempt:
/// d 0-3 answered; 4 busy then answered; 5 busy; 6 no answer; 7 unallocated (d2 even) or
/// cancelled (odd); 8 service unavailable then declined; 9 refused by MakeCall (d2 9),
/// released without a reason (d2 8) or answered. Delivery by d2: 0 silent, 1 twice, 2 final
/// first, 3 late, 4 tags only, else in order.
pub fn default_decide(callee: &str, nth: u32) -> (Fate, Delivery) {
    let (d, d2) = (digit(callee, 0), digit(callee, 1));
    let reason = if d2 % 2 == 0 { "200-OK" } else { "" };
    let fate = match (d, nth) {
        (0..=3, _) => Fate::Answered {
            talk_s: 5 + (d * 7 + d2 * 3) % 50,
            reason,
        },
        (4, 1) => Fate::Busy,
        (4, _) => Fate::Answered { talk_s: 9, reason },
        (5, _) => Fate::Busy,
        (6, _) => Fate::NoAnswer,
        (7, _) if d2 % 2 == 0 => Fate::Unallocated,
        (7, _) => Fate::Cancelled,
        (8, 1) => Fate::Unavailable,
        (8, _) => Fate::Declined,
        (9, _) if d2 == 9 => Fate::Refused,
        (9, _) if d2 == 8 => Fate::NoReason,
        _ => Fate::Answered {
            talk_s: 30 + d2,
            reason,
        },
    };
    let delivery = match d2 {
        0 => Delivery::Silent,
        1 => Delivery::Twice,
        2 => Delivery::FinalFirst,
        3 => Delivery::Late,
        4 => Delivery::TagsOnly,
        _ => Delivery::InOrder,
    };
    (fate, delivery)
}

#[derive(Clone)]
pub struct FakeAliyun {
    pub instance_id: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    /// What the operator put in the callback URL (`?token=`).
    pub webhook_token: String,
    /// The instance's number, as CCC spells it (national).
    pub caller: String,
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    callback_url: Arc<Mutex<Option<String>>>,
    http: reqwest::Client,
    decide: Decide,
    /// Before a call's end is known.
    delay: Duration,
    /// From a call's end to its detail record.
    cdr_lag: Duration,
    /// How late `Delivery::Late` callbacks come.
    late: Duration,
    /// Every this-many-th MakeCall request is throttled (0: none).
    throttle_every: Arc<AtomicU64>,
}

impl FakeAliyun {
    pub async fn start(decide: Decide) -> FakeAliyun {
        let (listener, addr) = bind().await;
        let fake = FakeAliyun {
            instance_id: format!("ccc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            access_key_id: format!("LTAI5t{}", &uuid::Uuid::new_v4().simple().to_string()[..18]),
            access_key_secret: uuid::Uuid::new_v4().simple().to_string()[..30].to_string(),
            webhook_token: format!("wh-{}", uuid::Uuid::new_v4().simple()),
            caller: "02161234567".into(),
            addr,
            inner: Arc::default(),
            callback_url: Arc::default(),
            http: reqwest::Client::new(),
            decide,
            delay: Duration::from_millis(40),
            cdr_lag: Duration::from_millis(150),
            late: Duration::from_secs(4),
            throttle_every: Arc::default(),
        };
        let app = Router::new()
            .route("/", post(actions::rpc).get(actions::rpc))
            .with_state(fake.clone());
        serve(listener, app);
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The status callback URL the operator configures on the instance (the recording one is
    /// the same with `/recording`).
    pub fn set_callback_url(&self, url: &str) {
        *self.callback_url.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.to_string());
    }

    /// Throttles every `n`-th MakeCall request from now on (`Throttling.User`; 0: none).
    pub fn throttle_every(&self, n: u64) {
        self.throttle_every.store(n, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every MakeCall accepted or refused (not throttled), in order.
    pub fn calls(&self) -> Vec<Placed> {
        self.lock().calls.clone()
    }

    /// Requests refused for their key or signature.
    pub fn refused_auth(&self) -> u64 {
        self.lock().refused_auth
    }

    pub fn throttled(&self) -> u64 {
        self.lock().throttled
    }

    /// Requests whose signature checked, by scheme.
    pub fn verified(&self, scheme: Scheme) -> u64 {
        let key = match scheme {
            Scheme::V1 => "v1",
            Scheme::Acs3 => "acs3",
        };
        self.lock().verified.get(key).copied().unwrap_or(0)
    }

    /// How many requests of `action` were answered after their signature checked.
    pub fn action_count(&self, action: &str) -> u64 {
        self.lock().actions.get(action).copied().unwrap_or(0)
    }

    /// JobIds ReleaseCall was asked to end.
    pub fn releases(&self) -> Vec<String> {
        self.lock().releases.clone()
    }

    pub fn callbacks_sent(&self) -> u64 {
        self.lock().callbacks_sent
    }

    /// Callbacks still refused after every retry.
    pub fn callbacks_failed(&self) -> u64 {
        self.lock().callbacks_failed
    }

    /// Accepted callbacks whose reply was not seed 003's `{"success":true}`.
    pub fn bad_replies(&self) -> u64 {
        self.lock().bad_replies
    }

    /// The gateway's checks, the nonce never seen before included; counted.
    fn authenticate(
        &self,
        req: &gateway::Request<'_>,
    ) -> Result<gateway::Checked, gateway::Refusal> {
        let keys = gateway::Keys {
            access_key_id: &self.access_key_id,
            access_key_secret: &self.access_key_secret,
        };
        let checked = gateway::check(&keys, req).inspect_err(|refusal| {
            if refusal.auth {
                self.lock().refused_auth += 1;
            }
        })?;
        let mut g = self.lock();
        if !g.nonces.insert(checked.nonce.clone()) {
            g.refused_auth += 1;
            return Err(gateway::Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "SignatureNonceUsed",
                message: "Specified signature nonce was used already.".into(),
                auth: true,
            });
        }
        let key = match checked.scheme {
            Scheme::V1 => "v1",
            Scheme::Acs3 => "acs3",
        };
        *g.verified.entry(key).or_default() += 1;
        Ok(checked)
    }
}

impl FakeAliyun {
    /// Sends one callback as JSON, retrying a few times while it is refused (the call may not
    /// be known yet), as a provider would.
    async fn callback(&self, url: &str, body: Value) {
        let body = body.to_string();
        let request = || {
            self.http
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone())
        };
        let pause = |attempt: u32| Duration::from_millis(150 * u64::from(attempt + 1));
        let taken = deliver(8, pause, request, |status, reply| {
            let mut g = self.lock();
            g.callbacks_sent += 1;
            let taken = (200..300).contains(&status);
            if taken && serde_json::from_str::<Value>(reply).ok() != Some(json!({"success": true}))
            {
                g.bad_replies += 1;
            }
            taken
        })
        .await;
        if !taken {
            self.lock().callbacks_failed += 1;
        }
    }

    /// Plays an accepted call: its end (and, a little later, its detail record), and its
    /// callbacks as its delivery says.
    async fn play(self, idx: usize) {
        tokio::time::sleep(self.delay).await;
        let c = {
            let g = self.lock();
            g.calls[idx].clone()
        };
        if c.fate != Fate::Held {
            let lag = self.cdr_lag;
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(lag).await;
                if let Some(c) = me.lock().calls.get_mut(idx) {
                    c.cdr_ready = true;
                }
            });
        }
        let Some(url) = self
            .callback_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let event = |name: &str| {
            let mut b = json!({
                "instanceId": self.instance_id, "callId": c.job_id, "jobId": c.job_id,
                "event": name, "eventTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "caller": c.caller, "callee": c.callee, "agentId": "", "tags": c.tags
            });
            if name == "Released" {
                b["releaseReason"] = json!(c.fate.release_reason());
                b["duration"] = json!(c.fate.talk_s());
            }
            if c.delivery == Delivery::TagsOnly {
                let o = b.as_object_mut().expect("an object");
                o.remove("jobId");
                o.remove("callId");
            }
            b
        };
        let mut steps = vec![event("Dialing")];
        if c.fate.rings() {
            steps.push(event("Ringing"));
        }
        if c.fate.answered() {
            steps.push(event("Answered"));
        }
        if c.fate != Fate::Held {
            steps.push(event("Released"));
        }
        match c.delivery {
            Delivery::Silent => {}
            Delivery::InOrder | Delivery::TagsOnly => {
                for s in steps {
                    self.callback(&url, s).await;
                }
                if c.delivery == Delivery::InOrder && c.fate.answered() && c.fate != Fate::Held {
                    let recording = json!({
                        "instanceId": self.instance_id, "callId": c.job_id,
                        "recordingUrl": format!("https://ccc-record.oss-cn-shanghai.aliyuncs.com/{}.wav", c.job_id),
                        "recordingDuration": c.fate.talk_s(), "recordingSize": c.fate.talk_s() * 16_000,
                        "recordingTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
                    });
                    self.callback(&url.replacen("/status", "/recording", 1), recording)
                        .await;
                }
            }
            Delivery::Twice => {
                for s in steps {
                    self.callback(&url, s.clone()).await;
                    self.callback(&url, s).await;
                }
            }
            Delivery::FinalFirst => {
                let last = steps.pop().expect("a step");
                self.callback(&url, last.clone()).await;
                for s in steps {
                    self.callback(&url, s).await;
                }
                self.callback(&url, last).await;
            }
            Delivery::Late => {
                tokio::time::sleep(self.late).await;
                for s in steps {
                    self.callback(&url, s).await;
                }
            }
        }
    }
}
