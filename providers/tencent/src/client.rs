//! The CCC API client behind [`CloudApi`]: JSON POSTs to the API host signed with
//! TC3-HMAC-SHA256 ([`crate::sign`]), replies read from their `Response` envelope, errors
//! (`Response.Error{Code,Message}`, sent with HTTP 200) sorted into [`ApiError`], and the CDR
//! push read and authenticated by HTTP basic auth. See the crate docs for the line's settings.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use waihu_events::pb;
use waihu_provider_core::cloud::{
    constant_time_eq, ApiError, BoxFuture, CloudApi, Hook, HookError, HookReply, LineConfig,
    Placed, Report, OUR_CALL_PREFIX,
};
use waihu_provider_core::Signal;
use waihu_telephony::hangup;

use crate::{cdr, sign};

mod campaign;
pub use campaign::{campaign_body, DEFAULT_CAMPAIGN_TTL_SECONDS};

/// The official API host (the international site is `https://ccc.intl.tencentcloudapi.com`).
pub const DEFAULT_BASE_URL: &str = "https://ccc.tencentcloudapi.com";
/// The CCC API version every request names (`X-TC-Version`).
pub const API_VERSION: &str = "2020-02-10";
/// The service name in the credential scope.
pub const SERVICE: &str = "ccc";
/// The body's content type, as sent and as signed.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// How long one API request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call's task may wait to start before CCC drops it (`NotAfter`), by default.
pub const DEFAULT_TASK_TTL_SECONDS: i64 = 3600;
/// How far either side of the task's start `DescribeTelCdr` looks for the call's CDR.
const CDR_WINDOW_SECONDS: i64 = 300;
/// The reply CCC expects to a push it delivered: anything else makes it push again (3 times).
pub const HOOK_REPLY: &str = r#"{"ErrCode":0}"#;

/// The Tencent CCC client.
#[derive(Clone)]
pub struct Tencent {
    http: reqwest::Client,
}

impl Tencent {
    pub fn new(http: reqwest::Client) -> Self {
        Tencent { http }
    }
}

/// A request ready to send: where, its headers (`Host` is the one the URL gives, as signed) and
/// its body.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A whole-number setting.
fn number_setting(line: &LineConfig, name: &str) -> Result<Option<i64>, ApiError> {
    match line
        .config
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::Config(format!(
                "line {}: provider_config {name:?} is not a whole number",
                line.line_id
            ))
        }),
    }
}

/// The line's `sdk_app_id`.
pub fn sdk_app_id(line: &LineConfig) -> Result<u64, ApiError> {
    line.setting("sdk_app_id")?.trim().parse().map_err(|_| {
        ApiError::Config(format!(
            "line {}: provider_config \"sdk_app_id\" is not a CCC application id",
            line.line_id
        ))
    })
}

/// What an outbound call runs once answered: `IvrId` and/or `AIAgentId` (at least one).
fn call_flow(line: &LineConfig) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let ivr = number_setting(line, "ivr_id")?;
    let agent = number_setting(line, "ai_agent_id")?;
    if ivr.is_none() && agent.is_none() {
        return Err(ApiError::Config(format!(
            "line {}: provider_config needs \"ivr_id\" or \"ai_agent_id\" (what an answered call runs)",
            line.line_id
        )));
    }
    Ok((ivr, agent))
}

/// A number as CCC writes them: E.164's `+` becomes the international prefix `00`
/// (`+8613800000001` → `008613800000001`); anything else is sent as given.
pub fn ccc_number(number: &str) -> String {
    let n = number.trim();
    match n.strip_prefix('+') {
        Some(rest) => format!("00{rest}"),
        None => n.to_string(),
    }
}

/// The `Host` a request to `url` carries (with its port when not the scheme's default), which
/// is what is signed.
fn host_of(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// Builds the signed request for `action` with `body`, at `timestamp` (Unix seconds).
pub fn build_request(
    line: &LineConfig,
    action: &str,
    body: &Value,
    timestamp: i64,
) -> Result<SignedRequest, ApiError> {
    let base = line.setting_or("base_url", DEFAULT_BASE_URL).trim();
    let url = reqwest::Url::parse(base).map_err(|e| {
        ApiError::Config(format!(
            "line {}: provider_config \"base_url\" {base:?}: {e}",
            line.line_id
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https")
        || url.path() != "/"
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err(ApiError::Config(format!(
            "line {}: provider_config \"base_url\" must be the API host alone (like {DEFAULT_BASE_URL})",
            line.line_id
        )));
    }
    let host = host_of(&url).ok_or_else(|| {
        ApiError::Config(format!(
            "line {}: provider_config \"base_url\" has no host",
            line.line_id
        ))
    })?;
    let secret_id = line.setting("secret_id")?.trim();
    let secret_key = line.secret("secret_key")?;
    let payload =
        serde_json::to_vec(body).map_err(|e| ApiError::Config(format!("{action} body: {e}")))?;
    let signed = sign::tc3_sign(
        secret_id,
        secret_key,
        SERVICE,
        &host,
        timestamp,
        CONTENT_TYPE,
        &payload,
    );
    let mut headers = vec![
        ("authorization", signed.authorization),
        ("content-type", CONTENT_TYPE.to_string()),
        ("x-tc-action", action.to_string()),
        ("x-tc-version", API_VERSION.to_string()),
        ("x-tc-timestamp", timestamp.to_string()),
    ];
    // CCC's actions take no region ("not required for this API"); sent when the line names one.
    if let Some(region) = line
        .config
        .get("region")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        headers.push(("x-tc-region", region.to_string()));
    }
    Ok(SignedRequest {
        url: url.to_string(),
        headers,
        body: payload,
    })
}

/// How an API error code is taken.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sort {
    Config,
    Transient,
    /// This call is refused with this Q.850 cause.
    Refused(u32),
    /// A bad phone number: the callee's (refused, 28) unless the message names the caller.
    Number,
    /// A bad parameter: the callee's (refused, 28) when the message names the callee, else the
    /// line's settings.
    Parameter,
}

/// API error codes (exact, or a prefix ending before `.`) and how each is taken; the first match
/// wins. Codes from the CCC error list (`tencentcloud-sdk-go` `ccc/v20200210/errors.go`) and the
/// common ones every Tencent Cloud API returns.
const API_ERRORS: &[(&str, Sort)] = &[
    ("AuthFailure", Sort::Config),
    ("UnauthorizedOperation", Sort::Config),
    ("OperationDenied", Sort::Config),
    ("RequestLimitExceeded", Sort::Transient),
    ("InternalError", Sort::Transient),
    ("ResourceUnavailable", Sort::Transient),
    ("ResourceInsufficient", Sort::Transient),
    ("LimitExceeded.BasePackageExpired", Sort::Config),
    ("LimitExceeded.InsufficientLicense", Sort::Config),
    ("LimitExceeded", Sort::Transient),
    // Refusals of this callee, causes as for the CDR's EndStatus of the same meaning.
    ("FailedOperation.CalleeIsBlackUser", Sort::Refused(21)),
    ("FailedOperation.CalleeIsLimited", Sort::Refused(21)),
    ("FailedOperation.CalloutRuleBlindArea", Sort::Refused(63)),
    ("FailedOperation.CalloutRuleNotWorkTime", Sort::Refused(41)),
    (
        "FailedOperation.CalloutRuleMaxCallCountCalleeIntervalTime",
        Sort::Refused(34),
    ),
    (
        "FailedOperation.CalloutRuleMaxCallCountCalleePerDayAppID",
        Sort::Refused(34),
    ),
    ("FailedOperation.CallOutFailed", Sort::Refused(41)),
    ("FailedOperation.CallerOverFrequency", Sort::Transient),
    ("FailedOperation.AIConcurrentOverFrequency", Sort::Transient),
    ("FailedOperation.AcquireQuota", Sort::Transient),
    ("InvalidParameter.InvalidPhoneNumber", Sort::Number),
    ("InvalidParameter.IllegalPhoneNumber", Sort::Number),
    ("InvalidParameterValue.PhoneNumInvalid", Sort::Number),
    ("InvalidParameter.InstanceNotExist", Sort::Config),
    ("InvalidParameterValue.InstanceNotExist", Sort::Config),
    ("InvalidParameterValue.ExperienceAccount", Sort::Config),
    ("InvalidParameterValue", Sort::Parameter),
    ("InvalidParameter", Sort::Parameter),
];

fn sort_of(code: &str) -> Sort {
    API_ERRORS
        .iter()
        .find(|(key, _)| {
            code == *key
                || code
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .map_or(Sort::Config, |(_, s)| *s)
}

fn names_caller(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("caller") || m.contains("主叫")
}

fn names_callee(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("callee") || m.contains("被叫")
}

/// A `Response.Error` as an [`ApiError`].
pub fn api_error(action: &str, code: &str, message: &str) -> ApiError {
    let text = format!(
        "tencent {action} {code}: {}",
        message.chars().take(200).collect::<String>()
    );
    let refused = |q850: u32| ApiError::Refused {
        cause: hangup::cause(q850, format!("tencent:error:{code}")),
        message: text.clone(),
    };
    match sort_of(code) {
        Sort::Config => ApiError::Config(text),
        Sort::Transient => ApiError::Transient(text),
        Sort::Refused(q850) => refused(q850),
        Sort::Number if names_caller(message) => ApiError::Config(text),
        Sort::Number => refused(28),
        Sort::Parameter if names_callee(message) && !names_caller(message) => refused(28),
        Sort::Parameter => ApiError::Config(text),
    }
}

/// The `Response` object of a reply, or the error it carries.
pub fn parse_reply(action: &str, status: u16, body: &str) -> Result<Value, ApiError> {
    let not_envelope = || {
        let text = format!(
            "tencent {action}: HTTP {status}, {}",
            body.chars().take(200).collect::<String>()
        );
        if status == 429 || status >= 500 {
            ApiError::Transient(text)
        } else {
            ApiError::Unknown(text)
        }
    };
    let v: Value = serde_json::from_str(body).map_err(|_| not_envelope())?;
    let Some(resp) = v.get("Response").filter(|r| r.is_object()) else {
        return Err(not_envelope());
    };
    if let Some(err) = resp.get("Error").filter(|e| !e.is_null()) {
        let code = err
            .get("Code")
            .and_then(Value::as_str)
            .unwrap_or("(no code)");
        let message = err
            .get("Message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        return Err(api_error(action, code, message));
    }
    if !(200..300).contains(&status) {
        return Err(not_envelope());
    }
    Ok(resp.clone())
}

fn http_error(action: &str, e: reqwest::Error) -> ApiError {
    if e.is_connect() || e.is_builder() {
        ApiError::Transient(format!("tencent {action}: unreachable: {e}"))
    } else {
        ApiError::Unknown(format!("tencent {action}: {e}"))
    }
}

/// The `CreateAutoCalloutTask` body placing `req` as a task of one callee, tried once, starting
/// at `now`. `UUI` (for the task and the callee) is our reference, `waihu-call:<call id>`,
/// which CCC echoes in the call's CDR.
pub fn dial_body(line: &LineConfig, req: &pb::CallRequested, now: i64) -> Result<Value, ApiError> {
    let app = sdk_app_id(line)?;
    let (ivr, agent) = call_flow(line)?;
    let caller = line.caller_for(req);
    if caller.trim().is_empty() {
        return Err(ApiError::Config(format!(
            "line {} has no caller number",
            line.line_id
        )));
    }
    let callee = ccc_number(&req.phone);
    let reference = format!("{OUR_CALL_PREFIX}{}", req.call_id);
    let ttl = number_setting(line, "task_ttl_seconds")?
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_TASK_TTL_SECONDS);
    let mut body = json!({
        "SdkAppId": app,
        "NotBefore": now,
        "NotAfter": now.saturating_add(ttl),
        "Callees": [callee],
        "Callers": [ccc_number(caller)],
        "Name": format!("waihu {}", req.call_id),
        "Description": format!("waihu call {} attempt {}", req.call_id, req.attempt),
        "Tries": 1,
        "UUI": reference,
        "CalleeAttributes": [{"Callee": callee, "UUI": reference}],
    });
    with_call_flow(line, &mut body, ivr, agent)?;
    Ok(body)
}

/// The reply to a task action (stop, pause, resume): done, or refused because the task is
/// already in that state or over, which leaves nothing to do either.
fn done_or_already(reply: Result<(Value, String), ApiError>) -> Result<(), ApiError> {
    match reply {
        Ok(_) => Ok(()),
        Err(ApiError::Config(m)) if m.contains("FailedOperation.CurStateNotAllowModify") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Adds what an answered call runs (`IvrId`, `AIAgentId`) and the line's ring timeout to a
/// `CreateAutoCalloutTask` body.
fn with_call_flow(
    line: &LineConfig,
    body: &mut Value,
    ivr: Option<i64>,
    agent: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(ivr) = ivr {
        body["IvrId"] = json!(ivr);
    }
    if let Some(agent) = agent {
        body["AIAgentId"] = json!(agent);
    }
    if let Some(ring) = number_setting(line, "max_ring_seconds")?.filter(|s| *s > 0) {
        body["MaxRingTimeoutSecond"] = json!(ring);
    }
    Ok(())
}

/// A provider call id (the task id) as the number the API takes.
fn task_id(line: &LineConfig, provider_call_id: &str) -> Result<u64, ApiError> {
    provider_call_id.trim().parse().map_err(|_| {
        ApiError::Config(format!(
            "line {}: {provider_call_id:?} is not a CCC task id",
            line.line_id
        ))
    })
}

/// What `DescribeAutoCalloutTask` says of the task's (only) callee.
#[derive(Debug, Clone, PartialEq)]
pub struct CalleeView {
    /// The task's state: 0 initial, 1 running, 2 completed, 3 ending, 4 terminated, 5 paused.
    pub task_state: Option<i64>,
    /// The callee's state: 0 initial, 1 answered, 2 not answered, 3 calling, 4 waiting to retry.
    pub state: Option<i64>,
    /// The callee's sessions, oldest first.
    pub sessions: Vec<String>,
    pub not_before: Option<i64>,
}

/// Reads a `DescribeAutoCalloutTask` response.
pub fn callee_view(task: &Value) -> CalleeView {
    let callee = task
        .get("Callees")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .cloned()
        .unwrap_or(Value::Null);
    CalleeView {
        task_state: cdr::int_field(task, "State"),
        state: cdr::int_field(&callee, "State"),
        sessions: callee
            .get("Sessions")
            .and_then(Value::as_array)
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        not_before: cdr::int_field(task, "NotBefore"),
    }
}

/// Callee states.
const CALLEE_ANSWERED: i64 = 1;
const CALLEE_NOT_ANSWERED: i64 = 2;
const CALLEE_CALLING: i64 = 3;
/// Task states after which nothing more is called.
const TASK_COMPLETED: i64 = 2;
const TASK_TERMINATED: i64 = 4;

/// What the task says alone, before (or without) its CDR: answered for an answered callee; a
/// release for a task that ended without its callee ever being called.
fn task_reports(provider_call_id: &str, view: &CalleeView, raw: &str) -> Vec<Report> {
    let report = |signal| Report {
        provider_call_id: provider_call_id.to_string(),
        signal,
        raw: raw.to_string(),
    };
    match (view.state, view.task_state) {
        (Some(CALLEE_ANSWERED), _) => vec![report(Signal::Answered)],
        (Some(CALLEE_NOT_ANSWERED | CALLEE_CALLING), _) => vec![],
        (state, Some(task @ (TASK_COMPLETED | TASK_TERMINATED))) if view.sessions.is_empty() => {
            vec![report(Signal::unanswered(hangup::cause(
                41,
                format!(
                    "tencent:task-state:{task}/callee-state:{}",
                    state.map_or("none".to_string(), |s| s.to_string())
                ),
            )))]
        }
        _ => vec![],
    }
}

impl Tencent {
    /// Sends `action` with `body`: the reply's `Response` object and its text (scrubbed).
    async fn call(
        &self,
        line: &LineConfig,
        action: &str,
        body: Value,
    ) -> Result<(Value, String), ApiError> {
        let req = build_request(line, action, &body, chrono::Utc::now().timestamp())?;
        let mut rb = self
            .http
            .post(&req.url)
            .timeout(REQUEST_TIMEOUT)
            .body(req.body);
        for (k, v) in &req.headers {
            rb = rb.header(*k, v);
        }
        let resp = rb.send().await.map_err(|e| http_error(action, e))?;
        let status = resp.status().as_u16();
        let text = line.scrub(&resp.text().await.map_err(|e| http_error(action, e))?);
        let v = parse_reply(action, status, &text).map_err(|e| scrubbed(line, e))?;
        Ok((v, text))
    }

    /// The CDR of `session`, if CCC has it yet.
    async fn cdr(
        &self,
        line: &LineConfig,
        app: u64,
        session: &str,
        around: i64,
    ) -> Result<Option<Value>, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let (resp, _) = self
            .call(
                line,
                "DescribeTelCdr",
                json!({
                    "SdkAppId": app,
                    "StartTimeStamp": around.min(now).saturating_sub(CDR_WINDOW_SECONDS),
                    "EndTimeStamp": now.saturating_add(CDR_WINDOW_SECONDS),
                    "PageSize": 10,
                    "PageNumber": 0,
                    "SessionIds": [session],
                }),
            )
            .await?;
        let list = resp
            .get("TelCdrList")
            .and_then(Value::as_array)
            .or_else(|| resp.get("TelCdrs").and_then(Value::as_array));
        Ok(list.and_then(|l| {
            l.iter()
                .find(|c| cdr::str_field(c, "SessionId") == Some(session))
                .cloned()
        }))
    }
}

/// An error with every credential value taken out of its text.
fn scrubbed(line: &LineConfig, e: ApiError) -> ApiError {
    match e {
        ApiError::Refused { cause, message } => ApiError::Refused {
            cause,
            message: line.scrub(&message),
        },
        ApiError::Config(m) => ApiError::Config(line.scrub(&m)),
        ApiError::Transient(m) => ApiError::Transient(line.scrub(&m)),
        ApiError::Unknown(m) => ApiError::Unknown(line.scrub(&m)),
    }
}

/// The Basic credentials of an `Authorization` header: (user, password).
fn basic_auth(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The JSON object a push carries.
fn push_body(hook: &Hook<'_>) -> Result<Value, HookError> {
    let v: Value = serde_json::from_slice(hook.body)
        .map_err(|e| HookError::Malformed(format!("push body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(HookError::Malformed(
            "push body is not a JSON object".into(),
        ));
    }
    Ok(v)
}

impl CloudApi for Tencent {
    fn kind(&self) -> &'static str {
        "tencent"
    }

    fn requires(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["sdk_app_id", "secret_id"], &["secret_key"])
    }

    fn dial<'a>(
        &'a self,
        line: &'a LineConfig,
        req: &'a pb::CallRequested,
        _callback_url: &'a str,
    ) -> BoxFuture<'a, Result<Placed, ApiError>> {
        // CCC pushes CDRs to the one URL set in its console for the application (see the crate
        // docs), so there is no per-call callback URL to give.
        Box::pin(async move {
            let body = dial_body(line, req, chrono::Utc::now().timestamp())?;
            let (resp, raw) = self.call(line, "CreateAutoCalloutTask", body).await?;
            let task = cdr::int_field(&resp, "TaskId").ok_or_else(|| {
                ApiError::Unknown("tencent CreateAutoCalloutTask reply has no TaskId".into())
            })?;
            Ok(Placed {
                provider_call_id: task.to_string(),
                raw,
            })
        })
    }

    fn status<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Report>, ApiError>> {
        Box::pin(async move {
            let app = sdk_app_id(line)?;
            let task = task_id(line, provider_call_id)?;
            let (resp, raw) = self
                .call(
                    line,
                    "DescribeAutoCalloutTask",
                    json!({"SdkAppId": app, "TaskId": task}),
                )
                .await?;
            let view = callee_view(&resp);
            let finished = matches!(view.state, Some(CALLEE_ANSWERED | CALLEE_NOT_ANSWERED));
            if let (true, Some(session)) = (finished, view.sessions.last()) {
                let around = view
                    .not_before
                    .unwrap_or_else(|| chrono::Utc::now().timestamp());
                if let Some(found) = self.cdr(line, app, session, around).await? {
                    let text = line.scrub(&found.to_string());
                    if let Some(reports) = cdr::reports(provider_call_id, &found, &text) {
                        return Ok(reports);
                    }
                }
            }
            Ok(task_reports(provider_call_id, &view, &raw))
        })
    }

    fn hang_up<'a>(
        &'a self,
        line: &'a LineConfig,
        provider_call_id: &'a str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let app = sdk_app_id(line)?;
            let task = task_id(line, provider_call_id)?;
            done_or_already(
                self.call(
                    line,
                    "StopAutoCalloutTask",
                    json!({"SdkAppId": app, "TaskId": task}),
                )
                .await,
            )
        })
    }

    fn test<'a>(&'a self, line: &'a LineConfig) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            let app = sdk_app_id(line)?;
            call_flow(line)?;
            let (resp, _) = self
                .call(
                    line,
                    "DescribeAutoCalloutTasks",
                    json!({"SdkAppId": app, "PageSize": 1, "PageNumber": 0}),
                )
                .await?;
            Ok(format!(
                "CCC application {app} answers: {} auto-callout tasks",
                cdr::int_field(&resp, "TotalCount").unwrap_or(0)
            ))
        })
    }

    fn parse_hook(&self, hook: &Hook<'_>) -> Result<Vec<Report>, HookError> {
        if let Some(version) = hook.query_param("version") {
            if version.trim() != "1" {
                return Err(HookError::Malformed(format!(
                    "push version {version:?} (1 is read)"
                )));
            }
        }
        let action = hook
            .query_param("action")
            .ok_or_else(|| HookError::Malformed("push without ?action=".into()))?;
        let body = push_body(hook)?;
        let session = cdr::str_field(&body, "SessionId")
            .ok_or_else(|| HookError::Malformed("push without SessionId".into()))?
            .to_string();
        // The call: our reference when CCC echoes it, else its session (which we never learn
        // at dial time, so such a push is of no call we know).
        let id = cdr::our_reference(&body).unwrap_or_else(|| session.clone());
        match action.as_str() {
            "cdr" => {
                if cdr::int_field(&body, "Direction") == Some(0) {
                    return Err(HookError::Ignored {
                        provider_call_id: id,
                        why: format!("inbound CDR of session {session}"),
                    });
                }
                let raw = String::from_utf8_lossy(hook.body);
                cdr::reports(&id, &body, &raw).ok_or_else(|| {
                    HookError::Malformed("CDR without EndStatus or EndStatusString".into())
                })
            }
            other => Err(HookError::Ignored {
                provider_call_id: id,
                why: format!("{other} push of session {session}"),
            }),
        }
    }

    fn verify_hook(&self, line: &LineConfig, hook: &Hook<'_>) -> bool {
        let (Ok(user), Ok(password)) = (
            line.setting("webhook_user"),
            line.secret("webhook_password"),
        ) else {
            return false;
        };
        let Some((given_user, given_password)) = hook.header("authorization").and_then(basic_auth)
        else {
            return false;
        };
        // Both compared whole, whatever the first says.
        let user_ok = constant_time_eq(given_user.as_bytes(), user.as_bytes());
        let password_ok = constant_time_eq(given_password.as_bytes(), password.as_bytes());
        user_ok & password_ok
    }

    fn hook_reply(&self) -> HookReply {
        HookReply::json(HOOK_REPLY)
    }

    /// A push naming no call of ours (a recording notice, an inbound CDR) comes from the lines
    /// of its application: `sdk_app_id`.
    fn hook_line_match(&self, hook: &Hook<'_>) -> Option<(&'static str, String)> {
        let body = push_body(hook).ok()?;
        let app = match body.get("SdkAppId")? {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => return None,
        };
        Some(("sdk_app_id", app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use waihu_provider_core::{Credentials, Stage};

    /// A CCC line for unit tests (also the campaign module's).
    pub(super) fn line(extra: &[(&str, &str)]) -> LineConfig {
        let mut config: BTreeMap<String, String> = [
            ("sdk_app_id", "1400000001"),
            ("secret_id", "AKIDexample"),
            ("ivr_id", "7"),
            ("webhook_user", "tccc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            config.insert(k.to_string(), v.to_string());
        }
        LineConfig {
            tenant_id: "t".into(),
            line_id: "l1".into(),
            provider: "tencent".into(),
            caller_number: "+862066668888".into(),
            config,
            credentials: Credentials::new(BTreeMap::from([
                ("secret_key".to_string(), "sk-very-secret".to_string()),
                ("webhook_password".to_string(), "hook-pass".to_string()),
            ])),
        }
    }

    fn request() -> pb::CallRequested {
        pb::CallRequested {
            call_id: "0b9d3c5e-1111-4222-8333-444455556666".into(),
            phone: "+8613800000001".into(),
            attempt: 2,
            ..Default::default()
        }
    }

    fn header<'a>(r: &'a SignedRequest, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_dial_body_is_one_callee_tried_once_carrying_our_reference() {
        let b = dial_body(&line(&[]), &request(), 1_700_000_000).expect("body");
        assert_eq!(b["SdkAppId"], json!(1_400_000_001u64));
        assert_eq!(b["NotBefore"], json!(1_700_000_000));
        assert_eq!(b["NotAfter"], json!(1_700_003_600));
        assert_eq!(b["Callees"], json!(["008613800000001"]));
        assert_eq!(b["Callers"], json!(["00862066668888"]));
        assert_eq!(b["Tries"], json!(1));
        assert_eq!(b["IvrId"], json!(7));
        assert!(b.get("AIAgentId").is_none());
        let reference = "waihu-call:0b9d3c5e-1111-4222-8333-444455556666";
        assert_eq!(b["UUI"], json!(reference));
        assert_eq!(
            b["CalleeAttributes"],
            json!([{"Callee": "008613800000001", "UUI": reference}])
        );
        // The request's own caller number wins over the line's; settings add what they name.
        let mut req = request();
        req.caller_number = "+861012345678".into();
        let b = dial_body(
            &line(&[
                ("ai_agent_id", "5845"),
                ("max_ring_seconds", "25"),
                ("task_ttl_seconds", "60"),
            ]),
            &req,
            100,
        )
        .expect("body");
        assert_eq!(b["Callers"], json!(["00861012345678"]));
        assert_eq!(b["AIAgentId"], json!(5845));
        assert_eq!(b["MaxRingTimeoutSecond"], json!(25));
        assert_eq!(b["NotAfter"], json!(160));
    }

    #[test]
    fn dialing_needs_an_app_a_flow_and_numbers() {
        let mut no_flow = line(&[]);
        no_flow.config.remove("ivr_id");
        assert!(matches!(
            dial_body(&no_flow, &request(), 0),
            Err(ApiError::Config(m)) if m.contains("ivr_id")
        ));
        assert!(matches!(
            dial_body(&line(&[("sdk_app_id", "abc")]), &request(), 0),
            Err(ApiError::Config(_))
        ));
        assert!(matches!(
            dial_body(&line(&[("ivr_id", "x7")]), &request(), 0),
            Err(ApiError::Config(_))
        ));
        let mut no_caller = line(&[]);
        no_caller.caller_number.clear();
        assert!(matches!(
            dial_body(&no_caller, &request(), 0),
            Err(ApiError::Config(_))
        ));
    }

    #[test]
    fn requests_are_signed_for_the_host_they_go_to() {
        let body = json!({"SdkAppId": 1, "TaskId": 2});
        let r = build_request(&line(&[]), "DescribeAutoCalloutTask", &body, 1_551_113_065)
            .expect("request");
        assert_eq!(r.url, "https://ccc.tencentcloudapi.com/");
        assert_eq!(r.body, serde_json::to_vec(&body).expect("json"));
        assert_eq!(header(&r, "x-tc-action"), Some("DescribeAutoCalloutTask"));
        assert_eq!(header(&r, "x-tc-version"), Some("2020-02-10"));
        assert_eq!(header(&r, "x-tc-timestamp"), Some("1551113065"));
        assert_eq!(header(&r, "x-tc-region"), None);
        assert_eq!(header(&r, "content-type"), Some(CONTENT_TYPE));
        let want = sign::tc3_sign(
            "AKIDexample",
            "sk-very-secret",
            "ccc",
            "ccc.tencentcloudapi.com",
            1_551_113_065,
            CONTENT_TYPE,
            &r.body,
        );
        assert_eq!(
            header(&r, "authorization"),
            Some(want.authorization.as_str())
        );
        assert!(want
            .authorization
            .starts_with("TC3-HMAC-SHA256 Credential=AKIDexample/2019-02-25/ccc/tc3_request, "));

        let local = build_request(
            &line(&[
                ("base_url", "http://127.0.0.1:4567"),
                ("region", "ap-guangzhou"),
            ]),
            "X",
            &body,
            1,
        )
        .expect("request");
        assert_eq!(local.url, "http://127.0.0.1:4567/");
        assert_eq!(header(&local, "x-tc-region"), Some("ap-guangzhou"));
        let want = sign::tc3_sign(
            "AKIDexample",
            "sk-very-secret",
            "ccc",
            "127.0.0.1:4567",
            1,
            CONTENT_TYPE,
            &local.body,
        );
        assert_eq!(
            header(&local, "authorization"),
            Some(want.authorization.as_str())
        );
        for bad in ["ftp://x", "not a url", "https://h/path", "https://h/?q=1"] {
            assert!(
                matches!(
                    build_request(&line(&[("base_url", bad)]), "X", &body, 1),
                    Err(ApiError::Config(_))
                ),
                "{bad}"
            );
        }
        let mut keyless = line(&[]);
        keyless.credentials = Credentials::default();
        assert!(matches!(
            build_request(&keyless, "X", &body, 1),
            Err(ApiError::Config(m)) if m.contains("secret_key")
        ));
    }

    #[test]
    fn api_errors_are_sorted_into_the_call_the_line_and_later() {
        let e = |code: &str, msg: &str| api_error("CreateAutoCalloutTask", code, msg);
        assert!(matches!(
            e(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated."
            ),
            ApiError::Config(_)
        ));
        assert!(matches!(
            e("AuthFailure.SecretIdNotFound", ""),
            ApiError::Config(_)
        ));
        assert!(matches!(
            e("RequestLimitExceeded", ""),
            ApiError::Transient(_)
        ));
        assert!(matches!(
            e("InternalError.DBError", ""),
            ApiError::Transient(_)
        ));
        assert!(matches!(
            e("LimitExceeded.BasePackageExpired", ""),
            ApiError::Config(_)
        ));
        assert!(matches!(
            e("LimitExceeded.OutOfQuotaMaxCount", ""),
            ApiError::Transient(_)
        ));
        let refused = |err: ApiError| match err {
            ApiError::Refused { cause, .. } => Some((cause.q850, cause.raw)),
            _ => None,
        };
        assert_eq!(
            refused(e(
                "InvalidParameterValue",
                "Callees[0] 00861380000 is invalid"
            )),
            Some((28, "tencent:error:InvalidParameterValue".into()))
        );
        assert_eq!(
            refused(e("InvalidParameter.InvalidPhoneNumber", "bad number")),
            Some((
                28,
                "tencent:error:InvalidParameter.InvalidPhoneNumber".into()
            ))
        );
        assert!(matches!(
            e(
                "InvalidParameter.InvalidPhoneNumber",
                "caller 0086 not bound"
            ),
            ApiError::Config(_)
        ));
        assert!(matches!(
            e("InvalidParameterValue", "IvrId 7 not found"),
            ApiError::Config(_)
        ));
        assert!(matches!(
            e("InvalidParameter.InstanceNotExist", "callee app"),
            ApiError::Config(_)
        ));
        assert_eq!(
            refused(e("FailedOperation.CalleeIsBlackUser", "")).map(|c| c.0),
            Some(21)
        );
        assert_eq!(
            refused(e(
                "FailedOperation.CalloutRuleMaxCallCountCalleePerDayAppID",
                ""
            ))
            .map(|c| c.0),
            Some(34)
        );
        assert!(matches!(
            e("FailedOperation.NoCallOutNumber", ""),
            ApiError::Config(_)
        ));
        assert!(matches!(e("Whatever.New", ""), ApiError::Config(_)));
        // A prefix only matches whole dotted parts.
        assert!(matches!(e("InternalErrorX", ""), ApiError::Config(_)));
    }

    #[test]
    fn replies_are_read_from_their_envelope() {
        let ok =
            parse_reply("A", 200, r#"{"Response":{"TaskId":12,"RequestId":"r"}}"#).expect("ok");
        assert_eq!(ok["TaskId"], json!(12));
        let err = parse_reply(
            "A",
            200,
            r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"no"},"RequestId":"r"}}"#,
        );
        assert!(
            matches!(err, Err(ApiError::Config(m)) if m.contains("AuthFailure.SignatureFailure"))
        );
        assert!(matches!(
            parse_reply("A", 502, "<html>"),
            Err(ApiError::Transient(_))
        ));
        assert!(matches!(
            parse_reply("A", 200, "<html>"),
            Err(ApiError::Unknown(_))
        ));
        assert!(matches!(
            parse_reply("A", 200, "[]"),
            Err(ApiError::Unknown(_))
        ));
        assert!(matches!(
            parse_reply("A", 503, r#"{"Response":{}}"#),
            Err(ApiError::Transient(_))
        ));
    }

    #[test]
    fn numbers_are_written_the_ccc_way() {
        assert_eq!(ccc_number("+8613800000001"), "008613800000001");
        assert_eq!(ccc_number(" 008610086 "), "008610086");
        assert_eq!(ccc_number("13800000001"), "13800000001");
    }

    #[test]
    fn task_views_say_what_they_can_before_the_cdr() {
        let answered = json!({"State": 2, "NotBefore": 5,
            "Callees": [{"Callee": "0086138", "State": 1, "Sessions": ["s-1"]}]});
        let v = callee_view(&answered);
        assert_eq!(
            v,
            CalleeView {
                task_state: Some(2),
                state: Some(1),
                sessions: vec!["s-1".into()],
                not_before: Some(5)
            }
        );
        let r = task_reports("9", &v, "raw");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].signal.stage(), Stage::Answered);
        let calling =
            callee_view(&json!({"State": 1, "Callees": [{"State": 3, "Sessions": ["s"]}]}));
        assert!(task_reports("9", &calling, "").is_empty());
        let never = callee_view(&json!({"State": 4, "Callees": [{"State": 0}]}));
        match &task_reports("9", &never, "")
            .first()
            .expect("a release")
            .signal
        {
            Signal::Released { cause, .. } => {
                assert_eq!(cause.q850, 41);
                assert_eq!(cause.raw, "tencent:task-state:4/callee-state:0");
            }
            other => panic!("{other:?}"),
        }
        for odd in [
            json!({}),
            json!([]),
            json!({"Callees": "x"}),
            json!({"Callees": [7]}),
        ] {
            assert!(
                task_reports("9", &callee_view(&odd), "").is_empty(),
                "{odd}"
            );
        }
    }

    fn hook<'a>(query: &'a str, body: &'a [u8], headers: &'a [(String, String)]) -> Hook<'a> {
        Hook {
            path: "",
            query,
            headers,
            body,
            url: "http://x/api/v1/calls/webhook/tencent",
        }
    }

    #[test]
    fn cdr_pushes_are_read_and_odd_ones_refused_or_ignored() {
        let t = Tencent::new(reqwest::Client::new());
        let body = br#"{"SdkAppId":1400000001,"SessionId":"s-1","Direction":1,
            "UUI":"waihu-call:0b9d3c5e-1111-4222-8333-444455556666","EndStatus":206,
            "EndStatusString":"busy","RingTimestamp":0,"EndedTimestamp":9}"#;
        let r = t
            .parse_hook(&hook("action=cdr&version=1", body, &[]))
            .expect("read");
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].provider_call_id,
            "waihu-call:0b9d3c5e-1111-4222-8333-444455556666"
        );
        assert!(matches!(&r[0].signal, Signal::Released { cause, .. } if cause.q850 == 17));
        // Without our reference the push names only its session.
        let theirs = br#"{"SessionId":"s-2","EndStatus":1,"AcceptTimestamp":3,"Duration":2}"#;
        let r = t
            .parse_hook(&hook("action=cdr", theirs, &[]))
            .expect("read");
        assert!(r.iter().all(|r| r.provider_call_id == "s-2"));
        let inbound = br#"{"SessionId":"s-3","Direction":0,"EndStatus":1}"#;
        assert!(matches!(
            t.parse_hook(&hook("action=cdr&version=1", inbound, &[])),
            Err(HookError::Ignored { provider_call_id, .. }) if provider_call_id == "s-3"
        ));
        let record = br#"{"SdkAppId":1,"RecordId":"r","SessionId":"s-4","RecordURL":"http://r"}"#;
        assert!(matches!(
            t.parse_hook(&hook("action=record&version=1", record, &[])),
            Err(HookError::Ignored { provider_call_id, .. }) if provider_call_id == "s-4"
        ));
        for (query, body) in [
            ("action=cdr", &b"not json"[..]),
            ("action=cdr", b"[1,2]"),
            ("action=cdr", br#"{"EndStatus":1}"#),
            ("action=cdr", br#"{"SessionId":"s","EndStatus":null}"#),
            ("", br#"{"SessionId":"s","EndStatus":1}"#),
            (
                "action=cdr&version=2",
                br#"{"SessionId":"s","EndStatus":1}"#,
            ),
            ("action=cdr", b""),
            ("action=cdr", &[0xff, 0xfe, 0x00]),
        ] {
            assert!(
                matches!(
                    t.parse_hook(&hook(query, body, &[])),
                    Err(HookError::Malformed(_))
                ),
                "{query} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn pushes_are_authenticated_by_basic_auth() {
        let t = Tencent::new(reqwest::Client::new());
        let l = line(&[]);
        let auth = |user: &str, pass: &str| {
            vec![(
                "authorization".to_string(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                ),
            )]
        };
        let body = b"{}";
        assert!(t.verify_hook(&l, &hook("action=cdr", body, &auth("tccc", "hook-pass"))));
        assert!(!t.verify_hook(&l, &hook("action=cdr", body, &auth("tccc", "hook-pas"))));
        assert!(!t.verify_hook(&l, &hook("action=cdr", body, &auth("tcc", "hook-pass"))));
        assert!(!t.verify_hook(&l, &hook("action=cdr", body, &[])));
        for odd in ["Bearer abc", "Basic !!!", "Basic", "Basic dGNjYw=="] {
            let h = vec![("authorization".to_string(), odd.to_string())];
            assert!(!t.verify_hook(&l, &hook("action=cdr", body, &h)), "{odd}");
        }
        // A line without the push's credentials takes none.
        let mut bare = line(&[]);
        bare.config.remove("webhook_user");
        assert!(!t.verify_hook(&bare, &hook("action=cdr", body, &auth("tccc", "hook-pass"))));
        let reply = t.hook_reply();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, r#"{"ErrCode":0}"#)
        );
    }
}
